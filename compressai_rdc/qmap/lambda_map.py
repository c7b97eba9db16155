"""Per-pixel Lagrange multipliers from a quality map (HEVRC Eq. 10, QMAP2021).

Training a quality-map codec minimises ``R + mean(λ(q) ∘ (x − x̂)²)`` with::

    λ(q) = t₁ · exp(t₂ · q)        (paper: t₁ = 4e-4, t₂ = 2.8)

so ``q = 0`` trains the lowest rate and ``q = 1`` the highest; ``t₁`` and ``t₂``
set the interval of rates one model covers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError

__all__ = ["lambda_map", "DEFAULT_T1", "DEFAULT_T2"]

DEFAULT_T1 = 4e-4
DEFAULT_T2 = 2.8


def lambda_map(q: Tensor, t1: float = DEFAULT_T1, t2: float = DEFAULT_T2) -> Tensor:
    """``t1·exp(t2·q)`` element-wise.

    Args:
        q: quality map, any shape (typically ``(B, 1, H, W)``), values in [0, 1].
        t1: scale (> 0).
        t2: exponent (≥ 0 keeps λ increasing in ``q``).

    Returns:
        Tensor of ``q``'s shape; broadcast it over the 3 colour channels of the
        squared error.
    """
    if t1 <= 0:
        raise InvalidArgumentError(f"t1 must be positive, got {t1}")
    return t1 * torch.exp(t2 * q)
