"""Pretrained weights of the built-in models: file name and sha256 per model.

Keys are ``"<metric>"`` (one file serves every quality of a variable-rate model)
or ``"<metric>-<quality>"``. Files live in ``compressai_rdc/zoo/weights/``.
How each file was trained: ``scripts/release_train.sh`` and the Results page.

This table is the one place a shipped file's name and sha256 are written (the
model families' ``SPECS`` take their weights from here). When new weights ship,
update the entry and refresh the golden vectors pinned to the file's sha256::

    python -m tests.regen_golden --shipped
"""

from __future__ import annotations

from typing import Dict

from compressai_rdc.registry import WeightSpec

PRETRAINED: Dict[str, Dict[str, WeightSpec]] = {
    "rdc-versatile": {
        "mse": WeightSpec(
            "rdc-versatile-mse-3b65c2ec.safetensors",
            "3b65c2ece8d01396395ad48a2f4e2f6ea4c9236b1ed407524a6c0394a0500875",
            description=(
                "preliminary: stage I only (recipe rdc-versatile-stage1, 2,281 steps x 32 crops of 256 px on "
                "../shared/data/train, one H100, 7 min); the residual branch is untrained, so decode with "
                "beta=1 (primary branch) until stage II weights ship. Far from the targets: imagenet-dev top-1 "
                "5.6-24.4 % at beta=1 (0.18-1.57 bpp); for trying the API and the demo"
            ),
        ),
    },
}
