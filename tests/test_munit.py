"""MUNIT: the authors' parameter counts, layers (LayerNorm, AdaIN, the MLP's slicing), losses
(closed forms and float64 finite differences), the preset, the per-iteration LR schedule,
training steps, the NaN guard, option errors, and exact resume of train.py."""
import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import ROOT, make_unaligned
from models import MODELS, create_model
from models.losses.munit import (multiscale_discriminator_loss, multiscale_generator_loss,
                                 recon_loss)
from models.losses.perceptual import (CAFFE_BGR_MEAN, CaffeVGG16, caffe_preprocess,
                                      domain_invariant_perceptual_loss)
from models.munit_model import MUNITModel
from models.networks.munit import AdaINGen, AdaptiveInstanceNorm2d, LayerNorm, MsImageDis
from models.schedulers import get_scheduler
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import NonFiniteLossError, UserError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("--model munit --gpu_ids -1 --ngf 4 --ndf 4 --munit_mlp_dim 8 --munit_style_dim 3 "
        "--munit_n_res 1 --munit_dis_layers 2 --munit_num_scales 2")
SIZE = 16  # the style encoder's 4 stride-2 convolutions need 16 pixels


def build(tmp_path, extra="", train=True, seed=0):
    root = tmp_path / "root"
    for sub in ("trainA", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = TrainOptions if train else TestOptions
    opt = options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name m {TINY} {extra}").parse()
    torch.manual_seed(seed)
    return opt, create_model(opt)


def batch(n=1, size=SIZE, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "A_paths": [f"a{i}.png" for i in range(n)], "B_paths": [f"b{i}.png" for i in range(n)]}


def snapshot(model):
    return {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in model.networks()}


def changed_networks(model, before):
    return {name for name, net in model.networks()
            if any(not torch.equal(v, before[name][k]) for k, v in net.state_dict().items())}


def count(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- networks

def test_parameter_counts_are_the_authors():
    """Counted by instantiating NVlabs/MUNIT's AdaINGen and MsImageDis with the configs' values."""
    with torch.device("meta"):
        gen, dis = AdaINGen(3), MsImageDis(3)
    assert count(gen) == 15_026_187
    assert [count(gen.enc_style), count(gen.enc_content), count(gen.dec), count(gen.mlp)] == \
        [2_764_936, 5_385_856, 5_754_627, 1_120_768]
    assert count(dis) == 8_271_171 and count(dis.cnns[0]) == 2_757_057
    assert 2 * count(gen) + 2 * count(dis) == 46_594_716
    # the style encoder keeps 4 downsamplings whatever n_downsample says, as the authors'
    with torch.device("meta"):
        assert count(AdaINGen(3, n_downsample=3).enc_style) == count(gen.enc_style)


def test_shapes_and_key_layout():
    gen, dis = AdaINGen(3, dim=4, style_dim=3, n_res=1, mlp_dim=8), MsImageDis(3, 4, 2, 2)
    x = torch.rand(2, 3, 32, 24) * 2 - 1
    content, style = gen(x, mode="encode")
    assert content.shape == (2, 16, 8, 6) and style.shape == (2, 3)
    out = gen(content, style, mode="decode")
    assert out.shape == x.shape and out.abs().max() <= 1
    assert [o.shape[-2:] for o in dis(x)] == [(8, 6), (4, 3)]
    keys = gen.state_dict().keys()
    # the authors' names: their gen_*.pt state dicts load into ours unchanged
    for key in ("enc_style.model.6.weight", "enc_content.model.3.model.0.model.0.conv.weight",
                "dec.model.0.model.0.model.0.norm.running_mean", "dec.model.2.norm.gamma",
                "dec.model.5.conv.bias", "mlp.model.2.fc.weight"):
        assert key in keys, key
    assert "cnns.1.2.weight" in dis.state_dict()


@torch.no_grad()
def test_initialisation_kaiming_then_gaussian_discriminators(tmp_path):
    opt, model = build(tmp_path, "--ngf 16 --ndf 16 --munit_n_res 2")
    conv = model.netG_A.enc_content.model[2].conv  # 32 -> 64 channels, 4x4: fan_in 512
    assert float(conv.weight.std()) == pytest.approx(math.sqrt(2 / 512), rel=0.1)
    assert float(conv.bias.abs().max()) == 0.0
    d_weights = torch.cat([p.flatten() for n, p in model.netD_A.named_parameters() if n.endswith("weight")])
    assert float(d_weights.std()) == pytest.approx(0.02, rel=0.1)
    gammas = torch.cat([m.gamma for m in model.netG_B.modules() if isinstance(m, LayerNorm)])
    assert 0 <= float(gammas.min()) and float(gammas.max()) < 1 and float(gammas.std()) > 0.1


# ---------------------------------------------------------------- layers

def test_layer_norm_uses_the_unbiased_std_with_eps_on_the_std():
    norm = LayerNorm(3).double()
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([0.5, 1.0, 2.0]))
        norm.beta.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    flat = x.view(2, -1).numpy()
    mean = flat.mean(1).reshape(2, 1, 1, 1)
    std = flat.std(1, ddof=1).reshape(2, 1, 1, 1)  # n - 1
    expected = (x.numpy() - mean) / (std + 1e-5) * np.array([0.5, 1, 2]).reshape(1, 3, 1, 1) \
        + np.array([0, 1, -1]).reshape(1, 3, 1, 1)
    assert np.allclose(norm(x).detach().numpy(), expected, rtol=0, atol=1e-12)
    # each sample on its own: a batch of one equals its row of the batch of two
    assert torch.allclose(norm(x[1:]), norm(x)[1:], rtol=0, atol=1e-12)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(norm, (x,))


def test_adain_is_instance_norm_with_assigned_scale_and_shift():
    norm = AdaptiveInstanceNorm2d(3)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)

    def adain(x, weight, bias):
        norm.weight, norm.bias = weight, bias
        return norm(x)
    # the authors' form: batch norm in training mode on a (1, B*C, H, W) view (biased variance)
    expected = F.batch_norm(x.reshape(1, 6, 4, 5), None, None, weight, bias, True, 0.1, 1e-5)
    assert torch.allclose(adain(x, weight, bias), expected.view(2, 3, 4, 5), rtol=0, atol=1e-10)
    assert torch.autograd.gradcheck(adain, (x, weight, bias))
    norm.weight = norm.bias = None
    with pytest.raises(RuntimeError, match="needs its weight and bias"):
        norm(x)


