"""Real bitstreams for any CompressAI model: image tensor ⇄ container bytes.

::

    x (B,3,H,W) ─► pad to multiple ─► model.compress(x, **controls)
                                         │ {"strings", "shape"}
                                         ▼
                      container.pack(header + substreams) ─► bytes
    bytes ─► container.unpack (bounds, CRCs) ─► identity check (name, weights hash)
          ─► drop layers > k ─► model.decompress(strings, shape, **stored, **decode controls)
          ─► crop padding ─► x_hat (B,3,H,W)

Works with CompressAI's own models (``mbt2018-mean``, ...) and every model in
the compressai-rdc registry. Models can refine the defaults through optional
duck-typed hooks:

``model.stream_controls(**controls) -> dict[str, float]``
    encode controls the decoder must know (stored in the header and passed back
    to ``decompress``); called without arguments it must return every key it
    can store (a stream with other keys is rejected as corrupt). Default: the
    scalar controls ``decompress`` accepts by name.
``model.substream_layers(num_groups, **controls) -> list[int]``
    refinement-layer tag of each string group (0 = always needed, j = layer j);
    :func:`truncate` drops groups with tag > k. Default: all 0.
``model.layers_read(**decode_controls) -> int | None``
    refinement layers a decode with these controls reads (``None`` = all); e.g.
    the RDC models read none at β = 1. :func:`decode` drops the others before
    decoding and :func:`bytes_read` counts only what is read.
``model.check_controls(**controls)``
    raises :class:`~compressai_rdc.errors.InvalidArgumentError` for invalid
    control values; used to reject hostile stored values before decoding.
``model.downsampling_factor``
    padding multiple and the ratio between the padded image and ``shape``.
``model.stream_shape(height, width) -> tuple``
    the ``shape`` expected for a padded image size (checked before decoding).
``model.symbols_per_pixel``
    upper bound on latent symbols per padded pixel in one substream (default 1.5).

bpp is always computed from these bytes: :func:`bits_per_pixel` of :func:`bytes_read`
(the substreams the chosen decode reads).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import weakref
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from compressai_rdc.container import (
    BitstreamError,
    CorruptBitstreamError,
    ForeignBitstreamError,
    StreamHeader,
    pack,
    read_header,
    unpack,
)
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.utils.padding import pad_to_multiple, unpad

#: symbols per padded pixel in one substream, assumed when sizing the zero guard
#: appended to each substream before entropy decoding (see :func:`_guarded`);
#: a model with denser latents sets ``model.symbols_per_pixel``
GUARD_SYMBOLS_PER_PIXEL = 1.5

_hash_cache: "weakref.WeakKeyDictionary[nn.Module, Tuple[Tuple, bytes]]" = weakref.WeakKeyDictionary()


# -----------------------------------------------------------------------------
# Model identity
# -----------------------------------------------------------------------------
def weights_hash(model: nn.Module) -> bytes:
    """First 8 bytes of sha256 over the model's state dict (names, dtypes, shapes, values).

    Cached per model and recomputed only when a tensor changes (PyTorch bumps a
    tensor's version counter on every in-place update, e.g. optimiser steps and
    ``load_state_dict``).
    """
    sd = model.state_dict()
    key = tuple((k, v.data_ptr(), v._version, tuple(v.shape), v.dtype) for k, v in sd.items())
    cached = _hash_cache.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    digest = h.digest()[:8]
    _hash_cache[model] = (key, digest)
    return digest


def model_name(model: nn.Module) -> str:
    """Name written into the header: ``model.model_name`` if set, else the
    registry key whose class is exactly ``type(model)`` (compressai-rdc's
    registry, then CompressAI's), else the class path."""
    name = getattr(model, "model_name", None)
    if isinstance(name, str) and name:
        return name
    cls = type(model)
    from compressai_rdc.registry import MODELS

    ours = [n for n in MODELS.names() if MODELS.get(n).cls is cls]
    if len(ours) == 1:
        return ours[0]
    import compressai.zoo.image

    theirs = [n for n, c in compressai.zoo.image.model_architectures.items() if c is cls and n not in MODELS]
    if len(theirs) == 1:
        return theirs[0]
    return f"{cls.__module__}.{cls.__qualname__}"[-128:]


def pad_multiple(model: nn.Module) -> int:
    """Spatial multiple the model's input must have (``downsampling_factor``, default 64)."""
    f = getattr(model, "downsampling_factor", 64)
    return int(f) if isinstance(f, int) and f > 0 else 64


# -----------------------------------------------------------------------------
# Controls
# -----------------------------------------------------------------------------
def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _accepted_names(fn) -> List[str]:
    return [n for n, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_accepted(fn, controls: Dict[str, Any], what: str, model: nn.Module) -> None:
    for k in controls:
        if not _accepts(fn, k):
            valid = [n for n in _accepted_names(fn) if n not in ("x", "strings", "shape")]
            raise InvalidArgumentError(
                f"{type(model).__name__}.{what} has no control {k!r}; valid: {', '.join(valid) or '(none)'}"
            )


def _stream_controls(model: nn.Module, controls: Dict[str, Any]) -> Dict[str, float]:
    hook = getattr(model, "stream_controls", None)
    if hook is not None:
        return {k: float(v) for k, v in hook(**controls).items()}
    out = {}
    for k, v in controls.items():
        if _accepts(model.decompress, k) and isinstance(v, (bool, int, float)):
            out[k] = float(v)
    return out


def _check_stored_keys(header: StreamHeader, model: nn.Module) -> None:
    hook = getattr(model, "stream_controls", None)
    stored = set(header.controls)
    if hook is not None:
        valid = set(hook())
        if stored != valid:
            raise CorruptBitstreamError(f"stream controls {sorted(stored)} differ from this model's {sorted(valid)}")
    else:
        for k in stored:
            if not _accepts(model.decompress, k):
                raise CorruptBitstreamError(f"stream control {k!r} is not a parameter of {type(model).__name__}.decompress")


def _check_controls(model: nn.Module, controls: Dict[str, Any]) -> None:
    hook = getattr(model, "check_controls", None)
    if hook is not None and controls:
        hook(**controls)


# -----------------------------------------------------------------------------
# Encode / decode
# -----------------------------------------------------------------------------
def _as_batch(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise InvalidArgumentError(f"x must be a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise InvalidArgumentError(f"x must be a float image of shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)} {x.dtype}")
    return x


def _flat_shape(shape: Any) -> Tuple[int, ...]:
    if isinstance(shape, (torch.Size, tuple, list)) and all(isinstance(s, int) for s in shape):
        return tuple(int(s) for s in shape)
    raise InvalidArgumentError(
        f"model.compress returned shape {shape!r}; the container stores a flat tuple of ints"
    )


def encode(
    model: nn.Module, x: Tensor, *, name: Optional[str] = None, target_bpp: Optional[float] = None, **controls: Any
) -> bytes:
    """Compress ``x`` into container bytes.

    Args:
        model: a CompressAI model whose entropy coders are updated (``model.update()``).
        x: images ``(B, 3, H, W)`` or ``(3, H, W)`` in [0, 1], any H and W;
            padded internally to the model's multiple and cropped back on decode.
        name: model name stored in the header (default: :func:`model_name`).
        target_bpp: search the model's rate control so the container has about
            this many bits per pixel (see :func:`compressai_rdc.ratecontrol.encode_to_target`,
            which also reports the search); ``controls`` then fix the other controls.
        **controls: passed to ``model.compress`` (e.g. ``rate=3.5, layers=4``).

    Returns:
        The container (layout in :mod:`compressai_rdc.container`).
    """
    if target_bpp is not None:
        from compressai_rdc.ratecontrol import encode_to_target

        return encode_to_target(model, x, target_bpp, **controls)[0]
    x = _as_batch(x)
    _check_accepted(model.compress, controls, "compress", model)
    _check_controls(model, controls)
    h, w = x.shape[-2:]
    xp, pad = pad_to_multiple(x, pad_multiple(model))
    with torch.no_grad():
        out = model.compress(xp, **controls)
    strings = out["strings"]
    if not isinstance(strings, (list, tuple)) or not strings:
        raise InvalidArgumentError(f"{type(model).__name__}.compress returned no strings")
    layers = getattr(model, "substream_layers", None)
    tags = list(layers(len(strings), **controls)) if layers is not None else [0] * len(strings)
    header = StreamHeader(
        model_name=name or model_name(model),
        weights_hash=weights_hash(model),
        batch=x.shape[0],
        height=int(h),
        width=int(w),
        pad=pad,
        shape=_flat_shape(out["shape"]),
        controls=_stream_controls(model, controls),
        layers=tuple(tags),
    )
    try:
        return pack(header, strings)
    except BitstreamError as exc:
        raise InvalidArgumentError(f"cannot store this input in a container: {exc}") from exc


def check_identity(header: StreamHeader, model: nn.Module) -> None:
    """Raise :class:`ForeignBitstreamError` unless ``model`` made the stream."""
    name = model_name(model)
    if header.model_name != name:
        raise ForeignBitstreamError(f"stream was made by model {header.model_name!r}, not by {name!r}")
    if header.weights_hash != weights_hash(model):
        raise ForeignBitstreamError(
            f"stream was made by {header.model_name!r} with weights {header.weights_hash.hex()}, "
            f"but this model's weights hash is {weights_hash(model).hex()}: load the same weights to decode it"
        )


def _check_shape(header: StreamHeader, model: nn.Module) -> None:
    hp, wp = header.padded_size
    f = pad_multiple(model)
    if hp % f or wp % f:
        raise CorruptBitstreamError(f"padded size {hp}x{wp} is not a multiple of the model's {f}")
    expected = getattr(model, "stream_shape", None)
    if expected is not None:
        want = tuple(expected(hp, wp))
    elif isinstance(getattr(model, "downsampling_factor", None), int) and len(header.shape) == 2:
        want = (hp // f, wp // f)
    else:  # unknown model: at least bound the latent by the image
        if math.prod(header.shape) * 256 > hp * wp:
            raise CorruptBitstreamError(f"shape {header.shape} is too large for a {hp}x{wp} image")
        return
    if header.shape != want:
        raise CorruptBitstreamError(f"shape {header.shape} does not match {want} for a {hp}x{wp} image")


def _guarded(strings: List[List[bytes]], header: StreamHeader, model: nn.Module) -> List[List[bytes]]:
    """Append zero bytes to each substream.

    CompressAI's rANS decoder reads 32-bit words without bounds checks; a
    stream whose CRC was forged could make it read past the end of its buffer.
    Trailing zeros are never read for valid streams, and for hostile ones bound
    every read (at most one word per symbol plus the bypass words) to memory
    we own.
    """
    hp, wp = header.padded_size
    per_pixel = float(getattr(model, "symbols_per_pixel", GUARD_SYMBOLS_PER_PIXEL))
    guard = bytes(int(4 * per_pixel * hp * wp) + 256)
    return [[s + guard + bytes(8 * len(s)) for s in group] for group in strings]


def decode(data: bytes, model: nn.Module, *, layers: Optional[int] = None, **controls: Any) -> Tensor:
    """Decode container bytes made by :func:`encode` with the same model and weights.

    Args:
        data: container bytes.
        model: the model (same registry name and weights) that encoded it.
        layers: number of scalable refinement layers to use (``None`` = all in
            the stream); groups of later layers are ignored.
        **controls: decode-time controls of the model (e.g. ``beta=0.5``).

    Returns:
        x_hat ``(B, 3, H, W)`` at the original size. Decoding the same bytes
        twice gives identical tensors.

    Raises:
        BitstreamError: truncated, corrupt, foreign or unsupported input.
        InvalidArgumentError: ``layers`` or a control is invalid for this stream/model.
    """
    header, strings = unpack(data)
    check_identity(header, model)
    _check_shape(header, model)
    layers = _check_layers(header, layers)
    read = _layers_read(header, model, layers, controls)
    if read < header.num_layers:
        strings = [s for s, t in zip(strings, header.layers) if t <= read]
    clash = sorted(set(controls) & set(header.controls))
    if clash:
        raise InvalidArgumentError(f"control(s) {clash} are fixed at encode time and stored in the stream")
    _check_accepted(model.decompress, controls, "decompress", model)
    _check_controls(model, controls)
    _check_stored_keys(header, model)
    try:
        _check_controls(model, header.controls)
    except InvalidArgumentError as exc:
        raise CorruptBitstreamError(f"stream controls {header.controls} are invalid for this model: {exc}") from exc
    kwargs = dict(header.controls, **controls)
    if layers is not None and _accepts(model.decompress, "layers"):
        kwargs["layers"] = read
    with torch.no_grad():
        out = model.decompress(_guarded(strings, header, model), torch.Size(header.shape), **kwargs)
    x_hat = out["x_hat"]
    hp, wp = header.padded_size
    if tuple(x_hat.shape) != (header.batch, 3, hp, wp):
        raise CorruptBitstreamError(f"decoded shape {tuple(x_hat.shape)} differs from the header's {(header.batch, 3, hp, wp)}")
    if not torch.isfinite(x_hat).all():
        raise CorruptBitstreamError("the decoded image holds NaN/inf values: the substreams are corrupt (forged CRCs?)")
    return unpad(x_hat, header.pad)


def _check_layers(header: StreamHeader, layers: Optional[int]) -> Optional[int]:
    available = header.num_layers
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int) or not (0 <= layers <= available)):
        raise InvalidArgumentError(f"layers={layers!r} is invalid: this stream holds {available} refinement layers (valid: 0..{available})")
    return layers


def _layers_read(header: StreamHeader, model: nn.Module, layers: Optional[int], controls: Dict[str, Any]) -> int:
    """Refinement layers a decode with ``layers`` and ``controls`` reads."""
    read = header.num_layers if layers is None else layers
    hook = getattr(model, "layers_read", None)
    if hook is not None:
        wanted = hook(layers=layers, **{k: v for k, v in controls.items() if _accepts(hook, k)})
        if wanted is not None:
            read = min(read, int(wanted))
    return read


def bytes_read(data: bytes, model: nn.Module, *, layers: Optional[int] = None, **controls: Any) -> bytes:
    """The container holding only the substreams that ``decode(data, model, layers=, **controls)`` reads.

    Its length is the honest rate of that decode: an RDC stream decoded at
    β = 1 reads the primary substreams only, whatever else the stream holds.
    Decoding the result gives the same image as decoding ``data``.
    """
    header = read_header(data)
    read = _layers_read(header, model, _check_layers(header, layers), controls)
    return data if read == header.num_layers else truncate(data, read)


def truncate(data: bytes, layers: int) -> bytes:
    """Drop scalable refinement layers > ``layers`` without decoding anything.

    The result is a valid container holding the base substreams and the first
    ``layers`` refinement layers; its substreams are byte-identical to the input's.
    """
    header, strings = unpack(data)
    if layers is None:
        raise InvalidArgumentError(f"layers=None is invalid: give the number of refinement layers to keep (0..{header.num_layers})")
    _check_layers(header, layers)
    keep = [i for i, t in enumerate(header.layers) if t <= layers]
    return pack(
        StreamHeader(**{**header.__dict__, "layers": tuple(header.layers[i] for i in keep)}),
        [strings[i] for i in keep],
    )


def bits_per_pixel(data: bytes, header: Optional[StreamHeader] = None) -> float:
    """Bits per pixel of the whole container (header included) per image, at the original size."""
    header = header or read_header(data)
    return 8.0 * len(data) / (header.batch * header.height * header.width)


__all__ = [
    "bits_per_pixel",
    "bytes_read",
    "check_identity",
    "decode",
    "encode",
    "model_name",
    "pad_multiple",
    "read_header",
    "truncate",
    "weights_hash",
]
