"""UnalignedDataset: two unpaired image folders, <dataroot>/<phase>A and <dataroot>/<phase>B.

Item i pairs A[i mod |A|] with a B image: B[i mod |B|] under --serial_batches, otherwise a
uniformly random one (Python `random`), so the pairs carry no correspondence.

Deliberate deviation: images are loaded with the channel count of the side they feed
(see `domain_channels`), so --input_nc 1 / --output_nc 1 work; the original always loads RGB.
"""
import copy
import os
import random

from data.base_dataset import BaseDataset, domain_channels, get_transform
from data.image_folder import make_dataset
from data.image_io import load_image
from util.errors import UserError


class UnalignedDataset(BaseDataset):

    def __init__(self, opt):
        super().__init__(opt)
        phase = opt.phase
        # A test run without testA falls back to a validation split if the data set has one.
        if (phase == 'test' and not os.path.isdir(os.path.join(opt.dataroot, 'testA'))
                and os.path.isdir(os.path.join(opt.dataroot, 'valA'))):
            phase = 'val'
        self.dir_A = os.path.join(opt.dataroot, phase + 'A')
        self.dir_B = os.path.join(opt.dataroot, phase + 'B')
        self.A_paths = sorted(make_dataset(self.dir_A, opt.max_dataset_size))
        self.B_paths = sorted(make_dataset(self.dir_B, opt.max_dataset_size))
        for folder, paths in ((self.dir_A, self.A_paths), (self.dir_B, self.B_paths)):
            if not paths:
                raise UserError(f"no images found in {folder}; add .jpg/.png files "
                                f"or check --dataroot and --phase")
        self.A_size = len(self.A_paths)
        self.B_size = len(self.B_paths)
        self.nc_A, self.nc_B = domain_channels(opt)

    def __len__(self):
        # The larger domain sets the epoch length; the smaller one wraps around.
        return max(self.A_size, self.B_size)

    def describe(self):
        return f"{self.dir_A} ({self.A_size} images) and {self.dir_B} ({self.B_size} images)"

    def _transform(self, channels):
        # Fine-tuning switch of CUT's loader: during the decay epochs (current_epoch >
        # n_epochs) resize straight to crop_size, so resize_and_crop no longer crops (flips
        # stay).  --crop_in_decay_epochs keeps cropping instead, as the CycleGAN, DistanceGAN
        # and GcGAN loaders.  Built per item, as the original, so the current epoch and options
        # are always respected.
        opt = self.opt
        n_epochs = getattr(opt, 'n_epochs', None)
        if (opt.isTrain and n_epochs is not None and self.current_epoch > n_epochs
                and not getattr(opt, 'crop_in_decay_epochs', False)):
            opt = copy.copy(opt)  # never mutate the shared options
            opt.load_size = opt.crop_size
        return get_transform(opt, grayscale=(channels == 1))

    def __getitem__(self, index):
        A_path = self.A_paths[index % self.A_size]
        if self.opt.serial_batches:
            index_B = index % self.B_size
        else:
            index_B = random.randint(0, self.B_size - 1)
        B_path = self.B_paths[index_B]
        A = self._transform(self.nc_A)(load_image(A_path, self.nc_A))
        B = self._transform(self.nc_B)(load_image(B_path, self.nc_B))
        return {'A': A, 'B': B, 'A_paths': A_path, 'B_paths': B_path}
