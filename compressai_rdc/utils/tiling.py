"""Run a fully convolutional transform over overlapping tiles, in memory bounded by the tile.

A synthesis transform ``g_s`` turns a latent ``(B, M, h, w)`` into an image
``(B, 3, 16h, 16w)``; its activations take hundreds of bytes per output pixel
(:mod:`compressai_rdc.limits`). :func:`run_tiled` cuts the latent grid into
``tile × tile`` blocks, runs the transform on each block grown by a ``halo``
on every side (clipped at the image border), keeps the centre of each result
and writes it into one preallocated output::

    latent grid (h × w)                    output (h·S × w·S)
    ┌──────┬──────┬───┐                   ┌──────┬──────┬───┐
    │ ┌────┼──┐   │   │  fn(region) ─►    │ ████ │      │   │   region = tile + halo on each side,
    │ │ ## │  │   │   │  keep centre      │ ████ │      │   │   clipped to the grid; only the tile's
    │ └────┼──┘   │   │                   ├──────┼──────┼───┤   own block of the result is kept
    ├──────┼──────┼───┤                   │      │      │   │
    └──────┴──────┴───┘                   └──────┴──────┴───┘

Every input and the output are placed on the latent grid by a *scale*
(pixels per latent unit): ``ŷ`` 1, HEVRC's hyper-latent ``ẑ`` 1/4, an image or
``x̂₁`` 16. The same code tiles an analysis transform (image at scale 16 in,
latent at scale 1 out).

**Why the result is exact.** Convolutions, transposed convolutions, GDN/IGDN
(per pixel, across channels), SFT modulations and pointwise activations are
translation-equivariant once a tile starts on a multiple of the total stride,
so a tile differs from the whole-image result only through its borders, where
the transform sees zeros instead of the neighbouring content. An output pixel
depends on the inputs within a *receptive radius* ``r`` of its position
(:func:`chain_radius`: the sum over layers of ``(k − 1)/2 · dilation`` in
the units of that layer's input, for a transposed convolution in the units of
its output); a halo of :func:`halo_for` ``(r, …) = ⌈r + max(0, 1/S_in −
1/S_out)⌉`` latent units (rounded up to the alignment) keeps every input and
every intermediate activation a kept pixel depends on inside the region, so
the kept pixels equal the untiled ones up to float rounding (different
blocking of the same sums; tests: ``tests/test_tiling.py``). At the image
border the region is clipped exactly where the untiled input ends, so the
zero padding there is the same.

**When it is used.** Models call :func:`synthesize` / :func:`analyze` at their
transform call sites; these run the transform whole unless a caller entered
:func:`tiling` (:func:`compressai_rdc.codec.decode` does, with
:attr:`compressai_rdc.limits.DecodeLimits.tile`; :func:`compressai_rdc.codec.encode`
with its ``tile`` argument) and the grid is larger than one tile.
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

from compressai_rdc.errors import InvalidArgumentError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads DEFAULT_TILE for --help
    from torch import Tensor, nn

__all__ = [
    "DEFAULT_TILE",
    "Tiling",
    "analyze",
    "chain_radius",
    "check_tile",
    "active",
    "current",
    "halo_for",
    "in_tile",
    "run_tiled",
    "synthesize",
    "tiling",
]

Scale = Union[int, Fraction]

#: default tile side in pixels: images up to 1024 px on each side (Kodak, ImageNet) run untiled
DEFAULT_TILE = 1024

def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name}={value!r} must be a positive integer")
    return value


def check_tile(tile, multiple: int, name: str = "tile") -> int:
    """``tile`` (pixels) as a positive int multiple of ``multiple``; else :class:`InvalidArgumentError`."""
    _positive(tile, name)
    if tile % multiple:
        raise InvalidArgumentError(
            f"{name}={tile} must be a multiple of {multiple} pixels for this model "
            f"(e.g. {max(multiple, tile // multiple * multiple)} or {(tile // multiple + 1) * multiple})"
        )
    return tile


@dataclass(frozen=True)
class Tiling:
    """How a transform call is tiled.

    Attributes:
        tile: tile side in pixels of the image (a multiple of the model's padding multiple).
        halo: overlap on each side in latent units; ``None``: the transform's
            exact halo (:func:`halo_for` its receptive radius). A smaller halo is
            faster but no longer exact (for measurements).
    """

    tile: int = DEFAULT_TILE
    halo: Optional[int] = None

    def __post_init__(self) -> None:
        _positive(self.tile, "tile")
        if self.halo is not None and (isinstance(self.halo, bool) or not isinstance(self.halo, int) or self.halo < 0):
            raise InvalidArgumentError(f"halo={self.halo!r} must be None (exact) or a non-negative integer (latent units)")


_CURRENT = {kind: ContextVar(f"compressai_rdc_{kind}_tiling", default=None) for kind in ("synthesis", "analysis")}
_ACTIVE: ContextVar[bool] = ContextVar("compressai_rdc_tiling_active", default=False)
_SYNTHESIS_CHANNELS_LAST: ContextVar[bool] = ContextVar("compressai_rdc_synthesis_channels_last", default=False)
_IN_TILE: ContextVar[bool] = ContextVar("compressai_rdc_in_tile", default=False)


@contextlib.contextmanager
def tiling(synthesis: Optional[Tiling] = None, analysis: Optional[Tiling] = None, *, synthesis_channels_last: bool = False) -> Iterator[None]:
    """Within the block, :func:`synthesize` / :func:`analyze` calls tile as given (``None``: untiled).

    ``synthesis_channels_last``: :func:`synthesize` runs its transform on
    channels_last tensors (oneDNN's faster convolutions: a Kodak decode of
    ``rdc-versatile`` 0.84 → 0.59 s on one thread) and returns a contiguous
    result; the pixels differ by float rounding only. The decoder uses it; the
    encoder does not, so the bytes of a stream never depend on it.
    """
    tokens = [(_CURRENT[k], _CURRENT[k].set(v)) for k, v in (("synthesis", synthesis), ("analysis", analysis))]
    tokens.append((_ACTIVE, _ACTIVE.set(True)))
    tokens.append((_SYNTHESIS_CHANNELS_LAST, _SYNTHESIS_CHANNELS_LAST.set(bool(synthesis_channels_last))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current(kind: str) -> Optional[Tiling]:
    """The :class:`Tiling` in force for ``kind`` (``"synthesis"`` or ``"analysis"``), or ``None``."""
    return _CURRENT[kind].get()


def active() -> bool:
    """Whether a :func:`tiling` block is in force (even one that tiles nothing)."""
    return _ACTIVE.get()


def in_tile() -> bool:
    """Whether the caller runs inside one region of :func:`run_tiled` (a transform may then
    tile its own high-resolution stages further; the untiled path never does)."""
    return _IN_TILE.get()


# -----------------------------------------------------------------------------
# receptive radius
# -----------------------------------------------------------------------------
def _leaves(modules: Iterable[nn.Module]) -> Iterator[nn.Module]:
    from torch import nn

    for m in modules:
        if isinstance(m, nn.Sequential):
            yield from _leaves(m)
        else:
            yield m


def chain_radius(modules: Iterable[nn.Module], unit: Scale = 1) -> Tuple[Fraction, Fraction]:
    """Receptive radius of a chain of layers, and the size of its output pixel.

    Args:
        modules: layers applied in order (nested ``nn.Sequential`` are walked).
        unit: size of one input pixel in the units the radius is measured in
            (latent units: 1 for a latent, 1/16 for an image).

    Returns:
        ``(radius, unit_out)``: an output pixel depends on the inputs within
        ``radius`` of its position; ``unit_out`` is its size.

    Raises:
        InvalidArgumentError: a layer whose dependency is not local and
            symmetric (not a convolution with ``padding = dilation·(k−1)/2``, a
            transposed convolution with ``padding = (k−1)/2`` and
            ``output_padding = stride − 1``, or a pointwise layer).
    """
    from compressai.layers import GDN
    from torch import nn

    pointwise = (GDN, nn.LeakyReLU, nn.ReLU, nn.Identity, nn.Sigmoid, nn.Tanh, nn.GELU, nn.PReLU)  # radius 0
    unit, radius = Fraction(unit), Fraction(0)
    for m in _leaves(modules):
        if isinstance(m, nn.ConvTranspose2d):
            (k, _), (s, _), (p, _), (op, _), (d, _) = m.kernel_size, m.stride, m.padding, m.output_padding, m.dilation
            if d != 1 or 2 * p != k - 1 or op != s - 1:
                raise InvalidArgumentError(f"{m} is not a centred transposed convolution; cannot tile it")
            unit /= s
            radius += unit * Fraction(k - 1, 2)
        elif isinstance(m, nn.Conv2d):
            (k, _), (s, _), (p, _), (d, _) = m.kernel_size, m.stride, m.padding, m.dilation
            if 2 * p != d * (k - 1):
                raise InvalidArgumentError(f"{m} is not a centred convolution; cannot tile it")
            radius += unit * Fraction(d * (k - 1), 2)
            unit *= s
        elif not isinstance(m, pointwise):
            raise InvalidArgumentError(f"{type(m).__name__} has no known receptive field; cannot tile it")
    return radius, unit


def halo_for(radius: Fraction, in_scale: Scale, out_scale: Scale, align: int = 1) -> int:
    """Smallest exact halo (latent units, a multiple of ``align``) for an input of
    ``in_scale`` pixels per latent unit whose outputs (``out_scale``) depend on it
    within ``radius`` latent units (see the module docstring)."""
    h = math.ceil(Fraction(radius) + max(Fraction(0), 1 / Fraction(in_scale) - 1 / Fraction(out_scale)))
    return -(-h // align) * align


# -----------------------------------------------------------------------------
# tiled execution
# -----------------------------------------------------------------------------
def run_tiled(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tuple[Tensor, Scale]],
    *,
    out_scale: Scale,
    tile: int,
    halo: int,
    align: int = 1,
) -> Tensor:
    """``fn(*inputs)`` computed tile by tile into one preallocated output.

    Args:
        fn: the transform; takes the inputs' regions in order, returns ``(B, C, h'·out_scale, w'·out_scale)``
            for a region of ``h' × w'`` latent units.
        inputs: ``(tensor, scale)`` pairs; ``scale`` is pixels per latent unit. The
            first input sets the latent grid (its size / its scale); the others
            must cover it (an input of scale < 1 may be larger by its padding).
        out_scale: output pixels per latent unit.
        tile: tile side in latent units (a multiple of ``align``).
        halo: overlap on each side in latent units (a multiple of ``align``).
        align: tile starts and halos are multiples of this (so inputs of scale
            ``1/align`` are cut on whole pixels).

    Returns:
        The stitched output ``(B, C, H·out_scale, W·out_scale)`` for a grid of ``H × W``.
    """
    _positive(tile, "tile")
    _positive(align, "align")
    if isinstance(halo, bool) or not isinstance(halo, int) or halo < 0:
        raise InvalidArgumentError(f"halo={halo!r} must be a non-negative integer (latent units)")
    if tile % align or halo % align:
        raise InvalidArgumentError(f"tile={tile} and halo={halo} (latent units) must be multiples of {align}")
    gh, gw = (Fraction(n) / Fraction(inputs[0][1]) for n in inputs[0][0].shape[-2:])
    if gh.denominator != 1 or gw.denominator != 1:
        raise InvalidArgumentError(f"input of shape {tuple(inputs[0][0].shape)} is not a whole number of latent units at scale {inputs[0][1]}")
    gh, gw = int(gh), int(gw)
    if gh < 1 or gw < 1:
        raise InvalidArgumentError(f"input of shape {tuple(inputs[0][0].shape)} is empty: nothing to tile")
    S = Fraction(out_scale)
    out: Optional[Tensor] = None
    for a0 in range(0, gh, tile):
        for b0 in range(0, gw, tile):
            a1, b1 = min(a0 + tile, gh), min(b0 + tile, gw)
            lo_a, hi_a = max(a0 - halo, 0), min(a1 + halo, gh)
            lo_b, hi_b = max(b0 - halo, 0), min(b1 + halo, gw)
            parts = []
            for t, s in inputs:
                s = Fraction(s)
                ra = (math.floor(lo_a * s), math.ceil(hi_a * s))
                rb = (math.floor(lo_b * s), math.ceil(hi_b * s))
                parts.append(t[..., ra[0] : ra[1], rb[0] : rb[1]])
            token = _IN_TILE.set(True)
            try:
                y = fn(*parts)
            finally:
                _IN_TILE.reset(token)
            ca, cb = int((a0 - lo_a) * S), int((b0 - lo_b) * S)
            na, nb = int((a1 - a0) * S), int((b1 - b0) * S)
            if tuple(y.shape[-2:]) != (int((hi_a - lo_a) * S), int((hi_b - lo_b) * S)):
                raise InvalidArgumentError(
                    f"the tiled transform returned {tuple(y.shape)} for a {hi_a - lo_a}x{hi_b - lo_b} region; "
                    f"expected scale {out_scale} per latent unit"
                )
            if out is None:
                out = y.new_empty((*y.shape[:-2], int(gh * S), int(gw * S)))
            out[..., int(a0 * S) : int(a0 * S) + na, int(b0 * S) : int(b0 * S) + nb] = y[..., ca : ca + na, cb : cb + nb]
            del y, parts
    return out


#: a transform's exact halo (latent units), ``None`` when it does not tile, or a function
#: giving it (evaluated only when a call is tiled)
Halo = Union[int, None, Callable[[], Optional[int]]]


def _maybe_tiled(
    kind: str, fn: Callable[..., Tensor], inputs: Sequence[Tuple[Tensor, Scale]], out_scale: Scale,
    halo: Halo, stride: int, align: int,
) -> Tensor:
    cfg = current(kind)
    tensors = [t for t, _ in inputs]
    if cfg is None:
        return fn(*tensors)
    ph, pw = (int(Fraction(n) / Fraction(inputs[0][1]) * stride) for n in inputs[0][0].shape[-2:])
    if ph <= cfg.tile and pw <= cfg.tile:
        return fn(*tensors)
    halo = halo() if callable(halo) else halo
    if halo is None:  # a transform of unknown receptive field (CompressAI-style models): whole
        return fn(*tensors)
    check_tile(cfg.tile, stride * align)
    use = halo if cfg.halo is None else cfg.halo
    return run_tiled(fn, inputs, out_scale=out_scale, tile=cfg.tile // stride, halo=-(-use // align) * align, align=align)


def synthesize(
    fn: Callable[..., Tensor], latent: Tensor, *extra: Tuple[Tensor, Scale], halo: Halo, out_scale: int = 16,
    stride: int = 16, align: int = 1,
) -> Tensor:
    """``fn(latent, *extra tensors)``, tiled when a synthesis :func:`tiling` is in force
    and the output is larger than one tile.

    Args:
        fn: the synthesis; ``extra`` are further inputs with their scale (pixels per
            latent unit, e.g. ``(x_hat1, 16)``, ``(z_hat, Fraction(1, 4))``).
        halo: the transform's exact halo in latent units (:func:`halo_for`), a function
            returning it (called only when the call is tiled), or ``None``: the
            transform does not tile and runs whole.
        out_scale: output pixels per latent unit; ``stride``: image pixels per latent unit.
        align: tiles start on multiples of this many latent units.
    """
    if _SYNTHESIS_CHANNELS_LAST.get():
        fn = _on_channels_last(fn)
    return _maybe_tiled("synthesis", fn, [(latent, 1), *extra], out_scale, halo, stride, align)


def _on_channels_last(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    import torch

    def run(*tensors: Tensor) -> Tensor:
        args = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in tensors]
        return fn(*args).contiguous()

    return run


def analyze(
    fn: Callable[..., Tensor], image: Tensor, *extra: Tuple[Tensor, Scale], halo: Halo, stride: int = 16, align: int = 1,
) -> Tensor:
    """``fn(image, *extra tensors)`` → latent, tiled when an analysis :func:`tiling` is in
    force and the image is larger than one tile (``extra``: further inputs with
    their scale, e.g. a quality map ``(q, 16)``; ``halo`` as in :func:`synthesize`)."""
    return _maybe_tiled("analysis", fn, [(image, stride), *extra], 1, halo, stride, align)

