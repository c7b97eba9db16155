"""Keep memory that large tensors free inside the process (glibc ``mallopt``).

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (at most 32 MiB, by
default adjusted at run time) with a fresh ``mmap`` and returns it to the
kernel on ``free``. A codec allocates feature maps of tens of MiB per layer and
image, so every encode and decode maps, faults in and unmaps them again: on the
2-core machine one Kodak encode + decode of ``rdc-versatile`` caused 200,000
minor page faults and spent 40 % of its CPU time in the kernel. With both
thresholds raised, freed blocks stay in the heap and the next image reuses
them (measured in ``docs/evaluation.md``). The process keeps its peak memory
until it exits, which is what a command-line run wants; the library itself
never calls this: the ``compressai-rdc`` command does, for every sub-command,
unless ``COMPRESSAI_RDC_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["ENV", "keep_freed_memory"]

#: environment variable that turns the tuning off when set to ``0``
ENV = "COMPRESSAI_RDC_MALLOC_TUNING"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes.

    Returns ``True`` when both were set; ``False`` on a C library without
    ``mallopt`` (macOS, Windows, musl), where nothing changes.
    """
    if not isinstance(threshold, int) or not 0 < threshold <= 1 << 31:
        from compressai_rdc.errors import InvalidArgumentError

        raise InvalidArgumentError(f"threshold={threshold!r} is invalid; valid: an int in 1..2**31 (bytes)")
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, threshold))


def tune_from_env() -> bool:
    """:func:`keep_freed_memory` unless ``$COMPRESSAI_RDC_MALLOC_TUNING`` is ``0``."""
    return os.environ.get(ENV, "1") != "0" and keep_freed_memory()
