"""Bjøntegaard deltas of every curve against an anchor (``bjontegaard`` package).

For each dataset and each curve (a codec, or a codec at fixed β / layers /
quality-map strategy, over its rate points) against the anchor's curve:

==================  ===========================================================
``bd-rate-psnr``    average bitrate change (%) at equal PSNR (negative = saves bits)
``bd-psnr``         average PSNR change (dB) at equal bitrate
``bd-rate-<task>``  average bitrate change (%) at equal task metric (e.g. top-1)
``bd-<task>``       average task-metric change at equal bitrate (BD-accuracy, points of %)
==================  ===========================================================

Computed with :func:`bjontegaard.bd_rate` / :func:`bjontegaard.bd_psnr`
(Bjøntegaard, VCEG-M33, 2001; Herglotz et al. 2022 for the Akima variant).
A value is ``nan`` with its reason when a curve has fewer than two points,
is not monotonic, or does not overlap the anchor.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from compressai_rdc.eval.runner import EvalResults, PointResult

BD_METHODS = ("akima", "pchip", "cubic")


@dataclass
class BDRow:
    """BD values of one curve against the anchor on one dataset."""

    dataset: str
    curve: str
    anchor: str
    values: Dict[str, float]
    notes: Dict[str, str]


def curve_label(p: PointResult, rate_keys: Sequence[str]) -> str:
    """``codec`` plus the non-rate keys of its operating point (``rdc-versatile[beta=0]``)."""
    fixed = [(k, v) for k, v in p.op.params if k not in rate_keys]
    return p.codec + (f"[{','.join(f'{k}={v}' for k, v in fixed)}]" if fixed else "")


def curves(results: EvalResults, dataset: str, rate_keys: Dict[str, Sequence[str]]) -> Dict[str, List[PointResult]]:
    """Points of ``dataset`` grouped into rate curves (reference codecs excluded), sorted by bpp."""
    out: Dict[str, List[PointResult]] = {}
    for p in results.select(dataset=dataset):
        if p.kind == "reference":
            continue
        out.setdefault(curve_label(p, rate_keys.get(p.codec, ())), []).append(p)
    return {k: sorted(v, key=lambda p: p.values["bpp"]) for k, v in out.items()}


def _delta(kind: str, ra, ma, rt, mt, method: str) -> Tuple[float, str]:
    import bjontegaard as bd

    ra, ma, rt, mt = map(np.asarray, (ra, ma, rt, mt))
    for name, r, m in (("anchor", ra, ma), ("test", rt, mt)):
        if len(r) < 2:
            return float("nan"), f"{name} has {len(r)} point(s); need >= 2"
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(m))):
            return float("nan"), f"{name} has non-finite values"
        if np.any(np.diff(r) <= 0):
            return float("nan"), f"{name} rates are not strictly increasing"
        if kind == "rate" and np.any(np.diff(m) <= 0):
            return float("nan"), f"{name} metric is not strictly increasing with rate"
    fn = bd.bd_rate if kind == "rate" else bd.bd_psnr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn(ra, ma, rt, mt, method=method, require_matching_points=False))
    note = "; ".join(str(w.message) for w in caught)
    return value, note


def bd_table(results: EvalResults, anchor: str, rate_keys: Dict[str, Sequence[str]], task_metrics: Dict[str, Optional[str]], method: str = "akima") -> List[BDRow]:
    """BD rows of every curve against the ``anchor`` codec's curve on every dataset.

    Args:
        results: evaluation results.
        anchor: codec label of the anchor (e.g. ``"avif"``).
        rate_keys: per codec, the operating-point keys that move along its rate curve.
        task_metrics: per dataset, the task's primary metric (or ``None``).
        method: interpolation (``akima``, ``pchip``, ``cubic``).
    """
    rows: List[BDRow] = []
    for dataset in results.datasets:
        cs = curves(results, dataset, rate_keys)
        anchors = [k for k in cs if k == anchor]
        if not anchors:
            continue
        a = cs[anchor]
        metrics = ["psnr-rgb"] if "psnr-rgb" in results.metrics else []
        tm = task_metrics.get(dataset)
        if tm:
            metrics.append(tm)
        for label, pts in cs.items():
            if label == anchor:
                continue
            values: Dict[str, float] = {}
            notes: Dict[str, str] = {}
            for m in metrics:
                short = "psnr" if m == "psnr-rgb" else m
                ra, ma = [p.values["bpp"] for p in a], [p.values[m] for p in a]
                rt, mt = [p.values["bpp"] for p in pts], [p.values[m] for p in pts]
                for kind, key in (("rate", f"bd-rate-{short}"), ("metric", f"bd-{short}")):
                    values[key], note = _delta(kind, ra, ma, rt, mt, method)
                    if note:
                        notes[key] = note
            rows.append(BDRow(dataset, label, anchor, values, notes))
    return rows


__all__ = ["BDRow", "BD_METHODS", "bd_table", "curve_label", "curves"]
