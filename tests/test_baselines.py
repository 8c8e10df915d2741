"""The one-sided baselines: DistanceGAN, SelfDistance (--model distance_gan [--self_distance]) and
GcGAN (--model gcgan --geometry rot|vf).  Options and their one-line errors, the new losses
against hand-computed values and float64 finite differences, training steps, the NaN guard, the
distance statistics, and train.py/test.py end to end with exact resume."""
import math
import os

import pytest
import torch

import test as test_script
from conftest import make_unaligned, write_images
from models import MODELS, create_model
from models.distance_gan_model import DistanceGANModel
from models.gcgan_model import GcGANModel
from models.losses import (distance_loss, distance_statistics, geometry_consistency_loss,
                           geometry_transform, self_distance_loss)
from models.translator import find_generator_file
from options.test_options import TestOptions
from options.train_options import TrainOptions
from test_cycle_gan import (assert_gradient_matches, assert_one_image_gradient_equals_two_copies,
                            batch, changed_networks, checked, run, snapshot)
from util.errors import NonFiniteLossError, UserError

SMALL = "--ngf 4 --ndf 4 --gpu_ids -1 --netG resnet_6blocks"
STATS = {"A": (0.5, 0.25), "B": (0.4, 0.2)}  # mean and std of distances, set by hand in unit tests


pytestmark = pytest.mark.usefixtures("one_thread")


def build(tmp_path, model, extra="", train=True, seed=0):
    root = tmp_path / "root"
    for sub in ("trainA", "trainB", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = TrainOptions if train else TestOptions
    opt = options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name m --model {model} "
                  f"{SMALL} {extra}").parse()
    torch.manual_seed(seed)
    model = create_model(opt)
    if isinstance(model, DistanceGANModel) and model.isTrain:
        model.distance_stats = dict(STATS)  # so that setup() does not estimate them from images
    return opt, model


# (model, options, batch size) of every variant
VARIANTS = {
    "distance_gan": ("distance_gan", "--batch_size 2", 2),
    "self_distance": ("distance_gan", "--self_distance", 1),
    "gcgan_rot": ("gcgan", "", 1),
    "gcgan_vf": ("gcgan", "--geometry vf", 1),
}


# ---------------------------------------------------------------- options

def test_registered_with_the_authors_defaults(tmp_path):
    assert MODELS["distance_gan"] is DistanceGANModel and MODELS["gcgan"] is GcGANModel
    opt, model = build(tmp_path, "distance_gan", "--batch_size 2")
    assert (opt.lambda_distance, opt.max_items, opt.self_distance, opt.unnormalized_distances,
            opt.self_distance_halves) == (1.0, 900, False, False, "top_bottom")
    assert (opt.gan_mode, opt.pool_size, opt.beta1, opt.beta2, opt.lr) == ("lsgan", 50, 0.5, 0.999, 2e-4)
    assert model.model_names == ["G", "D"] and model.loss_names == ["G_GAN", "distance", "G", "D"]
    opt, model = build(tmp_path, "gcgan")
    assert (opt.geometry, opt.lambda_GAN, opt.lambda_AB, opt.lambda_gc, opt.lambda_identity) == \
        ("rot", 1.0, 10.0, 2.0, 0.5)
    assert (opt.gan_mode, opt.pool_size) == ("lsgan", 50)
    assert model.model_names == ["G", "G_gc", "D", "D_gc"]  # the preset's cross variant
    assert sorted(model.image_pools) == ["fake_B", "fake_gc_B"]
    for name in ("distance_gan", "gcgan"):  # test.py builds and loads G only
        _, test_model = build(tmp_path, name, train=False)
        assert test_model.model_names == ["G"] and test_model.generator_name == "G"


