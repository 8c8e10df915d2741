"""Parity of --model munit with the authors' code (NVlabs/MUNIT), on the CPU.  Not part of CI.

    python scripts/parity/munit_parity.py [REPO] [--size 64] [--steps 3] [--step_size 2] [--double]

REPO is a checkout of NVlabs/MUNIT, or a bare mirror of it (its HEAD's networks.py, trainer.py and
utils.py are read with `git show` into a temporary folder); nothing of theirs is edited or
copied here.  Their imports that cannot work today are shimmed from outside: `yaml` (only
get_config needs it), `torch.utils.serialization.load_lua` (removed in torch 1.0; only the VGG
loss needs it), their `data` module (the loaders), and `.cuda()` (a no-op on the CPU).

Both sides start from the same weights (their state dicts load strictly into ours: the module
layout is theirs), see the same batch and the same style codes (their `torch.randn` calls and our
`random_styles` read one queue), and run `--steps` iterations: their `update_learning_rate`,
`dis_update`, `gen_update`; our `optimize_parameters` and `step_iteration_schedulers`.  Printed:
each step's losses on both sides with their relative differences and learning rates, and at the
end the largest weight difference per network next to the size of one update.
"""
import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import types

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from models import create_model  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402

DEFAULT_REPO = "/work/.mirror/NVlabs+MUNIT/repo"
THEIR_FILES = ("networks.py", "trainer.py", "utils.py")
# (their attribute, our loss name)
LOSS_PAIRS = [("loss_dis_total", "D"), ("loss_dis_a", "D_A"), ("loss_dis_b", "D_B"),
              ("loss_gen_total", "G"), ("loss_gen_adv_a", "G_adv_A"), ("loss_gen_adv_b", "G_adv_B"),
              ("loss_gen_recon_x_a", "recon_x_A"), ("loss_gen_recon_x_b", "recon_x_B"),
              ("loss_gen_recon_s_a", "recon_s_A"), ("loss_gen_recon_s_b", "recon_s_B"),
              ("loss_gen_recon_c_a", "recon_c_A"), ("loss_gen_recon_c_b", "recon_c_B"),
              ("loss_gen_cycrecon_x_a", "cyc_A"), ("loss_gen_cycrecon_x_b", "cyc_B")]
NETWORKS = [("gen_a", "G_A"), ("gen_b", "G_B"), ("dis_a", "D_A"), ("dis_b", "D_B")]


def their_source(repo, folder):
    """Make their files importable from `folder` (read from a work tree or a bare mirror)."""
    for name in THEIR_FILES:
        path = os.path.join(repo, name)
        if os.path.isfile(path):
            text = open(path).read()
        else:
            text = subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{name}"],
                                  check=True, capture_output=True, text=True).stdout
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def import_theirs(folder):
    """Their trainer module, imported with the shims (see the module docstring)."""
    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        return module

    def no_lua(*args, **kwargs):
        raise RuntimeError("load_lua is not available (only their VGG loss needs it)")
    ours_data = sys.modules.pop("data")  # their utils imports *their* data module
    shims = {"yaml": stub("yaml"), "torch.utils.serialization": stub("torch.utils.serialization", load_lua=no_lua),
             "data": stub("data", ImageFilelist=object, ImageFolder=object)}
    saved = {name: sys.modules.get(name) for name in shims}
    sys.modules.update(shims)
    sys.path.insert(0, folder)
    try:
        import trainer  # noqa: their trainer.py
    finally:
        sys.path.remove(folder)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        sys.modules["data"] = ours_data
    return trainer


@contextlib.contextmanager
def cpu_cuda():
    """`.cuda()` returns the tensor or module itself (their code calls it on every style draw)."""
    tensor_cuda, module_cuda = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = tensor_cuda, module_cuda


@contextlib.contextmanager
def randn_from(queue):
    """Their updates draw styles with torch.randn(B, style_dim, 1, 1): serve them from `queue`."""
    real = torch.randn

    def served(*shape, **kwargs):
        code = queue.pop(0)
        assert tuple(code.shape) == tuple(shape), (code.shape, shape)
        return code.clone()
    torch.randn = served
    try:
        yield
    finally:
        torch.randn = real


def hyperparameters(args):
    """summer2winter_yosemite256_folder.yaml, as the dict their get_config would return."""
    return dict(lr=1e-4, beta1=0.5, beta2=0.999, weight_decay=1e-4, init="kaiming", lr_policy="step",
                step_size=args.step_size, gamma=0.5, gan_w=1, recon_x_w=10, recon_s_w=1, recon_c_w=1,
                recon_x_cyc_w=10, vgg_w=0, display_size=1, input_dim_a=3, input_dim_b=3,
                gen=dict(dim=64, mlp_dim=256, style_dim=8, activ="relu", n_downsample=2, n_res=4,
                         pad_type="reflect"),
                dis=dict(dim=64, norm="none", activ="lrelu", n_layer=4, gan_type="lsgan",
                         num_scales=3, pad_type="reflect"))


