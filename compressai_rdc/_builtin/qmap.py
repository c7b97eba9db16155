"""Built-in plugin: quality maps, SFT layers and the quality-map-conditioned codecs (HEVRC family)."""

from compressai_rdc.hookspecs import hookimpl
