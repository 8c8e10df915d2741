"""The networks of the Swapping Autoencoder (Park, Zhu, Wang, Lu, Shechtman, Efros, Zhang,
"Swapping Autoencoder for Deep Image Manipulation", NeurIPS 2020), in plain PyTorch.

    SwapAEEncoder            E: image -> (structure code sp, B x 8 x H/16 x W/16;
                                          texture code gl, B x 2048), both L2-normalised
    SwapAEGenerator          G: (sp, gl) -> image (paper Fig. 18); no tanh, the output is linear
    SwapAEDiscriminator      D: image -> one logit (StyleGAN2's residual discriminator)
    SwapAEPatchDiscriminator D_patch: co-occurrence discriminator on random crops (Sec. 3.2)

The blocks are those of models/networks/stylegan.py (equalised learning rate, scaled leaky
ReLU, [1,3,3,1] blur) with the authors' variations:
* their modulated convolution normalises the style vector to unit RMS, multiplies the *input*
  by it and demodulates with the norm of the *unmodulated* weight ("new demodulation"); every
  image of a batch then shares one weight, so it is one ordinary convolution here (the authors
  run a grouped convolution per image; tests/test_swapae.py checks the two agree);
* the encoder pads by reflection (also inside its blurs) and blurs with [1, 2, 1];
* a residual block's skip is always a 1x1 convolution (SinCUT's is the identity when the shape
  does not change); the generator's upsampling blocks skip through a biased 1x1 conv + leaky
  ReLU and a bilinear x2 (the identity when the widths are equal);
* their fused leaky ReLU keeps its bias as a vector of C (SinCUT's original saves 1 x C x 1 x 1).

Module, parameter and buffer names are the authors', so that their checkpoints load strictly
(`E.DownToSpatialCode.ResBlockDownBy1.conv2.Blur.kernel`, `G.ToRGB.upsample.kernel`, ...) and
scripts/parity/swapae_parity.py can give both codes the same initial weights.  Parameter counts
at the 256-px defaults: E 30,584,872, G 25,064,743, D 28,859,521, D_patch 24,522,145 (the
authors' modules, instantiated; tests/test_swapae.py).
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import stylegan
from .stylegan import EqualConv2d, ScaledLeakyReLU, make_blur_kernel

ANTIALIAS_TAPS = (1, 3, 3, 1)  # G, D and D_patch (--use_antialias True)
ENCODER_TAPS = (1, 2, 1)  # E's lighter blur
NO_BLUR = (1,)  # --use_antialias False: a 1x1 "blur" (the authors keep its buffer)


def normalize(v, eps=1e-8):
    """v / ||v|| along dimension 1: per location for sp (B x C x H x W), per image for gl (B x C)."""
    return v * torch.rsqrt(v.pow(2).sum(dim=1, keepdim=True) + eps)


# ---------------------------------------------------------------------------------- blocks
class FusedLeakyReLU(nn.Module):
    """sqrt(2) * leaky_relu(x + b, 0.2) with a learned bias b of shape (C,) (the authors' layout)."""

    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return stylegan.fused_leaky_relu(x, self.bias.view(shape))


class EqualLinear(stylegan.EqualLinear):
    """Equalised-lr linear layer; the modulation layers start with bias 1 (`bias_init`)."""

    def __init__(self, in_features, out_features, activation=False, bias_init=0.0):
        super().__init__(in_features, out_features, activation=activation)
        if bias_init:
            with torch.no_grad():
                self.bias.fill_(bias_init)


class Blur(stylegan.Blur):
    """FIR filter with `taps` (normalised, times `upsample_factor`^2) after a pad of (before,
    after) pixels per side: zeros, or reflection (the encoder).  Negative pads crop."""

    def __init__(self, taps, pad, upsample_factor=1, reflect=False):
        super().__init__(pad, upsample_factor=upsample_factor, taps=taps)
        self.reflect = reflect

    def forward(self, x):
        if not self.reflect:
            return super().forward(x)
        p0, p1 = self.pad
        x = F.pad(x, (p0, p1, p0, p1), mode="reflect")
        kh, kw = self.kernel.shape
        weight = torch.flip(self.kernel, (0, 1)).expand(x.shape[1], 1, kh, kw)
        return F.conv2d(x, weight, groups=x.shape[1])


class BlurKernel(nn.Module):
    """Only the buffer of the authors' unused `ToRGB.upsample` (their ToRGB is built to add an
    upsampled skip that their generator never passes); kept so their checkpoints load."""

    def __init__(self, taps):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, 4))


