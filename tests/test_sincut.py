"""SinCUT: StyleGAN2-based networks, R1, PatchNCE with minibatch negatives, the single-image data
set, options, and training/testing on the Monet/Etretat pair.

Reference numbers (parameter counts, channel tables, feature shapes, option defaults) are those
the original code has.
"""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import models.networks as N
import test as test_cli
import train as train_cli
from data import create_dataset
from models import create_model
from models.losses import r1_penalty
from models.networks.stylegan import (Blur, ModulatedConv2d, StyleGAN2Discriminator,
                                      StyleGAN2Generator, discriminator_channels,
                                      generator_channels, make_blur_kernel, stylegan_resolution)
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

from conftest import ROOT

PAIR = os.environ.get("CUT_SINGLE_IMAGE_PAIR",
                      os.path.join(os.path.dirname(ROOT), "shared", "data", "single_image_monet_etretat"))
needs_pair = pytest.mark.skipif(not os.path.isdir(PAIR), reason=f"public image pair not found at {PAIR}")

FD_STEP = 1e-6
FD_TOL = 1e-6


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def fd_error(f, x0, seed=0):
    """Relative error between autograd's directional derivative of scalar f at x0 and a central
    finite difference along a random direction (float64)."""
    direction = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    x = x0.clone().requires_grad_(True)
    grad, = torch.autograd.grad(f(x), x)
    exact = float((grad * direction).sum())
    with torch.no_grad():
        fd = float(f(x0 + FD_STEP * direction) - f(x0 - FD_STEP * direction)) / (2 * FD_STEP)
    assert abs(fd) > 1e-6, "the derivative is ~0: the check would prove nothing"
    return abs(exact - fd) / abs(fd)


def param_fd_error(net, loss_of_net, seed=0):
    """As fd_error, for a function of all of `net`'s parameters (moved along one random direction)."""
    params = list(net.parameters())
    g = torch.Generator().manual_seed(seed)
    directions = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    grads = torch.autograd.grad(loss_of_net(), params, allow_unused=True)
    exact = sum(float((gr * d).sum()) for gr, d in zip(grads, directions) if gr is not None)
    values = []
    for sign in (1, -1):  # (the loss may itself need autograd, as R1 does)
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.add_(sign * FD_STEP * d)
        values.append(loss_of_net().item())
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.sub_(sign * FD_STEP * d)
    fd = (values[0] - values[1]) / (2 * FD_STEP)
    assert abs(fd) > 1e-6, "the derivative is ~0: the check would prove nothing"
    return abs(exact - fd) / abs(fd)


# ---------------------------------------------------------------- structure

def test_parameter_counts_match_the_original():
    torch.manual_seed(0)
    G = N.define_G(3, 3, 10, 'stylegan2', resolution=64, num_downsampling=1)
    small = N.define_G(3, 3, 10, 'smallstylegan2', resolution=64, num_downsampling=1)
    D = N.define_D(3, 8, 'stylegan2', resolution=64)
    assert n_params(G) == 3_068_404
    assert n_params(small) == 1_223_924
    assert n_params(D) == 5_885_473
    F_ = N.define_F('mlp_sample', netF_nc=256)
    F_.create_mlp([3, 160, 160])
    assert n_params(F_) == 280_832
    assert n_params(N.define_D(3, 8, 'tilestylegan2', resolution=64)) == 5_885_473


def test_channel_tables_and_resolution_key():
    assert generator_channels(10) == {4: 512, 8: 512, 16: 320, 32: 160, 64: 80, 128: 40, 256: 20,
                                      512: 10, 1024: 5}
    d = discriminator_channels(8)
    assert [d[r] for r in (4, 8, 16, 32, 64)] == [384, 256, 128, 64, 32]
    assert stylegan_resolution(1024, 64) == 64
    assert stylegan_resolution(286, 256) == 256
    assert stylegan_resolution(1024, 48) == 64  # log2(48) = 5.58 rounds up


