"""Device choice and random seeding, kept in one place and logged at start-up."""
import os
import random

import numpy as np
import torch

from .errors import UserError


def parse_gpu_ids(text):
    """'0,1' -> [0, 1]; negative ids are dropped, so '-1' means CPU (as the original)."""
    try:
        ids = [int(part) for part in str(text).split(",") if part.strip() != ""]
    except ValueError:
        raise UserError(f"--gpu_ids '{text}' is not a comma-separated list of integers "
                        "(e.g. 0 or 0,1; -1 for CPU)") from None
    return [i for i in ids if i >= 0]


def resolve_gpu_ids(requested):
    """Keep the requested GPUs if CUDA has them; otherwise fall back to CPU with one notice."""
    if not requested:
        return []
    if not torch.cuda.is_available():
        print(f"notice: CUDA is not available, running on CPU (requested --gpu_ids "
              f"{','.join(map(str, requested))}; pass --gpu_ids -1 to silence this)")
        return []
    count = torch.cuda.device_count()
    bad = [i for i in requested if i >= count]
    if bad:
        raise UserError(f"--gpu_ids asks for GPU {bad[0]} but only {count} GPU(s) are visible "
                        f"(valid ids: 0..{count - 1}, or -1 for CPU)")
    torch.cuda.set_device(requested[0])
    return requested


def seed_everything(seed):
    """Seed Python, numpy (patch locations) and torch (init, crops, flips) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def configure_backends(gpu_ids, preprocess):
    """cudnn.benchmark as the original (off for scale_width, whose sizes vary)."""
    if gpu_ids:
        torch.backends.cudnn.benchmark = preprocess != "scale_width"


def prepare_runtime(opt):
    """What every entry script does before building data and models: seed, then backends."""
    if opt.seed is not None:
        seed_everything(opt.seed)
    configure_backends(opt.gpu_ids, opt.preprocess)
