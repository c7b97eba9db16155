"""``compressai-rdc demo``: the RDC trade-offs on one image, in seconds on a CPU.

Encodes the bundled sample image (or ``--image``) once per rate with the shipped
``rdc-versatile`` weights, coding every residual layer, then decodes every
stream at several β without re-encoding, and prints bpp (from the container
bytes that decode reads: β = 1 reads only the primary substreams), PSNR and the
class the default classifier (``tf_efficientnet_lite0``, offline) sees, by
name. The row of the weights' default β is marked ``*``.

Writes the reconstructions and ``demo.png`` (the original beside the β = 1 and
β = 0 reconstructions at the middle rate, and the rate–distortion /
rate–cognition curves) to ``--out`` (default ``demo-out/``, git-ignored).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import List

from compressai_rdc.errors import InvalidArgumentError

#: default output folder (listed in .gitignore)
DEFAULT_OUT = Path("demo-out")


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def class_name(index: int) -> str:
    """ImageNet-1k description of a class index (timm's offline table), e.g. 88 → ``macaw``."""
    from timm.data import ImageNetInfo

    return ImageNetInfo().index_to_description(index).split(",")[0]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, default=None, help="input image (default: the bundled sample)")
    parser.add_argument("--model", default="rdc-versatile", help="registered model with rate/beta controls")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped ones)")
    parser.add_argument("--rates", type=_floats, default=[0.0, 2.0, 4.0, 7.0], help="primary rates (comma-separated)")
    parser.add_argument("--betas", type=_floats, default=[1.0, 0.5, 0.0], help="decode-time betas (comma-separated)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for reconstructions and demo.png (default: %(default)s, git-ignored)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import torch

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
    net.update()
    default_beta = getattr(net, "default_beta", None)

    names = [f"recon_rate{r:g}_beta{b:g}.png" for r in args.rates for b in args.betas] + ["demo.png"]
    existing = [n for n in names if (args.out / n).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{args.out} already holds {existing[0]} (and {len(existing) - 1} more); pass --overwrite or another --out")
    args.out.mkdir(parents=True, exist_ok=True)

    clf = create_backbone().to(args.device)
    tf = eval_transform(clf)

    @torch.no_grad()
    def classify(img: "torch.Tensor"):
        p = clf(tf(cognition_crop(img.cpu()).to(args.device))).softmax(-1)[0]
        return int(p.argmax()), p

    ref_label, _ = classify(x)
    px = x.shape[-2] * x.shape[-1]
    rows, recons = [], {}
    layers = getattr(net, "residual_layers", None)
    print(f"image {image} ({x.shape[-1]}x{x.shape[-2]}), model {args.model}, "
          f"classifier top-1 on the original: {class_name(ref_label)} (class {ref_label})")
    if default_beta is not None:
        print(f"dflt * = the weights' default β ({default_beta:g}); bpp counts the bytes each decode reads")
    print(f"{'rate':>5} {'beta':>5} {'bytes':>7} {'bpp':>7} {'PSNR':>7} {'agrees':>6} {'p(ref)':>7} {'dflt':>4}  top-1")
    for rate in args.rates:
        controls = {"rate": rate} if layers is None else {"rate": rate, "layers": int(layers)}
        data = codec.encode(net, x, **controls)
        for beta in args.betas:
            used = codec.bytes_read(data, net, beta=beta)
            x_hat = codec.decode(used, net, beta=beta).clamp(0, 1)
            mse = float(torch.mean((x_hat - x) ** 2))
            psnr = 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")
            label, p = classify(x_hat)
            bpp = 8 * len(used) / px
            rows.append((rate, beta, len(used), bpp, psnr, label, label == ref_label, float(p[ref_label])))
            recons[(rate, beta)] = (x_hat, bpp, psnr, label)
            save_image(x_hat, args.out / f"recon_rate{rate:g}_beta{beta:g}.png")
            mark = "*" if default_beta is not None and beta == default_beta else "-"
            print(f"{rate:5.2f} {beta:5.2f} {len(used):7d} {bpp:7.3f} {psnr:7.2f} {str(label == ref_label):>6} "
                  f"{float(p[ref_label]):7.3f} {mark:>4}  {class_name(label)}")
    mid = args.rates[len(args.rates) // 2]
    shown = [b for b in (1.0, 0.0) if b in args.betas] or args.betas[:2]
    _plot(x, ref_label, [(b, *recons[(mid, b)]) for b in shown], mid, rows, args.betas, args.out / "demo.png")
    print(f"wrote {len(rows)} reconstructions and demo.png to {args.out}")
    return 0


def _plot(x, ref_label, panels, rate, rows, betas, path: Path) -> None:
    """Top: the original beside the reconstructions in ``panels`` (β, x̂, bpp, PSNR, label)
    at one rate; bottom: PSNR and p(original class) against bpp for every β."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 1 + len(panels)
    fig = plt.figure(figsize=(3.2 * max(n, 2), 6.4))
    grid = fig.add_gridspec(2, max(n, 2) * 2)
    images = [(x, f"original\n{class_name(ref_label)}")] + [
        (xh, f"β = {b:g}, rate {rate:g}: {bpp:.3f} bpp, {psnr:.1f} dB\n{class_name(label)}") for b, xh, bpp, psnr, label in panels
    ]
    for i, (img, title) in enumerate(images):
        ax = fig.add_subplot(grid[0, 2 * i : 2 * i + 2])
        ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    half = max(n, 2)
    ax1, ax2 = fig.add_subplot(grid[1, :half]), fig.add_subplot(grid[1, half:])
    for beta in betas:
        pts = sorted((r[3], r[4], r[7]) for r in rows if r[1] == beta)
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"β = {beta:g}")
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=f"β = {beta:g}")
    ax1.set(xlabel="bpp (bytes the decode reads)", ylabel="PSNR-RGB (dB)", title="distortion")
    ax2.set(xlabel="bpp (bytes the decode reads)", ylabel="p(original top-1 class)", title="cognition", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
