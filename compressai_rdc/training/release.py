"""Release training: the shipped weights' training, continued in chunks on any machine.

::

    compressai-rdc release rdc-versatile --minutes 120 --device cpu [--ship]

A model's release *plan* is an ordered list of stages, each a shipped recipe
config run for its full ``optim.steps``. One call continues the plan from where
it stands and, at the end, exports, evaluates and appends a row to the training
ledger (``docs/results.md``)::

    where it stands                          continue from
    ─────────────────────────────────────    ──────────────────────────────────────────────
    runs/release/<model>-<stage>/checkpoint  the checkpoint (exact: optimizers, step, RNG)
    else the shipped weights' manifest entry  its stage and step (weights; optimizers afresh)
    else                                      the plan's first stage from scratch

    train (time budget, stage after stage) ─► export (fp16 parameters, fp32 buffers)
        ─► evaluate (``compressai-rdc eval`` on Kodak and imagenet-dev)
        ─► compare with the shipped weights' evaluation (manifest) ─► [--ship] replace them
        ─► ledger row

The chunks accumulate: a machine that keeps ``runs/`` resumes exactly; a fresh
machine continues from the committed weights, whose manifest records stage and
step, so the learning-rate and crop schedules continue where they stood.

The manifest ``compressai_rdc/zoo/weights/release.json`` is the one place that
names a shipped file, its sha256, how it was trained and what it measured;
:mod:`compressai_rdc.zoo._weights` reads it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from compressai_rdc.errors import InvalidArgumentError, RDCError

#: Rates of the ledger's evaluation (gain levels of the primary / both branches).
EVAL_RATES = (0, 1, 2, 3, 5, 7)
#: Operating points the ledger reports (the targets of the weights issue).
KODAK_BPP = 0.40
IMAGENET_BPP = 0.15
#: A classifier of another family the codec is never trained with (torchvision's
#: MobileNetV2 in the shared data, read by timm's ``mobilenetv2_100``): when the
#: file is in ``<data>/``, the evaluation also reports top-1 on it.
SECOND_CLASSIFIER = ("imagenet-dev-mobilenetv2", "mobilenetv2_100", "classifiers/mobilenet_v2-b0353104.safetensors")


@dataclass(frozen=True)
class Stage:
    """One stage of a release plan.

    Args:
        name: short name (``stage0``), part of the run folder and the manifest.
        config: shipped recipe config run for its full ``optim.steps``.
        objective: the ledger value this stage improves (a key of :func:`summarize`'s
            result); a candidate is better when this value is higher.
        residual: whether the residual branch is trained after this stage (β = 0 is evaluated).
        overrides: ``--set`` overrides of the config.
        minimize: the objective is a cost: a candidate is better when it is lower.
        guards: earlier stages' objectives (scores) that a candidate of this stage must
            not lose against the shipped weights of the same stage: a rerun of the stage
            on another lineage (e.g. a different stage I) may trade them.
    """

    name: str
    config: str
    objective: str
    residual: bool = False
    overrides: Tuple[str, ...] = ()
    #: the objective is a cost (lower is better) rather than a score
    minimize: bool = False
    guards: Tuple[str, ...] = ()


Curves = Dict[Tuple[str, str], List[Tuple[Optional[float], float, float]]]  # (dataset, codec) -> [(rate, bpp, metric)]


@dataclass(frozen=True)
class Evaluation:
    """How the ledger evaluates a plan's weights file and what its row shows.

    Args:
        codecs: ``(plan, weights, residual) -> eval arguments`` naming the codec(s)
            (``--model`` / ``--compressai``) of the ledger's evaluation.
        summary: ``(plan, curves) -> {key: value}``: the ledger values (stage objectives
            among them) from the evaluation's curves.
        header: the ledger table's header (markdown, with its rule line).
        row: ``ledger row dict -> markdown row``.
    """

    codecs: Callable[["ReleasePlan", Path, bool], List[str]]
    summary: Callable[["ReleasePlan", Curves], Dict[str, Any]]
    header: str
    row: Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class ReleasePlan:
    """An ordered list of stages continued chunk after chunk.

    ``model`` names the plan: run folders (``<model>-<stage>``), the manifest entry,
    the shipped file names. ``arch`` is the model its recipes train (default:
    ``model``); ``home`` the repository folder its weights and manifest ship to
    (default: the package's ``zoo/weights``, served by ``pretrained=True``).
    ``bars`` maps objectives (scores) to the issue's bars: a candidate that still
    meets a bar does not lose on that objective (:func:`is_better`).
    """

    model: str
    stages: Tuple[Stage, ...]
    description: str = ""
    arch: str = ""
    home: str = ""
    evaluation: Optional[Evaluation] = None
    bars: Mapping[str, float] = field(default_factory=dict)

    @property
    def recipe_model(self) -> str:
        return self.arch or self.model

    @property
    def ledger_id(self) -> str:
        """Marker of the plan's ledger table ("" for the zoo model's main ledger)."""
        return self.model if self.home else ""

    def index(self, stage: str) -> int:
        for i, s in enumerate(self.stages):
            if s.name == stage:
                return i
        raise InvalidArgumentError(f"stage {stage!r} is not in the {self.model} plan ({', '.join(s.name for s in self.stages)})")


def plan_for(model: str) -> ReleasePlan:
    if model not in PLANS:
        raise InvalidArgumentError(f"no release plan for {model!r}; plans: {', '.join(PLANS)}")
    return PLANS[model]


# -----------------------------------------------------------------------------
# Manifest of the shipped weights
# -----------------------------------------------------------------------------
def weights_dir(plan: Optional[ReleasePlan] = None) -> Path:
    """Where ``plan`` ships its weights: the package's ``zoo/weights`` (served by
    ``pretrained=True``), or for a plan with a ``home`` that folder of the source checkout."""
    if plan is None or not plan.home:
        return Path(str(files("compressai_rdc.zoo") / "weights"))
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise InvalidArgumentError(f"the {plan.model} plan ships to {plan.home}/ of a source checkout; "
                                   f"this installation ({root}) is not one: run it from a clone with `pip install -e .`")
    return root / plan.home


def manifest_path(plan: Optional[ReleasePlan] = None) -> Path:
    return weights_dir(plan) / "release.json"


def read_manifest(path: Optional[Path] = None) -> Dict[str, Any]:
    path = path or manifest_path()
    if not path.is_file():
        return {}
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise RDCError(f"{str(path)!r} must hold a JSON object keyed by model name")
    return data


def write_manifest(data: Mapping[str, Any], path: Optional[Path] = None) -> None:
    path = path or manifest_path()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# -----------------------------------------------------------------------------
# Where the plan stands
# -----------------------------------------------------------------------------
@dataclass
class Position:
    """Where a plan stands: ``stage`` index, ``step`` in it, and how to start."""

    stage: int
    step: int
    source: str  # "checkpoint", "shipped", "scratch", "restart"
    init: Optional[Path] = None

    def describe(self, plan: ReleasePlan) -> str:
        s = plan.stages[self.stage].name
        return {"checkpoint": f"{s} step {self.step} (local checkpoint, exact resume)",
                "shipped": f"{s} step {self.step} (shipped weights {self.init.name if self.init else ''})",
                "scratch": f"{s} from scratch",
                "restart": f"{s} restarted from {self.init.name if self.init else 'scratch'}"}[self.source]


def run_dir(runs: Path, plan: ReleasePlan, stage: int) -> Path:
    return runs / f"{plan.model}-{plan.stages[stage].name}"


def export_path(runs: Path, plan: ReleasePlan, stage: int) -> Path:
    """The export a chunk that ended in ``stage`` writes beside its run folder."""
    return runs / f"{plan.model}-{plan.stages[stage].name}.export.safetensors"


def _checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def restart_at(plan: ReleasePlan, runs: Path, stage: str, init: Optional[Path]) -> Position:
    """Start ``stage`` of ``plan`` afresh from ``init`` (the weights it starts from:
    an earlier stage's export; required after the first stage), e.g. after the plan
    changed that stage's recipe. The run folders and exports of that stage and the
    later ones are moved to ``runs/replaced/<name>-<UTC time>`` (nothing is deleted);
    the shipped weights stay until a candidate of the new lineage is better."""
    i = plan.index(stage)
    if init is None and i > 0:
        raise InvalidArgumentError(f"restarting {plan.model} at {stage} needs the weights it starts from "
                                   f"(--init-weights FILE: an export of {plan.stages[i - 1].name})")
    if init is not None and not Path(init).is_file():
        raise InvalidArgumentError(f"--init-weights {str(init)!r} does not exist")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for j in range(i, len(plan.stages)):
        for path in (run_dir(runs, plan, j), export_path(runs, plan, j)):
            if path.exists():
                dest = runs / "replaced" / f"{path.name}-{stamp}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                path.rename(dest)
                print(f"[release] moved {path} to {dest}", flush=True)
    return Position(i, 0, "restart", Path(init) if init is not None else None)


def where_it_stands(plan: ReleasePlan, runs: Path, manifest: Optional[Mapping[str, Any]] = None) -> Position:
    """The latest stage with a local checkpoint, else the shipped weights' stage and
    step (the next stage when that one is complete), else the first stage from scratch."""
    from compressai_rdc.training.recipes import load_config

    for i in reversed(range(len(plan.stages))):
        ckpt = run_dir(runs, plan, i) / "checkpoint.pt"
        if ckpt.is_file():
            return Position(i, _checkpoint_step(ckpt), "checkpoint")
    entry = (manifest if manifest is not None else read_manifest(manifest_path(plan))).get(plan.model)
    if not entry or entry.get("stage") not in {s.name for s in plan.stages}:
        return Position(0, 0, "scratch")  # weights from outside the plan (or none) are not continued
    i, step = plan.index(entry["stage"]), int(entry["step"])
    init = weights_dir(plan) / entry["file"]
    total = int(load_config(plan.stages[i].config, plan.stages[i].overrides)["optim"]["steps"])
    if step >= total:
        if i + 1 >= len(plan.stages):
            return Position(i, total, "shipped", init)
        return Position(i + 1, 0, "shipped", init)
    return Position(i, step, "shipped", init)


# -----------------------------------------------------------------------------
# Evaluation summary
# -----------------------------------------------------------------------------
def interpolate_at(points: Sequence[Tuple[float, float]], bpp: float) -> Optional[float]:
    """The value of a rate curve at ``bpp``, linear in log-bpp between the two
    neighbouring points; ``None`` outside the measured range."""
    pts = sorted((b, v) for b, v in points if b > 0 and math.isfinite(v))
    if len(pts) < 2 or not (pts[0][0] <= bpp <= pts[-1][0]):
        return None
    for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
        if b0 <= bpp <= b1:
            if b1 == b0:
                return max(v0, v1)
            t = (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return v0 + t * (v1 - v0)
    return None


def eval_argv(weights: Path, data: Path, out: Path, residual: bool, threads: Optional[int] = None,
              plan: Optional[ReleasePlan] = None) -> List[str]:
    """``compressai-rdc eval`` arguments of the ledger's evaluation of ``weights``."""
    argv = ["eval", "--dataset", f"kodak={data / 'kodak'}", "--dataset", f"imagenet-dev={data / 'imagenet-dev'}"]
    label, classifier, file = SECOND_CLASSIFIER
    if (data / file).is_file():
        argv += ["--dataset", f"{label}={data / 'imagenet-dev'}:model={classifier},weights={data / file}"]
    plan = plan or PLANS["rdc-versatile"]
    argv += _evaluation(plan).codecs(plan, weights, residual)
    argv += ["--metrics", "psnr-rgb", "--no-uncompressed", "--no-plots", "--quiet", "--device", "cpu", "--out", str(out)]
    if threads:
        argv += ["--threads", str(threads)]
    return argv


def read_curves(results_csv: Path) -> Curves:
    """``{(dataset, codec): [(rate, bpp, metric)]}`` of an eval ``results.csv``: top-1 on
    the imagenet-dev datasets, PSNR elsewhere; ``rate`` is ``None`` for a codec whose
    points are checkpoints (``--compressai ARCH:checkpoint=...``)."""
    with open(results_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    curves: Curves = {}
    for r in rows:
        metric = "top-1" if r["dataset"].startswith("imagenet-dev") else "psnr-rgb"
        if r.get(metric) in (None, ""):
            continue
        rate = float(r["rate"]) if r.get("rate") not in (None, "") else None  # None: a codec of checkpoints, not levels
        curves.setdefault((r["dataset"], r["codec"]), []).append((rate, float(r["bpp"]), float(r[metric])))
    return {k: sorted(v, key=lambda p: (-1.0 if p[0] is None else p[0], p[1])) for k, v in curves.items()}


def equal_rate_table(results: Mapping[str, Path], at: Sequence[float], codec: str = "beta1") -> str:
    """A markdown table comparing evaluations at equal rate: for every dataset of ``results``
    (``{label: results.csv}``) and every bpp of ``at``, each label's ``codec`` curve
    interpolated there (:func:`interpolate_at`; top-1 % on the imagenet-dev datasets, PSNR dB
    elsewhere), ``–`` outside a curve's measured range."""
    if not results:
        raise InvalidArgumentError("compare needs at least one LABEL=RESULTS_CSV")
    if not at or any(not b > 0 for b in at):
        raise InvalidArgumentError(f"bpp values to compare at must be > 0, got {list(at)}")
    curves = {}
    for label, path in results.items():
        if not Path(path).is_file():
            raise InvalidArgumentError(f"{label}={path}: no such results.csv (an evaluation's output folder holds one)")
        curves[label] = {d: pts for (d, c), pts in read_curves(Path(path)).items() if c == codec}
        if not curves[label]:
            raise InvalidArgumentError(f"{label}={path} has no curve of codec {codec!r}")
    datasets = sorted({d for per in curves.values() for d in per})
    lines = ["| dataset | bpp | " + " | ".join(curves) + " |", "|---|---|" + "---|" * len(curves)]
    for d in datasets:
        for bpp in at:
            cells = []
            for per in curves.values():
                v = interpolate_at([(b, m) for _, b, m in per.get(d, [])], bpp)
                cells.append("–" if v is None else f"{v:.1f}" if d.startswith("imagenet-dev") else f"{v:.2f}")
            lines.append(f"| {d} | {bpp:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize(results_csv: Path, plan: Optional[ReleasePlan] = None) -> Dict[str, Any]:
    """Ledger values of ``plan`` (default: rdc-versatile's) from an eval ``results.csv``,
    and each curve's points under ``"curves"``."""
    curves = read_curves(results_csv)
    plan = plan or PLANS["rdc-versatile"]
    return {"curves": {f"{d}/{c}": v for (d, c), v in curves.items()}, **_evaluation(plan).summary(plan, curves)}


def evaluate(weights: Path, data: Path, out: Path, residual: bool, threads: Optional[int] = None,
             plan: Optional[ReleasePlan] = None) -> Tuple[Dict[str, Any], str]:
    """Run the ledger's evaluation; returns ``(summary, command line)``."""
    from compressai_rdc.cli import main as cli_main

    argv = eval_argv(weights, data, out, residual, threads, plan)
    rc = cli_main(argv)
    if rc:
        raise RDCError(f"evaluation failed with exit status {rc}: compressai-rdc {' '.join(argv)}")
    return summarize(out / "results.csv", plan), "compressai-rdc " + " ".join(argv)


def objective_pair(key: str, candidate: Mapping[str, Any], shipped: Mapping[str, Any]) -> Tuple[Optional[float], Optional[float]]:
    """``(candidate, shipped)`` values of objective ``key`` for a comparison: the values
    at the objective's rate when both curves reach it, else both curves at the lowest
    rate they share (from the summaries' ``points``; a curve that starts above 0.15 bpp
    has no top-1 *at* 0.15 but is still compared), else ``(value, None)``."""
    new, old = candidate.get(key), shipped.get(key)
    if new is not None and old is not None:
        return new, old
    pn, po = (candidate.get("points") or {}).get(key), (shipped.get("points") or {}).get(key)
    if pn and po:
        at = max(min(b for b, _ in pn), min(b for b, _ in po))
        vn, vo = interpolate_at(pn, at), interpolate_at(po, at)
        if vn is not None and vo is not None:
            return vn, vo
    return new, old


def beta0_margin(ev: Mapping[str, Any]) -> Optional[float]:
    """The smallest Kodak PSNR gain of β = 0 over β = 1 at equal rate: over every β = 0
    point of ``ev["points"]`` inside the β = 1 curve's rate range, its PSNR minus the β = 1
    curve's at its bpp (log-bpp interpolation). ``None`` without both curves. The weights
    issue's bar asks for β = 0 above β = 1 at every rate: a margin ≥ 0."""
    pts = ev.get("points") or {}
    b0, b1 = pts.get("kodak_psnr_beta0"), pts.get("kodak_psnr_beta1")
    if not b0 or not b1:
        return None
    gaps = [p - v for b, p in b0 if (v := interpolate_at(b1, b)) is not None]
    return round(min(gaps), 3) if gaps else None


def is_better(candidate: Mapping[str, Any], shipped: Optional[Mapping[str, Any]], stage: Stage, shipped_stage: Optional[str], plan: ReleasePlan) -> bool:
    """A candidate replaces the shipped weights when it is further along the plan
    than them (a later stage), or, in the same stage, when it wins on the stage's
    objective or one of its ``guards`` and loses on none. A loss that still meets
    the plan's bar for that objective is not a loss; an objective the shipped
    weights never measured is not compared. A candidate of an earlier stage (a
    restarted lineage on its way) never replaces them: it lacks what the later
    stages trained (the residual). For a stage that trains the residual, a
    candidate whose β = 0 curve falls below β = 1 somewhere (:func:`beta0_margin`
    < 0) never replaces shipped weights whose curve does not."""
    if shipped is None or shipped_stage not in {s.name for s in plan.stages}:
        return candidate.get(stage.objective) is not None or shipped is None
    if plan.index(stage.name) != plan.index(shipped_stage):
        return plan.index(stage.name) > plan.index(shipped_stage)
    old_eval = shipped.get("eval") or {}
    if stage.residual:
        new_margin, old_margin = beta0_margin(candidate), beta0_margin(old_eval)
        if old_margin is not None and old_margin >= 0 and (new_margin is None or new_margin < 0):
            return False
    wins = 0
    for key in (stage.objective, *stage.guards):
        new, old = objective_pair(key, candidate, old_eval)
        if new is None:
            if key == stage.objective:
                return False
            continue
        if old is None or new == old:
            continue
        lower = stage.minimize and key == stage.objective
        if (new < old) == lower:
            wins += 1
        elif key in plan.bars and new >= plan.bars[key]:
            continue
        else:
            return False
    return wins > 0 or old_eval.get(stage.objective) is None and not (old_eval.get("points") or {}).get(stage.objective)


# -----------------------------------------------------------------------------
# Ledger
# -----------------------------------------------------------------------------
LEDGER_START, LEDGER_END = "<!-- ledger:start -->", "<!-- ledger:end -->"
LEDGER_HEADER = (
    "| date | device | minutes | stage | steps | images seen | Kodak PSNR @0.40 bpp β=1 / β=0 | "
    "imagenet-dev top-1 @0.15 bpp β=1 | shipped |\n|---|---|---|---|---|---|---|---|---|"
)


def _fmt(v: Optional[float], unit: str = "", digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}{unit}"


def _row_head(row: Mapping[str, Any]) -> str:
    return (f"| {row['date']} | {row['device']} | {row['minutes']:.0f} | {row['stage']} | {row['step_from']}→{row['step_to']} | "
            f"{row['images']:,} | ")


def _at_or_lowest(ev: Mapping[str, Any], key: str, unit: str) -> str:
    """``ev[key]``, else (its curve starts above the objective's rate) the curve's
    lowest point as ``— (v unit @bpp)``."""
    if ev.get(key) is not None:
        return _fmt(ev[key], unit)
    pts = (ev.get("points") or {}).get(key)
    return "—" if not pts else f"— ({pts[0][1]:.2f}{unit} @{pts[0][0]:.3f})"


def ledger_row(row: Mapping[str, Any]) -> str:
    ev = row.get("eval") or {}
    return (
        f"{_row_head(row)}{_fmt(ev.get('kodak_psnr_beta1'), ' dB')} / {_fmt(ev.get('kodak_psnr_beta0'), ' dB')} | "
        f"{_at_or_lowest(ev, 'imagenet_top1_beta1', ' %')} | {'yes' if row.get('shipped') else 'no'} |"
    )


def ledger_markers(plan: Optional[ReleasePlan] = None) -> Tuple[str, str]:
    """The markers around ``plan``'s ledger table (the main ledger's for the zoo model)."""
    lid = plan.ledger_id if plan is not None else ""
    return (LEDGER_START, LEDGER_END) if not lid else (f"<!-- ledger:{lid}:start -->", f"<!-- ledger:{lid}:end -->")


_ROW_STEPS = re.compile(r"^\|[^|]*\|[^|]*\|[^|]*\|\s*(?P<stage>[^|]*?)\s*\|\s*(?P<a>\d+)→(?P<b>\d+)\s*\|")


_CROSSED_PART = re.compile(r"^(?P<stage>\S+)\b.*?(?P<a>\d+)→(?P<b>\d+)$")


def ledger_steps(doc: Optional[Path], plan: Optional[ReleasePlan] = None) -> Dict[str, int]:
    """The step the ledger of ``doc`` last recorded for each stage: a row's steps column
    for the stage its chunk ended in, and the ``name a→b`` parts of its stage label for
    the stages the chunk finished on the way (``stage0 23006→24000 + stage1 | 0→619``)."""
    start, end = ledger_markers(plan)
    text = doc.read_text() if doc is not None and doc.is_file() else ""
    if start not in text:
        return {}
    body = text.split(start, 1)[1].split(end, 1)[0]
    steps: Dict[str, int] = {}
    for line in body.splitlines():
        m = _ROW_STEPS.match(line.strip())
        if not m:
            continue
        *finished, last = m["stage"].split(" + ")
        for part in finished:
            c = _CROSSED_PART.match(part.strip())
            if c:
                steps[c["stage"]] = int(c["b"])
        steps[last.split(" ")[0]] = int(m["b"])
    return steps


def ledger_step(doc: Optional[Path], stage: str, plan: Optional[ReleasePlan] = None) -> Optional[int]:
    """The step the ledger of ``doc`` last recorded for ``stage`` (:func:`ledger_steps`),
    or ``None``: a chunk continues the ledger from there."""
    return ledger_steps(doc, plan).get(stage)


def unrecorded_steps(run: Path, recorded: Optional[int]) -> Optional[Tuple[int, int, int, float]]:
    """``(first, last, images, seconds)`` of a finished run folder's steps after ``recorded``
    (all of them for ``None``): the steps, images and training seconds no ledger row counts
    yet; ``None`` when there are none (or no checkpoint). Images come from the checkpoint's
    own config (crop schedule, batch sizes) and ``summary.json``'s world size."""
    import torch

    from compressai_rdc.training.trainer import data_phases, images_between

    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        return None
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    last = int(state["step"])
    first = 0 if recorded is None else min(int(recorded), last)
    if first >= last:
        return None
    cfg = state["config"]
    phases = data_phases(cfg["data"], int(cfg["optim"]["steps"]))
    summary = run / "summary.json"
    world = int(json.loads(summary.read_text()).get("world_size", 1)) if summary.is_file() else 1
    images = images_between(phases, first, last, world)
    seconds = float(state.get("elapsed_s", 0.0)) - log_seconds(run, first)
    return first, last, images, max(0.0, seconds)


def log_seconds(run: Path, step: int) -> float:
    """Training seconds the run folder's ``log.csv`` had counted at ``step`` (the last
    row at or before it; 0 before the first row)."""
    seconds = 0.0
    log = run / "log.csv"
    if log.is_file():
        with open(log) as f:
            for row in csv.DictReader(f):
                if int(row["step"]) <= step:
                    seconds = float(row["time_s"])
    return seconds


def append_ledger(doc: Path, row: Mapping[str, Any], plan: Optional[ReleasePlan] = None) -> None:
    """Append one row to ``plan``'s ledger table (default: the main one) between its
    markers in ``doc``; a plan's first row starts its table at the end of ``doc``."""
    start, end = ledger_markers(plan)
    ev = _evaluation(plan)
    text = doc.read_text() if doc.is_file() else ""
    line = ev.row(row)
    if start not in text:
        title = "Training ledger" if not (plan and plan.ledger_id) else f"Training ledger: {plan.model}"
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{start}\n{ev.header}\n{line}\n{end}\n"
    else:
        head, rest = text.split(start, 1)
        body, tail = rest.split(end, 1)
        text = f"{head}{start}{body.rstrip(chr(10))}\n{line}\n{end}{tail}"
    doc.write_text(text)


# -----------------------------------------------------------------------------
# The plans
# -----------------------------------------------------------------------------
def _rdc_codecs(plan: ReleasePlan, weights: Path, residual: bool) -> List[str]:
    rates = "|".join(str(r) for r in EVAL_RATES)
    argv = ["--model", f"rdc-versatile:weights={weights},name=beta1,rate={rates},layers=0,beta=1"]
    if residual:
        argv += ["--model", f"rdc-versatile:weights={weights},name=beta0,rate={rates},beta=0"]
    return argv


def _rdc_summary(plan: ReleasePlan, curves: Curves) -> Dict[str, Any]:
    """Kodak PSNR at 0.40 bpp (β = 1 and β = 0), imagenet-dev top-1 at 0.15 bpp (β = 1;
    also with the second classifier when it was evaluated), and under ``points`` each
    of these curves as ``[bpp, value]`` pairs (what :func:`is_better` compares when a
    curve does not reach the objective's rate)."""
    out: Dict[str, Any] = {}
    points: Dict[str, List[List[float]]] = {}
    for key, (ds, codec, bpp) in {
        "kodak_psnr_beta1": ("kodak", "beta1", KODAK_BPP),
        "kodak_psnr_beta0": ("kodak", "beta0", KODAK_BPP),
        "imagenet_top1_beta1": ("imagenet-dev", "beta1", IMAGENET_BPP),
        "imagenet_top1_beta1_mobilenetv2": (SECOND_CLASSIFIER[0], "beta1", IMAGENET_BPP),
    }.items():
        pts = curves.get((ds, codec))
        v = interpolate_at([(b, m) for _, b, m in pts], bpp) if pts else None
        out[key] = None if v is None else round(v, 3)
        if pts:
            points[key] = [[round(b, 4), round(m, 3)] for _, b, m in sorted(pts, key=lambda p: p[1])]
    out["points"] = points
    return out


RDC_EVALUATION = Evaluation(_rdc_codecs, _rdc_summary, LEDGER_HEADER, ledger_row)

#: The same-budget baseline: CompressAI's mbt2018-mean at one quality, trained with stage 0's
#: crops, batch, steps and schedule; its one rate point is compared with rdc-versatile's curves.
BASELINE_CODEC = "same-budget"


def _baseline_codecs(plan: ReleasePlan, weights: Path, residual: bool) -> List[str]:
    return ["--compressai", f"{plan.recipe_model}:checkpoint={weights},name={BASELINE_CODEC}"]


def _baseline_summary(plan: ReleasePlan, curves: Curves) -> Dict[str, Any]:
    """The baseline's one rate point on each dataset, and its Kodak rate–distortion cost
    ``bpp + λ·255²·MSE`` at its (last stage's) training λ (MSE from the mean PSNR): the stage objective."""
    from compressai_rdc.training.recipes import load_config

    stage = plan.stages[-1]
    lmbda = float(load_config(stage.config, stage.overrides)["loss"]["mse"]["weight"])
    out: Dict[str, Any] = {}
    for prefix, ds, metric in (("kodak", "kodak", "psnr"), ("imagenet", "imagenet-dev", "top1"),
                               ("imagenet_mobilenetv2", SECOND_CLASSIFIER[0], "top1")):
        pts = curves.get((ds, BASELINE_CODEC)) or []
        if len(pts) > 1:
            raise RDCError(f"the baseline's evaluation has {len(pts)} rate points on {ds}; it is one model at one rate")
        _, bpp, value = pts[0] if pts else (None, None, None)
        out[f"{prefix}_bpp"] = None if bpp is None else round(bpp, 4)
        out[f"{prefix}_{metric}"] = None if value is None else round(value, 3)
    psnr, bpp = out["kodak_psnr"], out["kodak_bpp"]
    out["kodak_rd_cost"] = None if psnr is None else round(bpp + lmbda * 255.0**2 * 10.0 ** (-psnr / 10.0), 4)
    return out


def _baseline_row(row: Mapping[str, Any]) -> str:
    ev = row.get("eval") or {}
    return (f"{_row_head(row)}{_fmt(ev.get('kodak_bpp'), digits=3)} / {_fmt(ev.get('kodak_psnr'), ' dB')} | "
            f"{_fmt(ev.get('imagenet_bpp'), digits=3)} / {_fmt(ev.get('imagenet_top1'), ' %')} / "
            f"{_fmt(ev.get('imagenet_mobilenetv2_top1'), ' %')} | {_fmt(ev.get('kodak_rd_cost'), digits=4)} | "
            f"{'yes' if row.get('shipped') else 'no'} |")


BASELINE_EVALUATION = Evaluation(
    _baseline_codecs, _baseline_summary,
    "| date | device | minutes | stage | steps | images seen | Kodak bpp / PSNR | imagenet-dev bpp / top-1 lite0 / MobileNetV2 | "
    "Kodak bpp + λ·MSE | shipped |\n|---|---|---|---|---|---|---|---|---|---|",
    _baseline_row,
)


def _evaluation(plan: Optional[ReleasePlan]) -> Evaluation:
    return RDC_EVALUATION if plan is None or plan.evaluation is None else plan.evaluation


#: The release plans. Stage 0 → I → II of the weights issue (docs/training.md, "Release training"),
#: and the same-budget baseline it is compared with (docs/results.md).
PLANS: Dict[str, ReleasePlan] = {
    "rdc-versatile": ReleasePlan(
        "rdc-versatile",
        (
            Stage("stage0", "rdc-versatile-stage0", objective="kodak_psnr_beta1"),
            Stage("stage1", "rdc-versatile-stage1-moco-light", objective="imagenet_top1_beta1"),
            Stage("stage2", "rdc-versatile-stage2", objective="kodak_psnr_beta0", residual=True, guards=("imagenet_top1_beta1",)),
        ),
        description="primary as a variable-rate MSE codec (stage 0), fine-tuned for cognition (stage I), then the residual (stage II)",
        bars={"kodak_psnr_beta0": 29.0, "imagenet_top1_beta1": 60.0},  # the weights issue's bars (docs/results.md)
    ),
    "mbt2018-mean-baseline": ReleasePlan(
        "mbt2018-mean-baseline",
        (Stage("stage0", "baseline-mbt2018-mean-stage0", objective="kodak_rd_cost", minimize=True),),
        description="CompressAI mbt2018-mean (quality 3) with rdc-versatile stage 0's budget: the same-budget baseline",
        arch="mbt2018-mean",
        home="benchmarks/weights",
        evaluation=BASELINE_EVALUATION,
    ),
}


# -----------------------------------------------------------------------------
# The command
# -----------------------------------------------------------------------------
@dataclass
class ChunkReport:
    position: str
    stage: str
    step_from: int
    step_to: int
    images: int
    minutes: float
    export: Optional[Path] = None
    eval: Dict[str, Any] = field(default_factory=dict)
    eval_command: str = ""
    shipped: bool = False
    #: a SIGTERM ended the chunk: exported, not evaluated, no ledger row
    stopped_by_signal: bool = False


def _images_seen(trainer, start: int, stop: int) -> int:
    from compressai_rdc.training.trainer import images_between

    return images_between(trainer.phases, start, stop, trainer.dist.world_size)


def continue_release(
    model: str,
    minutes: float,
    *,
    device: str = "cpu",
    runs: Path = Path("runs/release"),
    data: Optional[Path] = None,
    eval_minutes: float = 12.0,
    evaluate_after: bool = True,
    ship: bool = False,
    ledger: Optional[Path] = None,
    threads: Optional[int] = None,
    progress: bool = False,
    min_stage_s: float = 60.0,
    restart: Optional[str] = None,
    init_weights: Optional[Path] = None,
) -> ChunkReport:
    """Continue ``model``'s release plan for ``minutes`` of wall-clock time in total
    (training, then ``eval_minutes`` kept for export and evaluation).

    A stage that completes hands its export to the next stage, which starts in
    the same call when at least ``min_stage_s`` seconds of the budget are left.
    Returns a :class:`ChunkReport`; with ``ship``, better weights replace the
    shipped ones; with ``ledger``, a row is appended there. ``restart`` names a
    stage to start afresh from ``init_weights`` instead (:func:`restart_at`).
    """
    from compressai_rdc.data import find_data_dir
    from compressai_rdc.training.recipes import load_config
    from compressai_rdc.training.trainer import Trainer

    plan = plan_for(model)
    if not minutes > (eval_minutes if evaluate_after else 0):
        raise InvalidArgumentError(f"minutes={minutes} leaves no time to train: it must exceed the {eval_minutes} min kept for evaluation")
    deadline = time.monotonic() + 60.0 * (minutes - (eval_minutes if evaluate_after else 0.0))
    data_root = Path(data) if data else find_data_dir()
    if data_root is None or not (data_root / "train").is_dir():
        raise InvalidArgumentError("release training needs the data folder (train/, kodak/, imagenet-dev/): pass --data DIR or set COMPRESSAI_RDC_DATA")
    runs = Path(runs)
    manifest = read_manifest(manifest_path(plan))
    if init_weights is not None and restart is None:
        raise InvalidArgumentError("--init-weights is only for --restart STAGE: a plan otherwise continues from where it stands")
    pos = restart_at(plan, runs, restart, init_weights) if restart is not None else where_it_stands(plan, runs, manifest)
    start_desc = pos.describe(plan)
    print(f"[release] {model}: continuing at {start_desc}", flush=True)
    t_start = time.monotonic()
    images, step_from, trainer, export = 0, pos.step, None, None
    stage_i, init, start_step = pos.stage, pos.init, pos.step
    # steps of this stage that ran after the ledger's last row but were never recorded
    # (a chunk stopped before its evaluation, or plain `train` into the run folder)
    # (all of them when the ledger has no row of this stage: its training began outside `release`)
    # and the same for earlier stages a chunk without a row finished on its way (`--no-eval` across a stage's end)
    unrecorded_s = 0.0
    crossed = []
    if pos.source == "checkpoint" and ledger is not None:
        recorded = ledger_steps(ledger, plan)
        for j in range(pos.stage):
            part = unrecorded_steps(run_dir(runs, plan, j), recorded.get(plan.stages[j].name))
            if part is not None:
                crossed.append(f"{plan.stages[j].name} {part[0]}→{part[1]}")
                images += part[2]
                unrecorded_s += part[3]
        rec = recorded.get(plan.stages[pos.stage].name)
        step_from = 0 if rec is None else min(rec, pos.step)
    while True:
        stage = plan.stages[stage_i]
        cfg = load_config(stage.config, stage.overrides)
        cfg["data"]["train"] = str(data_root / "train")
        out = run_dir(runs, plan, stage_i)
        resume = (out / "checkpoint.pt").is_file()
        trainer = Trainer(cfg, out, device=device, resume=resume, init_weights=None if resume else (str(init) if init else None),
                          start_step=0 if resume else start_step, progress=progress)
        first = min(trainer.step, step_from) if stage_i == pos.stage else trainer.step
        if first < trainer.step:
            unrecorded_s += trainer.elapsed - log_seconds(out, first)
        trainer.fit(max_minutes=(deadline - time.monotonic()) / 60.0)
        images += _images_seen(trainer, first, trainer.step)
        export = export_path(runs, plan, stage_i)
        if export.exists():
            export.unlink()
        trainer.export(export, {"stage": stage.name, "device": device, "chunk_images": images, "step_from": step_from,
                                "chunk_minutes": round((time.monotonic() - t_start + unrecorded_s) / 60.0, 2)})
        if trainer.stopped_by_signal or trainer.step < trainer.total_steps or stage_i + 1 >= len(plan.stages) \
                or deadline - time.monotonic() < min_stage_s:
            break
        # stage complete: the next one starts from this export
        crossed.append(f"{stage.name} {step_from}→{trainer.step}")
        stage_i, init, start_step, step_from = stage_i + 1, export, 0, 0
    stage = plan.stages[stage_i]
    label = " + ".join(crossed + [stage.name])
    report = ChunkReport(start_desc, label, step_from, trainer.step, images, (time.monotonic() - t_start + unrecorded_s) / 60.0, export,
                         stopped_by_signal=trainer.stopped_by_signal)
    if report.stopped_by_signal:
        # whoever sent SIGTERM wants the process gone: the checkpoint and the export are written, the
        # evaluation (minutes) is not run; the next chunk's ledger row counts these steps
        print(f"[release] stopped by SIGTERM at {stage.name} step {trainer.step}: checkpoint and export written, "
              "evaluation skipped; the same command continues from here", flush=True)
    elif evaluate_after:
        finish_chunk(plan, stage_i, report, data_root, runs, device, ship, ledger, threads, residual_trained(plan, stage_i))
    return report


def residual_trained(plan: ReleasePlan, stage_i: int) -> bool:
    return any(s.residual for s in plan.stages[: stage_i + 1])


def finish_chunk(plan: ReleasePlan, stage_i: int, report: ChunkReport, data_root: Path, runs: Path, device: str,
                 ship: bool, ledger: Optional[Path], threads: Optional[int], residual: bool) -> None:
    """Evaluate ``report.export``, ship it when better (with ``ship``) and append the ledger row."""
    stage = plan.stages[stage_i]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    report.eval, report.eval_command = evaluate(report.export, data_root, runs / f"eval-{stamp}", residual, threads, plan)
    manifest = read_manifest(manifest_path(plan))
    entry = manifest.get(plan.model)
    report.shipped = ship and is_better(report.eval, entry, stage, (entry or {}).get("stage"), plan)
    if report.shipped:
        ship_weights(plan, stage, report.export, report.step_to, report, manifest)
    row = {"date": _dt.date.today().isoformat(), "device": device, "minutes": report.minutes, "stage": report.stage,
           "step_from": report.step_from, "step_to": report.step_to, "images": report.images, "eval": report.eval,
           "shipped": report.shipped}
    if ledger is not None:
        append_ledger(ledger, row, plan)


def adopt(model: str, export: Path, *, data: Optional[Path] = None, runs: Path = Path("runs/release"), ship: bool = False,
          ledger: Optional[Path] = None, threads: Optional[int] = None) -> ChunkReport:
    """Evaluate an export written by a chunk on another machine (``release --no-eval``
    on a lent GPU), ship it when better and append its ledger row: the export's
    metadata says which stage and step it reached and how long the chunk took.
    A plain ``compressai-rdc train RECIPE --export`` of one of the plan's stage
    recipes is adopted as that stage, its whole run (steps 0 → step) the chunk."""
    from safetensors import safe_open

    from compressai_rdc.data import find_data_dir

    plan = plan_for(model)
    export = Path(export)
    if not export.is_file():
        raise InvalidArgumentError(f"export {str(export)!r} does not exist")
    with safe_open(str(export), "pt") as f:
        meta = f.metadata() or {}
    if "stage" not in meta and "run_images" in meta:  # a plain training run's export
        by_recipe = {s.config: s.name for s in plan.stages}
        if meta.get("recipe") not in by_recipe:
            raise InvalidArgumentError(
                f"{str(export)!r} was trained with recipe {meta.get('recipe')!r}, not one of the {plan.model} plan's stages "
                f"({', '.join(f'{c} ({n})' for c, n in by_recipe.items())})"
            )
        meta = {**meta, "stage": by_recipe[meta["recipe"]], "step_from": "0", "chunk_images": meta["run_images"],
                "chunk_minutes": str(float(meta["run_seconds"]) / 60.0)}
    if "stage" not in meta or "step" not in meta:
        raise InvalidArgumentError(f"{str(export)!r} has no release metadata (stage, step): was it written by "
                                   "`compressai-rdc release` or `compressai-rdc train --export`?")
    stage_i = plan.index(meta["stage"])
    data_root = Path(data) if data else find_data_dir()
    if data_root is None:
        raise InvalidArgumentError("adopting needs the data folder (kodak/, imagenet-dev/): pass --data DIR or set COMPRESSAI_RDC_DATA")
    step = int(meta["step"])
    report = ChunkReport(f"adopted {export.name}", meta["stage"], int(meta.get("step_from", step)), step,
                         int(meta.get("chunk_images", 0)), float(meta.get("chunk_minutes", 0.0)), export)
    finish_chunk(plan, stage_i, report, data_root, Path(runs), meta.get("device", "?"), ship, ledger, threads,
                 residual_trained(plan, stage_i))
    return report


def ship_weights(plan: ReleasePlan, stage: Stage, export: Path, step: int, report: ChunkReport,
                 manifest: Dict[str, Any]) -> Path:
    """Copy ``export`` into the package as ``<model>-<stage>-<sha8>.safetensors``,
    record it in the manifest and remove the file it replaces."""
    from compressai_rdc.training.trainer import lineage_images
    from compressai_rdc.zoo._pretrained import sha256_file

    digest = sha256_file(export)
    home = weights_dir(plan)
    home.mkdir(parents=True, exist_ok=True)
    dest = home / f"{plan.model}-{stage.name}-{digest[:8]}.safetensors"
    shutil.copyfile(export, dest)
    os.chmod(dest, 0o644)
    old = manifest.get(plan.model, {}).get("file")
    # the images behind the new weights: the export's own lineage (every run it descends from);
    # an export without one (older trainers) is counted as the shipped weights' images plus this chunk
    images = lineage_images(export)
    if images is None:
        images = int(manifest.get(plan.model, {}).get("images", 0)) + report.images if old and manifest[plan.model].get("stage") in {s.name for s in plan.stages} else report.images
    manifest[plan.model] = {
        "file": dest.name, "sha256": digest, "stage": stage.name, "recipe": stage.config, "step": step,
        "images": images, "eval": {k: v for k, v in report.eval.items() if k != "curves"},
        # the evaluated weights file (a run folder's export) becomes <file>; other files (a classifier's) stay
        "eval_command": re.sub(r"(--(?:model|compressai) [^\s:]+:(?:[^\s]*,)?(?:weights|checkpoint)=)[^,\s]+", r"\1<file>", report.eval_command),
    }
    if any(s.residual for s in plan.stages):  # the β the zoo decodes these weights with (1: no trained residual yet)
        manifest[plan.model]["beta"] = 0.0 if residual_trained(plan, plan.index(stage.name)) else 1.0
    write_manifest(manifest, manifest_path(plan))
    if old and old != dest.name and (home / old).is_file():
        (home / old).unlink()
    return dest


__all__ = [
    "PLANS", "Evaluation", "Position", "ReleasePlan", "Stage", "adopt", "append_ledger", "continue_release", "eval_argv", "interpolate_at",
    "beta0_margin", "is_better", "objective_pair", "plan_for", "read_manifest", "restart_at", "summarize", "where_it_stands",
]
