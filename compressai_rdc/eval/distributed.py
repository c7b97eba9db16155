"""Sharding the evaluation across processes (``torchrun``) and merging on rank 0.

::

    torchrun --nproc_per_node 4 -m compressai_rdc eval --dataset ... --codec jpeg

Each rank evaluates images ``rank, rank + W, rank + 2W, …``; per-image records
are gathered with :func:`torch.distributed.gather_object` and only rank 0
aggregates and writes outputs. Without ``torchrun`` (``WORLD_SIZE`` unset or 1)
everything runs in this process.
"""

from __future__ import annotations

from typing import Any, List, Optional

import torch.distributed as dist

from compressai_rdc.training.distributed import DistInfo, setup


def init_distributed(device: Optional[str] = None) -> DistInfo:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1`` (NCCL on CUDA, else Gloo);
    the same set-up as training (:func:`compressai_rdc.training.distributed.setup`)."""
    return setup(device or "cpu")


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
