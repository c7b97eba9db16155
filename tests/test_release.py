"""Release training: schedules that continue across chunks and machines, the ledger, the manifest."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.training import release
from compressai_rdc.training.recipes import load_config
from compressai_rdc.training.release import (
    PLANS,
    Position,
    ReleasePlan,
    Stage,
    append_ledger,
    beta0_margin,
    interpolate_at,
    is_better,
    ledger_row,
    objective_pair,
    summarize,
    where_it_stands,
)
from compressai_rdc.training.trainer import Trainer, cpu_supports_bf16, data_phases

TINY = ["model.kwargs={N: 8, M: 8, residual_N: 8, residual_M: 8}", "log.every=1", "log.checkpoint_every=0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from compressai_rdc.data import save_image

    root = tmp_path_factory.mktemp("train")
    for i in range(3):
        save_image(torch.rand(3, 80, 96), root / f"img{i}.png")
    return root


# -- data phases and schedules that continue ------------------------------------------------------
def test_data_phases_switch_crop_and_batch_at_a_fraction_or_a_step():
    data = {"crop": 128, "batch_size": 8, "schedule": [{"from": 0.9, "crop": 256}, {"from": 50, "crop": 192, "batch_size": 4}]}
    assert data_phases(data, 1000) == [(0, 128, 8), (50, 192, 4), (900, 256, 4)]
    with pytest.raises(InvalidArgumentError, match=r"data.schedule\[0\]"):
        data_phases({"crop": 128, "batch_size": 8, "schedule": [{"crop": 256}]}, 100)
    with pytest.raises(InvalidArgumentError, match="crop >= 16"):
        data_phases({"crop": 128, "batch_size": 8, "schedule": [{"from": 0.5, "crop": 8}]}, 100)


def test_stage0_recipe_is_mostly_128_with_the_last_tenth_at_256():
    cfg = load_config("rdc-versatile-stage0")
    steps = cfg["optim"]["steps"]
    phases = data_phases(cfg["data"], steps)
    assert phases == [(0, 128, 8), (round(0.9 * steps), 256, 8)]
    assert cfg["optim"]["milestones"] == [0.9] and cfg["optim"]["gamma"] == 0.1  # ×0.1 for the last ~10 %
    assert set(cfg["loss"]) == {"rate", "mse"} and cfg["freeze"] == ["residual"]


def test_trainer_uses_each_phase_crop(tiny_data, tmp_path):
    # fp32: the 8-channel model's first gradients can overflow in bf16 (on CPUs with native bf16, `auto`)
    cfg = load_config("rdc-versatile-stage0", TINY + [f"data.train={tiny_data}", "data.crop=32", "optim.steps=4",
                                                      "data.schedule=[{from: 2, crop: 64, batch_size: 1}]", "speed.bf16=false"])
    t = Trainer(cfg, tmp_path, device="cpu", progress=False)
    seen = []
    t.forward = lambda x, **kw: (seen.append(tuple(x.shape)), t.model(x, **kw))[1]
    t.fit(max_steps=4)
    assert seen == [(8, 3, 32, 32)] * 2 + [(1, 3, 64, 64)] * 2


def test_start_step_continues_the_lr_schedule(tiny_data, tmp_path):
    cfg = load_config("rdc-versatile-stage0", TINY + [f"data.train={tiny_data}", "optim.steps=10"])
    t = Trainer(cfg, tmp_path, device="cpu", start_step=9, progress=False)
    assert t.step == 9
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # past the 0.9 milestone: ×0.1
    assert t.phase(t.step) == (256, 8)
    with pytest.raises(InvalidArgumentError, match="start_step=11"):
        Trainer(cfg, tmp_path / "b", device="cpu", start_step=11, progress=False)


def test_start_step_counts_an_exports_lineage_once(tiny_data, tmp_path):
    """A stage continued from its own export at step N (no checkpoint) already holds steps
    0 → N in that export's lineage: the next export adds only the steps after N."""
    from safetensors import safe_open

    cfg = load_config("rdc-versatile-stage0", TINY + [f"data.train={tiny_data}", "optim.steps=4", "data.crop=32",
                                                      "data.batch_size=2", "speed.bf16=false"])
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    first = Trainer(cfg, tmp_path / "r1", device="cpu", progress=False)
    first.fit(max_steps=2)
    first.export(a)
    second = Trainer(cfg, tmp_path / "r2", device="cpu", init_weights=str(a), start_step=2, progress=False)
    second.fit(max_steps=4)
    second.export(b)
    with safe_open(str(b), "pt") as f:
        meta = f.metadata()
    assert (meta["run_images"], meta["lineage_images"]) == ("8", "8")  # 2 × 2 before the export, 2 × 2 after


def test_cpu_bf16_probe_agrees_with_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    has = " avx512_bf16" in flags or " amx_bf16" in flags
    if not flags:
        pytest.skip("no /proc/cpuinfo on this system")
    assert cpu_supports_bf16() == has


# -- where the plan stands ----------------------------------------------------------------------------
def _plan(tmp_path) -> ReleasePlan:
    return PLANS["rdc-versatile"]


def test_release_plan_stages_are_shipped_recipes():
    for plan in PLANS.values():
        for s in plan.stages:
            cfg = load_config(s.config, s.overrides)
            assert cfg["model"]["name"] == plan.recipe_model
    names = [s.name for s in PLANS["rdc-versatile"].stages]
    assert names == ["stage0", "stage1", "stage2"]


def test_the_baseline_plan_has_stage0s_budget():
    """The same-budget baseline: stage 0's crops, batch, steps and schedule, on CompressAI's mbt2018-mean."""
    base = load_config(PLANS["mbt2018-mean-baseline"].stages[0].config)
    stage0 = load_config(PLANS["rdc-versatile"].stages[0].config)
    assert base["model"]["name"] == "mbt2018-mean" and base["kind"] == "rd"
    assert base["data"]["crop"] == stage0["data"]["crop"] and base["data"]["batch_size"] == stage0["data"]["batch_size"]
    assert base["data"]["schedule"] == stage0["data"]["schedule"]
    for key in ("lr", "steps", "milestones", "gamma"):
        assert base["optim"][key] == stage0["optim"][key], key
    plan = PLANS["mbt2018-mean-baseline"]
    assert release.weights_dir(plan) == Path(release.__file__).resolve().parents[2] / "benchmarks" / "weights"
    assert release.weights_dir(PLANS["rdc-versatile"]) == release.weights_dir()  # the zoo model ships into the package


