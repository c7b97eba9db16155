"""Built-in plugin: the ``train`` and ``release`` commands (recipes and trainer: :mod:`compressai_rdc.training`)."""

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    from compressai_rdc.cli import release, train

    register("train", train.configure, run=train.run, help="train a codec with a recipe config (resumable, DDP-ready)")
    register("release", release.configure, run=release.run,
             help="continue the shipped weights' training for N minutes, evaluate, append to the ledger")
