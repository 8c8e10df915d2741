"""scripts/toy_study.py as a user runs it: --quick on two rows, the table, JSON and grid it
writes, skipping finished rows, and its one-line errors."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "toy_study.py")
# A two-model row (CycleGAN: G_A, G_B, D_A, D_B) and a batch-4 row (1 iteration of 4 images).
QUICK_ROWS = ("CycleGAN", "CUT_external")


def load_module():
    """scripts/ is not a package: load toy_study.py by path."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    spec = importlib.util.spec_from_file_location("scripts_toy_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_study(out, *args):
    return subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    proc = run_study(out, "--rows", *QUICK_ROWS)
    assert proc.returncode == 0, f"toy study failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    with open(out / "results" / "toy_study" / "toy_study.json") as f:
        report = json.load(f)
    return out, proc.stdout, report


def test_every_row_has_every_column(study):
    _, _, report = study
    rows = report["rows"]
    assert report["order"] == list(QUICK_ROWS) and report["failed"] == {}
    assert list(rows) == ["identity", *QUICK_ROWS, "real_B"]
    for name in QUICK_ROWS:
        row = rows[name]
        for column in ("content_iou", "stripe_share", "bg_match", "b_rate", "animal_coverage"):
            assert 0.0 <= row[column] <= 1.0, (name, column)
        assert row["n"] == 4  # --quick translates 4 test images
        assert row["sec_per_iter"] > 0
        assert 50 * 2 ** 20 < row["peak_rss_bytes"] < 16 * 2 ** 30  # a torch process, in bytes
    # 4 training images: 4 iterations at batch size 1, one at batch size 4
    assert rows["CycleGAN"]["iterations"] == 4 and rows["CycleGAN"]["batch_size"] == 1
    assert rows["CUT_external"]["iterations"] == 1 and rows["CUT_external"]["batch_size"] == 4
    assert "--nce_includes_all_negatives_from_minibatch True" in rows["CUT_external"]["train_command"]


def test_source_and_target_coverage_match_the_data_set(study):
    """The detector's animal coverage of real testA / testB is close to the true masks', and the
    zebras cover about twice the horses' area (datasets/make_demo_dataset.py: AREA_RANGE)."""
    _, _, report = study
    source = report["rows"]["identity"]["animal_coverage"]
    target = report["rows"]["real_B"]["animal_coverage"]
    true = report["true_mask_coverage"]
    assert 0.11 <= true["A"] <= 0.25 and 0.29 <= true["B"] <= 0.45
    assert abs(source - true["A"]) < 0.03 and abs(target - true["B"]) < 0.03
    assert target > 1.5 * source


def test_markdown_table_and_grid(study):
    out, stdout, report = study
    md = (out / "results" / "toy_study" / "toy_study.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 2 + len(QUICK_ROWS) + 1  # header, source, rows, target
    assert lines[1].startswith("| source: real testA") and lines[-1].startswith("| target: real testB")
    for name, line in zip(QUICK_ROWS, lines[2:]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == name and len(cells) == 11 and all(cells), line
        assert cells[6] == f"{100 * report['rows'][name]['animal_coverage']:.1f}%"
    assert md in stdout  # the same table is printed
    with Image.open(out / "results" / "toy_study" / "toy_grid.png") as im:
        # input column + one per row, 64 px images enlarged 2x, 3 px gaps; 4 inputs, 14 px header
        assert im.size == ((1 + len(QUICK_ROWS)) * 131 - 3, 14 + 4 * 131 - 3)
        # the first column is the first test input itself
        first = sorted(os.listdir(out / "datasets" / "demo_horse2zebra" / "testA"))[0]
        with Image.open(out / "datasets" / "demo_horse2zebra" / "testA" / first) as src:
            src = src.convert("RGB")
            assert im.getpixel((0, 14)) == src.getpixel((0, 0))
            assert im.getpixel((127, 14 + 127)) == src.getpixel((63, 63))


def test_finished_rows_are_skipped(study):
    out, _, _ = study
    log = out / "checkpoints" / "toy_CycleGAN" / "toy_train.log"
    before = log.stat().st_mtime_ns
    proc = run_study(out, "--rows", "CycleGAN")
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] CycleGAN: finished before" in proc.stdout
    assert log.stat().st_mtime_ns == before  # train.py did not run again
    report = json.loads((out / "results" / "toy_study" / "toy_study.json").read_text())
    assert list(report["rows"]) == ["identity", "CycleGAN", "real_B"]


def test_a_finished_row_of_another_budget_is_refused(study):
    out, _, _ = study
    proc = run_study(out, "--rows", "CycleGAN", "--ngf", "4")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "toy_CycleGAN" in lines[0] and "--force" in lines[0]


def test_unknown_row_is_a_one_line_error(tmp_path):
    proc = run_study(tmp_path, "--rows", "CUT", "NoSuchRow")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown row 'NoSuchRow'; choose from: "
                                   + ", ".join(load_module().ROWS))
    assert not (tmp_path / "datasets").exists()  # refused before any work


