"""Spatial feature transform (SFT) layers.

SFT (Wang et al., "Recovering Realistic Texture in Image Super-resolution by
Deep Spatial Feature Transform", CVPR 2018) turns a spatial condition into a
per-position affine modulation of a feature map. Song et al. (QMAP2021,
"Variable-Rate Deep Image Compression through Spatially-Adaptive Feature
Transform", ICCV 2021) and HEVRC (Electronics 2023, §4.1 and Fig. 4) condition the
analysis transforms of an image codec on a quality map this way::

    condition a ──conv─ReLU──┬──conv──> γ
      (B, C_a, h, w)         └──conv──> β
    features  b ─────────────────────────> b · (1 + γ) + β
      (B, C, H, W)

The condition is resized to the feature's spatial size by area averaging, so a
full-resolution map can condition any stage of a strided encoder. The ``1 + γ``
form (QMAP2021) starts training at the identity when γ ≈ 0.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SFT", "SFTResBlock"]


def _fit(cond: Tensor, size: torch.Size) -> Tensor:
    """Resize ``cond`` to ``size`` (H, W): area average when shrinking, nearest otherwise."""
    if cond.shape[-2:] == size:
        return cond
    if cond.shape[-2] >= size[0] and cond.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(cond, size)
    return F.interpolate(cond, size=size, mode="nearest")


class SFT(nn.Module):
    """Spatial feature transform ``out = x · (1 + γ(a)) + β(a)``.

    Args:
        channels: channels ``C`` of the modulated features ``x``.
        cond_channels: channels ``C_a`` of the condition ``a``.
        hidden: width of the shared condition layer.
        kernel_size: kernel of the condition convolutions (odd).

    Shapes:
        x: ``(B, C, H, W)``; cond: ``(B, C_a, h, w)`` (any size, resized to
        ``(H, W)``); output: ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, kernel_size, padding=pad), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def modulation(self, cond: Tensor, size: torch.Size) -> tuple[Tensor, Tensor]:
        """The pair ``(γ, β)``, each ``(B, C, H, W)``, for a condition resized to ``size``."""
        h = self.shared(_fit(cond, size))
        return self.gamma(h), self.beta(h)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.modulation(cond, x.shape[-2:])
        return x * (1 + gamma) + beta

    def receptive_radius(self, r_x: Fraction, r_cond: Fraction, unit: Fraction) -> Fraction:
        """Receptive radius of the output given those of ``x`` and of a condition of the
        same size (pixel size ``unit``); see :func:`compressai_rdc.utils.tiling.chain_radius`."""
        from compressai_rdc.utils.tiling import chain_radius

        return max(r_x, r_cond + chain_radius([self.shared, self.gamma], unit)[0])


class SFTResBlock(nn.Module):
    """Residual block of two SFT → LeakyReLU → conv stages (HEVRC Fig. 4, QMAP2021)::

        x ──SFT(a)─LReLU─conv3x3─SFT(a)─LReLU─conv3x3──(+)──> out
        └──────────────────────────────────────────────┘

    Args:
        channels: feature channels ``C`` (kept).
        cond_channels: channels of the condition ``a``.
        hidden: width of each SFT's condition layer.
        kernel_size: kernel of the SFT condition convolutions.

    Shapes:
        x: ``(B, C, H, W)``; cond: ``(B, C_a, h, w)``; output ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64, kernel_size: int = 3):
        super().__init__()
        self.sft0 = SFT(channels, cond_channels, hidden, kernel_size)
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.sft1 = SFT(channels, cond_channels, hidden, kernel_size)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        dx = self.conv0(F.leaky_relu(self.sft0(x, cond), 0.2))
        dx = self.conv1(F.leaky_relu(self.sft1(dx, cond), 0.2))
        return x + dx

    def receptive_radius(self, r_x: Fraction, r_cond: Fraction, unit: Fraction) -> Fraction:
        """Receptive radius of the output (as :meth:`SFT.receptive_radius`)."""
        from compressai_rdc.utils.tiling import chain_radius

        r = r_x
        for sft, conv in ((self.sft0, self.conv0), (self.sft1, self.conv1)):
            r = sft.receptive_radius(r, r_cond, unit) + chain_radius([conv], unit)[0]
        return r
