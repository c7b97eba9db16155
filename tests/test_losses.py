"""Losses: each claim here could fail (values, signs, where gradients go)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compressai_rdc import LOSSES
from compressai_rdc.errors import InvalidArgumentError, UnknownNameError
from compressai_rdc.losses import (
    ConditionalDiscriminator,
    GANLoss,
    LocalMSELoss,
    LogitDistillationLoss,
    MoCoCognitionLoss,
    MSELoss,
    RateLoss,
    SFMLoss,
    WeightedMSELoss,
    bits_per_pixel,
    build_loss,
    discriminator_loss,
    generator_loss,
    info_nce,
)


class TinyEmbedder(nn.Module):
    """A small random conv net standing in for a backbone (fast, deterministic)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1))

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def lite0_moco():
    return MoCoCognitionLoss(queue_size=16)


def test_registered_names():
    assert {"rate", "mse", "weighted-mse", "local-mse", "moco-cognition", "logit-distillation", "sfm", "feature-mse", "gan"} <= set(
        LOSSES.names()
    )
    assert LOSSES.get("logit-distillation") is LogitDistillationLoss
    assert LOSSES.get("local-mse") is LocalMSELoss


# -- rate -------------------------------------------------------------------------------
def test_bpp_counts_bits_per_image():
    lk = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.full((2, 1, 1, 1), 0.25)}
    bpp = bits_per_pixel(lk, num_pixels=8 * 8)
    assert torch.allclose(bpp, torch.tensor([(16 * 1 + 2) / 64] * 2))
    out = RateLoss()({"likelihoods": lk}, torch.zeros(2, 3, 8, 8))
    assert out["loss"].item() == pytest.approx(18 / 64)
    assert RateLoss(streams=["z"])({"likelihoods": lk}, torch.zeros(2, 3, 8, 8))["loss"].item() == pytest.approx(2 / 64)


def test_rate_reads_named_likelihoods_and_errors_clearly():
    lk = {"y": torch.full((1, 1, 1, 1), 0.5)}
    out = {"likelihoods": {}, "likelihoods_primary": lk}
    assert RateLoss("likelihoods_primary")(out, torch.zeros(1, 3, 1, 1))["loss"].item() == pytest.approx(1.0)
    with pytest.raises(InvalidArgumentError, match="likelihoods_residual.*returned only"):
        RateLoss("likelihoods_residual")(out, torch.zeros(1, 3, 1, 1))


# -- distortion ---------------------------------------------------------------------------
def test_mse_scale_and_psnr():
    x = torch.zeros(1, 3, 4, 4)
    out = MSELoss()({"x_hat": x + 0.1}, x)
    assert out["loss"].item() == pytest.approx(0.01 * 255**2, rel=1e-5)
    assert out["psnr"].item() == pytest.approx(20.0, rel=1e-5)


def test_weighted_mse_constant_map_equals_lambda_mse():
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    lmap = torch.full((2, 1, 8, 8), 0.01)
    w = WeightedMSELoss()({"x_hat": y}, x, lmbda_map=lmap)["loss"]
    assert w.item() == pytest.approx(0.01 * MSELoss()({"x_hat": y}, x)["loss"].item(), rel=1e-5)
    # doubling λ on half the image weights that half's error twice
    lmap2 = lmap.clone()
    lmap2[..., :4] *= 2
    err = (y - x) ** 2
    expected = 255**2 * 0.01 * (2 * err[..., :4].sum() + err[..., 4:].sum()) / err.numel()
    assert WeightedMSELoss()({"x_hat": y}, x, lmbda_map=lmap2)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(InvalidArgumentError, match="lmbda_map"):
        WeightedMSELoss()({"x_hat": y}, x)


def test_local_mse_zero_for_identical_images():
    x = torch.rand(2, 3, 32, 32)
    out = LocalMSELoss(kernel=8)({"x_hat": x.clone()}, x)
    assert out["loss"].item() == 0.0


