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
the compressai-rdc registry. What a model may refine (padding multiple, stored
controls, refinement layers, control checks, expected ``shape``, symbol
density, the refinement layers a decode reads) is the contract of
:mod:`compressai_rdc.contract`, read here through
:func:`~compressai_rdc.contract.hooks`. Target-rate encoding sits above this
module: :func:`compressai_rdc.ratecontrol.encode_to_target`.

bpp is always computed from these bytes: :func:`bits_per_pixel` of :func:`bytes_read`
(the substreams the chosen decode reads).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import weakref
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from compressai_rdc.container import (
    BitstreamError,
    CorruptBitstreamError,
    ForeignBitstreamError,
    StreamHeader,
    UnsupportedBitstreamError,
    pack,
    read_header,
    unpack,
)
from compressai_rdc.contract import RESERVED_NAMES, accepted_names, accepts, hooks
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.limits import GUARD_SYMBOLS_PER_PIXEL, DecodeLimits, check_image, guard_size  # noqa: F401
from compressai_rdc.utils import tiling
from compressai_rdc.utils.padding import pad_to_multiple, unpad

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
    f = hooks(model).downsampling_factor
    if isinstance(f, bool) or not isinstance(f, int) or f <= 0:
        raise InvalidArgumentError(f"{type(model).__name__}.downsampling_factor must be a positive int, got {f!r}")
    return f


# -----------------------------------------------------------------------------
# Controls
# -----------------------------------------------------------------------------
def _check_accepted(fn, controls: Dict[str, Any], what: str, model: nn.Module) -> None:
    for k in controls:
        if k in RESERVED_NAMES or not accepts(fn, k):
            valid = [n for n in accepted_names(fn) if n not in RESERVED_NAMES]
            raise InvalidArgumentError(
                f"{type(model).__name__}.{what} has no control {k!r}; valid: {', '.join(valid) or '(none)'}"
            )


def _check_stored_keys(header: StreamHeader, model: nn.Module) -> None:
    h = hooks(model)
    stored = set(header.controls)
    marked = set(header.refinement_keys)
    if header.version >= 4:  # refinement-only controls are stored (last, marked) exactly when refinement layers are
        scoped = set(h.refinement_controls) & (set(h.stream_controls()) if h.declares_stream_controls else stored)
        want = scoped if header.num_layers else set()
        if marked != want:
            raise CorruptBitstreamError(
                f"stream marks controls {sorted(marked)} as refinement-only; a stream of this model with "
                f"{header.num_layers} refinement layers marks {sorted(want)}"
            )
    if h.declares_stream_controls:
        valid = set(h.stream_controls())
        if header.version >= 4 and not header.num_layers:
            valid -= set(h.refinement_controls)
        if stored != valid:
            raise CorruptBitstreamError(f"stream controls {sorted(stored)} differ from this model's {sorted(valid)}")
    else:
        for k in stored:
            if k in RESERVED_NAMES or not accepts(model.decompress, k):
                raise CorruptBitstreamError(f"stream control {k!r} is not a parameter of {type(model).__name__}.decompress")


def _check_controls(model: nn.Module, controls: Dict[str, Any]) -> None:
    if controls:
        hooks(model).check_controls(**controls)


# -----------------------------------------------------------------------------
# Encode / decode
# -----------------------------------------------------------------------------
#: ``encode``'s default ``tile``: the :func:`~compressai_rdc.utils.tiling.tiling` block in force, else
#: the model's ``encode_tile`` hook (1024; 512 for the SFT-conditioned ``hevrc`` and ``rdc-qmap``; ``decode_tile`` for a decode)
INHERIT = "inherit"


def _tiles(model: nn.Module, tile: "Union[int, tiling.Tiling, None, str]", *, analysis: bool):
    """The :func:`~compressai_rdc.utils.tiling.tiling` context of a codec call (``tile``
    checked): ``encode`` (``analysis=True``) or ``decode``, whose synthesis alone runs
    channels_last (it never feeds the bytes)."""
    if isinstance(tile, str) and tile == INHERIT:
        if tiling.active():
            return contextlib.nullcontext()
        tile = hooks(model).encode_tile if analysis else hooks(model).decode_tile
    if tile is None:
        return tiling.tiling(synthesis_channels_last=not analysis)
    if not isinstance(tile, tiling.Tiling):
        tile = tiling.Tiling(tile)
    tiling.check_tile(tile.tile, pad_multiple(model))
    # the halo given for the analysis (a measurement) never applies to the synthesis: that one stays exact
    return tiling.tiling(synthesis=tiling.Tiling(tile.tile), analysis=tile if analysis else None, synthesis_channels_last=not analysis)