def test_mlp_output_is_sliced_bias_first_then_weight_per_adain_layer():
    gen = AdaINGen(3, dim=2, style_dim=3, n_res=2, mlp_dim=4).double()
    layers = [m for m in gen.dec.modules() if isinstance(m, AdaptiveInstanceNorm2d)]
    channels = layers[0].num_features
    assert len(layers) == 4 and gen.mlp.model[-1].fc.out_features == 4 * 2 * channels
    params = torch.arange(2 * 4 * 2 * channels, dtype=torch.float64).view(2, -1)  # batch of 2
    gen.mlp.forward = lambda style: params
    seen = []
    for layer in layers:
        layer.register_forward_pre_hook(lambda m, _: seen.append((m.bias.clone(), m.weight.clone())))
    gen(torch.zeros(2, channels, 4, 4, dtype=torch.float64), torch.zeros(2, 3), mode="decode")
    for k, (bias, weight) in enumerate(seen):
        start = 2 * channels * k
        assert torch.equal(bias, params[:, start:start + channels].reshape(-1))
        assert torch.equal(weight, params[:, start + channels:start + 2 * channels].reshape(-1))
    assert all(layer.weight is None for layer in layers)  # cleared after the call


# ---------------------------------------------------------------- losses

def test_multiscale_gan_losses_by_hand():
    fake = [torch.tensor([[0.5]]), torch.tensor([[1.0, 3.0]])]
    real = [torch.tensor([[2.0]]), torch.tensor([[0.0, 1.0]])]
    # D: (0.25 + 1) + ((1 + 9) / 2 + (1 + 0) / 2) ; G: 0.25 + (0 + 4) / 2
    assert float(multiscale_discriminator_loss(fake, real)) == pytest.approx(6.75)
    assert float(multiscale_generator_loss(fake)) == pytest.approx(2.25)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731  BCE with logits
    expected = softplus(0.5) + softplus(-2.0) + (softplus(1) + softplus(3)) / 2 \
        + (softplus(0) + softplus(-1)) / 2
    assert float(multiscale_discriminator_loss(fake, real, "vanilla")) == pytest.approx(expected)
    assert float(recon_loss(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0]))) == pytest.approx(1.75)