def test_state_dict_keys_and_shapes_load_original_names():
    G = StyleGAN2Generator(10, 6, 64, 1, inject_noise=True)
    sd = G.state_dict()
    # encoder: 0 identity, 1 1x1 conv, 2 downsampling ResBlock, 3..5 plain ResBlocks
    assert len(G.encoder.convs) == 6 and len(G.decoder.convs) == 5
    expected = {
        'encoder.convs.1.0.weight': (80, 3, 1, 1), 'encoder.convs.1.1.bias': (1, 80, 1, 1),
        'encoder.convs.2.conv1.0.weight': (80, 80, 3, 3), 'encoder.convs.2.conv2.0.kernel': (4, 4),
        'encoder.convs.2.conv2.1.weight': (160, 80, 3, 3), 'encoder.convs.2.skip.0.kernel': (4, 4),
        'encoder.convs.2.skip.1.weight': (160, 80, 1, 1), 'encoder.convs.4.conv2.0.weight': (160, 160, 3, 3),
        'decoder.convs.3.conv.weight': (1, 80, 160, 3, 3), 'decoder.convs.3.conv.blur.kernel': (4, 4),
        'decoder.convs.3.noise.weight': (1,), 'decoder.convs.3.activate.bias': (1, 80, 1, 1),
        'decoder.convs.4.0.weight': (3, 80, 1, 1), 'decoder.convs.4.1.bias': (1, 3, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert 'encoder.convs.4.skip.1.weight' not in sd  # plain blocks skip through the identity
    # the blur filters are saved: outer([1,3,3,1]) / 64, and x4 after the zero-stuffing upsample
    taps = torch.tensor([1., 3., 3., 1.])
    torch.testing.assert_close(sd['encoder.convs.2.conv2.0.kernel'], torch.outer(taps, taps) / 64)
    torch.testing.assert_close(sd['decoder.convs.3.conv.blur.kernel'], torch.outer(taps, taps) / 16)
    small = StyleGAN2Generator(10, 2, 64, 1, inject_noise=False).state_dict()
    assert 'decoder.convs.1.noise.weight' in small  # kept although no noise is injected

    D = StyleGAN2Discriminator(8, 64).state_dict()
    assert tuple(D['convs.0.0.weight'].shape) == (32, 3, 1, 1)
    assert tuple(D['convs.4.conv2.1.weight'].shape) == (384, 256, 3, 3)
    assert tuple(D['final_linear.0.weight'].shape) == (384, 384 * 16)
    assert tuple(D['final_linear.1.weight'].shape) == (1, 384)
    assert len([k for k in D if k.startswith('convs.') and k.endswith('conv1.0.weight')]) == 4


def test_feature_and_output_shapes():
    torch.manual_seed(0)
    G = StyleGAN2Generator(10, 6, 64, 1)
    x = torch.randn(2, 3, 64, 64)
    layers = [0, 2, 4]
    feats = G(x, layers, encode_only=True)
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 64, 64), (160, 32, 32), (160, 32, 32)]
    assert torch.equal(feats[0], x)  # layer 0 is the input crop itself
    out, feats2 = G(x, layers)
    assert out.shape == x.shape and layers == [0, 2, 4]
    assert all(torch.equal(a, b) for a, b in zip(feats, feats2))
    last = G(x, [-1], encode_only=True)[0]  # -1: the last encoder layer, as the original
    assert torch.equal(last, G.encoder.convs(x))
    assert G(torch.randn(1, 3, 52, 40)).shape == (1, 3, 52, 40)  # fully convolutional
    D = StyleGAN2Discriminator(8, 64)
    assert D(x).shape == (2, 1)
    with pytest.raises(ValueError, match="64x64"):
        D(torch.randn(1, 3, 48, 64))


