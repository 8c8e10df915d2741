"""Checkpoint files: atomic writes, and loading that tolerates a DataParallel `module.` prefix."""
import io
import os
import re

import torch

from .errors import UserError
from .util import atomic_write


def atomic_torch_save(obj, path):
    """torch.save `obj` to `path` through a temporary file: written, flushed, fsynced, renamed.

    A crash during the write leaves the previous file intact.  The object is serialised in
    memory first, so that a failing disk (full, no permission, file size limit) reports an
    OSError from the write itself (torch's own file writer turns it into an opaque RuntimeError);
    that becomes a one-line UserError naming the file, and the previous file stays as it was.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_write(path, "wb", fsync=True) as f:
            f.write(buffer.getbuffer())
    except OSError as err:
        reason = err.strerror or str(err)
        kept = "the previous file is intact" if os.path.exists(path) else "no earlier file existed"
        raise UserError(f"cannot write checkpoint {path}: {reason} ({kept}); free disk space or "
                        f"fix the permissions of {folder}") from None


def strip_module_prefix(state_dict):
    """Drop the `module.` prefix that DataParallel-wrapped saves carry (original CPU runs)."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return state_dict


def load_state_dict_file(path, map_location="cpu"):
    """Read a state_dict written by this code or by the original CUT code."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path} (check --name, --checkpoints_dir and --epoch)")
    try:
        state_dict = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state_dict, dict):
        raise UserError(f"checkpoint {path} does not hold a state_dict")
    state_dict = dict(state_dict)
    state_dict.pop("_metadata", None)
    return strip_module_prefix(state_dict)


def load_into(net, path, map_location="cpu"):
    """Strictly load the state_dict in `path` into `net`; a mismatch becomes a one-line error."""
    state_dict = load_state_dict_file(path, map_location)
    missing, unexpected = [], []
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape_errors = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or shape_errors:
        details = []
        if missing:
            details.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shape_errors:
            k = shape_errors[0]
            details.append(f"shape mismatch for {k}: file {tuple(state_dict[k].shape)} vs "
                           f"network {tuple(own[k].shape)}")
        raise UserError(f"checkpoint {path} does not fit the network built from the options: "
                        f"{'; '.join(details)} (check --netG/--ngf/--normG/--no_antialias...)")
    net.load_state_dict(state_dict, strict=True)


STATE_FILE = "latest_state.pth"  # the resumable checkpoint (util/training_state.py)

# `<epoch>_net_<Name>.pth` and `iter_<samples>_net_<Name>.pth`; `latest`, `best`, ... never match.
NUMBERED_CHECKPOINT = re.compile(r"^(iter_)?(\d+)_net_.+\.pth$")


def prune_checkpoints(folder, keep_last):
    """Delete all but the `keep_last` newest numbered checkpoints in `folder`; returns the removed
    paths.  Epoch files and iteration files (--save_by_iter) are counted separately, and every
    network of a kept epoch is kept.  keep_last <= 0 keeps everything (the original's behaviour).
    """
    if keep_last <= 0 or not os.path.isdir(folder):
        return []
    groups = {}  # (is_iter, number) -> file names
    for fname in os.listdir(folder):
        match = NUMBERED_CHECKPOINT.match(fname)
        if match:
            groups.setdefault((bool(match.group(1)), int(match.group(2))), []).append(fname)
    removed = []
    for is_iter in (False, True):
        numbers = sorted(number for kind, number in groups if kind == is_iter)
        for number in numbers[:-keep_last]:
            for fname in groups[(is_iter, number)]:
                path = os.path.join(folder, fname)
                os.remove(path)
                removed.append(path)
    return removed


def existing_checkpoints(folder):
    """Sorted names of the training checkpoints in `folder` (latest and numbered network files,
    the resumable state); files such as untrained_net_G.pth or best_net_G.pth do not count."""
    if not os.path.isdir(folder):
        return []
    return sorted(fname for fname in os.listdir(folder)
                  if fname == STATE_FILE or NUMBERED_CHECKPOINT.match(fname)
                  or (fname.startswith("latest_net_") and fname.endswith(".pth")))