@pytest.mark.parametrize("model,extra,needle", [
    ("distance_gan", "--batch_size 1", r"compares pairs of images of a batch, so it needs --batch_size "
                                       r"2 or more \(got 1\); or pass --self_distance"),
    ("distance_gan", "--batch_size 2 --max_items 1", r"--max_items 1: .* at least 2 batches per domain"),
    ("distance_gan", "--self_distance --max_items 0", r"at least 2 batches per domain"),
    ("distance_gan", "--self_distance --lambda_distance -1", r"--lambda_distance must be 0 or more"),
    ("distance_gan", "--self_distance --dataset_mode single", r"--dataset_mode single has no B images"),
    ("gcgan", "--dataset_mode singleimage", r"use --dataset_mode unaligned \(got singleimage\)"),
    ("gcgan", "--preprocess scale_width", r"--geometry rot needs square training images, .* use "
                                          r"--preprocess resize_and_crop .* or --geometry vf"),
    ("gcgan", "--input_nc 1", r"identity loss .* --input_nc == --output_nc .*--lambda_identity 0"),
    ("gcgan", "--lambda_gc -2", r"--lambda_gc must be 0 or more"),
    ("gcgan", "--pool_size -1", r"--pool_size must be 0"),
])
def test_impossible_options_are_one_line_errors(tmp_path, model, extra, needle):
    with pytest.raises(UserError, match=needle) as info:
        build(tmp_path, model, extra)
    assert "\n" not in str(info.value)


def test_accepted_combinations(tmp_path):
    build(tmp_path, "distance_gan", "--max_items 1 --unnormalized_distances --batch_size 2")
    build(tmp_path, "gcgan", "--geometry vf --preprocess scale_width")
    build(tmp_path, "gcgan", "--input_nc 1 --lambda_identity 0")


# ---------------------------------------------------------------- losses: values by hand

def test_pairwise_distance_loss_by_hand():
    # three 1x1x2 images: d(x_i, x_j) = mean |x_i - x_j| over their 2 elements
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]).view(3, 1, 1, 2)
    fake = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 2.0]]).view(3, 1, 1, 2)
    # pairs (0,1) (0,2) (1,2): d_A = 0.5, 1, 0.5; d_B = 1, 1.5, 2.5
    # standardised with (0.5, 0.25) and (0.4, 0.2): A -> 0, 2, 0; B -> 3, 5.5, 10.5
    expected = (abs(0 - 3) + abs(2 - 5.5) + abs(0 - 10.5)) / 3
    assert float(distance_loss(real, fake, STATS["A"], STATS["B"])) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 2"):
        distance_loss(real[:1], fake[:1], STATS["A"], STATS["B"])


