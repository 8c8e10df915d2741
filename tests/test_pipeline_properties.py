"""Property test of the real image pipeline: file on disk -> load_image -> get_transform.

Random image sizes (1..80 px a side), PIL modes, preprocess modes and load/crop sizes.  Whatever
comes in, the output is a finite float tensor in [-1, 1] with 1 or 3 channels (by input_nc), each
side a multiple of 4 and equal to what the preprocess mode promises -- or, for an image smaller
than the crop where the mode does not resize it, a one-line UserError naming the file.  The
expected sizes are the original's formulas, written out here independently.

Hypothesis runs a fixed, derandomized set of examples so CI is deterministic.
"""
import os
import tempfile
from types import SimpleNamespace

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from data.base_dataset import PREPROCESS_MODES, check_preprocess_options, get_transform
from data.image_io import load_image
from util.errors import UserError

CI = settings(max_examples=50, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])

# mode -> file formats that store it faithfully
FORMATS = {
    '1': ('PNG', 'BMP'), 'L': ('PNG', 'JPEG'), 'LA': ('PNG',), 'P': ('PNG', 'BMP'),
    'P+transparency': ('PNG',), 'RGB': ('PNG', 'JPEG', 'BMP'), 'RGBA': ('PNG', 'TIFF'),
    'CMYK': ('JPEG', 'TIFF'), 'I;16': ('PNG', 'TIFF'), 'I': ('TIFF',), 'F': ('TIFF',),
}


def make_image(mode, w, h, seed):
    rng = np.random.default_rng(seed)
    if mode == '1':
        return Image.fromarray(rng.integers(0, 2, (h, w)).astype(bool))
    if mode in ('P', 'P+transparency'):
        img = Image.fromarray(rng.integers(0, 16, (h, w), dtype=np.uint8), 'L').convert('P')
        img.putpalette(rng.integers(0, 256, 16 * 3, dtype=np.uint8).tolist())
        if mode == 'P+transparency':
            img.info['transparency'] = bytes(rng.integers(0, 256, 16, dtype=np.uint8).tolist())
        return img
    if mode == 'I;16':
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode == 'I':
        # 8-bit, 16-bit, wide or negative value ranges
        hi = int(rng.choice([255, 65535, 2 ** 20]))
        lo = -hi if rng.random() < 0.25 else 0
        return Image.fromarray(rng.integers(lo, hi + 1, (h, w)).astype(np.int32), 'I')
    if mode == 'F':
        scale = float(rng.choice([1.0, 255.0, 1000.0]))
        return Image.fromarray((rng.random((h, w)) * scale).astype(np.float32), 'F')
    bands = len(mode)  # L, LA, RGB, RGBA, CMYK
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[:, :, 0] if bands == 1 else arr, mode)


def p2(n):
    """make_power_2: nearest multiple of 4 (round half to even), at least 4."""
    return max(4, int(round(n / 4)) * 4)


def promised_hw(pre, w, h, load, crop):
    """(height, width) the preprocess mode promises, or None if the image is too small to crop."""
    if pre == 'resize_and_crop':
        return p2(crop), p2(crop)
    if pre in ('scale_width', 'scale_width_and_crop'):
        if pre.endswith('crop'):
            return p2(crop), p2(crop)
        if w == load and h >= crop:
            return p2(h), p2(w)
        return p2(int(max(load * h / w, crop))), p2(load)
    if pre.startswith('scale_shortside'):
        if min(w, h) < load:
            s = load / min(w, h)
            w, h = round(w * s), round(h * s)
        if not pre.endswith('crop'):
            return p2(h), p2(w)
        return (p2(crop), p2(crop)) if min(w, h) >= crop else None
    if pre.startswith('resize_shortside'):
        # up or down to a shorter side of `load`, the longer one truncated (torchvision's Resize)
        w, h = (load, int(load * h / w)) if w <= h else (int(load * w / h), load)
        if not pre.endswith('crop'):
            return p2(h), p2(w)
        return p2(crop), p2(crop)  # crop <= load is checked up front
    if pre == 'crop':
        return (p2(crop), p2(crop)) if min(w, h) >= crop else None
    assert pre == 'none'
    return p2(h), p2(w)


