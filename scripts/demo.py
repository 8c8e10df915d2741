"""The built-in demo: generate toy horse2zebra data, train on the CPU, translate, score, show.

    python scripts/demo.py                        # what `make demo` runs (minutes, CPU)
    python scripts/demo.py --budget tiny --out /tmp/demo      # plumbing check in seconds

Steps, each through the user's own commands or the project's API:
  1. data      datasets/make_demo_dataset.py's generator writes <out>/datasets/demo_horse2zebra
               (skipped when a complete set of the requested size is already there)
  2. baseline  the generator training starts from (same options, same --seed), saved untrained
               as checkpoints/<name>/untrained_net_G.pth
  3. train     train.py in a subprocess; one progress line per epoch, full output in
               checkpoints/<name>/demo_train.log
  4. test      test.py on all of testA, for the trained (`latest`) and the untrained generator
  5. score     protocol demo_h2z_v1 (metrics/demo_scores.py): identity, untrained, model, real_B
  6. show      results/<name>/demo_grid.png, input | output pairs enlarged with nearest neighbour

Outputs under --out (default: the repository root), with --name demo_cut:
  datasets/demo_horse2zebra/            the data set
  checkpoints/demo_cut/                 latest_net_{G,D,F}.pth, untrained_net_G.pth, logs
  results/demo_cut/test_latest/         index.html + images/{real_A,fake_B,real_B}/
  results/demo_cut/test_untrained/      the same for the untrained generator
  results/demo_cut/demo_scores.json     the score table, plus the demo's settings and timings
  results/demo_cut/demo_grid.png        input | output pairs

The presets in BUDGETS are the result of short experiments on 2 CPU cores; docs/demo.md has the
figures.  Any preset value can be overridden by the option of the same name.
"""
import argparse
import contextlib
import io
import math
import os
import re
import subprocess
import sys
import time

from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datasets.make_demo_dataset import SUBFOLDERS, generate_dataset  # noqa: E402
from metrics.demo_scores import format_table, index_images, score_table, write_json  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402

MODES = ("CUT", "FastCUT")
DATASET_NAME = "demo_horse2zebra"
DATA_SEED = 0  # the data set every published demo figure was measured on
UNTRAINED = "untrained"  # checkpoint label of the untrained generator, and its row name

# Everything the demo trains with.  `model` keys are passed to train.py and test.py (they fix
# the generator's architecture), `train` keys to train.py only.
BUDGETS = {
    # CUT at 32 filters: FastCUT's lambda_NCE = 10 keeps the discriminator winning for
    # thousands of iterations at this size, and 16 filters give blotchy stripes (docs/demo.md).
    "full": {
        "data": dict(size=64, n_train=450, n_test=50),
        "mode": "CUT",
        "model": dict(netG="resnet_6blocks", ngf=32),
        "train": dict(ndf=32, n_epochs=2, n_epochs_decay=2, batch_size=1, lr=0.0002,
                      num_patches=256, nce_layers="0,4,8,12,16"),
    },
    "tiny": {  # plumbing only: 8 iterations on 32 px images
        "data": dict(size=32, n_train=8, n_test=4),
        "mode": "CUT",
        "model": dict(netG="resnet_6blocks", ngf=8),
        "train": dict(ndf=8, n_epochs=1, n_epochs_decay=0, batch_size=1, lr=0.0002,
                      num_patches=64, nce_layers="0,4,8,12,16"),
    },
}
# Options every run gets: CPU, no visdom probe, data loading in the main process (2 cores).
FIXED_TRAIN_ARGS = ["--gpu_ids", "-1", "--display_id", "0", "--num_threads", "0"]


# ---------------------------------------------------------------------------- configuration

