"""OTSU binarisation of a semantic importance map (HEVRC §4.3, Otsu 1979).

The SIM is split into salient (1) and non-salient (0) positions at the
threshold that maximises the between-class variance of its histogram;
scikit-image computes the threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.filters import threshold_otsu
from torch import Tensor

from compressai_rdc.qmap._norm import check_map

__all__ = ["otsu_threshold", "otsu_binarize"]


def otsu_threshold(s: Tensor, nbins: int = 256) -> Tensor:
    """Per-image OTSU threshold.

    Args:
        s: ``(B, 1, H, W)`` map.
        nbins: histogram bins.

    Returns:
        ``(B,)`` thresholds; a constant image gets its own value (nothing above it).
    """
    s = check_map(s, "importance map")
    out = []
    for img in s.detach().float().cpu().numpy():
        flat = img.ravel()
        out.append(float(flat[0]) if np.ptp(flat) == 0 else float(threshold_otsu(flat, nbins=nbins)))
    return torch.tensor(out, dtype=s.dtype, device=s.device)


def otsu_binarize(s: Tensor, nbins: int = 256) -> Tensor:
    """``B(s)``: 1 where ``s`` is above its image's OTSU threshold, else 0.

    Args:
        s: ``(B, 1, H, W)`` map.

    Returns:
        ``(B, 1, H, W)`` float mask in {0, 1}.
    """
    s = check_map(s, "importance map")
    t = otsu_threshold(s, nbins).view(-1, 1, 1, 1)
    return (s > t).to(s.dtype)