# Generated examples cluster (Hypothesis mutates earlier ones), so every mode and every preprocess
# mode is also pinned once: (mode, w, h, pre, load, crop, input_nc).
PINNED = [
    ('1', 1, 1, 'resize_and_crop', 36, 32, 3),
    ('L', 80, 3, 'scale_width', 16, 8, 1),
    ('LA', 5, 70, 'scale_width_and_crop', 20, 20, 3),
    ('P', 33, 17, 'scale_shortside', 40, 64, 3),
    ('P+transparency', 9, 50, 'scale_shortside_and_crop', 24, 16, 1),
    ('RGB', 47, 29, 'crop', 36, 24, 3),
    ('RGBA', 2, 79, 'none', 36, 32, 3),
    ('CMYK', 31, 31, 'crop', 36, 32, 1),             # smaller than the crop: UserError
    ('I;16', 64, 48, 'scale_shortside_and_crop', 8, 30, 3),  # 48 px short side, crop 30: fine
    ('I', 17, 61, 'scale_shortside_and_crop', 8, 30, 1),     # 17 < 30: UserError
    ('F', 60, 40, 'resize_and_crop', 16, 32, 3),     # crop > load: rejected up front
    ('RGB', 70, 23, 'resize_shortside', 40, 8, 3),       # enlarged: 121 x 40
    ('L', 9, 75, 'resize_shortside_and_crop', 6, 5, 1),  # reduced: 6 x 50, then cropped
]


def pinned(cases):
    def decorate(test):
        for mode, w, h, pre, load, crop, nc in reversed(cases):
            test = example(mode=mode, w=w, h=h, fmt_pick=len(cases), seed=w * h, pre=pre,
                           load=load, crop=crop, input_nc=nc, flip=w % 2 == 0)(test)
        return test
    return decorate


@CI
@pinned(PINNED)
@given(mode=st.sampled_from(sorted(FORMATS)), w=st.integers(1, 80), h=st.integers(1, 80),
       fmt_pick=st.integers(0, 2), seed=st.integers(0, 2 ** 16),
       pre=st.sampled_from(PREPROCESS_MODES), load=st.integers(1, 64), crop=st.integers(1, 64),
       input_nc=st.sampled_from([1, 3]), flip=st.booleans())
def test_pipeline_output_matches_the_promise(mode, w, h, fmt_pick, seed, pre, load, crop,
                                             input_nc, flip):
    img = make_image(mode, w, h, seed)
    fmt = FORMATS[mode][fmt_pick % len(FORMATS[mode])]
    opt = SimpleNamespace(dataroot='/unused', preprocess=pre, load_size=load, crop_size=crop,
                          no_flip=not flip, isTrain=True, input_nc=input_nc)
    try:
        check_preprocess_options(opt)
    except UserError as err:
        # only a crop larger than the resized image is impossible up front
        assert 'crop' in pre and crop > load and '--crop_size' in str(err)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f'img {mode}.{fmt.lower()}')
        key = img.info.get('transparency')
        img.save(path, fmt, **({} if key is None else {'transparency': key}))
        expected = promised_hw(pre, w, h, load, crop)
        loaded = load_image(path, input_nc)
        assert loaded.size == (w, h) and loaded.mode == ('L' if input_nc == 1 else 'RGB')
        transform = get_transform(opt, grayscale=(input_nc == 1))
        if expected is None:
            try:
                transform(loaded)
            except UserError as err:
                message = str(err)
                assert message.startswith(f'image {path} is {w}x{h} pixels') and '\n' not in message
                return
            raise AssertionError(f'{w}x{h} image with --preprocess {pre} --crop_size {crop} '
                                 f'should be rejected')
        out = transform(loaded)
    assert out.dtype == torch.float32 and out.dim() == 3
    assert out.shape[0] == input_nc
    assert tuple(out.shape[1:]) == expected
    assert out.shape[1] % 4 == 0 and out.shape[2] % 4 == 0
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
