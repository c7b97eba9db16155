"""Sharding the evaluation across processes (``torchrun``) and merging on rank 0.

::

    torchrun --nproc_per_node 4 -m compressai_rdc eval --dataset ... --codec jpeg

Each rank evaluates images ``rank, rank + W, rank + 2W, …``; per-image records
are gathered with :func:`torch.distributed.gather_object` and only rank 0
aggregates and writes outputs. Without ``torchrun`` (``WORLD_SIZE`` unset or 1)
everything runs in this process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size``; ``local_rank`` picks the GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: Optional[str] = None) -> DistInfo:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1`` (NCCL on CUDA, else Gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = (device or "").startswith("cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(rank, world, local)


def gather_to_main(obj: Any, info: DistInfo) -> Optional[List[Any]]:
    """Every rank's ``obj`` as a list on rank 0 (``None`` on the others)."""
    if not info.enabled:
        return [obj]
    out: Optional[List[Any]] = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


__all__ = ["DistInfo", "barrier", "gather_to_main", "init_distributed"]
