"""compressai-rdc: rate-, distortion- and cognition-controllable image codecs for CompressAI.

Public API::

    import compressai_rdc
    compressai_rdc.list_models()                  # every registered codec
    net = compressai_rdc.create_model("rdc-versatile", quality=3)
    compressai_rdc.plugin_info()                  # who registered what

Plugins implement the hooks in :mod:`compressai_rdc.hookspecs` using
:data:`hookimpl`.

The import is light (no PyTorch): the zoo loads on first use of
:func:`create_model`, and every registered model is written into CompressAI's
name tables as soon as ``compressai.zoo`` is imported (before or after this
package; see :mod:`compressai_rdc._interop`).
"""

from __future__ import annotations

import warnings

__version__ = "0.1.0"

# CompressAI 1.2.8 calls torch.jit.script at import time, which torch >= 2.10 warns about.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from compressai_rdc.hookspecs import hookimpl
from compressai_rdc.registry import (
    COMMANDS,
    COMPONENTS,
    LOSSES,
    MODELS,
    QMAP_STRATEGIES,
    TASKS,
    ModelSpec,
    WeightSpec,
    list_models,
)
from compressai_rdc._plugins import load_plugins, plugin_info, register_plugin, reset_plugins, unregister_plugin
from compressai_rdc import _interop


def __getattr__(name: str):
    if name == "create_model":  # imports PyTorch: only when used
        from compressai_rdc.zoo import create_model

        return create_model
    raise AttributeError(f"module 'compressai_rdc' has no attribute {name!r}")


_interop.install()

__all__ = [
    "COMMANDS",
    "COMPONENTS",
    "LOSSES",
    "MODELS",
    "ModelSpec",
    "QMAP_STRATEGIES",
    "TASKS",
    "WeightSpec",
    "__version__",
    "create_model",
    "hookimpl",
    "list_models",
    "load_plugins",
    "plugin_info",
    "register_plugin",
    "reset_plugins",
    "unregister_plugin",
]
