"""The one place that writes compressai-rdc models into CompressAI's name tables.

CompressAI keeps four unconnected tables; a model missing from one is invisible
to some of its tools (``eval_model`` reads two of them at import time). This
module writes every registered :class:`~compressai_rdc.registry.ModelSpec` into
all four and nowhere else does:

=====================================================  =====================
table                                                  value
=====================================================  =====================
``compressai.registry.MODELS``                         model class
``compressai.zoo.image_models``                        zoo factory
``compressai.zoo.models``                              zoo factory
``compressai.zoo.image.model_architectures``           model class
=====================================================  =====================
"""

from __future__ import annotations

import sys
from typing import Dict, Optional, Tuple

import compressai.registry
import compressai.zoo
import compressai.zoo.image

from compressai_rdc.errors import RegistrationError
from compressai_rdc.registry import MODELS

#: names we wrote, with what the tables held before (None = absent)
_written: Dict[str, Tuple] = {}


def _tables():
    # through sys.modules: this runs right after compressai.zoo executes, possibly while
    # the compressai package itself is still importing (its attribute ``zoo`` not yet set)
    registry, zoo, image = (sys.modules[m] for m in ("compressai.registry", "compressai.zoo", "compressai.zoo.image"))
    return (
        (registry.MODELS, "class"),
        (zoo.image_models, "factory"),
        (zoo.models, "factory"),
        (image.model_architectures, "class"),
    )


def bridge_models_to_compressai() -> None:
    """Write every registered model into CompressAI's four name tables."""
    from compressai_rdc.zoo import get_factory

    for entry in MODELS._entries.values():  # registries are loaded by our caller
        spec = entry.obj
        if spec.name in _written:
            continue
        for table, _ in _tables():
            if spec.name in table:
                MODELS.unregister(spec.name)
                raise RegistrationError(
                    f"model {spec.name!r} from plugin {entry.plugin!r} clashes with CompressAI's own "
                    f"{spec.name!r}; choose another name"
                )
        factory = get_factory(spec.name)
        for table, kind in _tables():
            table[spec.name] = spec.cls if kind == "class" else factory
        _written[spec.name] = ()


def unbridge_models(name: Optional[str] = None) -> None:
    """Remove what :func:`bridge_models_to_compressai` wrote (all, or one model)."""
    for n in list(_written) if name is None else [name]:
        if n not in _written:
            continue
        for table, _ in _tables():
            table.pop(n, None)
        del _written[n]
