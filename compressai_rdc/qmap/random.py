"""Random quality maps for training quality-map codecs (QMAP2021 §4, used by HEVRC §5.1).

A model learns to follow any map only if it is trained on varied ones. Each
map is drawn from one of three families (probabilities configurable)::

    uniform     q ≡ u,                      u ~ U(0, 1)
    gradient    linear ramp from a to b along a random direction
    blobs       sum of 1..max_blobs random anisotropic Gaussians, rescaled to [a, b]
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError

__all__ = ["random_qmap"]


# Random draws come from the CPU generator (reproducible on any device); the maps
# themselves are built on ``device``, so training on a GPU does no per-pixel CPU work.


def _uniform(h: int, w: int, g: torch.Generator, device=None) -> Tensor:
    return torch.full((h, w), float(torch.rand((), generator=g)), device=device)


def _gradient(h: int, w: int, g: torch.Generator, device=None) -> Tensor:
    a, b = torch.rand(2, generator=g).tolist()
    angle = float(torch.rand((), generator=g)) * 2 * math.pi
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device), indexing="ij")
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)
    return a + (b - a) * t


def _blobs(h: int, w: int, g: torch.Generator, max_blobs: int, device=None) -> Tensor:
    n = 1 + int(torch.randint(max_blobs, (), generator=g))
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device), torch.arange(w, dtype=torch.float32, device=device), indexing="ij"
    )
    out = torch.zeros(h, w, device=device)
    for _ in range(n):
        cy, cx = float(torch.rand((), generator=g)) * h, float(torch.rand((), generator=g)) * w
        sy, sx = ((0.05 + 0.3 * torch.rand(2, generator=g)) * torch.tensor([h, w], dtype=torch.float32)).tolist()
        out += torch.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    lo, hi = sorted(torch.rand(2, generator=g).tolist())
    out = (out - out.min()) / (out.max() - out.min()).clamp_min(1e-12)
    return lo + (hi - lo) * out


def random_qmap(
    batch: int,
    height: int,
    width: int,
    *,
    p_uniform: float = 1 / 3,
    p_gradient: float = 1 / 3,
    max_blobs: int = 20,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> Tensor:
    """Draw ``batch`` random quality maps, one family per map.

    Args:
        batch, height, width: output size.
        p_uniform: probability of a uniform map.
        p_gradient: probability of a linear ramp; blobs take the rest.
        max_blobs: most Gaussians in a blob map.
        generator: torch RNG for reproducible draws.
        device: where the maps are returned.

    Returns:
        ``(batch, 1, height, width)`` float tensor with values in [0, 1].
    """
    if not (0 <= p_uniform and 0 <= p_gradient and p_uniform + p_gradient <= 1):
        raise InvalidArgumentError(
            f"p_uniform={p_uniform} and p_gradient={p_gradient} must be ≥ 0 with a sum ≤ 1"
        )
    if batch < 1 or height < 1 or width < 1 or max_blobs < 1:
        raise InvalidArgumentError(f"batch, height, width and max_blobs must be ≥ 1, got {batch}, {height}, {width}, {max_blobs}")
    g = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**31, ())))
    maps = []
    for _ in range(batch):
        u = float(torch.rand((), generator=g))
        if u < p_uniform:
            m = _uniform(height, width, g, device)
        elif u < p_uniform + p_gradient:
            m = _gradient(height, width, g, device)
        else:
            m = _blobs(height, width, g, max_blobs, device)
        maps.append(m.clamp_(0, 1))
    return torch.stack(maps)[:, None]
