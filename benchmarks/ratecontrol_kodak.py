"""Target-rate accuracy and search cost on Kodak (issue 4 measurements).

    python benchmarks/ratecontrol_kodak.py --model hevrc-fixture --targets 0.2,0.5,1.0 --limit 24
    python benchmarks/ratecontrol_kodak.py --model rdc-versatile --weights W.safetensors --targets 0.1,0.2,0.4 --layers 0
    python benchmarks/ratecontrol_kodak.py --model hevrc --weights W.safetensors --strategy blended

For each image and target: ``encode_to_target`` (real container bytes), the
relative error |actual − target| / target, model evaluations (and those of the
1/4-size copy of a coarse-to-fine level search), encodes and wall time, and the
wall time of one plain ``codec.encode`` at the control found (the cost ratio),
checking that it gives the same bytes. Quality-map levels are timed like with
like, twice: with the map built from the image on both sides (the target search
with ``qmap_strategy``; the plain encode as ``compressai-rdc encode --level t
--qmap-strategy S`` does it: build the map, then encode), and with a precomputed
``importance`` given to both. ``--split`` times the parts of a level search; ``--predictors`` only measures
how well cheaper evaluations foresee a full-size probe (:func:`predictors`).
Targets outside an image's range are counted, not hidden.
``hevrc-fixture`` / ``rdc-fixture`` are the small random-init codecs of
``tests/test_ratecontrol.py`` (no trained weights needed).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package and tests/
from compressai_rdc import codec, create_model  # noqa: E402
from compressai_rdc.contract import accepts  # noqa: E402
from compressai_rdc.data import find_data_dir, list_images, load_image  # noqa: E402
from compressai_rdc.ratecontrol import RateRangeError, encode_to_target, rate_control  # noqa: E402
from compressai_rdc.utils.padding import pad_to_multiple  # noqa: E402
from tests.conftest import QScaledAnalysis  # noqa: E402  (the tests' map-dependent fixture)


def build(name: str, weights):
    torch.manual_seed(0)
    if name == "hevrc-fixture":
        net = create_model("hevrc", N=32, M=48, cond_channels=16)
        net.g_a = QScaledAnalysis(net.g_a)
    elif name == "rdc-fixture":
        net = create_model("rdc-versatile", N=32, M=48, residual_N=16, residual_M=24)
    else:
        from compressai_rdc.cli.encode import load_model

        return load_model(name, weights, weights is None)
    net.eval().update(force=True)
    return net


def map_of(net, x, strategy: str):
    """The importance map of ``strategy`` on ``x``."""
    from compressai_rdc.qmap import create_strategy_for

    return create_strategy_for(net, strategy)(x)


def cost_split(net, x, strategy: str) -> dict:
    """Seconds of the parts of a level search on ``x`` (median of 3 runs each): the map build,
    one plain encode (map given), ``g_a``, its map-independent stem, its full-resolution
    condition input and its first SFT, one probe (stem
    reused: g_a from the first SFT, h_a, entropy coding), its entropy coding alone, one
    probe of the 1/4-size copy; and the range of ``log(full / copy)`` of the coded rates."""
    from compressai_rdc.qmap.gamma import gamma_level

    imp = map_of(net, x, strategy)
    ctl = rate_control(net, x, importance=imp)
    ctl.estimate(1.0)  # computes the stem once
    qmap = gamma_level(imp, 1.0)
    xp = pad_to_multiple(x, codec.pad_multiple(net))[0]
    lat = net.encode_latents(xp, qmap)
    qp = pad_to_multiple(qmap, codec.pad_multiple(net))[0]
    inner = getattr(net.g_a, "inner", net.g_a)  # the fixture wraps the SFT analysis
    with torch.no_grad():
        stem, c1 = inner.stem(xp), inner.cond_down[0](inner.cond_in(torch.cat([xp, qp], dim=1)))
    parts = {
        "map_build": lambda: map_of(net, x, strategy),
        "plain_encode": lambda: codec.encode(net, x, qmap=qmap),
        "g_a": lambda: net.g_a(xp, qp),
        "g_a_stem": lambda: net.g_a.stem(xp),
        "g_a_cond_in": lambda: inner.cond_in(torch.cat([xp, qp], dim=1)),  # full-resolution condition input
        "g_a_first_sft": lambda: inner.sfts[0](stem, c1),  # the first SFT (half resolution), given its condition
        "probe": lambda: ctl.estimate(float(torch.rand(()))),  # a new level each time: nothing cached
        "coarse_probe": lambda: ctl.coarse.estimate(float(torch.rand(()))),
        "entropy_coding": lambda: net._code(lat),
    }
    out = {}
    with torch.no_grad():
        for name, fn in parts.items():
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times)
    # how far the copy's rate is from the full image's, across the levels of 0.1–3 bpp here
    logs = [math.log(ctl.estimate(t) / ctl.coarse.estimate(t)) for t in (0.55, 0.65, 0.75, 0.85, 0.95, 1.05)]
    out["log_full_over_copy_min"], out["log_full_over_copy_max"] = min(logs), max(logs)
    return out


def predictors(net, x, strategy: str, levels=(0.55, 0.7, 0.85, 1.0, 1.15)) -> dict:
    """How well the cheap predictors of a level search foresee the full-size coded payload
    ``f(t)`` before any full-size probe: ``predicted / f`` at each level and the seconds of
    one evaluation over those of one full-size probe. ``copy4`` / ``copy2``: the image and its
    map downsampled 4× / 2× (coded probes, as the search's copy); ``extrap``: ``copy2² / copy4``
    (log-rate linear in the log of the scale); ``tiles``: every third 128-px tile at full
    size, batched, their likelihood bits per pixel; ``batch2``: seconds of ``g_a``
    after the stem on two maps in one batch over twice those of one map."""
    import torch.nn.functional as F

    from compressai_rdc.qmap.gamma import gamma_level
    from compressai_rdc.ratecontrol import _qmap_control, estimate_bpp

    imp = map_of(net, x, strategy)
    ctl = rate_control(net, x, importance=imp)

    def copy(k):
        size = (x.shape[-2] // k, x.shape[-1] // k)
        small = {"importance": F.interpolate(imp, size=size, mode="area")}
        return _qmap_control(net, F.interpolate(x, size=size, mode="area"), small, net._coded_level_probe, coarse=False)

    half = copy(2)
    cells = [(i, j) for i in range(0, x.shape[-2] - 127, 128) for j in range(0, x.shape[-1] - 127, 128)][::3]
    tx = torch.cat([x[..., i:i + 128, j:j + 128] for i, j in cells])
    tv = torch.cat([imp[..., i:i + 128, j:j + 128] for i, j in cells])
    evals = {"full": ctl.estimate, "copy4": ctl.coarse.estimate, "copy2": half.estimate,
             "tiles": lambda t: estimate_bpp(net, tx, 128 * 128 * len(cells), qmap=gamma_level(tv, t))}
    seconds = {k: 0.0 for k in evals}
    ratios = {k: [] for k in ("copy4", "copy2", "extrap", "tiles")}
    with torch.no_grad():
        for t in levels:
            v = {}
            for k, fn in evals.items():
                t0 = time.perf_counter()
                v[k] = fn(t)
                seconds[k] += time.perf_counter() - t0
            v["extrap"] = v["copy2"] ** 2 / v["copy4"]
            for k in ratios:
                ratios[k].append(v[k] / v["full"])
        xp = pad_to_multiple(x, codec.pad_multiple(net))[0]
        g_a = getattr(net.g_a, "inner", net.g_a)
        stem = g_a.stem(xp)
        q = torch.rand(2, 1, *xp.shape[-2:])
        batch = []
        for b in (1, 2):
            t0 = time.perf_counter()
            g_a(xp.expand(b, -1, -1, -1), q[:b], stem=stem.expand(b, -1, -1, -1))
            batch.append(time.perf_counter() - t0)
    out = {f"{k}_over_full": (min(r), max(r)) for k, r in ratios.items()}
    out.update({f"{k}_cost": seconds[k] / seconds["full"] for k in evals if k != "full"})
    out["batch2_cost"] = batch[1] / (2 * batch[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hevrc-fixture")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--targets", default="0.2,0.5,1.0")
    ap.add_argument("--strategy", default="inverse-icm", help="quality-map strategy (quality-map models)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--method", default="brent", choices=("brent", "golden", "bounded"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--tolerance", type=float, default=0.02, help="encode_to_target's accepted relative error")
    ap.add_argument("--json", default=None, help="write every row to this file")
    ap.add_argument("--split", action="store_true", help="also time the parts of a level search (quality-map models)")
    ap.add_argument("--predictors", action="store_true",
                    help="only measure the cheap predictors of a full-size probe (quality-map models; see predictors())")
    args = ap.parse_args()
    kodak = find_data_dir("kodak")
    if kodak is None:
        raise SystemExit("kodak/ not found (set $COMPRESSAI_RDC_DATA)")
    net = build(args.model, args.weights)
    fixed = {} if args.layers is None else {"layers": args.layers}
    if accepts(net.compress, "qmap"):
        fixed["qmap_strategy"] = args.strategy
    level = rate_control(net, load_image(list_images(kodak)[0])[None, :, :64, :64], **fixed).name == "level"
    if args.predictors:
        found = [predictors(net, load_image(p)[None], args.strategy) for p in list_images(kodak)[: args.limit]]
        for path, f in zip(list_images(kodak), found):
            print(path.name, json.dumps({k: [round(v, 3) for v in u] if isinstance(u, tuple) else round(u, 3)
                                         for k, u in f.items()}), flush=True)
        print(json.dumps({k: (min(f[k][0] for f in found), max(f[k][1] for f in found)) if isinstance(found[0][k], tuple)
                          else statistics.median(f[k] for f in found) for k in found[0]}, indent=1))
        return
    rows, out_of_range, splits = [], 0, []
    for path in list_images(kodak)[: args.limit]:
        x = load_image(path)[None]
        if level and args.split:
            splits.append(cost_split(net, x, args.strategy))
        for target in [float(t) for t in args.targets.split(",")]:
            try:
                data, rep = encode_to_target(net, x, target, method=args.method, tolerance=args.tolerance, **fixed)
            except RateRangeError as exc:
                out_of_range += 1
                print(f"{path.name} {target}: {exc}")
                continue
            row = dict(image=path.name, target=target, actual=rep.actual_bpp, rel_error=abs(rep.relative_error),
                       evaluations=rep.evaluations, coarse_evaluations=rep.coarse_evaluations, encodes=rep.encodes,
                       seconds=rep.seconds)
            if level:  # like with like: the map built on both sides, then passed finished on both sides
                t0 = time.perf_counter()
                controls = rate_control(net, x, **fixed).controls(rep.value)  # what `encode --level t` does
                plain_data = codec.encode(net, x, **controls)
                row["plain_seconds"] = time.perf_counter() - t0
                imp = map_of(net, x, args.strategy)
                t0 = time.perf_counter()
                data2, rep2 = encode_to_target(net, x, target, method=args.method, tolerance=args.tolerance, importance=imp)
                row["seconds_given_map"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                codec.encode(net, x, **rate_control(net, x, importance=imp).controls(rep2.value))
                row["plain_seconds_given_map"] = time.perf_counter() - t0
            else:
                t0 = time.perf_counter()
                plain_data = codec.encode(net, x, **dict(fixed, **{rep.control: rep.value}))
                row["plain_seconds"] = time.perf_counter() - t0
            row["same_bytes"] = plain_data == data
            rows.append(row)
            extra = (f" | map given: {row['seconds_given_map'] / row['plain_seconds_given_map']:.2f}x plain"
                     if level else "")
            print(f"{path.name} target {target:.3f} actual {rep.actual_bpp:.4f} err {100 * row['rel_error']:.2f}% "
                  f"evals {rep.evaluations} (+{rep.coarse_evaluations} coarse) encodes {rep.encodes} "
                  f"time {rep.seconds:.2f}s = {rep.seconds / row['plain_seconds']:.2f}x plain{extra}", flush=True)
    errs = sorted(r["rel_error"] for r in rows)
    if errs:
        ratio = [r["seconds"] / r["plain_seconds"] for r in rows]
        summary = dict(
            n=len(errs), out_of_range=out_of_range,
            mean_pct=100 * statistics.mean(errs), median_pct=100 * statistics.median(errs),
            p95_pct=100 * errs[min(len(errs) - 1, int(0.95 * len(errs)))], max_pct=100 * errs[-1],
            within_3pct=sum(e <= 0.03 for e in errs) / len(errs),
            evaluations_mean=statistics.mean(r["evaluations"] for r in rows),
            encodes_mean=statistics.mean(r["encodes"] for r in rows),
            time_ratio_median=statistics.median(ratio),
            coarse_evaluations_mean=statistics.mean(r["coarse_evaluations"] for r in rows),
            same_bytes_as_plain=sum(r["same_bytes"] for r in rows),
        )
        if level:
            summary["time_ratio_median_given_map"] = statistics.median(
                r["seconds_given_map"] / r["plain_seconds_given_map"] for r in rows)
        if splits:
            summary["cost_split_median_s"] = {k: statistics.median(s[k] for s in splits) for k in splits[0]
                                              if not k.startswith("log_")}
            summary["log_full_over_copy_range"] = (min(s["log_full_over_copy_min"] for s in splits),
                                                   max(s["log_full_over_copy_max"] for s in splits))
        print(json.dumps(summary, indent=1))
        if args.json:
            with open(args.json, "x") as f:
                json.dump({"summary": summary, "rows": rows, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
