"""Cognition of a downscaled picture: code the crop smaller, upsample the decode (docs/results.md).

    python benchmarks/downscale_cognition.py --weights W.safetensors --scales 1,0.75,0.625 --rates 1,2,3,4,5

For each ``--scales`` factor s and rate level, codes the cognition protocol's 256×256
imagenet-dev crops resized to round(256·s)² (bicubic, antialiased, rounded to 8 bits)
at β = 1 (``layers=0``, :func:`compressai_rdc.codec.encode`), decodes them
(:func:`~compressai_rdc.codec.decode`, ``beta=1``), resizes the decode back to
256×256 (bicubic) and classifies it with the evaluation's classification task
(``tf_efficientnet_lite0``: centre crop 224). The rate is the whole container per
256×256 image. One JSON line per (scale, rate): ``bpp`` and ``top-1`` / ``top-5``.
Scale 1 is the evaluation protocol itself (``compressai-rdc eval`` measures the same numbers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from compressai_rdc import codec
from compressai_rdc.data import find_data_dir
from compressai_rdc.eval.protocol import CROP_SIZE, load_eval_data
from compressai_rdc.zoo import load_model


def _resize(x: torch.Tensor, side: int, antialias: bool) -> torch.Tensor:
    y = F.interpolate(x, size=(side, side), mode="bicubic", antialias=antialias, align_corners=False)
    return (y.clamp(0, 1) * 255).round() / 255


def downscaled(net: torch.nn.Module, task, images: Sequence[torch.Tensor], targets: Sequence, scale: float,
               rate: float) -> Dict[str, float]:
    """Mean bpp (on the full-size pixels) and the task's metrics for one scale and rate."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale={scale!r} is invalid: give a factor in (0, 1]")
    nbytes, pixels, records = 0, 0, []
    for img, target in zip(images, targets):
        x = img.float()[None] / 255
        side = x.shape[-1]
        small = x if scale == 1.0 else _resize(x, max(1, round(side * scale)), antialias=True)
        data = codec.encode(net, small, rate=rate, layers=0)
        y = codec.decode(data, net, beta=1.0).clamp(0, 1)
        y = ((y * 255).round() / 255) if scale == 1.0 else _resize(y, side, antialias=False)
        nbytes += len(data)
        pixels += x.shape[-2] * x.shape[-1]
        records += task.predict([y[0]], [target])
    return {"bpp": round(8 * nbytes / pixels, 4), **{k: round(v, 2) for k, v in task.summarize(records).items()}}


def main(argv: List[str] | None = None) -> None:
    from compressai_rdc.tasks.classification import ClassificationTask

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="rdc-versatile weights file (default: the shipped weights)")
    ap.add_argument("--dataset", default=None, help="labelled folder (default: imagenet-dev of the data folder)")
    ap.add_argument("--scales", default="1,0.75", help="downscale factors in (0, 1], comma-separated")
    ap.add_argument("--rates", default="1,2,3", help="gain levels, comma-separated")
    ap.add_argument("--limit", type=int, default=None, help="first N images (default: all)")
    args = ap.parse_args(argv)
    root = Path(args.dataset) if args.dataset else find_data_dir("imagenet-dev")
    if root is None:
        raise SystemExit("imagenet-dev/ not found: pass --dataset DIR or set $COMPRESSAI_RDC_DATA")
    task = ClassificationTask()
    data = load_eval_data(root.name, str(root), task=task, limit=args.limit)  # the protocol's 256×256 8-bit crops
    assert all(tuple(im.shape[-2:]) == (CROP_SIZE, CROP_SIZE) for im in data.images)
    net = load_model("rdc-versatile", weights=args.weights, pretrained=args.weights is None)
    for scale in (float(s) for s in args.scales.split(",")):
        for rate in (float(r) for r in args.rates.split(",")):
            row = downscaled(net, task, data.images, data.targets, scale, rate)
            print(json.dumps({"scale": scale, "rate": rate, **row}), flush=True)


if __name__ == "__main__":
    main()
