"""Parity of --model drit with the authors' code (HsinYingLee/DRIT), on the CPU; not a test.

    git clone https://github.com/HsinYingLee/DRIT /tmp/DRIT      # their code: read, never changed
    python scripts/parity/drit_parity.py --authors_src /tmp/DRIT/src [--ms] [--concat 0] [--double]

Builds the authors' DRIT (src/model.py, src/networks.py) at their full size and ours from the
same initial weights (their state dicts load into our networks as they are), feeds both the same
216 px batches and the same random tensors, runs `--iterations` loader steps of their train.py
loop (the first content-discriminator-only, the others full: D updates, then update_EG) and of
ours, and prints every loss of every step side by side and, at the end, the largest weight
difference of each network in units of one update (lr).

Their code is made to run on the CPU from outside, without touching their files: Tensor.cuda
becomes the identity; their get_z_random and GaussianNoiseLayer take, in order, the tensors our
model drew (recorded from torch.randn / torch.randn_like while our iteration ran).

Their update_EG crashes on PyTorch >= 1.5 (HsinYingLee/DRIT#62: the second backward goes through
weights the first step changed in place).  The side-by-side run applies our fix to their model
from outside (both gradients taken before either step; their backward_EG and backward_G_alone as
they are).  A second part then starts again from the initial weights and runs one full iteration
of their model five ways, comparing the gradients of the generator-alone update:
    unmodified   their code on this PyTorch (the error it raises)
    legacy       their code as PyTorch 0.4 ran it: the forward pass under saved_tensors_hooks that
                 hand back the very tensors saved, so autograd does not check their version and
                 the second backward sees the stepped weights, as 0.4 did
    fixed        our fix (both gradients before either step)
    re-forward   the other possible fix (step, re-run the forward with the same random draws,
                 then the second backward)
    ours         --model drit
--double runs both sides in float64 (the default dtype, so every network, image and random draw):
there the two computations should agree to rounding, and whatever float32 adds is rounding that
Adam amplifies.  Memory: about 6 GB at the full size in float32, 11 GB in float64; time: a few
minutes on two cores.
"""
import argparse
import contextlib
import copy
import math
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from models import create_model  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402

SIZE = 216
NETWORKS = {"E_content": "enc_c", "E_attr": "enc_a", "G": "gen", "D_A": "disA", "D_A2": "disA2",
            "D_B": "disB", "D_B2": "disB2", "D_content": "disContent"}
LOSSES = [("D_A", "disA_loss"), ("D_A2", "disA2_loss"), ("D_B", "disB_loss"), ("D_B2", "disB2_loss"),
          ("D_content", "disContent_loss"), ("G_GAN_A", "gan_loss_a"), ("G_GAN_B", "gan_loss_b"),
          ("G_GAN_Acontent", "gan_loss_acontent"), ("G_GAN_Bcontent", "gan_loss_bcontent"),
          ("kl_za_a", "kl_loss_za_a"), ("kl_za_b", "kl_loss_za_b"), ("kl_zc_a", "kl_loss_zc_a"),
          ("kl_zc_b", "kl_loss_zc_b"), ("cross_A", "l1_recon_A_loss"), ("cross_B", "l1_recon_B_loss"),
          ("self_A", "l1_recon_AA_loss"), ("self_B", "l1_recon_BB_loss"), ("G", "G_loss"),
          ("G_GAN2_A", "gan2_loss_a"), ("G_GAN2_B", "gan2_loss_b"),
          ("latent_A", "l1_recon_z_loss_a"), ("latent_B", "l1_recon_z_loss_b")]
MS_LOSSES = [("ms_AB", "lz_AB"), ("ms_BA", "lz_BA")]


# ---------------------------------------------------------------- random draws

class Draws:
    """Records every torch.randn / torch.randn_like result inside `record()`; `feed` hands them
    back in order to the authors' get_z_random and noise layer, checking each shape."""

    def __init__(self):
        self.tensors = []

    @contextlib.contextmanager
    def record(self):
        randn, randn_like = torch.randn, torch.randn_like

        def recording(fn):
            def wrapper(*args, **kwargs):
                out = fn(*args, **kwargs)
                self.tensors.append(out.detach().clone())
                return out
            return wrapper
        torch.randn, torch.randn_like = recording(randn), recording(randn_like)
        try:
            yield self
        finally:
            torch.randn, torch.randn_like = randn, randn_like

    def pop(self, shape):
        if not self.tensors:
            raise RuntimeError(f"the authors' code drew more random tensors than ours (shape {shape})")
        out = self.tensors.pop(0)
        if tuple(out.shape) != tuple(shape):
            raise RuntimeError(f"random draw order differs: ours {tuple(out.shape)}, theirs {tuple(shape)}")
        return out


