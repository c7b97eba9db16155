"""DDP helpers: one code path for 1 process or ``torchrun --nproc_per_node N``.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup`
reads them, picks NCCL on CUDA and gloo on CPU, and binds each rank to its GPU.
Rank 0 alone logs and writes checkpoints; every rank reads the same global
batch order and takes its slice (see :class:`compressai_rdc.training.data.CropSampler`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: Optional[str] = None) -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (idempotent).

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``None`` = CUDA when available.
            Under DDP with CUDA each rank uses ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and (world > 1 or dev.index is None):
        # torch.cuda.set_device needs an index ("cuda" alone is refused by torch >= 2.11)
        dev = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown(*, sync: bool = True) -> None:
    """Destroy the process group before the interpreter exits (idempotent).

    A gloo process group owns C++ worker threads. Left alive until exit, it is
    destroyed by static destructors after Python has finalised, while those
    threads are still joinable: ``std::terminate`` ("terminate called without
    an active exception", exit -6), on whichever rank gets there first, so
    ``torchrun`` reports failure after a successful run. Call this at the end
    of every DDP program. ``sync`` waits at a barrier first so that no rank
    tears down its connections while a peer still talks to it (pass ``False``
    on an error path, where a peer may never arrive).
    """
    if dist.is_available() and dist.is_initialized():
        if sync:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean_grads(params: Iterable[Tensor]) -> None:
    """Average ``.grad`` of ``params`` over ranks (parts DDP does not wrap:
    the aux quantiles and the discriminator)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_strings(value: str) -> List[str]:
    """Every rank's ``value``, in rank order (``[value]`` without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    out: List[Optional[str]] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return [str(v) for v in out]


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's value of ``flag`` on every rank (e.g. "stop now: budget spent")."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


__all__ = ["DistInfo", "all_reduce_mean_grads", "barrier", "broadcast_flag", "gather_strings", "setup", "teardown"]