def _as_batch(x: Tensor, model: nn.Module) -> Tensor:
    param = next(iter(model.parameters()), None)
    return check_image(x, dtype=param.dtype if param is not None else torch.float32)


def _flat_shape(shape: Any) -> Tuple[int, ...]:
    if isinstance(shape, (torch.Size, tuple, list)) and all(isinstance(s, int) for s in shape):
        return tuple(int(s) for s in shape)
    raise InvalidArgumentError(
        f"model.compress returned shape {shape!r}; the container stores a flat tuple of ints"
    )


def encode(
    model: nn.Module, x: Tensor, *, name: Optional[str] = None, tile: Union[int, tiling.Tiling, None, str] = INHERIT,
    **controls: Any
) -> bytes:
    """Compress ``x`` into container bytes.

    Args:
        model: a CompressAI model whose entropy coders are updated (``model.update()``).
        x: images ``(B, 3, H, W)`` or ``(3, H, W)`` in [0, 1], any H and W;
            padded internally to the model's multiple and cropped back on decode.
            Checked by :func:`compressai_rdc.limits.check_image` (dtype of the
            model, finite values in [0, 1], not empty).
        name: model name stored in the header (default: :func:`model_name`).
        tile: when the padded image is larger than ``tile`` pixels in height or
            width, the models of this package run their analysis (and the RDC
            encoder's ``x̂₁`` synthesis) in overlapping tiles of this side with
            the exact halo, so memory stays bounded
            (:mod:`compressai_rdc.utils.tiling`; a multiple of the padding
            multiple). ``None``: never tile. The default (:data:`INHERIT`) is the
            tiling of an enclosing :func:`~compressai_rdc.utils.tiling.tiling`
            block (rate control's search runs in one), else the model's
            ``encode_tile`` hook (1024; 512 for ``hevrc`` and ``rdc-qmap``, whose
            SFT-conditioned analysis holds more features per pixel): images up to
            that size code untiled. A :class:`~compressai_rdc.utils.tiling.Tiling`
            also sets the analysis halo (smaller than exact: for measurements).
        **controls: passed to ``model.compress`` (e.g. ``rate=3.5, layers=4``).
            For a bpp target use :func:`compressai_rdc.ratecontrol.encode_to_target`.

    Returns:
        The container (layout in :mod:`compressai_rdc.container`).
    """
    x = _as_batch(x, model)
    _check_accepted(model.compress, controls, "compress", model)
    _check_controls(model, controls)
    xp, pad = pad_to_multiple(x, pad_multiple(model))
    with torch.no_grad(), _tiles(model, tile, analysis=True):
        out = model.compress(xp, **controls)
    return pack_output(model, out, x.shape, pad, controls, name=name)


