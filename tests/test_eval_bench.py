"""Benchmarks (pytest-benchmark): codec latency per registered model, quality-map
search cost, and evaluation throughput.

``pytest tests/test_eval_bench.py --benchmark-enable`` reports timings; with the
project default ``--benchmark-disable`` each benchmark runs once as a test, so
the assertions below (valid streams, finite maps) always run. On a GPU add
``--device cuda`` semantics by setting ``COMPRESSAI_RDC_BENCH_DEVICE=cuda``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.registry import QMAP_STRATEGIES

DEVICE = torch.device(os.environ.get("COMPRESSAI_RDC_BENCH_DEVICE", "cpu"))
SIZE = (128, 192)


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, SIZE[0] // 16, SIZE[1] // 16, generator=g)
    return torch.nn.functional.interpolate(base, size=SIZE, mode="bicubic", align_corners=False).clamp(0, 1).to(DEVICE)


@pytest.fixture(scope="module", params=compressai_rdc.list_models())
def model(request):
    net = compressai_rdc.create_model(request.param).eval().to(DEVICE)
    net.update(force=True)
    return net


@pytest.mark.benchmark(group="codec-encode")
def test_encode_latency(benchmark, model):
    x = _image()
    data = benchmark(codec.encode, model, x)
    assert codec.bits_per_pixel(data) > 0


@pytest.mark.benchmark(group="codec-decode")
def test_decode_latency(benchmark, model):
    x = _image()
    data = codec.encode(model, x)
    x_hat = benchmark(codec.decode, data, model)
    assert x_hat.shape == x.shape


@pytest.mark.benchmark(group="qmap-strategy")
@pytest.mark.parametrize("name", [n for n in QMAP_STRATEGIES.names()])
def test_qmap_strategy_cost(benchmark, name):
    from compressai_rdc.qmap import create_strategy

    strategy = create_strategy(name)
    x = _image(1)
    importance = benchmark(strategy, x)
    assert importance.shape == (1, 1, *SIZE) and torch.isfinite(importance).all()


@pytest.mark.benchmark(group="qmap-search")
def test_quality_map_rate_search_cost(benchmark):
    """Five estimates of a Γ-level control on a quality-map model (hevrc: each probe entropy-codes)."""
    from compressai_rdc.ratecontrol import rate_control

    qmap_models = [n for n in compressai_rdc.list_models() if "qmap" in __import__("inspect").signature(compressai_rdc.MODELS.get(n).cls.compress).parameters]
    if not qmap_models:
        pytest.skip("no registered model takes a quality map")
    net = compressai_rdc.create_model(qmap_models[0]).eval().to(DEVICE)
    net.update(force=True)
    x = _image(2)

    def search():
        ctl = rate_control(net, x, control="level", qmap_strategy="icm")
        return [ctl.estimate(t) for t in np.linspace(*ctl.bounds, 5)]

    estimates = benchmark(search)
    assert all(np.isfinite(e) and e > 0 for e in estimates)


@pytest.mark.benchmark(group="eval-throughput")
def test_evaluation_throughput(benchmark):
    """Images per second of the evaluation loop (JPEG, PSNR + MS-SSIM, 256x256 crops)."""
    from compressai_rdc.eval.codecs import PillowCodec
    from compressai_rdc.eval.protocol import EvalData
    from compressai_rdc.eval.runner import evaluate_codec

    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 255, (3, 256, 256), dtype=np.uint8)) for _ in range(8)]
    data = EvalData("bench", "-", "crop256", None, list(range(8)), images, [None] * 8, 8)
    jpeg = PillowCodec("jpeg", {"quality": [50]})
    results = benchmark(evaluate_codec, data, jpeg, task=None, metrics=("psnr-rgb", "ms-ssim-rgb"), batch_size=8)
    assert results[0].n_images == 8 and results[0].values["bpp"] > 0
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = 8 / benchmark.stats.stats.mean


# -- the whole evaluation suite -------------------------------------------------------------
SUITE_ENV = "COMPRESSAI_RDC_BENCH_SUITE"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.benchmark(group="eval-suite")
@pytest.mark.skipif(os.environ.get(SUITE_ENV) != "1", reason=f"minutes of CPU: set {SUITE_ENV}=1 to run it")
def test_whole_suite_wall_clock(benchmark, kodak_dir, imagenet_dev_dir, tmp_path):
    """The suite a user runs first: Kodak (24) + imagenet-dev (250, top-1), JPEG/WebP/AVIF
    at their 5 default qualities and the shipped rdc-versatile at 5 rates, default metrics.

    Goal: at most 8 minutes on 2 CPU cores (``--benchmark-enable`` prints the time;
    ``COMPRESSAI_RDC_BENCH_SUITE=1 pytest tests/test_eval_bench.py -k whole_suite
    --benchmark-enable``). One round: a run is minutes long.
    """
    from compressai_rdc.cli import main

    rounds = iter(range(10))

    def suite():
        out = tmp_path / f"suite{next(rounds)}"
        argv = ["eval", "--dataset", f"kodak={kodak_dir}", "--dataset", f"imagenet-dev={imagenet_dev_dir}",
                "--codec", "jpeg", "--codec", "webp", "--codec", "avif",
                "--model", "rdc-versatile:pretrained=true,rate=0|1|2|4|7",
                "--device", "cpu", "--no-plots", "--quiet", "--out", str(out)]
        assert main(argv) == 0
        return out

    out = benchmark.pedantic(suite, rounds=1, iterations=1)
    import csv as _csv

    with open(out / "results.csv") as f:
        rows = list(_csv.DictReader(f))
    kodak = [r for r in rows if r["dataset"] == "kodak" and r["codec"] == "rdc-versatile"]
    assert len(kodak) == 5 and all(r["n_images"] == "24" for r in kodak)
    assert {r["n_images"] for r in rows if r["dataset"] == "imagenet-dev"} == {"250"}
