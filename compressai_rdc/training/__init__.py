"""Training: recipes for both papers' staged training, one fast loop.

* :mod:`~compressai_rdc.training.recipes` – configs and per-stage controls
* :mod:`~compressai_rdc.training.trainer` – the loop (resume, bf16, compile, DDP)
* :mod:`~compressai_rdc.training.data` – in-memory random crops
* :mod:`~compressai_rdc.training.distributed` – ``torchrun`` helpers
* :mod:`~compressai_rdc.training.validation` – real-bitstream validation
* :mod:`~compressai_rdc.training.throughput` – images/s against the plain CompressAI loop
"""

from compressai_rdc.training.recipes import build_model, list_configs, load_config
from compressai_rdc.training.trainer import Trainer

__all__ = ["Trainer", "build_model", "list_configs", "load_config"]
