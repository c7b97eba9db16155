"""Object detection: COCO-style mAP of a torchvision detector on decoded images.

The RDC paper evaluates cognition on COCO detection (Liu et al., 2024, §4);
this task runs any ``torchvision.models.detection`` builder with a local
``.safetensors`` state dict and scores boxes with
:class:`torchmetrics.detection.MeanAveragePrecision` (needs ``pycocotools``).

Dataset layout (COCO format)::

    root/annotations.json     {"images": [{"id", "file_name"}...],
                               "annotations": [{"image_id", "bbox": [x, y, w, h], "category_id"}...]}
    root/<file_name>          (or root/images/<file_name>)

Category ids are used as class labels unchanged (torchvision's COCO detectors
use the original ids 1..90 with ``num_classes=91``). Images are evaluated whole
(protocol ``full``), so boxes stay valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from compressai_rdc.errors import DatasetError
from compressai_rdc.tasks._torchvision import build_torchvision_model
from compressai_rdc.tasks.base import PathLike, Task


class CocoBoxes(Dataset):
    """Images and box targets from a COCO-format ``annotations.json``.

    Items: ``(image (3, H, W) in [0, 1], {"boxes": (N, 4) xyxy, "labels": (N,) int64})``.
    """

    def __init__(self, root: PathLike, annotations: Optional[PathLike] = None):
        self.root = Path(root)
        ann = Path(annotations) if annotations else self.root / "annotations.json"
        if not ann.is_file():
            raise DatasetError(f"detection dataset {str(self.root)!r}: annotations file {str(ann)!r} not found (COCO format)")
        try:
            coco = json.loads(ann.read_text())
            images = sorted(coco["images"], key=lambda im: im["file_name"])
            anns = coco.get("annotations", [])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{str(ann)!r} is not a COCO annotations file: {exc!r}") from exc
        by_image: Dict[Any, List[dict]] = {}
        for a in anns:
            by_image.setdefault(a["image_id"], []).append(a)
        self.items = []
        for im in images:
            path = self.root / im["file_name"]
            if not path.is_file():
                path = self.root / "images" / im["file_name"]
            if not path.is_file():
                raise DatasetError(f"image {im['file_name']!r} of {str(ann)!r} not found under {str(self.root)!r}")
            boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in by_image.get(im["id"], [])]
            labels = [int(a["category_id"]) for a in by_image.get(im["id"], [])]
            self.items.append((path, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64)))
        if not self.items:
            raise DatasetError(f"{str(ann)!r} lists no images")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from compressai_rdc.data import load_image

        path, boxes, labels = self.items[i]
        return load_image(path), {"boxes": boxes, "labels": labels}


class DetectionTask(Task):
    """mAP (in %) of a torchvision detector.

    Args:
        model: builder in ``torchvision.models.detection``.
        weights: ``.safetensors`` state dict of that builder.
        num_classes: classes including background (91 for torchvision's COCO models).
        random_init: allow an untrained network (plumbing tests).
        annotations: COCO json (default ``<root>/annotations.json``).
        device, batch_size: see :class:`~compressai_rdc.tasks.base.Task`.
    """

    name = "detection"
    metric_names = ("map", "map_50", "map_75")
    primary_metric = "map"
    # higher_is_better, protocols ("full",) and default_protocol: Task's defaults

    def __init__(
        self,
        model: str = "fasterrcnn_mobilenet_v3_large_fpn",
        weights: Optional[PathLike] = None,
        num_classes: int = 91,
        random_init: bool = False,
        annotations: Optional[PathLike] = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("batch_size", 4)
        super().__init__(**kwargs)
        import torchvision.models.detection as tvd

        self.model_name, self.weights, self.annotations = model, weights, annotations
        self.net = build_torchvision_model(tvd, model, num_classes=num_classes, weights=weights, random_init=random_init, what="detection").to(self.device)

    def load_dataset(self, root: PathLike) -> Dataset:
        return CocoBoxes(root, self.annotations)

    @torch.inference_mode()
    def predict(self, images: Sequence[torch.Tensor], targets: Sequence[Any]) -> List[Any]:
        records = []
        for i in range(0, len(images), self.batch_size):
            outs = self.net([im.to(self.device) for im in images[i : i + self.batch_size]])
            for out, tgt in zip(outs, targets[i : i + self.batch_size]):
                records.append(({k: v.cpu() for k, v in out.items() if k in ("boxes", "scores", "labels")}, tgt))
        return records

    def summarize(self, records: Sequence[Any]) -> Dict[str, float]:
        from torchmetrics.detection import MeanAveragePrecision

        # the records of every process are already gathered here (rank 0, eval/runner.py): a torchmetrics
        # sync would wait at a barrier for ranks that never call summarize (a deadlock under --jobs/torchrun)
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", sync_on_compute=False)
        metric.update([r[0] for r in records], [r[1] for r in records])
        res = metric.compute()
        return {k: 100.0 * float(res[k]) for k in self.metric_names}

    def describe(self) -> Dict[str, Any]:
        return {"task": self.name, "detector": self.model_name, "detector_weights": str(self.weights) if self.weights else "RANDOM INIT"}


__all__ = ["CocoBoxes", "DetectionTask"]
