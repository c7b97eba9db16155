"""Peak memory and wall time of tiled against untiled encode and decode, at growing sizes.

::

    nice -n 19 python benchmarks/tiled_memory.py --sizes 1024 2048 4096 --untiled-max 2048

For each size a smooth random image (bicubic upsampling of 1/16-size noise, so
rates are image-like) is encoded and decoded by ``--model`` (default the
shipped ``rdc-versatile`` weights; ``--random`` for registered default widths
with random weights) with ``tile=--tile`` and with tiling off. Every
measurement runs in a fresh process (one thread) that builds the model, warms
up on a 64² image and then reports:

* ``peak_mb``: the process's peak RSS (``VmHWM``: model, PyTorch and the call),
* ``call_peak_mb``: the peak minus the RSS before the call (``/proc/self/clear_refs``),
* ``seconds``: wall time of the ``codec.encode`` / ``codec.decode`` call.

Untiled runs above ``--untiled-max`` are skipped (the untiled decode needs about
400 bytes per pixel: 6.4 GB at 4096²); the table then says so. When both
decodes of a size ran, ``max_abs_diff`` compares them (tiled vs untiled x̂,
values in [0, 1]). Linux only (``/proc``). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _proc import run_child

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from compressai_rdc import codec
from compressai_rdc.limits import DecodeLimits
from compressai_rdc.zoo import create_model
op, name, random, size, tile, path = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
tile = tile or None
torch.manual_seed(0)
net = (create_model(name) if random else create_model(name, metric="mse", pretrained=True)).eval()
net.update(force=True)
def image(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, max(n // 16, 2), max(n // 16, 2), generator=g)
    return torch.nn.functional.interpolate(x, size=(n, n), mode="bicubic", align_corners=False).clamp(0, 1)
codec.decode(codec.encode(net, image(64)), net)  # warm-up
from _proc import reset_peak, rss
if op == "encode":
    x = image(size)
    before = reset_peak()
    t0 = time.perf_counter()
    data = codec.encode(net, x, tile=tile)
    seconds = time.perf_counter() - t0
    open(path, "wb").write(data)
    extra = {"bpp": round(codec.bits_per_pixel(data), 5)}
else:
    data = open(path, "rb").read()
    before = reset_peak()
    t0 = time.perf_counter()
    x_hat = codec.decode(data, net, limits=DecodeLimits(max_memory=1 << 40, tile=tile))
    seconds = time.perf_counter() - t0
    torch.save(x_hat, path + (".tiled" if tile else ".untiled") + ".pt")
    extra = {}
peak = rss("VmHWM")
print(json.dumps({"op": op, "size": size, "tile": tile, "seconds": round(seconds, 2), "peak_mb": round(peak / 2**20),
                  "call_peak_mb": round((peak - before) / 2**20), **extra}))
"""


def _run(args, op: str, size: int, tile: int, path: Path) -> dict:
    out = run_child(CHILD, op, args.model, "1" if args.random else "0", str(size), str(tile), str(path))
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--model", default="rdc-versatile")
    p.add_argument("--random", action="store_true", help="registered default widths, random weights (no shipped weights needed)")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--untiled-max", type=int, default=2048, help="skip untiled runs above this size")
    p.add_argument("--ops", nargs="+", default=["encode", "decode"], choices=["encode", "decode"])
    args = p.parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            stream = Path(tmp) / f"{size}.rdc"
            modes = [args.tile] + ([0] if size <= args.untiled_max else [])
            for op in ("encode", "decode"):
                if op == "encode" and "encode" not in args.ops:
                    _run(args, "encode", size, args.tile, stream)  # decode needs a stream
                    continue
                if op not in args.ops:
                    continue
                for tile in modes:
                    # the decode reads the stream of the tiled encode (the same bytes for both modes)
                    _run(args, op, size, tile, stream if op == "decode" or tile else Path(tmp) / f"{size}.untiled.rdc")
            if size > args.untiled_max:
                print(json.dumps({"size": size, "untiled": f"skipped (above --untiled-max {args.untiled_max})"}), flush=True)
            elif "decode" in args.ops:
                a, b = (torch.load(f"{stream}.{m}.pt") for m in ("tiled", "untiled"))
                print(json.dumps({"size": size, "max_abs_diff": float((a - b).abs().max())}), flush=True)
            for f in Path(tmp).glob(f"{size}*"):
                f.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
