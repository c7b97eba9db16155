"""The README's main command, ``compressai-rdc demo``."""

from __future__ import annotations

import re

import pytest
import torch

import compressai_rdc
from compressai_rdc.cli import main
from compressai_rdc.zoo import save_weights
from compressai_rdc.zoo._weights import PRETRAINED


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = compressai_rdc.create_model("rdc-versatile")
    net.update(force=True)
    path, _ = save_weights(net, tmp_path_factory.mktemp("w") / "rdc.safetensors")
    return path


def _rows(text):
    return [line.split() for line in text.splitlines() if re.match(r"^\s*\d+\.\d+\s+\d", line)]


def test_demo_writes_table_images_and_plot(weights, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--weights", str(weights), "--rates", "0,7", "--betas", "1,0", "--out", str(out)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 4
    by = {(float(r[0]), float(r[1])): r for r in rows}
    for rate in (0.0, 7.0):
        # beta = 1 needs only the primary substreams: strictly fewer bytes than the full stream
        assert int(by[(rate, 1.0)][2]) < int(by[(rate, 0.0)][2])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["demo.png"] + [f"recon_rate{r}_beta{b}.png" for r in ("0", "7") for b in ("1", "0")]
    )


def test_demo_refuses_to_overwrite(weights, tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.png").write_bytes(b"keep me")
    assert main(["demo", "--weights", str(weights), "--rates", "0", "--betas", "1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "demo.png").read_bytes() == b"keep me"


def test_demo_rejects_bad_beta(weights, tmp_path, capsys):
    assert main(["demo", "--weights", str(weights), "--betas", "1.5", "--out", str(tmp_path / "d")]) == 2
    assert "beta must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.skipif("rdc-versatile" not in PRETRAINED, reason="no shipped rdc-versatile weights in this build")
def test_demo_runs_with_shipped_weights(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 12
    full = {float(r[0]): float(r[3]) for r in rows if float(r[1]) == 0.0}
    assert full[0.0] < full[7.0], "higher rate must cost more bits with trained weights"
