"""Every script in ``examples/`` runs, at small sizes, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_every_example_has_a_test():
    tested = {"quickstart.py", "new_variant.py", "script_model.py", "evaluate.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(tmp_path):
    out = _run("quickstart.py", "--size", "128", "--rate", "3", cwd=tmp_path)
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    primary = float(lines["β = 1"].split()[3])
    full = float(lines["β = 0"].split()[3])
    assert primary < full  # β = 1 reads the primary substreams only
    assert float(lines["0 residual layer(s)"].split()[3]) == pytest.approx(primary, abs=1e-4)
    assert float(lines["4 residual layer(s)"].split()[3]) == pytest.approx(full, abs=1e-4)


def test_new_variant_trains_and_codes(tmp_path):
    out = _run("new_variant.py", "--steps", "2", "--crop", "64", "--batch-size", "2", cwd=tmp_path)
    assert "step    2: loss" in out
    rates = [float(line.split()[2]) for line in out.splitlines() if line.startswith("rate ")]
    assert len(rates) == 2 and rates[0] < rates[1]  # the gain units give one model many rates


def test_script_model(tmp_path):
    out = _run("script_model.py", "--size", "64", cwd=tmp_path)
    assert "SmallHyperprior with N=64: registered as script-hyperprior" in out
    assert "deterministic: True" in out


@pytest.mark.slow
def test_evaluate(tmp_path):
    out = _run("evaluate.py", "--rates", "0,7", "--out", str(tmp_path / "ev"), cwd=tmp_path)
    assert "| rdc-versatile | rate=0 |" in out and "| avif |" in out
    assert (tmp_path / "ev" / "images" / "rdc-versatile.json").is_file()
    assert (tmp_path / "ev" / "results.csv").is_file()
