"""Blended importance map ``v`` from semantics and complexity (HEVRC §4.3, Eq. 15).

Bit-allocation priority: semantically salient regions first, then simple
(low-complexity) regions, then complex ones::

    B = OTSU(s)
    v = s · B + Norm((1 − c) · (1 − B))

``Norm`` rescales the non-salient term into [0, m] with ``m`` the smallest
non-zero value of ``s · B``, so no non-salient position outranks a salient one.
Positions with ``v = 0`` are lifted to the smallest non-zero value of ``v``, so
that ``Γ`` can still give them bits when the rate allows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.qmap._norm import check_map
from compressai_rdc.qmap.otsu import otsu_binarize

__all__ = ["blend_importance", "lift_zeros"]


def _min_nonzero(t: Tensor) -> Tensor:
    """Per-image smallest strictly positive value ``(B, 1, 1, 1)``; ``+inf`` where none."""
    pos = torch.where(t > 0, t, torch.full_like(t, float("inf")))
    return pos.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)


def lift_zeros(v: Tensor) -> Tensor:
    """Replace zeros of each image by its smallest non-zero value (HEVRC §4.3).

    An image that is zero everywhere carries no preference at all and becomes
    uniform ones.
    """
    m = _min_nonzero(v)
    m = torch.where(torch.isinf(m), torch.ones_like(m), m)
    return torch.where(v > 0, v, m.expand_as(v))


def blend_importance(s: Tensor, c: Tensor, *, binary: Tensor | None = None, lift: bool = True) -> Tensor:
    """HEVRC's importance map ``v`` (Eq. 15).

    Args:
        s: SIM ``(B, 1, H, W)`` in [0, 1].
        c: ICM ``(B, 1, H, W)`` in [0, 1].
        binary: precomputed ``B(s)``; OTSU on ``s`` by default.
        lift: lift ``v = 0`` to the smallest non-zero value.

    Returns:
        ``(B, 1, H, W)`` importance in [0, 1] with every salient position ≥
        every non-salient one.
    """
    s, c = check_map(s, "SIM"), check_map(c, "ICM")
    if s.shape != c.shape:
        raise InvalidArgumentError(f"SIM {tuple(s.shape)} and ICM {tuple(c.shape)} must have the same shape")
    b = otsu_binarize(s) if binary is None else check_map(binary, "binary mask").to(s.dtype)
    salient = s * b
    ceiling = _min_nonzero(salient)
    ceiling = torch.where(torch.isinf(ceiling), torch.ones_like(ceiling), ceiling)  # no salient region
    rest = (1 - c) * (1 - b)
    rest_max = rest.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    v = salient + rest / rest_max.clamp_min(1e-12) * ceiling
    return lift_zeros(v) if lift else v
