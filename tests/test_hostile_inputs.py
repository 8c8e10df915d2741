"""Hostile inputs: odd modes, broken files, odd names and links, images smaller than the crop.

Every file is generated here (none are committed).  Each case either loads and trains, or fails
with the one-line UserError the user is promised (exit 2, `error: ...` naming the file).  Most
checks call the loader and dataset directly; two train.py runs cover the whole path: one on a
data set holding every "should train" case at once, one for the format of a data error.

Expected pixels come from hand arithmetic or numpy, not from the code under test.
"""
import io
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.base_dataset import get_transform
from data.image_folder import make_dataset
from data.image_io import convert_image, load_image
from data.unaligned_dataset import UnalignedDataset
from util.errors import UserError

from conftest import ROOT, data_opt

FAST = "--load_size 36 --crop_size 32 --num_threads 0 --gpu_ids -1 --display_id 0"

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def make_opt(root, **overrides):
    return data_opt(root, **{**dict(load_size=36, crop_size=32, n_epochs=1), **overrides})


def noise(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


def quadrants(w, h, colours=(RED, GREEN, BLUE, WHITE)):
    """RGB image: top-left, top-right, bottom-left, bottom-right filled with `colours`."""
    arr = np.zeros((h, w, 3), np.uint8)
    tl, tr, bl, br = colours
    arr[:h // 2, :w // 2], arr[:h // 2, w // 2:] = tl, tr
    arr[h // 2:, :w // 2], arr[h // 2:, w // 2:] = bl, br
    return arr


def quadrant_centres(img):
    """RGB of the centre pixel of each quadrant: top-left, top-right, bottom-left, bottom-right."""
    w, h = img.size
    xs, ys = (w // 4, 3 * w // 4), (h // 4, 3 * h // 4)
    return [img.getpixel((x, y)) for y in ys for x in xs]


def close(got, want, tol=40):
    """JPEG is lossy: colours of flat regions come back within a few levels."""
    return all(abs(int(g) - int(c)) <= tol for g, c in zip(got, want))


@contextmanager
def time_limit(seconds):
    """Fail instead of hanging (a symlink loop must not make the walk run forever)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- image writers

def exif_jpeg(path, orientation, w=48, h=32):
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    Image.fromarray(quadrants(w, h)).save(path, 'JPEG', quality=95, exif=exif.tobytes())


def sixteen_bit_png(path, w=40, h=30):
    # a horizontal ramp over the full 16-bit range
    ramp = np.linspace(0, 65535, w).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (h, 1))).save(path)


def cmyk_jpeg(path, w=40, h=40):
    # no ink, full cyan, full magenta, full black
    arr = np.zeros((h, w, 4), np.uint8)
    arr[:h // 2, w // 2:, 0] = 255
    arr[h // 2:, :w // 2, 1] = 255
    arr[h // 2:, w // 2:, 3] = 255
    Image.fromarray(arr, 'CMYK').save(path, 'JPEG', quality=95)


def palette_alpha_png(path, rgba_palette, w=40, h=40):
    """P image of 4 colours, index i filling quadrant i, with per-index alpha 0, 128, 255, 255:
    either as a tRNS list of alphas or as an RGBA palette (both end up as PNG tRNS)."""
    colours = [(0, 0, 0), (200, 100, 50), RED, BLUE]
    alphas = [0, 128, 255, 255]
    idx = np.zeros((h, w), np.uint8)
    idx[:h // 2, w // 2:], idx[h // 2:, :w // 2], idx[h // 2:, w // 2:] = 1, 2, 3
    img = Image.fromarray(idx, 'L').convert('P')
    if rgba_palette:
        img.putpalette([v for c, a in zip(colours, alphas) for v in (*c, a)], 'RGBA')
        img.save(path)
    else:
        img.putpalette([v for c in colours for v in c])
        img.save(path, transparency=bytes(alphas))


def int_tiff(path, values, w=40, h=40):
    """32-bit integer ('I') TIFF holding `values` cycling along each row."""
    row = np.resize(np.asarray(values, np.int32), w)
    Image.fromarray(np.tile(row, (h, 1)), 'I').save(path, 'TIFF')


def truncated(path, fmt):
    buf = io.BytesIO()
    noise(64, 64).save(buf, fmt)
    path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])


# ---------------------------------------------------------------- I-mode scaling (task 1)

def _int_image(values, mode='I'):
    img = Image.new(mode, (len(values), 1))
    for x, v in enumerate(values):
        img.putpixel((x, 0), v)
    return img


@pytest.mark.parametrize('values, expected', [
    ([0, 50, 200, 255], [0, 50, 200, 255]),                 # 8-bit data: kept as is
    ([0, 200, 50000], [0, round(200 / 257), round(50000 / 257)]),  # 16-bit: v / 257
    ([256], [round(256 / 257)]),                            # just above 8 bits -> 16-bit
    ([65535, 0], [255, 0]),
    ([0, 70000, 140000], [0, 128, 255]),                    # wider: min..max, 127.5 -> 128
    ([-10, 0, 10], [0, 128, 255]),                          # negative: min..max
    ([7, 7], [7, 7]),                                       # constant 8-bit image
])
def test_int32_image_scaled_by_its_range(values, expected):
    gray = convert_image(_int_image(values), 1)
    assert [gray.getpixel((x, 0)) for x in range(len(values))] == expected


def test_true_16_bit_modes_always_divide_by_257():
    # I;16 says 16 bits, so 200 is a very dark 16-bit value even though it fits in 8 bits
    for mode in ('I;16', 'I;16B'):
        gray = convert_image(_int_image([200, 50000], mode), 1)
        assert [gray.getpixel((x, 0)) for x in range(2)] == [1, round(50000 / 257)]


def test_int32_tiff_with_8_bit_values_loads_bright(tmp_path):
    path = tmp_path / 'eight_bit.tif'
    int_tiff(path, [200, 10], w=2, h=1)
    with Image.open(path) as stored:
        assert stored.mode == 'I'
    img = load_image(str(path), 3)
    assert img.getpixel((0, 0)) == (200, 200, 200) and img.getpixel((1, 0)) == (10, 10, 10)


# ---------------------------------------------------------------- EXIF orientation (task 2)

@pytest.mark.parametrize('orientation, k', [(6, -1), (8, 1), (3, 2), (1, 0)])
def test_exif_orientation_is_applied(tmp_path, orientation, k):
    """Orientation 6 = rotate 90 degrees clockwise to display, 8 = counter-clockwise, 3 = 180."""
    path = tmp_path / f'photo_{orientation}.jpg'
    exif_jpeg(path, orientation, w=48, h=32)
    upright = np.rot90(quadrants(48, 32), k)  # numpy: k=1 is counter-clockwise
    want = quadrant_centres(Image.fromarray(np.ascontiguousarray(upright)))
    img = load_image(str(path), 3)
    assert img.size == ((32, 48) if orientation in (6, 8) else (48, 32))
    got = quadrant_centres(img)
    assert all(close(g, w) for g, w in zip(got, want)), (got, want)
    gray = load_image(str(path), 1)
    assert gray.size == img.size


def test_exif_orientation_6_layout_by_hand(tmp_path):
    # Stored 48x32: red TL, green TR, blue BL, white BR.  Turned 90 degrees clockwise it is
    # 32x48 with blue TL, red TR, white BL, green BR.
    path = tmp_path / 'phone.jpg'
    exif_jpeg(path, 6)
    got = quadrant_centres(load_image(str(path), 3))
    assert all(close(g, w) for g, w in zip(got, [BLUE, RED, WHITE, GREEN])), got


# ---------------------------------------------------------------- odd but valid files

def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / 'gray16.png'
    sixteen_bit_png(path, w=40)
    with Image.open(path) as stored:
        assert stored.mode == 'I;16'
    img = load_image(str(path), 3)
    row = [img.getpixel((x, 0))[0] for x in range(40)]
    ramp = np.linspace(0, 65535, 40).round()
    assert row == [int(v) for v in np.round(ramp / 257)]  # a ramp 0..255, not all white


def test_cmyk_jpeg_colours(tmp_path):
    path = tmp_path / 'cmyk.jpg'
    cmyk_jpeg(path)
    with Image.open(path) as stored:
        assert stored.mode == 'CMYK'
    got = quadrant_centres(load_image(str(path), 3))
    want = [WHITE, (0, 255, 255), (255, 0, 255), (0, 0, 0)]  # none, cyan, magenta, black
    assert all(close(g, w) for g, w in zip(got, want)), got


@pytest.mark.parametrize('rgba_palette', [False, True], ids=['trns-list', 'rgba-palette'])
def test_palette_with_alpha_composited_over_white(tmp_path, rgba_palette):
    path = tmp_path / 'palette.png'
    palette_alpha_png(path, rgba_palette)
    with Image.open(path) as stored:
        assert stored.mode == 'P' and 'transparency' in stored.info
    got = quadrant_centres(load_image(str(path), 3))
    # alpha 0 -> white; alpha 128 over white: c * 128/255 + 255 * 127/255
    half = tuple(round(c * 128 / 255 + 255 * 127 / 255) for c in (200, 100, 50))
    want = [WHITE, half, RED, BLUE]
    assert all(close(g, w, tol=1) for g, w in zip(got, want)), got


def test_unicode_and_spaces_in_names_and_symlinks(tmp_path):
    store = tmp_path / 'store'
    (store / 'A' / 'sub').mkdir(parents=True)
    noise(8, 8).save(store / 'A' / 'zèbre ü 1.png')
    noise(8, 8).save(store / 'outside file.png')
    os.symlink(store / 'outside file.png', store / 'A' / 'linked.png')  # a symlinked file
    os.symlink('.', store / 'A' / 'loop')                      # loops back to A ...
    os.symlink(store / 'A', store / 'A' / 'sub' / 'up')        # ... twice
    os.symlink(store / 'A', tmp_path / 'trainA')               # the folder itself is a link
    with time_limit(10):
        paths = make_dataset(str(tmp_path / 'trainA'))
    assert [os.path.basename(p) for p in paths] == ['linked.png', 'zèbre ü 1.png']
    for path in paths:
        assert load_image(path, 3).size == (8, 8)


# ---------------------------------------------------------------- unreadable files

@pytest.mark.parametrize('case, reason', [
    ('truncated.jpg', 'image file is truncated'),
    ('truncated.png', 'image file is truncated'),
    ('empty.png', 'the file is empty (0 bytes)'),
    ('text.png', 'not a recognised image format'),
    ('self_loop.png', 'Too many levels of symbolic links'),
    ('dangling.png', 'No such file or directory'),
])
def test_unreadable_file_one_line_error_naming_it(tmp_path, case, reason):
    path = tmp_path / case
    if case.startswith('truncated'):
        truncated(path, 'JPEG' if case.endswith('.jpg') else 'PNG')
    elif case == 'empty.png':
        path.write_bytes(b'')
    elif case == 'text.png':
        path.write_text('id,label\n1,zebra\n')
    elif case == 'self_loop.png':
        os.symlink(case, path)
    else:
        os.symlink(tmp_path / 'gone.png', path)
    with time_limit(10), pytest.raises(UserError) as err:
        load_image(str(path), 3)
    message = str(err.value)
    assert message.startswith(f'cannot read image {path}: ') and reason in message, message
    assert message.endswith('remove or replace it') and '\n' not in message


# ---------------------------------------------------------------- smaller than the crop

def small_image_path(tmp_path, w=20, h=12):
    path = tmp_path / 'small one.png'
    noise(w, h).save(path)
    return str(path)


@pytest.mark.parametrize('preprocess, load_size, crop_size, hw', [
    ('resize_and_crop', 36, 32, (32, 32)),            # resized to 36x36 first
    ('scale_width_and_crop', 36, 32, (32, 32)),       # width 36, height max(21.6, 32)
    ('scale_width', 36, 32, (32, 36)),
    ('scale_shortside_and_crop', 32, 32, (32, 32)),   # 12 -> 32, 20 -> 53
    ('scale_shortside', 32, 32, (32, 52)),            # 53 / 4 = 13.25 -> 52
    ('none', 36, 32, (12, 20)),
    ('trim', 36, 32, (12, 20)),                       # trim never enlarges
    ('zoom_crop', 36, 32, (32, 32)),                  # zoom never goes below the crop
])
def test_small_image_trains_where_the_mode_resizes(tmp_path, preprocess, load_size, crop_size, hw):
    opt = make_opt(tmp_path, preprocess=preprocess, load_size=load_size, crop_size=crop_size)
    data.check_preprocess_options(opt)
    out = get_transform(opt)(load_image(small_image_path(tmp_path), 3))
    assert tuple(out.shape) == (3, *hw)


@pytest.mark.parametrize('preprocess, load_size, fix', [
    ('crop', 36, 'use --preprocess resize_and_crop or scale_width_and_crop'),
    ('scale_shortside_and_crop', 16, 'raise --load_size to 32 or more'),
    ('resize_patch', 20, 'raise --load_size to 32 or more'),
])
def test_small_image_where_a_crop_needs_it_is_a_one_line_error(tmp_path, preprocess, load_size,
                                                               fix):
    # torchvision alone raises "ValueError: Required crop size (32, 32) is larger than input
    # image size (12, 20)" from deep inside the DataLoader, without the file
    path = small_image_path(tmp_path)
    opt = make_opt(tmp_path, preprocess=preprocess, load_size=load_size, crop_size=32)
    data.check_preprocess_options(opt)  # the options alone are fine: it depends on the image
    with pytest.raises(UserError) as err:
        get_transform(opt)(load_image(path, 3))
    message = str(err.value)
    assert type(err.value) is UserError and '\n' not in message
    assert message.startswith(f'image {path} is 20x12 pixels'), message
    assert f'smaller than --crop_size 32 with --preprocess {preprocess}' in message
    assert 'lower --crop_size to' in message and fix in message


def test_fixed_crop_position_never_pads_a_small_image(tmp_path):
    # the original pads with black (20x12 -> 16x16 with 4 black rows) or returns it uncropped
    opt = make_opt(tmp_path, preprocess='crop', crop_size=16)
    with pytest.raises(UserError, match='20x12 pixels, smaller than --crop_size 16'):
        get_transform(opt, params={'crop_pos': (0, 0)})(load_image(small_image_path(tmp_path), 3))


def test_small_image_error_through_the_dataset(tmp_path):
    make_flat(tmp_path / 'trainA', 2)
    make_flat(tmp_path / 'trainB', 2)
    path = small_image_path(tmp_path / 'trainB')
    loader = data.create_dataset(make_opt(tmp_path, preprocess='crop'))
    with pytest.raises(UserError, match='is 20x12 pixels') as err:
        list(loader)
    assert path in str(err.value)


# ---------------------------------------------------------------- the whole pipeline

def make_flat(folder, count, size=40):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        noise(size, size, seed=i).save(folder / f'plain_{i}.png')


def hostile_dataroot(tmp_path):
    """trainA (a symlink to store/A) and trainB holding every case that should train."""
    root = tmp_path / 'data'
    a = tmp_path / 'store' / 'A'
    a.mkdir(parents=True)
    noise(40, 40).save(a / 'plain.png')
    sixteen_bit_png(a / 'gray16.png')
    cmyk_jpeg(a / 'cmyk.jpg')
    exif_jpeg(a / 'phone.jpg', 6)
    palette_alpha_png(a / 'palette_trns.png', rgba_palette=False)
    palette_alpha_png(a / 'palette_rgba.png', rgba_palette=True)
    noise(40, 40, seed=3).save(a / 'zèbre ü 1.png')
    noise(5, 3, seed=4).save(a / 'tiny.png')          # smaller than the 32 px crop
    int_tiff(a / 'eight_bit.tif', [0, 100, 200, 255])
    noise(40, 40, seed=5).save(tmp_path / 'store' / 'outside.png')
    os.symlink(tmp_path / 'store' / 'outside.png', a / 'linked.png')
    os.symlink('.', a / 'loop')
    root.mkdir()
    os.symlink(a, root / 'trainA')
    b = root / 'trainB'
    make_flat(b, 2)
    Image.fromarray(np.eye(40, dtype=bool)).save(b / 'one_bit.png')
    Image.new('LA', (40, 40), (90, 128)).save(b / 'gray_alpha.png')
    Image.new('F', (40, 40), 0.25).save(b / 'float.tif')
    return root


HOSTILE_A = sorted(['plain.png', 'gray16.png', 'cmyk.jpg', 'phone.jpg', 'palette_trns.png',
                    'palette_rgba.png', 'zèbre ü 1.png', 'tiny.png', 'eight_bit.tif',
                    'linked.png'])


def test_hostile_dataset_yields_valid_tensors(tmp_path):
    root = hostile_dataroot(tmp_path)
    with time_limit(20):
        ds = UnalignedDataset(make_opt(root))
        assert sorted(os.path.basename(p) for p in ds.A_paths) == HOSTILE_A
        assert ds.B_size == 5 and len(ds) == 10
        for i in range(len(ds)):
            item = ds[i]
            for key in 'AB':
                t = item[key]
                assert t.shape == (3, 32, 32) and t.dtype == torch.float32
                assert torch.isfinite(t).all() and t.min() >= -1 and t.max() <= 1


def test_hostile_dataset_trains(tmp_path):
    root = hostile_dataroot(tmp_path)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'train.py'), '--dataroot', str(root),
         '--name', 'hostile', '--checkpoints_dir', str(tmp_path / 'ck'),
         '--n_epochs', '1', '--n_epochs_decay', '0', *FAST.split()],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'ck' / 'hostile' / 'latest_net_G.pth').is_file()


def test_data_error_end_to_end_is_one_line(tmp_path):
    """A crop larger than one image, found by a DataLoader worker: exit 2, one stderr line."""
    make_flat(tmp_path / 'd' / 'trainA', 2)
    make_flat(tmp_path / 'd' / 'trainB', 2)
    small = small_image_path(tmp_path / 'd' / 'trainA')
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'train.py'), '--dataroot', str(tmp_path / 'd'),
         '--name', 'small', '--checkpoints_dir', str(tmp_path / 'ck'), '--n_epochs', '1',
         '--n_epochs_decay', '0', *FAST.split(), '--num_threads', '1', '--preprocess', 'crop'],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert lines[0].startswith(f'error: image {small} is 20x12 pixels, smaller than '
                               f'--crop_size 32 with --preprocess crop; '), lines[0]
