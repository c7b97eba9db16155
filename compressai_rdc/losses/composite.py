"""A weighted sum of registered losses, built from a config.

    loss:
      rate:           {weight: 1.0, likelihoods_key: likelihoods_primary}
      moco-cognition: {weight: 1.0, lambda_scaled: true, x_hat_key: x_hat_primary}
      anchor:         {type: local-mse, weight: 1.0, lambda_scaled: true, kernel: 8}

Each entry is ``name: {type: <registered loss, default name>, weight: w,
lambda_scaled: bool, **options}``. The total is::

    L = Σ_terms  w_t · mean_b( s_b · ℓ_t,b )      s_b = batch["lmbda"][b] if lambda_scaled else 1

``batch["lmbda"]`` ``(B,)`` is the recipe's per-image Lagrange multiplier (one
per sampled rate level), so one model learns every operating point.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss


class CompositeLoss(Loss):
    """Weighted sum of named loss terms.

    Args:
        terms: ``{name: loss module}``.
        weights: ``{name: weight}``.
        lambda_scaled: names of the terms multiplied per image by ``batch["lmbda"]``.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float], lambda_scaled=()):
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {k: float(weights.get(k, 1.0)) for k in self.terms}
        self.lambda_scaled = set(lambda_scaled)

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
            if name in self.lambda_scaled:
                lmbda = batch.get("lmbda")
                if lmbda is None:
                    raise InvalidArgumentError(f"loss term {name!r} is lambda_scaled but the batch has no 'lmbda' (B,)")
                value = (lmbda.float().reshape(-1) * out["per_sample"]).mean()
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
    terms, weights, scaled = {}, {}, []
    for name, opts in config.items():
        opts = dict(opts or {})
        kind = opts.pop("type", name)
        weights[name] = float(opts.pop("weight", 1.0))
        if opts.pop("lambda_scaled", False):
            scaled.append(name)
        cls = LOSSES.get(kind)
        try:
            terms[name] = cls(**opts)
        except TypeError as exc:
            raise InvalidArgumentError(f"loss term {name!r} (type {kind!r}): bad options {sorted(opts)}: {exc}") from exc
    return CompositeLoss(terms, weights, scaled)


__all__ = ["CompositeLoss", "build_loss"]
