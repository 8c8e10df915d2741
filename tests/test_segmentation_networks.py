"""The segmenters (models/networks/segmentation/): parameter counts and state-dict layouts of the
authors' modules, forward shapes, float64 finite-difference gradients, and weight loading with its
one-line errors.

Independent figures: DRN-D-22 16,393,752 parameters (fyu/drn README "16.4M"; counted from its
drn.py), DRNSeg with 19 classes 15,895,363 of which 15,890,499 trainable (segment.py's DRNSeg),
DeepLab v2 ResNet-101 MSC with 182 classes 55,919,384 (deeplab-pytorch's DeepLabV2 + MSC as its
hubconf.py builds them for the COCO-Stuff files); the entry counts and key names are those of the
same modules (scripts/parity/segmenters.py builds both and compares every key and shape).
"""
import os

import pytest
import torch

from models.networks.segmentation import (DRN, DRNSeg, DeepLabV2MSC, load_segmenter,
                                          read_weights)
from models.networks.segmentation.drn import bilinear_upsampling_weights
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_DEEPLAB = dict(width=4, blocks=(1, 2, 1, 1))


def count(net, trainable=False):
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable)


def test_parameter_counts_and_layouts_at_full_size():
    with torch.device("meta"):
        drn, drnseg, deeplab = DRN(), DRNSeg(19), DeepLabV2MSC(182)
    assert count(drn) == 16_393_752
    assert count(drnseg) == 15_895_363 and count(drnseg, trainable=True) == 15_890_499
    assert count(deeplab) == 55_919_384
    drn_keys, seg_keys, lab_keys = (list(n.state_dict()) for n in (drn, drnseg, deeplab))
    assert (len(drn_keys), len(seg_keys), len(lab_keys)) == (152, 153, 632)
    assert drn_keys[0] == "layer0.0.weight" and drn_keys[-2:] == ["fc.weight", "fc.bias"]
    assert seg_keys[0] == "base.0.0.weight" and seg_keys[-3:] == ["seg.weight", "seg.bias", "up.weight"]
    assert "base.5.1.bn2.running_var" in seg_keys and "base.3.0.downsample.0.weight" in seg_keys
    assert lab_keys[0] == "base.layer1.conv1.conv.weight" and lab_keys[-1] == "base.aspp.c3.bias"
    assert "base.layer4.block23.increase.bn.running_mean" in lab_keys
    assert "base.layer5.block1.shortcut.conv.weight" in lab_keys
    assert "base.layer5.block2.shortcut.conv.weight" not in lab_keys  # identity shortcut
    # ASPP: four 3x3 branches at dilations 6, 12, 18, 24, straight to the 182 classes
    aspp = deeplab.base.aspp
    assert [c.dilation[0] for c in aspp.children()] == [6, 12, 18, 24]
    assert aspp.c0.weight.shape == (182, 2048, 3, 3)


def test_drnseg_shapes_and_output_stride():
    net = DRNSeg(19, width=0.125).eval()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        assert net.base(x).shape == (2, 64, 4, 8)  # output stride 8, 512 * 0.125 channels
        out = net(x)
    assert out.shape == (2, 19, 32, 64)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, 32, 64), atol=1e-5)  # log-probabilities
    assert net(torch.randn(1, 3, 20, 36)).shape == (1, 19, 20, 36)  # not a multiple of 8: cropped
    assert DRN(num_classes=10, width=0.125)(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_bilinear_upsampling_is_bilinear():
    w = bilinear_upsampling_weights(2, 16)
    assert w.shape == (2, 1, 16, 16) and torch.equal(w[0], w[1])
    ramp = w[0, 0, 7]  # the kernel is separable, its middle row the 1D tent
    assert torch.allclose(ramp, torch.flip(ramp, [0])) and ramp.max() == w.max()
    up = DRNSeg(3, width=0.125).up
    assert not up.weight.requires_grad
    with torch.no_grad():  # a constant map stays constant away from the border
        out = up(torch.ones(1, 3, 4, 4))
    assert out.shape == (1, 3, 32, 32) and torch.allclose(out[..., 8:24, 8:24], torch.ones(1))


def test_deeplab_shapes_and_multiscale_max():
    net = DeepLabV2MSC(182, **TINY_DEEPLAB).eval()
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        out = net(x)
        single = net.base(x)
    # stem: conv s2 -> 17x24, max pool (ceil) -> 9x13; layer3's stride-2 1x1 reduce -> 5x7
    assert out.shape == (1, 182, 5, 7) == single.shape
    assert torch.all(out >= single - 1e-6)  # the maximum over the scales includes scale 1
    net.train()
    maps = net(x)
    assert len(maps) == 4 and maps[0].shape == (1, 182, 5, 7)  # 1, 0.5, 0.75 and the max


def directional_check(f, tensors, eps=1e-6):
    """Central difference of f along a random direction of `tensors` vs autograd."""
    directions = [torch.randn_like(t) for t in tensors]
    value = f()
    grads = torch.autograd.grad(value, tensors)
    analytic = sum((g * d).sum() for g, d in zip(grads, directions))
    with torch.no_grad():
        for t, d in zip(tensors, directions):
            t.add_(eps * d)
        plus = f()
        for t, d in zip(tensors, directions):
            t.sub_(2 * eps * d)
        minus = f()
        for t, d in zip(tensors, directions):
            t.add_(eps * d)
    numeric = (plus - minus) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-8), (analytic, numeric)