class ConvLayer(nn.Sequential):
    """[Blur | reflection pad] -> EqualConv2d -> [activation], children named as the authors'
    (Blur, RefPad, Conv, Act).

    downsample: blur with `taps`, then a stride-2 conv without padding; `pad` (default
    len(taps) - 2 + kernel - 1, split (p + 1) // 2 before and p // 2 after) is the blur's.
    Otherwise a stride-1 conv padded by `pad` (default kernel // 2).  `reflect` pads by
    reflection (the blur's pad too).  The conv has a bias only without an activation; with one,
    the bias is the fused leaky ReLU's (`bias`) or there is none (scaled leaky ReLU).
    """

    def __init__(self, in_channels, out_channels, kernel_size, downsample=False,
                 taps=ANTIALIAS_TAPS, bias=True, activate=True, pad=None, reflect=False):
        layers = []
        if downsample:
            p = (len(taps) - 2) + (kernel_size - 1) if pad is None else pad
            layers.append(("Blur", Blur(taps, ((p + 1) // 2, p // 2), reflect=reflect)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2 if pad is None else pad
            if reflect:
                layers.append(("RefPad", nn.ReflectionPad2d(padding)))
                padding = 0
        layers.append(("Conv", EqualConv2d(in_channels, out_channels, kernel_size, stride=stride,
                                           padding=padding, bias=bias and not activate)))
        if activate:
            layers.append(("Act", FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU()))
        super().__init__(OrderedDict(layers))


class ResBlock(nn.Module):
    """(conv2(conv1(x)) + skip(x)) / sqrt(2): 3x3 ConvLayers (the second one downsampling unless
    told not to) and a 1x1 skip without bias or activation, always present."""

    def __init__(self, in_channels, out_channels, taps=ANTIALIAS_TAPS, reflect=False, pad=None,
                 downsample=True):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, reflect=reflect, pad=pad)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=downsample, taps=taps,
                               reflect=reflect, pad=pad)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=downsample, taps=taps,
                              activate=False, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class ModulatedConv2d(nn.Module):
    """The authors' modulated convolution of a B x C_in x H x W input by a style (B x style_dim).

        s = A(style)                               A = EqualLinear(style_dim, C_in), bias 1
        s = s / sqrt(mean_c s^2 + 1e-8)            (only with demodulate)
        w = W / sqrt(C_in k^2)                     equalised learning rate, W ~ N(0, 1)
        w_o = w_o / sqrt(sum_{c,k} w_o^2 + 1e-8)   (only with demodulate; the unmodulated w)
        out = conv(x * s, w)

    StyleGAN2 (Karras et al. 2020, Eq. 1-3) instead demodulates the modulated weight w * s per
    image.  Here w does not depend on the image, so the whole batch is one convolution.
    With `upsample`: a stride-2 transposed conv (H -> 2H + 1) and a blur that trims to 2H.
    """

    def __init__(self, in_channels, out_channels, kernel_size, style_dim, demodulate=True,
                 upsample=False, taps=ANTIALIAS_TAPS):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.demodulate, self.upsample = demodulate, upsample
        self.padding = kernel_size // 2
        if upsample:
            p = (len(taps) - 2) - (kernel_size - 1)
            self.blur = Blur(taps, ((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def style(self, style):
        """B x style_dim -> the B x C_in factors that multiply the input channels."""
        s = self.modulation(style)
        if self.demodulate:
            s = s * torch.rsqrt(s.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return s

    def effective_weight(self):
        """The out x in x k x k weight every image is convolved with."""
        w = self.weight[0] * self.scale
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return w

    def forward(self, x, style):
        if style.dim() != 2:
            raise ValueError("the swap_ae generator takes a B x C global code (no spatial style)")
        x = x * self.style(style)[:, :, None, None]
        w = self.effective_weight()
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0))
        return F.conv2d(x, w, padding=self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"demodulate={self.demodulate}, upsample={self.upsample}")


class NoiseInjection(nn.Module):
    """x + w * n, n ~ N(0, 1) per pixel (one map per image), w a learned scalar starting at 0.

    `freeze(seed)` (test time) replaces the fresh draws by maps that depend only on the seed,
    this layer's index and the map's size: one 1 x 1 x H x W map shared by every image, so that
    the same inputs always give the same output (no flicker between alphas or runs).
    """

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.frozen_seed = None
        self._frozen = {}

    def freeze(self, seed):
        self.frozen_seed = seed
        self._frozen = {}

    def unfreeze(self):
        self.frozen_seed = None
        self._frozen = {}

    def forward(self, x):
        batch, _, height, width = x.shape
        if self.frozen_seed is None:
            noise = x.new_empty(batch, 1, height, width).normal_()  # torch RNG of x's device
        else:
            key = (height, width, x.device, x.dtype)
            if key not in self._frozen:
                # drawn on the CPU from its own generator: the same map on every device
                g = torch.Generator().manual_seed(self.frozen_seed)
                self._frozen[key] = torch.randn(1, 1, height, width, generator=g).to(x.device, x.dtype)
            noise = self._frozen[key]
        return x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d -> noise (if `use_noise`; the module exists either way) -> fused leaky ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, style_dim, upsample=False,
                 taps=ANTIALIAS_TAPS, use_noise=True):
        super().__init__()
        self.use_noise = use_noise
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim,
                                    upsample=upsample, taps=taps)
        self.noise = NoiseInjection()
        if not use_noise:
            # never used: frozen for good, so no optimizer or DDP waits for its gradient
            self.noise.weight.requires_grad_(False)
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x, style):
        out = self.conv(x, style)
        if self.use_noise:
            out = self.noise(out)
        return self.activate(out)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to 3 channels without demodulation, plus a bias; no activation."""

    def __init__(self, in_channels, style_dim, taps=ANTIALIAS_TAPS):
        super().__init__()
        self.upsample = BlurKernel(taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style):
        return self.conv(x, style) + self.bias


# ---------------------------------------------------------------------------------- E and G
def encoder_channels(idx, scale_capacity=1.0, steepness=2.0, global_code_ch=2048):
    """Width after `idx` downsamplings: steepness^(5 + idx) * scale, capped at global_code_ch."""
    nc = steepness ** (5 + idx) * scale_capacity
    return round(min(global_code_ch, int(round(nc))))


class SwapAEEncoder(nn.Module):
    """E (paper Fig. 17): x -> (sp, gl).

        FromRGB             1x1 ConvLayer 3 -> nc(0)
        DownToSpatialCode   num_downsampling_sp residual blocks, each halving H and W
                            ("midpoint", nc(sp) x H/2^sp x W/2^sp)
        ToSpatialCode       1x1 ConvLayer (+act), 1x1 conv to spatial_code_ch  -> sp
        DownToGlobalCode    num_downsampling_gl 3x3 stride-2 convs without padding (+act)
        ToGlobalCode        spatial mean, EqualLinear to global_code_ch         -> gl

    At 256 px with the defaults: sp 8 x 16 x 16, midpoint 16 -> 7 -> 3, gl 2048.
    """

    def __init__(self, spatial_code_ch=8, global_code_ch=2048, num_downsampling_sp=4,
                 num_downsampling_gl=2, scale_capacity=1.0, nc_steepness=2.0, use_antialias=True):
        super().__init__()
        taps = ENCODER_TAPS if use_antialias else NO_BLUR

        def nc(i):
            return encoder_channels(i, scale_capacity, nc_steepness, global_code_ch)

        self.FromRGB = ConvLayer(3, nc(0), 1)
        self.DownToSpatialCode = nn.Sequential(OrderedDict(
            (f"ResBlockDownBy{2 ** i}", ResBlock(nc(i), nc(i + 1), taps, reflect=True))
            for i in range(num_downsampling_sp)))
        width = nc(num_downsampling_sp)
        self.ToSpatialCode = nn.Sequential(ConvLayer(width, width, 1),
                                           ConvLayer(width, spatial_code_ch, 1, activate=False))
        self.DownToGlobalCode = nn.Sequential(OrderedDict(
            (f"ConvLayerDownBy{2 ** (num_downsampling_sp + i)}",
             ConvLayer(nc(num_downsampling_sp + i), nc(num_downsampling_sp + i + 1), 3,
                       downsample=True, taps=NO_BLUR, pad=0))
            for i in range(num_downsampling_gl)))
        self.ToGlobalCode = nn.Sequential(
            EqualLinear(nc(num_downsampling_sp + num_downsampling_gl), global_code_ch))

    def forward(self, x):
        midpoint = self.DownToSpatialCode(self.FromRGB(x))
        sp = self.ToSpatialCode(midpoint)
        gl = self.ToGlobalCode(self.DownToGlobalCode(midpoint).mean(dim=(2, 3)))
        return normalize(sp), normalize(gl)


class GeneratorModulation(nn.Module):
    """x * A(gl) + B(gl): the structure code modulated channel-wise by the texture code."""

    def __init__(self, style_dim, channels):
        super().__init__()
        self.scale = EqualLinear(style_dim, channels)
        self.bias = EqualLinear(style_dim, channels)

    def forward(self, x, style):
        return x * self.scale(style)[:, :, None, None] + self.bias(style)[:, :, None, None]


class ResolutionPreservingResnetBlock(nn.Module):
    """Two 3x3 StyledConvs (noise always on) + a 1x1 skip when the width changes."""

    def __init__(self, in_channels, out_channels, style_dim):
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, 3, style_dim)
        self.conv2 = StyledConv(out_channels, out_channels, 3, style_dim)
        self.skip = (ConvLayer(in_channels, out_channels, 1, activate=False, bias=False)
                     if in_channels != out_channels else nn.Identity())

    def forward(self, x, style):
        return (self.skip(x) + self.conv2(self.conv1(x, style), style)) / math.sqrt(2.0)


class UpsamplingResnetBlock(nn.Module):
    """An upsampling 3x3 StyledConv and a 3x3 StyledConv; the skip is a 1x1 ConvLayer with bias
    and leaky ReLU (when the width changes), then a bilinear x2."""

    def __init__(self, in_channels, out_channels, style_dim, taps=ANTIALIAS_TAPS, use_noise=True):
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, 3, style_dim, upsample=True, taps=taps,
                                use_noise=use_noise)
        self.conv2 = StyledConv(out_channels, out_channels, 3, style_dim, use_noise=use_noise)
        self.skip = (ConvLayer(in_channels, out_channels, 1)
                     if in_channels != out_channels else nn.Identity())

    def forward(self, x, style):
        skip = F.interpolate(self.skip(x), scale_factor=2, mode="bilinear", align_corners=False)
        return (skip + self.conv2(self.conv1(x, style), style)) / math.sqrt(2.0)


def generator_channels(num_up, num_downsampling_sp=4, scale_capacity=1.0):
    """Width after `num_up` upsamplings: min(512, 128 * 2^(sp - num_up)) * scale, truncated."""
    return int(min(512, 128 * 2 ** (num_downsampling_sp - num_up)) * scale_capacity)


class SwapAEGenerator(nn.Module):
    """G (paper Fig. 18): (sp, gl) -> image, every modulated layer styled by the same gl.

        SpatialCodeModulation     sp * A(gl) + B(gl)
        HeadResnetBlock0..n-1     widths rising to nf(0) at the structure code's resolution
        UpsamplingResBlock16..    one per encoder downsampling (the numbers are labels)
        ToRGB                     modulated 1x1 conv + bias; no tanh

    Both codes are L2-normalised again on entry (a mixed texture code is a lerp of two).
    """

    def __init__(self, spatial_code_ch=8, global_code_ch=2048, num_upsampling=4,
                 num_base_resnet_layers=2, scale_capacity=1.0, use_noise=True, use_antialias=True):
        super().__init__()
        taps = ANTIALIAS_TAPS if use_antialias else NO_BLUR
        self.num_base_resnet_layers, self.num_upsampling = num_base_resnet_layers, num_upsampling

        def nf(num_up):
            return generator_channels(num_up, num_upsampling, scale_capacity)

        self.SpatialCodeModulation = GeneratorModulation(global_code_ch, spatial_code_ch)
        width = spatial_code_ch
        for i in range(num_base_resnet_layers):
            out = max(spatial_code_ch, round((i + 1) / num_base_resnet_layers * nf(0)))
            self.add_module(f"HeadResnetBlock{i}",
                            ResolutionPreservingResnetBlock(width, out, global_code_ch))
            width = out
        for j in range(num_upsampling):
            self.add_module(f"UpsamplingResBlock{2 ** (4 + j)}",
                            UpsamplingResnetBlock(width, nf(j + 1), global_code_ch, taps, use_noise))
            width = nf(j + 1)
        self.ToRGB = ToRGB(width, global_code_ch, taps)

    def blocks(self):
        for i in range(self.num_base_resnet_layers):
            yield getattr(self, f"HeadResnetBlock{i}")
        for j in range(self.num_upsampling):
            yield getattr(self, f"UpsamplingResBlock{2 ** (4 + j)}")

    def forward(self, spatial_code, global_code):
        sp, gl = normalize(spatial_code), normalize(global_code)
        x = self.SpatialCodeModulation(sp, gl)
        for block in self.blocks():
            x = block(x, gl)
        return self.ToRGB(x, gl)

    def freeze_noise(self, seed=0):
        """Test time: every noise layer draws its maps from `seed` (and its own index) only."""
        for k, m in enumerate(m for m in self.modules() if isinstance(m, NoiseInjection)):
            m.freeze(seed * 1000 + k)

    def unfreeze_noise(self):
        for m in self.modules():
            if isinstance(m, NoiseInjection):
                m.unfreeze()


# ---------------------------------------------------------------------------------- D and D_patch
def discriminator_channels(crop_size, scale_capacity=1.0, max_nc=512):
    """The StyleGAN2 table with channel multiplier 2 * scale; 512 at 4 and 8 px and at most 512 at
    16 and 32 px (the authors' values; --netD_max_nc lowers those four entries)."""
    m = 2.0 * scale_capacity
    top = min(512, max_nc)
    return {4: top, 8: top, 16: min(top, int(512 * m)), 32: min(top, int(512 * m)),
            64: int(256 * m), 128: int(128 * m), 256: int(64 * m), 512: int(32 * m),
            1024: int(16 * m)}


class _StyleGAN2D(nn.Module):
    """The residual StyleGAN2 discriminator of the authors' stylegan2_layers (the minibatch
    standard-deviation layer is commented out there, so absent here)."""

    def __init__(self, size, scale_capacity=1.0, taps=ANTIALIAS_TAPS, max_nc=512):
        super().__init__()
        channels = discriminator_channels(size, scale_capacity, max_nc)
        original = size
        size = 2 ** int(round(math.log(size, 2)))  # the table's key; the final map side adapts
        log_size = int(math.log(size, 2))
        convs = [("0", ConvLayer(3, channels[size], 1))]
        width = channels[size]
        for i in range(log_size, 2, -1):
            name = str(9 - i) if i <= 8 else f"{2 ** i}x{2 ** i}"
            convs.append((name, ResBlock(width, channels[2 ** (i - 1)], taps)))
            width = channels[2 ** (i - 1)]
        self.convs = nn.Sequential(OrderedDict(convs))
        self.final_conv = ConvLayer(width, channels[4], 3)
        side = int(4 * original / size)
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * side ** 2, channels[4], activation=True),
                                          EqualLinear(channels[4], 1))

    def forward(self, x):
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))


