"""Training data: every image decoded once, random crops drawn where the images live.

::

    folder ─decode once (PIL)─> uint8 (3, H, W) per image, small ones upscaled/padded
           └─ kept on the CPU or the GPU ──> per step: pick images, random k×k crops, flips
                                                ──> float (B, 3, k, k) in [0, 1] on the device

Which images and crops a step sees depends only on ``(seed, step, rank)``, so a
resumed run sees exactly the batches the uninterrupted run would have seen,
and DDP ranks see disjoint slices of one global batch (a distributed sampler
without a ``DataLoader``). Images are visited epoch by epoch in a seeded
random order, without replacement inside an epoch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from compressai_rdc.errors import DatasetError, InvalidArgumentError

SMALL_POLICIES = ("upscale", "pad")


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, step, stream)`` only."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 97 + int(stream)) % (2**63 - 1))


def _decode(path: Path) -> Tensor:
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read training image {str(path)!r}: {exc}") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def fit_to_crop(img: Tensor, crop: int, small: str = "upscale") -> Tensor:
    """Make a uint8 ``(3, H, W)`` image at least ``crop`` pixels on each side.

    ``"upscale"`` resizes (bicubic) so the short side equals ``crop``, keeping the
    aspect ratio; ``"pad"`` reflect-pads (replicate-pads when the image is too
    small to reflect). Images already large enough are returned unchanged.
    """
    h, w = img.shape[-2:]
    if h >= crop and w >= crop:
        return img
    if small == "upscale":
        s = crop / min(h, w)
        nh, nw = max(crop, round(h * s)), max(crop, round(w * s))
        out = F.interpolate(img[None].float(), size=(nh, nw), mode="bicubic", align_corners=False)
        return out[0].round().clamp(0, 255).to(torch.uint8)
    if small == "pad":
        ph, pw = max(0, crop - h), max(0, crop - w)
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(img[None].float(), pad, mode=mode)[0].to(torch.uint8)
    raise InvalidArgumentError(f"small-image policy {small!r} is invalid; valid: {', '.join(SMALL_POLICIES)}")


def list_training_images(root: Union[str, os.PathLike]) -> List[Path]:
    from compressai_rdc.data import list_images

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"training folder {str(root)!r} does not exist")
    paths = sorted(list_images(root))
    if not paths:
        raise DatasetError(f"training folder {str(root)!r} holds no images (png, jpg, jpeg, webp, ...)")
    return paths


def default_train_dir() -> Path:
    """``../shared/data/train`` (via :func:`compressai_rdc.data.find_data_dir`) or a clear error."""
    from compressai_rdc.data import find_data_dir

    path = find_data_dir("train")
    if path is None:
        raise DatasetError(
            "no training folder given and ../shared/data/train was not found; pass --data DIR or set data.train in the config"
        )
    return path


class CropSampler:
    """Random crops from a folder of images decoded once and kept in memory.

    Args:
        root: image folder (searched recursively).
        crop: crop size k (square).
        seed: base seed; a step's batch depends only on ``(seed, step, rank)``.
        device: where images are kept and crops are cut (``"cuda"``: GPU-side cropping).
        small: policy for images smaller than the crop: ``"upscale"`` or ``"pad"``.
        hflip: random horizontal flips.
        vflip: random vertical flips.
        max_images: use only the first N images (sorted by path), e.g. for tests.
    """

    def __init__(
        self,
        root: Optional[Union[str, os.PathLike]],
        crop: int = 256,
        *,
        seed: int = 0,
        device: Union[str, torch.device] = "cpu",
        small: str = "upscale",
        hflip: bool = True,
        vflip: bool = False,
        max_images: Optional[int] = None,
    ):
        if crop < 16:
            raise InvalidArgumentError(f"crop must be at least 16 pixels, got {crop}")
        if small not in SMALL_POLICIES:
            raise InvalidArgumentError(f"small-image policy {small!r} is invalid; valid: {', '.join(SMALL_POLICIES)}")
        self.crop, self.seed, self.device = int(crop), int(seed), torch.device(device)
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        if root is None:  # filled by from_tensors
            self.paths, self.images = [], []
            return
        self.paths = list_training_images(root)[: max_images or None]
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
            decoded = list(pool.map(_decode, self.paths))
        self.images: List[Tensor] = [fit_to_crop(img, self.crop, small).to(self.device) for img in decoded]

    @classmethod
    def from_tensors(cls, images: Sequence[Tensor], crop: int = 256, **kwargs) -> "CropSampler":
        """A sampler over in-memory uint8 ``(3, H, W)`` images (benchmarks, tests)."""
        small = kwargs.pop("small", "upscale")
        self = cls(None, crop, **kwargs)
        self.images = [fit_to_crop(img, self.crop, small).to(self.device) for img in images]
        if not self.images:
            raise DatasetError("from_tensors needs at least one image")
        return self

    def __len__(self) -> int:
        return len(self.images)

    def indices(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> List[int]:
        """Image indices of ``rank``'s share of the global batch of ``step``."""
        n, gb = len(self.images), batch_size * world_size
        start = step * gb
        out: List[int] = []
        while len(out) < gb:
            epoch, offset = divmod(start + len(out), n)
            perm = torch.randperm(n, generator=step_generator(self.seed, epoch, stream=1))
            out.extend(perm[offset : offset + gb - len(out)].tolist())
        return out[rank::world_size]

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Tensor:
        """Float crops ``(batch_size, 3, crop, crop)`` in [0, 1] on ``device``."""
        idx = self.indices(step, batch_size, rank, world_size)
        g = step_generator(self.seed, step, stream=2 + rank)
        r = torch.rand(len(idx), 4, generator=g).tolist()
        k = self.crop
        crops = []
        for i, (ry, rx, fh, fv) in zip(idx, r):
            img = self.images[i]
            h, w = img.shape[-2:]
            top, left = int(ry * (h - k + 1)), int(rx * (w - k + 1))
            c = img[:, top : top + k, left : left + k]
            if self.hflip and fh < 0.5:
                c = c.flip(-1)
            if self.vflip and fv < 0.5:
                c = c.flip(-2)
            crops.append(c)
        return torch.stack(crops).float().div_(255.0)


__all__ = ["CropSampler", "default_train_dir", "fit_to_crop", "list_training_images", "step_generator"]
