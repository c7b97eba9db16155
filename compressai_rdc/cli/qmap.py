"""``compressai-rdc qmap``: importance map, quality map and bit allocation of one image, side by side.

::

    compressai-rdc qmap photo.png --strategy blended --out maps.png
    compressai-rdc qmap photo.png --strategy blended --model hevrc --weights w.safetensors --target-bpp 0.2 --out maps.png

Panels: the image; the importance ``v`` of ``--strategy``; the quality map
``q = Γ(v)`` at ``--level`` (or at the level that meets ``--target-bpp``);
and, when a model is given, its bit allocation: the estimated bits of ``ŷ``
per latent position (−log₂ likelihood summed over channels), shown at image
size (HEVRC Fig. 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Tuple

from compressai_rdc.cli.encode import add_model_arguments, check_output, load_input, load_model
from compressai_rdc.errors import InvalidArgumentError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="input image")
    parser.add_argument("--strategy", default="blended", help="registered quality-map strategy")
    parser.add_argument("--out", type=Path, required=True, help="output figure (.png)")
    parser.add_argument("--model", default=None, help="quality-map model for the bit-allocation panel (e.g. hevrc)")
    add_model_arguments(parser, with_name=False)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--level", type=float, default=1.0, help="Γ level t in [0, 2] (1: q = v)")
    group.add_argument("--target-bpp", type=float, default=None, help="choose the level that meets this rate (needs --model)")
    parser.add_argument("--block", type=int, default=None, help="ICM block size (default: the model's stride, else 16)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


#: width of one panel, inches; the figure is drawn at FIGURE_DPI
PANEL_INCHES = 4.2
FIGURE_DPI = 110
#: panel height / width is kept in [1/MAX_ASPECT, MAX_ASPECT]: a 7x5000 image
#: would otherwise ask for a figure 714 panels tall (457 Mpixels)
MAX_ASPECT = 4.0


def panel_aspect(height: int, width: int) -> Tuple[float, bool]:
    """``(panel height / width, squeezed)``: the image's ratio clamped to
    [1/MAX_ASPECT, MAX_ASPECT]; ``squeezed`` when clamping changed it (the
    panels are then drawn stretched, and the printed line says so). The figure
    is at most ``4 · 4.2 × (4.2 · 4 + 0.6)`` inches at 110 dpi, 1848 × 1914 pixels."""
    ratio = height / width
    clamped = min(max(ratio, 1.0 / MAX_ASPECT), MAX_ASPECT)
    return clamped, clamped != ratio


if TYPE_CHECKING:  # the CLI imports PyTorch only when a command runs (fast --help)
    import torch


def bit_allocation(model: "torch.nn.Module", x: "torch.Tensor", qmap: "torch.Tensor") -> "torch.Tensor":
    """Estimated bits of ``ŷ`` per latent position, ``(1, 1, H, W)`` at image size (nearest)."""
    import torch

    from compressai_rdc.codec import pad_multiple
    from compressai_rdc.contract import hooks
    from compressai_rdc.utils.padding import pad_to_multiple

    xp, pad = pad_to_multiple(x, pad_multiple(model))
    qp = torch.nn.functional.pad(qmap, pad, mode="replicate")
    with torch.no_grad():
        lik = hooks(model).rate_likelihoods(xp, qmap=qp)
    bits = -torch.log2(lik["y"].clamp_min(1e-9)).sum(dim=1, keepdim=True)
    up = torch.nn.functional.interpolate(bits, size=xp.shape[-2:], mode="nearest")
    return up[..., : x.shape[-2], : x.shape[-1]]


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compressai_rdc.qmap import create_strategy_for, gamma_level
    from compressai_rdc.ratecontrol import encode_to_target

    check_output(args.out, args.overwrite, inputs=(args.image,))
    if args.target_bpp is not None and args.model is None:
        raise InvalidArgumentError("--target-bpp needs --model (the rate belongs to a codec)")
    model = load_model(args.model, args.weights, args.pretrained, args.metric, args.device) if args.model else None
    strategy = create_strategy_for(model, args.strategy, block=args.block)
    x = load_input(args.image, args.device)
    v = strategy(x)
    level, title_q = args.level, f"quality map q = Γ(v), t = {args.level:g}"
    bpp_note = ""
    if args.target_bpp is not None:
        data, report = encode_to_target(model, x, args.target_bpp, control="level", importance=v)
        level = report.value
        title_q = f"quality map at {args.target_bpp:g} bpp (t = {level:.3f})"
        bpp_note = f", coded {report.actual_bpp:.3f} bpp"
    q = gamma_level(v, level)

    panels = [("image", x[0].permute(1, 2, 0).cpu().numpy(), None), (f"importance v ({args.strategy})", v[0, 0].cpu().numpy(), "viridis"), (title_q, q[0, 0].cpu().numpy(), "viridis")]
    if model is not None:
        bits = bit_allocation(model, x, q)
        panels.append((f"bit allocation (bits/latent){bpp_note}", bits[0, 0].cpu().numpy(), "magma"))
    ratio, squeezed = panel_aspect(x.shape[-2], x.shape[-1])
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_INCHES * len(panels), PANEL_INCHES * ratio + 0.6))
    for ax, (title, img, cmap) in zip(axes, panels):
        aspect = "auto" if squeezed else "equal"
        if cmap is None:
            ax.imshow(img, aspect=aspect)
        else:
            im = ax.imshow(img, cmap=cmap, aspect=aspect, vmin=0 if cmap == "viridis" else None, vmax=1 if cmap == "viridis" else None)
            fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=FIGURE_DPI)
    plt.close(fig)
    note = f"; aspect {x.shape[-2]}:{x.shape[-1]} drawn at {ratio:g}:1" if squeezed else ""
    print(f"{args.out}: {len(panels)} panels ({args.strategy}, t = {level:.3f}{bpp_note}{note})")
    return 0
