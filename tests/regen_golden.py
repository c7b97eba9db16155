"""Golden vectors: container bytes of fixed inputs, pinned in ``tests/expected/``.

Three files, checked by ``tests/test_golden.py``:

``tests/expected/golden_untrained.json``
    every registered built-in architecture, seeded (``torch.manual_seed(0)``)
    and untrained, coding fixed inputs with fixed controls. These pin the
    format and the entropy parameters across refactors: a change of the
    state-dict keys, of the header, of pack/read or of the entropy model
    changes the bytes. Regenerate only for a deliberate format change, and
    say so in the commit.
``tests/expected/golden_shipped.json``
    the same for the shipped weights (``compressai_rdc/zoo/weights``), keyed
    by the weights file's sha256. When new weights ship, refresh it with::

        python -m tests.regen_golden --shipped

``tests/expected/golden_untrained_format2.json``, ``golden_untrained_format3.json``
    the untrained vectors as container formats 2 and 3 wrote them (frozen in
    sessions 15 and 16, before formats 3 and 4). Never regenerated: they pin
    that streams of the older formats still decode, to the same images.

Run from the repository root. ``python -m tests.regen_golden`` (no flag)
rewrites both files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

EXPECTED = Path(__file__).resolve().parent / "expected"
UNTRAINED_FILE = EXPECTED / "golden_untrained.json"
#: frozen untrained vectors of the formats written before, by version
OLD_FORMAT_FILES = {2: EXPECTED / "golden_untrained_format2.json", 3: EXPECTED / "golden_untrained_format3.json"}
SHIPPED_FILE = EXPECTED / "golden_shipped.json"

#: (height, width) of the fixed crop of the bundled sample image; not a multiple
#: of 64, so padding and cropping are part of what is pinned
CROP = (40, 72)


def fixed_image() -> torch.Tensor:
    """``(1, 3, 40, 72)``: a crop of the bundled sample image (float32 in [0, 1])."""
    from compressai_rdc.data import load_image, sample_image_path

    x = load_image(sample_image_path()).unsqueeze(0)
    return x[..., 96 : 96 + CROP[0], 160 : 160 + CROP[1]].contiguous()


def fixed_qmap() -> torch.Tensor:
    """``(1, 1, 40, 72)``: a left-to-right ramp from 0.1 to 0.9."""
    ramp = torch.linspace(0.1, 0.9, CROP[1]).view(1, 1, 1, CROP[1])
    return ramp.expand(1, 1, *CROP).contiguous()


def cases(name: str) -> List[Tuple[str, Dict[str, Any]]]:
    """Named encode controls per architecture (decode uses the defaults)."""
    if name == "rdc-versatile":
        return [("rate2.5-layers2", {"rate": 2.5, "layers": 2}), ("rate7-layers0", {"rate": 7.0, "layers": 0})]
    if name == "rdc-qmap":
        return [("rate3-ramp-layers1", {"rate": 3.0, "layers": 1, "qmap": fixed_qmap()})]
    if name == "hevrc":
        return [("ramp", {"qmap": fixed_qmap()}), ("uniform0.3", {"qmap": 0.3})]
    raise KeyError(f"no golden cases for model {name!r}; add them in tests/regen_golden.py")


def untrained(name: str) -> torch.nn.Module:
    """The registered architecture with default widths, seeded, eval mode, coders updated."""
    from compressai_rdc.zoo import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    model.update(force=True)
    return model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def vectors(model: torch.nn.Module, name: str) -> Dict[str, Dict[str, Any]]:
    """``case -> {"hex": container bytes, "sha256", "psnr": of the decoded image}``."""
    from compressai_rdc import codec

    x = fixed_image()
    out = {}
    for case, controls in cases(name):
        data = codec.encode(model, x, **controls)
        x_hat = codec.decode(data, model)
        out[case] = {"hex": data.hex(), "sha256": hashlib.sha256(data).hexdigest(), "psnr": round(psnr(x_hat, x), 4)}
    return out


def builtin_models() -> List[str]:
    from compressai_rdc._plugins import plugin_info
    from compressai_rdc.registry import MODELS

    builtin = {n for p in plugin_info() if p.builtin for n in p.registered.get("model", [])}
    return [n for n in MODELS.names() if n in builtin]


def shipped() -> List[Tuple[str, str, str, Callable[[], torch.nn.Module]]]:
    """``(model, metric, sha256, load)`` of every shipped weights file."""
    from compressai_rdc.registry import MODELS
    from compressai_rdc.zoo import create_model

    out = []
    for name in builtin_models():
        for metric, w in MODELS.get(name).weights.items():
            def load(name=name, metric=metric):
                model = create_model(name, metric=metric, pretrained=True).eval()
                model.update(force=True)
                return model

            out.append((name, metric, w.sha256, load))
    return out


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shipped", action="store_true", help="only the shipped-weights file")
    args = parser.parse_args(argv)
    if not args.shipped:
        _write(UNTRAINED_FILE, {name: vectors(untrained(name), name) for name in builtin_models()})
    table = {}
    for name, metric, sha, load in shipped():
        table[sha] = {"model": name, "metric": metric, "vectors": vectors(load(), name)}
    _write(SHIPPED_FILE, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
