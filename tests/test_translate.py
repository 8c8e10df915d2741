"""Inference for users (issue 11): models.load_translator and translate.py."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import translate as translate_script
from conftest import ROOT, make_unaligned, write_images
from models import load_translator
from models.networks import define_G
from models.networks.describe import guess_generator_options
from util.errors import UserError
from util.tiling import run_tiled

TINY = ("--ngf 4 --ndf 4 --netF_nc 8 --num_patches 4 --load_size 36 --crop_size 32 "
        "--num_threads 0 --gpu_ids -1 --display_id 0")


def run(script, args, cwd, check=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CUT generator with ngf 4, trained for one 2-image epoch by train.py; its folder holds
    train_opt.json."""
    tmp = tmp_path_factory.mktemp("cut")
    root = make_unaligned(tmp / "d", splits=("train",), n_a=2, n_b=2, size=36)
    run("train.py", f"--dataroot {root} --name t --checkpoints_dir {tmp}/ck --n_epochs 1 "
                    f"--n_epochs_decay 0 {TINY}".split(), cwd=tmp)
    return tmp / "ck" / "t" / "latest_net_G.pth"


def random_image(size, mode="RGB", seed=0):
    w, h = size
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def pixels(path):
    return np.asarray(Image.open(path))


# ---------------------------------------------------------------------------- the API
@pytest.mark.parametrize("size,mode", [((333, 517), "RGB"), ((64, 1000), "L"), ((45, 31), "RGBA"),
                                       ((30, 21), "I;16"), ((3, 2), "RGB")])
def test_any_size_and_mode_comes_back_rgb_at_the_input_size(trained, size, mode):
    out = load_translator(str(trained), device="cpu")(random_image(size, mode))
    assert out.mode == "RGB" and out.size == size


def test_tensor_in_tensor_out(trained):
    translate = load_translator(str(trained))
    x = torch.rand(2, 3, 30, 50) * 2 - 1
    y = translate(x)
    assert y.shape == (2, 3, 30, 50) and y.abs().max() <= 1
    # each image of a batch is translated on its own (instance norm, no batch statistics)
    assert torch.allclose(y[1:], translate(x[1:]), atol=1e-5)


def test_output_equals_test_py_fake_b(trained, tmp_path):
    """A 256x256 image passes test.py's pipeline unchanged (resize to 256, crop 256), so test.py's
    fake_B and the translator's output must agree pixel for pixel; translate.py too."""
    data = tmp_path / "data"
    write_images(data / "testA", 1, 256, seed=5)
    write_images(data / "testB", 1, 256, seed=6)
    ck = trained.parent
    run("test.py", f"--dataroot {data} --name t --checkpoints_dir {ck.parent} --results_dir "
                   f"{tmp_path}/res --gpu_ids -1 --ngf 4".split(), cwd=tmp_path)
    fake_b = pixels(tmp_path / "res" / "t" / "test_latest" / "images" / "fake_B" / "img_000.png")

    api = np.asarray(load_translator(str(trained))(Image.open(data / "testA" / "img_000.png")))
    assert np.array_equal(api, fake_b)

    proc = run("translate.py", ["--checkpoint", str(ck), str(data / "testA"), "-o",
                                str(tmp_path / "out"), "--device", "cpu"], cwd=tmp_path)
    assert np.array_equal(pixels(tmp_path / "out" / "img_000.png"), fake_b)
    assert "translated 1 image(s)" in proc.stdout


