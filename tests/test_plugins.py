"""Plugin system: hooks, registries, provenance, env allow/block lists, the CompressAI bridge,
and the example third-party plugin installed for real with pip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import compressai.registry
import compressai.zoo
import compressai.zoo.image
import pytest
from compressai.models import MeanScaleHyperprior

from compressai_rdc import hookimpl
from compressai_rdc._plugins import BUILTIN_PLUGINS, plugin_info, register_plugin, unregister_plugin
from compressai_rdc.errors import PluginLoadError, RegistrationError, UnknownNameError
from compressai_rdc.qmap.strategies import QmapStrategy
from compressai_rdc.registry import MODELS, QMAP_STRATEGIES, Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "plugins" / "compressai-rdc-example"


class _TinyPlugin:
    class Net(MeanScaleHyperprior):
        def __init__(self, N=8, M=12):
            super().__init__(N=N, M=M)

    @hookimpl
    def register_models(self, register):
        register("test-tiny", self.Net, qualities=(1, 2), description="test model")

    class Flat(QmapStrategy):
        def importance(self, x):
            return x.new_full((x.shape[0], 1, *x.shape[-2:]), 0.5)

    @hookimpl
    def register_qmap_strategies(self, register):
        register("test-flat", self.Flat)


def test_registry_rejects_duplicates_and_bad_names():
    reg = Registry("thing")
    reg.register("a", 1, plugin="p")
    assert reg.register("a", 1, plugin="p") == 1  # same plugin, same object: idempotent
    with pytest.raises(RegistrationError, match="registered twice: by plugin 'p' and by 'q'"):
        reg.register("a", 2, plugin="q")
    with pytest.raises(RegistrationError, match="invalid"):
        reg.register("Bad Name", 3)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match="registered models: .*") as info:
        MODELS.get("no-such-model")
    assert isinstance(info.value, KeyError)
    assert "no-such-model" in str(info.value)


def test_model_spec_validation():
    with pytest.raises(RegistrationError, match="not a compressai.models.CompressionModel"):
        Registry("model", MODELS._build).register("x", dict)
    with pytest.raises(RegistrationError, match="unknown spec fields"):
        Registry("model", MODELS._build).register("x", MeanScaleHyperprior, quality=3)


class _BadStrategyPlugin:
    @hookimpl
    def register_qmap_strategies(self, register):
        register("test-not-a-strategy", object)


def test_registries_validate_what_plugins_register():
    with pytest.raises(RegistrationError, match=r"plugin 'bad-strategies' registered an invalid quality-map strategy: .*QmapStrategy"):
        register_plugin(_BadStrategyPlugin(), name="bad-strategies")
    assert "test-not-a-strategy" not in QMAP_STRATEGIES
    with pytest.raises(RegistrationError, match="not a subclass of torch.nn.modules.module.Module"):
        Registry("loss", __import__("compressai_rdc.registry", fromlist=["LOSSES"]).LOSSES._build).register("x", dict)


def test_example_center_gaussian_is_a_strategy_whose_corners_get_bits():
    """The example's CenterGaussian (from this checkout) lifts its zero corners, as HEVRC §4.3 asks."""
    import importlib.util

    import torch

    from compressai_rdc.qmap.gamma import gamma_level

    path = EXAMPLE / "compressai_rdc_example" / "plugin.py"
    spec = importlib.util.spec_from_file_location("_example_plugin_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert issubclass(mod.CenterGaussian, QmapStrategy)
    v = mod.CenterGaussian(sigma=0.3)(torch.rand(1, 3, 32, 48))
    raw = mod.CenterGaussian(sigma=0.3).importance(torch.rand(1, 3, 32, 48))
    assert float(raw[..., 0, 0]) == 0.0  # the plain Gaussian's corner
    corner = float(v[..., 0, 0])
    assert corner == pytest.approx(float(raw[raw > 0].min()))  # lifted to the smallest non-zero value
    assert float(gamma_level(raw, 2.0)[..., 0, 0]) == 0.0  # unlifted: no bits at the corner even at the top level
    assert float(gamma_level(v, 2.0)[..., 0, 0]) > 0.99


def test_builtins_register_through_hooks():
    infos = {i.name: i for i in plugin_info()}
    for name in BUILTIN_PLUGINS:
        assert infos[name].builtin and infos[name].distribution == "compressai-rdc"
    assert "plugins" in infos["compressai_rdc._builtin.core"].registered["command"]
    # each command is credited to the built-in it belongs to
    commands = {name: set(i.registered.get("command", [])) for name, i in infos.items() if i.builtin}
    assert {"encode", "decode"} <= commands["compressai_rdc._builtin.core"]
    assert commands["compressai_rdc._builtin.qmap"] == {"qmap"}
    assert commands["compressai_rdc._builtin.training"] == {"train", "release"}
    assert commands["compressai_rdc._builtin.evaluation"] == {"eval"}
    assert "command" not in infos["compressai_rdc._builtin.losses"].registered


def test_runtime_plugin_is_bridged_into_all_compressai_tables_and_removed():
    info = register_plugin(_TinyPlugin(), name="tiny-test-plugin")
    try:
        assert info.registered == {"model": ["test-tiny"], "quality-map strategy": ["test-flat"]}
        assert MODELS.entry("test-tiny").plugin == "tiny-test-plugin"
        assert compressai.registry.MODELS["test-tiny"] is _TinyPlugin.Net
        assert compressai.zoo.image.model_architectures["test-tiny"] is _TinyPlugin.Net
        net = compressai.zoo.image_models["test-tiny"](quality=2)
        assert isinstance(net, _TinyPlugin.Net)
        assert compressai.zoo.models["test-tiny"] is compressai.zoo.image_models["test-tiny"]
        from compressai_rdc.zoo import test_tiny  # factory generated for plugin models

        assert isinstance(test_tiny(), _TinyPlugin.Net)
    finally:
        unregister_plugin("tiny-test-plugin")
    assert "test-tiny" not in MODELS and "test-flat" not in QMAP_STRATEGIES
    for table in (compressai.registry.MODELS, compressai.zoo.image_models, compressai.zoo.models):
        assert "test-tiny" not in table


def test_plugin_clashing_with_compressai_name_is_refused():
    class Clash:
        @hookimpl
        def register_models(self, register):
            register("mbt2018-mean", MeanScaleHyperprior)

    with pytest.raises(RegistrationError, match="clashes with CompressAI's own 'mbt2018-mean'"):
        register_plugin(Clash(), name="clash")
    assert "mbt2018-mean" not in MODELS
    assert compressai.zoo.image_models["mbt2018-mean"] is compressai.zoo.mbt2018_mean
    with pytest.raises(PluginLoadError):
        unregister_plugin("clash")


def _run(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPRESSAI_RDC_") or k == "COMPRESSAI_RDC_DATA"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=True, timeout=300)


@pytest.fixture(scope="module")
def example_plugin_installed(tmp_path_factory):
    """pip-install the example plugin into this environment (uninstalled afterwards if we installed it)."""
    probe = subprocess.run([sys.executable, "-m", "pip", "show", "-q", "compressai-rdc-example"], capture_output=True)
    installed_here = probe.returncode != 0
    if installed_here:
        # build from a copy: setuptools writes build/ and *.egg-info next to the sources
        src = tmp_path_factory.mktemp("plugin") / EXAMPLE.name
        shutil.copytree(EXAMPLE, src)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
            check=True,
            timeout=300,
        )
    yield
    if installed_here:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "compressai-rdc-example"], check=True)


