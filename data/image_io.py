"""Open an image file as an 8-bit PIL image with 3 ('RGB') or 1 ('L') channels.

The original calls `Image.open(path).convert('RGB')`, which is wrong for several modes that real
data sets contain: transparent pixels keep whatever colour hides under alpha 0 (often black),
and 16-bit images are *clipped* to 255 instead of scaled (almost every pixel turns white).
Here transparent images are composited over white and high-bit-depth images are rescaled.

Deliberate deviation: the EXIF Orientation tag is applied (as every photo viewer does), so a
phone photo stored sideways with "rotate 90" in its metadata is trained upright.  The original
ignores the tag and trains on the sideways pixels.
"""
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from util.errors import UserError, first_line

_WHITE = (255, 255, 255, 255)

# load_image records the file an image came from under this key of `img.info`, so the
# get_transform pipeline it is handed to can name the file in a size error.
SOURCE_PATH_KEY = 'cut_source_path'


def load_image(path, channels):
    """Read `path` and return a PIL image in mode 'RGB' (channels 3) or 'L' (channels 1).

    The EXIF orientation is applied before the conversion.  An empty, truncated or unrecognised
    file raises UserError naming it.
    """
    try:
        # Open through a file object so the handle is closed even for lazily decoded formats;
        # load() forces decoding here, where a truncated file can still be reported clearly.
        with open(path, 'rb') as f:
            img = Image.open(f)
            img.load()
            # Orientations 2..8 flip/rotate the pixels (width and height swap for 5..8); JPEG
            # EXIF, a PNG eXIf chunk and TIFF tags all carry the tag.  (in_place=True would
            # save a copy, but needs Pillow >= 10 and requirements allow 9.5.)
            img = ImageOps.exif_transpose(img)
            out = convert_image(img, channels)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        if isinstance(err, UnidentifiedImageError):
            if os.path.getsize(path) == 0:
                reason = 'the file is empty (0 bytes)'
            else:
                reason = 'not a recognised image format (corrupt or mislabelled file)'
        else:
            reason = first_line(err)
        raise UserError(f"cannot read image {path}: {reason}; remove or replace it") from err
    out.info[SOURCE_PATH_KEY] = path
    return out


def convert_image(img, channels):
    """Convert a PIL image of any common mode to 8-bit 'RGB' (channels 3) or 'L' (channels 1)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    target = 'RGB' if channels == 3 else 'L'
    mode = img.mode
    if mode.startswith('I') or mode == 'F':
        return Image.fromarray(_to_uint8(np.asarray(img), mode)).convert(target)
    # Alpha channels, and PNG/GIF transparency keys ('transparency' in info), are turned into
    # RGBA so they can be composited; otherwise convert() would just drop them.
    if mode in ('LA', 'PA', 'La', 'RGBa') or (
            mode in ('1', 'L', 'P', 'RGB') and 'transparency' in img.info):
        img = img.convert('RGBA')
    if img.mode == 'RGBA':
        img = Image.alpha_composite(Image.new('RGBA', img.size, _WHITE), img)
    if img.mode == target:
        return img
    # '1' -> 0/255, P -> palette colours, CMYK/YCbCr/HSV -> RGB, RGB -> L (ITU-R 601 luma).
    return img.convert(target)


def _to_uint8(arr, mode):
    """Map a 16/32-bit integer or float array to uint8 by scaling, not clipping.

    'I;16*' (true 16-bit modes): the full 16-bit range, v / 257, so 65535 -> 255.
    'I' (32-bit) carries no bit depth, and PIL uses it for 8-bit data as well as for 16-bit files
    (16-bit PGM, some TIFFs), so the values decide: all inside [0, 255] is 8-bit data (kept as
    is); all inside [0, 65535] is 16-bit (v / 257); anything wider or negative is stretched
    min..max to 0..255.  (A 16-bit 'I' image whose pixels all happen to be <= 255, i.e. nearly
    black, therefore reads as 8-bit: the values alone cannot tell the two apart.)
    'F': values inside [0, 1] are read as intensities in [0, 1], otherwise as 0..255 (clipped).
    """
    arr = arr.astype(np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (arr.min(), arr.max()) if arr.size else (0.0, 0.0)
    if mode == 'F':
        scaled = arr * 255.0 if lo >= 0.0 and hi <= 1.0 else arr
    elif mode.startswith('I;16'):
        scaled = arr / 257.0  # 65535 / 257 == 255 exactly
    elif lo >= 0 and hi <= 255:
        scaled = arr  # 8-bit values held in a 32-bit image
    elif lo >= 0 and hi <= 65535:
        scaled = arr / 257.0
    else:
        scaled = (arr - lo) * 255.0 / ((hi - lo) or 1.0)  # multiply first: exact halves
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
