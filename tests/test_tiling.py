"""Tiled synthesis and analysis (:mod:`compressai_rdc.utils.tiling`): the tiled output equals the
untiled one to float tolerance for every registered architecture, tile sizes that do not divide
the image, the one-tile case and odd image sizes; invalid tiles raise typed errors."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from compressai.layers import GDN
from torch import nn

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.container import StreamHeader
from compressai_rdc.errors import InvalidArgumentError, WeightsNotFoundError
from compressai_rdc.limits import DEFAULT_MAX_MEMORY, DecodeLimitError, DecodeLimits, planned_memory
from compressai_rdc.models._transforms import analysis, synthesis
from compressai_rdc.utils import tiling
from compressai_rdc.zoo import create_model

MODEL_NAMES = compressai_rdc.list_models()
#: small widths of the built-in architectures (same layer layout, so the same halos)
SMALL = {
    "rdc-versatile": dict(N=32, M=48, residual_N=16, residual_M=24),
    "rdc-qmap": dict(N=32, M=48, residual_N=16, residual_M=24, cond_channels=8),
    "hevrc": dict(N=32, M=48, cond_channels=16),
}
TOL = 1e-4  # max abs difference on [0, 1] images


def _small(name: str):
    net = create_model(name, **SMALL.get(name, {})).eval()
    net.update(force=True)
    return net


def _controls(net) -> dict:
    """Encode controls that exercise every decode branch (RDC: the residual layers)."""
    return {"rate": 4.0, "layers": 2} if "layers" in codec.accepted_names(net.compress) else {}


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def count_tiles(monkeypatch):
    """Counts the calls of the tiled transform inside :func:`tiling.run_tiled` (tiles run)."""
    calls = []
    real = tiling.run_tiled

    def spy(fn, inputs, **kw):
        def counted(*parts):
            calls.append(tuple(parts[0].shape[-2:]))
            return fn(*parts)

        return real(counted, inputs, **kw)

    monkeypatch.setattr(tiling, "run_tiled", spy)
    return calls


# -----------------------------------------------------------------------------
# receptive radius and halo
# -----------------------------------------------------------------------------
def test_receptive_radius_of_the_mean_scale_transforms():
    # g_s: four 5x5 stride-2 deconvs: 2 output px each, i.e. 1 + 1/2 + 1/4 + 1/8 latent units
    radius, unit = tiling.chain_radius(synthesis(8, 12))
    assert (radius, unit) == (Fraction(15, 8), Fraction(1, 16))
    # an output pixel of the last block may sit 15/16 latent units past the last kept latent
    assert tiling.halo_for(radius, 1, 16) == 3
    # g_a: four 5x5 stride-2 convs: 2 + 4 + 8 + 16 = 30 image pixels
    radius, unit = tiling.chain_radius(analysis(3, 8, 12), Fraction(1, 16))
    assert (radius, unit) == (Fraction(30, 16), 1)
    assert tiling.halo_for(radius, 16, 1) == 2
    assert tiling.halo_for(Fraction(5, 2), Fraction(1, 4), 16, align=4) == 8  # 2.5 + 4 - 1/16 → 7 → 8


def test_halos_of_every_registered_architecture():
    for name in MODEL_NAMES:
        net = _small(name)
        halo = net.synthesis_halo
        assert isinstance(halo, int) and 1 <= halo <= 32, name
    assert _small("rdc-versatile").synthesis_halo == 3  # g_s (1.875) + fuse (2 px = 0.125) → ⌈2 + 15/16⌉
    assert _small("hevrc").synthesis_halo == 20  # ẑ path, SFT blocks and 4 upsampling stages


def test_layers_without_a_known_receptive_field_are_refused():
    with pytest.raises(InvalidArgumentError, match="no known receptive field"):
        tiling.chain_radius([nn.Upsample(scale_factor=2)])
    with pytest.raises(InvalidArgumentError, match="not a centred convolution"):
        tiling.chain_radius([nn.Conv2d(3, 3, 5, padding=0)])
    with pytest.raises(InvalidArgumentError, match="not a centred transposed"):
        tiling.chain_radius([nn.ConvTranspose2d(3, 3, 5, stride=2, padding=2, output_padding=0)])
    assert tiling.chain_radius([GDN(3), nn.LeakyReLU()]) == (0, 1)


# -----------------------------------------------------------------------------
# run_tiled on a bare synthesis
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("tile", [1, 4, 5, 13, 20])  # 13 and 20: one tile covers the 13x11 grid
def test_run_tiled_equals_the_whole_transform(tile):
    g_s = synthesis(16, 24).eval()
    y = torch.randn(1, 24, 13, 11)
    with torch.no_grad():
        whole = g_s(y)
        tiled = tiling.run_tiled(g_s, [(y, 1)], out_scale=16, tile=tile, halo=3)
    assert tiled.shape == whole.shape == (1, 3, 208, 176)
    assert (tiled - whole).abs().max() < 1e-5


def test_a_halo_below_the_receptive_radius_is_not_exact():
    """The check above can fail: with halo 1 the tile borders show."""
    g_s = synthesis(16, 24).eval()
    y = torch.randn(1, 24, 13, 11)
    with torch.no_grad():
        diff = (tiling.run_tiled(g_s, [(y, 1)], out_scale=16, tile=4, halo=1) - g_s(y)).abs().max()
    assert diff > 1e-3


def test_run_tiled_with_a_coarser_second_input():
    """An input at 1/4 of the grid (HEVRC's ẑ) is cut on whole pixels when tiles are aligned to 4."""
    def fn(y, z):
        return y + torch.repeat_interleave(torch.repeat_interleave(z, 4, -2), 4, -1)[..., : y.shape[-2], : y.shape[-1]]

    y, z = torch.randn(1, 2, 16, 12), torch.randn(1, 2, 4, 3)
    out = tiling.run_tiled(fn, [(y, 1), (z, Fraction(1, 4))], out_scale=1, tile=4, halo=0, align=4)
    assert torch.equal(out, fn(y, z))
    with pytest.raises(InvalidArgumentError, match="multiples of 4"):
        tiling.run_tiled(fn, [(y, 1), (z, Fraction(1, 4))], out_scale=1, tile=4, halo=2, align=4)


# -----------------------------------------------------------------------------
# every registered architecture through the codec
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [(200, 136), (136, 264)])  # odd sizes: padded, tiles do not divide them
def test_tiled_decode_equals_untiled(name, size, count_tiles):
    net = _small(name)
    data = codec.encode(net, _image(*size), tile=None, **_controls(net))
    whole = codec.decode(data, net, limits=DecodeLimits(tile=None))
    assert not count_tiles
    tiled = codec.decode(data, net, limits=DecodeLimits(tile=64))
    assert len(count_tiles) >= 4, "the decode did not run in tiles"
    assert tiled.shape == whole.shape == (1, 3, *size)
    assert (tiled - whole).abs().max() < TOL
    if "beta" in codec.accepted_names(net.decompress):  # x̂₁ + (1 − β)·r̂ assembled from tiled branches
        a = codec.decode(data, net, beta=0.5, limits=DecodeLimits(tile=None))
        b = codec.decode(data, net, beta=0.5, limits=DecodeLimits(tile=64))
        assert (a - b).abs().max() < TOL


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_tile_is_the_untiled_path(name, count_tiles):
    net = _small(name)
    data = codec.encode(net, _image(64, 128), tile=None, **_controls(net))
    assert torch.equal(codec.decode(data, net, limits=DecodeLimits(tile=128)), codec.decode(data, net, limits=DecodeLimits(tile=None)))
    assert not count_tiles


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_decode_synthesis_runs_channels_last_and_encode_never(name, monkeypatch):
    """The decoder's synthesis transforms get channels_last inputs (faster oneDNN
    convolutions) and return contiguous images equal to the NCHW path to float
    rounding; whatever the encoder synthesises (x̂₁ for the residual) stays NCHW, so
    the bytes never depend on it."""
    net = _small(name)
    calls, seen = [], []  # synthesis calls; memory format the transform itself received
    real_tiled, real_cl = tiling._maybe_tiled, tiling._on_channels_last

    def tiled(kind, *a):
        calls.append(kind)
        return real_tiled(kind, *a)

    def channels_last(fn):
        def recorded(*tensors):
            seen.append(tensors[0].is_contiguous(memory_format=torch.channels_last))
            return fn(*tensors)

        return real_cl(recorded)

    monkeypatch.setattr(tiling, "_maybe_tiled", tiled)
    monkeypatch.setattr(tiling, "_on_channels_last", channels_last)
    data = codec.encode(net, _image(64, 96), tile=None, **_controls(net))
    assert seen == []
    calls.clear()
    decoded = codec.decode(data, net)
    assert seen and len(seen) == calls.count("synthesis") and all(seen)
    monkeypatch.setattr(tiling, "_on_channels_last", lambda fn: fn)  # the plain NCHW path
    assert (decoded - codec.decode(data, net)).abs().max() < TOL


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiled_encode_codes_the_same_latent(name, count_tiles):
    """With the exact halo the tiled analysis gives the untiled latent to float rounding:
    the rate and the decoded image stay the same (a rounding flip could change a symbol)."""
    net = _small(name)
    x = _image(200, 264, seed=1)
    whole = codec.encode(net, x, tile=None, **_controls(net))
    tiled = codec.encode(net, x, tile=64, **_controls(net))
    assert count_tiles
    assert len(tiled) == pytest.approx(len(whole), rel=0.005)
    a, b = codec.decode(whole, net), codec.decode(tiled, net)
    assert (a - b).abs().mean() < 1e-4


