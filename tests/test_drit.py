"""DRITModel and its networks: options and presets, the authors' parameter counts, init and
layer conventions, every loss by hand and against float64 finite differences, the update
schedule (content-only iterations, the simultaneous encoder/generator updates of the #62 fix),
the multimodal interface, and train.py/test.py end to end with exact resume and under torchrun."""
import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, make_unaligned, write_images
from data.unaligned_dataset import UnalignedDataset
from models import MODELS, create_model
from models.drit_model import DRITModel, eval_mode, pad_to_multiple
from models.losses import drit as L
from models.networks import drit as nets
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64  # the default 3-scale discriminators need 61 px
SMALL = f"--model drit --ngf 4 --ndf 4 --crop_size {SIZE} --gpu_ids -1"
# float64 finite differences at 32 px (2-scale discriminators), widths 2
FD_SMALL = "--model drit --ngf 2 --ndf 2 --crop_size 32 --drit_dis_scale 2 --gpu_ids -1"
# Whole objectives through several networks hold many ReLU/LeakyReLU/L1 kinks and small
# derivatives (down to 1e-4): at step 1e-6 the differences agree to ~1e-6 relative at worst; a
# wrong gradient is off by percents.
FD_STEP = 1e-6
FD_TOL = 1e-5


def build(tmp_path, extra="", train=True, seed=0, small=SMALL):
    root = tmp_path / "root"
    for sub in ("trainA", "trainB", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = TrainOptions if train else TestOptions
    opt = options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name m {small} "
                  f"{extra}").parse()
    torch.manual_seed(seed)
    model = create_model(opt)
    if train:
        model.epoch_size = 100  # no data folder to count: an epoch long enough not to matter
    return opt, model