def build_config(budget="full", mode=None, seed=0, overrides=None, extra_train_args=""):
    """The --budget preset with `overrides` ({option: value}, None = keep) applied."""
    preset = BUDGETS[budget]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    cfg = {"budget": budget, "mode": mode or preset["mode"], "seed": seed}
    for group in ("data", "model", "train"):
        cfg[group] = {key: overrides.get(key, value) for key, value in preset[group].items()}
    cfg["extra_train_args"] = extra_train_args.split() if extra_train_args else []
    return cfg


def layout(out, name, dataroot=None):
    """Every path the demo reads or writes, absolute."""
    out = os.path.abspath(out)
    results = os.path.join(out, "results", name)
    return {
        "dataroot": os.path.abspath(dataroot) if dataroot else
        os.path.join(out, "datasets", DATASET_NAME),
        "checkpoints_dir": os.path.join(out, "checkpoints"),
        "checkpoint": os.path.join(out, "checkpoints", name),
        "results_dir": os.path.join(out, "results"),
        "results": results,
        "trained": os.path.join(results, "test_latest"),
        "untrained": os.path.join(results, f"test_{UNTRAINED}"),
        "scores": os.path.join(results, "demo_scores.json"),
        "grid": os.path.join(results, "demo_grid.png"),
        "train_log": os.path.join(out, "checkpoints", name, "demo_train.log"),
    }


def option_args(options):
    """{'ngf': 16, ...} -> ['--ngf', '16', ...]."""
    args = []
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return args


def fmt_duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------- 1. data

def dataset_problem(dataroot, size, n_train, n_test):
    """Why `dataroot` is not a complete demo set of this size and these counts (None if it is)."""
    expected = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test,
                "testA_mask": n_test, "testB_mask": n_test}
    for sub, count in expected.items():
        folder = os.path.join(dataroot, sub)
        found = len(index_images(folder)) if os.path.isdir(folder) else 0
        if found != count:
            return f"{sub}/ holds {found} images, the demo wants {count}"
    stems = sorted(index_images(os.path.join(dataroot, "testA")))
    if stems:
        with Image.open(index_images(os.path.join(dataroot, "testA"))[stems[0]]) as im:
            if im.size != (size, size):
                return f"its images are {im.size[0]}x{im.size[1]} px, the demo wants {size} px"
    return None


def ensure_dataset(dataroot, size, n_train, n_test):
    """Generate the data set unless a complete one is there; return what was done, in words."""
    problem = dataset_problem(dataroot, size, n_train, n_test) if os.path.isdir(dataroot) else \
        "it does not exist"
    if problem is None:
        return f"using the existing data set {dataroot}"
    if os.path.isdir(dataroot):
        strangers = sorted(set(os.listdir(dataroot)) - set(SUBFOLDERS))
        if strangers:  # not written by the generator: never delete someone else's files
            raise UserError(f"{dataroot} is not a complete demo data set ({problem}) and holds "
                            f"other files ({strangers[0]}); remove it or pass another --dataroot")
        print(f"regenerating {dataroot}: {problem}")
    summary = generate_dataset(dataroot, seed=DATA_SEED, size=size, n_train=n_train,
                               n_test=n_test, overwrite=True)
    return (f"generated {summary['images']} images ({size} px) into {dataroot} "
            f"in {summary['seconds']:.1f} s")


# ---------------------------------------------------------------------------- 2. baseline

def save_untrained_generator(cfg, paths):
    """Write checkpoints/<name>/untrained_net_G.pth: G as train.py initialises it, untrained.

    train.py seeds, builds the data set (which draws no random numbers) and then the model,
    whose first network is G; doing the same here yields the generator training starts from.
    """
    from models import create_model  # torch is imported only when needed
    from options.test_options import TestOptions
    from util.runtime import seed_everything

    args = ["--dataroot", paths["dataroot"], "--name", os.path.basename(paths["checkpoint"]),
            "--checkpoints_dir", paths["checkpoints_dir"], "--gpu_ids", "-1",
            "--CUT_mode", cfg["mode"]] + option_args(cfg["model"])
    with contextlib.redirect_stdout(io.StringIO()):  # the option dump; test.py prints it later
        opt = TestOptions(args).parse()
        seed_everything(cfg["seed"])
        model = create_model(opt)
    model.save_networks(UNTRAINED)
    return model.checkpoint_path(UNTRAINED, "G")