def test_where_it_stands(tmp_path):
    plan = PLANS["rdc-versatile"]
    total0 = load_config("rdc-versatile-stage0")["optim"]["steps"]
    assert where_it_stands(plan, tmp_path, {}) == Position(0, 0, "scratch")
    legacy = {"rdc-versatile": {"stage": "preliminary-stage1", "step": 2281, "file": "x.safetensors"}}
    assert where_it_stands(plan, tmp_path, legacy).source == "scratch"  # weights from outside the plan
    mid = {"rdc-versatile": {"stage": "stage0", "step": 1234, "file": "w.safetensors"}}
    pos = where_it_stands(plan, tmp_path, mid)
    assert (pos.stage, pos.step, pos.source, pos.init.name) == (0, 1234, "shipped", "w.safetensors")
    done = {"rdc-versatile": {"stage": "stage0", "step": total0, "file": "w.safetensors"}}
    assert (where_it_stands(plan, tmp_path, done).stage, where_it_stands(plan, tmp_path, done).step) == (1, 0)
    # a local checkpoint wins over the manifest
    run = tmp_path / "rdc-versatile-stage1"
    run.mkdir()
    torch.save({"step": 77}, run / "checkpoint.pt")
    assert where_it_stands(plan, tmp_path, mid) == Position(1, 77, "checkpoint")


# -- evaluation summary, comparison, ledger --------------------------------------------------------
def test_interpolate_at_is_linear_in_log_bpp():
    pts = [(0.1, 20.0), (0.4, 30.0)]
    assert interpolate_at(pts, 0.2) == pytest.approx(25.0)  # log-midpoint of 0.1 and 0.4
    assert interpolate_at(pts, 0.4) == pytest.approx(30.0)
    assert interpolate_at(pts, 0.5) is None and interpolate_at(pts, 0.05) is None
    assert interpolate_at([(0.2, 1.0)], 0.2) is None


def test_summarize_reads_the_eval_csv(tmp_path):
    rows = [
        {"dataset": "kodak", "codec": "beta1", "rate": 0, "bpp": 0.2, "psnr-rgb": 26.0, "top-1": ""},
        {"dataset": "kodak", "codec": "beta1", "rate": 3, "bpp": 0.8, "psnr-rgb": 30.0, "top-1": ""},
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 0, "bpp": 0.1, "psnr-rgb": 25.0, "top-1": 40.0},
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 3, "bpp": 0.2, "psnr-rgb": 28.0, "top-1": 60.0},
        {"dataset": "imagenet-dev-mobilenetv2", "codec": "beta1", "rate": 0, "bpp": 0.1, "psnr-rgb": 25.0, "top-1": 30.0},
        {"dataset": "imagenet-dev-mobilenetv2", "codec": "beta1", "rate": 3, "bpp": 0.2, "psnr-rgb": 28.0, "top-1": 50.0},
    ]
    path = tmp_path / "results.csv"
    _write_results(path, rows)
    s = summarize(path)
    assert s["kodak_psnr_beta1"] == pytest.approx(28.0)  # 0.4 is the log-midpoint of 0.2 and 0.8
    assert s["kodak_psnr_beta0"] is None
    assert s["imagenet_top1_beta1"] == pytest.approx(40 + 20 * (torch.tensor(1.5).log() / torch.tensor(2.0).log()).item(), abs=1e-3)
    assert s["imagenet_top1_beta1_mobilenetv2"] == pytest.approx(s["imagenet_top1_beta1"] - 10, abs=1e-3)
    assert s["curves"]["imagenet-dev-mobilenetv2/beta1"] == [(0.0, 0.1, 30.0), (3.0, 0.2, 50.0)]


