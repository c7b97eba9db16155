"""What the memory benchmarks share: peak-RSS figures read from ``/proc`` (Linux), and
running one measurement in a fresh interpreter (so that peaks never mix).

Child scripts import this module as ``_proc`` (:func:`run_child` puts this folder
on their ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss(field: str = "VmRSS") -> int:
    """Bytes of ``field`` of this process: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"/proc/self/status has no {field!r} line (Linux only)")


def reset_peak() -> int:
    """Reset the peak (``VmHWM``) to the current RSS; returns the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss("VmRSS")


def run_child(code: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -c code argv...`` with this folder importable; output captured.
    With ``check``, a failing child stops the benchmark with the end of its stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env)
    if check and r.returncode:
        raise SystemExit(f"child {' '.join(argv)} failed:\n{r.stderr[-3000:]}")
    return r
