"""Machine tasks scored on decoded images (classification, detection, segmentation).

Each task is registered through the ``register_tasks`` hook (built-ins in
:mod:`compressai_rdc._builtin.evaluation`); :class:`Task` is the interface
third parties implement.
"""

from compressai_rdc.tasks.base import Task

__all__ = ["Task"]