@pytest.mark.parametrize("name", ["drnseg", "deeplab"])
def test_float64_finite_difference_gradients(name):
    torch.manual_seed(0)
    if name == "drnseg":  # train mode: batch statistics, as in training
        net = DRNSeg(5, width=0.125).double().train()
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    else:  # eval mode with non-trivial running statistics: the scoring path
        net = DeepLabV2MSC(6, **TINY_DEEPLAB).double().eval()
        x = torch.randn(1, 3, 17, 21, dtype=torch.float64, requires_grad=True)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            # BN biases away from 0: a window of ReLU zeros would otherwise give pre-activations
            # of exactly 0, a kink the central difference straddles
            m.bias.data.uniform_(-0.5, 0.5), m.weight.data.uniform_(0.5, 1.5)
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 1.5)
    weights = torch.randn_like(net(x))
    params = [p for p in net.parameters() if p.requires_grad]
    directional_check(lambda: (net(x) * weights).sum(), [x] + params)


def save_state(tmp_path, net, name, transform=lambda sd: sd):
    path = tmp_path / name
    torch.save(transform(net.state_dict()), path)
    return str(path)


def test_published_layouts_load_and_predict_alike(tmp_path):
    torch.manual_seed(0)
    net = DRNSeg(19, width=0.125)
    plain = save_state(tmp_path, net, "seg.pth")
    # segment.py's checkpoint: {'epoch', 'arch', 'state_dict' of DataParallel, 'best_prec1'}
    wrapped = save_state(tmp_path, net, "checkpoint_latest.pth.tar", lambda sd: {
        "epoch": 3, "arch": "drn_d_22", "best_prec1": 0.5,
        "state_dict": {"module." + k: v for k, v in sd.items()}})
    images = torch.randint(0, 256, (2, 16, 32, 3), dtype=torch.uint8)
    a, b = (load_segmenter("drn_d_22", p).predict(images) for p in (plain, wrapped))
    assert a.shape == (2, 16, 32) and torch.equal(a, b)
    assert len(load_segmenter("drn_d_22", plain).classes) == 19

    deeplab = DeepLabV2MSC(182, **TINY_DEEPLAB)
    # an older file without num_batches_tracked, and one saved from DeepLabV2 without MSC
    old = save_state(tmp_path, deeplab, "old.pth", lambda sd: {
        k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")})
    bare = save_state(tmp_path, deeplab, "bare.pth", lambda sd: {
        k[len("base."):]: v for k, v in sd.items()})
    seg_old, seg_bare = (load_segmenter("deeplabv2_cocostuff", p, input_size=64)
                         for p in (old, bare))
    assert seg_old.classes[18] == "horse" and seg_old.classes[23] == "zebra"
    assert torch.equal(seg_old.predict(images), seg_bare.predict(images))


def test_imagenet_weights_initialise_the_base():
    torch.manual_seed(0)
    imagenet = DRN(width=0.125).state_dict()
    net = DRNSeg(19, width=0.125)
    used = net.load_imagenet_base(imagenet)
    assert len(used) == len(net.base.state_dict())
    assert torch.equal(net.base[8][0].weight, imagenet["layer8.0.weight"])
    with pytest.raises(ValueError, match="not an ImageNet DRN of this size"):
        DRNSeg(19, width=0.25).load_imagenet_base(imagenet)


def test_weight_file_problems_are_one_line_errors(tmp_path):
    missing = str(tmp_path / "nowhere.pth")
    with pytest.raises(UserError, match=f"segmenter weights not found: {missing}"):
        load_segmenter("drn_d_22", missing)
    text = tmp_path / "text.pth"
    text.write_text("not weights")
    with pytest.raises(UserError, match="cannot read segmenter weights .*text.pth"):
        read_weights(str(text))
    imagenet = save_state(tmp_path, DRN(width=0.125), "drn_d_22-imagenet.pth")
    with pytest.raises(UserError, match="ImageNet classifier.*train_segmenter.py"):
        load_segmenter("drn_d_22", imagenet)
    deeplab = save_state(tmp_path, DeepLabV2MSC(182, **TINY_DEEPLAB), "deeplab.pth")
    with pytest.raises(UserError, match="deeplab.pth are not a DRNSeg state dict"):
        load_segmenter("drn_d_22", deeplab)
    net = DRNSeg(19, width=0.125)
    cut = save_state(tmp_path, net, "cut.pth", lambda sd: {k: v for k, v in sd.items()
                                                           if not k.startswith("base.8")})
    with pytest.raises(UserError, match=r"cut.pth do not fit drn_d_22: \d+ missing keys"):
        load_segmenter("drn_d_22", cut)
    with pytest.raises(UserError, match="unknown segmenter 'fcn8s'"):
        load_segmenter("fcn8s", cut)
    with pytest.raises(UserError) as err:
        load_segmenter("drn_d_22", cut)
    assert len(str(err.value).splitlines()) == 1 and os.path.basename(cut) in str(err.value)
