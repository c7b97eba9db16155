"""``benchmarks/downscale_cognition.py``: coding a downscaled crop and classifying its upsampled decode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from compressai_rdc import codec
from compressai_rdc.models import RDCVersatile

from conftest import load_repo_script


@pytest.fixture(scope="module")
def bench():
    return load_repo_script("benchmarks/downscale_cognition.py")


class _Recorder:
    """A task that keeps what it is shown; top-1 = share of images whose target equals their height."""

    def __init__(self):
        self.seen = []

    def predict(self, images, targets):
        self.seen += [im.clone() for im in images]
        return [(t, im.shape[-2]) for im, t in zip(images, targets)]

    def summarize(self, records):
        return {"top-1": 100.0 * sum(t == h for t, h in records) / len(records)}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2).eval()
    net.update(force=True)
    g = torch.Generator().manual_seed(1)
    images = [(torch.rand(3, 64, 64, generator=g) * 255).round().to(torch.uint8) for _ in range(2)]
    return net, images


def test_scale_one_is_the_protocol_and_a_smaller_scale_codes_fewer_bytes(bench, tiny):
    net, images = tiny
    task = _Recorder()
    full = bench.downscaled(net, task, images, [64, 0], 1.0, 2.0)
    x = images[0].float()[None] / 255
    data = codec.encode(net, x, rate=2.0, layers=0)
    assert torch.equal(task.seen[0], ((codec.decode(data, net, beta=1.0).clamp(0, 1) * 255).round() / 255)[0])
    want = sum(len(codec.encode(net, im.float()[None] / 255, rate=2.0, layers=0)) for im in images)
    assert full["bpp"] == pytest.approx(8 * want / (2 * 64 * 64), abs=1e-4)
    assert full["top-1"] == 50.0  # the task saw full-size decodes (target 64 = height for the first image)
    task = _Recorder()
    half = bench.downscaled(net, task, images, [64, 64], 0.5, 2.0)
    small = F.interpolate(x, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
    small = (small.clamp(0, 1) * 255).round() / 255
    assert torch.equal(task.seen[0], bench._resize(codec.decode(codec.encode(net, small, rate=2.0, layers=0), net,
                                                                beta=1.0).clamp(0, 1), 64, antialias=False)[0])
    assert half["bpp"] < full["bpp"] and half["top-1"] == 100.0  # upsampled back to 64×64 before the task
    assert all(tuple(im.shape) == (3, 64, 64) for im in task.seen)
    with pytest.raises(ValueError, match=r"scale=1.5 is invalid"):
        bench.downscaled(net, task, images, [0, 0], 1.5, 2.0)
