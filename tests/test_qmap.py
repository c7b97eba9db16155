"""Quality maps: ICM, OTSU, Grad-CAM SIM, blending, Γ, random maps, strategies — with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.qmap import (
    blend_importance,
    create_strategy,
    gamma_level,
    gamma_map,
    image_complexity_map,
    lambda_map,
    level_to_params,
    lift_zeros,
    otsu_binarize,
    otsu_threshold,
    random_qmap,
)

STRATEGIES = ["uniform", "icm", "inverse-icm", "sim", "blended"]


def _half_textured(h: int = 64, w: int = 128) -> torch.Tensor:
    """Left half flat grey, right half random texture."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, h, w), 0.5)
    x[..., w // 2 :] = torch.rand(1, 3, h, w // 2, generator=g)
    return x


# -- ICM ----------------------------------------------------------------------------
def test_icm_orders_textured_above_flat_and_is_blockwise():
    c = image_complexity_map(_half_textured(), block=16)
    assert c.shape == (1, 1, 64, 128)
    assert float(c.min()) == 0.0 and float(c.max()) == 1.0
    # flat interior blocks are the least complex, textured interior ones far above
    assert float(c[..., :, :48].max()) == 0.0
    assert float(c[..., :, 80:].min()) > 0.8
    # one value per 16x16 block (nearest upsampling of block means)
    blocks = c.unfold(2, 16, 16).unfold(3, 16, 16)
    assert torch.all(blocks.amax(dim=(-1, -2)) == blocks.amin(dim=(-1, -2)))


def test_icm_flat_image_is_zero_and_handles_partial_blocks():
    assert torch.count_nonzero(image_complexity_map(torch.full((2, 3, 40, 50), 0.3))) == 0
    c = image_complexity_map(torch.rand(1, 3, 40, 50), block=16)
    assert c.shape == (1, 1, 40, 50)


def test_icm_rejects_non_rgb():
    with pytest.raises(InvalidArgumentError, match="RGB"):
        image_complexity_map(torch.rand(1, 1, 16, 16))


# -- OTSU ---------------------------------------------------------------------------
def test_otsu_bimodal_known_split():
    g = torch.Generator().manual_seed(1)
    s = (0.2 + 0.02 * torch.randn(1, 1, 32, 32, generator=g)).clamp(0, 1)
    truth = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    truth[..., 8:24, 4:20] = True
    s[truth] = (0.8 + 0.02 * torch.randn(int(truth.sum()), generator=g)).clamp(0, 1)
    t = float(otsu_threshold(s))
    assert float(s[~truth].max()) <= t < float(s[truth].min())  # the threshold falls in the gap
    assert torch.equal(otsu_binarize(s).bool(), truth)


def test_otsu_constant_map_has_no_salient_region():
    assert torch.count_nonzero(otsu_binarize(torch.full((1, 1, 8, 8), 0.4))) == 0


# -- blending ---------------------------------------------------------------------
def test_blend_keeps_salient_above_non_salient_and_has_no_zeros():
    s = torch.zeros(1, 1, 32, 32)
    s[..., 8:24, 8:24] = torch.linspace(0.6, 1.0, 16).view(1, 1, 16, 1).expand(1, 1, 16, 16)
    c = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    v = blend_importance(s, c)
    salient = s > 0
    assert float(v[salient].min()) >= float(v[~salient].max())
    assert float(v[salient].mean()) > float(v[~salient].mean())
    assert float(v.min()) > 0
    # inside the salient region v is s itself; outside it follows 1 - c
    torch.testing.assert_close(v[salient], s[salient])
    outside = ~salient
    order = torch.argsort(c[outside])
    assert torch.all(torch.diff(v[outside][order]) <= 1e-6)


def test_lift_zeros_known_answer():
    v = torch.tensor([[[[0.0, 0.3], [0.5, 0.0]]]])
    torch.testing.assert_close(lift_zeros(v), torch.tensor([[[[0.3, 0.3], [0.5, 0.3]]]]))
    torch.testing.assert_close(lift_zeros(torch.zeros(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))


# -- Γ ----------------------------------------------------------------------------
def test_gamma_branches_known_values():
    v = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(gamma_map(v, tau=0.5), v / 2)
    torch.testing.assert_close(gamma_map(v, rho=2.0), (1 - (1 - v) ** 2).sqrt())
    torch.testing.assert_close(gamma_level(v, 1.0), v)
    assert torch.count_nonzero(gamma_level(v, 0.0)) == 0
    assert float(gamma_level(torch.tensor([0.01]), 2.0)) > 0.999


@pytest.mark.parametrize("v", [0.01, 0.2, 0.5, 0.9])
def test_gamma_monotone_in_level(v):
    levels = torch.linspace(0, 2, 81).tolist()
    q = [float(gamma_level(torch.tensor([v]), t)) for t in levels]
    assert all(b >= a - 1e-7 for a, b in zip(q, q[1:]))
    assert q[-1] > q[0]


@pytest.mark.parametrize("level", [0.3, 1.0, 1.4, 2.0])
def test_gamma_keeps_pixel_order(level):
    v = torch.linspace(0.01, 1, 50)
    q = gamma_level(v, level)
    assert torch.all(torch.diff(q) >= 0) and float(q.min()) >= 0 and float(q.max()) <= 1


def test_gamma_rejects_bad_parameters():
    with pytest.raises(InvalidArgumentError, match="tau"):
        gamma_map(torch.rand(3), tau=1.5)
    with pytest.raises(InvalidArgumentError, match="rho"):
        gamma_map(torch.rand(3), rho=0.5)
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        gamma_map(torch.rand(3))
    with pytest.raises(InvalidArgumentError, match=r"\[0.0, 2.0\]"):
        level_to_params(2.5)


# -- λ(q) and random maps -----------------------------------------------------------
def test_lambda_map_known_values():
    lam = lambda_map(torch.tensor([0.0, 1.0]), 4e-4, 2.8)
    torch.testing.assert_close(lam, torch.tensor([4e-4, 4e-4 * math.exp(2.8)]))


def test_random_qmap_range_reproducible_and_varied():
    a = random_qmap(12, 32, 48, generator=torch.Generator().manual_seed(3))
    b = random_qmap(12, 32, 48, generator=torch.Generator().manual_seed(3))
    assert a.shape == (12, 1, 32, 48) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    spatially_constant = (a.amax(dim=(2, 3)) - a.amin(dim=(2, 3))).flatten() < 1e-6
    assert spatially_constant.any() and (~spatially_constant).any()
    with pytest.raises(InvalidArgumentError):
        random_qmap(1, 8, 8, p_uniform=0.8, p_gradient=0.5)


# -- SIM (Grad-CAM) -----------------------------------------------------------------
def _confident_half_image(imagenet_dev_dir):
    """An ImageNet photo the classifier is sure of, in the right half of a grey canvas."""
    from compressai_rdc.data import cognition_crop, list_images, load_image
    from compressai_rdc.qmap.sim import SemanticImportance

    sim = SemanticImportance()
    best = None
    for path in list_images(imagenet_dev_dir)[:12]:
        crop = torch.nn.functional.interpolate(cognition_crop(load_image(path))[None], size=(160, 160), mode="bilinear")
        with torch.no_grad():
            p = sim.classifier(sim.normalize(crop)).softmax(-1).max().item()
        if best is None or p > best[0]:
            best = (p, crop)
    canvas = torch.full((1, 3, 160, 320), 0.5)
    canvas[..., 160:] = best[1]
    return sim, canvas, best[0]


@pytest.mark.data
def test_gradcam_mass_is_on_the_object(imagenet_dev_dir):
    sim, canvas, confidence = _confident_half_image(imagenet_dev_dir)
    assert confidence > 0.5
    s = sim(canvas)
    assert s.shape == (1, 1, 160, 320) and float(s.min()) >= 0 and float(s.max()) == pytest.approx(1.0)
    left, right = float(s[..., :160].sum()), float(s[..., 160:].sum())
    assert right > 2 * left


# -- strategies ---------------------------------------------------------------------
def test_strategies_registered():
    from compressai_rdc import QMAP_STRATEGIES

    assert set(STRATEGIES) <= set(QMAP_STRATEGIES.names())


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_output_contract(name, sample_image):
    v = create_strategy(name)(sample_image)
    assert v.shape == (1, 1, *sample_image.shape[-2:])
    assert float(v.min()) > 0 and float(v.max()) <= 1  # zeros are lifted


def test_icm_strategies_are_complementary():
    x = _half_textured()
    v, w = create_strategy("icm")(x), create_strategy("inverse-icm")(x)
    assert v[..., 100:].mean() > v[..., :30].mean()
    assert w[..., :30].mean() > w[..., 100:].mean()


def test_uniform_strategy_value_and_validation():
    assert torch.all(create_strategy("uniform", value=0.25)(torch.rand(2, 3, 8, 8)) == 0.25)
    with pytest.raises(InvalidArgumentError, match=r"\(0, 1\]"):
        create_strategy("uniform", value=0.0)
