"""Built-in plugin: the ``train`` command (recipes and trainer: :mod:`compressai_rdc.training`)."""

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    from compressai_rdc.cli import train

    register("train", train.configure, run=train.run, help="train a codec with a recipe config (resumable, DDP-ready)")
