"""Per-image normalisation shared by the quality-map generators."""

from __future__ import annotations

from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError


def minmax_normalize(t: Tensor, eps: float = 1e-12) -> Tensor:
    """Rescale each image of ``t`` ``(B, C, H, W)`` to [0, 1] by its own min and max.

    A constant image maps to zeros (no position is more important than another).
    """
    flat = t.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *([1] * (t.dim() - 1)))
    hi = flat.max(dim=1).values.view(-1, *([1] * (t.dim() - 1)))
    span = hi - lo
    return ((t - lo) / span.clamp_min(eps)) * (span > eps)


def check_image(x: Tensor, what: str = "image") -> Tensor:
    """Validate an RGB batch ``(B, 3, H, W)`` (a single ``(3, H, W)`` image is batched)."""
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise InvalidArgumentError(f"{what} must be (B, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")
    return x


def check_map(m: Tensor, what: str) -> Tensor:
    """Validate a map ``(B, 1, H, W)`` (``(H, W)`` and ``(1, H, W)`` are batched)."""
    while m.dim() < 4:
        m = m[None]
    if m.shape[1] != 1:
        raise InvalidArgumentError(f"{what} must be (B, 1, H, W), got shape {tuple(m.shape)}")
    return m
