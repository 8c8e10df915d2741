"""train.py and test.py run as a user runs them: files written, logs, reproducibility, errors."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, make_unaligned, write_images

FAST = "--load_size 36 --crop_size 32 --num_threads 0 --gpu_ids -1 --display_id 0"


def run(script, args, cwd, check=True):
    """Run `python <script> <args>` like a user; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + args.split(),
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def train(tmp_path, dataroot, name, extra=""):
    return run("train.py", f"--dataroot {dataroot} --name {name} --checkpoints_dir {tmp_path}/ck "
                           f"--n_epochs 1 --n_epochs_decay 0 {FAST} {extra}", cwd=tmp_path)


def weights(path):
    return torch.load(path, weights_only=True)


def test_cut_train_then_test_end_to_end(tmp_path, tiny_dataroot):
    train(tmp_path, tiny_dataroot, "e", "--print_freq 1 --display_freq 1 --save_epoch_freq 1")
    ck = tmp_path / "ck" / "e"
    for prefix in ("latest", "1"):
        for net in "GDF":
            assert (ck / f"{prefix}_net_{net}.pth").is_file()
    assert not list(ck.glob(".*.tmp"))  # atomic writes leave no temporary files
    for name in ("train_opt.txt", "train_opt.json", "web/index.html", "web/images/epoch001_fake_B.png",
                 "web/images/epoch001_idt_B.png"):
        assert (ck / name).is_file(), name

    # 4 iterations (max(|A|, |B|) = 4, batch 1), print_freq 1: one line per iteration
    lines = (ck / "loss_log.txt").read_text().splitlines()
    assert lines[0].startswith("================ Training Loss (")
    assert len(lines) == 5 and lines[1].startswith("(epoch: 1, iters: 1, time: ")
    records = [json.loads(line) for line in (ck / "loss_log.jsonl").read_text().splitlines()]
    assert [r["total_iters"] for r in records] == [1, 2, 3, 4]
    assert set(records[0]["losses"]) == {"G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y"}
    assert records[0]["lr"] == pytest.approx(0.0002)

    proc = run("test.py", f"--dataroot {tiny_dataroot} --name e --checkpoints_dir {tmp_path}/ck "
                          f"--results_dir {tmp_path}/res --load_size 32 --crop_size 32 --num_test 2 "
                          "--gpu_ids -1 --eval", cwd=tmp_path)
    web = tmp_path / "res" / "e" / "test_latest"
    assert (web / "index.html").is_file()
    for visual in ("real_A", "fake_B", "real_B"):
        assert sorted(os.listdir(web / "images" / visual)) == ["img_000.png", "img_001.png"]
    html = (web / "index.html").read_text()
    assert "images/fake_B/img_001.png" in html and "Epoch = latest" in html
    assert (ck / "test_opt.txt").is_file()
    assert "loading the model from" in proc.stdout


def test_fastcut_two_iterations(tmp_path):
    root = make_unaligned(tmp_path / "d", splits=("train",), n_a=2, n_b=2, size=36)
    proc = train(tmp_path, root, "f", "--CUT_mode FastCUT --print_freq 1")
    log = (tmp_path / "ck" / "f" / "loss_log.txt").read_text()
    assert log.count("(epoch: 1, iters:") == 2
    assert "NCE_Y" not in log and "NCE: " in log
    assert (tmp_path / "ck" / "f" / "latest_net_F.pth").is_file()


def test_seed_makes_runs_identical(tmp_path, tiny_dataroot):
    # With DataLoader workers, so worker seeding is covered as well.
    for name, seed in (("s1", 3), ("s2", 3), ("s3", 4)):
        train(tmp_path, tiny_dataroot, name, f"--seed {seed} --num_threads 2")
    ck = tmp_path / "ck"
    for net in "GDF":
        a, b, c = (weights(ck / run / f"latest_net_{net}.pth") for run in ("s1", "s2", "s3"))
        assert all(torch.equal(a[k], b[k]) for k in a), net
        assert not all(torch.equal(a[k], c[k]) for k in a), net


def test_frequencies_fire_when_the_batch_size_does_not_divide_them(tmp_path, tiny_dataroot):
    # batch 2, 4 images -> total_iters 2, 4 | 6, 8.  print_freq 3 is crossed at 4, 6 and (9 > 8) not
    # again; the original's `total_iters % 3 == 0` prints only at 6.
    train(tmp_path, tiny_dataroot, "fr", "--batch_size 2 --print_freq 3 --n_epochs 2 --save_latest_freq 5")
    records = [json.loads(line) for line in (tmp_path / "ck" / "fr" / "loss_log.jsonl").read_text().splitlines()]
    assert [r["total_iters"] for r in records] == [4, 6]


