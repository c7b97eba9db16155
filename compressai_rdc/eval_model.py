"""Run CompressAI's unchanged ``eval_model`` with compressai-rdc's models in its tables.

::

    compressai-rdc eval-model pretrained ../shared/data/kodak -a rdc-versatile -q 1,3,5
    compressai-rdc eval-model --beta 0 checkpoint ../shared/data/kodak -a rdc-versatile -p w.pth.tar
    python -m compressai_rdc.eval_model pretrained ../shared/data/kodak -a rdc-versatile -q 1,3,5

Everything after the optional ``--beta`` is exactly CompressAI's arguments.

What CompressAI's tool sees, and why:

* ``python -m compressai.utils.eval_model`` never imports compressai-rdc, so it
  sees only CompressAI's own architectures. Through this wrapper (or after
  ``import compressai_rdc`` in the same process) every registered model is in
  its tables, plugin models included.
* ``pretrained`` builds models with the zoo factories, so they load the shipped
  weights (offline) and decode at those weights' ``decode_beta``; ``checkpoint``
  rebuilds a model with ``from_state_dict`` from a ``torch.save`` file and uses
  the class's default β (0) unless ``--beta`` is given.
* It measures one operating point per quality (``pretrained``) or per checkpoint:
  the rate control ``rate``, residual ``layers`` and quality maps cannot be
  swept; its bpp counts all likelihoods of ``forward`` (``--entropy-estimation``)
  or all strings of ``compress``, which for the RDC models are exactly the
  substreams the decode at that β reads (none of the residual at β = 1).
  Use ``compressai-rdc eval`` for sweeps, tasks and BD tables.

``checkpoint ... -p FILE`` never unpickles: CompressAI 1.2.8 reads checkpoints
with ``torch.load(path)``, which runs arbitrary code from a pickle on torch
< 2.6 (this project allows torch >= 2.1). Its loader is replaced here by
:func:`load_checkpoint`: ``.safetensors`` files are read as tensors, other
files with ``torch.load(weights_only=True)``, which refuses pickled code with
:class:`~compressai_rdc.errors.WeightsFormatError`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator, List, Optional

from torch import nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.registry import MODELS

PROG = "compressai-rdc eval-model"


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


def _set_beta(model: nn.Module, beta: Optional[float]) -> nn.Module:
    if beta is None:
        return model
    if not hasattr(model, "default_beta"):
        raise InvalidArgumentError(f"--beta {beta:g} is invalid for {type(model).__name__}: it has no β control")
    from compressai_rdc.models.rdc import check_beta

    model.default_beta = check_beta(beta)
    return model


@contextlib.contextmanager
def _models_at_beta(module, beta: Optional[float]) -> Iterator[None]:
    """Every model CompressAI's eval_model loads (both sources) decodes at ``beta``;
    checkpoints go through :func:`load_checkpoint` (never unpickles)."""
    original = module.load_pretrained, module.load_checkpoint
    module.load_pretrained = lambda *a, **k: _set_beta(original[0](*a, **k), beta)
    module.load_checkpoint = lambda *a, **k: _set_beta(load_checkpoint(*a, **k), beta)
    try:
        yield
    finally:
        module.load_pretrained, module.load_checkpoint = original


def main(argv: Optional[List[str]] = None, *, beta: Optional[float] = None) -> None:
    """CompressAI's ``eval_model`` main with every registered model, optionally at ``beta``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--beta"]:
        if len(argv) < 2:
            raise InvalidArgumentError("--beta needs a value in [0, 1]")
        beta, argv = float(argv[1]), argv[2:]
    MODELS.names()  # runs the plugins' register_models hooks: the models enter CompressAI's tables
    import compressai.utils.eval_model.__main__ as compressai_eval_model

    argv0, sys.argv[0] = sys.argv[0], PROG  # CompressAI's usage line names sys.argv[0]
    try:
        with _models_at_beta(compressai_eval_model, beta):
            compressai_eval_model.main(argv)
    finally:
        sys.argv[0] = argv0


if __name__ == "__main__":  # pragma: no cover
    main()
