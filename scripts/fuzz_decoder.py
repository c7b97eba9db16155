"""Fuzz ``codec.decode`` with mutated containers, against every registered architecture.

::

    python scripts/fuzz_decoder.py --cases 20000                  # every architecture, 20000 cases each
    python scripts/fuzz_decoder.py --arch hevrc --cases 500 --json out.json
    python scripts/fuzz_decoder.py --arch hevrc --show 1234       # print case 1234's container (hex) and outcome

Not part of the test suite (``tests/test_fuzz_tool.py`` only runs it for a few
cases). Each architecture is a small random-weight instance of the registered
class (the format and the checks do not depend on the weights; small widths
make a case cost milliseconds), plus two of CompressAI's own models for the
generic-model path. Valid seed containers (several sizes, batch 1 and 2,
controls and layer counts) are encoded once; case ``i`` is a deterministic
mutation of one of them (``random.Random(f"{seed}:{arch}:{i}")``):

=================  ==========================================================
``bitflip``        1..8 random bits flipped anywhere
``bytes``          1..4 random bytes overwritten
``truncate``       cut at a random length
``insert``         1..16 random bytes inserted
``delete``         a random slice removed
``header-raw``     header bytes changed, header CRC recomputed
``field``          one header field forged (extreme sizes, shapes of 0..8
                   values, controls renamed to ``strings``/``shape``/..., NaN,
                   group counts and layer tags, batch, entropy-parameter
                   check values and format version), every CRC recomputed
``payload``        substream bytes changed, their CRCs and the header's recomputed
``swap``           substreams taken from another seed container, CRCs recomputed
=================  ==========================================================

Every case runs in a worker process under an address-space limit
(``--memory-mb`` above the worker's own size after start-up, ``RLIMIT_AS``), a
CPU-time limit (``--timeout``, read from ``/proc/PID/stat``) and a generous
wall-clock limit (``--wall-timeout``); a worker that dies or overruns is
restarted after the case. The slowest case (CPU) and the workers' peak RSS are
reported. Outcomes:

``decoded``         a finite image of the announced size came back
``typed``           a :class:`~compressai_rdc.container.BitstreamError` (by subclass)
``untyped``         any other exception (a bug: listed with its case number)
``over-time``       the case ran past ``--timeout`` CPU or ``--wall-timeout`` (a bug)
``over-memory``     ``MemoryError`` under the address-space limit (a bug)
``death``           the worker died (signal or abnormal exit; a bug)

Decoding uses ``DecodeLimits(max_pixels=--max-pixels, max_memory=--max-memory-mb)``;
the per-case limits hold because those do (time and memory grow with the pixels).
Exit status 1 when any bug outcome occurred.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

BUGS = ("untyped", "over-time", "over-memory", "death")
OPERATORS = ("bitflip", "bytes", "truncate", "insert", "delete", "header-raw", "field", "payload", "swap")

#: small widths per architecture (random weights); others are built with their registered kwargs
TINY: Dict[str, Dict[str, Any]] = {
    "rdc-versatile": dict(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2),
    "rdc-qmap": dict(N=16, M=16, levels=4, cond_channels=8, residual_N=8, residual_M=8, residual_layers=2),
    "hevrc": dict(N=16, M=16, cond_channels=8),
    "bmshj2018-factorized": dict(N=8, M=8),
    "mbt2018-mean": dict(N=8, M=8),
}
#: CompressAI architectures fuzzed for the generic (hook-less) model path
COMPRESSAI_ARCHS = ("bmshj2018-factorized", "mbt2018-mean")
#: seed images (B, H, W)
SIZES = ((1, 40, 56), (2, 17, 33), (1, 64, 64), (1, 5, 130))


# -----------------------------------------------------------------------------
# models and seed containers (run inside the worker)
# -----------------------------------------------------------------------------
def architectures() -> List[str]:
    from compressai_rdc.registry import MODELS

    return list(MODELS.names()) + [a for a in COMPRESSAI_ARCHS if a not in MODELS]


def build(arch: str):
    import torch

    from compressai_rdc.registry import MODELS

    torch.manual_seed(0)
    if arch in MODELS.names():
        spec = MODELS.get(arch)
        net = spec.cls(**{**dict(spec.kwargs), **TINY.get(arch, {})})
    else:
        import compressai.zoo.image

        net = compressai.zoo.image.model_architectures[arch](**TINY.get(arch, {}))
    net = net.eval()
    net.update(force=True)
    return net


def seed_controls(net) -> List[Dict[str, Any]]:
    import inspect

    params = inspect.signature(net.compress).parameters
    if "rate" in params and "layers" in params:
        k = int(getattr(net, "residual_layers", 0))
        return [dict(rate=0.5, layers=0), dict(rate=2.0, layers=k), dict(rate=1.25, layers=min(1, k), residual_rate=2.5)]
    if "qmap" in params:
        return [dict(qmap=0.2), dict(qmap=0.9)]
    return [{}]


def seeds(net) -> List[bytes]:
    import torch

    from compressai_rdc import codec

    g = torch.Generator().manual_seed(1)
    out = []
    for i, (b, h, w) in enumerate(SIZES):
        ctl = seed_controls(net)
        out.append(codec.encode(net, torch.rand(b, 3, h, w, generator=g), **ctl[i % len(ctl)]))
    return out


# -----------------------------------------------------------------------------
# raw container writer (no validation: forged values reach the reader)
# -----------------------------------------------------------------------------
def raw_pack(f: Dict[str, Any], strings: Sequence[Sequence[bytes]], crcs: Optional[List[List[int]]] = None) -> bytes:
    """Container bytes for header fields ``f`` (as :class:`StreamHeader` names) with valid CRCs,
    in the layout of ``f["version"]`` (formats 3-4 for 3 and 4, else formats 1/2; written here, not by
    ``pack``); format 4's refinement marks go into the spare bits of the two count bytes."""
    m = lambda v, bits: int(v) % (1 << bits)  # noqa: E731 - wrap into the field's width
    name = f["model_name"].encode("latin-1")[:255]
    version = f["version"]
    shape = list(f["shape"])[:255]
    controls = list(f["controls"].items())[:255]
    layers = list(f["layers"])[:255]
    v4 = m(version, 8) == 4
    if m(version, 8) in (3, 4):
        out = _raw_v3(f, name, shape, controls, layers, strings, m)
    else:
        out = bytearray(b"RDCs") + struct.pack("<BBB", m(version, 8), 0, len(name)) + name
        out += bytes(f["weights_hash"])[:8].ljust(8, b"\0")
        out += struct.pack("<HHH4H", *(m(v, 16) for v in (f["batch"], f["height"], f["width"], *f["pad"])))
        out += struct.pack(f"<B{len(shape)}I", len(shape), *(m(s, 32) for s in shape))
        out += struct.pack("<B", len(controls))
        for k, v in controls:
            kb = k.encode("latin-1")[:255]
            out += struct.pack("<B", len(kb)) + kb + struct.pack("<f", v)
        out += struct.pack(f"<B{len(layers)}B", len(layers), *(m(t, 8) for t in layers))
        for gi, group in enumerate(strings):
            for bi, s in enumerate(group):
                c = crcs[gi][bi] if crcs is not None else zlib.crc32(s)
                out += struct.pack("<II", len(s), c)
    if m(version, 8) >= 2:
        checks = list(f["checks"])[:255]
        out += struct.pack("<B", m(len(checks) | (f.get("refinement_checks", 0) << 4 if v4 else 0), 8))
        for tables, params in checks:
            out += struct.pack(f"<I{len(params)}I", m(tables, 32), *(m(v, 32) for v in params))
    out += struct.pack("<I", zlib.crc32(bytes(out)))
    for group in strings:
        for s in group:
            out += s
    return bytes(out)


