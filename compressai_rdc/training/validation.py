"""Periodic validation during training, always on *real* bitstreams.

A decoder can score well on the training forward pass (noisy or
straight-through latents) and badly on what it really decodes; so validation
runs :func:`compressai_rdc.codec.encode` / :func:`~compressai_rdc.codec.decode`
on a copy of the model with updated entropy coders, counts bpp from the bytes,
and measures PSNR on Kodak and top-1 of the frozen classifier on imagenet-dev
(cognition protocol of ``../shared/data/README.md``: short side 256, centre crop
256, the classifier's own eval transform).
"""

from __future__ import annotations

import copy
import functools
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from compressai_rdc.losses.distortion import psnr_from_mse


@functools.lru_cache(maxsize=4)
def _kodak(root: str, n: int) -> Tuple[Tensor, ...]:
    from compressai_rdc.data import list_images, load_image

    return tuple(load_image(p) for p in sorted(list_images(root))[:n])


@functools.lru_cache(maxsize=4)
def _imagenet(root: str, n: int) -> Tuple[Tuple[Tensor, int], ...]:
    from compressai_rdc.data import LabelledImageFolder, cognition_crop, load_image

    ds = LabelledImageFolder(root)
    samples = sorted(ds.samples)
    step = max(1, len(samples) // max(1, n))
    return tuple((cognition_crop(load_image(p)), label) for p, label in samples[::step][:n])


@functools.lru_cache(maxsize=2)
def _classifier(name: str):
    from compressai_rdc.backbones import create_backbone, eval_transform

    net = create_backbone(name)
    return net, eval_transform(net)


def _dataset_dir(value: Optional[str], sub: str) -> Optional[Path]:
    from compressai_rdc.data import find_data_dir

    if value:
        return Path(value)
    return find_data_dir(sub)


@torch.no_grad()
def validate(model: nn.Module, controls: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any], device: torch.device) -> List[Dict[str, Any]]:
    """Rows ``{dataset, controls, bpp, psnr[, top1]}`` per control setting.

    Args:
        model: the training model (not modified: a float32 copy is updated and used).
        controls: encode-time controls to evaluate, e.g. ``[{"rate": 0.0, "layers": 0}]``.
        cfg: the config's ``val`` section: ``kodak`` / ``imagenet`` (number of
            images, 0 = skip), optional ``kodak_dir`` / ``imagenet_dir`` and ``classifier``.
        device: where to run the codec.
    """
    from compressai_rdc import codec

    net = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    net.update(force=True)
    rows: List[Dict[str, Any]] = []
    kodak_n, inet_n = int(cfg.get("kodak") or 0), int(cfg.get("imagenet") or 0)
    kodak_dir, inet_dir = _dataset_dir(cfg.get("kodak_dir"), "kodak"), _dataset_dir(cfg.get("imagenet_dir"), "imagenet-dev")
    if kodak_n and kodak_dir is None:
        warnings.warn("validation: Kodak folder not found (../shared/data/kodak or val.kodak_dir); skipping Kodak")
    if inet_n and inet_dir is None:
        warnings.warn("validation: imagenet-dev not found (../shared/data/imagenet-dev or val.imagenet_dir); skipping top-1")
    classifier = _classifier(cfg.get("classifier") or "tf_efficientnet_lite0") if inet_n and inet_dir else None
    if classifier is not None:
        classifier[0].to(device)
    for ctl in controls:
        tag = " ".join(f"{k}={v}" for k, v in ctl.items()) or "default"
        if kodak_n and kodak_dir:
            bpp, psnr = [], []
            for img in _kodak(str(kodak_dir), kodak_n):
                x = img[None].to(device)
                data = codec.encode(net, x, **ctl)
                x_hat = codec.decode(data, net).clamp(0, 1)
                bpp.append(len(data) * 8 / (x.shape[-2] * x.shape[-1]))
                psnr.append(float(psnr_from_mse(((x_hat - x) ** 2).mean())))
            rows.append({"dataset": "kodak", "controls": tag, "images": len(bpp), "bpp": sum(bpp) / len(bpp), "psnr": sum(psnr) / len(psnr)})
        if classifier is not None:
            clf, tf = classifier
            bpp, psnr, correct = [], [], 0
            items = _imagenet(str(inet_dir), inet_n)
            for img, label in items:
                x = img[None].to(device)
                data = codec.encode(net, x, **ctl)
                x_hat = codec.decode(data, net).clamp(0, 1)
                bpp.append(len(data) * 8 / (x.shape[-2] * x.shape[-1]))
                psnr.append(float(psnr_from_mse(((x_hat - x) ** 2).mean())))
                correct += int(clf(tf(x_hat)).argmax(1).item() == label)
            rows.append({"dataset": "imagenet-dev", "controls": tag, "images": len(items), "bpp": sum(bpp) / len(bpp),
                         "psnr": sum(psnr) / len(psnr), "top1": correct / len(items)})
    return rows


__all__ = ["validate"]