def batch(n=2, size=SIZE, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {"A": (torch.rand(n, 3, size, size, generator=g, dtype=torch.float64) * 2 - 1).to(dtype),
            "B": (torch.rand(n, 3, size, size, generator=g, dtype=torch.float64) * 2 - 1).to(dtype),
            "A_paths": [f"a{i}.png" for i in range(n)], "B_paths": [f"b{i}.png" for i in range(n)]}


def snapshot(model):
    return {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in model.networks()}


def changed_networks(model, before):
    return {name for name, net in model.networks()
            if any(not torch.equal(v, before[name][k]) for k, v in net.state_dict().items())}


def n_params(net):
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- options and presets

def test_registered_with_the_authors_preset_and_eight_adams(tmp_path):
    assert MODELS["drit"] is DRITModel
    opt, model = build(tmp_path, small="--model drit --gpu_ids -1 --ngf 4 --ndf 4")
    assert (opt.batch_size, opt.load_size, opt.crop_size, opt.preprocess) == (2, 256, 216, "resize_and_crop")
    assert (opt.lr, opt.beta1, opt.beta2, opt.n_epochs, opt.n_epochs_decay) == (1e-4, 0.5, 0.999, 600, 600)
    assert (opt.drit_concat, opt.drit_ms, opt.drit_d_iter, opt.drit_dis_scale) == (1, False, 3, 3)
    assert (opt.drit_lambda_rec, opt.drit_lambda_latent, opt.drit_lambda_kl) == (10.0, 10.0, 0.01)
    assert opt.crop_in_decay_epochs is True and not opt.no_flip
    assert model.model_names == ["E_content", "E_attr", "G", "D_A", "D_A2", "D_B", "D_B2", "D_content"]
    assert len(model.optimizers) == 8
    lrs = [g["lr"] for o in model.optimizers for g in o.param_groups]
    assert lrs == [1e-4] * 4 + [pytest.approx(4e-5)] + [1e-4] * 3  # D_c at lr / 2.5
    assert all(g["weight_decay"] == 1e-4 and g["betas"] == (0.5, 0.999)
               for o in model.optimizers for g in o.param_groups)
    # each optimizer holds exactly one network, in the authors' order
    for optimizer, name in zip(model.optimizers, ["D_A", "D_B", "D_A2", "D_B2", "D_content",
                                                  "E_content", "E_attr", "G"]):
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert ids == {id(p) for p in getattr(model, "net" + name).parameters()}, name
    # an explicit flag wins over the preset
    opt, _ = build(tmp_path, "--crop_size 128 --lr 0.0002 --crop_in_decay_epochs False")
    assert (opt.crop_size, opt.lr, opt.crop_in_decay_epochs) == (128, 0.0002, False)
    cut_opt = TrainOptions(f"--dataroot {tmp_path / 'root'} --model cut --gpu_ids -1").parse()
    assert cut_opt.crop_in_decay_epochs is False  # CUT keeps its fine-tuning switch

    test_opt, test_model = build(tmp_path, train=False)
    assert test_model.model_names == ["E_content", "E_attr", "G"]
    assert not hasattr(test_opt, "drit_ms") and test_opt.drit_concat == 1


@pytest.mark.parametrize("extra,needle", [
    ("--batch_size 1", r"exactly 2 images per domain .* --batch_size 2 \(got 1\)"),
    ("--batch_size 4", r"--batch_size 2 \(got 4\)"),
    ("--crop_size 218", r"--crop_size 218 .* multiple of 4 and at least 61 \(--drit_dis_scale 3\)"),
    ("--crop_size 32", r"--crop_size 32 .* at least 61"),
    ("--crop_size 16 --drit_dis_scale 1", r"--crop_size 16 .* at least 33 \(--drit_dis_scale 1\)"),
    ("--amp fp16", r"--amp fp16 is not supported with --model drit.* --amp bf16"),
    ("--gpu_ids 0,1", r"DataParallel .* single --gpu_ids, or .* torchrun"),
    ("--drit_d_iter 0", r"--drit_d_iter and --drit_dis_scale must be at least 1"),
    ("--drit_lambda_kl -1", r"--drit_lambda_kl must be 0 or more"),
    ("--dataset_mode single", r"--dataset_mode single has no B images"),
    ("--eval_freq 1", r"--eval_freq .* leave --eval_freq at 0"),
])
def test_impossible_options_are_one_line_errors(tmp_path, extra, needle):
    with pytest.raises(UserError, match=needle) as info:
        build(tmp_path, extra)
    assert "\n" not in str(info.value)


def test_fine_tuning_switch_is_off_for_drit(tmp_path):
    """CUT's dataset resizes straight to crop_size in the decay epochs; DRIT's authors crop in
    every epoch, so the preset turns that off: decay epochs still give random crops."""
    opt, _ = build(tmp_path, "--load_size 72")
    write_images(tmp_path / "root" / "trainA", 1, 80, seed=1)
    write_images(tmp_path / "root" / "trainB", 1, 80, seed=2)
    opt.no_flip, opt.n_epochs = True, 1
    dataset = UnalignedDataset(opt)
    dataset.current_epoch = 2  # a decay epoch
    crops = {tuple(dataset[0]["A"][0, :2, :2].flatten().tolist()) for _ in range(6)}
    assert dataset[0]["A"].shape[-1] == SIZE and len(crops) > 1  # random crops, not one resize
    opt.crop_in_decay_epochs = False
    assert len({tuple(dataset[0]["A"][0, :2, :2].flatten().tolist()) for _ in range(3)}) == 1


def test_epoch_size_is_read_from_the_data_folders(tmp_path):
    root = make_unaligned(tmp_path / "data", splits=("train",), n_a=3, n_b=7, size=8)
    opt = TrainOptions(f"--dataroot {root} --checkpoints_dir {tmp_path} {SMALL}").parse()
    assert create_model(opt).epoch_size == 7  # the larger domain
    opt = TrainOptions(f"--dataroot {root} --checkpoints_dir {tmp_path} {SMALL} "
                       "--max_dataset_size 5").parse()
    assert create_model(opt).epoch_size == 5


# ---------------------------------------------------------------- networks

def test_parameter_counts_are_the_authors():
    """Counts computed from the authors' src/networks.py (independently of this code)."""
    with torch.device("meta"):
        counts = {
            "E_content": n_params(nets.ContentEncoder(3, 3)),
            "E_attr": n_params(nets.AttributeEncoderConcat(3, 3)),
            "G": n_params(nets.GeneratorConcat(3, 3)),
            "D": n_params(nets.define_image_discriminator(3, 3)),
            "D_content": n_params(nets.ContentDiscriminator(256)),
            "E_attr concat=0": n_params(nets.AttributeEncoder(3, 3)),
            "G concat=0": n_params(nets.Generator(3, 3)),
            "D dis_scale 1": n_params(nets.define_image_discriminator(3, 1)),
        }
    assert counts == {"E_content": 9_018_112, "E_attr": 2_688_160, "G": 9_564_710, "D": 8_271_171,
                      "D_content": 10_683_649, "E_attr concat=0": 5_529_872,
                      "G concat=0": 17_146_374, "D dis_scale 1": 25_149_057}
    trainable = (counts["E_content"] + counts["E_attr"] + counts["G"] + 4 * counts["D"]
                 + counts["D_content"])
    assert trainable == 65_039_315


def test_state_dict_keys_follow_the_authors_module_names():
    with torch.device("meta"):
        keys = {
            "enc_c": set(nets.ContentEncoder(3, 3).state_dict()),
            "enc_a": set(nets.AttributeEncoderConcat(3, 3).state_dict()),
            "gen": set(nets.GeneratorConcat(3, 3).state_dict()),
            "gen0": set(nets.Generator(3, 3).state_dict()),
            "dis": set(nets.MultiScaleDis(3).state_dict()),
            "disContent": set(nets.ContentDiscriminator().state_dict()),
        }
    expected = {  # a few of each, as they read in the authors' checkpoints
        "enc_c": {"convA.0.model.1.weight", "convB.5.model.5.bias", "conv_share.0.model.1.weight"},
        "enc_a": {"conv_A.1.weight", "conv_A.2.conv.4.1.weight", "conv_B.4.shortcut.1.bias",
                  "fc_A.0.weight", "fcVar_B.0.bias"},
        "gen": {"dec_share.0.model.1.weight", "decA1.2.model.5.weight", "decB2.0.model.1.weight",
                "decA4.0.weight"},
        "gen0": {"decA1.conv1.0.1.weight", "decB4.blk2.2.bias", "decA5.1.model.1.bias", "mlpB.4.weight"},
        "dis": {"Diss.0.0.model.1.weight", "Diss.2.4.bias"},
        "disContent": {"model.0.model.1.weight", "model.4.weight"},
    }
    for name, wanted in expected.items():
        assert wanted <= keys[name], (name, wanted - keys[name])


def test_init_slopes_and_norms_are_the_authors():
    torch.manual_seed(0)
    enc_a, gen = nets.AttributeEncoderConcat(3, 3, dim=16), nets.GeneratorConcat(3, 3, dim=16)
    convs = [m for net in (enc_a, gen) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(weights.mean())) < 1e-3 and float(weights.std()) == pytest.approx(0.02, rel=0.02)
    biases = torch.cat([m.bias.detach() for m in convs])
    assert float(biases.abs().max()) > 0.05  # PyTorch's default, not N(0, 0.02) and not zero
    linear = enc_a.fc_A[0]
    bound = 1 / math.sqrt(linear.in_features)  # PyTorch's default (kaiming uniform, a = sqrt 5)
    assert float(linear.weight.abs().max()) <= bound and float(linear.weight.std()) > 0.05
    norms = [m for m in gen.modules() if isinstance(m, nets.LayerNorm)]
    assert norms and all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)
    # LeakyReLU 0.01 in the conv blocks, 0.2 in the concat attribute encoder
    slopes_a = {m.negative_slope for m in enc_a.modules() if isinstance(m, torch.nn.LeakyReLU)}
    slopes_d = {m.negative_slope for m in nets.MultiScaleDis(3, ch=2).modules()
                if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes_a == {0.2} and slopes_d == {0.01}
    # the authors' dead InstanceNorm flag: no norm at all in the discriminators
    for net in (nets.ContentDiscriminator(8), nets.MultiScaleDis(3, ch=2), nets.Dis(3, ch=2)):
        assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d, nets.LayerNorm))
                       for m in net.modules())


