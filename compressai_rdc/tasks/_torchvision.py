"""Shared plumbing of the torchvision-based tasks: building a model offline."""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.tasks.base import PathLike, load_state_dict_any


def build_torchvision_model(
    namespace: Any, name: str, *, num_classes: int, weights: Optional[PathLike], random_init: bool, what: str, **kwargs: Any
) -> nn.Module:
    """``namespace.<name>(weights=None, weights_backbone=None, num_classes=...)`` plus local weights.

    Without ``weights`` the network is randomly initialised, which only makes
    sense for plumbing tests, so it must be asked for with ``random_init=True``.
    """
    fn: Optional[Callable[..., nn.Module]] = getattr(namespace, name, None)
    valid = sorted(n for n in dir(namespace) if not n.startswith("_") and n[0].islower() and callable(getattr(namespace, n)))
    if fn is None or name.startswith("_"):
        raise InvalidArgumentError(f"unknown {what} model {name!r}; valid torchvision builders: {', '.join(valid)}")
    if weights is None and not random_init:
        raise InvalidArgumentError(
            f"the {what} task needs weights=<.safetensors state dict of {name}> (nothing is downloaded); "
            "random_init=true builds an untrained network for plumbing tests only"
        )
    model = fn(weights=None, weights_backbone=None, num_classes=int(num_classes), **kwargs)
    sd = load_state_dict_any(weights, what=f"{what} model {name}")
    if sd is not None:
        from compressai_rdc.errors import WeightsFormatError

        try:
            model.load_state_dict(sd)
        except RuntimeError as exc:
            raise WeightsFormatError(f"weights {str(weights)!r} do not fit {name} with num_classes={num_classes}: {exc}") from exc
    return model.eval().requires_grad_(False)