# ---------------------------------------------------------------------------- 3. train

def train_args(cfg, paths):
    return (["--dataroot", paths["dataroot"], "--name", os.path.basename(paths["checkpoint"]),
             "--checkpoints_dir", paths["checkpoints_dir"], "--CUT_mode", cfg["mode"],
             "--seed", str(cfg["seed"]), "--load_size", str(cfg["data"]["size"]),
             "--crop_size", str(cfg["data"]["size"]), "--preprocess", "none"]
            + FIXED_TRAIN_ARGS + option_args(cfg["model"]) + option_args(cfg["train"])
            + cfg["extra_train_args"])


LOSS_LINE = re.compile(r"^\(epoch: (\d+), iters: (\d+),.*?\) (.*)$")
EPOCH_END = re.compile(r"^End of epoch (\d+) / (\d+)")


class TrainProgress:
    """Turns train.py's output into progress lines: where it is, elapsed time, ETA, losses.

    One line per epoch, and one at most every `every_s` seconds in between (on a terminal the
    in-between line is redrawn in place instead).  `samples_per_epoch` counts samples, as
    train.py's `iters` do.  The ETA is measured from the first loss line, so it leaves out
    torch's import and the model set-up.
    """

    def __init__(self, total_epochs, samples_per_epoch, stream=sys.stdout, every_s=20.0):
        self.total_epochs = total_epochs
        self.per_epoch = samples_per_epoch
        self.stream = stream
        self.every_s = every_s
        self.live = stream.isatty()
        self.start = self.last_print = time.perf_counter()
        self.ref = None  # (time, samples done) at the first loss line
        self.losses = ""

    def eta(self, done):
        total = self.total_epochs * self.per_epoch
        if done >= total:
            return 0.0
        if self.ref is None or done <= self.ref[1]:
            return None
        seconds_per_sample = (time.perf_counter() - self.ref[0]) / (done - self.ref[1])
        return seconds_per_sample * (total - done)

    def show(self, where, done, end_of_line):
        now = time.perf_counter()
        eta = self.eta(done)
        text = (f"  {where}  elapsed {fmt_duration(now - self.start)}  "
                f"eta {'?' if eta is None else fmt_duration(eta)}  {self.losses}").rstrip()
        if self.live:  # overwrite the in-between line, clear what is left of it
            text = "\r" + text + "\033[K"
        print(text, end="\n" if end_of_line or not self.live else "", file=self.stream,
              flush=True)
        self.last_print = now

    def feed(self, line):
        m = LOSS_LINE.match(line)
        if m:
            epoch, samples = int(m.group(1)), int(m.group(2))
            done = (epoch - 1) * self.per_epoch + samples
            self.losses = " ".join(m.group(3).split())
            if self.ref is None:
                self.ref = (time.perf_counter(), done)
            if self.live or time.perf_counter() - self.last_print >= self.every_s:
                self.show(f"epoch {epoch}/{self.total_epochs}  iters {samples}/{self.per_epoch}",
                          done, end_of_line=False)
            return
        m = EPOCH_END.match(line)
        if m:
            epoch = int(m.group(1))
            self.show(f"epoch {epoch}/{self.total_epochs}", epoch * self.per_epoch,
                      end_of_line=True)


def run_logged(args, log_path, on_line=None):
    """Run `python <args>` from the repository root; every output line goes to `log_path`
    (and to `on_line`).  Returns the wall time; raises UserError on failure, with the tail."""
    return run_measured(args, log_path, on_line)["wall_s"]