def test_generator_output_is_not_squashed():
    """the last layer is a 1x1 conv and a biased leaky ReLU x sqrt(2), with no tanh, so the
    image can leave [-1, 1] (a hidden torch.tanh would cap it at 1)."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(10, 2, 16, 1)
    act = G.decoder.convs[-1][-1]
    act.bias.data.copy_(torch.tensor([0.0, 0.5, -3.0]).view(1, 3, 1, 1))
    x = torch.tensor([-1.0, 2.0, 1.0]).view(1, 3, 1, 1)
    expected = torch.tensor([-0.2, 2.5, -0.4]).view(1, 3, 1, 1) * math.sqrt(2)
    torch.testing.assert_close(act(x), expected)
    act.bias.data.fill_(3.0)
    with torch.no_grad():
        out = G(torch.randn(1, 3, 16, 16))
    assert out.min() > 3  # = sqrt(2) * (3 + conv output), conv output small at initialisation


# ---------------------------------------------------------------- blocks

def test_blur_and_upsampling_impulse_responses():
    """Hand-derived FIR placements: the [1,3,3,1] filter (sum 1) lands where upfirdn2d puts it, so
    a swapped pad split or a wrong gain shows.  Blur pads (p0, p1) and runs a 4-tap filter: an
    impulse at row 3 of 8 becomes [1,3,3,1]/8 on rows 3 + p0 - 3 .. 3 + p0 (length 8 + p0 + p1 - 3)."""
    taps = torch.tensor([1., 3., 3., 1.]) / 8
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1
    for pad in ((2, 1), (1, 2), (1, 1)):
        out = Blur(pad=pad)(x)[0, 0]
        size = 8 + sum(pad) - 3
        expected = torch.zeros(size, size)
        lo = 3 + pad[0] - 3
        expected[lo:lo + 4, lo:lo + 4] = torch.outer(taps, taps)
        torch.testing.assert_close(out, expected)
    # a constant image stays constant away from the zero padding
    flat = Blur(pad=(2, 1))(torch.full((1, 2, 12, 12), 0.7))
    torch.testing.assert_close(flat[..., 2:-2, 2:-2], torch.full((1, 2, 8, 8), 0.7))

    # upsampling: a 3x3 kernel with only its centre set makes the transposed conv put input pixel
    # i at 2i + 1; the blur (pads 1, 1, gain 4) then spreads it over 2i + 1 - 2 .. 2i + 1 + 1
    conv = ModulatedConv2d(1, 1, 3, upsample=True)
    conv.weight.data.zero_()
    conv.weight.data[0, 0, 0, 1, 1] = 1.0
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    out = conv(x)[0, 0]
    assert out.shape == (10, 10)
    expected = torch.zeros(10, 10)
    expected[3:7, 3:7] = torch.outer(taps, taps) * 4
    torch.testing.assert_close(out, expected)


def test_grid_patch_follows_the_original_cell_order(tmp_path):
    """Cell c of a cols x rows grid is column c // rows, row c % rows, offset by numpy draws."""
    from data.base_dataset import get_transform
    w, h, size = 100, 70, 16  # 6 columns x 4 rows, 4 and 6 pixels left over
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(w)[None, :]
    pixels[..., 1] = np.arange(h)[:, None]
    img = Image.fromarray(pixels)
    opt = TrainOptions(f"--model sincut --dataroot {tiny_pair(tmp_path / 'p')} --crop_size 16 "
                       f"--checkpoints_dir {tmp_path} --no_flip").parse()
    for index in (0, 5, 9, 23, 30):
        np.random.seed(index)
        start_x, start_y = np.random.randint(w - 6 * size + 1), np.random.randint(h - 4 * size + 1)
        cell = index % 24
        x0, y0 = start_x + (cell // 4) * size, start_y + (cell % 4) * size
        np.random.seed(index)
        crop = get_transform(opt, params={'scale_factor': (1.0, 1.0), 'patch_index': index,
                                          'flip': False}, method=Image.BILINEAR)(img)
        values = ((crop + 1) / 2 * 255).round().long()
        assert (int(values[0, 0, 0]), int(values[1, 0, 0])) == (x0, y0), index


def test_modulated_conv_equals_the_per_image_grouped_formulation():
    """Our single shared demodulated weight must equal the original's per-image grouped conv with a
    style of ones (written out here from its definition), for both the plain and upsampling paths."""
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(4, 5, 3, upsample=upsample).double()
        x = torch.randn(3, 4, 6, 7, dtype=torch.float64)
        batch = x.shape[0]
        w = conv.scale * conv.weight * torch.ones(batch, 1, 4, 1, 1, dtype=torch.float64)
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, 5, 1, 1, 1)
        if upsample:
            wt = w.transpose(1, 2).reshape(batch * 4, 5, 3, 3)
            ref = F.conv_transpose2d(x.view(1, batch * 4, 6, 7), wt, stride=2, groups=batch)
            ref = conv.blur(ref.view(batch, 5, *ref.shape[-2:]))
        else:
            ref = F.conv2d(x.view(1, batch * 4, 6, 7), w.view(batch * 5, 4, 3, 3), padding=1,
                           groups=batch).view(batch, 5, 6, 7)
        torch.testing.assert_close(conv(x), ref, rtol=1e-12, atol=1e-12)
    # demodulation: every output filter of the effective weight has unit norm
    w = conv.weight[0] * conv.scale
    w = w * torch.rsqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
    torch.testing.assert_close(w.pow(2).sum((1, 2, 3)), torch.ones(5, dtype=torch.float64))


