"""BaseDataset and the preprocessing pipeline `get_transform`.

`get_transform` reacts to substrings of `opt.preprocess` (so 'scale_width_and_crop' means
scale_width, then crop) and always ends with make_power_2, an optional flip and the conversion to
a tensor in [-1, 1].  Random crops and flips use torchvision, i.e. torch's RNG, as the original;
zoom, patch offsets and trim use numpy's global RNG, as the original.

An image smaller than --crop_size where a crop needs it (plain 'crop', 'patch', or
'scale_shortside_and_crop' with --crop_size > --load_size) raises a one-line UserError naming
the file, its size and the options to change; torchvision's RandomCrop would raise a bare
ValueError from deep in the DataLoader, and the original's fixed-position crop pads or silently
returns a smaller image.
"""
from abc import ABC, abstractmethod
from functools import partial

import numpy as np
import torch.utils.data as data
import torchvision.transforms as transforms
from PIL import Image
from torchvision.transforms import InterpolationMode

from data.image_io import SOURCE_PATH_KEY
from util.errors import UserError

# Values offered to users; any string containing one of PREPROCESS_STEPS also works.
PREPROCESS_MODES = ('resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop',
                    'scale_shortside', 'scale_shortside_and_crop', 'resize_shortside',
                    'resize_shortside_and_crop', 'none')
PREPROCESS_STEPS = ('fixsize', 'resize', 'resize_shortside', 'scale_width', 'scale_shortside',
                    'zoom', 'crop', 'patch', 'trim')
POWER_BASE = 4  # the generator halves the size twice, so sides must be multiples of 4

# --resize_filter: the PIL filter of every resize step (datasets may still pass their own).
RESIZE_FILTERS = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR, 'nearest': Image.NEAREST,
                  'lanczos': Image.LANCZOS, 'box': Image.BOX, 'hamming': Image.HAMMING}

_PIL_METHODS = {
    InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.BILINEAR: Image.BILINEAR,
    InterpolationMode.BICUBIC: Image.BICUBIC, InterpolationMode.LANCZOS: Image.LANCZOS,
    InterpolationMode.BOX: Image.BOX, InterpolationMode.HAMMING: Image.HAMMING,
}


class BaseDataset(data.Dataset, ABC):
    """Base class of all datasets: keeps `opt`, the data root and the current epoch.

    `current_epoch` is set by the loader's `set_epoch`; workers are not persistent, so each
    epoch's fresh workers see the new value (the fine-tuning switch depends on it).
    """
    current_epoch = 0

    def __init__(self, opt):
        self.opt = opt
        self.root = opt.dataroot
        self.current_epoch = 0

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """Add dataset-specific options or change defaults; return the parser."""
        return parser

    @abstractmethod
    def __len__(self):
        ...

    @abstractmethod
    def __getitem__(self, index):
        ...

    def describe(self):
        """Where the images come from and how many there are, for error messages."""
        return f"{self.root} ({len(self)} images)"


def domain_channels(opt):
    """(channels of domain A images, channels of domain B images).

    Images are loaded with the channel count of the network side they feed: with BtoA the
    domain-B images become the generator input, so they get input_nc.
    """
    nc_in, nc_out = opt.input_nc, opt.output_nc
    for name, nc in (('--input_nc', nc_in), ('--output_nc', nc_out)):
        if nc not in (1, 3):
            raise UserError(f"{name} {nc} is not supported by the image loader; use 1 or 3")
    if getattr(opt, 'direction', 'AtoB') == 'BtoA':
        return nc_out, nc_in
    return nc_in, nc_out


def _resize_hw(opt):
    """Target (height, width) of the 'resize' step; gta2cityscapes halves the height."""
    height = opt.load_size // 2 if 'gta2cityscapes' in str(opt.dataroot) else opt.load_size
    return height, opt.load_size


def check_preprocess_options(opt):
    """Reject a --preprocess value that does nothing, or a crop larger than the resized image."""
    pre = opt.preprocess
    if pre != 'none' and not any(step in pre for step in PREPROCESS_STEPS):
        raise UserError(f"unknown --preprocess '{pre}'; choose from: {', '.join(PREPROCESS_MODES)}")
    if opt.load_size < 1 or opt.crop_size < 1:
        raise UserError(f"--load_size ({opt.load_size}) and --crop_size ({opt.crop_size}) "
                        f"must be positive")
    if 'crop' not in pre:
        return
    if 'resize_shortside' in pre:
        smallest, what = opt.load_size, f"resized to a shorter side of {opt.load_size}"
    elif 'resize' in pre:
        height, width = _resize_hw(opt)
        smallest, what = min(height, width), f"resized to {width}x{height}"
    elif 'scale_width' in pre:
        smallest, what = opt.load_size, f"scaled to width {opt.load_size}"
    else:
        # plain 'crop', and scale_shortside (which never shrinks): the size depends on each
        # image, checked when cropping
        return
    if opt.crop_size > smallest:
        raise UserError(f"--crop_size {opt.crop_size} is larger than the image: with --preprocess "
                        f"{pre} and --load_size {opt.load_size} images are {what}; "
                        f"lower --crop_size or raise --load_size")


