"""Image classification: top-1 / top-5 accuracy of a frozen timm classifier.

The default classifier is ``tf_efficientnet_lite0`` with offline ImageNet
weights (:func:`compressai_rdc.backbones.create_backbone`); any timm
classifier works given its name and a local weights file. The classifier sees
every decoded image through its own evaluation transform
(:func:`compressai_rdc.backbones.eval_transform`; for lite0: centre crop
224 of the 256 crop, mean = std = 0.5), as in the cognition protocol of the
RDC paper's ImageNet experiments (Liu et al., 2024).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from compressai_rdc.tasks.base import PathLike, Task


class ClassificationTask(Task):
    """Top-1 / top-5 accuracy (in %) of a timm classifier.

    Args:
        model: timm model name.
        weights: local weights file (optional for ``tf_efficientnet_lite0``).
        device: where the classifier runs.
        batch_size: images per forward pass.

    Records are ``(label, top-5 predicted classes)`` per image.
    """

    name = "classification"
    metric_names = ("top-1", "top-5")
    primary_metric = "top-1"
    higher_is_better = True
    protocols = ("crop256", "full")
    default_protocol = "crop256"

    def __init__(self, model: str = "tf_efficientnet_lite0", weights: Optional[PathLike] = None, **kwargs: Any):
        super().__init__(**kwargs)
        from compressai_rdc.backbones import create_backbone, eval_transform, fold_batch_norms

        self.model_name, self.weights = model, weights
        net = create_backbone(model, weights=weights)
        # batch norms folded into the convolutions and channels_last: 2.2x faster inference on the
        # CPU with logits equal to 2e-5 (docs/evaluation.md); the fold checks itself on a probe
        size = tuple(net.pretrained_cfg.get("input_size", (3, 224, 224)))
        self.folded = fold_batch_norms(net, torch.rand((2, *size), generator=torch.Generator().manual_seed(0)))
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self.transform = eval_transform(self.net)

    def load_dataset(self, root: PathLike) -> Dataset:
        from compressai_rdc.data import LabelledImageFolder

        return LabelledImageFolder(root)

    @torch.inference_mode()
    def predict(self, images: Sequence[torch.Tensor], targets: Sequence[Any]) -> List[Any]:
        if len({tuple(im.shape) for im in images}) == 1:
            groups = [torch.stack(list(images))]
        else:
            groups = [im.unsqueeze(0) for im in images]
        top5 = torch.cat([self._logits(g).topk(5, dim=1).indices.cpu() for g in groups])
        return [(int(t), top5[i]) for i, t in enumerate(targets)]

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        x = self.transform(images.to(self.device)).contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def summarize(self, records: Sequence[Any]) -> Dict[str, float]:
        if not records:
            return {"top-1": float("nan"), "top-5": float("nan")}
        labels = torch.tensor([r[0] for r in records])
        top5 = torch.stack([r[1] for r in records])
        return {
            "top-1": 100.0 * (top5[:, 0] == labels).double().mean().item(),
            "top-5": 100.0 * (top5 == labels[:, None]).any(1).double().mean().item(),
        }

    def describe(self) -> Dict[str, Any]:
        return {"task": self.name, "classifier": self.model_name, "classifier_weights": str(self.weights) if self.weights else "offline default"}


__all__ = ["ClassificationTask"]
