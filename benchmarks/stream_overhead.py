"""Where a stream's bytes go: container header against entropy-coded payload (docs/results.md).

    python benchmarks/stream_overhead.py --model rdc-versatile --rates 0,1,2,3,5 --layers 0 --beta 1

Codes the cognition protocol's 256×256 crops of ``--limit`` imagenet-dev images
(``--dataset``: any folder, e.g. Kodak at full size with ``--protocol full``) one
image per container with :func:`compressai_rdc.codec.encode`, keeps the bytes
that the decode at ``--layers`` / ``--beta`` reads (:func:`~compressai_rdc.codec.bytes_read`,
what ``compressai-rdc eval`` counts) and splits them into the container header
(``StreamHeader.header_size``) and each substream group's payload. One JSON line
per rate level: mean bytes, mean bpp of the whole stream and of the header, the
header's share, and the mean payload bytes per group (``y``, ``z``, … in the
model's group order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

from compressai_rdc import codec
from compressai_rdc.data import find_data_dir
from compressai_rdc.eval.protocol import PROTOCOLS, load_eval_data
from compressai_rdc.zoo import load_model


def overhead(net: torch.nn.Module, images: Sequence[torch.Tensor], rate: float, layers: int, beta: float) -> Dict[str, Any]:
    """Mean bytes of one-image containers of ``images`` read by the decode at
    ``layers`` / ``beta``, split into header and per-group payload."""
    total = header = pixels = 0
    groups: List[int] = []
    for x in images:
        data = codec.encode(net, x[None], rate=rate, layers=layers)
        read = codec.bytes_read(data, net, layers=layers, beta=beta)
        head, strings = codec.unpack(read)
        sizes = [sum(len(s) for s in group) for group in strings]
        groups = [a + b for a, b in zip(groups, sizes)] if groups else sizes
        total += len(read)
        header += head.header_size
        pixels += x.shape[-2] * x.shape[-1]
    n = len(images)
    return {
        "images": n, "bytes": round(total / n, 1), "bpp": round(8 * total / pixels, 4),
        "header_bytes": round(header / n, 1), "header_bpp": round(8 * header / pixels, 4),
        "header_share": round(header / total, 3), "group_bytes": [round(g / n, 1) for g in groups],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rdc-versatile", help="registered codec")
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped weights)")
    ap.add_argument("--dataset", default=None, help="image folder (default: imagenet-dev of the data folder)")
    ap.add_argument("--protocol", default="crop256", choices=sorted(PROTOCOLS), help="evaluation protocol of the images")
    ap.add_argument("--rates", default="0,1,2,3,5", help="gain levels, comma-separated")
    ap.add_argument("--layers", type=int, default=0, help="residual layers the decode reads")
    ap.add_argument("--beta", type=float, default=1.0, help="decode-time β (1: the primary substreams only)")
    ap.add_argument("--limit", type=int, default=50, help="images (every n-th of the folder, sorted)")
    args = ap.parse_args()
    root = Path(args.dataset) if args.dataset else find_data_dir("imagenet-dev")
    if root is None:
        raise SystemExit("imagenet-dev/ not found: pass --dataset DIR or set $COMPRESSAI_RDC_DATA")
    data = load_eval_data(root.name, str(root), protocol=args.protocol)  # the evaluation's 8-bit protocol images
    images = [im.float() / 255 for im in data.images[:: max(1, len(data.images) // args.limit)][: args.limit]]
    net = load_model(args.model, weights=args.weights, pretrained=args.weights is None)
    for rate in (float(r) for r in args.rates.split(",")):
        print(json.dumps({"rate": rate, **overhead(net, images, rate, args.layers, args.beta)}), flush=True)


if __name__ == "__main__":
    main()
