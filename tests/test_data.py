"""Data helpers: image I/O, folders, the cognition protocol crop, padding."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from compressai_rdc.data import (
    ImageFolder,
    LabelledImageFolder,
    cognition_crop,
    load_image,
    sample_image_path,
    save_image,
)
from compressai_rdc.errors import DatasetError, InvalidArgumentError
from compressai_rdc.utils.padding import pad_to_multiple, unpad


def test_sample_image_is_shipped():
    x = load_image(sample_image_path())
    assert x.shape == (3, 256, 384) and 0.0 <= x.min() < x.max() <= 1.0


def test_save_load_round_trip_is_exact_on_8bit(tmp_path):
    x = torch.randint(0, 256, (3, 17, 23)).float() / 255
    y = load_image(save_image(x, tmp_path / "a.png"))
    assert torch.equal(x, y)


def test_cognition_crop_matches_reference_pil_pipeline():
    im = Image.open(sample_image_path()).convert("RGB")  # 384x256: short side already 256
    out = cognition_crop(im)
    ref = torch.from_numpy(__import__("numpy").asarray(im.crop((64, 0, 320, 256))).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(out, ref)
    small = cognition_crop(torch.rand(3, 100, 150))  # upscaled to short side 256
    assert small.shape == (3, 256, 256)
    assert cognition_crop(torch.rand(2, 3, 300, 260)).shape == (2, 3, 256, 256)


def test_labelled_folder_both_layouts(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("0004_n01494475.JPEG", "0012_n01537544.JPEG"):
        Image.new("RGB", (8, 8)).save(flat / name, format="JPEG")
    assert [label for _, label in LabelledImageFolder(flat)] == [4, 12]
    tree = tmp_path / "tree"
    for cls in ("cat", "dog"):
        (tree / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tree / cls / "x.png")
    ds = LabelledImageFolder(tree)
    assert [label for _, label in ds] == [0, 1] and list(ds.classes) == ["cat", "dog"]
    (flat / "oops.JPEG").write_bytes((flat / "0004_n01494475.JPEG").read_bytes())
    with pytest.raises(DatasetError, match="oops.JPEG"):
        LabelledImageFolder(flat)


def test_missing_or_empty_folders_raise(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no images"):
        ImageFolder(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read"):
        ImageFolder(tmp_path)[0]


def test_padding_round_trip_and_errors():
    x = torch.rand(2, 3, 37, 53)
    y, pad = pad_to_multiple(x, 64)
    assert y.shape == (2, 3, 64, 64) and torch.equal(unpad(y, pad), x)
    assert pad_to_multiple(torch.rand(1, 3, 64, 128), 64)[1] == (0, 0, 0, 0)
    with pytest.raises(InvalidArgumentError, match=r"\(B, C, H, W\)"):
        pad_to_multiple(torch.rand(3, 8, 8), 64)


@pytest.mark.data
def test_shared_folders_have_expected_sizes(kodak_dir, imagenet_dev_dir):
    assert len(ImageFolder(kodak_dir)) == 24
    ds = LabelledImageFolder(imagenet_dev_dir)
    assert len(ds) == 250 and all(label % 4 == 0 for _, label in ds.samples)
