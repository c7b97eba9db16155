"""The gained mean-scale hyperprior shared by both RDC branches (Cui et al., CVPR 2021).

A latent ``y`` and its hyper-latent ``z`` are each scaled by a
:class:`~compressai_rdc.layers.gain.ChannelGainUnit` at rate ``r`` before
quantisation; ``h_s`` predicts the *ungained* latent's ``(σ, μ)``, which the
gain unit maps into the gained domain::

    y ─► ×g(r) ─► y_g ─► h_a ─► ×g_z(r) ─► z_g ─► Q ─► ẑ_g ─► ×g'_z(r) ─► h_s ─► σ, μ ─► ×g(r) ─► σ_g, μ_g
                   │                                                                              │
                   └──────────────────────────────► Q (Gaussian conditional) ─► ŷ_g ◄──────────────┘

:class:`GainedHyperprior` is the mixin a branch inherits for this: it expects
the attributes ``h_s``, ``gain``, ``hyper_gain``, ``entropy_bottleneck`` and
``gaussian_conditional`` (so state-dict keys stay those of the branch) and
gives ``hyper_params``, ``quantize_hyperprior`` (training/analysis pass),
``compress_hyper`` / ``decompress_hyper`` (the coding path) and ``rate_bits``
(the estimate behind rate control).

Training and the rate estimate use the float path (``hyper_params``). The
coding path uses :meth:`GainedHyperprior.exact_hyper_params`: the
hyper-synthesis and the gains in fixed point
(:mod:`compressai_rdc.layers.fixed_point`), so encoder and decoder compute
bit-identical scale indexes and means on any machine, and a check value of
them (:mod:`compressai_rdc.entropy_check`) goes into the stream.
CompressAI 1.2.8's ``latent_codecs.GainHyperpriorLatentCodec`` applies one gain
vector per discrete level and owns its submodules under other names, so it
fits neither the continuous rate nor the shipped weights' keys.

Also here: :func:`hyper_size`, :func:`init_scale_bias` and the optional
thread pool for entropy-coding several substreams (:func:`map_substreams`).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from compressai.entropy_models import GaussianConditional
from compressai.ops import quantize_ste
from torch import Tensor, nn

from compressai_rdc.container import EntropyCheck
from compressai_rdc.entropy_check import compute_check, table_crc, verify_check
from compressai_rdc.layers.fixed_point import exact_gain, fixed_point
from compressai_rdc.utils import tiling

__all__ = [
    "INIT_SCALE", "GainedHyperprior", "coding_params", "exact_mean_scale", "hyper_size", "init_scale_bias",
    "map_substreams", "quantize_hyperprior",
]

#: Initial predicted scale σ of an ungained latent (≈ its std at initialisation),
#: so that an untrained model's rate estimate matches its real bytes.
INIT_SCALE = 0.1


def hyper_size(latent_size) -> tuple:
    """Spatial size of the hyper-latent ``z`` for a latent of size ``(h, w)`` (stride 4, ceil)."""
    h, w = (int(s) for s in latent_size)
    return ((h + 3) // 4, (w + 3) // 4)


def init_scale_bias(last: nn.Conv2d, M: int, value: float = INIT_SCALE) -> None:
    """Start the scale half (first ``M`` channels) of a mean-scale ``h_s`` output at ``value``."""
    with torch.no_grad():
        last.bias[:M].fill_(value)


def exact_mean_scale(h_s: nn.Sequential, h_in: Tensor, size, gain: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """``(σ, μ)`` of a mean-scale ``h_s`` evaluated in fixed point, cropped to ``size``.

    ``h_in`` is the hyper-synthesis input; ``gain`` an optional exact (B, M)
    gain vector (:func:`~compressai_rdc.layers.fixed_point.exact_gain`) that
    multiplies both (one correctly rounded multiply each). Float64 on the CPU,
    the same bits on every machine.
    """
    out = fixed_point(h_s)(h_in)[..., : size[0], : size[1]]
    scales, means = out.chunk(2, 1)
    if gain is not None:
        g = gain[:, :, None, None]
        scales, means = scales * g, means * g
    return scales, means


def coding_params(gc: GaussianConditional, scales: Tensor, means: Tensor, device) -> Tuple[Tensor, Tensor]:
    """``(indexes, means)`` for ``gc.compress``/``decompress`` from exact ``(σ, μ)``:
    the table look-up is comparisons only; means are rounded once to float32."""
    return gc.build_indexes(scales).to(device), means.to(torch.float32).to(device)


class GainedHyperprior:
    """Mixin for an ``nn.Module`` holding ``h_s``, ``gain``, ``hyper_gain``,
    ``entropy_bottleneck`` and ``gaussian_conditional`` (see the module diagram)."""

    @property
    def analysis_halo(self) -> int:
        """Exact tiling halo of ``g_a`` in latent units (:mod:`compressai_rdc.utils.tiling`;
        2 for the conv/GDN stack of the branches: radius 30 px)."""
        return tiling.halo_for(tiling.chain_radius(self.g_a, Fraction(1, 16))[0], 16, 1)

    def hyper_params(self, z_hat: Tensor, rate: Tensor, size) -> Tuple[Tensor, Tensor]:
        """``(σ_g, μ_g)`` of the gained latent of spatial ``size`` from the decoded ``ẑ_g``
        (float path: training and rate estimates; coding uses :meth:`exact_hyper_params`).

        ``h_s`` upsamples by 4; its output is cropped to ``size`` (latents need
        only be multiples of 16 in the image)."""
        scales, means = self.h_s(self.hyper_gain.inverse(z_hat, rate))[..., : size[0], : size[1]].chunk(2, 1)
        return self.gain.gain_params(scales, means, rate)

    # historical name, kept for code written against the branches
    _params = hyper_params

    def quantize_hyperprior(self, y_g: Tensor, z_g: Tensor, rate: Tensor):
        """Training/analysis pass: ``(ŷ_g, μ_g, y likelihoods, z likelihoods)``.

        The synthesis path sees straight-through-rounded latents, the
        likelihoods the entropy models' own proxy (noise in training, rounding in eval).
        """
        _, z_lik = self.entropy_bottleneck(z_g)
        med = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z_g - med) + med
        scales, means = self.hyper_params(z_hat, rate, y_g.shape[-2:])
        _, y_lik = self.gaussian_conditional(y_g, scales, means=means)
        return quantize_ste(y_g - means) + means, means, y_lik, z_lik

    def exact_hyper_params(self, z_hat: Tensor, rate: Tensor, size) -> Tuple[Tensor, Tensor]:
        """:meth:`hyper_params` in fixed point: float64 ``(σ_g, μ_g)`` on the CPU, identical on every machine.

        ``ẑ_g · g'_z(r)`` with the exact inverse gain, the fixed-point ``h_s``,
        then ``× g(r)`` with the exact gain (rate rounded to 1/256)."""
        h_in = z_hat.detach().to("cpu", torch.float64) * exact_gain(self.hyper_gain.log_inv_gain, rate)[:, :, None, None]
        return exact_mean_scale(self.h_s, h_in, size, exact_gain(self.gain.log_gain, rate))

    def entropy_tables_crc(self) -> int:
        """CRC32 of this hyperprior's coding tables (part of the check value)."""
        return table_crc(self.entropy_bottleneck, self.gaussian_conditional)

    def compress_hyper(self, z_g: Tensor, rate: Tensor, size) -> Tuple[List[bytes], Tensor, Tensor, EntropyCheck]:
        """Entropy-code ``z_g``: ``(z strings, indexes, μ_g, check value)`` for the latent of ``size``."""
        z_strings = self.entropy_bottleneck.compress(z_g)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z_g.shape[-2:])
        indexes, means = coding_params(self.gaussian_conditional, *self.exact_hyper_params(z_hat, rate, size), z_g.device)
        return z_strings, indexes, means, compute_check(self.entropy_tables_crc(), indexes, means)

    def decompress_hyper(self, z_strings: Sequence[bytes], rate: Tensor, size, check: Optional[EntropyCheck] = None,
                         what: str = "hyperprior") -> Tuple[Tensor, Tensor]:
        """``(indexes, μ_g)`` from the z substream of a latent of spatial ``size``.

        With ``check`` (the encoder's value), raises
        :class:`~compressai_rdc.container.EntropyParameterMismatchError` (naming
        ``what``) unless the parameters are the encoder's."""
        z_hat = self.entropy_bottleneck.decompress(list(z_strings), hyper_size(size))
        indexes, means = coding_params(self.gaussian_conditional, *self.exact_hyper_params(z_hat, rate, size), z_hat.device)
        if check is not None:
            verify_check(check, self.entropy_tables_crc(), indexes, means, what)
        return indexes, means

    def rate_bits(self, y_g: Tensor, z_g: Tensor, rate: Tensor) -> float:
        """Estimated bits of ``y_g`` and ``z_g`` (eval mode: rounded latents)."""
        _, _, y_lik, z_lik = self.quantize_hyperprior(y_g, z_g, rate)
        return _bits(y_lik) + _bits(z_lik)


def _bits(likelihoods: Tensor) -> float:
    return float(torch.log(likelihoods.clamp_min(1e-9)).sum()) / -math.log(2)


def quantize_hyperprior(branch: nn.Module, y_g: Tensor, z_g: Tensor, rate: Tensor):
    """Function form of :meth:`GainedHyperprior.quantize_hyperprior` (older import path)."""
    return GainedHyperprior.quantize_hyperprior(branch, y_g, z_g, rate)


_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def map_substreams(fn: Callable, items: Sequence, parallel: bool) -> List:
    """``[fn(i) for i in items]``, on a shared 2-thread pool when ``parallel``.

    CompressAI's rANS call holds the GIL; only the tensor work around it
    (rounding, ``tolist``) can overlap. On the 2-core development machine this
    did not pay reliably (``tests/test_codec_bench.py``, group "residual
    layers": from −23 % to +4 % of the substreams' coding time, run to run), so
    callers keep it off by default. Results are identical either way.
    """
    global _pool
    if not parallel or len(items) < 2:
        return [fn(i) for i in items]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(2, thread_name_prefix="rdc-substreams")
    return list(_pool.map(fn, items))
