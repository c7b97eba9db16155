"""Validation of the decode/encode controls shared by the RDC models (``layers``, ``beta``).

The gain ``rate`` is validated by :func:`compressai_rdc.layers.gain.check_rate`
and a quality map by :func:`compressai_rdc.models.hevrc.check_qmap`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from compressai_rdc.errors import InvalidArgumentError

__all__ = ["check_beta", "check_layers"]


def check_layers(layers: Optional[int], available: int, *, name: str = "layers") -> int:
    """``layers`` as an int in ``0..available`` (``None`` = ``available``)."""
    if layers is None:
        return available
    if isinstance(layers, bool) or not isinstance(layers, int) or not (0 <= layers <= available):
        raise InvalidArgumentError(f"{name}={layers!r} is invalid; valid: 0..{available}")
    return layers


def check_beta(beta: Any) -> float:
    """``beta`` as a float in [0, 1] (0 = full residual, 1 = primary only)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or not (0 <= beta <= 1):
        raise InvalidArgumentError(f"beta={beta!r} is invalid; valid: a float in [0, 1] (1 decodes the primary branch only)")
    return float(beta)