def test_local_mse_ignores_zero_mean_detail_but_not_mean_shift():
    x = torch.full((1, 3, 16, 16), 0.5)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 0.2 - 0.1  # ±0.1, zero mean per 8×8 block
    detail = LocalMSELoss(kernel=8)({"x_hat": x + checker}, x)["loss"].item()
    shift = LocalMSELoss(kernel=8)({"x_hat": x + 0.1}, x)["loss"].item()
    assert detail == pytest.approx(0.0, abs=1e-6)
    assert shift == pytest.approx(0.01 * 255**2, rel=1e-4)
    assert MSELoss()({"x_hat": x + checker}, x)["loss"].item() > 100  # a plain MSE would punish the detail


def test_local_mse_penalises_values_outside_unit_range():
    x = torch.full((1, 3, 8, 8), 0.5)
    over = x.clone()
    over[..., :4, :] = 1.5  # mean 1.0 in the top half,…
    over[..., 4:, :] = -0.5  # …mean preserved overall → pooled term 0 with k=8
    out = LocalMSELoss(kernel=8, range_weight=1.0)({"x_hat": over}, x)
    assert out["local_mse"].item() == pytest.approx(0.0, abs=1e-7)
    assert out["out_of_range"].item() == pytest.approx(0.25, rel=1e-5)
    assert LocalMSELoss(kernel=8, range_weight=0.0)({"x_hat": over}, x)["loss"].item() == pytest.approx(0.0, abs=1e-4)


def test_local_mse_rejects_bad_kernel():
    with pytest.raises(InvalidArgumentError, match="kernel"):
        LocalMSELoss(kernel=0)


# -- cognition (MoCo) ------------------------------------------------------------------------
def test_info_nce_lower_for_matched_pairs_than_shuffled():
    torch.manual_seed(1)
    k = nn.functional.normalize(torch.randn(8, 32), dim=1)
    q = nn.functional.normalize(k + 0.1 * torch.randn(8, 32), dim=1)
    queue = nn.functional.normalize(torch.randn(64, 32), dim=1)
    matched = info_nce(q, k, queue, 0.07).mean()
    shuffled = info_nce(q, k[torch.randperm(8)], queue, 0.07).mean()
    assert matched < 0.5 < shuffled


def test_moco_loss_matched_vs_shuffled_images():
    loss = MoCoCognitionLoss(backbone=TinyEmbedder(), queue_size=0)
    torch.manual_seed(2)
    x = torch.rand(6, 3, 32, 32)
    noisy = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    matched = loss({"x_hat": noisy}, x)["loss"]
    shuffled = loss({"x_hat": noisy[torch.tensor([1, 2, 3, 4, 5, 0])]}, x)["loss"]
    assert matched < shuffled


def test_moco_queue_fills_wraps_and_is_saved_without_backbone():
    loss = MoCoCognitionLoss(backbone=TinyEmbedder(), queue_size=5).train()
    x = torch.rand(3, 3, 16, 16)
    loss({"x_hat": x}, x)
    assert int(loss.queue_len) == 3 and int(loss.queue_ptr) == 3
    keys = loss.embed(x)
    assert torch.allclose(loss.queue[:3], keys, atol=1e-6)
    loss({"x_hat": x}, x)
    assert int(loss.queue_len) == 5 and int(loss.queue_ptr) == 1  # 6 keys into 5 slots
    assert torch.allclose(loss.queue[0], keys[2], atol=1e-6)
    sd = loss.trainable_state_dict()
    assert set(sd) == {"queue", "queue_ptr", "queue_len"}
    loss.eval()
    loss({"x_hat": x}, x)
    assert int(loss.queue_ptr) == 1  # evaluation does not enqueue


