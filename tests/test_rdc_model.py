"""RDC versatile codec: forward contract, rate control, real streams, truncation and β."""

from __future__ import annotations

import pytest
import torch
from compressai.models import MeanScaleHyperprior

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.container import ForeignBitstreamError, read_header, varint
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.models import PrimaryBranch, RDCVersatile, ResidualScalableBranch
from compressai_rdc.zoo import save_weights


def _bpp_est(out, x) -> float:
    return float(sum(-torch.log2(l).sum() for l in out["likelihoods"].values())) / (x.shape[0] * x.shape[-2] * x.shape[-1])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = compressai_rdc.create_model("rdc-versatile", quality=5).eval()
    m.update(force=True)
    return m


@pytest.fixture(scope="module")
def image(sample_image):
    return sample_image[..., :96, :160]


@pytest.fixture(scope="module")
def stream(net, image):
    return net.encode(image)


# -----------------------------------------------------------------------------
# construction and forward
# -----------------------------------------------------------------------------
def test_zoo_quality_sets_default_rate_and_attributes():
    for q in (1, 8):
        m = compressai_rdc.create_model("rdc-versatile", quality=q)
        assert m.default_rate == q - 1
    m = compressai_rdc.create_model("rdc-versatile")
    assert (m.levels, m.residual_layers, m.default_rate) == (8, 4, 7.0)
    assert isinstance(m.primary, PrimaryBranch) and isinstance(m.residual, ResidualScalableBranch)
    assert compressai_rdc.COMPONENTS.get("residual-scalable-branch") is ResidualScalableBranch


def test_default_weights_fit_under_12_mib_in_fp16(net, tmp_path):
    path, _ = save_weights(net, tmp_path / "rdc.safetensors")
    assert path.stat().st_size < 12 * 2**20, path.stat().st_size


def test_forward_contract(net, image):
    out = net(image, rate=3.0)
    assert set(out["likelihoods"]) == {"y", "z", "res_y", "res_z"}
    assert torch.allclose(out["x_hat"], out["x_hat_primary"] + out["residual"])
    assert out["likelihoods_primary"].keys() == {"y", "z"}
    prim = net(image, rate=3.0, layers=0)
    assert prim["residual"] is None and set(prim["likelihoods"]) == {"y", "z"}
    assert torch.equal(prim["x_hat"], out["x_hat_primary"])
    # layer prefixes: the rate of k layers counts only their channels
    sizes = net.residual.group_sizes.tolist()
    for k in (1, 2, 4):
        res_y = net(image, rate=3.0, layers=k)["likelihoods"]["res_y"]
        assert res_y.shape[1] == sum(sizes[:k])


def test_forward_accepts_per_sample_rates_and_any_multiple_of_16():
    torch.manual_seed(0)
    m = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2).eval()
    x = torch.rand(3, 3, 48, 80)
    out = m(x, rate=torch.tensor([0.0, 1.5, 3.0]))
    assert out["x_hat"].shape == x.shape
    single = [m(x[i : i + 1], rate=float(r))["x_hat"] for i, r in enumerate((0.0, 1.5, 3.0))]
    assert torch.allclose(out["x_hat"], torch.cat(single), atol=1e-5)


def test_estimated_bpp_strictly_increases_with_rate_at_init(net, image):
    with torch.no_grad():
        bpps = [_bpp_est(net(image, rate=r, layers=0), image) for r in (0, 0.5, 1, 2, 3, 4, 5, 6, 7)]
    assert all(a < b for a, b in zip(bpps, bpps[1:])), bpps


@pytest.mark.parametrize("branch", ["primary", "residual"])
def test_hyper_gain_keeps_the_hyper_latent_scale_across_rates(branch):
    """The hyper gain starts at 1/g(r): z keeps one spread at every rate (one density fits
    all rates); the old start (same range as y) spread it over two orders of magnitude."""
    from compressai_rdc.models.rdc import GAIN_RANGE

    x = torch.rand(2, 3, 128, 128)
    ratios = []
    for hyper in (None, GAIN_RANGE):
        torch.manual_seed(0)
        if branch == "primary":
            b = PrimaryBranch(N=16, M=24, hyper_gain_range=hyper)
            latents = lambda r: b._latents(x, torch.full((2,), r), {})
        else:
            b = ResidualScalableBranch(N=16, M=24, hyper_gain_range=hyper)
            latents = lambda r: b._encode_latents(x, x.flip(-1), torch.full((2,), r))
        with torch.no_grad():
            (y0, z0), (y7, z7) = latents(0.0), latents(7.0)
        assert (y7.std() / y0.std()).item() == pytest.approx(32.0, rel=1e-3)
        ratios.append((z7.std() / z0.std()).item())
    assert 0.1 < ratios[0] < 10, ratios
    assert ratios[1] > 100, ratios


