"""What a codec offers compressai-rdc: the CompressAI contract plus optional hooks.

Every model coded by :mod:`compressai_rdc.codec`, searched by
:mod:`compressai_rdc.ratecontrol` and evaluated by :mod:`compressai_rdc.eval`
satisfies :class:`Codec`: CompressAI's ``forward / compress / decompress /
update`` plus the hooks below. Models of this package (and plugins) inherit
:class:`CodecHooks`, which gives every hook its default, and override what
they need; models that do not (CompressAI's own ``mbt2018-mean``, ...) are
seen through :func:`hooks`, which supplies the same defaults. Nothing else
in the package reads a hook with ``getattr``.

=========================================  ====================================================  =====================
hook                                       meaning                                               default
=========================================  ====================================================  =====================
``downsampling_factor``                    padding multiple of the input                         64
``stride``                                 latent stride: block size of quality-map strategies   16
                                           (the ICM's blocks, HEVRC §4.3)
``symbols_per_pixel``                      bound on latent symbols per padded pixel and          1.5
                                           substream (sizes the decoder's zero guard)
``stream_shape(height, width)``            the ``shape`` a padded image must give, or ``None``    ``None`` (unknown)
``stream_controls(**controls)``            encode controls stored in the header for the          scalar controls that
                                           decoder; without arguments: every key it stores        ``decompress`` takes
``substream_layers(num_groups, **c)``      refinement-layer tag of each string group             all 0
``refinement_controls``                    stream controls only refinement layers (tag ≥ 1)      none
                                           need: a stream without them leaves them out
``refinement_checks``                      how many of ``compress``'s last entropy checks        0
                                           belong to the refinement layers (same rule)
``check_controls(**controls)``             raise :class:`~compressai_rdc.errors.InvalidArgumentError` accept everything
                                           for invalid control values
``layers_read(layers, **decode_controls)`` refinement layers a decode reads (RDC at β = 1:      ``None`` (all)
                                           none); the rate counts only those
``decode_bytes_per_pixel``                 decoder memory per padded pixel (decode limits)       640
``entropy_checks``                         ``compress`` returns ``"checks"`` (one                ``False``
                                           :class:`~compressai_rdc.container.EntropyCheck` per
                                           hyperprior) and ``decompress`` takes ``checks=`` and
                                           verifies them (:mod:`compressai_rdc.entropy_check`)
``synthesis_halo``                         overlap, in latent units, of the decode's tiled       ``None`` (the decode
                                           synthesis (:mod:`compressai_rdc.utils.tiling`)         is never tiled)
``tiled_decode_bytes_per_pixel``           decoder memory per padded pixel outside the tiles     640 (as untiled)
                                           when the synthesis is tiled (decode limits)
``encode_tile``                            side (pixels) of ``encode``'s analysis tiles when the  1024
                                           call does not say (memory of one region's features)
``decode_tile``                            side (pixels) of ``decode``'s synthesis tiles when     1024
                                           the limits do not say (:class:`~compressai_rdc.limits.DecodeLimits`)
``rate_likelihoods(x, **controls)``        likelihoods without the synthesis transform           ``forward(...)["likelihoods"]``
``rate_control(x, control, **fixed)``      the scalar rate control of this model on ``x``         :func:`compressai_rdc.ratecontrol.generic_rate_control`
=========================================  ====================================================  =====================
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

from torch import Tensor

from compressai_rdc.utils.tiling import DEFAULT_TILE

if TYPE_CHECKING:  # pragma: no cover
    from compressai_rdc.ratecontrol import RateControl

__all__ = ["RESERVED_NAMES", "Codec", "CodecHooks", "accepted_names", "accepts", "hooks"]

#: default padding multiple (CompressAI's hyperprior models downsample by 64)
DEFAULT_DOWNSAMPLING = 64
#: default latent stride (ICM block size)
DEFAULT_STRIDE = 16
#: default bound on latent symbols per padded pixel in one substream
DEFAULT_SYMBOLS_PER_PIXEL = 1.5
#: decoder bytes per padded pixel assumed by the decode limits for models that do not
#: state theirs: above the highest registered model's peak (hevrc, 583 at 768²,
#: ``python benchmarks/decode_memory.py --size 768``)
DEFAULT_DECODE_BYTES_PER_PIXEL = 640
#: parameters of ``compress``/``decompress`` that are data, never controls (a stream
#: storing a control of one of these names is corrupt)
RESERVED_NAMES = frozenset({"self", "x", "strings", "shape", "checks"})


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (by name or through ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def accepted_names(fn: Callable) -> List[str]:
    """The named (positional-or-keyword and keyword-only) parameters of ``fn``."""
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


@runtime_checkable
class Codec(Protocol):
    """The full contract (CompressAI's methods and the hooks); see the module table."""

    downsampling_factor: int
    stride: int
    symbols_per_pixel: float
    decode_bytes_per_pixel: float
    entropy_checks: bool
    refinement_controls: FrozenSet[str]
    refinement_checks: int
    synthesis_halo: Optional[int]
    tiled_decode_bytes_per_pixel: float
    encode_tile: int
    decode_tile: int

    def forward(self, x: Tensor, **controls: Any) -> Dict[str, Any]: ...

    def compress(self, x: Tensor, **controls: Any) -> Dict[str, Any]: ...

    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Any, **controls: Any) -> Dict[str, Tensor]: ...

    def update(self, scale_table: Any = None, force: bool = False) -> bool: ...

    def stream_shape(self, height: int, width: int) -> Optional[Tuple[int, ...]]: ...

    def stream_controls(self, **controls: Any) -> Dict[str, float]: ...

    def substream_layers(self, num_groups: int, **controls: Any) -> List[int]: ...

    def check_controls(self, **controls: Any) -> None: ...

    def layers_read(self, layers: Optional[int] = None, **decode_controls: Any) -> Optional[int]: ...

    def rate_likelihoods(self, x: Tensor, **controls: Any) -> Any: ...

    def rate_control(self, x: Tensor, control: str = "auto", **fixed: Any) -> "RateControl": ...


