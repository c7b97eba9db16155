"""``compressai-rdc models``: registered codecs with their qualities and weights."""

from __future__ import annotations

import argparse

from compressai_rdc.registry import MODELS


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    for entry in MODELS.entries():
        spec = entry.obj
        qs = f"{spec.qualities[0]}..{spec.qualities[-1]}" if len(spec.qualities) > 1 else str(spec.qualities[0])
        weights = ", ".join(sorted(spec.weights)) or "none"
        print(f"{spec.name:24s} qualities {qs:6s} pretrained: {weights:10s} [{entry.plugin}] {spec.description}")
    return 0
