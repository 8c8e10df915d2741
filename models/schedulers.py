"""Learning-rate policies: stepped once per epoch, except the per-iteration ones.

    linear, linear_gcgan, linear_2017, step, plateau, cosine
                                    stepped at the end of every epoch (BaseModel.update_learning_rate)
    step_iter                       stepped at the end of every iteration (training step), for
                                    schedules counted in iterations, as MUNIT's
"""
from torch.optim import lr_scheduler

LR_POLICIES = ("linear", "linear_gcgan", "linear_2017", "step", "plateau", "cosine", "step_iter")
PER_ITERATION_POLICIES = ("step_iter",)


def linear_lr_factor(epoch, n_epochs, n_epochs_decay, rule="linear"):
    """LR multiplier used during training epoch `epoch` (1-based) under a linear policy.

    Constant for the first n_epochs epochs, then linear decay; the three codes differ by one
    epoch at either end:
      linear        1 - max(0, e - n) / (d + 1): CUT and today's CycleGAN code.  The last epoch
                    still trains at 1/(d + 1) of the base rate (it never reaches 0).
      linear_gcgan  1 - max(0, e + 1 - n) / (d + 1): GcGAN's code (its lambda rule adds 1 to
                    the scheduler's epoch).  Epoch n already decays, the last epoch runs at 0.
      linear_2017   1 - max(0, e - n - 1) / d: the 2017 CycleGAN code in DistanceGAN, which
                    subtracts lr/d after each epoch beyond n.  Epoch n + 1 still runs at the
                    full rate, the last at 1/d.
    (e = epoch, n = n_epochs, d = n_epochs_decay.)  GcGAN's factor would turn negative after the
    last epoch (what the scheduler shows once the run is over); it stops at 0.
    """
    if rule == "linear_gcgan":
        return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1))
    if rule == "linear_2017":
        return 1.0 - max(0, epoch - n_epochs - 1) / float(n_epochs_decay) if n_epochs_decay else 1.0
    return 1.0 - max(0, epoch - n_epochs) / float(n_epochs_decay + 1)


def step_iter_lr_factor(iterations_done, step_size, gamma):
    """LR multiplier of the iteration that follows `iterations_done` completed ones, under
    --lr_policy step_iter: gamma ** (k // step_size) for the k-th iteration (1-based).

    This is MUNIT's schedule: the authors' StepLR(step_size, gamma) is stepped at the START of
    every iteration, so their k-th iteration already runs at gamma ** (k // step_size) (the
    first halving at iteration 100,000, not 100,001).  Stepping at the end of each iteration
    with this factor gives the same rates without stepping a scheduler before its optimizer.
    """
    return gamma ** ((iterations_done + 1) // step_size)


def get_scheduler(optimizer, opt):
    """Build the scheduler for --lr_policy; `opt` supplies epoch_count, n_epochs, ... ."""
    if opt.lr_policy.startswith("linear"):
        # LambdaLR passes the number of completed scheduler steps e (0 at the start), and the
        # loop's epoch number is epoch_count + e.
        def factor(e):
            return linear_lr_factor(e + opt.epoch_count, opt.n_epochs, opt.n_epochs_decay,
                                    opt.lr_policy)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
    if opt.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters,
                                   gamma=getattr(opt, "lr_gamma", 0.1))
    if opt.lr_policy == "step_iter":
        # LambdaLR passes the number of completed scheduler steps = completed iterations.
        step_size, gamma = opt.lr_decay_iters, getattr(opt, "lr_gamma", 0.1)

        def factor(done):
            return step_iter_lr_factor(done, step_size, gamma)
        scheduler = lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
        scheduler.per_iteration = True  # BaseModel steps it after every iteration, not epoch
        return scheduler
    if opt.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2,
                                              threshold=0.01, patience=5)
    if opt.lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.n_epochs, eta_min=0)
    raise ValueError(f"unknown --lr_policy '{opt.lr_policy}'; choose from: {', '.join(LR_POLICIES)}")