def test_noise_is_drawn_per_call_and_scaled_by_its_weight():
    torch.manual_seed(0)
    G = StyleGAN2Generator(4, 2, 16, 1, inject_noise=True).double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(G(x), G(x), rtol=0, atol=0)  # weight 0: deterministic
    G.decoder.convs[1].noise.weight.data.fill_(0.5)
    assert not torch.equal(G(x), G(x))
    torch.manual_seed(3)
    a = G(x)
    torch.manual_seed(3)
    torch.testing.assert_close(G(x), a, rtol=0, atol=0)  # the noise comes from torch's RNG


def test_networks_gradients_match_finite_differences():
    """float64 central differences through G (noise on, same noise for each evaluation) and D,
    with respect to the input and to all parameters."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(1, 2, 16, 1, inject_noise=True).double()
    for m in G.modules():  # non-zero learned biases and noise weights, as after training
        if hasattr(m, 'bias') and isinstance(m.bias, nn.Parameter):
            m.bias.data.normal_(0, 0.3)
    G.decoder.convs[1].noise.weight.data.fill_(0.3)
    D = StyleGAN2Discriminator(1, 16).double()
    for m in D.modules():
        if hasattr(m, 'bias') and isinstance(m.bias, nn.Parameter):
            m.bias.data.normal_(0, 0.3)
    x0 = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    probe = torch.randn(2, 3, 16, 16, dtype=torch.float64)

    def g_loss(x):
        torch.manual_seed(7)  # the same noise maps on every call
        return (G(x) * probe).sum()

    def d_loss(x):
        return (D(x) ** 2).sum()

    assert fd_error(g_loss, x0) < FD_TOL
    assert fd_error(d_loss, x0) < FD_TOL
    assert param_fd_error(G, lambda: g_loss(x0)) < FD_TOL
    assert param_fd_error(D, lambda: d_loss(x0)) < FD_TOL


# ---------------------------------------------------------------- R1

class QuadraticD(nn.Module):
    """D(x_b) = (a . x_b)^2 per image, so grad_x D(x_b) = 2 (a . x_b) a."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x):
        return (x.flatten(1) @ self.a.flatten()).pow(2).unsqueeze(1)


def test_r1_value_by_hand():
    a = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]], dtype=torch.float64)  # 1 x 1 x 2 x 2
    x = torch.tensor([[[[1.0, 1.0], [2.0, 3.0]]], [[[0.0, 1.0], [-1.0, 4.0]]]], dtype=torch.float64)
    x.requires_grad_()
    # a.x = 1 - 2 + 1 + 0 = 0 for image 0, and 0 - 2 - 0.5 + 0 = -2.5 for image 1; |a|^2 = 5.25
    # |grad|^2 = 4 (a.x)^2 |a|^2 = 0 and 4 * 6.25 * 5.25 = 131.25; mean 65.625; x lambda/2 = 1.5
    D = QuadraticD(a.clone())
    assert r1_penalty(D(x), x, weight=3.0).item() == pytest.approx(1.5 * 65.625, rel=1e-12)


def test_r1_gradient_into_D_matches_finite_differences():
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(1, 16).double()
    for m in D.modules():
        if hasattr(m, 'bias') and isinstance(m.bias, nn.Parameter):
            m.bias.data.normal_(0, 0.3)
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)

    def penalty():
        real = x.clone().requires_grad_(True)
        return r1_penalty(D(real), real, weight=1.0)

    assert penalty().item() > 0
    assert param_fd_error(D, penalty) < FD_TOL


