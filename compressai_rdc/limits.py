"""Resource limits for decoding, and validation of the images given to the encoder.

A container is 150 bytes or more; the image it announces can be 16384² pixels
and the decoder's memory grows with the pixels (about 384 bytes per padded
pixel for ``rdc-versatile``, 583 for ``hevrc``, measured at 768²). Like TurboJPEG's ``TJPARAM_MAXPIXELS`` /
``TJPARAM_MAXMEMORY`` and libavif's ``imageSizeLimit``, :class:`DecodeLimits`
lets a caller bound what a stream may make the decoder do; it is checked on
the header alone, before any buffer sized by the stream is allocated::

    header ─► DecodeLimits.check(header, model) ─► unpack payload ─► guard ─► model.decompress
                   │ B·Hp·Wp > max_pixels, or planned bytes > max_memory
                   ▼
              DecodeLimitError (a BitstreamError)

The planned memory is ``bytes_per_pixel(model) · B·Hp·Wp`` (activations of the
synthesis) plus the input and the zero guards appended to each substream
(:func:`compressai_rdc.codec._guarded`). A model whose synthesis tiles
(``synthesis_halo`` of :mod:`compressai_rdc.contract`) decodes an image larger
than :attr:`DecodeLimits.tile` in tiles (:mod:`compressai_rdc.utils.tiling`);
its activations are then planned as ``bytes_per_pixel`` times one tile with its
halo plus ``tiled_bytes_per_pixel · B·Hp·Wp`` for what stays image-sized
(latents, entropy decoding, output), so a 4096² ``rdc-versatile`` stream fits
in the default limit. The defaults suit the 2-core, 24 GB
development machine: 4 GiB of planned memory (a sixth of it, so a decode can
run beside a training job) and 2²⁴ pixels (4096²).

:func:`check_image` is the encoder's counterpart: it refuses tensors
CompressAI cannot code (non-finite values hang its C++ range coder; other
dtypes, empty images and values outside [0, 1] fail deep inside torch or code
garbage) with an :class:`~compressai_rdc.errors.InvalidArgumentError` naming
what is wrong and what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from compressai_rdc.container import BitstreamError, StreamHeader
from compressai_rdc.contract import DEFAULT_DECODE_BYTES_PER_PIXEL, DEFAULT_SYMBOLS_PER_PIXEL
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.utils.tiling import DEFAULT_TILE, check_tile

#: :attr:`DecodeLimits.tile` default: the model's ``decode_tile`` hook decides
MODEL_TILE = "model"
#: default bound on B × padded H × padded W (4096²)
DEFAULT_MAX_PIXELS = 1 << 24
#: default bound on the memory a decode may plan for, in bytes (4 GiB)
DEFAULT_MAX_MEMORY = 4 << 30
#: decoder bytes per padded pixel assumed for models that do not declare
#: ``decode_bytes_per_pixel`` (:mod:`compressai_rdc.contract`)
DEFAULT_BYTES_PER_PIXEL = DEFAULT_DECODE_BYTES_PER_PIXEL
#: symbols per padded pixel in one substream, assumed when sizing the zero guard
#: appended to each substream before entropy decoding; a model with denser
#: latents sets ``symbols_per_pixel`` (:mod:`compressai_rdc.contract`)
GUARD_SYMBOLS_PER_PIXEL = DEFAULT_SYMBOLS_PER_PIXEL


class DecodeLimitError(BitstreamError):
    """A well-formed stream announces more pixels or memory than the decode limits allow."""


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name}={value!r} must be a positive integer")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """What one :func:`compressai_rdc.codec.decode` call may spend.

    Attributes:
        max_pixels: bound on ``B × padded H × padded W`` of a stream.
        max_memory: bound, in bytes, on the memory the decode plans for
            (see :func:`planned_memory`).
        tile: side, in pixels, of the tiles the synthesis runs in when the
            padded image is larger than this in height or width (a multiple of
            the model's padding multiple: 16 for the RDC models, 64 for
            ``hevrc``); ``None``: never tile; :data:`MODEL_TILE` (the default):
            the model's ``decode_tile`` hook (1024; ``rdc-qmap`` 512). The tiled
            output equals the untiled one up to float rounding
            (:mod:`compressai_rdc.utils.tiling`).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_memory: int = DEFAULT_MAX_MEMORY
    tile: Union[int, None, str] = MODEL_TILE

    def __post_init__(self) -> None:
        _positive_int(self.max_pixels, "max_pixels")
        _positive_int(self.max_memory, "max_memory")
        if self.tile is not None and self.tile != MODEL_TILE:
            _positive_int(self.tile, "tile")

    def tile_for(self, model: nn.Module) -> Optional[int]:
        """The tile side a decode with ``model`` uses: :attr:`tile`, or the model's ``decode_tile``."""
        if isinstance(self.tile, str):
            from compressai_rdc.contract import hooks

            return hooks(model).decode_tile
        return self.tile

    def check(self, header: StreamHeader, model: nn.Module) -> None:
        """Raise :class:`DecodeLimitError` when ``header`` asks for more than these limits.

        Uses the header only (call it before unpacking the payload).
        """
        hp, wp = header.padded_size
        pixels = header.batch * hp * wp
        if pixels > self.max_pixels:
            raise DecodeLimitError(
                f"stream announces {header.batch}x{hp}x{wp} = {pixels} padded pixels, above the decode "
                f"limit of {self.max_pixels} (raise DecodeLimits.max_pixels / --max-pixels to decode it)"
            )
        need = planned_memory(header, model, self.tile_for(model))
        if need > self.max_memory:
            raise DecodeLimitError(
                f"decoding this {header.batch}x{hp}x{wp} stream plans for {need / 2**20:.0f} MiB, above the "
                f"decode limit of {self.max_memory / 2**20:.0f} MiB (raise DecodeLimits.max_memory / --max-memory-mb)"
            )