def test_training_mode_synthesis_sees_rounded_latents(net, image):
    """Noise goes to the likelihoods only; the decoder input is STE-rounded."""
    net.train()
    try:
        seen = []
        hook = net.primary.g_s.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
        net(image, rate=4.0, layers=0)
        hook.remove()
    finally:
        net.eval()
    y_hat_g = seen[0] / net.primary.gain.inverse_gain_vector(4.0)[:, :, None, None]
    # ŷ·g = round(y·g − μ) + μ: the fractional distance to the means is 0 mod 1
    with torch.no_grad():
        z = net.primary.hyper_gain.gain(net.primary.h_a(net.primary.gain.gain(net.primary.g_a(image), 4.0)), 4.0)
        med = net.primary.entropy_bottleneck._get_medians()
        z_hat = torch.round(z - med) + med
        _, means = net.primary._params(z_hat, torch.tensor([4.0]), y_hat_g.shape[-2:])
    frac = (y_hat_g - means) - torch.round(y_hat_g - means)
    assert frac.abs().max() < 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(rate=8.0), "rate"), (dict(rate=-1), "rate"), (dict(layers=5), "layers"), (dict(residual_rate=float("nan")), "residual_rate")],
)
def test_invalid_controls(net, image, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        net(image, **kwargs)
    with pytest.raises(InvalidArgumentError, match=match):
        net.encode(image, **kwargs)


# -----------------------------------------------------------------------------
# real streams
# -----------------------------------------------------------------------------
def test_header_records_controls_and_layers(net, image, stream):
    h = read_header(stream)
    assert h.model_name == "rdc-versatile"
    assert h.controls == {"rate": 4.0, "residual_rate": 4.0}
    assert h.layers == (0, 0, 1, 1, 2, 3, 4) and h.num_layers == 4
    assert (h.height, h.width, h.shape) == (96, 160, (6, 10))


def test_decode_is_deterministic_and_matches_forward(net, image, stream):
    a, b = net.decode(stream), net.decode(stream)
    assert torch.equal(a, b)
    with torch.no_grad():
        est = net(image)["x_hat"].clamp(0, 1)
    assert (a - est).abs().max() < 2e-3


def test_bpp_from_bytes_tracks_the_estimate(net, image, stream):
    with torch.no_grad():
        est = _bpp_est(net(image), image)
    real = codec.bits_per_pixel(stream)
    px = 96 * 160
    assert real == 8 * len(stream) / px
    h = read_header(stream)
    payload = real - 8 * h.header_size / px
    # the prior is calibrated at init (h_s predicts the ungained σ, gains map it),
    # so arithmetic coding lands within 5 % plus a few bytes per substream
    assert abs(payload - est) < 0.05 * est + 8 * 4 * len(h.layers) / px, (payload, est)


def test_any_image_size_and_batch_round_trips(net):
    x = torch.rand(2, 3, 37, 53)
    data = codec.encode(net, x, rate=2.5, layers=2)
    h = read_header(data)
    assert (h.batch, h.height, h.width, h.pad) == (2, 37, 53, (0, 11, 0, 11))
    y = codec.decode(data, net)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    # each image decodes like the same image coded alone
    alone = codec.decode(codec.encode(net, x[1:], rate=2.5, layers=2), net)
    assert (alone - y[1:]).abs().max() < 1e-4


def test_truncation_drops_layers_without_decoding(net, stream):
    h = read_header(stream)
    for k in (0, 1, 3):
        cut = net.truncate(stream, k)
        hk = read_header(cut)
        assert hk.num_layers == k
        dropped = sum(sum(g) for g, t in zip(h.lengths, h.layers) if t > k)
        # per dropped group its tag and varint lengths, per dropped layer its CRC32 (format 3); at k = 0
        # also residual_rate (key length/encoding byte, 13 characters, float16) and the residual's
        # entropy check (table CRC + one image CRC): format 4 marks them as the refinement layers'
        table = sum(1 + sum(len(varint(n)) for n in g) for g, t in zip(h.lengths, h.layers) if t > k)
        scoped = (1 + 13 + 2) + (4 + 4) if k == 0 else 0
        assert len(stream) - len(cut) == dropped + table + 4 * len({t for t in h.layers if t > k}) + scoped
        assert (hk.refinement_controls, hk.refinement_checks) == ((0, 0) if k == 0 else (1, 1))
        assert ("residual_rate" in hk.controls) == (k > 0) and len(hk.checks) == (1 if k == 0 else 2)
        assert torch.equal(net.decode(cut), net.decode(stream, layers=k))
    with pytest.raises(InvalidArgumentError, match="0..1"):
        net.decode(net.truncate(stream, 1), layers=2)


def test_every_layer_changes_the_reconstruction(net, stream):
    outs = [net.decode(stream, layers=k) for k in range(5)]
    for a, b in zip(outs, outs[1:]):
        assert not torch.equal(a, b)


def test_beta_interpolates_between_primary_and_full(net, stream, monkeypatch):
    x1 = net.decode(stream, beta=1.0)
    assert torch.equal(x1, net.decode(net.truncate(stream, 0)))
    # record the unclamped branch outputs the decoder combines
    seen = {}
    for branch, key in ((net.primary, "x_hat"), (net.residual, "r_hat")):
        orig = branch.decompress

        def wrapped(*a, _orig=orig, _key=key, **k):
            out = _orig(*a, **k)
            seen[_key] = out[_key].clone()
            return out

        monkeypatch.setattr(branch, "decompress", wrapped)
    for beta in (0.0, 0.25, 0.8):
        got = net.decode(stream, beta=beta)
        assert torch.allclose(got, (seen["x_hat"] + (1 - beta) * seen["r_hat"]).clamp(0, 1), atol=1e-6)
    assert torch.equal(seen["x_hat"].clamp(0, 1), x1)
    with pytest.raises(InvalidArgumentError, match="beta"):
        net.decode(stream, beta=1.5)


def test_rate_is_fixed_at_encode_time(net, stream):
    with pytest.raises(InvalidArgumentError, match="fixed at encode time"):
        codec.decode(stream, net, rate=1.0)
    with pytest.raises(InvalidArgumentError, match="no control 'qmap'"):
        codec.decode(stream, net, qmap=0.5)


def test_bare_compressai_api_uses_default_rate(net, image):
    x = image[..., :64, :128]
    enc = net.compress(x)
    assert enc["strings"] == net.compress(x, rate=net.default_rate)["strings"]
    assert len(enc["strings"]) == 2 + 1 + 4
    a = net.decompress(enc["strings"], enc["shape"])["x_hat"]
    b = net.decompress(enc["strings"], enc["shape"], rate=net.default_rate)["x_hat"]
    assert torch.equal(a, b)
    # a prefix of the strings is a valid stream
    assert net.decompress(enc["strings"][:4], enc["shape"])["x_hat"].shape == x.shape


def test_foreign_streams_are_refused(net, stream, image):
    torch.manual_seed(123)  # same architecture, other weights
    other = compressai_rdc.create_model("rdc-versatile", quality=5).eval()
    other.update(force=True)
    with pytest.raises(ForeignBitstreamError, match="weights"):
        other.decode(stream)
    mbt = MeanScaleHyperprior(32, 48).eval()
    mbt.update(force=True)
    with pytest.raises(ForeignBitstreamError, match="rdc-versatile"):
        codec.decode(stream, mbt)


def test_codec_is_generic_over_compressai_models(image):
    torch.manual_seed(0)
    mbt = MeanScaleHyperprior(32, 48).eval()
    mbt.update(force=True)
    data = codec.encode(mbt, image[..., :50, :70])
    assert read_header(data).model_name == "mbt2018-mean"
    out = codec.decode(data, mbt)
    x = torch.nn.functional.pad(image[..., :50, :70], (0, 58, 0, 14), mode="replicate")
    enc = mbt.compress(x)
    ref = mbt.decompress(enc["strings"], enc["shape"])["x_hat"][..., :50, :70]
    assert torch.equal(out, ref)
    with pytest.raises(InvalidArgumentError, match="layers"):
        codec.decode(data, mbt, layers=1)


def test_weights_hash_follows_weight_changes(net):
    torch.manual_seed(1)
    m = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2)
    h0 = codec.weights_hash(m)
    assert codec.weights_hash(m) == h0
    with torch.no_grad():
        m.primary.g_s[0].bias.add_(1e-3)
    assert codec.weights_hash(m) != h0


def test_from_state_dict_infers_widths_levels_and_layers():
    m = RDCVersatile(N=24, M=32, levels=5, residual_N=16, residual_M=12, residual_layers=3, residual_group_sizes=[6, 4, 2])
    m.update(force=True)
    r = RDCVersatile.from_state_dict(m.state_dict())
    assert (r.primary.N, r.primary.M, r.levels, r.residual.N, r.residual.M, r.residual_layers) == (24, 32, 5, 16, 12, 3)
    assert r.residual.group_sizes.tolist() == [6, 4, 2]
    assert codec.weights_hash(r) == codec.weights_hash(m)


def test_primary_branch_is_subclassable_with_conditioning():
    """How a conditioned variant (e.g. SFT on a quality map) plugs in: override ``analysis``."""

    class Conditioned(PrimaryBranch):
        def analysis(self, x, shift=0.0):
            return self.g_a(x) + shift

    p = Conditioned(N=16, M=16, levels=4).eval()
    x = torch.rand(1, 3, 32, 32)
    a = p(x, rate=2.0, shift=0.0)["x_hat"]
    b = p(x, rate=2.0, shift=3.0)["x_hat"]
    assert a.shape == x.shape and not torch.equal(a, b)
