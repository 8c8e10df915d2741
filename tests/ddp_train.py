"""train.py under torchrun, with what the distributed tests need to look inside (a test helper).

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_train.py [train.py options...]

Every rank writes into $DDP_TEST_OUT:
    rank<R>_initial.pth   {net name: state_dict} as the model built it, before any broadcast
    rank<R>_final.pth     {net name: state_dict} of the networks this rank holds at the end
    rank<R>_rc            the exit status of this process (train.py's)

and, deterministically (counted in training iterations of this process), these faults:
    DDP_TEST_SIGTERM=R:N  rank R sends itself SIGTERM during its N-th iteration
    DDP_TEST_NAN=R:N      on rank R, the N-th iteration's generator loss is NaN (the D step is fine;
                          DRIT: its encoder/generator loss, compute_EG_loss)
"""
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import train  # noqa: E402
from util.errors import run_cli  # noqa: E402

RANK = int(os.environ["RANK"])
OUT = os.environ["DDP_TEST_OUT"]


def fault(name):
    """(N, enabled on this rank) for DDP_TEST_<name>=R:N; N is None when unset."""
    text = os.environ.get(f"DDP_TEST_{name}")
    if not text:
        return None
    rank, nth = map(int, text.split(":"))
    return nth if rank == RANK else None


def dump(model, label):
    nets = {name: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            for name, net in model.networks()}
    torch.save(nets, os.path.join(OUT, f"rank{RANK}_{label}.pth"))


def instrument(model):
    sigterm_at, nan_at = fault("SIGTERM"), fault("NAN")
    g_loss_fn = "compute_G_loss" if hasattr(model, "compute_G_loss") else "compute_EG_loss"
    step, compute_G_loss = model.optimize_parameters, getattr(model, g_loss_fn)
    iteration = [0]

    def optimize_parameters():
        iteration[0] += 1
        if iteration[0] == sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return step()

    def poisoned_G_loss():
        loss = compute_G_loss()
        if iteration[0] == nan_at:
            model.loss_G = loss = loss * float("nan")
        return loss

    model.optimize_parameters = optimize_parameters
    setattr(model, g_loss_fn, poisoned_G_loss)


def main():
    torch.set_num_threads(1)
    models = []
    create_model = train.create_model

    def create_and_record(opt):
        model = create_model(opt)
        dump(model, "initial")
        instrument(model)
        models.append(model)
        return model

    train.create_model = create_and_record
    try:
        return train.main(sys.argv[1:])
    finally:
        if models:
            dump(models[0], "final")


if __name__ == "__main__":
    status = 0
    try:
        run_cli(main)
    except SystemExit as exit:
        status = exit.code
        raise
    finally:
        with open(os.path.join(OUT, f"rank{RANK}_rc"), "w") as f:
            f.write(str(status))
