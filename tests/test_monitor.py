"""Monitoring: the progress bar beside the loss lines, TensorBoard event files, the loss plot."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

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


def run_in_a_terminal(args, cwd):
    """Run a command with stdout and stderr on one pseudo-terminal, as a user sees it."""
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen(args, cwd=cwd, stdout=child_fd, stderr=child_fd, close_fds=True)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert proc.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_in_a_terminal_leaves_the_loss_lines_intact(tmp_path):
    root = make_unaligned(tmp_path / "data", splits=("train",))
    screen = run_in_a_terminal([sys.executable, os.path.join(ROOT, "train.py")] +
                               f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name bar {SMALL}".split(),
                               tmp_path)  # --progress auto: on, in a terminal
    assert "epoch 2/2" in screen and "it/s" in screen
    # Each loss line must stand whole between the carriage returns and newlines the bar uses.
    segments = [seg.strip() for seg in screen.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    shown = [seg for seg in segments if "(epoch: " in seg]
    logged = [line.strip() for line in (tmp_path / "ck" / "bar" / "loss_log.txt").read_text().splitlines()
              if line.startswith("(epoch: ")]
    assert len(logged) == 8 and shown == logged


def test_tensorboard_event_files_hold_losses_lr_and_images(tmp_path):
    _, folder = train(tmp_path, "tb", "--tensorboard")
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
