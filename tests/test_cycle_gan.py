"""CycleGANModel and ImagePool: options, losses (closed forms and float64 finite differences),
training steps, checkpoints, the NaN guard, and train.py/test.py end to end with exact resume."""
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, make_unaligned
from models import MODELS, create_model
from models.cycle_gan_model import CycleGANModel
from models.image_pool import ImagePool
from models.losses import cycle_consistency_loss, identity_loss
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import NonFiniteLossError, UserError

SMALL = "--model cycle_gan --ngf 4 --ndf 4 --gpu_ids -1"
SIZE = 32
# float64 central differences: the step is small enough to rarely cross a ReLU/LeakyReLU/L1 kink,
# large enough for rounding (the same settings as tests/test_norm_grad_guard.py).
FD_STEP = 1e-6
FD_TOL = 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")


def build(tmp_path, extra="", train=True, seed=0):
    root = tmp_path / "root"
    for sub in ("trainA", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = TrainOptions if train else TestOptions
    opt = options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name m {SMALL} {extra}").parse()
    torch.manual_seed(seed)
    return opt, create_model(opt)


def batch(n=1, size=SIZE, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {"A": (torch.rand(n, 3, size, size, generator=g, dtype=torch.float64) * 2 - 1).to(dtype),
            "B": (torch.rand(n, 3, size, size, generator=g, dtype=torch.float64) * 2 - 1).to(dtype),
            "A_paths": [f"a{i}.png" for i in range(n)], "B_paths": [f"b{i}.png" for i in range(n)]}


def snapshot(model):
    return {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in model.networks()}


def changed_networks(model, before):
    return {name for name, net in model.networks()
            if any(not torch.equal(v, before[name][k]) for k, v in net.state_dict().items())}


# ---------------------------------------------------------------- options

def test_registered_with_the_original_options_and_defaults(tmp_path):
    assert MODELS["cycle_gan"] is CycleGANModel
    opt, model = build(tmp_path)
    assert (opt.lambda_A, opt.lambda_B, opt.lambda_identity, opt.pool_size) == (10.0, 10.0, 0.5, 50)
    assert model.loss_names == ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
    assert model.visual_names == ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
    assert model.model_names == ["G_A", "G_B", "D_A", "D_B"]
    assert [g["betas"] for o in model.optimizers for g in o.param_groups] == [(0.5, 0.999)] * 2
    # one Adam per player: G_A and G_B together, D_A and D_B together
    g_params = {id(p) for p in model.optimizer_G.param_groups[0]["params"]}
    assert g_params == {id(p) for p in [*model.netG_A.parameters(), *model.netG_B.parameters()]}
    _, no_idt = build(tmp_path, "--lambda_identity 0")
    assert "idt_A" not in no_idt.visual_names and "idt_B" not in no_idt.visual_names

    test_opt, test_model = build(tmp_path, train=False)
    assert not hasattr(test_opt, "lambda_A")  # training options only, as the original
    assert test_model.model_names == ["G_A", "G_B"]
    assert test_model.visual_names == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]


@pytest.mark.parametrize("extra,needle", [
    ("--input_nc 1", r"identity loss .* --input_nc == --output_nc .*--lambda_identity 0"),
    ("--lambda_A -1", r"--lambda_A must be 0 or more"),
    ("--lambda_identity -0.5", r"--lambda_identity must be 0 or more"),
    ("--pool_size -1", r"--pool_size must be 0"),
    ("--beta2 0.99", r"betas .*0.999.* --beta2 0.99 is not supported"),
    ("--dataset_mode single", r"--dataset_mode single has no B images"),
])
def test_impossible_options_are_one_line_errors(tmp_path, extra, needle):
    with pytest.raises(UserError, match=needle) as info:
        build(tmp_path, extra)
    assert "\n" not in str(info.value)


def test_grayscale_to_rgb_trains_without_the_identity_loss(tmp_path):
    opt, model = build(tmp_path, "--input_nc 1 --lambda_identity 0")
    data = batch()
    data["A"] = data["A"][:, :1]
    model.setup(opt)
    model.set_input(data)
    losses = model.optimize_parameters()
    assert losses["idt_A"] == 0.0 and model.fake_A.shape[1] == 1 and model.fake_B.shape[1] == 3


# ---------------------------------------------------------------- image pool

def test_pool_of_size_zero_passes_the_batch_through():
    pool = ImagePool(0)
    images = torch.randn(3, 3, 4, 4)
    assert pool.query(images) is images and len(pool) == 0


def test_pool_stores_and_returns_new_images_until_full():
    pool = ImagePool(4)
    first, second = torch.randn(3, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.equal(pool.query(first), first) and len(pool) == 3
    state = random.getstate()
    assert torch.equal(pool.query(second), second) and len(pool) == 4
    assert random.getstate() == state  # no draws while filling


def test_full_pool_returns_a_stored_image_half_the_time_and_keeps_the_new_one():
    random.seed(1234)
    pool = ImagePool(8)
    pool.query(-torch.arange(8.0).view(8, 1, 1, 1) - 1)  # stored images are negative
    n = 2000
    returned_stored = 0
    for i in range(n):
        new = torch.full((1, 1, 1, 1), float(i))
        out = pool.query(new)
        if float(out) < i:  # an older image
            returned_stored += 1
            assert any(torch.equal(img, new) for img in pool.images)  # the new one took its slot
        else:
            assert torch.equal(out, new)
        assert len(pool) == 8
    # Binomial(2000, 1/2): standard deviation 22.4; 5 sigma
    assert abs(returned_stored - n / 2) < 5 * math.sqrt(n / 4), returned_stored


def test_pool_draws_python_random_as_the_original():
    """uniform(0, 1) and, for p > 0.5, randint(0, size - 1): the original's calls, in its order."""
    pool = ImagePool(3)
    stored = torch.arange(3.0).view(3, 1, 1, 1)
    pool.query(stored)
    random.seed(7)
    got = [float(pool.query(torch.full((1, 1, 1, 1), 10.0 + i))) for i in range(20)]
    random.seed(7)
    slots, expected = [0.0, 1.0, 2.0], []
    for i in range(20):
        if random.uniform(0, 1) > 0.5:
            slot = random.randint(0, 2)
            expected.append(slots[slot])
            slots[slot] = 10.0 + i
        else:
            expected.append(10.0 + i)
    assert got == expected


def test_pool_state_round_trips_and_a_smaller_pool_keeps_the_first_images():
    pool = ImagePool(3)
    pool.query(torch.randn(3, 2, 4, 4))
    state = pool.state_dict()
    restored = ImagePool(3)
    restored.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(pool.images, restored.images)) and len(restored) == 3
    smaller = ImagePool(2)
    smaller.load_state_dict(state)
    assert len(smaller) == 2 and torch.equal(smaller.images[1], pool.images[1])


# ---------------------------------------------------------------- losses

class Identity(torch.nn.Module):
    """A generator that returns its input: a perfect, trivially cycle-consistent translator."""

    def forward(self, x):
        return x


class Halve(torch.nn.Module):
    def forward(self, x):
        return 0.5 * x


def test_cycle_and_identity_losses_vanish_for_identity_generators(tmp_path):
    opt, model = build(tmp_path)
    data = batch(n=2)
    model.set_input(data)
    model.netG_A, model.netG_B = Identity(), Identity()
    model.forward()
    model.compute_G_loss()
    for name in ("cycle_A", "cycle_B", "idt_A", "idt_B"):
        assert float(getattr(model, "loss_" + name)) == 0.0, name
    # ... and they are not always zero: G = x / 2 gives rec = x / 4, idt = x / 2 (closed forms)
    model.netG_A, model.netG_B = Halve(), Halve()
    model.forward()
    model.compute_G_loss()
    mean_abs_A, mean_abs_B = float(data["A"].abs().mean()), float(data["B"].abs().mean())
    assert float(model.loss_cycle_A) == pytest.approx(10 * 0.75 * mean_abs_A, rel=1e-6)
    assert float(model.loss_cycle_B) == pytest.approx(10 * 0.75 * mean_abs_B, rel=1e-6)
    assert float(model.loss_idt_A) == pytest.approx(10 * 0.5 * 0.5 * mean_abs_B, rel=1e-6)
    assert float(model.loss_idt_B) == pytest.approx(10 * 0.5 * 0.5 * mean_abs_A, rel=1e-6)


def test_objectives_combine_terms_as_the_paper(tmp_path):
    opt, model = build(tmp_path, "--lambda_A 3 --lambda_B 7 --lambda_identity 0.2")
    model.set_input(batch())
    with torch.no_grad():  # values only
        model.forward()
        total = float(model.compute_G_loss())
        d = float(model.compute_D_loss())  # empty pools: the fakes pass through
        lsgan = lambda pred, label: float(((pred - label) ** 2).mean())  # noqa: E731
        expected_D_A = 0.5 * (lsgan(model.netD_A(model.real_B), 1) + lsgan(model.netD_A(model.fake_B), 0))
    parts = [model.loss_G_A, model.loss_G_B, model.loss_cycle_A, model.loss_cycle_B,
             model.loss_idt_A, model.loss_idt_B]
    assert total == pytest.approx(float(sum(parts)))
    assert float(model.loss_cycle_A) == pytest.approx(3 * float((model.rec_A - model.real_A).abs().mean()))
    assert float(model.loss_idt_A) == pytest.approx(7 * 0.2 * float((model.idt_A - model.real_B).abs().mean()))
    assert float(model.loss_idt_B) == pytest.approx(3 * 0.2 * float((model.idt_B - model.real_A).abs().mean()))
    assert float(model.loss_D_A) == pytest.approx(expected_D_A, rel=1e-6)
    assert d == pytest.approx(float(model.loss_D_A + model.loss_D_B))


def double_model(tmp_path, extra=""):
    """A tiny CycleGAN in float64 (networks, GAN loss labels and images)."""
    opt, model = build(tmp_path, "--netG resnet_6blocks " + extra)
    model.set_input(batch())  # checks the sizes (on float32 weightless copies of the networks)
    for _, net in model.networks():
        net.double()
    model.criterionGAN.double()
    model.real_A, model.real_B = model.real_A.double(), model.real_B.double()
    return model


def directional_derivatives(loss_fn, tensors, step=None, seed=0):
    """(autograd, central finite difference) derivatives of loss_fn() along a random direction.

    Each tensor's share of the direction is scaled by its mean magnitude.  Instance norm makes
    the loss invariant to a conv's weight scale, so its sensitivity grows as 1 / |w|; with
    xavier gain 0.02 the weights are ~1e-3, and an unscaled step of 1e-6 moves the activations
    across ReLU kinks (measured: 2-60% errors, no convergence in the step).  Scaled, the
    difference agrees to ~3e-9 relative.  Zero tensors (biases) get the weights' typical scale.
    """
    step = FD_STEP if step is None else step
    g = torch.Generator().manual_seed(seed)
    directions = [torch.randn(t.shape, generator=g, dtype=t.dtype) * max(float(t.detach().abs().mean()), 1e-3)
                  for t in tensors]
    grads = torch.autograd.grad(loss_fn(), tensors)
    analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, directions))
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


