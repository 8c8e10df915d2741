"""The Swapping Autoencoder (--model swap_ae): the networks against the authors' parameter counts
and names, the modulated convolution against a direct per-image computation, float64 finite
differences through the co-occurrence patch loss and both R1 terms, hand-computed losses on a
tiny batch, the alternating D/G steps and their counters, the swap (Python API and translate.py)
and exact resume after a kill.

Reference numbers: the parameter counts are those of the authors' modules at their 256-px
defaults (taesungp/swapping-autoencoder-pytorch, instantiated on the CPU; also checked by
scripts/parity/swapae_parity.py, which loads their weights into ours by name).
"""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import translate
from conftest import write_images
from models import create_model, load_translator
from models.losses import patch_r1_penalty, r1_penalty, random_crops
from models.networks.swapae import (ModulatedConv2d, NoiseInjection, SwapAEDiscriminator,
                                    SwapAEEncoder, SwapAEGenerator, SwapAEPatchDiscriminator)
from models.swap_ae_model import swap
from models.swap_translation import SwapTranslator, fit_size, nearest_multiple
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

FD_STEP = 1e-6
FD_TOL = 1e-6
# 32 px, every network a few thousand parameters (D_patch's pair MLP 16 wide)
TINY = ("--crop_size 32 --load_size 32 --netE_num_downsampling_sp 2 --netE_num_downsampling_gl 1 "
        "--netE_scale_capacity 0.125 --global_code_ch 16 --spatial_code_ch 4 "
        "--netG_scale_capacity 0.03125 --netG_num_base_resnet_layers 1 --netD_scale_capacity 0.03125 "
        "--netD_max_nc 8 --netPatchD_scale_capacity 0.125 --netPatchD_max_nc 8 --netPatchD_mlp_nc 16 "
        "--patch_size 8 --patch_num_crops 2 --gpu_ids -1 --display_id 0 --num_threads 0")


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def direction_like(tensors, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in tensors]


def fd_error(f, x0, seed=0):
    """|autograd - central difference| / |central difference| of scalar f at x0 along a random
    direction (float64)."""
    d, = direction_like([x0], seed)
    x = x0.clone().requires_grad_(True)
    grad, = torch.autograd.grad(f(x), x)
    exact = float((grad * d).sum())
    with torch.no_grad():
        fd = float(f(x0 + FD_STEP * d) - f(x0 - FD_STEP * d)) / (2 * FD_STEP)
    assert abs(fd) > 1e-6, "the derivative is ~0: the check would prove nothing"
    return abs(exact - fd) / abs(fd)


def param_fd_error(net, loss, seed=0):
    """As fd_error, for `loss()` as a function of all of net's parameters (loss may itself use
    autograd, as the R1 penalties do)."""
    params = [p for p in net.parameters() if p.requires_grad]
    directions = direction_like(params, seed)
    grads = torch.autograd.grad(loss(), params, allow_unused=True)
    exact = sum(float((g * d).sum()) for g, d in zip(grads, directions) if g is not None)
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.add_(sign * FD_STEP * d)
        values.append(float(loss().detach()))
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.sub_(sign * FD_STEP * d)
    fd = (values[0] - values[1]) / (2 * FD_STEP)
    assert abs(fd) > 1e-6, "the derivative is ~0: the check would prove nothing"
    return abs(exact - fd) / abs(fd)


