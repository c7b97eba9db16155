"""Data access: dataset folders, the bundled sample image and the cognition crop.

Datasets are plain folders given on the command line or through
``$COMPRESSAI_RDC_DATA`` (a folder laid out like ``../shared/data``:
``kodak/``, ``imagenet-dev/``, ``train/``). Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from torch.utils.data import Dataset

from compressai_rdc.errors import DatasetError

DATA_ENV = "COMPRESSAI_RDC_DATA"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")

PathLike = Union[str, os.PathLike]


def find_data_dir(sub: Optional[str] = None) -> Optional[Path]:
    """The shared data folder (or its sub-folder ``sub``), or ``None`` if absent.

    Looks at ``$COMPRESSAI_RDC_DATA``, then ``../shared/data`` beside the
    current directory and beside the source checkout.
    """
    candidates: List[Path] = []
    env = os.environ.get(DATA_ENV)
    if env:
        candidates.append(Path(env).expanduser())
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    for root in candidates:
        path = root / sub if sub else root
        if path.is_dir():
            return path
    return None


def sample_image_path() -> Path:
    """A 384×256 downscale of Kodak ``kodim23`` shipped with the package
    (Kodak Lossless True Color Image Suite, released for unrestricted use)."""
    return Path(str(files("compressai_rdc") / "assets" / "sample.png"))


class AlphaDroppedWarning(UserWarning):
    """An image with transparent pixels was loaded: the codecs code RGB only."""


def load_image(path: PathLike) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float tensor in [0, 1].

    - 8-bit images (RGB, grey, palette, CMYK, ...) are converted to RGB by Pillow.
    - 16-bit grey (PNG ``I;16``, ``I``) is scaled by 1/65535 and repeated on the
      three channels (Pillow's own RGB conversion would clip it to white).
    - An alpha channel is dropped: transparent pixels keep the colour stored
      under them. When any pixel is not fully opaque an
      :class:`AlphaDroppedWarning` says so (composite onto a background
      yourself if that is not what you want).
    - Images above Pillow's decompression-bomb bound
      (``PIL.Image.MAX_IMAGE_PIXELS`` × 2, 179 Mpixels by default) raise
      :class:`DatasetError`; Pillow's own bound stays in force.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image file not found: {str(path)!r}")
    try:
        with Image.open(path) as im:
            if _transparent(im):
                import warnings

                warnings.warn(
                    f"{str(path)!r} has transparent pixels ({im.mode}); the alpha channel is dropped and "
                    "the colour stored under them is coded", AlphaDroppedWarning, stacklevel=2,
                )
            return _from_pil(im)
    except Image.DecompressionBombError as exc:
        raise DatasetError(
            f"{str(path)!r} is too large to load: {exc} "
            "(raise PIL.Image.MAX_IMAGE_PIXELS only for files you trust)"
        ) from exc
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"cannot read {str(path)!r} as an image: {exc}") from exc


def _transparent(im: Image.Image) -> bool:
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        lo, _ = im.convert("RGBA").getchannel("A").getextrema()
        return lo < 255
    return False


def save_image(x: torch.Tensor, path: PathLike) -> Path:
    """Write a ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [0, 1] as an 8-bit image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _to_pil(x[0] if x.dim() == 4 else x).save(path)
    return path


def list_images(root: PathLike, recursive: bool = True) -> List[Path]:
    """Sorted image files under ``root``; raises :class:`DatasetError` if none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {str(root)!r}")
    it = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {str(root)!r}")
    return paths


def _to_pil(img: torch.Tensor) -> Image.Image:
    arr = img.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


#: Pillow modes holding more than 8 bits of grey per pixel
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _from_pil(im: Image.Image) -> torch.Tensor:
    w, h = im.size
    if im.mode in _WIDE_GREY:
        import numpy as np

        grey = torch.from_numpy(np.asarray(im).astype(np.float32)).div_(65535.0).clamp_(0, 1)
        return grey.view(1, h, w).expand(3, h, w).clone()
    arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
    return arr.view(h, w, 3).permute(2, 0, 1).float().div_(255.0)


def cognition_crop(img: Union[torch.Tensor, Image.Image], size: int = 256) -> torch.Tensor:
    """The cognition protocol's codec input (``../shared/data/README.md``): resize
    the short side to ``size`` with PIL bicubic on 8-bit pixels and centre-crop
    ``size × size``. Accepts a PIL image, ``(3, H, W)`` or ``(B, 3, H, W)`` in
    [0, 1]; returns float tensors in [0, 1] of the same rank.

    PIL's bicubic filter is used on purpose: it reproduces the protocol's
    reference top-1 (90.4 % for ``tf_efficientnet_lite0`` on ``imagenet-dev``),
    torch's antialiased bicubic gives 89.6 %.
    """
    if isinstance(img, torch.Tensor) and img.dim() == 4:
        return torch.stack([cognition_crop(i, size) for i in img])
    im = img if isinstance(img, Image.Image) else _to_pil(img)
    im = im.convert("RGB")
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return _from_pil(im.crop((left, top, left + size, top + size)))


class ImageFolder(Dataset):
    """Every image under ``root`` (recursively), as ``(3, H, W)`` tensors in [0, 1]."""

    def __init__(self, root: PathLike, transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.root = Path(root)
        self.paths = list_images(self.root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = load_image(self.paths[i])
        return self.transform(img) if self.transform else img


_LABELLED = re.compile(r"^(\d+)_[A-Za-z0-9]+$")


class LabelledImageFolder(Dataset):
    """Labelled images: ``<class index>_<synset>.JPEG`` files (as ``imagenet-dev``)
    or an ImageFolder tree ``root/<class index or name>/*.jpg`` (classes sorted).

    Items are ``(image (3, H, W) in [0, 1], label)``.
    """

    def __init__(self, root: PathLike, transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.root = Path(root)
        self.transform = transform
        flat = [p for p in list_images(self.root, recursive=False)] if any(
            p.is_file() for p in self.root.iterdir()
        ) else []
        if flat:
            samples: List[Tuple[Path, int]] = []
            for p in flat:
                m = _LABELLED.match(p.stem)
                if not m:
                    raise DatasetError(
                        f"{p.name!r} in {str(self.root)!r} is not named '<class index>_<synset>.<ext>'; "
                        "use that naming or one sub-folder per class"
                    )
                samples.append((p, int(m.group(1))))
            self.classes: Sequence[str] = []
        else:
            dirs = sorted(d for d in self.root.iterdir() if d.is_dir())
            if not dirs:
                raise DatasetError(f"{str(self.root)!r} has neither labelled image files nor class sub-folders")
            numeric = all(d.name.isdigit() for d in dirs)
            self.classes = [d.name for d in dirs]
            samples = []
            for i, d in enumerate(dirs):
                label = int(d.name) if numeric else i
                samples.extend((p, label) for p in list_images(d))
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        img = load_image(path)
        return (self.transform(img) if self.transform else img), label


__all__ = [
    "DATA_ENV",
    "ImageFolder",
    "LabelledImageFolder",
    "cognition_crop",
    "find_data_dir",
    "list_images",
    "load_image",
    "sample_image_path",
    "save_image",
]