class CodecHooks:
    """Mixin with the default of every optional hook; put it before
    :class:`compressai.models.CompressionModel` in the bases and override what differs."""

    downsampling_factor: int = DEFAULT_DOWNSAMPLING
    stride: int = DEFAULT_STRIDE
    symbols_per_pixel: float = DEFAULT_SYMBOLS_PER_PIXEL
    decode_bytes_per_pixel: float = DEFAULT_DECODE_BYTES_PER_PIXEL
    entropy_checks: bool = False
    #: keys of ``stream_controls`` that only the refinement layers (tag ≥ 1) need: stored
    #: last and marked in a stream that holds refinement layers, left out of one that does
    #: not, dropped by :func:`compressai_rdc.codec.truncate` with the layers (format 4)
    refinement_controls: FrozenSet[str] = frozenset()
    #: how many of the entropy checks ``compress`` returns last belong to the refinement
    #: layers (stored and dropped by the same rule)
    refinement_checks: int = 0
    #: ``None``: ``decompress`` runs its synthesis whole (CompressAI's models); an int: it
    #: tiles it under :func:`compressai_rdc.utils.tiling.tiling` with this halo (latent units)
    synthesis_halo: Optional[int] = None
    tiled_decode_bytes_per_pixel: float = DEFAULT_DECODE_BYTES_PER_PIXEL
    #: ``encode``'s tile side when the caller gives none (:data:`compressai_rdc.codec.INHERIT`):
    #: images up to this size code untiled; a model with large features per pixel lowers it
    encode_tile: int = DEFAULT_TILE
    #: ``decode``'s tile side when :attr:`DecodeLimits.tile <compressai_rdc.limits.DecodeLimits>`
    #: is left at its default (``"model"``)
    decode_tile: int = DEFAULT_TILE

    def stream_shape(self, height: int, width: int) -> Optional[Tuple[int, ...]]:
        """``None``: the codec bounds ``shape`` by the image size only."""
        return None

    def stream_controls(self, **controls: Any) -> Dict[str, float]:
        """The scalar controls ``decompress`` takes by name (none, called without arguments)."""
        return {k: float(v) for k, v in controls.items()
                if k not in RESERVED_NAMES and accepts(self.decompress, k) and isinstance(v, (bool, int, float))}

    @property
    def declares_stream_controls(self) -> bool:
        """Whether ``stream_controls()`` lists every stored key (an override), so a
        stream with other keys is corrupt; otherwise any ``decompress`` keyword may be stored."""
        return type(self).stream_controls is not CodecHooks.stream_controls

    def substream_layers(self, num_groups: int, **controls: Any) -> List[int]:
        """Every string group is needed (layer 0)."""
        return [0] * num_groups

    def check_controls(self, **controls: Any) -> None:
        """Accept every value (``compress``/``decompress`` validate their own)."""

    def layers_read(self, layers: Optional[int] = None, **decode_controls: Any) -> Optional[int]:
        """Refinement layers a decode with these controls reads (``None`` = all in the
        stream); :func:`compressai_rdc.codec.decode` drops the others and
        :func:`~compressai_rdc.codec.bytes_read` counts only what is read."""
        return None

    def rate_likelihoods(self, x: Tensor, **controls: Any) -> Any:
        """Likelihoods of a forward pass (override to skip the synthesis transform)."""
        return self(x, **controls)["likelihoods"]

    def rate_control(self, x: Tensor, control: str = "auto", **fixed: Any) -> "RateControl":
        """The generic control: gain ``rate`` if ``compress`` takes it, else the Γ level of a map."""
        from compressai_rdc.ratecontrol import generic_rate_control

        return generic_rate_control(self, x, control=control, **fixed)


