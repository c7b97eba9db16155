"""Built-in plugin: the RDC versatile codec and its parts (Liu et al., 2024)."""

from __future__ import annotations

from compressai_rdc.hookspecs import hookimpl

#: zoo quality q selects gain level q − 1 of the one shared model
QUALITIES = tuple(range(1, 9))
PAPER = (
    "Liu, Feng, Qi, Chen, Chen, Zeng, Jin, 'Rate-Distortion-Cognition Controllable Versatile Neural "
    "Image Compression', ECCV 2024; gain units: Cui et al., CVPR 2021"
)


def _default_rate(quality: int) -> dict:
    return {"default_rate": float(quality - 1)}


@hookimpl
def register_models(register):
    from compressai_rdc.models.rdc import RDCVersatile
    from compressai_rdc.zoo._weights import PRETRAINED

    register(
        "rdc-versatile",
        RDCVersatile,
        qualities=QUALITIES,
        quality_kwargs=_default_rate,
        weights=PRETRAINED.get("rdc-versatile", {}),
        description="RDC: gain-unit primary branch + scalable residual branch; rate, layers and beta in one model",
        paper=PAPER,
    )


@hookimpl
def register_components(register):
    from compressai_rdc.layers.gain import ChannelGainUnit
    from compressai_rdc.models.rdc import PrimaryBranch
    from compressai_rdc.models.residual import ResidualScalableBranch

    register("channel-gain-unit", ChannelGainUnit, description="per-channel gains with continuous rate interpolation (Cui et al., CVPR 2021)")
    register("residual-scalable-branch", ResidualScalableBranch, description="codes x − x̂₁ in K ordered layers (RDC §3.3)")
    register("rdc-primary-branch", PrimaryBranch, description="mean-scale hyperprior with channel gain units (RDC §3.2)")
