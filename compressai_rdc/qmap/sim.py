"""Semantic importance map (SIM) by Grad-CAM on an ImageNet classifier (HEVRC §4.3).

HEVRC runs Grad-CAM (Selvaraju et al., 2017) for the class the classifier
predicts and normalises the map to [0, 1]. Any timm classifier works; the
default is the frozen ``tf_efficientnet_lite0`` of
:func:`compressai_rdc.backbones.create_backbone` (offline weights). Grad-CAM
itself is captum's :class:`~captum.attr.LayerGradCam`::

    x (B,3,H,W) ─normalise─> classifier ─argmax─> class k
                     │ last conv layer A (B,C,h,w)
                     └─ Grad-CAM: ReLU(Σ_c mean(∂y_k/∂A_c) · A_c) ─bilinear↑─> norm ─> s (B,1,H,W)
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.qmap._norm import check_image, minmax_normalize

__all__ = ["SemanticImportance", "semantic_importance_map", "last_conv_layer"]


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The last :class:`torch.nn.Conv2d` in ``model`` (Grad-CAM's usual target layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InvalidArgumentError(
            f"{type(model).__name__} has no Conv2d layer for Grad-CAM; pass layer=<module name> of a spatial feature layer"
        )
    return convs[-1]


@functools.lru_cache(maxsize=4)
def _default_classifier(name: str) -> nn.Module:
    from compressai_rdc.backbones import create_backbone

    return create_backbone(name)


class SemanticImportance:
    """Grad-CAM SIM generator bound to one classifier.

    Args:
        backbone: timm model name passed to
            :func:`~compressai_rdc.backbones.create_backbone` (ignored when
            ``classifier`` is given).
        weights: local weights file for ``backbone`` (not needed for the default).
        classifier: an already built classifier ``(B, 3, H, W) → (B, classes)``
            taking normalised input.
        layer: dotted module name of the Grad-CAM layer (default: last Conv2d).
        normalize: input normalisation (default: the timm model's mean/std).

    Call:
        ``sim(x, target=None)`` with ``x (B, 3, H, W)`` in [0, 1] and
        ``target`` the class index (int or ``(B,)``; default: predicted class)
        returns ``(B, 1, H, W)`` in [0, 1].
    """

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        *,
        weights: Optional[str] = None,
        classifier: Optional[nn.Module] = None,
        layer: Optional[str] = None,
        normalize=None,
    ):
        if classifier is None:
            if weights is None:
                classifier = _default_classifier(backbone)
            else:
                from compressai_rdc.backbones import create_backbone

                classifier = create_backbone(backbone, weights=weights)
        self.classifier = classifier
        if layer is None:
            self.layer = last_conv_layer(classifier)
        else:
            modules = dict(classifier.named_modules())
            if layer not in modules:
                raise InvalidArgumentError(f"layer {layer!r} is not a module of {type(classifier).__name__}")
            self.layer = modules[layer]
        if normalize is None:
            from compressai_rdc.backbones import normalize_transform

            normalize = normalize_transform(classifier)
        self.normalize = normalize

    def predict(self, x: Tensor) -> Tensor:
        """Predicted class per image ``(B,)``."""
        with torch.no_grad():
            return self.classifier(self.normalize(check_image(x))).argmax(dim=1)

    def __call__(self, x: Tensor, target: Union[None, int, Sequence[int], Tensor] = None) -> Tensor:
        from captum.attr import LayerAttribution, LayerGradCam

        x = check_image(x)
        inp = self.normalize(x).detach()
        if target is None:
            target = self.predict(x)
        elif isinstance(target, int):
            target = torch.full((x.shape[0],), target, dtype=torch.long)
        else:
            target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        target = target.to(x.device)
        with torch.enable_grad():
            inp.requires_grad_(True)
            cam = LayerGradCam(self.classifier, self.layer).attribute(inp, target=target, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return minmax_normalize(cam.clamp_min(0))


def semantic_importance_map(x: Tensor, backbone: str = "tf_efficientnet_lite0", target=None) -> Tensor:
    """Functional form of :class:`SemanticImportance` (default classifier cached)."""
    return SemanticImportance(backbone)(x, target)
