"""Built-in plugin: the RDC versatile codec and its parts (Liu et al., 2024)."""

from __future__ import annotations

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_models(register):
    from compressai_rdc._builtin import register_specs
    from compressai_rdc.models.rdc import SPECS

    register_specs(register, SPECS)


@hookimpl
def register_components(register):
    from compressai_rdc.layers.gain import ChannelGainUnit
    from compressai_rdc.models.rdc import PrimaryBranch
    from compressai_rdc.models.residual import ResidualScalableBranch

    register("channel-gain-unit", ChannelGainUnit, description="per-channel gains with continuous rate interpolation (Cui et al., CVPR 2021)")
    register("residual-scalable-branch", ResidualScalableBranch, description="codes x − x̂₁ in K ordered layers (RDC §3.3)")
    register("rdc-primary-branch", PrimaryBranch, description="mean-scale hyperprior with channel gain units (RDC §3.2)")
