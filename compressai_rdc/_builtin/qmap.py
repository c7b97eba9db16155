"""Built-in plugin: quality maps, SFT layers and the quality-map-conditioned codecs (HEVRC family)."""

from __future__ import annotations

from compressai_rdc.hookspecs import hookimpl

#: uniform quality of the default operating point for zoo qualities 1..8
QUALITIES = tuple(range(1, 9))


def _default_qmap(quality: int) -> dict:
    return {"default_qmap": (quality - 1) / (len(QUALITIES) - 1)}


@hookimpl
def register_models(register):
    from compressai_rdc.models.hevrc import HEVRC
    from compressai_rdc.zoo._weights import PRETRAINED

    register(
        "hevrc",
        HEVRC,
        qualities=QUALITIES,
        quality_kwargs=_default_qmap,
        weights=PRETRAINED.get("hevrc", {}),
        description="quality-map-conditioned codec (SFT encoder, hyper-latent-conditioned decoder); one model, all rates",
        paper="Zhang et al., HEVRC §3–4; Song et al., QMAP2021 (ICCV 2021)",
    )
    from compressai_rdc.models.rdc_qmap import RDCQmap

    register(
        "rdc-qmap",
        RDCQmap,
        qualities=RDCQmap.QUALITIES,
        quality_kwargs=RDCQmap.quality_kwargs,
        weights=PRETRAINED.get("rdc-qmap", {}),
        description="RDC primary branch conditioned on a quality map (SFT) + scalable residual branch",
        paper="Liu et al., RDC (ECCV 2024) with the conditional encoder of Zhang et al., HEVRC §4.1",
    )


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
    from compressai_rdc.cli import decode, encode, qmap, truncate

    register("encode", encode.configure, run=encode.run, help="compress an image to a .rdc container (fixed rate or target bpp)")
    register("decode", decode.configure, run=decode.run, help="decode a .rdc container to an image (decode-time beta / layers)")
    register("truncate", truncate.configure, run=truncate.run, help="keep the first k residual layers of a .rdc container (no model needed)")
    register("qmap", qmap.configure, run=qmap.run, help="importance map, quality map and a model's bit allocation side by side")
