"""The mean-scale hyperprior transforms (Minnen et al., NeurIPS 2018) shared by the
primary and residual branches. Each returns the same ``nn.Sequential`` layout as
CompressAI's ``MeanScaleHyperprior``, so state-dict keys match it."""

from __future__ import annotations

from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn


def analysis(in_channels: int, N: int, M: int) -> nn.Sequential:
    """``g_a``: (B, in, H, W) → (B, M, H/16, W/16)."""
    return nn.Sequential(conv(in_channels, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(N: int, M: int, out_channels: int = 3) -> nn.Sequential:
    """``g_s``: (B, M, h, w) → (B, out, 16h, 16w)."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True), deconv(N, out_channels),
    )


def hyper_analysis(N: int, M: int) -> nn.Sequential:
    """``h_a``: (B, M, h, w) → (B, N, h/4, w/4)."""
    return nn.Sequential(
        conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
        conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
    )


def hyper_synthesis(N: int, M: int) -> nn.Sequential:
    """``h_s``: (B, N, h/4, w/4) → (B, 2M, h, w) (scales and means)."""
    return nn.Sequential(
        deconv(N, M), nn.LeakyReLU(inplace=True),
        deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
        conv(M * 3 // 2, M * 2, stride=1, kernel_size=3),
    )
