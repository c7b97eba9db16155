"""Feature matching on a frozen backbone: HEVRC's SFM loss and multi-stage feature MSE.

Semantic feature matching (SFM) of HEVRC (Electronics 2023, §3.3, eq. 4)::

    L_SFM = 1/(H_F W_F C_F) · Σ |F(x) - F(x̂)|      (mean L1, per chosen layer, averaged)

Multi-stage feature MSE (:class:`FeatureMSELoss`), the fine-tuning objective of
Adapt-ICMH (Li et al., ECCV 2024, "Image Compression for Machine and Human
Vision with Spatial-Frequency Adaptation", ``bpp + λ·Σ_s MSE(f_s(x̂), f_s(x))``
over the stages of the frozen classifier), which took a whole MSE codec from
51.1 % to 72.9 % ResNet-50 top-1 at a lower rate::

    L_FM = 1/S · Σ_s mean((F_s(x̂) - F_s(x))²)        (every stage s of the backbone)

``F`` is a frozen pretrained feature extractor; HEVRC uses VGG16's, we default
to ``tf_efficientnet_lite0`` (offline weights) and let any timm name be used::

    x̂ ─normalize─> backbone (frozen, features_only) ─> [F_l(x̂)] ─┐
    x  ─normalize─> backbone (frozen, features_only) ─> [F_l(x)]  ─┴─> mean_l L1

Gradients flow into x̂ (and so into the codec) only; ``F(x)`` is computed
without gradient and the backbone never changes.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss, frozen_backbone, per_sample_mean, reconstruction, reference_pair, result


#: element-wise distances of feature differences
DISTANCES = {"l1": torch.abs, "mse": torch.square}


class SFMLoss(Loss):
    """Mean L1 distance between frozen-backbone feature maps of x̂ and x.

    Args:
        backbone: timm model name (built ``features_only``) or an ``nn.Module``
            returning a feature map or a list of them.
        layers: pyramid levels (timm ``out_indices``) to match; each level's
            mean L1 counts equally.
        weights: local weights file for a timm name.
        x_hat_key: output entry holding the reconstruction.
        distance: ``"l1"`` (HEVRC) or ``"mse"`` (Adapt-ICMH).
    """

    frozen_modules = ("backbone",)

    def __init__(
        self,
        backbone: Union[str, nn.Module] = "tf_efficientnet_lite0",
        layers: Optional[Sequence[int]] = (2, 3, 4),
        weights: Optional[str] = None,
        x_hat_key: str = "x_hat",
        distance: str = "l1",
    ):
        super().__init__()
        if layers is not None and len(layers) == 0:
            raise InvalidArgumentError("sfm layers must name at least one feature level (timm out_indices), got []")
        named = isinstance(backbone, str)
        self.backbone, self.normalize = frozen_backbone(
            backbone, weights=weights, features_only=named, out_indices=layers if named else None
        )
        if distance not in DISTANCES:
            raise InvalidArgumentError(f"distance={distance!r} is invalid; valid: {', '.join(DISTANCES)}")
        self.x_hat_key, self.distance = x_hat_key, distance

    def features(self, x: Tensor):
        """Feature maps (list) of images ``(B, 3, H, W)`` in [0, 1]."""
        out = self.backbone(self.normalize(x))
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "sfm")
        got, ref = reference_pair(self.features, x_hat, target)
        dist = DISTANCES[self.distance]
        per = sum(per_sample_mean(dist(g.float() - r.float())) for g, r in zip(got, ref)) / len(ref)
        return result(per)


class FeatureMSELoss(SFMLoss):
    """Mean over backbone stages of the feature MSE between x̂ and x (Adapt-ICMH).

    Same arguments as :class:`SFMLoss`; defaults to every stage of the backbone
    (``tf_efficientnet_lite0``: strides 2 … 32) and the squared distance.
    """

    def __init__(
        self,
        backbone: Union[str, nn.Module] = "tf_efficientnet_lite0",
        layers: Optional[Sequence[int]] = (0, 1, 2, 3, 4),
        weights: Optional[str] = None,
        x_hat_key: str = "x_hat",
        distance: str = "mse",
    ):
        super().__init__(backbone, layers, weights, x_hat_key, distance)


__all__ = ["DISTANCES", "FeatureMSELoss", "SFMLoss"]
