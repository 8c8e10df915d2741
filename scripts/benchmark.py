"""Training speed and memory of every model, as in the CUT paper's Table 1 (horse2zebra, 256x256,
batch 1, one GPU: 0.40 / 0.24 / 0.15 s per iteration and 4.81 / 3.33 / 2.25 GB for CycleGAN /
CUT / FastCUT), and the talk's chart of the eight methods of that table (--plot).

    python scripts/benchmark.py                                # every model, 256 px, batch 1
    python scripts/benchmark.py --device cpu --iters 10 --warmup 2 --out results/benchmark_cpu
    python scripts/benchmark.py --size 64 --model_options "--ngf 16 --ndf 16"
    python scripts/benchmark.py --plot docs/footprint.png      # the eight methods, one chart

Each model is measured in a fresh Python process (so one model's allocations, caches and
warm-up cannot flatter or burden the next), built exactly as train.py builds it: options
parsed by TrainOptions, a data set of random images written to a temporary folder and read by
the real loader, data_dependent_initialize on the first batch, setup.  After --warmup training
iterations, --iters more are timed one by one (set_input + optimize_parameters, the span that
train.py's `time:` column measures; the GPU is synchronised before and after each), and we
report the mean: what an epoch costs per batch (FastCUT's steps are cheaper when it does not
flip, DRIT trains only its content discriminator on 2 of every 3 batches, swap_ae alternates D
and G steps; for those two the counts are rounded up to whole cycles).  DistanceGAN, DRIT and
swap_ae run at batch 2 at least (a pair is the least their losses take).  Memory: on a GPU the peak of torch.cuda.max_memory_allocated (tensors only,
no CUDA context or allocator cache); on the CPU the peak resident set size (ru_maxrss) of the
process minus its value after the imports, i.e. what the model, its optimizers and the training
steps added (the process's whole peak is reported too).

Writes to --out: benchmark.md (the table, also printed), benchmark.json (every timing at full
precision, the settings and the machine) and benchmark.png (time and memory relative to
CycleGAN, the paper's ratios beside ours).  --plot PNG: the Table 1 methods (the default model
list then) as one bar each, seconds per iteration and peak memory, with CUT's and FastCUT's
ratios to CycleGAN written on the chart.  Exit status 0 when every model was measured, 1 when
one failed (its error is in the table), 2 for a bad option.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from util.errors import UserError, first_line, run_cli  # noqa: E402

# Benchmark label -> the train.py options that select the model.
MODEL_FLAGS = {
    "cycle_gan": ["--model", "cycle_gan"],
    "CUT": ["--model", "cut", "--CUT_mode", "CUT"],
    "FastCUT": ["--model", "cut", "--CUT_mode", "FastCUT"],
    "sincut": ["--model", "sincut"],
    "GcGAN": ["--model", "gcgan"],
    "DistanceGAN": ["--model", "distance_gan"],
    "SelfDistance": ["--model", "distance_gan", "--self_distance"],
    "MUNIT": ["--model", "munit"],
    "DRIT": ["--model", "drit"],
    "swap_ae": ["--model", "swap_ae"],
}
# The CUT paper's Table 1 / the talk's speed chart: the eight methods --plot draws.
TABLE1 = ("cycle_gan", "GcGAN", "CUT", "FastCUT", "MUNIT", "DRIT", "DistanceGAN", "SelfDistance")
# Models that cannot train on batches of one: DistanceGAN's loss needs a pair, DRIT's step takes
# exactly two images per domain, swap_ae swaps within pairs.  They run at this batch size.
MIN_BATCH = {"DistanceGAN": 2, "DRIT": 2, "swap_ae": 2}
# Models whose iterations differ by a fixed cycle: DRIT trains only its content discriminator on
# 2 of every 3 batches, swap_ae alternates D and G steps.  Warm-up and timed iterations are
# whole cycles, so the mean is what an epoch costs per batch.
CYCLE = {"DRIT": 3, "swap_ae": 2}
REFERENCE = "cycle_gan"  # ratios are relative to this model when it is measured

# --compare: training variants measured against the original's computation (--fast_path False).
VARIANTS = {
    "straightforward": ["--fast_path", "False"],
    "fast": [],
    "bf16": ["--amp", "bf16"],
    "fp16": ["--amp", "fp16"],
    "channels_last": ["--channels_last"],
    "compile": ["--compile"],
}
BASELINE_VARIANT = "straightforward"

PAPER = {  # Park et al. 2020, Table 1: horse2zebra, 256x256, batch 1, one GPU
    "source": "Park et al. 2020 (CUT), Table 1: horse2zebra, 256x256, batch size 1, one GPU",
    "sec_per_iter": {"cycle_gan": 0.40, "CUT": 0.24, "FastCUT": 0.15},
    "memory_gb": {"cycle_gan": 4.81, "CUT": 3.33, "FastCUT": 2.25},
}
GB = 1e9
UNSTEADY = 1.5  # slowest / fastest timed iteration above this: the table warns of a busy machine


def batch_size_for(label, requested):
    return max(requested, MIN_BATCH.get(label, 1))


def whole_cycles(label, count):
    cycle = CYCLE.get(label, 1)
    return -(-count // cycle) * cycle


def available_models():
    """Labels whose model is in this checkout's registry."""
    from models import MODELS
    return [label for label, flags in MODEL_FLAGS.items() if flags[1] in MODELS]


