"""What every training loss shares: the call contract and a few helpers.

Every loss is an ``nn.Module`` whose ``forward(output, target, **batch)`` takes
the model's output dict, the original images ``(B, 3, H, W)`` in [0, 1] and the
batch's extra fields (``qmap``, ``lmbda``, ...), and returns a dict with

* ``"loss"``: the scalar to minimise (float32), and
* ``"per_sample"`` ``(B,)``: the same quantity per image, so that a recipe can
  weight images differently (one λ per rate level, as gain-unit codecs need);
* optional extra scalars to log (``"bpp"``, ``"psnr"``...).

Losses compute in float32 even when the model ran under bf16 autocast.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError


class Loss(nn.Module):
    """Base class of compressai-rdc losses (see the module docstring for the contract).

    Sub-classes that hold a frozen network (a backbone) list its attribute name in
    ``frozen_modules``; trainers leave those weights out of checkpoints.
    """

    frozen_modules: tuple = ()

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Loss":
        """Switch training mode; frozen modules always stay in eval mode (no
        batch-norm statistics updates, no dropout)."""
        super().train(mode)
        for name in self.frozen_modules:
            getattr(self, name).eval()
        return self

    def trainable_state_dict(self) -> Dict[str, Tensor]:
        """State dict without the frozen modules' weights (queues, discriminators stay)."""
        prefixes = tuple(f"{name}." for name in self.frozen_modules)
        return {k: v for k, v in self.state_dict().items() if not k.startswith(prefixes)}


def frozen_backbone(
    backbone: Union[str, nn.Module],
    *,
    weights: Optional[str] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
) -> Tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """A frozen backbone and its input normalisation.

    Args:
        backbone: a timm model name (built with
            :func:`compressai_rdc.backbones.create_backbone`, offline weights) or
            an ``nn.Module`` (used as is, assumed to take [0, 1] images).
        weights: local weights file for a timm name.
        features_only: build the timm model as a feature pyramid.
        out_indices: pyramid levels (``features_only``).

    Returns:
        ``(module, normalize)``: the module is in eval mode with
        ``requires_grad=False`` on every parameter; ``normalize`` maps
        ``(B, 3, H, W)`` images in [0, 1] to the backbone's input statistics.
    """
    if isinstance(backbone, str):
        from compressai_rdc.backbones import create_backbone, normalize_transform

        kwargs: Dict[str, Any] = {"weights": weights, "features_only": features_only, "frozen": True}
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        module = create_backbone(backbone, **kwargs)
        normalize = normalize_transform(module)
    elif isinstance(backbone, nn.Module):
        if weights is not None:
            raise InvalidArgumentError("weights= only applies to a backbone given by timm name, not to an nn.Module")
        module, normalize = backbone, _identity
    else:
        raise InvalidArgumentError(f"backbone must be a timm model name or an nn.Module, got {type(backbone).__name__}")
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module, normalize


def _identity(x: Tensor) -> Tensor:
    return x


def get_output(output: Mapping[str, Any], key: str, loss: str) -> Any:
    """``output[key]`` or a clear error naming the keys the model did return."""
    if key not in output or output[key] is None:
        have = ", ".join(sorted(k for k, v in output.items() if v is not None))
        raise InvalidArgumentError(f"loss {loss!r} reads output[{key!r}], but the model returned only: {have}")
    return output[key]


def per_sample_mean(x: Tensor) -> Tensor:
    """Mean over every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.flatten(1).mean(1)


def check_images(x_hat: Tensor, target: Tensor, loss: str) -> None:
    if x_hat.shape != target.shape:
        raise InvalidArgumentError(
            f"loss {loss!r}: reconstruction shape {tuple(x_hat.shape)} differs from target shape {tuple(target.shape)}"
        )


def reconstruction(output: Mapping[str, Any], key: str, target: Tensor, loss: str) -> Tensor:
    """``output[key]``, checked to have the shape of ``target`` (see :func:`get_output`)."""
    x_hat = get_output(output, key, loss)
    check_images(x_hat, target, loss)
    return x_hat


def reference_pair(fn: Callable[[Tensor], Any], x_hat: Tensor, target: Tensor) -> Tuple[Any, Any]:
    """``(fn(x_hat), fn(target))``; the target side (the reference) runs without gradient, first."""
    with torch.no_grad():
        ref = fn(target)
    return fn(x_hat), ref


def result(per_sample: Tensor, **extra: Tensor) -> Dict[str, Tensor]:
    """Pack a per-sample loss into the loss-dict contract."""
    out = {"loss": per_sample.mean(), "per_sample": per_sample}
    out.update(extra)
    return out
