"""The plugin guide's code (docs/plugins.md) is complete: extracted and run as a plugin."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.qmap import create_strategy

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    (code,) = [b for b in blocks if b.startswith(first_line)]
    return code


@pytest.fixture()
def guide_plugin():
    module = types.ModuleType("my_pkg_plugin_from_guide")
    exec(compile(_block("# my_pkg/plugin.py"), str(GUIDE), "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    compressai_rdc.register_plugin(module, name="guide")
    yield module
    compressai_rdc.unregister_plugin("guide")
    del sys.modules[module.__name__]


def test_guide_plugin_registers_a_working_codec_and_strategy(guide_plugin):
    import compressai.zoo

    assert "my-codec" in compressai_rdc.list_models() and "my-codec" in compressai.zoo.image_models
    net = compressai_rdc.create_model("my-codec", quality=2).eval()
    assert (net.N, net.M) == (96, 144)
    net.update(force=True)
    x = torch.rand(1, 3, 64, 96)
    assert codec.decode(codec.encode(net, x), net).shape == x.shape
    imp = create_strategy("center")(x)
    assert imp.shape == (1, 1, 64, 96) and float(imp.max()) <= 1.0 and float(imp.min()) >= 0.0
    assert float(imp[0, 0, 32, 48]) > 0.95 and float(imp[0, 0, 0, 0]) < 0.05


def test_guide_weight_spec_is_valid():
    namespace: dict = {}
    exec(compile(_block("from compressai_rdc import WeightSpec"), str(GUIDE), "exec"), namespace)
    spec = namespace["weights"]["mse"]
    assert spec.package == "my_pkg" and spec.file == "weights/my-codec-mse.safetensors"
