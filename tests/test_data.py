"""Tests of the data package: file listing, image decoding, preprocessing, datasets, loader.

Expected values come from the original's behaviour, hand arithmetic or a direct PIL/numpy
re-computation, never from running the code under test.
"""
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.base_dataset import check_preprocess_options, get_transform
from data.image_folder import make_dataset
from data.image_io import convert_image, load_image
from data.single_dataset import SingleDataset
from data.unaligned_dataset import UnalignedDataset
from util.errors import UserError

from conftest import data_opt


make_opt = data_opt  # the data package's options, see conftest


def noise(h, w, seed, channels=3):
    shape = (h, w, channels) if channels == 3 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_split(root, name, count, h=30, w=40, seed=0):
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(noise(h, w, seed + i)).save(folder / f"{i:02d}.png")
    return [str(folder / f"{i:02d}.png") for i in range(count)]


def to_expected_tensor(img):
    """Naive ToTensor + Normalize(0.5, 0.5): uint8 HxW(xC) -> float CxHxW in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(((arr - 0.5) / 0.5).transpose(2, 0, 1).copy())


# ---------------------------------------------------------------- image_folder.make_dataset

def test_make_dataset_recurses_filters_sorts_and_follows_links(tmp_path):
    root = tmp_path / 'trainA'
    (root / 'sub' / 'deeper').mkdir(parents=True)
    other = tmp_path / 'elsewhere'
    other.mkdir()
    wanted = ['b.png', 'a.JPG', 'x.Tiff', 'sub/c.jpeg', 'sub/deeper/d.webp', 'sub/e.bmp',
              'link/f.ppm']
    for rel in ['b.png', 'a.JPG', 'x.Tiff', 'sub/c.jpeg', 'sub/deeper/d.webp', 'sub/e.bmp',
                'notes.txt', 'anim.gif', 'sub/deeper/readme.md']:
        (root / rel).write_bytes(b'')
    (other / 'f.ppm').write_bytes(b'')
    os.symlink(other, root / 'link')
    os.symlink(root, root / 'sub' / 'loop')  # a cycle must not recurse forever
    paths = make_dataset(str(root))
    expected = sorted(str(root / rel) for rel in wanted)
    assert paths == expected


def test_make_dataset_truncates_after_sorting(tmp_path):
    for name in ['m.png', 'z.png', 'a.png', 'q.png', 'c.png']:
        (tmp_path / name).write_bytes(b'')
    assert make_dataset(str(tmp_path), 2) == [str(tmp_path / 'a.png'), str(tmp_path / 'c.png')]
    assert len(make_dataset(str(tmp_path), float('inf'))) == 5
    assert make_dataset(str(tmp_path), 10.0)[-1] == str(tmp_path / 'z.png')


def test_make_dataset_missing_folder_names_it(tmp_path):
    missing = tmp_path / 'trainA'
    with pytest.raises(UserError, match='image folder not found') as err:
        make_dataset(str(missing))
    assert str(missing) in str(err.value)


# ---------------------------------------------------------------- image_io

def _palette_image(transparent):
    img = Image.new('P', (2, 1))
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    if transparent:
        img.info['transparency'] = 0
    return img


def _array_image(values, mode):
    """A 1-row image of `mode` holding `values` (set pixel by pixel, no fromarray modes)."""
    img = Image.new(mode, (len(values), 1))
    for x, v in enumerate(values):
        img.putpixel((x, 0), v)
    return img


def _keyed(img):
    """Mark black (0 / (0, 0, 0)) as the transparent colour key, as PNG's tRNS chunk does."""
    img.info['transparency'] = 0 if img.mode != 'RGB' else (0, 0, 0)
    return img