FD_STEP, FD_TOL = 1e-7, 1e-5


def assert_gradient_matches(loss_fn, tensors, step=FD_STEP, tol=FD_TOL, seed=0):
    """autograd vs a float64 central difference along a random direction scaled per tensor.
    Many ReLU and L1 kinks: a step of 1e-7 rarely crosses one; a wrong gradient is off by
    percents, far above the 1e-5 tolerance."""
    g = torch.Generator().manual_seed(seed)
    directions = [torch.randn(t.shape, generator=g, dtype=t.dtype) * max(float(t.detach().abs().mean()), 1e-3)
                  for t in tensors]
    grads = torch.autograd.grad(loss_fn(), tensors, allow_unused=True)
    analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, directions) if gr is not None)
    with torch.no_grad():
        for t, d in zip(tensors, directions):
            t.add_(step * d)
        plus = float(loss_fn())
        for t, d in zip(tensors, directions):
            t.sub_(2 * step * d)
        minus = float(loss_fn())
        for t, d in zip(tensors, directions):
            t.add_(step * d)
    numeric = (plus - minus) / (2 * step)
    assert abs(numeric) > 1e-9
    assert abs(analytic - numeric) <= tol * abs(numeric), (analytic, numeric)


@pytest.fixture
def double_model(tmp_path):
    opt, model = build(tmp_path)
    model.set_input(batch())
    for _, net in model.networks():
        net.double()
    model.real_A, model.real_B = model.real_A.double(), model.real_B.double()
    # Fixed style codes: every evaluation of a step's loss draws s_a then s_b, and sees the same
    g = torch.Generator().manual_seed(3)
    model.codes = [torch.randn(1, 3, generator=g, dtype=torch.float64) for _ in range(2)]
    draws = itertools.cycle(model.codes)
    model.random_styles = lambda n, generator=None: next(draws)
    return model


def g_params(model):
    return [*model.netG_A.parameters(), *model.netG_B.parameters()]


def test_image_reconstruction_gradient(double_model):
    m = double_model
    x = m.real_A.clone().requires_grad_(True)
    assert_gradient_matches(lambda: recon_loss(m.netG_A(x), x), [*m.netG_A.parameters(), x])


def test_latent_reconstruction_gradients(double_model):
    m, s_b = double_model, double_model.codes[0]

    def latent():
        c_a = m.netG_A(m.real_A, mode="content")
        c_rec, s_rec = m.netG_B(m.netG_B(c_a, s_b, mode="decode"), mode="encode")
        return recon_loss(c_rec, c_a) + recon_loss(s_rec, s_b)
    assert_gradient_matches(latent, g_params(m))


def test_cycle_reconstruction_gradient(double_model):
    m, s_b = double_model, double_model.codes[0]

    def cycle():
        c_a, s_a_prime = m.netG_A(m.real_A, mode="encode")
        c_a_rec = m.netG_B(m.netG_B(c_a, s_b, mode="decode"), mode="content")
        return recon_loss(m.netG_A(c_a_rec, s_a_prime, mode="decode"), m.real_A)
    assert_gradient_matches(cycle, g_params(m))


def test_multiscale_lsgan_gradients(double_model):
    m = double_model
    x = m.real_B.clone().requires_grad_(True)
    fake = (m.real_B * 0.5).clone().requires_grad_(True)
    assert_gradient_matches(lambda: multiscale_discriminator_loss(m.netD_B(fake), m.netD_B(x)),
                            [*m.netD_B.parameters(), x, fake])
    assert_gradient_matches(lambda: multiscale_generator_loss(m.netD_B(fake)), [fake])


