"""Image complexity map (ICM), HEVRC §4.3 (after Zhang et al. [48]).

The spatial information of every pixel is the Sobel gradient magnitude over
the three colour channels::

    SI = sqrt(SV_R² + SH_R² + SV_G² + SH_G² + SV_B² + SH_B²)

averaged over blocks of the encoder's down-sampling factor (the codec spends
bits per latent position, i.e. per block), upsampled back with nearest
neighbours and normalised per image to [0, 1]::

    x (B,3,H,W) ─Sobel (kornia)─> SI (B,1,H,W) ─block mean─> (B,1,H/k,W/k) ─nearest↑─> norm ─> c
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.qmap._norm import check_image, minmax_normalize

__all__ = ["spatial_information", "image_complexity_map"]


def spatial_information(x: Tensor) -> Tensor:
    """Sobel gradient magnitude over R, G, B in both directions.

    Args:
        x: ``(B, 3, H, W)`` image.

    Returns:
        ``(B, 1, H, W)`` SI map (unnormalised).
    """
    x = check_image(x)
    import kornia  # imported here: training on a GPU box needs the qmap package but not Sobel

    g = kornia.filters.spatial_gradient(x, mode="sobel", order=1, normalized=False)  # (B, 3, 2, H, W)
    return g.pow(2).sum(dim=(1, 2)).sqrt()[:, None]


def image_complexity_map(x: Tensor, block: int = 16) -> Tensor:
    """The ICM ``c`` of HEVRC §4.3.

    Args:
        x: ``(B, 3, H, W)`` image in [0, 1].
        block: block size, the encoder's total stride (16 for HEVRC / RDC).
            Partial blocks at the border are averaged over their valid pixels.

    Returns:
        ``(B, 1, H, W)`` complexity in [0, 1] (per-image min-max normalised;
        a flat image gives zeros).
    """
    if block < 1:
        raise InvalidArgumentError(f"block must be ≥ 1, got {block}")
    si = spatial_information(x)
    h, w = si.shape[-2:]
    means = F.avg_pool2d(si, block, stride=block, ceil_mode=True)
    up = torch.repeat_interleave(torch.repeat_interleave(means, block, dim=-2), block, dim=-1)[..., :h, :w]
    return minmax_normalize(up)
