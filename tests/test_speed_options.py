"""Opt-in speed options of training: --amp bf16|fp16, --channels_last, --compile, --fast_path.

Mixed precision changes the numbers by design, so its tests check that training runs, updates
every network and keeps its scaler state across a resume.  channels_last must not change them:
in float64 its losses and gradients equal the default layout's, including at batch size 1, where
PyTorch's instance_norm backward is wrong for channels-last gradients (issue 4) unless our
workaround hands the norms contiguous gradients.
"""
import numpy as np
import pytest
import torch

from models import create_model
from models.speed import unwrap
from models.networks import Upsample, instance_norm_grad_is_wrong
from options.train_options import TrainOptions
from util.errors import UserError

from test_fast_path import batch, build, losses_and_grads, numpy_seed_with_flip

TINY = "--netG resnet_6blocks --ngf 4 --ndf 4 --netF_nc 8 --num_patches 8 --gpu_ids -1"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def train_model(tmp_path, flags, model="cut"):
    (tmp_path / "trainA").mkdir(parents=True, exist_ok=True)
    opt = TrainOptions(f"--dataroot {tmp_path} --checkpoints_dir {tmp_path / 'ck'} --name s "
                       f"--model {model} {TINY if model == 'cut' else TINY.split(' --netF_nc')[0]} "
                       f"{flags}").parse()
    torch.manual_seed(0)
    np.random.seed(0)
    model = create_model(opt)
    model.data_dependent_initialize(batch(dtype=torch.float32))
    model.setup(opt)
    model.parallelize()
    return model


def snapshot(model):
    return {name: {k: v.detach().clone() for k, v in net.state_dict().items()}
            for name, net in model.networks()}


def run_iterations(model, count):
    losses = []
    for i in range(count):
        model.set_input(batch(seed=10 + i, dtype=torch.float32))
        losses.append(model.optimize_parameters())
    return losses


def changed_networks(before, model):
    after = snapshot(model)
    return {name for name in before
            if any(not torch.equal(before[name][k], after[name][k]) for k in before[name])}


@pytest.mark.parametrize("model_name", ["cut", "cycle_gan"])
def test_bf16_autocast_trains_every_network(tmp_path, model_name):
    model = train_model(tmp_path, "--amp bf16", model_name)
    before = snapshot(model)
    losses = run_iterations(model, 2)
    assert all(np.isfinite(v) for step in losses for v in step.values())
    assert changed_networks(before, model) == set(before)
    # the generator ran in bfloat16: its output is a bf16 tensor
    assert model.fake_B.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for _, net in model.networks() for p in net.parameters())


def test_fp16_uses_a_grad_scaler_whose_state_survives_a_resume(tmp_path):
    model = train_model(tmp_path, "--amp fp16")
    assert model.scaler.is_enabled()
    before = snapshot(model)
    run_iterations(model, 3)
    # at the initial scale 2**16 early fp16 gradients overflow: the scaler skips those steps and
    # halves its scale; whatever happened, the scale it holds now is what a resume must restore
    scale = model.scaler.get_scale()
    assert scale <= 2.0 ** 16
    state = model.training_state()
    assert state["grad_scaler"]["scale"] == scale
    resumed = train_model(tmp_path / "resumed", "--amp fp16")
    resumed.load_training_state(state)
    assert resumed.scaler.get_scale() == scale
    # the scale halves per overflow until G's gradients fit (an untrained CUT's are ~500 for
    # activations ~1e-3: measured, G first steps at scale 32, after 11 skipped steps)
    run_iterations(model, 12)
    assert model.scaler.get_scale() < scale
    assert changed_networks(before, model) == set(before)


def test_fp32_runs_keep_an_empty_scaler_state(tmp_path):
    model = train_model(tmp_path, "")
    assert not model.scaler.is_enabled()
    assert model.training_state()["grad_scaler"] == {}


