"""ChannelGainUnit: geometric interpolation, validation, rate ordering, reuse on other latents."""

from __future__ import annotations

import math

import pytest
import torch

import compressai_rdc
from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.layers import ChannelGainUnit
from compressai_rdc.layers.gain import check_rate


def test_initial_gains_are_geometric_and_inverse():
    unit = ChannelGainUnit(4, levels=5, init_range=(0.25, 4.0))
    g = torch.stack([unit.gain_vector(float(l))[0] for l in range(5)])
    expected = torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0]).unsqueeze(1).expand(5, 4)
    assert torch.allclose(g, expected, rtol=1e-5)
    for l in range(5):
        assert torch.allclose(unit.gain_vector(float(l)) * unit.inverse_gain_vector(float(l)), torch.ones(1, 4), rtol=1e-5)


def test_continuous_rate_is_geometric_interpolation_between_levels():
    unit = ChannelGainUnit(3, levels=4)
    with torch.no_grad():
        unit.log_gain.copy_(torch.randn(4, 3))
    g1, g2 = unit.gain_vector(1.0), unit.gain_vector(2.0)
    for t in (0.0, 0.25, 0.7):
        expected = g1 ** (1 - t) * g2**t
        assert torch.allclose(unit.gain_vector(1.0 + t), expected, rtol=1e-5)
    # the top level is reached exactly (no index past the table)
    assert torch.allclose(unit.gain_vector(3.0), unit.log_gain[3].exp().unsqueeze(0))


def test_gain_then_inverse_is_identity_at_init_and_per_sample_rates():
    unit = ChannelGainUnit(8, levels=6)
    y = torch.randn(3, 8, 5, 7)
    rates = torch.tensor([0.0, 2.5, 5.0])
    out = unit.gain(y, rates)
    assert out.shape == y.shape
    assert torch.allclose(unit.inverse(out, rates), y, atol=1e-5)
    # per-sample: sample 0 uses the smallest gain, sample 2 the largest
    assert out[0].abs().sum() < out[1].abs().sum() < out[2].abs().sum()


def test_gradients_reach_both_tables():
    unit = ChannelGainUnit(4, levels=3)
    y = torch.randn(2, 4, 3, 3)
    unit.inverse(unit.gain(y, 0.5).round(), 0.5).sum().backward()
    assert unit.log_gain.grad is not None and unit.log_inv_gain.grad.abs().sum() > 0
    assert unit.log_gain.grad[2].abs().sum() == 0  # level 2 not used at rate 0.5


@pytest.mark.parametrize("rate", [-0.1, 7.01, float("nan"), float("inf"), True, "3"])
def test_invalid_rates_name_the_range(rate):
    unit = ChannelGainUnit(4, levels=8)
    with pytest.raises(InvalidArgumentError, match=r"rate"):
        unit.gain(torch.zeros(1, 4, 2, 2), rate)


def test_wrong_tensor_rate_and_latent_shapes_are_rejected():
    unit = ChannelGainUnit(4, levels=8)
    with pytest.raises(InvalidArgumentError, match="batch size 2"):
        unit.gain(torch.zeros(2, 4, 2, 2), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(InvalidArgumentError, match=r"\(B, 4, h, w\)"):
        unit.gain(torch.zeros(2, 5, 2, 2), 1.0)
    with pytest.raises(InvalidArgumentError, match="levels"):
        ChannelGainUnit(4, levels=1)
    assert check_rate(None, 8, 2, 3.0).tolist() == [3.0, 3.0]


def test_works_on_a_compressai_model_latent():
    """The unit is generic: wrap CompressAI's own bmshj2018 latent."""
    from compressai.models import FactorizedPrior

    net = FactorizedPrior(16, 24).eval()
    unit = ChannelGainUnit(24, levels=4)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = net.g_a(x)
        y = 8 * y / y.std()  # magnitude of a trained latent (random init gives ~0)
        rates = []
        for r in (0.0, 1.5, 3.0):
            y_hat, lik = net.entropy_bottleneck(unit.gain(y, r))
            rates.append(float(-torch.log2(lik).sum()))
            assert net.g_s(unit.inverse(y_hat, r)).shape == x.shape
    assert rates[0] < rates[1] < rates[2]


def test_registered_as_component():
    assert compressai_rdc.COMPONENTS.get("channel-gain-unit") is ChannelGainUnit
    assert math.isclose(float(ChannelGainUnit(2).gain_vector(None)[0, 0].detach()), 1.0, rel_tol=1e-6)  # default: level L-1