def test_self_distance_loss_by_hand_for_both_splits():
    real = torch.tensor([[1.0, 2.0], [3.0, 5.0]]).view(1, 1, 2, 2)  # rows (1, 2), (3, 5)
    fake = torch.tensor([[0.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    # top/bottom: A: mean(|1-3|, |2-5|) = 2.5; B: mean(0, 1) = 0.5
    top = abs((2.5 - 0.5) / 0.25 - (0.5 - 0.4) / 0.2)
    # left/right: A: mean(|1-2|, |3-5|) = 1.5; B: mean(0, 1) = 0.5
    left = abs((1.5 - 0.5) / 0.25 - (0.5 - 0.4) / 0.2)
    assert float(self_distance_loss(real, fake, STATS["A"], STATS["B"])) == pytest.approx(top)
    assert float(self_distance_loss(real, fake, STATS["A"], STATS["B"], "left_right")) == pytest.approx(left)
    # an odd height leaves the middle row out: rows (1), [2], (4) -> |1 - 4| = 3
    odd = torch.tensor([1.0, 2.0, 4.0]).view(1, 1, 3, 1)
    assert float(self_distance_loss(odd, odd * 0, (0.0, 1.0), (0.0, 1.0))) == pytest.approx(3.0)


def test_distance_statistics_by_hand():
    images = torch.tensor([0.0, 1.0, 3.0, 7.0]).view(4, 1, 1, 1)
    pairs = [1, 3, 7, 2, 6, 4]  # |x_i - x_j| for i < j
    mean = sum(pairs) / 6
    std = math.sqrt(sum((p - mean) ** 2 for p in pairs) / 6)  # population std, as the authors
    got = distance_statistics(images, chunk=2)  # chunks must not lose or repeat pairs
    assert got == pytest.approx((mean, std))
    halves = torch.tensor([[0.0, 2.0], [1.0, 2.0]]).view(2, 1, 2, 1)  # half distances 2 and 1
    assert distance_statistics(halves, self_distance=True) == pytest.approx((1.5, 0.5))


def test_geometry_transforms_and_consistency_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert geometry_transform(x, "rot").view(2, 2).tolist() == [[3.0, 1.0], [4.0, 2.0]]  # clockwise
    assert geometry_transform(x, "vf").view(2, 2).tolist() == [[3.0, 4.0], [1.0, 2.0]]
    for geometry in ("rot", "vf"):
        assert torch.equal(geometry_transform(geometry_transform(x, geometry), geometry, inverse=True), x)
    # G(f(x)) = [[0, 1], [4, 2]]: undoing the clockwise turn gives [[1, 2], [0, 4]]
    fake_gc = torch.tensor([[0.0, 1.0], [4.0, 2.0]]).view(1, 1, 2, 2)
    expected = 20 * (0 + 0 + 3 + 0) / 4
    assert float(geometry_consistency_loss(x, fake_gc, "rot", 20.0)) == pytest.approx(expected)
    # vf: f^-1(G(f(x))) = [[4, 2], [0, 1]] -> |1-4| + |2-2| + |3-0| + |4-1| = 9
    assert float(geometry_consistency_loss(x, fake_gc, "vf", 2.0)) == pytest.approx(2 * 9 / 4)


# ---------------------------------------------------------------- losses: finite differences

def random_images(n, seed, size=6):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, size, size, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)


@pytest.mark.parametrize("loss", ["pairwise", "top_bottom", "left_right"])
def test_distance_losses_gradients_match_finite_differences(loss):
    real, fake = random_images(3, 1), random_images(3, 2)
    if loss == "pairwise":
        def fn(a, b):
            return distance_loss(a, b, STATS["A"], STATS["B"])
    else:
        def fn(a, b):
            return self_distance_loss(a, b, STATS["A"], STATS["B"], loss)
    assert torch.autograd.gradcheck(fn, (real, fake), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("geometry", ["rot", "vf"])
def test_geometry_consistency_gradient_matches_finite_differences(geometry):
    fake, fake_gc = random_images(2, 3), random_images(2, 4)
    assert torch.autograd.gradcheck(lambda a, b: geometry_consistency_loss(a, b, geometry, 20.0),
                                    (fake, fake_gc), eps=1e-6, atol=1e-8, rtol=1e-6)
    # the gradient handed back to G(f(x)) is contiguous (instance_norm's backward needs it)
    geometry_consistency_loss(fake, fake_gc, geometry, 1.0).backward()
    assert fake_gc.grad.is_contiguous()


def double_model(tmp_path, variant, extra=""):
    """A tiny model of `variant` in float64, with the discriminators frozen and a batch set."""
    name, options, n = VARIANTS[variant]
    opt, model = build(tmp_path, name, f"{options} {extra}")
    model.set_input(batch(n))
    for _, net in model.networks():
        net.double()
    model.criterionGAN.double()
    model.real_A, model.real_B = model.real_A.double(), model.real_B.double()
    model.set_requires_grad(model.discriminators(), False)
    return model


@pytest.mark.parametrize("variant", ["distance_gan", "self_distance", "gcgan_rot"])
def test_generator_objective_gradient_matches_finite_differences(tmp_path, variant):
    """The whole G objective through the generator (and the frozen discriminators)."""
    model = double_model(tmp_path, variant)

    def objective():
        model.forward()
        return model.compute_G_loss()
    # as tests/test_cycle_gan.py: several generator passes hold many ReLU kinks, so a smaller
    # step; a wrong gradient is off by percents, far above 1e-5
    assert_gradient_matches(objective, list(model.netG.parameters()), step=1e-7, tol=1e-5)


def test_gcgan_gradient_of_one_image_equals_that_of_two_copies(tmp_path):
    """Style guide 14, through the rotations: catches a non-contiguous gradient reaching
    PyTorch's instance_norm backward for a batch of one."""
    model = double_model(tmp_path, "gcgan_rot")
    assert_one_image_gradient_equals_two_copies(model, list(model.netG.parameters()))


# ---------------------------------------------------------------- objectives and steps

@torch.no_grad()  # values only
def test_model_objectives_combine_the_terms_with_their_weights(tmp_path):
    model = double_model(tmp_path, "distance_gan", "--lambda_distance 3")
    model.forward()
    g = float(model.compute_G_loss().detach())
    a, b = model.real_A.detach(), model.fake_B.detach()
    d_A = float((a[0] - a[1]).abs().mean()) - 0.5
    d_B = float((b[0] - b[1]).abs().mean()) - 0.4
    assert model.loss_distance.item() == pytest.approx(3 * abs(d_A / 0.25 - d_B / 0.2))
    assert g == pytest.approx(model.loss_G_GAN.item() + model.loss_distance.item())

    for variant in ("shared", "cross"):  # G(f(x)) and G(f(y)) by G itself, or by G_gc
        model = double_model(tmp_path, "gcgan_rot", "--lambda_AB 3 --lambda_gc 2 --lambda_identity "
                                                    f"0.5 --lambda_GAN 0.5 --gcgan_variant {variant}")
        G_gc = model.netG_gc if variant == "cross" else model.netG
        model.forward()
        g = float(model.compute_G_loss().detach())
        assert torch.equal(model.fake_gc_B, G_gc(torch.rot90(model.real_A, -1, (2, 3))))
        unturned = torch.rot90(model.fake_gc_B.detach(), 1, (2, 3))  # anticlockwise undoes clockwise
        assert model.loss_gc.item() == pytest.approx(6 * float((model.fake_B - unturned).abs().mean()))
        real_B = model.real_B
        assert model.loss_idt.item() == pytest.approx(1.5 * float((model.netG(real_B) - real_B).abs().mean()))
        turned = torch.rot90(real_B, -1, (2, 3))
        assert model.loss_idt_gc.item() == pytest.approx(1.5 * float((G_gc(turned) - turned).abs().mean()))
        gan = 0.5 * float(((model.netD(model.fake_B) - 1) ** 2).mean())  # lsgan
        assert model.loss_G_GAN.item() == pytest.approx(gan)
        gan_gc = 0.5 * float(((model.netD_gc(model.fake_gc_B) - 1) ** 2).mean())
        assert model.loss_G_GAN_gc.item() == pytest.approx(gan_gc)
        parts = [model.loss_G_GAN, model.loss_G_GAN_gc, model.loss_gc, model.loss_idt, model.loss_idt_gc]
        assert g == pytest.approx(float(sum(parts)))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_two_iterations_change_all_networks(tmp_path, variant):
    name, options, n = VARIANTS[variant]
    opt, model = build(tmp_path, name, f"{options} --pool_size 1")
    model.data_dependent_initialize(batch(n))
    model.setup(opt)
    before = snapshot(model)
    for step in range(2):
        model.set_input(batch(n, seed=step))
        losses = model.optimize_parameters()
        assert list(losses) == model.loss_names and all(math.isfinite(v) for v in losses.values())
    assert changed_networks(model, before) == set(model.model_names)
    assert all(len(pool) == 1 for pool in model.image_pools.values())


def test_nan_guard_stops_or_skips_the_generator_step(tmp_path):
    opt, model = build(tmp_path, "distance_gan", "--self_distance")
    model.setup(opt)
    model.set_input(batch())
    model.opt.lambda_distance = float("nan")
    with pytest.raises(NonFiniteLossError, match="loss distance is nan"):
        model.optimize_parameters()

    opt, model = build(tmp_path, "gcgan", "--nan_guard skip")
    model.setup(opt)
    model.set_input(batch())
    model.opt.lambda_gc = float("nan")
    before = snapshot(model)
    model.optimize_parameters()
    assert changed_networks(model, before) == {"D", "D_gc"}  # G's update left out, the Ds' made
    assert model.skipped_steps == 1


def test_rot_refuses_a_non_square_batch_in_one_line(tmp_path):
    _, model = build(tmp_path, "gcgan")
    data = batch()
    data["A"] = data["A"][..., :28]
    with pytest.raises(UserError, match=r"image a0.png is 28x32 pixels .* --geometry rot needs square"):
        model.set_input(data)


def test_distance_statistics_are_estimated_once_without_touching_the_rng(tmp_path):
    root = make_unaligned(tmp_path / "data", splits=("train",), n_a=6, n_b=7, size=40)
    common = (f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name s --model distance_gan "
              f"{SMALL} --load_size 36 --crop_size 32 --max_items 3")
    stats = []
    for extra in ("--batch_size 2", "--self_distance", "--self_distance"):
        opt = TrainOptions(f"{common} {extra}").parse()
        model = create_model(opt)
        torch.manual_seed(5)
        model.setup(opt)
        after_setup = torch.rand(3)
        torch.manual_seed(5)
        assert torch.equal(after_setup, torch.rand(3))  # the estimate left torch's RNG as it was
        stats.append(model.distance_stats)
    for s in stats:
        assert all(mean > 0 and std > 0 for mean, std in s.values())
    assert stats[1] == stats[2] and stats[0] != stats[1]  # fixed draw; pairwise vs self distances

    write_images(tmp_path / "one" / "trainA", 1, 40, seed=0)
    write_images(tmp_path / "one" / "trainB", 2, 40, seed=1)
    opt = TrainOptions(f"{common} --self_distance --dataroot {tmp_path / 'one'}").parse()
    with pytest.raises(UserError, match=r"trainA holds 1 image\(s\): .* at least 2 batches of 2 per "
                                        r"domain; add images, lower --batch_size or pass "
                                        r"--unnormalized_distances"):
        create_model(opt).setup(opt)


def test_translate_does_not_take_the_second_discriminator_for_a_generator(tmp_path):
    path = tmp_path / "latest_net_D_gc.pth"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="discriminator"):
        find_generator_file(str(path))


# ---------------------------------------------------------------- train.py / test.py

RUN = ("--ngf 4 --ndf 4 --load_size 36 --crop_size 32 --num_threads 0 --gpu_ids -1 --display_id 0 "
       "--print_freq 1 --display_freq 1 --n_epochs 1 --n_epochs_decay 1 --seed 1 --pool_size 2 "
       "--save_epoch_freq 1 --save_latest_freq 3 --batch_size 1")  # batch 1: 4 iterations an epoch
E2E = {"self_distance": ("--model distance_gan --self_distance", ["G", "D"]),
       "gcgan": ("--model gcgan", ["G", "G_gc", "D", "D_gc"])}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    make_unaligned(root / "data")  # 3 A and 4 B images: 4 iterations per epoch
    for name, (model, _) in E2E.items():
        checked(run("train.py", f"--dataroot {root}/data --checkpoints_dir {root}/ck --name {name} "
                                f"{model} {RUN}", root))
    return root


@pytest.mark.parametrize("name", sorted(E2E))
def test_killed_then_continued_run_equals_the_uninterrupted_one(workdir, name):
    """Killed right after the save at iteration 3 (pools full and drawing); resumed, the run ends
    with the uninterrupted run's weights: pools, optimizers and (DistanceGAN) the distance
    statistics come back from latest_state.pth."""
    model, nets = E2E[name]
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name}_kill {model} {RUN}"
    first = run(os.path.join("tests", "faulty_train.py"), f"kill_after_save:1 {common}", workdir)
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    state = torch.load(workdir / "ck" / f"{name}_kill" / "latest_state.pth", weights_only=True)
    assert all(len(pool["images"]) == 2 for pool in state["image_pools"].values())
    if name == "self_distance":
        assert "distance statistics of" in first.stdout
        assert sorted(state["distance_stats"]) == ["A", "B"]
    second = checked(run("train.py", common + " --continue_train", workdir))
    assert "resuming from" in second.stdout and "distance statistics of" not in second.stdout
    for net in nets:
        ref = torch.load(workdir / "ck" / name / f"latest_net_{net}.pth", weights_only=True)
        got = torch.load(workdir / "ck" / f"{name}_kill" / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(ref[k], got[k]) for k in ref), f"net{net} differs"


@pytest.mark.parametrize("name", sorted(E2E))
def test_test_py_loads_g_only_and_writes_fake_b(workdir, name, capsys):
    model, nets = E2E[name]
    ck = workdir / "ck" / name
    assert sorted(p.name for p in ck.glob("latest_net_*.pth")) == sorted(f"latest_net_{n}.pth" for n in nets)
    argv = (f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {model} "
            f"--ngf 4 --load_size 32 --crop_size 32 --gpu_ids -1 --results_dir {workdir}/res "
            "--num_test 2").split()
    assert test_script.main(argv) == 0
    loaded = [line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.splitlines()
              if line.startswith("loading the model from")]
    assert loaded == ["latest_net_G.pth"]
    images = workdir / "res" / name / "test_latest" / "images"
    for visual in ("real_A", "fake_B", "real_B"):
        assert sorted(os.listdir(images / visual)) == ["img_000.png", "img_001.png"], visual
