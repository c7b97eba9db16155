"""``compressai-rdc demo``: the RDC trade-offs on one image, in seconds on a CPU.

Encodes the bundled sample image (or ``--image``) once per rate with the shipped
``rdc-versatile`` weights, then decodes every stream at several β without
re-encoding, and prints bpp (from the container bytes actually needed: β = 1
needs only the primary substreams), PSNR and whether the default classifier
(``tf_efficientnet_lite0``, offline) still sees what it sees on the original.
Writes the reconstructions and one plot to ``--out``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import List

import torch

from compressai_rdc.errors import InvalidArgumentError


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, default=None, help="input image (default: the bundled sample)")
    parser.add_argument("--model", default="rdc-versatile", help="registered model with rate/beta controls")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped ones)")
    parser.add_argument("--rates", type=_floats, default=[0.0, 2.0, 4.0, 7.0], help="primary rates (comma-separated)")
    parser.add_argument("--betas", type=_floats, default=[1.0, 0.5, 0.0], help="decode-time betas (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for reconstructions and the plot")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.backbones import create_backbone, eval_transform
    from compressai_rdc.data import cognition_crop, load_image, sample_image_path, save_image
    from compressai_rdc.zoo import create_model

    for b in args.betas:
        if not 0.0 <= b <= 1.0:
            raise InvalidArgumentError(f"--betas value {b} is invalid: beta must be in [0, 1]")
    image = args.image or sample_image_path()
    x = load_image(image).unsqueeze(0).to(args.device)
    net = create_model(args.model, pretrained=args.weights is None, weights=args.weights).to(args.device).eval()

    names = [f"recon_rate{r:g}_beta{b:g}.png" for r in args.rates for b in args.betas] + ["demo.png"]
    existing = [n for n in names if (args.out / n).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{args.out} already holds {existing[0]} (and {len(existing) - 1} more); pass --overwrite or another --out")
    args.out.mkdir(parents=True, exist_ok=True)

    clf = create_backbone().to(args.device)
    tf = eval_transform(clf)

    @torch.no_grad()
    def classify(img: torch.Tensor):
        p = clf(tf(cognition_crop(img.cpu()).to(args.device))).softmax(-1)[0]
        return int(p.argmax()), p

    ref_label, _ = classify(x)
    px = x.shape[-2] * x.shape[-1]
    rows = []
    print(f"image {image} ({x.shape[-1]}x{x.shape[-2]}), model {args.model}, classifier top-1 on the original: class {ref_label}")
    print(f"{'rate':>5} {'beta':>5} {'bytes':>7} {'bpp':>7} {'PSNR':>7} {'top-1':>6} {'agrees':>6} {'p(ref)':>7}")
    for rate in args.rates:
        data = codec.encode(net, x, rate=rate)
        primary_only = codec.truncate(data, layers=0)
        for beta in args.betas:
            used = primary_only if beta == 1.0 else data
            x_hat = codec.decode(used, net, beta=beta).clamp(0, 1)
            mse = float(torch.mean((x_hat - x) ** 2))
            psnr = 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")
            label, p = classify(x_hat)
            bpp = 8 * len(used) / px
            rows.append((rate, beta, len(used), bpp, psnr, label, label == ref_label, float(p[ref_label])))
            save_image(x_hat, args.out / f"recon_rate{rate:g}_beta{beta:g}.png")
            print(f"{rate:5.2f} {beta:5.2f} {len(used):7d} {bpp:7.3f} {psnr:7.2f} {label:6d} {str(label == ref_label):>6} {float(p[ref_label]):7.3f}")
    _plot(rows, args.betas, args.out / "demo.png")
    print(f"wrote {len(rows)} reconstructions and demo.png to {args.out}")
    return 0


def _plot(rows, betas, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for beta in betas:
        pts = sorted((r[3], r[4], r[7]) for r in rows if r[1] == beta)
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"β = {beta:g}")
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=f"β = {beta:g}")
    ax1.set(xlabel="bpp (container bytes)", ylabel="PSNR-RGB (dB)", title="distortion")
    ax2.set(xlabel="bpp (container bytes)", ylabel="p(original top-1 class)", title="cognition", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
