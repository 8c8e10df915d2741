"""The Swapping Autoencoder on a toy whose right answer is known: train swap_ae on synthetic
images that combine a structure (a layout of shapes) with a texture (a pattern and a palette),
drawn independently (datasets/make_swap_toy.py), then score swaps of held-out pairs without
learned weights (metrics/swap_toy_scores.py), beside the trivial answers and an untrained model.

    python scripts/toy_swap.py                          # the documented run (CPU, minutes)
    python scripts/toy_swap.py --quick --out /tmp/toy   # plumbing check in seconds

Steps: the data set (generated into <out>/datasets/swap_toy when missing), train.py in a
subprocess (<out>/checkpoints/toy_swap), then the rows of the table:

    output = structure image    the first trivial answer (keeps the structure, adopts nothing)
    output = texture image      the second (adopts everything, keeps no structure)
    ideal swap                  the structure source's shapes rendered with the texture
                                source's texture (what a perfect model returns: checks the scores)
    untrained model             swap_ae's networks as initialised (same seed and sizes)
    trained: reconstruction     G(sp_S, gl_S) (alpha 0): the structure, the structure's texture
    trained: swap               G(sp_S, gl_T) (alpha 1)

and writes <out>/results/toy_swap/: toy_swap.md and .json (the table, machine, budget, time)
and toy_swap_grid.png (test structures down the left, textures along the top, swaps inside).
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from datasets.make_swap_toy import PALETTES, make_dataset, render  # noqa: E402
from metrics.swap_toy_scores import score_swap, summarize  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402

# 64 px images; E down to an 8 x 8 structure code, a 64-d texture code; every network narrow.
TOY_ARGS = ["--model", "swap_ae", "--crop_size", "64", "--load_size", "64", "--no_flip",
            "--netE_num_downsampling_sp", "3", "--netE_scale_capacity", "0.5", "--global_code_ch", "64",
            "--netG_scale_capacity", "0.125", "--netD_scale_capacity", "0.03125", "--netD_max_nc", "64",
            "--netPatchD_scale_capacity", "0.25", "--netPatchD_max_nc", "64", "--netPatchD_mlp_nc", "256",
            "--patch_size", "16"]
BUDGETS = {
    # images, test pairs, batch size, steps (D and G steps alternate: half of each)
    "full": dict(n_train=1000, n_pairs=48, batch_size=8, steps=4000, save_epoch_freq=4),
    "quick": dict(n_train=16, n_pairs=4, batch_size=4, steps=4, save_epoch_freq=1000000),
}
QUICK_ARGS = ["--netE_scale_capacity", "0.125", "--global_code_ch", "16", "--netG_scale_capacity",
              "0.03125", "--netD_max_nc", "16", "--netPatchD_max_nc", "16", "--netPatchD_mlp_nc", "16",
              "--netPatchD_scale_capacity", "0.0625", "--patch_size", "8", "--patch_num_crops", "2"]
NAME = "toy_swap"
GRID = 4  # structures x textures in the grid


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=ROOT, help="where datasets/, checkpoints/ and results/ go")
    p.add_argument("--quick", action="store_true", help="a few images and steps (tests)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the budget's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    p.add_argument("--force", action="store_true", help="train again even if a checkpoint exists")
    p.add_argument("--data", default=None, help="the toy data set (default <out>/datasets/swap_toy)")
    args = p.parse_args(argv)
    args.budget = dict(BUDGETS["quick" if args.quick else "full"])
    if args.steps is not None:
        if args.steps < 2:
            raise UserError("--steps must be at least 2 (a D step and a G step)")
        args.budget["steps"] = args.steps
    return args


def epochs_for(budget):
    return math.ceil(budget["steps"] / (budget["n_train"] // budget["batch_size"]))


def train_args(args, dataroot, checkpoints):
    b = args.budget
    return (TOY_ARGS + (QUICK_ARGS if args.quick else [])
            + ["--dataroot", dataroot, "--checkpoints_dir", checkpoints, "--name", NAME,
               "--batch_size", str(b["batch_size"]), "--n_epochs", str(epochs_for(b)), "--n_epochs_decay", "0",
               "--gpu_ids", "-1", "--num_threads", "0", "--seed", str(args.seed), "--display_id", "0",
               "--print_freq", str(50 * b["batch_size"]), "--save_epoch_freq", str(b["save_epoch_freq"]),
               "--save_latest_freq", str(500 * b["batch_size"]), "--no_html", "--progress", "off"])


def setting(argv):
    """What decides the training run besides its length."""
    i = argv.index("--n_epochs")
    return argv[:i] + argv[i + 2:]


def train(args, dataroot, checkpoints):
    """train.py in a subprocess; returns the run's record (argv, steps, wall and CPU seconds).

    A finished run with the same setting is reused; a shorter one is continued with
    --continue_train (exact resume at a constant learning rate: the same weights as one run of
    the whole length; the times add up), a longer one is trained again."""
    folder = os.path.join(checkpoints, NAME)
    record_path = os.path.join(folder, "toy_train.json")
    argv = train_args(args, dataroot, checkpoints)
    record = None
    if os.path.isfile(record_path) and not args.force:
        with open(record_path) as f:
            record = json.load(f)
        if setting(record["argv"]) != setting(argv) or record["epochs"] > epochs_for(args.budget):
            record = None
        elif record["epochs"] == epochs_for(args.budget):
            print(f"{NAME}: trained already ({record['steps']} steps), reusing {folder}")
            return record
    if record is None and os.path.isdir(folder):
        import shutil
        shutil.rmtree(folder)
    command = argv + (["--continue_train"] if record is not None else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f"training: python train.py {' '.join(command)}")
    start = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py")] + command, env=env,
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise SystemExit(f"train.py failed:\n{tail}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "toy_train.log"), "a") as f:
        f.write(proc.stdout)
    b = args.budget
    previous = record or {"wall_seconds": 0.0, "cpu_seconds": 0.0}
    record = {"argv": argv, "epochs": epochs_for(b), "steps": (b["n_train"] // b["batch_size"]) * epochs_for(b),
              "wall_seconds": previous["wall_seconds"] + time.time() - start,
              "cpu_seconds": previous["cpu_seconds"] + (after.ru_utime - before.ru_utime)
              + (after.ru_stime - before.ru_stime), "threads": args.threads}
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return record


def untrained_swapper(args, checkpoints):
    """E and G as training initialises them (same options, same seed), as a SwapTranslator."""
    from argparse import Namespace
    from models.swap_ae_model import build_networks
    from models.swap_translation import SwapTranslator
    with open(os.path.join(checkpoints, NAME, "train_opt.json")) as f:
        opt = Namespace(**json.load(f))
    torch.manual_seed(args.seed)
    nets = build_networks(opt, ["E", "G"])
    arch = {k: getattr(opt, k) for k in ("netE_num_downsampling_sp", "netE_num_downsampling_gl")}
    return SwapTranslator(nets["E"], nets["G"], arch, torch.device("cpu"), load_size=None)


def load_pairs(test_dir):
    with open(os.path.join(test_dir, "pairs.json")) as f:
        meta = json.load(f)

    def image(rel):
        return Image.open(os.path.join(test_dir, rel)).convert("RGB")

    pairs = []
    for p in meta["pairs"]:
        pairs.append(dict(p, S=image(p["structure"]), T=image(p["texture"]),
                          mask_S=np.asarray(image(p["structure_mask"]))[..., 0] > 127,
                          mask_T=np.asarray(image(p["texture_mask"]))[..., 0] > 127,
                          size=meta["size"]))
    return pairs


def score_rows(pairs, trained, untrained):
    def ideal(p):
        return Image.fromarray(render(p["structure_shapes"], p["texture_texture"], p["size"]))

    answers = {
        "output = structure image": lambda p: p["S"],
        "output = texture image": lambda p: p["T"],
        "ideal swap (ground truth)": ideal,
        "untrained model: swap": lambda p: untrained.swap(p["S"], p["T"]),
        "trained: reconstruction": lambda p: trained.reconstruct(p["S"]),
        "trained: swap": lambda p: trained.swap(p["S"], p["T"]),
    }
    rows = {}
    for name, answer in answers.items():
        records = [score_swap(np.asarray(answer(p)), np.asarray(p["S"]), np.asarray(p["T"]), p["mask_S"],
                              p["mask_T"], PALETTES[p["structure_texture"]["palette"]],
                              PALETTES[p["texture_texture"]["palette"]]) for p in pairs]
        rows[name] = summarize(records)
    return rows


def make_grid(pairs, trained, path):
    from models.swap_translation import compose_grid
    structures = [p["S"] for p in pairs[:GRID]]
    textures = [p["T"] for p in pairs[GRID:2 * GRID]] or [p["T"] for p in pairs[:GRID]]
    rows = trained.grid(structures, textures)
    cell = pairs[0]["size"]
    compose_grid(structures, textures, rows, cell).save(path, optimize=True)
    return path


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {usable} usable cores; torch {torch.__version__}"


def format_table(rows, record, budget, where):
    lines = [f"Swap scores on {budget['n_pairs']} held-out pairs ({where}; training: {record['steps']} "
             f"steps at batch {budget['batch_size']} on {budget['n_train']} images of 64 px, "
             f"{record['cpu_seconds'] / 60:.1f} CPU-minutes with {record['threads']} thread(s), "
             f"{record['wall_seconds'] / 60:.1f} minutes wall clock)", "",
             "| output | IoU with the structure source | structure kept | palette adopted | "
             "pattern adopted | swap (all three) |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['iou_structure']:.2f} | {r['structure_kept']:.0f} % | "
                     f"{r['palette_adopted']:.0f} % | {r['pattern_adopted']:.0f} % | {r['swap']:.0f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    b = args.budget
    data = args.data or os.path.join(args.out, "datasets", "swap_toy_quick" if args.quick else "swap_toy")
    if not os.path.isfile(os.path.join(data, "test", "pairs.json")):
        make_dataset(data, b["n_train"], b["n_pairs"], 64, args.seed)
        print(f"wrote the toy data set to {data}")
    checkpoints = os.path.join(args.out, "checkpoints")
    record = train(args, os.path.join(data, "train"), checkpoints)

    from models import load_translator
    torch.set_num_threads(args.threads)
    trained = load_translator(os.path.join(checkpoints, NAME), device="cpu", load_size=None)
    untrained = untrained_swapper(args, checkpoints)
    pairs = load_pairs(os.path.join(data, "test"))
    rows = score_rows(pairs, trained, untrained)

    results = os.path.join(args.out, "results", NAME)
    os.makedirs(results, exist_ok=True)
    where = machine()
    table = format_table(rows, record, b, where)
    grid = make_grid(pairs, trained, os.path.join(results, "toy_swap_grid.png"))
    with open(os.path.join(results, "toy_swap.md"), "w") as f:
        f.write(table)
    with open(os.path.join(results, "toy_swap.json"), "w") as f:
        json.dump({"rows": rows, "training": record, "budget": b, "machine": where, "seed": args.seed,
                   "command": "python train.py " + " ".join(record["argv"])}, f, indent=1)
    print(table, end="")
    print(f"grid: {grid}")
    return 0


if __name__ == "__main__":
    run_cli(main)
