"""Throughput of our training loop against CompressAI's plain loop.

Speed is measured with pytest-benchmark (``pytest tests/test_throughput_bench.py
--benchmark-enable``), never asserted on time. What is asserted: on the CPU the
trainer's ``auto`` switches leave the plain loop (fp32, no compile, contiguous
memory), which is why it is never slower there.
"""

from __future__ import annotations

import pytest
import torch

from compressai_rdc.training.throughput import fast_step_fn, measure, plain_step_fn, synthetic_images
from compressai_rdc.training.trainer import Trainer

SMALL = dict(model_name="mbt2018-mean", quality=1, batch=2, crop=64, device=torch.device("cpu"), N=8, M=8)


@pytest.fixture(scope="module")
def images():
    return synthetic_images(n=4, size=96)


def test_plain_loop_step(benchmark, images):
    step = plain_step_fn(images=images, **SMALL)
    counter = iter(range(10**6))
    benchmark(lambda: step(next(counter)))


def test_our_loop_step(benchmark, images):
    step = fast_step_fn(images=images, **SMALL)
    counter = iter(range(10**6))
    benchmark(lambda: step(next(counter)))


def test_auto_speed_switches_follow_native_bf16_on_cpu(tmp_path, images):
    from compressai_rdc.training.recipes import load_config
    from compressai_rdc.training.trainer import cpu_supports_bf16

    cfg = load_config("baseline-mbt2018-mean", ["model.kwargs={N: 8, M: 8}", "data.crop=64"])
    t = Trainer(cfg, tmp_path, device="cpu", progress=False)
    native = cpu_supports_bf16()  # AMX / AVX512-BF16: bf16 + channels_last; elsewhere the plain fp32 loop
    assert t.bf16 is native and t.channels_last is native and t.forward is t.model
    assert "fused" not in t.optimizer.defaults or not t.optimizer.defaults["fused"]


def test_measure_reports_both_loops(images):
    res = measure("mbt2018-mean", 1, 64, "cpu", 2, 2, seconds=0.1, steps=2, warmup=1, fast_warmup=1, N=8, M=8)
    modes = [r["mode"] for r in res["results"]]
    assert modes == ["plain-fp32", "fast"]  # no TF32 row on the CPU
    assert all(r["images_per_s"] > 0 and r["steps"] >= 1 for r in res["results"])
    assert res["speedup_fast_vs_plain_fp32"] > 0


def test_measure_the_cognition_recipe_against_its_plain_loop(images):
    """Any recipe (here the cognition recipe, frozen backbone in every step) is measured against the
    same trainer with every speed switch off; fast-loop switches can be overridden."""
    res = measure("mbt2018-mean", 1, 64, "cpu", 1, 1, seconds=0.1, steps=1, warmup=1, fast_warmup=1,
                  recipe="rdc-versatile-stage1-fm", speed={"channels_last": True})
    assert res["recipe"] == "rdc-versatile-stage1-fm" and res["model"] is None
    assert [r["mode"] for r in res["results"]] == ["plain-fp32", "fast"]
    assert res["speed_overrides"] == {"channels_last": True} and res["speedup_fast_vs_plain_fp32"] > 0
    assert res["device"].startswith("cpu (") and "native bf16:" in res["device"]
