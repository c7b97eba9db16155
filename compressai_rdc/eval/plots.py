"""Plots of an evaluation run (matplotlib), each written as PNG and SVG.

Per dataset:

``<dataset>-rd``    rate–distortion: PSNR / MS-SSIM / FSIM against bpp
``<dataset>-rc``    rate–cognition: task metrics (top-1, top-5, ...) against bpp,
                    with the uncompressed input as a dashed ceiling
``<dataset>-beta``  β sweep at fixed rate: task metric and PSNR against β
                    (only for codecs swept over ``beta``)
``<dataset>-dc``    distortion–cognition trade-off: task metric against PSNR
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from compressai_rdc.eval.bd import curves
from compressai_rdc.eval.runner import EvalResults, PointResult

LABELS = {
    "bpp": "bits per pixel",
    "psnr-rgb": "PSNR-RGB (dB)",
    "ms-ssim-rgb": "MS-SSIM (RGB)",
    "fsim": "FSIMc",
    "top-1": "top-1 accuracy (%)",
    "top-5": "top-5 accuracy (%)",
    "beta": "β (0 = distortion-oriented, 1 = cognition-oriented)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> List[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{stem}.{ext}"
        fig.savefig(p, dpi=150, bbox_inches="tight")
        paths.append(p)
    _plt().close(fig)
    return paths


def _axes(n: int, title: str):
    plt = _plt()
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _plot_curves(ax, cs: Dict[str, List[PointResult]], x: str, y: str) -> None:
    for label, pts in cs.items():
        xs, ys = [p.values[x] for p in pts], [p.values[y] for p in pts]
        ax.plot(xs, ys, marker="o", ms=4, lw=1.5, label=label)
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.grid(True, alpha=0.3)


def plot_dataset(results: EvalResults, dataset: str, out_dir: Path, rate_keys: Dict[str, Sequence[str]], task_metrics: Sequence[str]) -> List[Path]:
    """Write every plot of ``dataset`` into ``out_dir``; returns the files."""
    info = results.datasets[dataset]
    cs = curves(results, dataset, rate_keys)
    refs = [p for p in results.select(dataset=dataset) if p.kind == "reference"]
    subtitle = f"{dataset} ({info['n_images']} images, protocol {info['protocol']})"
    written: List[Path] = []
    if not cs:
        return written

    dist_metrics = [m for m in results.metrics]
    if dist_metrics:
        fig, axes = _axes(len(dist_metrics), f"Rate–distortion · {subtitle}")
        for ax, m in zip(axes, dist_metrics):
            _plot_curves(ax, cs, "bpp", m)
        axes[0].legend(fontsize=8)
        written += _save(fig, out_dir, f"{dataset}-rd")

    if task_metrics:
        fig, axes = _axes(len(task_metrics), f"Rate–cognition · {subtitle}")
        for ax, m in zip(axes, task_metrics):
            _plot_curves(ax, cs, "bpp", m)
            for r in refs:
                ax.axhline(r.values[m], ls="--", color="k", lw=1, label=f"{r.codec} ({r.values[m]:.1f})")
        axes[0].legend(fontsize=8)
        written += _save(fig, out_dir, f"{dataset}-rc")

    beta_points = [p for p in results.select(dataset=dataset) if "beta" in p.op.dict]
    ys = ([task_metrics[0]] if task_metrics else []) + (["psnr-rgb"] if "psnr-rgb" in dist_metrics else [])
    if beta_points and ys:
        groups: Dict[str, List[PointResult]] = {}
        for p in beta_points:
            fixed = [(k, v) for k, v in p.op.params if k != "beta"]
            groups.setdefault(p.codec + (f"[{','.join(f'{k}={v}' for k, v in fixed)}]" if fixed else ""), []).append(p)
        fig, axes = _axes(len(ys), f"β sweep at fixed rate · {subtitle}")
        for ax, m in zip(axes, ys):
            for label, pts in groups.items():
                pts = sorted(pts, key=lambda p: p.op.get("beta"))
                ax.plot([p.op.get("beta") for p in pts], [p.values[m] for p in pts], marker="o", ms=4, label=f"{label} ({_mean_bpp(pts):.3f} bpp)")
            ax.set_xlabel(LABELS["beta"])
            ax.set_ylabel(LABELS.get(m, m))
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8)
        written += _save(fig, out_dir, f"{dataset}-beta")

    if task_metrics and "psnr-rgb" in dist_metrics:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(5.6, 4.4))
        fig.suptitle(f"Distortion–cognition trade-off · {subtitle}")
        groups = {}
        for p in results.select(dataset=dataset):
            if p.kind == "reference":
                continue
            # connect points that differ only in β (the RDC trade-off); otherwise along the rate curve
            keys = ("beta",) if "beta" in p.op.dict else tuple(rate_keys.get(p.codec, ()))
            fixed = [(k, v) for k, v in p.op.params if k not in keys]
            groups.setdefault(p.codec + (f"[{','.join(f'{k}={v}' for k, v in fixed)}]" if fixed else ""), []).append(p)
        for label, pts in groups.items():
            pts = sorted(pts, key=lambda p: p.values["psnr-rgb"])
            ax.plot([p.values["psnr-rgb"] for p in pts], [p.values[task_metrics[0]] for p in pts], marker="o", ms=4, label=label)
        for r in refs:
            ax.axhline(r.values[task_metrics[0]], ls="--", color="k", lw=1, label=r.codec)
        ax.set_xlabel(LABELS["psnr-rgb"])
        ax.set_ylabel(LABELS.get(task_metrics[0], task_metrics[0]))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, f"{dataset}-dc")
    return written


def _mean_bpp(pts: Sequence[PointResult]) -> float:
    return sum(p.values["bpp"] for p in pts) / len(pts)


__all__ = ["LABELS", "plot_dataset"]