def randomize_biases(net, seed=0):
    """Non-zero biases and noise weights, as after training (at initialisation most are 0 or 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias") or name.endswith("noise.weight"):
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return net


# ---------------------------------------------------------------- the networks

def test_parameter_counts_and_names_are_the_authors():
    with torch.device("meta"):
        E, G = SwapAEEncoder(), SwapAEGenerator()
        D, Dp = SwapAEDiscriminator(256), SwapAEPatchDiscriminator(128)
    assert (n_params(E), n_params(G), n_params(D), n_params(Dp)) == (
        30_584_872, 25_064_743, 28_859_521, 24_522_145)
    # the breakdown the authors' print_architecture gives for E
    assert [n_params(getattr(E, n)) for n in ("FromRGB", "DownToSpatialCode", "ToSpatialCode",
                                              "DownToGlobalCode", "ToGlobalCode")] == [
        128, 2_525_600, 266_760, 23_596_032, 4_196_352]
    keys = {f"E.{k}" for k in E.state_dict()} | {f"G.{k}" for k in G.state_dict()} | \
        {f"D.{k}" for k in D.state_dict()} | {f"Dpatch.{k}" for k in Dp.state_dict()}
    for key, shape in {"E.DownToSpatialCode.ResBlockDownBy1.conv2.Blur.kernel": (3, 3),
                       "E.DownToGlobalCode.ConvLayerDownBy16.Blur.kernel": (1, 1),
                       "E.ToSpatialCode.1.Conv.bias": (8,), "G.ToRGB.upsample.kernel": (4, 4),
                       "G.UpsamplingResBlock128.skip.Act.bias": (128,),
                       "G.HeadResnetBlock0.conv1.conv.weight": (1, 256, 8, 3, 3),
                       "G.HeadResnetBlock1.conv2.noise.weight": (1,),
                       "D.stylegan2_D.convs.6.skip.Conv.weight": (512, 512, 1, 1),
                       "D.stylegan2_D.final_linear.0.weight": (512, 8192),
                       "Dpatch.convs.128x128.conv2.Blur.kernel": (4, 4),
                       "Dpatch.convs.6.Conv.weight": (384, 768, 3, 3),
                       "Dpatch.pairlinear.0.weight": (2048, 3072)}.items():
        assert key in keys
        net, _, rest = key.partition(".")
        owner = {"E": E, "G": G, "D": D, "Dpatch": Dp}[net]
        assert tuple(owner.state_dict()[rest].shape) == shape, key
    assert "G.UpsamplingResBlock16.skip.Conv.weight" not in keys  # 512 -> 512: identity skip


def test_codes_and_output_shapes():
    torch.manual_seed(0)
    E = SwapAEEncoder(4, 16, 2, 1, 0.125).double()
    G = SwapAEGenerator(4, 16, 2, 1, 0.03125).double()
    x = torch.randn(2, 3, 32, 48, dtype=torch.float64)
    sp, gl = E(x)
    assert sp.shape == (2, 4, 8, 12) and gl.shape == (2, 16)
    # unit norm per location and per image (up to the 1e-8 in the rsqrt)
    torch.testing.assert_close(sp.pow(2).sum(1), torch.ones(2, 8, 12, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(gl.pow(2).sum(1), torch.ones(2, dtype=torch.float64), atol=1e-4, rtol=0)
    out = G(sp, gl)
    assert out.shape == x.shape
    # G re-normalises its codes: scaling them changes nothing
    torch.manual_seed(1)
    a = G(sp * 3, gl * 0.5)
    torch.manual_seed(1)
    torch.testing.assert_close(a, G(sp, gl))
    # no tanh: a bias on ToRGB moves the output past 1
    with torch.no_grad():
        G.ToRGB.bias.fill_(5.0)
    assert G(sp, gl).min() > 1


def test_modulated_conv_equals_the_per_image_grouped_computation():
    """Ours: one convolution of (x * s) by the demodulated unmodulated weight.  Here, written out
    from the authors' definition: per image b, input channels scaled by s_b, the weight repeated
    per image, then a grouped (transposed) convolution of the whole batch."""
    torch.manual_seed(0)
    for upsample, demodulate, k in ((False, True, 3), (True, True, 3), (False, False, 1)):
        conv = ModulatedConv2d(4, 5, k, style_dim=6, demodulate=demodulate, upsample=upsample).double()
        randomize_biases(conv)
        x = torch.randn(3, 4, 6, 7, dtype=torch.float64)
        style = torch.randn(3, 6, dtype=torch.float64)
        b = x.shape[0]
        s = F.linear(style, conv.modulation.weight * conv.modulation.scale, conv.modulation.bias)
        if demodulate:
            s = s / torch.sqrt(s.pow(2).mean(1, keepdim=True) + 1e-8)
        xs = x * s.view(b, 4, 1, 1)
        w = (conv.weight * conv.scale).repeat(b, 1, 1, 1, 1)  # b x out x in x k x k
        if demodulate:
            w = w / torch.sqrt(w.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        if upsample:
            wt = w.transpose(1, 2).reshape(b * 4, 5, k, k)
            ref = F.conv_transpose2d(xs.reshape(1, b * 4, 6, 7), wt, stride=2, groups=b)
            ref = conv.blur(ref.view(b, 5, *ref.shape[-2:]))
            assert ref.shape[-2:] == (12, 14)
        else:
            ref = F.conv2d(xs.reshape(1, b * 4, 6, 7), w.reshape(b * 5, 4, k, k), padding=k // 2,
                           groups=b).view(b, 5, 6, 7)
        torch.testing.assert_close(conv(x, style), ref, rtol=1e-12, atol=1e-12)
    # the demodulation uses the unmodulated weight: every output filter has unit norm, whatever the style
    w = ModulatedConv2d(4, 5, 3, 6).double().effective_weight()
    torch.testing.assert_close(w.pow(2).sum((1, 2, 3)), torch.ones(5, dtype=torch.float64))


def test_networks_match_finite_differences():
    """float64 central differences through E (input and parameters), G (both codes and
    parameters, noise on with the same draws) and D."""
    torch.manual_seed(0)
    E = randomize_biases(SwapAEEncoder(4, 16, 2, 1, 0.125).double())
    G = randomize_biases(SwapAEGenerator(4, 16, 2, 1, 0.03125).double())
    D = randomize_biases(SwapAEDiscriminator(16, 0.03125, max_nc=8).double())
    x0 = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    probe = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    sp0, gl0 = (t.detach() for t in E(x0))

    def e_loss(x):
        sp, gl = E(x)
        return (sp * torch.linspace(-1, 1, sp.numel(), dtype=x.dtype).view_as(sp)).sum() + gl[:, :3].sum()

    def g_loss(sp, gl):
        torch.manual_seed(7)  # the same noise maps in every evaluation
        return (G(sp, gl) * probe).sum()

    assert fd_error(e_loss, x0) < FD_TOL
    assert param_fd_error(E, lambda: e_loss(x0)) < FD_TOL
    assert fd_error(lambda sp: g_loss(sp, gl0), sp0) < FD_TOL
    assert fd_error(lambda gl: g_loss(sp0, gl), gl0) < FD_TOL
    assert param_fd_error(G, lambda: g_loss(sp0, gl0)) < FD_TOL
    assert param_fd_error(D, lambda: D(x0).pow(2).sum()) < FD_TOL


# ---------------------------------------------------------------- crops and the patch losses

def test_random_crops_geometry():
    """A crop of an image whose pixel values are their own x (or y) coordinate shows where it was
    cut: a linear ramp whose extent is the drawn fraction, flipped for about half of the crops.
    (A crop reaching the border samples the zero padding in its outermost row or column, as
    the authors' grid_sample does, so the extents are read between the second and the
    second-to-last samples: 13 of the 15 steps of linspace(-1, 1, 16).)"""
    size = 64
    xs = torch.linspace(-1, 1, size * 2 + 1)[1::2]  # pixel centres in grid coordinates
    image = torch.stack([xs.view(1, size).expand(size, size), xs.view(size, 1).expand(size, size),
                         torch.ones(size, size)]).unsqueeze(0).double()
    torch.manual_seed(0)
    crops = random_crops(image.repeat(2, 1, 1, 1), 16, (1 / 8, 1 / 4), num_crops=50)
    assert crops.shape == (2, 50, 3, 16, 16)
    inner = 13 / 15
    widths = (crops[..., 0, 1:-1, -2] - crops[..., 0, 1:-1, 1]).mean(-1) / inner  # signed, 2 s_x
    heights = (crops[..., 1, -2, 1:-1] - crops[..., 1, 1, 1:-1]).mean(-1) / inner
    assert widths.abs().min() >= 2 / 8 - 1e-9 and widths.abs().max() <= 2 / 4 + 1e-9
    assert heights.min() >= 2 / 8 - 1e-9 and heights.max() <= 2 / 4 + 1e-9  # never flipped in y
    assert 20 < int((widths < 0).sum()) < 80  # about half flipped horizontally
    assert (widths.abs() - heights).abs().max() > 0.05  # independent x and y: not square
    torch.testing.assert_close(crops[:, :, 2, 1:-1, 1:-1], torch.ones_like(crops[:, :, 2, 1:-1, 1:-1]))
    # torch's RNG, flips then scales then offsets: the same seed cuts the same crops
    torch.manual_seed(0)
    torch.testing.assert_close(random_crops(image.repeat(2, 1, 1, 1), 16, num_crops=50), crops)


def tiny_patch_d(seed=0):
    torch.manual_seed(seed)
    return randomize_biases(SwapAEPatchDiscriminator(8, 0.125, 8, mlp_nc=16).double(), seed)


def test_cooccurrence_patch_loss_matches_finite_differences():
    """G's co-occurrence loss (Eq. 3) as a function of the swapped image, through the crops, and
    D_patch's losses as a function of its parameters; crop draws fixed by the seed."""
    Dp = tiny_patch_d()
    gan = lambda pred, real: (F.softplus(-pred) if real else F.softplus(pred)).mean()  # noqa: E731
    real = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    mix0 = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1

    def g_mix(mix):
        torch.manual_seed(3)
        ref, query = random_crops(real, 8, num_crops=2), random_crops(mix, 8, num_crops=2)
        pred, = Dp(ref, query, detach_reference=True)
        return gan(pred, True)

    def d_patch():
        torch.manual_seed(3)
        ref, target, query = (random_crops(x, 8, num_crops=2) for x in (real, real, mix0))
        pred_real, pred_mix = Dp(ref, target, query, aggregate=True)
        return gan(pred_real, True) + gan(pred_mix, False)

    assert fd_error(g_mix, mix0) < FD_TOL
    assert param_fd_error(Dp, d_patch) < FD_TOL


