"""Pretrained weights of the built-in models: file name and sha256 per model.

Keys are ``"<metric>"`` (one file serves every quality of a variable-rate model)
or ``"<metric>-<quality>"``. Files live in ``compressai_rdc/zoo/weights/``.
"""

from __future__ import annotations

from typing import Dict

from compressai_rdc.registry import WeightSpec

PRETRAINED: Dict[str, Dict[str, WeightSpec]] = {}