def test_noise_layer_adds_unit_gaussian_noise_while_training_only():
    layer = nets.GaussianNoiseLayer()
    x = torch.zeros(4, 8, 32, 32)
    noise = layer(x)
    assert float(noise.std()) == pytest.approx(1.0, abs=0.03) and abs(float(noise.mean())) < 0.03
    layer.eval()
    assert layer(x) is x


def test_content_discriminator_is_the_authors_stack_at_54_and_adapts_elsewhere():
    torch.manual_seed(0)
    net = nets.ContentDiscriminator(4)
    x = torch.randn(3, 4, 54, 54)
    assert torch.equal(net(x), net.model(x).flatten())  # the authors' computation, exactly
    assert torch.equal(F.adaptive_avg_pool2d(x, 54), x)  # (the pool would be exact too)
    y = torch.randn(2, 4, 64, 64)  # 256 px crops
    assert torch.equal(net(y), net.model(F.adaptive_avg_pool2d(y, 54)).flatten())
    assert net(torch.randn(2, 4, 8, 8)).shape == (2,)  # one logit per image at any size


# ---------------------------------------------------------------- finite differences

def directional_derivatives(loss_fn, tensors, step=FD_STEP, seed=0):
    """(autograd, central difference) derivative of loss_fn() along a random direction scaled
    per tensor by its mean magnitude (instance norm makes the loss invariant to a conv weight's
    scale, so an unscaled step would be huge for some tensors; see tests/test_cycle_gan.py)."""
    g = torch.Generator().manual_seed(seed)
    directions = [torch.randn(t.shape, generator=g, dtype=t.dtype)
                  * max(float(t.detach().abs().mean()), 1e-3) for t in tensors]
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
    return analytic, (plus - minus) / (2 * step)


def assert_gradient_matches(loss_fn, tensors, step=FD_STEP, tol=FD_TOL):
    analytic, numeric = directional_derivatives(loss_fn, tensors, step)
    assert abs(numeric) > 1e-9  # the loss does depend on these tensors
    assert abs(analytic - numeric) <= tol * abs(numeric), (analytic, numeric)