# (mode, image, file format, expected RGB of each pixel in the first row)
MODE_CASES = [
    ('L', _array_image([0, 77, 255], 'L'), 'PNG', [(0, 0, 0), (77, 77, 77), (255,) * 3]),
    ('L', _keyed(_array_image([0, 77], 'L')), 'PNG', [(255,) * 3, (77,) * 3]),
    ('RGB', _keyed(_array_image([(0, 0, 0), (1, 2, 3)], 'RGB')), 'PNG', [(255,) * 3, (1, 2, 3)]),
    ('1', _array_image([0, 1], '1'), 'PNG', [(0, 0, 0), (255, 255, 255)]),
    ('LA', _array_image([(100, 0), (100, 255)], 'LA'), 'PNG', [(255,) * 3, (100,) * 3]),
    ('RGB', _array_image([(255, 0, 0), (1, 2, 3)], 'RGB'), 'PNG', [(255, 0, 0), (1, 2, 3)]),
    ('RGBA', _array_image([(10, 20, 30, 0), (10, 20, 30, 255)], 'RGBA'), 'PNG',
     [(255, 255, 255), (10, 20, 30)]),
    ('P', _palette_image(False), 'PNG', [(0, 0, 0), (200, 100, 50)]),
    ('P', _palette_image(True), 'PNG', [(255, 255, 255), (200, 100, 50)]),
    # CMYK: no ink is white, full cyan removes red.
    ('CMYK', _array_image([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)], 'CMYK'), 'TIFF',
     [(255,) * 3, (0, 255, 255), (0, 0, 0)]),
    # 16 bit: v / 257, so 65535 -> 255 and 32896 = 128 * 257 -> 128 (not clipped to 255).
    ('I;16', _array_image([0, 32896, 65535], 'I;16'), 'PNG', [(0,) * 3, (128,) * 3, (255,) * 3]),
    ('I;16B', _array_image([0, 32896, 65535], 'I;16B'), 'TIFF',
     [(0,) * 3, (128,) * 3, (255,) * 3]),
    ('I', _array_image([0, 257 * 10, 65535], 'I'), 'TIFF', [(0,) * 3, (10,) * 3, (255,) * 3]),
    # floats in [0, 1] are intensities: 0.5 * 255 = 127.5 -> 128 (round half to even)
    ('F', _array_image([0.0, 0.5, 1.0], 'F'), 'TIFF', [(0,) * 3, (128,) * 3, (255,) * 3]),
]


@pytest.mark.parametrize('mode, img, fmt, expected', MODE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MODE_CASES)])
def test_load_image_converts_every_mode(tmp_path, mode, img, fmt, expected):
    path = tmp_path / f"img.{fmt.lower()}"
    key = img.info.get('transparency')
    img.save(path, fmt, **({} if key is None else {'transparency': key}))
    with Image.open(path) as stored:  # the file really holds the mode under test
        assert stored.mode == mode and stored.info.get('transparency') == key
    rgb = load_image(str(path), 3)
    assert rgb.mode == 'RGB' and rgb.size == img.size
    assert [rgb.getpixel((x, 0)) for x in range(len(expected))] == expected
    gray = load_image(str(path), 1)
    assert gray.mode == 'L'
    for x, (r, g, b) in enumerate(expected):  # ITU-R 601 luma of the expected colour
        assert abs(gray.getpixel((x, 0)) - (0.299 * r + 0.587 * g + 0.114 * b)) <= 1


def test_convert_image_partial_alpha_and_wide_int_range():
    # alpha 128 of black over white: 255 * (1 - 128/255) = 127
    half = convert_image(_array_image([(0, 0, 0, 128)], 'RGBA'), 3).getpixel((0, 0))
    assert all(abs(c - 127) <= 1 for c in half)
    # 32-bit values outside [0, 65535] are stretched min..max
    wide = convert_image(_array_image([-100, 0, 100], 'I'), 1)
    assert [wide.getpixel((x, 0)) for x in range(3)] == [0, 128, 255]  # 127.5 -> 128
    # floats outside [0, 1] are read as 0..255 values
    assert convert_image(_array_image([200.0, 300.0], 'F'), 1).getpixel((0, 0)) == 200


