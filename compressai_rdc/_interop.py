"""Make ``import compressai_rdc`` put every registered model into CompressAI's name tables.

Importing CompressAI means importing PyTorch (seconds), which the CLI's
``--help`` must not pay. So the bridge (:mod:`compressai_rdc.registry._bridge`)
runs at the first moment CompressAI's tables exist:

* ``compressai.zoo`` already imported → now, during ``import compressai_rdc``;
* otherwise → right after ``compressai.zoo`` finishes importing, through a
  one-shot import hook on :data:`sys.meta_path`.

Either way ``import compressai_rdc; import compressai.zoo`` finds
``compressai.zoo.image_models["rdc-versatile"]``.

When ``compressai.zoo`` is first imported *by one of our own modules* (say
``from compressai_rdc.models import RDCVersatile``), the model classes are not
defined yet; the bridge then waits until no compressai-rdc module is
half-imported and runs at the next import or registry lookup.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import Optional, Sequence

TARGET = "compressai.zoo"


_pending = False


def _half_imported() -> bool:
    """Whether a compressai-rdc module (other than the package itself) is being imported now."""
    for name, module in list(sys.modules.items()):
        if name.startswith("compressai_rdc.") and name != __name__:
            spec = getattr(module, "__spec__", None)
            if spec is not None and getattr(spec, "_initializing", False):
                return True
    return False


def bridge_now() -> None:
    """Run every plugin's ``register_models`` hook (which bridges the models into
    CompressAI), or defer it while one of our modules is half-imported."""
    global _pending
    if _half_imported():
        _pending = True
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        return
    _pending = False
    uninstall()
    from compressai_rdc.errors import RDCError
    from compressai_rdc.registry import MODELS

    try:
        MODELS.names()
    except RDCError as exc:  # a clash or invalid registration must not break `import compressai.zoo`
        warnings.warn(f"compressai-rdc models could not be added to CompressAI's tables: {exc}", stacklevel=2)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        bridge_now()


class _ZooFinder(importlib.abc.MetaPathFinder):
    """Finds ``compressai.zoo`` like the normal path finder, then bridges after it executes."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target=None):
        if _pending:
            if not _half_imported():
                bridge_now()
            return None
        if fullname != TARGET:
            return None
        uninstall()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


_finder = _ZooFinder()


def install() -> None:
    """Bridge now if CompressAI's zoo is loaded, else when it loads."""
    if TARGET in sys.modules:
        bridge_now()
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Remove the import hook (the bridge has run, or runs through a registry lookup)."""
    global _pending
    _pending = False
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
