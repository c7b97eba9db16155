"""``benchmarks/stream_overhead.py``: the header / payload split of the bytes a decode reads."""

from __future__ import annotations

import pytest
import torch

from compressai_rdc import codec
from compressai_rdc.models import RDCVersatile

from conftest import load_repo_script


@pytest.fixture(scope="module")
def overhead():
    return load_repo_script("benchmarks/stream_overhead.py").overhead


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2).eval()
    net.update(force=True)
    images = [torch.rand(3, 48, 64), torch.rand(3, 32, 32)]
    return net, images


def test_header_and_groups_add_up_to_the_bytes_read(overhead, tiny):
    net, images = tiny
    primary = overhead(net, images, 2.0, 0, 1.0)
    full = overhead(net, images, 2.0, 2, 0.0)
    for row in (primary, full):
        assert row["images"] == 2
        assert row["header_bytes"] + sum(row["group_bytes"]) == pytest.approx(row["bytes"], abs=0.11)
        assert row["header_share"] == pytest.approx(row["header_bytes"] / row["bytes"], abs=1e-3)
    # β = 1 reads the primary's two groups (y, z); β = 0 with two layers all five
    assert len(primary["group_bytes"]) == 2 and len(full["group_bytes"]) == 5
    assert full["group_bytes"][:2] == primary["group_bytes"] and full["bytes"] > primary["bytes"]
    # the bytes counted are those of bytes_read, one container per image
    x = images[0][None]
    read = codec.bytes_read(codec.encode(net, x, rate=2.0, layers=0), net, layers=0, beta=1.0)
    alone = overhead(net, images[:1], 2.0, 0, 1.0)
    assert alone["bytes"] == len(read)
    assert alone["header_bytes"] == codec.read_header(read).header_size
    assert alone["bpp"] == pytest.approx(8 * len(read) / (48 * 64), abs=1e-4)
