"""PatchGAN discriminators.

Default `basic` (3 layers, instance norm, antialias) indices: 0 conv, 1 LReLU, 2 Downsample,
3 conv, 4 norm, 5 LReLU, 6 Downsample, 7 conv, 8 norm, 9 LReLU, 10 Downsample, 11 conv (256->512),
12 norm, 13 LReLU, 14 conv (512->1).  A 256x256 input gives a 1 x 30 x 30 map of patch scores.
"""
import torch.nn as nn

from .layers import Downsample, conv_bias_for

KW, PADW = 4, 1  # every conv is 4x4 with padding 1


class NLayerDiscriminator(nn.Module):
    """PatchGAN with n_layers downsampling stages, scoring overlapping patches (70x70 for 3)."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d, no_antialias=False):
        super().__init__()
        use_bias = conv_bias_for(norm_layer)

        # First stage: no norm, so the conv keeps PyTorch's default bias.
        if no_antialias:
            seq = [nn.Conv2d(input_nc, ndf, KW, stride=2, padding=PADW), nn.LeakyReLU(0.2, True)]
        else:
            seq = [nn.Conv2d(input_nc, ndf, KW, stride=1, padding=PADW), nn.LeakyReLU(0.2, True),
                   Downsample(ndf)]

        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)  # channels double per stage, capped at 8*ndf
            if no_antialias:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, KW, stride=2, padding=PADW, bias=use_bias),
                        norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
            else:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, KW, stride=1, padding=PADW, bias=use_bias),
                        norm_layer(ndf * mult), nn.LeakyReLU(0.2, True), Downsample(ndf * mult)]

        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, KW, stride=1, padding=PADW, bias=use_bias),
                norm_layer(ndf * mult), nn.LeakyReLU(0.2, True),
                nn.Conv2d(ndf * mult, 1, KW, stride=1, padding=PADW)]  # 1-channel score map
        self.model = nn.Sequential(*seq)

    def forward(self, input):
        return self.model(input)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (pixelGAN): scores every pixel independently; output keeps H x W."""

    def __init__(self, input_nc, ndf=64, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = conv_bias_for(norm_layer)
        # The attribute is `net` (not `model`) in the original; kept for checkpoint keys.
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1, stride=1, padding=0), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, stride=1, padding=0, bias=use_bias))

    def forward(self, input):
        return self.net(input)
