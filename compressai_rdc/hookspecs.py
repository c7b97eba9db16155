"""Hook specifications: the kinds of things plugins can add to compressai-rdc.

Every hook receives a single ``register`` callable and calls it once per item,
in the style of ``llm`` and ``datasette``::

    from compressai_rdc import hookimpl

    @hookimpl
    def register_qmap_strategies(register):
        register("center", CenterStrategy, description="Gaussian centred on the image")

Built-in components are registered through exactly these hooks (the modules
``compressai_rdc/_builtin/*.py``), so third-party plugins are first-class.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "compressai_rdc"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_models(register):
    """Register image codecs.

    ``register(name, cls, **spec)`` where ``cls`` is a
    :class:`compressai.models.CompressionModel` subclass and ``spec`` holds the
    fields of :class:`compressai_rdc.registry.ModelSpec` (``kwargs``,
    ``qualities``, ``quality_kwargs``, ``weights``, ``description``, ...).
    Registered models appear in all of CompressAI's name tables.
    """


@hookspec
def register_components(register):
    """Register reusable building blocks (layers, branches).

    ``register(name, cls, description=...)``, e.g. ``ChannelGainUnit``.
    """


@hookspec
def register_losses(register):
    """Register training losses: ``register(name, cls, description=...)``.

    ``cls(**config)`` must return an ``nn.Module`` whose ``forward(output, target,
    **batch)`` returns a scalar tensor or a dict with a ``"loss"`` entry.
    """


@hookspec
def register_qmap_strategies(register):
    """Register quality-map strategies: ``register(name, cls, description=...)``.

    ``cls(**options)`` returns a callable ``(x: (B,3,H,W) in [0,1]) -> (B,1,H,W)
    importance in [0,1]``.
    """


@hookspec
def register_tasks(register):
    """Register machine tasks (classification, detection, ...) used by evaluation.

    ``register(name, cls, description=...)``.
    """


@hookspec
def register_commands(register):
    """Register sub-commands of the ``compressai-rdc`` CLI.

    ``register(name, configure, run, help=...)`` where ``configure(parser)`` adds
    arguments to an ``argparse`` parser and ``run(args) -> int`` executes it.
    """
