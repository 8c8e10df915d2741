"""DeepLab v2 (Chen et al., TPAMI 2017): a dilated ResNet-101 with atrous spatial pyramid pooling,
as the PyTorch port the CUT paper used for its horse2zebra "detected pixels" (the COCO-Stuff
models of kazuto1011/deeplab-pytorch, `libs/models/{resnet,deeplabv2,msc}.py`).

Parameter names follow that port, so its released COCO-Stuff files
(`deeplabv2_resnet101_msc-cocostuff164k-100000.pth`, `...-cocostuff10k-20000.pth`, 182 classes)
load as they are into DeepLabV2MSC:
  base.layer1.conv1.{conv,bn}.*                       7x7 stem, stride 2, then 3x3 max pool
  base.layer<2..5>.block<i>.{reduce,conv3x3,increase,shortcut}.{conv,bn}.*   bottlenecks
  base.aspp.c<0..3>.{weight,bias}                     ASPP: 3x3 convs, dilation 6, 12, 18, 24
Each `{conv,bn}` pair is a bias-free convolution and a BatchNorm (eps 1e-5).

Shapes for a 3 x H x W input: layer1 64 x H/4 (ceil), layer2 256, layer3 512 at H/8 (stride in
the first block's 1x1 "reduce" conv, the Caffe ResNet), layer4 1024 (dilation 2), layer5 2048
(dilation 4), all at output stride 8; ASPP sums four dilated 3x3 convs into class scores
(B, classes, ~H/8, ~W/8).  DeepLabV2MSC runs the network at scales 1, 0.5 and 0.75 and, in
eval mode, keeps the pixel-wise maximum of the three score maps (upsampled bilinearly to the
scale-1 map).  Parameters with 182 classes: see tests/test_segmentation_networks.py (the figure
comes from the port's own module, scripts/parity/segmenters.py).  `width` and `blocks` shrink the
network for tests only.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

RESNET101_BLOCKS = (3, 4, 23, 3)
ATROUS_RATES = (6, 12, 18, 24)
MSC_SCALES = (0.5, 0.75)
EXPANSION = 4  # bottleneck: out channels = 4 x the inner channels


class ConvBnReLU(nn.Sequential):
    """conv (no bias) -> BatchNorm -> optional ReLU; named conv, bn, relu as in the port."""

    def __init__(self, in_ch, out_ch, kernel_size, stride, padding, dilation, relu=True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation,
                                          bias=False))
        # momentum 1 - 0.999 as the port (Caffe's moving average); only matters when training
        self.add_module("bn", nn.BatchNorm2d(out_ch, eps=1e-5, momentum=0.001))
        if relu:
            self.add_module("relu", nn.ReLU())


class Bottleneck(nn.Module):
    """1x1 reduce (carries the stride) -> 3x3 (dilated) -> 1x1 increase, plus the shortcut
    (a 1x1 conv + BN in a stage's first block, else the identity), then ReLU."""

    def __init__(self, in_ch, out_ch, stride, dilation, project):
        super().__init__()
        mid = out_ch // EXPANSION
        self.reduce = ConvBnReLU(in_ch, mid, 1, stride, 0, 1)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBnReLU(mid, out_ch, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBnReLU(in_ch, out_ch, 1, stride, 0, 1, relu=False) if project \
            else nn.Identity()

    def forward(self, x):
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    """`n` bottlenecks named block1..block<n>; only the first changes the size or channels."""

    def __init__(self, n, in_ch, out_ch, stride, dilation):
        super().__init__()
        for i in range(n):
            self.add_module(f"block{i + 1}", Bottleneck(in_ch if i == 0 else out_ch, out_ch,
                                                        stride if i == 0 else 1, dilation,
                                                        project=i == 0))


class Stem(nn.Sequential):
    """7x7 conv, stride 2 -> 3x3 max pool, stride 2 (ceil mode, as the Caffe model)."""

    def __init__(self, out_ch):
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, out_ch, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as DeepLab v2 has it: the sum of 3x3 convs (with bias) at
    the given dilation rates, each straight to class scores."""

    def __init__(self, in_ch, num_classes, rates):
        super().__init__()
        for i, rate in enumerate(rates):
            conv = nn.Conv2d(in_ch, num_classes, 3, 1, padding=rate, dilation=rate, bias=True)
            nn.init.normal_(conv.weight, mean=0, std=0.01)
            nn.init.zeros_(conv.bias)
            self.add_module(f"c{i}", conv)

    def forward(self, x):
        return sum(branch(x) for branch in self.children())


class DeepLabV2(nn.Sequential):
    """(B, 3, H, W) mean-subtracted BGR -> (B, classes, ~H/8, ~W/8) scores (output stride 8)."""

    def __init__(self, num_classes=182, blocks=RESNET101_BLOCKS, rates=ATROUS_RATES, width=64):
        super().__init__()
        ch = [width * 2 ** p for p in range(6)]  # 64, 128, 256, 512, 1024, 2048
        self.add_module("layer1", Stem(ch[0]))
        self.add_module("layer2", ResLayer(blocks[0], ch[0], ch[2], 1, 1))
        self.add_module("layer3", ResLayer(blocks[1], ch[2], ch[3], 2, 1))
        self.add_module("layer4", ResLayer(blocks[2], ch[3], ch[4], 1, 2))
        self.add_module("layer5", ResLayer(blocks[3], ch[4], ch[5], 1, 4))
        self.add_module("aspp", ASPP(ch[5], num_classes, rates))


class DeepLabV2MSC(nn.Module):
    """Multi-scale inputs around a DeepLabV2 `base`.  Eval mode: the pixel-wise maximum of the
    scores at scale 1 and at `scales` (each resized bilinearly to the scale-1 score map),
    (B, classes, ~H/8, ~W/8).  Training mode returns every map, as the port (its loss uses all)."""

    def __init__(self, num_classes=182, scales=MSC_SCALES, **base_kwargs):
        super().__init__()
        self.base = DeepLabV2(num_classes, **base_kwargs)
        self.scales = tuple(scales)

    @property
    def num_classes(self):
        return self.base.aspp.c0.out_channels

    def forward(self, x):
        logits = self.base(x)
        size = logits.shape[-2:]
        pyramid = [self.base(F.interpolate(x, scale_factor=s, mode="bilinear",
                                           align_corners=False)) for s in self.scales]
        resized = [F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                   for p in pyramid]
        best = torch.stack([logits] + resized).max(dim=0).values
        if self.training:
            return [logits] + pyramid + [best]
        return best
