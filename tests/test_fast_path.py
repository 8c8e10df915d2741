"""The exact fast path of CUT/FastCUT/SinCUT training (--fast_path, on by default).

It computes the PatchNCE keys without autograd and, when the input was not flipped, takes them
from the generator's own forward pass; the antialiased Upsample folds its crops into the
transposed convolution's padding.  Claim: the same losses and the same gradients of G, D and F as
the original's computation (--fast_path False), checked in float64 with the same weights, data
and patch locations, for CUT and FastCUT, flipped and not; plus a float64 finite-difference
check of the fast path's G objective and of the Upsample.
"""
import numpy as np
import pytest
import torch

from models import create_model
from models.networks.layers import Upsample
from options.train_options import TrainOptions

SIZE = 32
TINY = "--netG resnet_6blocks --ngf 4 --ndf 4 --netF_nc 8 --num_patches 16 --gpu_ids -1"
SINCUT_TINY = "--ngf 2 --ndf 2 --netF_nc 8 --load_size 32 --crop_size 32 --gpu_ids -1"
TOL = 1e-10  # float64; measured ~1e-15 (the same sums in another order at most)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def batch(batch_size=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(batch_size, 3, SIZE, SIZE, generator=g, dtype=dtype) * 2 - 1,
            "B": torch.rand(batch_size, 3, SIZE, SIZE, generator=g, dtype=dtype) * 2 - 1,
            "A_paths": ["a.png"] * batch_size, "B_paths": ["b.png"] * batch_size}


def build(tmp_path, fast, extra):
    (tmp_path / "trainA").mkdir(parents=True, exist_ok=True)
    base = SINCUT_TINY if "sincut" in extra else TINY
    opt = TrainOptions(f"--dataroot {tmp_path} --checkpoints_dir {tmp_path / 'ck'} --name f {base} "
                       f"--fast_path {fast} {extra}").parse()
    torch.manual_seed(0)
    np.random.seed(0)
    model = create_model(opt)
    model.data_dependent_initialize(batch(dtype=torch.float32))
    for net in (model.netG, model.netF, model.netD, model.criterionGAN):
        net.double()
    return model


def numpy_seed_with_flip(flip):
    """A numpy seed whose first draw makes forward() flip (draw < 0.5) or not."""
    return next(s for s in range(100) if (np.random.RandomState(s).random_sample() < 0.5) == flip)


def losses_and_grads(model, data, seed):
    """D's loss and gradient, then G's loss and the gradients of G and F, as one training step
    computes them (D is not stepped in between, so both models see the same D)."""
    np.random.seed(seed)
    torch.manual_seed(seed)  # SinCUT's decoder draws noise
    model.set_input(dict(data, A=data["A"].clone(), B=data["B"].clone()))  # SinCUT's R1 marks B
    model.forward()
    loss_D = model.compute_D_loss()
    grads_D = torch.autograd.grad(loss_D, list(model.netD.parameters()))
    loss_G = model.compute_G_loss()
    params = list(model.netG.parameters()) + list(model.netF.parameters())
    grads_G = torch.autograd.grad(loss_G, params, allow_unused=True)
    grads_G = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads_G)]
    losses = {name: float(getattr(model, "loss_" + name).detach()) for name in model.loss_names}
    return losses, torch.cat([g.flatten() for g in grads_D]), torch.cat([g.flatten() for g in grads_G])


CASES = {
    "CUT": "--CUT_mode CUT",
    "FastCUT": "--CUT_mode FastCUT",
    "CUT, batch 2": "--CUT_mode CUT --batch_size 2",
    "CUT, minibatch negatives": "--CUT_mode CUT --batch_size 2 --nce_includes_all_negatives_from_minibatch",
    "SinCUT, batch 2": "--model sincut --batch_size 2",
}


@pytest.mark.parametrize("flip", [False, True], ids=["unflipped", "flipped"])
@pytest.mark.parametrize("case", CASES)
def test_fast_path_gives_the_losses_and_gradients_of_the_original_computation(tmp_path, case, flip):
    extra = CASES[case] + ("" if case == "FastCUT" else f" --flip_equivariance {flip}")
    if "SinCUT" in case and flip:
        pytest.skip("SinCUT never flips for equivariance")
    slow = build(tmp_path / "slow", False, extra)
    fast = build(tmp_path / "fast", True, extra)
    for name in ("G", "D", "F"):
        getattr(fast, "net" + name).load_state_dict(getattr(slow, "net" + name).state_dict())
    data = batch(batch_size=2 if "batch 2" in case or "minibatch" in case else 1, seed=1)
    seed = numpy_seed_with_flip(flip)

    losses_slow, d_slow, g_slow = losses_and_grads(slow, data, seed)
    losses_fast, d_fast, g_fast = losses_and_grads(fast, data, seed)

    assert fast.flipped_for_equivariance == slow.flipped_for_equivariance
    assert fast.flipped_for_equivariance == (flip and fast.opt.flip_equivariance)
    # the fast path took its keys from the forward pass exactly when nothing was flipped
    assert (fast.key_feats is not None) == (not fast.flipped_for_equivariance)
    assert slow.key_feats is None
    assert losses_fast.keys() == losses_slow.keys()
    for name in losses_slow:
        assert losses_fast[name] == pytest.approx(losses_slow[name], rel=TOL, abs=TOL), name
    assert losses_slow["NCE"] > 0
    for fast_grad, slow_grad in ((d_fast, d_slow), (g_fast, g_slow)):
        assert float(slow_grad.norm()) > 0
        assert float((fast_grad - slow_grad).norm() / slow_grad.norm()) < TOL