def _shipped_rdc():
    try:
        net = create_model("rdc-versatile", metric="mse", pretrained=True).eval()
    except WeightsNotFoundError as exc:
        pytest.skip(f"shipped rdc-versatile weights unavailable: {exc}")
    net.update(force=True)
    return net


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_shipped_weights_tiled_decode_equals_untiled(sample_image, count_tiles):
    net = _shipped_rdc()
    data = codec.encode(net, sample_image)
    whole = codec.decode(data, net, limits=DecodeLimits(tile=None))
    tiled = codec.decode(data, net, limits=DecodeLimits(tile=64))
    # 4 x 6 tiles of 64 px per synthesis: the primary's, and the residual's when the weights decode at β < 1
    assert len(count_tiles) == 4 * 6 * (2 if net.default_beta < 1 else 1)
    assert (tiled - whole).abs().max() < TOL


def test_analysis_tiling_rd_cost(sample_image):
    """Rate and PSNR of tiled encodes (tile 128 px) of the 384x256 sample with the shipped
    weights against the untiled encode: none at the exact halo (2), measurable at 0
    (bounds from ``benchmarks/tiled_analysis_rd.py``, docs/tiling.md)."""
    net = _shipped_rdc()
    x = sample_image

    def rd(tile):
        data = codec.encode(net, x, tile=tile)
        return codec.bits_per_pixel(data), _psnr(codec.decode(data, net), x)

    bpp, psnr = rd(None)
    bpp_exact, psnr_exact = rd(tiling.Tiling(128))
    assert abs(bpp_exact - bpp) / bpp < 0.001 and abs(psnr_exact - psnr) < 0.005
    bpp0, psnr0 = rd(tiling.Tiling(128, halo=0))
    assert (bpp0 - bpp) / bpp > 0.001 or psnr - psnr0 > 0.005  # the check above can fail


