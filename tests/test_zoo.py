"""Zoo contract: validation once for every factory, offline weight resolution in the
documented order, sha256 verification, safetensors only, wrappers and entropy-coder buffers."""

from __future__ import annotations

import copy


import os
import stat

import pytest
import torch
from compressai.models import MeanScaleHyperprior

from compressai_rdc import hookimpl
from compressai_rdc._plugins import register_plugin, unregister_plugin
from compressai_rdc.errors import ChecksumError, InvalidArgumentError, WeightsFormatError, WeightsNotFoundError
from compressai_rdc.registry import WeightSpec
from compressai_rdc.zoo import WEIGHTS_ENV, create_model, get_factory, load_into, load_state_dict_file, save_weights, sha256_file
from compressai_rdc.zoo import _pretrained


class Net(MeanScaleHyperprior):
    def __init__(self, N=8, M=12, default_gain=1.0):
        super().__init__(N=N, M=M)
        self.default_gain = default_gain


def _trained_like(seed=0) -> Net:
    torch.manual_seed(seed)
    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    net.update(force=True)
    return net


@pytest.fixture
def zoo_model(tmp_path, monkeypatch):
    """Register 'zoo-test' with a weights table pointing at a file we create."""
    net = _trained_like()
    path, digest = save_weights(net, tmp_path / "weights" / "zoo-test-mse.safetensors")
    spec = WeightSpec("zoo-test-mse.safetensors", digest, description="test weights")

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                "zoo-test",
                Net,
                kwargs={"N": 8, "M": 12},
                qualities=(1, 2, 3),
                quality_kwargs=lambda q: {"default_gain": float(q)},
                weights={"mse": spec},
            )

    register_plugin(Plugin(), name="zoo-test-plugin")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    yield net, path, digest
    unregister_plugin("zoo-test-plugin")


def test_quality_and_metric_validated_once_for_every_factory(zoo_model):
    f = get_factory("zoo-test")
    assert f(quality=2).default_gain == 2.0
    with pytest.raises(InvalidArgumentError, match=r"quality 4 is invalid for zoo-test; valid: 1\.\.3"):
        f(quality=4)
    with pytest.raises(InvalidArgumentError, match="quality True is invalid"):
        f(quality=True)
    with pytest.raises(InvalidArgumentError, match="metric 'ms-ssim' is invalid for zoo-test; valid: mse"):
        f(quality=1, metric="ms-ssim")


def test_pretrained_without_file_names_every_place_tried(zoo_model):
    with pytest.raises(WeightsNotFoundError) as info:
        create_model("zoo-test", quality=1, pretrained=True)
    msg = str(info.value)
    assert "zoo-test-mse.safetensors" in msg and WEIGHTS_ENV in msg and "nothing is downloaded" in msg


def test_pretrained_from_env_dir_verified_and_buffers_restored(zoo_model, monkeypatch):
    net, path, _ = zoo_model
    monkeypatch.setenv(WEIGHTS_ENV, str(path.parent))
    loaded = create_model("zoo-test", quality=3, pretrained=True)
    assert not loaded.training and loaded.default_gain == 3.0
    # fp16 storage: parameters equal the fp16-rounded originals; buffers (likelihood bound
    # 1e-9, which fp16 would flush to zero) identical; entropy tables recomputed from the
    # loaded parameters, so update(force=True) changes nothing (zoo.load_into)
    params = {k for k, _ in net.named_parameters()}
    again = copy.deepcopy(loaded)
    again.update(force=True)
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        if k in params:
            assert torch.equal(a.half().float(), b), k
        elif k.endswith(("_quantized_cdf", "_offset", "_cdf_length")):
            assert torch.equal(b, again.state_dict()[k]), k
        else:
            assert torch.equal(a, b), k
    assert loaded.gaussian_conditional.likelihood_lower_bound.bound.item() > 0
    x = torch.rand(1, 3, 64, 64)
    strings = loaded.compress(x)["strings"]
    again = create_model("zoo-test", quality=3, pretrained=True).compress(x)["strings"]
    assert strings == again


