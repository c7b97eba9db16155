"""Check values of the entropy parameters, stored in the container (format version 2).

The encoder stores, for every hyperprior of a model (RDC: the primary and the
residual branch; HEVRC: its one hyperprior), a :class:`EntropyCheck`:

* ``tables``: CRC32 of the entropy coder's tables (the entropy bottleneck's and
  the Gaussian conditional's quantised CDFs, CDF lengths and offsets, and the
  scale table), and
* ``params``: per image, CRC32 of the scale indexes (int32) and the means
  (float32) the ``y`` substreams were coded with.

The decoder computes the same values before it range-decodes ``y`` and raises
:class:`~compressai_rdc.container.EntropyParameterMismatchError` naming what
differs, instead of returning garbage. With the fixed-point path
(:mod:`compressai_rdc.layers.fixed_point`) a mismatch means a different
model, different tables or a forged stream, never a different machine.
"""

from __future__ import annotations

import zlib
from typing import Tuple

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from compressai_rdc.container import EntropyCheck, EntropyParameterMismatchError

__all__ = ["EntropyCheck", "compute_check", "table_crc", "verify_check"]


def _crc_tensor(t: Tensor, crc: int) -> int:
    return zlib.crc32(t.detach().to("cpu").contiguous().reshape(-1).numpy().tobytes(), crc)


def table_crc(*entropy_models: nn.Module) -> int:
    """CRC32 of the coding tables of CompressAI entropy models (in argument order)."""
    crc = 0
    for em in entropy_models:
        for name in ("_quantized_cdf", "_cdf_length", "_offset"):
            crc = _crc_tensor(getattr(em, name).to(torch.int32), crc)
        if isinstance(em, GaussianConditional):
            crc = _crc_tensor(em.scale_table.to(torch.float32), crc)
    return crc


def _param_crcs(indexes: Tensor, means: Tensor) -> Tuple[int, ...]:
    idx = indexes.to(torch.int32)
    mu = means.to(torch.float32)
    return tuple(_crc_tensor(mu[b], _crc_tensor(idx[b], 0)) for b in range(idx.shape[0]))


def compute_check(tables: int, indexes: Tensor, means: Tensor) -> EntropyCheck:
    """The check value of ``indexes`` and ``means`` (B, ...) coded with tables of CRC ``tables``."""
    return EntropyCheck(tables, _param_crcs(indexes, means))


def verify_check(expected: EntropyCheck, tables: int, indexes: Tensor, means: Tensor, what: str) -> None:
    """Raise :class:`EntropyParameterMismatchError` unless the decoder's parameters match ``expected``.

    ``what`` names the hyperprior (e.g. ``"primary"``) in the message.
    """
    if expected.tables != tables:
        raise EntropyParameterMismatchError(
            f"{what}: the entropy coder tables differ from the encoder's (CRC32 {tables:08x}, stream {expected.tables:08x}): "
            "the model's CDF tables were rebuilt differently (call update() only on weights loaded from the same file)"
        )
    got = _param_crcs(indexes, means)
    if len(got) != len(expected.params):
        raise EntropyParameterMismatchError(f"{what}: the stream holds check values for {len(expected.params)} images, decoding {len(got)}")
    bad = [b for b, (g, e) in enumerate(zip(got, expected.params)) if g != e]
    if bad:
        raise EntropyParameterMismatchError(
            f"{what}: the scale indexes / means computed from the hyper-latent of image(s) {bad} differ from the "
            "encoder's (check value mismatch): decoding would return garbage"
        )