def test_odd_layers_gradients_match_finite_differences():
    """LayerNorm inside the transposed conv, the concat generator (z tiled into every stage),
    the feature-wise generator's MisINSResBlock and MLP, the attribute encoder's BasicBlocks
    and the content discriminator's adaptive pool."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    up = nets.ReLUINSConvTranspose2d(5, 3).double()
    with torch.no_grad():  # a LayerNorm affine away from its init, so that it matters
        up.model[1].weight.normal_(1, 0.3)
        up.model[1].bias.normal_(0, 0.3)
    assert_gradient_matches(lambda: (up(x) ** 2).sum(), [x, *up.parameters()])

    content = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, nets.NZ, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    for generator in (nets.GeneratorConcat(3, 1, dim=2), nets.Generator(3, 1, dim=2)):
        generator.double()
        assert_gradient_matches(lambda: L.l1(generator(content, z, "a"), target),
                                [content, z, *generator.parameters()])

    images = torch.rand(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    enc = nets.AttributeEncoderConcat(3, 3, dim=2).double()
    assert_gradient_matches(lambda: sum((t ** 2).sum() for t in enc(images, "b")),
                            [images, *enc.parameters()])
    dis = nets.ContentDiscriminator(3).double()
    codes = torch.randn(2, 3, 10, 10, dtype=torch.float64, requires_grad=True)
    assert_gradient_matches(lambda: L.content_adversarial_loss(dis(codes)), [codes, *dis.parameters()])


def double_model(tmp_path, extra="", boost_attr=1.0):
    """A tiny DRIT in float64, its networks, images and forward pass (seeded inside `loss`, so
    that the noise, eps and z draws are the same at every evaluation)."""
    _, model = build(tmp_path, extra, small=FD_SMALL)
    model.set_input(batch(size=32))
    for _, net in model.networks():
        net.double()
    model.real_A, model.real_B = model.real_A.double(), model.real_B.double()
    with torch.no_grad():
        # Discriminators at N(0, 0.02) and width 2 pass on gradients of ~1e-6, below the rounding
        # of the differences: scaled up, they are a few units.  So does E_a for the latent
        # regression, which goes through it (`boost_attr`).
        for name in ("D_A", "D_A2", "D_B", "D_B2", "D_content"):
            for p in params(model, name):
                p.mul_(10)
        for p in params(model, "E_attr"):
            p.mul_(boost_attr)
    model.draw_codes = lambda count: torch.randn(count, model.style_dim, dtype=torch.float64)
    return model


def params(model, *names):
    return [p for name in names for p in getattr(model, "net" + name).parameters()]


EG_TERMS = {  # loss -> the networks it differentiates (D frozen as in the update)
    "self_A": ("E_content", "E_attr", "G"),
    "cross_B": ("E_content", "E_attr", "G"),
    "kl_za_a": ("E_attr",),
    "kl_zc_b": ("E_content",),
    "G_GAN_Acontent": ("E_content", "D_content"),
    "G_GAN_B": ("E_content", "E_attr", "G"),
}


@pytest.mark.parametrize("term", sorted(EG_TERMS))
def test_encoder_generator_losses_match_finite_differences(tmp_path, term):
    model = double_model(tmp_path)

    def loss():
        torch.manual_seed(0)
        model.forward()
        model.compute_EG_loss()
        return getattr(model, "loss_" + term)
    assert_gradient_matches(loss, params(model, *EG_TERMS[term]))


@pytest.mark.parametrize("term,extra", [("latent_A", ""), ("latent_B", "--drit_concat 0"),
                                        ("ms_AB", "--drit_ms"), ("G_GAN2_A", "--drit_ms"),
                                        ("kl_za_b", "--drit_concat 0")])
def test_generator_alone_and_variant_losses_match_finite_differences(tmp_path, term, extra):
    model = double_model(tmp_path, extra, boost_attr=3.0 if term.startswith("latent") else 1.0)

    def loss():
        torch.manual_seed(0)
        model.forward()
        model.compute_EG_loss()
        model.compute_G_alone_loss()
        return getattr(model, "loss_" + term)
    names = ("E_attr",) if term.startswith("kl") else ("E_content", "G")
    assert_gradient_matches(loss, params(model, *names))


def test_discriminator_losses_match_finite_differences(tmp_path):
    model = double_model(tmp_path, "--drit_ms")
    with torch.no_grad():
        torch.manual_seed(0)
        model.forward()
    assert_gradient_matches(lambda: model.compute_D_loss("A2", model.real_A_random,
                                                         [model.fake_A_random, model.fake_A_random2]),
                            params(model, "D_A2"))
    assert_gradient_matches(model.compute_D_content_loss, params(model, "D_content"))


# ---------------------------------------------------------------- losses by hand

def softplus(x):
    return math.log1p(math.exp(x))


def test_losses_by_hand():
    # BCE on logits: -t log s(l) - (1 - t) log(1 - s(l)) = t softplus(-l) + (1 - t) softplus(l)
    logits = torch.tensor([[0.3, -1.2]])
    assert float(L.content_adversarial_loss(logits)) == pytest.approx(
        0.5 * (0.5 * softplus(-0.3) + 0.5 * softplus(0.3)) + 0.5 * (0.5 * softplus(1.2) + 0.5 * softplus(-1.2)))
    assert float(L.content_adversarial_loss(torch.zeros(3))) == pytest.approx(math.log(2))
    zero = torch.zeros(1, requires_grad=True)
    L.content_adversarial_loss(zero).backward()
    assert float(zero.grad) == 0.0  # an undecided D_c is what the encoders aim for
    outs_real, outs_fake = [torch.tensor([2.0]), torch.tensor([0.5, 1.5])], [torch.tensor([-1.0]), torch.tensor([0.0, 1.0])]
    expected = (softplus(-2.0) + softplus(-1.0)) + (
        (softplus(-0.5) + softplus(-1.5)) / 2 + (softplus(0.0) + softplus(1.0)) / 2)
    assert float(L.discriminator_loss(outs_real, outs_fake)) == pytest.approx(expected)
    assert float(L.adversarial_loss(outs_fake, 1.0)) == pytest.approx(
        softplus(1.0) + (softplus(0.0) + softplus(-1.0)) / 2)
    # KL of N(mu, e^lv) to N(0, 1), summed: 1/2 (mu^2 + e^lv - 1 - lv) per dimension
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    assert float(L.kl_divergence(mu, logvar)) == pytest.approx(0.5 * 1 + 0.5 * (4 + 4 - 1 - math.log(4)))
    assert float(L.l2_regularization(torch.tensor([1.0, 3.0]))) == 5.0
    assert float(L.latent_regression(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]]))) == 1.5
    # mode seeking: mean |f2 - f1| = 0.5, mean |z2 - z1| = 2 -> 1 / (0.25 + 1e-5)
    f1, f2 = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    z1, z2 = torch.zeros(1, 2), torch.full((1, 2), 2.0)
    assert float(L.mode_seeking_loss(f1, f2, z1, z2)) == pytest.approx(1 / (0.25 + 1e-5))
    assert torch.equal(L.reparameterize(torch.tensor([1.0]), torch.tensor([math.log(9.0)]),
                                        torch.tensor([2.0])), torch.tensor([7.0]))


def bce_by_hand(logits, target):
    p = torch.sigmoid(logits.double())
    return float((-(target * torch.log(p) + (1 - target) * torch.log(1 - p))).mean())


def test_model_objectives_by_hand_on_a_tiny_batch(tmp_path):
    """The EG, G-alone and D totals recomputed from the forward pass's tensors with the authors'
    formulas written out (sigmoid then log; weights 10, 10, 0.01, 1)."""
    _, model = build(tmp_path, "--drit_ms")
    model.set_input(batch())
    with torch.no_grad():
        torch.manual_seed(0)
        model.forward()
        eg, alone = float(model.compute_EG_loss()), float(model.compute_G_alone_loss())
        d_a2 = float(model.compute_D_loss("A2", model.real_A_random,
                                          [model.fake_A_random, model.fake_A_random2]))
        m = model

        def gan(net, fake, target=1.0):
            return sum(bce_by_hand(out, target) for out in net(fake))

        def l1(a, b):
            return float((a - b).abs().mean())
        kl = lambda mu, lv: float(-0.5 * (1 + lv - mu ** 2 - lv.exp()).sum())  # noqa: E731
        expected_eg = (gan(m.netD_A, m.fake_A) + gan(m.netD_B, m.fake_B)
                       + bce_by_hand(m.netD_content(m.z_content_a), 0.5)
                       + bce_by_hand(m.netD_content(m.z_content_b), 0.5)
                       + 10 * (l1(m.fake_AA, m.real_A[:1]) + l1(m.fake_BB, m.real_B[:1])
                               + l1(m.fake_A_recon, m.real_A[:1]) + l1(m.fake_B_recon, m.real_B[:1]))
                       + 0.01 * (float((m.z_content_a ** 2).mean()) + float((m.z_content_b ** 2).mean()))
                       + 0.01 * (kl(m.mu_a, m.logvar_a) + kl(m.mu_b, m.logvar_b)))
        mu2_a, mu2_b = m.netE_attr(m.fake_A_random, "a")[0], m.netE_attr(m.fake_B_random, "b")[0]
        dz = float((m.z_random2 - m.z_random).abs().mean())
        expected_alone = (gan(m.netD_A2, m.fake_A_random) + gan(m.netD_A2, m.fake_A_random2)
                          + gan(m.netD_B2, m.fake_B_random) + gan(m.netD_B2, m.fake_B_random2)
                          + 10 * (l1(mu2_a, m.z_random) + l1(mu2_b, m.z_random))
                          + 1 / (l1(m.fake_B_random2, m.fake_B_random) / dz + 1e-5)
                          + 1 / (l1(m.fake_A_random2, m.fake_A_random) / dz + 1e-5))
        expected_d_a2 = sum(bce_by_hand(r, 1.0) + bce_by_hand(f, 0.0)
                            for fake in (m.fake_A_random, m.fake_A_random2)
                            for r, f in zip(m.netD_A2(m.real_A[1:]), m.netD_A2(fake)))
    assert eg == pytest.approx(expected_eg, rel=1e-5)
    assert alone == pytest.approx(expected_alone, rel=1e-5)
    assert d_a2 == pytest.approx(expected_d_a2, rel=1e-5)
    # the translations use the swapped contents (first batch image of each domain)
    assert m.fake_A.shape == m.fake_A_random.shape == (1, 3, SIZE, SIZE)
    with eval_mode(m.netE_content):
        assert torch.allclose(m.netG(m.z_content_b, m.z_random, "a"), m.fake_A_random, atol=1e-5)


# ---------------------------------------------------------------- training steps

def test_content_only_iterations_follow_the_authors_rule(tmp_path):
    _, model = build(tmp_path)
    # 9 images: the authors' loader has 5 batches (the last, incomplete, skipped): it < 3
    model.epoch_size = 9
    assert [model.content_only(it) for it in range(4)] == [True, True, False, False]
    model.epoch_size = 14  # 7 batches: it < 5, and every third is full
    assert [model.content_only(it) for it in range(7)] == [True, True, False, True, True, False, False]
    _, every = build(tmp_path, "--drit_d_iter 1")
    assert not any(every.content_only(it) for it in range(5))


def test_a_content_only_iteration_trains_d_content_alone_and_epochs_restart_the_count(tmp_path):
    opt, model = build(tmp_path)
    model.epoch_size = 14
    model.setup(opt)
    before = snapshot(model)
    model.set_input(batch())
    losses = model.optimize_parameters()
    assert changed_networks(model, before) == {"D_content"}
    assert math.isfinite(losses["D_content"]) and losses["G"] == 0.0
    model.batch_in_epoch = 2  # the third batch is a full iteration
    before = snapshot(model)
    model.optimize_parameters()
    assert changed_networks(model, before) == {name for name, _ in model.networks()}
    model.update_learning_rate()
    assert model.batch_in_epoch == 0
    assert model.training_state()["drit"] == {"batch_in_epoch": 0}


@pytest.mark.parametrize("extra", ["", "--drit_concat 0 --drit_ms"])
def test_two_full_iterations_change_every_network(tmp_path, extra):
    opt, model = build(tmp_path, "--drit_d_iter 1 " + extra)
    model.data_dependent_initialize(batch())
    model.setup(opt)
    assert len(model.schedulers) == 8
    before = snapshot(model)
    for step in range(2):
        model.set_input(batch(seed=step))
        losses = model.optimize_parameters()
        assert list(losses) == model.loss_names and all(math.isfinite(v) for v in losses.values())
        assert all(v != 0.0 for v in losses.values())
    assert changed_networks(model, before) == {name for name, _ in model.networks()}
    assert ("ms_AB" in model.loss_names) == bool(extra)


def test_encoder_generator_updates_use_gradients_at_the_forward_weights(tmp_path):
    """The #62 fix: E_c, E_a, G step on the gradient of the EG loss, and E_c, G then step on the
    gradient of the G-alone loss, both taken at the weights of the forward pass (after the
    discriminators' updates), as if computed before either step."""
    opt, model = build(tmp_path, "--drit_d_iter 1 --drit_ms")
    model.setup(opt)
    twin = copy.deepcopy(model)
    recorded = []
    for optimizer, name in ((model.optimizer_E_content, "E_content"), (model.optimizer_G, "G")):
        real_step = optimizer.step

        def recording_step(*a, _real=real_step, _name=name, _opt=optimizer, **k):
            grads = [p.grad.clone() for g in _opt.param_groups for p in g["params"]]
            recorded.append((_name, grads))
            return _real(*a, **k)
        optimizer.step = recording_step
    model.set_input(batch())
    torch.manual_seed(5)
    model.optimize_parameters()
    assert [name for name, _ in recorded] == ["E_content", "G", "E_content", "G"]

    twin.set_input(batch())
    torch.manual_seed(5)
    twin.forward()
    for name, real, fakes in (("A", twin.real_A[:1], [twin.fake_A]),
                              ("A2", twin.real_A[1:], [twin.fake_A_random, twin.fake_A_random2]),
                              ("B", twin.real_B[:1], [twin.fake_B]),
                              ("B2", twin.real_B[1:], [twin.fake_B_random, twin.fake_B_random2])):
        twin.step([getattr(twin, "optimizer_D_" + name)],
                  lambda: twin.compute_D_loss(name, real, fakes), guard=())
    twin.step([twin.optimizer_D_content], twin.compute_D_content_loss, guard=(), clip_grad_norm=5.0)
    targets = params(twin, "E_content") + params(twin, "G")
    eg = torch.autograd.grad(twin.compute_EG_loss(), targets, retain_graph=True)
    alone = torch.autograd.grad(twin.compute_G_alone_loss(), targets)
    n = len(params(twin, "E_content"))
    expected = [eg[:n], eg[n:], alone[:n], alone[n:]]
    for (name, got), want in zip(recorded, expected):
        # expected + weight decay 1e-4 * w is added inside Adam, not here: plain gradients
        assert all(torch.allclose(g, w, rtol=1e-4, atol=1e-8) for g, w in zip(got, want)), name
    # and the two losses' gradients do differ (the second step is not the first one again)
    assert not torch.allclose(eg[0], alone[0])


def test_simultaneous_steps_of_one_update_equal_step(tmp_path):
    """BaseModel.simultaneous_steps with a single update is BaseModel.step, bit for bit."""
    opt, a = build(tmp_path)
    a.setup(opt)
    b = copy.deepcopy(a)
    for model in (a, b):
        model.set_input(batch())
        torch.manual_seed(1)
        with torch.no_grad():
            model.z_content_a = model.netE_content(model.real_A[:1], "a")
            model.z_content_b = model.netE_content(model.real_B[:1], "b")
    a.step([a.optimizer_D_content], a.compute_D_content_loss, guard=("D_content",), clip_grad_norm=5.0)
    b.simultaneous_steps([dict(optimizers=[b.optimizer_D_content], loss_fn=b.compute_D_content_loss,
                               guard=("D_content",), clip_grad_norm=5.0)])
    assert all(torch.equal(x, y) for x, y in zip(a.netD_content.parameters(), b.netD_content.parameters()))


def test_nan_guard_skip_leaves_the_bad_update_out(tmp_path):
    opt, model = build(tmp_path, "--drit_d_iter 1 --nan_guard skip")
    model.setup(opt)
    model.set_input(batch())
    real = model.compute_G_alone_loss

    def broken():
        loss = real()
        model.loss_latent_A = torch.tensor(float("nan"))
        return loss
    model.compute_G_alone_loss = broken
    before = snapshot(model)
    model.optimize_parameters()
    assert model.skipped_steps == 1
    assert changed_networks(model, before) == {name for name, _ in model.networks()}  # EG stepped
    assert all(bool(torch.isfinite(p).all()) for _, net in model.networks() for p in net.parameters())


# ---------------------------------------------------------------- the multimodal interface

def test_multimodal_interface(tmp_path):
    opt, model = build(tmp_path, train=False)
    model.eval()
    assert model.style_dim == 8
    styles = model.random_styles(3, generator=torch.Generator().manual_seed(4))
    assert styles.shape == (3, 8) and styles.device == model.device
    assert torch.equal(styles, model.random_styles(3, generator=torch.Generator().manual_seed(4)))
    assert abs(float(model.random_styles(4000).std()) - 1) < 0.05

    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 37, 45, generator=g) * 2 - 1  # not a multiple of 4
    out = model.translate_with_styles(images, styles)
    assert out.shape == (3, 3, 37, 45) and float(out.abs().max()) <= 1
    assert torch.equal(out, model.translate_with_styles(images, styles))  # no content noise
    padded, _ = pad_to_multiple(images)
    assert padded.shape[-2:] == (40, 48)
    with torch.no_grad():
        manual = model.netG(model.netE_content(padded, "a"), styles, "b")[:, :, :37, :45]
    assert torch.allclose(out, manual)
    other = model.translate_with_styles(images, styles.flip(0))
    assert not torch.allclose(out[0], other[0])  # the attribute changes the output

    refs = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    codes = model.style_of(refs)
    assert codes.shape == (3, 8) and torch.equal(codes, model.style_of(refs))
    with torch.no_grad():
        assert torch.allclose(codes, model.netE_attr(refs, "b")[0])  # the mean, from E_a of B
    # a training model keeps its training mode (noise on) after the test-time calls
    opt, trained = build(tmp_path)
    trained.translate_with_styles(images, styles)
    assert trained.netE_content.training and trained.netG.training
    with pytest.raises(ValueError, match=r"styles of shape \(3, 8\)"):
        model.translate_with_styles(images, styles[:2])


