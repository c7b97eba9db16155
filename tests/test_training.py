"""The trainer: recipes lower their loss, resume is exact, budgets and exports work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from compressai_rdc import MODELS
from compressai_rdc.cli import main
from compressai_rdc.errors import DatasetError, InvalidArgumentError, RDCError
from compressai_rdc.training.data import CropSampler, fit_to_crop
from compressai_rdc.training.recipes import build_recipe, list_configs, load_config
from compressai_rdc.training.trainer import Trainer, keep_entropy_models_fp32, load_init_weights

#: small architectures so that CPU runs take seconds
TINY = {
    "mbt2018-mean": "{N: 8, M: 8}",
    "rdc-versatile": "{N: 8, M: 8, residual_N: 8, residual_M: 8}",
    "rdc-qmap": "{N: 8, M: 8, residual_N: 8, residual_M: 8}",
    "hevrc": "{N: 8, M: 8}",
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Two smooth 64×64 images and one 40×50 image (smaller than the crop)."""
    from compressai_rdc.data import save_image

    root = tmp_path_factory.mktemp("train")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    for i in range(2):
        save_image(torch.stack([yy, xx, (yy * xx).sqrt() * (i + 1) / 2]), root / f"img{i}.png")
    save_image(torch.rand(3, 40, 50), root / "sub" / "small.png")
    return root


def tiny_args(config: str, out: Path, data: Path, steps: int, *extra: str):
    name = load_config(config)["model"]["name"]
    return [
        "train", config, "--out", str(out), "--device", "cpu", "--data", str(data), "--max-steps", str(steps),
        "--no-progress", "--set", "data.batch_size=2", "--set", "data.crop=64", "--set", "log.every=1",
        "--set", f"model.kwargs={TINY[name]}", "--set", "log.checkpoint_every=0", *extra,
    ]


def read_log(out: Path):
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def needs_model(config: str) -> None:
    name = load_config(config)["model"]["name"]
    if name not in MODELS and name not in TINY:
        pytest.skip(f"model {name!r} is not registered")
    if name in TINY and name != "mbt2018-mean" and name not in MODELS:
        pytest.skip(f"model {name!r} is not registered yet")


# -- every recipe learns ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(list_configs()))
def test_every_recipe_lowers_its_loss(config, tiny_data, tmp_path):
    needs_model(config)
    extra = ["--set", "optim.lr=5e-4", "--set", "data.hflip=false", "--set", "data.max_images=2"]
    kind = load_config(config)["kind"]
    if kind.startswith("rdc"):
        extra += ["--set", "controls.rate_range=[3, 3]"]  # one operating point: losses comparable across steps
    if kind == "qmap-gan":
        extra += ["--set", "loss.gan.width=8", "--set", "loss.gan.latent_channels=8"]  # TINY hevrc: M = 8
    if kind == "qmap":
        extra += ["--set", "controls.p_uniform=1.0", "--set", "controls.p_gradient=0.0"]
    if load_config(config)["controls"].get("qmap"):
        # The claim here is "the loss goes down", read as the mean of the last 4 steps
        # against the first 4. With map dependence on, each step draws new maps and
        # λ(q) = t1·exp(t2·q) varies 16× (t2 = 2.8) between them, so 4-step means
        # differ by the draw more than by 20 steps of learning. t2 = 0 keeps the random
        # maps driving the model (its SFT inputs) with a fixed loss weight; that λ
        # follows q is tested in test_qmap_recipe_lambda_follows_the_map.
        extra += ["--set", "controls.t2=0.0"]
    assert main(tiny_args(config, tmp_path, tiny_data, 20, *extra)) == 0
    losses = [float(r["loss"]) for r in read_log(tmp_path)]
    assert len(losses) == 20
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first, f"{config}: loss went from {first:.4g} to {last:.4g}"


# -- exact resume, budgets, exports ------------------------------------------------------------
def _ckpt(out: Path):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def test_resume_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(tiny_args("rdc-versatile-stage1", whole, tiny_data, 4)) == 0
    assert main(tiny_args("rdc-versatile-stage1", split, tiny_data, 2)) == 0
    assert main(tiny_args("rdc-versatile-stage1", split, tiny_data, 4, "--resume")) == 0
    a, b = _ckpt(whole), _ckpt(split)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["criterion"]:  # the MoCo queue too
        assert torch.equal(a["criterion"][k], b["criterion"][k]), k
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    assert [r["loss"] for r in read_log(whole)] == [r["loss"] for r in read_log(split)]


