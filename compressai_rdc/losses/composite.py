"""A weighted sum of registered losses, built from a config.

    loss:
      rate:           {weight: 1.0, likelihoods_key: likelihoods_primary}
      moco-cognition: {weight: 1.0, lambda_scaled: true, x_hat_key: x_hat_primary}
      anchor:         {type: local-mse, weight: 1.0, lambda_scaled: true, kernel: 8}

Each entry is ``name: {type: <registered loss, default name>, weight: w,
lambda_scaled: bool, weight_by_rate: {level: factor, ...}, **options}``. The total is::

    L = Σ_terms  w_t · mean_b( s_b · g_t(r_b) · ℓ_t,b )      s_b = batch["lmbda"][b] if lambda_scaled else 1

``batch["lmbda"]`` ``(B,)`` is the recipe's per-image Lagrange multiplier (one
per sampled rate level), so one model learns every operating point.
``weight_by_rate`` (optional) makes a term's weight depend on the image's rate
level ``batch["rate"]`` too: ``g_t`` is piecewise linear through the given
``(level, factor)`` knots and constant beyond the first and last (1 without
knots). A codec for machines at low rates and for people at higher ones, e.g. a
weak pixel anchor at the levels a classifier reads and a full one where the
β = 0 picture is watched::

      mse: {weight: 1.0, lambda_scaled: true, weight_by_rate: {0: 0.1, 2: 0.1, 5: 1.0}}
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss


def rate_knots(name: str, knots: Any) -> Tuple[Tuple[float, float], ...]:
    """``weight_by_rate`` of term ``name`` as sorted ``(level, factor)`` pairs; clear errors
    for anything but a non-empty mapping of distinct levels ≥ 0 to factors ≥ 0."""
    if not isinstance(knots, Mapping) or not knots:
        raise InvalidArgumentError(f"loss term {name!r}: weight_by_rate={knots!r} must be a non-empty mapping "
                                   "{rate level: factor}, e.g. {0: 0.1, 5: 1.0}")
    try:
        pairs = sorted((float(k), float(v)) for k, v in knots.items())
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"loss term {name!r}: weight_by_rate={dict(knots)!r} needs numbers: {exc}") from exc
    if any(k < 0 or v < 0 for k, v in pairs) or len({k for k, _ in pairs}) != len(pairs):
        raise InvalidArgumentError(f"loss term {name!r}: weight_by_rate={dict(knots)!r} needs distinct levels >= 0 and factors >= 0")
    return tuple(pairs)


def rate_factor(knots: Sequence[Tuple[float, float]], rate: Tensor) -> Tensor:
    """Piecewise-linear ``g(r)`` through ``knots`` at levels ``rate`` (B,), constant outside them."""
    levels = torch.tensor([k for k, _ in knots], dtype=torch.float32, device=rate.device)
    factors = torch.tensor([v for _, v in knots], dtype=torch.float32, device=rate.device)
    r = rate.float().reshape(-1).clamp(float(levels[0]), float(levels[-1]))
    if len(knots) == 1:
        return factors.expand_as(r)
    i = torch.searchsorted(levels, r, right=True).clamp(1, len(knots) - 1)
    lo, hi = levels[i - 1], levels[i]
    t = (r - lo) / (hi - lo)
    return factors[i - 1] + t * (factors[i] - factors[i - 1])


class CompositeLoss(Loss):
    """Weighted sum of named loss terms.

    Args:
        terms: ``{name: loss module}``.
        weights: ``{name: weight}``.
        lambda_scaled: names of the terms multiplied per image by ``batch["lmbda"]``.
        weight_by_rate: ``{name: {level: factor}}``: terms multiplied per image by a
            piecewise-linear factor of ``batch["rate"]`` (:func:`rate_factor`).
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float], lambda_scaled=(),
                 weight_by_rate: Optional[Mapping[str, Mapping[float, float]]] = None):
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {k: float(weights.get(k, 1.0)) for k in self.terms}
        self.lambda_scaled = set(lambda_scaled)
        by_rate = dict(weight_by_rate or {})
        unknown = set(by_rate) - set(self.terms)
        if unknown:
            raise InvalidArgumentError(f"weight_by_rate names {sorted(unknown)}, not loss terms ({', '.join(self.terms)})")
        self.by_rate = {k: rate_knots(k, v) for k, v in by_rate.items()}

    def trainable_state_dict(self) -> Dict[str, Tensor]:
        out = {}
        for name, term in self.terms.items():
            sd = term.trainable_state_dict() if isinstance(term, Loss) else term.state_dict()
            out.update({f"terms.{name}.{k}": v for k, v in sd.items()})
        return out

    def train(self, mode: bool = True) -> "CompositeLoss":
        super().train(mode)
        for term in self.terms.values():
            term.train(mode)
        return self

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        total = target.new_zeros((), dtype=torch.float32)
        logs: Dict[str, Tensor] = {}
        for name, term in self.terms.items():
            out = term(output, target, **batch)
            value = out["loss"]
            if name in self.lambda_scaled or name in self.by_rate:
                scale = out["per_sample"].new_ones(out["per_sample"].shape, dtype=torch.float32)
                if name in self.lambda_scaled:
                    lmbda = batch.get("lmbda")
                    if lmbda is None:
                        raise InvalidArgumentError(f"loss term {name!r} is lambda_scaled but the batch has no 'lmbda' (B,)")
                    scale = scale * lmbda.float().reshape(-1)
                if name in self.by_rate:
                    rate = batch.get("rate")
                    if rate is None:
                        raise InvalidArgumentError(f"loss term {name!r} has weight_by_rate but the batch has no 'rate' (B,): "
                                                   "its recipe does not sample rate levels")
                    scale = scale * rate_factor(self.by_rate[name], rate)
                value = (scale * out["per_sample"]).mean()
            total = total + self.weights[name] * value
            logs[name] = out["loss"].detach()
            logs.update({f"{name}.{k}": v.detach() for k, v in out.items() if k not in ("loss", "per_sample") and v.dim() == 0})
        logs["loss"] = total
        return logs

    def get(self, type_: type):
        """The first term of a given class (e.g. the :class:`GANLoss`), or ``None``."""
        return next((t for t in self.terms.values() if isinstance(t, type_)), None)


def build_loss(config: Mapping[str, Mapping[str, Any]]) -> CompositeLoss:
    """Build a :class:`CompositeLoss` from ``{name: {type, weight, lambda_scaled, **options}}``.

    Loss types are looked up in :data:`compressai_rdc.LOSSES` (plugins included).
    """
    from compressai_rdc.registry import LOSSES

    if not config:
        raise InvalidArgumentError("the loss config is empty; name at least one term, e.g. {rate: {weight: 1}}")
    terms, weights, scaled, by_rate = {}, {}, [], {}
    for name, opts in config.items():
        opts = dict(opts or {})
        kind = opts.pop("type", name)
        weights[name] = float(opts.pop("weight", 1.0))
        if opts.pop("lambda_scaled", False):
            scaled.append(name)
        if "weight_by_rate" in opts:
            by_rate[name] = opts.pop("weight_by_rate")
        cls = LOSSES.get(kind)
        try:
            terms[name] = cls(**opts)
        except TypeError as exc:
            raise InvalidArgumentError(f"loss term {name!r} (type {kind!r}): bad options {sorted(opts)}: {exc}") from exc
    return CompositeLoss(terms, weights, scaled, by_rate)


__all__ = ["CompositeLoss", "build_loss", "rate_factor", "rate_knots"]