def test_model_test_translates_with_an_attribute_from_the_prior(tmp_path):
    """model.test() (test.py writes the shared style-code visuals instead): fake_B is A's
    content with one prior attribute per image, at the input's size, with or without B."""
    _, model = build(tmp_path, train=False)
    data = batch(n=2, size=52)
    model.set_input(data)
    torch.manual_seed(3)
    model.test()
    assert list(model.get_current_visuals()) == ["real_A", "fake_B"]
    torch.manual_seed(3)
    expected = model.translate_with_styles(model.real_A, torch.randn(2, model.style_dim))
    assert model.fake_B.shape == (2, 3, 52, 52) and torch.equal(model.fake_B, expected)
    del data["B"], data["B_paths"]
    model.set_input(data)
    model.test()
    assert list(model.get_current_visuals()) == ["real_A", "fake_B"]


def test_images_too_small_for_the_discriminators_are_named_in_one_line(tmp_path):
    _, model = build(tmp_path)
    data = batch()
    data["B"], data["B_paths"] = batch(size=32)["B"], ["tiny_b.png", "b.png"]
    with pytest.raises(UserError, match=r"image tiny_b.png becomes 32x32 pixels .* netD_B cannot take"):
        model.set_input(data)


# ---------------------------------------------------------------- train.py / test.py

