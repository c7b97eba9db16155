"""Pretrained weights of the built-in models: file name and sha256 per model.

Keys are ``"<metric>"`` (one file serves every quality of a variable-rate model)
or ``"<metric>-<quality>"``. Files live in ``compressai_rdc/zoo/weights/``.

The table is read from the release manifest ``zoo/weights/release.json``,
which ``compressai-rdc release --ship`` writes when newly trained weights beat
the shipped ones (:mod:`compressai_rdc.training.release`): the one place a
shipped file's name, sha256, training and measurements are written (the model
families' ``SPECS`` take their weights from here). When new weights ship,
refresh the golden vectors pinned to the file's sha256::

    python -m tests.regen_golden --shipped

``beta`` (``decode_beta`` of the :class:`~compressai_rdc.registry.WeightSpec`) is the β
the weights are best decoded at; it becomes the model's default β everywhere (CLI,
demo, eval, CompressAI's ``eval_model``).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Dict, Mapping

from compressai_rdc.registry import WeightSpec


def describe(entry: Mapping[str, Any]) -> str:
    """A one-paragraph description of a manifest entry (training and measurements)."""
    ev = entry.get("eval") or {}
    parts = [f"{entry['stage']} (recipe {entry['recipe']}, step {entry['step']:,}, "
             f"{entry.get('images', 0):,} training crops of ../shared/data/train)"]
    measured = []
    if ev.get("kodak_psnr_beta1") is not None:
        measured.append(f"Kodak {ev['kodak_psnr_beta1']:.2f} dB at 0.40 bpp with beta=1")
    if ev.get("kodak_psnr_beta0") is not None:
        measured.append(f"{ev['kodak_psnr_beta0']:.2f} dB with beta=0")
    if ev.get("imagenet_top1_beta1") is not None:
        measured.append(f"imagenet-dev top-1 {ev['imagenet_top1_beta1']:.1f} % at 0.15 bpp (beta=1, tf_efficientnet_lite0)")
    if measured:
        parts.append("; ".join(measured))
    if entry.get("beta", 0.0) == 1.0:
        parts.append("the residual branch is not trained yet: decode with beta=1")
    return "; ".join(parts)


def _load() -> Dict[str, Dict[str, WeightSpec]]:
    path = files("compressai_rdc.zoo") / "weights" / "release.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    return {
        model: {entry.get("metric", "mse"): WeightSpec(entry["file"], entry["sha256"], description=describe(entry),
                                                      decode_beta=float(entry.get("beta", 0.0)))}
        for model, entry in manifest.items()
    }


PRETRAINED: Dict[str, Dict[str, WeightSpec]] = _load()
