"""Built-in plugin: training losses and the ``train`` command."""

from compressai_rdc.hookspecs import hookimpl