@pytest.mark.slow
def test_example_plugin_visible_then_blocked(example_plugin_installed, tmp_path):
    out = _run(["-m", "compressai_rdc", "plugins", "--json"]).stdout
    plugins = {p["name"]: p for p in json.loads(out)["plugins"]}
    ex = plugins["example"]
    assert ex["distribution"] == "compressai-rdc-example" and ex["version"] == "0.1.0" and not ex["builtin"]
    assert ex["registered"] == {"model": ["example-tiny-hyperprior"], "quality-map strategy": ["center-gaussian"]}
    text = _run(["-m", "compressai_rdc", "plugins"]).stdout
    assert "example  [third-party; compressai-rdc-example 0.1.0]" in text

    probe = (
        "import compressai_rdc, compressai.zoo as z, compressai.registry as r, compressai.zoo.image as zi;"
        "compressai_rdc.load_plugins(); n='example-tiny-hyperprior';"
        "print(n in z.image_models, n in z.models, n in r.MODELS, n in zi.model_architectures, n in compressai_rdc.list_models())"
    )
    assert _run(["-c", probe]).stdout.split() == ["True"] * 5
    blocked = _run(["-c", probe], {"COMPRESSAI_RDC_BLOCK_PLUGINS": "example"}).stdout.split()
    assert blocked == ["False"] * 5
    not_allowed = _run(["-c", probe], {"COMPRESSAI_RDC_PLUGINS": "someone-else"}).stdout.split()
    assert not_allowed == ["False"] * 5
    allowed = _run(["-c", probe], {"COMPRESSAI_RDC_PLUGINS": "example"}).stdout.split()
    assert allowed == ["True"] * 5
    text = _run(["-m", "compressai_rdc", "plugins"], {"COMPRESSAI_RDC_BLOCK_PLUGINS": "example"}).stdout
    assert "example  [" not in text and "blocked by" in text and "example" in text.splitlines()[-1]