def test_compare_prints_each_evaluation_at_equal_rate(tmp_path, capsys):
    from compressai_rdc.cli import main

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_results(a, [
        {"dataset": "kodak", "codec": "beta1", "rate": 0, "bpp": 0.2, "psnr-rgb": 26.0, "top-1": ""},
        {"dataset": "kodak", "codec": "beta1", "rate": 3, "bpp": 0.8, "psnr-rgb": 30.0, "top-1": ""},
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 0, "bpp": 0.1, "psnr-rgb": 25.0, "top-1": 40.0},
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 3, "bpp": 0.4, "psnr-rgb": 28.0, "top-1": 60.0},
        {"dataset": "imagenet-dev", "codec": "beta0", "rate": 3, "bpp": 0.5, "psnr-rgb": 29.0, "top-1": 99.0},
    ])
    _write_results(b, [
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 0, "bpp": 0.25, "psnr-rgb": 25.0, "top-1": 50.0},
        {"dataset": "imagenet-dev", "codec": "beta1", "rate": 3, "bpp": 1.0, "psnr-rgb": 28.0, "top-1": 70.0},
    ])
    assert main(["release", "rdc-versatile", "--compare", f"a={a}", "--compare", f"b={b}", "--at", "0.2,0.4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| dataset | bpp | a | b |"
    assert lines[2:] == [
        "| imagenet-dev | 0.2 | 50.0 | – |",  # log-midpoint of 0.1 and 0.4; b starts at 0.25
        "| imagenet-dev | 0.4 | 60.0 | 56.8 |",  # b: 50 + 20·log(1.6)/log(4)
        "| kodak | 0.2 | 26.00 | – |",
        "| kodak | 0.4 | 28.00 | – |",
    ]
    with pytest.raises(InvalidArgumentError, match="no curve of codec 'beta0'"):
        release.equal_rate_table({"b": b}, [0.2], codec="beta0")
    with pytest.raises(InvalidArgumentError, match="no such results.csv"):
        release.equal_rate_table({"c": tmp_path / "c.csv"}, [0.2])
    assert main(["release", "rdc-versatile", "--compare", str(a)]) != 0
    assert "--compare takes LABEL=RESULTS_CSV" in capsys.readouterr().err
    assert main(["release", "rdc-versatile", "--compare", f"a={a}", "--at", "0,0.2"]) != 0
    assert "must be > 0, got [0.0, 0.2]" in capsys.readouterr().err


def _write_results(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_the_baseline_summary_is_its_one_rate_point_and_its_rd_cost(tmp_path):
    rows = [
        {"dataset": "kodak", "codec": "same-budget", "rate": 0, "bpp": 0.41, "psnr-rgb": 30.0, "top-1": ""},
        {"dataset": "imagenet-dev", "codec": "same-budget", "rate": 0, "bpp": 0.52, "psnr-rgb": 29.0, "top-1": 70.4},
        {"dataset": "imagenet-dev-mobilenetv2", "codec": "same-budget", "rate": 0, "bpp": 0.52, "psnr-rgb": 29.0, "top-1": 61.2},
    ]
    path = tmp_path / "results.csv"
    _write_results(path, rows)
    plan = PLANS["mbt2018-mean-baseline"]
    s = summarize(path, plan)
    assert (s["kodak_bpp"], s["kodak_psnr"], s["imagenet_bpp"], s["imagenet_top1"], s["imagenet_mobilenetv2_top1"]) == (
        0.41, 30.0, 0.52, 70.4, 61.2)
    # bpp + λ·255²·MSE with λ = 0.0067 and MSE = 10^-3 (30 dB)
    assert s["kodak_rd_cost"] == pytest.approx(0.41 + 0.0067 * 65.025, abs=1e-4)
    _write_results(path, rows + [dict(rows[0], rate=1, bpp=0.6)])
    with pytest.raises(release.RDCError, match="2 rate points on kodak"):
        summarize(path, plan)
    argv = release.eval_argv(tmp_path / "w.safetensors", tmp_path, tmp_path / "out", residual=False, plan=plan)
    assert argv[argv.index("--compressai") + 1] == f"mbt2018-mean:checkpoint={tmp_path / 'w.safetensors'},name=same-budget"
    assert "--model" not in argv


def test_eval_argv_adds_the_second_classifier_only_when_its_file_is_there(tmp_path):
    from compressai_rdc.training.release import SECOND_CLASSIFIER, eval_argv

    label, classifier, file = SECOND_CLASSIFIER
    argv = eval_argv(tmp_path / "w.safetensors", tmp_path, tmp_path / "out", residual=False)
    assert not any(a.startswith(label) for a in argv)
    (tmp_path / file).parent.mkdir(parents=True)
    (tmp_path / file).write_bytes(b"")
    argv = eval_argv(tmp_path / "w.safetensors", tmp_path, tmp_path / "out", residual=False)
    datasets = [argv[i + 1] for i, a in enumerate(argv) if a == "--dataset"]
    assert datasets == [
        f"kodak={tmp_path / 'kodak'}",
        f"imagenet-dev={tmp_path / 'imagenet-dev'}",
        f"{label}={tmp_path / 'imagenet-dev'}:model={classifier},weights={tmp_path / file}",
    ]


def test_is_better_by_stage_objective():
    plan = PLANS["rdc-versatile"]
    s0, s1 = plan.stages[0], plan.stages[1]
    shipped = {"stage": "stage0", "eval": {"kodak_psnr_beta1": 27.0}}
    assert is_better({"kodak_psnr_beta1": 27.5}, shipped, s0, "stage0", plan)
    assert not is_better({"kodak_psnr_beta1": 26.5}, shipped, s0, "stage0", plan)
    assert not is_better({"kodak_psnr_beta1": None}, shipped, s0, "stage0", plan)
    assert is_better({"imagenet_top1_beta1": 1.0}, shipped, s1, "stage0", plan)  # further along the plan
    # a restarted lineage's stage I never replaces a shipped stage II, however good its top-1
    assert not is_better({"imagenet_top1_beta1": 90.0}, {"stage": "stage2", "eval": {"imagenet_top1_beta1": 26.0}}, s1, "stage2", plan)
    assert is_better({"kodak_psnr_beta1": 20.0}, {"stage": "preliminary-stage1"}, s0, "preliminary-stage1", plan)
    base = PLANS["mbt2018-mean-baseline"]  # a cost: lower is better
    shipped = {"stage": "stage0", "eval": {"kodak_rd_cost": 0.9}}
    assert is_better({"kodak_rd_cost": 0.85}, shipped, base.stages[0], "stage0", base)
    assert not is_better({"kodak_rd_cost": 0.95}, shipped, base.stages[0], "stage0", base)


def test_is_better_same_stage_rerun_trades_within_bars():
    """Stage II rerun on another stage I: the Kodak β = 0 objective may fall while it
    still meets its bar when cognition (a guard) wins; a guard lost below its bar vetoes."""
    plan = PLANS["rdc-versatile"]
    s2 = plan.stages[2]
    assert s2.guards == ("imagenet_top1_beta1",) and plan.bars["kodak_psnr_beta0"] == 29.0
    shipped = {"stage": "stage2", "eval": {"kodak_psnr_beta0": 29.11, "imagenet_top1_beta1": 26.0}}
    assert is_better({"kodak_psnr_beta0": 29.05, "imagenet_top1_beta1": 33.0}, shipped, s2, "stage2", plan)
    assert not is_better({"kodak_psnr_beta0": 28.90, "imagenet_top1_beta1": 33.0}, shipped, s2, "stage2", plan)  # below the bar
    assert not is_better({"kodak_psnr_beta0": 29.30, "imagenet_top1_beta1": 20.0}, shipped, s2, "stage2", plan)  # guard lost
    assert is_better({"kodak_psnr_beta0": 29.30, "imagenet_top1_beta1": 26.0}, shipped, s2, "stage2", plan)
    assert not is_better({"kodak_psnr_beta0": 29.11, "imagenet_top1_beta1": 26.0}, shipped, s2, "stage2", plan)  # no win
    # a guard the shipped weights never measured is not compared
    assert is_better({"kodak_psnr_beta0": 29.2, "imagenet_top1_beta1": 1.0}, {"stage": "stage2", "eval": {"kodak_psnr_beta0": 29.1}},
                     s2, "stage2", plan)


def test_objective_compared_at_lowest_common_rate_when_curve_misses_it():
    """Top-1 "at 0.15 bpp" is None for a curve starting at 0.151: both curves are then
    compared at the lowest rate they share, interpolated in log-bpp."""
    cand = {"imagenet_top1_beta1": 30.0, "points": {"imagenet_top1_beta1": [[0.10, 20.0], [0.20, 40.0]]}}
    old = {"imagenet_top1_beta1": None, "points": {"imagenet_top1_beta1": [[0.16, 26.0], [0.32, 50.0]]}}
    new_v, old_v = objective_pair("imagenet_top1_beta1", cand, old)
    assert old_v == pytest.approx(26.0)
    assert new_v == pytest.approx(20.0 + 20.0 * math.log(0.16 / 0.10) / math.log(2.0))  # 33.56 at 0.16 bpp
    plan = PLANS["rdc-versatile"]
    assert is_better(cand, {"stage": "stage1", "eval": old}, plan.stages[1], "stage1", plan)
    worse = {"imagenet_top1_beta1": None, "points": {"imagenet_top1_beta1": [[0.16, 20.0], [0.30, 30.0]]}}
    assert not is_better(worse, {"stage": "stage1", "eval": old}, plan.stages[1], "stage1", plan)
    # disjoint curves: nothing to compare, the candidate's missing objective loses
    far = {"imagenet_top1_beta1": None, "points": {"imagenet_top1_beta1": [[0.5, 80.0], [0.9, 85.0]]}}
    assert objective_pair("imagenet_top1_beta1", far, {"points": {"imagenet_top1_beta1": [[0.1, 1.0], [0.2, 2.0]]}}) == (None, None)


def test_ledger_row_shows_lowest_point_when_curve_misses_the_rate():
    row = {"date": "2026-12-01", "device": "cpu", "minutes": 10.0, "stage": "stage2", "step_from": 0, "step_to": 5, "images": 40,
           "shipped": False,
           "eval": {"kodak_psnr_beta1": 28.45, "kodak_psnr_beta0": 29.11, "imagenet_top1_beta1": None,
                    "points": {"imagenet_top1_beta1": [[0.151, 26.0], [0.251, 48.0]]}}}
    assert ledger_row(row).endswith("| 28.45 dB / 29.11 dB | — (26.00 % @0.151) | no |")


def test_restart_moves_the_stage_and_the_later_ones_aside(tmp_path, capsys):
    """``release --restart stage1 --init-weights FILE`` (a recipe change at stage I): the
    stage's and later stages' run folders and exports move to runs/replaced/, earlier
    stages stay, and the stage starts at step 0 from FILE."""
    plan = PLANS["rdc-versatile"]
    runs = tmp_path / "runs"
    for st in ("stage0", "stage1", "stage2"):
        (runs / f"rdc-versatile-{st}").mkdir(parents=True)
        (runs / f"rdc-versatile-{st}" / "checkpoint.pt").write_bytes(st.encode())
    (runs / "rdc-versatile-stage2.export.safetensors").write_bytes(b"export")
    init = tmp_path / "stage0.safetensors"
    init.write_bytes(b"w")
    with pytest.raises(InvalidArgumentError, match="needs the weights it starts from .*export of stage0"):
        release.restart_at(plan, runs, "stage1", None)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        release.restart_at(plan, runs, "stage1", tmp_path / "missing.safetensors")
    with pytest.raises(InvalidArgumentError, match="not in the rdc-versatile plan"):
        release.restart_at(plan, runs, "stage9", init)
    assert len(list(runs.iterdir())) == 4  # refused calls move nothing
    pos = release.restart_at(plan, runs, "stage1", init)
    assert (pos.stage, pos.step, pos.source, pos.init) == (1, 0, "restart", init)
    assert pos.describe(plan) == "stage1 restarted from stage0.safetensors"
    assert (runs / "rdc-versatile-stage0" / "checkpoint.pt").read_bytes() == b"stage0"
    moved = sorted(p.name for p in (runs / "replaced").iterdir())
    assert [m.rsplit("-", 2)[0] for m in moved] == ["rdc-versatile-stage1", "rdc-versatile-stage2", "rdc-versatile-stage2.export.safetensors"]
    assert (runs / "replaced" / moved[0] / "checkpoint.pt").read_bytes() == b"stage1"
    assert "moved" in capsys.readouterr().out
    assert release.restart_at(plan, runs, "stage0", None).init is None  # the first stage may start from scratch


def test_init_weights_only_with_restart(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    with pytest.raises(InvalidArgumentError, match="only for --restart"):
        release.continue_release("rdc-versatile", 30.0, runs=tmp_path / "runs", data=tmp_path, init_weights=tmp_path / "w.safetensors")
    from compressai_rdc.cli import main

    assert main(["release", "rdc-versatile", "--status", "--restart", "stage1"]) != 0
    assert "--restart / --init-weights start a training chunk: not with --status or --adopt" in capsys.readouterr().err


def test_ledger_rows_append_between_markers(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nIntro.\n")
    row = {"date": "2026-11-30", "device": "cpu", "minutes": 95.2, "stage": "stage0", "step_from": 0, "step_to": 7000,
           "images": 56000, "eval": {"kodak_psnr_beta1": 27.123, "imagenet_top1_beta1": 51.2}, "shipped": True}
    append_ledger(doc, row)
    append_ledger(doc, dict(row, step_from=7000, step_to=9000, shipped=False))
    text = doc.read_text()
    assert text.startswith("# Results\n\nIntro.\n")
    table = text.split(release.LEDGER_START)[1].split(release.LEDGER_END)[0].strip().splitlines()
    assert len(table) == 4  # header, rule, two rows
    assert table[2] == "| 2026-11-30 | cpu | 95 | stage0 | 0→7000 | 56,000 | 27.12 dB / — | 51.20 % | yes |"
    assert table[3].endswith("| 7000→9000 | 56,000 | 27.12 dB / — | 51.20 % | no |")
    # another plan's rows go to a table of their own, which its chunks continue from
    base = PLANS["mbt2018-mean-baseline"]
    brow = dict(row, step_from=0, step_to=3000, eval={"kodak_bpp": 0.5, "kodak_psnr": 26.42, "imagenet_bpp": 0.61,
                                                     "imagenet_top1": 55.2, "imagenet_mobilenetv2_top1": None, "kodak_rd_cost": 1.45})
    append_ledger(doc, brow, base)
    text = doc.read_text()
    assert text.split(release.LEDGER_START)[1].split(release.LEDGER_END)[0].strip().splitlines() == table
    start, end = release.ledger_markers(base)
    assert "## Training ledger: mbt2018-mean-baseline" in text and text.index(start) > text.index(release.LEDGER_END)
    btable = text.split(start)[1].split(end)[0].strip().splitlines()
    assert btable[2] == "| 2026-11-30 | cpu | 95 | stage0 | 0→3000 | 56,000 | 0.500 / 26.42 dB | 0.610 / 55.20 % / — | 1.4500 | yes |"
    assert release.ledger_step(doc, "stage0", base) == 3000 and release.ledger_step(doc, "stage0") == 9000


def test_a_chunk_continues_the_ledger_from_its_last_recorded_step(tmp_path):
    """Steps that ran after the ledger's last row without a row of their own (a chunk
    stopped before its evaluation) belong to the next row: its start step is the
    ledger's, and log.csv gives the training seconds they took."""
    doc = tmp_path / "results.md"
    row = {"date": "2026-11-30", "device": "cpu", "minutes": 89, "stage": "stage0", "step_from": 0, "step_to": 1651,
           "images": 13208, "eval": {}, "shipped": True}
    assert release.ledger_step(doc, "stage0") is None  # no ledger yet
    append_ledger(doc, row)
    append_ledger(doc, dict(row, stage="stage0 0→24000 + stage1-fm", step_from=0, step_to=40))
    # the second row's chunk finished stage0 on its way: its label records stage0's last step
    assert release.ledger_step(doc, "stage0") == 24000
    assert release.ledger_step(doc, "stage1-fm") == 40
    assert release.ledger_steps(doc) == {"stage0": 24000, "stage1-fm": 40}
    assert release.ledger_step(doc, "stage2") is None
    append_ledger(doc, dict(row, stage="stage1 (pixel 0.3) 0→2500 + stage2", step_from=0, step_to=12000))
    assert release.ledger_steps(doc) == {"stage0": 24000, "stage1-fm": 40, "stage1": 2500, "stage2": 12000}
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("step,time_s,lr\n100,76.5,1e-4\n1600,5229.3,1e-4\n1700,5367.1,1e-4\n")
    assert release.log_seconds(run, 1651) == 5229.3
    assert release.log_seconds(run, 99) == 0.0
    assert release.log_seconds(run, 5000) == 5367.1
    assert release.log_seconds(tmp_path / "missing", 10) == 0.0


def test_manifest_is_the_zoo_weights_table():
    from compressai_rdc.zoo._pretrained import sha256_file
    from compressai_rdc.zoo._weights import PRETRAINED

    manifest = release.read_manifest()
    assert set(manifest) == set(PRETRAINED)
    for model, entry in manifest.items():
        spec = PRETRAINED[model][entry.get("metric", "mse")]
        assert (spec.file, spec.sha256) == (entry["file"], entry["sha256"])
        path = release.weights_dir() / entry["file"]
        assert path.is_file() and sha256_file(path) == entry["sha256"]
        shipped = sorted(p.name for p in release.weights_dir().glob(f"{model}-*.safetensors"))
        assert shipped == [entry["file"]]  # the replaced file is gone


def test_the_baseline_ships_outside_the_package_and_its_manifest_names_its_file(capsys):
    from compressai_rdc.cli import main
    from compressai_rdc.zoo._pretrained import sha256_file
    from compressai_rdc.zoo._weights import PRETRAINED

    plan = PLANS["mbt2018-mean-baseline"]
    manifest = release.read_manifest(release.manifest_path(plan))
    if not manifest:
        pytest.skip("no baseline weights in benchmarks/weights/ (no chunk shipped yet)")
    entry = manifest[plan.model]
    path = release.weights_dir(plan) / entry["file"]
    assert path.is_file() and sha256_file(path) == entry["sha256"] and path.stat().st_size < 16 * 2**20
    assert plan.model not in PRETRAINED and plan.model not in release.read_manifest()  # never served by the zoo
    assert main(["release", plan.model, "--status", "--runs", "/nonexistent-runs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{plan.model}: stage0 step {entry['step']} (shipped weights {entry['file']})")


def test_ship_weights_replaces_file_and_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "weights_dir", lambda plan=None: tmp_path)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: tmp_path / "release.json")
    (tmp_path / "rdc-versatile-old.safetensors").write_bytes(b"old")
    from safetensors.torch import save_file

    export = tmp_path / "export.safetensors"
    save_file({"a": torch.ones(2)}, str(export))  # no lineage metadata (an older trainer's export)
    new_bytes = export.read_bytes()
    manifest = {"rdc-versatile": {"file": "rdc-versatile-old.safetensors", "stage": "stage0", "images": 100}}
    plan = PLANS["rdc-versatile"]
    report = release.ChunkReport("x", "stage0", 0, 10, 80, 1.0, export, eval={"kodak_psnr_beta1": 27.0, "curves": {}},
                                 eval_command="compressai-rdc eval --dataset m=/d:model=mobilenetv2_100,weights=/c/mnv2.safetensors "
                                              "--model rdc-versatile:weights=/tmp/a.safetensors,rate=0 --model rdc-versatile:name=b,weights=/tmp/a.safetensors --threads 2")
    dest = release.ship_weights(plan, plan.stages[0], export, 10, report, manifest)
    assert dest.read_bytes() == new_bytes and not (tmp_path / "rdc-versatile-old.safetensors").exists()
    saved = json.loads((tmp_path / "release.json").read_text())["rdc-versatile"]
    # without lineage in the export: the shipped weights' 100 images plus the chunk's 80
    assert saved["file"] == dest.name and saved["step"] == 10 and saved["images"] == 180 and saved["beta"] == 1.0
    assert saved["eval"] == {"kodak_psnr_beta1": 27.0}
    assert saved["eval_command"] == ("compressai-rdc eval --dataset m=/d:model=mobilenetv2_100,weights=/c/mnv2.safetensors "
                                     "--model rdc-versatile:weights=<file>,rate=0 --model rdc-versatile:name=b,weights=<file> --threads 2")


def test_release_status_command(capsys):
    from compressai_rdc.cli import main

    assert main(["release", "rdc-versatile", "--status", "--runs", "/nonexistent-runs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rdc-versatile: stage")
    with pytest.raises(InvalidArgumentError, match="no release plan"):
        release.plan_for("hevrc-unknown")


def _release_data(tmp_path: Path, steps: int):
    """A tiny data folder (train/, kodak/, imagenet-dev/) and config overrides for ``steps`` steps on it."""
    from compressai_rdc.data import save_image

    data = tmp_path / "data"
    for i in range(2):
        save_image(torch.rand(3, 96, 128), data / "train" / f"t{i}.png")
        save_image(torch.rand(3, 64, 64), data / "kodak" / f"kodim0{i + 1}.png")
        save_image(torch.rand(3, 64, 64), data / "imagenet-dev" / f"000{i}_n0144076{i}.png")
    return data, ("data.crop=64", "data.batch_size=2", "data.schedule=[]", f"optim.steps={steps}", "log.every=1",
                  "log.checkpoint_every=0")


@pytest.mark.slow
def test_continue_release_trains_every_stage_evaluates_ships_and_writes_the_ledger(tmp_path, monkeypatch):
    """The whole command on tiny data: stage 0 → I → II in one call (3 steps each), export, the
    ledger's evaluation through ``compressai-rdc eval``, shipping into a temporary manifest, then a
    second call that finds the plan finished and continues from the local checkpoint."""
    data, small = _release_data(tmp_path, steps=3)
    plan = PLANS["rdc-versatile"]
    tiny = ReleasePlan(plan.model, tuple(Stage(s.name, s.config, s.objective, s.residual, small) for s in plan.stages))
    monkeypatch.setitem(release.PLANS, "rdc-versatile", tiny)
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(release, "weights_dir", lambda plan=None: weights)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: weights / "release.json")
    monkeypatch.setattr(release, "EVAL_RATES", (0, 7))
    ledger = tmp_path / "results.md"
    report = release.continue_release("rdc-versatile", 30.0, runs=tmp_path / "runs", data=data, eval_minutes=5.0,
                                      ship=True, ledger=ledger, min_stage_s=0.0)
    assert report.stage == "stage0 0→3 + stage1 0→3 + stage2" and (report.step_from, report.step_to) == (0, 3)
    assert report.images == 3 * 3 * 2
    for s in ("stage0", "stage1", "stage2"):
        assert (tmp_path / "runs" / f"rdc-versatile-{s}.export.safetensors").is_file()
    ev = report.eval
    assert set(ev["curves"]) == {"kodak/beta1", "kodak/beta0", "imagenet-dev/beta1", "imagenet-dev/beta0"}
    kodak_b1 = ev["curves"]["kodak/beta1"]
    assert [r for r, _, _ in kodak_b1] == [0.0, 7.0] and kodak_b1[0][1] < kodak_b1[1][1]  # rate grows with the level
    assert report.shipped  # nothing was shipped before
    entry = json.loads((weights / "release.json").read_text())["rdc-versatile"]
    assert entry["stage"] == "stage2" and entry["step"] == 3 and entry["beta"] == 0.0
    assert (weights / entry["file"]).is_file()
    rows = ledger.read_text().split(release.LEDGER_START)[1].split(release.LEDGER_END)[0].strip().splitlines()
    assert len(rows) == 3 and "| stage0 0→3 + stage1 0→3 + stage2 | 0→3 | 18 |" in rows[2]
    # the plan is finished and the checkpoint is local: the next call resumes stage II at its last step
    pos = where_it_stands(release.PLANS["rdc-versatile"], tmp_path / "runs")
    assert (pos.stage, pos.step, pos.source) == (2, 3, "checkpoint")
    # an export from elsewhere (a GPU chunk) is adopted from its metadata: same evaluation, not better → not shipped
    adopted = release.adopt("rdc-versatile", tmp_path / "runs" / "rdc-versatile-stage2.export.safetensors", data=data,
                            runs=tmp_path / "runs", ship=True, ledger=ledger)
    assert (adopted.stage, adopted.step_to, adopted.images) == ("stage2", 3, 18)
    assert adopted.eval["kodak_psnr_beta0"] == ev["kodak_psnr_beta0"] and not adopted.shipped
    assert ledger.read_text().count("| stage2 | 0→3 |") == 1


@pytest.mark.slow
def test_the_baseline_plan_continues_a_run_begun_outside_release_evaluates_and_ships_to_its_home(tmp_path, monkeypatch):
    """``release mbt2018-mean-baseline`` on tiny data: a run folder begun with plain ``train``
    (2 steps) is continued to the end (4 steps), its one rate point evaluated through
    ``--compressai``, shipped into the plan's own home and recorded in its own ledger table
    with all 4 steps (none had a row)."""
    data, small = _release_data(tmp_path, steps=4)
    plan = PLANS["mbt2018-mean-baseline"]
    stage = plan.stages[0]
    tiny = ReleasePlan(plan.model, (Stage(stage.name, stage.config, stage.objective, overrides=small, minimize=True),),
                       arch=plan.arch, home=plan.home, evaluation=plan.evaluation)
    monkeypatch.setitem(release.PLANS, plan.model, tiny)
    home = tmp_path / "home"
    monkeypatch.setattr(release, "weights_dir", lambda plan=None: home)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: home / "release.json")
    cfg = load_config(stage.config, small)
    cfg["data"]["train"] = str(data / "train")
    runs = tmp_path / "runs"
    Trainer(cfg, runs / "mbt2018-mean-baseline-stage0", device="cpu", progress=False).fit(max_steps=2)
    ledger = tmp_path / "results.md"
    ledger.write_text("# Results\n")
    report = release.continue_release(plan.model, 30.0, runs=runs, data=data, eval_minutes=5.0, ship=True, ledger=ledger)
    assert (report.stage, report.step_from, report.step_to, report.images) == ("stage0", 0, 4, 8)
    ev = report.eval
    assert set(ev["curves"]) == {"kodak/same-budget", "imagenet-dev/same-budget"}
    assert ev["kodak_bpp"] == pytest.approx(ev["curves"]["kodak/same-budget"][0][1], abs=1e-4) and ev["kodak_bpp"] > 0
    assert ev["kodak_rd_cost"] > ev["kodak_bpp"] and ev["imagenet_mobilenetv2_top1"] is None
    entry = json.loads((home / "release.json").read_text())[plan.model]
    assert report.shipped and entry["stage"] == "stage0" and entry["step"] == 4 and (home / entry["file"]).is_file()
    assert "beta" not in entry  # mbt2018-mean has no residual branch to decode at a β
    assert entry["eval_command"].count("checkpoint=<file>") == 1
    start, end = release.ledger_markers(tiny)
    rows = ledger.read_text().split(start)[1].split(end)[0].strip().splitlines()
    assert len(rows) == 3 and " | cpu | " in rows[2]
    assert "| stage0 | 0→4 | 8 |" in rows[2] and release.LEDGER_START not in ledger.read_text()


def test_a_sigterm_stops_the_chunk_without_evaluation_and_leaves_the_handler_as_it_was(tmp_path, monkeypatch, capsys):
    """SIGTERM (a scheduler, a session ending) during training: the step finishes, the checkpoint
    and the export are written, and ``release`` returns at once — no next stage, no evaluation
    (minutes), no ledger row; outside ``fit`` SIGTERM is the process's own handler again."""
    import os
    import signal

    data, small = _release_data(tmp_path, steps=5)
    plan = PLANS["rdc-versatile"]
    tiny = ReleasePlan(plan.model, tuple(Stage(s.name, s.config, s.objective, s.residual, small) for s in plan.stages))
    monkeypatch.setitem(release.PLANS, "rdc-versatile", tiny)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: tmp_path / "no-weights" / "release.json")
    evaluated = []
    monkeypatch.setattr(release, "evaluate", lambda *a, **k: evaluated.append(a) or ({}, ""))
    step = Trainer.train_step

    def train_step(self, i):
        if i == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    before = signal.getsignal(signal.SIGTERM)
    ledger = tmp_path / "results.md"
    report = release.continue_release("rdc-versatile", 30.0, runs=tmp_path / "runs", data=data, eval_minutes=5.0,
                                      ship=True, ledger=ledger, min_stage_s=0.0)
    assert report.stopped_by_signal and (report.stage, report.step_to) == ("stage0", 3)
    assert evaluated == [] and report.eval == {} and not ledger.exists()
    assert (tmp_path / "runs" / "rdc-versatile-stage0.export.safetensors").is_file()
    assert not (tmp_path / "runs" / "rdc-versatile-stage1").exists()
    summary = json.loads((tmp_path / "runs" / "rdc-versatile-stage0" / "summary.json").read_text())
    assert summary["stopped"] == "signal" and summary["step"] == 3
    assert "stopped by SIGTERM at stage0 step 3" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == before
    pos = where_it_stands(release.PLANS["rdc-versatile"], tmp_path / "runs")
    assert (pos.stage, pos.step, pos.source) == (0, 3, "checkpoint")


def test_a_row_counts_the_earlier_stage_a_chunk_without_a_row_finished(tmp_path, monkeypatch):
    """A chunk without a ledger row (``--no-eval``, a SIGTERM) that finished one stage and
    began the next: the next chunk's row names both, ``first 0→3 + second``, and counts
    the earlier stage's images (from its checkpoint's own crop schedule) and seconds."""
    import os
    import signal

    data, small = _release_data(tmp_path, steps=3)
    sched = (*small, "data.schedule=[{from: 2, crop: 64, batch_size: 1}]")  # steps 0, 1: batch 2; step 2: batch 1
    tiny = ReleasePlan("rdc-versatile", (Stage("first", "rdc-versatile-stage0", "kodak_psnr_beta1", overrides=sched),
                                         Stage("second", "rdc-versatile-stage0", "kodak_psnr_beta1",
                                               overrides=(*small, "optim.steps=5"))))
    monkeypatch.setitem(release.PLANS, "rdc-versatile", tiny)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: tmp_path / "no-weights" / "release.json")
    monkeypatch.setattr(release, "evaluate", lambda *a, **k: ({}, "compressai-rdc eval ..."))
    step = Trainer.train_step

    def train_step(self, i):
        if i == 1 and self.out.name.endswith("second"):
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    runs, ledger = tmp_path / "runs", tmp_path / "results.md"
    first = release.continue_release("rdc-versatile", 30.0, runs=runs, data=data, evaluate_after=False, ledger=ledger,
                                     min_stage_s=0.0)
    assert first.stopped_by_signal and (first.stage, first.step_to) == ("first 0→3 + second", 2) and not ledger.exists()
    assert release.unrecorded_steps(runs / "rdc-versatile-first", None)[:3] == (0, 3, 5)
    assert release.unrecorded_steps(runs / "rdc-versatile-first", 3) is None
    assert release.unrecorded_steps(runs / "rdc-versatile-missing", None) is None
    monkeypatch.setattr(Trainer, "train_step", step)
    seconds = json.loads((runs / "rdc-versatile-first" / "summary.json").read_text())["elapsed_s"]
    report = release.continue_release("rdc-versatile", 30.0, runs=runs, data=data, eval_minutes=1.0, ledger=ledger,
                                      min_stage_s=0.0)
    assert (report.stage, report.step_from, report.step_to) == ("first 0→3 + second", 0, 5)
    assert report.images == 5 + 5 * 2 and report.minutes >= seconds / 60.0
    row = ledger.read_text().split(release.LEDGER_START)[1].split(release.LEDGER_END)[0].strip().splitlines()[2]
    assert "| first 0→3 + second | 0→5 | 15 |" in row
    assert release.ledger_steps(ledger) == {"first": 3, "second": 5}
    # everything is recorded now: a further chunk counts nothing twice
    again = release.continue_release("rdc-versatile", 30.0, runs=runs, data=data, eval_minutes=1.0, ledger=ledger,
                                     min_stage_s=0.0)
    assert (again.stage, again.step_from, again.step_to, again.images) == ("second", 5, 5, 0)


def test_ship_weights_takes_the_exports_lineage_over_manifest_arithmetic(tmp_path, monkeypatch):
    """An export that says how many images its weights descend from (``lineage_images``)
    is recorded with exactly that: a stage restarted from an older export, or stage II
    adopted after a stage I trained elsewhere, is not added to the shipped count."""
    from safetensors.torch import save_file

    monkeypatch.setattr(release, "weights_dir", lambda plan=None: tmp_path)
    monkeypatch.setattr(release, "manifest_path", lambda plan=None: tmp_path / "release.json")
    export = tmp_path / "export.safetensors"
    save_file({"a": torch.ones(2)}, str(export), metadata={"lineage_images": "420"})
    manifest = {"rdc-versatile": {"file": "gone.safetensors", "stage": "stage2", "images": 1000}}
    plan = PLANS["rdc-versatile"]
    report = release.ChunkReport("x", "stage2", 0, 12, 96, 1.0, export, eval={"curves": {}}, eval_command="compressai-rdc eval")
    release.ship_weights(plan, plan.stages[2], export, 12, report, manifest)
    assert json.loads((tmp_path / "release.json").read_text())["rdc-versatile"]["images"] == 420


def test_adopt_takes_a_plain_training_export_as_its_recipes_stage(tmp_path, monkeypatch):
    """``train RECIPE --export`` writes the run's images, minutes and device: adopting it records the
    whole run (steps 0 → step) as a chunk of the stage that RECIPE is in the plan."""
    from safetensors.torch import save_file

    seen = {}
    monkeypatch.setattr(release, "finish_chunk", lambda plan, stage_i, report, data_root, runs, device, *a: seen.update(
        stage=plan.stages[stage_i].name, report=report, device=device, residual=a[-1]))
    path = tmp_path / "x.safetensors"
    meta = {"recipe": "rdc-versatile-stage2", "step": "12000", "run_images": "96000", "run_seconds": "1590.0", "device": "cpu"}
    save_file({"a": torch.zeros(1)}, str(path), metadata=meta)
    report = release.adopt("rdc-versatile", path, data=tmp_path)
    assert seen["stage"] == "stage2" and seen["device"] == "cpu" and seen["residual"] is True and seen["report"] is report
    assert (report.stage, report.step_from, report.step_to, report.images, report.minutes) == ("stage2", 0, 12000, 96000, 26.5)
    save_file({"a": torch.zeros(1)}, str(path), metadata={**meta, "recipe": "rdc-versatile-stage1-kd"})
    with pytest.raises(InvalidArgumentError, match=r"recipe 'rdc-versatile-stage1-kd', not one of .*rdc-versatile-stage1-moco-light \(stage1\)"):
        release.adopt("rdc-versatile", path, data=tmp_path)


def test_adopt_refuses_exports_without_release_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(1)}, str(path), metadata={"recipe": "rdc-versatile-stage0", "step": "5"})
    with pytest.raises(InvalidArgumentError, match="no release metadata"):
        release.adopt("rdc-versatile", path)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        release.adopt("rdc-versatile", tmp_path / "missing.safetensors")


