"""Run train.py with one injected fault, for the resume tests (a test helper, not a test file).

    python tests/faulty_train.py FAULT [train.py options...]

FAULT is one of
    kill_after_save:N         SIGKILL this process right after the N-th resumable state is written
    kill_at_write:N:WHEN      SIGKILL this process at the N-th checkpoint file (*.pth) it writes:
                              WHEN is `before` (the file complete under its temporary name, not
                              yet renamed: inside the save) or `after` (just renamed)
    signal_at:SIG:N           send SIG (TERM, INT) to this process during training iteration N
    group_signal_at:SIG:N     send SIG to the whole process group, DataLoader workers included,
                              as Ctrl-C in a terminal or a cluster's pre-emption does
    signal_at_epoch_end:SIG:N send SIG to this process in the end-of-epoch work of epoch N
    group_signal_in_worker:SIG:N
                              in epoch 1, DataLoader worker 0 sends SIG to the process group while
                              it prepares its N-th item, once the main process is waiting for it
                              (needs --num_threads 2 and --print_freq 1)
    fsize_after_save:N        after the N-th save (resumable state and network files) is complete,
                              files may grow to 64 KiB at most (RLIMIT_FSIZE): the next
                              checkpoint write fails for real with "File too large"

The faults are deterministic (counted in iterations and saves, not seconds), so a test knows
exactly where the run was interrupted.
"""
import os
import resource
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import train  # noqa: E402
import util.checkpointer  # noqa: E402
from data.unaligned_dataset import UnalignedDataset  # noqa: E402
from models.cut_model import CUTModel  # noqa: E402
from util.errors import run_cli  # noqa: E402


def after_nth_call(n, action, wrapped):
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            return action(wrapped, *args, **kwargs)
        return wrapped(*args, **kwargs)
    return wrapper


def inject(fault):
    kind, *args = fault.split(":")
    if kind == "kill_after_save":
        def save_then_die(save, *a, **k):
            save(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        util.checkpointer.save_training_state = after_nth_call(
            int(args[0]), save_then_die, util.checkpointer.save_training_state)
    elif kind == "kill_at_write":
        nth, when, real_replace, writes = int(args[0]), args[1], os.replace, [0]

        def dying_replace(src, dst, *a, **k):
            if str(dst).endswith(".pth"):
                writes[0] += 1
                if writes[0] == nth and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst, *a, **k)
            if str(dst).endswith(".pth") and writes[0] == nth and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = dying_replace
    elif kind == "signal_at_epoch_end":
        signum = getattr(signal, "SIG" + args[0])

        def signal_then_update(update, *a, **k):
            os.kill(os.getpid(), signum)
            return update(*a, **k)
        CUTModel.update_learning_rate = after_nth_call(int(args[1]), signal_then_update,
                                                       CUTModel.update_learning_rate)
    elif kind in ("signal_at", "group_signal_at"):
        signum = getattr(signal, "SIG" + args[0])

        def signal_then_step(step, *a, **k):
            if kind == "signal_at":
                os.kill(os.getpid(), signum)
            else:
                os.killpg(os.getpgid(0), signum)
            return step(*a, **k)
        CUTModel.optimize_parameters = after_nth_call(int(args[1]), signal_then_step,
                                                      CUTModel.optimize_parameters)
    elif kind == "group_signal_in_worker":
        signum, nth = getattr(signal, "SIG" + args[0]), int(args[1])
        real_getitem, calls = UnalignedDataset.__getitem__, [0]

        def signalling_getitem(self, index):
            worker = torch.utils.data.get_worker_info()
            if worker is not None and worker.id == 0:
                calls[0] += 1
                if calls[0] == nth:
                    # Worker 0 prepares batches 0, 2, 4, ... (two workers take turns), so its
                    # N-th item is batch 2(N-1): once the main process has logged the 2(N-1)
                    # iterations before it (--print_freq 1), it can only be waiting for this one.
                    log = os.path.join(self.opt.checkpoints_dir, self.opt.name, "loss_log.jsonl")
                    while not os.path.exists(log) or len(open(log).readlines()) < 2 * (nth - 1):
                        time.sleep(0.02)
                    os.killpg(os.getpgid(0), signum)
                    time.sleep(0.5)  # a worker that did not ignore the signal dies here
            return real_getitem(self, index)
        UnalignedDataset.__getitem__ = signalling_getitem
    elif kind == "fsize_after_save":
        def save_then_limit(save, *a, **k):
            save(*a, **k)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG instead of dying
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        util.checkpointer.Checkpointer.save = after_nth_call(
            int(args[0]), save_then_limit, util.checkpointer.Checkpointer.save)
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    inject(sys.argv[1])
    run_cli(lambda: train.main(sys.argv[2:]))