def assert_gradient_matches(loss_fn, tensors, step=None, tol=FD_TOL):
    analytic, numeric = directional_derivatives(loss_fn, tensors, step)
    assert abs(numeric) > 1e-9  # the loss does depend on these tensors
    assert abs(analytic - numeric) <= tol * abs(numeric), (analytic, numeric)


def test_cycle_loss_gradient_through_both_generators_matches_finite_differences(tmp_path):
    model = double_model(tmp_path)
    real_A = model.real_A.clone().requires_grad_(True)
    params = [*model.netG_A.parameters(), *model.netG_B.parameters()]
    assert_gradient_matches(
        lambda: cycle_consistency_loss(model.netG_B(model.netG_A(real_A)), real_A, 10.0),
        params + [real_A])


def test_identity_loss_gradient_through_the_generator_matches_finite_differences(tmp_path):
    model = double_model(tmp_path)
    real_B = model.real_B.clone().requires_grad_(True)
    assert_gradient_matches(lambda: identity_loss(model.netG_A(real_B), real_B, 5.0),
                            [*model.netG_A.parameters(), real_B])


def test_generator_objective_gradient_matches_finite_differences(tmp_path):
    """The whole G objective (both GAN terms through the frozen Ds, cycles, identities)."""
    model = double_model(tmp_path)
    model.set_requires_grad([model.netD_A, model.netD_B], False)

    def objective():
        model.forward()
        return model.compute_G_loss()
    # Six generator passes and two discriminators hold many more ReLU/LeakyReLU kinks than one
    # loss: at step 1e-6 one is crossed (relative error 2e-5), at 1e-7 the error is 1e-7.  A
    # wrong gradient is off by percents (the instance-norm bug: ~100%), far above 1e-5.
    assert_gradient_matches(objective, [*model.netG_A.parameters(), *model.netG_B.parameters()],
                            step=1e-7, tol=1e-5)


