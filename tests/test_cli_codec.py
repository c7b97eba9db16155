"""``compressai-rdc encode / decode / qmap`` round trips, called in-process through ``main(argv)``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressai_rdc import codec, create_model
from compressai_rdc.cli import main
from compressai_rdc.data import load_image, sample_image_path, save_image
from compressai_rdc.zoo import save_weights

SMALL = {
    "hevrc": dict(N=32, M=48, cond_channels=16),
    "rdc-versatile": dict(N=32, M=48, residual_N=16, residual_M=24),
    "rdc-qmap": dict(N=32, M=48, cond_channels=8, residual_N=16, residual_M=24),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    """Small random-init weights of each codec, written as the CLI reads them."""
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for name, kw in SMALL.items():
        torch.manual_seed(0)
        net = create_model(name, **kw).eval()
        net.update(force=True)
        out[name] = save_weights(net, folder / f"{name}.safetensors", half=False)[0]
    return out


@pytest.fixture(scope="module")
def jpeg_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "odd size.jpg"
    save_image(load_image(sample_image_path())[:, :201, :299], path)  # odd size, JPEG
    return path


def _decode(container: Path, out: Path, weights: Path, *extra: str) -> torch.Tensor:
    assert main(["decode", str(container), "-o", str(out), "--weights", str(weights), *extra]) == 0
    return load_image(out)


@pytest.mark.parametrize(
    "name, extra",
    [
        ("hevrc", ["--level", "0.7"]),
        ("hevrc", ["--level", "1.2", "--qmap-strategy", "inverse-icm"]),
        ("rdc-versatile", ["--rate", "3.5"]),
        ("rdc-qmap", ["--rate", "2", "--qmap-strategy", "icm", "--layers", "2"]),
        ("rdc-qmap", ["--level", "0.5", "--qmap-strategy", "icm", "--layers", "1"]),
    ],
)
def test_encode_decode_round_trip(tmp_path, weights, jpeg_image, name, extra):
    out = tmp_path / "x.rdc"
    assert main(["encode", str(jpeg_image), "-o", str(out), "--model", name, "--weights", str(weights[name]), *extra]) == 0
    header = codec.read_header(out.read_bytes())
    assert header.model_name == name and (header.height, header.width) == (201, 299)
    x_hat = _decode(out, tmp_path / "x.png", weights[name])
    assert x_hat.shape == (3, 201, 299)
    # the CLI decodes exactly what the library decodes
    net = create_model(name, **SMALL[name]).eval()
    net.load_state_dict(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(weights[name])))
    ref = codec.decode(out.read_bytes(), net)[0].clamp(0, 1)
    assert torch.allclose(x_hat, (ref * 255).round() / 255, atol=1 / 255 + 1e-6)


def test_decode_time_controls(tmp_path, weights):
    out = tmp_path / "s.rdc"
    image = str(sample_image_path())
    assert main(["encode", image, "-o", str(out), "--model", "rdc-versatile", "--weights", str(weights["rdc-versatile"]), "--rate", "5"]) == 0
    full = _decode(out, tmp_path / "b0.png", weights["rdc-versatile"], "--beta", "0")
    primary = _decode(out, tmp_path / "l0.png", weights["rdc-versatile"], "--layers", "0")
    beta1 = _decode(out, tmp_path / "b1.png", weights["rdc-versatile"], "--beta", "1")
    assert torch.equal(primary, beta1) and not torch.equal(full, primary)


def test_tile_option(tmp_path, weights, capsys):
    """``--tile`` on encode and decode: tiled and untiled give the same bytes and (8-bit) image;
    an invalid tile is an error naming the valid multiple."""
    image, w = str(sample_image_path()), str(weights["rdc-versatile"])
    streams = []
    for tile in ("0", "128"):
        streams.append(tmp_path / f"t{tile}.rdc")
        assert main(["encode", image, "-o", str(streams[-1]), "--model", "rdc-versatile", "--weights", w, "--rate", "5", "--tile", tile]) == 0
    assert streams[0].read_bytes() == streams[1].read_bytes()  # exact halo: the same latent
    untiled = _decode(streams[0], tmp_path / "u.png", weights["rdc-versatile"], "--tile", "0", "--beta", "0")
    tiled = _decode(streams[0], tmp_path / "t.png", weights["rdc-versatile"], "--tile", "64", "--beta", "0")
    assert (untiled - tiled).abs().max() <= 1 / 255 + 1e-6
    capsys.readouterr()
    assert main(["decode", str(streams[0]), "-o", str(tmp_path / "e.png"), "--weights", w, "--tile", "40"]) == 2
    assert "tile=40 must be a multiple of 16" in capsys.readouterr().err


def test_target_bpp(tmp_path, weights, capsys):
    from compressai_rdc.cli.encode import load_model
    from compressai_rdc.ratecontrol import rate_control

    ctl = rate_control(load_model("rdc-versatile", weights["rdc-versatile"], False), load_image(sample_image_path())[None], layers=0)
    target = round((ctl.estimate(0.0) * ctl.estimate(7.0)) ** 0.5, 3)  # mid-range (log scale)
    out = tmp_path / "t.rdc"
    argv = ["encode", str(sample_image_path()), "-o", str(out), "--model", "rdc-versatile",
            "--weights", str(weights["rdc-versatile"]), "--target-bpp", str(target), "--layers", "0"]
    assert main(argv) == 0
    assert abs(codec.bits_per_pixel(out.read_bytes()) - target) <= 0.03 * target
    assert f"target {target:.4f} bpp" in capsys.readouterr().out


def test_errors_are_reported(tmp_path, weights, capsys):
    image, w = str(sample_image_path()), str(weights["rdc-versatile"])
    out = tmp_path / "e.rdc"
    # target outside the range: exit 2 and the range in the message
    assert main(["encode", image, "-o", str(out), "--model", "rdc-versatile", "--weights", w, "--target-bpp", "40", "--layers", "0"]) == 2
    assert "outside this model's range" in capsys.readouterr().err
    # no weights
    assert main(["encode", image, "-o", str(out), "--model", "hevrc", "--level", "0.5"]) == 2
    assert "needs weights" in capsys.readouterr().err
    # one name per control: --rate is the RDC gain, hevrc has a level
    assert main(["encode", image, "-o", str(out), "--model", "hevrc", "--weights", str(weights["hevrc"]), "--rate", "0.5"]) == 2
    assert "use --level" in capsys.readouterr().err
    assert main(["encode", image, "-o", str(out), "--model", "rdc-versatile", "--weights", w, "--level", "0.5"]) == 2
    assert "takes no quality map" in capsys.readouterr().err
    # unknown strategy lists the valid ones
    assert main(["encode", image, "-o", str(out), "--model", "hevrc", "--weights", str(weights["hevrc"]), "--level", "1", "--qmap-strategy", "nope"]) == 2
    assert "blended" in capsys.readouterr().err
    # never overwrite silently
    out.write_bytes(b"keep")
    assert main(["encode", image, "-o", str(out), "--model", "rdc-versatile", "--weights", w, "--rate", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"
    # decoding with other weights is refused
    good = tmp_path / "g.rdc"
    assert main(["encode", image, "-o", str(good), "--model", "hevrc", "--weights", str(weights["hevrc"]), "--level", "0.5"]) == 0
    other = create_model("hevrc", **SMALL["hevrc"])
    other_w = save_weights(other, tmp_path / "other.safetensors", half=False)[0]
    assert main(["decode", str(good), "-o", str(tmp_path / "g.png"), "--weights", str(other_w)]) == 2
    assert "weights" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["inverse-icm", "blended"])
def test_qmap_figure(tmp_path, weights, strategy, capsys):
    out = tmp_path / f"{strategy}.png"
    argv = ["qmap", str(sample_image_path()), "--strategy", strategy, "--out", str(out),
            "--model", "hevrc", "--weights", str(weights["hevrc"])]
    assert main(argv) == 0
    fig = load_image(out)
    assert fig.shape[-1] > 3 * fig.shape[-2]  # four panels side by side
    assert "4 panels" in capsys.readouterr().out


def test_decode_reports_the_bytes_it_read(tmp_path, weights, capsys):
    """β = 1 reads the primary substreams only: the printed rate is theirs, not the whole stream's."""
    out = tmp_path / "s.rdc"
    w = str(weights["rdc-versatile"])
    assert main(["encode", str(sample_image_path()), "-o", str(out), "--model", "rdc-versatile", "--weights", w, "--rate", "5"]) == 0
    assert "decode at β=0" in capsys.readouterr().out  # weights of their own: the class default β = 0, every layer coded
    data = out.read_bytes()
    primary = codec.truncate(data, 0)
    _decode(out, tmp_path / "b1.png", weights["rdc-versatile"], "--beta", "1")
    text = capsys.readouterr().out
    assert f"read {len(primary)} of {len(data)} bytes (0 of 4 residual layers): {codec.bits_per_pixel(primary):.4f} bpp" in text
    _decode(out, tmp_path / "b0.png", weights["rdc-versatile"], "--beta", "0", "--layers", "2")
    assert f"read {len(codec.truncate(data, 2))} of {len(data)} bytes (2 of 4 residual layers)" in capsys.readouterr().out


