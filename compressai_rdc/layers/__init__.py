"""Reusable layers (each usable on any CompressAI model)."""

from compressai_rdc.layers.gain import ChannelGainUnit

__all__ = ["ChannelGainUnit"]
from compressai_rdc.layers.sft import SFT, SFTResBlock  # noqa: E402

__all__ += ["SFT", "SFTResBlock"]