FEED = Draws()  # what the authors' shims draw from


def shim_authors(networks):
    """CPU and shared random draws for their code, from outside their files."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self

    def noise_forward(self, x):
        return x if not self.training else x + FEED.pop(x.shape)
    networks.GaussianNoiseLayer.forward = noise_forward


def build_authors(model_module, args):
    opts = argparse.Namespace(concat=args.concat, no_ms=not args.ms, dis_scale=3, dis_norm="None",
                              dis_spectral_norm=False, input_dim_a=3, input_dim_b=3)
    theirs = model_module.DRIT(opts)
    theirs.initialize()
    theirs.gpu = None
    theirs.get_z_random = lambda batch, nz, random_type="gauss": FEED.pop((batch, nz))
    return theirs


def build_ours(theirs, args, workdir):
    argv = (f"--model drit --dataroot {workdir} --checkpoints_dir {workdir} --name parity --gpu_ids -1 "
            f"--drit_concat {args.concat}" + (" --drit_ms" if args.ms else "")
            + ("" if args.fused else " --fast_path False")).split()
    opt = TrainOptions(argv).parse()
    ours = create_model(opt)
    ours.setup(opt)
    for name, attr in NETWORKS.items():
        getattr(ours, "net" + name).load_state_dict(getattr(theirs, attr).state_dict(), strict=True)
    # the authors' loader of 3 steps (6 images): step 0 trains D_c alone, steps 1 and 2 are full
    ours.epoch_size = 6
    return ours


def content_only(it, d_iter=3, loader_len=3):
    """The authors' train.py rule."""
    return (it + 1) % d_iter != 0 and it < loader_len - 2


def batch(it):
    g = torch.Generator().manual_seed(1000 + it)
    a, b = (torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1 for _ in range(2))
    return a, b


# ---------------------------------------------------------------- their update_EG, four ways

def params_of(*nets):
    return [p for net in nets for p in net.parameters()]


def update_eg_fixed(theirs, alone_grads=None):
    """Both gradients at the forward pass's weights, then the steps (our fix, from outside)."""
    eg_params = params_of(theirs.enc_c, theirs.enc_a, theirs.gen)
    alone_params = params_of(theirs.enc_c, theirs.gen)
    for optimizer in (theirs.enc_c_opt, theirs.enc_a_opt, theirs.gen_opt):
        optimizer.zero_grad()
    theirs.backward_EG()  # backward(retain_graph=True)
    eg = [p.grad.clone() for p in eg_params]
    theirs.enc_c_opt.zero_grad()
    theirs.gen_opt.zero_grad()
    theirs.backward_G_alone()
    alone = [p.grad.clone() for p in alone_params]
    if alone_grads is not None:
        alone_grads.extend(alone)
    for p, grad in zip(eg_params, eg):
        p.grad = grad
    for optimizer in (theirs.enc_c_opt, theirs.enc_a_opt, theirs.gen_opt):
        optimizer.step()
    for p, grad in zip(alone_params, alone):
        p.grad = grad
    theirs.enc_c_opt.step()
    theirs.gen_opt.step()


def update_eg_reforward(theirs, images, draws, alone_grads):
    """Step on the first loss, re-run the forward (same images, same random draws), then the
    second backward and step."""
    for optimizer in (theirs.enc_c_opt, theirs.enc_a_opt, theirs.gen_opt):
        optimizer.zero_grad()
    theirs.backward_EG()
    for optimizer in (theirs.enc_c_opt, theirs.enc_a_opt, theirs.gen_opt):
        optimizer.step()
    FEED.tensors = [t.clone() for t in draws]
    theirs.input_A, theirs.input_B = images
    theirs.forward()
    theirs.enc_c_opt.zero_grad()
    theirs.gen_opt.zero_grad()
    theirs.backward_G_alone()
    alone_grads.extend(p.grad.clone() for p in params_of(theirs.enc_c, theirs.gen))
    theirs.enc_c_opt.step()
    theirs.gen_opt.step()


@contextlib.contextmanager
def pytorch_04_autograd():
    """Saved tensors handed back as they are, unchecked: what PyTorch 0.4 did for weights its
    optimizers changed through `.data`."""
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        yield


def capture_second_steps(optimizers, store):
    """Wrap each optimizer's step to keep the gradients it is given on its second call."""
    for optimizer in optimizers:
        calls, real = [0], optimizer.step

        def step(*a, _real=real, _calls=calls, _opt=optimizer, **k):
            _calls[0] += 1
            if _calls[0] == 2:
                store.extend(p.grad.clone() for g in _opt.param_groups for p in g["params"])
            return _real(*a, **k)
        optimizer.step = step


