"""The Cityscapes segmentation score in miniature: toy street scenes, CPU, one command.

    python scripts/toy_cityscapes.py                          # the documented run (~40 min, CPU)
    python scripts/toy_cityscapes.py --quick --out /tmp/tcs   # plumbing check (a minute)

The whole path of the real data set, on synthetic frames (datasets/make_toy_cityscapes.py):
  1. data       a toy gtFine/ + leftImg8bit/ tree, prepared by datasets/prepare_cityscapes_dataset.py
                (photos and colour label maps at 64x64, train ids at the evaluation size 128x64)
  2. segmenter  scripts/train_segmenter.py: a narrow DRN-D-22 trained on the prepared photos
  3. rows       CUT, FastCUT and CycleGAN trained labels -> photo (--direction BtoA) by train.py
                and run on the test label maps by test.py, all with one budget and seed; the
                untrained generator (CUT's G at its initialisation) as the floor
  4. score      evaluate.py --seg_labels: mIoU, pixel and class accuracy of each row's photos,
                and of the real test photos (the ceiling)
  5. show       a grid: label map, real photo, each row's photo, and under each the segmenter's
                prediction, at the evaluation size

Outputs under --out (default: the repository root): datasets/toy_cityscapes_raw/,
datasets/toy_cityscapes/, checkpoints/toy_cs_*/, results/toy_cs_*/ and
results/toy_cityscapes/toy_cityscapes.{md,json} + toy_cityscapes_grid.png (--grid to write the
picture elsewhere, e.g. docs/).  Finished steps are not run again (the data set, the segmenter,
each row with its toy_row.json) unless --force; a row that fails is reported and the others
still run.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from demo import (FIXED_TRAIN_ARGS, ROOT, UNTRAINED, TrainProgress, fmt_duration,  # noqa: E402
                  layout, option_args, run_measured, save_untrained_generator)
from toy_study import machine_facts, seconds_per_iteration  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402

PREFIX = "toy_cs_"
STUDY = "toy_cityscapes"
ROW_JSON = "toy_row.json"
SEGMENTER = PREFIX + "segmenter"
ROWS = {
    "CUT": ["--model", "cut", "--CUT_mode", "CUT"],
    "FastCUT": ["--model", "cut", "--CUT_mode", "FastCUT"],
    "CycleGAN": ["--model", "cycle_gan"],
}
REAL, UNTRAINED_ROW = "real photos", "untrained G"

# The documented budget and the plumbing check.  The frames are 2:1 like Cityscapes; as there,
# the translation runs on squares (64x64) and the score at 2:1 (128x64: the DRN's output stride
# of 8 then leaves a 16x8 map, as 256x128 leaves 32x16 on the real data).
BUDGET = {
    "full": dict(frame="128x64", n_train=400, n_test=50, size=64, eval_size="128x64",
                 seg_width=0.25, seg_epochs=20, seg_step=15, seg_batch=16,
                 netG="resnet_6blocks", ngf=32, ndf=32, n_epochs=2, n_epochs_decay=1),
    "quick": dict(frame="64x32", n_train=6, n_test=3, size=32, eval_size="64x32",
                  seg_width=0.125, seg_epochs=1, seg_step=1, seg_batch=3,
                  netG="resnet_6blocks", ngf=8, ndf=8, n_epochs=1, n_epochs_decay=0),
}


# ---------------------------------------------------------------------------- steps

def python(script):
    return os.path.join(ROOT, script)


def ensure_data(out, budget, seed, force, log):
    """The raw toy tree and its prepared copy; returns the prepared folder."""
    raw = os.path.join(out, "datasets", "toy_cityscapes_raw")
    data = os.path.join(out, "datasets", "toy_cityscapes")
    manifest = os.path.join(data, "prepare_cityscapes.json")
    wanted = {k: budget[k] for k in ("frame", "n_train", "n_test", "size", "eval_size")}
    stamp = os.path.join(data, "toy_settings.json")
    if not force and os.path.isfile(manifest) and os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == {**wanted, "seed": seed}:
                return data, "using the existing data set " + data
    width, height = budget["frame"].split("x")
    os.makedirs(raw, exist_ok=True)
    run_measured([python("datasets/make_toy_cityscapes.py"), "--out", raw, "--overwrite",
                  "--width", width, "--height", height, "--n_train", str(budget["n_train"]),
                  "--n_val", str(budget["n_test"]), "--seed", str(seed)], log)
    shutil.rmtree(data, ignore_errors=True)
    run_measured([python("datasets/prepare_cityscapes_dataset.py"), "--gtFine_dir",
                  os.path.join(raw, "gtFine"), "--leftImg8bit_dir", os.path.join(raw, "leftImg8bit"),
                  "--output_dir", data, "--size", str(budget["size"]), "--eval_size",
                  budget["eval_size"]], log)
    with open(stamp, "w") as f:
        json.dump({**wanted, "seed": seed}, f)
    return data, f"generated and prepared {budget['n_train']} + {budget['n_test']} frames into {data}"


def ensure_segmenter(out, data, budget, seed, force, log):
    """Train (or resume, or keep) the toy segmenter; returns (weights path, record)."""
    folder = os.path.join(out, "checkpoints", SEGMENTER)
    if force:
        shutil.rmtree(folder, ignore_errors=True)
    args = [python("scripts/train_segmenter.py"), "--dataroot", data, "--name", SEGMENTER,
            "--checkpoints_dir", os.path.join(out, "checkpoints"), "--width",
            str(budget["seg_width"]), "--epochs", str(budget["seg_epochs"]), "--step",
            str(budget["seg_step"]), "--batch_size", str(budget["seg_batch"]), "--seed",
            str(seed), "--device", "cpu", "--progress", "off"]
    if os.path.isfile(os.path.join(folder, "latest_state.pth")):
        args.append("--continue_train")
    os.makedirs(folder, exist_ok=True)
    run = run_measured(args, log, lambda line: print("  " + line, flush=True)
                       if line.startswith("epoch") else None)
    with open(os.path.join(folder, "seg_log.jsonl")) as f:
        last = [json.loads(line) for line in f if line.strip()][-1]
    return os.path.join(folder, "seg_drn_d_22.pth"), {**last, "wall_s": run["wall_s"],
                                                        "command": "python " + shlex.join(args)}


def row_paths(out, row, data):
    paths = layout(out, PREFIX + row, data)
    paths.update(row_json=os.path.join(paths["results"], ROW_JSON),
                 train_log=os.path.join(paths["checkpoint"], "toy_train.log"),
                 test_log=os.path.join(paths["checkpoint"], "toy_test.log"))
    return paths


def common_args(budget, paths, row_args):
    size = str(budget["size"])
    return (["--dataroot", paths["dataroot"], "--name", os.path.basename(paths["checkpoint"]),
             "--checkpoints_dir", paths["checkpoints_dir"], "--gpu_ids", "-1", "--direction",
             "BtoA", "--load_size", size, "--crop_size", size, "--preprocess", "none",
             "--netG", budget["netG"], "--ngf", str(budget["ngf"])] + row_args)


def test_args(budget, paths, row_args, epoch):
    return ([python("test.py")] + common_args(budget, paths, row_args)
            + ["--results_dir", paths["results_dir"], "--epoch", epoch,
               "--num_test", str(budget["n_test"])])


def run_row(row, budget, seed, paths):
    """Train and test one row (and, for CUT, the untrained generator); returns its record."""
    for folder in (paths["checkpoint"], paths["results"]):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    row_args = ROWS[row]
    epochs = budget["n_epochs"] + budget["n_epochs_decay"]
    train = ([python("train.py")] + common_args(budget, paths, row_args) + FIXED_TRAIN_ARGS
             + ["--seed", str(seed), "--print_freq", "100"]
             + option_args({k: budget[k] for k in ("ndf", "n_epochs", "n_epochs_decay")}))
    print(f"  train: {epochs} epoch(s) of {budget['n_train']} iterations; log {paths['train_log']}",
          flush=True)
    trained = run_measured(train, paths["train_log"],
                           TrainProgress(epochs, budget["n_train"]).feed)
    run_measured(test_args(budget, paths, row_args, "latest"), paths["test_log"])
    if row == "CUT":  # the floor: the same generator before any training
        cfg = {"mode": "CUT", "seed": seed, "model": {"netG": budget["netG"], "ngf": budget["ngf"]}}
        run_measured([python("scripts/toy_cityscapes.py"), "--_save_untrained",
                      json.dumps({"cfg": cfg, "paths": paths})], paths["test_log"])
        run_measured(test_args(budget, paths, row_args, UNTRAINED), paths["test_log"])
    iterations = epochs * budget["n_train"]
    per_iter = seconds_per_iteration(paths["checkpoint"], 1)
    return {"row": row, "options": row_args, "budget": budget, "seed": seed,
            "iterations": iterations, "train_s": trained["wall_s"],
            "sec_per_iter": per_iter if per_iter is not None else trained["wall_s"] / iterations,
            "peak_rss_bytes": trained["peak_rss_bytes"],
            "train_command": "python " + shlex.join(train)}


def load_finished(paths, budget, seed):
    if not os.path.isfile(paths["row_json"]):
        return None
    with open(paths["row_json"]) as f:
        record = json.load(f)
    return record if record.get("budget") == budget and record.get("seed") == seed else None


def score(folder, weights, data, log, real=False):
    """evaluate.py's segmentation score of a folder of photos (a subprocess: no torch here)."""
    jsonl = os.path.join(os.path.dirname(log), "toy_score.jsonl")
    if os.path.exists(jsonl):
        os.remove(jsonl)
    run_measured([python("evaluate.py"), folder, "--seg_weights", weights, "--seg_labels",
                  os.path.join(data, "testB_trainIds"), "--jsonl", jsonl, "--device", "cpu"], log)
    with open(jsonl) as f:
        record = json.loads(f.readline())
    keep = ("miou", "pixel_acc", "class_acc", "per_class_iou", "n_images", "eval_size")
    return {k: record[k] for k in keep} | {"dir": folder, "real": real}