def test_whole_objectives_gradients(double_model):
    m = double_model
    m.set_requires_grad([m.netD_A, m.netD_B], False)
    assert_gradient_matches(m.compute_G_loss, g_params(m))
    m.set_requires_grad([m.netD_A, m.netD_B], True)
    assert_gradient_matches(m.compute_D_loss, [*m.netD_A.parameters(), *m.netD_B.parameters()])


def test_generator_objective_combines_the_authors_terms(tmp_path):
    opt, model = build(tmp_path, "--gan_w 2 --recon_x_w 3 --recon_s_w 5 --recon_c_w 7 --recon_x_cyc_w 11")
    model.set_input(batch())
    g = torch.Generator().manual_seed(1)
    codes = [torch.randn(1, 3, generator=g) for _ in range(2)]
    model.random_styles = lambda n, generator=None: codes.pop(0)
    s_a, s_b = codes
    with torch.no_grad():
        total = float(model.compute_G_loss())
        # independently: the style of x_ba is compared with the random code s_a, x_aba decodes
        # the content of x_ab with the input's own style
        c_a, s_a_prime = model.netG_A(model.real_A, mode="encode")
        c_b = model.netG_B(model.real_B, mode="content")
        x_ba = model.netG_A(c_b, s_a, mode="decode")
        x_ab = model.netG_B(c_a, s_b, mode="decode")
        assert float(model.loss_recon_s_A) == pytest.approx(float((model.netG_A(x_ba, mode="style") - s_a).abs().mean()), rel=1e-5)
        x_aba = model.netG_A(model.netG_B(x_ab, mode="content"), s_a_prime, mode="decode")
        assert float(model.loss_cyc_A) == pytest.approx(float((x_aba - model.real_A).abs().mean()), rel=1e-5)
        adv_B = sum(float(((o - 1) ** 2).mean()) for o in model.netD_B(x_ab))
        assert float(model.loss_G_adv_B) == pytest.approx(adv_B, rel=1e-5)
    t = {n: float(getattr(model, "loss_" + n)) for n in model.loss_names}
    expected = (2 * (t["G_adv_A"] + t["G_adv_B"]) + 3 * (t["recon_x_A"] + t["recon_x_B"])
                + 5 * (t["recon_s_A"] + t["recon_s_B"]) + 7 * (t["recon_c_A"] + t["recon_c_B"])
                + 11 * (t["cyc_A"] + t["cyc_B"]))
    assert total == pytest.approx(expected, rel=1e-6)


