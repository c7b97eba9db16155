"""RDC: the rate-distortion-cognition controllable versatile codec.

Liu, Feng, Qi, Chen, Chen, Zeng, Jin, "Rate-Distortion-Cognition Controllable
Versatile Neural Image Compression", ECCV 2024.

Two branches share one bitstream::

                     rate r                                   rate ρ, layers k
                       │                                           │
    x ─► PrimaryBranch ┴─► substreams y, z ─► x̂₁ ─► ResidualScalableBranch ┴─► res z, layers 1..K ─► r̂
                                              │                                                       │
                                              └──────────────► x̄ = x̂₁ + (1 − β)·r̂ ◄────────────────┘

* :class:`PrimaryBranch` — cognition-oriented mean-scale hyperprior (Minnen et
  al., NeurIPS 2018, without the serial context model so decoding stays
  parallel) with :class:`~compressai_rdc.layers.gain.ChannelGainUnit` s on the
  latent and the hyper-latent: one model, continuous rate ``r ∈ [0, L−1]``.
* :class:`~compressai_rdc.models.residual.ResidualScalableBranch` — codes
  ``x − x̂₁`` in ``K`` ordered layers.
* :class:`RDCVersatile` — both, with decode-time ``β`` (cognition ⇄ distortion)
  and ``k`` (residual layers), chosen without re-encoding.

Bitstream mapping: ``compress`` returns CompressAI's ``{"strings", "shape"}``
with ``strings = [y, z, res_z, res_1, ..., res_k]`` (a prefix of the list is
always decodable); :meth:`RDCVersatile.encode` / :meth:`~RDCVersatile.decode` /
:meth:`~RDCVersatile.truncate` wrap it in a :mod:`compressai_rdc.container`
through :mod:`compressai_rdc.codec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import Tensor, nn

from compressai_rdc.container import EntropyCheck
from compressai_rdc.contract import CodecHooks
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers.gain import ChannelGainUnit, RateLike, check_rate, normalising_range
from compressai_rdc.models._transforms import analysis, hyper_analysis, hyper_synthesis, synthesis
from compressai_rdc.models.controls import check_beta, check_layers
from compressai_rdc.models.gained_hyperprior import INIT_SCALE, GainedHyperprior, hyper_size, init_scale_bias
from compressai_rdc.models.residual import ResidualScalableBranch
from compressai_rdc.utils import tiling

if TYPE_CHECKING:  # pragma: no cover
    from compressai_rdc.ratecontrol import Probe, RateControl

__all__ = ["GAIN_RANGE", "INIT_SCALE", "PAPER", "PrimaryBranch", "RDCVersatile", "SPECS", "check_beta", "hyper_size"]

#: Initial gains of level 0 and level L-1. A freshly initialised analysis
#: transform outputs latents of std ≈ 0.05; these gains make an untrained model
#: already span ≈ 0.2–4 bpp, strictly increasing with ``rate``
#: (tests/test_rdc_model.py), instead of rounding everything to zero.
GAIN_RANGE = (2.0, 64.0)


class PrimaryBranch(GainedHyperprior, nn.Module):
    """Mean-scale hyperprior with channel gain units on ``y`` and ``z``.

    ::

        x ─► analysis ─► y ─► ×g(r) ─► h_a ─► ×g_z(r) ─► Q ─► ẑ ─► ×g'_z(r) ─► h_s ─► μ, σ
                               │                                                    │
                               └──────────────────────► Q (GC) ─► ŷ ─► ×g'(r) ─► g_s ─► x̂₁

    Subclasses pass their own ``g_a`` / ``h_a`` to the constructor and
    override :meth:`analysis` / :meth:`hyper_analysis`, which receive
    extra conditioning keyword arguments (e.g. a quality map) from
    ``forward``/``compress``.

    Args:
        N: hidden channels; M: latent channels; levels: gain levels ``L``.
        gain_range: initial gain of the latent's gain unit at level 0 and level ``L-1`` (see :data:`GAIN_RANGE`).
        hyper_gain_range: the same for the hyper-latent's gain unit; default
            :func:`~compressai_rdc.layers.gain.normalising_range` of ``gain_range``
            (``z`` keeps one distribution at every rate, so one factorized density fits all).
        g_a, h_a: analysis and hyper-analysis transforms (default: the plain
            ones of :mod:`compressai_rdc.models._transforms`).
    """

    def __init__(
        self,
        N: int = 96,
        M: int = 160,
        levels: int = 8,
        gain_range: Tuple[float, float] = GAIN_RANGE,
        hyper_gain_range: Optional[Tuple[float, float]] = None,
        g_a: Optional[nn.Module] = None,
        h_a: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.N, self.M, self.levels = N, M, levels
        self.g_a = analysis(3, N, M) if g_a is None else g_a
        self.g_s = synthesis(N, M)
        self.h_a = hyper_analysis(N, M) if h_a is None else h_a
        self.h_s = hyper_synthesis(N, M)
        self.gain = ChannelGainUnit(M, levels, gain_range)
        self.hyper_gain = ChannelGainUnit(N, levels, hyper_gain_range or normalising_range(gain_range))
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        init_scale_bias(self.h_s[-1], M)

    # -- overridable hooks ---------------------------------------------------------
    def analysis(self, x: Tensor, **cond: Any) -> Tensor:
        """``y = g_a(x)``; (B,3,H,W) → (B,M,H/16,W/16)."""
        if cond:
            raise InvalidArgumentError(f"{type(self).__name__} takes no conditioning, got {sorted(cond)}")
        return tiling.analyze(self.g_a, x, halo=lambda: self.analysis_halo)

    def hyper_analysis(self, y_g: Tensor, **cond: Any) -> Tensor:
        """``z = h_a(y·g)``; (B,M,h,w) → (B,N,h/4,w/4)."""
        return self.h_a(y_g)

    def synthesize(self, y_hat: Tensor) -> Tensor:
        """``x̂₁ = g_s(ŷ)`` from the inverse-gained latent (tiled under a synthesis
        :func:`~compressai_rdc.utils.tiling.tiling`)."""
        return tiling.synthesize(self.g_s, y_hat, halo=lambda: self.synthesis_halo)

    @property
    def synthesis_halo(self) -> int:
        """Exact tiling halo of ``g_s`` in latent units (3 for the deconv/IGDN stack)."""
        return tiling.halo_for(tiling.chain_radius(self.g_s)[0], 1, 16)

    # -- pieces -------------------------------------------------------------------
    def _latents(self, x: Tensor, r: Tensor, cond: Dict[str, Any]):
        y_g = self.gain.gain(self.analysis(x, **cond), r)
        z_g = self.hyper_gain.gain(self.hyper_analysis(y_g, **cond), r)
        return y_g, z_g

    def forward(self, x: Tensor, rate: RateLike = None, **cond: Any) -> Dict[str, Any]:
        """Returns ``{"x_hat", "y_hat", "likelihoods": {"y", "z"}}``; the synthesis
        sees straight-through-rounded latents, the likelihoods the noise proxy (training)."""
        r = check_rate(rate, self.levels, x.shape[0], self.levels - 1)
        y_g, z_g = self._latents(x, r, cond)
        y_hat_g, _, y_lik, z_lik = self.quantize_hyperprior(y_g, z_g, r)
        y_hat = self.gain.inverse(y_hat_g, r)
        return {"x_hat": self.synthesize(y_hat), "y_hat": y_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    def compress(self, x: Tensor, rate: RateLike = None, **cond: Any) -> Dict[str, Any]:
        """Returns ``{"strings": [y, z], "shape": latent size (H/16, W/16), "y_hat", "check"}``
        where ``y_hat`` is the latent the decoder will reconstruct (for ``x̂₁`` on the encoder)
        and ``check`` the entropy-parameter check value (:mod:`compressai_rdc.entropy_check`)."""
        return self.compress_latent(self.analysis(x, **cond), rate, **cond)

    def compress_latent(self, y: Tensor, rate: RateLike = None, **cond: Any) -> Dict[str, Any]:
        """:meth:`compress` from ``y = analysis(x)`` (rate control reuses one analysis);
        ``"check"`` is the entropy-parameter check value of the ``y`` substream."""
        r = check_rate(rate, self.levels, y.shape[0], self.levels - 1)
        y_g = self.gain.gain(y, r)
        z_g = self.hyper_gain.gain(self.hyper_analysis(y_g, **cond), r)
        z_strings, indexes, means, check = self.compress_hyper(z_g, r, y_g.shape[-2:])
        y_strings = self.gaussian_conditional.compress(y_g, indexes, means=means)
        y_hat = self.gain.inverse(self.gaussian_conditional.quantize(y_g, "dequantize", means), r)
        return {"strings": [y_strings, z_strings], "shape": y_g.shape[-2:], "y_hat": y_hat, "check": check}

    def decompress(self, strings: Sequence[Sequence[bytes]], shape, rate: RateLike = None,
                   check: Optional[EntropyCheck] = None) -> Dict[str, Tensor]:
        """Decode ``[y, z]`` strings; returns ``{"x_hat", "y_hat"}`` (``x_hat`` not clamped).
        ``check``: the encoder's check value, verified before ``y`` is decoded."""
        r = check_rate(rate, self.levels, len(strings[1]), self.levels - 1)
        indexes, means = self.decompress_hyper(strings[1], r, shape, check, "primary branch")
        y_hat = self.gain.inverse(self.gaussian_conditional.decompress(list(strings[0]), indexes, means=means), r)
        return {"x_hat": self.synthesize(y_hat), "y_hat": y_hat}

    def latent_bits(self, y: Tensor, rate: RateLike, **cond: Any) -> float:
        """Estimated bits of an analysed latent ``y = analysis(x)`` at ``rate`` (eval mode).

        The gain acts after ``g_a`` (RDC §3.2), so rate control runs the analysis
        once and each probe costs only the gain, the hyperprior and the likelihoods;
        the same bits as :meth:`forward`'s likelihoods."""
        r = check_rate(rate, self.levels, y.shape[0], 0.0)
        with torch.no_grad():
            y_g = self.gain.gain(y, r)
            return self.rate_bits(y_g, self.hyper_gain.gain(self.hyper_analysis(y_g, **cond), r), r)

    @staticmethod
    def widths_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str = "") -> Dict[str, int]:
        return {
            "N": state_dict[prefix + "g_a.0.weight"].shape[0],
            "M": state_dict[prefix + "g_a.6.weight"].shape[0],
            "levels": state_dict[prefix + "gain.log_gain"].shape[0],
        }