def test_discriminator_objective_gradient_matches_finite_differences(tmp_path):
    model = double_model(tmp_path, "--pool_size 0")
    with torch.no_grad():
        model.forward()
    assert_gradient_matches(model.compute_D_loss, [*model.netD_A.parameters(), *model.netD_B.parameters()])


def assert_one_image_gradient_equals_two_copies(model, params):
    """Style guide 14: the G objective's gradient for a batch of one equals that for two copies
    of it; catches a wrong batch-of-one backward (PyTorch's instance_norm bug)."""
    def gradient():
        model.forward()
        return torch.autograd.grad(model.compute_G_loss(), params)
    one = gradient()
    model.real_A, model.real_B = model.real_A.repeat(2, 1, 1, 1), model.real_B.repeat(2, 1, 1, 1)
    two = gradient()
    worst = max(float((a - b).norm() / b.norm()) for a, b in zip(one, two) if b.norm() > 0)
    assert worst < 1e-10


def test_generator_gradient_of_one_image_equals_that_of_two_copies(tmp_path):
    model = double_model(tmp_path)
    model.set_requires_grad([model.netD_A, model.netD_B], False)
    assert_one_image_gradient_equals_two_copies(
        model, [*model.netG_A.parameters(), *model.netG_B.parameters()])


# ---------------------------------------------------------------- training steps

