"""Segmenters that score translations: the registry, their input conventions and weight loading.

    drn_d_22              DRN-D-22 + DRNSeg head, 19 Cityscapes classes: the segmentation score
                          (CUT Table 1: mAP = mean IoU, pixAcc, classAcc) of labels -> photo
    deeplabv2_cocostuff   DeepLab v2 ResNet-101 (multi-scale), 182 COCO-Stuff classes: the
                          "detected pixels" of horse2zebra (share of pixels called horse/zebra)

Weights are always a local file (nothing is downloaded): `load_segmenter(name, path)` reads it,
builds the network the file describes (a narrow DRN trained by scripts/train_segmenter.py loads
the same way as the published width), and fails with one line naming the file when it is
missing or is not weights of that segmenter.

`Segmenter.predict(images)` takes (B, H, W, 3) uint8 RGB arrays or tensors and returns (B, H, W)
int64 class indices at the same size, with each model's own preprocessing:
  drn_d_22             RGB in [0, 1], minus the Cityscapes mean, divided by its std (fyu/drn
                       datasets/cityscapes/info.json); run at the given size (the score's
                       256x128; segment.py does not resize)
  deeplabv2_cocostuff  BGR in [0, 255] minus the mean BGR (104.008, 116.669, 122.675); resized
                       (bilinear) so that the longer side is 513 px (`input_size`, evaluate.py
                       --seg_size), as deeplab-pytorch's demo;
                       scores upsampled (bilinear) to the input size before the argmax
"""
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from data.cityscapes_labels import TRAIN_CLASSES
from util.checkpoint import strip_module_prefix
from util.errors import UserError, first_line

from .cocostuff_classes import COCOSTUFF_CLASSES
from .deeplab import DeepLabV2, DeepLabV2MSC
from .drn import DRN, DRN_CHANNELS, DRNSeg

__all__ = ["SEGMENTERS", "Segmenter", "load_segmenter", "build_segmenter", "read_weights",
           "DRN", "DRNSeg", "DeepLabV2", "DeepLabV2MSC"]

CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)  # RGB, [0, 1]
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
COCOSTUFF_MEAN_BGR = (104.008, 116.669, 122.675)  # configs/cocostuff164k.yaml, IMAGE.MEAN
DEEPLAB_TEST_SIZE = 513  # IMAGE.SIZE.TEST: the longer side the demo resizes to


@dataclass(frozen=True)
class SegmenterSpec:
    name: str
    classes: tuple
    build: Callable  # (state dict or None, width) -> network
    describe: str
    weights_hint: str  # what the file is and where users get it, for error messages


def _drn_width(state_dict):
    """DRN width read back from the stem: base.0.0.weight is (16 * width, 3, 7, 7)."""
    return state_dict["base.0.0.weight"].shape[0] / DRN_CHANNELS[0]


def _build_drn(state_dict=None, width=1.0, num_classes=len(TRAIN_CLASSES)):
    if state_dict is not None:
        width, num_classes = _drn_width(state_dict), state_dict["seg.weight"].shape[0]
    return DRNSeg(num_classes=num_classes, width=width)


def _build_deeplab(state_dict=None, width=64, num_classes=len(COCOSTUFF_CLASSES)):
    if state_dict is not None:
        width = state_dict["base.layer1.conv1.conv.weight"].shape[0]
        num_classes = state_dict["base.aspp.c0.weight"].shape[0]
        blocks = tuple(len({k.split(".")[2] for k in state_dict if k.startswith(f"base.layer{i}.")})
                       for i in range(2, 6))
        return DeepLabV2MSC(num_classes, width=width, blocks=blocks)
    return DeepLabV2MSC(num_classes, width=width)


SEGMENTERS = {
    "drn_d_22": SegmenterSpec(
        "drn_d_22", TRAIN_CLASSES, _build_drn,
        "DRN-D-22 (fyu/drn DRNSeg), 19 Cityscapes train ids",
        "a DRNSeg drn_d_22 state dict (segment.py's model, e.g. drn_d_22_cityscapes.pth, or "
        "scripts/train_segmenter.py's seg_drn_d_22.pth)"),
    "deeplabv2_cocostuff": SegmenterSpec(
        "deeplabv2_cocostuff", COCOSTUFF_CLASSES, _build_deeplab,
        "DeepLab v2 ResNet-101 MSC (kazuto1011/deeplab-pytorch), 182 COCO-Stuff classes",
        "deeplab-pytorch's deeplabv2_resnet101_msc-cocostuff164k-100000.pth (or -cocostuff10k-"
        "20000.pth)"),
}

# Keys that tell which published file a user passed, for a useful message.
_DRN_IMAGENET_KEY = "layer0.0.weight"


