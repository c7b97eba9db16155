"""HEVRC: a quality-map-conditioned (conditional-encoder) image codec.

"Conditional Encoder-Based Adaptive Deep Image Compression with
Classification-Driven Semantic Awareness" (HEVRC), Electronics 12(13):2781,
2023, §3–4 (:data:`PAPER`), built
on the variable-rate codec of Song et al. (QMAP2021, ICCV 2021). A quality map
``q ∈ [0, 1]^{H×W}`` conditions the analysis and hyper-analysis transforms
through spatial feature transforms (:class:`~compressai_rdc.layers.sft.SFT`);
the decoder is conditioned on the hyper-latent ``ẑ`` only, so the map is never
transmitted::

    x (B,3,H,W) ─┐                                               ┌─> x̂
    q (B,1,H,W) ─┴─> g_a (SFT) ─> y ─Q─> ŷ ──────────> g_s(ŷ, ẑ) ┘
                       q ─┐        │        ▲ μ,σ          ▲
                          └─> h_a(y, q) ─> z ─Q─> ẑ ─> h_s ┘ (and ẑ itself)

Training uses a per-pixel Lagrangian ``λ(q) = t₁·exp(t₂·q)``
(:func:`compressai_rdc.qmap.lambda_map.lambda_map`, ``t₁``/``t₂`` set by the
training recipe's ``controls``); one model covers the whole
rate range, and spatially varying ``q`` moves bits between regions (ROI coding).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste
from torch import Tensor, nn

from compressai_rdc.container import EntropyCheck
from compressai_rdc.contract import CodecHooks
from compressai_rdc.entropy_check import compute_check, table_crc, verify_check
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers.sft import SFT, SFTResBlock
from compressai_rdc.models.gained_hyperprior import coding_params, exact_mean_scale
from compressai_rdc.utils import tiling

if TYPE_CHECKING:  # pragma: no cover
    from compressai_rdc.ratecontrol import Probe, RateControl

__all__ = ["HEVRC", "PAPER", "SPECS", "QmapConditionedAnalysis", "QmapConditionedHyperAnalysis", "HyperConditionedSynthesis", "check_qmap"]

QmapLike = Union[None, float, Tensor]

#: the one citation of the HEVRC paper used across the package
PAPER = (
    "HEVRC: 'Conditional Encoder-Based Adaptive Deep Image Compression with Classification-Driven "
    "Semantic Awareness', Electronics 12(13):2781, 2023"
)


def check_qmap(qmap: QmapLike, x: Tensor, default: float = 0.5, pad_multiple: int = 64) -> Tensor:
    """Validate a quality map against the input image and return it as a tensor.

    Args:
        qmap: ``None`` (uniform ``default``), a float in [0, 1] (uniform map) or
            a tensor ``(B, 1, H, W)`` / ``(1, 1, H, W)`` / ``(H, W)`` in [0, 1]
            with the spatial size of ``x``. A map of the size before
            :func:`~compressai_rdc.utils.padding.pad_to_multiple` (``x`` is
            that size padded to a multiple of ``pad_multiple`` at the
            bottom/right) is padded the same way (replicate), so maps of the original image work with
            :func:`compressai_rdc.codec.encode`.
        x: the image ``(B, 3, H, W)`` it conditions.
        default: the uniform value used for ``None``.
        pad_multiple: the codec's padding multiple.

    Returns:
        ``(B, 1, H, W)`` float tensor on ``x``'s device.

    Raises:
        InvalidArgumentError: wrong shape, size or values outside [0, 1].
    """
    b, _, h, w = x.shape
    if qmap is None:
        qmap = default
    if isinstance(qmap, (int, float)):
        if not 0.0 <= float(qmap) <= 1.0:
            raise InvalidArgumentError(f"qmap value {qmap} is outside [0, 1]")
        return x.new_full((b, 1, h, w), float(qmap))
    if not isinstance(qmap, Tensor):
        raise InvalidArgumentError(f"qmap must be None, a float or a tensor, got {type(qmap).__name__}")
    q = qmap.to(device=x.device, dtype=x.dtype)
    while q.dim() < 4:
        q = q[None]
    dh, dw = h - q.shape[-2], w - q.shape[-1]
    if q.dim() == 4 and (dh or dw) and dh == (-q.shape[-2]) % pad_multiple and dw == (-q.shape[-1]) % pad_multiple:
        q = F.pad(q, (0, dw, 0, dh), mode="replicate")  # the image was padded by codec.encode
    if q.dim() != 4 or q.shape[1] != 1 or q.shape[-2:] != (h, w) or q.shape[0] not in (1, b):
        raise InvalidArgumentError(
            f"qmap of shape {tuple(qmap.shape)} does not fit the image {tuple(x.shape)}; "
            f"expected ({b}, 1, {h}, {w}) or (1, 1, {h}, {w}) with values in [0, 1]"
        )
    qmin, qmax = float(q.min()), float(q.max())
    if qmin < 0.0 or qmax > 1.0 or q.isnan().any():
        raise InvalidArgumentError(f"qmap values must lie in [0, 1]; got range [{qmin:.4g}, {qmax:.4g}]")
    return q.expand(b, 1, h, w)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class QmapConditionedAnalysis(nn.Module):
    """Analysis transform ``y = g_a(x, q)`` with SFT conditioning at every scale.

    A condition pyramid is computed from ``concat(x, q)`` (QMAP2021) and
    downsampled alongside the main path::

        [x,q] ─cond─> c1 ─↓─> c2 ─↓─> c3 ─↓─> c4
        x ─conv↓─GDN─SFT(c1)─conv↓─GDN─SFT(c2)─conv↓─GDN─SFT(c3)─conv↓─SFTRes(c4)×2─conv─> y

    Args:
        N: channels of the hidden stages.
        M: channels of ``y``.
        cond_channels: channels of the condition pyramid (and SFT hidden width).
        in_channels: image channels.

    Shapes:
        x ``(B, 3, H, W)``, q ``(B, 1, H, W)`` → y ``(B, M, H/16, W/16)``.
    """

    def __init__(self, N: int = 128, M: int = 192, cond_channels: int = 64, in_channels: int = 3):
        super().__init__()
        P = cond_channels
        self.cond_in = nn.Sequential(conv(in_channels + 1, P, 3, 1), _lrelu(), conv(P, P, 1, 1))
        self.cond_down = nn.ModuleList(
            [nn.Sequential(conv(P, P, 3, 2), _lrelu(), conv(P, P, 1, 1)) for _ in range(4)]
        )
        self.convs = nn.ModuleList([conv(in_channels, N), conv(N, N), conv(N, N), conv(N, M)])
        self.gdns = nn.ModuleList([GDN(N) for _ in range(3)])
        self.sfts = nn.ModuleList([SFT(N, P, P) for _ in range(3)])
        self.res = nn.ModuleList([SFTResBlock(M, P, P) for _ in range(2)])
        self.out = conv(M, M, 3, 1)

    def stem(self, x: Tensor) -> Tensor:
        """``GDN(conv↓(x))``: the stages before the first SFT, which do not see ``q``
        (rate control computes them once per image and passes them to :meth:`forward`)."""
        return self.gdns[0](self.convs[0](x))

    def forward(self, x: Tensor, q: Tensor, stem: Optional[Tensor] = None) -> Tensor:
        """``y = g_a(x, q)``; ``stem``: :meth:`stem` of this ``x`` if already computed
        (the same operations either way, so the same ``y`` to the bit)."""
        c = self.cond_in(torch.cat([x, q], dim=1))
        h = self.stem(x) if stem is None else stem
        for i in range(3):
            c = self.cond_down[i](c)
            h = self.sfts[i](h if i == 0 else self.gdns[i](self.convs[i](h)), c)
        c = self.cond_down[3](c)
        h = self.convs[3](h)
        for blk in self.res:
            h = blk(h, c)
        return self.out(h)

    @property
    def halo(self) -> int:
        """Exact tiling halo in latent units (:mod:`compressai_rdc.utils.tiling`), one
        radius for ``x`` and ``q`` together (both at 16 pixels per latent unit)."""
        chain = tiling.chain_radius
        u = Fraction(1, 16)
        r_c, uc = chain(self.cond_in, u)
        r_h, uh = Fraction(0), u
        for i in range(3):
            rc, uc = chain(self.cond_down[i], uc)
            r_c += rc
            rh, uh = chain([self.convs[i]], uh)
            r_h = self.sfts[i].receptive_radius(r_h + rh, r_c, uh)
        rc, uc = chain(self.cond_down[3], uc)
        rh, uh = chain([self.convs[3]], uh)
        r_c, r_h = r_c + rc, r_h + rh
        for blk in self.res:
            r_h = blk.receptive_radius(r_h, r_c, uh)
        return tiling.halo_for(r_h + chain([self.out], uh)[0], 16, 1)


class QmapConditionedHyperAnalysis(nn.Module):
    """Hyper-analysis ``z = h_a(y, q)``: SFT-conditioned on ``concat(y, q↓)``::

        [y, q↓] ─cond─> d0 ─↓─> d1
        y ─conv3─SFT(d0)─LReLU─conv↓─SFT(d1)─LReLU─conv↓─> z

    Shapes:
        y ``(B, M, h, w)``, q ``(B, 1, H, W)`` → z ``(B, N, h/4, w/4)``.
    """

    def __init__(self, N: int = 128, M: int = 192, cond_channels: int = 64):
        super().__init__()
        P = cond_channels
        self.cond_in = nn.Sequential(conv(M + 1, P, 3, 1), _lrelu(), conv(P, P, 1, 1))
        self.cond_down = nn.Sequential(conv(P, P, 3, 2), _lrelu(), conv(P, P, 1, 1))
        self.conv0 = conv(M, N, 3, 1)
        self.sft0 = SFT(N, P, P)
        self.conv1 = conv(N, N, 5, 2)
        self.sft1 = SFT(N, P, P)
        self.conv2 = conv(N, N, 5, 2)

    def forward(self, y: Tensor, q: Tensor) -> Tensor:
        d0 = self.cond_in(torch.cat([y, F.adaptive_avg_pool2d(q, y.shape[-2:])], dim=1))
        d1 = self.cond_down(d0)
        h = F.leaky_relu(self.sft0(self.conv0(y), d0), 0.1)
        h = F.leaky_relu(self.sft1(self.conv1(h), d1), 0.1)
        return self.conv2(h)


class HyperConditionedSynthesis(nn.Module):
    """Synthesis ``x̂ = g_s(ŷ, ẑ)`` conditioned on the decoded hyper-latent (QMAP2021).

    The decoder cannot see ``q``; it reads the local quality from ``ẑ``
    (upsampled to ``ŷ``'s grid) together with ``ŷ``::

        ẑ ─up×4─┐
        ŷ ──────┴─cond─> e0 ─↑─> e1 ─↑─> e2 ─↑─> e3
        ŷ ─SFTRes(e0)×2─deconv↑─IGDN─SFT(e1)─deconv↑─IGDN─SFT(e2)─deconv↑─IGDN─SFT(e3)─deconv↑─> x̂

    Shapes:
        ŷ ``(B, M, h, w)``, ẑ ``(B, N, h/4, w/4)`` → x̂ ``(B, 3, 16h, 16w)``.
    """

    def __init__(self, N: int = 128, M: int = 192, cond_channels: int = 64, out_channels: int = 3):
        super().__init__()
        P = cond_channels
        self.z_up = nn.Sequential(deconv(N, N // 2), _lrelu(), deconv(N // 2, N // 4), _lrelu(), conv(N // 4, N // 4, 3, 1))
        self.cond_in = nn.Sequential(conv(M + N // 4, P, 3, 1), _lrelu(), conv(P, P, 1, 1))
        self.cond_up = nn.ModuleList([nn.Sequential(deconv(P, P, 3, 2), _lrelu(), conv(P, P, 1, 1)) for _ in range(3)])
        self.res = nn.ModuleList([SFTResBlock(M, P, P) for _ in range(2)])
        self.deconvs = nn.ModuleList([deconv(M, N), deconv(N, N), deconv(N, N), deconv(N, out_channels)])
        self.igdns = nn.ModuleList([GDN(N, inverse=True) for _ in range(3)])
        self.sfts = nn.ModuleList([SFT(N, P, P) for _ in range(3)])

    @property
    def halo(self) -> int:
        """Exact tiling halo in latent units (:mod:`compressai_rdc.utils.tiling`): one radius
        for both inputs, taken from the coarser ``ẑ`` (4 latent units per pixel), a multiple of 4."""
        chain = tiling.chain_radius
        r_e, u = chain(self.z_up, 4)
        r_e += chain(self.cond_in, u)[0]
        r_h = Fraction(0)
        for blk in self.res:
            r_h = blk.receptive_radius(r_h, r_e, u)
        for i in range(3):
            re, ue = chain(self.cond_up[i], u)
            rh, u = chain([self.deconvs[i], self.igdns[i]], u)
            r_e += re
            r_h = self.sfts[i].receptive_radius(r_h + rh, r_e, u)
        r_h += chain([self.deconvs[3]], u)[0]
        return tiling.halo_for(r_h, Fraction(1, 4), 16, align=4)

    #: inside a tile of a tiled decode, the last two stages (half and full resolution, ≈ 550 bytes
    #: per output pixel, most of the synthesis' memory) run in sub-tiles of this many latent units
    tail_tile: int = 32

    @property
    def tail_halo(self) -> int:
        """Exact halo (latent units) of :meth:`tail`, whose inputs ``h`` and ``e`` have 4 pixels per latent unit."""
        chain = tiling.chain_radius
        u = Fraction(1, 4)
        r_e, ue = chain(self.cond_up[2], u)
        r_h, uh = chain([self.deconvs[2], self.igdns[2]], u)
        r = self.sfts[2].receptive_radius(r_h, r_e, uh) + chain([self.deconvs[3]], uh)[0]
        return tiling.halo_for(r, 4, 16)

    def tail(self, h: Tensor, e: Tensor) -> Tensor:
        """The last two stages: ``h``, ``e`` at 4 pixels per latent unit → ``x̂`` (16)."""
        e = self.cond_up[2](e)
        h = self.sfts[2](self.igdns[2](self.deconvs[2](h)), e)
        del e
        return self.deconvs[3](h)

    def forward(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        zf = self.z_up(z_hat)[..., : y_hat.shape[-2], : y_hat.shape[-1]]
        e = self.cond_in(torch.cat([y_hat, zf], dim=1))
        del zf
        h = y_hat
        for blk in self.res:
            h = blk(h, e)
        for i in range(2):
            e = self.cond_up[i](e)
            h = self.sfts[i](self.igdns[i](self.deconvs[i](h)), e)
        if tiling.in_tile() and max(y_hat.shape[-2:]) > self.tail_tile:
            # one region of a tiled decode: its halo (20 latent units) makes it large, so the
            # high-resolution stages, whose own radius is under one latent unit, tile again
            return tiling.run_tiled(self.tail, [(h, 4), (e, 4)], out_scale=16, tile=self.tail_tile, halo=self.tail_halo)
        return self.tail(h, e)


class HEVRC(CodecHooks, CompressionModel):
    """Quality-map-conditioned mean-scale hyperprior codec (HEVRC / QMAP2021 family).

    One set of weights covers the whole rate range: ``q = 0`` everywhere gives
    the lowest rate, ``q = 1`` the highest, and a spatially varying map moves
    bits to the regions that matter (HEVRC §3.5).

    Args:
        N: channels of the hidden stages and of ``z``.
        M: channels of ``y``.
        cond_channels: channels of the SFT condition networks.
        default_qmap: uniform quality used when no map is given
            (``quality`` of the zoo selects it).

    Forward:
        ``forward(x, qmap=None)`` with ``x (B, 3, H, W)`` in [0, 1] and
        ``qmap (B, 1, H, W)`` in [0, 1] (or a float) returns
        ``{"x_hat", "y_hat", "likelihoods": {"y", "z"}, "qmap"}``; ``y_hat`` (the
        rounded latent the decoder sees) conditions the stage-3 discriminator
        ``D(f_d(ŷ, ẑ), ŷ, q)`` (HEVRC eqs. 13–14).
    """

    #: total down-sampling factor of ``g_a`` (block size of the ICM, §4.3)
    stride: int = 16
    #: zoo qualities 1..8 select a uniform default map q = (quality − 1) / 7
    QUALITIES = tuple(range(1, 9))
    #: padding multiple of the input (g_a and h_a strides), read by :mod:`compressai_rdc.codec`
    downsampling_factor: int = 64
    #: compress returns ``"checks"`` and decompress verifies them (:mod:`compressai_rdc.entropy_check`)
    entropy_checks: bool = True

    def __init__(
        self,
        N: int = 96,
        M: int = 128,
        cond_channels: int = 32,
        default_qmap: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= default_qmap <= 1.0:
            raise InvalidArgumentError(f"default_qmap {default_qmap} is outside [0, 1]")
        self.N, self.M, self.cond_channels = N, M, cond_channels
        self.default_qmap = float(default_qmap)
        self.g_a = QmapConditionedAnalysis(N, M, cond_channels)
        self.h_a = QmapConditionedHyperAnalysis(N, M, cond_channels)
        self.h_s = nn.Sequential(
            deconv(N, M), _lrelu(), deconv(M, M * 3 // 2), _lrelu(), conv(M * 3 // 2, M * 2, 3, 1)
        )
        self.g_s = HyperConditionedSynthesis(N, M, cond_channels)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    @classmethod
    def quality_kwargs(cls, quality: int) -> Dict[str, float]:
        """Zoo quality → the uniform quality of the default operating point."""
        return {"default_qmap": (quality - 1) / (len(cls.QUALITIES) - 1)}

    @staticmethod
    def stream_shape(height: int, width: int):
        """CompressAI ``shape`` of a padded (height, width) input: the hyper-latent size."""
        return (height // 64, width // 64)

    # -- helpers -----------------------------------------------------------------
    def _z_hat(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z_noisy, z_likelihoods = self.entropy_bottleneck(z)
        if not self.training:
            return z_noisy, z_likelihoods  # already round(z - median) + median
        medians = self.entropy_bottleneck._get_medians()
        return quantize_ste(z - medians) + medians, z_likelihoods

    def encode_latents(self, x: Tensor, qmap: QmapLike = None, stem: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Run the encoder side once: ``{"y", "z", "q"}``; ``stem``: ``g_a.stem(x)`` when
        already computed (rate control: it does not depend on the map)."""
        q = check_qmap(qmap, x, self.default_qmap, self.downsampling_factor)
        if stem is not None and tiling.current("analysis") is None:
            y = self.g_a(x, q, stem=stem)  # untiled: the stem of the whole image is reused as given
        else:
            halo = (lambda: self.g_a.halo) if isinstance(self.g_a, QmapConditionedAnalysis) else None  # None: a replaced g_a runs whole
            y = tiling.analyze(self.g_a, x, (q, 16), halo=halo)
        return {"y": y, "z": self.h_a(y, q), "q": q}

    def rate_likelihoods(self, x: Tensor, qmap: QmapLike = None) -> Dict[str, Tensor]:
        """Likelihoods of the quantised latents without running ``g_s`` (rate control)."""
        lat = self.encode_latents(x, qmap)
        z_hat, z_likelihoods = self._z_hat(lat["z"])
        scales, means = self.h_s(z_hat).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(lat["y"], scales, means=means)
        return {"y": y_likelihoods, "z": z_likelihoods}

    def rate_control(self, x: Tensor, control: str = "auto", **fixed: Any) -> "RateControl":
        """The Γ-level search of :func:`~compressai_rdc.ratecontrol.generic_rate_control`;
        each probe reuses ``g_a.stem(x)`` and entropy-codes its latents, so the
        estimate is the real payload and the final encode only packs a probe's strings."""
        from compressai_rdc.ratecontrol import generic_rate_control

        return generic_rate_control(self, x, control=control, level_estimator=self._coded_level_probe, **fixed)

    def _coded_level_probe(self, x: Tensor, qmap: Callable[[float], Tensor], fixed: Dict[str, Any]) -> Optional["Probe"]:
        """Probe of the level search on ``x`` ``(1, 3, H, W)`` (unpadded): ``qmap(t)`` is
        the map of level ``t``. The bytes of ``compress(t)`` are those of
        ``compress(x_padded, qmap=qmap(t))``: the same operations on the same tensors."""
        from compressai_rdc import codec
        from compressai_rdc.ratecontrol import Probe
        from compressai_rdc.utils.padding import pad_to_multiple

        if fixed:
            return None  # compress takes only qmap: codec.encode reports the stray controls
        xp, pad = pad_to_multiple(x, codec.pad_multiple(self))
        stem: Optional[Tensor] = None  # computed by the first probe (a control built only for its maps costs nothing)
        coded: Dict[float, Dict[str, Any]] = {}

        def compress(t: float) -> Dict[str, Any]:
            nonlocal stem
            if t not in coded:
                with torch.no_grad():
                    if stem is None:
                        stem = self.g_a.stem(xp)
                    coded[t] = self._code(self.encode_latents(xp, qmap(t), stem=stem))
            return coded[t]

        pixels = x.shape[-2] * x.shape[-1]
        # the whole container (format 3's header grows with its varint lengths): the real rate at t
        return Probe(lambda t: 8.0 * len(codec.pack_output(self, compress(t), tuple(x.shape), pad, {})) / pixels, compress,
                     exact=True)

    # -- CompressAI contract -------------------------------------------------------
    def forward(self, x: Tensor, qmap: QmapLike = None) -> Dict[str, Any]:
        lat = self.encode_latents(x, qmap)
        y = lat["y"]
        z_hat, z_likelihoods = self._z_hat(lat["z"])
        scales, means = self.h_s(z_hat).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = quantize_ste(y - means) + means  # decoder never trains on noisy latents
        x_hat = self.g_s(y_hat, z_hat)
        return {"x_hat": x_hat, "y_hat": y_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}, "qmap": lat["q"]}

    def _coding_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """``(indexes, means)`` of ``y`` from ``ẑ`` through the fixed-point ``h_s``
        (:func:`~compressai_rdc.models.gained_hyperprior.exact_mean_scale`): the same bits on every machine."""
        h, w = z_hat.shape[-2:]
        scales, means = exact_mean_scale(self.h_s, z_hat.detach().to("cpu", torch.float64), (4 * h, 4 * w))
        return coding_params(self.gaussian_conditional, scales, means, z_hat.device)

    def compress(self, x: Tensor, qmap: QmapLike = None) -> Dict[str, Any]:
        """Entropy-code ``x`` under ``qmap``; the map itself is not in the output.
        ``"checks"`` holds the entropy-parameter check value of ``y``."""
        return self._code(self.encode_latents(x, qmap))

    def _code(self, lat: Dict[str, Tensor]) -> Dict[str, Any]:
        """Entropy-code the latents of :meth:`encode_latents` (the second half of ``compress``)."""
        z = lat["z"]
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        indexes, means = self._coding_params(z_hat)
        y_strings = self.gaussian_conditional.compress(lat["y"], indexes, means=means)
        check = compute_check(table_crc(self.entropy_bottleneck, self.gaussian_conditional), indexes, means)
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:], "checks": [check]}

    def decompress(self, strings, shape, checks: Optional[Sequence[EntropyCheck]] = None) -> Dict[str, Tensor]:
        """Decode without the quality map (it is implied by ``ẑ``); ``checks`` (the
        encoder's ``compress()["checks"]``) is verified before ``y`` is decoded."""
        if len(strings) != 2:
            raise InvalidArgumentError(f"HEVRC.decompress expects 2 streams [y, z], got {len(strings)}")
        if checks is not None and len(checks) != 1:
            raise InvalidArgumentError(f"HEVRC streams hold 1 entropy-parameter check, got {len(checks)}")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        indexes, means = self._coding_params(z_hat)
        if checks is not None:
            verify_check(checks[0], table_crc(self.entropy_bottleneck, self.gaussian_conditional), indexes, means, "hevrc")
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        # tiles start on multiples of 4 latent units so that ẑ is cut on whole pixels
        x_hat = tiling.synthesize(self.g_s, y_hat, (z_hat, Fraction(1, 4)), halo=lambda: self.synthesis_halo, align=4)
        return {"x_hat": x_hat.clamp_(0, 1)}

    #: memory per padded pixel of a tiled decode outside the tiles: at most ≈ 60 from one 2048²
    #: measurement with 512-px tiles (``python benchmarks/tiled_memory.py``, docs/tiling.md), doubled
    tiled_decode_bytes_per_pixel: int = 128
    #: the SFT-conditioned analysis holds ≈ 2× the features per pixel of the RDC models (image and
    #: map paths); with 1024-px tiles (regions of 1280² with the halo) a 4096² encode peaked at
    #: 2085 MiB, above the 2 GB bound; 512-px tiles (docs/tiling.md, benchmarks/tiled_memory.py)
    encode_tile: int = 512

    @property
    def synthesis_halo(self) -> Optional[int]:
        """Tiling halo (latent units) of ``g_s`` (:mod:`compressai_rdc.utils.tiling`); ``None`` for a
        replaced ``g_s`` of unknown receptive field (decoded, and planned, untiled)."""
        return self.g_s.halo if isinstance(self.g_s, HyperConditionedSynthesis) else None

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], **kwargs: Any) -> "HEVRC":
        """Rebuild the model, inferring ``N``, ``M`` and ``cond_channels`` from tensor shapes."""
        N = state_dict["g_a.convs.0.weight"].size(0)
        M = state_dict["g_a.convs.3.weight"].size(0)
        P = state_dict["g_a.cond_in.0.weight"].size(0)
        net = cls(N=N, M=M, cond_channels=P, **kwargs)
        net.load_state_dict(state_dict)
        return net


# -----------------------------------------------------------------------------
# Zoo entry (registered by compressai_rdc._builtin.qmap; weights: compressai_rdc.zoo._weights)
# -----------------------------------------------------------------------------
SPECS: Dict[str, Dict[str, Any]] = {
    "hevrc": dict(
        cls=HEVRC,  # qualities and quality_kwargs: the class's QUALITIES and quality_kwargs
        description="quality-map-conditioned codec (SFT encoder, hyper-latent-conditioned decoder); one model, all rates",
        paper=f"{PAPER}, §3–4; Song et al., QMAP2021 (ICCV 2021)",
    ),
}
