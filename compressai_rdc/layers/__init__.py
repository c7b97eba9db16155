"""Reusable layers (each usable on any CompressAI model)."""

from compressai_rdc.layers.gain import ChannelGainUnit

__all__ = ["ChannelGainUnit"]