def pack_output(
    model: nn.Module, out: Dict[str, Any], size: Tuple[int, ...], pad: Tuple[int, int, int, int],
    controls: Dict[str, Any], *, name: Optional[str] = None,
) -> bytes:
    """The container of a ``model.compress`` output (the second half of :func:`encode`).

    For callers that ran ``compress`` themselves on the padded image, e.g. rate
    control reusing an analysis transform; ``size`` is the unpadded ``(B, 3, H, W)``,
    ``pad`` what :func:`~compressai_rdc.utils.padding.pad_to_multiple` added and
    ``controls`` the ones ``compress`` used.
    """
    strings = out["strings"]
    if not isinstance(strings, (list, tuple)) or not strings:
        raise InvalidArgumentError(f"{type(model).__name__}.compress returned no strings")
    hk = hooks(model)
    if hk.entropy_checks != ("checks" in out):
        raise InvalidArgumentError(
            f"{type(model).__name__}.compress returned {'no ' if hk.entropy_checks else ''}entropy-parameter checks "
            f"but its entropy_checks hook is {hk.entropy_checks}"
        )
    layers = tuple(hk.substream_layers(len(strings), **controls))
    refined = max(layers, default=0) > 0
    stored = {k: float(v) for k, v in hk.stream_controls(**controls).items()}
    scoped = [k for k in stored if k in hk.refinement_controls] if refined else []
    checks = tuple(out["checks"]) if hk.entropy_checks else ()
    header = StreamHeader(
        model_name=name or model_name(model),
        weights_hash=weights_hash(model),
        batch=int(size[0]),
        height=int(size[-2]),
        width=int(size[-1]),
        pad=pad,
        shape=_flat_shape(out["shape"]),
        # the refinement-only controls go last (and only into a stream with refinement layers)
        controls={**{k: v for k, v in stored.items() if k not in hk.refinement_controls}, **{k: stored[k] for k in scoped}},
        layers=layers,
        checks=checks,
        refinement_controls=len(scoped),
        refinement_checks=hk.refinement_checks if refined else 0,  # more than compress returned: refused by pack
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
    ours = weights_hash(model)[: len(header.weights_hash)]  # format 3 stores the first 4 bytes
    if header.weights_hash != ours:
        raise ForeignBitstreamError(
            f"stream was made by {header.model_name!r} with weights {header.weights_hash.hex()}, "
            f"but this model's weights hash is {ours.hex()}: load the same weights to decode it"
        )


def _check_entropy_checks(header: StreamHeader, model: nn.Module) -> None:
    """The stream carries entropy-parameter checks exactly when the model writes them."""
    writes = hooks(model).entropy_checks
    if writes and header.version == 1:
        raise UnsupportedBitstreamError(
            f"this {header.model_name!r} stream has container format version 1: its entropy parameters came from the "
            "float hyperprior, which this version no longer computes (they are fixed-point now, so that streams decode "
            "identically on every machine); re-encode the image with this version"
        )
    if writes and not header.checks:
        raise CorruptBitstreamError(f"the stream holds no entropy-parameter check values; {header.model_name!r} streams always do")
    if not writes and header.checks:
        raise CorruptBitstreamError(f"the stream holds {len(header.checks)} entropy-parameter checks; {type(model).__name__} writes none")
    if header.version >= 4:
        want = hooks(model).refinement_checks if header.num_layers else 0
        if header.refinement_checks != want:
            raise CorruptBitstreamError(
                f"the stream marks {header.refinement_checks} entropy-parameter checks as the refinement layers'; a stream "
                f"of {type(model).__name__} with {header.num_layers} refinement layers marks {want}"
            )


def _check_shape(header: StreamHeader, model: nn.Module) -> None:
    hp, wp = header.padded_size
    f = pad_multiple(model)
    if hp % f or wp % f:
        raise CorruptBitstreamError(f"padded size {hp}x{wp} is not a multiple of the model's {f}")
    want = hooks(model).stream_shape(hp, wp)
    if want is None:  # unknown model: at least bound the latent by the image
        if math.prod(header.shape) * 256 > hp * wp:
            raise CorruptBitstreamError(f"shape {header.shape} is too large for a {hp}x{wp} image")
        return
    if header.shape != tuple(want):
        raise CorruptBitstreamError(f"shape {header.shape} does not match {want} for a {hp}x{wp} image")


def _guarded(strings: List[List[bytes]], header: StreamHeader, model: nn.Module) -> List[List[bytes]]:
    """Append zero bytes to each substream.

    CompressAI's rANS decoder reads 32-bit words without bounds checks; a
    stream whose CRC was forged could make it read past the end of its buffer.
    Trailing zeros are never read for valid streams, and for hostile ones bound
    every read (at most one word per symbol plus the bypass words) to memory
    we own.
    """
    guard = bytes(guard_size(header, model))
    return [[s + guard + bytes(8 * len(s)) for s in group] for group in strings]


def decode(
    data: bytes, model: nn.Module, *, layers: Optional[int] = None, limits: Optional[DecodeLimits] = None, **controls: Any
) -> Tensor:
    """Decode container bytes made by :func:`encode` with the same model and weights.

    Args:
        data: container bytes.
        model: the model (same registry name and weights) that encoded it.
        layers: number of scalable refinement layers to use (``None`` = all in
            the stream); groups of later layers are ignored.
        limits: pixels and memory this call may spend, checked on the header
            before anything sized by the stream is allocated (default:
            :class:`~compressai_rdc.limits.DecodeLimits` ``()``); its ``tile``
            sets the synthesis tiling of images larger than one tile.
        **controls: decode-time controls of the model (e.g. ``beta=0.5``).

    Returns:
        x_hat ``(B, 3, H, W)`` at the original size. Decoding the same bytes
        twice gives identical tensors.

    Raises:
        BitstreamError: truncated, corrupt, foreign or unsupported input,
            or :class:`~compressai_rdc.limits.DecodeLimitError` above ``limits``.
            An error the model raises while decoding a stream that passed every
            check is re-raised as :class:`CorruptBitstreamError` (its cause chained).
            :class:`~compressai_rdc.container.EntropyParameterMismatchError` when the
            entropy parameters the model computes differ from the stream's check
            value; :class:`UnsupportedBitstreamError` for a format-1 stream of a
            model that writes check values (its parameters came from the float path).
        InvalidArgumentError: ``layers``, a control or ``limits.tile`` is invalid for this stream/model.
    """
    limits = limits if limits is not None else DecodeLimits()
    limits.check(read_header(data), model)
    header, strings = unpack(data)
    check_identity(header, model)
    _check_entropy_checks(header, model)
    _check_shape(header, model)
    layers = _check_layers(header, layers)
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
    read = _layers_read(header, model, layers, controls)
    if read < header.num_layers:
        strings = [s for s, t in zip(strings, header.layers) if t <= read]
    kwargs = dict(header.controls, **controls)
    if layers is not None and accepts(model.decompress, "layers"):
        kwargs["layers"] = read
    if header.checks:
        kwargs["checks"] = header.checks
    with _tiles(model, limits.tile_for(model), analysis=False):
        x_hat = _decompress(model, _guarded(strings, header, model), header, kwargs)
    hp, wp = header.padded_size
    if tuple(x_hat.shape) != (header.batch, 3, hp, wp):
        raise CorruptBitstreamError(f"decoded shape {tuple(x_hat.shape)} differs from the header's {(header.batch, 3, hp, wp)}")
    if not torch.isfinite(x_hat).all():
        raise CorruptBitstreamError("the decoded image holds NaN/inf values: the substreams are corrupt (forged CRCs?)")
    return unpad(x_hat, header.pad)


#: what a model's ``decompress`` raises on a malformed stream that passed the
#: container's checks (CompressAI asserts on the group count, torch raises
#: RuntimeError on impossible shapes, our models InvalidArgumentError)
_MODEL_STREAM_ERRORS = (InvalidArgumentError, AssertionError, RuntimeError, ValueError, TypeError, IndexError, KeyError)


def _decompress(model: nn.Module, strings: List[List[bytes]], header: StreamHeader, kwargs: Dict[str, Any]) -> Tensor:
    """``model.decompress(...)["x_hat"]``; errors caused by the stream become :class:`CorruptBitstreamError`.

    Every control passed here was validated beforehand, so what the model
    rejects is the stream (its group count, shape or substream contents).
    """
    try:
        with torch.no_grad():
            out = model.decompress(strings, torch.Size(header.shape), **kwargs)
        x_hat = out["x_hat"]
    except BitstreamError:
        raise  # the model's own typed verdict (entropy-parameter check mismatch)
    except _MODEL_STREAM_ERRORS as exc:
        raise CorruptBitstreamError(
            f"{type(model).__name__}.decompress rejected the stream ({len(strings)} substream groups, "
            f"shape {header.shape}, controls {header.controls}): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(x_hat, Tensor):
        raise CorruptBitstreamError(f"{type(model).__name__}.decompress returned {type(x_hat).__name__}, not an image tensor")
    return x_hat


def _check_layers(header: StreamHeader, layers: Optional[int]) -> Optional[int]:
    available = header.num_layers
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int) or not (0 <= layers <= available)):
        raise InvalidArgumentError(f"layers={layers!r} is invalid: this stream holds {available} refinement layers (valid: 0..{available})")
    return layers


def _layers_read(header: StreamHeader, model: nn.Module, layers: Optional[int], controls: Dict[str, Any]) -> int:
    """Refinement layers a decode with ``layers`` and ``controls`` reads."""
    read = header.num_layers if layers is None else layers
    hook = hooks(model).layers_read
    wanted = hook(layers=layers, **{k: v for k, v in controls.items() if accepts(hook, k)})
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
    With ``layers=0`` the header fields that only refinement layers need (marked
    in format 4: RDC's ``residual_rate`` and residual entropy check) go too, so
    the result is the stream an encode without refinement layers writes.
    """
    header, strings = unpack(data)
    if layers is None:
        raise InvalidArgumentError(f"layers=None is invalid: give the number of refinement layers to keep (0..{header.num_layers})")
    _check_layers(header, layers)
    keep = [i for i, t in enumerate(header.layers) if t <= layers]
    if layers == 0:
        header = header.base_fields()
    return pack(replace(header, layers=tuple(header.layers[i] for i in keep)), [strings[i] for i in keep])


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
    "pack_output",
    "pad_multiple",
    "read_header",
    "truncate",
    "weights_hash",
]
