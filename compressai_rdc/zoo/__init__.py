"""Quality-indexed factories for every registered codec, CompressAI style.

>>> from compressai_rdc.zoo import rdc_versatile
>>> net = rdc_versatile(quality=3, pretrained=True)   # offline, verified weights

Every registered model gets a factory named after its key in snake case
(``rdc-versatile`` → ``rdc_versatile``), plugin models included
(``from compressai_rdc.zoo import my_plugin_model``). Quality, metric and
weight handling are validated here, once, for all of them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional

from torch import nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.registry import MODELS, ModelSpec
from compressai_rdc.zoo._pretrained import (
    WEIGHTS_ENV,
    PathLike,
    load_into,
    load_state_dict_file,
    resolve_weights,
    save_weights,
    sha256_file,
)


def _validate(spec: ModelSpec, quality: Optional[int], metric: str) -> None:
    if metric not in spec.metrics:
        raise InvalidArgumentError(f"metric {metric!r} is invalid for {spec.name}; valid: {', '.join(spec.metrics)}")
    if quality is not None:
        if isinstance(quality, bool) or not isinstance(quality, int) or quality not in spec.qualities:
            qs = spec.qualities
            valid = f"{qs[0]}..{qs[-1]}" if qs == tuple(range(qs[0], qs[-1] + 1)) else ", ".join(map(str, qs))
            raise InvalidArgumentError(f"quality {quality!r} is invalid for {spec.name}; valid: {valid}")


def create_model(
    name: str,
    quality: Optional[int] = None,
    metric: str = "mse",
    pretrained: bool = False,
    progress: bool = True,
    *,
    weights: Optional[PathLike] = None,
    sha256: Optional[str] = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered codec, optionally with pretrained weights.

    Args:
        name: registry key (``compressai_rdc.list_models()``).
        quality: CompressAI quality index; for variable-rate models it picks
            the default operating point of one shared set of weights.
        metric: distortion metric the weights were trained for.
        pretrained: load the zoo's weights (shipped file, then
            ``$COMPRESSAI_RDC_WEIGHTS``); never downloads.
        progress: accepted for CompressAI compatibility; nothing is downloaded.
        weights: explicit ``.safetensors`` file (or folder holding the zoo's
            file name); implies loading weights.
        sha256: expected digest of ``weights`` (the zoo's digest is always
            checked for zoo files).
        **kwargs: architecture overrides passed to the model class.
    """
    spec = MODELS.get(name)
    _validate(spec, quality, metric)
    ctor: Dict[str, Any] = dict(spec.kwargs)
    if quality is not None and spec.quality_kwargs is not None:
        ctor.update(spec.quality_kwargs(quality))
    ctor.update(kwargs)
    model = spec.cls(**ctor)
    if pretrained or weights is not None:
        wspec = spec.weight_spec(metric, quality if quality is not None else spec.qualities[-1])
        path = resolve_weights(wspec.file if wspec else None, weights, what=f"{name} (metric={metric}, quality={quality})")
        expected = sha256
        if expected is None and wspec is not None and path.name == wspec.file:
            expected = wspec.sha256
        load_into(model, load_state_dict_file(path, expected), source=str(path))
        model.eval()
    return model


def load_model(
    name: str,
    weights: Optional[PathLike] = None,
    pretrained: bool = False,
    metric: str = "mse",
    device: str = "cpu",
    *,
    quality: Optional[int] = None,
) -> nn.Module:
    """A registered model with real weights, in eval mode with entropy coders ready
    (the one loader of the CLI and the evaluation).

    A ``weights`` file gives the widths: the class's ``from_state_dict`` (when it
    has one) rebuilds the architecture the file was trained with, then
    :func:`load_into` loads it as every zoo load does (exact fp16-flushed
    constants, entropy-coder tables). ``pretrained`` uses the zoo's file.

    Raises:
        InvalidArgumentError: neither ``weights`` nor ``pretrained``.
    """
    spec = MODELS.get(name)
    _validate(spec, quality, metric)
    if weights is not None:
        from compressai_rdc.zoo._pretrained import clean_state_dict

        raw = clean_state_dict(load_state_dict_file(weights), cast=False)
        extra = dict(spec.quality_kwargs(quality)) if quality is not None and spec.quality_kwargs is not None else {}
        if hasattr(spec.cls, "from_state_dict"):
            inferred = spec.cls.from_state_dict({k: v.float() if v.is_floating_point() else v for k, v in raw.items()}, **extra)
            model = load_into(inferred, raw, source=str(weights))
        else:
            model = create_model(name, quality, metric, weights=weights)
    elif pretrained:
        model = create_model(name, quality, metric, pretrained=True)
    else:
        raise InvalidArgumentError(
            f"model {name!r} needs weights: pass a .safetensors file or pretrained=True "
            "(a random initialisation cannot be decoded by anyone else)"
        )
    model = model.to(device).eval()
    model.update()
    return model


@functools.lru_cache(maxsize=None)
def get_factory(name: str) -> Callable[..., nn.Module]:
    """A CompressAI-style factory ``f(quality, metric="mse", pretrained=False, progress=True, **kw)``."""

    def factory(quality: Optional[int] = None, metric: str = "mse", pretrained: bool = False, progress: bool = True, **kwargs):
        return create_model(name, quality, metric, pretrained, progress, **kwargs)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_").replace(".", "_")
    factory.__doc__ = f"Build the registered codec {name!r}; see :func:`compressai_rdc.zoo.create_model`."
    return factory


#: factories of the built-in models (plugin models: ``from compressai_rdc.zoo import my_model``)
rdc_versatile = get_factory("rdc-versatile")
hevrc = get_factory("hevrc")
rdc_qmap = get_factory("rdc-qmap")


def __getattr__(attr: str) -> Callable[..., nn.Module]:
    # factories of plugin models: from compressai_rdc.zoo import my_model
    for name in MODELS.names():
        if name.replace("-", "_").replace(".", "_") == attr:
            return get_factory(name)
    raise AttributeError(f"module 'compressai_rdc.zoo' has no attribute {attr!r} (registered models: {', '.join(MODELS.names())})")


__all__ = [
    "WEIGHTS_ENV",
    "create_model",
    "get_factory",
    "hevrc",
    "load_into",
    "load_model",
    "load_state_dict_file",
    "rdc_qmap",
    "rdc_versatile",
    "resolve_weights",
    "save_weights",
    "sha256_file",
]