def test_shell_and_api_give_the_same_pixels_at_odd_sizes(trained, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    random_image((37, 23), seed=1).save(src / "a.png")
    random_image((19, 41), "RGBA", seed=2).save(src / "b.png")
    run("translate.py", ["--checkpoint", str(trained), str(src), "-o", str(tmp_path / "out"),
                         "--gpu_ids", "-1"], cwd=tmp_path)
    translate = load_translator(str(trained))
    for name in ("a.png", "b.png"):
        api = np.asarray(translate(Image.open(src / name)))
        assert np.array_equal(pixels(tmp_path / "out" / name), api), name


def test_load_size_and_tiles_keep_the_input_size(trained):
    image = random_image((90, 50))
    assert load_translator(str(trained), load_size=24)(image).size == (90, 50)
    assert load_translator(str(trained), tile=32, tile_overlap=8)(image).size == (90, 50)
    with pytest.raises(UserError, match="multiple of 4"):
        load_translator(str(trained), tile=30)


def test_tiles_blend_a_per_pixel_function_exactly():
    x = torch.randn(1, 3, 53, 70)
    y = run_tiled(lambda t: t * 2 + 1, x, tile=16, overlap=5)
    assert torch.allclose(y, x * 2 + 1, atol=1e-5)


# ---------------------------------------------------------------------------- options and weights
def test_flag_that_contradicts_the_weights_is_one_line_naming_it(trained, tmp_path):
    random_image((20, 20)).save(tmp_path / "a.png")
    proc = run("translate.py", ["--checkpoint", str(trained), str(tmp_path / "a.png"), "-o",
                                str(tmp_path / "o"), "--ngf", "8"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ngf=4" in lines[0] and "--ngf 4" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_checkpoint_copied_without_its_options_uses_defaults_and_flags(trained, tmp_path):
    copy = tmp_path / "elsewhere" / "my_G.pth"
    copy.parent.mkdir()
    shutil.copy(trained, copy)
    with pytest.raises(UserError, match=r"ngf=4 \(the options say ngf=64\)"):
        load_translator(str(copy))
    image = random_image((40, 28))
    assert np.array_equal(np.asarray(load_translator(str(copy), ngf=4)(image)),
                          np.asarray(load_translator(str(trained))(image)))


@pytest.mark.parametrize("kwargs", [dict(netG="resnet_6blocks"), dict(no_antialias=True),
                                    dict(no_antialias_up=True), dict(no_dropout=False),
                                    dict(normG="batch"), dict(input_nc=1, output_nc=1)])
def test_weights_reveal_their_options(kwargs):
    arch = dict(input_nc=3, output_nc=3, ngf=4, netG="resnet_9blocks")
    arch.update(kwargs)
    net = define_G(arch.pop("input_nc"), arch.pop("output_nc"), arch.pop("ngf"), arch.pop("netG"),
                   norm=kwargs.get("normG", "instance"), use_dropout=not kwargs.get("no_dropout", True),
                   no_antialias=kwargs.get("no_antialias", False),
                   no_antialias_up=kwargs.get("no_antialias_up", False))
    guess = guess_generator_options(net.state_dict())
    assert guess["ngf"] == 4
    for key, value in kwargs.items():
        assert guess[key] == value, key


def test_sincut_checkpoint_with_and_without_options_file(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "sincut"
    folder.mkdir()
    # SinCUT's presets: stylegan2, ngf 10, resolution min(1024, 64) = 64, one downsampling
    net = define_G(3, 3, 10, "stylegan2", resolution=64, num_downsampling=1)
    torch.save(net.state_dict(), folder / "latest_net_G.pth")
    out = load_translator(str(folder / "latest_net_G.pth"), model="sincut")(random_image((37, 29)))
    assert out.size == (37, 29) and out.mode == "RGB"

    small = define_G(3, 3, 4, "smallstylegan2", resolution=32, num_downsampling=2)
    torch.save(small.state_dict(), folder / "latest_net_G.pth")
    (folder / "train_opt.json").write_text(json.dumps(dict(
        model="sincut", netG="smallstylegan2", ngf=4, load_size=128, crop_size=32,
        stylegan2_G_num_downsampling=2, input_nc=3, output_nc=3)))
    translate = load_translator(str(folder))
    assert translate.multiple == 4
    x = torch.rand(1, 3, 22, 18) * 2 - 1
    assert translate(x).shape == (1, 3, 22, 18)
    with pytest.raises(UserError, match="stylegan2_G_num_downsampling=2"):
        load_translator(str(folder), stylegan2_G_num_downsampling=1)


def test_cycle_gan_generators_both_ways(tmp_path):
    folder = tmp_path / "cyc"
    folder.mkdir()
    # grayscale A (input_nc 1) <-> RGB B: G_A is 1 -> 3, G_B is 3 -> 1
    torch.save(define_G(1, 3, 4, "resnet_6blocks").state_dict(), folder / "latest_net_G_A.pth")
    torch.save(define_G(3, 1, 4, "resnet_6blocks").state_dict(), folder / "latest_net_G_B.pth")
    (folder / "train_opt.json").write_text(json.dumps(dict(
        model="cycle_gan", netG="resnet_6blocks", ngf=4, input_nc=1, output_nc=3)))
    image = random_image((33, 21))
    to_b = load_translator(str(folder))(image)  # the folder picks latest_net_G_A.pth
    to_a = load_translator(str(folder / "latest_net_G_B.pth"))(image)
    assert to_b.size == to_a.size == (33, 21) and to_b.mode == to_a.mode == "RGB"
    a = np.asarray(to_a)
    assert np.array_equal(a[..., 0], a[..., 1])  # a 1-channel output shown as gray RGB


# ---------------------------------------------------------------------------- translate.py files
def test_folder_with_corrupt_file_and_sub_folders(trained, tmp_path):
    src = tmp_path / "photos"
    (src / "sub" / "deeper").mkdir(parents=True)
    random_image((21, 17)).save(src / "a.png")
    random_image((20, 30), seed=3).save(src / "sub" / "b.jpg")
    random_image((25, 25), "L", seed=4).save(src / "sub" / "deeper" / "c.png")
    (src / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("not an image, ignored")
    out = tmp_path / "out"
    proc = run("translate.py", ["--checkpoint", str(trained), str(src), "-r", "-o", str(out),
                                "--batch_size", "2"], cwd=tmp_path)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        ["a.png", "sub/b.png", "sub/deeper/c.png"]
    assert Image.open(out / "sub" / "b.png").size == (20, 30)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.png" in warnings[0]
    assert "translated 3 image(s)" in proc.stdout and "skipped 1 file(s)" in proc.stdout

    # without --recursive only the top level; a glob keeps names below its fixed prefix
    translate_script.main(["--checkpoint", str(trained), str(src), "-o", str(tmp_path / "top")])
    assert sorted(os.listdir(tmp_path / "top")) == ["a.png"]
    translate_script.main(["--checkpoint", str(trained), f"{src}/**/*.png", "-o",
                           str(tmp_path / "g"), "--keep_ext"])
    assert sorted(str(p.relative_to(tmp_path / "g")) for p in (tmp_path / "g").rglob("*.png")) == \
        ["a.png", "sub/deeper/c.png"]


def test_nothing_readable_fails_with_a_clear_message(trained, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(b"")
    proc = run("translate.py", ["--checkpoint", str(trained), str(tmp_path / "in"), "-o",
                                str(tmp_path / "out")], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "no image was translated" in proc.stderr and "x.png" in proc.stderr


def test_never_overwrites_an_input(trained, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    random_image((20, 20)).save(src / "a.png")
    before = (src / "a.png").read_bytes()
    proc = run("translate.py", ["--checkpoint", str(trained), str(src / "a.png"), "-o", str(src)],
               cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "would overwrite the input" in proc.stderr
    for args in ([str(src), "-o", str(src)], [str(tmp_path), "-r", "-o", str(src)]):
        with pytest.raises(UserError, match="inside the input folder"):
            translate_script.main(["--checkpoint", str(trained)] + args)
    assert (src / "a.png").read_bytes() == before
    assert os.listdir(src) == ["a.png"]


def test_unknown_option_or_model_is_refused(trained):
    with pytest.raises(UserError, match="unknown generator option 'ngff'"):
        load_translator(str(trained), ngff=4)
    with pytest.raises(UserError, match="unknown model 'pix2pix'"):
        load_translator(str(trained), model="pix2pix")