def test_test_does_not_need_train_folders(tmp_path, tiny_dataroot):
    train(tmp_path, tiny_dataroot, "t")
    test_only = make_unaligned(tmp_path / "only_test", splits=("test",), n_a=1, n_b=1, size=32)
    run("test.py", f"--dataroot {test_only} --name t --checkpoints_dir {tmp_path}/ck --results_dir "
                   f"{tmp_path}/res --gpu_ids -1 --load_size 32 --crop_size 32", cwd=tmp_path)
    assert (tmp_path / "res" / "t" / "test_latest" / "images" / "fake_B" / "img_000.png").is_file()


def test_module_prefixed_checkpoint_loads_in_test(tmp_path, tiny_dataroot):
    train(tmp_path, tiny_dataroot, "p")
    ck = tmp_path / "ck" / "p"
    state = weights(ck / "latest_net_G.pth")
    torch.save({"module." + k: v for k, v in state.items()}, ck / "cpu_net_G.pth")
    run("test.py", f"--dataroot {tiny_dataroot} --name p --checkpoints_dir {tmp_path}/ck --epoch cpu "
                   f"--results_dir {tmp_path}/res --gpu_ids -1 --load_size 32 --crop_size 32 --num_test 1",
        cwd=tmp_path)
    assert (tmp_path / "res" / "p" / "test_cpu" / "images" / "fake_B" / "img_000.png").is_file()


# ---------------------------------------------------------------------------- errors
def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_error_missing_dataroot(tmp_path):
    proc = run("train.py", f"--dataroot {tmp_path}/nowhere --checkpoints_dir {tmp_path}/ck", tmp_path, check=False)
    assert_one_line_error(proc, "--dataroot", "nowhere")


def test_error_empty_train_folder(tmp_path):
    (tmp_path / "d" / "trainA").mkdir(parents=True)
    write_images(tmp_path / "d" / "trainB", 2, 32, seed=0)
    proc = run("train.py", f"--dataroot {tmp_path}/d --checkpoints_dir {tmp_path}/ck {FAST}", tmp_path, check=False)
    assert_one_line_error(proc, "trainA")


def test_error_missing_train_folder(tmp_path):
    write_images(tmp_path / "d" / "trainA", 2, 32, seed=0)
    proc = run("train.py", f"--dataroot {tmp_path}/d --checkpoints_dir {tmp_path}/ck {FAST}", tmp_path, check=False)
    assert_one_line_error(proc, "trainB")


def test_error_unreadable_image(tmp_path, tiny_dataroot):
    bad = os.path.join(tiny_dataroot, "trainA", "broken.png")
    with open(bad, "wb") as f:
        f.write(b"not a png at all")
    proc = run("train.py", f"--dataroot {tiny_dataroot} --checkpoints_dir {tmp_path}/ck {FAST} --serial_batches "
                           "--n_epochs 1 --n_epochs_decay 0", tmp_path, check=False)
    assert_one_line_error(proc, "broken.png")


@pytest.mark.parametrize("extra,needle", [("--model pix2pix", "--model"), ("--netG unet_256", "--netG"),
                                          ("--netD patch", "--netD"), ("--input_nc 1", "--input_nc"),
                                          ("--load_size 16", "--crop_size")])
def test_error_bad_options(tmp_path, tiny_dataroot, extra, needle):
    proc = run("train.py", f"--dataroot {tiny_dataroot} --checkpoints_dir {tmp_path}/ck {FAST} {extra}",
               tmp_path, check=False)
    assert_one_line_error(proc, needle)


def test_error_test_without_checkpoint(tmp_path, tiny_dataroot):
    proc = run("test.py", f"--dataroot {tiny_dataroot} --name none --checkpoints_dir {tmp_path}/ck --gpu_ids -1",
               tmp_path, check=False)
    assert_one_line_error(proc, "latest_net_G.pth")


