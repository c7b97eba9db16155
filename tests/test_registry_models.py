"""Contract tests run for EVERY registered image codec (built-in or plugin).

A newly registered model gets these tests without anyone writing a new one:
forward shapes and likelihood ranges, ``update()`` + ``compress``/``decompress``
round trip with bpp from real bytes, a container cut to its base layer, determinism, ``state_dict`` round trips
(CompressAI's ``from_state_dict`` and our fp16 safetensors path, entropy-coder
buffers restored), the zoo factory, CompressAI's name tables and its unchanged
``eval_model``.
"""

from __future__ import annotations

import copy

import json
import math

import compressai.registry
import compressai.zoo
import compressai.zoo.image
import pytest
import torch

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.contract import accepts, hooks
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.registry import MODELS
from compressai_rdc.zoo import create_model, get_factory, save_weights

MODEL_NAMES = compressai_rdc.list_models()
SIZE = (64, 128)  # H, W: multiples of 64, as CompressAI's bare compress() expects (codec.encode pads any size)


def _input(seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content so that rates are image-like rather than white noise
    x = torch.rand(1, 3, size[0] // 8, size[1] // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module", params=MODEL_NAMES)
def built(request):
    name = request.param
    torch.manual_seed(0)
    net = create_model(name).eval()
    net.update(force=True)
    return name, net


def _nbytes(strings) -> int:
    total = 0
    for s in strings:
        if isinstance(s, (bytes, bytearray)):
            total += len(s)
        else:
            total += _nbytes(s)
    return total


def test_registry_is_not_empty():
    assert MODEL_NAMES, "no image codec is registered"


def test_bridged_into_every_compressai_table(built):
    name, net = built
    spec = MODELS.get(name)
    assert compressai.registry.MODELS[name] is spec.cls
    assert compressai.zoo.image.model_architectures[name] is spec.cls
    assert compressai.zoo.image_models[name] is get_factory(name)
    assert compressai.zoo.models[name] is get_factory(name)


def test_forward_shapes_and_likelihood_ranges(built):
    name, net = built
    x = _input()
    for training in (True, False):
        net.train(training)
        out = net(x)
        assert out["x_hat"].shape == x.shape, name
        assert out["likelihoods"], name
        for key, lik in out["likelihoods"].items():
            assert torch.isfinite(lik).all(), (name, key)
            lik = lik.detach()
            assert float(lik.min()) > 0 and float(lik.max()) <= 1.0 + 1e-6, (name, key)
    net.eval()


def test_forward_backward_reaches_parameters(built):
    name, net = built
    net.train()
    x = _input(1)
    out = net(x)
    bpp = sum(-torch.log2(l).sum() for l in out["likelihoods"].values()) / (x.shape[-1] * x.shape[-2])
    loss = bpp + 100 * torch.nn.functional.mse_loss(out["x_hat"], x)
    net.zero_grad()
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2, name
    net.zero_grad()
    net.eval()


def test_compress_decompress_round_trip(built):
    name, net = built
    x = _input(2)
    with torch.no_grad():
        enc = net.compress(x)
        dec1 = net.decompress(enc["strings"], enc["shape"])["x_hat"]
        dec2 = net.decompress(enc["strings"], enc["shape"])["x_hat"]
        est = net(x)
    assert torch.equal(dec1, dec2), "decoding the same bytes must be deterministic"
    assert dec1.shape[-2:] == x.shape[-2:]
    # the decoder reproduces the eval-mode forward (same rounding) up to float noise
    assert (dec1.clamp(0, 1) - est["x_hat"].clamp(0, 1)).abs().max() < 2e-3, name
    bpp_bytes = _nbytes(enc["strings"]) * 8 / (x.shape[-1] * x.shape[-2])
    bpp_est = float(sum(-torch.log2(l).sum() for l in est["likelihoods"].values())) / (x.shape[-1] * x.shape[-2])
    assert bpp_bytes > 0
    # arithmetic coding is within a few bytes per stream of the estimate
    assert abs(bpp_bytes - bpp_est) <= 0.1 * bpp_est + 8 * 8 * len(enc["strings"]) / (x.shape[-1] * x.shape[-2]), (bpp_bytes, bpp_est)


def test_container_cut_to_the_base_is_the_base_stream(built):
    """Cut to its base layer without a model, a container decodes like the full stream at ``layers=0``;
    for a model that codes refinement layers it is byte for byte the stream an encode without them
    writes (the header fields only those layers need, ``refinement_controls`` / ``refinement_checks``,
    go with them)."""
    name, net = built
    x = _input(4, size=(48, 80))
    data = codec.encode(net, x)
    h = codec.read_header(data)
    base = codec.truncate(data, 0)
    assert torch.equal(codec.decode(base, net), codec.decode(data, net, layers=0)), name
    assert set(codec.read_header(base).controls).isdisjoint(hooks(net).refinement_controls)
    if not h.num_layers:
        assert base == data
    elif accepts(net.compress, "layers"):
        assert base == codec.encode(net, x, layers=0), name
        assert len(data) > len(base)


def test_compress_is_deterministic_and_fresh_model_agrees(built):
    name, net = built
    x = _input(3)
    a = net.compress(x)["strings"]
    b = net.compress(x)["strings"]
    assert a == b


def test_state_dict_round_trip_from_state_dict(built):
    name, net = built
    spec = MODELS.get(name)
    rebuilt = spec.cls.from_state_dict(net.state_dict()).eval()
    x = _input(4)
    assert rebuilt.compress(x)["strings"] == net.compress(x)["strings"], "from_state_dict must restore entropy tables"


def test_fp16_safetensors_round_trip_through_zoo(built, tmp_path):
    name, net = built
    path, digest = save_weights(net, tmp_path / f"{name}.safetensors")
    loaded = create_model(name, weights=path, sha256=digest)
    assert not loaded.training
    buffers = {k for k, _ in net.named_buffers()}  # constants such as the 1e-9 likelihood bound stay exact
    tables = ("_quantized_cdf", "_offset", "_cdf_length")  # recomputed from the loaded parameters (zoo.load_into)
    again = copy.deepcopy(loaded)
    again.update(force=True)
    for k, v in net.state_dict().items():
        w = loaded.state_dict()[k]
        if k.endswith(tables):
            assert torch.equal(w, again.state_dict()[k]), f"table {k} changes on update(force=True)"
            continue
        assert w.shape == v.shape, k
        if not v.is_floating_point() or k in buffers:
            assert torch.equal(w, v), f"buffer {k} not restored exactly"
    x = _input(5)
    enc = loaded.compress(x)
    assert loaded.decompress(enc["strings"], enc["shape"])["x_hat"].shape == x.shape


def test_zoo_factory_validates_quality(built):
    name, _ = built
    spec = MODELS.get(name)
    for q in (spec.qualities[0], spec.qualities[-1]):
        assert isinstance(get_factory(name)(quality=q), spec.cls)
    with pytest.raises(InvalidArgumentError, match="quality"):
        get_factory(name)(quality=max(spec.qualities) + 1)


@pytest.mark.slow
def test_compressai_eval_model_on_registered_model(built, tmp_path, sample_image):
    """CompressAI's own, unchanged eval_model evaluates the model from a checkpoint."""
    from PIL import Image

    from compressai_rdc.eval_model import main as eval_model_main

    name, net = built
    images = tmp_path / "images"
    images.mkdir()
    # CompressAI computes MS-SSIM, which needs more than 160 px a side
    arr = (sample_image[0, :, :192, :192].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(arr).save(images / "a.png")
    ckpt = tmp_path / "model.pth.tar"
    torch.save(net.state_dict(), ckpt)
    out_dir = tmp_path / "out"
    eval_model_main(["checkpoint", str(images), "-a", name, "-p", str(ckpt), "-d", str(out_dir), "-o", "res"])
    result = json.loads((out_dir / "res.json").read_text())
    assert result["name"] == f"{name}-mse"
    bpp = result["results"]["bpp"][0]
    assert 0 < bpp < 24 and math.isfinite(result["results"]["psnr-rgb"][0])