def test_perceptual_loss_preprocessing_gradient_and_errors(tmp_path, monkeypatch):
    pixel = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # RGB
    assert caffe_preprocess(pixel).flatten().tolist() == pytest.approx(
        [255 - CAFFE_BGR_MEAN[0], 127.5 - CAFFE_BGR_MEAN[1], 0 - CAFFE_BGR_MEAN[2]])
    with torch.device("meta"):  # relu5_3 after 3 poolings (none after conv4_3), as the authors'
        vgg = CaffeVGG16()
        assert vgg(torch.empty(1, 3, 32, 48)).shape == (1, 512, 4, 6)
    assert count(vgg) == 14_714_688  # VGG16's 13 convolutions
    # the loss around any feature network: a small conv stack stands in for VGG16 here
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3)).double()
    x = (torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1
    assert_gradient_matches(lambda: domain_invariant_perceptual_loss(features, x, y),
                            [x, *features.parameters()])
    with torch.no_grad():  # instance-normalised features: a per-channel affine change of the
        # target's features leaves the loss unchanged (the "domain-invariant" part)
        f = lambda t: features(caffe_preprocess(t))  # noqa: E731
        expected = float(((F.instance_norm(f(x)) - F.instance_norm(f(y))) ** 2).mean())
        assert float(domain_invariant_perceptual_loss(features, x, y)) == pytest.approx(expected)

    with pytest.raises(UserError, match=r"--vgg_weights .*nothere.pth: file not found") as info:
        build(tmp_path, f"--vgg_w 1 --vgg_weights {tmp_path}/nothere.pth")
    assert "\n" not in str(info.value)
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv1_1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(UserError, match=r"foreign.pth is not the Caffe VGG16 state dict") as info:
        build(tmp_path, f"--vgg_w 1 --vgg_weights {foreign}")
    assert "\n" not in str(info.value)
    # the model adds vgg_w * (L(x_ba, x_b) + L(x_ab, x_a)) to G's objective
    import models.munit_model
    monkeypatch.setattr(models.munit_model, "load_caffe_vgg16", lambda path, device: features.float())
    _, model = build(tmp_path, f"--vgg_w 2 --vgg_weights {foreign}")
    model.set_input(batch())
    with torch.no_grad():
        total = float(model.compute_G_loss())
        assert float(model.loss_vgg_A) == pytest.approx(
            float(domain_invariant_perceptual_loss(features, model.fake_A, model.real_B)), rel=1e-5)
    t = {n: float(getattr(model, "loss_" + n)) for n in model.loss_names}
    rest = total - 2 * (t["vgg_A"] + t["vgg_B"])
    assert rest == pytest.approx(t["G_adv_A"] + t["G_adv_B"] + t["recon_s_A"] + t["recon_s_B"]
                                 + t["recon_c_A"] + t["recon_c_B"]
                                 + 10 * (t["recon_x_A"] + t["recon_x_B"] + t["cyc_A"] + t["cyc_B"]), rel=1e-5)


# ---------------------------------------------------------------- options and schedule

def test_preset_is_the_authors_config_and_flags_win(tmp_path):
    assert MODELS["munit"] is MUNITModel
    opt, model = build(tmp_path)
    assert (opt.lr, opt.beta1, opt.beta2, opt.weight_decay, opt.batch_size) == (1e-4, 0.5, 0.999, 1e-4, 1)
    assert (opt.lr_policy, opt.lr_decay_iters, opt.lr_gamma) == ("step_iter", 100000, 0.5)
    assert (opt.gan_w, opt.recon_x_w, opt.recon_s_w, opt.recon_c_w, opt.recon_x_cyc_w, opt.vgg_w) == \
        (1, 10, 1, 1, 10, 0)
    assert (opt.preprocess, opt.resize_filter, opt.load_size, opt.crop_size) == \
        ("resize_shortside_and_crop", "bilinear", 256, 256)
    assert (opt.n_epochs, opt.n_epochs_decay, opt.init_type, opt.gan_mode) == (750, 0, "kaiming", "lsgan")
    assert [g["weight_decay"] for o in model.optimizers for g in o.param_groups] == [1e-4, 1e-4]
    assert model.model_names == ["G_A", "G_B", "D_A", "D_B"] and model.style_dim == 3
    opt, _ = build(tmp_path, "--lr 0.5 --recon_x_cyc_w 0 --preprocess resize_and_crop")
    assert (opt.lr, opt.recon_x_cyc_w, opt.preprocess) == (0.5, 0, "resize_and_crop")
    test_opt, test_model = build(tmp_path, train=False)
    assert (test_opt.preprocess, test_opt.load_size) == ("resize_shortside", 256)
    assert test_model.model_names == ["G_A", "G_B"] and not hasattr(test_opt, "recon_x_w")


@pytest.mark.filterwarnings("ignore:Detected call of")  # the authors stepped it first
def test_step_iter_schedule_equals_the_authors_step_lr_stepped_before_each_iteration(tmp_path):
    opt, _ = build(tmp_path, "--lr_decay_iters 3 --lr_gamma 0.5 --lr 1")
    ours = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(ours, opt)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    authors = torch.optim.lr_scheduler.StepLR(theirs, step_size=3, gamma=0.5)
    seen, expected = [], []
    for _ in range(10):
        authors.step()  # the authors' train.py: update_learning_rate() first in every iteration
        expected.append(theirs.param_groups[0]["lr"])
        seen.append(ours.param_groups[0]["lr"])
        theirs.step()
        ours.step()
        scheduler.step()  # BaseModel.step_iteration_schedulers, after the iteration
    assert seen == expected == [1, 1, .5, .5, .5, .25, .25, .25, .125, .125]


def test_epoch_end_leaves_the_per_iteration_schedule_alone(tmp_path):
    opt, model = build(tmp_path, "--lr_decay_iters 2")
    model.setup(opt)
    for optimizer in model.optimizers:
        optimizer.step()  # no gradients: nothing changes (train.py steps before the schedulers)
    model.update_learning_rate()
    assert model.get_current_lr() == 1e-4
    model.step_iteration_schedulers()
    assert model.get_current_lr() == 5e-5


@pytest.mark.parametrize("extra,needle", [
    ("--gan_mode wgangp", r"--model munit supports --gan_mode lsgan .* not wgangp"),
    ("--recon_s_w -1", r"--recon_s_w must be 0 or more"),
    ("--munit_style_dim 0", r"--munit_style_dim must be a positive integer"),
    ("--eval_freq 1", r"--eval_freq scores one generator network, but MUNIT translates with two"),
    ("--dataset_mode single", r"--dataset_mode single has no B images"),
    ("--lr_policy step_iter --lr_decay_iters 0", r"--lr_policy step_iter needs --lr_decay_iters >= 1"),
])
def test_impossible_options_are_one_line_errors(tmp_path, extra, needle):
    with pytest.raises(UserError, match=needle) as info:
        build(tmp_path, extra)
    assert "\n" not in str(info.value)


def test_image_sides_must_be_multiples_of_four(tmp_path):
    _, model = build(tmp_path)
    data = batch(size=18)
    with pytest.raises(UserError, match=r"image a0.png is 18x18 pixels .* multiples of 4"):
        model.set_input(data)
    with pytest.raises(UserError, match="multiples of 4; got 18x18"):
        model.translate_with_styles(data["A"], model.random_styles(1))


def test_resize_shortside_preprocessing_scales_up_or_down_bilinear(tmp_path):
    from data.base_dataset import get_transform
    from conftest import data_opt
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 301, 3), dtype=np.uint8))
    opt = data_opt(tmp_path, preprocess="resize_shortside", load_size=100, resize_filter="bilinear")
    out = get_transform(opt)(image)
    assert out.shape == (3, 100, 152)  # 100 x int(150.5) = 150, then rounded to a multiple of 4
    opt = data_opt(tmp_path, preprocess="resize_shortside", load_size=400, resize_filter="bilinear")
    expected = image.resize((int(400 * 301 / 200), 400), Image.BILINEAR)  # 602 x 400, upscaled
    got = get_transform(opt, convert=False)(image)
    # then to a multiple of 4: 602 / 4 = 150.5 rounds (half to even) to 150
    assert got.size == (600, 400) and np.array_equal(
        np.asarray(got), np.asarray(expected.resize((600, 400), Image.BILINEAR)))


