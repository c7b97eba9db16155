"""Evaluation suite: spec grammar, metrics and BD known answers, the classical codecs
against an independent Pillow + numpy computation, learned codecs through real
containers, outputs and plots of the CLI, sharding under torchrun, and the
cognition protocol's uncompressed top-1 on imagenet-dev."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compressai_rdc import codec
from compressai_rdc.cli import main
from compressai_rdc.zoo import create_model, load_into, load_state_dict_file, save_weights
from compressai_rdc.errors import InvalidArgumentError, RDCError
from compressai_rdc.eval import bd_table, parse_dataset, parse_spec, run_evaluation
from compressai_rdc.eval.build import build_codecs, build_dataset, detect_task
from compressai_rdc.eval.metrics import compute_metrics, resolve_metrics
from compressai_rdc.eval.runner import EvalResults, PointResult
from compressai_rdc.eval.spec import OperatingPoint


# -- grammar ----------------------------------------------------------------------------
def test_spec_grammar():
    s = parse_spec("rdc-versatile:weights=/a/b.safetensors,rate=0|2.5|4,beta=0|1,layers=none")
    assert s.name == "rdc-versatile"
    assert s.params == {"weights": ["/a/b.safetensors"], "rate": [0, 2.5, 4], "beta": [0, 1], "layers": [None]}
    assert parse_spec("jpeg").params == {}
    d = parse_dataset("imagenet-dev=../data/imagenet-dev:task=classification,protocol=crop256")
    assert (d.name, d.root, d.params) == ("imagenet-dev", "../data/imagenet-dev", {"task": "classification", "protocol": "crop256"})
    assert parse_dataset("/x/kodak").name == "kodak"
    assert parse_dataset("k=C:/data/kodak").root == "C:/data/kodak"  # a drive colon is not parameters


@pytest.mark.parametrize("text", ["jpeg:quality", "jpeg:quality=1,quality=2", ":quality=3", "jpeg:=4"])
def test_spec_grammar_errors(text):
    with pytest.raises(InvalidArgumentError):
        parse_spec(text)


# -- metrics and BD -----------------------------------------------------------------------
def test_metrics_known_answers():
    ref = torch.randint(10, 240, (2, 3, 168, 168), dtype=torch.uint8)
    dec = ref + 2
    m = compute_metrics(ref, dec, resolve_metrics(["psnr", "ms-ssim", "fsim"]))
    assert m["psnr-rgb"].tolist() == pytest.approx([10 * math.log10(255**2 / 4)] * 2, abs=1e-4)
    same = compute_metrics(ref, ref.clone(), ("psnr-rgb", "ms-ssim-rgb", "fsim"))
    assert torch.isinf(same["psnr-rgb"]).all()
    assert same["ms-ssim-rgb"].tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert same["fsim"].tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert (m["ms-ssim-rgb"] < 1).all()
    with pytest.raises(InvalidArgumentError, match="valid"):
        resolve_metrics(["vmaf"])


def _point(codec, bpp, psnr, top1=None, **op):
    values = {"bpp": bpp, "psnr-rgb": psnr}
    if top1 is not None:
        values["top-1"] = top1
    return PointResult("d", codec, "classical", OperatingPoint(tuple(op.items())), 10, values)


def test_bd_known_answers():
    rates = np.array([0.1, 0.2, 0.4, 0.8])
    psnr = 30 + 3 * np.log2(rates / 0.1)
    res = EvalResults(metrics=("psnr-rgb",), datasets={"d": {}})
    for q, (r, p) in enumerate(zip(rates, psnr)):
        res.points.append(_point("anchor", r, p, 50 + 10 * q, quality=q))
        res.points.append(_point("half", r / 2, p, 50 + 10 * q, quality=q))  # same quality at half the rate
        res.points.append(_point("plus1", r, p + 1, 55 + 10 * q, quality=q))
    keys = {c: ("quality",) for c in ("anchor", "half", "plus1")}
    rows = {r.curve: r for r in bd_table(res, "anchor", keys, {"d": "top-1"}, method="pchip")}
    assert rows["half"].values["bd-rate-psnr"] == pytest.approx(-50.0, abs=1e-6)
    assert rows["half"].values["bd-psnr"] == pytest.approx(3.0, abs=1e-6)  # 3 dB per doubling
    assert rows["plus1"].values["bd-psnr"] == pytest.approx(1.0, abs=1e-9)
    assert rows["plus1"].values["bd-top-1"] == pytest.approx(5.0, abs=1e-9)  # BD-accuracy
    assert rows["half"].values["bd-rate-top-1"] == pytest.approx(-50.0, abs=1e-6)


# -- classical codecs: known answer against an independent Pillow computation ------------
def _independent(path: Path, fmt: str, quality: int):
    arr = np.asarray(Image.open(path).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, quality=quality)
    data = buf.getvalue()
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)
    mse = np.mean((arr.astype(np.float64) - dec) ** 2)
    return 8 * len(data) / (arr.shape[0] * arr.shape[1]), 10 * np.log10(255**2 / mse)


def test_classical_codecs_match_independent_pillow(kodak_dir, tmp_path):
    qualities = {"jpeg": (10, 60), "webp": (10, 60), "avif": (20, 60)}
    args = ["eval", "--dataset", f"kodak={kodak_dir}", "--limit", "2", "--metrics", "psnr", "--no-plots", "--quiet", "--no-uncompressed", "--out", str(tmp_path)]
    for fmt, qs in qualities.items():
        args += ["--codec", f"{fmt}:quality={'|'.join(map(str, qs))}"]
    assert main(args) == 0
    paths = sorted(kodak_dir.glob("*.png"))[:2]
    for fmt, qs in qualities.items():
        res = json.loads((tmp_path / "kodak" / f"{fmt}.json").read_text())["results"]
        assert res["quality"] == list(qs)
        for i, q in enumerate(qs):
            ind = [_independent(p, fmt.upper(), q) for p in paths]
            assert res["bpp"][i] == pytest.approx(np.mean([b for b, _ in ind]), rel=1e-12)
            assert res["psnr-rgb"][i] == pytest.approx(np.mean([p for _, p in ind]), abs=1e-4)


# -- end to end on synthetic data --------------------------------------------------------
@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    (root / "rd").mkdir()
    (root / "cls").mkdir()
    for i in range(3):
        base = rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((300, 270), Image.BICUBIC)
        img.save(root / "rd" / f"img{i}.png")
        img.save(root / "cls" / f"{4 * i}_n0000{i}.png")
    return root


@pytest.mark.slow
def test_eval_cli_end_to_end(toy_data, tmp_path):
    out = tmp_path / "out"
    rc = main([
        "eval",
        "--dataset", f"rd={toy_data / 'rd'}",
        "--dataset", f"cls={toy_data / 'cls'}",
        "--codec", "jpeg:quality=5|30|70", "--codec", "webp:quality=5|30|70",
        "--model", "rdc-versatile:rate=0|5,beta=0|1,name=rdc-random",
        "--compressai", "mbt2018-mean:quality=1|2",
        "--anchor", "jpeg", "--metrics", "psnr,ms-ssim", "--batch-size", "4", "--quiet", "--per-image", "--limit", "2",
        "--out", str(out),
    ])
    assert rc == 0
    assert detect_task(str(toy_data / "cls")) == "classification" and detect_task(str(toy_data / "rd")) is None
    for ds in ("rd", "cls"):
        # one JSON per rate curve: the β sweep of rdc-random gives one file per β (CompressAI's plot draws lines)
        for codec, name, n in (("uncompressed", "uncompressed", 1), ("jpeg", "jpeg", 3), ("webp", "webp", 3),
                               ("rdc-random-beta0", "rdc-random[beta=0]", 2), ("rdc-random-beta1", "rdc-random[beta=1]", 2),
                               ("mbt2018-mean", "mbt2018-mean", 2)):
            j = json.loads((out / ds / f"{codec}.json").read_text())
            assert j["name"] == name and j["description"].startswith("Inference (")
            res = j["results"]
            for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
                assert len(res[key]) == n
            if ds == "cls":
                assert len(res["top-1"]) == n and all(0 <= v <= 100 for v in res["top-1"])
                assert j["protocol"] == "crop256" and j["task"] == "classification"
        assert (out / "plots" / f"{ds}-rd.png").stat().st_size > 1000
        assert (out / "plots" / f"{ds}-rd.svg").is_file()
    for beta in (0, 1):
        rdc = json.loads((out / "cls" / f"rdc-random-beta{beta}.json").read_text())["results"]
        assert rdc["rate"] == [0, 5] and rdc["beta"] == [beta, beta]
    unc = json.loads((out / "cls" / "uncompressed.json").read_text())["results"]
    assert unc["bpp"] == [24.0] and unc["psnr-rgb"] == [None]
    for name in ("cls-rc", "cls-beta", "cls-dc"):
        assert (out / "plots" / f"{name}.png").is_file()
    jpeg = json.loads((out / "cls" / "jpeg.json").read_text())["results"]
    assert jpeg["bpp"] == sorted(jpeg["bpp"]) and jpeg["psnr-rgb"] == sorted(jpeg["psnr-rgb"])
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * (1 + 3 + 3 + 4 + 2)
    per_image = list(csv.DictReader((out / "cls" / "jpeg-per-image.csv").open()))
    assert len(per_image) == 6
    # bpp of the crop protocol is counted on the 256x256 crop: mean of per-image bytes*8/65536
    q5 = [float(r["bytes"]) * 8 / 65536 for r in per_image if r["point"] == "quality=5"]
    assert jpeg["bpp"][0] == pytest.approx(sum(q5) / 2)
    bd = list(csv.DictReader((out / "bd.csv").open()))
    assert {r["curve"] for r in bd} >= {"webp"} and "bd-top-1" in bd[-1]
    webp_rd = [r for r in bd if r["dataset"] == "rd" and r["curve"] == "webp"][0]
    assert float(webp_rd["bd-psnr"]) == float(webp_rd["bd-psnr"])  # a number, not nan
    assert "rdc-random" in (out / "report.md").read_text()
    # nothing is silently overwritten
    assert main(["eval", "--dataset", f"rd={toy_data / 'rd'}", "--codec", "jpeg", "--out", str(out), "--quiet"]) == 2


def test_learned_checkpoint_bpp_is_the_container_size(toy_data, tmp_path):
    from compressai.zoo import image_models
    from safetensors.torch import save_file

    from compressai_rdc import codec
    from compressai_rdc.zoo import load_into, load_state_dict_file

    net = image_models["mbt2018-mean"](quality=1, pretrained=False)
    net.update(force=True)
    ckpt = tmp_path / "mbt.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt))
    out = tmp_path / "out"
    assert main(["eval", "--dataset", f"rd={toy_data / 'rd'}", "--compressai", f"mbt2018-mean:checkpoint={ckpt}", "--metrics", "psnr", "--no-plots", "--quiet", "--no-uncompressed", "--out", str(out)]) == 0
    res = json.loads((out / "rd" / "mbt2018-mean.json").read_text())["results"]
    ref = type(net).from_state_dict(load_state_dict_file(ckpt))
    load_into(ref, load_state_dict_file(ckpt))
    ref.update(force=True)
    bpps = []
    for p in sorted((toy_data / "rd").glob("*.png")):
        x = torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
        bpps.append(codec.bits_per_pixel(codec.encode(ref.eval(), x)))
    assert res["bpp"] == [pytest.approx(float(np.mean(bpps)), rel=1e-12)]
    assert res["checkpoint"] == [str(ckpt)]


def test_rdc_layers_truncate_the_stream(toy_data, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "--dataset", f"rd={toy_data / 'rd'}", "--model", "rdc-versatile:rate=2,layers=0|1", "--metrics", "psnr", "--no-plots", "--quiet", "--no-uncompressed", "--limit", "1", "--out", str(out)]) == 0
    # layers is not a rate key: one JSON (one curve) per layer count
    l0 = json.loads((out / "rd" / "rdc-versatile-layers0.json").read_text())
    l1 = json.loads((out / "rd" / "rdc-versatile-layers1.json").read_text())
    assert l0["name"] == "rdc-versatile[layers=0]" and l0["results"]["layers"] == [0] and l1["results"]["layers"] == [1]
    assert l0["results"]["bpp"][0] < l1["results"]["bpp"][0]
    assert not (out / "rd" / "rdc-versatile.json").exists()


def test_rate_counts_the_substreams_the_decode_reads(toy_data, tmp_path):
    """β = 1 reads the primary substreams only: its bpp is the primary bytes, β = 0 the whole stream,
    from one encode with every residual layer; one JSON per β; fixed CSV columns; per-dataset limit."""
    torch.manual_seed(0)
    net = create_model("rdc-versatile")
    net.update(force=True)
    w = save_weights(net, tmp_path / "w.safetensors", half=False)[0]
    out = tmp_path / "out"
    argv = ["eval", "--dataset", f"rd={toy_data / 'rd'}:limit=1", "--model", f"rdc-versatile:weights={w},rate=2|5,beta=0|1",
            "--codec", "jpeg:quality=50", "--metrics", "psnr", "--no-plots", "--quiet", "--no-uncompressed", "--limit", "3", "--out", str(out)]
    assert main(argv) == 0
    b0 = json.loads((out / "rd" / "rdc-versatile-beta0.json").read_text())
    b1 = json.loads((out / "rd" / "rdc-versatile-beta1.json").read_text())
    assert b0["n_images"] == 1  # the dataset's limit=1 wins over --limit 3
    assert b0["results"]["rate"] == [2, 5] and b1["results"]["beta"] == [1, 1]
    ref = create_model("rdc-versatile")
    load_into(ref, load_state_dict_file(w))
    ref.update(force=True)
    first = sorted((toy_data / "rd").glob("*.png"))[0]
    x = torch.from_numpy(np.asarray(Image.open(first).convert("RGB")).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    for i, rate in enumerate((2, 5)):
        full = codec.encode(ref.eval(), x, rate=float(rate), layers=ref.residual_layers)
        primary = codec.truncate(full, 0)
        assert b0["results"]["bpp"][i] == pytest.approx(codec.bits_per_pixel(full), rel=1e-12)
        assert b1["results"]["bpp"][i] == pytest.approx(codec.bits_per_pixel(primary), rel=1e-12)
        assert b1["results"]["bpp"][i] < b0["results"]["bpp"][i]
    with open(out / "results.csv") as f:
        header = next(csv.reader(f))
    assert header[:12] == ["dataset", "codec", "kind", "point", "checkpoint", "quality", "rate", "target_bpp", "qmap", "level", "layers", "beta"]
    assert header[12:15] == ["n_images", "bpp", "psnr-rgb"] and header[-2:] == ["encoding_time", "decoding_time"]


def test_rate_sweep_runs_the_analysis_once_per_image_with_the_bytes_of_plain_encodes():
    """A swept ``rate`` at β = 1 reuses one primary analysis per image (the model's
    ``rate_control`` hook) and writes the same container bytes as ``codec.encode``."""
    from compressai_rdc.eval.codecs import LearnedCodec

    torch.manual_seed(0)
    net = create_model("rdc-versatile", N=32, M=48, residual_N=16, residual_M=24, default_beta=1.0).eval()
    net.update(force=True)
    calls = []
    inner = net.primary.analysis
    net.primary.analysis = lambda x, **cond: calls.append(tuple(x.shape)) or inner(x, **cond)
    lc = LearnedCodec({None: net}, {"rate": [0, 2.5, 7]}, name="rdc")
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 40, 72), dtype=torch.uint8, generator=g) for _ in range(2)]
    streams = {}
    for n, img in enumerate(images):
        for op in lc.operating_points():
            streams[n, op.get("rate")] = lc.encode(img, op)
        assert len(calls) == n + 1  # one analysis for the three rates of this image
    net.primary.analysis = inner
    for (n, rate), data in streams.items():
        x = images[n].float().div(255).unsqueeze(0)
        assert data == codec.encode(net, x, rate=float(rate))
    assert len({streams[0, r] for r in (0, 2.5, 7)}) == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--codec", "gif"], "valid: jpeg, webp, avif"),
        (["--codec", "jpeg:quality=101"], "valid: integers 0..100"),
        (["--model", "no-such-model"], "unknown model"),
        (["--compressai", "no-such-arch"], "unknown CompressAI architecture"),
        (["--model", "rdc-versatile:speed=3"], "unknown operating-point key"),
        (["--codec", "jpeg", "--anchor", "avif"], "--anchor 'avif' is not an evaluated codec"),
        (["--codec", "jpeg", "--metrics", "vmaf"], "unknown metric"),
        ([], "give at least one --codec"),
    ],
)
def test_eval_cli_errors(toy_data, tmp_path, capsys, argv, message):
    rc = main(["eval", "--dataset", f"rd={toy_data / 'rd'}", "--out", str(tmp_path / "o"), "--quiet", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_dataset_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="protocols"):
        run_evaluation([build_dataset(f"x={tmp_path}:task=segmentation,random_init=true,protocol=crop256")], build_codecs(["jpeg"]))
    with pytest.raises(Exception, match="not found"):
        build_dataset(f"x={tmp_path / 'missing'}")


# -- sharding ------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_sharding_matches_single_process(toy_data, tmp_path):
    common = ["--dataset", f"cls={toy_data / 'cls'}", "--codec", "jpeg:quality=10|50", "--metrics", "psnr", "--no-plots", "--quiet"]
    assert main(["eval", *common, "--out", str(tmp_path / "one")]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "compressai_rdc", "eval", *common, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for codec in ("uncompressed", "jpeg"):
        one = json.loads((tmp_path / "one" / "cls" / f"{codec}.json").read_text())["results"]
        two = json.loads((tmp_path / "two" / "cls" / f"{codec}.json").read_text())["results"]
        for key in ("bpp", "psnr-rgb", "top-1", "top-5"):
            assert [math.inf if v is None else v for v in two[key]] == pytest.approx([math.inf if v is None else v for v in one[key]], rel=1e-9), key
        assert json.loads((tmp_path / "two" / "cls" / f"{codec}.json").read_text())["n_images"] == 3


@pytest.mark.slow
def test_jobs_shard_like_torchrun_with_the_same_results(toy_data, tmp_path):
    """``--jobs 2`` (the default on a 2-core CPU) starts the torchrun code path itself."""
    torch.manual_seed(0)  # a random model is built in each process: give both the same weights from a file
    net = create_model("rdc-versatile").eval()
    net.update(force=True)
    w = save_weights(net, tmp_path / "w.safetensors", half=False)[0]
    common = ["--dataset", f"cls={toy_data / 'cls'}", "--codec", "jpeg:quality=10|50",
              "--model", f"rdc-versatile:weights={w},rate=0|3", "--metrics", "psnr,ms-ssim", "--no-plots", "--quiet"]
    assert main(["eval", *common, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    assert main(["eval", *common, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    for ds, codec in (("cls", "uncompressed"), ("cls", "jpeg"), ("cls", "rdc-versatile")):
        one = json.loads((tmp_path / "one" / ds / f"{codec}.json").read_text())
        two = json.loads((tmp_path / "two" / ds / f"{codec}.json").read_text())
        assert two["n_images"] == one["n_images"] == 3
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "top-1"):
            if key in one["results"]:
                assert [math.inf if v is None else v for v in two["results"][key]] == pytest.approx(
                    [math.inf if v is None else v for v in one["results"][key]], rel=1e-9), (ds, codec, key)
    assert "--jobs 2" in (tmp_path / "two" / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("argv, error, message", [
    (["--model", "rdc-versatile:weights=/no/such/file.safetensors"], "WeightsNotFoundError", "/no/such/file.safetensors"),
    (["--model", "rdc-versatile:speed=3"], "InvalidArgumentError", "unknown operating-point key"),
])
def test_jobs_raise_a_worker_error_with_its_type(toy_data, tmp_path, argv, error, message):
    """An error inside a worker process stops the run and is raised again in the caller, typed."""
    from compressai_rdc.cli.eval import run
    from compressai_rdc.cli import build_parser

    args = build_parser().parse_args(["eval", "--dataset", f"rd={toy_data / 'rd'}", "--out", str(tmp_path / "o"), "--quiet", "--jobs", "2", *argv])
    with pytest.raises(RDCError, match=re.escape(message)) as info:
        run(args)
    assert type(info.value).__name__ == error


def test_plan_jobs(monkeypatch):
    from compressai_rdc.cli import eval as cli_eval

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(cli_eval, "available_cores", lambda: 4)
    assert cli_eval.plan_jobs("auto", None, "cpu") == (4, 1)  # one single-threaded process per core
    assert cli_eval.plan_jobs("auto", 2, "cpu") == (1, 2)  # --threads given: the user chose the cores
    assert cli_eval.plan_jobs("auto", None, "cuda") == (1, None)
    assert cli_eval.plan_jobs("2", None, "cpu") == (2, 2)  # the cores shared out
    assert cli_eval.plan_jobs("3", 1, "cpu") == (3, 1)
    monkeypatch.setattr(cli_eval, "available_cores", lambda: 1)
    assert cli_eval.plan_jobs("auto", None, "cpu") == (1, None)
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(InvalidArgumentError, match="valid: a positive integer or 'auto'"):
            cli_eval.plan_jobs(bad, None, "cpu")
    with pytest.raises(InvalidArgumentError, match="valid on a GPU: --jobs 1"):
        cli_eval.plan_jobs("2", None, "cuda:0")
    from compressai_rdc.registry import TASKS
    from compressai_rdc.tasks.classification import ClassificationTask

    monkeypatch.setattr(cli_eval, "available_cores", lambda: 4)
    TASKS.register("script-task", ClassificationTask, plugin="my-script")  # a script's own registration
    try:
        assert cli_eval.plan_jobs("auto", None, "cpu") == (1, None)  # fresh processes would not have it
        with pytest.raises(InvalidArgumentError, match=r"task 'script-task' \(my-script\).*valid: --jobs 1"):
            cli_eval.plan_jobs("2", None, "cpu")
    finally:
        TASKS.unregister("script-task")
    assert cli_eval.plan_jobs("auto", None, "cpu") == (4, 1)
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun the processes exist already
    assert cli_eval.plan_jobs("auto", None, "cpu") == (1, None)
    with pytest.raises(InvalidArgumentError, match="under torchrun"):
        cli_eval.plan_jobs("2", None, "cpu")


# -- the cognition protocol on the real data -----------------------------------------------
@pytest.mark.slow
def test_uncompressed_top1_on_imagenet_dev_is_90_4(imagenet_dev_dir):
    ds = build_dataset(f"imagenet-dev={imagenet_dev_dir}", batch_size=50)
    res = run_evaluation([ds], [], metrics=("psnr-rgb",), batch_size=50)
    (point,) = res.points
    assert res.datasets["imagenet-dev"]["protocol"] == "crop256" and point.n_images == 250
    assert point.values["bpp"] == 24.0
    assert point.values["top-1"] == pytest.approx(90.4, abs=1e-9)  # 226 of 250
