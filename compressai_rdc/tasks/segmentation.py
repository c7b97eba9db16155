"""Semantic segmentation: mIoU of a torchvision segmentation network on decoded images.

The RDC paper evaluates cognition on Cityscapes segmentation (Liu et al.,
2024, §4); this task runs any ``torchvision.models.segmentation`` builder with
a local ``.safetensors`` state dict.

Dataset layout::

    root/images/<stem>.{png,jpg,...}
    root/masks/<stem>.png          8-bit class-index maps; ``ignore_index`` (255) is not scored

Images are normalised with the ImageNet mean/std torchvision's weights expect
and evaluated whole (protocol ``full``). mIoU averages the IoU of classes that
occur in the ground truth or the prediction over the whole dataset
(confusion matrices summed over images, as Cityscapes scripts do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from compressai_rdc.errors import DatasetError
from compressai_rdc.tasks._torchvision import build_torchvision_model
from compressai_rdc.tasks.base import PathLike, Task

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegmentationFolder(Dataset):
    """``root/images/*`` with ``root/masks/<stem>.png``; items ``(image, mask (H, W) int64)``."""

    def __init__(self, root: PathLike):
        from compressai_rdc.data import list_images

        self.root = Path(root)
        images = list_images(self.root / "images")
        self.items = []
        for p in images:
            m = self.root / "masks" / f"{p.stem}.png"
            if not m.is_file():
                raise DatasetError(f"segmentation dataset {str(self.root)!r}: mask {str(m)!r} for {p.name!r} not found")
            self.items.append((p, m))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from compressai_rdc.data import load_image

        p, m = self.items[i]
        img = load_image(p)
        with Image.open(m) as im:
            mask = torch.from_numpy(np.asarray(im.convert("L"), dtype=np.int64).copy())
        if tuple(mask.shape) != tuple(img.shape[-2:]):
            raise DatasetError(f"mask {str(m)!r} is {tuple(mask.shape)}, image {p.name!r} is {tuple(img.shape[-2:])}")
        return img, mask


class SegmentationTask(Task):
    """mIoU and pixel accuracy (in %) of a torchvision segmentation network.

    Args:
        model: builder in ``torchvision.models.segmentation``.
        weights: ``.safetensors`` state dict of that builder.
        num_classes: output classes (21 for torchvision's VOC-style weights, 19 for Cityscapes).
        ignore_index: mask value that is not scored.
        random_init: allow an untrained network (plumbing tests).
        device, batch_size: see :class:`~compressai_rdc.tasks.base.Task`.
    """

    name = "segmentation"
    metric_names = ("miou", "pixel_accuracy")
    primary_metric = "miou"
    # higher_is_better, protocols ("full",) and default_protocol: Task's defaults

    def __init__(
        self,
        model: str = "lraspp_mobilenet_v3_large",
        weights: Optional[PathLike] = None,
        num_classes: int = 21,
        ignore_index: int = 255,
        random_init: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("batch_size", 4)
        super().__init__(**kwargs)
        import torchvision.models.segmentation as tvs

        self.model_name, self.weights = model, weights
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.net = build_torchvision_model(tvs, model, num_classes=num_classes, weights=weights, random_init=random_init, what="segmentation").to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def load_dataset(self, root: PathLike) -> Dataset:
        return SegmentationFolder(root)

    @torch.inference_mode()
    def predict(self, images: Sequence[torch.Tensor], targets: Sequence[Any]) -> List[Any]:
        from torchmetrics.functional.classification import multiclass_confusion_matrix

        records = []
        for im, mask in zip(images, targets):
            x = (im.unsqueeze(0).to(self.device) - self.mean.to(self.device)) / self.std.to(self.device)
            pred = self.net(x)["out"].argmax(1)[0].cpu()
            cm = multiclass_confusion_matrix(pred.flatten(), mask.flatten(), self.num_classes, ignore_index=self.ignore_index)
            records.append(cm.to(torch.int64))
        return records

    def summarize(self, records: Sequence[Any]) -> Dict[str, float]:
        cm = torch.stack(list(records)).sum(0).double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        miou = (tp[present] / union[present]).mean().item() if present.any() else float("nan")
        total = cm.sum().item()
        return {"miou": 100.0 * miou, "pixel_accuracy": 100.0 * tp.sum().item() / total if total else float("nan")}

    def describe(self) -> Dict[str, Any]:
        return {"task": self.name, "segmenter": self.model_name, "segmenter_weights": str(self.weights) if self.weights else "RANDOM INIT"}


__all__ = ["SegmentationFolder", "SegmentationTask"]
