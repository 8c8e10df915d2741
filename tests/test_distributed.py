"""Distributed training under torchrun: 2 CPU processes (gloo) on tiny networks and images.

The proof that DistributedDataParallel really all-reduces every gradient (netG's several forward
passes per step, netF's lazily built heads, netD used in both steps with requires_grad toggled)
is that both ranks end with identical weights although they trained on different images with
different random draws, and started from different random weights (--seed + rank) before rank
0's were broadcast.  tests/ddp_train.py runs train.py under torchrun and dumps what each rank
holds; it also injects a SIGTERM or a NaN loss on one rank only, deterministically.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, make_unaligned, write_images
from models.translator import load_translator

TINY = ("--gpu_ids -1 --display_id 0 --num_threads 0 --print_freq 1 --display_freq 1000 "
        "--load_size 16 --crop_size 16 --ngf 4 --ndf 4 --netD n_layers --n_layers_D 2")
# 4 images, batch 1, 2 ranks: 2 iterations per rank per epoch; 3 epochs, the last one decaying.
CUT_RUN = (f"{TINY} --netG resnet_6blocks --netF_nc 8 --num_patches 8 --seed 5 "
           "--n_epochs 2 --n_epochs_decay 1 --save_latest_freq 1000 --nan_guard skip")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, out, **faults):
    """tests/ddp_train.py on 2 processes; returns the CompletedProcess."""
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", DDP_TEST_OUT=str(out),
               **{f"DDP_TEST_{k.upper()}": v for k, v in faults.items()})
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               os.path.join(ROOT, "tests", "ddp_train.py")] + args.split()
    return subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=120)


def checked(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def nets(out, label, rank):
    return torch.load(out / f"rank{rank}_{label}.pth", weights_only=True)


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_ranks_agree(out):
    """Both ranks hold the same weights at the end; returns rank 0's {net: state_dict}."""
    final = [nets(out, "final", rank) for rank in (0, 1)]
    assert final[0].keys() == final[1].keys()
    for name in final[0]:
        assert same(final[0][name], final[1][name]), f"net{name} differs between the ranks"
    initial = [nets(out, "initial", rank) for rank in (0, 1)]
    for name in initial[0]:
        if initial[0][name]:  # netF has no weights before its data-dependent initialisation
            # the ranks built different weights (seed + rank); only the broadcast made them equal
            assert not same(initial[0][name], initial[1][name]), name
            assert not same(initial[0][name], final[0][name]), f"net{name} did not train"
    return final[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_unaligned(root / "data", splits=("train",), n_a=4, n_b=4, size=20)
    return root


def train_cut(workdir, name, extra="", **faults):
    args = (f"--dataroot {workdir}/data --checkpoints_dir {workdir}/ck --name {name} "
            f"{CUT_RUN} {extra}")
    return torchrun(args, workdir / "out" / name, **faults)


@pytest.fixture(scope="module")
def uninterrupted(workdir):
    """CUT on 2 ranks for 3 epochs; in iteration 2 rank 1 alone sees a NaN generator loss."""
    proc = checked(train_cut(workdir, "straight", nan="1:2"))
    return workdir / "ck" / "straight", workdir / "out" / "straight", proc


def test_ranks_hold_identical_trained_weights_saved_as_single_process(uninterrupted):
    folder, out, proc = uninterrupted
    final = assert_ranks_agree(out)
    for name, weights in final.items():
        saved = torch.load(folder / f"latest_net_{name}.pth", weights_only=True)
        assert not any(key.startswith("module.") for key in saved)
        assert same(saved, weights), f"latest_net_{name}.pth is not what the ranks hold"
    translate = load_translator(str(folder / "latest_net_G.pth"), device="cpu")  # as test.py
    assert translate.input_nc == 3
    # rank 0 alone writes the logs, and prints the mean of the ranks' losses
    log = (folder / "loss_log.txt").read_text()
    assert log.count("Training Loss") == 1 and log.count("(epoch: 3, iters: 4,") == 1
    assert proc.stdout.count("saving the final model (epoch 3, iters 12)") == 1
    state = torch.load(folder / "latest_state.pth", weights_only=True)
    assert state["distributed"]["world_size"] == 2
    torch_rngs = [rank["rng"]["torch"] for rank in state["distributed"]["ranks"]]
    assert not torch.equal(*torch_rngs)  # each rank's own random streams were saved


def test_a_nan_on_one_rank_skips_the_update_on_all(uninterrupted):
    _, out, proc = uninterrupted
    assert "warning: non-finite loss of rank 1 = nan: update skipped" in proc.stdout
    assert "warning: 1 updates were skipped by --nan_guard skip" in proc.stdout
    assert_ranks_agree(out)  # rank 0 did not step alone (nor hang waiting for rank 1)


def test_sigterm_on_one_rank_stops_both_and_the_resumed_run_is_exact(workdir, uninterrupted):
    _, reference_out, _ = uninterrupted
    # iteration 3 of each rank is the first of epoch 2; SIGTERM reaches rank 1 only
    stopped = train_cut(workdir, "resumed", nan="1:2", sigterm="1:3")
    assert stopped.returncode != 0  # torchrun reports workers that exit 143 as failed
    out = workdir / "out" / "resumed"
    assert [(out / f"rank{rank}_rc").read_text() for rank in (0, 1)] == ["143", "143"]
    state = torch.load(workdir / "ck" / "resumed" / "latest_state.pth", weights_only=True)
    assert (state["progress"]["epoch"], state["progress"]["batches"]) == (2, 1)

    resumed = checked(train_cut(workdir, "resumed", "--continue_train"))
    assert "resuming epoch 2: replaying its data order past the 1 batches" in resumed.stdout
    final = assert_ranks_agree(out)
    reference = nets(reference_out, "final", 0)
    for name in reference:
        assert same(final[name], reference[name]), f"net{name} differs from the uninterrupted run"


@pytest.mark.parametrize("model", ["cycle_gan", "sincut"])
def test_other_models_train_in_step(workdir, model):
    """SinCUT for 1 epoch; CycleGAN until rank 1 alone sees a NaN loss in epoch 2, which stops
    both ranks (--nan_guard stop) before that G step, CycleGAN's first: both then hold the
    weights of the end of epoch 1, which is what the epoch-1 save wrote."""
    faults = {}
    if model == "sincut":
        write_images(workdir / "single" / "trainA", 1, 32, seed=1)
        write_images(workdir / "single" / "trainB", 1, 32, seed=2)
        args = (f"--model sincut --dataroot {workdir}/single --gpu_ids -1 --display_id 0 "
                "--print_freq 1 --load_size 16 --crop_size 16 --ngf 4 --ndf 4 --netF_nc 8 "
                "--num_patches 8 --n_epochs 1 --n_epochs_decay 0 --batch_size 2 --max_dataset_size 8 --seed 2")
    else:
        args = (f"--model cycle_gan --dataroot {workdir}/data {TINY} --n_epochs 2 "
                "--n_epochs_decay 0 --seed 2 --nan_guard stop --save_epoch_freq 1")
        faults = {"nan": "1:3"}
    out = workdir / "out" / model
    proc = torchrun(f"{args} --checkpoints_dir {workdir}/ck --name {model}", out, **faults)
    if faults:
        assert proc.returncode != 0
        assert [(out / f"rank{rank}_rc").read_text() for rank in (0, 1)] == ["3", "3"]
        assert ("error: non-finite loss at epoch 2, iteration 1 (total_iters 6): loss of rank 1 "
                "is nan; the run stopped without saving") in proc.stderr
    else:
        checked(proc)
    final = assert_ranks_agree(out)
    for name, weights in final.items():
        saved = torch.load(workdir / "ck" / model / f"latest_net_{name}.pth", weights_only=True)
        assert same(saved, weights)
