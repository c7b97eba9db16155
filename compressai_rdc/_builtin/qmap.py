"""Built-in plugin: quality maps, SFT layers and the quality-map-conditioned codecs (HEVRC family)."""

from __future__ import annotations

from compressai_rdc.hookspecs import hookimpl

@hookimpl
def register_models(register):
    from compressai_rdc._builtin import register_specs
    from compressai_rdc.models import hevrc, rdc_qmap

    register_specs(register, {**hevrc.SPECS, **rdc_qmap.SPECS})


@hookimpl
def register_components(register):
    from compressai_rdc.layers.sft import SFT, SFTResBlock

    register("sft", SFT, description="spatial feature transform x·(1+γ(a))+β(a) (Wang et al. 2018; HEVRC §4.1)")
    register("sft-res-block", SFTResBlock, description="residual block of two SFT-conv stages (HEVRC Fig. 4)")


@hookimpl
def register_qmap_strategies(register):
    from compressai_rdc.qmap import strategies as s

    register("uniform", s.UniformImportance, description="constant importance (plain variable-rate coding)")
    register("icm", s.ComplexityImportance, description="image complexity map: complex blocks first (HEVRC §4.3)")
    register("inverse-icm", s.InverseComplexityImportance, description="1 − complexity: simple blocks first (HEVRC §3.5)")
    register("sim", s.SemanticImportanceStrategy, description="Grad-CAM semantic importance on a timm classifier (HEVRC §4.3)")
    register("blended", s.BlendedImportance, description="salient, then simple, then complex regions (HEVRC Eq. 15)")


@hookimpl
def register_commands(register):
    from compressai_rdc.cli import qmap

    register("qmap", qmap.configure, run=qmap.run, help="importance map, quality map and a model's bit allocation side by side")
