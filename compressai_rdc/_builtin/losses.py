"""Built-in plugin: training losses and the ``train`` command."""

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    from compressai_rdc.losses import BUILTIN_LOSSES

    for name, (cls, description) in BUILTIN_LOSSES.items():
        register(name, cls, description=description)


@hookimpl
def register_commands(register):
    from compressai_rdc.cli import release, train

    register("train", train.configure, run=train.run, help="train a codec with a recipe config (resumable, DDP-ready)")
    register("release", release.configure, run=release.run,
             help="continue the shipped weights' training for N minutes, evaluate, append to the ledger")
