"""Speed of real bitstreams: ``rdc-versatile`` against CompressAI's ``mbt2018-mean`` at the same widths.

Benchmarks (pytest-benchmark; no timed asserts). In the normal test run they are
disabled and each body runs once as a smoke test; measure with::

    pytest tests/test_codec_bench.py --benchmark-enable --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

Both models code a 768×512 image through :mod:`compressai_rdc.codec` (same
container, same padding), so the ratios compare the codecs themselves. On a
shared machine, add ``--benchmark-timer=time.process_time`` to time the CPU
work of this process only (wall time then includes other processes' load). On a
machine with CUDA every benchmark also runs on the GPU (transforms on the GPU,
entropy coding on the CPU as in CompressAI; timings include CUDA sync).
"""

from __future__ import annotations

import pytest
import torch
from compressai.models import MeanScaleHyperprior

from compressai_rdc import codec
from compressai_rdc.models import RDCVersatile
from compressai_rdc.models.residual import _map

H, W = 512, 768
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(scope="module", params=DEVICES)
def setup(request):
    device = request.param
    torch.manual_seed(0)
    rdc = RDCVersatile().eval()
    rdc.update(force=True)
    mbt = MeanScaleHyperprior(N=rdc.primary.N, M=rdc.primary.M).eval()  # same widths
    mbt.update(force=True)
    g = torch.Generator().manual_seed(0)
    # smooth content so that rates are image-like
    x = torch.rand(1, 3, H // 16, W // 16, generator=g)
    x = torch.nn.functional.interpolate(x, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    rdc, mbt, x = rdc.to(device), mbt.to(device), x.to(device)
    streams = {"rdc": codec.encode(rdc, x, rate=4.0), "mbt": codec.encode(mbt, x)}
    return device, rdc, mbt, x, streams


def _run(benchmark, device, fn):
    def call():
        out = fn()
        _sync(device)
        return out

    return benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="encode 768x512")
@pytest.mark.parametrize("which", ["mbt2018-mean", "rdc-full", "rdc-primary"])
def test_bench_encode(benchmark, setup, which):
    device, rdc, mbt, x, _ = setup
    fn = {
        "mbt2018-mean": lambda: codec.encode(mbt, x),
        "rdc-full": lambda: codec.encode(rdc, x, rate=4.0),
        "rdc-primary": lambda: codec.encode(rdc, x, rate=4.0, layers=0),
    }[which]
    data = _run(benchmark, device, fn)
    assert codec.read_header(data).height == H


@pytest.mark.benchmark(group="decode 768x512")
@pytest.mark.parametrize("which", ["mbt2018-mean", "rdc-primary", "rdc-full"])
def test_bench_decode(benchmark, setup, which):
    device, rdc, mbt, x, streams = setup
    fn = {
        "mbt2018-mean": lambda: codec.decode(streams["mbt"], mbt),
        "rdc-primary": lambda: codec.decode(streams["rdc"], rdc, beta=1.0),
        "rdc-full": lambda: codec.decode(streams["rdc"], rdc),
    }[which]
    out = _run(benchmark, device, fn)
    assert out.shape == x.shape


@pytest.mark.benchmark(group="residual layers: serial vs threads")
@pytest.mark.parametrize("parallel", [False, True])
def test_bench_threaded_substream_coding(benchmark, setup, parallel):
    """Whether coding the K residual substreams on the thread pool of
    ``ResidualScalableBranch`` pays (CompressAI's rANS call holds the GIL; the
    tensor work around it does not)."""
    device, rdc, _, x, _ = setup
    res = rdc.residual
    with torch.no_grad():
        y = res.gain.gain(res.g_a(torch.cat([x * 0, x], 1)), torch.tensor([4.0])).cpu()
    idx = res.gaussian_conditional.build_indexes(torch.full_like(y, 2.0))
    parts = list(zip(y.split(res.group_sizes.tolist(), 1), idx.split(res.group_sizes.tolist(), 1)))
    gc = res.gaussian_conditional
    out = benchmark.pedantic(lambda: _map(lambda p: gc.compress(*p), parts, parallel), rounds=20, iterations=1, warmup_rounds=2)
    assert out == [gc.compress(*p) for p in parts]
