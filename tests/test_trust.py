"""What compressai-rdc trusts: weights files (sha256), pickles (never), plugins
(by distribution), and the weights hash streams are checked against."""

from __future__ import annotations

import copy
import shutil
import sys
import textwrap

import pytest
import torch

from compressai_rdc import codec
from compressai_rdc.cli import main
from compressai_rdc.errors import ChecksumError, PluginLoadError, WeightsFormatError
from compressai_rdc.zoo import create_model
from compressai_rdc.zoo._pretrained import shipped_weights_dir, verify_weights_file
from compressai_rdc.zoo._weights import PRETRAINED

SHIPPED = PRETRAINED["rdc-versatile"]["mse"]


# -----------------------------------------------------------------------------
# --weights files
# -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped_file():
    path = shipped_weights_dir() / SHIPPED.file
    if not path.is_file():
        pytest.skip(f"shipped weights {path} not present")
    return path


def test_tampered_copy_of_a_zoo_file_is_refused(shipped_file, tmp_path, capsys):
    tampered = tmp_path / SHIPPED.file
    shutil.copy(shipped_file, tampered)
    with open(tampered, "r+b") as f:
        f.seek(-5, 2)
        last = f.read(1)
        f.seek(-5, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(ChecksumError, match=f"name of the zoo's rdc-versatile \\(mse\\) weights.*expected {SHIPPED.sha256}"):
        verify_weights_file(tampered)
    from compressai_rdc.data import sample_image_path

    assert main(["encode", str(sample_image_path()), "-o", str(tmp_path / "s.rdc"), "--model", "rdc-versatile",
                 "--weights", str(tampered), "--rate", "1"]) == 2
    assert "corrupt or was modified" in capsys.readouterr().err


def test_known_and_unknown_files_are_named_plainly(shipped_file, tmp_path):
    known, msg = verify_weights_file(shipped_file)
    assert known and msg.startswith("verified zoo weights rdc-versatile (mse)") and SHIPPED.sha256 in msg
    renamed = tmp_path / "mine.safetensors"
    shutil.copy(shipped_file, renamed)
    known, msg = verify_weights_file(renamed)
    assert not known and "using unregistered weights" in msg and SHIPPED.sha256 in msg


# -----------------------------------------------------------------------------
# update(force=True) and the weights hash
# -----------------------------------------------------------------------------
def test_update_force_keeps_streams_decodable_by_a_stock_model(shipped_file):
    stock = create_model("rdc-versatile", quality=3, pretrained=True)
    updated = copy.deepcopy(stock)
    updated.update(force=True)  # as benchmarks/ratecontrol_kodak.py does
    assert codec.weights_hash(updated) == codec.weights_hash(stock)
    x = torch.rand(1, 3, 48, 64)
    blob = codec.encode(updated, x, rate=2.0, layers=0)
    assert torch.equal(codec.decode(blob, stock), codec.decode(blob, updated))


# -----------------------------------------------------------------------------
# pickles never run
# -----------------------------------------------------------------------------
class _Evil:
    """Unpickling calls ``open(marker, "w")``: creating the file proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A malicious pickle under several names, with torch.load's pre-2.6 default
    (``weights_only=False``) restored so only an explicit ``weights_only=True`` is safe."""
    marker = tmp_path / "PWNED"
    paths = {}
    for name in ("evil.pth", "evil.pth.tar", "evil.pt", "evil.safetensors"):
        torch.save({"state_dict": _Evil(marker)}, tmp_path / name)
        paths[name] = tmp_path / name
    real = torch.load

    def old_default(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", old_default)
    yield marker, paths
    assert not marker.exists(), "a pickle ran code"


def test_eval_model_checkpoint_never_unpickles_code(evil, tmp_path):
    from compressai_rdc import eval_model

    marker, paths = evil
    for name in ("evil.pth", "evil.pth.tar", "evil.pt"):
        with pytest.raises(WeightsFormatError, match="never unpickles code"):
            eval_model.load_checkpoint("mbt2018-mean", False, str(paths[name]))
    images = tmp_path / "images"
    images.mkdir()
    from compressai_rdc.data import save_image

    save_image(torch.rand(3, 16, 16), images / "a.png")
    with pytest.raises(WeightsFormatError):
        eval_model.main(["checkpoint", str(images), "-a", "mbt2018-mean", "-p", str(paths["evil.pth"])])


def test_other_entry_points_never_unpickle(evil, tmp_path, capsys):
    from compressai_rdc.backbones import create_backbone
    from compressai_rdc.models import HEVRC

    marker, paths = evil
    net = HEVRC(N=16, M=16, cond_channels=8).eval()
    net.update(force=True)
    stream = tmp_path / "s.rdc"
    stream.write_bytes(codec.encode(net, torch.rand(1, 3, 32, 32)))
    for name, path in paths.items():
        with pytest.raises(WeightsFormatError):
            create_model("hevrc", weights=path)
        assert main(["decode", str(stream), "-o", str(tmp_path / "o.png"), "--weights", str(path)]) == 2
        assert "safetensors" in capsys.readouterr().err
        with pytest.raises(WeightsFormatError):
            create_backbone(weights=path)


# -----------------------------------------------------------------------------
# plugin allow-list identifies the distribution
# -----------------------------------------------------------------------------
def _fake_dist(root, dist, module, ep_name="example"):
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[compressai_rdc]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path(__file__).with_suffix(".imported").touch()
        from compressai_rdc import hookimpl

        @hookimpl
        def register_qmap_strategies(register):
            from compressai_rdc.qmap.strategies import UniformImportance
            register("{module.replace('_', '-')}", UniformImportance)
    """))


@pytest.fixture
def two_example_plugins(tmp_path, monkeypatch):
    import compressai_rdc

    _fake_dist(tmp_path, "real-example", "real_example_plugin")
    _fake_dist(tmp_path, "impostor-pkg", "impostor_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("COMPRESSAI_RDC_BLOCK_PLUGINS", raising=False)
    yield tmp_path
    for mod in ("real_example_plugin", "impostor_plugin"):
        sys.modules.pop(mod, None)
    monkeypatch.undo()
    compressai_rdc.reset_plugins()
    compressai_rdc.load_plugins()


def _load(monkeypatch, **env):
    import compressai_rdc
    from compressai_rdc.registry import QMAP_STRATEGIES

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    compressai_rdc.reset_plugins()
    compressai_rdc.load_plugins()
    return {n for n in QMAP_STRATEGIES.names() if n.endswith("-plugin")}


def test_ambiguous_plugin_name_is_refused_and_nothing_imported(two_example_plugins, monkeypatch):
    root = two_example_plugins
    for allow in ("example", None):
        if allow is None:
            monkeypatch.delenv("COMPRESSAI_RDC_PLUGINS", raising=False)
        with pytest.raises(PluginLoadError, match="'example' is declared by several distributions: impostor-pkg, real-example"):
            _load(monkeypatch, **({"COMPRESSAI_RDC_PLUGINS": allow} if allow else {}))
    assert not (root / "impostor_plugin.imported").exists() and not (root / "real_example_plugin.imported").exists()


def test_allow_list_entry_names_the_distribution(two_example_plugins, monkeypatch):
    root = two_example_plugins
    assert _load(monkeypatch, COMPRESSAI_RDC_PLUGINS="real-example:example") == {"real-example-plugin"}
    assert not (root / "impostor_plugin.imported").exists()
    from compressai_rdc import plugin_info

    info = {p.name: p for p in plugin_info()}
    assert info["example"].distribution == "real-example" and info["example"].version == "1.0"
    assert _load(monkeypatch, COMPRESSAI_RDC_PLUGINS="example", COMPRESSAI_RDC_BLOCK_PLUGINS="real_example:example") == {"impostor-plugin"}
