"""Files written by ``compressai-rdc eval --out DIR``::

    DIR/
      <dataset>/<curve>.json       CompressAI eval_model layout, plus extra keys; one curve per
                                   file: <codec>.json, or <codec>-beta0.json, <codec>-beta1.json, ...
                                   when a codec is swept over β / layers / quality-map strategy
      <dataset>/<codec>-per-image.csv   (with --per-image)
      results.csv                  one row per dataset × codec × operating point, columns in the
                                   fixed order of :data:`CSV_HEAD` then the metrics (:func:`csv_columns`)
      bd.csv, bd.md                BD-rate / BD-PSNR / BD-accuracy against the anchor
      report.md                    results and BD tables in Markdown
      plots/<dataset>-{rd,rc,beta,dc}.{png,svg}
      run.json                     command line, versions, datasets, codecs

The JSON files follow CompressAI's ``eval_model`` output
(``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...],
"ms-ssim-rgb": [...], "encoding_time": [...], "decoding_time": [...]}}``, one
list entry per operating point) so CompressAI's plotting scripts read them;
extra keys: ``fsim``, task metrics (``top-1``, ``top-5`` in %), the operating
point keys (``quality``, ``rate``, ``beta``, ``layers``, ...), ``dataset``,
``protocol``, ``task`` and ``n_images``. Non-finite values (PSNR of the
uncompressed input) are written as ``null``. Each file holds one rate curve
(the points that differ only in rate keys) so ``compressai.utils.plot`` draws
lines, not zig-zags between β values.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.eval.bd import BDRow, curve_label
from compressai_rdc.eval.runner import EvalResults, PointResult

BASE_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "fsim")
TIME_KEYS = ("encoding_time", "decoding_time")
#: leading columns of results.csv, always in this order (empty when a codec has no such key)
CSV_HEAD = ("dataset", "codec", "kind", "point", "checkpoint", "quality", "rate", "target_bpp", "qmap", "level", "layers", "beta", "n_images", *BASE_KEYS)


def csv_columns(rows: Sequence[Dict[str, Any]], metrics: Sequence[str] = ()) -> List[str]:
    """Columns of a results CSV: :data:`CSV_HEAD`, the evaluated ``metrics``, other keys
    sorted by name, then the timings; the same for every run with the same options."""
    seen = {k for r in rows for k in r}
    head = [k for k in (*CSV_HEAD, *metrics) if k not in TIME_KEYS]
    head = list(dict.fromkeys(head))
    rest = sorted(k for k in seen if k not in head and k not in TIME_KEYS)
    return head + rest + list(TIME_KEYS)


def _curve_file(label: str) -> str:
    """``rdc-versatile[beta=0,layers=2]`` → ``rdc-versatile-beta0-layers2``."""
    if "[" not in label:
        return label
    codec, fixed = label[:-1].split("[", 1)
    return codec + "".join("-" + part.replace("=", "") for part in fixed.split(","))


def json_curves(results: EvalResults, dataset: str, rate_keys: Dict[str, Sequence[str]]) -> Dict[str, List[PointResult]]:
    """Points of ``dataset`` grouped into one list per eval JSON file (one rate curve each)."""
    out: Dict[str, List[PointResult]] = {}
    for p in results.select(dataset=dataset):
        out.setdefault(curve_label(p, rate_keys.get(p.codec, ())), []).append(p)
    return out


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds results (unless ``overwrite``)."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidArgumentError(f"output folder {str(out)!r} is not empty; choose another --out or pass --overwrite")


def eval_model_json(results: EvalResults, dataset: str, codec: str, points: Optional[Sequence[PointResult]] = None, name: Optional[str] = None) -> Dict[str, Any]:
    """One codec (or one of its curves: ``points``, labelled ``name``) on one dataset in
    CompressAI's ``eval_model`` layout."""
    pts = list(points) if points is not None else results.select(dataset=dataset, codec=codec)
    info = results.datasets[dataset]
    desc = results.codecs.get(codec, {})
    value_keys: List[str] = []
    for p in pts:
        value_keys += [k for k in p.values if k not in value_keys]
    op_keys: List[str] = []
    for p in pts:
        op_keys += [k for k in p.op.dict if k not in op_keys]
    res: Dict[str, List[Any]] = {k: [_finite(p.values.get(k)) for p in pts] for k in value_keys}
    for k in op_keys:
        res[k] = [_finite(p.op.get(k)) for p in pts]
    return {
        "name": name or codec,
        "description": f"Inference ({desc.get('description') or desc.get('library') or desc.get('kind', '')})",
        "dataset": dataset,
        "protocol": info["protocol"],
        "task": info.get("task"),
        "n_images": pts[0].n_images if pts else 0,
        "settings": desc,
        "results": res,
    }


