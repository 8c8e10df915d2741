"""scripts/demo.py as `make demo` runs it, at the tiny budget: every promised file and line."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT

DEMO = os.path.join(ROOT, "scripts", "demo.py")
TINY = {"size": 32, "n_train": 8, "n_test": 4}


def load_demo_module():
    """scripts/ is not a package: load demo.py by path, for its data set helpers."""
    spec = importlib.util.spec_from_file_location("scripts_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_demo(*args):
    proc = subprocess.run([sys.executable, DEMO, "--budget", "tiny", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return proc


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    proc = run_demo("--out", str(out), "--name", "d")
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, proc.stdout


def test_data_set_written(demo_run):
    out, _ = demo_run
    data = out / "datasets" / "demo_horse2zebra"
    for sub, n in (("trainA", TINY["n_train"]), ("trainB", TINY["n_train"]),
                   ("testA", TINY["n_test"]), ("testB", TINY["n_test"]),
                   ("testA_mask", TINY["n_test"]), ("testB_mask", TINY["n_test"])):
        assert len(os.listdir(data / sub)) == n, sub
    with Image.open(next((data / "testA").iterdir())) as im:
        assert im.size == (TINY["size"], TINY["size"])


def test_checkpoints_and_logs_written(demo_run):
    out, _ = demo_run
    ck = out / "checkpoints" / "d"
    for name in ("latest_net_G.pth", "latest_net_D.pth", "latest_net_F.pth",
                 "untrained_net_G.pth", "train_opt.txt", "loss_log.txt", "demo_train.log"):
        assert (ck / name).is_file(), name
    opts = json.loads((ck / "train_opt.json").read_text())
    assert opts["seed"] == 0 and opts["CUT_mode"] == "CUT" and opts["crop_size"] == 32


def test_results_written_for_trained_and_untrained(demo_run):
    out, _ = demo_run
    for folder in ("test_latest", "test_untrained"):
        web = out / "results" / "d" / folder
        assert (web / "index.html").is_file(), folder
        for visual in ("real_A", "fake_B"):
            files = sorted(os.listdir(web / "images" / visual))
            assert files == [f"horse_{i:04d}.png" for i in range(TINY["n_test"])], (folder, visual)
        with Image.open(web / "images" / "fake_B" / "horse_0000.png") as im:
            assert im.size == (TINY["size"], TINY["size"])  # so the true masks line up


def test_scores_json_has_every_row(demo_run):
    out, _ = demo_run
    report = json.loads((out / "results" / "d" / "demo_scores.json").read_text())
    assert report["protocol"] == "demo_h2z_v1"
    assert list(report["rows"]) == ["identity", "untrained", "CUT", "real_B"]
    for row in report["rows"].values():
        assert row["n"] == TINY["n_test"]
        assert all(0.0 <= row[c] <= 1.0 for c in ("content_iou", "stripe_share", "bg_match",
                                                    "b_rate"))
    demo = report["demo"]
    assert demo["config"]["budget"] == "tiny" and demo["timings"]["train_s"] > 0


def test_grid_picture_written(demo_run):
    out, _ = demo_run
    with Image.open(out / "results" / "d" / "demo_grid.png") as im:
        # 4 test images -> 2 rows of 2 input|output pairs, each image enlarged to 192 px
        assert im.mode == "RGB" and im.width > 4 * 192 and im.height > 2 * 192


def test_output_has_progress_table_and_paths(demo_run):
    out, stdout = demo_run
    assert "epoch 1/1" in stdout and "eta" in stdout
    for row in ("identity", "untrained", "CUT", "real_B"):
        assert any(line.startswith(row + " ") for line in stdout.splitlines()), row
    assert "content_iou" in stdout
    page = os.path.join(str(out), "results", "d", "test_latest", "index.html")
    assert f"results page:  {page}" in stdout
    assert os.path.join(str(out), "results", "d", "demo_grid.png") in stdout


def test_existing_complete_data_set_is_reused(demo_run):
    demo = load_demo_module()
    out, _ = demo_run
    data = str(out / "datasets" / "demo_horse2zebra")
    assert demo.dataset_problem(data, **TINY) is None
    assert demo.ensure_dataset(data, **TINY).startswith("using the existing data set")
    assert "holds 8 images" in demo.dataset_problem(data, 32, 9, 4)
    assert "32x32 px" in demo.dataset_problem(data, 64, 8, 4)


def test_foreign_folder_is_never_overwritten(tmp_path):
    from util.errors import UserError
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files"):
        load_demo_module().ensure_dataset(str(tmp_path), **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_option_is_one_line_error(tmp_path):
    proc = run_demo("--out", str(tmp_path), "--mode", "SinCUT")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
