"""The scalable residual branch of the RDC codec (Liu et al., 2024, §3.3).

Codes the residual ``r = x − x̂₁`` between an image and a first reconstruction
``x̂₁`` (any base codec). The encoder sees ``x`` and ``x̂₁``; the decoder sees
``x̂₁`` and the residual substreams. The residual latent is split into ``K``
ordered channel groups, each its own substream; a hyperprior ``z`` (its own
substream) predicts mean and scale of every group, so decoding only the first
``k ≤ K`` groups is valid: the missing groups take their predicted means.
The entropy model never depends on ``x̂₁``, so small floating-point
differences of ``x̂₁`` between encoder and decoder cannot break decoding.

::

    x, x̂₁ ─► cat(x−x̂₁, x̂₁) ─► g_a ─► y ─► ×g(ρ) ─┬─► h_a ─► ×g_z(ρ) ─► Q ─► ẑ ──┐ substream "res z"
                                                  │                              ▼ h_s(ẑ·g'_z)
                                                  │                      μ, σ of all groups
                                                  ▼                              │
                          groups y⁽¹⁾ … y⁽ᴷ⁾ ─► Q ─► substreams 1..K ◄───────────┘
    decoder:  ŷ⁽ʲ⁾ for j ≤ k, μ⁽ʲ⁾ for j > k ─► ×g'(ρ) ─► g_s ─► r₀
              r̂ = r₀ + fuse(cat(r₀, x̂₁))

``ρ`` is the residual rate (a :class:`~compressai_rdc.layers.gain.ChannelGainUnit`
level), so the residual's bitrate is controllable like the primary's.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import conv
from compressai.ops import quantize_ste
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers.gain import ChannelGainUnit, RateLike, check_rate, normalising_range
from compressai_rdc.models._transforms import analysis, hyper_analysis, hyper_synthesis, synthesis

__all__ = ["INIT_SCALE", "ResidualScalableBranch", "hyper_size", "init_scale_bias", "quantize_hyperprior", "split_sizes"]


def hyper_size(latent_size) -> tuple:
    """Spatial size of the hyper-latent ``z`` for a latent of size ``(h, w)`` (stride 4, ceil)."""
    h, w = (int(s) for s in latent_size)
    return ((h + 3) // 4, (w + 3) // 4)

#: Initial predicted scale σ of an ungained latent (≈ its std at initialisation),
#: so that an untrained model's rate estimate matches its real bytes.
INIT_SCALE = 0.1


def init_scale_bias(last: nn.Conv2d, M: int, value: float = INIT_SCALE) -> None:
    """Start the scale half (first ``M`` channels) of a mean-scale ``h_s`` output at ``value``."""
    with torch.no_grad():
        last.bias[:M].fill_(value)

_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def quantize_hyperprior(branch: nn.Module, y_g: Tensor, z_g: Tensor, rate: Tensor):
    """Training/forward pass of a gained mean-scale hyperprior, shared by both RDC branches.

    ``branch`` has ``entropy_bottleneck``, ``gaussian_conditional`` and
    ``_params(z_hat, rate, size) -> (scales, means)`` in the gained domain.
    Returns ``(y_hat_g, means, y_likelihoods, z_likelihoods)``: the synthesis
    path sees straight-through-rounded latents, the likelihoods the entropy
    models' own proxy (noise in training).
    """
    _, z_lik = branch.entropy_bottleneck(z_g)
    med = branch.entropy_bottleneck._get_medians()
    z_hat = quantize_ste(z_g - med) + med
    scales, means = branch._params(z_hat, rate, y_g.shape[-2:])
    _, y_lik = branch.gaussian_conditional(y_g, scales, means=means)
    return quantize_ste(y_g - means) + means, means, y_lik, z_lik


def _map(fn: Callable, items: Sequence, parallel: bool) -> List:
    """``[fn(i) for i in items]``, on a shared 2-thread pool when ``parallel``.

    CompressAI's rANS call holds the GIL; only the tensor work around it
    (rounding, ``tolist``) can overlap. On the 2-core development machine this
    did not pay reliably (``tests/test_codec_bench.py``, group "residual
    layers": from −23 % to +4 % of the substreams' coding time, run to run), so
    it is off by default. Results are identical either way.
    """
    global _pool
    if not parallel or len(items) < 2:
        return [fn(i) for i in items]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(2, thread_name_prefix="rdc-substreams")
    return list(_pool.map(fn, items))


def split_sizes(channels: int, layers: int) -> List[int]:
    """Channel counts of ``layers`` ordered groups covering ``channels`` (as equal as possible)."""
    if not (1 <= layers <= channels):
        raise InvalidArgumentError(f"layers={layers} must be in 1..{channels} (the residual latent's channels)")
    base, extra = divmod(channels, layers)
    return [base + (1 if i < extra else 0) for i in range(layers)]


def check_layers(layers: Optional[int], available: int, *, name: str = "layers") -> int:
    """``layers`` as an int in ``0..available`` (``None`` = ``available``)."""
    if layers is None:
        return available
    if isinstance(layers, bool) or not isinstance(layers, int) or not (0 <= layers <= available):
        raise InvalidArgumentError(f"{name}={layers!r} is invalid; valid: 0..{available}")
    return layers


class ResidualScalableBranch(nn.Module):
    """Scalable, rate-controllable coder of ``r = x − x̂₁`` given ``x̂₁``.

    Args:
        N: hidden channels of the transforms.
        M: channels of the residual latent (split into ``layers`` groups).
        layers: number of ordered refinement layers ``K``.
        levels: gain levels ``L`` of the residual rate control.
        group_sizes: explicit channel count of each layer (sums to ``M``);
            default: :func:`split_sizes`.
        fuse_channels: width of the full-resolution fusion with ``x̂₁``.
        gain_range: initial gain of the residual latent's gain unit at level 0 and ``L-1``.
        hyper_gain_range: the same for the hyper-latent; default
            :func:`~compressai_rdc.layers.gain.normalising_range` of ``gain_range``.

    Attributes:
        parallel: entropy-code the layer substreams on a thread pool (default False; see :func:`_map`).
    """

    parallel: bool = False

    def __init__(
        self,
        N: int = 48,
        M: int = 64,
        layers: int = 4,
        levels: int = 8,
        group_sizes: Optional[Sequence[int]] = None,
        fuse_channels: int = 16,
        gain_range: Tuple[float, float] = (2.0, 64.0),
        hyper_gain_range: Optional[Tuple[float, float]] = None,
    ):
        super().__init__()
        sizes = list(group_sizes) if group_sizes is not None else split_sizes(M, layers)
        if len(sizes) != layers or sum(sizes) != M or min(sizes) < 1:
            raise InvalidArgumentError(f"group_sizes={sizes} must be {layers} positive counts summing to M={M}")
        self.N, self.M, self.levels, self.fuse_channels = N, M, levels, fuse_channels
        self.g_a = analysis(6, N, M)
        self.h_a = hyper_analysis(N, M)
        self.h_s = hyper_synthesis(N, M)
        self.g_s = synthesis(N, M)
        self.fuse = nn.Sequential(
            conv(6, fuse_channels, kernel_size=3, stride=1), nn.LeakyReLU(inplace=True),
            conv(fuse_channels, 3, kernel_size=3, stride=1),
        )
        self.gain = ChannelGainUnit(M, levels, gain_range)
        self.hyper_gain = ChannelGainUnit(N, levels, hyper_gain_range or normalising_range(gain_range))
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        init_scale_bias(self.h_s[-1], M)
        #: channel count of each refinement layer (persisted so widths can be inferred)
        self.register_buffer("group_sizes", torch.tensor(sizes, dtype=torch.int64))

    # -- properties -------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Number of refinement layers ``K``."""
        return int(self.group_sizes.numel())

    def _sizes(self) -> List[int]:
        return [int(s) for s in self.group_sizes.tolist()]

    def _channel_mask(self, layers: int, like: Tensor) -> Tensor:
        keep = sum(self._sizes()[:layers])
        mask = torch.zeros(1, self.M, 1, 1, dtype=like.dtype, device=like.device)
        mask[:, :keep] = 1
        return mask

    # -- shared pieces ------------------------------------------------------------
    def _encode_latents(self, x: Tensor, x_hat1: Tensor, rho: Tensor):
        y = self.g_a(torch.cat([x - x_hat1, x_hat1], dim=1))
        y_g = self.gain.gain(y, rho)
        z_g = self.hyper_gain.gain(self.h_a(y_g), rho)
        return y_g, z_g

    def _params(self, z_hat: Tensor, rho: Tensor, size):
        scales, means = self.h_s(self.hyper_gain.inverse(z_hat, rho))[..., : size[0], : size[1]].chunk(2, 1)
        return self.gain.gain_params(scales, means, rho)

    def synthesize(self, y_hat_g: Tensor, x_hat1: Tensor, rho: Tensor) -> Tensor:
        """Residual ``r̂`` (B, 3, H, W) from the gained latent and ``x̂₁``."""
        r0 = self.g_s(self.gain.inverse(y_hat_g, rho))
        return r0 + self.fuse(torch.cat([r0, x_hat1], dim=1))

    # -- CompressAI-style API ----------------------------------------------------
    def forward(self, x: Tensor, x_hat1: Tensor, rate: RateLike = None, layers: Optional[int] = None) -> Dict[str, Any]:
        """Training/analysis pass.

        Args:
            x: images (B, 3, H, W).
            x_hat1: base reconstruction (B, 3, H, W).
            rate: residual rate in ``[0, L-1]`` or a (B,) tensor (default ``L-1``).
            layers: refinement layers used, ``1..K`` (default ``K``).

        Returns:
            ``{"r_hat": (B,3,H,W), "likelihoods": {"res_y": first layers' channels, "res_z"}}``.
            Synthesis sees straight-through-rounded latents; likelihoods use
            the noise proxy in training mode.
        """
        K = self.num_layers
        k = check_layers(layers, K)
        if k == 0:
            raise InvalidArgumentError("layers=0 codes no residual; skip the branch instead")
        rho = check_rate(rate, self.levels, x.shape[0], self.levels - 1, name="residual rate")
        y_g, z_g = self._encode_latents(x, x_hat1, rho)
        y_hat_g, means, y_lik, z_lik = quantize_hyperprior(self, y_g, z_g, rho)
        if k < K:
            mask = self._channel_mask(k, y_hat_g)
            y_hat_g = y_hat_g * mask + means * (1 - mask)
            y_lik = y_lik[:, : sum(self._sizes()[:k])]
        return {"r_hat": self.synthesize(y_hat_g, x_hat1, rho), "likelihoods": {"res_y": y_lik, "res_z": z_lik}}

    def compress(self, x: Tensor, x_hat1: Tensor, rate: RateLike = None, layers: Optional[int] = None) -> Dict[str, Any]:
        """Encode ``r = x − x̂₁``.

        Returns:
            ``{"strings": [res_z, layer 1, ..., layer k], "shape": latent size (H/16, W/16)}``,
            each entry a list of B byte strings.
        """
        k = check_layers(layers, self.num_layers)
        rho = check_rate(rate, self.levels, x.shape[0], self.levels - 1, name="residual rate")
        y_g, z_g = self._encode_latents(x, x_hat1, rho)
        z_strings = self.entropy_bottleneck.compress(z_g)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z_g.shape[-2:])
        scales, means = self._params(z_hat, rho, y_g.shape[-2:])
        indexes = self.gaussian_conditional.build_indexes(scales)
        strings = [z_strings]
        groups = list(zip(*(t.split(self._sizes(), dim=1) for t in (y_g, indexes, means))))[:k]
        gc = self.gaussian_conditional
        strings += _map(lambda g: gc.compress(g[0], g[1], means=g[2]), groups, self.parallel)
        return {"strings": strings, "shape": y_g.shape[-2:]}

    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int], x_hat1: Tensor, rate: RateLike = None) -> Dict[str, Tensor]:
        """Decode ``strings = [res_z, layer 1, ..., layer k]`` (any ``1 ≤ k ≤ K``).

        Returns:
            ``{"r_hat": (B, 3, H, W)}``; layers not present take their predicted means.
        """
        k = len(strings) - 1
        if not (1 <= k <= self.num_layers):
            raise InvalidArgumentError(f"expected res_z plus 1..{self.num_layers} layer strings, got {len(strings)} strings")
        rho = check_rate(rate, self.levels, x_hat1.shape[0], self.levels - 1, name="residual rate")
        z_hat = self.entropy_bottleneck.decompress(list(strings[0]), hyper_size(shape))
        scales, means = self._params(z_hat, rho, tuple(int(v) for v in shape))
        indexes = self.gaussian_conditional.build_indexes(scales)
        groups = list(zip(indexes.split(self._sizes(), 1), means.split(self._sizes(), 1)))
        gc = self.gaussian_conditional
        parts = _map(lambda j: gc.decompress(list(strings[1 + j]), groups[j][0], means=groups[j][1]), range(k), self.parallel)
        parts += [m_j for _, m_j in groups[k:]]
        return {"r_hat": self.synthesize(torch.cat(parts, dim=1), x_hat1, rho)}

    @staticmethod
    def widths_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str = "") -> Dict[str, Any]:
        """Constructor kwargs inferred from tensor shapes (``prefix`` e.g. ``"residual."``)."""
        sizes = state_dict[prefix + "group_sizes"].tolist()
        return {
            "N": state_dict[prefix + "g_a.0.weight"].shape[0],
            "M": state_dict[prefix + "g_a.6.weight"].shape[0],
            "layers": len(sizes),
            "group_sizes": [int(s) for s in sizes],
            "levels": state_dict[prefix + "gain.log_gain"].shape[0],
            "fuse_channels": state_dict[prefix + "fuse.0.weight"].shape[0],
        }
