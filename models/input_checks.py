"""Checks of options and input images that several models share.

The option checks run once, before anything is built (each model's `validate_options`); the image
check runs on the first batch of each new size (BaseModel.check_image_size).  Every failure is a
one-line UserError that names the option or the file and says what to do.
"""
import copy

import torch

from util.errors import UserError, first_line


def check_single_folder(opt, generator):
    """--dataset_mode single is for test.py, and its images feed `generator`'s input."""
    if opt.dataset_mode == "single" and opt.direction == "BtoA" and opt.input_nc != opt.output_nc:
        raise UserError(f"--dataset_mode single feeds its images to {generator}'s input: use "
                        "--direction AtoB (or equal --input_nc and --output_nc)")
    if opt.isTrain and opt.dataset_mode == "single":
        raise UserError("--dataset_mode single has no B images to train against; use it with "
                        "test.py, or --dataset_mode unaligned for training")


def check_non_negative(opt, names):
    """Loss weights (and the like): each option in `names` must be 0 or more."""
    for name in names:
        if getattr(opt, name) < 0:
            raise UserError(f"--{name} must be 0 or more (got {getattr(opt, name)})")


def check_identity_channels(opt, generator):
    """An identity loss feeds B images to the A -> B generator: equal channel counts needed."""
    if opt.lambda_identity > 0 and opt.input_nc != opt.output_nc:
        raise UserError(f"the identity loss feeds B images to {generator} (built for A images), so "
                        f"it needs --input_nc == --output_nc (got {opt.input_nc} and "
                        f"{opt.output_nc}); make them equal or pass --lambda_identity 0")


class ImageSizeCheck:
    """Mixed in by BaseModel: will a batch of this size pass through these networks?"""

    def init_size_check(self):
        self._meta_nets = {}  # weightless copies of networks, for image-size checks
        self._sizes_ok = set()

    def check_image_size(self, images, path, chain):
        """Raise a one-line UserError if `images` (B x C x H x W) cannot pass through the networks
        named in `chain` (each fed the previous one's output, e.g. ("G", "D")).

        Too small an image otherwise fails deep inside a padding, convolution or instance norm.
        Each new size is tried once on weightless copies of the networks on PyTorch's `meta`
        device, which computes shapes only, so the check costs nothing measurable.
        """
        key = (tuple(images.shape[1:]), chain)
        if key in self._sizes_ok:
            return
        nets = dict(self.networks())
        x = torch.empty((1,) + key[0], device="meta")
        for name in chain:
            if name not in self._meta_nets:
                self._meta_nets[name] = copy.deepcopy(nets[name]).to("meta")
            try:
                with torch.no_grad():
                    x = self._meta_nets[name](x)
            except (RuntimeError, ValueError) as err:
                reason = first_line(err)
                h, w = images.shape[-2:]
                raise UserError(f"image {path} becomes {w}x{h} pixels after preprocessing, a size "
                                f"net{name} cannot take ({reason}); use larger images or raise "
                                "--load_size/--crop_size (e.g. --preprocess resize_and_crop)") from None
        self._sizes_ok.add(key)
