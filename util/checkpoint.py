"""Checkpoint files: atomic writes, and loading that tolerates a DataParallel `module.` prefix."""
import os
import tempfile

import torch

from .errors import UserError


def atomic_torch_save(obj, path):
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A crash or a full disk during the write leaves the previous file intact.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


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
