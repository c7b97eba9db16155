"""The ``compressai-rdc`` command line itself: start-up cost, the generated reference page,
messages, and the commands that need no model (``truncate``) or fail before loading one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compressai_rdc import codec
from compressai_rdc.cli import build_parser, main
from compressai_rdc.cli.reference import render
from compressai_rdc.data import load_image, sample_image_path
from compressai_rdc.errors import plural
from compressai_rdc.registry import COMMANDS
from compressai_rdc.zoo import create_model

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "compressai_rdc", *args], capture_output=True, text=True, env=env, timeout=120)


# -- start-up: help and version without importing PyTorch ----------------------------------------
HELP_CALLS = [["--help"], ["--version"]] + [[name, "--help"] for name in COMMANDS.names()]


@pytest.mark.benchmark(group="cli-help", min_rounds=3)
@pytest.mark.parametrize("args", HELP_CALLS, ids=[" ".join(a) for a in HELP_CALLS])
def test_help_is_quick(benchmark, args):
    """Goal ≤ 1.5 s each (``pytest tests/test_cli.py -k quick --benchmark-enable`` prints the times)."""
    proc = benchmark(_cli, *args)
    assert proc.returncode == 0, proc.stderr
    assert "usage: compressai-rdc" in proc.stdout or proc.stdout.startswith("compressai-rdc ")


def test_help_and_version_import_no_torch():
    code = (
        "import sys, contextlib, io\n"
        "from compressai_rdc.cli import main\n"
        "for argv in (['--help'], ['encode', '--help'], ['eval', '--help'], ['--version']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(argv)\n"
        "        except SystemExit: pass\n"
        "print('torch' in sys.modules, 'compressai' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert out.split() == ["False", "False"]


def test_reference_page_matches_the_parsers():
    page = (REPO / "docs" / "cli.md").read_text()
    assert page == render(), "docs/cli.md is stale: run `python -m compressai_rdc.cli.reference docs/cli.md`"
    for name in COMMANDS.names():
        assert f"\n## {name}\n" in page


def test_plural_of_registry_kinds():
    assert [plural(k) for k in ("loss", "quality-map strategy", "model", "task", "key")] == [
        "losses", "quality-map strategies", "models", "tasks", "keys"]


def test_unknown_names_use_proper_plurals(capsys):
    from compressai_rdc.errors import UnknownNameError
    from compressai_rdc.registry import LOSSES, QMAP_STRATEGIES

    with pytest.raises(UnknownNameError, match="registered losses: "):
        LOSSES.get("nope")
    with pytest.raises(UnknownNameError, match="registered quality-map strategies: "):
        QMAP_STRATEGIES.get("nope")


def test_eval_model_usage_names_the_command():
    proc = _cli("eval-model", "pretrained", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: compressai-rdc eval-model pretrained")
    assert "rdc-versatile" in proc.stdout
    assert "--beta BETA" in build_parser()._subparsers._group_actions[0].choices["eval-model"].format_usage()


# -- commands -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    torch.manual_seed(0)
    net = create_model("rdc-versatile", N=32, M=48, residual_N=16, residual_M=24).eval()
    net.update(force=True)
    x = load_image(sample_image_path())[None, :, :128, :192]
    path = tmp_path_factory.mktemp("s") / "s.rdc"
    path.write_bytes(codec.encode(net, x, rate=4.0))
    return path


def test_truncate_keeps_the_first_layers(stream, tmp_path, capsys):
    data = stream.read_bytes()
    assert codec.read_header(data).num_layers == 4
    for k in (0, 2):
        out = tmp_path / f"l{k}.rdc"
        assert main(["truncate", str(stream), "-o", str(out), "--layers", str(k)]) == 0
        assert out.read_bytes() == codec.truncate(data, k)
        assert codec.read_header(out.read_bytes()).num_layers == k
        assert f"kept {k} of 4 residual layers, {len(out.read_bytes())} of {len(data)} bytes" in capsys.readouterr().out
    assert main(["truncate", str(stream), "-o", str(tmp_path / "x.rdc"), "--layers", "5"]) == 2
    assert "valid: 0..4" in capsys.readouterr().err
    assert main(["truncate", str(stream), "-o", str(tmp_path / "l0.rdc"), "--layers", "0"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("output, message", [("x.xyz", "no image extension"), ("folder", "is a folder"), ("x", "no image extension")])
def test_decode_checks_the_output_before_decoding(stream, tmp_path, capsys, output, message):
    """Bad -o fails first: no weights are given, so reaching the model would say 'needs weights'."""
    (tmp_path / "folder").mkdir()
    assert main(["decode", str(stream), "-o", str(tmp_path / output)]) == 2
    err = capsys.readouterr().err
    assert message in err and "needs weights" not in err and ".png" in err