class RDCVersatile(CodecHooks, CompressionModel):
    """The RDC versatile codec (registry key ``rdc-versatile``).

    Args:
        N, M: primary branch widths.
        levels: gain levels ``L`` shared by both branches (rate in ``[0, L−1]``).
        residual_N, residual_M: residual branch widths.
        residual_layers: number of scalable residual layers ``K``.
        default_rate: rate used when ``rate=None`` (the zoo's ``quality`` q sets ``q − 1``).
        residual_group_sizes: optional channel count per residual layer.
        primary: the primary branch, if not the plain :class:`PrimaryBranch` of
            ``N, M, levels`` (``rdc-qmap`` passes its conditioned one).
        default_beta: β used when a decode (or ``forward``) is given none. The zoo
            sets it from the weights' :attr:`~compressai_rdc.registry.WeightSpec.decode_beta`,
            so weights whose residual is untrained decode at β = 1 by default.

    Controls:
        ``rate`` (primary) and ``residual_rate`` (default: same as ``rate``) are
        floats in ``[0, L−1]``; ``layers`` in ``0..K``; ``beta`` in ``[0, 1]`` at decode.
        ``layers=None`` means "what the default decode reads": ``K`` layers, or
        none when ``default_beta`` is 1 (so rates count only bytes a decode reads).
    """

    #: zoo qualities; quality q selects gain level q − 1 of the one shared model
    QUALITIES = tuple(range(1, 9))

    @staticmethod
    def quality_kwargs(quality: int) -> Dict[str, float]:
        """Zoo quality ``q`` → default gain level ``q − 1``."""
        return {"default_rate": float(quality - 1)}

    def __init__(
        self,
        N: int = 96,
        M: int = 160,
        levels: int = 8,
        residual_N: int = 48,
        residual_M: int = 64,
        residual_layers: int = 4,
        default_rate: Optional[float] = None,
        residual_group_sizes: Optional[Sequence[int]] = None,
        residual_fuse_channels: int = 16,
        primary: Optional[PrimaryBranch] = None,
        default_beta: float = 0.0,
    ):
        super().__init__()
        self.primary = PrimaryBranch(N, M, levels) if primary is None else primary
        self.residual = ResidualScalableBranch(
            residual_N, residual_M, residual_layers, levels, residual_group_sizes, residual_fuse_channels, GAIN_RANGE
        )
        self.default_rate = float(levels - 1) if default_rate is None else default_rate
        check_rate(self.default_rate, levels, 1, 0.0, name="default_rate")
        self.default_beta = check_beta(default_beta)

    # -- attributes of the shared contract ---------------------------------------
    @property
    def levels(self) -> int:
        return self.primary.levels

    @property
    def residual_layers(self) -> int:
        return self.residual.num_layers

    #: compress returns ``"checks"`` and decompress verifies them (:mod:`compressai_rdc.entropy_check`)
    entropy_checks: bool = True
    #: the residual's rate and entropy check matter only to a decode that reads residual
    #: layers: a β = 1 stream (``layers=0``, or truncated to 0) leaves them out (format 4)
    refinement_controls = frozenset({"residual_rate"})
    refinement_checks: int = 1

    #: peak decoder memory per padded pixel, for :class:`compressai_rdc.limits.DecodeLimits`
    #: (384 measured at 768² for rdc-versatile and rdc-qmap: ``python benchmarks/decode_memory.py``)
    decode_bytes_per_pixel: int = 420
    #: memory per padded pixel of a tiled decode outside the tiles (latents, entropy decoding,
    #: guarded substreams, the output): 37 measured between 2048² and 4096² (docs/tiling.md,
    #: ``python benchmarks/tiled_memory.py``), with a margin for x̂₁ and r̂ of residual decodes
    tiled_decode_bytes_per_pixel: int = 64

    @property
    def symbols_per_pixel(self) -> float:
        """Latent symbols per padded pixel of the densest substream (sizes the decoder's zero
        guard, :func:`compressai_rdc.limits.guard_size`): ``y`` holds ``M`` symbols per 16×16
        pixels, a residual layer fewer (its group of the residual's ``M``)."""
        return max(self.primary.M, self.residual.M) / 256

    @property
    def synthesis_halo(self) -> int:
        """Tiling halo (latent units) of the decode's syntheses: the larger of the two branches'."""
        return max(self.primary.synthesis_halo, self.residual.synthesis_halo)

    @property
    def downsampling_factor(self) -> int:
        """Inputs need H and W multiples of 16 (the hyperprior is cropped to fit)."""
        return 2**4

    @staticmethod
    def stream_shape(height: int, width: int):
        """CompressAI ``shape`` of a padded (height, width) input: the latent size."""
        return (height // 16, width // 16)

    # -- controls -------------------------------------------------------------------
    def _rates(self, batch: int, rate: RateLike, residual_rate: RateLike):
        r = check_rate(rate, self.levels, batch, self.default_rate)
        rho = r if residual_rate is None else check_rate(residual_rate, self.levels, batch, self.default_rate, name="residual_rate")
        return r, rho

    def check_controls(self, rate=None, residual_rate=None, layers=None, beta=None) -> None:
        """Validate control values (used by :mod:`compressai_rdc.codec`)."""
        self._rates(1, rate, residual_rate)
        check_layers(layers, self.residual_layers)
        self._beta(beta)

    def _beta(self, beta: Optional[float]) -> float:
        return self.default_beta if beta is None else check_beta(beta)

    def _default_layers(self, layers: Optional[int], beta: Optional[float] = None) -> Optional[int]:
        """``layers=None`` at β = 1 means no residual layer (β = 1 never reads one)."""
        return 0 if layers is None and self._beta(beta) == 1.0 else layers

    def layers_read(self, beta: Optional[float] = None, layers: Optional[int] = None) -> Optional[int]:
        """Residual layers a decode with these controls reads (``None`` = all in the stream);
        :func:`compressai_rdc.codec.bytes_read` counts only those substreams."""
        return 0 if self._beta(beta) == 1.0 else layers

    def _scalar(self, value: RateLike, name: str) -> Optional[float]:
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise InvalidArgumentError(f"{name} must be one number when compressing (the stream stores a single value)")
            value = float(value)
        return value

    def stream_controls(self, rate=None, residual_rate=None, layers=None) -> Dict[str, float]:
        """Controls the decoder needs: the resolved ``rate`` and ``residual_rate``."""
        rate = self.default_rate if rate is None else self._scalar(rate, "rate")
        residual_rate = rate if residual_rate is None else self._scalar(residual_rate, "residual_rate")
        return {"rate": float(rate), "residual_rate": float(residual_rate)}

    @staticmethod
    def substream_layers(num_groups: int, **controls: Any) -> List[int]:
        """Layer tag of each string group: ``[y, z] → 0``, ``res_z → 1``, ``res_j → j``."""
        return [0, 0] + ([1] + list(range(1, num_groups - 2)) if num_groups > 2 else [])

    def rate_control(self, x: Tensor, control: str = "auto", **fixed: Any) -> "RateControl":
        """The gain search of :func:`~compressai_rdc.ratecontrol.generic_rate_control`; with
        ``layers=0`` each probe reuses one run of the primary analysis transform."""
        from compressai_rdc.ratecontrol import generic_rate_control

        return generic_rate_control(self, x, control=control, gain_estimator=self._primary_estimator, **fixed)

    def _primary_estimator(self, xp: Tensor, num_pixels: int, fixed: Dict[str, Any]) -> Optional["Probe"]:
        """With ``layers=0`` the probes and the final encode share one primary analysis."""
        from compressai_rdc.ratecontrol import Probe

        if self._default_layers(fixed.get("layers")) != 0:
            return None  # the residual depends on x̂₁(rate): each probe reruns it (no layers at β = 1 by default)
        cond = self._primary_cond(xp, fixed)
        with torch.no_grad():
            y = self.primary.analysis(xp, **cond)

        def compress(rate: float) -> Dict[str, Any]:
            out = self.primary.compress_latent(y, self._rates(1, float(rate), None)[0], **cond)
            return {"strings": list(out["strings"]), "shape": out["shape"], "checks": [out["check"]]}

        return Probe(lambda r: self.primary.latent_bits(y, float(r), **cond) / num_pixels, compress)

    def _primary_cond(self, x: Tensor, controls: Dict[str, Any]) -> Dict[str, Any]:
        """Conditioning of the primary branch for these controls (none here; ``rdc-qmap``: the map)."""
        return {}

    # -- CompressAI API --------------------------------------------------------------
    def forward(self, x: Tensor, rate: RateLike = None, layers: Optional[int] = None, residual_rate: RateLike = None) -> Dict[str, Any]:
        """Both branches, differentiably.

        Args:
            x: images (B, 3, H, W), H and W multiples of 16.
            rate: primary rate, float in ``[0, L−1]`` or a (B,) tensor.
            layers: residual layers ``0..K`` (default ``K``, or 0 when ``default_beta``
                is 1; 0 skips the residual).
            residual_rate: residual rate (default: ``rate``).

        Returns:
            ``{"x_hat": x̂₁ + (1 − β)·r̂ at β = default_beta, "x_hat_primary": x̂₁, "residual": r̂ or None,
            "likelihoods": {"y", "z"[, "res_y", "res_z"]}, "likelihoods_primary",
            "likelihoods_residual"}``.
        """
        return self._forward(x, rate, layers, residual_rate, {})

    def compress(self, x: Tensor, rate: RateLike = None, layers: Optional[int] = None, residual_rate: RateLike = None) -> Dict[str, Any]:
        """Encode both branches.

        Returns:
            ``{"strings": [y, z, res_z, res_1, ..., res_k], "shape": latent size (H/16, W/16), "checks"}``
            (``[y, z]`` only when ``layers=0``); each entry is a list of B byte strings;
            ``checks`` the entropy-parameter check value of the primary (and the residual) branch.
        """
        return self._compress(x, rate, layers, residual_rate, {})

    # -- shared by subclasses that condition the primary branch (rdc-qmap) ------------
    def _forward(self, x: Tensor, rate: RateLike, layers: Optional[int], residual_rate: RateLike, cond: Dict[str, Any]) -> Dict[str, Any]:
        k = check_layers(self._default_layers(layers), self.residual_layers)
        r, rho = self._rates(x.shape[0], rate, residual_rate)
        p = self.primary(x, r, **cond)
        x1 = p["x_hat"]
        out: Dict[str, Any] = {"x_hat": x1, "x_hat_primary": x1, "residual": None,
                               "likelihoods_primary": p["likelihoods"], "likelihoods_residual": {}}
        if k > 0:
            res = self.residual(x, x1, rho, k)
            x_hat = x1 + res["r_hat"] if self.default_beta == 0.0 else x1 + (1.0 - self.default_beta) * res["r_hat"]
            out.update(x_hat=x_hat, residual=res["r_hat"], likelihoods_residual=res["likelihoods"])
        out["likelihoods"] = {**out["likelihoods_primary"], **out["likelihoods_residual"]}
        return out

    def _compress(self, x: Tensor, rate: RateLike, layers: Optional[int], residual_rate: RateLike, cond: Dict[str, Any]) -> Dict[str, Any]:
        k = check_layers(self._default_layers(layers), self.residual_layers)
        r, rho = self._rates(x.shape[0], self._scalar(rate, "rate"), self._scalar(residual_rate, "residual_rate"))
        p = self.primary.compress(x, r, **cond)
        strings, checks = list(p["strings"]), [p["check"]]
        if k > 0:
            x1 = self.primary.synthesize(p["y_hat"])
            res = self.residual.compress(x, x1, rho, k)
            strings += res["strings"]
            checks.append(res["check"])
        return {"strings": strings, "shape": p["shape"], "checks": checks}

    def decompress(
        self,
        strings: Sequence[Sequence[bytes]],
        shape,
        rate: RateLike = None,
        beta: Optional[float] = None,
        layers: Optional[int] = None,
        residual_rate: RateLike = None,
        checks: Optional[Sequence[EntropyCheck]] = None,
    ) -> Dict[str, Tensor]:
        """Decode ``x̄ = x̂₁ + (1 − β)·r̂`` from the first ``layers`` residual layers.

        ``beta=1`` or ``layers=0`` decodes the primary substreams only;
        ``beta=None`` is ``default_beta``. ``checks``: the encoder's
        entropy-parameter check values (``compress()["checks"]``: primary, then
        residual when the stream has residual layers), verified before each
        branch decodes its ``y``; ``None`` skips the verification.
        """
        if not isinstance(strings, (list, tuple)) or len(strings) < 2 or len(strings) == 3:
            raise InvalidArgumentError("strings must be [y, z] or [y, z, res_z, res_1, ...]")
        available = max(len(strings) - 3, 0)
        if available > self.residual_layers:
            raise InvalidArgumentError(f"{available} residual layer strings; this model has {self.residual_layers}")
        k = check_layers(layers, available)
        beta = self._beta(beta)
        batch = len(strings[0])
        r, rho = self._rates(batch, rate, residual_rate)
        if checks is not None and not ((1 if len(strings) == 2 else 2) <= len(checks) <= 2):
            raise InvalidArgumentError(f"{len(checks)} entropy-parameter checks for {len(strings)} strings; expected one per branch coded "
                                       "(a stream truncated to its primary substreams keeps the residual's)")
        p = self.primary.decompress(strings[:2], shape, r, None if checks is None else checks[0])
        x1 = p["x_hat"]
        if k == 0 or beta == 1.0:
            return {"x_hat": x1.clamp_(0, 1)}
        r_hat = self.residual.decompress(list(strings[2 : 3 + k]), shape, x1, rho, None if checks is None else checks[1])["r_hat"]
        # x̂₁ + (1 − β)·r̂ in place (same rounding as the out-of-place sum; no third image buffer)
        return {"x_hat": r_hat.mul_(1.0 - beta).add_(x1).clamp_(0, 1)}

    # -- container bytes --------------------------------------------------------------
    def encode(self, x: Tensor, rate: Optional[float] = None, layers: Optional[int] = None, residual_rate: Optional[float] = None) -> bytes:
        """Container bytes of ``x`` (any size); see :func:`compressai_rdc.codec.encode`."""
        from compressai_rdc import codec

        return codec.encode(self, x, rate=rate, layers=layers, residual_rate=residual_rate)

    def decode(self, data: bytes, beta: Optional[float] = None, layers: Optional[int] = None) -> Tensor:
        """``x̄`` (B, 3, H, W) from container bytes; ``beta`` and ``layers`` chosen now."""
        from compressai_rdc import codec

        return codec.decode(data, self, beta=beta, layers=layers)

    @staticmethod
    def truncate(data: bytes, layers: int) -> bytes:
        """Drop residual layers > ``layers`` without decoding; see :func:`compressai_rdc.codec.truncate`."""
        from compressai_rdc import codec

        return codec.truncate(data, layers)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], **kwargs: Any) -> "RDCVersatile":
        """Rebuild a model whose widths, ``L`` and ``K`` are inferred from tensor shapes."""
        p = PrimaryBranch.widths_from_state_dict(state_dict, "primary.")
        r = ResidualScalableBranch.widths_from_state_dict(state_dict, "residual.")
        ctor = dict(
            N=p["N"], M=p["M"], levels=p["levels"], residual_N=r["N"], residual_M=r["M"],
            residual_layers=r["layers"], residual_group_sizes=r["group_sizes"], residual_fuse_channels=r["fuse_channels"],
        )
        ctor.update(kwargs)
        net = cls(**ctor)
        net.load_state_dict(state_dict)
        return net


# -----------------------------------------------------------------------------
# Zoo entry (registered by compressai_rdc._builtin.rdc; weights: compressai_rdc.zoo._weights)
# -----------------------------------------------------------------------------
PAPER = (
    "Liu, Feng, Qi, Chen, Chen, Zeng, Jin, 'Rate-Distortion-Cognition Controllable Versatile Neural "
    "Image Compression', ECCV 2024; gain units: Cui et al., CVPR 2021"
)

SPECS: Dict[str, Dict[str, Any]] = {
    "rdc-versatile": dict(
        cls=RDCVersatile,  # qualities and quality_kwargs: the class's QUALITIES and quality_kwargs
        description="RDC: gain-unit primary branch + scalable residual branch; rate, layers and beta in one model",
        paper=PAPER,
    ),
}
