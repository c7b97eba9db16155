"""Numeric backend settings under which results must not change (bit-exactness checks).

:data:`SETUPS` lists the CPU settings that change float32 convolution results
(oneDNN on/off, intra-op thread count); :func:`numeric_setup` applies one and
restores the previous state; :func:`perturbed_output` injects a relative
error into a module's float output. Used by ``tests/test_exact_entropy.py`` and
``benchmarks/exact_entropy_params.py`` to show that the fixed-point entropy
parameters (:mod:`compressai_rdc.layers.fixed_point`) do not depend on them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Tuple

import torch

__all__ = ["SETUPS", "numeric_setup", "perturbed_output"]

#: (oneDNN enabled, intra-op threads); the first is the reference
SETUPS: Tuple[Tuple[bool, int], ...] = ((True, 1), (True, 2), (False, 1), (False, 2))


@contextlib.contextmanager
def numeric_setup(onednn: bool, threads: int) -> Iterator[None]:
    """oneDNN on/off and ``torch.set_num_threads(threads)`` inside the block, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.backends.mkldnn.flags(enabled=onednn):
            yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def perturbed_output(module: torch.nn.Module, rel: float) -> Iterator[None]:
    """Multiply ``module``'s output by ``1 + rel`` inside the block (a forward hook)."""
    handle = module.register_forward_hook(lambda _m, _i, out: out * (1.0 + rel))
    try:
        yield
    finally:
        handle.remove()
