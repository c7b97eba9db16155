"""The evaluation loop: every dataset × codec × operating point × image.

::

    for dataset:                       protocol → cached 8-bit inputs (this rank's shard)
      for codec (uncompressed first):
        for image:                     ── progress bar
          for encode group:            one encode per group of operating points
            bytes = encode(x)            (β and layers only change decoding)
            for op in group:
              x̂ = decode(select(bytes, op))      bpp = 8·len(select(bytes, op)) / (H·W)
              queue (x, x̂, target) for op; full queue → batched metrics + task
        gather per-image records on rank 0 → means (bpp, PSNR, …) and task.summarize

The result is an :class:`EvalResults`: one :class:`PointResult` per
(dataset, codec, operating point), written out by :mod:`compressai_rdc.eval.outputs`.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from compressai_rdc.eval.codecs import Codec, Uncompressed
from compressai_rdc.eval.distributed import DistInfo, gather_to_main
from compressai_rdc.eval.metrics import DEFAULT_METRICS, check_size, compute_metrics
from compressai_rdc.eval.protocol import EvalData, load_eval_data
from compressai_rdc.eval.spec import OperatingPoint
from compressai_rdc.tasks.base import Task


@dataclass
class DatasetConfig:
    """A dataset to evaluate: folder, optional task and protocol, and an optional
    image limit of its own (``--dataset NAME=DIR:limit=N``; overrides ``--limit``)."""

    name: str
    root: str
    task: Optional[Task] = None
    protocol: Optional[str] = None
    limit: Optional[int] = None


@dataclass
class PointResult:
    """Averages over a dataset for one codec operating point.

    ``values`` holds ``bpp``, the image metrics, the task metrics (accuracy in %)
    and ``encoding_time``/``decoding_time`` (seconds per image).
    """

    dataset: str
    codec: str
    kind: str
    op: OperatingPoint
    n_images: int
    values: Dict[str, float]
    per_image: List[Dict[str, Any]] = field(default_factory=list)

    def row(self) -> Dict[str, Any]:
        return {"dataset": self.dataset, "codec": self.codec, "kind": self.kind, "point": self.op.label, **self.op.dict, "n_images": self.n_images, **self.values}


@dataclass
class EvalResults:
    """Everything one ``compressai-rdc eval`` run measured."""

    points: List[PointResult] = field(default_factory=list)
    datasets: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    codecs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    metrics: Tuple[str, ...] = ()

    def select(self, dataset: Optional[str] = None, codec: Optional[str] = None) -> List[PointResult]:
        return [p for p in self.points if (dataset is None or p.dataset == dataset) and (codec is None or p.codec == codec)]


class _Queue:
    """Decoded images of one operating point waiting for batched metrics and task."""

    def __init__(self) -> None:
        self.items: List[Tuple[int, torch.Tensor, torch.Tensor, Any]] = []
        self.records: List[Dict[str, Any]] = []

    def flush(self, metrics: Sequence[str], task: Optional[Task], device: torch.device) -> None:
        by_shape: Dict[Tuple[int, ...], List[int]] = defaultdict(list)
        for j, (_, ref, _, _) in enumerate(self.items):
            by_shape[tuple(ref.shape)].append(j)
        values: Dict[int, Dict[str, Any]] = {}
        for js in by_shape.values():
            ref = torch.stack([self.items[j][1] for j in js]).to(device)
            dec = torch.stack([self.items[j][2] for j in js]).to(device)
            m = compute_metrics(ref, dec, metrics)
            for n, j in enumerate(js):
                values[j] = {k: float(v[n]) for k, v in m.items()}
        if task is not None:
            images = [it[2].to(task.device).float().div_(255.0) for it in self.items]
            for j, rec in enumerate(task.predict(images, [it[3] for it in self.items])):
                values[j]["_task"] = rec
        for j, it in enumerate(self.items):
            self.records[len(self.records) - len(self.items) + j].update(values[j])
        self.items.clear()


def evaluate_codec(
    data: EvalData,
    codec: Codec,
    *,
    task: Optional[Task],
    metrics: Sequence[str],
    batch_size: int = 16,
    dist: DistInfo = DistInfo(),
    progress: bool = False,
    keep_per_image: bool = False,
) -> List[PointResult]:
    """Evaluate every operating point of ``codec`` on ``data`` (see module docstring).

    Returns the merged results on rank 0 and ``[]`` on other ranks.
    """
    from tqdm.auto import tqdm

    ops = codec.operating_points()
    groups: "OrderedDict[Any, List[OperatingPoint]]" = OrderedDict()
    for op in ops:
        groups.setdefault(codec.encode_key(op), []).append(op)
    queues = {op: _Queue() for op in ops}
    device = codec.device
    bar = tqdm(total=len(data.images) * len(ops), desc=f"{data.name} · {codec.name}", disable=not progress, unit="img")
    for idx, img, target in zip(data.indices, data.images, data.targets):
        size = (img.shape[1], img.shape[2])
        for gops in groups.values():
            stream, t_enc = codec.timed(codec.encode, img, gops[0])
            for op in gops:
                payload = codec.select(stream, op)
                x_hat, t_dec = codec.timed(codec.decode, payload, op, size)
                q = queues[op]
                q.records.append({"index": idx, "bytes": len(payload), "bpp": 8.0 * len(payload) / (size[0] * size[1]), "encoding_time": t_enc, "decoding_time": t_dec})
                q.items.append((idx, img, x_hat, target))
                if len(q.items) >= batch_size:
                    q.flush(metrics, task, device)
                bar.update(1)
    bar.set_postfix_str("scoring the last batches")
    for q in queues.values():
        if q.items:
            q.flush(metrics, task, device)
    bar.close()

    gathered = gather_to_main({op.params: q.records for op, q in queues.items()}, dist)
    if gathered is None:
        return []
    results = []
    for op in ops:
        records = sorted((r for part in gathered for r in part[op.params]), key=lambda r: r["index"])
        values: Dict[str, float] = {}
        for key in ("bpp", *metrics):
            values[key] = _mean([r[key] for r in records])
        if task is not None:
            values.update(task.summarize([r["_task"] for r in records]))
        for key in ("encoding_time", "decoding_time"):
            values[key] = _mean([r[key] for r in records])
        per_image = [{k: v for k, v in r.items() if k != "_task"} for r in records] if keep_per_image else []
        results.append(PointResult(data.name, codec.name, codec.kind, op, len(records), values, per_image))
    return results


def _mean(values: Sequence[float]) -> float:
    if not values:
        return float("nan")
    if any(math.isinf(v) for v in values):
        return float("inf")
    return float(sum(values) / len(values))


def run_evaluation(
    datasets: Sequence[DatasetConfig],
    codecs: Sequence[Codec],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    device: str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    limit: Optional[int] = None,
    uncompressed: bool = True,
    dist: DistInfo = DistInfo(),
    progress: bool = False,
    keep_per_image: bool = False,
) -> EvalResults:
    """Evaluate ``codecs`` on ``datasets``; the uncompressed reference comes first.

    Args:
        datasets: folders with their task and protocol.
        codecs: built codecs (:mod:`compressai_rdc.eval.codecs`).
        metrics: image metrics (:data:`compressai_rdc.eval.metrics.METRICS`).
        device: device of learned codecs and metrics (tasks carry their own).
        batch_size: decoded images per metric/task batch.
        workers: data-loader processes for reading and cropping images.
        limit: evaluate only the first ``limit`` images of each dataset without a
            limit of its own (:attr:`DatasetConfig.limit`).
        uncompressed: also evaluate the uncompressed input (24 bpp).
        dist: the ``torchrun`` shard of this process.
        progress: progress bars (rank 0 only).
        keep_per_image: keep per-image values in the results.
    """
    results = EvalResults(metrics=tuple(metrics))
    all_codecs: List[Codec] = ([Uncompressed()] if uncompressed else []) + list(codecs)
    names = [c.name for c in all_codecs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from compressai_rdc.errors import InvalidArgumentError

        raise InvalidArgumentError(f"codec label(s) {dupes} used twice; give each spec a distinct name=LABEL")
    for c in all_codecs:
        c.to(device)
        results.codecs[c.name] = c.describe()
    show = progress and dist.is_main
    for ds in datasets:
        data = load_eval_data(ds.name, ds.root, task=ds.task, protocol=ds.protocol, limit=ds.limit if ds.limit is not None else limit, rank=dist.rank, world_size=dist.world_size, workers=workers, progress=show)
        for img in data.images:
            check_size(metrics, (img.shape[1], img.shape[2]), ds.name)
        results.datasets[ds.name] = {
            "root": ds.root,
            "protocol": data.protocol,
            "n_images": data.total,
            **(ds.task.describe() if ds.task is not None else {"task": None}),
        }
        for codec in all_codecs:
            results.points.extend(
                evaluate_codec(data, codec, task=ds.task, metrics=metrics, batch_size=batch_size, dist=dist, progress=show, keep_per_image=keep_per_image)
            )
    return results


__all__ = ["DatasetConfig", "EvalResults", "PointResult", "evaluate_codec", "run_evaluation"]
