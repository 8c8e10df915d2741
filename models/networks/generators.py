"""ResNet generator of CUT (Johnson et al. style, with anti-aliased resampling).

Layer indices of `model` matter: --nce_layers taps features by index and checkpoints name
parameters by index.  Default (9 blocks, antialias) indices for a 256x256 input:
0 pad (3x262x262), 1 conv7, 2 norm, 3 ReLU, 4 conv3 (128x256x256), 5, 6, 7 Downsample,
8 conv3 (256x128x128), 9, 10, 11 Downsample, 12..20 ResnetBlocks (256x64x64),
21 Upsample, 22 conv, 23, 24, 25 Upsample, 26 conv, 27, 28, 29 pad, 30 conv7, 31 Tanh.
With --padding_type zero the two 7x7 convs pad by themselves: no pad layers, every index after
the first conv one lower (DistanceGAN's generator and its checkpoint keys).
"""
import torch.nn as nn

from util.errors import UserError
from .layers import Downsample, Upsample, conv_bias_for

N_DOWNSAMPLING = 2  # fixed in the original: the bottleneck runs at 1/4 resolution
PADDING_TYPES = ('reflect', 'replicate', 'zero')  # --padding_type


def resolve_layer_indices(layers, num_layers, minus_one):
    """The set of layer indices asked for by `layers` (--nce_layers), with -1 replaced by
    `minus_one`; raises a one-line UserError for an index outside 0..num_layers - 1."""
    wanted = set()
    for idx in map(int, layers):
        if idx == -1:
            idx = minus_one
        elif not 0 <= idx < num_layers:
            raise UserError(f"layer index {idx} is out of range for this generator "
                            f"(0..{num_layers - 1}, or -1); check --nce_layers")
        wanted.add(idx)
    return wanted


def padded_conv7(padding_type, c_in, c_out, bias):
    """The generator's first and last 7x7 convolutions with their padding of 3.

    reflect (CUT, CycleGAN) and replicate: a padding layer, then the conv (two entries of
    `model`); zero: the conv pads by itself (one entry), as DistanceGAN's generator, whose
    state-dict keys this keeps (model.0.weight is its first conv).
    """
    if padding_type == 'zero':
        return [nn.Conv2d(c_in, c_out, kernel_size=7, padding=3, bias=bias)]
    pads = {'reflect': nn.ReflectionPad2d, 'replicate': nn.ReplicationPad2d}
    if padding_type not in pads:
        raise ValueError(f"unknown padding_type '{padding_type}'; use {', '.join(PADDING_TYPES)}")
    return [pads[padding_type](3), nn.Conv2d(c_in, c_out, kernel_size=7, padding=0, bias=bias)]


class ResnetBlock(nn.Module):
    """Residual block x + conv_block(x), with two 3x3 convs (and optional dropout)."""

    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

    @staticmethod
    def build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias):
        # Sub-indices with reflect padding and no dropout: 0 pad, 1 conv, 2 norm, 3 ReLU,
        # 4 pad, 5 conv, 6 norm -> keys conv_block.1.* and conv_block.5.*.
        def padded_conv():
            if padding_type == 'reflect':
                return [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias)]
            if padding_type == 'replicate':
                return [nn.ReplicationPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias)]
            if padding_type == 'zero':
                return [nn.Conv2d(dim, dim, 3, padding=1, bias=use_bias)]
            raise ValueError(f"unknown padding_type '{padding_type}'; use reflect, replicate or zero")

        layers = padded_conv() + [norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += padded_conv() + [norm_layer(dim)]
        return nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Encoder (2 downsamplings) + n_blocks ResnetBlocks + decoder, as one Sequential `model`."""

    def __init__(self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False,
                 n_blocks=9, padding_type='reflect', no_antialias=False, no_antialias_up=False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        use_bias = conv_bias_for(norm_layer)

        model = padded_conv7(padding_type, input_nc, ngf, use_bias) + [norm_layer(ngf), nn.ReLU(True)]
        for i in range(N_DOWNSAMPLING):
            c_in, c_out = ngf * 2 ** i, ngf * 2 ** (i + 1)
            if no_antialias:  # plain strided conv: 3 layers per stage
                model += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=use_bias),
                          norm_layer(c_out), nn.ReLU(True)]
            else:  # conv at full resolution, then blur-downsample: 4 layers per stage
                model += [nn.Conv2d(c_in, c_out, 3, stride=1, padding=1, bias=use_bias),
                          norm_layer(c_out), nn.ReLU(True), Downsample(c_out)]

        dim = ngf * 2 ** N_DOWNSAMPLING
        model += [ResnetBlock(dim, padding_type, norm_layer, use_dropout, use_bias)
                  for _ in range(n_blocks)]

        for i in range(N_DOWNSAMPLING):
            c_in = ngf * 2 ** (N_DOWNSAMPLING - i)
            c_out = c_in // 2
            if no_antialias_up:  # 3x3 transposed conv, same parameter count as the conv below
                model += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1,
                                             bias=use_bias),
                          norm_layer(c_out), nn.ReLU(True)]
            else:
                model += [Upsample(c_in),
                          nn.Conv2d(c_in, c_out, 3, stride=1, padding=1, bias=use_bias),
                          norm_layer(c_out), nn.ReLU(True)]

        model += padded_conv7(padding_type, ngf, output_nc, True) + [nn.Tanh()]
        self.model = nn.Sequential(*model)

    @property
    def num_layers(self):
        """How many layers --nce_layers may index."""
        return len(self.model)

    def forward(self, input, layers=(), encode_only=False):
        """Translate `input` (B x input_nc x H x W, H and W divisible by 4).

        layers empty: return the output image.  Otherwise also collect the output of each listed
        layer index, in ascending index order; with encode_only, return just that list as soon as
        the largest requested index has run, else return (output, feats).  `layers` is never
        modified (the original appended to it when it held -1).
        """
        if len(layers) == 0:
            return self.model(input)
        # As the original, -1 stands for len(model), one past the last layer: it yields no
        # feature and keeps encode_only from stopping early, so the final output comes first.
        wanted = resolve_layer_indices(layers, len(self.model), minus_one=len(self.model))
        last = max(wanted)
        feat, feats = input, []
        for layer_id, layer in enumerate(self.model):
            feat = layer(feat)
            if layer_id in wanted:
                feats.append(feat)
            if encode_only and layer_id == last:
                return feats
        return feat, feats


def resnet_generator(n_blocks):
    """Builder for a ResnetGenerator with `n_blocks` residual blocks (for the GENERATORS registry)."""
    def build(input_nc, output_nc, ngf, norm_layer, use_dropout=False, no_antialias=False,
              no_antialias_up=False, padding_type='reflect', **_unused):
        return ResnetGenerator(input_nc, output_nc, ngf, norm_layer=norm_layer,
                               use_dropout=use_dropout, n_blocks=n_blocks, padding_type=padding_type,
                               no_antialias=no_antialias, no_antialias_up=no_antialias_up)
    build.__name__ = f'resnet_{n_blocks}blocks'
    return build
