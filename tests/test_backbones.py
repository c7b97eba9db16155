"""Frozen backbones as the training losses use them: right weights, never updated."""

from __future__ import annotations

import pytest
import torch

from compressai_rdc.backbones import create_backbone, eval_transform


@pytest.mark.data
def test_lite0_top1_on_imagenet_dev_is_at_least_88_percent(imagenet_dev_dir):
    """Cognition protocol of ../shared/data/README.md: short side 256 (bicubic),
    centre crop 256, then the classifier's eval transform (crop 224, mean=std=0.5).
    The README reports 90.4 % for these 250 images."""
    from compressai_rdc.data import LabelledImageFolder, cognition_crop

    net = create_backbone("tf_efficientnet_lite0")
    tf = eval_transform(net)
    ds = LabelledImageFolder(imagenet_dev_dir, transform=cognition_crop)
    assert len(ds) == 250
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ds), 25):
            items = [ds[i] for i in range(start, min(start + 25, len(ds)))]
            x = torch.stack([img for img, _ in items])
            labels = torch.tensor([label for _, label in items])
            correct += int((net(tf(x)).argmax(1) == labels).sum())
    top1 = correct / len(ds)
    assert top1 >= 0.88, f"top-1 {top1:.3f} < 0.88: the lite0 weights are not mapped correctly"


def test_backbone_inside_training_never_changes(tmp_path):
    """Two optimisation steps of RDC stage I (MoCo loss on lite0) leave every
    backbone tensor, batch-norm statistics included, bit-identical."""
    from compressai_rdc.data import save_image
    from compressai_rdc.training.recipes import load_config
    from compressai_rdc.training.trainer import Trainer

    for i in range(2):
        save_image(torch.rand(3, 64, 64), tmp_path / "data" / f"{i}.png")
    cfg = load_config("rdc-versatile-stage1", [
        "model.kwargs={N: 8, M: 8, residual_N: 8, residual_M: 8}", "data.batch_size=2", "data.crop=64",
        f"data.train={tmp_path / 'data'}", "log.checkpoint_every=0", "optim.lr=0.01",
    ])
    t = Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    backbone = t.criterion.terms["moco-cognition"].backbone
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    codec_before = {k: v.clone() for k, v in t.model.primary.state_dict().items()}
    t.fit(max_steps=2)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.training
    assert any(not torch.equal(codec_before[k], v) for k, v in t.model.primary.state_dict().items())
    # and it is not in the checkpoint: only the queue is
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert not any(".backbone." in k for k in ckpt["criterion"])
