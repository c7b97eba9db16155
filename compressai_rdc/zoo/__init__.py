"""Quality-indexed factories for every registered codec, CompressAI style.

>>> from compressai_rdc.zoo import rdc_versatile
>>> net = rdc_versatile(quality=3, pretrained=True)   # offline, verified weights

Every registered model gets a factory named after its key in snake case
(``rdc-versatile`` → ``rdc_versatile``), plugin models included
(``from compressai_rdc.zoo import my_plugin_model``). Quality, metric and
weight handling are validated here, once, for all of them.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Dict, Iterator, Optional

from pathlib import Path

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


#: β forced on every model built while :func:`decode_beta` is active (``None`` = the weights' own)
_BETA_OVERRIDE: Optional[float] = None


@contextlib.contextmanager
def decode_beta(beta: Optional[float]) -> Iterator[None]:
    """Within the block, models built by :func:`create_model` (and so by CompressAI's
    zoo tables) get ``default_beta = beta`` instead of their weights' ``decode_beta``.

    This is how ``compressai-rdc eval-model --beta B`` reaches models that
    CompressAI's ``eval_model`` builds itself.
    """
    global _BETA_OVERRIDE
    if beta is not None:
        from compressai_rdc.models.rdc import check_beta

        beta = check_beta(beta)
    previous, _BETA_OVERRIDE = _BETA_OVERRIDE, beta
    try:
        yield
    finally:
        _BETA_OVERRIDE = previous


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
    """Build a registered codec (or one of CompressAI's own architectures), optionally with weights.

    Args:
        name: registry key (``compressai_rdc.list_models()``), or a CompressAI
            architecture (``mbt2018-mean``, ...: ``compressai.zoo.image.model_architectures``).
        quality: CompressAI quality index; for variable-rate models it picks
            the default operating point of one shared set of weights.
        metric: distortion metric the weights were trained for.
        pretrained: load the zoo's weights (shipped file, then
            ``$COMPRESSAI_RDC_WEIGHTS``); never downloads. For CompressAI
            architectures pass ``weights=`` instead (their zoo downloads).
        progress: accepted for CompressAI compatibility; nothing is downloaded.
        weights: explicit ``.safetensors`` file (or folder holding the zoo's
            file name); implies loading weights. A CompressAI architecture is then
            rebuilt from the file's shapes (``from_state_dict``), so any
            width exported by ``compressai-rdc train`` fits.
        sha256: expected digest of ``weights`` (the zoo's digest is always
            checked for zoo files).
        **kwargs: architecture overrides passed to the model class.

    Models with a ``default_beta`` get the ``decode_beta`` of the weights they load
    (:class:`~compressai_rdc.registry.WeightSpec`), so every decode path uses the
    β those weights are best at.
    """
    if name not in MODELS and _compressai_architecture(name) is not None:
        return _create_compressai_model(name, quality, metric, pretrained, weights=weights, sha256=sha256, **kwargs)
    spec = MODELS.get(name)
    _validate(spec, quality, metric)
    ctor: Dict[str, Any] = dict(spec.kwargs)
    if quality is not None and spec.quality_kwargs is not None:
        ctor.update(spec.quality_kwargs(quality))
    ctor.update(kwargs)
    model = spec.cls(**ctor)
    if pretrained or weights is not None:
        wspec = spec.weight_spec(metric, quality if quality is not None else spec.qualities[-1])
        path = resolve_weights(
            wspec.file if wspec else None, weights, what=f"{name} (metric={metric}, quality={quality})",
            package=wspec.package if wspec else None,
        )
        expected = sha256
        from_zoo = wspec is not None and path.name == Path(wspec.file).name
        if expected is None and from_zoo:
            expected = wspec.sha256
        load_into(model, load_state_dict_file(path, expected), source=str(path))
        if from_zoo and wspec.decode_beta is not None and hasattr(model, "default_beta"):
            model.default_beta = float(wspec.decode_beta)
        model.eval()
    if _BETA_OVERRIDE is not None and hasattr(model, "default_beta"):
        model.default_beta = _BETA_OVERRIDE
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


def _compressai_architecture(name: str) -> Optional[type]:
    from compressai.zoo.image import model_architectures

    return model_architectures.get(name)


def _create_compressai_model(
    name: str, quality: Optional[int], metric: str, pretrained: bool, *, weights: Optional[PathLike], sha256: Optional[str], **kwargs: Any
) -> nn.Module:
    """One of CompressAI's architectures: from a safetensors file, or freshly initialised at ``quality``."""
    from compressai.zoo import image_models

    from compressai_rdc.zoo._pretrained import clean_state_dict

    cls = _compressai_architecture(name)
    if weights is not None:
        path = resolve_weights(None, weights, what=name)
        sd = clean_state_dict(load_state_dict_file(path, sha256), cast=False)  # load_into sees the file's dtypes
        model = cls.from_state_dict(sd)
        load_into(model, sd, source=str(path))
        return model.eval()
    if pretrained:
        raise InvalidArgumentError(
            f"pretrained=True for CompressAI's {name!r} would download from the internet; "
            "pass weights=<.safetensors file> (e.g. exported by `compressai-rdc train baseline-mbt2018-mean`)"
        )
    if quality is None:
        raise InvalidArgumentError(f"CompressAI's {name!r} needs a quality (its widths depend on it) or weights=<file>")
    try:
        return image_models[name](quality=quality, metric=metric, pretrained=False, **kwargs)
    except (ValueError, KeyError) as exc:
        raise InvalidArgumentError(f"CompressAI's {name!r} rejected quality={quality!r}, metric={metric!r}: {exc}") from exc


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
    "decode_beta",
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
