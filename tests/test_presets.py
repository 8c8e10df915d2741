"""Each baseline as its authors ran it (models/presets.py): the presets' values and where flags
win, the general options they use (--init_bias, --padding_type, --norm instance_affine,
--resize_filter, --crop_in_decay_epochs, the linear lr rules, resize_shortside_and_crop),
DistanceGAN's batch-level distances and statistics (hand-computed values, float64 finite
differences), and both GcGAN variants."""
import json
import math
import os
import stat
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, data_opt, make_unaligned
from data.base_dataset import get_transform
from data.unaligned_dataset import UnalignedDataset
from models import create_model, load_translator
from models.losses import distance_statistics, self_distance_loss
from models.losses.distance import distance_loss
from models.networks import define_D, define_G, init_weights
from models.networks.describe import guess_generator_options
from models.schedulers import get_scheduler, linear_lr_factor
from options.test_options import TestOptions
from options.train_options import TrainOptions
from test_cycle_gan import batch, changed_networks, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")

# The authors' defaults, written out from their files (not from models/presets.py):
#   CycleGAN: junyanz/pytorch-CycleGAN-and-pix2pix options/base_options.py (batch_size 1,
#     load_size 286, crop_size 256, init_type normal, init_gain 0.02), options/train_options.py
#     (n_epochs 100, n_epochs_decay 100, lr_policy linear), models/cycle_gan_model.py
#     (no_dropout), models/networks.py (strided/transposed convs, biases zeroed),
#     data/base_dataset.py (bicubic; no decay-epoch rule).
#   DistanceGAN: sagiebenaim/DistanceGAN cyclegan_arch/cyclegan_arch_options/base_options.py
#     (batchSize 2, loadSize 286, fineSize 256), train_options.py (niter 100, niter_decay 100),
#     networks.py (zero padding, InstanceNorm2d(affine=True), normal weights, default biases),
#     data/unaligned_data_loader.py (transforms.Scale: shorter side, bilinear).
#   GcGAN: hufu6371/GcGAN options/base_options.py (batchSize 8, loadSize 288, fineSize 256,
#     init_type xavier), models/networks.py (xavier gain 0.02, default biases, lambda rule + 1),
#     train_gcgan.sh (--no_dropout), README.md (gc_gan_cross for horse2zebra).
SHARED = dict(n_epochs=100, n_epochs_decay=100, crop_size=256, no_flip=False, lr=0.0002, beta1=0.5,
              pool_size=50, gan_mode="lsgan", crop_in_decay_epochs=True, no_antialias=True,
              no_antialias_up=True, no_dropout=True, init_gain=0.02)
AUTHORS = {
    "cycle_gan": dict(SHARED, batch_size=1, load_size=286, preprocess="resize_and_crop",
                      resize_filter="bicubic", init_type="normal", init_bias="zero",
                      padding_type="reflect", normG="instance", normD="instance", lr_policy="linear"),
    "distance_gan": dict(SHARED, batch_size=2, load_size=286, preprocess="resize_shortside_and_crop",
                         resize_filter="bilinear", init_type="normal", init_bias="default",
                         padding_type="zero", normG="instance_affine", normD="instance_affine",
                         lr_policy="linear_2017", max_items=900, lambda_distance=1.0,
                         distance_level="batch", self_distance_halves="top_bottom"),
    "gcgan": dict(SHARED, batch_size=8, load_size=288, preprocess="resize_and_crop",
                  resize_filter="bicubic", init_type="xavier", init_bias="default",
                  padding_type="reflect", normG="instance", normD="instance",
                  lr_policy="linear_gcgan", gcgan_variant="cross", geometry="rot", lambda_AB=10.0,
                  lambda_gc=2.0, lambda_identity=0.5, lambda_GAN=1.0),
}
# What CUT, FastCUT and SinCUT keep: the framework's own values of the new options.
CUT_VALUES = dict(init_bias="zero", padding_type="reflect", resize_filter="bicubic",
                  crop_in_decay_epochs=False, lr_policy="linear", no_antialias=False,
                  no_antialias_up=False, init_type="xavier", normG="instance")