def bytes_per_pixel(model: nn.Module) -> float:
    """Decoder memory per padded pixel: ``model.decode_bytes_per_pixel`` or :data:`DEFAULT_BYTES_PER_PIXEL`."""
    from compressai_rdc.contract import hooks

    v = hooks(model).decode_bytes_per_pixel
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else float(DEFAULT_BYTES_PER_PIXEL)


def guard_size(header: StreamHeader, model: nn.Module) -> int:
    """Zero bytes appended to every substream before entropy decoding (see ``codec._guarded``)."""
    from compressai_rdc.contract import hooks

    hp, wp = header.padded_size
    per_pixel = hooks(model).symbols_per_pixel
    if isinstance(per_pixel, bool) or not isinstance(per_pixel, (int, float)) or not per_pixel > 0:
        per_pixel = GUARD_SYMBOLS_PER_PIXEL
    return int(4 * per_pixel * hp * wp) + 256


def tiled(header: StreamHeader, model: nn.Module, tile: Optional[int]) -> bool:
    """Whether a decode of ``header`` with :attr:`DecodeLimits.tile` ``= tile`` runs the synthesis
    in tiles (the model tiles and the padded image exceeds one tile);
    :class:`~compressai_rdc.errors.InvalidArgumentError` for a ``tile`` this model cannot use."""
    from compressai_rdc.contract import hooks

    if tile is None or hooks(model).synthesis_halo is None:
        return False
    check_tile(tile, hooks(model).downsampling_factor)
    hp, wp = header.padded_size
    return hp > tile or wp > tile


def planned_memory(header: StreamHeader, model: nn.Module, tile: Optional[int] = None) -> int:
    """Bytes a decode of ``header`` plans for: activations, payload and guarded substreams.

    With ``tile`` (:attr:`DecodeLimits.tile`) and a model that tiles, the activations
    are those of one tile with its halo plus the model's ``tiled_decode_bytes_per_pixel``
    for every padded pixel."""
    from compressai_rdc.contract import hooks

    hp, wp = header.padded_size
    substreams = sum(len(g) for g in header.lengths)
    payload = header.payload_size
    guarded = substreams * guard_size(header, model) + 9 * payload
    if tiled(header, model, tile):
        hk = hooks(model)
        side = tile + 2 * hk.synthesis_halo * hk.stride
        per_pixel = hk.tiled_decode_bytes_per_pixel
        activations = bytes_per_pixel(model) * header.batch * min(hp, side) * min(wp, side) + float(per_pixel) * header.batch * hp * wp
    else:
        activations = bytes_per_pixel(model) * header.batch * hp * wp
    return int(activations) + payload + guarded


# -----------------------------------------------------------------------------
# Encoder input
# -----------------------------------------------------------------------------
def check_image(x: Any, *, name: str = "x", dtype: torch.dtype = torch.float32) -> Tensor:
    """Validate an image batch for encoding; returns it as ``(B, 3, H, W)``.

    Accepted: a tensor of ``dtype`` (the model's, float32 for every shipped
    model) of shape ``(3, H, W)`` or ``(B, 3, H, W)``, ``H, W ≥ 1``, every value
    finite and in [0, 1]. Convert other dtypes yourself (``x.float()``; 8-bit
    images: ``x.float() / 255``): a silent conversion would hide a 0..255 or
    0..65535 scale.

    Raises:
        InvalidArgumentError: naming the problem (type, shape, dtype, empty,
            non-finite count, value range) and what would be valid.
    """
    if not isinstance(x, Tensor):
        raise InvalidArgumentError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise InvalidArgumentError(f"{name} must have shape (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype != dtype:
        hint = " (divide 8-bit images by 255)" if not x.is_floating_point() else ""
        raise InvalidArgumentError(f"{name} has dtype {x.dtype}; this model takes {dtype} in [0, 1]: pass {name}.to({dtype}){hint}")
    if x.numel() == 0:
        raise InvalidArgumentError(f"{name} of shape {tuple(x.shape)} is empty; B, H and W must be at least 1")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InvalidArgumentError(
            f"{name} holds {bad} NaN/inf value(s); the codec needs finite values in [0, 1] "
            "(CompressAI's range coder never returns on non-finite input)"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        hint = " (it looks like 0..255: divide by 255)" if hi > 1.0 and hi <= 255.0 and lo >= 0.0 else ""
        raise InvalidArgumentError(f"{name} has values in [{lo:g}, {hi:g}]; the codec takes values in [0, 1]{hint}")
    return x


__all__ = [
    "DEFAULT_BYTES_PER_PIXEL",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_PIXELS",
    "DecodeLimitError",
    "DecodeLimits",
    "MODEL_TILE",
    "bytes_per_pixel",
    "check_image",
    "guard_size",
    "planned_memory",
    "tiled",
]