def test_the_fast_path_keeps_no_graph_for_the_keys(tmp_path):
    """What makes it lighter: the keys are not part of the autograd graph."""
    model = build(tmp_path, True, "--CUT_mode CUT")
    np.random.seed(numpy_seed_with_flip(False))
    model.set_input(batch(seed=2))
    model.forward()
    assert all(not feat.requires_grad for feat in model.key_feats)
    assert model.fake_B.requires_grad


def smooth_activations(*nets):
    """Swap every ReLU/LeakyReLU for SiLU: the same graph, but differentiable everywhere, so that
    central differences converge (with ReLUs an untrained network puts kinks within any useful
    step; measured errors of 10-100%)."""
    for net in nets:
        for module in list(net.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                    setattr(module, name, torch.nn.SiLU())


def test_fast_path_generator_objective_matches_finite_differences(tmp_path):
    """float64 central differences of the whole G objective (GAN + NCE + NCE_Y, keys from the
    forward pass, folded Upsample crops) along a random direction in G's parameters.  The keys
    are held at their values for the initial parameters (they are detached by design), so the
    function differentiated is exactly the one autograd's gradient describes."""
    model = build(tmp_path, True, "--CUT_mode CUT")
    smooth_activations(model.netG, model.netF, model.netD)
    seed = numpy_seed_with_flip(False)
    params = list(model.netG.parameters())
    g = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]

    np.random.seed(seed)
    model.set_input(batch(seed=3))
    model.forward()
    assert model.key_feats is not None
    keys = list(model.key_feats)
    grads = torch.autograd.grad(model.compute_G_loss(), params)
    analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction))

    def objective(step):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(step * d)
            try:
                np.random.seed(seed)  # the same patch locations
                model.forward()
                model.key_feats = keys
                return float(model.compute_G_loss())
            finally:
                for p, d in zip(params, direction):
                    p.sub_(step * d)

    def central(step):
        return (objective(step) - objective(-step)) / (2 * step)

    # Richardson extrapolation of two central differences cancels their O(step^2) error (the
    # G objective is a difference of large NCE terms, so plain differences lose digits).
    step = 1e-6
    numeric = (4 * central(step / 2) - central(step)) / 3
    assert abs(analytic - numeric) <= 1e-5 * abs(numeric)  # measured 1.4e-6


@pytest.mark.parametrize("filt_size", [2, 3, 4, 5])
def test_upsample_fast_path_equals_the_crops_and_matches_finite_differences(filt_size):
    up = Upsample(3, filt_size=filt_size).double()
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    fast = up(x)
    up.crop_in_conv = False
    slow = up(x)
    assert fast.shape == slow.shape == (2, 3, 10, 14)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-14)
    up.crop_in_conv = True
    assert torch.autograd.gradcheck(up, (x,), eps=1e-6, atol=1e-8)


def train_both(tmp_path, mode, steps, fused):
    """The original computation and the fast path, same start, data, flips and patches, float64;
    `fused` False gives the fast path PyTorch's default Adam loop."""
    slow = build(tmp_path / "slow", False, f"--CUT_mode {mode}")
    fast = build(tmp_path / "fast", True, f"--CUT_mode {mode}")
    for name in ("G", "D", "F"):
        getattr(fast, "net" + name).load_state_dict(getattr(slow, "net" + name).state_dict())
    assert all(group["fused"] for opt in fast.optimizers for group in opt.param_groups)
    assert not any(group["fused"] for opt in slow.optimizers for group in opt.param_groups)
    if not fused:
        for opt in fast.optimizers:
            for group in opt.param_groups:
                group["fused"] = None
    flips = []
    for model in (slow, fast):
        np.random.seed(5)  # FastCUT: flipped, then not
        for step in range(steps):
            model.set_input(batch(seed=20 + step))
            model.optimize_parameters()
            flips.append(model.flipped_for_equivariance)
    assert flips[:steps] == flips[steps:]
    differences = {name: max(float((a - b).abs().max()) for a, b in zip(
        getattr(slow, "net" + name).state_dict().values(), getattr(fast, "net" + name).state_dict().values()))
        for name in ("G", "D", "F")}
    return slow, fast, flips[:steps], differences


@pytest.mark.parametrize("mode", ["CUT", "FastCUT"])
def test_fast_path_training_steps_leave_bitwise_the_same_weights(tmp_path, mode):
    """Three whole optimize_parameters() calls (D step, then G and F with the updated D; FastCUT
    flipped on the first only): with the same Adam, the fast path's weights are bit for bit
    the original computation's."""
    slow, fast, flips, differences = train_both(tmp_path, mode, steps=3, fused=False)
    if mode == "FastCUT":
        assert flips == [True, False, False]
    assert differences == {"G": 0.0, "D": 0.0, "F": 0.0}
    start = build(tmp_path / "start", False, f"--CUT_mode {mode}").netG.state_dict()
    assert any(not torch.equal(start[k], fast.netG.state_dict()[k]) for k in start)


def test_fused_adam_equals_the_loop_to_rounding(tmp_path):
    """The fast path's fused Adam: one step lands within 1e-15 of the loop's (float64).  Over
    several steps the two drift apart at rounding level, amplified where a gradient is far
    below Adam's eps (its update is then lr * g / eps): measured 2e-8 after three steps."""
    *_, one = train_both(tmp_path / "one", "CUT", steps=1, fused=True)
    assert max(one.values()) < 1e-15
    *_, three = train_both(tmp_path / "three", "CUT", steps=3, fused=True)
    assert max(three.values()) < 1e-6
