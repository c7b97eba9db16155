"""The mapping Γ from importance ``v`` to quality map ``q`` (HEVRC §4.3, Eq. 16).

::

    Γ(v) = τ · v                        if Rate(x, v) ≥ R_T,   τ ∈ [0, 1]
    Γ(v) = (1 − (1 − v)^ρ)^(1/ρ)        if Rate(x, v) <  R_T,   ρ ∈ (1, ∞)

Both branches keep the order of ``v`` (pixel priorities) and are increasing in
their parameter; ``τ = 1`` and ``ρ = 1`` both give ``q = v``. They are joined
into one monotone **level** ``t ∈ [0, 2]`` so that a rate search is one
bracketed 1-D search::

    t ∈ [0, 1]:  τ = t                      (q from 0 up to v)
    t ∈ (1, 2]:  ρ = RHO_MAX^(t − 1)        (q from v up to ≈ 1)

    q │ t=2 ───────────────
      │ t=1.5 ╭───────────     Rate(x, Γ_t(v)) increases with t
      │ t=1  ╱                 (the model's rate increases with q)
      │ t=.5╱  ___
      │   ╱__──
      └──────────────── v
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError

__all__ = ["RHO_MAX", "LEVEL_RANGE", "gamma_tau", "gamma_rho", "gamma_map", "level_to_params", "gamma_level"]

#: ρ at level 2: with v lifted to ≥ 0.01 this maps every position to q > 0.999
RHO_MAX = 256.0
#: valid range of the joined level
LEVEL_RANGE = (0.0, 2.0)


def gamma_tau(v: Tensor, tau: float) -> Tensor:
    """Low-rate branch ``q = τ·v``, ``τ ∈ [0, 1]``."""
    if not 0.0 <= tau <= 1.0:
        raise InvalidArgumentError(f"tau {tau} is outside [0, 1]")
    return tau * v


def gamma_rho(v: Tensor, rho: float) -> Tensor:
    """High-rate branch ``q = (1 − (1 − v)^ρ)^(1/ρ)``, ``ρ ≥ 1``."""
    if not rho >= 1.0:
        raise InvalidArgumentError(f"rho {rho} must be ≥ 1 (the paper uses ρ > 1)")
    v = v.clamp(0, 1)
    return (1 - (1 - v).pow(rho)).clamp_min(0).pow(1.0 / rho)


def gamma_map(v: Tensor, *, tau: Optional[float] = None, rho: Optional[float] = None) -> Tensor:
    """Γ with exactly one of ``tau`` (low-rate branch) or ``rho`` (high-rate branch).

    Args:
        v: importance ``(B, 1, H, W)`` in [0, 1].

    Returns:
        quality map ``q`` of ``v``'s shape in [0, 1].
    """
    if (tau is None) == (rho is None):
        raise InvalidArgumentError("gamma_map needs exactly one of tau (in [0, 1]) or rho (≥ 1)")
    return gamma_tau(v, tau) if tau is not None else gamma_rho(v, rho)


def level_to_params(level: float) -> dict:
    """The branch parameter of a joined level: ``{"tau": t}`` or ``{"rho": ρ}``."""
    lo, hi = LEVEL_RANGE
    if not lo <= level <= hi:
        raise InvalidArgumentError(f"quality level {level} is outside [{lo}, {hi}]")
    return {"tau": float(level)} if level <= 1.0 else {"rho": float(RHO_MAX ** (level - 1.0))}


def gamma_level(v: Tensor, level: float) -> Tensor:
    """Γ at a joined level ``t ∈ [0, 2]`` (see the module docstring)."""
    return gamma_map(v, **level_to_params(level))