@pytest.mark.slow
def test_compressai_eval_model_runs_plugin_model(example_plugin_installed, tmp_path, sample_image):
    """CompressAI's own eval_model (unchanged) evaluates a plugin-registered model via our wrapper."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    # CompressAI computes MS-SSIM, which needs more than 160 px a side
    arr = (sample_image[0, :, :192, :192].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(arr).save(images / "a.png")
    Image.fromarray(arr[:, ::-1].copy()).save(images / "b.png")
    code = (
        "import torch, sys, compressai_rdc;"
        "net = compressai_rdc.create_model('example-tiny-hyperprior'); net.update(force=True);"
        "torch.save(net.state_dict(), sys.argv[1])"
    )
    ckpt = tmp_path / "tiny.pth.tar"
    _run(["-c", code, str(ckpt)])
    out = _run(["-m", "compressai_rdc", "eval-model", "checkpoint", str(images), "-a", "example-tiny-hyperprior", "-p", str(ckpt)]).stdout
    result = json.loads(out[out.index("{"):])
    assert result["name"] == "example-tiny-hyperprior-mse"
    bpp, psnr = result["results"]["bpp"][0], result["results"]["psnr-rgb"][0]
    assert 0.0 < bpp < 24.0 and 0.0 < psnr < 60.0


# -- broken third-party plugins are skipped, the rest works -----------------------------------------
def _fake_distribution(root: Path, name: str, entry_points: dict, modules: dict) -> None:
    """A distribution importlib.metadata finds on sys.path, without pip."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[compressai_rdc]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for mod, code in modules.items():
        (root / f"{mod}.py").write_text(code)


@pytest.fixture()
def broken_plugins_path(tmp_path):
    _fake_distribution(
        tmp_path, "rdc-broken-plugins",
        {"import-fails": "rdc_broken_import", "hook-fails": "rdc_broken_hook"},
        {
            "rdc_broken_import": "raise RuntimeError('boom at import')\n",
            "rdc_broken_hook": (
                "from compressai.models import MeanScaleHyperprior\n"
                "from compressai_rdc import hookimpl\n"
                "from compressai_rdc.registry import WeightSpec\n"
                "@hookimpl\n"
                "def register_qmap_strategies(register):\n"
                "    register('half-registered', object)\n"
                "@hookimpl\n"
                "def register_models(register):\n"
                "    register('broken-net', MeanScaleHyperprior, weights={'mse': WeightSpec('w.safetensors', '<sha256>')})\n"
            ),
        },
    )
    return tmp_path


def test_broken_plugins_are_reported_and_skipped(broken_plugins_path):
    env = {"PYTHONPATH": os.pathsep.join([str(broken_plugins_path), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "compressai_rdc", "models"], capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("COMPRESSAI_RDC_")}, **env})
    assert proc.returncode == 0, proc.stderr
    assert "rdc-versatile" in proc.stdout and "broken-net" not in proc.stdout
    assert "'import-fails' failed to load" in proc.stderr and "RuntimeError('boom at import')" in proc.stderr
    assert "'hook-fails' failed in register_models" in proc.stderr and "COMPRESSAI_RDC_BLOCK_PLUGINS=hook-fails" in proc.stderr
    assert "Traceback" not in proc.stderr
    listing = _run(["-m", "compressai_rdc", "plugins", "--json"], env)
    data = json.loads(listing.stdout)
    assert set(data["broken"]) == {"import-fails", "hook-fails"}
    assert "hook-fails" not in {p["name"] for p in data["plugins"]}
    names = {n for p in data["plugins"] for kind in p["registered"].values() for n in kind}
    assert "half-registered" not in names  # what the broken plugin registered before failing is removed
    quiet = _run(["-m", "compressai_rdc", "models"], {**env, "COMPRESSAI_RDC_BLOCK_PLUGINS": "import-fails,hook-fails"})
    assert "failed" not in quiet.stderr and "rdc-versatile" in quiet.stdout


def test_import_alone_fills_compressai_tables():
    """`import compressai_rdc` (before or after CompressAI) puts every model in CompressAI's four tables,
    without importing PyTorch itself."""
    tables = ("z.image_models", "z.models", "r.MODELS", "zi.model_architectures")
    # membership is checked before anything looks a name up (a lookup would fill the tables itself)
    check = "print(*[all(n in t for n in ('rdc-versatile', 'hevrc', 'rdc-qmap')) for t in (" + ", ".join(tables) + ")])"
    before = _run(["-c", "import sys, compressai_rdc; t = 'torch' in sys.modules\n"
                         "import compressai.zoo as z, compressai.registry as r, compressai.zoo.image as zi\n"
                         "print(t); " + check], {"PYTHONPATH": str(REPO)})
    assert before.stdout.split() == ["False"] + ["True"] * 4
    after = _run(["-c", "import compressai.zoo as z, compressai.registry as r, compressai.zoo.image as zi, compressai_rdc\n" + check],
                 {"PYTHONPATH": str(REPO)})
    assert after.stdout.split() == ["True"] * 4
