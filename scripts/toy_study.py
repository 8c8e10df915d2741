"""A toy version of the CUT paper's Table 1 (baselines) and Table 2 (ablations), on the demo data.

    python scripts/toy_study.py                          # every row, the study's budget (~1 h, CPU)
    python scripts/toy_study.py --quick --out /tmp/toy   # plumbing check at a tiny budget
    python scripts/toy_study.py --rows CUT FastCUT       # some rows only

Every row (ROWS: a name and the train.py options that make it) is trained by train.py and
tested by test.py in subprocesses, with the same data, seed and budget, into
checkpoints/toy_<row>/ and results/toy_<row>/.  Its translations of testA are scored with the demo
protocol demo_h2z_v1 (metrics/demo_scores.py) plus the animal coverage of the outputs (the
share of pixels the detector calls animal), shown beside the coverage of the real testA (source)
and testB (target) images: the data set's zebras cover about twice the area of its horses, as on
real horse2zebra, and the paper (Sec. 5) finds that CUT enlarges the animals more than FastCUT,
and FastCUT more than CycleGAN.  Also per row: seconds per training iteration and the peak
resident set size of the train.py process.

Resume-friendly: a row whose results/toy_<row>/toy_row.json exists is not trained again (unless
--force), so a study stopped half-way goes on where it stopped.  A row that fails (a model not in
this checkout, a crash) is reported in the table and the others still run; the exit status is
then 1.

Outputs under --out (default: the repository root):
  datasets/demo_horse2zebra/           the demo data set (generated when missing)
  checkpoints/toy_<row>/               each row's checkpoints, train_opt.json, toy_train.log
  results/toy_<row>/test_latest/       its translations; results/toy_<row>/toy_row.json
  results/toy_study/toy_study.{md,json}   the table
  results/toy_study/toy_grid.png       test inputs (first column) and every row's translations
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from demo import (BUDGETS, FIXED_TRAIN_ARGS, ROOT, TrainProgress, ensure_dataset,  # noqa: E402
                  fmt_duration, layout, option_args, run_measured)
from metrics.demo_scores import (COLUMNS, IDENTITY, TARGET, index_images, load_mask,  # noqa: E402
                                 score_table, write_json)
from util.errors import UserError, run_cli  # noqa: E402

# The rows, in table order: name -> which of the paper's tables it mirrors, and the train.py
# options that make it (also given to test.py, which needs the model and its architecture).
# A baseline's --model brings its authors' defaults (models/presets.py: networks, batch size,
# learning-rate rule); the budget below still sets the epochs, learning rate and image size.
CUT = ["--model", "cut", "--CUT_mode", "CUT"]
ROWS = {
    # Table 1: the baselines and the two methods.
    "CycleGAN": ("Table 1", ["--model", "cycle_gan"]),
    "DistanceGAN": ("Table 1", ["--model", "distance_gan"]),  # the preset's batch of 2
    "SelfDistance": ("Table 1", ["--model", "distance_gan", "--self_distance"]),
    "GcGAN": ("Table 1", ["--model", "gcgan"]),  # cross variant, batch 8
    # The multimodal baselines: test.py translates each image with one random style (MUNIT) or
    # attribute (DRIT) drawn from the prior.  DRIT trains on pairs (batch 2) and updates its
    # encoders and generator on one batch in three (the others train its content discriminator).
    "MUNIT": ("Table 1", ["--model", "munit"]),
    "DRIT": ("Table 1", ["--model", "drit"]),
    "CUT": ("Table 1", CUT),
    "FastCUT": ("Table 1", ["--model", "cut", "--CUT_mode", "FastCUT"]),
    # Table 2: CUT with one design choice changed.
    "CUT_no_idt": ("Table 2", CUT + ["--nce_idt", "False"]),
    # A query's negatives are the other sampled patches of its image (models/losses/patchnce.py):
    # num_patches - 1 of them, so 256 patches give the paper's 255 and 17 give its 16.
    "CUT_16_negs": ("Table 2", CUT + ["--num_patches", "17"]),
    "CUT_last_layer": ("Table 2", CUT + ["--nce_layers", "16"]),  # last of 0,4,8,12,16
    # Negatives from all 4 images of the minibatch ("external" as well as internal).  Same epochs
    # as every row, so the same images and about the same compute, but a quarter of the updates.
    "CUT_external": ("Table 2", CUT + ["--nce_includes_all_negatives_from_minibatch", "True",
                                       "--batch_size", "4"]),
}
PREFIX = "toy_"
ROW_JSON = "toy_row.json"
STUDY = "toy_study"  # results/<STUDY>/ holds the table and the grid

# The study's budget: the demo's architecture and data (scripts/demo.py, BUDGETS["full"]) at
# 2 + 1 epochs (1,350 iterations at batch size 1), so that the ten rows fit in about an hour on
# 2 CPU cores (README).  --quick: a few images, a narrow network and one epoch, to check the
# plumbing in seconds.
DEMO = BUDGETS["full"]
BUDGET = {
    "full": dict(netG=DEMO["model"]["netG"], ngf=DEMO["model"]["ngf"], ndf=DEMO["train"]["ndf"],
                 n_epochs=2, n_epochs_decay=1, lr=DEMO["train"]["lr"], n_train=450, n_test=50),
    "quick": dict(netG="resnet_6blocks", ngf=8, ndf=8, n_epochs=1, n_epochs_decay=0, lr=0.0002,
                  n_train=4, n_test=4),
}
DATA = DEMO["data"]  # the data set every budget reads: 64 px, 450 + 50 images per domain
MB = 2 ** 20


def select_rows(names):
    """Validated row names in table order; an unknown name is a one-line error."""
    if not names:
        return list(ROWS)
    by_lower = {name.lower(): name for name in ROWS}
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown:
        raise UserError(f"unknown row '{unknown[0]}'; choose from: {', '.join(ROWS)}")
    chosen = {by_lower[n.lower()] for n in names}
    return [name for name in ROWS if name in chosen]


def registered_models():
    """Names in models.MODELS, read by a child process.  This process never imports torch: on
    Linux a child's peak RSS (os.wait4) starts from its parent's at the spawn, so a parent
    holding torch would hide the smaller rows' own peaks."""
    proc = subprocess.run([sys.executable, "-c", "import json; from models import MODELS; "
                           "print(json.dumps(sorted(MODELS)))"], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise UserError("cannot read the model registry: "
                        + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout)


def missing_model(row_args, models):
    """Why a row cannot run with these registered `models` (its --model is not one), or None."""
    model = row_args[row_args.index("--model") + 1]
    if model in models:
        return None
    return (f"--model {model} is not in this checkout (models.MODELS has "
            f"{', '.join(models)}); merge the branch that adds it")


def row_paths(out, row, dataroot):
    paths = layout(out, PREFIX + row, dataroot)
    paths["row_json"] = os.path.join(paths["results"], ROW_JSON)
    paths["train_log"] = os.path.join(paths["checkpoint"], "toy_train.log")
    paths["test_log"] = os.path.join(paths["checkpoint"], "toy_test.log")
    return paths


def common_args(budget, paths, row_args):
    """Options both train.py and test.py get: data, architecture, names, then the row's own."""
    size = str(DATA["size"])
    return (["--dataroot", paths["dataroot"], "--name", os.path.basename(paths["checkpoint"]),
             "--checkpoints_dir", paths["checkpoints_dir"], "--gpu_ids", "-1",
             "--load_size", size, "--crop_size", size, "--preprocess", "none",
             "--netG", budget["netG"], "--ngf", str(budget["ngf"])] + row_args)


def resolved_batch_size(train_args):
    """The batch size train.py takes from these arguments (a row's flag, or its model's preset):
    TrainOptions parses them in a child process (this one never imports torch, see
    registered_models)."""
    code = ("import sys; from options.train_options import TrainOptions; "
            "print('batch_size', TrainOptions(sys.argv[1:]).parse().batch_size)")
    proc = subprocess.run([sys.executable, "-c", code] + train_args[1:], cwd=ROOT,
                          capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("batch_size "):
        raise UserError("cannot parse the row's options: "
                        + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    return int(lines[-1].split()[1])


def seconds_per_iteration(checkpoint, batch):
    """Training-loop time per iteration from loss_log.jsonl (start-up excluded), or None."""
    path = os.path.join(checkpoint, "loss_log.jsonl")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if r.get("elapsed") and r.get("total_iters")]
    if not records:
        return None
    last = records[-1]
    return last["elapsed"] / (last["total_iters"] / batch)


def run_row(row, budget, seed, paths):
    """Train, test and time one row; returns its record (written to toy_row.json by the caller)."""
    _, row_args = ROWS[row]
    epochs = budget["n_epochs"] + budget["n_epochs_decay"]
    for folder in (paths["checkpoint"], paths["results"]):  # the study owns toy_<row>/: start afresh
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)

    train_args = ([os.path.join(ROOT, "train.py")] + common_args(budget, paths, row_args)
                  + FIXED_TRAIN_ARGS
                  + ["--seed", str(seed), "--max_dataset_size", str(budget["n_train"])]
                  + option_args({k: budget[k] for k in ("ndf", "n_epochs", "n_epochs_decay", "lr")}))
    batch = resolved_batch_size(train_args)
    batches = budget["n_train"] // batch  # training drops the last partial batch
    print(f"  train: {epochs} epoch(s) of {batches} iterations (batch size {batch}); "
          f"log {paths['train_log']}", flush=True)
    progress = TrainProgress(epochs, batches * batch)
    trained = run_measured(train_args, paths["train_log"], progress.feed)

    test_args = ([os.path.join(ROOT, "test.py")] + common_args(budget, paths, row_args)
                 + ["--results_dir", paths["results_dir"], "--epoch", "latest",
                    "--num_test", str(budget["n_test"])])
    open(paths["test_log"], "w").close()
    tested = run_measured(test_args, paths["test_log"])

    iterations = epochs * batches
    per_iter = seconds_per_iteration(paths["checkpoint"], batch)
    return {
        "row": row, "table": ROWS[row][0], "options": row_args, "budget": budget, "seed": seed,
        "iterations": iterations, "batch_size": batch,
        "train_s": trained["wall_s"], "test_s": tested["wall_s"],
        "sec_per_iter": per_iter if per_iter is not None else trained["wall_s"] / iterations,
        "sec_per_iter_from": "loss_log.jsonl" if per_iter is not None else "train.py wall time",
        "peak_rss_bytes": trained["peak_rss_bytes"],
        "results": paths["trained"],
        "train_command": "python " + " ".join(shlex.quote(a) for a in train_args),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def load_finished(paths, budget, seed):
    """The stored record of a finished row, or None; a different budget is an error."""
    if not os.path.isfile(paths["row_json"]):
        return None
    with open(paths["row_json"]) as f:
        record = json.load(f)
    if record.get("budget") != budget or record.get("seed") != seed:
        raise UserError(f"{paths['row_json']} was trained with another budget or seed "
                        f"({record.get('budget')}, seed {record.get('seed')}); pass --force to "
                        "train it again, or another --out")
    return record


# ---------------------------------------------------------------------------- table and grid

def true_coverage(dataroot, domain):
    """Mean share of animal pixels in the ground-truth masks of test<domain>."""
    masks = index_images(os.path.join(dataroot, f"test{domain}_mask"))
    return sum(float(load_mask(p).mean()) for p in masks.values()) / max(len(masks), 1)


def build_report(dataroot, records, failures, machine):
    """Scores of every finished row (protocol demo_h2z_v1 + coverage) with its costs."""
    report = score_table(dataroot, {row: rec["results"] for row, rec in records.items()})
    for row, rec in records.items():
        report["rows"][row].update({k: rec[k] for k in (
            "table", "options", "iterations", "batch_size", "train_s", "sec_per_iter",
            "sec_per_iter_from", "peak_rss_bytes", "train_command")})
    report["failed"] = failures
    report["true_mask_coverage"] = {"A": true_coverage(dataroot, "A"),
                                    "B": true_coverage(dataroot, "B")}
    report["machine"] = machine
    return report


def format_markdown(report, order, budget):
    rows = report["rows"]
    lines = ["| row | paper table | content IoU | stripe share | background match | B-rate | "
             "animal coverage | s/iter | peak RSS (MB) | iterations | train time (min:s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def scores(r):
        return " | ".join(f"{r[c]:.3f}" for c in COLUMNS) + f" | {100 * r['animal_coverage']:.1f}%"

    lines.append(f"| source: real testA (as output) | | {scores(rows[IDENTITY])} | | | | |")
    for row in order:
        if row in report["failed"]:
            lines.append(f"| {row} | {ROWS[row][0]} | failed: {report['failed'][row]} "
                         "| | | | | | | | |")
        elif row in rows:
            r = rows[row]
            lines.append(f"| {row} | {r['table']} | {scores(r)} | {r['sec_per_iter']:.3f} | "
                         f"{r['peak_rss_bytes'] / MB:.0f} | {r['iterations']} | "
                         f"{fmt_duration(r['train_s'])} |")
    lines.append(f"| target: real testB | | {scores(rows[TARGET])} | | | | |")
    true = report["true_mask_coverage"]
    m = report["machine"]
    lines += ["",
              f"Budget: {budget['n_epochs']} + {budget['n_epochs_decay']} epochs of "
              f"{budget['n_train']} images, {budget['netG']}, ngf {budget['ngf']}, ndf "
              f"{budget['ndf']}, 64 px, seed {report['seed']}.  Each row translates the first "
              f"{budget['n_test']} testA images; the source and target rows score all "
              f"{rows[IDENTITY]['n']} real testA / testB images.",
              f"Animal coverage of the ground-truth masks: testA {100 * true['A']:.1f}%, testB "
              f"{100 * true['B']:.1f}%.  s/iter: training loop only; peak RSS: the whole "
              "train.py process.",
              f"Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, python {m['python']}"
              + (f", OMP_WAIT_POLICY={m['OMP_WAIT_POLICY']}" if m["OMP_WAIT_POLICY"] else "")
              + "."]
    return "\n".join(lines) + "\n"


def make_grid(report, order, dataroot, out_path, count=4, scale=2):
    """Rows: the first `count` test inputs; columns: the input, then each finished row."""
    columns = [("input", index_images(os.path.join(dataroot, "testA")))]
    for row in order:
        if row in report["rows"]:
            folder = os.path.join(report["rows"][row]["path"], "images", "fake_B")
            columns.append((row, index_images(folder)))
    stems = [s for s in columns[-1][1] if all(s in imgs for _, imgs in columns)][:count]
    if not stems:
        raise UserError("no test image was translated by every row; nothing to show")
    with Image.open(columns[0][1][stems[0]]) as im:
        cell = im.size[0] * scale
    gap, header = 3, 14
    grid = Image.new("RGB", (len(columns) * (cell + gap) - gap,
                             header + len(stems) * (cell + gap) - gap), "white")
    draw = ImageDraw.Draw(grid)
    for c, (name, images) in enumerate(columns):
        x = c * (cell + gap)
        draw.text((x + 2, 1), name, fill="black")
        for r, stem in enumerate(stems):
            with Image.open(images[stem]) as im:
                grid.paste(im.convert("RGB").resize((cell, cell), Image.NEAREST),
                           (x, header + r * (cell + gap)))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    grid.save(out_path, optimize=True)
    return out_path


def machine_facts():
    """Where the study ran; torch's version is read from its metadata, without importing it."""
    from importlib.metadata import version
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch": version("torch"),
            "python": platform.python_version(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_at_end": list(os.getloadavg())}


# ---------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Train every model and CUT ablation on the toy "
                                "horse2zebra set with one budget; score, time and show them.")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help=f"rows to run (default: all): {', '.join(ROWS)}")
    p.add_argument("--quick", action="store_true",
                   help="tiny budget (4 images, ngf 8, 1 epoch): a plumbing check in seconds")
    p.add_argument("--out", default=ROOT, help="root of datasets/, checkpoints/ and results/ "
                   "(default: the repository root)")
    p.add_argument("--dataroot", default=None, help="demo data set (default: "
                   "<out>/datasets/demo_horse2zebra, generated when missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain rows that already have results")
    p.add_argument("--grid_images", type=int, default=4, help="test inputs in the grid picture")
    p.add_argument("--grid_scale", type=int, default=2, help="enlargement of the grid's images")
    p.add_argument("--commands_for", default=None, metavar="DATAROOT",
                   help="print every row's train.py and test.py command for a real data set "
                        "(e.g. ./datasets/horse2zebra, the paper's options and budget) and exit")
    group = p.add_argument_group("budget (default: the study's, or --quick's)")
    for key, value in BUDGET["full"].items():
        group.add_argument(f"--{key}", type=type(value), default=None)
    return p.parse_args(argv)


def real_data_commands(dataroot, order):
    """Each row's train.py / test.py lines for a real data set, with the framework's defaults
    (the paper's settings: 256 px, resnet_9blocks, 400 epochs for CUT, 200 for FastCUT)."""
    name = os.path.basename(os.path.normpath(dataroot))
    lines = []
    for row in order:
        args = " ".join(ROWS[row][1])
        lines.append(f"python train.py --dataroot {dataroot} --name {name}_{row} {args}")
        train_only = ROWS[row][1].index("--batch_size") if "--batch_size" in ROWS[row][1] else None
        test_args = " ".join(a for i, a in enumerate(ROWS[row][1])  # test.py uses batch size 1
                             if train_only is None or i not in (train_only, train_only + 1))
        lines.append(f"python test.py --dataroot {dataroot} --name {name}_{row} {test_args} "
                     "--num_test 500")
    return "\n".join(lines)


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    order = select_rows(opt.rows)
    if opt.commands_for:
        print(real_data_commands(opt.commands_for, order))
        return 0
    budget = dict(BUDGET["quick" if opt.quick else "full"])
    budget.update({k: getattr(opt, k) for k in budget if getattr(opt, k) is not None})
    if not 1 <= budget["n_train"] <= DATA["n_train"] or not 1 <= budget["n_test"] <= DATA["n_test"]:
        raise UserError(f"--n_train must be 1..{DATA['n_train']} and --n_test 1..{DATA['n_test']}")
    dataroot = layout(opt.out, STUDY, opt.dataroot)["dataroot"]
    study_dir = os.path.join(os.path.abspath(opt.out), "results", STUDY)
    print(ensure_dataset(dataroot, **DATA), flush=True)

    records, failures, models = {}, {}, None
    for i, row in enumerate(order, 1):
        tag = f"[{i}/{len(order)}] {row}"
        paths = row_paths(opt.out, row, dataroot)
        record = None if opt.force else load_finished(paths, budget, opt.seed)
        if record is not None:
            print(f"{tag}: finished before ({paths['row_json']}); skipped (--force trains it "
                  "again)", flush=True)
            records[row] = record
            continue
        models = models or registered_models()
        problem = missing_model(ROWS[row][1], models)
        if problem is None:
            print(f"{tag}: {' '.join(ROWS[row][1])}", flush=True)
            try:
                record = run_row(row, budget, opt.seed, paths)
            except UserError as err:
                problem = str(err).splitlines()[0]
        if problem is not None:
            print(f"{tag}: failed: {problem}", flush=True)
            failures[row] = problem
            continue
        write_json(record, paths["row_json"])
        records[row] = record
        print(f"{tag}: done in {fmt_duration(record['train_s'])} (min:s), "
              f"{record['sec_per_iter']:.3f} s/iter, peak RSS "
              f"{record['peak_rss_bytes'] / MB:.0f} MB", flush=True)

    if not records:
        raise UserError("no row finished: " + "; ".join(f"{r}: {m}" for r, m in failures.items()))
    report = build_report(dataroot, records, failures, machine_facts())
    report.update(seed=opt.seed, budget=budget, order=order)
    table = format_markdown(report, order, budget)
    os.makedirs(study_dir, exist_ok=True)
    paths = {"md": os.path.join(study_dir, "toy_study.md"),
             "json": os.path.join(study_dir, "toy_study.json"),
             "grid": os.path.join(study_dir, "toy_grid.png")}
    with open(paths["md"], "w") as f:
        f.write(table)
    write_json(report, paths["json"])
    make_grid(report, order, dataroot, paths["grid"], count=opt.grid_images, scale=opt.grid_scale)
    print()
    print(table, end="")
    print(f"\nwrote {paths['md']}, {paths['json']}, {paths['grid']}")
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
