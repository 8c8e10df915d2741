"""DRN-D-22 (Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017) and its segmentation
head DRNSeg: the segmenter behind the CUT paper's Cityscapes score (Table 1: mAP, pixAcc,
classAcc), built to the authors' code (fyu/drn `drn.py`, `segment.py`).

Parameter names follow the authors' modules, so both published files load as they are:
  `drn_d_22-*.pth` (ImageNet)         -> DRN:    layer0.0.weight ... layer8.1.running_var, fc.*
  `drn_d_22_cityscapes.pth` / a model  -> DRNSeg: base.0.0.weight ... base.8.*, seg.*, up.weight
  trained by segment.py (DRNSeg's state_dict, or `state_dict` of its checkpoint, `module.` prefixed)
DRNSeg's `base` is DRN's children without the pooling and the classifier, so `base.<k>` is
`layer<k>`.

Shapes for a 3 x H x W input (H, W multiples of 8), channels (16, 32, 64, 128, 256, 512, 512, 512):
  layer0  7x7 conv            16 x H x W        layer5  2 blocks, dilation 2   256 x H/8 x W/8
  layer1  3x3 conv            16 x H x W        layer6  2 blocks, dilation 4   512 x H/8 x W/8
  layer2  3x3 conv, stride 2  32 x H/2 x W/2    layer7  3x3 conv, dilation 2   512 x H/8 x W/8
  layer3  2 blocks, stride 2  64 x H/4 x W/4    layer8  3x3 conv               512 x H/8 x W/8
  layer4  2 blocks, stride 2 128 x H/8 x W/8
Every convolution is bias-free and followed by BatchNorm and ReLU.  Parameters: 16,393,752 with
the ImageNet classifier; DRNSeg with 19 classes 15,895,363, of which 4,864 (the fixed bilinear
upsampling) are frozen.  `width` scales every channel count (1.0 = the published network); a
narrow DRN is the same code path for the toy data set and the tests.
"""
import math

import torch
import torch.nn as nn

# drn_d_22: DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], arch='D')
DRN_D_22_LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)
DRN_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


def _init_conv(conv):
    """The authors' init: N(0, sqrt(2 / (k * k * out_channels))) ("fan-out" He init)."""
    n = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
    conv.weight.data.normal_(0, math.sqrt(2.0 / n))


class BasicBlock(nn.Module):
    """conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU.  `dilation` is the pair
    (first conv, second conv); padding equals dilation, so only `stride` changes the size."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=(1, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation[0],
                               dilation=dilation[0], bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation[1], dilation=dilation[1],
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class DRN(nn.Module):
    """DRN-D: a convolutional stem (layer0-2), residual stages (layer3-6; 5 and 6 dilated instead
    of strided, output stride 8) and plain dilated convolutions (layer7-8) that remove the
    gridding artefacts of dilation.  With `num_classes` > 0 the ImageNet head follows (average
    pool, 1x1 conv classifier); DRNSeg builds it without (num_classes=0)."""

    def __init__(self, layers=DRN_D_22_LAYERS, num_classes=1000, width=1.0, pool_size=28):
        super().__init__()
        channels = [max(1, round(c * width)) for c in DRN_CHANNELS]
        self.out_dim = channels[-1]
        self.inplanes = channels[0]
        self.layer0 = nn.Sequential(nn.Conv2d(3, channels[0], 7, 1, padding=3, bias=False),
                                    nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        self.layer1 = self._conv_layers(channels[0], layers[0], stride=1)
        self.layer2 = self._conv_layers(channels[1], layers[1], stride=2)
        self.layer3 = self._residual_layer(channels[2], layers[2], stride=2)
        self.layer4 = self._residual_layer(channels[3], layers[3], stride=2)
        self.layer5 = self._residual_layer(channels[4], layers[4], dilation=2, new_level=False)
        self.layer6 = self._residual_layer(channels[5], layers[5], dilation=4, new_level=False)
        self.layer7 = self._conv_layers(channels[6], layers[6], dilation=2)
        self.layer8 = self._conv_layers(channels[7], layers[7], dilation=1)
        if num_classes > 0:
            self.avgpool = nn.AvgPool2d(pool_size)
            self.fc = nn.Conv2d(self.out_dim, num_classes, 1, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _init_conv(m)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _residual_layer(self, planes, blocks, stride=1, dilation=1, new_level=True):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        # The first block of a dilated stage starts at half the dilation ("new level"); layer5
        # and 6 are not new levels, so they use their dilation throughout (drn.py).
        first = (1, 1) if dilation == 1 else (dilation // 2 if new_level else dilation, dilation)
        modules = [BasicBlock(self.inplanes, planes, stride, downsample, dilation=first)]
        self.inplanes = planes
        modules += [BasicBlock(planes, planes, dilation=(dilation, dilation))
                    for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def _conv_layers(self, channels, convs, stride=1, dilation=1):
        modules = []
        for i in range(convs):
            modules += [nn.Conv2d(self.inplanes, channels, 3, stride if i == 0 else 1,
                                  padding=dilation, dilation=dilation, bias=False),
                        nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            self.inplanes = channels
        return nn.Sequential(*modules)

    def stages(self):
        return [getattr(self, f"layer{k}") for k in range(9)]

    def forward(self, x):
        for stage in self.stages():
            x = stage(x)
        if not hasattr(self, "fc"):
            return x  # (B, out_dim, H/8, W/8) features
        return self.fc(self.avgpool(x)).flatten(1)  # (B, num_classes) ImageNet logits


def bilinear_upsampling_weights(channels, kernel_size):
    """(channels, 1, k, k) weights of a grouped ConvTranspose2d that upsamples each channel
    bilinearly (segment.py's fill_up_weights, the FCN recipe)."""
    f = math.ceil(kernel_size / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float64) / f - c).abs()
    return (ramp[:, None] * ramp[None, :]).float().expand(channels, 1, -1, -1).clone()


