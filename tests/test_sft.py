"""SFT layers: known answers for the affine modulation, shapes, registration."""

from __future__ import annotations

import pytest
import torch

from compressai_rdc.layers.sft import SFT, SFTResBlock


def _const_sft(channels: int, gamma: float, beta: float) -> SFT:
    sft = SFT(channels, cond_channels=1, hidden=4)
    for conv, value in ((sft.gamma, gamma), (sft.beta, beta)):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.constant_(conv.bias, value)
    return sft


def test_sft_known_affine():
    x = torch.randn(2, 3, 8, 8)
    out = _const_sft(3, gamma=1.0, beta=0.5)(x, torch.rand(2, 1, 8, 8))
    torch.testing.assert_close(out, 2 * x + 0.5)


def test_sft_zero_modulation_is_identity():
    x = torch.randn(1, 5, 6, 7)
    torch.testing.assert_close(_const_sft(5, 0.0, 0.0)(x, torch.rand(1, 1, 6, 7)), x)


def test_sft_condition_is_resized_and_spatial():
    # gamma = the (area-averaged) condition itself: out = x * (1 + mean of q over each 4x4 block)
    sft = SFT(1, cond_channels=1, hidden=1, kernel_size=1)
    with torch.no_grad():
        sft.shared[0].weight.fill_(1.0), sft.shared[0].bias.zero_()
        sft.gamma.weight.fill_(1.0), sft.gamma.bias.zero_()
        sft.beta.weight.zero_(), sft.beta.bias.zero_()
    q = torch.zeros(1, 1, 16, 16)
    q[..., :, 8:] = 1.0  # right half
    x = torch.ones(1, 1, 4, 4)
    out = sft(x, q)
    torch.testing.assert_close(out[..., :2], torch.ones(1, 1, 4, 2))
    torch.testing.assert_close(out[..., 2:], torch.full((1, 1, 4, 2), 2.0))


def test_sft_gradients_reach_condition():
    sft = SFT(4, 2)
    cond = torch.rand(1, 2, 8, 8, requires_grad=True)
    sft(torch.randn(1, 4, 8, 8), cond).sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0


def test_sft_res_block_identity_when_last_conv_is_zero():
    blk = SFTResBlock(6, 1, hidden=8)
    torch.nn.init.zeros_(blk.conv1.weight), torch.nn.init.zeros_(blk.conv1.bias)
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(blk(x, torch.rand(2, 1, 20, 20)), x)


def test_sft_res_block_depends_on_condition():
    blk = SFTResBlock(4, 1, hidden=8)
    x = torch.randn(1, 4, 8, 8)
    assert not torch.allclose(blk(x, torch.zeros(1, 1, 8, 8)), blk(x, torch.ones(1, 1, 8, 8)))


def test_even_kernel_rejected():
    with pytest.raises(ValueError, match="odd"):
        SFT(4, 1, kernel_size=2)


def test_components_registered():
    from compressai_rdc import COMPONENTS

    assert COMPONENTS.get("sft") is SFT
    assert COMPONENTS.get("sft-res-block") is SFTResBlock