def test_explicit_weights_path_and_folder(zoo_model):
    _, path, digest = zoo_model
    a = create_model("zoo-test", weights=path)
    b = create_model("zoo-test", weights=path.parent)  # folder holding the zoo's file name
    c = create_model("zoo-test", weights=path, sha256=digest)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]) and torch.equal(v, c.state_dict()[k])
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_model("zoo-test", weights=path.parent / "missing.safetensors")
    # the low-level reader too (the eval's --compressai checkpoint= and --model weights= paths), typed
    for missing in (path.parent / "missing.safetensors", path.parent / "folder.safetensors"):
        if missing.name.startswith("folder"):
            missing.mkdir()
        with pytest.raises(WeightsNotFoundError, match=f"weights file .*{missing.name}.* not found"):
            load_state_dict_file(missing)


def test_corrupt_file_fails_checksum(zoo_model, monkeypatch, tmp_path):
    _, path, _ = zoo_model
    bad = tmp_path / "env" / path.name
    bad.parent.mkdir()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv(WEIGHTS_ENV, str(bad.parent))
    with pytest.raises(ChecksumError, match="expected"):
        create_model("zoo-test", pretrained=True)
    with pytest.raises(ChecksumError):
        create_model("zoo-test", weights=bad, sha256=sha256_file(path))


def test_pickle_refused_and_garbage_rejected(tmp_path):
    pth = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, pth)
    with pytest.raises(WeightsFormatError, match="never unpickles"):
        _pretrained.load_state_dict_file(pth)
    junk = tmp_path / "w.safetensors"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(WeightsFormatError, match="not a readable safetensors"):
        _pretrained.load_state_dict_file(junk)


def test_wrappers_and_prefixes_are_unwrapped_and_buffers_resized():
    src = _trained_like(1)
    sd = {"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}
    dst = Net()  # fresh: entropy-coder buffers empty, must be resized on load
    assert dst.entropy_bottleneck._quantized_cdf.numel() == 0
    load_into(dst, sd)
    assert torch.equal(dst.entropy_bottleneck._quantized_cdf, src.entropy_bottleneck._quantized_cdf)
    assert torch.equal(dst.gaussian_conditional.scale_table, src.gaussian_conditional.scale_table)


def test_weights_without_entropy_tables_are_updated_on_load(tmp_path):
    src = Net()
    sd = {k: v for k, v in src.state_dict().items() if not k.split(".")[-1].startswith(("_quantized_cdf", "_offset", "_cdf_length", "scale_table"))}
    dst = Net()
    load_into(dst, sd)
    assert dst.entropy_bottleneck._offset.numel() > 0  # update() ran
    assert dst.compress(torch.rand(1, 3, 64, 64))["strings"]


def test_mismatched_weights_name_the_problem(tmp_path):
    path, _ = save_weights(_trained_like(), tmp_path / "w.safetensors")
    with pytest.raises(WeightsFormatError, match="do not fit Net"):
        load_into(Net(N=16, M=12), _pretrained.load_state_dict_file(path))


def test_save_weights_never_overwrites(tmp_path):
    path, _ = save_weights(Net(), tmp_path / "w.safetensors")
    with pytest.raises(FileExistsError):
        save_weights(Net(), path)


def test_load_model_is_the_one_loader_of_cli_and_eval(tmp_path):
    """A file of non-default widths loads the same way in the CLI and in eval."""
    from compressai_rdc.cli.encode import load_model as cli_load_model
    from compressai_rdc.codec import weights_hash
    from compressai_rdc.eval.codecs import build_registered_codec
    from compressai_rdc.eval.spec import parse_spec
    from compressai_rdc.zoo import load_model

    torch.manual_seed(0)
    net = create_model("rdc-versatile", N=8, M=12, residual_N=8, residual_M=8).eval()
    net.update(force=True)
    path, _ = save_weights(net, tmp_path / "tiny.safetensors", half=False)
    zoo = load_model("rdc-versatile", path, quality=3)
    assert (zoo.primary.N, zoo.primary.M, zoo.default_rate) == (8, 12, 2.0)
    cli = cli_load_model("rdc-versatile", path, False)
    evaluated = build_registered_codec(parse_spec(f"rdc-versatile:weights={path}")).models[None]
    assert weights_hash(zoo) == weights_hash(cli) == weights_hash(evaluated) == weights_hash(net)


def test_eval_spec_without_weights_warns_that_the_model_is_random():
    import warnings

    from compressai_rdc.eval.codecs import RandomInitialisationWarning, build_registered_codec
    from compressai_rdc.eval.spec import parse_spec

    with pytest.warns(RandomInitialisationWarning, match="--model rdc-versatile: .*pretrained=true"):
        codec = build_registered_codec(parse_spec("rdc-versatile:rate=1"))
    assert "RANDOM INITIALISATION" in codec.description
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomInitialisationWarning)
        build_registered_codec(parse_spec("rdc-versatile:pretrained=true,rate=1"))  # shipped weights: no warning