# ---------------------------------------------------------------- training steps

def test_two_iterations_change_all_four_networks_and_freeze_d_in_the_g_step(tmp_path):
    opt, model = build(tmp_path)
    model.data_dependent_initialize(batch())
    model.setup(opt)
    before = snapshot(model)
    for step in range(2):
        model.set_input(batch(seed=step))
        losses = model.optimize_parameters()
        assert list(losses) == model.loss_names and all(math.isfinite(v) for v in losses.values())
    assert changed_networks(model, before) == {"G_A", "G_B", "D_A", "D_B"}
    # D is frozen in the G step: its gradients stay those of its own step
    seen, compute_G_loss = {}, model.compute_G_loss

    def spy():
        seen["D_A"] = [p.grad.clone() for p in model.netD_A.parameters()]
        return compute_G_loss()
    model.compute_G_loss = spy
    model.optimize_parameters()
    assert all(torch.equal(a, p.grad) for a, p in zip(seen["D_A"], model.netD_A.parameters()))
    assert all(p.requires_grad for p in model.netD_A.parameters())  # unfrozen afterwards
    assert list(model.get_current_visuals()) == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]


def test_nan_guard_stops_or_skips_the_generator_step(tmp_path):
    opt, model = build(tmp_path)
    model.setup(opt)
    model.set_input(batch())
    model.opt.recon_x_w = float("nan")
    with pytest.raises(NonFiniteLossError, match="loss G is nan"):
        model.optimize_parameters()
    opt, model = build(tmp_path, "--nan_guard skip")
    model.setup(opt)
    model.set_input(batch())
    model.opt.recon_c_w = float("nan")
    before = snapshot(model)
    model.optimize_parameters()
    assert changed_networks(model, before) == {"D_A", "D_B"} and model.skipped_steps == 1


