"""Monitoring: the progress bar beside the loss lines, TensorBoard event files, the loss plot."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT, make_unaligned

SMALL = ("--load_size 36 --crop_size 32 --gpu_ids -1 --display_id 0 --ngf 8 --ndf 8 --num_threads 0 "
         "--n_epochs 1 --n_epochs_decay 1 --print_freq 1 --display_freq 2 --seed 1")


def train(tmp_path, name, extra):
    root = make_unaligned(tmp_path / "data", splits=("train",))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py")] +
                          f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name {name} {SMALL} {extra}".split(),
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, tmp_path / "ck" / name


def test_progress_bar_and_tensorboard_leave_the_loss_lines_intact(tmp_path):
    proc, folder = train(tmp_path, "bar", "--progress on --tensorboard")
    assert "epoch 2/2" in proc.stderr and "it/s" in proc.stderr  # the bar, on stderr
    printed = [line for line in proc.stdout.splitlines() if "(epoch: " in line]
    logged = [line for line in (folder / "loss_log.txt").read_text().splitlines() if "(epoch: " in line]
    assert len(logged) == 8 and all(line.startswith("(epoch: ") for line in printed)
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in logged]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    tags = events.Tags()
    assert {"loss/G_GAN", "loss/NCE", "train/lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/NCE")] == list(range(1, 9))
    assert "fake_B" in tags["images"]


def test_no_progress_bar_when_not_a_terminal(tmp_path):
    proc, _ = train(tmp_path, "quiet", "")  # --progress auto, stderr is a pipe here
    assert "it/s" not in proc.stderr


def test_plot_losses_draws_one_png_for_several_runs(tmp_path):
    _, first = train(tmp_path, "one", "")
    _, second = train(tmp_path, "two", "--CUT_mode FastCUT")
    out = tmp_path / "plots" / "losses.png"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot_losses.py"), str(first),
                           str(second / "loss_log.jsonl"), "--out", str(out), "--smooth", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[0] > 300 and image.shape[1] > 600 and image.std() > 10  # drawn, not blank
    missing = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot_losses.py"),
                              str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no loss log at")