def _codec_and_backbone_grads(loss: nn.Module):
    codec = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(2, 3, 64, 64)
    bn = [m for m in loss.backbone.modules() if isinstance(m, nn.BatchNorm2d)][0]
    stats = bn.running_mean.clone()
    loss.train()
    out = loss({"x_hat": torch.sigmoid(codec(x))}, x)
    out["loss"].backward()
    assert codec.weight.grad is not None and codec.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.backbone.parameters())
    assert not loss.backbone.training
    assert torch.equal(bn.running_mean, stats)  # frozen BN statistics never move


def test_moco_gradients_reach_only_the_codec(lite0_moco):
    _codec_and_backbone_grads(lite0_moco)


# -- cognition (logit distillation) ----------------------------------------------------------
class TinyClassifier(nn.Module):
    """TinyEmbedder + pooling + a linear head: logits (B, 5)."""

    def __init__(self):
        super().__init__()
        self.features = TinyEmbedder()
        torch.manual_seed(3)
        self.head = nn.Linear(32, 5)
        self.head.weight.data.mul_(30.0)  # logits that differ between images: KL of order 0.1–1

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_logit_distillation_is_t2_times_kl_of_the_classifier_outputs(temperature):
    clf = TinyClassifier()
    loss = LogitDistillationLoss(backbone=clf, temperature=temperature)
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    y = torch.rand(3, 3, 16, 16) * torch.linspace(0, 1, 16)  # darkened to the left: 2 of 3 keep their class
    with torch.no_grad():
        p = torch.softmax(clf.eval()(x).double() / temperature, 1)
        q = torch.softmax(clf(y).double() / temperature, 1)
        expected = (temperature**2 * (p * (p.log() - q.log())).sum(1)).float()
    out = loss({"x_hat": y}, x)
    assert torch.allclose(out["per_sample"], expected, rtol=1e-4, atol=1e-6)
    assert (out["per_sample"] > 1e-3).all()
    same = loss({"x_hat": x}, x)
    assert same["loss"].abs().item() < 1e-6 and same["agreement"].item() == 1.0
    assert out["agreement"].item() == pytest.approx(2 / 3)
    assert out["agreement"].item() == pytest.approx((clf(y).argmax(1) == clf(x).argmax(1)).float().mean().item())


def test_logit_distillation_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="temperature"):
        LogitDistillationLoss(backbone=TinyClassifier(), temperature=0.0)
    with pytest.raises(InvalidArgumentError, match=r"logits \(B, classes\).*\(2, 32, 4, 4\)"):
        LogitDistillationLoss(backbone=TinyEmbedder())({"x_hat": torch.rand(2, 3, 16, 16)}, torch.rand(2, 3, 16, 16))


def test_logit_distillation_gradients_reach_only_the_codec():
    _codec_and_backbone_grads(LogitDistillationLoss())


def test_sfm_gradients_reach_only_the_codec():
    _codec_and_backbone_grads(SFMLoss(layers=[1, 3]))


def test_sfm_is_mean_l1_of_features():
    bb = TinyEmbedder()
    loss = SFMLoss(backbone=bb)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert loss({"x_hat": x}, x)["loss"].item() == 0.0
    expected = (bb.eval()(x) - bb(y)).abs().mean()
    assert loss({"x_hat": y}, x)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_mse_is_the_mean_over_stages_of_squared_feature_differences():
    from compressai_rdc.losses import FeatureMSELoss

    class TwoStages(nn.Module):
        def forward(self, x):
            return [x * 2.0, x.mean(1, keepdim=True)]

    loss = FeatureMSELoss(backbone=TwoStages())
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    nx, ny = loss.normalize(x), loss.normalize(y)
    expected = (((2 * ny - 2 * nx) ** 2).mean() + ((ny.mean(1) - nx.mean(1)) ** 2).mean()) / 2
    assert loss({"x_hat": y}, x)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss({"x_hat": x}, x)["loss"].item() == 0.0
    with pytest.raises(InvalidArgumentError, match="distance='l3'"):
        FeatureMSELoss(backbone=TwoStages(), distance="l3")