def test_a_row_whose_model_is_missing_fails_with_its_name(tmp_path, monkeypatch, capsys):
    toy = load_module()
    models = toy.registered_models()
    assert {"cut", "cycle_gan"} <= set(models)
    assert toy.missing_model(["--model", "cut"], models) is None
    assert toy.missing_model(["--model", "ghost_gan"], ["cut"]) == (
        "--model ghost_gan is not in this checkout (models.MODELS has cut); merge the branch "
        "that adds it")
    monkeypatch.setitem(toy.ROWS, "Ghost", ("Table 1", ["--model", "ghost_gan"]))
    with pytest.raises(toy.UserError, match="no row finished: Ghost: --model ghost_gan"):
        toy.main(["--quick", "--out", str(tmp_path), "--rows", "Ghost"])
    assert "[1/1] Ghost: failed: --model ghost_gan is not in this checkout" in capsys.readouterr().out


def test_rows_name_the_paper_settings():
    toy = load_module()
    rows = {name: args for name, (_, args) in toy.ROWS.items()}
    assert rows["CUT_16_negs"][-2:] == ["--num_patches", "17"]  # 16 negatives + the positive
    assert rows["CUT_last_layer"][-2:] == ["--nce_layers", "16"]
    for name, args in rows.items():
        assert "--model" in args, name


def test_run_measured_reports_each_childs_own_peak(tmp_path):
    """The peak RSS is the child's own: a small child after a big one is small.  Measured from a
    fresh, small parent (Linux starts a child's peak at its parent's RSS, see registered_models)."""
    code = f"""
import json, sys
sys.path.insert(0, {os.path.join(ROOT, 'scripts')!r})
from demo import run_measured
log = {str(tmp_path / 'log')!r}
big = run_measured(["-c", "b = bytearray(300 * 2 ** 20); b[::4096] = b'x' * len(b[::4096])"], log)
small = run_measured(["-c", "pass"], log)
print(json.dumps([big, small]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    big, small = json.loads(proc.stdout)
    assert big["peak_rss_bytes"] > 300 * 2 ** 20
    assert small["peak_rss_bytes"] < 150 * 2 ** 20
    assert big["wall_s"] > 0


def test_commands_for_a_real_data_set():
    proc = subprocess.run([sys.executable, SCRIPT, "--commands_for", "./datasets/horse2zebra",
                           "--rows", "CUT_external", "SelfDistance"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "python train.py --dataroot ./datasets/horse2zebra --name horse2zebra_SelfDistance "
        "--model distance_gan --self_distance",
        "python test.py --dataroot ./datasets/horse2zebra --name horse2zebra_SelfDistance "
        "--model distance_gan --self_distance --num_test 500",
        "python train.py --dataroot ./datasets/horse2zebra --name horse2zebra_CUT_external "
        "--model cut --CUT_mode CUT --nce_includes_all_negatives_from_minibatch True --batch_size 4",
        "python test.py --dataroot ./datasets/horse2zebra --name horse2zebra_CUT_external "
        "--model cut --CUT_mode CUT --nce_includes_all_negatives_from_minibatch True --num_test 500",
    ]