class _Foreign(CodecHooks):
    """The defaults for a model that does not inherit :class:`CodecHooks`
    (CompressAI's own models, plugins built on them); its CompressAI methods are
    delegated, and hooks it defines anyway (duck typing) are used."""

    def __init__(self, model: Any):
        self.model = model
        # delegated as far as the model has them (a bare module still gets the attribute defaults)
        for name in ("forward", "compress", "decompress", "update"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
        f = getattr(model, "downsampling_factor", None)
        #: CompressAI's models state their factor; ``shape`` is then the latent of that stride
        self._stated = isinstance(f, int) and not isinstance(f, bool) and f > 0
        self.downsampling_factor = f if self._stated else DEFAULT_DOWNSAMPLING
        for name in ("stride", "symbols_per_pixel", "decode_bytes_per_pixel", "entropy_checks", "refinement_controls",
                     "refinement_checks", "synthesis_halo",
                     "tiled_decode_bytes_per_pixel", "encode_tile", "decode_tile", "stream_shape", "stream_controls",
                     "substream_layers", "check_controls", "layers_read",
                     "rate_likelihoods", "rate_control"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    @property
    def declares_stream_controls(self) -> bool:
        return "stream_controls" in self.__dict__

    def __call__(self, x: Tensor, **controls: Any) -> Dict[str, Any]:
        return self.model(x, **controls)

    def stream_shape(self, height: int, width: int) -> Optional[Tuple[int, ...]]:
        f = self.downsampling_factor
        return (height // f, width // f) if self._stated else None

    def rate_control(self, x: Tensor, control: str = "auto", **fixed: Any) -> "RateControl":
        from compressai_rdc.ratecontrol import generic_rate_control

        return generic_rate_control(self.model, x, control=control, **fixed)


def hooks(model: Any) -> CodecHooks:
    """``model`` itself when it inherits :class:`CodecHooks`, else an adapter
    holding the defaults (the one place that decides which applies)."""
    return model if isinstance(model, CodecHooks) else _Foreign(model)