@pytest.mark.skipif("rdc-versatile" not in __import__("compressai_rdc.zoo._weights", fromlist=["PRETRAINED"]).PRETRAINED, reason="no shipped weights")
def test_shipped_weights_default_beta_everywhere(tmp_path, capsys):
    """The shipped weights' decode_beta (1: untrained residual) is the default of encode, decode and forward."""
    from compressai_rdc.zoo._weights import PRETRAINED

    beta = PRETRAINED["rdc-versatile"]["mse"].decode_beta
    out = tmp_path / "p.rdc"
    image = load_image(sample_image_path())[:, :64, :96]
    save_image(image, tmp_path / "in.png")
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(out), "--model", "rdc-versatile", "--pretrained", "--rate", "3"]) == 0
    text = capsys.readouterr().out
    assert f"decode at β={beta:g} (these weights' default)" in text
    layers = codec.read_header(out.read_bytes()).num_layers
    assert layers == (0 if beta == 1.0 else 4)
    assert main(["decode", str(out), "-o", str(tmp_path / "p.png"), "--pretrained"]) == 0
    assert f"at β={beta:g} (the weights' default); read {out.stat().st_size} of {out.stat().st_size} bytes" in capsys.readouterr().out
    net = create_model("rdc-versatile", pretrained=True)
    assert net.default_beta == beta
    likelihoods = net(image[None, :, :64, :64])["likelihoods"]
    assert sorted(likelihoods) == (["y", "z"] if beta == 1.0 else sorted(likelihoods))
