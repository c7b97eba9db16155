"""Run CompressAI's unchanged ``eval_model`` with compressai-rdc's plugins loaded.

``python -m compressai_rdc.eval_model pretrained ../shared/data/kodak -a rdc-versatile -q 1,3,5``
takes exactly CompressAI's arguments; plugin models are in its name tables
because loading the plugins runs the registry bridge first.

``checkpoint ... -p FILE`` never unpickles: CompressAI 1.2.8 reads checkpoints
with ``torch.load(path)``, which runs arbitrary code from a pickle on torch
< 2.6 (this project allows torch >= 2.1). Its loader is replaced here by
:func:`load_checkpoint`: ``.safetensors`` files are read as tensors, other
files with ``torch.load(weights_only=True)``, which refuses pickled code with
:class:`~compressai_rdc.errors.WeightsFormatError`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from torch import nn

from compressai_rdc._plugins import load_plugins


def load_checkpoint(arch: str, no_update: bool, checkpoint_path: str) -> nn.Module:
    """CompressAI's ``eval_model`` checkpoint loader, without unpickling code."""
    from compressai.zoo.image import model_architectures as architectures

    from compressai_rdc.zoo._pretrained import read_tensors_file

    checkpoint = read_tensors_file(Path(checkpoint_path))
    state_dict = checkpoint
    for key in ("network", "state_dict", "model_state_dict"):  # CompressAI's wrapper keys
        if key in checkpoint:
            state_dict = checkpoint[key]
    model_cls = architectures[arch]
    if arch in ("bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr"):
        net = model_cls.from_state_dict(state_dict, vr_entbttlnck=True)
        if not no_update:
            net.update(force=True, scale=net.Gain[-1])
    else:
        net = model_cls.from_state_dict(state_dict)
        if not no_update:
            net.update(force=True)
    return net.eval()


def main(argv: Optional[List[str]] = None) -> None:
    load_plugins()
    import compressai.utils.eval_model.__main__ as compressai_eval_model

    compressai_eval_model.load_checkpoint = load_checkpoint  # the only torch.load on its paths
    compressai_eval_model.main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