RUN = ("--model drit --ngf 4 --ndf 4 --load_size 72 --crop_size 64 --num_threads 0 --gpu_ids -1 "
       "--display_id 0 --no_html --print_freq 2 --n_epochs 1 --n_epochs_decay 1 --seed 1 "
       "--save_epoch_freq 1 --save_latest_freq 4 --progress off")
NETS = ("E_content", "E_attr", "G", "D_A", "D_A2", "D_B", "D_B2", "D_content")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """8 B images: 4 batches per epoch, the first two content-only (d_iter 3).  The reference
    run trains in this process (one torch thread, as the killed run's subprocess)."""
    import train
    root = tmp_path_factory.mktemp("drit")
    make_unaligned(root / "data", n_a=3, n_b=8, size=72)
    assert train.main(f"--dataroot {root}/data --checkpoints_dir {root}/ck --name ref {RUN}".split()) == 0
    return root


@pytest.mark.slow
def test_killed_mid_epoch_then_continued_run_equals_the_uninterrupted_one(workdir):
    """Killed right after the save at sample 4 (batch 2 of epoch 1, after the two content-only
    iterations): the resumed run must know it is at the epoch's third batch (a full iteration)."""
    import train
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name kill {RUN}"
    first = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "faulty_train.py"),
                            "kill_after_save:1"] + common.split(), cwd=workdir, capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    state = torch.load(workdir / "ck" / "kill" / "latest_state.pth", weights_only=True)
    assert state["progress"]["total_iters"] == 4 and state["drit"] == {"batch_in_epoch": 2}
    assert train.main((common + " --continue_train").split()) == 0
    for net in NETS:
        ref = torch.load(workdir / "ck" / "ref" / f"latest_net_{net}.pth", weights_only=True)
        got = torch.load(workdir / "ck" / "kill" / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(ref[k], got[k]) for k in ref), f"net{net} differs"