# ---------------------------------------------------------------- the side-by-side run

def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def side_by_side(ours, theirs, args):
    losses = [*LOSSES, *(MS_LOSSES if args.ms else [])]
    worst = []
    for it in range(args.iterations):
        images = batch(it)
        ours.set_input({"A": images[0], "B": images[1], "A_paths": ["a"] * 2, "B_paths": ["b"] * 2})
        draws = Draws()
        t0 = time.process_time()
        with draws.record():
            ours_losses = dict(ours.optimize_parameters())
        t1 = time.process_time()
        shared = len(draws.tensors)
        FEED.tensors = draws.tensors
        if content_only(it):
            theirs.update_D_content(*images)
            names = [("D_content", "disContent_loss")]
        else:
            theirs.update_D(*images)
            update_eg_fixed(theirs)
            names = losses
        t2 = time.process_time()
        if FEED.tensors:
            raise RuntimeError(f"the authors' code drew fewer random tensors than ours ({len(FEED.tensors)} left)")
        kind = "content-D only" if content_only(it) else "full"
        print(f"\nstep {it} ({kind}; {shared} random tensors shared; CPU s: ours "
              f"{t1 - t0:.1f}, theirs {t2 - t1:.1f})")
        print(f"  {'loss':16s} {'ours':>22s} {'authors':>22s} {'rel. diff':>10s}")
        worst.append(0.0)
        for ours_name, their_name in names:
            a, b = ours_losses[ours_name], float(getattr(theirs, their_name))
            worst[-1] = max(worst[-1], rel(a, b))
            print(f"  {ours_name:16s} {a:22.16g} {b:22.16g} {rel(a, b):10.2e}")
    print(f"\nlargest relative loss difference, steps " + " / ".join(map(str, range(args.iterations)))
          + ": " + " / ".join(f"{w:.1e}" for w in worst) + f"; over all: {max(worst):.2e}")
    lr = ours.opt.lr
    print(f"\nlargest weight difference after {args.iterations} steps, in units of one update (lr = {lr:g});")
    print("the biases of convolutions followed by an instance norm apart: the norm removes them, so no")
    print("output depends on them and their gradient is zero but for rounding, which Adam's per-element")
    print("normalisation turns into steps of about lr in either direction:")
    for name, attr in NETWORKS.items():
        net = getattr(ours, "net" + name)
        ours_state, their_state = net.state_dict(), getattr(theirs, attr).state_dict()
        inert = biases_before_instance_norm(net)
        diffs = {k: float((ours_state[k] - their_state[k]).abs().max()) for k in ours_state}
        moved = max(float((their_state[k] - INITIAL[attr][k]).abs().max()) for k in their_state)
        live = max(v for k, v in diffs.items() if k not in inert)
        # the share of the values (all of them, inert biases included) beyond 0.1 of one update
        every = torch.cat([(ours_state[k] - their_state[k]).abs().flatten() for k in ours_state])
        share = float((every > 0.1 * lr).double().mean())
        line = (f"  {name:10s} {live / lr:10.3g} lr (their weights moved by up to {moved / lr:.2f} lr; "
                f"{100 * share:.3g}% of the values differ by more than 0.1 lr)")
        if inert:
            line += f"; {len(inert)} biases before instance norms: {max(diffs[k] for k in inert) / lr:.2f} lr"
        print(line)


def biases_before_instance_norm(net):
    """Names of the conv biases whose output goes straight into an InstanceNorm (per-channel
    constants the norm subtracts again)."""
    names = set()
    for prefix, module in net.named_modules():
        children = list(module.named_children())
        for (name, child), (_, following) in zip(children, children[1:]):
            conv = child
            if isinstance(child, torch.nn.Sequential) and len(child) and isinstance(child[-1], torch.nn.Conv2d):
                conv, name = child[-1], f"{name}.{len(child) - 1}"  # (ReflectionPad, Conv) pairs
            if (isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
                    and isinstance(following, torch.nn.InstanceNorm2d)):
                names.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names


# ---------------------------------------------------------------- the #62 comparison