# -----------------------------------------------------------------------------
# typed errors
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -64, 1.5, True, "64"])
def test_invalid_tile_values(bad):
    with pytest.raises(InvalidArgumentError, match="tile"):
        DecodeLimits(tile=bad)
    with pytest.raises(InvalidArgumentError, match="tile"):
        tiling.Tiling(tile=bad)


def test_tile_must_be_a_multiple_of_the_models_padding():
    rdc, hevrc = _small("rdc-versatile"), _small("hevrc")
    x = _image(80, 80)
    data = codec.encode(rdc, x, tile=None)
    with pytest.raises(InvalidArgumentError, match="tile=40 must be a multiple of 16"):
        codec.decode(data, rdc, limits=DecodeLimits(tile=40))
    with pytest.raises(InvalidArgumentError, match="tile=24 must be a multiple of 16"):
        codec.encode(rdc, x, tile=24)
    with pytest.raises(InvalidArgumentError, match="tile=96 must be a multiple of 64"):
        codec.decode(codec.encode(hevrc, x, tile=None), hevrc, limits=DecodeLimits(tile=96))
    for halo in (-1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="halo"):
            tiling.Tiling(64, halo=halo)
    with pytest.raises(InvalidArgumentError, match="halo"):
        tiling.run_tiled(lambda t: t, [(torch.zeros(1, 1, 4, 4), 1)], out_scale=1, tile=2, halo=-1)
    with pytest.raises(InvalidArgumentError, match="empty"):
        tiling.run_tiled(lambda t: t, [(torch.zeros(1, 1, 0, 4), 1)], out_scale=1, tile=2, halo=0)
    with pytest.raises(InvalidArgumentError, match="returned"):  # a transform of another scale
        tiling.run_tiled(lambda t: t, [(torch.zeros(1, 1, 4, 4), 1)], out_scale=2, tile=2, halo=0)