def our_model(args, folder):
    os.makedirs(os.path.join(folder, "data", "trainA"), exist_ok=True)
    # --fast_path False: PyTorch's default Adam, as theirs (the fused one differs by rounding)
    opt = TrainOptions(f"--dataroot {folder}/data --checkpoints_dir {folder}/ck --name parity "
                       f"--model munit --gpu_ids -1 --fast_path False --lr_decay_iters {args.step_size} "
                       f"--crop_size {args.size} --load_size {args.size}").parse()
    model = create_model(opt)
    model.setup(opt)
    return model


def relative(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo", nargs="?", default=DEFAULT_REPO, help="NVlabs/MUNIT checkout or bare mirror")
    p.add_argument("--size", type=int, default=64, help="image side (the 3-scale D needs >= 64)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--step_size", type=int, default=2,
                   help="their step_size / our --lr_decay_iters: 2 halves the rate within 3 steps")
    p.add_argument("--double", action="store_true", help="run both sides in float64")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    dtype = torch.float64 if args.double else torch.float32
    torch.set_default_dtype(dtype)  # both sides built in it (and our image-size check's probe)
    torch.manual_seed(args.seed)

    with tempfile.TemporaryDirectory() as folder, cpu_cuda():
        their_source(args.repo, folder)
        theirs_module = import_theirs(folder)
        hp = hyperparameters(args)
        theirs = theirs_module.MUNIT_Trainer(hp).to(dtype)
        ours = our_model(args, folder)
        for their_name, our_name in NETWORKS:
            net = dict(ours.networks())[our_name]
            net.load_state_dict(getattr(theirs, their_name).state_dict(), strict=True)
            net.to(dtype)
        print(f"their state dicts load strictly into ours (gen_a -> G_A, ..., dis_b -> D_B); "
              f"{args.steps} steps, {args.size}x{args.size}, {str(dtype).split('.')[-1]}")
        start = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in ours.networks()}
        first_update = None

        g = torch.Generator().manual_seed(args.seed + 1)
        worst_loss = 0.0
        for step in range(1, args.steps + 1):
            x_a = (torch.rand(1, 3, args.size, args.size, generator=g) * 2 - 1).to(dtype)
            x_b = (torch.rand(1, 3, args.size, args.size, generator=g) * 2 - 1).to(dtype)
            codes = [torch.randn(1, 8, 1, 1, generator=g).to(dtype) for _ in range(4)]  # D: a, b; G: a, b
            with randn_from(list(codes)):
                theirs.update_learning_rate()
                their_lr = theirs.gen_opt.param_groups[0]["lr"]
                theirs.dis_update(x_a, x_b, hp)
                theirs.gen_update(x_a, x_b, hp)
            queue = [c.view(1, 8) for c in codes]
            ours.random_styles = lambda count, generator=None: queue.pop(0)
            our_lr = ours.get_current_lr()
            ours.set_input({"A": x_a, "B": x_b, "A_paths": ["a"], "B_paths": ["b"]})
            losses = ours.optimize_parameters()
            ours.step_iteration_schedulers()
            print(f"step {step}: lr theirs {their_lr:.3e} ours {our_lr:.3e}")
            for their_attr, our_name in LOSS_PAIRS:
                value = getattr(theirs, their_attr)
                a = float(value.detach()) if torch.is_tensor(value) else float(value)
                b = losses[our_name]
                worst_loss = max(worst_loss, relative(a, b))
                print(f"    {our_name:10s} theirs {a:.8f}  ours {b:.8f}  rel. diff {relative(a, b):.1e}")
            if first_update is None:
                first_update = {name: max(float((net.state_dict()[k] - start[name][k]).abs().max())
                                          for k in start[name] if start[name][k].is_floating_point())
                                for name, net in ours.networks()}
        print(f"largest relative loss difference over {args.steps} steps: {worst_loss:.1e}")
        print(f"after {args.steps} steps: max |w_theirs - w_ours| per network "
              "(one update: max |w_1 - w_0| of our first step)")
        for their_name, our_name in NETWORKS:
            their_state = getattr(theirs, their_name).state_dict()
            our_state = dict(ours.networks())[our_name].state_dict()
            keys = [k for k in their_state if their_state[k].is_floating_point()]
            diffs = {k: (their_state[k] - our_state[k]).abs().flatten() for k in keys}
            diff = max(float(d.max()) for d in diffs.values())
            update = first_update[our_name]
            # Convolutions followed by instance norm or AdaIN have biases whose exact gradient
            # is 0 (the norm removes them); computed, it is rounding noise, and Adam turns noise
            # of either sign into steps of about the learning rate: a float32 run differs there.
            weights = max(float(d.max()) for k, d in diffs.items() if not k.endswith("bias"))
            every = torch.cat(list(diffs.values()))
            share = float((every > 0.1 * update).double().mean())
            print(f"    {our_name}: {diff:.2e} (ratio to one update {update:.2e}: {diff / update:.1e}); "
                  f"weights without biases {weights:.2e} ({weights / update:.1e}); "
                  f"{100 * share:.3f}% of the values differ by more than 0.1 update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
