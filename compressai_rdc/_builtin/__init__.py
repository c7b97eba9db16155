"""Built-in plugins: the glue that registers compressai-rdc's own parts through
the same hooks third-party plugins use. One module per subsystem; the parts
themselves live in ``layers/``, ``models/``, ``qmap/``, ``losses/``, ``tasks/``,
and each model family's zoo entry (``SPECS``) beside its class."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping


def register_specs(register: Callable, specs: Mapping[str, Dict[str, Any]]) -> None:
    """Register a model family's ``SPECS`` with the shipped weights of the zoo's table
    (:data:`compressai_rdc.zoo._weights.PRETRAINED`, the one place file names and sha256 live).
    ``qualities`` and ``quality_kwargs`` default to the class's ``QUALITIES`` and ``quality_kwargs``."""
    from compressai_rdc.zoo._weights import PRETRAINED

    for name, spec in specs.items():
        cls = spec["cls"]
        fields = {k: v for k, v in spec.items() if k != "cls"}
        if hasattr(cls, "QUALITIES"):
            fields.setdefault("qualities", cls.QUALITIES)
            fields.setdefault("quality_kwargs", cls.quality_kwargs)
        register(name, cls, weights=PRETRAINED.get(name, {}), **fields)