# -----------------------------------------------------------------------------
# decode limits with tiling
# -----------------------------------------------------------------------------
def _header(side: int) -> StreamHeader:
    return StreamHeader(model_name="rdc-versatile", weights_hash=bytes(8), batch=1, height=side, width=side,
                        pad=(0, 0, 0, 0), shape=(side // 16, side // 16), layers=(0, 0), lengths=((100,), (20,)),
                        crcs=((0,), (0,)))


def test_tiling_bounds_the_planned_memory():
    net = create_model("rdc-versatile")  # registered widths
    header = _header(4096)
    tiled, untiled = planned_memory(header, net, 1024), planned_memory(header, net)
    assert untiled > DEFAULT_MAX_MEMORY  # 4096² untiled: refused by the default memory limit
    assert tiled < 2 << 30  # tiled: under 2 GiB, so within the default limit
    DecodeLimits().check(header, net)
    with pytest.raises(DecodeLimitError, match="plans for"):
        DecodeLimits(tile=None).check(header, net)
    # below one tile nothing changes
    assert planned_memory(_header(1024), net, 1024) == planned_memory(_header(1024), net)
    # the pixel limit still refuses forged huge headers before anything is allocated
    with pytest.raises(DecodeLimitError, match="padded pixels"):
        DecodeLimits().check(_header(4112), net)


# -----------------------------------------------------------------------------
# bounded memory of the parts that were still image-sized (issue #14)
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fixed_point_hyper_synthesis_tiles_with_the_same_bits(name, monkeypatch):
    """The fixed-point ``h_s`` (float64 im2col: ≈ 1 GB over a 4096² image's latent grid) runs in
    tiles above ``fixed_point.TILE``; its values are exact integers, so the bits are those of the
    whole grid (the streams do not depend on the tile)."""
    from compressai_rdc.layers import fixed_point as fpm

    net = _small(name)
    h_s = net.h_s if hasattr(net, "h_s") else net.primary.h_s
    fp = fpm.fixed_point(h_s)
    assert (fp.upsampling, fp.halo) == (4, 12)  # radius 7 latent units + (4 − 1) for ẑ's pixel, aligned to 4
    z = torch.randint(-20, 21, (2, h_s[0].weight.shape[0], 9, 7)).double()
    whole = fp._whole(z)
    tiles = []
    real = tiling.run_tiled
    monkeypatch.setattr(tiling, "run_tiled", lambda fn, inputs, **kw: tiles.append(kw["tile"]) or real(fn, inputs, **kw))
    monkeypatch.setattr(fpm, "TILE", 8)
    tiled = fp(z)
    assert tiles == [8], "the fixed-point h_s did not tile"
    assert torch.equal(tiled, whole)
    monkeypatch.setattr(fpm, "TILE", 36)  # the 36x28 output fits in one tile: the whole path
    assert torch.equal(fp(z), whole) and tiles == [8]


def test_hevrc_tiled_decode_subtiles_the_high_resolution_stages(count_tiles, monkeypatch):
    """Inside a tile of a tiled hevrc decode the last two synthesis stages (most of its memory)
    run in sub-tiles with their own exact halo; the untiled decode never does."""
    net = _small("hevrc")
    assert net.g_s.tail_halo == 1
    monkeypatch.setattr(type(net.g_s), "tail_tile", 4)
    tails = []
    real_tail = type(net.g_s).tail
    monkeypatch.setattr(type(net.g_s), "tail", lambda self, h, e: tails.append(tuple(h.shape[-2:])) or real_tail(self, h, e))
    data = codec.encode(net, _image(200, 264, seed=2), tile=None)
    whole = codec.decode(data, net, limits=DecodeLimits(tile=None))
    assert len(tails) == 1 and not count_tiles
    tiled = codec.decode(data, net, limits=DecodeLimits(tile=128))
    subtiles = tails[1:]
    assert len(count_tiles) - len(subtiles) == 2 * 3  # 256x320 padded, 128-px tiles: 6 regions
    assert len(subtiles) > 6, "the high-resolution stages did not sub-tile"
    assert all(h <= (4 + 2) * 4 and w <= (4 + 2) * 4 for h, w in subtiles)  # 4 + halo 1 per side, 4 px per latent unit
    assert (tiled - whole).abs().max() < TOL


def _spy_tiling(monkeypatch, kind: str) -> list:
    """The ``kind`` ("analysis" / "synthesis") tiling of every ``tiling.tiling`` block a codec call opens."""
    seen, real = [], tiling.tiling

    def spy(*a, **k):
        seen.append(k.get(kind))
        return real(*a, **k)

    monkeypatch.setattr(tiling, "tiling", spy)
    return seen


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encode_tiles_at_the_models_encode_tile_unless_told(name, monkeypatch):
    """``encode`` without ``tile`` analyses in tiles of the model's ``encode_tile`` hook
    (``hevrc``: 512, its SFT-conditioned analysis holds more features per pixel); a
    ``tile=`` or an enclosing ``tiling`` block wins; ``tile=None`` never tiles."""
    from compressai_rdc.contract import hooks

    assert hooks(create_model(name)).encode_tile == (512 if name in ("hevrc", "rdc-qmap") else tiling.DEFAULT_TILE)
    net = _small(name)
    net.encode_tile = 128
    seen = _spy_tiling(monkeypatch, "analysis")
    x = _image(64, 256)
    default = codec.encode(net, x, **_controls(net))
    assert [t.tile for t in seen] == [128]
    seen.clear()
    assert codec.encode(net, x, tile=128, **_controls(net)) == default  # the same call, said explicitly
    codec.encode(net, x, tile=256, **_controls(net))
    codec.encode(net, x, tile=None, **_controls(net))
    assert [t and t.tile for t in seen] == [128, 256, None]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_decode_tiles_at_the_models_decode_tile_unless_told(name, monkeypatch):
    """``DecodeLimits()`` (its ``tile`` left at ``MODEL_TILE``) synthesises in tiles of the
    model's ``decode_tile`` hook (``rdc-qmap``: 512, its residual decode holds two
    whole-image buffers beside a region); ``DecodeLimits(tile=...)`` wins and plans with it."""
    from compressai_rdc.contract import hooks
    from compressai_rdc.limits import MODEL_TILE, planned_memory

    assert hooks(create_model(name)).decode_tile == (512 if name == "rdc-qmap" else tiling.DEFAULT_TILE)
    net = _small(name)
    data = codec.encode(net, _image(64, 256), tile=None, **_controls(net))
    net.decode_tile = 128
    assert DecodeLimits().tile == MODEL_TILE and DecodeLimits().tile_for(net) == 128
    assert DecodeLimits(tile=256).tile_for(net) == 256 and DecodeLimits(tile=None).tile_for(net) is None
    header = codec.read_header(data)
    assert planned_memory(header, net, DecodeLimits().tile_for(net)) == planned_memory(header, net, 128)
    seen = _spy_tiling(monkeypatch, "synthesis")
    default = codec.decode(data, net)
    assert torch.equal(default, codec.decode(data, net, limits=DecodeLimits(tile=128)))
    codec.decode(data, net, limits=DecodeLimits(tile=256))
    assert [t and t.tile for t in seen] == [128, 128, 256]
