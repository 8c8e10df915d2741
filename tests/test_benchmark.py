"""scripts/benchmark.py as a user runs it: a tiny CPU run writes the table, JSON and chart for
every model; bad options are one-line errors."""
import json
import os
import subprocess
import sys

import matplotlib
import pytest
import torch

from conftest import ROOT

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")
MODELS = ["cycle_gan", "CUT", "FastCUT"]


def run(args, cwd):
    # One torch thread: on a shared 2-core machine OpenMP spin-waiting can slow an iteration 100x.
    return subprocess.run([sys.executable, SCRIPT] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_tiny_cpu_benchmark_writes_table_json_and_chart(tmp_path):
    out = tmp_path / "bench"
    proc = run(["--size", "32", "--iters", "2", "--warmup", "1", "--device", "cpu", "--threads", "1",
                "--out", str(out), "--model_options", "--ngf 4 --ndf 4",
                "--models"] + MODELS, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[1/3] cycle_gan: starting a fresh process" in proc.stdout  # progress while it runs
    assert "cycle_gan: iteration 2/2" in proc.stdout

    table = (out / "benchmark.md").read_text()
    assert table in proc.stdout  # printed and written
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows] == MODELS
    assert "failed" not in table and "32x32" in table and "cpu" in table

    report = json.loads((out / "benchmark.json").read_text())
    assert report["reference"] == "cycle_gan"
    assert report["machine"]["torch"] == str(torch.__version__) and report["machine"]["cpu_count"] >= 1
    assert report["settings"]["size"] == 32 and report["settings"]["iters"] == 2
    results = {r["label"]: r for r in report["results"]}
    assert list(results) == MODELS
    for label, r in results.items():
        assert len(r["sec_per_iter_all"]) == 2 and r["sec_per_iter"] > 0
        assert r["images_per_sec"] == pytest.approx(1 / r["sec_per_iter"])
        assert r["memory_bytes"] > 0 and r["process_peak_rss_bytes"] > r["memory_bytes"]
        assert "--ngf" in r["argv"] and r["torch_threads"] == 1
    assert set(results["cycle_gan"]["parameters"]) == {"G_A", "G_B", "D_A", "D_B"}
    assert set(results["CUT"]["parameters"]) == {"G", "F", "D"}
    # each model in its own process, none in this one
    pids = {r["pid"] for r in results.values()}
    assert len(pids) == 3 and os.getpid() not in pids
    assert results["cycle_gan"]["time_ratio"] == 1.0
    assert results["FastCUT"]["paper_time_ratio"] == pytest.approx(0.15 / 0.40)
    assert results["CUT"]["paper_memory_ratio"] == pytest.approx(3.33 / 4.81)

    png = out / "benchmark.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = plt.imread(png).shape[:2]
    assert width > 300 and height > 200


def test_a_failing_model_is_reported_and_the_others_still_run(tmp_path):
    # --lambda_identity is a CycleGAN option: the CUT parser rejects it, so FastCUT fails (one
    # line in the table, exit status 1) while cycle_gan is measured.
    proc = run(["--size", "32", "--iters", "1", "--warmup", "0", "--device", "cpu", "--threads", "1",
                "--out", str(tmp_path / "b"), "--models", "FastCUT", "cycle_gan",
                "--model_options", "--ngf 4 --ndf 4 --lambda_identity 0"], tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "b" / "benchmark.md").read_text()
    assert "| FastCUT | failed: " in table and "lambda_identity" in table
    report = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    measured = [r for r in report["results"] if "error" not in r]
    assert [r["label"] for r in measured] == ["cycle_gan"] and report["reference"] == "cycle_gan"


def test_compare_mode_interleaves_fresh_processes_and_counts_the_saved_work(tmp_path):
    out = tmp_path / "cmp"
    proc = run(["--compare", "--repeats", "2", "--size", "32", "--iters", "1", "--warmup", "0",
                "--device", "cpu", "--threads", "1", "--out", str(out),
                "--model_options", "--ngf 4 --ndf 4"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # interleaved: round 1 measures every (model, variant) before round 2 starts
    order = [line.split(": ")[0] for line in proc.stdout.splitlines() if line.startswith("[")]
    assert order == [f"[{i + 1}/8] round {r}, {m} {v}" for i, (r, m, v) in enumerate(
        (r, m, v) for r in (1, 2) for m in ("CUT", "FastCUT") for v in ("straightforward", "fast"))]
    report = json.loads((out / "compare.json").read_text())
    rows = {(r["model"], r["variant"]): r for r in report["rows"]}
    assert set(rows) == {(m, v) for m in ("CUT", "FastCUT") for v in ("straightforward", "fast")}
    pids = {run_["pid"] for r in rows.values() for run_ in r["rounds"]}
    assert len(pids) == 8 and os.getpid() not in pids
    for model in ("CUT", "FastCUT"):
        slow, fast = rows[(model, "straightforward")], rows[(model, "fast")]
        assert slow["speedup"] == 1.0 and fast["speedup"] == pytest.approx(
            slow["sec_per_iter"] / fast["sec_per_iter"])
        assert "--fast_path" in slow["rounds"][0]["argv"] and "--fast_path" not in fast["rounds"][0]["argv"]
        assert 0 < fast["gflop_per_iter"] <= slow["gflop_per_iter"]
        assert fast["gflop_per_sec"] == pytest.approx(fast["gflop_per_iter"] / fast["sec_per_iter"])
    # CUT never flips: the fast path skips both key-side encoder passes, and the FLOPs say so
    # (FastCUT skips its one pass only when the counted iteration was not flipped)
    assert rows[("CUT", "fast")]["gflop_per_iter"] < rows[("CUT", "straightforward")]["gflop_per_iter"]
    table = (out / "compare.md").read_text()
    assert table in proc.stdout and "| CUT | fast |" in table and "GFLOP/s" in table


@pytest.mark.parametrize("args,needle", [
    (["--compare", "--variants", "fast,turbo"], "unknown --variants entry 'turbo'; choose from: "
                                                "straightforward, fast, bf16"),
    (["--compare", "--repeats", "0"], "--repeats must be a positive integer"),
    (["--models", "pix2pix"], "unknown model 'pix2pix'; choose from: cycle_gan, CUT, FastCUT"),
    (["--size", "30"], "--size 30 is not a multiple of 4"),
    (["--iters", "0"], "--iters must be a positive integer"),
    (["--warmup", "-1"], "--warmup and --threads must be 0 or more"),
    pytest.param(["--device", "cuda"], "--device cuda, but CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_options_are_one_line_errors(tmp_path, args, needle):
    proc = run(args + ["--out", str(tmp_path / "b")], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
