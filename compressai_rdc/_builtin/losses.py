"""Built-in plugin: training losses (the ``train`` command: :mod:`compressai_rdc._builtin.training`)."""

from compressai_rdc.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    from compressai_rdc.losses import BUILTIN_LOSSES

    for name, (cls, description) in BUILTIN_LOSSES.items():
        register(name, cls, description=description)