def test_style_interface(tmp_path):
    _, model = build(tmp_path, train=False)
    g = torch.Generator().manual_seed(5)
    codes = model.random_styles(4, g)
    assert codes.shape == (4, 3) and torch.equal(codes, model.random_styles(4, torch.Generator().manual_seed(5)))
    x = torch.rand(2, 3, 20, 16) * 2 - 1  # the style encoder needs 16 pixels a side
    with torch.no_grad():
        assert model.style_of(x).shape == (2, 3)
        out = model.translate_with_styles(x, codes[:2])
        other = model.translate_with_styles(x, codes[2:])
    assert out.shape == x.shape and out.abs().max() <= 1 and not torch.equal(out, other)
    with pytest.raises(UserError, match=r"expected styles of shape \(2, 3\)"):
        model.translate_with_styles(x, codes)


# ---------------------------------------------------------------- train.py: exact resume

RUN = ("--model munit --ngf 4 --ndf 4 --munit_mlp_dim 8 --munit_n_res 1 --munit_dis_layers 2 "
       "--munit_num_scales 2 --load_size 20 --crop_size 16 --num_threads 0 --gpu_ids -1 "
       "--display_id 0 --print_freq 1 --display_freq 2 --n_epochs 2 --seed 1 --save_epoch_freq 1 "
       "--save_latest_freq 3 --lr_decay_iters 2 --progress off")


@pytest.mark.slow
def test_killed_then_continued_run_equals_the_uninterrupted_one(tmp_path):
    """Killed right after the resumable save at iteration 3 (mid-epoch, with the per-iteration
    schedule halving the rate every 2 iterations), then continued: the same weights, moments
    and rate as a run never stopped (which runs in this process)."""
    import train
    data = make_unaligned(tmp_path / "data")  # 3 A and 4 B images: 4 iterations per epoch
    common = f"--dataroot {data} --checkpoints_dir {tmp_path}/ck {RUN}"
    assert train.main(f"{common} --name ref".split()) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "faulty_train.py"),
                            "kill_after_save:1", *f"{common} --name kill".split()],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    state = torch.load(tmp_path / "ck" / "kill" / "latest_state.pth", weights_only=True)
    assert state["progress"]["total_iters"] == 3
    assert train.main(f"{common} --name kill --continue_train".split()) == 0
    ref = torch.load(tmp_path / "ck" / "ref" / "latest_state.pth", weights_only=True)
    got = torch.load(tmp_path / "ck" / "kill" / "latest_state.pth", weights_only=True)
    for net in ("G_A", "G_B", "D_A", "D_B"):
        assert all(torch.equal(ref["networks"][net][k], got["networks"][net][k])
                   for k in ref["networks"][net]), f"net{net} differs"
    assert ref["schedulers"] == got["schedulers"] and ref["schedulers"][0]["last_epoch"] == 8
    assert got["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5 ** 4)


@pytest.mark.slow
def test_torchrun_two_processes_agree(tmp_path):
    """Two CPU processes (gloo): each network is called several times per update (encode,
    decode, the discriminators in both steps), the discriminators frozen in the generator step;
    both ranks must end with the same weights, those saved, though they started from different
    ones (rank 0's were broadcast) and trained on different images."""
    from test_distributed import assert_ranks_agree, checked, torchrun
    data = make_unaligned(tmp_path / "data", n_a=4, n_b=4)
    out = tmp_path / "out"
    checked(torchrun(f"--dataroot {data} --checkpoints_dir {tmp_path}/ck --name d {RUN}",
                     out))
    final = assert_ranks_agree(out)
    assert sorted(final) == ["D_A", "D_B", "G_A", "G_B"]
    for name, weights in final.items():
        saved = torch.load(tmp_path / "ck" / "d" / f"latest_net_{name}.pth", weights_only=True)
        assert all(torch.equal(saved[k], weights[k]) for k in saved), name
