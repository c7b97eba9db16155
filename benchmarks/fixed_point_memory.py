"""Peak memory of the fixed-point hyper-synthesis over a large image's latent grid, whole vs tiled.

::

    python benchmarks/fixed_point_memory.py --model hevrc rdc-versatile --size 4096

The entropy parameters of ``rdc-versatile``, ``rdc-qmap`` and ``hevrc`` come from
``h_s`` evaluated in integer-valued float64 (:mod:`compressai_rdc.layers.fixed_point`),
whose CPU convolution is im2col + GEMM. Each measurement runs in a fresh process
(registered widths, random weights, one thread) that evaluates ``h_s`` on a random
integer ``ẑ`` of a ``--size``² image, either over the whole grid (``FixedPointSequential._whole``,
the path before tiling) or as the codec does now (tiles of ``fixed_point.TILE``), and
reports the call's peak RSS above the RSS before it (``/proc/self/clear_refs``), the CPU
seconds and whether the two results have the same bits. Linux only. One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import sys

from _proc import run_child

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from compressai_rdc.layers import fixed_point as fpm
from compressai_rdc.zoo import create_model
name, side, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
net = create_model(name).eval()
h_s = net.h_s if hasattr(net, "h_s") else net.primary.h_s
fp = fpm.fixed_point(h_s)
n = side // 64
z = torch.randint(-8, 9, (1, h_s[0].weight.shape[0], n, n), generator=torch.Generator().manual_seed(1)).double()
fp._whole(z[..., :2, :2])
from _proc import reset_peak, rss
before = reset_peak()
t0 = time.process_time()
out = fp._whole(z) if mode == "whole" else fp(z)
cpu = time.process_time() - t0
peak = rss("VmHWM") - before
torch.save(out, sys.argv[4])
print(json.dumps({"model": name, "size": side, "mode": mode, "tile": None if mode == "whole" else fpm.TILE,
                  "call_peak_mb": round(peak / 2**20), "cpu_s": round(cpu, 2)}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=["hevrc", "rdc-versatile"])
    p.add_argument("--size", type=int, default=4096)
    args = p.parse_args(argv)
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            outs = []
            for mode in ("whole", "tiled"):
                path = f"{tmp}/{name}.{mode}.pt"
                r = run_child(CHILD, name, str(args.size), mode, path)
                print(r.stdout.strip(), flush=True)
                outs.append(torch.load(path))
            print(json.dumps({"model": name, "size": args.size, "same_bits": bool(torch.equal(*outs))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