def get_transform(opt, params=None, grayscale=False, method=None, convert=True):
    """Build the preprocessing pipeline: PIL image -> tensor in [-1, 1] (CxHxW).

    `params` fixes the random choices for datasets that draw them themselves: 'size' (height,
    width) for fixsize, 'scale_factor' (fx, fy) for zoom, 'crop_pos' (x, y), 'patch_index' and
    'flip' (bool).  `method` is a PIL resampling filter or a torchvision InterpolationMode;
    None takes --resize_filter (bicubic, as the original, when opt has none).
    """
    if method is None:
        method = RESIZE_FILTERS[getattr(opt, 'resize_filter', 'bicubic')]
    method = _PIL_METHODS.get(method, method)
    pre = opt.preprocess
    steps = []
    if grayscale:
        steps.append(transforms.Grayscale(1))
    if 'fixsize' in pre:
        if params is None or 'size' not in params:
            raise UserError(f"--preprocess {pre}: 'fixsize' needs a dataset that supplies the size; "
                            f"choose from: {', '.join(PREPROCESS_MODES)}")
        steps.append(partial(_resize, size=params['size'], method=method))
    if 'resize_shortside' in pre:
        steps.append(partial(_resize_shortside, target=opt.load_size, method=method))
    elif 'resize' in pre:
        steps.append(partial(_resize, size=_resize_hw(opt), method=method))
    elif 'scale_width' in pre:
        steps.append(partial(_scale_width, target_width=opt.load_size, crop_size=opt.crop_size,
                             method=method))
    elif 'scale_shortside' in pre:
        steps.append(partial(_scale_shortside, target=opt.load_size, method=method))
    if 'zoom' in pre:
        factor = None if params is None else params['scale_factor']
        steps.append(partial(_zoom, crop_size=opt.crop_size, method=method, factor=factor))
    if 'crop' in pre:
        if params is None or 'crop_pos' not in params:
            steps.append(_CheckedRandomCrop(opt.crop_size))
        else:
            steps.append(partial(_crop, pos=params['crop_pos'], size=opt.crop_size))
    if 'patch' in pre:
        index = None if params is None else params.get('patch_index')
        steps.append(partial(_patch, index=index, size=opt.crop_size))
    if 'trim' in pre:
        steps.append(partial(_trim, size=opt.crop_size))
    steps.append(partial(_make_power_2, base=POWER_BASE, method=method))
    if not opt.no_flip:
        if params is None or 'flip' not in params:
            steps.append(transforms.RandomHorizontalFlip())
        elif params['flip']:
            steps.append(_flip)
    if convert:
        # ToTensor gives [0, 1]; (x - 0.5) / 0.5 is Normalize(0.5, 0.5) for any channel count.
        steps += [transforms.ToTensor(), _to_minus_one_one]
    return _Pipeline(steps, pre)


class _Pipeline(transforms.Compose):
    """transforms.Compose that turns a crop step's size failure into a message naming the file
    (recorded by load_image in `img.info`), its size and the options to change."""

    def __init__(self, steps, preprocess):
        super().__init__(steps)
        self.preprocess = preprocess

    def __call__(self, img):
        try:
            return super().__call__(img)
        except _ImageTooSmall as err:
            raise UserError(_too_small_message(img, err.size, err.crop_size,
                                               self.preprocess)) from None


class _ImageTooSmall(UserError):
    """A crop step got an image smaller than the crop; `_Pipeline` rewrites the message."""

    def __init__(self, size, crop_size):
        self.size, self.crop_size = size, crop_size
        w, h = size
        super().__init__(f"--crop_size {crop_size} is larger than an image after preprocessing "
                         f"({w}x{h} pixels); lower --crop_size, or resize first with --preprocess "
                         f"resize_and_crop and --load_size >= --crop_size")


