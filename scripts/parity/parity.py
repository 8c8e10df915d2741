"""Parity of a baseline with its authors' code: the same initial weights, the same batches, three
training steps on the CPU; prints the losses of both and how far the weights end up apart.

    python scripts/parity/parity.py cycle_gan     --ref PATH/pytorch-CycleGAN-and-pix2pix
    python scripts/parity/parity.py distance_gan  --ref PATH/DistanceGAN
    python scripts/parity/parity.py self_distance --ref PATH/DistanceGAN
    python scripts/parity/parity.py gcgan_cross   --ref PATH/GcGAN
    python scripts/parity/parity.py gcgan_shared  --ref PATH/GcGAN

--ref is a checkout of the authors' repository (not part of this one, and never edited: what
today's PyTorch needs is patched from outside, see scripts/parity/reference.py).  The script
  1. draws the batches (and, for DistanceGAN, the batches its mean and std are estimated over)
     from --seed and writes them to a temporary folder;
  2. runs scripts/parity/reference.py in a subprocess inside the checkout: it builds the
     authors' model with their initialisation, runs --steps training steps on the batches and
     saves the initial weights, the losses of every step and the final weights;
  3. builds our model with `--model NAME` and nothing else but the size (the preset), loads the
     reference's initial weights into it (strictly: the same names and shapes), runs the same
     steps on the same batches and compares.
Pass: every loss within --loss_rtol (1e-4) relative, and every weight within --weight_tol
(0.1) of one update (--lr) of the reference's after the last step.  The image pools stay below
their 50 images, so no random number enters a step.  Exit status 0 on a pass, 1 otherwise.
Full-size networks (ngf = ndf = 64, resnet_9blocks) on small images (--size 64).
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from util.errors import UserError, run_cli  # noqa: E402

# baseline -> (our options, authors' repository, the loss names both sides report)
BASELINES = {
    "cycle_gan": ("--model cycle_gan", "junyanz/pytorch-CycleGAN-and-pix2pix"),
    "distance_gan": ("--model distance_gan", "sagiebenaim/DistanceGAN"),
    "self_distance": ("--model distance_gan --self_distance", "sagiebenaim/DistanceGAN"),
    "gcgan_cross": ("--model gcgan --gcgan_variant cross", "hufu6371/GcGAN"),
    "gcgan_shared": ("--model gcgan --gcgan_variant shared", "hufu6371/GcGAN"),
}
MARKERS = {  # a file that tells the repository apart, for a one-line error on a wrong --ref
    "junyanz/pytorch-CycleGAN-and-pix2pix": "models/cycle_gan_model.py",
    "sagiebenaim/DistanceGAN": "cyclegan_arch/distance_gan_model.py",
    "hufu6371/GcGAN": "models/gc_gan_cross_model.py",
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("baseline", choices=sorted(BASELINES))
    p.add_argument("--ref", required=True, help="checkout of the authors' repository")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--size", type=int, default=64, help="image size (square)")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--netG", default="resnet_9blocks")
    p.add_argument("--stats_batches", type=int, default=6,
                   help="DistanceGAN: batches its mean and std are estimated over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss_rtol", type=float, default=1e-4)
    p.add_argument("--weight_tol", type=float, default=0.1, help="in updates of size --lr")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--our_options", default="",
                   help="more train.py options for our side, e.g. '--fast_path False'")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def our_options(opt, workdir):
    from options.train_options import TrainOptions
    os.makedirs(os.path.join(workdir, "data", "trainA"), exist_ok=True)
    argv = (f"{BASELINES[opt.baseline][0]} --dataroot {workdir}/data --checkpoints_dir "
            f"{workdir}/ck --name ours --gpu_ids -1 --load_size {opt.size} --crop_size {opt.size} "
            f"--ngf {opt.ngf} --ndf {opt.ndf} --netG {opt.netG} --display_id 0 {opt.our_options}")
    return TrainOptions(argv).parse()


def make_inputs(opt, batch_size):
    """Batches of images in [-1, 1]: smooth random fields (a coarse grid, upsampled), so that
    the distances and halves differ as real images' do."""
    g = torch.Generator().manual_seed(opt.seed)

    def images(n):
        coarse = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
        return torch.nn.functional.interpolate(coarse, size=opt.size, mode="bilinear",
                                               align_corners=False).contiguous()

    def batch(i):
        return {"A": images(batch_size), "B": images(batch_size),
                "A_paths": [f"a{i}_{k}.png" for k in range(batch_size)],
                "B_paths": [f"b{i}_{k}.png" for k in range(batch_size)]}
    batches = [batch(i) for i in range(opt.steps)]
    stats_batches = [batch(100 + i) for i in range(opt.stats_batches)]
    return dict(batches=batches, stats_batches=stats_batches, seed=opt.seed, size=opt.size,
                ngf=opt.ngf, ndf=opt.ndf, netG=opt.netG, batch_size=batch_size, lr=0.0002)


