"""Pretrained weights of the built-in models: file name and sha256 per model.

Keys are ``"<metric>"`` (one file serves every quality of a variable-rate model)
or ``"<metric>-<quality>"``. Files live in ``compressai_rdc/zoo/weights/``.
``decode_beta`` is the β the weights are best decoded at; it becomes the
model's default β everywhere (CLI, demo, eval, CompressAI's ``eval_model``).
How each file was trained: ``scripts/release_train.sh`` and the Results page.
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
            # the residual branch is untrained: beta=1 (primary substreams only) gives the best images.
            # Set to 0.0 when weights with a trained residual branch ship.
            decode_beta=1.0,
        ),
    },
}
