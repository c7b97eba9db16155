"""From command-line specs to codecs and datasets (see :mod:`compressai_rdc.eval.spec`).

Dataset parameters ``task`` and ``protocol`` pick the machine task and input
protocol; every other parameter goes to the task's constructor (``model``,
``weights``, ``num_classes``, ...). Without ``task=``, a folder is a
classification set when all its images are named ``<class index>_<synset>.<ext>``
(like ``imagenet-dev``), and rate–distortion only otherwise (like ``kodak``);
``task=none`` forces rate–distortion only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

from compressai_rdc.errors import DatasetError
from compressai_rdc.eval.codecs import Codec, build_classical_codec, build_compressai_codec, build_registered_codec
from compressai_rdc.eval.runner import DatasetConfig
from compressai_rdc.eval.spec import parse_dataset, parse_spec

_LABELLED = re.compile(r"^\d+_[A-Za-z0-9]+$")


def detect_task(root: str) -> Optional[str]:
    """``"classification"`` for ``<idx>_<synset>.<ext>`` folders, else ``None``."""
    from compressai_rdc.data import IMAGE_EXTENSIONS

    p = Path(root)
    if not p.is_dir():
        raise DatasetError(f"dataset folder not found: {root!r}")
    files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    if files and all(_LABELLED.match(f.stem) for f in files):
        return "classification"
    return None


def build_dataset(text: str, *, device: str = "cpu", batch_size: int = 32) -> DatasetConfig:
    """``NAME=DIR[:task=...,protocol=...,limit=N,<task option>=...]`` → :class:`DatasetConfig`."""
    from compressai_rdc.errors import InvalidArgumentError
    from compressai_rdc.registry import TASKS

    spec = parse_dataset(text)
    params = dict(spec.params)
    protocol = params.pop("protocol", None)
    limit = params.pop("limit", None)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"limit={limit!r} of dataset {spec.name!r} is invalid; valid: an integer >= 1")
    task_name = params.pop("task", "auto")
    if task_name == "auto":
        task_name = detect_task(spec.root)
    elif isinstance(task_name, str) and task_name.lower() == "none":
        task_name = None
    task = None
    if task_name is not None:
        cls = TASKS.get(task_name)
        params.setdefault("device", device)
        params.setdefault("batch_size", batch_size)
        task = cls(**params)
    elif params:
        raise InvalidArgumentError(f"dataset {spec.name!r} has no task, so options {sorted(params)} mean nothing; valid: task, protocol, limit")
    return DatasetConfig(spec.name, spec.root, task, protocol, limit)


def build_codecs(classical: List[str] = (), compressai: List[str] = (), models: List[str] = ()) -> List[Codec]:
    """Codecs from ``--codec``, ``--compressai`` and ``--model`` specs, in that order."""
    out: List[Codec] = []
    out += [build_classical_codec(parse_spec(t)) for t in classical]
    out += [build_compressai_codec(parse_spec(t)) for t in compressai]
    out += [build_registered_codec(parse_spec(t)) for t in models]
    return out


__all__ = ["build_codecs", "build_dataset", "detect_task"]
