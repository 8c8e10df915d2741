"""Parity of --model swap_ae with the authors' Swapping Autoencoder: the same initial weights,
the same batches and random draws, a few alternating D/G training steps on the CPU.

    git clone https://github.com/taesungp/swapping-autoencoder-pytorch /tmp/swapae_ref
    python scripts/parity/swapae_parity.py --ref /tmp/swapae_ref
    python scripts/parity/swapae_parity.py --ref /tmp/swapae_ref --dtype float32 --out docs/parity

--ref is a checkout of the authors' repository (never edited; what a CPU run with today's
PyTorch needs is shimmed from outside, see scripts/parity/swapae_reference.py).  The script
  1. draws --steps batches of --batch_size random images of --size pixels from --seed;
  2. runs scripts/parity/swapae_reference.py in a subprocess: the authors' model and optimizer
     with their initialisation, one train_one_step per batch (D, G, D, G, ...), torch re-seeded
     with seed + step before each; it saves the initial weights, every step's losses and the
     final weights;
  3. builds ours with `--model swap_ae` and the same sizes, loads the authors' initial weights
     strictly (same names and shapes), runs optimize_parameters once per batch under the same
     seeds, and compares every loss and, at the end, every weight.
The configuration is small enough for a CPU (64 px, reduced capacities; D keeps its fixed 512
channels at 4 and 8 px, as the authors' option set has no way to lower them) and R1 runs every
2nd D step (--R1_once_every 2) so that the lazy R1 step and its Adam correction are exercised.
Default float64, where both codes should agree to rounding: pass when every loss agrees within
--loss_rtol and every final weight within --weight_atol.  Exit status 0 on a pass, 1 otherwise.
--out DIR writes swapae_parity.json and swapae_parity.md (the table).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from util.errors import UserError, run_cli  # noqa: E402

# The run's sizes in the authors' option names; ours take the same names.
CONFIG = dict(crop_size=64, load_size=64, batch_size=4, netE_num_downsampling_sp=3,
              netE_num_downsampling_gl=2, netE_scale_capacity=0.25, netE_nc_steepness=2.0,
              spatial_code_ch=8, global_code_ch=64, netG_scale_capacity=0.125,
              netG_num_base_resnet_layers=2, netG_use_noise=True, netD_scale_capacity=0.125,
              netPatchD_scale_capacity=1.0, netPatchD_max_nc=64, patch_size=32, patch_num_crops=4,
              patch_min_scale=1 / 8, patch_max_scale=1 / 4, R1_once_every=2, lambda_R1=10.0,
              lambda_patch_R1=1.0, lambda_L1=1.0, lambda_GAN=1.0, lambda_PatchGAN=1.0,
              lr=0.002, beta1=0.0, beta2=0.99, use_antialias=True)
# Their options that only exist in their code (not sizes: what their classes read besides).
AUTHORS_ONLY = dict(model="swapping_autoencoder", optimizer="swapping_autoencoder",
                    netE="StyleGAN2Resnet", netG="StyleGAN2Resnet", netD="StyleGAN2",
                    netPatchD="StyleGAN2", num_classes=0, num_gpus=0, isTrain=True,
                    continue_train=False, pretrained_name=None, resume_iter="latest",
                    checkpoints_dir="/nonexistent", name="parity", dataset_mode="imagefolder",
                    netG_resnet_ch=256, max_num_tiles=8, patch_random_transformation=False)
# their loss name -> ours (their D_total includes D_R1 on R1 steps)
LOSS_NAMES = {"D_real": "D_real", "D_rec": "D_rec", "D_mix": "D_mix", "PatchD_real": "PatchD_real",
              "PatchD_mix": "PatchD_mix", "D_R1": "D_R1", "G_L1": "G_L1", "G_GAN_rec": "G_GAN_rec",
              "G_GAN_mix": "G_GAN_mix", "G_mix": "G_mix"}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", required=True, help="checkout of taesungp/swapping-autoencoder-pytorch")
    p.add_argument("--steps", type=int, default=8, help="training steps (D and G alternate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--aggregation", choices=("off", "on"), default="off",
                   help="--patch_use_aggregation (off: the church_default preset)")
    p.add_argument("--loss_rtol", type=float, default=None,
                   help="default 1e-9 (float64) or 1e-3 (float32)")
    p.add_argument("--weight_atol", type=float, default=None,
                   help="default 1e-9 (float64) or 1e-3 (float32): a hundredth of one update at lr 2e-3 is 2e-5")
    p.add_argument("--out", default=None, help="folder for swapae_parity.json / .md")
    args = p.parse_args(argv)
    marker = os.path.join(args.ref, "models", "swapping_autoencoder_model.py")
    if not os.path.isfile(marker):
        raise UserError(f"--ref {args.ref} is not a checkout of taesungp/swapping-autoencoder-pytorch "
                        f"({marker} is missing)")
    tight = args.dtype == "float64"
    args.loss_rtol = args.loss_rtol if args.loss_rtol is not None else (1e-9 if tight else 1e-3)
    args.weight_atol = args.weight_atol if args.weight_atol is not None else (1e-9 if tight else 1e-3)
    return args


def run_reference(args, work):
    config = {"seed": args.seed, "dtype": args.dtype,
              "options": dict(CONFIG, **AUTHORS_ONLY, patch_use_aggregation=args.aggregation == "on")}
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(config, f)
    script = os.path.join(ROOT, "scripts", "parity", "swapae_reference.py")
    proc = subprocess.run([sys.executable, script, "--ref", args.ref, "--work", work],
                          cwd=args.ref, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"the authors' code failed:\n{tail}")
    return torch.load(os.path.join(work, "reference.pt"), weights_only=True)


def run_ours(args, work, reference):
    from models import create_model
    from options.train_options import TrainOptions
    sizes = " ".join(f"--{k} {v}" for k, v in CONFIG.items())
    argv = (f"--model swap_ae --dataroot {work} --checkpoints_dir {work}/ck --name parity "
            f"--gpu_ids -1 --display_id 0 --num_threads 0 {sizes} "
            f"--patch_use_aggregation {args.aggregation == 'on'}").split()
    opt = TrainOptions(argv).parse()
    model = create_model(opt)
    model.setup(opt)
    for name, net in model.networks():
        net.to(getattr(torch, args.dtype))
        net.load_state_dict(reference["initial"][name], strict=True)
    batches = torch.load(os.path.join(work, "batches.pt"))
    losses = []
    for step, batch in enumerate(batches):
        torch.manual_seed(args.seed + step)
        model.set_input({"A": batch.to(getattr(torch, args.dtype)), "A_paths": ["x"] * len(batch)})
        d_turn = model.steps % 2 == 0
        r1_turn = d_turn and (model.d_steps + 1) % opt.R1_once_every == 0
        model.optimize_parameters()
        names = (["D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix"] + (["D_R1"] if r1_turn else [])
                 if d_turn else ["G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix"])
        losses.append({name: float(getattr(model, "loss_" + name).detach()) for name in names})
    return losses, {name: net.state_dict() for name, net in model.networks()}


def compare(args, reference, ours, final):
    rows, ok = [], True
    for step, (theirs, mine) in enumerate(zip(reference["losses"], ours)):
        worst = 0.0
        for their_name, our_name in LOSS_NAMES.items():
            if their_name not in theirs:
                continue
            if our_name not in mine:
                ok = False
                worst = float("inf")
                continue
            a, b = theirs[their_name], mine[our_name]
            worst = max(worst, abs(a - b) / max(abs(a), 1e-12))
        kind = "G" if "G_L1" in theirs else ("D + R1" if "D_R1" in theirs else "D")
        ok &= worst <= args.loss_rtol
        rows.append({"step": step + 1, "kind": kind, "losses_reference": theirs, "losses_ours": mine,
                     "max_rel_loss_diff": worst})
    weights = {}
    for name, state in reference["final"].items():
        diffs = [float((state[k].double() - final[name][k].double()).abs().max())
                 for k in state if state[k].is_floating_point() and state[k].numel()]
        moved = [float((state[k].double() - reference["initial"][name][k].double()).abs().max())
                 for k in state if state[k].is_floating_point() and state[k].numel()]
        weights[name] = {"max_abs_diff": max(diffs), "max_abs_update": max(moved)}
        ok &= max(diffs) <= args.weight_atol
    return rows, weights, ok


def format_table(args, rows, weights, ok):
    lines = [f"Swapping Autoencoder parity with the authors' code ({args.dtype}, CPU, torch "
             f"{torch.__version__}; {CONFIG['crop_size']} px, batch {CONFIG['batch_size']}, "
             f"R1 every {CONFIG['R1_once_every']} D steps, aggregation {args.aggregation}, seed {args.seed})",
             "", "| step | kind | losses (authors) | max relative difference |", "|---|---|---|---|"]
    for r in rows:
        shown = ", ".join(f"{k} {v:.6f}" for k, v in r["losses_reference"].items() if k in LOSS_NAMES)
        lines.append(f"| {r['step']} | {r['kind']} | {shown} | {r['max_rel_loss_diff']:.1e} |")
    lines += ["", "| network | max abs weight difference after the last step | largest update of a weight |",
              "|---|---|---|"]
    lines += [f"| {n} | {w['max_abs_diff']:.1e} | {w['max_abs_update']:.1e} |" for n, w in weights.items()]
    lines += ["", "PASS" if ok else f"FAIL (loss rtol {args.loss_rtol:g}, weight atol {args.weight_atol:g})"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    with tempfile.TemporaryDirectory(prefix="swapae_parity_") as work:
        g = torch.Generator().manual_seed(args.seed)
        size = CONFIG["crop_size"]
        # smooth random images (upsampled noise), so that the crops differ from one another
        coarse = torch.rand(args.steps, CONFIG["batch_size"], 3, size // 8, size // 8, generator=g,
                            dtype=torch.float64)
        batches = [torch.nn.functional.interpolate(c, size=(size, size), mode="bilinear",
                                                   align_corners=False) * 2 - 1 for c in coarse]
        torch.save(batches, os.path.join(work, "batches.pt"))
        reference = run_reference(args, work)
        torch.set_default_dtype(getattr(torch, args.dtype))
        try:
            ours, final = run_ours(args, work, reference)
        finally:
            torch.set_default_dtype(torch.float32)
    rows, weights, ok = compare(args, reference, ours, final)
    table = format_table(args, rows, weights, ok)
    print(table, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        record = {"dtype": args.dtype, "seed": args.seed, "aggregation": args.aggregation,
                  "config": CONFIG, "torch": torch.__version__, "machine": platform.processor()
                  or platform.machine(), "steps": rows, "weights": weights, "pass": ok}
        with open(os.path.join(args.out, "swapae_parity.json"), "w") as f:
            json.dump(record, f, indent=1)
        with open(os.path.join(args.out, "swapae_parity.md"), "w") as f:
            f.write(table)
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main)