@pytest.mark.slow
def test_test_py_translates_full_images_with_the_three_test_networks(workdir, capsys):
    import test
    from PIL import Image
    assert test.main(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name ref "
                     f"--model drit --ngf 4 --load_size 60 --crop_size 60 --gpu_ids -1 "
                     f"--results_dir {workdir}/res --num_test 2".split()) == 0
    loaded = [line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.splitlines()
              if line.startswith("loading the model from")]
    assert loaded == ["latest_net_E_content.pth", "latest_net_E_attr.pth", "latest_net_G.pth"]
    images = workdir / "res" / "ref" / "test_latest" / "images"
    assert sorted(os.listdir(images)) == ["fake_B", "real_A"]  # one attribute from the prior each
    for visual in ("real_A", "fake_B"):
        assert sorted(os.listdir(images / visual)) == ["img_000.png", "img_001.png"], visual
    assert Image.open(images / "fake_B" / "img_000.png").size == (60, 60)  # no 216 center crop

    # K attributes from the prior, the attribute of a reference image, translate.py on the folder
    common = (f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name ref --model drit "
              f"--ngf 4 --load_size 60 --crop_size 60 --gpu_ids -1 --num_test 1")
    assert test.main(f"{common} --results_dir {workdir}/res_k --n_styles 3".split()) == 0
    images = workdir / "res_k" / "ref" / "test_latest" / "images"
    assert sorted(os.listdir(images)) == ["fake_B_s0", "fake_B_s1", "fake_B_s2", "real_A", "styles"]
    outs = [np.asarray(Image.open(images / f"fake_B_s{k}" / "img_000.png"), dtype=float) for k in range(3)]
    assert all(np.abs(outs[0] - out).mean() > 0.5 for out in outs[1:])  # the attribute matters
    assert Image.open(images / "styles" / "img_000.png").size == (4 * 60, 60)
    ref = workdir / "data" / "trainB" / "img_000.png"
    for k in (0, 1):  # the reference alone decides: the same output whatever the seed
        assert test.main(f"{common} --results_dir {workdir}/res_ref{k} --style_ref {ref} "
                         f"--seed {k}".split()) == 0
    images = [workdir / f"res_ref{k}" / "ref" / "test_latest" / "images" for k in (0, 1)]
    assert sorted(os.listdir(images[0])) == ["fake_B", "real_A"]
    assert (images[0] / "fake_B" / "img_000.png").read_bytes() == (images[1] / "fake_B" / "img_000.png").read_bytes()
    import translate
    assert translate.main(["--checkpoint", str(workdir / "ck" / "ref"), "--n_styles", "2", "-o",
                           str(workdir / "tr"), str(workdir / "data" / "trainA" / "img_000.png")]) == 0
    assert sorted(os.listdir(workdir / "tr")) == ["img_000_s0.png", "img_000_s1.png", "img_000_styles.png"]
    assert Image.open(workdir / "tr" / "img_000_s0.png").size == (72, 72)  # the input's own size