# ---------------------------------------------------------------- the model

def tiny_pair(root, size_a=(40, 36), size_b=(44, 32)):
    for sub, size, seed in (("trainA", size_a, 0), ("trainB", size_b, 1)):
        os.makedirs(root / sub, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / sub / f"{sub}.png")
    return root


TINY = "--ngf 2 --ndf 2 --netF_nc 8 --crop_size 16 --gpu_ids -1 --num_threads 0"


def test_options_follow_the_original_presets(tmp_path):
    root = tiny_pair(tmp_path / "pair")
    opt = TrainOptions(f"--model sincut --dataroot {root} --checkpoints_dir {tmp_path}").parse()
    expected = dict(nce_includes_all_negatives_from_minibatch=True, dataset_mode="singleimage",
                    netG="stylegan2", netD="stylegan2", stylegan2_G_num_downsampling=1,
                    gan_mode="nonsaturating", num_patches=1, nce_layers="0,2,4", lambda_NCE=4.0,
                    ngf=10, ndf=8, lr=0.002, beta1=0.0, beta2=0.99, load_size=1024, crop_size=64,
                    preprocess="zoom_and_patch", batch_size=16, save_epoch_freq=1,
                    save_latest_freq=20000, n_epochs=8, n_epochs_decay=8, nce_idt=True,
                    flip_equivariance=False, lambda_GAN=1.0, pool_size=0, lambda_R1=1.0,
                    lambda_identity=1.0)
    assert {k: getattr(opt, k) for k in expected} == expected
    test_opt = TestOptions(f"--model sincut --dataroot {root} --checkpoints_dir {tmp_path}").parse()
    assert (test_opt.preprocess, test_opt.batch_size, test_opt.num_test, test_opt.load_size,
            test_opt.crop_size) == ("none", 1, 1, 1024, 64)
    for bad, message in (("--crop_size 48", "power of 2"), ("--input_nc 1", "RGB"),
                         ("--nce_idt False", "--nce_idt True"), ("--crop_size 2048 --load_size 4096", "4..1024"),
                         ("--stylegan2_G_num_downsampling -1", "0 or more"),
                         ("--eval_freq 1", "single-image"),
                         ("--netG smallstylegan2", "layers 0..3; use e.g. --nce_layers 0,2,3")):
        with pytest.raises(UserError, match=message):
            TrainOptions(f"--model sincut --dataroot {root} --checkpoints_dir {tmp_path} {bad}").parse()


def build_sincut(root, tmp_path, extra=""):
    opt = TrainOptions(f"--model sincut --dataroot {root} --checkpoints_dir {tmp_path / 'ck'} "
                       f"--name s {TINY} --display_id 0 --batch_size 4 {extra}").parse()
    torch.manual_seed(0)
    np.random.seed(0)
    return opt, create_model(opt)


def test_nce_with_minibatch_negatives_matches_finite_differences(tmp_path):
    """The query image is the variable and the keys' source is constant (the keys are detached by
    design, see tests/test_norm_grad_guard.py), so autograd must give the true derivative."""
    _, model = build_sincut(tiny_pair(tmp_path / "pair"), tmp_path)
    g = torch.Generator().manual_seed(0)
    batch = {"A": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,
             "B": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,
             "A_paths": ["a"] * 4, "B_paths": ["b"] * 4}
    model.data_dependent_initialize(batch)
    for net in (model.netG, model.netF):
        net.double()
    src = torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    x0 = torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    ids = [torch.tensor([37]), torch.tensor([5]), torch.tensor([60])]  # one location per layer

    def nce(x):
        return model.calculate_NCE_loss(src, x, patch_ids=ids)

    assert fd_error(nce, x0) < FD_TOL

    # Negatives are the other crops at the same location: per layer, row b of the logits is
    # [q_b.k_b, q_b.k_1, ..., q_b.k_4] / T with -10 for k_b (naive loop of test_losses).
    from test_losses import naive_patchnce
    with torch.no_grad():
        feat_q = model.netG(x0, model.nce_layers, encode_only=True)
        feat_k = model.netG(src, model.nce_layers, encode_only=True)
        q_pool, _ = model.netF(feat_q, 1, ids)
        k_pool, _ = model.netF(feat_k, 1, ids)
        expected = sum(naive_patchnce(q, k, 4, 0.07, all_negatives=True).mean() * 4.0
                       for q, k in zip(q_pool, k_pool)) / 3
        per_image = sum(naive_patchnce(q, k, 4, 0.07, all_negatives=False).mean() * 4.0
                        for q, k in zip(q_pool, k_pool)) / 3
        got = nce(x0)
    assert float(got) == pytest.approx(float(expected), rel=1e-9)
    assert abs(float(per_image) - float(expected)) > 1  # the grouping matters here


