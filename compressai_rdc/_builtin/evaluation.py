"""Built-in plugin: machine tasks and the ``eval`` command."""

from compressai_rdc.hookspecs import hookimpl