def test_fp16_is_refused_for_sincut(tmp_path):
    (tmp_path / "trainA").mkdir()
    with pytest.raises(UserError, match="--amp fp16 is not supported with --model sincut.*--amp bf16"):
        TrainOptions(f"--dataroot {tmp_path} --checkpoints_dir {tmp_path / 'ck'} --name s "
                     "--model sincut --amp fp16 --gpu_ids -1").parse()


def to_channels_last(model):
    model.memory_format = torch.channels_last
    model.apply_speed_options(model.opt)


@pytest.mark.parametrize("mode", ["FastCUT", "CUT"])
def test_channels_last_gives_the_default_layouts_losses_and_gradients(tmp_path, mode):
    """float64, batch size 1: FastCUT's generator sees single images, where the torch bug bites."""
    extra = f"--CUT_mode {mode} --flip_equivariance False"
    plain = build(tmp_path / "plain", True, extra)
    last = build(tmp_path / "last", True, extra)
    to_channels_last(last)
    assert last.netG.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    data = batch(seed=1)
    seed = numpy_seed_with_flip(False)
    losses_plain, d_plain, g_plain = losses_and_grads(plain, data, seed)
    losses_last, d_last, g_last = losses_and_grads(last, data, seed)
    assert last.real_A.is_contiguous(memory_format=torch.channels_last)
    for name in losses_plain:
        assert losses_last[name] == pytest.approx(losses_plain[name], rel=1e-10, abs=1e-10)
    for a, b in ((d_last, d_plain), (g_last, g_plain)):
        assert float((a - b).norm() / b.norm()) < 1e-10


@pytest.mark.skipif(not instance_norm_grad_is_wrong("cpu"),
                    reason="this torch computes instance_norm gradients right for channels-last")
def test_channels_last_without_the_workaround_would_train_with_wrong_gradients(tmp_path):
    """Why apply_speed_options hooks the norms: without the hooks, FastCUT's gradients in
    channels-last differ from the true ones by far more than rounding."""
    extra = "--CUT_mode FastCUT --flip_equivariance False"
    plain = build(tmp_path / "plain", True, extra)
    last = build(tmp_path / "last", True, extra)
    last.memory_format = torch.channels_last
    for _, net in last.networks():
        net.to(memory_format=torch.channels_last)  # what apply_speed_options does, minus the hooks
    seed = numpy_seed_with_flip(False)
    _, _, g_plain = losses_and_grads(plain, batch(seed=1), seed)
    _, _, g_last = losses_and_grads(last, batch(seed=1), seed)
    assert float((g_last - g_plain).norm() / g_plain.norm()) > 1e-3


def test_compile_trains_and_saves_plain_checkpoints(tmp_path):
    """torch.compile wraps G and D (the 'eager' backend keeps the test fast; inductor is the
    default); the files must keep the original's keys, without torch.compile's _orig_mod."""
    model = train_model(tmp_path, "--compile --compile_backend eager")
    assert hasattr(model.netG, "_orig_mod") and hasattr(model.netD, "_orig_mod")
    assert unwrap(model.netG) is model.netG._orig_mod
    before = snapshot(model)
    run_iterations(model, 2)
    assert changed_networks(before, model) == set(before)
    model.save_networks("latest")
    saved = torch.load(tmp_path / "ck" / "s" / "latest_net_G.pth", weights_only=True)
    assert set(saved) == set(unwrap(model.netG).state_dict())
    assert not any("_orig_mod" in key for key in saved)


def test_fast_path_false_restores_the_original_upsampling(tmp_path):
    fast = train_model(tmp_path / "fast", "--netG resnet_6blocks")
    slow = train_model(tmp_path / "slow", "--fast_path False")
    ups = lambda m: [mod for mod in m.netG.modules() if isinstance(mod, Upsample)]
    assert ups(fast) and all(u.crop_in_conv for u in ups(fast))
    assert all(not u.crop_in_conv for u in ups(slow))
