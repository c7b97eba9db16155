"""Pixel-domain distortion terms: MSE, per-pixel λ-weighted MSE, local MSE.

All three return values on the 8-bit scale by default (``scale = 255**2``),
the convention of CompressAI's ``RateDistortionLoss``, so a config weight is
directly CompressAI's λ (``mbt2018-mean`` quality 3: λ = 0.0067).

Local MSE (RDC, Liu et al. 2024, §3 and Fig. 5)
-----------------------------------------------
A codec trained only for cognition drifts in the pixel domain: the histogram
of x̂₁ spreads outside [0, 1] and shifts (Fig. 5c); clipping during training
does not fix it (Fig. 5d). The paper adds a *local MSE* term that keeps x̂₁
"locally" faithful while leaving the fine texture to the cognition loss.
Our definition::

    x̂ ──avgpool k×k──┐
                     ├── MSE ──┐
    x  ──avgpool k×k──┘        ├── + w_range · mean(relu(x̂-1)² + relu(-x̂)²)
                               │
    local MSE = MSE(pool_k(x̂), pool_k(x)) · scale

* average pooling with a k×k window and stride k (default k = 8) compares the
  local means of non-overlapping blocks: colours, brightness and layout must
  match, detail finer than k pixels is free for the cognition loss (a per-pixel
  MSE would fight the cognition loss at every frequency and turn the primary
  branch back into an MSE codec);
* the range penalty is zero inside [0, 1] and quadratic outside: it keeps
  x̂₁ a valid image without the zero gradient of clipping (Fig. 5d).

It is exactly zero when x̂ = x for images in [0, 1].
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss, per_sample_mean, reconstruction, result

PIXEL_SCALE = 255.0**2


def psnr_from_mse(mse: Tensor, max_val: float = 1.0) -> Tensor:
    """PSNR in dB from an MSE of images in [0, max_val]."""
    return 10 * torch.log10(max_val**2 / mse.clamp_min(1e-12))


class MSELoss(Loss):
    """Mean squared error ``scale · mean((x̂ - x)²)``.

    Args:
        x_hat_key: output entry holding the reconstruction (``"x_hat"``,
            ``"x_hat_primary"``).
        scale: multiplier (255² = CompressAI's convention).
    """

    def __init__(self, x_hat_key: str = "x_hat", scale: float = PIXEL_SCALE):
        super().__init__()
        self.x_hat_key, self.scale = x_hat_key, float(scale)

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "mse").float()
        mse = per_sample_mean((x_hat - target.float()) ** 2)
        return result(self.scale * mse, mse=mse.mean().detach(), psnr=psnr_from_mse(mse.detach()).mean())


class WeightedMSELoss(MSELoss):
    """Per-pixel λ-weighted MSE of quality-map codecs (QMAP2021; HEVRC eq. 10).

    ``scale · mean(Λ ⊙ (x̂ - x)²)`` where ``Λ = batch["lmbda_map"]`` ``(B, 1, H, W)``
    is the per-pixel Lagrange multiplier ``T(q) = t1 · exp(t2 · q)`` of the quality
    map ``q``; the recipe computes it with :func:`compressai_rdc.qmap.lambda_map`.
    With ``Λ ≡ λ`` this is ``λ · MSELoss``.

    Args:
        x_hat_key: output entry holding the reconstruction.
        scale: multiplier (255²: ``t1``, ``t2`` are on CompressAI's λ scale).
    """

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "weighted-mse").float()
        lmap = batch.get("lmbda_map")
        if lmap is None:
            raise InvalidArgumentError("loss 'weighted-mse' needs batch['lmbda_map'] (B, 1, H, W); the recipe computes it from the quality map")
        if lmap.dim() != 4 or lmap.shape[0] != target.shape[0] or lmap.shape[-2:] != target.shape[-2:]:
            raise InvalidArgumentError(f"lmbda_map must be (B, 1, H, W) = ({target.shape[0]}, 1, {target.shape[-2]}, {target.shape[-1]}), got {tuple(lmap.shape)}")
        se = (x_hat - target.float()) ** 2
        mse = per_sample_mean(se.detach())
        return result(self.scale * per_sample_mean(lmap.float() * se), mse=mse.mean(), psnr=psnr_from_mse(mse).mean())


class LocalMSELoss(Loss):
    """Local MSE of RDC's primary branch: MSE of k×k average-pooled images plus a
    penalty on values outside [0, 1] (see the module docstring for why).

    Args:
        kernel: pooling window and stride k (pixels); 1 = plain MSE.
        range_weight: weight of ``mean(relu(x̂-1)² + relu(-x̂)²)`` relative to the
            pooled MSE (both multiplied by ``scale``).
        x_hat_key: output entry holding the reconstruction (``"x_hat_primary"``).
        scale: multiplier (255², CompressAI's convention).
    """

    def __init__(self, kernel: int = 8, range_weight: float = 1.0, x_hat_key: str = "x_hat", scale: float = PIXEL_SCALE):
        super().__init__()
        if int(kernel) < 1:
            raise InvalidArgumentError(f"local-mse kernel must be a positive integer, got {kernel!r}")
        if range_weight < 0:
            raise InvalidArgumentError(f"local-mse range_weight must be >= 0, got {range_weight!r}")
        self.kernel, self.range_weight = int(kernel), float(range_weight)
        self.x_hat_key, self.scale = x_hat_key, float(scale)

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "local-mse").float()
        k = self.kernel
        if min(target.shape[-2:]) < k:
            raise InvalidArgumentError(f"local-mse kernel {k} is larger than the image {tuple(target.shape[-2:])}")
        pooled = per_sample_mean((F.avg_pool2d(x_hat, k, ceil_mode=True) - F.avg_pool2d(target.float(), k, ceil_mode=True)) ** 2)
        out_of_range = per_sample_mean(F.relu(x_hat - 1) ** 2 + F.relu(-x_hat) ** 2)
        return result(
            self.scale * (pooled + self.range_weight * out_of_range),
            local_mse=pooled.mean().detach(),
            out_of_range=out_of_range.mean().detach(),
        )


__all__ = ["LocalMSELoss", "MSELoss", "PIXEL_SCALE", "WeightedMSELoss", "psnr_from_mse"]
