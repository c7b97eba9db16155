"""Fixed-point (integer-valued float64) evaluation of the entropy-parameter path.

A stream decodes only if the decoder computes *exactly* the scale indexes the
encoder used. Float32 convolutions give results that depend on the backend
(oneDNN on/off, thread count, GPU kernels: accumulation order, Winograd/FFT),
and ``exp`` is not correctly rounded across math libraries, so a scale can
land one ulp on the other side of a table boundary (CompressAI issue #279).
This module evaluates the hyper-synthesis and the gain vectors so that every
intermediate value is an exact dyadic number:

* **Hyper-synthesis** (:class:`FixedPointSequential`): weights are rounded to a
  ``2^-WEIGHT_BITS`` grid and activations to a ``2^-ACT_BITS`` grid (clamped to
  ``±ACT_LIMIT``); both are held as *integers* in float64. A convolution of
  integer tensors is a sum of integer products; as long as every partial sum
  stays below ``2^53`` each addition is exact, so the result is the same for
  any summation order, blocking, thread split or GEMM kernel (FMA included).
  The bound is checked from the actual weights when they are quantised
  (:class:`~compressai_rdc.errors.FixedPointRangeError` otherwise). The
  convolutions run on the CPU in float64 with ``torch.nn.functional.conv2d`` /
  ``conv_transpose2d``: PyTorch's CPU float64 path is im2col + GEMM (oneDNN
  has no float64 kernels), with no FFT or Winograd transform whose non-integer
  constants would break exactness. After each layer the result is rounded back
  to the activation grid (division by a power of two and ``torch.round`` are
  exact); LeakyReLU multiplies by its slope (one correctly rounded IEEE
  multiply) and rounds.
* **Gains** (:func:`exact_gain`): the rate is quantised to ``1/RATE_STEPS``,
  the log-gain table to ``2^-LOG_BITS``, so the interpolated log-gain is an
  exact integer; ``exp`` is ``2^n · p(f)`` with ``p`` a fixed polynomial
  evaluated with separate IEEE multiplies and adds in a fixed order, its
  mantissa rounded to ``GAIN_BITS`` bits and scaled by an exact power of two
  (``math.ldexp``). Every operation is a correctly rounded IEEE basic
  operation, so the gain vectors are identical on every machine.

Quantised weights are cached per module and recomputed when a parameter
changes (PyTorch bumps a tensor's version counter on every in-place update).

**Memory.** The float64 im2col of one 3×3 convolution over the whole latent
grid of a 4096² image takes about 1 GB (``rdc-versatile``: 240·9 columns ×
256² positions × 8 bytes). An output grid larger than :data:`TILE` per side
is therefore computed in overlapping tiles
(:func:`compressai_rdc.utils.tiling.run_tiled`, halo from the receptive
radius); every value is an exact integer, so the tiled result has the same
bits as the whole one (not merely the same up to rounding) and the streams do
not depend on it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compressai_rdc.errors import FixedPointRangeError, InvalidArgumentError

__all__ = [
    "ACT_BITS", "ACT_LIMIT", "EXACT_LIMIT", "GAIN_BITS", "LOG_BITS", "RATE_STEPS", "WEIGHT_BITS",
    "FixedPointSequential", "exact_gain", "fixed_point", "quantize_rate",
]

#: activations live on a 2^-ACT_BITS grid
ACT_BITS = 12
#: weights live on a 2^-WEIGHT_BITS grid (biases on the product grid 2^-(ACT_BITS + WEIGHT_BITS))
WEIGHT_BITS = 16
#: activations (and the hyper-synthesis input) are clamped to ±ACT_LIMIT
ACT_LIMIT = 1024
#: integers up to this magnitude are exact in float64
EXACT_LIMIT = 2**53
#: the rate is quantised to multiples of 1 / RATE_STEPS
RATE_STEPS = 256
#: log-gains are quantised to multiples of 2^-LOG_BITS
LOG_BITS = 20
#: gain mantissa bits (relative precision 2^-GAIN_BITS)
GAIN_BITS = 20
#: output grids larger than this (per side, in output pixels: latent units for ``h_s``) are
#: computed in tiles of this side (rounded up to the upsampling factor); same bits, bounded memory
TILE = 64

_DEVICE = torch.device("cpu")
_DTYPE = torch.float64


@dataclass(frozen=True)
class _Conv:
    weight: Tensor  # integer-valued float64, units 2^-WEIGHT_BITS
    bias: Optional[Tensor]  # integer-valued float64, units 2^-(ACT_BITS + WEIGHT_BITS)
    transposed: bool
    stride: Tuple[int, ...]
    padding: Tuple[int, ...]
    output_padding: Tuple[int, ...]
    dilation: Tuple[int, ...]
    groups: int


@dataclass(frozen=True)
class _LeakyReLU:
    slope: float


def _round_to(x: Tensor, bits: int) -> Tensor:
    """``round(x · 2^bits)`` as an integer-valued float64 tensor (exact: power-of-two scaling)."""
    return torch.round(x.detach().to(_DEVICE, _DTYPE) * float(2**bits))


def _quantise_conv(m: nn.Module, where: str) -> _Conv:
    transposed = isinstance(m, nn.ConvTranspose2d)
    w = _round_to(m.weight, WEIGHT_BITS)
    b = None if m.bias is None else _round_to(m.bias, ACT_BITS + WEIGHT_BITS)
    # fan-in of one output channel: Conv2d weight (out, in/g, kh, kw), ConvTranspose2d (in, out/g, kh, kw)
    fan = w.abs().sum(dim=(0, 2, 3) if transposed else (1, 2, 3))
    if transposed and m.groups > 1:
        fan = w.abs().reshape(m.groups, -1, *w.shape[1:]).sum(dim=(1, 3, 4)).reshape(-1)
    worst = float(fan.max()) * ACT_LIMIT * 2**ACT_BITS + (0.0 if b is None else float(b.abs().max()))
    if not worst < EXACT_LIMIT:
        raise FixedPointRangeError(
            f"{where}: a fixed-point output could reach {worst:.3g} units (|weights| sum {float(fan.max()) / 2**WEIGHT_BITS:.4g}, "
            f"activations ±{ACT_LIMIT}), above 2^53 where float64 stops being exact; valid: "
            f"sum of |weights| per output channel < {EXACT_LIMIT / (ACT_LIMIT * 2**(ACT_BITS + WEIGHT_BITS)):.4g}"
        )
    return _Conv(w, b, transposed, tuple(m.stride), tuple(m.padding),
                 tuple(m.output_padding) if transposed else (), tuple(m.dilation), m.groups)


class FixedPointSequential:
    """An ``nn.Sequential`` of ``Conv2d`` / ``ConvTranspose2d`` / ``LeakyReLU``
    evaluated in fixed point (see the module docstring).

    Calling it with a float tensor ``x`` returns float64 values on the CPU whose
    bits do not depend on the machine, thread count or backend flags.

    Raises:
        FixedPointRangeError: a layer type other than those three, or weights
            so large that a partial sum could leave float64's exact range.
    """

    def __init__(self, seq: nn.Sequential, name: str = "h_s"):
        self.layers: List[object] = []
        self.upsampling, self.halo = self._tiling_geometry(seq)
        for i, m in enumerate(seq):
            where = f"{name}[{i}] ({type(m).__name__})"
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                self.layers.append(_quantise_conv(m, where))
            elif isinstance(m, nn.LeakyReLU):
                self.layers.append(_LeakyReLU(float(m.negative_slope)))
            else:
                raise FixedPointRangeError(f"{where} has no fixed-point form; valid layers: Conv2d, ConvTranspose2d, LeakyReLU")

    @staticmethod
    def to_grid(x: Tensor) -> Tensor:
        """Float input → clamped integer activations (units 2^-ACT_BITS)."""
        lim = float(ACT_LIMIT * 2**ACT_BITS)
        return _round_to(x, ACT_BITS).clamp_(-lim, lim)

    @staticmethod
    def conv(a: Tensor, layer: _Conv) -> Tensor:
        """Integer convolution of integer activations ``a``: exact, units 2^-(ACT_BITS + WEIGHT_BITS)."""
        if layer.transposed:
            return F.conv_transpose2d(a, layer.weight, layer.bias, layer.stride, layer.padding,
                                      layer.output_padding, layer.groups, layer.dilation)
        return F.conv2d(a, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)

    @staticmethod
    def _tiling_geometry(seq: nn.Sequential) -> Tuple[int, Optional[int]]:
        """``(U, halo)``: output pixels per input pixel and the exact tiling halo in output
        pixels (a multiple of ``U``); ``halo`` is ``None`` when ``seq`` does not tile
        (a layer of unknown receptive field, or not an integer upsampling)."""
        from fractions import Fraction

        from compressai_rdc.utils import tiling

        try:
            _, unit_out = tiling.chain_radius(seq, 1)  # output pixel size in input pixels
        except InvalidArgumentError:
            return 1, None
        if unit_out <= 0 or (1 / unit_out).denominator != 1:
            return 1, None
        up = int(1 / unit_out)
        radius, _ = tiling.chain_radius(seq, up)  # in output pixels
        return up, tiling.halo_for(radius, Fraction(1, up), 1, align=up)

    def __call__(self, x: Tensor) -> Tensor:
        """The fixed-point evaluation of ``x`` (in tiles when the output grid is larger than :data:`TILE`)."""
        up, halo = self.upsampling, self.halo
        if halo is None or max(x.shape[-2:]) * up <= TILE:
            return self._whole(x)
        from fractions import Fraction

        from compressai_rdc.utils import tiling

        tile = -(-TILE // up) * up
        return tiling.run_tiled(self._whole, [(x, Fraction(1, up))], out_scale=1, tile=tile, halo=halo, align=up)

    def _whole(self, x: Tensor) -> Tensor:
        lim = float(ACT_LIMIT * 2**ACT_BITS)
        a = self.to_grid(x)
        acc = None  # a convolution's output, not yet rounded back to the activation grid
        for layer in self.layers:
            if acc is not None:
                a, acc = torch.round(acc / float(2**WEIGHT_BITS)).clamp_(-lim, lim), None
            if isinstance(layer, _Conv):
                acc = self.conv(a, layer)
            else:
                a = torch.where(a >= 0, a, torch.round(a * layer.slope))
        if acc is None:
            return a / float(2**ACT_BITS)
        return acc / float(2 ** (ACT_BITS + WEIGHT_BITS))


_cache: "weakref.WeakKeyDictionary[nn.Module, Tuple[Tuple, FixedPointSequential]]" = weakref.WeakKeyDictionary()


def fixed_point(seq: nn.Sequential, name: str = "h_s") -> FixedPointSequential:
    """The cached :class:`FixedPointSequential` of ``seq`` (requantised when a parameter changed)."""
    key = tuple((p.data_ptr(), p._version, tuple(p.shape)) for p in seq.parameters())
    hit = _cache.get(seq)
    if hit is not None and hit[0] == key:
        return hit[1]
    fp = FixedPointSequential(seq, name)
    _cache[seq] = (key, fp)
    return fp


# -----------------------------------------------------------------------------
# Gains
# -----------------------------------------------------------------------------
#: ln 2 and log2(e) as literals (parsing a literal is correctly rounded; ``math.log`` need not be)
_LN2 = 0.6931471805599453
_LOG2E = 1.4426950408889634


def _taylor(terms: int) -> Tuple[float, ...]:
    """ln2^k / k! for k < terms, by IEEE multiplies and divides only (no libm call)."""
    c = [1.0]
    for k in range(1, terms):
        c.append(c[-1] * _LN2 / k)
    return tuple(c)


#: Taylor coefficients of 2^f = exp(f·ln 2) on [0, 1), k = 0..13 (truncation error < 1e-13)
_EXP2_COEFFS = _taylor(14)
#: exact powers of two 2^-64 .. 2^64 (math.ldexp scales exactly)
_POW2_MIN, _POW2_MAX = -64, 64
_POW2 = torch.tensor([math.ldexp(1.0, k) for k in range(_POW2_MIN, _POW2_MAX + 1)], dtype=_DTYPE)


def quantize_rate(rate: Tensor) -> Tensor:
    """Rate in steps of ``1/RATE_STEPS``: an integer-valued float64 tensor (the exact path's rate)."""
    return torch.round(rate.detach().to(_DEVICE, _DTYPE) * float(RATE_STEPS))


def _exp2(y: Tensor) -> Tensor:
    """``2^y`` with a ``GAIN_BITS``-bit mantissa, from IEEE basic operations only."""
    n = torch.floor(y)
    f = y - n  # exact
    p = torch.full_like(f, _EXP2_COEFFS[-1])
    for c in reversed(_EXP2_COEFFS[:-1]):
        p = p * f
        p = p + c
    # p in [1, 2] (rounding can reach 2.0): mantissa on a 2^-GAIN_BITS grid
    mant = torch.round(p * float(2**GAIN_BITS))
    k = n.long() - GAIN_BITS
    if int(k.min()) < _POW2_MIN or int(k.max()) > _POW2_MAX:
        raise FixedPointRangeError(f"a gain of 2^{int(n.min())}..2^{int(n.max())} is outside the exact range 2^±{_POW2_MAX - GAIN_BITS}")
    return mant * _POW2[k - _POW2_MIN]


def exact_gain(log_table: Tensor, rate: Tensor) -> Tensor:
    """Gain vectors ``exp(interp(log_table, rate))`` (B, M) as exact dyadic float64 on the CPU.

    ``log_table`` is a gain unit's (L, M) log-gain table, ``rate`` a (B,) tensor
    in ``[0, L-1]``; the same geometric interpolation as
    :meth:`~compressai_rdc.layers.gain.ChannelGainUnit.gain_vector`, at the rate
    rounded to ``1/RATE_STEPS``; relative error at most ``2^-(LOG_BITS+1)`` (log-gain
    rounding) + ``2^-GAIN_BITS`` (mantissa rounding) + ~1e-13 (polynomial), i.e. < 2e-6.
    """
    L = log_table.shape[0]
    lg = _round_to(log_table, LOG_BITS)
    r = quantize_rate(rate)
    i = torch.clamp(torch.floor(r / RATE_STEPS), 0, L - 2)
    t = (r - i * RATE_STEPS).unsqueeze(1)
    i = i.long()
    x = lg[i] * (RATE_STEPS - t) + lg[i + 1] * t  # integers below 2^53 for |log g| < 2^24: exact
    return _exp2(x * (_LOG2E / 2**LOG_BITS / RATE_STEPS))  # one rounded multiply (the divisors are powers of 2)
