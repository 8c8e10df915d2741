"""Draw the loss curves of one or more runs from their loss_log.jsonl, as one PNG.

    python scripts/plot_losses.py checkpoints/h2z_CUT checkpoints/h2z_FastCUT --out losses.png
    python scripts/plot_losses.py checkpoints/h2z_CUT/loss_log.jsonl --smooth 50

One panel per loss name (G_GAN, D_real, NCE, ...), one line per run, x = samples trained
(total_iters, continued across resumed runs).  FID/KID from metrics.jsonl, when a run has them,
get a panel of their own.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from util.errors import UserError, run_cli  # noqa: E402


def read_jsonl(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UserError(f"{path}:{number} is not a JSON line") from None
    return records


def load_run(path):
    """(label, loss records, metric records) of a run folder or a loss_log.jsonl file."""
    folder, log = (path, os.path.join(path, "loss_log.jsonl")) if os.path.isdir(path) \
        else (os.path.dirname(path), path)
    if not os.path.isfile(log):
        raise UserError(f"no loss log at {log}; give a run folder (checkpoints/<name>) or its "
                        "loss_log.jsonl")
    metrics = os.path.join(folder, "metrics.jsonl")
    label = os.path.basename(os.path.abspath(folder))
    return label, read_jsonl(log), read_jsonl(metrics) if os.path.isfile(metrics) else []


def moving_average(values, window):
    if window <= 1:
        return values
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(runs, out, smooth=1):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    names = []
    for _, records, _ in runs:
        for record in records:
            names += [n for n in record.get("losses", {}) if n not in names]
    panels = names + (["FID"] if any(metrics for _, _, metrics in runs) else [])
    if not panels:
        raise UserError("the loss logs hold no losses yet")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for label, records, metrics in runs:
            if panel == "FID":
                points = [(m.get("total_iters", m["epoch"]), m["fid"]) for m in metrics if "fid" in m]
            else:
                points = [(r.get("total_iters", i), r["losses"][panel])
                          for i, r in enumerate(records) if panel in r.get("losses", {})]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys if panel == "FID" else moving_average(list(ys), smooth), label=label)
        ax.set_title(panel)
        ax.set_xlabel("samples trained")
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description="Plot loss curves from loss_log.jsonl files.")
    p.add_argument("runs", nargs="+", help="run folders (checkpoints/<name>) or loss_log.jsonl files")
    p.add_argument("--out", default="losses.png", help="the PNG to write")
    p.add_argument("--smooth", type=int, default=1, help="moving average over this many points")
    opt = p.parse_args(argv)
    runs = [load_run(path) for path in opt.runs]
    plot(runs, opt.out, opt.smooth)
    print(f"wrote {opt.out} ({len(runs)} run(s))")
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
