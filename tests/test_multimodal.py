"""Models with a style code in test.py, translate.py and load_translator: --n_styles writes K
different outputs and a strip, --style_ref depends on the reference only, the same seed gives
the same images, the Python API agrees with test.py, and misuse is a one-line error."""
import importlib.util
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, write_images
from models import create_model, load_translator
from models.translator import StyleTranslator
from options.train_options import TrainOptions
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = ("--ngf 4 --ndf 4 --munit_mlp_dim 8 --munit_style_dim 3 --munit_n_res 1 "
        "--munit_dis_layers 2 --munit_num_scales 2 --gpu_ids -1")
SIZE = 32


def load_script(name):
    """test.py / translate.py as modules (the standard library has a `test` package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", os.path.join(ROOT, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_checkpoint(root, name, model, arch):
    """An untrained run folder as training leaves it: train_opt.json and latest_net_*.pth."""
    options = TrainOptions(f"--dataroot {root / 'data'} --checkpoints_dir {root / 'ck'} --name {name} "
                           f"--model {model} {arch}")
    opt = options.parse()
    torch.manual_seed(0)
    net = create_model(opt)
    options.save_options(opt)
    net.save_networks("latest")
    return root / "ck" / name


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multimodal")
    for split, seed in (("testA", 0), ("testB", 1), ("trainA", 2), ("trainB", 3)):
        write_images(root / "data" / split, 2, SIZE, seed)
    folder = make_checkpoint(root, "munit", "munit", ARCH)
    return root, folder


def test_py(root, extra, results):
    argv = (f"--dataroot {root / 'data'} --checkpoints_dir {root / 'ck'} --name munit --model munit "
            f"{ARCH} --load_size {SIZE} --num_test 2 --results_dir {results} {extra}").split()
    assert load_script("test").main(argv) == 0
    return results / "munit" / "test_latest" / "images"


test_py.__test__ = False  # a helper, not a test


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_n_styles_writes_k_different_outputs_and_a_strip(run, tmp_path):
    root, _ = run
    images = test_py(root, "--n_styles 3", tmp_path / "a")
    outs = [pixels(images / f"fake_B_s{j}" / "img_000.png") for j in range(3)]
    assert all(o.shape == (SIZE, SIZE, 3) for o in outs)
    assert all(not np.array_equal(outs[i], outs[j]) for i in range(3) for j in range(i + 1, 3))
    strip = pixels(images / "styles" / "img_000.png")
    assert strip.shape == (SIZE, 4 * SIZE, 3)
    assert np.array_equal(strip[:, :SIZE], pixels(images / "real_A" / "img_000.png"))
    for j, out in enumerate(outs):
        assert np.array_equal(strip[:, (j + 1) * SIZE:(j + 2) * SIZE], out)
    # the second image gets styles of its own
    assert not np.array_equal(pixels(images / "fake_B_s0" / "img_001.png"), outs[0])
    again = test_py(root, "--n_styles 3", tmp_path / "b")  # seeded (10 by default): the same
    assert np.array_equal(pixels(again / "fake_B_s2" / "img_001.png"), pixels(images / "fake_B_s2" / "img_001.png"))
    other = test_py(root, "--n_styles 3 --seed 4", tmp_path / "c")
    assert not np.array_equal(pixels(other / "fake_B_s0" / "img_000.png"), outs[0])


def test_style_ref_output_depends_on_the_reference_only(run, tmp_path):
    root, _ = run
    ref0, ref1 = root / "data" / "testB" / "img_000.png", root / "data" / "testB" / "img_001.png"
    first = test_py(root, f"--style_ref {ref0}", tmp_path / "a")
    second = test_py(root, f"--style_ref {ref0} --seed 7", tmp_path / "b")
    third = test_py(root, f"--style_ref {ref1}", tmp_path / "c")
    for name in ("img_000.png", "img_001.png"):
        assert np.array_equal(pixels(first / "fake_B" / name), pixels(second / "fake_B" / name))
        assert not np.array_equal(pixels(first / "fake_B" / name), pixels(third / "fake_B" / name))
    assert sorted(os.listdir(first)) == ["fake_B", "real_A"]


def test_api_agrees_with_test_py_and_draws_reproducible_styles(run, tmp_path):
    root, folder = run
    images = test_py(root, "", tmp_path / "a")  # one random style per image, seed 10
    assert sorted(os.listdir(images)) == ["fake_B", "real_A"]
    translate = load_translator(str(folder), device="cpu")
    assert isinstance(translate, StyleTranslator) and translate.style_dim == 3
    horse = Image.open(root / "data" / "testA" / "img_000.png")
    assert np.array_equal(np.asarray(translate(horse)), pixels(images / "fake_B" / "img_000.png"))
    zebras = translate(horse, n_styles=3)
    assert len(zebras) == 3 and all(z.size == horse.size for z in zebras)
    assert not np.array_equal(np.asarray(zebras[0]), np.asarray(zebras[1]))
    ref = root / "data" / "testB" / "img_001.png"
    by_path = translate(horse, style_ref=str(ref))
    other_seed = load_translator(str(folder / "latest_net_G_B.pth"), device="cpu", seed=3)
    assert np.array_equal(np.asarray(by_path), np.asarray(other_seed(horse, style_ref=Image.open(ref))))
    # tensors: one output per row of explicit codes, each equal to the model's own translation
    x = torch.rand(2, 3, 20, 24) * 2 - 1
    codes = torch.randn(2, 3)
    outs = translate(x, styles=codes)
    assert len(outs) == 2 and outs[0].shape == x.shape
    with torch.no_grad():
        direct = translate.model.translate_with_styles(x, codes[1:].expand(2, -1))
    assert torch.allclose(outs[1], direct, atol=1e-6)
    odd = Image.fromarray(np.asarray(horse)[:29, :31])  # padded to 32 x 32, cropped back
    assert translate(odd).size == (31, 29)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(n_styles=2, style_ref="x.png"), "give one of n_styles, style_ref and styles"),
    (dict(n_styles=0), "n_styles must be a positive number of styles"),
    (dict(style_ref="missing.png"), "style_ref missing.png: file not found"),
])
def test_api_misuse_is_a_one_line_error(run, kwargs, needle):
    root, folder = run
    translate = load_translator(str(folder), device="cpu")
    with pytest.raises(UserError, match=needle) as info:
        translate(Image.open(root / "data" / "testA" / "img_000.png"), **kwargs)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="generator options .ngf. do not apply to --model munit"):
        load_translator(str(folder), device="cpu", ngf=4)


def test_translate_py_writes_styles_at_the_inputs_size(run, tmp_path):
    root, folder = run
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (29, 37, 3), dtype=np.uint8)).save(photos / "odd.png")
    translate = load_script("translate")
    assert translate.main([str(photos), "--checkpoint", str(folder), "-o", str(tmp_path / "out"),
                           "--n_styles", "2", "--device", "cpu"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["odd_s0.png", "odd_s1.png", "odd_styles.png"]
    assert Image.open(tmp_path / "out" / "odd_s1.png").size == (37, 29)
    assert Image.open(tmp_path / "out" / "odd_styles.png").size == (3 * 37, 29)
    ref = root / "data" / "testB" / "img_000.png"
    assert translate.main([str(photos), "--checkpoint", str(folder), "-o", str(tmp_path / "ref"),
                           "--style_ref", str(ref), "--device", "cpu"]) == 0
    expected = load_translator(str(folder), device="cpu")(Image.open(photos / "odd.png"), style_ref=str(ref))
    assert np.array_equal(pixels(tmp_path / "ref" / "odd.png"), np.asarray(expected))


def test_models_without_a_style_code_refuse_the_options(run, tmp_path):
    root, _ = run
    cut = make_checkpoint(root, "cut", "cut", "--ngf 4 --ndf 4 --gpu_ids -1 --netG resnet_6blocks")
    translate = load_script("translate")
    with pytest.raises(UserError, match=r"^--model cut has no style code; --n_styles and --style_ref "
                                        r"work with drit and munit") as info:
        translate.main([str(root / "data" / "testA"), "--checkpoint", str(cut), "-o",
                        str(tmp_path / "out"), "--n_styles", "2", "--device", "cpu"])
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()
    with pytest.raises(UserError, match=r"--model cut has no style code"):
        load_script("test").main(f"--dataroot {root / 'data'} --checkpoints_dir {root / 'ck'} "
                                 f"--name cut --model cut --style_ref x.png".split())
    with pytest.raises(UserError, match=r"give --n_styles or --style_ref, not both"):
        test_py(root, "--n_styles 2 --style_ref x.png", tmp_path)