class DRNSeg(nn.Module):
    """DRN base (output stride 8) -> 1x1 conv to class scores -> fixed bilinear x8 upsampling
    (ConvTranspose2d, kernel 16, stride 8, one group per class) -> log-softmax over classes.

    forward(x): x (B, 3, H, W) normalised photos -> (B, classes, H, W) log-probabilities; the
    prediction is their argmax.  Trained with NLL loss, ignore_index 255 (segment.py).
    """

    def __init__(self, num_classes=19, width=1.0, layers=DRN_D_22_LAYERS):
        super().__init__()
        drn = DRN(layers, num_classes=0, width=width)
        self.base = nn.Sequential(*drn.stages())
        self.seg = nn.Conv2d(drn.out_dim, num_classes, 1, bias=True)
        _init_conv(self.seg)
        self.seg.bias.data.zero_()
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4,
                                     groups=num_classes, bias=False)
        self.up.weight.data.copy_(bilinear_upsampling_weights(num_classes, 16))
        self.up.weight.requires_grad = False  # frozen, as in segment.py

    @property
    def num_classes(self):
        return self.seg.out_channels

    def trainable_parameters(self):
        """What segment.py optimises (its optim_parameters): the base and the 1x1 classifier."""
        return list(self.base.parameters()) + list(self.seg.parameters())

    def load_imagenet_base(self, state_dict):
        """Initialise `base` from an ImageNet DRN state dict (layer<k>.* keys; fc.* ignored), as
        segment.py starts from the published drn_d_22 weights.  Returns the keys it used."""
        own = self.base.state_dict()
        renamed = {}
        for key, value in state_dict.items():
            if key.startswith("layer"):
                stage, rest = key[len("layer"):].split(".", 1)
                renamed[f"{stage}.{rest}"] = value
        missing = [k for k in own if k not in renamed]
        wrong = [k for k in own if k in renamed and renamed[k].shape != own[k].shape]
        if missing or wrong:
            problem = (f"no {missing[0]!r}" if missing else
                       f"{wrong[0]!r} is {tuple(renamed[wrong[0]].shape)}, the network wants "
                       f"{tuple(own[wrong[0]].shape)}")
            raise ValueError(f"not an ImageNet DRN of this size ({problem})")
        self.base.load_state_dict({k: renamed[k] for k in own})
        return sorted(renamed)

    def forward(self, x):
        height, width = x.shape[-2:]
        scores = self.seg(self.base(x))  # (B, classes, ceil(H/8), ceil(W/8))
        up = self.up(scores)  # (B, classes, 8 * ceil(H/8), ...): the input size when H, W % 8 == 0
        return up[:, :, :height, :width].log_softmax(dim=1)