def read_weights(path):
    """The state dict in `path` (a bare state dict, or a checkpoint holding one under
    'state_dict' as segment.py's checkpoint_latest.pth.tar; `module.` prefixes dropped)."""
    if not path:
        raise UserError("no segmenter weights given: pass --seg_weights FILE (a local file; "
                        "nothing is downloaded)")
    if not os.path.isfile(path):
        raise UserError(f"segmenter weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or pickled objects
        raise UserError(f"cannot read segmenter weights {path}: {first_line(err)}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise UserError(f"segmenter weights {path} do not hold a state dict")
    state_dict = dict(obj)
    state_dict.pop("_metadata", None)
    return strip_module_prefix(state_dict)


def _fit(net, state_dict, path, spec):
    """Strictly load `state_dict` into `net`; BatchNorm's num_batches_tracked may be absent
    (files saved before PyTorch 0.4.1).  A mismatch is a one-line error naming the file."""
    own = net.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state_dict and k not in optional]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        if missing:
            detail = f"{len(missing)} missing keys (e.g. {missing[0]})"
        elif unexpected:
            detail = f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})"
        else:
            k = shapes[0]
            detail = (f"{k} is {tuple(state_dict[k].shape)}, the network has {tuple(own[k].shape)}")
        raise UserError(f"segmenter weights {path} do not fit {spec.name}: {detail}; expected "
                        f"{spec.weights_hint}")
    net.load_state_dict({k: state_dict.get(k, own[k]) for k in own})


def build_segmenter(name, state_dict=None, path="<weights>", **kwargs):
    """The network of segmenter `name`, shaped after `state_dict` when given (and loaded)."""
    spec = SEGMENTERS[name]
    if state_dict is None:
        return spec.build(None, **kwargs)
    if name == "drn_d_22":
        if "base.0.0.weight" not in state_dict or "seg.weight" not in state_dict:
            hint = (" (this is the ImageNet classifier drn_d_22; a segmenter must be trained from "
                    "it: scripts/train_segmenter.py --imagenet_weights FILE)"
                    if _DRN_IMAGENET_KEY in state_dict else "")
            raise UserError(f"segmenter weights {path} are not a DRNSeg state dict: no "
                            f"base.0.0.weight / seg.weight{hint}; expected {spec.weights_hint}")
    else:
        if not any(k.startswith("base.") for k in state_dict) and "aspp.c0.weight" in state_dict:
            state_dict = {"base." + k: v for k, v in state_dict.items()}  # DeepLabV2 without MSC
        needed = ("base.layer1.conv1.conv.weight", "base.aspp.c0.weight")
        if not all(k in state_dict for k in needed):
            raise UserError(f"segmenter weights {path} are not a DeepLab v2 state dict: no "
                            f"{needed[0]} / {needed[1]}; expected {spec.weights_hint}")
    net = spec.build(state_dict)
    _fit(net, state_dict, path, spec)
    return net


class Segmenter:
    """A segmentation network in eval mode with its preprocessing and class names."""

    def __init__(self, name, net, device="cpu", weights=None, input_size=DEEPLAB_TEST_SIZE):
        self.name, self.spec = name, SEGMENTERS[name]
        self.input_size = input_size  # deeplabv2_cocostuff: the longer side it runs at
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.weights = weights
        num = net.num_classes
        self.classes = self.spec.classes if num == len(self.spec.classes) else \
            tuple(f"class_{i}" for i in range(num))

    def _to_input(self, images):
        """(B, H, W, 3) uint8 RGB -> the network's input (B, 3, H', W') float."""
        x = images if torch.is_tensor(images) else torch.from_numpy(np.array(images))  # a copy
        # (B, 3, H, W), 0..255, contiguous (not channels-last: see scripts/train_segmenter.py)
        x = x.to(self.device).permute(0, 3, 1, 2).contiguous().float()
        if self.name == "drn_d_22":
            mean = torch.tensor(CITYSCAPES_MEAN, device=self.device).view(1, 3, 1, 1)
            std = torch.tensor(CITYSCAPES_STD, device=self.device).view(1, 3, 1, 1)
            return (x / 255.0 - mean) / std
        x = x.flip(1) - torch.tensor(COCOSTUFF_MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        scale = self.input_size / max(x.shape[-2:])
        size = [round(s * scale) for s in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def scores(self, images):
        """(B, classes, H, W) scores at the images' size (argmax = prediction)."""
        height, width = np.asarray(images).shape[1:3] if not torch.is_tensor(images) \
            else images.shape[1:3]
        out = self.net(self._to_input(images))
        if out.shape[-2:] != (height, width):
            out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
        return out

    def predict(self, images):
        """(B, H, W, 3) uint8 RGB -> (B, H, W) int64 class indices."""
        return self.scores(images).argmax(dim=1).cpu()


def load_segmenter(name, path, device="cpu", input_size=DEEPLAB_TEST_SIZE):
    """Segmenter `name` with the weights in `path` (one-line UserError when that fails);
    `input_size`: the longer side DeepLab runs at (DRN runs at the size it is given)."""
    if name not in SEGMENTERS:
        raise UserError(f"unknown segmenter '{name}'; choose from: {', '.join(SEGMENTERS)}")
    net = build_segmenter(name, read_weights(path), path)
    return Segmenter(name, net, device, weights=path, input_size=input_size)