@pytest.mark.slow
def test_torchrun_ranks_average_every_update_and_agree(tmp_path):
    """2 CPU ranks (gloo) through tests/ddp_train.py.  12 B images: each rank reads its own 6 per
    epoch, 3 batches: the first trains D_c alone, the other two are full iterations (with the
    whole data set's 12 images the second would be content-only too).  In its third iteration
    rank 1 alone sees a NaN encoder/generator loss: both ranks skip that update, and both still
    take the generator-alone one.  Both ranks end with the same weights although they started
    from different ones (rank 0's were broadcast) and trained on different images with different
    random draws: each update's gradients were averaged over the ranks, the second of the two
    from one forward graph included (DistributedDataParallel would average only the first)."""
    import json
    from test_distributed import assert_ranks_agree, checked, torchrun
    make_unaligned(tmp_path / "data", splits=("train",), n_a=5, n_b=12, size=36)
    args = (f"--model drit --dataroot {tmp_path}/data --checkpoints_dir {tmp_path}/ck --name d "
            "--gpu_ids -1 --display_id 0 --num_threads 0 --print_freq 1 --no_html --load_size 36 "
            "--crop_size 32 --ngf 4 --ndf 4 --drit_dis_scale 2 --n_epochs 1 --n_epochs_decay 0 "
            "--seed 3 --nan_guard skip")
    proc = checked(torchrun(args, tmp_path / "out", nan="1:3"))
    final = assert_ranks_agree(tmp_path / "out")
    assert sorted(final) == sorted(NETS)
    for name, weights in final.items():
        saved = torch.load(tmp_path / "ck" / "d" / f"latest_net_{name}.pth", weights_only=True)
        assert all(torch.equal(saved[k], weights[k]) for k in weights), name
    assert "warning: non-finite loss of rank 1 = nan: update skipped" in proc.stdout
    assert "warning: 1 updates were skipped by --nan_guard skip" in proc.stdout
    logged = [json.loads(line)["losses"] for line in
              (tmp_path / "ck" / "d" / "loss_log.jsonl").read_text().splitlines()]
    assert [(row["G"] != 0, row["G_alone"] != 0) for row in logged] == [(False, False), (True, True),
                                                                        (True, True)]
    assert math.isnan(logged[2]["G"]) and math.isfinite(logged[2]["G_alone"])
    state = torch.load(tmp_path / "ck" / "d" / "latest_state.pth", weights_only=True)
    assert state["distributed"]["world_size"] == 2 and state["drit"] == {"batch_in_epoch": 0}
