"""SingleDataset: the images directly under --dataroot, one domain only.

Returns only 'A' and 'A_paths', so it suits models that translate one direction at test time;
CUTModel needs 'B' as well and uses the unaligned dataset.
"""
from data.base_dataset import BaseDataset, domain_channels, get_transform
from data.image_folder import make_dataset
from data.image_io import load_image
from util.errors import UserError


class SingleDataset(BaseDataset):

    def __init__(self, opt):
        super().__init__(opt)
        self.A_paths = sorted(make_dataset(opt.dataroot, opt.max_dataset_size))
        if not self.A_paths:
            raise UserError(f"no images found in {opt.dataroot}; add .jpg/.png files "
                            f"or check --dataroot")
        # The images feed the generator's input side: output_nc when BtoA, else input_nc.
        self.nc, _ = domain_channels(opt)
        self.transform = get_transform(opt, grayscale=(self.nc == 1))

    def __len__(self):
        return len(self.A_paths)

    def __getitem__(self, index):
        path = self.A_paths[index]
        return {'A': self.transform(load_image(path, self.nc)), 'A_paths': path}