def test_two_iterations_change_all_four_networks(tmp_path):
    opt, model = build(tmp_path, "--pool_size 1")
    data = batch()
    model.data_dependent_initialize(data)  # a no-op, but train.py calls it
    model.setup(opt)
    assert len(model.schedulers) == 2
    before = snapshot(model)
    for step in range(2):
        model.set_input(batch(seed=step))
        losses = model.optimize_parameters()
        assert list(losses) == model.loss_names and all(math.isfinite(v) for v in losses.values())
    assert changed_networks(model, before) == {"G_A", "G_B", "D_A", "D_B"}
    assert len(model.fake_A_pool) == len(model.fake_B_pool) == 1


def test_nan_guard_stops_or_skips_the_generator_step(tmp_path):
    opt, model = build(tmp_path)
    model.setup(opt)
    model.set_input(batch())
    model.opt.lambda_A = float("nan")
    with pytest.raises(NonFiniteLossError, match="loss cycle_A is nan"):
        model.optimize_parameters()

    opt, model = build(tmp_path, "--nan_guard skip")
    model.setup(opt)
    model.set_input(batch())
    model.opt.lambda_B = float("nan")
    before = snapshot(model)
    model.optimize_parameters()
    assert changed_networks(model, before) == {"D_A", "D_B"}  # G's update left out, D's made
    assert model.skipped_steps == 1


def test_images_too_small_for_the_networks_are_named_in_one_line(tmp_path):
    opt, model = build(tmp_path)
    data = batch()
    data["B"], data["B_paths"] = batch(size=8)["B"], ["tiny_b.png"]
    with pytest.raises(UserError, match=r"image tiny_b.png becomes 8x8 pixels .* a size net.* cannot take"):
        model.set_input(data)


def test_single_folder_translation_at_test_time(tmp_path):
    _, model = build(tmp_path, train=False)
    data = batch()
    del data["B"], data["B_paths"]
    model.set_input(data)
    model.test()
    assert list(model.get_current_visuals()) == ["real_A", "fake_B", "rec_A"]


def test_checkpoint_keys_are_the_cut_networks_keys(tmp_path):
    opt, model = build(tmp_path)
    model.save_networks("latest")
    folder = tmp_path / "ck" / "m"
    assert sorted(os.listdir(folder)) == [f"latest_net_{n}.pth" for n in ("D_A", "D_B", "G_A", "G_B")]
    # the preset's CycleGAN networks are CUT's without antialiasing (strided/transposed convs)
    cut_opt = TrainOptions(f"--dataroot {tmp_path / 'root'} --checkpoints_dir {tmp_path / 'ck2'} "
                           "--name c --model cut --ngf 4 --ndf 4 --gpu_ids -1 --no_antialias "
                           "--no_antialias_up").parse()
    cut = create_model(cut_opt)
    for ours, theirs in (("G_A", cut.netG), ("G_B", cut.netG), ("D_A", cut.netD), ("D_B", cut.netD)):
        state = torch.load(folder / f"latest_net_{ours}.pth", weights_only=True)
        assert list(state) == list(theirs.state_dict()), ours
        assert not any(k.startswith("module.") for k in state)


# ---------------------------------------------------------------- train.py / test.py