def parse(tmp_path, args, options=TrainOptions):
    root = tmp_path / "root"
    for sub in ("trainA", "trainB", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name p --gpu_ids -1 "
                   f"{args}").parse()


# ---------------------------------------------------------------- the presets

@pytest.mark.parametrize("model", ["cycle_gan", "distance_gan", "distance_gan --self_distance", "gcgan"])
def test_each_baseline_takes_its_authors_defaults_and_records_them(tmp_path, model):
    options = TrainOptions(f"--dataroot {tmp_path} --checkpoints_dir {tmp_path / 'ck'} --name p "
                           f"--gpu_ids -1 --model {model}")
    opt = options.parse()
    expected = AUTHORS[model.split()[0]]
    assert {k: getattr(opt, k) for k in expected} == expected
    options.save_options(opt)
    text = (tmp_path / "ck" / "p" / "train_opt.txt").read_text()
    saved = json.loads((tmp_path / "ck" / "p" / "train_opt.json").read_text())
    for key, value in expected.items():
        assert f"{key:>25}: {str(value):<30}" in text, key  # recorded, and not marked as changed
        assert saved[key] == value


@pytest.mark.parametrize("args", ["--model cut", "--model cut --CUT_mode FastCUT", "--model sincut"])
def test_cut_fastcut_and_sincut_keep_the_framework_values(tmp_path, args):
    opt = parse(tmp_path, args)
    expected = dict(CUT_VALUES)
    if "sincut" in args:
        expected["normG"] = "instance"  # unused by its StyleGAN2 networks, as before
    assert {k: getattr(opt, k) for k in expected} == expected
    if "FastCUT" in args:
        assert (opt.n_epochs, opt.n_epochs_decay, opt.batch_size) == (150, 50, 1)


def test_flags_on_the_command_line_win_over_a_preset(tmp_path):
    opt = parse(tmp_path, "--model cycle_gan --n_epochs 7 --no_antialias False --init_type xavier "
                          "--crop_in_decay_epochs False --load_size 300")
    assert (opt.n_epochs, opt.no_antialias, opt.init_type, opt.crop_in_decay_epochs, opt.load_size) == \
        (7, False, "xavier", False, 300)
    assert (opt.n_epochs_decay, opt.no_antialias_up) == (100, True)  # the rest of the preset stays
    opt = parse(tmp_path, "--model distance_gan --batch_size 4 --padding_type reflect --normG instance "
                          "--init_bias zero --lr_policy linear --preprocess resize_and_crop")
    assert (opt.batch_size, opt.padding_type, opt.normG, opt.init_bias, opt.lr_policy, opt.preprocess) == \
        (4, "reflect", "instance", "zero", "linear", "resize_and_crop")
    assert opt.normD == "instance_affine"
    opt = parse(tmp_path, "--model gcgan --gcgan_variant shared --no_dropout False --batch_size 1")
    assert (opt.gcgan_variant, opt.no_dropout, opt.batch_size, opt.load_size) == ("shared", False, 1, 288)
    opt = parse(tmp_path, "--model cycle_gan --no_antialias")  # the plain switch still works
    assert opt.no_antialias is True


def test_testing_builds_the_trained_networks_with_its_own_data_settings(tmp_path):
    opt = parse(tmp_path, "--model distance_gan", TestOptions)
    assert (opt.padding_type, opt.normG, opt.no_antialias, opt.resize_filter) == \
        ("zero", "instance_affine", True, "bilinear")
    # test.py's own: load_size = crop_size, no preset batch or preprocessing
    assert (opt.load_size, opt.preprocess, opt.batch_size) == (256, "resize_and_crop", 1)
    model = create_model(parse(tmp_path, "--model gcgan --ngf 4", TestOptions))
    assert model.model_names == ["G"]


