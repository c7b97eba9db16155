"""Channel gain units: continuous variable rate for any latent (Cui et al., CVPR 2021).

Cui, Wang, Zhang, Zhao, Li, Chen, Kuo, "Asymmetric Gained Deep Image Compression
With Continuous Rate Adaptation", CVPR 2021; used as the channel-controllable
latent gain unit of the RDC primary branch (Liu et al., 2024, §3.2).

A gain unit holds ``L`` learned per-channel gain vectors ``g_l`` and inverse-gain
vectors ``g'_l`` (``l = 0..L-1``). The encoder scales the latent by ``g`` before
quantisation (larger gain = finer quantisation = more bits); the decoder scales
the dequantised latent by ``g'``. A real-valued rate ``r ∈ [0, L-1]`` between
levels ``i = ⌊r⌋`` and ``i+1`` uses the geometric interpolation::

    g(r) = g_i^(1-t) · g_{i+1}^t,      t = r - i

which is linear interpolation of the log-gains, so the rate varies smoothly.

::

    y (B,M,h,w) ──► × g(r) ──► Q ──► × g'(r) ──► ŷ
                     ▲                 ▲
              rate r ┴─────────────────┘

:meth:`ChannelGainUnit.gain_params` maps a hyperprior's prediction ``(σ, μ)`` of
the latent to ``(σ·g, μ·g)`` of the gained latent, so one hyperprior serves all
rates.

Gains are stored as logarithms (always positive) and initialised geometrically
from ``init_range[0]`` (level 0, lowest rate) to ``init_range[1]`` (level
``L-1``, highest rate) with ``g' = 1/g``, so an untrained model already orders
its rates.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError

RateLike = Union[None, int, float, Tensor]

__all__ = ["ChannelGainUnit", "RateLike", "check_rate", "normalising_range"]


def normalising_range(gain_range: Tuple[float, float]) -> Tuple[float, float]:
    """Initial range of a hyper-latent gain unit that undoes the latent gain's scale.

    The hyper-analysis sees the *gained* latent ``y·g(r)``, so its output ``z``
    grows with ``g(r)`` (32× from level 0 to level 7 with the default
    ``(2, 64)``). One factorized density then has to serve every rate and is fit
    to the widest ``z``: measured on the first released ``rdc-versatile``
    weights, ``z`` cost 0.064 bpp at rate 0 where a density fit to rate 0 would
    need 0.006. Gaining ``z`` by ``1/g(r)`` (and ``h_s`` reading ``ẑ·g(r)``)
    keeps ``z``'s distribution the same at every rate.
    """
    lo, hi = gain_range
    return (1.0 / lo, 1.0 / hi)


def check_rate(rate: RateLike, levels: int, batch: int, default: float, *, name: str = "rate") -> Tensor:
    """Validate a rate control and return it as a float tensor of shape (B,).

    Args:
        rate: ``None`` (use ``default``), a number in ``[0, levels-1]`` or a
            tensor of shape ``()`` or ``(B,)`` (per-sample levels, for training).
        levels: number of gain levels ``L``.
        batch: batch size ``B``.
        default: value used for ``None``.
        name: argument name used in error messages.

    Raises:
        InvalidArgumentError: naming ``name`` and the valid range.
    """
    hi = levels - 1
    if rate is None:
        rate = default
    if isinstance(rate, bool):
        raise InvalidArgumentError(f"{name}={rate!r} is invalid; valid: a float in [0, {hi}]")
    if isinstance(rate, (int, float)):
        if not math.isfinite(rate) or not (0 <= rate <= hi):
            raise InvalidArgumentError(f"{name}={rate!r} is outside the valid range [0, {hi}]")
        return torch.full((batch,), float(rate))
    if isinstance(rate, Tensor):
        r = rate.detach().float().reshape(-1)
        if r.numel() == 1:
            r = r.expand(batch)
        if r.numel() != batch:
            raise InvalidArgumentError(f"{name} tensor has {rate.numel()} values; expected 1 or the batch size {batch}")
        if not torch.isfinite(r).all() or (r < 0).any() or (r > hi).any():
            raise InvalidArgumentError(f"{name} values {r.tolist()} must lie in [0, {hi}]")
        return r
    raise InvalidArgumentError(f"{name}={rate!r} is invalid; valid: a float in [0, {hi}] or a (B,) tensor")


class ChannelGainUnit(nn.Module):
    """Learned per-channel gains with continuous rate interpolation.

    Args:
        channels: number of latent channels ``M``.
        levels: number of discrete gain levels ``L`` (>= 2).
        init_range: initial gain of level 0 and of level ``L-1``; levels in
            between are spaced geometrically. Usually increasing (more bits at
            higher levels); a decreasing range is valid too, e.g. for a hyper
            gain that cancels the latent gain's scale (:func:`normalising_range`).

    Shapes:
        ``gain(y, rate)`` and ``inverse(y_hat, rate)`` take and return
        ``(B, M, h, w)``; ``rate`` as in :func:`check_rate`.
    """

    def __init__(self, channels: int, levels: int = 8, init_range: Tuple[float, float] = (0.125, 1.0)):
        super().__init__()
        if channels < 1:
            raise InvalidArgumentError(f"channels={channels} must be >= 1")
        if levels < 2:
            raise InvalidArgumentError(f"levels={levels} must be >= 2 (one level is a fixed-rate model)")
        lo, hi = init_range
        if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
            raise InvalidArgumentError(f"init_range={init_range} must hold two positive finite gains (level 0, level L-1)")
        log_g = torch.linspace(math.log(lo), math.log(hi), levels).unsqueeze(1).repeat(1, channels)
        self.channels, self.levels = channels, levels
        #: log of the gain vectors, shape (L, M)
        self.log_gain = nn.Parameter(log_g.clone())
        #: log of the inverse-gain vectors, shape (L, M)
        self.log_inv_gain = nn.Parameter(-log_g.clone())

    @staticmethod
    def _interp(table: Tensor, rate: Tensor) -> Tensor:
        # table (L, M), rate (B,) in [0, L-1] -> log values (B, M)
        L = table.shape[0]
        rate = rate.to(table.device, table.dtype)
        i = rate.floor().clamp(0, L - 2).long()
        t = (rate - i.to(rate.dtype)).unsqueeze(1)
        return table[i] * (1 - t) + table[i + 1] * t

    def _rate(self, y: Tensor, rate: RateLike) -> Tensor:
        if y.dim() != 4 or y.shape[1] != self.channels:
            raise InvalidArgumentError(f"expected a latent of shape (B, {self.channels}, h, w), got {tuple(y.shape)}")
        return check_rate(rate, self.levels, y.shape[0], default=self.levels - 1)

    def gain_vector(self, rate: RateLike, batch: int = 1) -> Tensor:
        """Interpolated gains ``g(rate)`` of shape (B, M)."""
        return self._interp(self.log_gain, check_rate(rate, self.levels, batch, self.levels - 1)).exp()

    def inverse_gain_vector(self, rate: RateLike, batch: int = 1) -> Tensor:
        """Interpolated inverse gains ``g'(rate)`` of shape (B, M)."""
        return self._interp(self.log_inv_gain, check_rate(rate, self.levels, batch, self.levels - 1)).exp()

    def gain(self, y: Tensor, rate: RateLike = None) -> Tensor:
        """``y · g(rate)`` (encoder side, before quantisation)."""
        r = self._rate(y, rate)
        return y * self._interp(self.log_gain, r).exp()[:, :, None, None].to(y.dtype)

    def inverse(self, y_hat: Tensor, rate: RateLike = None) -> Tensor:
        """``ŷ · g'(rate)`` (decoder side, after dequantisation)."""
        r = self._rate(y_hat, rate)
        return y_hat * self._interp(self.log_inv_gain, r).exp()[:, :, None, None].to(y_hat.dtype)

    def gain_params(self, scales: Tensor, means: Tensor, rate: RateLike = None) -> tuple:
        """Map Gaussian parameters of the *ungained* latent to the gained one.

        If ``y ~ N(μ, σ)`` then ``y·g ~ N(μ·g, σ·g)``: a hyperprior that predicts
        the latent's own statistics stays valid at every rate, and its entropy
        model is calibrated from the first step. Shapes ``(B, M, h, w)``.
        """
        r = self._rate(scales, rate)
        g = self._interp(self.log_gain, r).exp()[:, :, None, None].to(scales.dtype)
        return scales * g, means * g

    forward = gain

    def extra_repr(self) -> str:
        return f"channels={self.channels}, levels={self.levels}"
