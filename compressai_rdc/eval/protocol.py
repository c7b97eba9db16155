"""The evaluation protocol: which pixels a codec sees and how they are cached.

Two input protocols (``../shared/data/README.md``):

``full``
    the whole image, as stored (Kodak: 768×512); bpp on all its pixels.
``crop256``
    the **cognition protocol**: short side → 256 (bicubic, antialiased), centre
    crop 256×256 (:func:`compressai_rdc.data.cognition_crop`). That crop is the
    codec input, bpp is counted on its 65,536 pixels, and the task sees the
    decoded crop through its own evaluation transform (for
    ``tf_efficientnet_lite0``: centre crop 224, mean = std = 0.5).

Protocol outputs are rounded to 8 bits (the codec input is an 8-bit image) and
kept in memory once per dataset, so every codec and operating point reuses the
same uncompressed crops. Loading runs in ``workers`` data-loader processes and,
under ``torchrun``, each rank loads only its shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from compressai_rdc.errors import DatasetError, InvalidArgumentError

CROP_SIZE = 256


def _full(img: torch.Tensor) -> torch.Tensor:
    return img


def _crop256(img: torch.Tensor) -> torch.Tensor:
    from compressai_rdc.data import cognition_crop

    return cognition_crop(img, CROP_SIZE)


PROTOCOLS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"full": _full, "crop256": _crop256}


@dataclass
class EvalData:
    """One dataset after the protocol: 8-bit images with their targets.

    Attributes:
        name: dataset label.
        root: folder.
        protocol: ``"full"`` or ``"crop256"``.
        task_name: name of the machine task or ``None`` (rate–distortion only).
        indices: global indices of the images held here (this rank's shard).
        images: ``(3, H, W)`` uint8 tensors.
        targets: task targets (``None`` without a task).
        total: number of images over all ranks.
    """

    name: str
    root: str
    protocol: str
    task_name: Optional[str]
    indices: List[int]
    images: List[torch.Tensor]
    targets: List[Any]
    total: int
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def pixels(self) -> List[int]:
        return [im.shape[1] * im.shape[2] for im in self.images]


class _Unlabelled(Dataset):
    def __init__(self, root: str):
        from compressai_rdc.data import ImageFolder

        self.inner = ImageFolder(root)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        return self.inner[i], None


class _Protocol(Dataset):
    """Applies the protocol and 8-bit rounding inside data-loader workers."""

    def __init__(self, inner: Dataset, protocol: str):
        self.inner, self.fn = inner, PROTOCOLS[protocol]

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        img, target = self.inner[i]
        return self.fn(img).clamp(0, 1).mul(255).round().to(torch.uint8), target


def _identity(item: Any) -> Any:
    return item


def load_eval_data(
    name: str,
    root: str,
    *,
    task: Optional[Any] = None,
    protocol: Optional[str] = None,
    limit: Optional[int] = None,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    progress: bool = False,
) -> EvalData:
    """Load, crop and cache a dataset (this rank's shard of its first ``limit`` images).

    Args:
        name: dataset label.
        root: folder (unlabelled images, or the task's dataset layout).
        task: a :class:`compressai_rdc.tasks.Task` (its ``load_dataset`` reads
            targets) or ``None`` for rate–distortion only.
        protocol: ``"full"`` or ``"crop256"``; ``None`` = the task's default
            (``crop256`` for classification), else ``full``.
        limit: keep the first ``limit`` images (sorted by file name).
        rank, world_size: shard ``rank`` of ``world_size`` (round-robin).
        workers: data-loader processes.
        progress: show a progress bar.
    """
    if not Path(root).is_dir():
        raise DatasetError(f"dataset {name!r}: folder {root!r} not found")
    protocol = protocol or (task.default_protocol if task is not None else "full")
    if protocol not in PROTOCOLS:
        raise InvalidArgumentError(f"dataset {name!r}: protocol {protocol!r} is unknown; valid: {', '.join(PROTOCOLS)}")
    if task is not None and protocol not in task.protocols:
        raise InvalidArgumentError(
            f"dataset {name!r}: task {task.name!r} supports protocols {', '.join(task.protocols)}, not {protocol!r}"
        )
    base: Dataset = task.load_dataset(root) if task is not None else _Unlabelled(root)
    n = len(base)  # type: ignore[arg-type]
    if limit is not None:
        if limit < 1:
            raise InvalidArgumentError(f"--limit must be >= 1, got {limit}")
        n = min(n, limit)
    indices = list(range(rank, n, world_size))
    loader = DataLoader(
        Subset(_Protocol(base, protocol), indices),
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
    )
    images: List[torch.Tensor] = []
    targets: List[Any] = []
    from tqdm.auto import tqdm

    for img, target in tqdm(loader, total=len(indices), desc=f"load {name}", disable=not progress, leave=False):
        images.append(img)
        targets.append(target)
    return EvalData(name, str(root), protocol, task.name if task is not None else None, indices, images, targets, n)


__all__ = ["CROP_SIZE", "EvalData", "PROTOCOLS", "load_eval_data"]