# ---------------------------------------------------------------------------- original README commands
def start_and_wait_for(args, cwd, marker, timeout=240):
    """Start `python train.py <args>` unchanged and stop it once `marker` is printed."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py")] + args.split(), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, deadline = [], time.time() + timeout
    try:
        for line in proc.stdout:
            seen.append(line)
            if marker in line or time.time() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
    return "".join(seen)


@pytest.mark.parametrize("mode", ["CUT", "FastCUT"])
def test_original_readme_commands_run_unchanged(tmp_path, mode):
    make_unaligned(tmp_path / "datasets" / "grumpifycat", splits=("train",), n_a=2, n_b=2, size=286)
    out = start_and_wait_for(f"--dataroot ./datasets/grumpifycat --name grumpycat_{mode} --CUT_mode {mode}",
                             tmp_path, marker="create web directory")  # after the options are written
    # The networks are built only after one full forward/backward on a real 256x256 batch.
    assert "Networks initialized" in out, out[-3000:]
    assert "[Network G] Total number of parameters : 11.378 M" in out
    assert "Traceback" not in out
    opt_txt = (tmp_path / "checkpoints" / f"grumpycat_{mode}" / "train_opt.txt").read_text()
    assert f"CUT_mode: {mode}" in opt_txt

    # test.py, unchanged, on a generator trained briefly under the same name (at 32 px: same weights shapes)
    run("train.py", f"--dataroot ./datasets/grumpifycat --name grumpycat_{mode} --CUT_mode {mode} "
                    f"--n_epochs 1 --n_epochs_decay 0 {FAST}", cwd=tmp_path)
    run("test.py", f"--dataroot ./datasets/grumpifycat --name grumpycat_{mode} --CUT_mode {mode} --phase train",
        cwd=tmp_path)
    fake = tmp_path / "results" / f"grumpycat_{mode}" / "train_latest" / "images" / "fake_B"
    assert sorted(os.listdir(fake)) == ["img_000.png", "img_001.png"]


def test_single_folder_translation_with_test_py(tmp_path, tiny_dataroot):
    train(tmp_path, tiny_dataroot, "sf")
    folder = tmp_path / "photos"
    write_images(folder, 2, 32, seed=5)
    run("test.py", f"--dataroot {folder} --dataset_mode single --name sf --checkpoints_dir {tmp_path}/ck "
                   f"--results_dir {tmp_path}/res --gpu_ids -1 --load_size 32 --crop_size 32", cwd=tmp_path)
    images = tmp_path / "res" / "sf" / "test_latest" / "images"
    assert sorted(os.listdir(images)) == ["fake_B", "real_A"]
    assert sorted(os.listdir(images / "fake_B")) == ["img_000.png", "img_001.png"]
    proc = run("train.py", f"--dataroot {folder} --dataset_mode single --checkpoints_dir {tmp_path}/ck {FAST}",
               tmp_path, check=False)
    assert_one_line_error(proc, "--dataset_mode single")


def test_save_by_iter_and_continue_from_a_pretrained_name(tmp_path, tiny_dataroot):
    train(tmp_path, tiny_dataroot, "first", "--save_by_iter --save_latest_freq 2")
    ck = tmp_path / "ck"
    assert (ck / "first" / "iter_2_net_G.pth").is_file() and (ck / "first" / "iter_4_net_F.pth").is_file()
    proc = train(tmp_path, tiny_dataroot, "second",
                 "--continue_train --pretrained_name first --epoch iter_4 --epoch_count 2 --n_epochs 2 "
                 "--print_freq 4")
    for net in "GFD":
        assert f"loading the model from {ck}/first/iter_4_net_{net}.pth" in proc.stdout
    records = [json.loads(line) for line in (ck / "second" / "loss_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["iters"]) for r in records] == [(2, 4)]
    assert records[0]["lr"] == pytest.approx(0.0002)  # epoch 2 of 2 constant-LR epochs
    assert (ck / "second" / "latest_net_G.pth").is_file()


def test_dataset_scripts_pass_the_papers_settings(tmp_path):
    """scripts/<dataset>.sh call train.py/test.py with the launcher's names and settings."""
    root = make_unaligned(tmp_path / "g", splits=("train",), n_a=2, n_b=2, size=32)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    common = f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --gpu_ids -1"
    script = os.path.join(ROOT, "scripts", "grumpifycat.sh")
    subprocess.run(["bash", script, "train", "FastCUT"] + common.split() +
                   "--n_epochs 1 --n_epochs_decay 0 --load_size 32 --crop_size 32 --num_threads 0 --display_id 0".split(),
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    opt_txt = (tmp_path / "ck" / "grumpifycat_FastCUT" / "train_opt.txt").read_text()
    assert "CUT_mode: FastCUT" in opt_txt
    subprocess.run(["bash", script, "test", "FastCUT"] + common.split() + [f"--results_dir={tmp_path}/res"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    test_opt = (tmp_path / "ck" / "grumpifycat_FastCUT" / "train_opt.txt").read_text()
    assert "num_test: 500" in test_opt  # test on --phase train rewrites train_opt.txt, as the original
    assert (tmp_path / "res" / "grumpifycat_FastCUT" / "train_latest" / "index.html").is_file()
    bad = subprocess.run(["bash", os.path.join(ROOT, "scripts", "cityscapes.sh"), "train", "Fast"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "MODE must be CUT, FastCUT" in bad.stderr