def test_feature_mse_defaults_to_every_lite0_stage():
    from compressai_rdc.losses import FeatureMSELoss

    loss = FeatureMSELoss()
    assert len(loss.features(torch.rand(1, 3, 64, 64))) == 5 and loss.distance == "mse"


# -- GAN -------------------------------------------------------------------------------------
def test_gan_loss_signs():
    hi, lo = torch.full((2, 1, 4, 4), 3.0), torch.full((2, 1, 4, 4), -3.0)
    assert generator_loss(hi).mean() < generator_loss(lo).mean()  # G wins when D calls fakes real
    assert discriminator_loss(hi, lo).mean() < discriminator_loss(lo, hi).mean()  # D wins when real→high, fake→low
    assert generator_loss(torch.zeros(1, 1, 1, 1)).item() == pytest.approx(math.log(2))
    assert discriminator_loss(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)).item() == pytest.approx(2 * math.log(2))


def test_conditional_discriminator_uses_its_conditions():
    torch.manual_seed(0)
    d = ConditionalDiscriminator(qmap_channels=1, latent_channels=8, width=8)
    img = torch.rand(1, 3, 64, 64)
    q0, q1 = torch.zeros(1, 1, 64, 64), torch.ones(1, 1, 64, 64)
    y = torch.randn(1, 8, 4, 4)
    a, b = d(img, q0, y), d(img, q1, y)
    assert a.shape == (1, 1, 4, 4) and not torch.allclose(a, b)
    assert not torch.allclose(a, d(img, q0, torch.randn(1, 8, 4, 4)))
    with pytest.raises(InvalidArgumentError, match="qmap"):
        d(img, None, y)


def test_gan_generator_and_discriminator_steps_touch_the_right_parameters():
    gan = GANLoss(condition=["qmap"], width=8)
    gen = nn.Conv2d(3, 3, 3, padding=1)
    x, q = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    out = {"x_hat": gen(x)}
    d = gan.discriminator_loss(out, x, qmap=q)
    d["loss"].backward()
    assert gen.weight.grad is None  # the D step never updates the generator
    assert any(p.grad is not None for p in gan.discriminator.parameters())
    g = gan(out, x, qmap=q)
    g["loss"].backward()
    assert gen.weight.grad is not None


def test_hevrc_stage3_discriminator_is_conditioned_on_y_hat_as_in_the_paper():
    """D(f_d(ŷ, ẑ), ŷ, q) (HEVRC eqs. 13–14): the recipe's GAN sees the model's ŷ."""
    from compressai_rdc.models.hevrc import HEVRC
    from compressai_rdc.training.recipes import load_config

    gan_cfg = dict(load_config("hevrc-stage3")["loss"]["gan"])
    assert set(gan_cfg["condition"]) == {"qmap", "latent"} and gan_cfg["latent_channels"] == HEVRC().M
    torch.manual_seed(0)
    net = HEVRC(N=16, M=8, cond_channels=8)
    gan = GANLoss(condition=gan_cfg["condition"], latent_channels=8, width=8)
    x, q = torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)
    out = net(x, q)
    assert out["y_hat"].shape == (1, 8, 4, 4)
    d = gan.discriminator_loss(out, x, qmap=q)["loss"]
    other = dict(out, y_hat=out["y_hat"] + 1.0)
    assert not torch.allclose(d, gan.discriminator_loss(other, x, qmap=q)["loss"])  # ŷ changes D's verdict
    with pytest.raises(InvalidArgumentError, match="latent_channels to M"):
        GANLoss(condition=["qmap", "latent"], latent_channels=5, width=8)(out, x, qmap=q)


# -- composite ---------------------------------------------------------------------------------
def test_composite_weights_and_per_image_lambda():
    loss = build_loss({"rate": {"weight": 1.0}, "mse": {"weight": 2.0, "lambda_scaled": True}})
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.2)])
    lk = {"y": torch.full((2, 1, 4, 4), 0.5)}
    out = loss({"x_hat": x_hat, "likelihoods": lk}, x, lmbda=torch.tensor([1.0, 3.0]))
    mse = torch.tensor([0.01, 0.04]) * 255**2
    expected = 1.0 + 2.0 * ((torch.tensor([1.0, 3.0]) * mse).mean())
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["rate"].item() == pytest.approx(1.0)
    with pytest.raises(InvalidArgumentError, match="lmbda"):
        loss({"x_hat": x_hat, "likelihoods": lk}, x)


