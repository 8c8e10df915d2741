"""Learning-rate policies, stepped once per epoch (spec 5.10)."""
from torch.optim import lr_scheduler

LR_POLICIES = ("linear", "step", "plateau", "cosine")


def linear_lr_factor(epoch, n_epochs, n_epochs_decay):
    """LR multiplier used during training epoch `epoch` (1-based) under the linear policy.

    Constant for the first n_epochs epochs, then linear decay.  As in the original the last
    epoch still trains at 1/(n_epochs_decay + 1) of the base rate (it never reaches 0).
    """
    return 1.0 - max(0, epoch - n_epochs) / float(n_epochs_decay + 1)


def get_scheduler(optimizer, opt):
    """Build the scheduler for --lr_policy; `opt` supplies epoch_count, n_epochs, ... ."""
    if opt.lr_policy == "linear":
        # LambdaLR passes the number of completed scheduler steps e (0 at the start), and the
        # loop's epoch number is epoch_count + e.
        def factor(e):
            return linear_lr_factor(e + opt.epoch_count, opt.n_epochs, opt.n_epochs_decay)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
    if opt.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if opt.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2,
                                              threshold=0.01, patience=5)
    if opt.lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.n_epochs, eta_min=0)
    raise ValueError(f"unknown --lr_policy '{opt.lr_policy}'; choose from: {', '.join(LR_POLICIES)}")