@pytest.mark.parametrize('content', [b'not an image at all', 'truncated'])
def test_load_image_unreadable_file_names_it(tmp_path, content):
    path = tmp_path / 'broken.png'
    if content == 'truncated':
        Image.fromarray(noise(64, 64, 0)).save(path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(UserError, match='cannot read image') as err:
        load_image(str(path), 3)
    assert str(path) in str(err.value) and 'remove or replace it' in str(err.value)
    assert '\n' not in str(err.value)


# ---------------------------------------------------------------- get_transform

def transform_image(img, **overrides):
    opt = make_opt('/unused', **overrides)
    grayscale = img.mode == 'L'
    return get_transform(opt, grayscale=grayscale)(img)


def rgb(w, h, seed=0):
    return Image.fromarray(noise(h, w, seed))


def test_resize_and_crop_gives_crop_size():
    out = transform_image(rgb(40, 30), preprocess='resize_and_crop', load_size=32, crop_size=16)
    assert out.shape == (3, 16, 16)
    assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1


def test_gta2cityscapes_halves_resize_height():
    opt = make_opt('/data/gta2cityscapes', preprocess='resize', load_size=32)
    assert get_transform(opt)(rgb(40, 30)).shape == (3, 16, 32)


@pytest.mark.parametrize('size, overrides, expected_hw', [
    # scale_width: width := load, height := int(max(load*h/w, crop)) = 32 and 16
    ((100, 50), dict(preprocess='scale_width', load_size=64, crop_size=16), (32, 64)),
    ((100, 10), dict(preprocess='scale_width', load_size=64, crop_size=16), (16, 64)),
    # scale_shortside upscales 30x20 by 40/20 = 2 -> 60x40 ...
    ((30, 20), dict(preprocess='scale_shortside', load_size=40), (40, 60)),
    # ... never downscales: 50x45 stays, then rounding to 4: 12.5 -> 12, 11.25 -> 11
    ((50, 45), dict(preprocess='scale_shortside', load_size=40), (44, 48)),
    ((30, 20), dict(preprocess='scale_shortside_and_crop', load_size=40, crop_size=32),
     (32, 32)),
    # none: only make_power_2; 966/4 = 241.5 -> 242, 770/4 = 192.5 -> 192 (half to even)
    ((966, 770), dict(preprocess='none'), (768, 968)),
    # 286/4 = 71.5 -> 72 and 290/4 = 72.5 -> 72: both become 288
    ((286, 290), dict(preprocess='none'), (288, 288)),
    # trim keeps at most crop per axis: 10 -> 10/4 = 2.5 -> 2 -> 8
    ((10, 30), dict(preprocess='trim', crop_size=16), (16, 8)),
])
def test_preprocess_output_sizes(size, overrides, expected_hw):
    out = transform_image(rgb(*size), **overrides)
    assert tuple(out.shape) == (3, *expected_hw)


def test_zoom_with_fixed_factor_clamps_to_crop_size():
    opt = make_opt('/unused', preprocess='zoom', crop_size=16)
    out = get_transform(opt, params={'scale_factor': (0.5, 1.0)})(rgb(40, 30))
    # width max(16, 20) = 20; height 30 -> 30/4 = 7.5 -> 8 -> 32
    assert out.shape == (3, 32, 20)


def test_none_keeps_pixels_and_fixed_crop_position():
    img = rgb(40, 28)
    out = transform_image(img, preprocess='none')
    assert torch.allclose(out, to_expected_tensor(img), atol=1e-6)
    opt = make_opt('/unused', preprocess='crop', crop_size=16)
    cropped = get_transform(opt, params={'crop_pos': (5, 7)})(img)
    assert torch.allclose(cropped, to_expected_tensor(np.asarray(img)[7:23, 5:21]), atol=1e-6)


def test_value_range_exact_for_constant_images():
    white = transform_image(Image.new('RGB', (40, 30), (255, 255, 255)))
    black = transform_image(Image.new('RGB', (40, 30), (0, 0, 0)))
    assert torch.equal(white, torch.ones(3, 16, 16))
    assert torch.equal(black, -torch.ones(3, 16, 16))
    gray = transform_image(Image.new('L', (40, 30), 51))
    assert gray.shape == (1, 16, 16)
    assert torch.allclose(gray, torch.full((1, 16, 16), 51 / 255 * 2 - 1), atol=1e-6)


def test_flip_random_unless_no_flip_and_fixed_by_params():
    img = rgb(16, 16)
    plain = to_expected_tensor(img)
    mirrored = torch.flip(plain, dims=[2])
    torch.manual_seed(0)
    outs = [transform_image(img, preprocess='none', no_flip=False) for _ in range(20)]
    assert all(torch.equal(o, plain) or torch.equal(o, mirrored) for o in outs)
    assert any(torch.equal(o, mirrored) for o in outs) and any(torch.equal(o, plain) for o in outs)
    assert all(torch.allclose(transform_image(img, preprocess='none', no_flip=True), plain)
               for _ in range(10))
    opt = make_opt('/unused', preprocess='none', no_flip=False)
    assert torch.allclose(get_transform(opt, params={'flip': True})(img), mirrored)
    assert torch.allclose(get_transform(opt, params={'flip': False})(img), plain)


def test_check_preprocess_options_rejects_bad_values():
    with pytest.raises(UserError, match="unknown --preprocess 'sharpen'") as err:
        check_preprocess_options(make_opt('/x', preprocess='sharpen'))
    assert 'resize_and_crop' in str(err.value) and 'scale_shortside_and_crop' in str(err.value)
    with pytest.raises(UserError, match='--crop_size 256.*--load_size 200'):
        check_preprocess_options(make_opt('/x', load_size=200, crop_size=256))
    with pytest.raises(UserError, match='--crop_size'):
        check_preprocess_options(make_opt('/x', preprocess='scale_width_and_crop',
                                          load_size=100, crop_size=128))
    with pytest.raises(UserError, match='--crop_size'):  # gta2cityscapes: height 286 // 2
        check_preprocess_options(make_opt('/x/gta2cityscapes', load_size=286, crop_size=256))
    for ok in ['none', 'resize_and_crop', 'scale_width', 'crop']:
        check_preprocess_options(make_opt('/x', preprocess=ok, load_size=286, crop_size=256))


def test_crop_larger_than_image_is_a_user_error():
    with pytest.raises(UserError, match='--crop_size 64'):
        transform_image(rgb(40, 30), preprocess='crop', crop_size=64)


# ---------------------------------------------------------------- UnalignedDataset

def test_unaligned_length_and_serial_pairing(tmp_path):
    a = make_split(tmp_path, 'trainA', 3)
    b = make_split(tmp_path, 'trainB', 2, seed=10)
    ds = UnalignedDataset(make_opt(tmp_path))
    assert len(ds) == 3
    for i in range(5):
        item = ds[i]
        assert (item['A_paths'], item['B_paths']) == (a[i % 3], b[i % 2])
        assert item['A'].shape == item['B'].shape == (3, 16, 16)


def test_unaligned_random_b_uses_python_random(tmp_path):
    make_split(tmp_path, 'trainA', 2)
    b = make_split(tmp_path, 'trainB', 5, seed=10)
    ds = UnalignedDataset(make_opt(tmp_path, serial_batches=False))
    random.seed(7)
    picked = [ds[i]['B_paths'] for i in range(8)]
    reference = random.Random(7)
    assert picked == [b[reference.randint(0, 4)] for _ in range(8)]


def test_unaligned_channels_follow_direction(tmp_path):
    make_split(tmp_path, 'trainA', 1)
    make_split(tmp_path, 'trainB', 1)
    atob = UnalignedDataset(make_opt(tmp_path, input_nc=1, output_nc=3))[0]
    assert atob['A'].shape[0] == 1 and atob['B'].shape[0] == 3
    btoa = UnalignedDataset(make_opt(tmp_path, input_nc=1, output_nc=3, direction='BtoA'))[0]
    assert btoa['A'].shape[0] == 3 and btoa['B'].shape[0] == 1


def test_unaligned_test_phase_falls_back_to_val(tmp_path):
    make_split(tmp_path, 'valA', 1)
    make_split(tmp_path, 'valB', 1)
    ds = UnalignedDataset(make_opt(tmp_path, phase='test', isTrain=False))
    assert ds.dir_A == str(tmp_path / 'valA') and ds.dir_B == str(tmp_path / 'valB')
    make_split(tmp_path, 'testA', 1)
    make_split(tmp_path, 'testB', 1)
    assert UnalignedDataset(make_opt(tmp_path, phase='test')).dir_A == str(tmp_path / 'testA')


def test_fine_tuning_switch_resizes_to_crop_size(tmp_path):
    a = make_split(tmp_path, 'trainA', 1)
    make_split(tmp_path, 'trainB', 1)
    opt = make_opt(tmp_path, n_epochs=2, load_size=32, crop_size=16)
    direct = to_expected_tensor(Image.open(a[0]).convert('RGB').resize((16, 16), Image.BICUBIC))
    ds = UnalignedDataset(opt)
    ds.current_epoch = 3  # a decay epoch: the "crop" covers the whole 16x16 resize
    assert torch.allclose(ds[0]['A'], direct, atol=1e-6)
    assert opt.load_size == 32  # the shared options are untouched
    ds.current_epoch = 2  # last normal epoch: a random 16x16 crop of the 32x32 resize
    torch.manual_seed(0)
    assert not torch.allclose(ds[0]['A'], direct, atol=1e-3)
    test_ds = UnalignedDataset(make_opt(tmp_path, isTrain=False, n_epochs=2))
    test_ds.current_epoch = 3  # the switch is for training only
    assert not torch.allclose(test_ds[0]['A'], direct, atol=1e-3)


def test_unaligned_empty_or_missing_folder(tmp_path):
    make_split(tmp_path, 'trainA', 1)
    (tmp_path / 'trainB').mkdir()
    with pytest.raises(UserError, match='no images found') as err:
        UnalignedDataset(make_opt(tmp_path))
    assert str(tmp_path / 'trainB') in str(err.value)
    with pytest.raises(UserError, match='image folder not found'):
        UnalignedDataset(make_opt(tmp_path, phase='test'))


# ---------------------------------------------------------------- SingleDataset

def test_single_dataset_reads_root_and_picks_channels(tmp_path):
    paths = make_split(tmp_path, 'imgs', 2)
    root = tmp_path / 'imgs'
    item = SingleDataset(make_opt(root, dataset_mode='single', input_nc=1, output_nc=3))[1]
    assert set(item) == {'A', 'A_paths'} and item['A_paths'] == paths[1]
    assert item['A'].shape == (1, 16, 16)
    btoa = SingleDataset(make_opt(root, input_nc=1, output_nc=3, direction='BtoA'))
    assert len(btoa) == 2 and btoa[0]['A'].shape == (3, 16, 16)


# ---------------------------------------------------------------- registry and loader

def test_registry_lookup_and_unknown_name():
    assert data.find_dataset_class('unaligned') is UnalignedDataset
    assert data.find_dataset_class('single') is SingleDataset
    parser = object()
    assert data.get_option_setter('unaligned')(parser, True) is parser
    with pytest.raises(UserError, match="unknown --dataset_mode 'x'; choose from: single, "
                                        "singleimage, "
                                        "unaligned"):
        data.find_dataset_class('x')


def test_loader_drop_last_len_and_message(tmp_path, capsys):
    make_split(tmp_path, 'trainA', 5)
    make_split(tmp_path, 'trainB', 2, seed=10)
    train = data.create_dataset(make_opt(tmp_path, batch_size=2))
    assert 'dataset [UnalignedDataset] was created' in capsys.readouterr().out
    assert len(train) == 5
    assert [b['A'].shape[0] for b in train.load_data()] == [2, 2]  # incomplete batch dropped
    test = data.create_dataset(make_opt(tmp_path, batch_size=2, isTrain=False))
    batches = list(test)
    assert [b['A'].shape[0] for b in batches] == [2, 2, 1]
    assert len(batches[0]['A_paths']) == 2 and isinstance(batches[0]['A_paths'][0], str)
    capped = data.create_dataset(make_opt(tmp_path, max_dataset_size=3))
    assert len(capped) == 3 and len(list(capped)) == 3


class _CountingDataset(data.BaseDataset):
    """Ignores max_dataset_size, like the 100000-item single-image dataset."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return {'A': torch.tensor([index])}


def test_loader_stops_at_max_dataset_size(monkeypatch):
    monkeypatch.setitem(data.DATASETS, 'counting', _CountingDataset)
    loader = data.create_dataset(make_opt('/unused', dataset_mode='counting', batch_size=2,
                                          max_dataset_size=5, preprocess='none'))
    assert len(loader) == 5
    # batches start at samples 0, 2, 4; the next would start at 6 >= 5
    assert [b['A'].flatten().tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]


def test_loader_rejects_batch_larger_than_training_set(tmp_path):
    make_split(tmp_path, 'trainA', 2)
    make_split(tmp_path, 'trainB', 3)
    with pytest.raises(UserError, match='--batch_size 4') as err:
        data.create_dataset(make_opt(tmp_path, batch_size=4))
    assert str(tmp_path / 'trainA') in str(err.value) and '(3 samples' in str(err.value)
    assert len(list(data.create_dataset(make_opt(tmp_path, batch_size=4, isTrain=False)))) == 1


def test_seed_worker_seeds_random_and_numpy_from_torch():
    torch.manual_seed(1234)
    data.seed_worker(0)
    assert random.random() == random.Random(1234).random()
    assert np.random.rand() == np.random.RandomState(1234).rand()


def _epochs(loader, n=2):
    out = []
    for epoch in range(1, n + 1):
        loader.set_epoch(epoch)
        out.append([(b['A'], b['B'], b['B_paths']) for b in loader])
    return out


def _same(run1, run2):
    return all(len(e1) == len(e2) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2]
        for x, y in zip(e1, e2)) for e1, e2 in zip(run1, run2))


@pytest.mark.parametrize('num_threads', [0, 2])
def test_seeded_loaders_are_reproducible(tmp_path, num_threads):
    make_split(tmp_path, 'trainA', 4)
    make_split(tmp_path, 'trainB', 3, seed=10)
    # shuffle, random B pick, numpy zoom, torch crop and flip are all in play
    kw = dict(num_threads=num_threads, batch_size=2, serial_batches=False, no_flip=False,
              preprocess='resize_zoom_crop', n_epochs=10)

    def run(seed, global_seed):
        # With workers, the caller's global RNG state must not matter; without, it is the source.
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        np.random.seed(global_seed)
        return _epochs(data.create_dataset(make_opt(tmp_path, seed=seed, **kw)))

    first = run(seed=5, global_seed=0)
    again = run(seed=5, global_seed=0 if num_threads == 0 else 99)
    other = run(seed=6, global_seed=1)
    assert _same(first, again)
    assert not _same(first, other)
    assert not torch.equal(first[0][0][0], first[1][0][0])  # epochs differ


def test_workers_see_epoch_and_report_bad_files_in_one_line(tmp_path):
    a = make_split(tmp_path, 'trainA', 2)
    make_split(tmp_path, 'trainB', 2)
    loader = data.create_dataset(make_opt(tmp_path, num_threads=2, n_epochs=1, seed=0))
    loader.set_epoch(2)  # decay epoch: fresh workers must build the no-crop transform
    batch = next(iter(loader))
    direct = to_expected_tensor(Image.open(a[0]).convert('RGB').resize((16, 16), Image.BICUBIC))
    assert torch.allclose(batch['A'][0], direct, atol=1e-6)
    (tmp_path / 'trainB' / '01.png').write_bytes(b'corrupt')
    with pytest.raises(UserError) as err:
        list(data.create_dataset(make_opt(tmp_path, num_threads=2, seed=0)))
    message = str(err.value)
    assert message.startswith('cannot read image') and '\n' not in message
    assert str(tmp_path / 'trainB' / '01.png') in message
