"""Scale of each term of a training recipe's loss on a codec's reconstructions (loss weights, docs/results.md).

    python benchmarks/loss_scales.py --config rdc-versatile-stage1-kd \\
        --weights benchmarks/weights/rdc-versatile-stage0-cycle2-7be23124.safetensors --rates 0,2,4,7

Builds the recipe's loss terms (``loss:`` of the config, weights included), codes
``--limit`` 256×256 centre crops of *training* images with the model's forward
pass at each gain level, and reports for every term its weighted value
``w·ℓ`` and the norm of its gradient with respect to the reconstruction,
``‖∂(w·ℓ)/∂x̂‖`` (batch mean, before λ(r), which multiplies every
``lambda_scaled`` term alike). A MoCo term's queue is filled first with the keys
of ``--queue-images`` further training crops, as it is during training. Terms
that do not read a reconstruction (``rate``) are left out.
"""

from __future__ import annotations

import argparse
import json

import torch

from compressai_rdc import create_model
from compressai_rdc.data import find_data_dir, list_images, load_image
from compressai_rdc.losses import build_loss
from compressai_rdc.training.recipes import load_config


def centre_crops(paths, size: int) -> torch.Tensor:
    out = []
    for path in paths:
        x = load_image(path)
        h, w = x.shape[-2:]
        if min(h, w) < size:
            continue
        out.append(x[:, (h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2])
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training config whose loss terms are measured")
    ap.add_argument("--weights", required=True, help="codec weights (.safetensors) that make the reconstructions")
    ap.add_argument("--rates", default="0,2,4,7", help="gain levels, comma-separated")
    ap.add_argument("--limit", type=int, default=8, help="training crops per batch")
    ap.add_argument("--queue-images", type=int, default=64, help="training crops whose keys fill a MoCo queue")
    ap.add_argument("--x-hat-key", default="x_hat_primary", help="model output holding the reconstruction")
    args = ap.parse_args()
    train = find_data_dir("train")
    if train is None:
        raise SystemExit("train/ not found (set $COMPRESSAI_RDC_DATA)")
    config = load_config(args.config)
    loss = build_loss(config["loss"]).eval()
    paths = list_images(train)
    crops = centre_crops(paths[: args.limit + args.queue_images + 16], 256)
    x, rest = crops[: args.limit], crops[args.limit : args.limit + args.queue_images]
    for term in loss.terms.values():
        if hasattr(term, "enqueue"):
            with torch.no_grad():
                for i in range(0, len(rest), 16):
                    term.enqueue(term.embed(rest[i : i + 16]))
    net = create_model(config["model"]["name"], weights=args.weights).eval()
    torch.manual_seed(0)
    for rate in (float(r) for r in args.rates.split(",")):
        with torch.no_grad():
            x_hat = net(x, rate=torch.full((len(x),), rate))[args.x_hat_key].clamp(0, 1)
        row = {"rate": rate}
        for name, term in loss.terms.items():
            if getattr(term, "x_hat_key", None) is None:
                continue
            v = x_hat.clone().requires_grad_(True)
            out = term({term.x_hat_key: v}, x)
            weighted = loss.weights[name] * out["loss"]
            (grad,) = torch.autograd.grad(weighted, v)
            row[name] = {"value": round(float(weighted), 4), "grad": float(f"{float(grad.norm()):.3g}")}
            row[name].update({k: float(f"{float(t):.4g}") for k, t in out.items() if k not in ("loss", "per_sample") and t.dim() == 0})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
