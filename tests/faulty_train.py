"""Run train.py with one injected fault, for the resume tests (a test helper, not a test file).

    python tests/faulty_train.py FAULT [train.py options...]

FAULT is one of
    kill_after_save:N        SIGKILL this process right after the N-th resumable state is written
    signal_at:SIG:N          send SIG (TERM, INT) to this process during training iteration N
    group_signal_at:SIG:N    send SIG to the whole process group, DataLoader workers included,
                             as Ctrl-C in a terminal or a cluster's pre-emption does
    enospc_on_save:N         the N-th resumable-state write fails half-way: "No space left on device"

The faults are deterministic (counted in iterations and saves, not seconds), so a test knows
exactly where the run was interrupted.
"""
import errno
import io
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import train  # noqa: E402
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
        train.save_training_state = after_nth_call(int(args[0]), save_then_die,
                                                   train.save_training_state)
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
    elif kind == "enospc_on_save":
        real_save = torch.save
        state_saves = [0]

        def failing_save(obj, f, *a, **k):
            if isinstance(obj, dict) and "progress" in obj:
                state_saves[0] += 1
                if state_saves[0] == int(args[0]):
                    buffer = io.BytesIO()
                    real_save(obj, buffer, *a, **k)
                    f.write(buffer.getvalue()[:buffer.tell() // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_save(obj, f, *a, **k)
        torch.save = failing_save
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    inject(sys.argv[1])
    run_cli(lambda: train.main(sys.argv[2:]))
