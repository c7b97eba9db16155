"""Machine tasks: known-answer summaries, offline plumbing with random detectors and
segmenters on synthetic data, and a third-party task through the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compressai_rdc.errors import DatasetError, InvalidArgumentError
from compressai_rdc.registry import TASKS
from compressai_rdc.tasks import Task


def test_builtin_tasks_are_registered():
    assert {"classification", "detection", "segmentation"} <= set(TASKS.names())
    for name in TASKS.names():
        cls = TASKS.get(name)
        assert issubclass(cls, Task) and cls.primary_metric in cls.metric_names


# -- classification ----------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier():
    return TASKS.get("classification")(batch_size=4)


def test_classification_summary_known_answer(classifier):
    # labels 1, 2, 3, 4; top-1 right for the first, top-5 right for the first three
    top5 = torch.tensor([[1, 9, 9, 9, 9], [9, 2, 9, 9, 9], [9, 9, 9, 9, 3], [9, 9, 9, 9, 9]])
    records = [(lab, top5[i]) for i, lab in enumerate([1, 2, 3, 4])]
    assert classifier.summarize(records) == {"top-1": 25.0, "top-5": 75.0}


def test_classification_predict_is_batch_independent(classifier):
    x = torch.rand(3, 3, 256, 256)
    together = classifier.predict(list(x), [0, 1, 2])
    alone = [classifier.predict([x[i]], [i])[0] for i in range(3)]
    for a, b in zip(together, alone):
        assert a[0] == b[0] and torch.equal(a[1][:1], b[1][:1])


# -- detection ------------------------------------------------------------------------
def _coco(tmp_path: Path, n: int = 2) -> Path:
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 128, "height": 96})
        anns.append({"id": i + 1, "image_id": i + 1, "bbox": [10, 20, 30, 40], "category_id": 3})
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 3, "name": "car"}]}))
    return root


def test_detection_needs_weights_or_explicit_random_init():
    with pytest.raises(InvalidArgumentError, match="weights="):
        TASKS.get("detection")()
    with pytest.raises(InvalidArgumentError, match="unknown detection model"):
        TASKS.get("detection")(model="no_such_detector", random_init=True)


def test_detection_dataset_and_perfect_predictions_score_100(tmp_path):
    task = TASKS.get("detection")(random_init=True, num_classes=5)
    ds = task.load_dataset(_coco(tmp_path))
    img, target = ds[0]
    assert img.shape == (3, 96, 128)
    assert torch.equal(target["boxes"], torch.tensor([[10.0, 20.0, 40.0, 60.0]]))
    perfect = [({"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]}, t) for _, t in (ds[0], ds[1])]
    assert task.summarize(perfect)["map"] == pytest.approx(100.0)
    wrong = [({"boxes": t["boxes"] + 50, "scores": torch.ones(1), "labels": t["labels"]}, t) for _, t in (ds[0], ds[1])]
    assert task.summarize(wrong)["map"] == pytest.approx(0.0)


def test_detection_random_detector_plumbing(tmp_path):
    task = TASKS.get("detection")(random_init=True, num_classes=5, batch_size=2)
    ds = task.load_dataset(_coco(tmp_path, 3))
    items = [ds[i] for i in range(3)]
    records = task.predict([i for i, _ in items], [t for _, t in items])
    assert len(records) == 3 and set(records[0][0]) == {"boxes", "scores", "labels"}
    out = task.summarize(records)
    assert set(out) == set(task.metric_names) and all(np.isfinite(v) for v in out.values())


def test_detection_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="annotations"):
        TASKS.get("detection")(random_init=True).load_dataset(tmp_path)


# -- segmentation ---------------------------------------------------------------------
def _segdata(tmp_path: Path, n: int = 2) -> Path:
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        mask = np.zeros((64, 96), np.uint8)
        mask[:, 48:] = 1
        mask[:4] = 255
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    return root


def test_segmentation_summary_known_answer():
    task = TASKS.get("segmentation")(random_init=True, num_classes=3)
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    target = torch.tensor([0, 0, 1, 1, 255])
    pred = torch.tensor([0, 1, 1, 1, 2])  # class 0: IoU 1/2, class 1: IoU 2/3, class 2 absent
    cm = multiclass_confusion_matrix(pred, target, 3, ignore_index=255)
    out = task.summarize([cm, cm])
    assert out["miou"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert out["pixel_accuracy"] == pytest.approx(75.0)


def test_segmentation_random_net_plumbing(tmp_path):
    task = TASKS.get("segmentation")(random_init=True, num_classes=2)
    ds = task.load_dataset(_segdata(tmp_path))
    img, mask = ds[0]
    assert img.shape == (3, 64, 96) and mask.shape == (64, 96) and int(mask.max()) == 255
    records = task.predict([img, ds[1][0]], [mask, ds[1][1]])
    assert records[0].shape == (2, 2) and int(records[0].sum()) == 60 * 96  # ignored rows not counted
    assert 0.0 <= task.summarize(records)["miou"] <= 100.0


def test_segmentation_missing_mask(tmp_path):
    root = _segdata(tmp_path)
    (root / "masks" / "s1.png").unlink()
    with pytest.raises(DatasetError, match="mask"):
        TASKS.get("segmentation")(random_init=True).load_dataset(root)


# -- a third-party task ---------------------------------------------------------------
class MeanBrightness(Task):
    """A toy task: error between decoded mean brightness and the target."""

    name = "brightness"
    metric_names = ("abs-error",)
    primary_metric = "abs-error"
    higher_is_better = False

    def load_dataset(self, root):
        from compressai_rdc.data import ImageFolder

        folder = ImageFolder(root)
        return [(folder[i], float(folder[i].mean())) for i in range(len(folder))]

    def predict(self, images, targets):
        return [abs(float(im.mean()) - t) for im, t in zip(images, targets)]

    def summarize(self, records):
        return {"abs-error": 255.0 * sum(records) / len(records)}


def test_third_party_task_runs_in_eval(tmp_path):
    from compressai_rdc.cli import main

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(data / f"a{i}.png")
    TASKS.register("brightness", MeanBrightness, plugin="test-plugin")
    try:
        rc = main(["eval", "--dataset", f"toy={data}:task=brightness", "--codec", "jpeg:quality=5|50", "--metrics", "psnr", "--out", str(tmp_path / "out"), "--quiet", "--no-plots"])
    finally:
        TASKS.unregister("brightness")
    assert rc == 0
    res = json.loads((tmp_path / "out" / "toy" / "jpeg.json").read_text())["results"]
    assert len(res["abs-error"]) == 2 and all(v >= 0 for v in res["abs-error"])
    unc = json.loads((tmp_path / "out" / "toy" / "uncompressed.json").read_text())["results"]
    assert unc["abs-error"] == [pytest.approx(0.0, abs=1e-4)]


def test_detection_and_segmentation_load_user_weights(tmp_path):
    """weights= (a .safetensors state dict) reproduces the network it was saved from."""
    from safetensors.torch import save_file

    for name, kwargs, x in (
        ("detection", {"num_classes": 5}, [torch.rand(3, 96, 128)]),
        ("segmentation", {"num_classes": 3}, [torch.rand(3, 64, 96)]),
    ):
        src = TASKS.get(name)(random_init=True, **kwargs)
        path = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in src.net.state_dict().items()}, str(path))
        loaded = TASKS.get(name)(weights=str(path), **kwargs)
        with torch.inference_mode():
            a, b = src.net(x if name == "detection" else x[0][None]), loaded.net(x if name == "detection" else x[0][None])
        if name == "detection":
            assert torch.equal(a[0]["boxes"], b[0]["boxes"])
        else:
            assert torch.equal(a["out"], b["out"])
        assert loaded.describe()[f"{'detector' if name == 'detection' else 'segmenter'}_weights"] == str(path)


def test_detection_through_the_eval_command(tmp_path):
    from compressai_rdc.cli import main

    root = _coco(tmp_path, 2)
    out = tmp_path / "out"
    rc = main(["eval", "--dataset", f"coco={root}:task=detection,random_init=true,num_classes=5", "--codec", "jpeg:quality=20|80",
               "--metrics", "psnr", "--no-plots", "--quiet", "--out", str(out)])
    assert rc == 0
    j = json.loads((out / "coco" / "jpeg.json").read_text())
    assert j["task"] == "detection" and j["protocol"] == "full" and len(j["results"]["map"]) == 2
    assert j["settings"]["codec"] == "jpeg"


def test_data_loader_workers_give_the_same_inputs(tmp_path):
    from compressai_rdc.eval.protocol import load_eval_data

    root = _segdata(tmp_path, 3) / "images"
    a = load_eval_data("x", str(root), protocol="crop256", workers=0)
    b = load_eval_data("x", str(root), protocol="crop256", workers=2)
    assert all(torch.equal(p, q) for p, q in zip(a.images, b.images)) and a.images[0].shape == (3, 256, 256)
    shard = load_eval_data("x", str(root), rank=1, world_size=2)
    assert shard.indices == [1] and shard.total == 3