def _raw_v3(f, name, shape, controls, layers, strings, m) -> bytearray:
    """Format 3's (and 4's) header fields, values wrapped to 32 bits, every layer CRC valid."""
    from compressai_rdc.container import varint as _varint  # LEB128 of a value already wrapped to 32 bits

    version = m(f["version"], 8)
    out = bytearray(b"RDCs") + bytes([version, len(name)]) + name + bytes(f["weights_hash"])[:4].ljust(4, b"\0")
    out += b"".join(_varint(m(v, 32)) for v in (f["batch"], f["height"], f["width"]))
    pad = [m(p, 32) for p in f["pad"]]
    out += bytes([sum(1 << i for i, p in enumerate(pad) if p)]) + b"".join(_varint(p) for p in pad if p)
    out += bytes([len(shape)]) + b"".join(_varint(m(s, 32)) for s in shape)
    out.append(m(len(controls) | (f.get("refinement_controls", 0) << 5 if version == 4 else 0), 8))
    for k, v in controls:
        kb = k.encode("latin-1")[:63]
        out += bytes([len(kb)]) + kb + struct.pack("<f", v)  # float32 encoding (bits 6-7 = 0)
    tags = [m(t, 8) for t in layers]
    out += bytes([len(tags), *tags])
    out += b"".join(_varint(len(s)) for group in strings for s in group)
    for tag in sorted(set(tags)):
        crc = 0
        for t, group in zip(tags, strings):
            for s in group if t == tag else ():
                crc = zlib.crc32(s, crc)
        out += struct.pack("<I", crc)
    return out