def run_measured(args, log_path, on_line=None):
    """run_logged, returning {"wall_s", "peak_rss_bytes"}: the wall time and the child's own peak
    resident set size.  os.wait4 gives that one child's usage; RUSAGE_CHILDREN would be the
    largest of every child this process ever waited for."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    tail = []
    with open(log_path, "a") as log:
        log.write("$ python " + " ".join(args) + "\n")
        proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                tail = (tail + [line.rstrip("\n")])[-25:]
                if on_line is not None:
                    on_line(line.rstrip("\n"))
        finally:
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            rc = proc.returncode = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise UserError(f"{args[0]} failed with exit status {rc}; last lines:\n  "
                        + "\n  ".join(tail) + f"\n(full output: {log_path})")
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return {"wall_s": time.perf_counter() - start, "peak_rss_bytes": rss}


def train(cfg, paths):
    """Run train.py with progress lines; returns its wall time in seconds (start-up included)."""
    batch_size = cfg["train"]["batch_size"]
    batches = cfg["data"]["n_train"] // batch_size  # training drops the last partial batch
    total_epochs = cfg["train"]["n_epochs"] + cfg["train"]["n_epochs_decay"]
    progress = TrainProgress(total_epochs, batches * batch_size)
    print(f"  {cfg['mode']}: {total_epochs} epoch(s) of {batches} iterations (batch size "
          f"{batch_size}); full output in {paths['train_log']}", flush=True)
    open(paths["train_log"], "w").close()  # one run per log
    # The demo owns its run folder: a rerun trains afresh (train.py itself refuses to start a
    # new run over an earlier run's checkpoints).
    from util.checkpoint import existing_checkpoints  # torch is imported only when needed
    for fname in existing_checkpoints(paths["checkpoint"]):
        os.remove(os.path.join(paths["checkpoint"], fname))
    return run_logged([os.path.join(ROOT, "train.py")] + train_args(cfg, paths),
                      paths["train_log"], progress.feed)


# ---------------------------------------------------------------------------- 4. test

def test(cfg, paths, epoch):
    """test.py on all of testA with the `epoch` checkpoint; returns the results folder."""
    size = str(cfg["data"]["size"])
    args = ([os.path.join(ROOT, "test.py"), "--dataroot", paths["dataroot"],
             "--name", os.path.basename(paths["checkpoint"]),
             "--checkpoints_dir", paths["checkpoints_dir"], "--results_dir", paths["results_dir"],
             "--epoch", epoch, "--CUT_mode", cfg["mode"], "--gpu_ids", "-1",
             "--load_size", size, "--crop_size", size, "--preprocess", "none",
             "--num_test", str(cfg["data"]["n_test"])] + option_args(cfg["model"]))
    run_logged(args, os.path.join(paths["checkpoint"], f"demo_test_{epoch}.log"))
    return paths["trained"] if epoch == "latest" else paths[UNTRAINED]


# ---------------------------------------------------------------------------- 6. show

def make_grid(results, out_path, count=8, pairs_per_row=2, tile=192):
    """Write `count` input | output pairs from a test.py results folder as one PNG.

    Images are enlarged by an integer factor with nearest neighbour (no smoothing hides or
    invents stripes), so a 64 px image becomes 192 px.
    """
    real = index_images(os.path.join(results, "images", "real_A"))
    fake = index_images(os.path.join(results, "images", "fake_B"))
    stems = [s for s in real if s in fake][:count]
    if not stems:
        raise UserError(f"no real_A/fake_B images under {results}")
    with Image.open(real[stems[0]]) as im:
        side = im.size[0]
    scale = max(1, tile // side)
    cell, gap, pair_gap, header = side * scale, 4, 16, 16
    rows = math.ceil(len(stems) / pairs_per_row)
    pair_w = 2 * cell + gap
    width = pairs_per_row * pair_w + (pairs_per_row - 1) * pair_gap
    height = header + rows * cell + (rows - 1) * gap
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    for p in range(pairs_per_row):
        x = p * (pair_w + pair_gap)
        draw.text((x + 2, 2), "input (real_A)", fill="black")
        draw.text((x + cell + gap + 2, 2), "output (fake_B)", fill="black")
    for i, stem in enumerate(stems):
        row, p = divmod(i, pairs_per_row)
        x, y = p * (pair_w + pair_gap), header + row * (cell + gap)
        for k, path in enumerate((real[stem], fake[stem])):
            with Image.open(path) as im:
                grid.paste(im.convert("RGB").resize((cell, cell), Image.NEAREST),
                           (x + k * (cell + gap), y))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    grid.save(out_path)
    return out_path


# ---------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Generate the demo data set, train CUT/FastCUT on it (CPU), test, score and "
                    "write a picture of the results.")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full",
                   help="preset: full = the demo (minutes), tiny = a plumbing check (seconds)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="CUT or FastCUT (default: the preset's, %s)" % BUDGETS["full"]["mode"])
    p.add_argument("--out", default=ROOT, help="root of datasets/, checkpoints/ and results/ "
                   "(default: the repository root)")
    p.add_argument("--name", default="demo_cut", help="experiment name (default: %(default)s)")
    p.add_argument("--dataroot", default=None,
                   help="data set folder (default: <out>/datasets/%s)" % DATASET_NAME)
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--grid_images", type=int, default=8, help="test images in the grid picture")
    p.add_argument("--train_args", default="", help="more train.py options, as one string")
    overrides = p.add_argument_group("preset overrides (default: the --budget preset's value)")
    for group in ("data", "model", "train"):
        for key, value in BUDGETS["full"][group].items():
            overrides.add_argument(f"--{key}", type=type(value), default=None)
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_args(argv)
    overrides = {key: getattr(opt, key) for group in ("data", "model", "train")
                 for key in BUDGETS["full"][group]}
    cfg = build_config(opt.budget, opt.mode, opt.seed, overrides, opt.train_args)
    paths = layout(opt.out, opt.name, opt.dataroot)
    os.makedirs(paths["checkpoint"], exist_ok=True)
    timings = {}

    print("[1/5] data", flush=True)
    t = time.perf_counter()
    print("  " + ensure_dataset(paths["dataroot"], **cfg["data"]), flush=True)
    timings["data_s"] = time.perf_counter() - t

    print("[2/5] untrained baseline", flush=True)
    print(f"  wrote {save_untrained_generator(cfg, paths)}", flush=True)

    print("[3/5] train (CPU)", flush=True)
    timings["train_s"] = train(cfg, paths)
    print(f"  trained in {fmt_duration(timings['train_s'])} (min:s, wall time of train.py)",
          flush=True)

    print("[4/5] test", flush=True)
    t = time.perf_counter()
    test(cfg, paths, "latest")
    test(cfg, paths, UNTRAINED)
    timings["test_s"] = time.perf_counter() - t

    print("[5/5] score", flush=True)
    report = score_table(paths["dataroot"], {UNTRAINED: paths["untrained"],
                                             cfg["mode"]: paths["trained"]})
    report["demo"] = {"config": cfg, "timings": timings, "device": "cpu",
                      "torch_threads": _torch_threads(), "grid": paths["grid"]}
    write_json(report, paths["scores"])
    make_grid(paths["trained"], paths["grid"], count=opt.grid_images)

    print()
    print(format_table(report))
    print()
    print(f"training time: {fmt_duration(timings['train_s'])} (min:s) on the CPU "
          f"({_torch_threads()} threads)")
    print(f"results page:  {os.path.join(paths['trained'], 'index.html')}")
    print(f"untrained:     {os.path.join(paths['untrained'], 'index.html')}")
    print(f"grid picture:  {paths['grid']}")
    print(f"scores:        {paths['scores']}")
    return report


def _torch_threads():
    import torch
    return torch.get_num_threads()


if __name__ == "__main__":
    run_cli(lambda: main())
