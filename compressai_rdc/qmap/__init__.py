"""Quality maps: where a quality-map codec should spend its bits (HEVRC §4.3).

::

    x ─┬─ icm.py    Sobel SI → block means → c  (complexity)
       ├─ sim.py    Grad-CAM on a classifier → s (semantics)
       │            otsu.py  B(s)
       └─ blend.py  v = s·B(s) + Norm((1−c)(1−B(s)))        (importance)
                    gamma.py q = Γ(v; τ or ρ)                (quality map)
    ratecontrol.py  searches τ/ρ so the coded rate meets a target

``strategies.py`` names the ways to make ``v`` (registered plugins);
``random.py`` draws training maps; ``lambda_map.py`` gives the per-pixel
Lagrangian used to train quality-map codecs.
"""

from compressai_rdc.qmap.blend import blend_importance, lift_zeros
from compressai_rdc.qmap.gamma import LEVEL_RANGE, gamma_level, gamma_map, level_to_params
from compressai_rdc.qmap.icm import image_complexity_map, spatial_information
from compressai_rdc.qmap.lambda_map import lambda_map
from compressai_rdc.qmap.otsu import otsu_binarize, otsu_threshold
from compressai_rdc.qmap.random import random_qmap

__all__ = [
    "LEVEL_RANGE",
    "blend_importance",
    "create_strategy",
    "create_strategy_for",
    "gamma_level",
    "gamma_map",
    "image_complexity_map",
    "lambda_map",
    "level_to_params",
    "lift_zeros",
    "otsu_binarize",
    "otsu_threshold",
    "random_qmap",
    "spatial_information",
]


def create_strategy(name: str, **options):
    """Instantiate the registered quality-map strategy ``name`` (plugins included)."""
    from compressai_rdc.registry import QMAP_STRATEGIES

    return QMAP_STRATEGIES.get(name)(**options)


def create_strategy_for(model, name: str, block=None, **options):
    """:func:`create_strategy` sized for ``model``: a strategy with a ``block``
    parameter (the ICM's) gets ``block``, default the model's latent ``stride``
    (16 without a model); other strategies ignore ``block``."""
    from compressai_rdc.contract import DEFAULT_STRIDE, accepted_names, hooks
    from compressai_rdc.registry import QMAP_STRATEGIES

    cls = QMAP_STRATEGIES.get(name)
    if "block" in accepted_names(cls):
        options["block"] = block or (hooks(model).stride if model is not None else DEFAULT_STRIDE)
    return cls(**options)
