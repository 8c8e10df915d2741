"""Small building blocks shared by the networks: norm and pad factories, blur resampling.

The anti-aliased Downsample/Upsample follow Zhang, "Making Convolutional Networks Shift-Invariant
Again" (2019), as used by CUT: a fixed binomial blur combined with the stride.  Their filters are
persistent buffers named `filt`, because original CUT checkpoints contain them (`model.7.filt`).
"""
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError

NORMS = {
    # No affine parameters and no running statistics: InstanceNorm adds nothing to the state_dict.
    'instance': functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    'batch': functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    # A plain function, not a partial: that is what makes `conv_bias_for` say "no bias".
    'none': lambda num_features: nn.Identity(),
    # With a learned scale and shift per channel: DistanceGAN's networks (its 2017 copy of the
    # CycleGAN code builds InstanceNorm2d(affine=True)); weight and bias join the state_dict.
    'instance_affine': functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False),
}


def get_norm_layer(name='instance'):
    """Return a factory `norm_layer(num_features) -> nn.Module` for --norm `name`."""
    try:
        return NORMS[name]
    except KeyError:
        raise UserError(f"unknown --norm '{name}'; choose one of: {', '.join(NORMS)}") from None


def conv_bias_for(norm_layer):
    """Whether a conv followed by `norm_layer` gets a bias, by the original's rule.

    Only InstanceNorm keeps the bias.  BatchNorm's affine shift makes it redundant; with 'none' the
    original also drops it although nothing replaces it (kept so checkpoints match).
    """
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func is nn.InstanceNorm2d
    return norm_layer is nn.InstanceNorm2d


PAD_LAYERS = {
    'refl': nn.ReflectionPad2d, 'reflect': nn.ReflectionPad2d,
    'repl': nn.ReplicationPad2d, 'replicate': nn.ReplicationPad2d,
    'zero': nn.ZeroPad2d,
}


def get_pad_layer(pad_type):
    """Return the padding module class for 'refl'/'reflect', 'repl'/'replicate' or 'zero'."""
    try:
        return PAD_LAYERS[pad_type]
    except KeyError:
        raise ValueError(f"unknown pad type '{pad_type}'; choose one of: {', '.join(PAD_LAYERS)}") from None


def binomial_filter(filt_size):
    """2-D binomial blur (filt_size x filt_size), outer product of binomial taps, summing to 1.

    Taps are row `filt_size - 1` of Pascal's triangle: 3 -> [1,2,1], 4 -> [1,3,3,1], ...
    """
    if filt_size < 1:
        raise ValueError(f"filt_size must be >= 1, got {filt_size}")
    taps = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float64)
    filt = torch.outer(taps, taps)
    return (filt / filt.sum()).float()


class Downsample(nn.Module):
    """Anti-aliased downsampling: pad, binomial blur, subsample by `stride` (depthwise conv)."""

    def __init__(self, channels, pad_type='reflect', filt_size=3, stride=2, pad_off=0):
        super().__init__()
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_off = pad_off
        # (left, right, top, bottom): the extra pixel of an even filter goes right/bottom.
        lo, hi = (filt_size - 1) // 2 + pad_off, filt_size // 2 + pad_off
        self.pad = get_pad_layer(pad_type)((lo, hi, lo, hi))
        # One copy of the blur per channel: (C, 1, k, k) for groups=C.
        self.register_buffer('filt', binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        if self.filt_size == 1:  # a 1x1 blur is the identity: plain strided slicing
            if self.pad_off:
                x = self.pad(x)
            return x[:, :, ::self.stride, ::self.stride]
        # B x C x H x W -> B x C x ceil(H/stride) x ceil(W/stride) for the default k=3, s=2.
        return F.conv2d(self.pad(x), self.filt, stride=self.stride, groups=x.shape[1])


class Upsample(nn.Module):
    """Anti-aliased upsampling: replicate-pad, blurred transposed conv, crop; doubles H and W."""

    def __init__(self, channels, pad_type='repl', filt_size=4, stride=2):
        super().__init__()
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_size = (filt_size - 1) // 2
        # Zero-stuffing spreads each input pixel over stride^2 outputs; the gain keeps the mean.
        filt = binomial_filter(filt_size) * stride ** 2
        self.register_buffer('filt', filt[None, None].repeat(channels, 1, 1, 1))
        self.pad = get_pad_layer(pad_type)((1, 1, 1, 1))

    # Fast path: fold the crops of an even filter into the transposed conv's padding (same sums,
    # without the slices whose backward allocates and zero-fills a full-size gradient).  False
    # computes as the original does; set by set_fast_path().
    crop_in_conv = True

    # Left to eager mode under --compile: inductor's replication_pad2d_backward (torch 2.14.1,
    # CPU) asserts strides its eager kernel does not produce.  A no-op without torch.compile.
    @torch.compiler.disable
    def forward(self, x):
        # With k=4, s=2: H -> H+2 (pad) -> 2H+2 (transposed conv, padding 2) -> 2H after the crops
        # of one row and column on each side, which is what padding 3 yields directly.
        padding = 1 + self.pad_size
        if self.filt_size % 2 == 0 and self.crop_in_conv:
            return F.conv_transpose2d(self.pad(x), self.filt, stride=self.stride,
                                      padding=padding + 1, groups=x.shape[1])
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=self.stride, padding=padding,
                                 groups=x.shape[1])
        out = out[:, :, 1:, 1:]
        if self.filt_size % 2 == 0:  # an even filter leaves one surplus row/column at the end
            out = out[:, :, :-1, :-1]
        return out


def instance_norm_grad_is_wrong(device):
    """Whether F.instance_norm's input gradient on `device` is wrong for a batch of one when the
    incoming gradient is channels-last (seen on torch 2.14.1, CPU; see
    tests/test_norm_grad_guard.py).  A float64 probe on a 1 x 4 x 5 x 6 tensor."""
    g = torch.Generator().manual_seed(0)
    dtype = torch.float64 if torch.device(device).type == "cpu" else torch.float32
    x = torch.randn(1, 4, 5, 6, generator=g, dtype=dtype).to(device).requires_grad_()
    grad_out = torch.randn(1, 5, 6, 4, generator=g, dtype=dtype).to(device).permute(0, 3, 1, 2)
    strided, = torch.autograd.grad(F.instance_norm(x), x, grad_out)
    dense, = torch.autograd.grad(F.instance_norm(x), x, grad_out.contiguous())
    return float((strided - dense).norm() / dense.norm()) > 1e-4


class _ContiguousGrad(torch.autograd.Function):
    """Identity forward; backward hands on a contiguous copy of the incoming gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()  # not a view: in-place ReLUs follow the norms

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _contiguous_grad_hook(module, inputs, output):
    return _ContiguousGrad.apply(output)


def make_norm_gradients_contiguous(net):
    """Make every InstanceNorm2d of `net` receive a contiguous gradient (a forward hook on its
    output), the workaround for instance_norm_grad_is_wrong with --channels_last."""
    for module in net.modules():
        if isinstance(module, nn.InstanceNorm2d):
            module.register_forward_hook(_contiguous_grad_hook)


def set_fast_path(net, enabled):
    """Switch the exact fast paths of `net`'s layers on (default) or off (the original's ops)."""
    for module in net.modules():
        if isinstance(module, Upsample):
            module.crop_in_conv = enabled