def run_reference(opt, workdir):
    script = os.path.join(ROOT, "scripts", "parity", "reference.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if opt.threads:
        env["OMP_NUM_THREADS"] = str(opt.threads)
    proc = subprocess.run([sys.executable, script, opt.baseline, os.path.abspath(opt.ref), workdir],
                          cwd=opt.ref, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print("\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-25:]),
              file=sys.stderr)
        raise UserError(f"the reference run in {opt.ref} failed (its last lines above)")
    return torch.load(os.path.join(workdir, "reference.pt"), weights_only=False)


def biases_before_instance_norm(net):
    """State-dict keys of conv biases that an InstanceNorm follows directly: the norm subtracts
    them again, so their true gradient is 0 and Adam moves them by rounding noise alone."""
    keys = set()
    for prefix, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, after) in zip(children, children[1:]):
                if (isinstance(layer, torch.nn.modules.conv._ConvNd) and layer.bias is not None
                        and isinstance(after, torch.nn.InstanceNorm2d)):
                    keys.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return keys


def our_losses(model, baseline):
    losses = dict(model.get_current_losses())
    if baseline.startswith("gcgan"):
        losses["D+D_gc"] = losses["D"] + losses["D_gc"]
    return losses


def compare(opt):
    if opt.threads:
        torch.set_num_threads(opt.threads)
    _, repo = BASELINES[opt.baseline]
    if not os.path.isfile(os.path.join(opt.ref, MARKERS[repo])):
        raise UserError(f"--ref {opt.ref} is not a checkout of {repo} (no {MARKERS[repo]})")
    from models import create_model
    chatter = io.StringIO()  # our option dump and network summary
    with tempfile.TemporaryDirectory(prefix="parity_") as workdir:
        with contextlib.redirect_stdout(chatter):
            ours_opt = our_options(opt, workdir)
        inputs = make_inputs(opt, ours_opt.batch_size)
        torch.save(inputs, os.path.join(workdir, "inputs.pt"))
        ref = run_reference(opt, workdir)
        with contextlib.redirect_stdout(chatter):
            model = create_model(ours_opt)
        nets = dict(model.networks())
        for name, state in ref["initial"].items():
            nets[name].load_state_dict(state)  # strict: the same architecture, name for name
        result = {"baseline": opt.baseline, "repository": repo, "preset_options": BASELINES[opt.baseline][0],
                  "our_options": opt.our_options,
                  "batch_size": ours_opt.batch_size, "size": opt.size, "steps": opt.steps,
                  "parameters": {n: [sum(p.numel() for p in nets[n].parameters()), c]
                                 for n, c in ref["counts"].items()}}
        if "distance_stats" in ref:
            from models.losses import distance_statistics
            images = {side: torch.cat([b[side] for b in inputs["stats_batches"]]) for side in "AB"}
            ours = {side: distance_statistics(images[side], ours_opt.batch_size, ours_opt.self_distance,
                                              ours_opt.self_distance_halves) for side in "AB"}
            result["distance_stats"] = {side: {"ours": ours[side], "reference": ref["distance_stats"][side]}
                                        for side in "AB"}
            # the steps below use the reference's values, so they test the training step alone
            model.distance_stats = {side: tuple(v) for side, v in ref["distance_stats"].items()}
        with contextlib.redirect_stdout(chatter):
            model.setup(ours_opt)
        name, ref_out = ref["forward"]
        with torch.no_grad():
            out = nets[name](inputs["batches"][0]["A"].clone())
        result["forward_max_abs_diff"] = float((out - ref_out).abs().max())
        steps = []
        for batch, ref_losses in zip(inputs["batches"], ref["losses"]):
            model.set_input({k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()})
            model.optimize_parameters()
            mine = our_losses(model, opt.baseline)
            steps.append({k: {"ours": mine[k], "reference": v,
                              "rel_diff": abs(mine[k] - v) / max(abs(v), 1e-12)}
                          for k, v in ref_losses.items()})
        result["steps"] = steps
        lr = inputs["lr"]
        result["weights"] = {}
        for name, state in ref["final"].items():
            mine = nets[name].state_dict()
            diffs = {k: float((mine[k].float() - v.float()).abs().max()) for k, v in state.items()}
            worst = max(diffs, key=diffs.get)
            dead = biases_before_instance_norm(nets[name])
            live = max((d for k, d in diffs.items() if k not in dead), default=0.0)
            gaps = torch.cat([(mine[k].float() - v.float()).abs().flatten() / lr
                              for k, v in state.items() if v.is_floating_point()])
            moved = max(float((v.float() - ref["initial"][name][k].float()).abs().max())
                        for k, v in state.items())
            result["weights"][name] = {"max_abs_diff": diffs[worst], "in_updates": diffs[worst] / lr,
                                       "worst_tensor": worst, "without_dead_biases_in_updates": live / lr,
                                       "share_beyond_tolerance": float((gaps > opt.weight_tol).float().mean()),
                                       "rms_in_updates": float(gaps.pow(2).mean().sqrt()),
                                       "reference_moved_in_updates": moved / lr}
    worst_loss = max(d["rel_diff"] for s in result["steps"] for d in s.values())
    worst_weight = max(w["in_updates"] for w in result["weights"].values())
    result["pass"] = worst_loss <= opt.loss_rtol and worst_weight <= opt.weight_tol
    result["worst"] = {"loss_rel_diff": worst_loss, "weight_in_updates": worst_weight}
    return result


def report(result, opt):
    lines = [f"{result['baseline']} ({result['preset_options']} {opt.our_options}".rstrip()
             + f", batch {result['batch_size']}, {result['size']} px, {opt.steps} steps) against "
             f"{result['repository']} ({opt.ref})"]
    lines.append("parameters (ours / reference): " + ", ".join(
        f"{n} {a:,} / {b:,}" for n, (a, b) in result["parameters"].items()))
    lines.append(f"one forward pass from the same weights: max |diff| {result['forward_max_abs_diff']:.3g}")
    for side, v in result.get("distance_stats", {}).items():
        (m, s), (rm, rs) = v["ours"], v["reference"]
        lines.append(f"distance statistics {side}: mean {m:.7f} / {rm:.7f}, std {s:.7f} / {rs:.7f} "
                     f"(rel. diff {abs(m - rm) / abs(rm):.1e}, {abs(s - rs) / abs(rs):.1e})")
    for i, step in enumerate(result["steps"], 1):
        lines.append(f"step {i}: " + ", ".join(
            f"{k} {d['ours']:.6f} / {d['reference']:.6f} ({d['rel_diff']:.1e})" for k, d in step.items()))
    def weight_line(n, w):
        text = f"{n} {w['in_updates']:.2g}"
        if w["in_updates"] > 0:
            text += (f" ({w['worst_tensor']}; without the biases an instance norm cancels "
                     f"{w['without_dead_biases_in_updates']:.2g}; rms {w['rms_in_updates']:.2g}; "
                     f"{100 * w['share_beyond_tolerance']:.3g}% of the weights beyond "
                     f"{opt.weight_tol:g})")
        return text
    moved = max(w["reference_moved_in_updates"] for w in result["weights"].values())
    lines.append(f"weights after the last step, max |ours - reference| in updates of lr (the "
                 f"reference's weights moved up to {moved:.2g}): "
                 + ", ".join(weight_line(n, w) for n, w in result["weights"].items()))
    worst = result["worst"]
    lines.append(f"{'PASS' if result['pass'] else 'FAIL'}: worst loss rel. diff "
                 f"{worst['loss_rel_diff']:.1e} (tolerance {opt.loss_rtol:g}), worst weight diff "
                 f"{worst['weight_in_updates']:.2g} updates (tolerance {opt.weight_tol:g})")
    return "\n".join(lines)


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    result = compare(opt)
    print(report(result, opt))
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    run_cli(main)
