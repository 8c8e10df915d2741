"""datasets/prepare_cityscapes_dataset.py on a tiny fake Cityscapes tree (the real folder names
and file patterns), and the toy street scenes of datasets/make_toy_cityscapes.py."""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from data.cityscapes_labels import NAME_TO_LABEL
from conftest import ROOT
from datasets import make_toy_cityscapes as toy
from datasets import prepare_cityscapes_dataset as prep
from util.errors import UserError

# 2 val frames in 2 cities (listed out of order), 1 train frame; 512x256 like a small Cityscapes
FRAMES = {"val": ["munster_000000_000019", "frankfurt_000001_000042"],
          "train": ["aachen_000003_000019"]}
W, H = 512, 256


def write_frame(root, split, frame, seed):
    rng = np.random.default_rng(seed)
    city = frame.split("_")[0]
    gt = os.path.join(root, "gtFine", split, city)
    photos = os.path.join(root, "leftImg8bit", split, city)
    os.makedirs(gt, exist_ok=True), os.makedirs(photos, exist_ok=True)
    # label ids in blocks: road (7) below, car (26) at the right, ego vehicle (1) at the bottom
    ids = np.full((H, W), 23, np.uint8)  # sky
    ids[H // 2:, :] = 7
    ids[H // 2:, 3 * W // 4:] = 26
    ids[-16:, :] = 1
    Image.fromarray(ids, "L").save(os.path.join(gt, frame + "_gtFine_labelIds.png"))
    colour = np.zeros((H, W, 4), np.uint8)
    colour[..., 3] = 255
    colour[..., :3] = rng.integers(0, 256, 3)
    Image.fromarray(colour, "RGBA").save(os.path.join(gt, frame + "_gtFine_color.png"))
    photo = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)  # smooth-ish, then enlarged
    Image.fromarray(photo).resize((W, H), Image.BILINEAR).save(
        os.path.join(photos, frame + "_leftImg8bit.png"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "cityscapes_download"
    for split, frames in FRAMES.items():
        for i, frame in enumerate(frames):
            write_frame(str(root), split, frame, seed=10 * len(split) + i)
    return root


def test_prepare_writes_the_originals_layout_and_the_train_ids(tree, tmp_path):
    out = tmp_path / "prepared"
    assert prep.main(["--gtFine_dir", str(tree / "gtFine"), "--leftImg8bit_dir",
                      str(tree / "leftImg8bit"), "--output_dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["prepare_cityscapes.json", "testA", "testB",
                                       "testB_trainIds", "trainA", "trainB", "trainB_trainIds"]
    assert sorted(os.listdir(out / "testA")) == ["0_A.jpg", "1_A.jpg"]
    assert sorted(os.listdir(out / "testB")) == ["0_B.jpg", "1_B.jpg"]
    assert sorted(os.listdir(out / "trainB_trainIds")) == ["0.png"]
    manifest = json.loads((out / "prepare_cityscapes.json").read_text())
    # i = position in the sorted path list: frankfurt before munster
    assert manifest["splits"]["test"]["frames"] == sorted(FRAMES["val"])
    assert manifest["splits"]["test"]["source"] == "val" and manifest["eval_size"] == "256x128"

    with Image.open(out / "testA" / "0_A.jpg") as im:
        assert im.format == "JPEG" and im.size == (256, 256) and im.mode == "RGB"
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4, no chroma subsampling
        assert all(max(table) == 1 for table in im.quantization.values())  # quality 100
        written = np.asarray(im, np.int16)
    source = tree / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000001_000042_leftImg8bit.png"
    with Image.open(source) as im:
        expected = np.asarray(im.convert("RGB").resize((256, 256), Image.BICUBIC), np.int16)
    assert np.abs(written - expected).mean() < 1.5  # bicubic 256x256, then JPEG at quality 100

    with Image.open(out / "testB_trainIds" / "1.png") as im:
        assert im.mode == "L" and im.size == (256, 128)
        train_ids = np.asarray(im)
    # sky 23 -> 10 above, road 7 -> 0 below, car 26 -> 13 at the right, ego vehicle 1 -> 255
    assert train_ids[10, 10] == 10 and train_ids[80, 10] == 0 and train_ids[80, 250] == 13
    assert set(np.unique(train_ids)) == {0, 10, 13, 255} and (train_ids[-8:] == 255).all()


def test_trees_that_do_not_match_are_one_line_errors(tree, tmp_path):
    out = str(tmp_path / "out")
    gt, photos = str(tree / "gtFine"), str(tree / "leftImg8bit")
    os.remove(tree / "leftImg8bit" / "val" / "munster" / "munster_000000_000019_leftImg8bit.png")
    with pytest.raises(UserError, match=r"1 label maps in .*gtFine/val have no photo in "
                                        r".*leftImg8bit/val \(e.g. munster_000000_000019\)"):
        prep.prepare(gt, photos, out)
    write_frame(str(tree), "val", "munster_000000_000019", 0)
    os.remove(tree / "gtFine" / "train" / "aachen" / "aachen_000003_000019_gtFine_labelIds.png")
    with pytest.raises(UserError, match="aachen_000003_000019_gtFine_labelIds.png is missing"):
        prep.prepare(gt, photos, out)
    with pytest.raises(UserError, match="it holds gtFine/, so pass"):
        prep.prepare(str(tree), photos, out)  # the folder above gtFine/
    with pytest.raises(UserError, match="--eval_size 256by128"):
        prep.parse_size("256by128")
    assert not os.path.exists(os.path.join(out, "prepare_cityscapes.json"))


def test_toy_frames_are_street_scenes_and_not_a_colour_lookup():
    ids = {label: NAME_TO_LABEL[label].id for label in ("road", "sky", "building", "car")}
    colours = []
    for index in range(3):
        labels, photo = toy.generate_frame(toy.frame_rng(0, "train", index), 128, 64)
        assert labels.shape == (64, 128) and photo.shape == (64, 128, 3)
        present = set(np.unique(labels))
        assert {ids["road"], ids["sky"], ids["building"]} <= present
        assert present <= {toy.ID[name] for name in toy.TOY_CLASSES} | {toy.ID["ego vehicle"]}
        assert (labels[-1] == toy.ID["ego vehicle"]).all()  # the bonnet, ignored by the score
        road = photo[labels == ids["road"]].astype(float)
        assert road.std(axis=0).mean() > 5  # textured, not flat
        colours.append(photo[labels == ids["building"]].mean(axis=0))
    # the same label is painted differently from frame to frame (colours, lighting)
    assert max(np.abs(a - b).max() for a in colours for b in colours) > 10
    again, _ = toy.generate_frame(toy.frame_rng(0, "train", 2), 128, 64)
    assert np.array_equal(again, labels)  # each frame has its own seed


def test_toy_tree_is_prepared_like_the_real_one(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    summary = toy.generate_tree(str(raw), n_train=2, n_val=1, width=64, height=32)
    assert summary["frames"] == 3
    assert os.listdir(raw / "gtFine" / "val") == ["frankfurt"]
    prep.prepare(str(raw / "gtFine"), str(raw / "leftImg8bit"), str(out), size=32,
                 eval_size=(64, 32), log=lambda *a: None)
    assert sorted(os.listdir(out / "trainA")) == ["0_A.jpg", "1_A.jpg"]
    with Image.open(out / "testB_trainIds" / "0.png") as im:
        assert im.size == (64, 32) and set(np.unique(np.asarray(im))) <= {0, 1, 2, 5, 7, 8, 10,
                                                                         11, 13, 255}
    with pytest.raises(UserError, match="already holds gtFine"):
        toy.generate_tree(str(raw), n_train=1, n_val=1)


@pytest.mark.parametrize("args, needle", [(["bogus"], "ACTION must be prepare, segmenter"),
                                          (["train", "Pix2Pix"], "MODE must be CUT, FastCUT"),
                                          (["all"], "MODE must be")])
def test_cityscapes_script_rejects_unknown_steps(args, needle):
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "cityscapes.sh"), *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and needle in proc.stderr and not proc.stdout
