"""CUT against FastCUT on the demo data set, with the same architecture, data and iterations.

    python scripts/benchmark_demo.py                           # 5 + 5 epochs each (CPU: long)
    python scripts/benchmark_demo.py --n_epochs 2 --n_epochs_decay 2    # the demo's budget

Not part of the test suite.  Each model is trained with train.py and tested with test.py exactly
as scripts/demo.py does (same --seed, so both start from the same generator, which is also the
`untrained` row), then all rows are scored together with protocol demo_h2z_v1 and printed with
each model's training wall time.  Outputs under --out (default: the repository root):

  checkpoints/bench_<mode>/ and results/bench_<mode>/   one pair per model
  results/benchmark_demo.json                           scores, settings and timings
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from demo import (MODES, ROOT, UNTRAINED, build_config, ensure_dataset, fmt_duration,  # noqa: E402
                  layout, save_untrained_generator, test, train)
from metrics.demo_scores import format_table, score_table, write_json  # noqa: E402
from util.errors import run_cli  # noqa: E402


def format_timings(runs):
    """One line per model: iterations, training wall time and time per iteration."""
    lines = [f"{'model':<10}{'iters':>7}{'train (min:s)':>15}{'ms/iter':>9}"]
    for mode, run in runs.items():
        lines.append(f"{mode:<10}{run['iterations']:>7}{fmt_duration(run['train_s']):>15}"
                     f"{1000 * run['train_s'] / run['iterations']:>9.0f}")
    lines.append("(train time: wall time of train.py, start-up included; CPU)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description="Train CUT and FastCUT on the demo data set with "
                                "the same budget; print both models' scores and times.")
    p.add_argument("--out", default=ROOT, help="root of datasets/, checkpoints/ and results/")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n_epochs", type=int, default=5, help="epochs at the initial rate")
    p.add_argument("--n_epochs_decay", type=int, default=5, help="epochs of linear decay")
    p.add_argument("--ngf", type=int, default=None, help="generator width (default: the demo's)")
    p.add_argument("--ndf", type=int, default=None, help="discriminator width (default: the "
                   "demo's)")
    p.add_argument("--json", default=None,
                   help="where to write the report (default: <out>/results/benchmark_demo.json)")
    opt = p.parse_args(argv)

    overrides = {"n_epochs": opt.n_epochs, "n_epochs_decay": opt.n_epochs_decay,
                 "ngf": opt.ngf, "ndf": opt.ndf}
    configs = {mode: build_config("full", mode, opt.seed, overrides) for mode in opt.modes}
    first = configs[opt.modes[0]]
    dataroot = layout(opt.out, "bench")["dataroot"]
    print(ensure_dataset(dataroot, **first["data"]), flush=True)

    runs, rows = {}, {}
    for mode, cfg in configs.items():
        paths = layout(opt.out, f"bench_{mode.lower()}")
        os.makedirs(paths["checkpoint"], exist_ok=True)
        if not rows:  # the seeded starting generator is the same for every mode
            save_untrained_generator(cfg, paths)
            rows[UNTRAINED] = test(cfg, paths, UNTRAINED)
        print(f"training {mode}", flush=True)
        train_s = train(cfg, paths)
        rows[mode] = test(cfg, paths, "latest")
        iterations = (cfg["train"]["n_epochs"] + cfg["train"]["n_epochs_decay"]) * \
            (cfg["data"]["n_train"] // cfg["train"]["batch_size"])
        runs[mode] = {"train_s": train_s, "iterations": iterations, "config": cfg}
        print(f"  {mode} trained in {fmt_duration(train_s)}", flush=True)

    report = score_table(dataroot, rows)
    report["benchmark"] = runs
    path = opt.json or os.path.join(os.path.abspath(opt.out), "results", "benchmark_demo.json")
    write_json(report, path)
    print()
    print(format_table(report))
    print()
    print(format_timings(runs))
    print(f"report: {path}")
    return report


if __name__ == "__main__":
    run_cli(lambda: main())
