"""Exact resume, stop signals, failed writes, the NaN guard and checkpoint bookkeeping.

A run interrupted anywhere (SIGKILL right after a save, SIGTERM or Ctrl-C mid-epoch, a disk that
fills up) and resumed with --continue_train must end with exactly the weights of a run that was
never interrupted: seeded CPU runs are reproducible bit for bit, so `torch.equal` is the test.
Faults are injected deterministically by tests/faulty_train.py.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import train
from conftest import ROOT, make_unaligned
from models.cut_model import CUTModel
from util.checkpoint import atomic_torch_save, existing_checkpoints, prune_checkpoints
from util.errors import NonFiniteLossError, UserError

SMALL = ("--load_size 36 --crop_size 32 --gpu_ids -1 --display_id 0 --ngf 8 --ndf 8 "
         "--print_freq 1 --display_freq 1000")
# 4 iterations per epoch (max(|A|, |B|) = 4, batch 1); 2 epochs, the second one decaying the LR.
CUT_RUN = f"{SMALL} --n_epochs 1 --n_epochs_decay 1 --num_threads 0 --seed 1 --save_latest_freq 4"
# FastCUT (flips for equivariance), DataLoader workers, 3 epochs, saves in mid-epoch.
FASTCUT_RUN = (f"{SMALL} --CUT_mode FastCUT --n_epochs 1 --n_epochs_decay 2 --num_threads 2 --seed 3 "
               "--save_latest_freq 5")


def run_train(args, cwd, fault=None):
    """train.py (or tests/faulty_train.py FAULT) in a new session, so a group signal stays there."""
    script = [os.path.join(ROOT, "train.py")] if fault is None else \
        [os.path.join(ROOT, "tests", "faulty_train.py"), fault]
    return subprocess.run([sys.executable] + script + args.split(), cwd=cwd, capture_output=True,
                          text=True, timeout=600, start_new_session=True)


def checked(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_same_weights(folder_a, folder_b):
    for net in "GDF":
        a = torch.load(folder_a / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(folder_b / f"latest_net_{net}.pth", weights_only=True)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"net{net} differs"


def losses_by_iteration(folder):
    records = [json.loads(line) for line in (folder / "loss_log.jsonl").read_text().splitlines()]
    return {r["total_iters"]: r["losses"] for r in records}


def state_of(folder):
    return torch.load(folder / "latest_state.pth", weights_only=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    make_unaligned(root / "data")
    return root


def reference(workdir, name, args):
    """An uninterrupted run, trained once per module."""
    folder = workdir / "ck" / name
    if not folder.exists():
        checked(run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {args}",
                          workdir))
    return folder


def interrupted_then_resumed(workdir, name, args, fault, expect_rc):
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {args}"
    first = run_train(common, workdir, fault=fault)
    assert first.returncode == expect_rc, first.stdout[-3000:] + first.stderr[-3000:]
    folder = workdir / "ck" / name
    saved = state_of(folder)
    second = checked(run_train(common + " --continue_train", workdir))
    return first, second, saved, folder


@pytest.mark.parametrize("args,save_n,at_iters", [
    (CUT_RUN, 1, 4),  # saved after the last batch of epoch 1, before the epoch's end
    (FASTCUT_RUN, 2, 10),  # saved mid-epoch 3, with workers and flips
], ids=["CUT-epoch-end", "FastCUT-workers-mid-epoch"])
def test_sigkill_right_after_a_save_then_continue_train_is_bit_identical(workdir, args, save_n, at_iters):
    name = "ref_cut" if args is CUT_RUN else "ref_fastcut"
    ref = reference(workdir, name, args)
    first, second, saved, folder = interrupted_then_resumed(
        workdir, f"kill_{name}", args, f"kill_after_save:{save_n}", expect_rc=-9)
    assert saved["progress"]["total_iters"] == at_iters
    assert "resuming from" in second.stdout and "--epoch_count" not in second.stdout
    assert_same_weights(ref, folder)
    # the optimizers went on from their saved moments, not from zero
    ref_adam, got_adam = state_of(ref)["optimizers"][0]["state"], state_of(folder)["optimizers"][0]["state"]
    assert all(torch.equal(ref_adam[i]["exp_avg_sq"], got_adam[i]["exp_avg_sq"]) for i in ref_adam)
    # every loss the resumed run logged is the uninterrupted run's, at the same total_iters
    ref_losses, got_losses = losses_by_iteration(ref), losses_by_iteration(folder)
    assert sorted(got_losses) == sorted(ref_losses)
    assert all(got_losses[i] == ref_losses[i] for i in got_losses)


@pytest.mark.slow
@pytest.mark.parametrize("write,when,resumes", [
    # the run's first checkpoint file is its state: killed before it landed, nothing was saved
    (1, "before", False),
    # killed between two network files of the first save: the state before them resumes
    (3, "before", True),
], ids=["inside-the-first-state-write", "between-the-first-network-files"])
def test_sigkill_inside_the_first_save_then_continue_train_is_bit_identical(workdir, write, when,
                                                                             resumes):
    ref = reference(workdir, "ref_cut", CUT_RUN)
    name = f"kill_write_{write}_{when}"
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {CUT_RUN}"
    first = run_train(common, workdir, fault=f"kill_at_write:{write}:{when}")
    assert first.returncode == -9, first.stdout[-3000:] + first.stderr[-3000:]
    folder = workdir / "ck" / name
    nets = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
    assert nets == (["latest_net_G.pth", "latest_state.pth"] if resumes else [])
    second = checked(run_train(common + " --continue_train", workdir))
    if resumes:
        assert "resuming from" in second.stdout
    else:
        assert "holds no checkpoint yet" in second.stdout and "starting from the beginning" in second.stdout
    assert_same_weights(ref, folder)
    assert losses_by_iteration(folder) == losses_by_iteration(ref)


@pytest.mark.parametrize("fault,signame,rc,args,name", [
    ("signal_at:TERM:3", "SIGTERM", 143, CUT_RUN, "ref_cut"),
    # asked for during the end of epoch 1: saved at the start of epoch 2, not an iteration later
    ("signal_at_epoch_end:TERM:1", "SIGTERM", 143, CUT_RUN, "ref_cut"),
    # Ctrl-C reaches every process of the group.  It arrives while the main process waits for the
    # batch of iteration 3, which worker 0 is still preparing: the worker must survive the signal
    # and deliver, and the run save after that iteration.  (Epoch 1: its workers were started
    # before the training loop installed its own handlers, which later workers inherit.)
    ("group_signal_in_worker:INT:2", "SIGINT", 130, FASTCUT_RUN, "ref_fastcut"),
], ids=["SIGTERM", "SIGTERM-at-epoch-end", "Ctrl-C-to-the-group-while-waiting-for-a-worker"])
def test_stop_signal_saves_at_the_end_of_the_iteration_and_resume_is_bit_identical(
        workdir, fault, signame, rc, args, name):
    ref = reference(workdir, name, args)
    run_name = fault.replace(":", "_")
    first, second, saved, folder = interrupted_then_resumed(workdir, run_name, args, fault, rc)
    assert f"received {signame}: saved a resumable checkpoint" in first.stdout
    assert "Traceback" not in first.stderr
    at = {"signal_at:TERM:3": 3, "signal_at_epoch_end:TERM:1": 4}.get(fault, 3)
    assert saved["progress"]["total_iters"] == at  # the iteration in flight was finished, then saved
    assert max(losses_by_iteration(folder)) == (12 if args is FASTCUT_RUN else 8)
    assert_same_weights(ref, folder)


def test_a_failed_write_keeps_the_previous_checkpoint_and_resume_still_works(workdir):
    # After the first save (iteration 4) files may not grow past 64 KiB: the final save fails
    # in the operating system's write, as on a full disk.
    ref = reference(workdir, "ref_cut", CUT_RUN)
    first, second, saved, folder = interrupted_then_resumed(
        workdir, "full_disk", CUT_RUN, "fsize_after_save:1", expect_rc=2)
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in first.stderr, first.stderr
    assert lines[0].startswith(f"error: cannot write checkpoint {folder}/latest_net_")
    assert "File too large (the previous file is intact)" in lines[0]
    assert saved["progress"]["total_iters"] == 4  # the first save, untouched by the failed second
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]
    assert_same_weights(ref, folder)


def test_atomic_save_failure_leaves_the_old_file_loadable(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    atomic_torch_save({"w": torch.ones(3)}, path)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))  # a real write failure (EFBIG)
    try:
        with pytest.raises(UserError, match="cannot write checkpoint .*: File too large "
                                            r"\(the previous file is intact\)"):
            atomic_torch_save({"w": torch.zeros(10000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["latest_net_G.pth"]  # no temporary file left behind
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~current_umask())  # like any file


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_fine_tuning_run_resumes_from_its_own_state(workdir):
    """A run started from another run's weights (--pretrained_name) is resumed by the same
    command, not restarted from those weights."""
    reference(workdir, "ref_cut", CUT_RUN)
    tune = f"{CUT_RUN} --continue_train --pretrained_name ref_cut"
    ref = reference(workdir, "ref_tune", tune)
    first, second, saved, folder = interrupted_then_resumed(workdir, "tune", tune, "signal_at:TERM:6", 143)
    assert "to resume, run the same command with --continue_train" in first.stdout
    assert f"resuming from {folder}/latest_state.pth" in second.stdout
    assert f"loading the model from {workdir}/ck/ref_cut" not in second.stdout
    assert_same_weights(ref, folder)


def test_stop_with_save_by_iter_still_leaves_latest_weights(workdir):
    name = "by_iter"
    proc = run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {CUT_RUN} "
                     "--save_by_iter --save_latest_freq 3", workdir, fault="signal_at:TERM:3")
    assert proc.returncode == 143, proc.stderr
    names = set(os.listdir(workdir / "ck" / name))
    assert {"iter_3_net_G.pth", "latest_net_G.pth", "latest_state.pth"} <= names


def test_resume_takes_schedule_settings_from_the_options_but_refuses_another_policy(workdir):
    name = "steps"
    args = f"{CUT_RUN} --lr_policy step --lr_decay_iters 1"
    run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {args}",
              workdir, fault="signal_at_epoch_end:TERM:1")
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} --continue_train"
    other = run_train(f"{common} {CUT_RUN}", workdir)  # --lr_policy linear
    assert other.returncode == 2 and "--lr_policy linear differs from the saved run's step" in other.stderr
    # with --lr_decay_iters 5 the rate of epoch 2 stays 0.1x (one decay done), the 2nd decay is gone
    checked(run_train(f"{common} {CUT_RUN} --lr_policy step --lr_decay_iters 5 --n_epochs_decay 2", workdir))
    lrs = [r["lr"] for r in map(json.loads, (workdir / "ck" / name / "loss_log.jsonl").read_text().splitlines())]
    assert lrs[:4] == [pytest.approx(2e-4)] * 4 and lrs[4:] == [pytest.approx(2e-5)] * 8


# ---------------------------------------------------------------------------- NaN guard
def poison_nce(monkeypatch, at_call):
    """Make the NCE loss NaN in the `at_call`-th G loss (call 1 is the initialisation pass)."""
    real, calls = CUTModel.compute_G_loss, [0]

    def compute_G_loss(self):
        loss = real(self)
        calls[0] += 1
        if calls[0] == at_call:
            self.loss_NCE = self.loss_NCE * float("nan")
            self.loss_G = loss + self.loss_NCE
        return self.loss_G
    monkeypatch.setattr(CUTModel, "compute_G_loss", compute_G_loss)


def train_in_process(tmp_path, name, extra):
    root = make_unaligned(tmp_path / "data", splits=("train",))
    argv = (f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name {name} {SMALL} --num_threads 0 "
            f"--n_epochs 1 --n_epochs_decay 1 --seed 1 {extra}").split()
    return train.main(argv)


def test_nan_loss_stops_the_run_without_overwriting_the_last_checkpoint(tmp_path, monkeypatch):
    poison_nce(monkeypatch, at_call=4)  # training iteration 3
    with pytest.raises(NonFiniteLossError) as err:
        train_in_process(tmp_path, "nan", "--save_latest_freq 2")
    message = str(err.value)
    assert "iteration 3" in message and "loss NCE is nan" in message and "latest_state.pth" in message
    assert err.value.exit_code == 3
    folder = tmp_path / "ck" / "nan"
    state = state_of(folder)
    assert state["progress"]["total_iters"] == 2
    saved_g = torch.load(folder / "latest_net_G.pth", weights_only=True)
    assert all(torch.equal(saved_g[k], state["networks"]["G"][k]) for k in saved_g)
    assert all(torch.isfinite(v).all() for v in saved_g.values())


def test_nan_guard_skip_leaves_the_update_out_and_goes_on(tmp_path, monkeypatch, capsys):
    poison_nce(monkeypatch, at_call=4)
    assert train_in_process(tmp_path, "skip", "--nan_guard skip") == 0
    out = capsys.readouterr().out
    assert "non-finite loss NCE = nan: update skipped" in out
    assert "1 updates were skipped" in out
    g = torch.load(tmp_path / "ck" / "skip" / "latest_net_G.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in g.values())


def test_nonfinite_weights_are_never_saved(tmp_path, monkeypatch):
    real = CUTModel.optimize_parameters

    def break_g(self):
        losses = real(self)
        with torch.no_grad():
            next(self.netG.parameters()).fill_(float("inf"))  # a finite loss, broken weights
        return losses
    monkeypatch.setattr(CUTModel, "optimize_parameters", break_g)
    with pytest.raises(NonFiniteLossError, match="netG holds NaN or infinite weights"):
        train_in_process(tmp_path, "inf", "--save_latest_freq 2 --nan_guard off")
    assert existing_checkpoints(tmp_path / "ck" / "inf") == []


# ---------------------------------------------------------------------------- bookkeeping
def test_a_new_run_never_overwrites_an_existing_one(workdir):
    ref = reference(workdir, "ref_cut", CUT_RUN)
    before = {f: (ref / f).read_bytes() for f in ("train_opt.txt", "train_opt.json", "latest_net_G.pth")}
    proc = run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name ref_cut {CUT_RUN}",
                     workdir)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "already holds checkpoints" in proc.stderr and "--continue_train" in proc.stderr
    # rejected later, when the model is built (a run folder without checkpoints yet)
    shutil.copy(ref / "train_opt.txt", workdir / "opt_copy.txt")
    fresh = workdir / "ck" / "fresh"
    fresh.mkdir()
    (fresh / "train_opt.txt").write_text("an earlier run's options\n")
    proc = run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name fresh {SMALL} "
                     "--nce_layers 0,99", workdir)
    assert proc.returncode == 2 and "--nce_layers index 99" in proc.stderr
    assert (fresh / "train_opt.txt").read_text() == "an earlier run's options\n"
    assert not (fresh / "train_opt.json").exists()
    assert {f: (ref / f).read_bytes() for f in before} == before


def test_continue_train_edge_cases(workdir):
    ref = reference(workdir, "ref_cut", CUT_RUN)
    common = f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck {CUT_RUN} --continue_train"
    # a finished run: nothing to do, say so
    done = checked(run_train(f"{common} --name ref_cut", workdir))
    assert "already finished its 2 epochs" in done.stdout
    # an explicit --epoch_count that contradicts the state
    bad = run_train(f"{common} --name ref_cut --epoch_count 2 --n_epochs 3", workdir)
    assert bad.returncode == 2 and "--epoch_count 2 disagrees" in bad.stderr
    # without latest_state.pth: the original's behaviour (weights only, --epoch_count by hand)
    legacy = workdir / "ck" / "legacy"
    shutil.copytree(ref, legacy)
    os.remove(legacy / "latest_state.pth")
    proc = checked(run_train(f"{common} --name legacy --epoch_count 2", workdir))
    assert "no latest_state.pth" in proc.stdout
    assert f"loading the model from {legacy}/latest_net_G.pth" in proc.stdout
    records = [json.loads(line) for line in (legacy / "loss_log.jsonl").read_text().splitlines()]
    assert len(records) == 12  # 8 of the copied run, then epoch 2 again, counted from 0 as the original
    assert [(r["epoch"], r["total_iters"]) for r in records[8:]] == [(2, 1), (2, 2), (2, 3), (2, 4)]


def test_resume_reports_changed_options(workdir):
    name = "changed"
    run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} {CUT_RUN}",
              workdir, fault="kill_after_save:1")
    proc = checked(run_train(f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} "
                             f"{CUT_RUN} --continue_train --lambda_GAN 2 --print_freq 3", workdir))
    notices = [line for line in proc.stdout.splitlines() if line.startswith("notice: changed")]
    assert notices == ["notice: changed since the saved run: --lambda_GAN 1.0 -> 2.0"]


def test_keep_last_prunes_old_epoch_checkpoints(tmp_path):
    for name in ("1_net_G.pth", "1_net_D.pth", "2_net_G.pth", "10_net_G.pth", "iter_4_net_G.pth",
                 "iter_8_net_G.pth", "latest_net_G.pth", "best_net_G.pth", "untrained_net_G.pth"):
        (tmp_path / name).write_bytes(b"")
    removed = prune_checkpoints(tmp_path, keep_last=1)
    assert sorted(os.path.basename(p) for p in removed) == ["1_net_D.pth", "1_net_G.pth", "2_net_G.pth",
                                                            "iter_4_net_G.pth"]
    assert sorted(os.listdir(tmp_path)) == ["10_net_G.pth", "best_net_G.pth", "iter_8_net_G.pth",
                                            "latest_net_G.pth", "untrained_net_G.pth"]
    assert prune_checkpoints(tmp_path, keep_last=0) == []


def test_keep_last_in_a_run(tmp_path):
    root = make_unaligned(tmp_path / "data", splits=("train",))
    checked(run_train(f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name k {SMALL} --num_threads 0 "
                      "--n_epochs 4 --n_epochs_decay 0 --save_epoch_freq 1 --keep_last 2", tmp_path))
    names = sorted(f for f in os.listdir(tmp_path / "ck" / "k") if f.endswith(".pth"))
    assert names == [f"{e}_net_{n}.pth" for e in (3, 4) for n in "DFG"] + \
        [f"latest_net_{n}.pth" for n in "DFG"] + ["latest_state.pth"]
