"""The demo data set generator (datasets/make_demo_dataset.py) and its scores (metrics/)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datasets.make_demo_dataset import (generate_dataset, generate_image, image_rng,  # noqa: E402
                                        main as make_main, paint_image)
from metrics import demo_scores  # noqa: E402
from metrics.demo_detector import analyse, mask_iou  # noqa: E402
from util.errors import UserError  # noqa: E402

N_TEST = 40


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo") / "demo_h2z")
    generate_dataset(out, seed=3, size=64, n_train=2, n_test=N_TEST)
    return out


def _load(dataroot, domain):
    """[(rgb, mask)] of the test images of `domain`."""
    pairs = demo_scores._pairs(dataroot, domain)
    return [(demo_scores.load_rgb(p), demo_scores.load_mask(m)) for p, m in pairs]


@pytest.fixture(scope="module")
def test_images(dataroot):
    return {d: _load(dataroot, d) for d in "AB"}


@pytest.fixture(scope="module")
def report(dataroot):
    return demo_scores.score_table(dataroot)


def _chroma(pixels):
    """(N, 3) -> (N, 3) colours divided by their sum."""
    pixels = pixels.astype(np.float64)
    return pixels / np.maximum(pixels.sum(axis=1, keepdims=True), 1.0)


# ---------------------------------------------------------------------------- generator


def test_generate_image_is_deterministic_per_seed():
    a_rgb, a_mask = generate_image("B", image_rng(0, "test", "B", 7), 48)
    b_rgb, b_mask = generate_image("B", image_rng(0, "test", "B", 7), 48)
    c_rgb, _ = generate_image("B", image_rng(1, "test", "B", 7), 48)
    d_rgb, _ = generate_image("B", image_rng(0, "test", "B", 8), 48)
    assert a_rgb.dtype == np.uint8 and a_rgb.shape == (48, 48, 3)
    assert a_mask.dtype == bool and a_mask.shape == (48, 48)
    assert np.array_equal(a_rgb, b_rgb) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_rgb, c_rgb)
    assert not np.array_equal(a_rgb, d_rgb)


def _read_tree(folder):
    tree = {}
    for sub in sorted(os.listdir(folder)):
        for name in sorted(os.listdir(os.path.join(folder, sub))):
            with open(os.path.join(folder, sub, name), "rb") as f:
                tree[f"{sub}/{name}"] = f.read()
    return tree


def test_dataset_bytes_depend_on_seed_only(tmp_path):
    generate_dataset(str(tmp_path / "a"), seed=5, size=32, n_train=2, n_test=3)
    generate_dataset(str(tmp_path / "b"), seed=5, size=32, n_train=4, n_test=2)  # other counts
    generate_dataset(str(tmp_path / "c"), seed=6, size=32, n_train=2, n_test=3)
    a, b, c = (_read_tree(str(tmp_path / x)) for x in "abc")
    shared = set(a) & set(b)
    assert len(shared) == 2 * 2 + 2 * 2 + 2 * 2  # train 2+2, test 2+2, masks 2+2
    assert all(a[k] == b[k] for k in shared)  # order- and count-independent
    assert set(a) == set(c) and all(a[k] != c[k] for k in a if "mask" not in k)


def test_layout_written(dataroot):
    for sub, n in (("trainA", 2), ("trainB", 2), ("testA", N_TEST), ("testB", N_TEST),
                   ("testA_mask", N_TEST), ("testB_mask", N_TEST)):
        names = sorted(os.listdir(os.path.join(dataroot, sub)))
        assert len(names) == n and all(x.endswith(".png") for x in names), sub
    for domain in "AB":
        assert sorted(os.listdir(os.path.join(dataroot, f"test{domain}"))) == \
            sorted(os.listdir(os.path.join(dataroot, f"test{domain}_mask")))
        name = sorted(os.listdir(os.path.join(dataroot, f"test{domain}")))[0]
        with Image.open(os.path.join(dataroot, f"test{domain}", name)) as im:
            assert im.mode == "RGB" and im.size == (64, 64)
        with Image.open(os.path.join(dataroot, f"test{domain}_mask", name)) as im:
            assert im.mode == "L" and im.size == (64, 64)
            assert set(np.unique(np.asarray(im))) == {0, 255}


def test_zebras_cover_about_twice_the_area_of_horses(test_images):
    frac = {d: np.mean([m.mean() for _, m in test_images[d]]) for d in "AB"}
    assert 0.13 < frac["A"] < 0.23
    assert 0.30 < frac["B"] < 0.44
    assert 1.6 < frac["B"] / frac["A"] < 2.6


def test_masks_mark_the_painted_animals(test_images):
    horse = np.concatenate([rgb[m] for rgb, m in test_images["A"]])
    grass = np.concatenate([rgb[~m] for rgb, m in test_images["A"]])
    zebra = np.concatenate([rgb[m] for rgb, m in test_images["B"]])
    savanna = np.concatenate([rgb[~m] for rgb, m in test_images["B"]])
    # Brown: red dominates.  Grass: green dominates.
    assert (_chroma(horse)[:, 0] > 0.45).mean() > 0.97
    assert (_chroma(grass)[:, 1] > 0.42).mean() > 0.97
    # Zebra: mostly black or white, grey on average.  Savanna: bright, warm (R > G > B).
    luma = zebra.astype(float).mean(axis=1)
    assert ((luma < 70) | (luma > 190)).mean() > 0.8
    assert ((luma < 70).mean() > 0.3) and ((luma > 190).mean() > 0.3)
    assert np.abs(_chroma(zebra).mean(axis=0) - 1 / 3).max() < 0.02
    s = savanna.astype(float)
    assert ((s[:, 0] > s[:, 1]) & (s[:, 1] > s[:, 2]) & (s.mean(axis=1) > 110)).mean() > 0.97


def test_make_demo_dataset_cli(tmp_path, capsys):
    out = str(tmp_path / "d")
    make_main(["--out", out, "--size", "32", "--n_train", "1", "--n_test", "2"])
    assert "wrote 6 images" in capsys.readouterr().out
    assert len(os.listdir(os.path.join(out, "testB_mask"))) == 2
    with pytest.raises(UserError, match="--overwrite"):
        make_main(["--out", out, "--n_train", "1", "--n_test", "1"])
    make_main(["--out", out, "--size", "32", "--n_train", "1", "--n_test", "1", "--overwrite"])
    assert len(os.listdir(os.path.join(out, "testB_mask"))) == 1  # stale files removed


# ---------------------------------------------------------------------------- detector


def test_detector_recovers_true_masks(test_images):
    for domain in "AB":
        ious = [mask_iou(analyse(rgb)["animal"], m) for rgb, m in test_images[domain]]
        assert np.mean(ious) >= 0.9, domain
        assert np.min(ious) >= 0.75, domain


def test_detector_tells_a_from_b(test_images):
    calls = [analyse(rgb)["is_b"] for d in "AB" for rgb, _ in test_images[d]]
    truth = [d == "B" for d in "AB" for _ in test_images[d]]
    assert np.mean(np.array(calls) == np.array(truth)) >= 0.95


def test_speckle_and_brown_are_not_stripes():
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 12:52] = True
    speckle = paint_image("B", np.zeros_like(mask), rng)  # savanna only
    speckle[mask] = np.clip(128 + 70 * rng.standard_normal(mask.sum()), 0, 255)[:, None]
    found = analyse(speckle)
    assert mask_iou(found["animal"], mask) > 0.9  # grey noise is not ground ...
    assert found["stripe_share"] < 0.1 and not found["is_b"]  # ... nor a zebra
    horse_on_savanna = paint_image("B", np.zeros_like(mask), rng)
    horse_on_savanna[mask] = paint_image("A", mask, rng)[mask]
    found = analyse(horse_on_savanna)
    assert found["stripe_share"] == 0.0 and found["savanna_share"] > 0.9 and not found["is_b"]


# ---------------------------------------------------------------------------- scores


def test_identity_and_target_rows(report):
    identity, target = report["rows"]["identity"], report["rows"]["real_B"]
    assert identity["n"] == target["n"] == N_TEST
    assert identity["content_iou"] >= 0.9
    assert identity["stripe_share"] <= 0.05 and identity["b_rate"] <= 0.05
    assert identity["bg_match"] <= 0.2
    assert target["stripe_share"] >= 0.85 and target["b_rate"] >= 0.95
    assert target["bg_match"] >= 0.75
    assert report["detector"]["accuracy_A_vs_B"] >= 0.95


def _write_results(folder, dataroot, paint, size):
    """A test.py-style results folder: images/fake_B/<testA stem>.png at `size` px."""
    fake = os.path.join(folder, "images", "fake_B")
    os.makedirs(fake)
    for i, (path, mask_path) in enumerate(demo_scores._pairs(dataroot, "A")):
        mask = demo_scores.load_mask(mask_path)
        img = Image.fromarray(paint(mask, np.random.default_rng(i)))
        img.resize((size, size), Image.BICUBIC).save(
            os.path.join(fake, os.path.basename(path)))
    return folder


def test_ideal_translation_scores_like_real_b(dataroot, report, tmp_path):
    # Each testA layout repainted as zebras on savanna, written at twice the mask size.
    ideal = _write_results(str(tmp_path / "ideal"), dataroot,
                           lambda m, rng: paint_image("B", m, rng), 128)
    # Flat grey output, like an untrained generator's.
    grey = _write_results(str(tmp_path / "grey"), dataroot,
                          lambda m, rng: np.full(m.shape + (3,), 128, np.uint8), 64)
    ref = demo_scores.Reference.from_dataroot(dataroot)
    good = demo_scores.score_results(ideal, dataroot, ref)
    bad = demo_scores.score_results(grey, dataroot, ref)
    assert good["n"] == N_TEST
    assert good["content_iou"] >= 0.85
    assert good["stripe_share"] >= 0.85 and good["b_rate"] >= 0.9 and good["bg_match"] >= 0.7
    assert abs(good["stripe_share"] - report["rows"]["real_B"]["stripe_share"]) < 0.1
    assert bad["content_iou"] < 0.4 and bad["stripe_share"] == 0 and bad["b_rate"] == 0
    # The same folder scored as a flat folder of images gives the same row.
    assert demo_scores.score_folder(os.path.join(grey, "images", "fake_B"), dataroot, ref) == bad


def test_results_errors(dataroot, tmp_path):
    with pytest.raises(UserError, match="no translations"):
        demo_scores.score_results(str(tmp_path), dataroot)
    with pytest.raises(UserError, match="no ground-truth mask"):
        demo_scores.score_folder(os.path.join(dataroot, "testB"), dataroot)
    with pytest.raises(UserError, match="reserved"):
        demo_scores.score_table(dataroot, {"identity": os.path.join(dataroot, "testA")})
    with pytest.raises(UserError, match="not a demo data set"):
        demo_scores.score_table(str(tmp_path))


def test_score_demo_command(dataroot, tmp_path):
    script = os.path.join(ROOT, "scripts", "score_demo.py")
    out = str(tmp_path / "scores.json")
    done = subprocess.run([sys.executable, script, "--dataroot", dataroot, "--results",
                           f"copyA={os.path.join(dataroot, 'testA')}", "--json", out],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "identity" in done.stdout and "copyA" in done.stdout and "real_B" in done.stdout
    with open(out) as f:
        saved = json.load(f)
    assert saved["protocol"] == "demo_h2z_v1"
    assert list(saved["rows"]) == ["identity", "copyA", "real_B"]
    # A copy of testA is the identity baseline, number for number.
    copy = {k: v for k, v in saved["rows"]["copyA"].items() if k != "path"}
    assert copy == saved["rows"]["identity"]

    bad = subprocess.run([sys.executable, script, "--dataroot", str(tmp_path / "missing")],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
