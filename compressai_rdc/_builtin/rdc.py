"""Built-in plugin: the RDC versatile codec and its parts (Liu et al., 2024)."""

from compressai_rdc.hookspecs import hookimpl