# -- CompressAI's own architectures, decode_beta, plugin-packaged weights, file modes -------------
def test_create_model_builds_compressai_architectures(tmp_path):
    """An exported mbt2018-mean baseline (any width) loads by name, like the training guide says."""
    from compressai.models import MeanScaleHyperprior as MSH

    torch.manual_seed(0)
    net = MSH(N=32, M=48).eval()
    net.update(force=True)
    path, _ = save_weights(net, tmp_path / "baseline.safetensors")
    loaded = create_model("mbt2018-mean", quality=3, weights=path)
    assert type(loaded) is MSH and loaded.g_a[0].weight.shape[0] == 32
    assert torch.equal(loaded.g_a[0].weight, net.g_a[0].weight.half().float())
    fresh = create_model("mbt2018-mean", quality=1)
    assert type(fresh) is MSH and fresh.g_a[0].weight.shape[0] == 128  # CompressAI's width of quality 1
    with pytest.raises(InvalidArgumentError, match="would download"):
        create_model("mbt2018-mean", quality=3, pretrained=True)
    with pytest.raises(InvalidArgumentError, match="needs a quality"):
        create_model("mbt2018-mean")


def test_load_into_a_path_says_what_to_do(tmp_path):
    net = create_model("rdc-versatile")
    with pytest.raises(WeightsFormatError, match=r"load_into got the path .*load_state_dict_file"):
        load_into(net, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsFormatError, match="needs a state dict"):
        load_into(net, [1, 2])


def test_saved_weights_have_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path, _ = save_weights(create_model("rdc-versatile"), tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_weight_spec_validates_decode_beta():
    with pytest.raises(Exception, match=r"decode_beta .* \[0, 1\]"):
        WeightSpec("a.safetensors", "0" * 64, decode_beta=1.5)
    with pytest.raises(Exception, match="sha256sum"):
        WeightSpec("a.safetensors", "<sha256>")


def test_plugin_ships_weights_in_its_own_package(tmp_path, monkeypatch):
    """A WeightSpec with package= resolves inside that package; its decode_beta becomes the model's default."""
    from compressai_rdc.models.rdc import RDCVersatile

    pkg = tmp_path / "rdc_weights_pkg_test"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    torch.manual_seed(1)
    small = dict(N=16, M=24, residual_N=8, residual_M=12)
    net = RDCVersatile(**small).eval()
    net.update(force=True)
    path, digest = save_weights(net, pkg / "weights" / "tiny.safetensors")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Plugin:
        @hookimpl
        def register_models(self, register):
            spec = WeightSpec("weights/tiny.safetensors", digest, decode_beta=0.25, package="rdc_weights_pkg_test")
            register("test-packaged-weights", RDCVersatile, kwargs=small, weights={"mse": spec})

    register_plugin(Plugin(), name="packaged-weights-test")
    try:
        model = create_model("test-packaged-weights", pretrained=True)
        assert model.default_beta == 0.25
        assert torch.equal(model.primary.g_a[0].weight, net.primary.g_a[0].weight.half().float())
        assert create_model("test-packaged-weights").default_beta == 0.0  # no weights: the class default
    finally:
        unregister_plugin("packaged-weights-test")


def test_decode_beta_override_for_eval_model():
    from compressai_rdc.zoo import decode_beta

    with decode_beta(0.5):
        assert create_model("rdc-versatile").default_beta == 0.5
    assert create_model("rdc-versatile").default_beta == 0.0
    with pytest.raises(InvalidArgumentError, match="beta"):
        with decode_beta(2.0):
            pass
