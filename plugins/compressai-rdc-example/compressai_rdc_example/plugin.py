"""The plugin module named by the ``compressai_rdc`` entry point."""

from __future__ import annotations

import torch
from compressai.models import MeanScaleHyperprior

from compressai_rdc import hookimpl
from compressai_rdc.qmap.strategies import QmapStrategy


class TinyMeanScaleHyperprior(MeanScaleHyperprior):
    """CompressAI's mean-scale hyperprior (Minnen et al., NeurIPS 2018) at N=32, M=48:
    small enough for smoke tests and demos of the plugin system."""

    def __init__(self, N: int = 32, M: int = 48, **kwargs):
        super().__init__(N=N, M=M, **kwargs)


class CenterGaussian(QmapStrategy):
    """Importance map ``exp(-d² / (2σ²))`` of the normalised distance ``d`` to the centre.

    A :class:`~compressai_rdc.qmap.strategies.QmapStrategy`: it implements
    :meth:`importance`, and calling the strategy lifts the corners' zeros to the
    smallest non-zero importance (HEVRC §4.3), so every region gets bits at high levels.

    Args:
        sigma: width of the Gaussian relative to the image half-diagonal.
    """

    def __init__(self, sigma: float = 0.5):
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = sigma

    def importance(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device).view(h, 1)
        xs = torch.linspace(-1, 1, w, device=x.device).view(1, w)
        d2 = (ys**2 + xs**2) / 2.0
        m = torch.exp(-d2 / (2 * self.sigma**2))
        m = (m - m.min()) / (m.max() - m.min())
        return m.expand(b, 1, h, w).clone()


@hookimpl
def register_models(register):
    register(
        "example-tiny-hyperprior",
        TinyMeanScaleHyperprior,
        qualities=(1,),
        description="example plugin: tiny mean-scale hyperprior (N=32, M=48)",
        paper="Minnen, Ballé, Toderici, NeurIPS 2018",
    )


@hookimpl
def register_qmap_strategies(register):
    register("center-gaussian", CenterGaussian, description="example plugin: importance peaks at the image centre")