def test_two_iterations_on_the_monet_etretat_crops_update_every_network(tmp_path):
    if not os.path.isdir(PAIR):
        pytest.skip(f"public image pair not found at {PAIR}")
    opt, model = build_sincut(PAIR, tmp_path, "--ngf 4 --ndf 4 --crop_size 32 --max_dataset_size 8 --seed 0")
    dataset = create_dataset(opt)
    batches = list(dataset)
    assert len(batches) == 2 and batches[0]["A"].shape == (4, 3, 32, 32)
    model.data_dependent_initialize(batches[0])
    model.setup(opt)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in model.networks()}
    for data in batches:
        model.set_input(data)
        losses = model.optimize_parameters()
    assert list(losses) == ["G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y", "D_R1", "idt"]
    assert all(math.isfinite(v) for v in losses.values()) and losses["D_R1"] > 0
    assert model.loss_D.item() == pytest.approx(0.5 * (losses["D_fake"] + losses["D_real"])
                                                + losses["D_R1"], rel=1e-5)
    # the logged G includes the identity loss
    assert losses["G"] == pytest.approx(losses["G_GAN"] + 0.5 * (losses["NCE"] + losses["NCE_Y"])
                                        + losses["idt"], rel=1e-5)
    for name, net in model.networks():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters())]
        assert all(changed), f"net{name}: {changed.count(False)} tensors unchanged"


# ---------------------------------------------------------------- the data set

def test_single_image_dataset_crops_zoom_and_errors(tmp_path):
    root = tiny_pair(tmp_path / "pair", size_a=(120, 90))
    opt, _ = build_sincut(root, tmp_path, "--no_flip --seed 0")
    opt.isTrain = True
    ds = create_dataset(opt).dataset
    assert len(ds) == 100_000
    assert ds.zoom_levels_A.shape == (100_000 + 4, 2)  # (length // batch + 1) blocks of 4
    assert ds.zoom_levels_A.min() >= 1 / 3 and ds.zoom_levels_A.max() <= 1
    assert sorted(ds.patch_indices_A) == list(range(100_000)) and ds.patch_indices_A[:5] != list(range(5))
    item = ds[7]
    assert item["A"].shape == (3, 16, 16) and item["B"].shape == (3, 16, 16)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    # per-batch zoom: a block of batch_size consecutive indices shares one factor
    assert np.array_equal(ds.zoom_levels_A[4], ds.zoom_levels_A[7])
    assert not np.array_equal(ds.zoom_levels_A[3], ds.zoom_levels_A[4])

    (root / "trainB" / "second.png").write_bytes((root / "trainB" / "trainB.png").read_bytes())
    with pytest.raises(UserError, match="exactly one image"):
        create_dataset(opt)
    with pytest.raises(UserError, match="trainA.* is missing"):
        opt.dataroot = str(tmp_path)
        create_dataset(opt)


def test_serial_batches_give_one_zoom_per_batch(tmp_path):
    """With --serial_batches a batch is one block of the zoom table (the intended behaviour); by
    default the loader shuffles, so a batch mixes blocks (the original's effective behaviour)."""
    root = tiny_pair(tmp_path / "pair")
    for serial, expect_shared in ((True, True), (False, False)):
        opt, _ = build_sincut(root, tmp_path, "--seed 1 --max_dataset_size 64" +
                              (" --serial_batches" if serial else ""))
        loader = create_dataset(opt)
        indices = list(loader.dataloader.batch_sampler)[:5]
        ds = loader.dataset
        shared = [len({tuple(ds.zoom_levels_A[i]) for i in batch}) == 1 for batch in indices]
        assert all(shared) if expect_shared else not any(shared)


