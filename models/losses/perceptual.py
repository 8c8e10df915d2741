"""MUNIT's domain-invariant perceptual loss (Huang et al. 2018, implementation details; the
authors' trainer.compute_vgg_loss), used by their synthia2cityscape config (vgg_w 1).

    L_vgg(x, y) = mean( (IN(phi(x)) - IN(phi(y)))^2 )

phi: VGG16 up to relu5_3 with Caffe weights (BGR input in [0, 255] minus the ImageNet channel
means), IN: instance norm without affine (eps 1e-5) over the 512 feature channels, which removes
the domain-specific feature statistics.  The authors compare x_ba with x_b (its content source).

The weights are those of the authors' converted Caffe VGG16, the state dict their
utils.load_vgg16 writes as `vgg16.weight` (keys conv1_1.weight ... conv5_3.bias); torchvision's
VGG16 is a different network (RGB, other weights) and does not fit.  Nothing is downloaded: a
missing file is a one-line error.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError

# (name, input channels, output channels); a 2x2 max pool follows the last conv of blocks 1-3
# only: the authors' network goes from relu4_3 to conv5_1 without pooling.
_LAYERS = [("conv1_1", 3, 64), ("conv1_2", 64, 64),
           ("conv2_1", 64, 128), ("conv2_2", 128, 128),
           ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
           ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
           ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)]
_POOL_AFTER = {"conv1_2", "conv2_2", "conv3_3"}
CAFFE_BGR_MEAN = (103.939, 116.779, 123.680)


class CaffeVGG16(nn.Module):
    """VGG16 convolutions, (B, 3, H, W) Caffe-preprocessed -> relu5_3 (B, 512, H/8, W/8)."""

    def __init__(self):
        super().__init__()
        for name, cin, cout in _LAYERS:
            setattr(self, name, nn.Conv2d(cin, cout, 3, 1, 1))

    def forward(self, x):
        for name, _, _ in _LAYERS:
            x = F.relu(getattr(self, name)(x))
            if name in _POOL_AFTER:
                x = F.max_pool2d(x, 2, 2)
        return x


def load_caffe_vgg16(path, device="cpu"):
    """The frozen VGG16 of `path` (see the module docstring), in eval mode on `device`."""
    if not path or not os.path.isfile(path):
        raise UserError(f"--vgg_weights {path}: file not found; --vgg_w > 0 needs the authors' "
                        "Caffe VGG16 state dict (vgg16.weight, written by MUNIT's "
                        "utils.load_vgg16), or pass --vgg_w 0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        vgg = CaffeVGG16()
        vgg.load_state_dict(state, strict=True)
    except Exception as err:  # a foreign file: one line naming it
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"--vgg_weights {path} is not the Caffe VGG16 state dict MUNIT uses "
                        f"({first})") from None
    vgg.to(device).eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg


def caffe_preprocess(images):
    """(B, 3, H, W) RGB in [-1, 1] -> BGR in [0, 255] minus the Caffe channel means."""
    bgr = images.flip(1)
    mean = torch.tensor(CAFFE_BGR_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (bgr + 1) * 127.5 - mean


def domain_invariant_perceptual_loss(vgg, images, targets):
    """mean((IN(vgg(images)) - IN(vgg(targets)))^2), both preprocessed as Caffe expects."""
    f_images = F.instance_norm(vgg(caffe_preprocess(images)), eps=1e-5)
    f_targets = F.instance_norm(vgg(caffe_preprocess(targets)), eps=1e-5)
    return torch.mean((f_images - f_targets) ** 2)
