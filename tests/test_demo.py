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
    # the rate is what the decode reads: β = 1 rows are exactly the primary substreams of a full encode
    from compressai_rdc import codec
    from compressai_rdc.data import load_image, sample_image_path

    net = compressai_rdc.create_model("rdc-versatile", weights=weights)
    net.update()
    x = load_image(sample_image_path()).unsqueeze(0)
    full = codec.encode(net, x, rate=7.0, layers=net.residual_layers)
    assert int(by[(7.0, 0.0)][2]) == len(full) and int(by[(7.0, 1.0)][2]) == len(codec.truncate(full, 0))
    # own weights decode at the class default β = 0, marked; the class is named, not numbered
    assert by[(0.0, 0.0)][7] == "*" and by[(0.0, 1.0)][7] == "-"
    from PIL import Image

    width, height = Image.open(out / "demo.png").size
    assert width > 3 * 300  # original, β = 1 and β = 0 side by side (3.2 in each at 110 dpi)


def test_demo_prints_class_names(weights, tmp_path, capsys):
    from compressai_rdc.cli.demo import class_name

    assert class_name(88) == "macaw" and class_name(0) == "tench"
    assert main(["demo", "--weights", str(weights), "--rates", "0", "--betas", "1", "--out", str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert "classifier top-1 on the original: " in text
    first = text.split("classifier top-1 on the original: ")[1].split(" (class ")[0]
    assert first and not first.isdigit()


def test_demo_default_out_is_git_ignored():
    from pathlib import Path

    from compressai_rdc.cli.demo import DEFAULT_OUT

    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert f"/{DEFAULT_OUT}/" in ignored


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
    beta = PRETRAINED["rdc-versatile"]["mse"].decode_beta
    assert {float(r[1]) for r in rows if r[7] == "*"} == {beta}
