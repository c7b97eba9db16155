"""DDP: two gloo processes on the CPU end with identical weights (and MoCo queues)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from compressai_rdc.data import save_image


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    data = tmp_path / "data"
    for i in range(4):
        save_image(torch.rand(3, 64, 64), data / f"{i}.png")
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "compressai_rdc", "train", "rdc-versatile-stage1", "--out", str(out), "--device", "cpu",
        "--data", str(data), "--max-steps", "3", "--no-progress",
        "--set", "model.kwargs={N: 8, M: 8, residual_N: 8, residual_M: 8}",
        "--set", "data.batch_size=2", "--set", "data.crop=64", "--set", "log.every=1",
        "--set", "loss.moco-cognition.queue_size=8",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    digests = summary["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    # 2 ranks × 2 images × 3 steps = 12 keys gathered into a queue of 8: full
    assert int(ckpt["criterion"]["terms.moco-cognition.queue_len"]) == 8


def test_teardown_destroys_the_process_group(tmp_path):
    """The train command ends every DDP run with teardown(): a gloo group left to
    static destructors aborted a rank with std::terminate (exit -6) in ~3/8 runs."""
    import torch.distributed as dist

    from compressai_rdc.training import distributed

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.teardown()
    assert not dist.is_initialized()
    distributed.teardown()  # idempotent
    assert not dist.is_initialized()
