"""SingleImageDataset: one image per domain, seen as 100,000 random crops (SinCUT).

Reads <dataroot>/trainA and <dataroot>/trainB in every phase; each must hold exactly one image.

Training item i: each image is zoomed by its own factors (fx, fy), drawn uniformly from
[1 / --random_scale_max, 1] per axis (so the aspect ratio changes too, and never below the crop
size), cut into a grid of crop_size cells laid at a random offset, and cell `patch_index[i]` is
taken, then flipped with probability 1/2.  Zoom factors are tabulated at construction (numpy)
and patch indices are a shuffled 0..99999 (Python `random`), as the original.

Zoom sampling.  The tables repeat each factor for batch_size consecutive indices,
meant to give a whole minibatch one scale, but the loader shuffles indices, so in practice every
crop of a batch has its own scale.  That effective behaviour is what the paper's results were
trained with, and it stays the default.  For the intended per-batch zoom pass --serial_batches:
batches then take consecutive indices and so share one factor (crop cells remain random, since
the patch indices are already shuffled); every epoch then reads the tables in the same order.

Other phases (test): the whole images, with --preprocess none only rounded to multiples of 4.
"""
import os
import random

import numpy as np
from PIL import Image

from data.base_dataset import BaseDataset, get_transform
from data.image_folder import make_dataset
from data.image_io import load_image
from util.errors import UserError

NUM_CROPS = 100000  # the nominal length of an epoch


class SingleImageDataset(BaseDataset):

    def __init__(self, opt):
        super().__init__(opt)
        if opt.random_scale_max < 1:
            raise UserError(f"--random_scale_max must be at least 1 (got {opt.random_scale_max}): "
                            "crops are zoomed out by a factor between 1 and it")
        self.dir_A = os.path.join(opt.dataroot, 'trainA')
        self.dir_B = os.path.join(opt.dataroot, 'trainB')
        self.A_path = self._the_image(self.dir_A)
        self.B_path = self._the_image(self.dir_B)
        # Both images stay in memory (RGB: the StyleGAN2 networks are RGB only).
        self.A_img = load_image(self.A_path, 3)
        self.B_img = load_image(self.B_path, 3)
        print(f"image sizes {self.A_img.size} and {self.B_img.size}")

        # Zoom factors, one (fx, fy) per block of batch_size indices, tiled over the block.
        blocks = len(self) // opt.batch_size + 1
        low = 1 / opt.random_scale_max
        self.zoom_levels_A = self._tiled_zooms(low, blocks, opt.batch_size)
        self.zoom_levels_B = self._tiled_zooms(low, blocks, opt.batch_size)
        # A shuffled cell index per item, so crops of a batch rarely share a grid cell.
        self.patch_indices_A = list(range(len(self)))
        random.shuffle(self.patch_indices_A)
        self.patch_indices_B = list(range(len(self)))
        random.shuffle(self.patch_indices_B)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    @staticmethod
    def _the_image(folder):
        if not os.path.isdir(folder):
            raise UserError(f"{folder} is missing; the single-image data set needs trainA/ with the "
                            "source image and trainB/ with the target image")
        paths = sorted(make_dataset(folder))
        if len(paths) != 1:
            found = "no image" if not paths else f"{len(paths)} images"
            raise UserError(f"{folder} holds {found}; --dataset_mode singleimage (SinCUT) needs "
                            "exactly one image in trainA and one in trainB")
        return paths[0]

    @staticmethod
    def _tiled_zooms(low, blocks, batch_size):
        zooms = np.random.uniform(low, 1.0, size=(blocks, 1, 2))  # numpy RNG, as the original
        return np.tile(zooms, (1, batch_size, 1)).reshape(-1, 2)

    def __len__(self):
        return NUM_CROPS

    def describe(self):
        return f"{self.A_path} and {self.B_path} (one image each)"

    def _crop(self, img, zooms, patches, index):
        params = {'scale_factor': zooms[index], 'patch_index': patches[index],
                  'flip': random.random() > 0.5}  # drawn even under --no_flip, as the original
        return get_transform(self.opt, params=params, method=Image.BILINEAR)(img)

    def __getitem__(self, index):
        if self.opt.phase == 'train':
            A = self._crop(self.A_img, self.zoom_levels_A, self.patch_indices_A, index)
            B = self._crop(self.B_img, self.zoom_levels_B, self.patch_indices_B, index)
        else:
            transform = get_transform(self.opt, method=Image.BILINEAR)
            A, B = transform(self.A_img), transform(self.B_img)
        return {'A': A, 'B': B, 'A_paths': self.A_path, 'B_paths': self.B_path}
