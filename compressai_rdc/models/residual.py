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

from fractions import Fraction
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import conv
from torch import Tensor, nn

from compressai_rdc.container import EntropyCheck
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers.gain import ChannelGainUnit, RateLike, check_rate, normalising_range
from compressai_rdc.models._transforms import analysis, hyper_analysis, hyper_synthesis, synthesis
from compressai_rdc.models.controls import check_layers
from compressai_rdc.utils import tiling
from compressai_rdc.models.gained_hyperprior import (  # re-exported: their historical home
    INIT_SCALE,
    GainedHyperprior,
    hyper_size,
    init_scale_bias,
    map_substreams,
    quantize_hyperprior,
)

__all__ = ["INIT_SCALE", "ResidualScalableBranch", "check_layers", "hyper_size", "init_scale_bias", "quantize_hyperprior", "split_sizes"]

#: older name of :func:`~compressai_rdc.models.gained_hyperprior.map_substreams`
_map = map_substreams


def split_sizes(channels: int, layers: int) -> List[int]:
    """Channel counts of ``layers`` ordered groups covering ``channels`` (as equal as possible)."""
    if not (1 <= layers <= channels):
        raise InvalidArgumentError(f"layers={layers} must be in 1..{channels} (the residual latent's channels)")
    base, extra = divmod(channels, layers)
    return [base + (1 if i < extra else 0) for i in range(layers)]


class ResidualScalableBranch(GainedHyperprior, nn.Module):
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
        parallel: entropy-code the layer substreams on a thread pool (default False; see
            :func:`~compressai_rdc.models.gained_hyperprior.map_substreams`).
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
        y = tiling.analyze(lambda xt, x1t: self.g_a(torch.cat([xt - x1t, x1t], dim=1)), x, (x_hat1, 16), halo=lambda: self.analysis_halo)
        y_g = self.gain.gain(y, rho)
        z_g = self.hyper_gain.gain(self.h_a(y_g), rho)
        return y_g, z_g

    def synthesize(self, y_hat_g: Tensor, x_hat1: Tensor, rho: Tensor) -> Tensor:
        """Residual ``r̂`` (B, 3, H, W) from the gained latent and ``x̂₁`` (tiled under a
        synthesis :func:`~compressai_rdc.utils.tiling.tiling`: ``g_s`` and the full-resolution
        ``fuse`` run per tile, ``x̂₁`` cut to the same region)."""

        def synth(y: Tensor, x1: Tensor) -> Tensor:
            r0 = self.g_s(self.gain.inverse(y, rho))
            return r0 + self.fuse(torch.cat([r0, x1], dim=1))

        return tiling.synthesize(synth, y_hat_g, (x_hat1, 16), halo=lambda: self.synthesis_halo)

    @property
    def synthesis_halo(self) -> int:
        """Exact tiling halo (latent units) of ``g_s`` followed by the full-resolution ``fuse``."""
        radius = tiling.chain_radius(self.g_s)[0] + tiling.chain_radius(self.fuse, Fraction(1, 16))[0]
        return tiling.halo_for(radius, 1, 16)

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
        y_hat_g, means, y_lik, z_lik = self.quantize_hyperprior(y_g, z_g, rho)
        if k < K:
            mask = self._channel_mask(k, y_hat_g)
            y_hat_g = y_hat_g * mask + means * (1 - mask)
            y_lik = y_lik[:, : sum(self._sizes()[:k])]
        return {"r_hat": self.synthesize(y_hat_g, x_hat1, rho), "likelihoods": {"res_y": y_lik, "res_z": z_lik}}

    def compress(self, x: Tensor, x_hat1: Tensor, rate: RateLike = None, layers: Optional[int] = None) -> Dict[str, Any]:
        """Encode ``r = x − x̂₁``.

        Returns:
            ``{"strings": [res_z, layer 1, ..., layer k], "shape": latent size (H/16, W/16), "check"}``,
            each entry a list of B byte strings; ``check`` is the entropy-parameter
            check value of all ``M`` channels (every layer).
        """
        k = check_layers(layers, self.num_layers)
        rho = check_rate(rate, self.levels, x.shape[0], self.levels - 1, name="residual rate")
        y_g, z_g = self._encode_latents(x, x_hat1, rho)
        z_strings, indexes, means, check = self.compress_hyper(z_g, rho, y_g.shape[-2:])
        strings = [z_strings]
        groups = list(zip(*(t.split(self._sizes(), dim=1) for t in (y_g, indexes, means))))[:k]
        gc = self.gaussian_conditional
        strings += map_substreams(lambda g: gc.compress(g[0], g[1], means=g[2]), groups, self.parallel)
        return {"strings": strings, "shape": y_g.shape[-2:], "check": check}

    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int], x_hat1: Tensor, rate: RateLike = None,
                   check: Optional[EntropyCheck] = None) -> Dict[str, Tensor]:
        """Decode ``strings = [res_z, layer 1, ..., layer k]`` (any ``1 ≤ k ≤ K``);
        ``check`` (the encoder's check value) is verified before any layer is decoded.

        Returns:
            ``{"r_hat": (B, 3, H, W)}``; layers not present take their predicted means.
        """
        k = len(strings) - 1
        if not (1 <= k <= self.num_layers):
            raise InvalidArgumentError(f"expected res_z plus 1..{self.num_layers} layer strings, got {len(strings)} strings")
        rho = check_rate(rate, self.levels, x_hat1.shape[0], self.levels - 1, name="residual rate")
        indexes, means = self.decompress_hyper(strings[0], rho, tuple(int(v) for v in shape), check, "residual branch")
        groups = list(zip(indexes.split(self._sizes(), 1), means.split(self._sizes(), 1)))
        gc = self.gaussian_conditional
        parts = map_substreams(lambda j: gc.decompress(list(strings[1 + j]), groups[j][0], means=groups[j][1]), range(k), self.parallel)
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
