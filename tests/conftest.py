"""Shared fixtures: tiny generated image folders in the layouts the original expects."""
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def write_images(folder, count, size, seed, mode="RGB"):
    """Write `count` random PNG images of `size` x `size` pixels into `folder`."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for i in range(count):
        pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            os.path.join(folder, f"img_{i:03d}.png"))


def make_unaligned(root, splits=("train", "test"), n_a=3, n_b=4, size=40):
    for k, split in enumerate(splits):
        write_images(os.path.join(root, split + "A"), n_a, size, seed=10 * k)
        write_images(os.path.join(root, split + "B"), n_b, size, seed=10 * k + 1)
    return str(root)


@pytest.fixture
def tiny_dataroot(tmp_path):
    """trainA (3), trainB (4), testA (3), testB (4) images of 40x40 pixels."""
    return make_unaligned(tmp_path / "data")


def data_opt(root, **overrides):
    """The options the data package reads, for a training set under `root` (no parser needed)."""
    opt = dict(dataroot=str(root), phase='train', direction='AtoB', input_nc=3, output_nc=3,
               serial_batches=True, num_threads=0, batch_size=1, load_size=32, crop_size=16,
               max_dataset_size=float('inf'), preprocess='resize_and_crop', no_flip=True,
               isTrain=True, n_epochs=2, seed=None, dataset_mode='unaligned')
    opt.update(overrides)
    return SimpleNamespace(**opt)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny tensors: extra OpenMP threads only spin-wait on
    the shared 2-core machine.  Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