RUN = ("--model cycle_gan --ngf 4 --ndf 4 --load_size 36 --crop_size 32 --num_threads 0 --gpu_ids -1 "
       "--display_id 0 --print_freq 1 --display_freq 1 --n_epochs 1 --n_epochs_decay 1 --seed 1 "
       "--pool_size 2 --save_epoch_freq 1 --save_latest_freq 3")


def run(script, args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + args.split(), cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def checked(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cyclegan")
    make_unaligned(root / "data")  # 3 A and 4 B images: 4 iterations per epoch
    checked(run("train.py", f"--dataroot {root}/data --checkpoints_dir {root}/ck --name ref {RUN}", root))
    return root


def test_train_then_test_from_the_command_line(workdir):
    ck = workdir / "ck" / "ref"
    for prefix in ("latest", "1", "2"):
        for net in ("G_A", "G_B", "D_A", "D_B"):
            assert (ck / f"{prefix}_net_{net}.pth").is_file()
    for visual in ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"):
        assert (ck / "web" / "images" / f"epoch002_{visual}.png").is_file(), visual
    log = (ck / "loss_log.txt").read_text()
    assert "cycle_A: " in log and "idt_B: " in log

    proc = checked(run("test.py", f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name ref "
                                  f"--model cycle_gan --ngf 4 --ndf 4 --load_size 32 --crop_size 32 "
                                  f"--gpu_ids -1 --results_dir {workdir}/res --num_test 2", workdir))
    loaded = [line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines()
              if line.startswith("loading the model from")]
    assert loaded == ["latest_net_G_A.pth", "latest_net_G_B.pth"]  # no discriminator at test
    images = workdir / "res" / "ref" / "test_latest" / "images"
    for visual in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"):
        assert sorted(os.listdir(images / visual)) == ["img_000.png", "img_001.png"], visual


def test_killed_then_continued_run_equals_the_uninterrupted_one(workdir):
    """Exact resume includes the image pools: with --pool_size 2 the pools are full and drawing
    by iteration 3, where the run is killed right after saving; an empty pool after the resume
    (the original's behaviour) would change every later D update."""
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name kill {RUN}"
    first = run(os.path.join("tests", "faulty_train.py"), f"kill_after_save:1 {common}", workdir)
    assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
    state = torch.load(workdir / "ck" / "kill" / "latest_state.pth", weights_only=True)
    assert state["progress"]["total_iters"] == 3
    assert [len(state["image_pools"][k]["images"]) for k in ("fake_A", "fake_B")] == [2, 2]
    second = checked(run("train.py", common + " --continue_train", workdir))
    assert "resuming from" in second.stdout
    for net in ("G_A", "G_B", "D_A", "D_B"):
        ref = torch.load(workdir / "ck" / "ref" / f"latest_net_{net}.pth", weights_only=True)
        got = torch.load(workdir / "ck" / "kill" / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(ref[k], got[k]) for k in ref), f"net{net} differs"


def test_eval_freq_scores_and_keeps_the_a_to_b_generator(tmp_path, monkeypatch):
    """--eval_freq evaluates G_A (A -> B) and keeps it as best_net_G_A.pth (train.py asks the
    model for its generator's name; CUT's is G)."""
    import json

    import train

    scored = []

    class ScriptedEvaluator:
        def __init__(self, opt, device):
            pass

        def __call__(self, netG):
            scored.append({k: v.clone() for k, v in netG.state_dict().items()})
            return {"fid": [3.0, 1.0][len(scored) - 1], "n_fake": 3, "n_real": 4}
    monkeypatch.setattr(train, "TrainingEvaluator", ScriptedEvaluator)
    root = make_unaligned(tmp_path / "data")
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"never read: the evaluator is scripted")
    argv = (f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name ev {RUN} --progress off "
            f"--eval_freq 1 --inception_weights {weights}").split()
    assert train.main(argv) == 0
    folder = tmp_path / "ck" / "ev"
    assert len(scored) == 2
    for epoch, weights_scored in enumerate(scored, 1):  # G_A as saved at that epoch's end, not G_B
        saved = torch.load(folder / f"{epoch}_net_G_A.pth", weights_only=True)
        assert all(torch.equal(saved[k], weights_scored[k]) for k in saved)
    best = torch.load(folder / "best_net_G_A.pth", weights_only=True)
    final = torch.load(folder / "2_net_G_A.pth", weights_only=True)
    assert all(torch.equal(best[k], final[k]) for k in final)  # epoch 2 scored best
    assert json.loads((folder / "best_net_G_A.json").read_text())["epoch"] == 2