def test_weight_by_rate_scales_each_image_by_its_rate_level():
    """``weight_by_rate`` multiplies a term per image by a piecewise-linear factor of its rate
    level (constant outside the knots), on top of λ; other terms are untouched."""
    from compressai_rdc.losses.composite import rate_factor, rate_knots

    knots = rate_knots("mse", {5: 1.0, 0: 0.1, 2: 0.1})
    assert knots == ((0.0, 0.1), (2.0, 0.1), (5.0, 1.0))
    got = rate_factor(knots, torch.tensor([0.0, 1.0, 2.0, 3.5, 5.0, 7.0, -1.0]))
    assert got.tolist() == pytest.approx([0.1, 0.1, 0.1, 0.55, 1.0, 1.0, 0.1])
    assert rate_factor(((3.0, 0.5),), torch.tensor([0.0, 7.0])).tolist() == [0.5, 0.5]
    loss = build_loss({"rate": {"weight": 1.0},
                       "mse": {"weight": 2.0, "lambda_scaled": True, "weight_by_rate": {0: 0.1, 2: 0.1, 5: 1.0}}})
    x = torch.zeros(3, 3, 4, 4)
    x_hat = torch.stack([torch.full((3, 4, 4), v) for v in (0.1, 0.2, 0.3)])
    lk = {"y": torch.full((3, 1, 4, 4), 0.5)}
    lmbda, rate = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.0, 3.5, 7.0])
    out = loss({"x_hat": x_hat, "likelihoods": lk}, x, lmbda=lmbda, rate=rate)
    mse = torch.tensor([0.01, 0.04, 0.09]) * 255**2
    expected = 1.0 + 2.0 * (lmbda * torch.tensor([0.1, 0.55, 1.0]) * mse).mean()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["rate"].item() == pytest.approx(1.0)
    with pytest.raises(InvalidArgumentError, match="no 'rate'"):
        loss({"x_hat": x_hat, "likelihoods": lk}, x, lmbda=lmbda)
    # without λ scaling the factor alone weighs the term
    plain = build_loss({"mse": {"weight_by_rate": {0: 0.0, 7: 1.0}}})
    out = plain({"x_hat": x_hat, "likelihoods": lk}, x, rate=torch.tensor([0.0, 3.5, 7.0]))
    assert out["loss"].item() == pytest.approx(((torch.tensor([0.0, 0.5, 1.0]) * mse).mean()).item(), rel=1e-5)
    for bad, match in (([0.1, 1.0], "non-empty mapping"), ({}, "non-empty mapping"), ({0: -1.0}, "factors >= 0"),
                       ({"a": 1.0}, "needs numbers")):
        with pytest.raises(InvalidArgumentError, match=match):
            build_loss({"mse": {"weight_by_rate": bad}})
    from compressai_rdc.losses.composite import CompositeLoss

    with pytest.raises(InvalidArgumentError, match="not loss terms"):
        CompositeLoss(loss.terms, {}, weight_by_rate={"pixel": {0: 1.0}})


def test_build_loss_errors_name_the_problem():
    with pytest.raises(UnknownNameError, match="registered losss|registered loss"):
        build_loss({"nope": {}})
    with pytest.raises(InvalidArgumentError, match="local-mse.*bad options"):
        build_loss({"anchor": {"type": "local-mse", "kernal": 8}})
    with pytest.raises(InvalidArgumentError, match="empty"):
        build_loss({})
    assert isinstance(build_loss({"anchor": {"type": "local-mse", "kernel": 4}}).terms["anchor"], LocalMSELoss)
