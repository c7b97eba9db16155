"""Quality-map strategies: how an image's importance map ``v`` is made.

Each strategy is a plugin registered under a name
(``compressai_rdc.QMAP_STRATEGIES``); ``cls(**options)`` returns a callable
``(x: (B, 3, H, W) in [0, 1]) -> v: (B, 1, H, W) in [0, 1]``. Zeros of ``v``
are lifted to its smallest non-zero value (HEVRC §4.3), so that every
position can receive bits when the rate allows. ``Γ``
(:mod:`compressai_rdc.qmap.gamma`) then turns ``v`` into the quality map.

============  =====================================================  ==========
name          importance                                             paper
============  =====================================================  ==========
uniform       constant (ordinary variable-rate coding)               —
icm           image complexity: complex blocks first                 §3.5, Fig 2
inverse-icm   1 − complexity: simple blocks first                    §3.5, Fig 2
sim           Grad-CAM semantic importance                           §4.3
blended       s·B(s) + Norm((1−c)(1−B(s))): salient, simple, complex §4.3 Eq 15
============  =====================================================  ==========
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.qmap._norm import check_image
from compressai_rdc.qmap.blend import blend_importance, lift_zeros
from compressai_rdc.qmap.icm import image_complexity_map

__all__ = ["QmapStrategy", "UniformImportance", "ComplexityImportance", "InverseComplexityImportance", "SemanticImportanceStrategy", "BlendedImportance"]


class QmapStrategy:
    """Base class: subclasses implement :meth:`importance`; calling lifts zeros."""

    def importance(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return lift_zeros(self.importance(check_image(x)).clamp(0, 1))


class UniformImportance(QmapStrategy):
    """Every position equally important (``v ≡ value``, ``value`` in (0, 1])."""

    def __init__(self, value: float = 1.0):
        if not 0.0 < value <= 1.0:
            raise InvalidArgumentError(f"uniform importance value {value} must be in (0, 1]")
        self.value = float(value)

    def importance(self, x: Tensor) -> Tensor:
        return x.new_full((x.shape[0], 1, *x.shape[-2:]), self.value)


class ComplexityImportance(QmapStrategy):
    """``v = c``, the ICM: complex blocks get more quality.

    Args:
        block: the encoder's total stride (ICM block size).
    """

    def __init__(self, block: int = 16):
        self.block = int(block)

    def importance(self, x: Tensor) -> Tensor:
        return image_complexity_map(x, self.block)


class InverseComplexityImportance(ComplexityImportance):
    """``v = 1 − c``: simple blocks first (spreads bits over more of the image)."""

    def importance(self, x: Tensor) -> Tensor:
        return 1 - image_complexity_map(x, self.block)


class SemanticImportanceStrategy(QmapStrategy):
    """``v = s``, the Grad-CAM SIM of a timm classifier.

    Args:
        backbone: timm classifier name (default the offline ``tf_efficientnet_lite0``).
        weights: local weights file for other backbones.
        layer: Grad-CAM layer (default: last Conv2d).
    """

    def __init__(self, backbone: str = "tf_efficientnet_lite0", weights: Optional[str] = None, layer: Optional[str] = None):
        from compressai_rdc.qmap.sim import SemanticImportance

        self.sim = SemanticImportance(backbone, weights=weights, layer=layer)

    def importance(self, x: Tensor) -> Tensor:
        return self.sim(x)


class BlendedImportance(SemanticImportanceStrategy):
    """HEVRC's blended map: salient regions (by SIM), then simple, then complex ones.

    Args:
        block: ICM block size (the encoder's stride).
        backbone, weights, layer: SIM classifier, see :class:`SemanticImportanceStrategy`.
    """

    def __init__(self, block: int = 16, backbone: str = "tf_efficientnet_lite0", weights: Optional[str] = None, layer: Optional[str] = None):
        super().__init__(backbone, weights, layer)
        self.block = int(block)

    def importance(self, x: Tensor) -> Tensor:
        return blend_importance(self.sim(x), image_complexity_map(x, self.block), lift=False)