def test_test_phase_translates_the_whole_image_rounded_to_multiples_of_4(tmp_path):
    """Train one tiny step on a small pair with the CLI, then test.py: the output has the input's
    size rounded to multiples of 4; the real Monet image goes through the same test pipeline."""
    root = tiny_pair(tmp_path / "pair", size_a=(42, 30))
    ck, res = tmp_path / "ck", tmp_path / "res"
    common = f"--model sincut --name s --dataroot {root} --checkpoints_dir {ck} {TINY}"
    assert train_cli.main(f"{common} --display_id 0 --batch_size 2 --max_dataset_size 2 --n_epochs 1 "
                          "--n_epochs_decay 0 --seed 0".split()) == 0
    assert test_cli.main(f"{common} --results_dir {res}".split()) == 0
    out = Image.open(res / "s" / "test_latest" / "images" / "fake_B" / "trainA.png")
    # make_power_2 with Python's round: 42 / 4 = 10.5 -> 10 (half to even) -> 40; 30 / 4 = 7.5 -> 8 -> 32
    assert out.size == (40, 32)
    if os.path.isdir(PAIR):
        opt = TestOptions(f"--model sincut --dataroot {PAIR} --checkpoints_dir {ck} --gpu_ids -1 "
                          "--num_threads 0").parse()
        opt.no_flip = True
        item = create_dataset(opt).dataset[0]
        assert item["A"].shape == (3, 968, 1200)  # monet.jpg is 1200x966


def test_sigterm_mid_epoch_then_continue_train_is_bit_identical(tmp_path):
    """Exact resume holds for SinCUT too (its data set draws zoom tables, patch offsets and flips
    from three RNGs; R1 and the noise add nothing to restore)."""
    from test_resume import assert_same_weights, checked, losses_by_iteration, run_train

    root = tiny_pair(tmp_path / "pair")
    common = (f"--model sincut --dataroot {root} --checkpoints_dir {tmp_path}/ck {TINY} "
              "--display_id 0 --batch_size 2 --max_dataset_size 6 --n_epochs 1 --n_epochs_decay 1 "
              "--seed 2 --print_freq 1 --stylegan2_G_num_downsampling 1")
    ref = checked(run_train(f"{common} --name ref", tmp_path))
    first = run_train(f"{common} --name cut", tmp_path, fault="signal_at:TERM:2")
    assert first.returncode == 143, first.stdout[-2000:] + first.stderr[-2000:]
    second = checked(run_train(f"{common} --name cut --continue_train", tmp_path))
    assert "resuming from" in second.stdout and ref.returncode == 0
    assert_same_weights(tmp_path / "ck" / "ref", tmp_path / "ck" / "cut")
    assert losses_by_iteration(tmp_path / "ck" / "cut") == losses_by_iteration(tmp_path / "ck" / "ref")


def test_smallstylegan2_trains_with_its_own_layers(tmp_path):
    _, model = build_sincut(tiny_pair(tmp_path / "pair"), tmp_path, "--netG smallstylegan2 --nce_layers 0,2,3")
    g = torch.Generator().manual_seed(0)
    batch = {"A": torch.rand(4, 3, 16, 16, generator=g), "B": torch.rand(4, 3, 16, 16, generator=g),
             "A_paths": ["a"] * 4, "B_paths": ["b"] * 4}
    model.data_dependent_initialize(batch)
    assert model.netF.num_heads == 3
    model.set_input(batch)
    assert all(math.isfinite(v) for v in model.optimize_parameters().values())


def test_script_explains_a_missing_folder(tmp_path):
    import subprocess
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "sincut.sh"), "train",
                           str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "nowhere/trainA not found" in lines[0]
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "sincut.sh"), "fit"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "train or test" in proc.stderr
