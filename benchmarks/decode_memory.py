"""Peak decoder memory per padded pixel of each registered architecture.

::

    python benchmarks/decode_memory.py --size 768            # every registered model, random weights

For each model (registered default widths, random weights: memory does not
depend on the values) a random ``size``² image is encoded; a fresh process
then builds the model, decodes a 64² stream to warm up, resets its peak RSS
(``/proc/self/clear_refs``), decodes the big stream and reports
``(peak RSS − RSS before) / padded pixels``. That is the figure
:data:`compressai_rdc.limits.DEFAULT_BYTES_PER_PIXEL` must stay above
(Linux only).
"""

from __future__ import annotations

import argparse
import json
import sys

from _proc import run_child

CHILD = r"""
import sys, torch
torch.manual_seed(0)
torch.set_num_threads(1)
from compressai_rdc import codec
from compressai_rdc.limits import DecodeLimits
from compressai_rdc.registry import MODELS
name, size = sys.argv[1], int(sys.argv[2])
spec = MODELS.get(name)
net = spec.cls(**dict(spec.kwargs)).eval()
net.update(force=True)
small = codec.encode(net, torch.rand(1, 3, 64, 64))
big = codec.encode(net, torch.rand(1, 3, size, size))
codec.decode(small, net)
from _proc import reset_peak, rss
before = reset_peak()
codec.decode(big, net, limits=DecodeLimits(max_pixels=1 << 26, max_memory=1 << 40, tile=None))  # untiled: the per-pixel figure
h = codec.read_header(big)
hp, wp = h.padded_size
print(__import__("json").dumps({"model": name, "size": size, "padded_pixels": hp * wp,
      "peak_bytes": rss("VmHWM") - before, "bytes_per_pixel": round((rss("VmHWM") - before) / (hp * wp), 1)}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--model", action="append")
    args = p.parse_args(argv)
    from compressai_rdc.registry import MODELS

    rows = []
    for name in args.model or MODELS.names():
        out = run_child(CHILD, name, str(args.size))
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