@pytest.mark.parametrize("model,counts", [
    # parameter counts of the authors' networks (the CycleGAN G and D at ngf = ndf = 64;
    # DistanceGAN adds 2 x 5,248 affine parameters to G's norms and 2 x 896 to D's)
    ("cycle_gan", {"G_A": 11_378_179, "G_B": 11_378_179, "D_A": 2_764_737, "D_B": 2_764_737}),
    ("distance_gan", {"G": 11_388_675, "D": 2_766_529}),
    ("gcgan", {"G": 11_378_179, "G_gc": 11_378_179, "D": 2_764_737, "D_gc": 2_764_737}),
    ("gcgan --gcgan_variant shared", {"G": 11_378_179, "D": 2_764_737, "D_gc": 2_764_737}),
])
def test_the_presets_build_the_authors_networks(tmp_path, monkeypatch, model, counts):
    opt = parse(tmp_path, f"--model {model}")
    # weightless networks on the meta device; the GAN loss's label buffers cannot leave it
    for module in ("models.cycle_gan_model", "models.one_sided_model"):
        monkeypatch.setattr(f"{module}.GANLoss", lambda mode: torch.nn.Identity())
    with torch.device("meta"):
        built = create_model(opt)
    assert {n: sum(p.numel() for p in net.parameters()) for n, net in built.networks()} == counts


def test_distancegan_generator_keys_are_the_codes(tmp_path):
    """Zero padding leaves out the pad layers: model.0 is the first conv (3 -> 64, 7x7, padding
    3), model.1 its affine norm, model.24 the last conv, as the authors' ResnetGenerator."""
    G = define_G(3, 3, 64, "resnet_9blocks", "instance_affine", no_antialias=True, no_antialias_up=True,
                 padding_type="zero")
    sd = G.state_dict()
    assert sd["model.0.weight"].shape == (64, 3, 7, 7) and G.model[0].padding == (3, 3)
    assert sd["model.1.weight"].shape == (64,) and "model.1.running_mean" not in sd
    assert sd["model.24.weight"].shape == (3, 64, 7, 7) and len(G.model) == 26
    assert "model.9.conv_block.0.weight" in sd and "model.9.conv_block.3.weight" in sd
    x = torch.randn(1, 3, 16, 16)
    assert G(x).shape == x.shape
    assert guess_generator_options(sd) == {"padding_type": "zero", "ngf": 64, "input_nc": 3,
                                           "normG": "instance_affine", "netG": "resnet_9blocks",
                                           "no_antialias": True, "no_antialias_up": True,
                                           "no_dropout": True, "output_nc": 3}


def test_zero_padding_pads_with_zeros():
    """One 7x7 conv of the zero-padded G equals the reflect-padded G's conv on a zero-padded
    input: only the padding differs."""
    torch.manual_seed(0)
    zero = define_G(3, 3, 4, "resnet_6blocks", padding_type="zero", no_antialias=True)
    reflect = define_G(3, 3, 4, "resnet_6blocks", no_antialias=True)
    x = torch.randn(1, 3, 12, 12)
    conv = reflect.model[1]
    conv.load_state_dict(zero.model[0].state_dict())
    assert torch.allclose(zero.model[0](x), conv(torch.nn.functional.pad(x, (3, 3, 3, 3))), atol=1e-6)


def test_init_bias_and_affine_instance_norms():
    torch.manual_seed(0)
    default = define_D(3, 8, "basic", norm="instance_affine", init_type="normal", no_antialias=True,
                       init_bias="default")
    zero = define_D(3, 8, "basic", norm="instance_affine", init_type="normal", no_antialias=True)
    conv = default.model[2]
    bound = 1 / math.sqrt(conv.weight[0].numel())  # PyTorch's own: uniform(-1/sqrt(fan_in), ...)
    assert conv.bias.abs().max() <= bound and conv.bias.abs().min() > 0
    assert all(not m.bias.detach().any() for m in zero.modules() if isinstance(m, torch.nn.Conv2d))
    norm = default.model[3]
    assert isinstance(norm, torch.nn.InstanceNorm2d) and norm.affine
    assert not norm.bias.detach().any() and 0 < float((norm.weight.detach() - 1).abs().max()) < 0.1
    with pytest.raises(Exception, match="init_bias"):
        init_weights(default, "normal", 0.02, "ones")