def peak_rss_bytes():
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# ---------------------------------------------------------------------------- one model (child)

def write_random_images(root, count, size):
    """trainA/ and trainB/ with `count` random RGB PNGs of size x size pixels each."""
    rng = np.random.default_rng(0)
    for side in "AB":
        folder = os.path.join(root, "train" + side)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"{i:03d}.png"))


def measure(config):
    """Build one model as train.py does, train it, time it; returns the result record."""
    from data import create_dataset
    from models import create_model
    from options.train_options import TrainOptions
    from util.runtime import prepare_runtime

    label, cuda = config["label"], config["device"] == "cuda"
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    # The memory baseline: torch and the project imported, and torch's CPU kernels and thread
    # pool started by one tiny convolution, so that what follows is the model's own footprint.
    x = torch.ones(1, 1, 8, 8, requires_grad=True)
    torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3)).sum().backward()
    baseline_rss = peak_rss_bytes()

    def synchronize():
        if cuda:
            torch.cuda.synchronize()

    def say(text):
        print(f"  {label}: {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="cut_benchmark_") as work:
        # SinCUT's data set is one image per domain, read as 100,000 crops: two batches suffice.
        # Otherwise one epoch holds every timed batch (DRIT's schedule depends on the position
        # in the epoch: its last two batches are always full updates).
        batch = batch_size_for(label, config["batch_size"])
        warmup, iters = whole_cycles(label, config["warmup"]), whole_cycles(label, config["iters"])
        batches_needed = max(2, warmup + iters + 2)
        write_random_images(work, 1 if label == "sincut" else batch * batches_needed, config["size"])
        size = str(config["size"])
        argv = (MODEL_FLAGS[label]
                + ["--dataroot", work, "--checkpoints_dir", os.path.join(work, "ck"), "--name", "bench",
                   "--gpu_ids", "0" if cuda else "-1", "--batch_size", str(batch),
                   "--load_size", size, "--crop_size", size, "--num_threads", "0",
                   "--max_dataset_size", str(batch * batches_needed), "--display_id", "0", "--seed", "0"]
                + config["model_options"] + config.get("variant_flags", []))
        log = io.StringIO()  # the option dump and network summary: train.py's start-up chatter
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                opt = TrainOptions(argv).parse()
                prepare_runtime(opt)
                dataset = create_dataset(opt)
                model = create_model(opt)
                batches = list(dataset)  # read once: the timed span excludes data loading
                model.data_dependent_initialize(batches[0])
                model.setup(opt)
                model.parallelize()
        except SystemExit:  # the option parser printed its one-line error into the log
            errors = [line for line in log.getvalue().splitlines() if "error:" in line]
            raise UserError(errors[-1] if errors else f"bad options for {label}") from None
        params = {name: sum(p.numel() for p in net.parameters()) for name, net in model.networks()}
        say("built (" + ", ".join(f"{n} {c / 1e6:.3f} M" for n, c in params.items())
            + f"); batch {batch}, {warmup} warm-up + {iters} timed iterations")

        times, cpu_times = [], []  # wall clock; CPU time of this process (all its threads)
        report_every = max(1, iters // 5)
        for i in range(warmup + iters):
            data = batches[i % len(batches)]
            synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            model.set_input(data)
            model.optimize_parameters()
            synchronize()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times.append(elapsed)
                cpu_times.append(time.process_time() - start_cpu)
                done = len(times)
                if done % report_every == 0 or done == iters:
                    say(f"iteration {done}/{iters}: {elapsed:.3f} s")

        flops = count_training_flops(model, batches[0]) if config.get("count_flops") else None

    # What a run pays per batch: the mean (FastCUT's steps are bimodal, cheaper when unflipped;
    # DRIT's and swap_ae's follow a cycle).  The median step is kept for reference.
    mean = statistics.fmean(times)
    record = {
        "label": label, "argv": argv, "pid": os.getpid(), "gflop_per_iter": flops,
        "batch_size": batch, "sec_per_iter": mean, "sec_per_iter_all": times,
        "mean_sec_per_iter": mean, "median_sec_per_iter": statistics.median(times),
        "cpu_sec_per_iter": statistics.median(cpu_times), "cpu_sec_per_iter_all": cpu_times,
        "cpu_mean_sec_per_iter": statistics.fmean(cpu_times),
        "images_per_sec": batch / mean,
        "parameters": params, "torch_threads": torch.get_num_threads(),
    }
    if cuda:
        record["memory_bytes"] = torch.cuda.max_memory_allocated()
        record["memory_kind"] = "torch.cuda.max_memory_allocated"
        record["cuda_max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved()
    else:
        peak = peak_rss_bytes()
        record["memory_bytes"] = peak - baseline_rss
        record["memory_kind"] = "peak RSS above the RSS after imports and a first convolution (ru_maxrss)"
        record["process_peak_rss_bytes"] = peak
        record["baseline_rss_bytes"] = baseline_rss
    return record


def count_training_flops(model, data):
    """GFLOP of one training iteration (forward and backward, every network), counted by
    torch.utils.flop_counter (convolutions and matrix multiplies; elementwise work is not
    counted).  Runs one extra iteration, after the timed ones."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        model.set_input(data)
        model.optimize_parameters()
    return counter.get_total_flops() / 1e9


def worker_main(config_json):
    """Child process: measure one model, write its record (or its error) as JSON."""
    config = json.loads(config_json)
    try:
        record = measure(config)
    except UserError as err:
        record = {"label": config["label"], "error": first_line(err)}
    except torch.cuda.OutOfMemoryError:
        record = {"label": config["label"], "error": f"CUDA out of memory at --size {config['size']} "
                  f"--batch_size {config['batch_size']}"}
    except Exception as err:  # reported in the table; the other models still run
        record = {"label": config["label"], "error": f"{type(err).__name__}: {first_line(err, '')}"}
    with open(config["result"], "w") as f:
        json.dump(record, f)
    return 0 if "error" not in record else 1


# ---------------------------------------------------------------------------- the parent

def machine_facts(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    facts = {
        "cpu": cpu, "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": str(torch.__version__), "python": platform.python_version(),
        "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        "device": device, "gpu": None, "cuda": torch.version.cuda,
    }
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def run_one(label, settings, work):
    """Measure `label` in a fresh interpreter; its progress lines stream through."""
    result = os.path.join(work, f"{label}.json")
    config = dict(settings, label=label, result=result)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(config)],
                          stderr=subprocess.PIPE, text=True)
    if os.path.isfile(result):
        with open(result) as f:
            return json.load(f)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"label": label, "error": f"the measuring process exited with status {proc.returncode}"
            + (f": {lines[-1].strip()}" if lines else "")}


def add_ratios(results):
    """time_ratio / memory_ratio relative to the reference model, ours and the paper's."""
    measured = [r for r in results if "error" not in r]
    if not measured:
        return None
    ref = next((r for r in measured if r["label"] == REFERENCE), measured[0])
    for r in measured:
        r["time_ratio"] = r["sec_per_iter"] / ref["sec_per_iter"]
        r["memory_ratio"] = r["memory_bytes"] / ref["memory_bytes"]
        for key, name in (("sec_per_iter", "paper_time_ratio"), ("memory_gb", "paper_memory_ratio")):
            paper = PAPER[key]
            if r["label"] in paper and ref["label"] in paper:
                r[name] = paper[r["label"]] / paper[ref["label"]]
    return ref["label"]


def format_table(results, settings, machine, ref):
    threads = sorted({r["torch_threads"] for r in results if "torch_threads" in r})
    where = machine["gpu"] if settings["device"] == "cuda" else \
        f"{machine['cpu']} ({machine['usable_cpus']} usable cores, torch threads " \
        f"{'/'.join(map(str, threads)) or '?'})"
    memory = "peak allocated (GB)" if settings["device"] == "cuda" else "peak RSS above start-up (GB)"
    lines = [f"Training speed and memory at {settings['size']}x{settings['size']}, batch "
             f"{settings['batch_size']} (DistanceGAN, DRIT, swap_ae: 2), {settings['device']}: {where}; "
             f"torch {machine['torch']}; mean of {settings['iters']} iterations after "
             f"{settings['warmup']} warm-up (DRIT, swap_ae: whole cycles)"
             + (f"; model options `{' '.join(settings['model_options'])}`" if settings["model_options"] else ""),
             "",
             f"| model | sec/iter | images/s | {memory} | time vs {ref} (paper) | memory vs {ref} (paper) |",
             "|---|---|---|---|---|---|"]

    def ratio(r, ours, paper):
        text = f"{r[ours]:.2f}" if ours in r else "-"
        return text + (f" ({r[paper]:.2f})" if paper in r else "")

    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error']} | | | | |")
            continue
        batch = f" (batch {r['batch_size']})" if r["batch_size"] != settings["batch_size"] else ""
        lines.append(f"| {r['label']}{batch} | {r['sec_per_iter']:.4f} | {r['images_per_sec']:.2f} | "
                     f"{r['memory_bytes'] / GB:.3f} | {ratio(r, 'time_ratio', 'paper_time_ratio')} | "
                     f"{ratio(r, 'memory_ratio', 'paper_memory_ratio')} |")
    unsteady = [r for r in results if "error" not in r
                and max(r["sec_per_iter_all"]) > UNSTEADY * min(r["sec_per_iter_all"])]
    if unsteady:
        lines += ["", "Warning: iteration times varied by more than "
                  f"{UNSTEADY:g}x for " + ", ".join(
                      f"{r['label']} ({min(r['sec_per_iter_all']):.4f}-{max(r['sec_per_iter_all']):.4f} s)"
                      for r in unsteady)
                  + ": something else probably used the machine; rerun on an idle one (on a "
                  "shared CPU, OMP_WAIT_POLICY=PASSIVE or --threads 1 limits the damage)."]
    lines += ["", f"Paper: {PAPER['source']}: " + ", ".join(
        f"{label} {PAPER['sec_per_iter'][label]:.2f} s/iter {PAPER['memory_gb'][label]:.2f} GB"
        for label in PAPER["sec_per_iter"]) + "."]
    return "\n".join(lines) + "\n"


def plot(results, ref, settings, path):
    """Two panels (time, memory), one group per model: our ratio and the paper's, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "error" not in r]
    labels = [r["label"] for r in measured]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for ax, (ours, paper, title) in zip(axes, (("time_ratio", "paper_time_ratio", "time per iteration"),
                                                ("memory_ratio", "paper_memory_ratio", "peak memory"))):
        xs = range(len(labels))
        values = [r[ours] for r in measured]
        bars = ax.bar([x - width / 2 for x in xs], values, width,
                      label=f"measured ({settings['device']}, {settings['size']} px)")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        paper_values = [r.get(paper, float("nan")) for r in measured]
        bars = ax.bar([x + width / 2 for x in xs], paper_values, width, label="paper (GPU, 256 px)")
        ax.bar_label(bars, labels=["" if v != v else f"{v:.2f}" for v in paper_values], fontsize=8)
        ax.set_xticks(list(xs), labels)
        ax.set_title(f"{title}, relative to {ref}")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_ylim(0, 1.3 * max(v for v in values + paper_values if v == v))  # room for the legend
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


DISPLAY_NAMES = {"cycle_gan": "CycleGAN", "SelfDistance": "SelfDistanceGAN"}


def footprint_ratios(results):
    """CUT's and FastCUT's time and memory as fractions of CycleGAN's (None when one is missing)."""
    by_label = {r["label"]: r for r in results if "error" not in r}
    ref = by_label.get(REFERENCE)
    if ref is None:
        return {}
    return {label: (by_label[label]["sec_per_iter"] / ref["sec_per_iter"],
                    by_label[label]["memory_bytes"] / ref["memory_bytes"])
            for label in ("CUT", "FastCUT") if label in by_label}


def plot_footprint(results, settings, machine, path):
    """The talk's "lighter footprint" chart: seconds per iteration and peak memory of each
    measured model, one bar each, with CUT's and FastCUT's ratios to CycleGAN written in."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "error" not in r]
    names = [DISPLAY_NAMES.get(r["label"], r["label"])
             + (f"\n(batch {r['batch_size']})" if r["batch_size"] != settings["batch_size"] else "")
             for r in measured]
    highlight = {"CUT": "tab:red", "FastCUT": "tab:orange"}
    colors = [highlight.get(r["label"], "tab:gray") for r in measured]
    memory_unit = "peak allocated GB" if settings["device"] == "cuda" else "peak RSS above start-up, GB"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (values, title, fmt) in zip(axes, (
            ([r["sec_per_iter"] for r in measured], "seconds per iteration", "%.2f"),
            ([r["memory_bytes"] / GB for r in measured], memory_unit, "%.2f"))):
        bars = ax.bar(range(len(measured)), values, color=colors)
        ax.bar_label(bars, fmt=fmt, fontsize=8)
        ax.set_xticks(range(len(measured)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1.25 * max(values))
    ratios = footprint_ratios(results)
    if ratios:
        text = "; ".join(f"{label}: {t:.2f}x the time, {m:.2f}x the memory of CycleGAN"
                         for label, (t, m) in ratios.items())
        fig.text(0.5, 0.005, text, ha="center", fontsize=9)
    where = machine["gpu"] if settings["device"] == "cuda" else f"{machine['cpu']}, {machine['usable_cpus']} cores"
    fig.suptitle(f"Training cost per iteration at {settings['size']}x{settings['size']} px ({where}; "
                 f"torch {machine['torch']})", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------- --compare

def compare(opt, settings, machine, work):
    """Each (model, variant) in a fresh process, interleaved over --repeats rounds; per pair the
    median of the rounds' medians, the speed-up over the straightforward path and GFLOP/s."""
    runs = {(label, variant): [] for label in opt.models for variant in opt.variants}
    total, done = len(runs) * opt.repeats, 0
    for round_ in range(opt.repeats):
        for label in opt.models:
            for variant in opt.variants:
                done += 1
                config = dict(settings, variant_flags=VARIANTS[variant], count_flops=round_ == 0)
                record = run_one(label, config, work)
                tag = f"[{done}/{total}] round {round_ + 1}, {label} {variant}"
                if "error" in record:
                    print(f"{tag}: failed: {record['error']}", flush=True)
                else:
                    print(f"{tag}: {record['sec_per_iter']:.4f} s/iter, "
                          f"{record['memory_bytes'] / GB:.3f} GB", flush=True)
                runs[(label, variant)].append(record)
    rows = []
    for (label, variant), records in runs.items():
        good = [r for r in records if "error" not in r]
        row = {"model": label, "variant": variant, "rounds": records}
        if not good:
            row["error"] = records[0]["error"]
        else:
            # Throughput is what a run pays: the mean of a round's steps (FastCUT's steps are
            # bimodal, cheaper when not flipped), then the median over rounds (robust to one
            # disturbed round).  The median step is kept for reference.
            row["sec_per_iter"] = statistics.median(r["mean_sec_per_iter"] for r in good)
            row["cpu_sec_per_iter"] = statistics.median(r["cpu_mean_sec_per_iter"] for r in good)
            row["median_step_sec"] = statistics.median(t for r in good for t in r["sec_per_iter_all"])
            row["memory_bytes"] = statistics.median(r["memory_bytes"] for r in good)
            row["gflop_per_iter"] = next((r["gflop_per_iter"] for r in good if r["gflop_per_iter"]), None)
            if row["gflop_per_iter"]:
                row["gflop_per_sec"] = row["gflop_per_iter"] / row["sec_per_iter"]
        rows.append(row)
    for row in rows:
        base = next((r for r in rows if r["model"] == row["model"]
                     and r["variant"] == BASELINE_VARIANT and "error" not in r), None)
        if base is not None and "error" not in row:
            row["speedup"] = base["sec_per_iter"] / row["sec_per_iter"]
            row["cpu_speedup"] = base["cpu_sec_per_iter"] / row["cpu_sec_per_iter"]
            row["memory_ratio"] = row["memory_bytes"] / base["memory_bytes"]
    return rows


def format_compare(rows, settings, machine, repeats):
    where = machine["gpu"] if settings["device"] == "cuda" else \
        f"{machine['cpu']} ({machine['usable_cpus']} usable cores)"
    memory = "peak allocated (GB)" if settings["device"] == "cuda" else "peak RSS above start-up (GB)"
    lines = [f"Training variants at {settings['size']}x{settings['size']}, batch {settings['batch_size']}, "
             f"{settings['device']}: {where}; torch {machine['torch']}; each a fresh process, "
             f"interleaved over {repeats} rounds of {settings['iters']} timed iterations after "
             f"{settings['warmup']} warm-up; sec/iter: the median over rounds of each round's mean",
             "",
             f"| model | variant | sec/iter | speed-up vs {BASELINE_VARIANT} | median step (s) | CPU sec/iter "
             f"| CPU-time speed-up | {memory} | memory vs {BASELINE_VARIANT} | GFLOP/iter | GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['variant']} | failed: {r['error']} | | | | | | | | |")
            continue
        fmt = lambda key, spec: format(r[key], spec) if r.get(key) is not None else "-"
        lines.append(f"| {r['model']} | {r['variant']} | {r['sec_per_iter']:.4f} | {fmt('speedup', '.3f')}x | "
                     f"{r['median_step_sec']:.4f} | {r['cpu_sec_per_iter']:.4f} | {fmt('cpu_speedup', '.3f')}x | "
                     f"{r['memory_bytes'] / GB:.3f} | {fmt('memory_ratio', '.3f')} | "
                     f"{fmt('gflop_per_iter', '.1f')} | {fmt('gflop_per_sec', '.1f')} |")
    lines += ["", "CPU sec/iter: CPU time of the measuring process (all its threads) per iteration; on "
              "a shared machine it is less disturbed by other jobs than the wall clock. GFLOP: "
              "convolutions and matrix multiplies of one training iteration, counted by "
              "torch.utils.flop_counter (forward and backward)."]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description="Time and memory of one training iteration per model "
                                "(the CUT paper's Table 1 comparison); each model in a fresh process.")
    p.add_argument("--models", nargs="+", default=None,
                   help=f"models to measure (default: all of {', '.join(available_models())})")
    p.add_argument("--size", type=int, default=256, help="image size (load and crop), multiple of 4")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--iters", type=int, default=20, help="timed training iterations per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (allocator, cudnn)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--model_options", type=str, default="",
                   help="extra train.py options for every model, e.g. \"--ngf 16 --ndf 16\"")
    p.add_argument("--out", default=os.path.join("results", "benchmark"), help="output folder")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw the Table 1 chart (seconds per iteration and peak memory, one bar "
                        "per model) into this PNG; the default model list is then the eight "
                        f"methods of the paper's Table 1 ({', '.join(TABLE1)})")
    p.add_argument("--compare", action="store_true",
                   help="compare training variants (--variants) per model instead of models; "
                        "default models CUT and FastCUT; writes compare.md and compare.json")
    p.add_argument("--variants", type=str, default="straightforward,fast",
                   help=f"with --compare, comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3,
                   help="with --compare, rounds of fresh processes, interleaved")
    opt = p.parse_args(argv)
    opt.variants = [v.strip() for v in opt.variants.split(",") if v.strip()]
    bad = [v for v in opt.variants if v not in VARIANTS]
    if bad or not opt.variants:
        raise UserError(f"unknown --variants entry '{bad[0] if bad else ''}'; choose from: "
                        f"{', '.join(VARIANTS)}")
    if opt.repeats < 1:
        raise UserError(f"--repeats must be a positive integer (got {opt.repeats})")
    if opt.compare and opt.models is None:
        opt.models = ["CUT", "FastCUT"]
    if opt.plot is not None and opt.compare:
        raise UserError("--plot draws the models' table, not a --compare run; leave one out")
    if opt.plot is not None and opt.models is None:
        opt.models = list(TABLE1)

    known = available_models()
    by_lower = {label.lower(): label for label in MODEL_FLAGS}
    chosen = []
    for name in opt.models or known:
        label = by_lower.get(name.lower())
        if label is None or label not in known:
            missing = " (not in this checkout's models.MODELS)" if label else ""
            raise UserError(f"unknown model '{name}'{missing}; choose from: {', '.join(known)}")
        if label not in chosen:
            chosen.append(label)
    opt.models = chosen
    for name in ("size", "batch_size", "iters"):
        if getattr(opt, name) < 1:
            raise UserError(f"--{name} must be a positive integer (got {getattr(opt, name)})")
    if opt.warmup < 0 or opt.threads < 0:
        raise UserError(f"--warmup and --threads must be 0 or more (got {opt.warmup} and {opt.threads})")
    if opt.size % 4:
        raise UserError(f"--size {opt.size} is not a multiple of 4: the generators downsample twice "
                        "and must give back the input size")
    if opt.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but CUDA is not available on this machine "
                        f"(torch {torch.__version__}); use --device cpu")
    try:
        opt.model_options = shlex.split(opt.model_options)
    except ValueError as err:
        raise UserError(f"--model_options '{opt.model_options}': {err}") from None
    try:
        os.makedirs(opt.out, exist_ok=True)
        probe = os.path.join(opt.out, ".write_test")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as err:
        raise UserError(f"cannot write to --out {opt.out}: {err.strerror or err}") from None
    return opt


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_worker"]:
        return worker_main(argv[1])
    opt = parse_args(argv)
    settings = {key: getattr(opt, key) for key in
                ("size", "batch_size", "iters", "warmup", "device", "threads", "model_options")}
    machine = machine_facts(opt.device)
    print(f"benchmark: {', '.join(opt.models)} at {opt.size} px, batch {opt.batch_size}, "
          f"{opt.device}; {opt.warmup} warm-up + {opt.iters} timed iterations each", flush=True)

    if opt.compare:
        print(f"comparing {', '.join(opt.variants)} for {', '.join(opt.models)} at {opt.size} px, "
              f"{opt.device}; {opt.repeats} interleaved rounds", flush=True)
        with tempfile.TemporaryDirectory(prefix="cut_benchmark_results_") as work:
            rows = compare(opt, settings, machine, work)
        table = format_compare(rows, settings, machine, opt.repeats)
        paths = {name: os.path.join(opt.out, f"compare.{name}") for name in ("md", "json")}
        with open(paths["md"], "w") as f:
            f.write(table)
        with open(paths["json"], "w") as f:
            json.dump({"settings": settings, "machine": machine, "repeats": opt.repeats, "rows": rows,
                       "written": time.strftime("%Y-%m-%d %H:%M:%S")}, f, indent=2)
            f.write("\n")
        print()
        print(table, end="")
        print(f"\nwrote {paths['md']}, {paths['json']}")
        return 1 if any("error" in r for r in rows) else 0

    results = []
    with tempfile.TemporaryDirectory(prefix="cut_benchmark_results_") as work:
        for i, label in enumerate(opt.models, 1):
            print(f"[{i}/{len(opt.models)}] {label}: starting a fresh process", flush=True)
            record = run_one(label, settings, work)
            if "error" in record:
                print(f"[{i}/{len(opt.models)}] {label}: failed: {record['error']}", flush=True)
            else:
                print(f"[{i}/{len(opt.models)}] {label}: {record['sec_per_iter']:.4f} s/iter, "
                      f"{record['memory_bytes'] / GB:.3f} GB", flush=True)
            results.append(record)

    ref = add_ratios(results)
    table = format_table(results, settings, machine, ref)
    paths = {name: os.path.join(opt.out, f"benchmark.{name}") for name in ("md", "json", "png")}
    with open(paths["md"], "w") as f:
        f.write(table)
    with open(paths["json"], "w") as f:
        json.dump({"settings": settings, "machine": machine, "reference": ref, "paper": PAPER,
                   "results": results, "written": time.strftime("%Y-%m-%d %H:%M:%S")}, f, indent=2)
        f.write("\n")
    if ref is not None:
        plot(results, ref, settings, paths["png"])
    if opt.plot is not None and any("error" not in r for r in results):
        plot_footprint(results, settings, machine, opt.plot)
        paths["footprint"] = opt.plot
    print()
    print(table, end="")
    print(f"\nwrote {', '.join(p for p in paths.values() if os.path.isfile(p))}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    run_cli(main)
