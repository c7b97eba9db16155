"""Shared fixtures. Data-dependent tests skip, with a reason, when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressai_rdc.data import DATA_ENV, find_data_dir, load_image, sample_image_path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data(sub=None) -> Path:
    path = find_data_dir(sub)
    if path is None:
        where = f"{sub}/ in " if sub else ""
        pytest.skip(f"{where}../shared/data not found (set ${DATA_ENV} to the data folder to run this test)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _data()


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return _data("kodak")


@pytest.fixture(scope="session")
def imagenet_dev_dir() -> Path:
    return _data("imagenet-dev")


@pytest.fixture(scope="session")
def train_dir() -> Path:
    return _data("train")


@pytest.fixture(scope="session")
def sample_image() -> torch.Tensor:
    """The bundled 384×256 sample image as a (1, 3, 256, 384) tensor in [0, 1]."""
    return load_image(sample_image_path()).unsqueeze(0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