def _fields(header) -> Dict[str, Any]:
    return dict(model_name=header.model_name, weights_hash=header.weights_hash, batch=header.batch,
                height=header.height, width=header.width, pad=list(header.pad), shape=list(header.shape),
                controls=dict(header.controls), layers=list(header.layers), version=header.version,
                checks=[(c.tables, list(c.params)) for c in header.checks],
                refinement_controls=header.refinement_controls, refinement_checks=header.refinement_checks)


EXTREME = (0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 256, 1023, 1024, 4096, 8192, 16383, 16384, 16385, 65535)
CONTROL_NAMES = ("strings", "shape", "x", "self", "rate", "residual_rate", "layers", "beta", "qmap", "kwargs", "A", "_")
CONTROL_VALUES = (float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -1.0, 0.5, 1.0, 2.0, 3.0, 7.0, 8.0, 1e30, 3.4e38)


def mutate(rng: random.Random, seed_blobs: List[bytes]) -> Tuple[str, bytes]:
    """One mutated container: ``(operator, bytes)``."""
    from compressai_rdc.container import unpack

    blob = seed_blobs[rng.randrange(len(seed_blobs))]
    op = rng.choice(OPERATORS)
    b = bytearray(blob)
    if op == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
        return op, bytes(b)
    if op == "bytes":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return op, bytes(b)
    if op == "truncate":
        return op, bytes(b[: rng.randrange(len(b))])
    if op == "insert":
        i = rng.randrange(len(b) + 1)
        return op, bytes(b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + b[i:])
    if op == "delete":
        i = rng.randrange(len(b))
        return op, bytes(b[:i] + b[i + rng.randint(1, 16):])
    header, strings = unpack(blob)
    if op == "header-raw":
        end = header.header_size - 4
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(4, end)] = rng.randrange(256) if rng.random() < 0.7 else rng.choice((0, 1, 2, 3, 64, 255))
        b[end:end + 4] = struct.pack("<I", zlib.crc32(bytes(b[:end])))
        return op, bytes(b)
    f = _fields(header)
    if op == "payload":
        strings = [list(g) for g in strings]
        for _ in range(rng.randint(1, 3)):
            g = rng.randrange(len(strings))
            i = rng.randrange(len(strings[g]))
            s = bytearray(strings[g][i])
            kind = rng.random()
            if kind < 0.4 and s:
                s[rng.randrange(len(s))] = rng.randrange(256)
            elif kind < 0.6:
                s = bytearray(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            elif kind < 0.8:
                s = s[: rng.randrange(len(s) + 1)]
            else:
                s += bytes(rng.choice((0, 255)) for _ in range(rng.randint(1, 32)))
            strings[g][i] = bytes(s)
        return op, raw_pack(f, strings)
    if op == "swap":
        _, other = unpack(seed_blobs[rng.randrange(len(seed_blobs))])
        strings = [list(g) for g in strings]
        for _ in range(rng.randint(1, 3)):
            g, i = rng.randrange(len(strings)), rng.randrange(len(strings[0]))
            og = rng.randrange(len(other))
            strings[g][i] = other[og][rng.randrange(len(other[og]))]
        return op, raw_pack(f, strings)
    # op == "field": one forged header field, all CRCs recomputed
    which = rng.choice(("size", "pad", "shape", "controls", "groups", "layers", "batch", "name", "hash", "checks", "marks"))
    strings = [list(g) for g in strings]
    if which == "size":
        f[rng.choice(("height", "width"))] = rng.choice(EXTREME)
        if rng.random() < 0.5:
            f["height"], f["width"] = rng.choice(EXTREME), rng.choice(EXTREME)
    elif which == "pad":
        f["pad"][rng.randrange(4)] = rng.choice(EXTREME)
    elif which == "shape":
        f["shape"] = [rng.choice(EXTREME) if rng.random() < 0.5 else rng.choice(header.shape or (1,))
                      for _ in range(rng.choice((0, 1, 2, 2, 3, 4, 8, 9)))]
    elif which == "controls":
        c = f["controls"]
        action = rng.random()
        if action < 0.35 or not c:
            c[rng.choice(CONTROL_NAMES)] = rng.choice(CONTROL_VALUES)
        elif action < 0.6:
            k = rng.choice(sorted(c))
            c[rng.choice(CONTROL_NAMES)] = c.pop(k)
        elif action < 0.85:
            c[rng.choice(sorted(c))] = rng.choice(CONTROL_VALUES)
        else:
            c.pop(rng.choice(sorted(c)))
    elif which == "groups":
        action = rng.random()
        if action < 0.4 and len(strings) > 1:
            i = rng.randrange(len(strings))
            del strings[i], f["layers"][i]
        elif action < 0.8:
            i = rng.randrange(len(strings))
            strings.insert(i, list(strings[i]))
            f["layers"].insert(i, f["layers"][i])
        else:
            extra = rng.randint(1, 4)
            strings += [[b""] * len(strings[0]) for _ in range(extra)]
            f["layers"] += [max(f["layers"])] * extra
    elif which == "layers":
        f["layers"] = sorted(rng.randrange(len(strings) + 2) for _ in strings)
    elif which == "batch":
        nb = rng.choice((1, 2, 3, 64, 65))
        strings = [[g[i % len(g)] for i in range(nb)] for g in strings]
        f["batch"] = nb
    elif which == "name":
        f["model_name"] = rng.choice(("hevrc", "rdc-versatile", "rdc-qmap", "mbt2018-mean", "x" * 128, "A"))
    elif which == "checks":
        action = rng.random()
        checks = f["checks"]
        if action < 0.3 and checks:
            tables, params = checks[rng.randrange(len(checks))]
            params[rng.randrange(len(params))] ^= 1 << rng.randrange(32)
        elif action < 0.45 and checks:
            i = rng.randrange(len(checks))
            checks[i] = (checks[i][0] ^ 1 << rng.randrange(32), checks[i][1])
        elif action < 0.6:
            del checks[rng.randrange(len(checks) + 1):]
        elif action < 0.75:
            checks += [(rng.randrange(1 << 32), [rng.randrange(1 << 32) for _ in range(f["batch"])])
                       for _ in range(rng.choice((1, 2, 8, 9)))]
        elif action < 0.9:
            f["version"] = rng.choice((0, 1, 2, 3, 4, 255))
        else:
            for _, params in checks:
                params.append(rng.randrange(1 << 32))
    elif which == "marks":  # format 4's refinement-only controls / checks: moved, cleared, out of range
        f["version"] = 4 if rng.random() < 0.8 else 3
        f[rng.choice(("refinement_controls", "refinement_checks"))] = rng.randrange(16)
        if rng.random() < 0.3:
            f["controls"] = dict(reversed(list(f["controls"].items())))
    else:
        f["weights_hash"] = bytes(rng.randrange(256) for _ in range(8))
    return f"field-{which}", raw_pack(f, strings)


# -----------------------------------------------------------------------------
# worker
# -----------------------------------------------------------------------------
def _classify(net, data: bytes, limits) -> Tuple[str, str]:
    import torch

    from compressai_rdc import codec
    from compressai_rdc.container import BitstreamError

    try:
        out = codec.decode(data, net, limits=limits)
    except BitstreamError as exc:
        return "typed", type(exc).__name__
    except MemoryError as exc:
        return "over-memory", f"MemoryError: {exc}"
    except Exception as exc:  # noqa: BLE001 - the point of a fuzzer: every other exception is a finding
        return "untyped", f"{type(exc).__name__}: {exc}"[:300] + " | " + traceback.format_exc(limit=-3).replace("\n", " ")[-400:]
    if out.dim() != 4 or out.shape[1] != 3 or not bool(torch.isfinite(out).all()):
        return "untyped", f"decode returned an invalid image {tuple(out.shape)}"
    return "decoded", ""


def _worker(arch: str, start: int, stop: int, seed: int, opts: Dict[str, Any], conn) -> None:
    import resource

    import torch

    torch.set_num_threads(1)
    from compressai_rdc.limits import DecodeLimits

    net = build(arch)
    seed_blobs = seeds(net)
    limits = DecodeLimits(max_pixels=opts["max_pixels"], max_memory=opts["max_memory_mb"] << 20)
    with open("/proc/self/statm") as fh:
        vsize = int(fh.read().split()[0]) * resource.getpagesize()
    cap = vsize + (opts["memory_mb"] << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    conn.send(("ready", len(seed_blobs)))
    for i in range(start, stop):
        rng = random.Random(f"{seed}:{arch}:{i}")
        op, data = mutate(rng, seed_blobs)
        cpu = time.process_time()
        outcome, detail = _classify(net, data, limits)
        cpu = time.process_time() - cpu
        conn.send(("case", (i, op, outcome, detail)))
        if cpu > 0.5:
            conn.send(("cpu", (i, op, round(cpu, 2))))
    conn.send(("done", {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "address_space_cap_mb": round(cap / 2**20, 1)}))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc/PID/stat``)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_arch(arch: str, cases: int, seed: int, opts: Dict[str, Any], log=print, start: int = 0,
             progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Run cases ``start..start+cases-1`` for ``arch`` in restartable workers; returns counts
    and findings.

    With ``opts["budget_s"]`` the run stops after that many seconds and reports
    the cases completed (``cases`` in the result). ``progress`` receives the
    result so far every 1000 cases, so a run that is killed still reports the
    cases it completed (``first_case``, ``cases``); runs of disjoint case ranges
    add up (:func:`table`).
    """
    ctx = mp.get_context("spawn")
    budget = opts.get("budget_s")
    stopped = False
    counts: Counter = Counter()
    findings: List[Tuple[int, str, str, str]] = []
    restarts, i, t0 = 0, start, time.monotonic()
    stop = start + cases
    slowest: List[Any] = [-1, "", 0.0]  # case, operator, CPU seconds of the slowest case over 0.5 s
    peak_rss: List[Optional[float]] = []

    def record(idx: int, op: str, outcome: str, detail: str) -> None:
        group = op.split("-")[0] if op.startswith("field") else op
        counts[(group, outcome, detail if outcome in ("typed", "decoded") else "")] += 1
        if outcome in BUGS:
            findings.append((idx, op, outcome, detail))

    def result() -> Dict[str, Any]:
        total: Counter = Counter()
        for (_, outcome, _), v in counts.items():
            total[outcome] += v
        return {
            "arch": arch, "first_case": start, "cases": i - start, "seconds": round(time.monotonic() - t0, 1), "restarts": restarts,
            "outcomes": dict(total), "by_operator": _by_operator(counts), "typed_errors": _typed(counts),
            "slowest_case": {"case": slowest[0], "operator": slowest[1], "cpu_s": slowest[2]},
            "worker_peak_rss_mb": max((r for r in peak_rss if r is not None), default=None),
            "findings": findings[:200],
        }

    while i < stop:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(arch, i, stop, seed, opts, child), daemon=True)
        proc.start()
        child.close()
        ready, last, eof = False, time.monotonic(), False
        cpu_mark = 0.0
        while True:
            if not eof and parent.poll(0.5):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    kind, payload, eof = "eof", None, True
                if kind == "cpu":
                    if payload[2] > slowest[2]:
                        slowest[:] = list(payload)
                    continue
                if kind in ("ready", "case"):
                    ready, last, cpu_mark = True, time.monotonic(), _cpu_seconds(proc.pid)
                    if kind == "case":
                        record(*payload)
                        i = payload[0] + 1
                        if i % 1000 == 0:
                            log(f"{arch}: {i - start}/{cases} cases, {time.monotonic() - t0:.0f} s")
                            if progress is not None:
                                progress(result())
                    if not (budget and time.monotonic() - t0 > budget):
                        continue
                if kind == "done":
                    peak_rss.append(payload["peak_rss_mb"] if isinstance(payload, dict) else None)
                    proc.join()
                    break
            if eof or (not proc.is_alive() and not parent.poll()):
                proc.join()
                if not ready:
                    raise RuntimeError(f"the {arch} worker failed to start (exit code {proc.exitcode})")
                record(i, "?", "death", f"worker exit code {proc.exitcode}")
                i, restarts = i + 1, restarts + 1
                break
            if budget and time.monotonic() - t0 > budget:
                proc.kill()
                proc.join()
                stopped = True
                break
            cpu_used = _cpu_seconds(proc.pid) - cpu_mark if ready else 0.0
            wall_used = time.monotonic() - last
            if ready and (cpu_used > opts["timeout"] or wall_used > opts["wall_timeout"]):
                proc.kill()
                proc.join()
                record(i, "?", "over-time", f"{cpu_used:.1f} s CPU, {wall_used:.1f} s wall")
                i, restarts = i + 1, restarts + 1
                break
        parent.close()
        if stopped:
            break
    return result()


def _by_operator(counts: Counter) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Counter] = {}
    for (op, outcome, _), v in counts.items():
        out.setdefault(op, Counter())[outcome] += v
    return {k: dict(v) for k, v in sorted(out.items())}


def _typed(counts: Counter) -> Dict[str, int]:
    out: Counter = Counter()
    for (_, outcome, detail), v in counts.items():
        if outcome == "typed":
            out[detail] += v
    return dict(out)


def show(arch: str, case: int, seed: int, opts: Dict[str, Any]) -> None:
    from compressai_rdc.limits import DecodeLimits

    net = build(arch)
    rng = random.Random(f"{seed}:{arch}:{case}")
    op, data = mutate(rng, seeds(net))
    limits = DecodeLimits(max_pixels=opts["max_pixels"], max_memory=opts["max_memory_mb"] << 20)
    print(f"case {case} ({op}), {len(data)} bytes:\n{data.hex()}")
    print(_classify(net, data, limits))


TYPED_COLUMNS = ("CorruptBitstreamError", "TruncatedBitstreamError", "ForeignBitstreamError", "UnsupportedBitstreamError",
                 "DecodeLimitError", "EntropyParameterMismatchError")


def merge_runs(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """The ``--json`` files' results, one per architecture: runs of the same
    architecture over disjoint case ranges (``--start``, or one killed part-way)
    add up; overlapping ranges of the same seed are refused."""
    merged: Dict[str, Dict[str, Any]] = {}
    spans: Dict[str, List[Tuple[int, int, int]]] = {}
    for path in paths:
        doc = json.load(open(path))
        for r in doc["results"]:
            first = r.get("first_case", 0)
            span = (doc.get("seed", 0), first, first + r["cases"])
            for seed, a, b in spans.get(r["arch"], []):
                if seed == span[0] and a < span[2] and span[1] < b:
                    raise SystemExit(f"{path}: {r['arch']} cases {span[1]}..{span[2] - 1} (seed {seed}) overlap an earlier file's {a}..{b - 1}")
            spans.setdefault(r["arch"], []).append(span)
            m = merged.setdefault(r["arch"], {"arch": r["arch"], "cases": 0, "seconds": 0.0, "outcomes": Counter(), "typed_errors": Counter()})
            m["cases"] += r["cases"]
            m["seconds"] += r["seconds"]
            m["outcomes"].update(r["outcomes"])
            m["typed_errors"].update(r["typed_errors"])
    return list(merged.values())


def table(paths: Sequence[str]) -> str:
    """Markdown table (one row per architecture, then the totals) of ``--json`` files
    (:func:`merge_runs`)."""
    rows = merge_runs(paths)
    head = ["architecture", "cases", "decoded", "`BitstreamError`"] + [f"`{c.replace('BitstreamError', '')}…`" if c.endswith("BitstreamError") else f"`{c}`" for c in TYPED_COLUMNS] + ["untyped", "over-time", "over-memory", "deaths", "seconds"]

    def cells(r: Dict[str, Any]) -> List[int]:
        o, t = r["outcomes"], r["typed_errors"]
        other = sum(v for k, v in t.items() if k not in TYPED_COLUMNS)
        if other:
            raise SystemExit(f"{r['arch']}: typed errors outside the table's columns: {t}")
        return [r["cases"], o.get("decoded", 0), o.get("typed", 0)] + [t.get(c, 0) for c in TYPED_COLUMNS] + [o.get(b, 0) for b in BUGS] + [r["seconds"]]

    body = [[f"`{r['arch']}`"] + cells(r) for r in rows]
    total = ["**total**"] + [round(sum(row[i] for row in body), 1) for i in range(1, len(head))]
    fmt = lambda v: f"{v:,}" if isinstance(v, int) else (f"{v:,.0f}" if isinstance(v, float) else v)  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in body + [total]]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", action="append", help="architecture (repeatable; default: every registered one + CompressAI's)")
    p.add_argument("--cases", type=int, default=1000, help="cases per architecture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case index (split a long run over sessions: 0, then 40000, ...)")
    p.add_argument("--timeout", type=float, default=10.0, help="CPU-time limit per case, seconds")
    p.add_argument("--wall-timeout", type=float, default=300.0,
                   help="wall-clock limit per case, seconds (catches a case blocked without using CPU; "
                        "generous because a loaded machine stretches wall time: a 1.8 s-CPU case took 15 s)")
    p.add_argument("--memory-mb", type=int, default=1024, help="address space a case may add to the worker, MiB")
    p.add_argument("--max-pixels", type=int, default=1 << 18, help="DecodeLimits.max_pixels used for decoding")
    p.add_argument("--max-memory-mb", type=int, default=256, help="DecodeLimits.max_memory used for decoding, MiB")
    p.add_argument("--budget-s", type=float, default=None, help="stop each architecture after this many seconds (cases done are reported)")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--show", type=int, default=None, help="print one case's container and outcome, then exit")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the Markdown table of these --json files, then exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    opts = dict(timeout=args.timeout, wall_timeout=args.wall_timeout, memory_mb=args.memory_mb, max_pixels=args.max_pixels, max_memory_mb=args.max_memory_mb,
                budget_s=args.budget_s)
    archs = args.arch or architectures()
    if args.show is not None:
        show(archs[0], args.show, args.seed, opts)
        return 0
    results: List[Dict[str, Any]] = []

    def save(partial: Optional[Dict[str, Any]] = None) -> None:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"options": opts, "seed": args.seed, "results": results + ([partial] if partial else [])}, fh, indent=1)

    for arch in archs:
        r = run_arch(arch, args.cases, args.seed, opts, log=lambda m: print(m, file=sys.stderr, flush=True), start=args.start, progress=save)
        results.append(r)
        print(json.dumps({k: r[k] for k in ("arch", "first_case", "cases", "seconds", "restarts", "outcomes")}), flush=True)
        save()
    bugs = sum(r["outcomes"].get(b, 0) for r in results for b in BUGS)
    total = sum(r["cases"] for r in results)
    print(f"{total} cases over {len(results)} architectures: "
          + ", ".join(f"{b} {sum(r['outcomes'].get(b, 0) for r in results)}" for b in BUGS))
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
