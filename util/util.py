"""Small helpers shared by the visualizer, test.py and the options: image conversion and saving,
string booleans for argparse, folder creation."""
import argparse
import contextlib
import os
import uuid

import numpy as np
import torch
from PIL import Image


def tensor2im(input_image, imtype=np.uint8):
    """Turn a generator output (B, C, H, W) in [-1, 1] into an (H, W, 3) image array.

    Only batch item 0 is converted (as in the original: the web page shows one sample per
    visual).  A numpy array is only cast to `imtype`; anything else is returned unchanged.
    The cast truncates, so 0 maps to 127 and not 128, exactly like the original.
    """
    if isinstance(input_image, np.ndarray):
        return input_image.astype(imtype)
    if not isinstance(input_image, torch.Tensor):
        return input_image
    image = input_image.detach()[0].clamp(-1.0, 1.0).cpu().float().numpy()  # (C, H, W)
    if image.shape[0] == 1:
        image = np.tile(image, (3, 1, 1))
    image = (np.transpose(image, (1, 2, 0)) + 1.0) / 2.0 * 255.0  # (H, W, C)
    return image.astype(imtype)


def save_image(image_numpy, image_path):
    """Save an (H, W, C) or (H, W) array with PIL, atomically.

    The image goes to a hidden temporary file in the target folder and is renamed into place,
    so a crash never leaves a truncated PNG that a later run or a metric would read.
    """
    ext = os.path.splitext(image_path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"save_image: unknown image extension in {image_path!r}")
    with atomic_write(image_path, "wb") as f:
        # The temp name has no image extension, so the format is given explicitly.
        Image.fromarray(image_numpy).save(f, format=fmt)


@contextlib.contextmanager
def atomic_write(path, mode="w", fsync=False, **open_kwargs):
    """Open a hidden temporary file beside `path`; rename it onto `path` only on success.

    The name is unique (pid + random) and opened with 'x', so the file gets the usual umask
    permissions (tempfile.mkstemp would make it private to the user).  Without `fsync` this
    guards against a crashed or killed process (test.py writes hundreds of small images); with
    it the data and then the rename are forced to disk, against a power cut (checkpoints).
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp_path = os.path.join(folder, f".{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp_path, mode.replace("w", "x"), **open_kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    if fsync:
        fsync_folder(folder)


def fsync_folder(folder):
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TRUE = {"yes", "true", "t", "y", "1"}
_FALSE = {"no", "false", "f", "n", "0"}


def str2bool(v):
    """argparse type for `--flag [yes|no]` options; case-insensitive, as in the original."""
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(
        f"boolean value expected (one of {', '.join(sorted(_TRUE | _FALSE))}), got {v!r}")


def jsonable(value):
    """An option value as JSON can hold it: inf becomes "inf", other objects their str()."""
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def mkdirs(paths):
    """Create one folder (a str) or several (a list); existing ones are fine."""
    if isinstance(paths, (list, tuple)):
        for path in paths:
            mkdir(path)
    else:
        mkdir(paths)


def mkdir(path):
    """Create `path` and its parents if missing."""
    os.makedirs(path, exist_ok=True)
