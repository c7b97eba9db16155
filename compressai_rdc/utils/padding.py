"""Pad images to a multiple of a codec's total stride and crop them back."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from compressai_rdc.errors import InvalidArgumentError

Pad = Tuple[int, int, int, int]  # (left, right, top, bottom), as F.pad takes it


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> Tuple[torch.Tensor, Pad]:
    """Pad ``x`` (B, C, H, W) on the right/bottom so H and W are multiples of ``multiple``.

    Returns ``(x_padded, pad)`` with ``pad = (left, right, top, bottom)``.
    Replicate padding keeps the border cheap to code (zero padding costs bits).
    """
    if x.dim() != 4:
        raise InvalidArgumentError(f"expected an image batch of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if multiple < 1:
        raise InvalidArgumentError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (0, pw, 0, ph)
    if ph == 0 and pw == 0:
        return x, pad
    return F.pad(x, pad, mode=mode), pad


def unpad(x: torch.Tensor, pad: Pad) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]
