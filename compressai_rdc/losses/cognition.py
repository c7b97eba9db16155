"""Cognition losses: a frozen pretrained classifier judges the decoded image.

:class:`MoCoCognitionLoss` is RDC's (below); :class:`LogitDistillationLoss` is
the classic task-distillation alternative (Hinton et al. 2015 on the
classifier's logits, as image-coding-for-machines fine-tuning uses it when no
labels are at hand), measured against it in docs/results.md.

MoCo-style cognition loss of RDC's primary branch (Liu et al. 2024, §3, Fig. 4).

The primary branch is trained so that a *frozen* pretrained backbone sees the
decoded image x̂₁ as "the same instance" as the original x, in the sense of
MoCo's InfoNCE (He et al., CVPR 2020)::

    x̂ ──normalize──> backbone (frozen) ──pool──> q  (B, D) ─ l2-norm ─┐   queries
    x  ──normalize──> backbone (frozen) ──pool──> k  (B, D) ─ l2-norm ─┤   positive keys (no grad)
                                           queue (K, D) of past keys ───┤   negatives
                                                                        v
         logits = [q·k⁺, q·queue⊤ (, q·k_other⊤)] / τ   →   CE(logits, positive)

Only the codec receives gradients: the backbone has ``requires_grad=False``
and stays in eval mode; keys are computed under ``no_grad``. After each call the
batch's keys are pushed into the queue (gathered from every rank under DDP, so
all ranks keep identical queues). The queue is a buffer, saved in checkpoints.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError
from compressai_rdc.losses.base import Loss, frozen_backbone, reconstruction, reference_pair, result


def pooled_embedding(backbone: nn.Module, x: Tensor) -> Tensor:
    """Global-average-pooled features ``(B, D)`` of a backbone.

    timm classifiers give their pre-logits features (``forward_head(...,
    pre_logits=True)``); other modules are called and a 4-D output (or the last
    map of a list, as ``features_only`` returns) is average-pooled.
    """
    if hasattr(backbone, "forward_features") and hasattr(backbone, "forward_head"):
        return backbone.forward_head(backbone.forward_features(x), pre_logits=True).flatten(1)
    out = backbone(x)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    if out.dim() == 4:
        out = out.mean(dim=(2, 3))
    if out.dim() != 2:
        raise InvalidArgumentError(f"backbone output must be (B, D) or (B, C, h, w) to embed, got {tuple(out.shape)}")
    return out


def info_nce(q: Tensor, k: Tensor, negatives: Optional[Tensor], temperature: float, in_batch_negatives: bool = True) -> Tensor:
    """Per-query InfoNCE ``(B,)`` for l2-normalised queries/keys ``(B, D)``.

    Args:
        q: queries ``(B, D)``.
        k: positive keys ``(B, D)`` (row i is the positive of query i).
        negatives: extra negative keys ``(N, D)`` (the queue) or ``None``.
        temperature: τ in ``exp(q·k / τ)``.
        in_batch_negatives: also use the other rows of ``k`` as negatives.
    """
    b = q.shape[0]
    if in_batch_negatives:
        logits = q @ k.t()  # (B, B), positives on the diagonal
        labels = torch.arange(b, device=q.device)
    else:
        logits = (q * k).sum(1, keepdim=True)  # (B, 1)
        labels = torch.zeros(b, dtype=torch.long, device=q.device)
    if negatives is not None and negatives.shape[0] > 0:
        logits = torch.cat([logits, q @ negatives.t()], dim=1)
    if logits.shape[1] < 2:
        raise InvalidArgumentError("InfoNCE needs at least one negative: use in_batch_negatives with batch > 1 or a non-empty queue")
    return F.cross_entropy(logits / temperature, labels, reduction="none")


class MoCoCognitionLoss(Loss):
    """InfoNCE between frozen-backbone embeddings of x̂ (queries) and x (positive
    keys), with a queue of past keys as negatives.

    Args:
        backbone: timm model name (offline weights via
            :func:`compressai_rdc.backbones.create_backbone`) or an ``nn.Module``.
        weights: local weights file for a timm name.
        queue_size: number K of negative keys kept (MoCo: 65,536; small data
            sets want fewer, default 4,096).
        temperature: τ (MoCo v1: 0.07).
        in_batch_negatives: also use the batch's other keys as negatives
            (useful while the queue fills).
        x_hat_key: output entry holding the decoded image (``"x_hat_primary"``
            for RDC stage I).
    """

    frozen_modules = ("backbone",)

    def __init__(
        self,
        backbone: Union[str, nn.Module] = "tf_efficientnet_lite0",
        weights: Optional[str] = None,
        queue_size: int = 4096,
        temperature: float = 0.07,
        in_batch_negatives: bool = True,
        x_hat_key: str = "x_hat",
    ):
        super().__init__()
        if queue_size < 0:
            raise InvalidArgumentError(f"queue_size must be >= 0, got {queue_size}")
        if not temperature > 0:
            raise InvalidArgumentError(f"temperature must be > 0, got {temperature}")
        self.backbone, self.normalize = frozen_backbone(backbone, weights=weights)
        self.temperature, self.in_batch_negatives, self.x_hat_key = float(temperature), bool(in_batch_negatives), x_hat_key
        with torch.no_grad():
            dim = pooled_embedding(self.backbone, torch.zeros(1, 3, 64, 64)).shape[1]
        self.register_buffer("queue", torch.zeros(int(queue_size), dim))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_len", torch.zeros((), dtype=torch.long))

    def embed(self, x: Tensor) -> Tensor:
        """l2-normalised float32 embeddings ``(B, D)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        return F.normalize(pooled_embedding(self.backbone, self.normalize(x)).float(), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Push keys ``(B, D)`` (from every rank under DDP) into the ring buffer."""
        size = self.queue.shape[0]
        if size == 0:
            return
        keys = _gather(keys.detach().to(self.queue.dtype))
        if keys.shape[0] >= size:
            keys = keys[-size:]
        n, ptr = keys.shape[0], int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_ptr.fill_((ptr + n) % size)
        self.queue_len.fill_(min(size, int(self.queue_len) + n))

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "moco-cognition")
        q, k = reference_pair(self.embed, x_hat, target)
        negatives = self.queue[: int(self.queue_len)].clone() if self.queue.shape[0] else None  # enqueue edits the buffer in place
        with torch.autocast(q.device.type, enabled=False):  # logits / τ need fp32, even under bf16 autocast
            loss = info_nce(q, k, negatives, self.temperature, self.in_batch_negatives)
        with torch.no_grad():
            cos = (q * k).sum(1).mean()
        if self.training:
            self.enqueue(k)
        return result(loss, cosine=cos)


class LogitDistillationLoss(Loss):
    """Knowledge distillation from the frozen classifier's view of x to its view of x̂::

        L = T² · KL( softmax(f(x) / T) ‖ softmax(f(x̂) / T) )      per image

    ``f`` is a frozen classifier returning logits ``(B, classes)`` (the timm
    model itself, not a feature pyramid). Unlike InfoNCE, whose gradient fades
    once x̂ is nearer to x than to the queue's other images, the KL keeps
    pulling until the class distributions agree, and it needs no labels (the
    training images have none). Also logged: ``agreement``, the fraction of
    images whose top-1 class on x̂ is the one on x (a training-time proxy of
    the top-1 accuracy the evaluation measures).

    Args:
        backbone: timm classifier name (offline weights via
            :func:`compressai_rdc.backbones.create_backbone`) or an ``nn.Module``
            mapping [0, 1] images to logits.
        weights: local weights file for a timm name.
        temperature: T (Hinton et al.: > 1 softens both distributions; the T²
            factor keeps gradient magnitudes comparable across T).
        x_hat_key: output entry holding the decoded image (``"x_hat_primary"``
            for RDC stage I).
    """

    frozen_modules = ("backbone",)

    def __init__(
        self,
        backbone: Union[str, nn.Module] = "tf_efficientnet_lite0",
        weights: Optional[str] = None,
        temperature: float = 1.0,
        x_hat_key: str = "x_hat",
    ):
        super().__init__()
        if not temperature > 0:
            raise InvalidArgumentError(f"temperature must be > 0, got {temperature}")
        self.backbone, self.normalize = frozen_backbone(backbone, weights=weights)
        self.temperature, self.x_hat_key = float(temperature), x_hat_key

    def logits(self, x: Tensor) -> Tensor:
        """float32 logits ``(B, classes)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        out = self.backbone(self.normalize(x))
        if not isinstance(out, Tensor) or out.dim() != 2:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InvalidArgumentError(
                f"logit-distillation needs a classifier returning logits (B, classes), the backbone returned {got}"
            )
        return out.float()

    def forward(self, output: Mapping[str, Any], target: Tensor, **batch: Any) -> Dict[str, Tensor]:
        x_hat = reconstruction(output, self.x_hat_key, target, "logit-distillation")
        got, ref = reference_pair(self.logits, x_hat, target)
        t = self.temperature
        with torch.autocast(got.device.type, enabled=False):  # softmax over 1,000 classes in fp32
            log_p = F.log_softmax(ref / t, dim=1)
            log_q = F.log_softmax(got / t, dim=1)
            loss = (log_p.exp() * (log_p - log_q)).sum(1) * (t * t)
        with torch.no_grad():
            agreement = (got.argmax(1) == ref.argmax(1)).float().mean()
        return result(loss, agreement=agreement)


def _gather(x: Tensor) -> Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


__all__ = ["LogitDistillationLoss", "MoCoCognitionLoss", "info_nce", "pooled_embedding"]