def test_beta0_margin_and_the_release_rule_keep_beta0_above_beta1():
    """The bar asks for β = 0 above β = 1 at every rate: a stage-II candidate whose β = 0
    point falls below the β = 1 curve never replaces shipped weights that keep it, however
    much it wins elsewhere (session 15: +0.03 dB at 0.40 bpp and +2.9 points of top-1, but
    β = 0 0.07 dB under β = 1 at rate 0)."""
    plan = PLANS["rdc-versatile"]
    s2 = plan.stages[2]
    b1 = [[0.05, 23.0], [0.10, 25.0], [0.40, 29.0]]
    good = {"kodak_psnr_beta0": 29.40, "imagenet_top1_beta1": 43.0,
            "points": {"kodak_psnr_beta1": b1, "kodak_psnr_beta0": [[0.06, 23.6], [0.11, 25.4], [0.41, 29.3]]}}
    margin = beta0_margin(good)
    want = min(23.6 - (23.0 + 2.0 * math.log(0.06 / 0.05) / math.log(2.0)), 25.4 - (25.0 + 4.0 * math.log(1.1) / math.log(4.0)))
    assert margin == pytest.approx(want, abs=1e-3) and margin > 0  # the 0.41 point lies beyond β = 1's range: skipped
    bad = {"kodak_psnr_beta0": 29.45, "imagenet_top1_beta1": 46.0,
           "points": {"kodak_psnr_beta1": b1, "kodak_psnr_beta0": [[0.06, 23.4], [0.11, 25.4], [0.41, 29.3]]}}
    assert beta0_margin(bad) < 0
    shipped = {"stage": "stage2", "eval": good}
    assert not is_better(bad, shipped, s2, "stage2", plan)
    assert is_better({**bad, "points": {**bad["points"], "kodak_psnr_beta0": good["points"]["kodak_psnr_beta0"]}}, shipped, s2, "stage2", plan)
    # shipped weights that already miss it do not block a candidate that misses it too
    assert is_better(bad, {"stage": "stage2", "eval": {**good, "points": bad["points"]}}, s2, "stage2", plan)
    assert beta0_margin({"points": {"kodak_psnr_beta1": b1}}) is None and beta0_margin({}) is None
