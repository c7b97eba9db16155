"""RDC with a quality map: ROI bit allocation, decode-time β and target rate in one model.

The RDC primary branch (:class:`~compressai_rdc.models.rdc.PrimaryBranch`:
mean-scale hyperprior with channel gain units) gets HEVRC's conditional
encoder: its analysis and hyper-analysis transforms are the SFT-conditioned
ones of :mod:`compressai_rdc.models.hevrc`. The scalable residual branch is
RDC's own. The gain ``rate`` sets the overall rate, the map ``q`` moves bits
between regions, and ``β`` / ``layers`` pick the cognition–distortion point at
decode time::

                 q (B,1,H,W)            rate r
                   │  │                   │
    x ─► g_a(x, q) ┘  └─ h_a(y·g, q) ─► ×g_z(r) ─► ẑ ─► μ,σ
            │                                            │
            └─► ×g(r) ─────────────────────────────► ŷ ─► g_s ─► x̂₁ ─► residual branch (layers, β)

The map is not transmitted: the decoder reads ``ŷ`` and ``ẑ`` only, so a stream
decodes exactly like an ``rdc-versatile`` stream.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers.gain import RateLike
from compressai_rdc.models.hevrc import PAPER as HEVRC_PAPER
from compressai_rdc.models.hevrc import QmapConditionedAnalysis, QmapConditionedHyperAnalysis, QmapLike, check_qmap
from compressai_rdc.models.rdc import PrimaryBranch, RDCVersatile
from compressai_rdc.models.residual import ResidualScalableBranch
from compressai_rdc.utils import tiling

__all__ = ["QmapPrimaryBranch", "RDCQmap", "SPECS"]


class QmapPrimaryBranch(PrimaryBranch):
    """RDC primary branch whose ``g_a`` and ``h_a`` are SFT-conditioned on a quality map.

    Args:
        N, M, levels: as :class:`~compressai_rdc.models.rdc.PrimaryBranch`.
        cond_channels: channels of the SFT condition networks.
        **kwargs: further ``PrimaryBranch`` arguments (``gain_range``).

    Conditioning keyword: ``qmap`` ``(B, 1, H, W)`` in [0, 1] (already validated).
    """

    def __init__(self, N: int = 96, M: int = 160, levels: int = 8, cond_channels: int = 32, **kwargs: Any):
        g_a = QmapConditionedAnalysis(N, M, cond_channels)
        h_a = QmapConditionedHyperAnalysis(N, M, cond_channels)
        super().__init__(N, M, levels, g_a=g_a, h_a=h_a, **kwargs)
        self.cond_channels = cond_channels

    def analysis(self, x: Tensor, qmap: Optional[Tensor] = None, **cond: Any) -> Tensor:
        if qmap is None:
            qmap = check_qmap(None, x)
        return tiling.analyze(self.g_a, x, (qmap, 16), halo=lambda: self.analysis_halo)

    @property
    def analysis_halo(self) -> Optional[int]:
        """Exact tiling halo of the SFT-conditioned ``g_a`` (``None``: a replaced ``g_a`` of unknown receptive field, run whole)."""
        return self.g_a.halo if isinstance(self.g_a, QmapConditionedAnalysis) else None

    def hyper_analysis(self, y_g: Tensor, qmap: Optional[Tensor] = None, **cond: Any) -> Tensor:
        if qmap is None:
            qmap = y_g.new_full((y_g.shape[0], 1, *y_g.shape[-2:]), 0.5)
        return self.h_a(y_g, qmap)

    @staticmethod
    def widths_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str = "") -> Dict[str, int]:
        return {
            "N": state_dict[prefix + "g_a.convs.0.weight"].shape[0],
            "M": state_dict[prefix + "g_a.convs.3.weight"].shape[0],
            "levels": state_dict[prefix + "gain.log_gain"].shape[0],
            "cond_channels": state_dict[prefix + "g_a.cond_in.0.weight"].shape[0],
        }


class RDCQmap(RDCVersatile):
    """``rdc-qmap``: :class:`~compressai_rdc.models.rdc.RDCVersatile` with a quality-map-conditioned primary branch.

    Args:
        N, M, levels, residual_N, residual_M, residual_layers, default_rate, residual_group_sizes, residual_fuse_channels: as ``RDCVersatile``.
        cond_channels: channels of the SFT condition networks.
        default_qmap: uniform quality used when no map is given.

    Controls:
        ``rate``, ``residual_rate``, ``layers`` (encode), ``beta``, ``layers``
        (decode) as ``rdc-versatile``; ``qmap`` (encode only) ``(B, 1, H, W)``
        in [0, 1], a float, or ``None`` (uniform ``default_qmap``).
    """

    #: the SFT-conditioned primary analysis (image and map paths) and the residual encoder's
    #: x̂₁ and residual analysis: a 4096² encode peaked at 2133 MiB with 1024-px tiles, above the
    #: 2 GB bound; 512-px tiles (docs/tiling.md, benchmarks/tiled_memory.py)
    encode_tile: int = 512
    #: its default decode (β = 0, four residual layers) keeps x̂₁ and r̂ of the whole image beside one
    #: region's features: 2051 MiB at 4096² with 1024-px tiles, above 2 GB; 512-px tiles
    decode_tile: int = 512

    def __init__(
        self,
        N: int = 96,
        M: int = 144,
        levels: int = 8,
        residual_N: int = 64,
        residual_M: int = 96,
        residual_layers: int = 4,
        default_rate: Optional[float] = None,
        residual_group_sizes: Optional[Sequence[int]] = None,
        residual_fuse_channels: int = 16,
        cond_channels: int = 24,
        default_qmap: float = 0.5,
        default_beta: float = 0.0,
    ):
        primary = QmapPrimaryBranch(N, M, levels, cond_channels=cond_channels)
        super().__init__(N, M, levels, residual_N, residual_M, residual_layers, default_rate, residual_group_sizes,
                         residual_fuse_channels, primary=primary, default_beta=default_beta)
        if not 0.0 <= default_qmap <= 1.0:
            raise InvalidArgumentError(f"default_qmap {default_qmap} is outside [0, 1]")
        self.default_qmap = float(default_qmap)

    def _qmap(self, x: Tensor, qmap: QmapLike) -> Tensor:
        return check_qmap(qmap, x, self.default_qmap, self.downsampling_factor)

    def _primary_cond(self, x: Tensor, controls: Dict[str, Any]) -> Dict[str, Any]:
        return {"qmap": self._qmap(x, controls.get("qmap"))}

    def forward(
        self, x: Tensor, rate: RateLike = None, layers: Optional[int] = None, residual_rate: RateLike = None, qmap: QmapLike = None
    ) -> Dict[str, Any]:
        """As :meth:`RDCVersatile.forward <compressai_rdc.models.rdc.RDCVersatile.forward>`, with the map ``qmap``."""
        return self._forward(x, rate, layers, residual_rate, self._primary_cond(x, {"qmap": qmap}))

    def compress(
        self, x: Tensor, rate: RateLike = None, layers: Optional[int] = None, residual_rate: RateLike = None, qmap: QmapLike = None
    ) -> Dict[str, Any]:
        """As :meth:`RDCVersatile.compress <compressai_rdc.models.rdc.RDCVersatile.compress>`; the map is not stored."""
        return self._compress(x, rate, layers, residual_rate, self._primary_cond(x, {"qmap": qmap}))

    def stream_controls(self, rate=None, residual_rate=None, layers=None, qmap=None) -> Dict[str, float]:
        """Controls the decoder needs (the map is not one of them)."""
        return super().stream_controls(rate, residual_rate, layers)

    def check_controls(self, rate=None, residual_rate=None, layers=None, beta=None, qmap=None) -> None:
        super().check_controls(rate, residual_rate, layers, beta)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], **kwargs: Any) -> "RDCQmap":
        """Rebuild the model, inferring widths, ``L``, ``K`` and ``cond_channels`` from tensor shapes."""
        p = QmapPrimaryBranch.widths_from_state_dict(state_dict, "primary.")
        r = ResidualScalableBranch.widths_from_state_dict(state_dict, "residual.")
        ctor = dict(
            N=p["N"], M=p["M"], levels=p["levels"], cond_channels=p["cond_channels"], residual_N=r["N"], residual_M=r["M"],
            residual_layers=r["layers"], residual_group_sizes=r["group_sizes"], residual_fuse_channels=r["fuse_channels"],
        )
        ctor.update(kwargs)
        net = cls(**ctor)
        net.load_state_dict(state_dict)
        return net


# -----------------------------------------------------------------------------
# Zoo entry (registered by compressai_rdc._builtin.qmap; weights: compressai_rdc.zoo._weights)
# -----------------------------------------------------------------------------
SPECS: Dict[str, Dict[str, Any]] = {
    "rdc-qmap": dict(
        cls=RDCQmap,  # QUALITIES, quality_kwargs inherited: quality q selects gain level q − 1
        description="RDC primary branch conditioned on a quality map (SFT) + scalable residual branch",
        paper=f"Liu et al., RDC (ECCV 2024) with the conditional encoder of {HEVRC_PAPER}, §4.1",
    ),
}
