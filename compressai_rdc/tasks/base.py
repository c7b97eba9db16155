"""The machine-task interface that evaluation runs on decoded images.

A task scores how useful decoded images are to a machine: classification
accuracy, detection mAP, segmentation mIoU. Third parties add tasks by
subclassing :class:`Task` and registering the class through the
``register_tasks`` hook::

    from compressai_rdc import hookimpl
    from compressai_rdc.tasks import Task

    class Counting(Task):
        name = "counting"; metric_names = ("mae",); primary_metric = "mae"; higher_is_better = False
        def load_dataset(self, root): ...          # items (image (3, H, W) in [0, 1], target)
        def predict(self, images, targets): ...    # one picklable record per image
        def summarize(self, records): ...          # {"mae": ...}

    @hookimpl
    def register_tasks(register):
        register("counting", Counting, description="object counting, mean absolute error")

Data flow in ``compressai-rdc eval`` (one dataset, one codec operating point)::

    load_dataset(root) ─► protocol (full | crop256) ─► codec encode/decode ─► x̂ (8-bit)
                                                                            │
                         records ◄─ predict([x̂₁..x̂_B], [t₁..t_B]) ◄──────────┘   (batched)
                         (gathered from every rank under torchrun)
                         summarize(records) ─► {"top-1": ..., ...}

Records are per image so that results can be sharded across processes and
merged on rank 0; ``summarize`` must give the same answer whatever order the
records come in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset

from compressai_rdc.errors import InvalidArgumentError

PathLike = Union[str, Path]


class Task(ABC):
    """A machine task evaluated on decoded images.

    Class attributes:
        name: registry key.
        metric_names: keys of :meth:`summarize`'s result, in display order.
        primary_metric: the metric plotted on rate–cognition curves and used for BD-accuracy.
        higher_is_better: direction of ``primary_metric``.
        protocols: input protocols the task's targets survive (``"crop256"``
            only for tasks whose targets do not depend on geometry).
        default_protocol: protocol used when the dataset spec names none.

    Args:
        device: where the task's network runs.
        batch_size: images per forward pass.
    """

    name: ClassVar[str] = ""
    metric_names: ClassVar[Tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    protocols: ClassVar[Tuple[str, ...]] = ("full",)
    default_protocol: ClassVar[str] = "full"

    def __init__(self, *, device: Union[str, torch.device] = "cpu", batch_size: int = 32):
        if int(batch_size) < 1:
            raise InvalidArgumentError(f"batch_size of task {self.name!r} must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)

    @abstractmethod
    def load_dataset(self, root: PathLike) -> Dataset:
        """The labelled dataset at ``root``: items ``(image (3, H, W) float in [0, 1], target)``."""

    @abstractmethod
    def predict(self, images: Sequence[torch.Tensor], targets: Sequence[Any]) -> List[Any]:
        """Run the task network on decoded images.

        Args:
            images: ``B`` tensors ``(3, H, W)`` in [0, 1] on :attr:`device`
                (equal sizes under the crop protocol; any sizes otherwise).
            targets: the ``B`` targets from :meth:`load_dataset`.

        Returns:
            ``B`` picklable per-image records (CPU tensors or numbers).
        """

    @abstractmethod
    def summarize(self, records: Sequence[Any]) -> Dict[str, float]:
        """Aggregate per-image records into ``{metric: value}`` for :attr:`metric_names`.

        Called on rank 0 only, with the records of every process already gathered
        (``eval --jobs`` / ``torchrun``): never synchronise here (a ``torchmetrics``
        metric needs ``sync_on_compute=False``, or it waits for the other ranks forever).
        """

    def describe(self) -> Dict[str, Any]:
        """Settings written into the result files (model name, weights, ...)."""
        return {"task": self.name}


def collate_targets(batch: Sequence[Tuple[torch.Tensor, Any]]) -> Tuple[List[torch.Tensor], List[Any]]:
    """``[(img, target), ...]`` → ``([img, ...], [target, ...])`` (no stacking)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def load_state_dict_any(path: Optional[PathLike], *, what: str) -> Optional[Dict[str, torch.Tensor]]:
    """Read a task network's ``.safetensors`` weights (never unpickles)."""
    if path is None:
        return None
    from compressai_rdc.zoo import load_state_dict_file
    from compressai_rdc.zoo._pretrained import clean_state_dict

    p = Path(path).expanduser()
    if not p.is_file():
        from compressai_rdc.errors import WeightsNotFoundError

        raise WeightsNotFoundError(f"weights file for {what} not found: {str(p)!r}")
    return clean_state_dict(load_state_dict_file(p))


__all__ = ["Task", "collate_targets", "load_state_dict_any"]