def test_time_budget_stops_cleanly_with_a_checkpoint(tiny_data, tmp_path):
    assert main(tiny_args("baseline-mbt2018-mean", tmp_path, tiny_data, 10_000, "--max-minutes", "0.01")) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"] == "time budget" and summary["step"] < 10_000
    assert _ckpt(tmp_path)["step"] == summary["step"]


def test_refuses_to_overwrite_and_to_resume_nothing(tiny_data, tmp_path, capsys):
    assert main(tiny_args("baseline-mbt2018-mean", tmp_path / "r", tiny_data, 1)) == 0
    assert main(tiny_args("baseline-mbt2018-mean", tmp_path / "r", tiny_data, 1)) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(tiny_args("baseline-mbt2018-mean", tmp_path / "none", tiny_data, 1, "--resume")) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_exports_count_the_images_of_the_weights_they_descend_from(tiny_data, tmp_path):
    """``lineage_images``: a run from scratch counts its own images; a run started from an
    export adds that export's lineage and keeps it across a resume; weights with no known
    lineage (no metadata, no manifest entry) leave it out instead of counting zero; a
    shipped file without the metadata is read from the manifest beside it."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from compressai_rdc.training.trainer import lineage_images

    def meta(path):
        with safe_open(str(path), "pt") as f:
            return f.metadata()

    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "ra", tiny_data, 2, "--export", str(a))) == 0
    assert meta(a)["lineage_images"] == "4" and lineage_images(a) == 4  # 2 steps of batch 2
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "rb", tiny_data, 1, "--init-weights", str(a))) == 0
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "rb", tiny_data, 3, "--resume", "--export", str(b))) == 0
    assert (meta(b)["run_images"], meta(b)["lineage_images"]) == ("6", "10")
    # weights from elsewhere: not known
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(a)), str(bare))
    assert lineage_images(bare) is None
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "rc", tiny_data, 1, "--init-weights", str(bare), "--export", str(c))) == 0
    assert "lineage_images" not in meta(c) and meta(c)["run_images"] == "2"
    # a shipped file: its manifest entry
    (tmp_path / "release.json").write_text(json.dumps({"rdc-versatile": {"file": "bare.safetensors", "images": 496000}}))
    assert lineage_images(bare) == 496000


def test_export_writes_fp16_weights_that_load_and_initialise(tiny_data, tmp_path):
    from safetensors.torch import load_file

    from compressai_rdc import create_model

    w = tmp_path / "w.safetensors"
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "r", tiny_data, 2, "--export", str(w))) == 0
    sd = load_file(str(w))
    from safetensors import safe_open

    with safe_open(str(w), "pt") as f:
        meta = f.metadata()
    # what `release --adopt` records of a plain run: 2 steps of batch 2, on the CPU
    assert (meta["recipe"], meta["step"], meta["run_images"], meta["device"]) == ("rdc-versatile-stage1", "2", "4", "cpu")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert float(meta["run_seconds"]) == pytest.approx(summary["elapsed_s"], abs=0.06)
    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8)
    params = {k for k, _ in net.named_parameters()}
    assert all(sd[k].dtype == torch.float16 for k in params)
    # buffers hold constants fp16 flushes to zero (likelihood bound 1e-9): kept exact
    assert sd["primary.gaussian_conditional.likelihood_lower_bound.bound"].item() == pytest.approx(1e-9)
    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8, weights=w)
    out = net.compress(torch.rand(1, 3, 64, 64), rate=3.0, layers=0)
    assert out["strings"]
    # the next stage starts from these weights
    assert main(tiny_args("rdc-versatile-stage2", tmp_path / "s2", tiny_data, 1, "--init-weights", str(w))) == 0
    s2 = _ckpt(tmp_path / "s2")["model"]
    k = next(k for k in sd if k.startswith("primary.") and k in params and sd[k].numel() > 1)
    assert torch.equal(s2[k].half(), sd[k])  # primary frozen in stage II: still the stage-I export


def test_init_only_starts_a_residual_of_other_widths_on_a_trained_primary(tiny_data, tmp_path):
    """``model.init_only: [primary]``: stage II with a wider residual than the stage-I export's
    reads only the primary's tensors from it; a plain (strict) init refuses the misfit, and
    names that are not sub-modules, or hold no tensors in the file, are clear errors."""
    from compressai_rdc.errors import WeightsFormatError
    from compressai_rdc.zoo import load_state_dict_file

    w = tmp_path / "w.safetensors"
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "r", tiny_data, 2, "--export", str(w))) == 0
    sd = load_state_dict_file(w)
    wide = ["model.kwargs={N: 8, M: 8, residual_N: 16, residual_M: 12}", "data.batch_size=2", "data.crop=64",
            f"data.train={tiny_data}", "log.every=1", "log.checkpoint_every=0"]
    with pytest.raises(WeightsFormatError, match="residual"):
        Trainer(load_config("rdc-versatile-stage2", wide), tmp_path / "strict", device="cpu", init_weights=str(w), progress=False)
    t = Trainer(load_config("rdc-versatile-stage2", [*wide, "model.init_only=[primary]"]), tmp_path / "s2", device="cpu",
                init_weights=str(w), progress=False)
    got = t.model.state_dict()
    prim = [k for k in sd if k.startswith("primary.") and sd[k].is_floating_point() and "_cdf" not in k]
    assert prim and all(torch.equal(got[k].float(), sd[k].float()) for k in prim)
    assert got["residual.g_a.6.weight"].shape[0] == 12 != sd["residual.g_a.6.weight"].shape[0]
    logs = t.train_step(0)  # the assembled model trains
    assert all(torch.isfinite(v).all() for v in logs.values())
    net = t.model
    with pytest.raises(InvalidArgumentError, match=r"not sub-modules of RDCVersatile \(its parts: primary, residual\)"):
        load_init_weights(net, w, ["primary", "decoder"])
    other = tmp_path / "primary-only.safetensors"
    from safetensors.torch import save_file

    save_file({k: v for k, v in sd.items() if k.startswith("primary.")}, str(other))
    with pytest.raises(InvalidArgumentError, match=r"hold no tensors of \['residual'\]"):
        load_init_weights(net, other, ["residual"])
    with pytest.raises(InvalidArgumentError, match="init_only"):
        load_config("rdc-versatile-stage2", ["model.init_only=primary"])


def test_training_continues_from_an_fp16_export_with_finite_rate(tiny_data, tmp_path):
    """Regression: fp16 exports used to flush the likelihood bound (1e-9) to 0, so the
    first step that pushed a latent into a tail got an infinite rate, then NaN weights."""
    from compressai_rdc import create_model
    from compressai_rdc.zoo import load_into, load_state_dict_file

    w = tmp_path / "w.safetensors"
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "r", tiny_data, 2, "--export", str(w))) == 0
    t = Trainer(_tiny_config("rdc-versatile-stage1", tiny_data), tmp_path / "c", device="cpu",
                init_weights=str(w), progress=False)
    t._train_mode()
    out = t.model(torch.rand(2, 3, 64, 64) * 1e4, rate=torch.tensor([0.0, 7.0]), layers=0)  # far tails
    for name, lk in out["likelihoods"].items():
        assert lk.min() >= 1e-9 * (1 - 1e-6), name
    for step in range(3):
        logs = t.train_step(step)
        assert all(torch.isfinite(v).all() for v in logs.values()), logs
    # a file written by an older version (every float tensor fp16) loads with the exact constants
    legacy = {k: v.half() if v.is_floating_point() else v for k, v in load_state_dict_file(w).items()}
    assert legacy["primary.gaussian_conditional.likelihood_lower_bound.bound"].item() == 0.0
    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8)
    load_into(net, legacy)
    assert net.primary.gaussian_conditional.likelihood_lower_bound.bound.item() == pytest.approx(1e-9)
    assert net.primary.g_a[1].beta_reparam.pedestal.item() > 0


@pytest.mark.parametrize("fused", [False, True], ids=["adam-clipped", "fused-adam-unclipped"])
def test_steps_with_non_finite_gradients_are_skipped_then_fail(tiny_data, tmp_path, monkeypatch, fused):
    """An overflowing step (bf16 at init) leaves the weights alone and is counted in
    log.csv's ``skipped_steps``; MAX_SKIPPED_STEPS in a row fail the run. Fused Adam (the
    trainer's choice on CUDA; CPU kernels exist too) skips through its ``found_inf`` hook,
    without a host synchronisation."""
    from compressai_rdc.training import trainer as trainer_mod

    t = Trainer(_tiny_config("rdc-versatile-stage1", tiny_data), tmp_path / "a", device="cpu", progress=False)
    if fused:  # and without clipping: the flag then comes from the unclipped gradient norm
        t.optimizer = torch.optim.Adam(t.optimizer.param_groups[0]["params"], lr=1e-4, fused=True)
        t.clip = None
    real = t.criterion.forward
    bad = {1, 2}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        if t.step in bad:
            out["loss"] = out["loss"] * float("inf")
        return out

    monkeypatch.setattr(t.criterion, "forward", poisoned)
    t.fit(max_steps=1)
    before = {k: v.clone() for k, v in t.model.state_dict().items() if k.startswith("primary.g_s")}
    t.fit(max_steps=3)  # steps 1 and 2 overflow
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items() if k in before)
    t.fit(max_steps=4)
    assert any(not torch.equal(before[k], v) for k, v in t.model.state_dict().items() if k in before)
    with open(tmp_path / "a" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["skipped_steps"]) for r in rows] == [0, 1, 1, 0] and [r["step"] for r in rows] == ["1", "2", "3", "4"]
    if fused:  # the skipped steps did not count in Adam's bias correction either
        assert all(int(s["step"]) == 2 for s in t.optimizer.state.values())

    monkeypatch.setattr(trainer_mod, "MAX_SKIPPED_STEPS", 3)
    bad.update(range(4, 100))
    with pytest.raises(RDCError, match="non-finite loss or gradients for 3 steps in a row"):
        t.fit(max_steps=20)
    assert t.step == 7


def test_frozen_parts_do_not_move(tiny_data, tmp_path):
    t = Trainer(_tiny_config("rdc-versatile-stage1", tiny_data), tmp_path, device="cpu", progress=False)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit(max_steps=2)
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("residual."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("primary.g_s"))


def _tiny_config(name, data, **over):
    cfg = load_config(name, [f"model.kwargs={TINY[load_config(name)['model']['name']]}", "data.batch_size=2",
                             "data.crop=64", f"data.train={data}", "log.every=1", "log.checkpoint_every=0"])
    cfg.update(over)
    return cfg


# -- speed switches on CPU ----------------------------------------------------------------------
def test_bf16_autocast_keeps_entropy_models_in_fp32():
    from compressai.zoo import mbt2018_mean

    net = keep_entropy_models_fp32(mbt2018_mean(quality=1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 3, 64, 64))
    assert out["x_hat"].dtype == torch.bfloat16  # the transforms ran in bf16
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())


def test_bf16_channels_last_training_runs_on_cpu(tiny_data, tmp_path):
    args = tiny_args("baseline-mbt2018-mean", tmp_path, tiny_data, 3, "--set", "speed.bf16=true", "--set", "speed.channels_last=true")
    assert main(args) == 0
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in read_log(tmp_path))


# -- data -----------------------------------------------------------------------------------------
def test_small_images_are_upscaled_or_padded():
    img = (torch.rand(3, 40, 50) * 255).to(torch.uint8)
    up, pad = fit_to_crop(img, 64, "upscale"), fit_to_crop(img, 64, "pad")
    assert up.shape == (3, 64, 80) and pad.shape == (3, 64, 64)
    assert torch.equal(pad[:, 12:52, 7:57], img)  # centred, original pixels untouched
    with pytest.raises(InvalidArgumentError, match="upscale, pad"):
        fit_to_crop(img, 64, "stretch")


def test_sampler_is_deterministic_and_ranks_split_the_global_batch(tiny_data):
    s = CropSampler(tiny_data, 32, seed=3)
    assert len(s) == 3 and min(min(i.shape[-2:]) for i in s.images) >= 32
    assert torch.equal(s.batch(5, 4), CropSampler(tiny_data, 32, seed=3).batch(5, 4))
    assert not torch.equal(s.batch(5, 4), s.batch(6, 4))
    whole = s.indices(7, 4, 0, 1)
    ranks = s.indices(7, 2, 0, 2) + s.indices(7, 2, 1, 2)
    assert sorted(whole) == sorted(ranks)
    # an epoch visits every image once before any repeats
    assert sorted(s.indices(0, 3)) == [0, 1, 2]


def test_sampler_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        CropSampler(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no images"):
        CropSampler(tmp_path)


# -- recipes and configs ------------------------------------------------------------------------
def test_rdc_recipes_sample_levels_and_lambdas():
    from compressai_rdc import create_model

    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8)
    g = torch.Generator().manual_seed(0)
    r1 = build_recipe({"kind": "rdc-primary", "controls": {"lmbda_min": 0.5, "lmbda_max": 8.0}})
    r1.check_model(net)
    fwd, extra = r1.sample(torch.zeros(256, 3, 8, 8), g)
    rate, lm = fwd["rate"], extra["lmbda"]
    assert fwd["layers"] == 0 and 0 <= rate.min() and rate.max() <= net.levels - 1
    order = rate.argsort()
    assert torch.all(lm[order].diff() >= 0) and lm.min() >= 0.5 and lm.max() <= 8.0
    r2 = build_recipe({"kind": "rdc-residual", "controls": {"lmbda_min": 0.001, "lmbda_max": 0.05}})
    r2.check_model(net)
    ks = {r2.sample(torch.zeros(2, 3, 8, 8), g)[0]["layers"] for _ in range(200)}
    assert ks == set(range(1, net.residual_layers + 1))  # every prefix gets trained


@pytest.mark.parametrize("share", [0.0, 0.15, 0.5, 1.0])
def test_residual_recipe_lambda_splits_between_layer_prefix_and_rate(share):
    from compressai_rdc import create_model

    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8)  # K = 4 layers, L = 8 levels
    recipe = build_recipe({"kind": "rdc-residual", "controls": {"lmbda_min": 0.002, "lmbda_max": 0.05, "layer_share": share}})
    recipe.check_model(net)
    rate = torch.tensor([0.0, 3.5, 7.0])
    for k in (1, 2, 4):
        t = share * (k - 1) / 3 + (1 - share) * rate / 7
        torch.testing.assert_close(recipe.lmbda(rate, k), 0.002 * (0.05 / 0.002) ** t)
    # the first layer at the lowest rate sits at lmbda_min, all layers at the top rate at lmbda_max
    assert recipe.lmbda(rate[:1], 1).item() == pytest.approx(0.002) and recipe.lmbda(rate[2:], 4).item() == pytest.approx(0.05)
    # the default is the mean of both (the recipe's behaviour before layer_share existed)
    default = build_recipe({"kind": "rdc-residual", "controls": {"lmbda_min": 0.002, "lmbda_max": 0.05}})
    default.check_model(net)
    torch.testing.assert_close(default.lmbda(rate, 2), 0.002 * (0.05 / 0.002) ** (0.5 * (1 / 3 + rate / 7)))


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_residual_recipe_rejects_a_layer_share_outside_0_1(bad):
    from compressai_rdc import create_model

    net = create_model("rdc-versatile", N=8, M=8, residual_N=8, residual_M=8)
    recipe = build_recipe({"kind": "rdc-residual", "controls": {"layer_share": bad}})
    with pytest.raises(InvalidArgumentError, match=r"controls\.layer_share=.*\[0, 1\]"):
        recipe.check_model(net)


def test_qmap_recipe_lambda_follows_the_map():
    g = torch.Generator().manual_seed(0)
    recipe = build_recipe({"kind": "qmap", "controls": {"t1": 4e-4, "t2": 2.8}})
    fwd, extra = recipe.sample(torch.zeros(4, 3, 32, 32), g)
    q, lmap = extra["qmap"], extra["lmbda_map"]
    assert fwd["qmap"] is q and float(q.max() - q.min()) > 0.5  # maps vary
    torch.testing.assert_close(lmap, 4e-4 * torch.exp(2.8 * q))
    flat = build_recipe({"kind": "qmap", "controls": {"t1": 4e-4, "t2": 0.0}})
    assert torch.all(flat.sample(torch.zeros(4, 3, 32, 32), g)[1]["lmbda_map"] == 4e-4)


def test_config_loading_and_errors(tmp_path):
    cfg = load_config("hevrc-stage3", ["optim.lr=3e-5", "data.batch_size=4"])
    assert cfg["optim"]["lr"] == 3e-5 and cfg["data"]["batch_size"] == 4
    assert set(cfg["loss"]) == {"rate", "weighted-mse", "sfm", "gan"}  # inherited through base:
    assert cfg["freeze"] and "g_s" not in cfg["freeze"]
    with pytest.raises(InvalidArgumentError, match="shipped"):
        load_config("no-such-recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: rd\nmodel: {name: mbt2018-mean, quality: 1}\nloss: {rate: {}}\noptimizer: {}\n")
    with pytest.raises(InvalidArgumentError, match="unknown config sections"):
        load_config(str(bad))
    bad.write_text("kind: magic\nmodel: {name: mbt2018-mean}\nloss: {rate: {}}\n")
    with pytest.raises(InvalidArgumentError, match="kind 'magic'"):
        load_config(str(bad))


def test_list_configs_via_cli(capsys):
    assert main(["train", "--list"]) == 0
    text = capsys.readouterr().out
    assert "rdc-versatile-stage1" in text and "hevrc-stage3" in text and "baseline-mbt2018-mean" in text


def test_resume_uses_the_runs_own_config_and_records_changes(tiny_data, tmp_path, capsys):
    import yaml

    out = tmp_path / "run"
    assert main(tiny_args("rdc-versatile-stage1", out, tiny_data, 2)) == 0
    text = capsys.readouterr().out
    assert "rdc-versatile-stage1 (rdc-primary): new run, until step 2" in text
    assert f"data       {tiny_data}: 3 images; crop 64, batch 2" in text
    assert "device     cpu" in text and "bf16 " in text and f"output     {out}/" in text
    first = yaml.safe_load((out / "config.yaml").read_text())
    assert first["data"]["train"] == str(tiny_data)  # the data path is recorded

    # resume names no recipe: the run's config.yaml is used (the shipped recipe would say batch 32, crop 256)
    argv = ["train", "--out", str(out), "--resume", "--device", "cpu", "--max-steps", "3", "--no-progress"]
    assert main(argv) == 0
    assert "changed settings" not in capsys.readouterr().out
    assert _ckpt(out)["config"]["data"]["batch_size"] == 2 and not list(out.glob("config.step*.yaml"))

    # a --set on resume is applied, printed and recorded; the old config is kept
    assert main(argv[:-2] + ["4", "--no-progress", "--set", "data.batch_size=3", "rdc-versatile-stage2"]) == 0
    text = capsys.readouterr().out
    assert "is not read" in text and "resume at step 3 with changed settings: data.batch_size: 2 -> 3" in text
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["batch_size"] == 3
    assert yaml.safe_load((out / "config.step3.yaml").read_text())["data"]["batch_size"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 3 and summary["changed_on_resume"] == ["data.batch_size: 2 -> 3"]
    assert _ckpt(out)["config"]["data"]["batch_size"] == 3


def test_resume_with_a_longer_schedule_moves_the_lr_drop(tiny_data, tmp_path):
    """``--set optim.steps=…`` on resume (extending a finished schedule) re-derives the
    milestones and the learning rate at the resumed step; the checkpoint's scheduler
    alone would keep the old drop step."""
    out = tmp_path / "run"
    sched = ["--set", "optim.milestones=[0.5]", "--set", "optim.lr=0.001"]
    assert main(tiny_args("rdc-versatile-stage1", out, tiny_data, 2, "--set", "optim.steps=4", *sched)) == 0
    ck = _ckpt(out)
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # dropped at step 2 of 4
    resume = ["train", "--out", str(out), "--resume", "--device", "cpu", "--no-progress", "--set", "optim.steps=8", "--max-steps"]
    assert main(resume + ["3"]) == 0
    ck = _ckpt(out)
    assert dict(ck["scheduler"]["milestones"]) == {4: 1}
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)  # step 3 < the new drop at 4
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu", "--no-progress", "--max-steps", "5"]) == 0
    assert _ckpt(out)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_an_existing_export_path_is_refused_before_training(tiny_data, tmp_path, capsys):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"keep")
    assert main(tiny_args("rdc-versatile-stage1", tmp_path / "r", tiny_data, 2, "--export", str(w))) != 0
    assert f"--export {str(w)!r} exists" in capsys.readouterr().err
    assert w.read_bytes() == b"keep" and not (tmp_path / "r").exists()  # no step was trained


def test_a_started_run_folder_is_never_overwritten(tiny_data, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.yaml").write_text("name: keep\n")
    assert main(tiny_args("baseline-mbt2018-mean", out, tiny_data, 1)) == 2
    assert "config.yaml' exists" in capsys.readouterr().err and (out / "config.yaml").read_text() == "name: keep\n"


def test_progress_bar_fields():
    from compressai_rdc.training.trainer import progress_fields

    logs = {"loss": torch.tensor(1.23456), "rate": torch.tensor(0.25), "res_rate": torch.tensor(0.125), "mse": torch.tensor(80.0),
            "mse.psnr": torch.tensor(28.456)}
    assert progress_fields(logs, ["rate", "res_rate"]) == {"loss": "1.235", "bpp": "0.375", "psnr": "28.46"}
    assert progress_fields({"loss": torch.tensor(2.0), "x.bpp": torch.tensor(0.5)}) == {"loss": "2", "bpp": "0.500"}
    assert progress_fields({"loss": torch.tensor(2.0)}) == {"loss": "2"}