def one_full_iteration(model_module, args, mode):
    """From the initial weights, their update_D then update_EG in `mode`; returns the gradients
    the generator-alone step used (E_c then G), or the error."""
    theirs = build_authors(model_module, args)
    for attr in NETWORKS.values():
        getattr(theirs, attr).load_state_dict(INITIAL[attr])
    images = batch(1)
    grads = []
    FEED.tensors = [t.clone() for t in DRAWS_OF_STEP_1]
    try:
        if mode == "legacy":
            capture_second_steps([theirs.enc_c_opt, theirs.gen_opt], grads)
            with pytorch_04_autograd():
                theirs.update_D(*images)
            theirs.update_EG()
        elif mode == "unmodified":
            theirs.update_D(*images)
            theirs.update_EG()
        elif mode == "fixed":
            theirs.update_D(*images)
            update_eg_fixed(theirs, grads)
        elif mode == "re-forward":
            theirs.update_D(*images)
            update_eg_reforward(theirs, images, DRAWS_OF_STEP_1, grads)
    except RuntimeError as err:
        return str(err).strip().splitlines()[0]
    return grads


def ours_one_full_iteration(args, workdir, model_module):
    theirs = build_authors(model_module, args)  # only for its initial weights
    for attr in NETWORKS.values():
        getattr(theirs, attr).load_state_dict(INITIAL[attr])
    ours = build_ours(theirs, args, workdir)
    del theirs
    ours.batch_in_epoch = 1  # a full iteration
    images = batch(1)
    ours.set_input({"A": images[0], "B": images[1], "A_paths": ["a"] * 2, "B_paths": ["b"] * 2})
    grads = []
    capture_second_steps([ours.optimizer_E_content, ours.optimizer_G], grads)
    draws = Draws()
    with draws.record():
        ours.optimize_parameters()
    return grads, draws.tensors


def compare_g_alone(model_module, args, workdir):
    global DRAWS_OF_STEP_1
    ours, DRAWS_OF_STEP_1 = ours_one_full_iteration(args, workdir, model_module)
    results = {"ours": ours}
    for mode in ("unmodified", "legacy", "fixed", "re-forward"):
        results[mode] = one_full_iteration(model_module, args, mode)
    print("\nthe generator-alone update's gradient (E_c and G), one full iteration from the initial weights:")
    print(f"  unmodified (this PyTorch): {results['unmodified'] if isinstance(results['unmodified'], str) else 'ran'}")
    legacy = results["legacy"]

    def distance(a, b):
        num = math.sqrt(sum(float((x - y).pow(2).sum()) for x, y in zip(a, b)))
        return num / math.sqrt(sum(float(y.pow(2).sum()) for y in b))
    for mode in ("fixed", "re-forward", "ours"):
        print(f"  {mode:10s} vs legacy (PyTorch 0.4): relative distance {distance(results[mode], legacy):.3e}")
    print(f"  ours       vs fixed: relative distance {distance(results['ours'], results['fixed']):.3e}")


INITIAL = {}
DRAWS_OF_STEP_1 = []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors_src", required=True, help="the src folder of a DRIT checkout")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--concat", type=int, default=1, choices=(0, 1))
    parser.add_argument("--ms", action="store_true", help="mode seeking on (their default)")
    parser.add_argument("--fused", action="store_true",
                        help="our fused Adam (--fast_path, the default of train.py); without it "
                             "the loop Adam the authors' code gets")
    parser.add_argument("--skip_g_alone", action="store_true", help="only the side-by-side run")
    parser.add_argument("--double", action="store_true", help="both sides in float64")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.double:
        torch.set_default_dtype(torch.float64)  # before anything is built or drawn
    src = os.path.abspath(args.authors_src)
    if not os.path.isfile(os.path.join(src, "model.py")):
        raise SystemExit(f"error: no model.py in {src}; pass the src folder of a DRIT checkout")
    torch.set_num_threads(args.threads)
    sys.path.insert(0, src)
    import model as model_module  # their src/model.py
    import networks  # their src/networks.py
    shim_authors(networks)
    print(f"torch {torch.__version__}, {args.threads} threads; authors' code from {src}; "
          f"concat={args.concat}, mode seeking {'on' if args.ms else 'off'}, "
          f"our Adam {'fused' if args.fused else 'loop'}, {torch.get_default_dtype()}")

    torch.manual_seed(0)
    theirs = build_authors(model_module, args)
    INITIAL.update({attr: copy.deepcopy(getattr(theirs, attr).state_dict()) for attr in NETWORKS.values()})
    with tempfile.TemporaryDirectory() as workdir:
        for sub in ("trainA", "trainB"):
            os.makedirs(os.path.join(workdir, sub))
        ours = build_ours(theirs, args, workdir)
        counts = {name: sum(p.numel() for p in getattr(ours, "net" + name).parameters()) for name in NETWORKS}
        print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
              + f"; total {sum(counts.values()):,}")
        side_by_side(ours, theirs, args)
        del ours, theirs
        if not args.skip_g_alone:
            compare_g_alone(model_module, args, workdir)


if __name__ == "__main__":
    main()
