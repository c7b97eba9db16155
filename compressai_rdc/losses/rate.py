"""Rate term: estimated bits per pixel from the entropy models' likelihoods.

    bpp_b = sum_streams sum_i -log2 p(ŷ_i) / (H * W)        (per image b)

This is CompressAI's ``bpp_loss`` computed per image instead of per batch, so
it stays right for any batch size and lets recipes weight images differently.
It is always evaluated in float32: likelihoods near the lower bound (1e-9)
lose most of their precision in bf16.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss, get_output, result


def bits_per_pixel(likelihoods: Mapping[str, Tensor], num_pixels: int, streams: Optional[Sequence[str]] = None) -> Tensor:
    """Per-image bpp ``(B,)`` from a ``{stream: likelihoods (B, C, h, w)}`` dict.

    Args:
        likelihoods: the model's ``output["likelihoods"]`` (or a branch's).
        num_pixels: ``H * W`` of the input image.
        streams: the streams to count (default: all).
    """
    names = list(likelihoods) if streams is None else list(streams)
    missing = [n for n in names if n not in likelihoods]
    if missing:
        raise InvalidArgumentError(f"likelihood streams {missing} not in the model output; present: {sorted(likelihoods)}")
    if not names:
        raise InvalidArgumentError("no likelihood streams to count: the likelihoods dict is empty")
    total = None
    for n in names:
        lk = likelihoods[n].float()
        bits = -torch.log2(lk).flatten(1).sum(1)
        total = bits if total is None else total + bits
    return total / num_pixels


class RateLoss(Loss):
    """Estimated bpp of the streams in ``output[likelihoods_key]``.

    Args:
        likelihoods_key: which likelihood dict to count: ``"likelihoods"``
            (everything sent), ``"likelihoods_primary"`` (RDC stage I) or
            ``"likelihoods_residual"`` (RDC stage II).
        streams: restrict to these streams (default all in the dict).
    """

    def __init__(self, likelihoods_key: str = "likelihoods", streams: Optional[Sequence[str]] = None):
        super().__init__()
        self.likelihoods_key = likelihoods_key
        self.streams = None if streams is None else tuple(streams)

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        lk = get_output(output, self.likelihoods_key, "rate")
        num_pixels = target.shape[-2] * target.shape[-1]
        bpp = bits_per_pixel(lk, num_pixels, self.streams)
        return result(bpp)


__all__ = ["RateLoss", "bits_per_pixel"]