def _too_small_message(img, seen, crop_size, preprocess):
    """One line: which image, how big before and after the resize steps, what to change."""
    path = img.info.get(SOURCE_PATH_KEY)
    what = f"image {path}" if path else "an image"
    w, h = img.size
    after = "" if (w, h) == tuple(seen) else f" ({seen[0]}x{seen[1]} after resizing)"
    if 'resize' in preprocess or 'scale_' in preprocess:
        # the image was resized to (or, for scale_shortside, up to) --load_size
        fix = f"raise --load_size to {crop_size} or more"
    else:
        fix = "use --preprocess resize_and_crop or scale_width_and_crop (they resize first)"
    return (f"{what} is {w}x{h} pixels{after}, smaller than --crop_size {crop_size} with "
            f"--preprocess {preprocess}; lower --crop_size to {min(seen)} or less, {fix}, "
            f"or remove the image")


# The steps are module-level functions (bound with functools.partial) so the pipeline pickles
# for DataLoader workers under any start method.

def _resize(img, size, method):
    height, width = size
    return img.resize((width, height), method)


def _scale_width(img, target_width, crop_size, method):
    ow, oh = img.size
    if ow == target_width and oh >= crop_size:
        return img
    height = int(max(target_width * oh / ow, crop_size))
    return img.resize((target_width, height), method)


def _resize_shortside(img, target, method):
    """Scale up or down so that the shorter side is `target`, keeping the aspect ratio; the
    longer side is truncated to an integer (torchvision's Resize(int), and its older Scale that
    DistanceGAN's loader calls)."""
    ow, oh = img.size
    if min(ow, oh) == target:
        return img
    if ow < oh:
        return img.resize((target, int(target * oh / ow)), method)
    return img.resize((int(target * ow / oh), target), method)


def _scale_shortside(img, target, method):
    """Upscale so the short side is `target`; never downscale."""
    ow, oh = img.size
    short = min(ow, oh)
    if short >= target:
        return img
    scale = target / short
    return img.resize((round(ow * scale), round(oh * scale)), method)


def _zoom(img, crop_size, method, factor=None):
    """Scale each axis by a factor (uniform in [0.8, 1] unless given), never below crop_size."""
    fx, fy = np.random.uniform(0.8, 1.0, size=2) if factor is None else factor
    iw, ih = img.size
    width = int(round(max(crop_size, iw * fx)))
    height = int(round(max(crop_size, ih * fy)))
    return img.resize((width, height), method)


def _require_size(img, size):
    w, h = img.size
    if w < size or h < size:
        raise _ImageTooSmall((w, h), size)


class _CheckedRandomCrop:
    """torchvision RandomCrop (torch RNG, as the original) with a readable size error."""

    def __init__(self, size):
        self.size = size
        self.crop = transforms.RandomCrop(size)

    def __call__(self, img):
        _require_size(img, self.size)
        return self.crop(img)


def _crop(img, pos, size):
    # The original returns a smaller image unchanged, or pads with black when one side is
    # larger; both silently change the batch shape or content, so a small image is an error.
    _require_size(img, size)
    ow, oh = img.size
    x, y = pos
    if ow > size or oh > size:
        return img.crop((x, y, x + size, y + size))
    return img


def _patch(img, index, size):
    """One cell of a size x size grid laid at a random offset; numpy RNG."""
    _require_size(img, size)
    ow, oh = img.size
    cols, rows = ow // size, oh // size
    start_x = np.random.randint(ow - cols * size + 1)
    start_y = np.random.randint(oh - rows * size + 1)
    if index is None:
        index = np.random.randint(cols * rows)
    cell = index % (cols * rows)
    x = start_x + (cell // rows) * size
    y = start_y + (cell % rows) * size
    return img.crop((x, y, x + size, y + size))


def _trim(img, size):
    """Random crop of at most `size` pixels per axis (axes already smaller are kept)."""
    ow, oh = img.size
    # as the original: randint(ow - size), so the last possible offset is never drawn
    x = np.random.randint(ow - size) if ow > size else 0
    y = np.random.randint(oh - size) if oh > size else 0
    return img.crop((x, y, x + min(ow, size), y + min(oh, size)))


def _make_power_2(img, base, method):
    """Round each side to the nearest multiple of `base` with Python's round (banker's
    rounding, so 286 -> 288 and 290 -> 288).  Sides are kept >= base so tiny images survive."""
    ow, oh = img.size
    width = max(base, int(round(ow / base) * base))
    height = max(base, int(round(oh / base) * base))
    if (width, height) == (ow, oh):
        return img
    return img.resize((width, height), method)


def _flip(img):
    return img.transpose(Image.FLIP_LEFT_RIGHT)


def _to_minus_one_one(tensor):
    return (tensor - 0.5) / 0.5
