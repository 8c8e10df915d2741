"""Open an image file as an 8-bit PIL image with 3 ('RGB') or 1 ('L') channels.

The original calls `Image.open(path).convert('RGB')`, which is wrong for several modes that real
data sets contain: transparent pixels keep whatever colour hides under alpha 0 (often black),
and 16-bit images are *clipped* to 255 instead of scaled (almost every pixel turns white).
Here transparent images are composited over white and high-bit-depth images are rescaled.
"""
import numpy as np
from PIL import Image, UnidentifiedImageError

from util.errors import UserError

_WHITE = (255, 255, 255, 255)


def load_image(path, channels):
    """Read `path` and return a PIL image in mode 'RGB' (channels 3) or 'L' (channels 1)."""
    try:
        # Open through a file object so the handle is closed even for lazily decoded formats;
        # load() forces decoding here, where a truncated file can still be reported clearly.
        with open(path, 'rb') as f:
            img = Image.open(f)
            img.load()
            return convert_image(img, channels)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        if isinstance(err, UnidentifiedImageError):
            reason = 'not a recognised image format (corrupt or mislabelled file)'
        else:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"cannot read image {path}: {reason}; remove or replace it") from err


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

    I;16*: full 16-bit range, 65535 -> 255.  'I' (32-bit) is how PIL hands out many 16-bit files,
    so values inside [0, 65535] are read as 16-bit; anything wider is stretched min..max.
    'F': values inside [0, 1] are read as intensities in [0, 1], otherwise as 0..255 (clipped).
    """
    arr = arr.astype(np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (arr.min(), arr.max()) if arr.size else (0.0, 0.0)
    if mode == 'F':
        scaled = arr * 255.0 if lo >= 0.0 and hi <= 1.0 else arr
    elif mode.startswith('I;16') or (lo >= 0 and hi <= 65535):
        scaled = arr / 257.0  # 65535 / 257 == 255 exactly
    else:
        scaled = (arr - lo) * 255.0 / ((hi - lo) or 1.0)  # multiply first: exact halves
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
