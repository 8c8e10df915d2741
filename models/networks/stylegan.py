"""StyleGAN2-style networks of SinCUT, in plain PyTorch on any device.

The blocks follow Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (2020):
equalised learning rate (weights drawn from N(0, 1) and scaled by 1/sqrt(fan_in) at run time),
leaky ReLU scaled by sqrt(2), blurred resampling with the [1, 3, 3, 1] filter, residual blocks
that divide their sum by sqrt(2), and weight demodulation.  SinCUT uses them without styles:
the generator is an encoder-decoder (`stylegan2`: 3 + 3 residual blocks, `smallstylegan2`:
1 + 1) and the discriminator judges whole R x R crops with one logit per image.

Module and attribute names are those of the original, so its SinCUT checkpoints load
(`encoder.convs.2.conv2.0.kernel`, `decoder.convs.3.noise.weight`, ...); blur kernels are
persistent buffers for the same reason.

Two deliberate differences, neither changing any output:
* the original's modulated convolution builds a tensor of ones with `.cuda()` as the "style" and
  runs a grouped convolution per image; without a style every image shares one demodulated
  weight, so here it is a plain (transposed) convolution, on the CPU as on the GPU;
* the encoder stops after the deepest requested layer when only features are wanted (it has no
  noise, so nothing random is skipped).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError

from .generators import resolve_layer_indices

BLUR_TAPS = (1, 3, 3, 1)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU
RGB = 3  # the original hard-codes three input and output channels
RESOLUTIONS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


# ---------------------------------------------------------------------------------- sizes
def stylegan_resolution(load_size, crop_size):
    """The resolution key R the networks are built for: min(load, crop) rounded to a power of 2.

    As the original, log2 is rounded half-to-even (numpy's rint), so 48 -> 64 and 96 -> 128.
    """
    return 2 ** int(np.rint(np.log2(min(load_size, crop_size))))


def generator_channels(ngf):
    """Channels per resolution for the generator: 4096 * ngf/32 at 4x4, halving, capped at 512."""
    m = ngf / 32
    return {r: (min(512, int(round(16384 * m / r))) if r <= 32 else int(round(16384 * m / r)))
            for r in RESOLUTIONS}


def discriminator_channels(ndf):
    """Channels per resolution for the discriminator: 4096 * ndf/64 at 4x4, halving, capped at 384
    up to 32x32, truncated to integers."""
    m = ndf / 64
    return {r: (min(384, int(16384 * m / r)) if r <= 32 else int(16384 * m / r)) for r in RESOLUTIONS}


def check_stylegan_sizes(resolution, ngf=None, ndf=None, num_downsampling=0):
    """Raise a one-line UserError when the channel tables have no entry (or zero channels) for the
    resolutions the networks would use.  Called by the builders and by option validation."""
    if num_downsampling < 0:
        raise UserError(f"--stylegan2_G_num_downsampling must be 0 or more (got {num_downsampling})")
    low = resolution // 2 ** num_downsampling
    if resolution not in RESOLUTIONS or low not in RESOLUTIONS:
        raise UserError(f"the stylegan2 networks support resolutions 4..1024, and min(--load_size, "
                        f"--crop_size) = {resolution} gives {resolution} with "
                        f"--stylegan2_G_num_downsampling {num_downsampling}; change --crop_size or "
                        "the number of downsamplings")
    used = []
    if ngf is not None:
        ch = generator_channels(ngf)
        used += [('--ngf', ngf, ch[resolution // 2 ** i]) for i in range(num_downsampling + 1)]
    if ndf is not None:
        ch = discriminator_channels(ndf)
        used += [('--ndf', ndf, ch[r]) for r in RESOLUTIONS if r <= resolution]
    for option, value, channels in used:
        if channels < 1:
            raise UserError(f"{option} {value} is too small for the stylegan2 networks at resolution "
                            f"{resolution} (a layer would get 0 channels); raise it")


def encoder_layer_count(n_blocks, num_downsampling):
    """Layers of StyleGAN2Encoder.convs that --nce_layers may index: identity, 1x1 conv, the
    downsampling blocks, n_blocks // 2 plain blocks."""
    return 2 + num_downsampling + n_blocks // 2


# ---------------------------------------------------------------------------------- blocks
def make_blur_kernel(taps=BLUR_TAPS, gain=1.0):
    """2-D blur kernel: outer product of `taps`, normalised to sum `gain`."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum() * gain


class Blur(nn.Module):
    """Pad (negative pads crop) by `pad` = (before, after) on both axes, then blur each channel.

    This is upfirdn2d with up = down = 1, the only case the networks use; the stride that
    follows or precedes it lives in the neighbouring convolution.
    """

    def __init__(self, pad, upsample_factor=1, taps=BLUR_TAPS):
        super().__init__()
        # Zero-stuffed upsampling keeps one pixel in factor^2: the gain restores the mean.
        self.register_buffer('kernel', make_blur_kernel(taps, upsample_factor ** 2))
        self.pad = tuple(pad)

    def forward(self, x):
        p0, p1 = self.pad
        x = F.pad(x, (p0, p1, p0, p1))
        channels = x.shape[1]
        kh, kw = self.kernel.shape
        # a convolution applies the kernel flipped; flipping first gives the true FIR filter
        weight = torch.flip(self.kernel, (0, 1)).expand(channels, 1, kh, kw)
        return F.conv2d(x, weight, groups=channels)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate: weight ~ N(0, 1), scaled by 1/sqrt(in * k^2) on use."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride,
                        padding=self.padding)

    def extra_repr(self):
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, {k}, stride={self.stride}, padding={self.padding}"


def fused_leaky_relu(x, bias):
    """sqrt(2) * leaky_relu(x + bias, 0.2); `bias` broadcasts over channel dimension 1."""
    return F.leaky_relu(x + bias, LRELU_SLOPE) * LRELU_GAIN


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias, then the scaled leaky ReLU.  Bias shape (1, C, 1, 1) as saved by
    the original."""

    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    """sqrt(2) * leaky_relu(x, 0.2), for layers without a bias."""

    def forward(self, x):
        return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate; optionally followed by the fused leaky ReLU."""

    def __init__(self, in_features, out_features, activation=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1 / math.sqrt(in_features)
        self.activation = activation

    def forward(self, x):
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias)
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self):
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, activation={self.activation}"


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d -> [activation]; with `downsample` the conv has stride 2.

    The blur pads so that a k x k stride-2 conv on an H x W input gives exactly H/2 x W/2.
    The conv keeps its own bias only when there is no activation to carry one.
    """

    def __init__(self, in_channels, out_channels, kernel_size, downsample=False, bias=True,
                 activate=True):
        layers = []
        if downsample:
            p = (len(BLUR_TAPS) - 2) + (kernel_size - 1)
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride,
                                  padding=padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """(conv2(conv1(x)) + skip(x)) / sqrt(2): two 3x3 ConvLayers, the second one downsampling if
    asked; the skip is a 1x1 conv when the shape changes, else the identity."""

    def __init__(self, in_channels, out_channels, downsample=True):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=downsample)
        if in_channels != out_channels or downsample:
            self.skip = ConvLayer(in_channels, out_channels, 1, downsample=downsample,
                                  bias=False, activate=False)
        else:
            self.skip = nn.Identity()

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class ModulatedConv2d(nn.Module):
    """Demodulated convolution without a style (every style entry is 1, as SinCUT uses it).

    Each output filter w_o is scaled to unit norm: w_o / sqrt(sum(w_o^2) + 1e-8) (StyleGAN2,
    Eq. 3).  With `upsample`, a stride-2 transposed conv (H -> 2H + 1) and a 4-tap blur that
    trims it to exactly 2H.  Weight shape (1, out, in, k, k), as the original saves it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, upsample=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.upsample = upsample
        self.padding = kernel_size // 2
        if upsample:
            p = (len(BLUR_TAPS) - 2) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x):
        weight = self.weight[0] * self.scale  # (out, in, k, k)
        weight = weight * torch.rsqrt(weight.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        if self.upsample:
            # conv_transpose2d wants (in, out, k, k)
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0))
        return F.conv2d(x, weight, padding=self.padding)

    def extra_repr(self):
        _, out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, {k}, upsample={self.upsample}"


class NoiseInjection(nn.Module):
    """x + w * n with n ~ N(0, 1), one fresh noise map per image (training and test alike);
    w starts at 0, so a new network is deterministic until w is learned."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        batch, _, height, width = x.shape
        noise = x.new_empty(batch, 1, height, width).normal_()  # torch RNG of x's device
        return x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d -> optional noise -> fused leaky ReLU.  The noise module exists (and is
    saved) even when `inject_noise` is off, as the original."""

    def __init__(self, in_channels, out_channels, kernel_size, upsample=False, inject_noise=True):
        super().__init__()
        self.inject_noise = inject_noise
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x):
        out = self.conv(x)
        if self.inject_noise:
            out = self.noise(out)
        return self.activate(out)


# ---------------------------------------------------------------------------------- networks
class StyleGAN2Encoder(nn.Module):
    """convs: [0] identity (the input itself, a PatchNCE layer), [1] 1x1 ConvLayer to ch[R],
    then `num_downsampling` downsampling ResBlocks, then n_blocks // 2 plain ResBlocks."""

    def __init__(self, ngf, n_blocks, resolution, num_downsampling):
        super().__init__()
        ch = generator_channels(ngf)
        res = resolution
        convs = [nn.Identity(), ConvLayer(RGB, ch[res], 1)]
        for _ in range(num_downsampling):
            convs.append(ResBlock(ch[res], ch[res // 2], downsample=True))
            res //= 2
        convs += [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        self.convs = nn.Sequential(*convs)

    def forward(self, x):
        return self.convs(x)


class StyleGAN2Decoder(nn.Module):
    """convs: n_blocks // 2 plain ResBlocks, `num_downsampling` upsampling StyledConvs, then a
    1x1 ConvLayer to RGB *with* its fused leaky ReLU: there is no tanh, the output is unbounded
    (images are clamped to [-1, 1] only when saved)."""

    def __init__(self, ngf, n_blocks, resolution, num_downsampling, inject_noise=True):
        super().__init__()
        ch = generator_channels(ngf)
        res = resolution // 2 ** num_downsampling
        convs = [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        for _ in range(num_downsampling):
            convs.append(StyledConv(ch[res], ch[res * 2], 3, upsample=True, inject_noise=inject_noise))
            res *= 2
        convs.append(ConvLayer(ch[res], RGB, 1))
        self.convs = nn.Sequential(*convs)

    def forward(self, x):
        return self.convs(x)


class StyleGAN2Generator(nn.Module):
    """Encoder-decoder generator of SinCUT; fully convolutional, so at test time it takes any
    H x W divisible by 2 ** num_downsampling (the data pipeline rounds to multiples of 4).

    Args:
        ngf: channel multiplier (ngf / 32 of StyleGAN2's channel table); SinCUT uses 10.
        n_blocks: residual blocks, split evenly between encoder and decoder (6 or 2).
        resolution: R = stylegan_resolution(load_size, crop_size); picks the channel widths.
        num_downsampling: --stylegan2_G_num_downsampling.
        inject_noise: noise before the upsampling activations (off for smallstylegan2).
    """

    def __init__(self, ngf=64, n_blocks=6, resolution=64, num_downsampling=1, inject_noise=True):
        super().__init__()
        check_stylegan_sizes(resolution, ngf=ngf, num_downsampling=num_downsampling)
        self.encoder = StyleGAN2Encoder(ngf, n_blocks, resolution, num_downsampling)
        self.decoder = StyleGAN2Decoder(ngf, n_blocks, resolution, num_downsampling, inject_noise)

    @property
    def num_layers(self):
        """How many encoder layers --nce_layers may index."""
        return len(self.encoder.convs)

    def forward(self, input, layers=(), encode_only=False):
        """Translate `input` (B x 3 x H x W).

        With `layers`, also collect the encoder outputs at those indices (ascending order):
        return just the features if `encode_only`, else (output, features).  `layers` is
        never modified (the original appended to it when it held -1).
        """
        if len(layers) == 0 and not encode_only:
            return self.decoder(self.encoder.convs(input))
        # -1 means the last encoder layer here (the original appends len - 1 for it)
        wanted = resolve_layer_indices(layers, self.num_layers, minus_one=self.num_layers - 1)
        last = max(wanted, default=-1)
        feat, feats = input, []
        for layer_id, layer in enumerate(self.encoder.convs):
            if encode_only and layer_id > last:
                break
            feat = layer(feat)
            if layer_id in wanted:
                feats.append(feat)
        if encode_only:
            return feats
        return self.decoder(feat), feats


class StyleGAN2Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator: one logit per R x R image (B x 1).

    [1x1 ConvLayer to ch[R]] + ResBlocks halving R down to 4, a 3x3 ConvLayer, then two
    EqualLinear layers on the flattened 4 x 4 map.  Inputs must be exactly R x R (the crops).
    """

    def __init__(self, ndf=64, resolution=64):
        super().__init__()
        check_stylegan_sizes(resolution, ndf=ndf)
        ch = discriminator_channels(ndf)
        self.resolution = resolution
        convs = [ConvLayer(RGB, ch[resolution], 1)]
        res = resolution
        while res > 4:
            convs.append(ResBlock(ch[res], ch[res // 2], downsample=True))
            res //= 2
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch[res], ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 4 * 4, ch[4], activation=True),
                                          EqualLinear(ch[4], 1))

    def forward(self, input):
        if tuple(input.shape[-2:]) != (self.resolution, self.resolution):
            h, w = input.shape[-2:]
            raise ValueError(f"the stylegan2 discriminator takes {self.resolution}x{self.resolution} "
                             f"images (the crop size), got {w}x{h}")
        out = self.final_conv(self.convs(input))
        return self.final_linear(out.flatten(1))