def test_r1_terms_match_finite_differences_and_hand_values():
    """Both R1 penalties (create_graph gradients) differentiated into the discriminators'
    parameters; and their values for linear discriminators, computed by hand."""
    D = randomize_biases(SwapAEDiscriminator(16, 0.03125, max_nc=8).double())
    Dp = tiny_patch_d()
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)

    def image_r1():
        real = x.clone().requires_grad_(True)
        return r1_penalty(D(real), real, 10.0)

    def patch_r1():
        torch.manual_seed(5)
        ref = random_crops(x, 8, num_crops=2).requires_grad_(True)
        target = random_crops(x, 8, num_crops=2).requires_grad_(True)
        logits, = Dp(ref, target)
        return patch_r1_penalty(logits, ref, target, 1.0)

    assert image_r1() > 0 and patch_r1() > 0
    assert param_fd_error(D, image_r1) < FD_TOL
    assert param_fd_error(Dp, patch_r1) < FD_TOL

    # D(ref, tgt) = a . ref + b . tgt per crop pair: gradients a and b per crop, so per image
    # sum over its T crops of (|a|^2 + |b|^2) = T (|a|^2 + |b|^2); times weight / 4.
    ref = torch.zeros(2, 3, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    tgt = torch.zeros(2, 3, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([1.0, -2.0, 0.0, 0.5], dtype=torch.float64)  # |a|^2 = 5.25
    b = torch.tensor([0.0, 3.0, 1.0, 0.0], dtype=torch.float64)  # |b|^2 = 10
    logits = ref.reshape(6, 4) @ a + tgt.reshape(6, 4) @ b
    assert float(patch_r1_penalty(logits, ref, tgt, 2.0)) == pytest.approx(3 * 15.25 * 2 / 4, rel=1e-12)


# ---------------------------------------------------------------- options

def folder(tmp_path, count=4, size=36):
    root = tmp_path / "images"
    write_images(str(root), count, size, seed=0)
    return root


def options(tmp_path, extra="", train=True):
    cls = TrainOptions if train else TestOptions
    tiny = TINY if train else TINY.replace("--display_id 0", "")
    return cls(f"--model swap_ae --dataroot {folder(tmp_path)} --checkpoints_dir {tmp_path / 'ck'} "
               f"--name s {tiny} {extra}").parse()


def test_options_follow_the_authors_church_preset(tmp_path):
    root = folder(tmp_path)
    opt = TrainOptions(f"--model swap_ae --dataroot {root} --checkpoints_dir {tmp_path}").parse()
    expected = dict(lr=0.002, beta1=0.0, beta2=0.99, R1_once_every=16, lambda_R1=10.0,
                    lambda_patch_R1=1.0, lambda_L1=1.0, lambda_GAN=1.0, lambda_PatchGAN=1.0,
                    spatial_code_ch=8, global_code_ch=2048, patch_size=128, patch_num_crops=8,
                    patch_min_scale=1 / 8, patch_max_scale=1 / 4, patch_use_aggregation=False,
                    batch_size=16, load_size=256, crop_size=256,
                    preprocess="scale_shortside_and_crop", no_flip=False, n_epochs_decay=0,
                    dataset_mode="single", netE_num_downsampling_sp=4, netE_num_downsampling_gl=2,
                    netG_num_base_resnet_layers=2, netG_use_noise=True, netPatchD_scale_capacity=4.0,
                    netPatchD_max_nc=384, netD_max_nc=512, netPatchD_mlp_nc=2048, use_antialias=True)
    assert {k: getattr(opt, k) for k in expected} == expected
    test_opt = TestOptions(f"--model swap_ae --dataroot {root} --checkpoints_dir {tmp_path}").parse()
    assert (test_opt.preprocess, test_opt.patch_use_aggregation) == ("scale_shortside", True)
    for bad, message in (("--batch_size 3", "must be even"), ("--amp fp16", "bf16"),
                         ("--crop_size 40 --load_size 40", "multiple of 16"),
                         ("--crop_size 96 --load_size 96", "at least 112"),
                         ("--patch_size 48", "power of 2"), ("--netG_scale_capacity 0.001", "0 channels"),
                         ("--lambda_L1 0 --lambda_GAN 0 --lambda_PatchGAN 0", "nothing to learn"),
                         ("--patch_min_scale 0.5", "min <= max"), ("--input_nc 1", "RGB"),
                         ("--eval_freq 1", "translate.py --texture")):
        with pytest.raises(UserError, match=message):
            TrainOptions(f"--model swap_ae --dataroot {root} --checkpoints_dir {tmp_path} {bad}").parse()


def test_adam_correction_and_the_networks_a_zero_weight_leaves_out(tmp_path):
    opt = options(tmp_path)
    model = create_model(opt)
    c = 16 / 17
    group = model.optimizer_D.param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * c) and group["betas"] == (0.0, pytest.approx(0.99 ** c))
    assert model.optimizer_G.param_groups[0]["betas"] == (0.0, 0.99)
    assert model.optimizer_G.param_groups[0]["lr"] == 0.002
    n_g = sum(1 for _ in model.netG.parameters()) + sum(1 for _ in model.netE.parameters())
    assert len(model.optimizer_G.param_groups[0]["params"]) == n_g
    assert model.model_names == ["E", "G", "D", "Dpatch"]
    assert create_model(options(tmp_path, "--lambda_GAN 0")).model_names == ["E", "G", "Dpatch"]
    assert create_model(options(tmp_path, train=False)).model_names == ["E", "G"]


# ---------------------------------------------------------------- the losses and the steps

class StubE(nn.Module):
    """sp = the image itself, gl = its channel means."""

    def forward(self, x):
        return x, x.mean((2, 3))


class StubG(nn.Module):
    def forward(self, sp, gl):
        return sp + gl[:, :, None, None]


class StubD(nn.Module):
    """One logit per image: w . x, so grad_x = w (R1 by hand)."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1, keepdim=True)


class StubDpatch(nn.Module):
    """Given logits per call position, whose gradient is ALPHA with respect to every reference
    crop pixel and BETA with respect to every query pixel (the value does not depend on the
    crops: x - x.detach() is 0); records the means of the crops it was given."""

    ALPHA, BETA = 0.1, 0.2

    def __init__(self, logits):
        super().__init__()
        self.logits, self.seen, self.k = logits, [], nn.Parameter(torch.ones(()))

    def forward(self, ref, *queries, aggregate=False, detach_reference=False):
        self.seen.append([float(ref.detach().mean())] + [float(q.detach()[..., 2:-2, 2:-2].median()) for q in queries])
        per_crop = lambda c: (c - c.detach()).flatten(2).sum(2).flatten()[:, None]  # noqa: E731
        n = ref.shape[0] * ref.shape[1]
        return [self.k * torch.full((n, 1), value, dtype=ref.dtype) + self.ALPHA * per_crop(ref)
                + self.BETA * per_crop(q) for value, q in zip(self.logits, queries)]


def softplus(v):
    return math.log1p(math.exp(v))


def test_losses_by_hand_on_a_tiny_batch(tmp_path):
    """Two constant images a = 0.5 and b = -0.25 (3 x 32 x 32) through stub networks: rec = x0 +
    a = 2a, mix = [x1 + a, x0 + b] = a + b, D(x) = mean(x) (w = 1/n).  Every term by hand."""
    opt = options(tmp_path, "--lambda_GAN 2 --lambda_PatchGAN 3 --lambda_L1 0.5 --lambda_R1 4 "
                            "--lambda_patch_R1 6 --R1_once_every 16")
    model = create_model(opt)
    a, b, n = 0.5, -0.25, 3 * 32 * 32
    model.netE, model.netG = StubE(), StubG()
    model.netD = StubD(torch.full((3, 32, 32), 1.0 / n, dtype=torch.float64))
    model.netDpatch = StubDpatch([0.3, -0.7])
    x = torch.stack([torch.full((3, 32, 32), a), torch.full((3, 32, 32), b)]).double()
    model.set_input({"A": x, "A_paths": ["a", "b"]})

    def value(name):
        return float(getattr(model, "loss_" + name).detach())

    model.compute_D_loss()
    assert value("D_real") == pytest.approx(2 * (softplus(-a) + softplus(-b)) / 2, rel=1e-12)
    assert value("D_rec") == pytest.approx(2 * 0.5 * softplus(2 * a), rel=1e-12)
    assert value("D_mix") == pytest.approx(2 * 0.5 * softplus(a + b), rel=1e-12)
    assert value("PatchD_real") == pytest.approx(3 * softplus(-0.3), rel=1e-12)
    assert value("PatchD_mix") == pytest.approx(3 * softplus(-0.7), rel=1e-12)
    assert value("D") == pytest.approx(sum(value(k) for k in (
        "D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix")), rel=1e-12)
    # reference and target crops from the real images (mean (a + b) / 2), queries from mix
    ref_mean, target, query = model.netDpatch.seen[-1]
    assert ref_mean == pytest.approx((a + b) / 2, abs=0.02) and query == pytest.approx(a + b)

    model.netDpatch.logits = [0.2]
    model.compute_G_loss()
    assert value("G_L1") == pytest.approx(0.5 * abs(2 * a - a), rel=1e-12)
    assert value("G_GAN_rec") == pytest.approx(2 * 0.5 * softplus(-2 * a), rel=1e-12)
    assert value("G_GAN_mix") == pytest.approx(2 * softplus(-(a + b)), rel=1e-12)
    assert value("G_mix") == pytest.approx(3 * softplus(-0.2), rel=1e-12)
    assert model.netDpatch.seen[-1][1] == pytest.approx(a + b)

    # R1: |grad D|^2 = |w|^2 = 1/n per image -> lambda_R1 / 2 * 1/n.  Patch R1: per crop pair
    # |grad_ref|^2 + |grad_tgt|^2 = 3 * 8 * 8 * (ALPHA^2 + BETA^2), two crops per image, times
    # lambda_patch_R1 / 4.  The step's loss is R1_once_every (16) times the penalty.
    loss = model.compute_R1_loss()
    expected = 4 / 2 / n + 6 / 4 * 2 * 3 * 8 * 8 * (0.1 ** 2 + 0.2 ** 2)
    assert value("D_R1") == pytest.approx(expected, rel=1e-12)
    assert float(loss.detach()) == pytest.approx(16 * expected, rel=1e-12)


def test_swap_exchanges_partners():
    x = torch.arange(6.0).view(6, 1)
    assert swap(x).flatten().tolist() == [1, 0, 3, 2, 5, 4]
    assert torch.equal(swap(swap(x)), x)


def snapshot(model):
    return {name: [p.detach().clone() for p in net.parameters()] for name, net in model.networks()}


def changed(before, model):
    return {name for name, net in model.networks()
            if any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters()))}


def test_steps_alternate_d_and_g_with_lazy_r1(tmp_path):
    """Step 1 (D) moves D and D_patch only, step 2 (G) moves E and G only; with R1 every 2nd D
    step, step 3 is a D step followed by an R1 step; the counters and losses say so."""
    opt = options(tmp_path, "--R1_once_every 2 --batch_size 4 --seed 0")
    torch.manual_seed(0)
    model = create_model(opt)
    model.setup(opt)
    g = torch.Generator().manual_seed(0)
    batches = [{"A": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, "A_paths": ["x"] * 4} for _ in range(4)]
    kinds = []
    for data in batches:
        before = snapshot(model)
        first_d = model.optimizer_D.param_groups[0]["params"][0]
        adam_steps = int(model.optimizer_D.state[first_d].get("step", 0))
        model.set_input(data)
        losses = model.optimize_parameters()
        after = int(model.optimizer_D.state[first_d].get("step", 0))
        kinds.append((sorted(changed(before, model)), after - adam_steps))
    assert kinds == [(["D", "Dpatch"], 1), (["E", "G"], 0), (["D", "Dpatch"], 2), (["E", "G"], 0)]
    # every parameter of D and D_patch moved in a D step (E and G: see below)
    before = snapshot(model)
    model.set_input(batches[1])
    model.optimize_parameters()
    for name in ("D", "Dpatch"):
        same = [torch.equal(x, y) for x, y in zip(before[name], dict(model.networks())[name].parameters())]
        assert not any(same), f"net{name}: {sum(same)} tensors unchanged"
    assert all(math.isfinite(v) for v in losses.values()) and losses["D_R1"] > 0 and losses["G_L1"] > 0
    assert (model.steps, model.d_steps) == (5, 3)
    # every parameter of E and G moved in a G step (the noise weights included)
    before = snapshot(model)
    model.set_input(batches[0])
    model.optimize_parameters()
    for name in ("E", "G"):
        same = [torch.equal(x, y) for x, y in zip(before[name], dict(model.networks())[name].parameters())]
        assert not any(same), f"net{name}: {sum(same)} tensors unchanged"


def test_odd_batch_and_wrong_size_are_one_line_errors(tmp_path):
    model = create_model(options(tmp_path))
    with pytest.raises(UserError, match="even --batch_size"):
        model.set_input({"A": torch.zeros(3, 3, 32, 32), "A_paths": ["p"] * 3})
    with pytest.raises(UserError, match="image p is 40x32 pixels.*--crop_size 32"):
        model.set_input({"A": torch.zeros(2, 3, 32, 40), "A_paths": ["p"] * 2})


# ---------------------------------------------------------------- swapping

def tiny_swapper(seed=0):
    torch.manual_seed(seed)
    E = randomize_biases(SwapAEEncoder(4, 16, 2, 1, 0.125))
    G = randomize_biases(SwapAEGenerator(4, 16, 2, 1, 0.03125))
    arch = dict(netE_num_downsampling_sp=2, netE_num_downsampling_gl=1)
    return SwapTranslator(E, G, arch, torch.device("cpu"), load_size=None)


def test_swap_api_alpha_sizes_and_frozen_noise():
    swapper = tiny_swapper()
    g = torch.Generator().manual_seed(1)
    s = torch.rand(2, 3, 37, 53, generator=g) * 2 - 1
    t = torch.rand(1, 3, 24, 24, generator=g) * 2 - 1
    rec = swapper.reconstruct(s)
    assert rec.shape == s.shape and rec.abs().max() <= 1
    # frozen noise (noise weights are non-zero here): the same call gives the same result
    torch.testing.assert_close(swapper.reconstruct(s), rec, rtol=0, atol=0)
    zero, half, one = swapper.swap(s, t, alpha=[0.0, 0.5, 1.0])
    torch.testing.assert_close(zero, rec, rtol=0, atol=0)  # alpha 0 reconstructs
    assert not torch.allclose(one, rec) and not torch.allclose(half, one)
    torch.testing.assert_close(swapper.swap(s, t, 1.0), one, rtol=0, atol=0)
    # the texture of the structure image itself is a reconstruction
    torch.testing.assert_close(swapper.swap(s[:1], s[:1]), rec[:1], rtol=1e-6, atol=1e-6)
    # PIL in, PIL out, at the structure image's size
    image = Image.fromarray((np.random.default_rng(0).random((29, 41, 3)) * 255).astype(np.uint8))
    out = swapper.swap(image, Image.new("L", (20, 30), 128))
    assert isinstance(out, Image.Image) and out.size == (41, 29) and out.mode == "RGB"
    assert swapper.swap(Image.new("RGB", (1, 1), "red"), image).size == (1, 1)  # any size
    rows = swapper.grid([image, image.resize((32, 32))], [image, Image.new("RGB", (16, 16))])
    assert [[im.size for im in row] for row in rows] == [[(41, 29)] * 2, [(32, 32)] * 2]


def test_sizes_round_to_multiples_of_16_as_the_authors():
    assert [nearest_multiple(s, 16, 112) for s in (256, 250, 264, 263, 300, 40)] == [256, 256, 256, 256, 304, 112]
    x = torch.zeros(1, 3, 100, 170)
    y, restore = fit_size(x, 16, 112, load_size=256)
    assert y.shape[-2:] == (256, 432)  # short side to 256 -> 256 x 435.2 -> 432
    assert restore(torch.zeros(1, 3, 256, 432)).shape[-2:] == (100, 170)


def test_noise_is_fresh_in_training_and_frozen_per_size():
    noise = NoiseInjection()
    noise.weight.data.fill_(1.0)
    x = torch.zeros(2, 1, 4, 4)
    assert not torch.equal(noise(x), noise(x)) and not torch.equal(noise(x)[0], noise(x)[1])
    noise.freeze(3)
    a = noise(x)
    assert torch.equal(a, noise(x)) and torch.equal(a[0], a[1])
    other = NoiseInjection()
    other.weight.data.fill_(1.0)
    other.freeze(3)
    assert torch.equal(other(x), a)  # a function of the seed and the size only
    assert noise(torch.zeros(1, 1, 5, 4)).shape == (1, 1, 5, 4)


def make_checkpoint(tmp_path):
    """A swap_ae training folder as train.py leaves it (the networks, train_opt.json)."""
    opts = TrainOptions(f"--model swap_ae --dataroot {folder(tmp_path)} --checkpoints_dir "
                        f"{tmp_path / 'ck'} --name s {TINY}")
    opt = opts.parse()
    torch.manual_seed(0)
    model = create_model(opt)
    for _, net in model.networks():
        randomize_biases(net)
    opts.save_options(opt)
    model.save_networks("latest")
    return tmp_path / "ck" / "s", model


def test_translate_texture_mix_and_grid(tmp_path):
    ckpt, model = make_checkpoint(tmp_path)
    inputs = tmp_path / "in"
    write_images(str(inputs), 2, 45, seed=3)
    write_images(str(tmp_path / "tex"), 3, 30, seed=4)
    texture = tmp_path / "tex" / "img_001.png"
    out = tmp_path / "out"
    assert translate.main(["--checkpoint", str(ckpt), "--texture", str(texture), str(inputs),
                           "-o", str(out), "--texture_mix", "0,0.5,1", "--gpu_ids", "-1"]) == 0
    names = sorted(os.listdir(out))
    assert names == [f"img_00{i}_{a}.png" for i in (0, 1) for a in ("0.00", "0.50", "1.00")]
    assert Image.open(out / "img_001_1.00.png").size == (45, 45)
    # the library gives the same swap; alpha 0 is the reconstruction
    swapper = load_translator(str(ckpt / "latest_net_G.pth"), device="cpu")
    structure = Image.open(inputs / "img_001.png")
    expected = np.asarray(swapper.swap(structure, Image.open(texture), 1.0))
    assert np.array_equal(np.asarray(Image.open(out / "img_001_1.00.png")), expected)
    assert np.array_equal(np.asarray(Image.open(out / "img_001_0.00.png")),
                          np.asarray(swapper.reconstruct(structure)))
    # the grid: one file per pair and grid.png (blank corner, textures on top, structures left)
    grid = tmp_path / "grid"
    assert translate.main(["--checkpoint", str(ckpt), "--grid", str(inputs), str(tmp_path / "tex"),
                           "-o", str(grid), "--gpu_ids", "-1"]) == 0
    assert len([n for n in os.listdir(grid) if n != "grid.png"]) == 6
    assert Image.open(grid / "grid.png").size == (4 * 45, 3 * 45)  # cells of the outputs' size
    for argv, message in ((["in.png"], "swaps textures: pass --texture"),
                          (["--texture", str(texture)], "at least one image"),
                          (["--texture", str(texture), "x.png", "--texture_mix", "a"], "comma-separated"),
                          (["--texture", str(texture), "--tile", "64", "x.png"], "--tile")):
        with pytest.raises(UserError, match=message):
            translate.main(["--checkpoint", str(ckpt), "-o", str(out), "--gpu_ids", "-1"] + argv)
    gen_ckpt = tmp_path / "plain"
    gen_ckpt.mkdir()
    with pytest.raises(UserError, match="not a swap_ae checkpoint"):
        translate.main(["--checkpoint", str(gen_ckpt), "--texture", str(texture), str(inputs),
                        "-o", str(out)])


def test_authors_checkpoint_file_loads_by_name(tmp_path):
    """The authors save one *_checkpoint.pth with E., G., D., Dpatch. keys: load_translator
    builds E and G with the 256-px defaults unless told otherwise."""
    _, model = make_checkpoint(tmp_path)
    state = {f"{name}.{k}": v for name, net in model.networks() for k, v in net.state_dict().items()}
    path = tmp_path / "latest_checkpoint.pth"
    torch.save(state, path)
    arch = dict(netE_num_downsampling_sp=2, netE_num_downsampling_gl=1, netE_scale_capacity=0.125,
                global_code_ch=16, spatial_code_ch=4, netG_scale_capacity=0.03125,
                netG_num_base_resnet_layers=1, load_size=32)
    swapper = load_translator(str(path), device="cpu", **arch)
    assert torch.equal(swapper.G.ToRGB.bias, model.netG.ToRGB.bias)
    with pytest.raises(UserError, match="does not fit"):
        load_translator(str(path), device="cpu")


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_kill_after_a_save_then_resume_is_bit_identical(tmp_path, monkeypatch):
    """SIGKILL right after the first resumable save (taken after an odd number of steps, so the
    next one is a G step) and --continue_train: the same weights and losses as a run never
    interrupted, the D/G alternation and the R1 schedule (every 2nd D step) included."""
    from test_resume import checked, losses_by_iteration, run_train
    # one OpenMP thread: on a shared 2-core machine spin-waiting triples the CPU time
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = folder(tmp_path, count=8, size=36)
    # 4 steps (D, G, D + R1, G); the save after 6 images stands after step 3
    common = (f"--model swap_ae --dataroot {root} --checkpoints_dir {tmp_path}/ck {TINY} "
              "--batch_size 2 --n_epochs 1 --seed 4 --print_freq 2 --save_latest_freq 6 "
              "--R1_once_every 2 --num_threads 0")
    ref = checked(run_train(f"{common} --name ref", tmp_path))
    first = run_train(f"{common} --name cut", tmp_path, fault="kill_after_save:1")
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    state = torch.load(tmp_path / "ck" / "cut" / "latest_state.pth", weights_only=False)
    assert (state["swap_ae"]["steps"], state["swap_ae"]["d_steps"]) == (3, 2)
    second = checked(run_train(f"{common} --name cut --continue_train", tmp_path))
    assert "resuming from" in second.stdout and ref.returncode == 0
    for net in ("E", "G", "D", "Dpatch"):
        a = torch.load(tmp_path / "ck" / "ref" / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(tmp_path / "ck" / "cut" / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), f"net{net} differs"
    assert losses_by_iteration(tmp_path / "ck" / "cut") == losses_by_iteration(tmp_path / "ck" / "ref")
    saved = json.loads((tmp_path / "ck" / "ref" / "train_opt.json").read_text())
    assert saved["model"] == "swap_ae" and saved["patch_use_aggregation"] is False


@pytest.mark.slow
def test_torchrun_two_processes_with_lazy_r1(tmp_path):
    """Two CPU processes (gloo), R1 every 2nd D step: the R1 update, whose last biases get no
    gradient from the penalty itself, must still reduce every parameter (the 0 x logits terms),
    and both ranks must end with the same weights, those saved."""
    from test_distributed import assert_ranks_agree, checked, torchrun
    root = folder(tmp_path, count=8, size=36)
    out = tmp_path / "out"
    checked(torchrun(f"--model swap_ae --dataroot {root} {TINY} --batch_size 2 --n_epochs 2 "
                     f"--R1_once_every 2 --seed 1 --print_freq 2 --checkpoints_dir {tmp_path}/ck "
                     "--name d", out))
    final = assert_ranks_agree(out)
    log = [json.loads(line) for line in (tmp_path / "ck" / "d" / "loss_log.jsonl").read_text().splitlines()]
    assert any(r["losses"]["D_R1"] > 0 for r in log)  # an R1 step ran (D step 2 of each rank)
    for name, weights in final.items():
        saved = torch.load(tmp_path / "ck" / "d" / f"latest_net_{name}.pth", weights_only=True)
        assert all(torch.equal(saved[k], weights[k]) for k in saved)


# ---------------------------------------------------------------- the toy

def test_toy_scores_separate_the_trivial_answers_from_a_swap(tmp_path):
    """On generated pairs: the ideal swap (structure source's shapes, texture source's texture)
    scores 100 % everywhere; output = structure keeps the structure and adopts nothing; output
    = texture adopts everything and keeps no structure; neither is a swap."""
    from datasets.make_swap_toy import PALETTES, make_dataset, render
    from metrics.swap_toy_scores import score_swap, summarize
    data = make_dataset(str(tmp_path / "toy"), n_train=2, n_pairs=12, size=64, seed=3)
    with open(os.path.join(data, "test", "pairs.json")) as f:
        pairs = json.load(f)["pairs"]

    def load(rel, mask=False):
        a = np.asarray(Image.open(os.path.join(data, "test", rel)).convert("RGB"))
        return a[..., 0] > 127 if mask else a

    rows = {"ideal": [], "structure": [], "texture": []}
    for p in pairs:
        S, T = load(p["structure"]), load(p["texture"])
        args = (S, T, load(p["structure_mask"], True), load(p["texture_mask"], True),
                PALETTES[p["structure_texture"]["palette"]], PALETTES[p["texture_texture"]["palette"]])
        ideal = render(p["structure_shapes"], p["texture_texture"], 64)
        for name, out in (("ideal", ideal), ("structure", S), ("texture", T)):
            rows[name].append(score_swap(out, *args))
    ideal, structure, texture = (summarize(rows[k]) for k in ("ideal", "structure", "texture"))
    assert ideal["iou_structure"] > 0.97 and ideal["swap"] == 100.0
    assert (structure["structure_kept"], structure["palette_adopted"], structure["pattern_adopted"],
            structure["swap"]) == (100.0, 0.0, 0.0, 0.0)
    assert (texture["structure_kept"], texture["palette_adopted"], texture["pattern_adopted"],
            texture["swap"]) == (0.0, 100.0, 100.0, 0.0)
    assert texture["iou_structure"] < 0.5


def test_toy_script_rows_table_and_grid(tmp_path):
    """scripts/toy_swap.py's scoring, table and grid on a few generated pairs, with a tiny
    untrained swapper standing in for the trained model (the training itself is train.py's)."""
    import importlib.util
    import sys
    from conftest import ROOT
    from datasets.make_swap_toy import make_dataset
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    spec = importlib.util.spec_from_file_location("toy_swap", os.path.join(ROOT, "scripts", "toy_swap.py"))
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    data = make_dataset(str(tmp_path / "toy"), n_train=2, n_pairs=8, size=64, seed=1)
    pairs = toy.load_pairs(os.path.join(data, "test"))
    swapper = tiny_swapper()
    rows = toy.score_rows(pairs, swapper, swapper)
    assert list(rows) == ["output = structure image", "output = texture image", "ideal swap (ground truth)",
                          "untrained model: swap", "trained: reconstruction", "trained: swap"]
    assert rows["ideal swap (ground truth)"]["swap"] == 100.0 and rows["output = structure image"]["swap"] == 0.0
    record = {"steps": 4, "batch_size": 4, "cpu_seconds": 60.0, "wall_seconds": 90.0, "threads": 1}
    table = toy.format_table(rows, record, dict(n_pairs=8, batch_size=4, n_train=2), "a CPU")
    assert "| ideal swap (ground truth) | 1.00 | 100 % | 100 % | 100 % | 100 % |" in table
    grid = toy.make_grid(pairs, swapper, str(tmp_path / "grid.png"))
    assert Image.open(grid).size == (5 * 64, 5 * 64)
    # the run's length is the only setting a continued run may change
    args = toy.parse_args(["--quick", "--out", str(tmp_path)])
    argv = toy.train_args(args, "data", "ck")
    assert toy.setting(argv) == toy.setting(toy.train_args(toy.parse_args(["--quick", "--steps", "40"]), "data", "ck"))
    assert argv[argv.index("--n_epochs") + 1] == "1"