# ---------------------------------------------------------------------------- table and grid

def pct(value):
    return f"{100 * value:.1f}"


def format_markdown(report):
    b, m = report["budget"], report["machine"]
    seg = report["segmenter"]
    lines = ["| photos scored | mIoU | pixAcc | classAcc | s/iter | iterations | train time (min:s) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["rows"].items():
        if "failed" in r:
            lines.append(f"| {name} | failed: {r['failed']} | | | | | |")
            continue
        costs = ([f"{r['sec_per_iter']:.3f}", str(r["iterations"]), fmt_duration(r["train_s"])]
                 if "sec_per_iter" in r else ["", "", ""])
        cells = [name, pct(r["miou"]), pct(r["pixel_acc"]), pct(r["class_acc"])] + costs
        lines.append("|" + "|".join(f" {c} " if c else " " for c in cells) + "|")
    lines += ["",
              f"Data: {b['n_train']} training and {b['n_test']} test frames of {b['frame']}, "
              f"translated at {b['size']}x{b['size']}, scored at {b['eval_size']} "
              f"(seed {report['seed']}).  Translators: {b['netG']}, ngf {b['ngf']}, ndf "
              f"{b['ndf']}, {b['n_epochs']} + {b['n_epochs_decay']} epochs at batch size 1.  "
              f"Segmenter: DRN-D-22 at width {b['seg_width']}, {b['seg_epochs']} epochs "
              f"(batch {b['seg_batch']}), trained in {fmt_duration(seg['wall_s'])}.",
              f"Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, python {m['python']}; "
              f"whole run {fmt_duration(report['total_s'])} (min:s); load average at the end "
              f"{', '.join(f'{v:.1f}' for v in m['load_average_at_end'])}."]
    return "\n".join(lines) + "\n"


def make_grid(report, data, out_path, count=4, scale=1):
    """Per test frame two lines: the label map, the real photo and each row's photo at the
    evaluation size; under them the ground truth and each photo's predicted segmentation."""
    import numpy as np
    from data.cityscapes_labels import colorize_train_ids
    from metrics.segmentation import index_folder, load_label_map, load_photo
    from models.networks.segmentation import load_segmenter

    segmenter = load_segmenter("drn_d_22", report["segmenter"]["weights"])
    labels = index_folder(os.path.join(data, "testB_trainIds"), "labels")
    inputs = index_folder(os.path.join(data, "testB"), "label maps")
    columns = [(name, index_folder(r["dir"], name)) for name, r in report["rows"].items()
               if "failed" not in r]
    keys = [k for k in sorted(labels, key=lambda k: int(k) if k.isdigit() else k)
            if all(k in imgs for _, imgs in columns)][:count]
    gt = [load_label_map(labels[k], len(segmenter.classes)) for k in keys]
    height, width = gt[0].shape
    gap, header = 3, 14
    n_cols = 1 + len(columns)
    grid = Image.new("RGB", (n_cols * (width + gap) - gap,
                             header + len(keys) * (2 * height + 2 * gap) - gap), "white")
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(["label map"] + [n for n, _ in columns]):
        draw.text((c * (width + gap) + 2, 1), name, fill="black")
    for r, key in enumerate(keys):
        y = header + r * (2 * height + 2 * gap)
        grid.paste(Image.open(inputs[key]).convert("RGB").resize((width, height), Image.NEAREST),
                   (0, y))
        grid.paste(Image.fromarray(colorize_train_ids(gt[r])), (0, y + height + gap))
        for c, (_, images) in enumerate(columns, 1):
            photo = load_photo(images[key], (width, height))
            pred = segmenter.predict(photo[None]).numpy()[0].astype(np.uint8)
            grid.paste(Image.fromarray(photo), (c * (width + gap), y))
            grid.paste(Image.fromarray(colorize_train_ids(pred)), (c * (width + gap), y + height + gap))
    if scale > 1:  # nearest neighbour: no smoothing hides or invents detail
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    grid.quantize(256).save(out_path, optimize=True)  # 256 colours keep the picture small
    return out_path


# ---------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budget: a plumbing check")
    p.add_argument("--out", default=ROOT, help="root of datasets/, checkpoints/ and results/")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="redo finished steps")
    p.add_argument("--grid", default=None, help="where to write the picture (default: beside the table)")
    p.add_argument("--grid_images", type=int, default=4)
    p.add_argument("--grid_scale", type=int, default=2, help="enlargement of the grid picture")
    p.add_argument("--_save_untrained", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    if opt._save_untrained:  # child process: build and save CUT's G as initialised
        job = json.loads(opt._save_untrained)
        print(f"wrote {save_untrained_generator(job['cfg'], job['paths'])}")
        return 0
    start = time.perf_counter()
    budget = dict(BUDGET["quick" if opt.quick else "full"])
    out = os.path.abspath(opt.out)
    study = os.path.join(out, "results", STUDY)
    os.makedirs(study, exist_ok=True)
    log = os.path.join(study, "toy_cityscapes.log")
    open(log, "w").close()

    print("[1/5] data", flush=True)
    data, what = ensure_data(out, budget, opt.seed, opt.force, log)
    print("  " + what, flush=True)
    print("[2/5] segmenter", flush=True)
    weights, seg = ensure_segmenter(out, data, budget, opt.seed, opt.force, log)
    seg["weights"] = weights

    print("[3/5] rows", flush=True)
    records, failures = {}, {}
    for i, row in enumerate(opt.rows, 1):
        paths = row_paths(out, row, data)
        record = None if opt.force else load_finished(paths, budget, opt.seed)
        if record is not None:
            print(f"[{i}/{len(opt.rows)}] {row}: finished before; skipped", flush=True)
        else:
            print(f"[{i}/{len(opt.rows)}] {row}: {' '.join(ROWS[row])} --direction BtoA", flush=True)
            try:
                record = run_row(row, budget, opt.seed, paths)
            except UserError as err:
                failures[row] = str(err).splitlines()[0]
                print(f"  failed: {failures[row]}", flush=True)
                continue
            with open(paths["row_json"], "w") as f:
                json.dump(record, f, indent=1)
            print(f"  done in {fmt_duration(record['train_s'])}, {record['sec_per_iter']:.3f} "
                  "s/iter", flush=True)
        records[row] = (record, paths)

    print("[4/5] score", flush=True)
    rows = {REAL: score(os.path.join(data, "testA"), weights, data, log, real=True)}
    if "CUT" in records:
        rows[UNTRAINED_ROW] = score(records["CUT"][1]["untrained"] + "/images/fake_B", weights,
                                    data, log)
    for row in opt.rows:
        if row in failures:
            rows[row] = {"failed": failures[row]}
            continue
        record, paths = records[row]
        rows[row] = score(os.path.join(paths["trained"], "images", "fake_B"), weights, data, log)
        rows[row].update({k: record[k] for k in ("sec_per_iter", "iterations", "train_s",
                                                 "peak_rss_bytes", "train_command")})
    report = {"rows": rows, "budget": budget, "seed": opt.seed, "segmenter": seg,
              "machine": machine_facts(), "total_s": time.perf_counter() - start}
    table = format_markdown(report)
    with open(os.path.join(study, "toy_cityscapes.md"), "w") as f:
        f.write(table)
    with open(os.path.join(study, "toy_cityscapes.json"), "w") as f:
        json.dump(report, f, indent=1)

    print("[5/5] show", flush=True)
    grid = make_grid(report, data, opt.grid or os.path.join(study, "toy_cityscapes_grid.png"),
                     opt.grid_images, opt.grid_scale)
    print()
    print(table, end="")
    print(f"\nwrote {os.path.join(study, 'toy_cityscapes.md')}, .json and {grid}")
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
