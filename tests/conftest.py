"""Shared fixtures. Data-dependent tests skip, with a reason, when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


def load_repo_script(relpath: str):
    """Import a script of the repository that is not a package module (``benchmarks/x.py``,
    ``scripts/y.py``) under its file name, for tests of its functions."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


class QScaledAnalysis(nn.Module):
    """Wraps a real SFT analysis so that the latent grows with the local quality
    (``× 0.5·exp(4·q)``): map dependence by construction, for tests that need a
    quality-map codec whose rate follows ``q`` without trained weights."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def stem(self, x):
        return self.inner.stem(x)

    def forward(self, x, q, stem=None):
        y = self.inner(x, q, stem=stem)
        return y * 0.5 * torch.exp(4 * F.adaptive_avg_pool2d(q, y.shape[-2:]))


@pytest.fixture(scope="session")
def map_dependent_hevrc():
    """``hevrc`` (N=32, M=48, 16 condition channels), seeded, with :class:`QScaledAnalysis`."""
    from compressai_rdc.models.hevrc import HEVRC

    torch.manual_seed(0)
    net = HEVRC(N=32, M=48, cond_channels=16)
    net.g_a = QScaledAnalysis(net.g_a)
    net.eval().update(force=True)
    return net