def write_csv(path: Path, rows: Sequence[Dict[str, Any]], columns: Optional[Sequence[str]] = None) -> Path:
    """Rows as CSV; ``columns`` fixes the order (default: first seen)."""
    keys: List[str] = list(columns) if columns is not None else []
    for r in rows:
        keys += [k for k in r if k not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return path


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞"
        return f"{v:.{digits}f}"
    return str(v)


def markdown_results(results: EvalResults) -> str:
    """The results as one Markdown table per dataset."""
    lines: List[str] = []
    for ds, info in results.datasets.items():
        pts = results.select(dataset=ds)
        keys: List[str] = []
        for p in pts:
            keys += [k for k in p.values if k not in keys and k not in TIME_KEYS]
        keys += list(TIME_KEYS)
        lines += [f"### {ds}", "", f"{info['n_images']} images from `{info['root']}`, protocol `{info['protocol']}`, task `{info.get('task')}`.", ""]
        head = ["codec", "point", *keys]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for p in pts:
            cells = [p.codec, p.op.label] + [_fmt(p.values.get(k), 4 if k in ("ms-ssim-rgb", "fsim", "bpp") or k in TIME_KEYS else 2) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown_bd(rows: Sequence[BDRow]) -> str:
    """The BD rows as Markdown tables (one per dataset), with the reasons for ``n/a``."""
    lines: List[str] = []
    for ds in dict.fromkeys(r.dataset for r in rows):
        sub = [r for r in rows if r.dataset == ds]
        keys: List[str] = []
        for r in sub:
            keys += [k for k in r.values if k not in keys]
        lines += [f"### {ds} (anchor: {sub[0].anchor})", "", "| curve | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        notes: List[str] = []
        for r in sub:
            lines.append(f"| {r.curve} | " + " | ".join(_fmt(r.values[k], 2) for k in keys) + " |")
            notes += [f"- {r.curve}, {k}: {n}" for k, n in r.notes.items()]
        lines.append("")
        if notes:
            lines += ["Notes:", *notes, ""]
    return "\n".join(lines)


def write_outputs(
    results: EvalResults,
    out: Path,
    *,
    bd_rows: Sequence[BDRow] = (),
    plots: Sequence[Path] = (),
    argv: Optional[Sequence[str]] = None,
    per_image: bool = False,
    rate_keys: Optional[Dict[str, Sequence[str]]] = None,
) -> List[Path]:
    """Write JSON, CSV and Markdown files (see module docstring); returns them.

    ``rate_keys`` (per codec, the operating-point keys along its rate curve)
    splits a codec's JSON into one file per curve.
    """
    import torch

    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for ds in results.datasets:
        for label, pts in json_curves(results, ds, rate_keys or {}).items():
            path = out / ds / f"{_curve_file(label)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(eval_model_json(results, ds, pts[0].codec, pts, name=label), indent=2))
            written.append(path)
        for codec in dict.fromkeys(p.codec for p in results.select(dataset=ds)):
            if per_image:
                rows = [{"point": p.op.label, **r} for p in results.select(dataset=ds, codec=codec) for r in p.per_image]
                written.append(write_csv(out / ds / f"{codec}-per-image.csv", rows))
    rows = [p.row() for p in results.points]
    written.append(write_csv(out / "results.csv", rows, csv_columns(rows, results.metrics)))
    if bd_rows:
        written.append(write_csv(out / "bd.csv", [{"dataset": r.dataset, "curve": r.curve, "anchor": r.anchor, **r.values} for r in bd_rows]))
        (out / "bd.md").write_text(markdown_bd(bd_rows))
        written.append(out / "bd.md")
    report = ["# compressai-rdc eval", ""]
    if argv is not None:
        report += ["```", "compressai-rdc eval " + " ".join(argv), "```", ""]
    report += ["## Results", "", markdown_results(results)]
    if bd_rows:
        report += ["## Bjøntegaard deltas", "", markdown_bd(bd_rows)]
    if plots:
        report += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plots if p.suffix == ".png"]
    (out / "report.md").write_text("\n".join(report) + "\n")
    written.append(out / "report.md")
    import PIL

    from compressai_rdc import __version__

    run = {
        "argv": list(argv) if argv is not None else None,
        "versions": {"compressai_rdc": __version__, "torch": torch.__version__, "pillow": PIL.__version__, "python": sys.version.split()[0]},
        "datasets": results.datasets,
        "codecs": results.codecs,
        "metrics": list(results.metrics),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str))
    written.append(out / "run.json")
    return written


__all__ = ["CSV_HEAD", "check_out_dir", "csv_columns", "eval_model_json", "json_curves", "markdown_bd", "markdown_results", "write_csv", "write_outputs"]
