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


def configure_backends(gpu_ids, preprocess, tf32=False):
    """cudnn.benchmark as the original (off for scale_width, whose sizes vary).  --tf32 allows
    TF32 for matrix multiplies too (the MLP heads, PatchNCE); PyTorch's default, which the
    original ran with, already allows it for cuDNN convolutions on Ampere and newer GPUs."""
    if gpu_ids:
        torch.backends.cudnn.benchmark = preprocess != "scale_width"
        if tf32:
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cuda.matmul.allow_tf32 = True


def prepare_runtime(opt, seed_offset=0):
    """What every entry script does before building data and models: seed, then backends.
    Under torchrun each rank seeds with --seed + its rank (`seed_offset`), so that ranks draw
    different augmentations and patches."""
    if opt.seed is not None:
        seed_everything(opt.seed + seed_offset)
    configure_backends(opt.gpu_ids, opt.preprocess, getattr(opt, "tf32", False))


# ---------------------------------------------------------------------------- RNG state
# Every random stream a training step can touch: Python's `random` (the B-image pick), numpy's
# global RNG (patch locations, flips for flip-equivariance, zoom), torch on the CPU (init, crops,
# flips, the data order without --seed) and on each GPU, and the loader's own generator (data
# order and worker seeds with --seed).  Saved in the resumable checkpoint so that a resumed run
# draws exactly the numbers an uninterrupted one would.

def get_rng_state(loader_generator=None):
    """A dict of tensors and plain values that `torch.load(weights_only=True)` can read back."""
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached_gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "loader": loader_generator.get_state() if loader_generator is not None else None,
    }
    return state


def set_rng_state(state, loader_generator=None):
    """Restore what `get_rng_state` captured.  Returns a list of streams that could not be restored
    (a GPU count or a --seed setting that differs from the saved run), for the caller to report."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    torch.set_rng_state(state["torch"])
    problems = []
    if state["cuda"]:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            problems.append(f"CUDA RNG of {len(state['cuda'])} GPU(s)")
    if state["loader"] is not None:
        if loader_generator is not None:
            loader_generator.set_state(state["loader"])
        else:
            problems.append("the data loader's generator (the saved run used --seed)")
    elif loader_generator is not None:
        problems.append("the data loader's generator (the saved run had no --seed)")
    return problems