class SwapAEDiscriminator(nn.Module):
    """D: one logit per crop_size x crop_size image (B x 1)."""

    def __init__(self, crop_size=256, scale_capacity=1.0, use_antialias=True, max_nc=512):
        super().__init__()
        self.stylegan2_D = _StyleGAN2D(crop_size, scale_capacity,
                                       ANTIALIAS_TAPS if use_antialias else NO_BLUR, max_nc)

    def forward(self, x):
        return self.stylegan2_D(x)


def patch_discriminator_channels(scale_capacity=4.0, max_nc=384):
    """Widths of D_patch's feature extractor per resolution (capped at max_nc up to 16 px)."""
    m = scale_capacity
    return {4: min(max_nc, int(256 * m)), 8: min(max_nc, int(128 * m)),
            16: min(max_nc, int(64 * m)), 32: int(32 * m), 64: int(16 * m), 128: int(8 * m),
            256: int(4 * m)}


class SwapAEPatchDiscriminator(nn.Module):
    """D_patch (paper Sec. 3.2, Fig. 19): does a query patch share the texture of reference patches?

        convs       3x3 ConvLayer, residual blocks from patch_size down to 4 px, a residual block
                    to 2 * max_nc, a 3x3 ConvLayer without padding -> max_nc x 2 x 2 per crop
        pairlinear  [f(ref), f(query)] (2 * 4 * max_nc) -> 2048 -> 2048 -> 1024 -> 1
                    (mlp_nc, mlp_nc, mlp_nc // 2: the authors fix 2048)

    `extract_features` runs the crops (B x T x 3 x P x P) through convs, optionally replacing each
    image's T features by their mean (aggregation); `discriminate_features` scores pairs matched
    by index.  The authors size pairlinear's input as 8 * min(max_nc, 256 * scale), which only
    equals the feature size (8 * max_nc) when 256 * scale >= max_nc; their code then crashes,
    so here it is the feature size (identical whenever theirs runs).
    """

    def __init__(self, patch_size=128, scale_capacity=4.0, max_nc=384, use_antialias=True, mlp_nc=2048):
        super().__init__()
        channels = patch_discriminator_channels(scale_capacity, max_nc)
        taps = ANTIALIAS_TAPS if use_antialias else NO_BLUR
        log_size = int(math.ceil(math.log(patch_size, 2)))
        width = channels[2 ** log_size]
        convs = [("0", ConvLayer(3, width, 3))]
        for i in range(log_size, 2, -1):
            name = str(7 - i) if i <= 6 else f"{2 ** i}x{2 ** i}"
            convs.append((name, ResBlock(width, channels[2 ** (i - 1)], taps)))
            width = channels[2 ** (i - 1)]
        convs.append(("5", ResBlock(width, max_nc * 2, downsample=False)))
        convs.append(("6", ConvLayer(max_nc * 2, max_nc, 3, pad=0)))
        self.convs = nn.Sequential(OrderedDict(convs))
        self.pairlinear = nn.Sequential(EqualLinear(2 * max_nc * 2 * 2, mlp_nc, activation=True),
                                        EqualLinear(mlp_nc, mlp_nc, activation=True),
                                        EqualLinear(mlp_nc, mlp_nc // 2, activation=True),
                                        EqualLinear(mlp_nc // 2, 1))

    def extract_features(self, patches, aggregate=False):
        """B x T x 3 x P x P crops -> (B * T) x C x 2 x 2 features (image-major order)."""
        batch, crops = patches.shape[:2]
        features = self.convs(patches.flatten(0, 1))
        features = features.view(batch, crops, *features.shape[1:])
        if aggregate:
            features = features.mean(1, keepdim=True).expand(-1, crops, -1, -1, -1)
        return features.flatten(0, 1)

    def discriminate_features(self, reference, query):
        """One logit per (reference, query) pair: (B * T) x 1."""
        return self.pairlinear(torch.cat([reference.flatten(1), query.flatten(1)], dim=1))

    def forward(self, reference_crops, *query_crops, aggregate=False, detach_reference=False):
        """Logits of (reference, query) pairs for each set of query crops, the reference
        features extracted once (without a graph when `detach_reference`).  One call per step,
        so that DistributedDataParallel sees a single forward of this network."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_reference):
            reference = self.extract_features(reference_crops, aggregate)
        return [self.discriminate_features(reference, self.extract_features(q)) for q in query_crops]