# ---------------------------------------------------------------- schedule and data

@pytest.mark.parametrize("rule,factors", [
    # n_epochs 3, n_epochs_decay 2, epochs 1..5, by the codes' formulas
    ("linear", [1, 1, 1, 2 / 3, 1 / 3]),        # 1 - max(0, e - 3) / 3
    ("linear_gcgan", [1, 1, 2 / 3, 1 / 3, 0]),  # 1 - max(0, e + 1 - 3) / 3: the last epoch at 0
    ("linear_2017", [1, 1, 1, 1, 1 / 2]),       # lr - lr/2 after each epoch beyond 3
])
def test_linear_learning_rate_rules(rule, factors):
    assert [linear_lr_factor(e, 3, 2, rule) for e in range(1, 6)] == pytest.approx(factors)
    assert linear_lr_factor(6, 3, 2, rule) >= 0  # after the run, not below 0
    opt = data_opt("x", lr_policy=rule, n_epochs=3, n_epochs_decay=2, epoch_count=1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(optimizer, opt)
    seen = []
    for _ in range(5):  # the loop: train an epoch at the current rate, then step
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(factors)


def test_decay_epochs_keep_cropping_only_with_crop_in_decay_epochs(tmp_path):
    root = make_unaligned(tmp_path / "d", splits=("train",), n_a=1, n_b=1, size=40)
    image = Image.open(os.path.join(root, "trainA", "img_000.png")).convert("RGB")
    direct = np.asarray(image.resize((32, 32), Image.BICUBIC))
    out = {}
    for keep in (False, True):
        dataset = UnalignedDataset(data_opt(root, load_size=36, crop_size=32, n_epochs=1,
                                            crop_in_decay_epochs=keep))
        dataset.current_epoch = 2  # a decay epoch
        torch.manual_seed(0)
        out[keep] = ((dataset[0]["A"].permute(1, 2, 0).numpy() + 1) * 127.5).round()
    assert np.abs(out[False] - direct).max() <= 1  # CUT: resized straight to 32, nothing cropped
    assert np.abs(out[True] - direct).max() > 10   # the baselines: 36, then a 32 crop


def test_resize_shortside_scales_the_shorter_side_up_or_down(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    for size, scaled_size in ((32, (44, 32)), (64, (89, 64))):  # down and up
        opt = data_opt(tmp_path, preprocess="resize_shortside_and_crop", load_size=size,
                       crop_size=size, resize_filter="bilinear")
        transform = get_transform(opt, convert=False)
        assert transform(image).size == (size, size)  # then a square crop
        # 70 x 50 -> 44.8 x 32 and 89.6 x 64: the longer side truncated, as torchvision's Scale
        scaled = transform.transforms[0](image)
        assert scaled.size == scaled_size
        assert np.array_equal(np.asarray(scaled), np.asarray(image.resize(scaled_size, Image.BILINEAR)))


# ---------------------------------------------------------------- DistanceGAN, batch level

def test_batch_level_distance_statistics_by_hand():
    # six 1x1x1 images in groups of 2: (0, 1), (3, 7), (2, 5)
    images = torch.tensor([0.0, 1.0, 3.0, 7.0, 2.0, 5.0]).view(6, 1, 1, 1)
    # group distances: mean(|0-3|, |1-7|) = 4.5, mean(|0-2|, |1-5|) = 3, mean(|3-2|, |7-5|) = 1.5
    mean, std = 3.0, math.sqrt((1.5 ** 2 + 0 + 1.5 ** 2) / 3)
    assert distance_statistics(images, group=2) == pytest.approx((mean, std))
    assert distance_statistics(images, group=2, chunk=1) == pytest.approx((mean, std))
    # a 7th image makes an incomplete group: left out, as the code skips short batches
    assert distance_statistics(torch.cat([images, torch.ones(1, 1, 1, 1)]), group=2) == pytest.approx((mean, std))
    # self distance of a group: the mean |top - bottom| over its images (H = 2)
    tall = torch.tensor([[1.0, 3.0], [0.0, 4.0], [2.0, 2.0], [5.0, 1.0]]).view(4, 1, 2, 1)
    # per image 2, 4, 0, 4 -> groups 3 and 2
    assert distance_statistics(tall, group=2, self_distance=True) == pytest.approx((2.5, 0.5))
    assert distance_statistics(tall, group=1, self_distance=True) == pytest.approx(
        (2.5, math.sqrt((0.25 + 2.25 + 6.25 + 2.25) / 4)))
    pixels = torch.tensor([0, 51, 255, 102, 204, 153], dtype=torch.uint8).view(6, 1, 1, 1)
    decoded = (pixels.float() / 255 - 0.5) / 0.5
    assert distance_statistics(pixels, 2, decode=lambda p: (p.float() / 255 - 0.5) / 0.5) == \
        pytest.approx(distance_statistics(decoded, 2))
    with pytest.raises(ValueError, match="at least 2 groups"):
        distance_statistics(images[:3], group=2)


def test_batch_self_distance_loss_by_hand():
    real = torch.tensor([[1.0, 3.0], [0.0, 4.0]]).view(2, 1, 2, 1)  # half distances 2 and 4
    fake = torch.tensor([[0.0, 1.0], [2.0, 2.0]]).view(2, 1, 2, 1)  # 1 and 0
    stats_A, stats_B = (2.0, 0.5), (1.0, 0.25)
    # the code: one distance per batch, 3 and 0.5: |(3 - 2) / 0.5 - (0.5 - 1) / 0.25| = 4
    assert float(self_distance_loss(real, fake, stats_A, stats_B)) == pytest.approx(4.0)
    # per image: |0 - 0| and |4 - (-4)| -> 4 as well here; a case where they differ:
    fake2 = torch.tensor([[0.0, 3.0], [2.0, 2.0]]).view(2, 1, 2, 1)  # 3 and 0 -> batch 1.5
    assert float(self_distance_loss(real, fake2, stats_A, stats_B)) == pytest.approx(abs(2 - 2))
    per_image = (abs(0 - 8) + abs(4 - (-4))) / 2
    assert float(self_distance_loss(real, fake2, stats_A, stats_B, level="image")) == pytest.approx(per_image)


@pytest.mark.parametrize("level", ["batch", "image"])
def test_distance_losses_gradients_match_finite_differences(level):
    g = torch.Generator().manual_seed(3)
    real, fake = (torch.rand(3, 2, 6, 6, generator=g, dtype=torch.float64).requires_grad_()
                  for _ in range(2))
    stats = ((0.3, 0.1), (0.4, 0.2))
    assert torch.autograd.gradcheck(lambda a, b: self_distance_loss(a, b, *stats, level=level),
                                    (real, fake), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradcheck(lambda a, b: distance_loss(a, b, *stats), (real, fake),
                                    eps=1e-6, atol=1e-8, rtol=1e-6)


def test_statistics_cover_the_whole_training_set_up_to_max_items(tmp_path, capsys):
    root = make_unaligned(tmp_path / "d", splits=("train",), n_a=7, n_b=6, size=16)
    common = (f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name s --model distance_gan "
              "--ngf 4 --ndf 4 --gpu_ids -1 --preprocess none --no_flip")
    opt = TrainOptions(common).parse()
    create_model(opt).setup(opt)
    out = capsys.readouterr().out
    assert "trainA (6 images, 3 batches of 2, pairwise)" in out  # 7 images: 3 full batches
    assert "trainB (6 images, 3 batches of 2, pairwise)" in out
    opt = TrainOptions(common + " --max_items 2 --self_distance").parse()
    create_model(opt).setup(opt)
    assert "trainA (4 images, 2 batches of 2, self)" in capsys.readouterr().out
    # single images: every pair of the 7, whatever the order of the draw
    opt = TrainOptions(common + " --distance_level image").parse()
    model = create_model(opt)
    model.setup(opt)
    pixels = np.stack([np.asarray(Image.open(os.path.join(root, "trainA", f"img_{i:03d}.png")))
                       for i in range(7)]).astype(np.float32)
    images = torch.from_numpy((pixels / 255 - 0.5) / 0.5).permute(0, 3, 1, 2)
    d = [float((images[i] - images[j]).abs().mean()) for i in range(7) for j in range(i + 1, 7)]
    mean = sum(d) / len(d)
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / len(d))
    assert model.distance_stats["A"] == pytest.approx((mean, std), rel=1e-4)  # float32 sums


# ---------------------------------------------------------------- GcGAN's two variants

@pytest.mark.parametrize("variant", ["cross", "shared"])
def test_gcgan_variants_train_their_generators(tmp_path, variant):
    opt = parse(tmp_path, f"--model gcgan --gcgan_variant {variant} --ngf 4 --ndf 4 --netG resnet_6blocks "
                          "--pool_size 1")
    torch.manual_seed(0)
    model = create_model(opt)
    generators = ["G", "G_gc"] if variant == "cross" else ["G"]
    assert model.model_names == generators + ["D", "D_gc"]
    in_adam = {id(p) for p in model.optimizer_G.param_groups[0]["params"]}
    assert in_adam == {id(p) for n in generators for p in getattr(model, "net" + n).parameters()}
    if variant == "cross":  # two generators, each with its own initial weights
        assert not torch.equal(model.netG.model[1].weight, model.netG_gc.model[1].weight)
    model.setup(opt)
    before = snapshot(model)
    for step in range(2):
        model.set_input(batch(1, seed=step))
        model.optimize_parameters()
    assert changed_networks(model, before) == set(model.model_names)
    model.save_networks("latest")
    files = sorted(os.listdir(tmp_path / "ck" / "p"))
    assert files == sorted(f"latest_net_{n}.pth" for n in model.model_names)
    saved = torch.load(tmp_path / "ck" / "p" / f"latest_net_{generators[-1]}.pth", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in getattr(model, "net" + generators[-1]).state_dict().items())


def test_cityscapes_script_runs_gcgan_shared_as_its_authors(tmp_path):
    """run_dataset.sh maps the baseline modes to their models; cityscapes.sh adds GcGAN's
    Cityscapes settings (shared generator, identity 0.3 for training).  A stand-in `python` on
    PATH prints the command instead of running it."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    script = os.path.join(ROOT, "scripts", "cityscapes.sh")

    def command(*args):
        proc = subprocess.run(["bash", script, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()
    train = command("train", "GcGAN", "--gpu_ids", "-1")
    assert train == ("train.py --dataroot ./datasets/cityscapes --name cityscapes_GcGAN --model gcgan "
                     "--direction BtoA --gcgan_variant shared --lambda_identity 0.3 --gpu_ids -1")
    assert command("test", "GcGAN").startswith("test.py --dataroot ./datasets/cityscapes --name "
                                               "cityscapes_GcGAN --model gcgan --num_test 500 "
                                               "--direction BtoA --gcgan_variant shared")
    assert "--model distance_gan --self_distance" in command("train", "SelfDistance")
    assert "--CUT_mode FastCUT" in command("train", "FastCUT")


def test_translate_rebuilds_a_zero_padded_generator(tmp_path):
    opt = parse(tmp_path, "--model distance_gan --ngf 4 --ndf 4 --netG resnet_6blocks")
    model = create_model(opt)
    model.save_networks("latest")
    with open(tmp_path / "ck" / "p" / "train_opt.json", "w") as f:
        json.dump({k: v for k, v in vars(opt).items() if isinstance(v, (str, int, float, bool))}, f)
    translator = load_translator(str(tmp_path / "ck" / "p"), device="cpu")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(translator.translate_tensor(x), model.netG(x).clamp(-1, 1), atol=1e-6)
