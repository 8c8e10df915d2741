"""The segmentation axis as a user runs it, on a tiny prepared toy Cityscapes: training a segmenter
(scripts/train_segmenter.py, with exact resume), evaluate.py --seg_labels / --detect, and
--eval_metric miou during training (best_net_G.pth keeps the highest mIoU)."""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
import train
from conftest import ROOT
from datasets import make_toy_cityscapes as toy
from datasets import prepare_cityscapes_dataset as prep
from metrics import training_eval
from models.networks.segmentation import DeepLabV2MSC, load_segmenter
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_segmenter = load_script("train_segmenter")
toy_cityscapes = load_script("toy_cityscapes")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """6 + 3 toy frames, translated at 32x32 and scored at 64x32; a 2-epoch tiny segmenter."""
    root = tmp_path_factory.mktemp("toy_cs")
    toy.generate_tree(str(root / "raw"), n_train=6, n_val=3, width=64, height=32)
    prep.prepare(str(root / "raw" / "gtFine"), str(root / "raw" / "leftImg8bit"),
                 str(root / "data"), size=32, eval_size=(64, 32), log=lambda *a: None)
    assert train_segmenter.main(segmenter_args(root, "seg", 2) + ["--eval_freq", "1"]) == 0
    return root


def segmenter_args(root, name, epochs):
    return ["--dataroot", str(root / "data"), "--name", name, "--checkpoints_dir",
            str(root / "ck"), "--width", "0.125", "--epochs", str(epochs), "--batch_size", "3",
            "--step", "1", "--progress", "off", "--device", "cpu"]


def test_train_segmenter_logs_and_resumes_exactly(prepared):
    folder = prepared / "ck" / "seg"
    log = [json.loads(line) for line in (folder / "seg_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and log[1]["lr"] == pytest.approx(0.001)
    assert 0 <= log[1]["test_miou"] <= 1 and log[0]["loss"] > 0
    segmenter = load_segmenter("drn_d_22", str(folder / "seg_drn_d_22.pth"))
    assert segmenter.net.base[0][0].out_channels == 2  # width 0.125 read back from the file

    # one epoch, then resumed to two: the weights of the uninterrupted run, bit for bit
    assert train_segmenter.main(segmenter_args(prepared, "resumed", 1)) == 0
    assert train_segmenter.main(segmenter_args(prepared, "resumed", 2) + ["--continue_train"]) == 0
    a, b = (torch.load(prepared / "ck" / run / "seg_drn_d_22.pth", weights_only=True)
            for run in ("seg", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="already holds a segmenter run"):
        train_segmenter.main(segmenter_args(prepared, "resumed", 3))
    with pytest.raises(UserError, match="--width differs from the saved run"):
        train_segmenter.main(segmenter_args(prepared, "resumed", 3) + ["--width", "0.25",
                                                                        "--continue_train"])


def test_evaluate_prints_the_three_scores_and_the_upper_bound(prepared, tmp_path, capsys):
    data = prepared / "data"
    fake = tmp_path / "results" / "cs" / "test_latest" / "images" / "fake_B"
    fake.mkdir(parents=True)
    for name in os.listdir(data / "testA"):  # the real photos, named as test.py names outputs
        index = name.split("_")[0]
        Image.open(data / "testA" / name).save(fake / f"{index}_B.png")
    weights = str(prepared / "ck" / "seg" / "seg_drn_d_22.pth")
    assert evaluate.main([str(fake), "--seg_weights", weights, "--seg_labels",
                          str(data / "testB_trainIds"), "--seg_real_dir", str(data / "testA"),
                          "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "results" / "cs" / "metrics.jsonl").read_text())
    line = (f"mIoU {100 * record['miou']:.1f}  pixAcc {100 * record['pixel_acc']:.1f}  "
            f"classAcc {100 * record['class_acc']:.1f}  (3 images at 64x32, drn_d_22")
    assert "segmentation score, generated: " + line in out
    assert "segmentation score, real photos: " + line in out  # the same pixels, the same score
    assert record["real_photos"]["confusion_matrix"] == record["confusion_matrix"]
    assert list(record["per_class_iou"])[:2] == ["road", "sidewalk"]
    assert len(record["per_class_iou"]) == 19 and record["seg_protocol"] == "cityscapes_drn_v1"
    assert "fid" not in record  # no REAL_DIR: no FID
    assert np.array(record["confusion_matrix"]).sum() == record["pixels"]


def test_evaluate_detected_pixels(prepared, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "deeplab_tiny.pth"
    torch.save(DeepLabV2MSC(182, width=4, blocks=(1, 1, 1, 1)).state_dict(), weights)
    folder = prepared / "data" / "testA"
    jsonl = tmp_path / "m.jsonl"
    assert evaluate.main([str(folder), "--detect", "horse,zebra", "--seg_weights", str(weights),
                          "--jsonl", str(jsonl), "--device", "cpu", "--seg_size", "64"]) == 0
    record = json.loads(jsonl.read_text())
    shares = record["detected"]
    assert record["seg_model"] == "deeplabv2_cocostuff" and record["n_images"] == 3
    assert record["seg_resize"] == "bilinear to a longer side of 64 px"
    assert record["detect_classes"] == {"horse": 18, "zebra": 23}
    assert shares["any"] == pytest.approx(shares["horse"] + shares["zebra"])
    assert all(0 <= v <= 1 for v in shares.values())
    assert "detected pixels: horse" in capsys.readouterr().out


def test_evaluate_option_mistakes_are_one_line_errors(prepared, tmp_path):
    data = prepared / "data"
    cases = [([str(data / "testA")], "nothing to compute"),
             ([str(data / "testA"), "--seg_labels", str(data / "testB_trainIds")],
              "need --seg_weights FILE"),
             ([str(data / "testA"), "--seg_labels", str(data / "testB_trainIds"), "--seg_weights",
               str(tmp_path / "none.pth")], f"segmenter weights not found: {tmp_path}/none.pth"),
             ([str(data / "testA"), "--seg_real_dir", str(data / "testA"), "--detect", "horse",
               "--seg_weights", "x"], "--seg_real_dir needs --seg_labels"),
             ([str(data / "testA"), "--seg_labels", str(data / "testB"), "--detect", "horse",
               "--seg_weights", "x"], "run them separately")]
    for argv, needle in cases:
        with pytest.raises(UserError) as err:
            evaluate.main(argv + ["--device", "cpu"])
        assert needle in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.slow
def test_eval_metric_miou_during_training_keeps_the_highest(prepared, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(prepared / "data", data)
    weights = str(prepared / "ck" / "seg" / "seg_drn_d_22.pth")
    common = (f"--dataroot {data} --checkpoints_dir {tmp_path}/ck --direction BtoA "
              "--load_size 32 --crop_size 32 --preprocess none --gpu_ids -1 --display_id 0 "
              "--ngf 8 --ndf 8 --num_threads 0 --netG resnet_6blocks --n_epochs 2 "
              "--n_epochs_decay 0 --max_dataset_size 3 --progress off --seed 1").split()
    argv = common + f"--name cs --eval_freq 1 --eval_metric miou --seg_weights {weights}".split()
    assert train.main(argv) == 0  # no Inception weights needed: the metric is mIoU
    folder = tmp_path / "ck" / "cs"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["protocol"] == "cityscapes_drn_v1" and records[0]["n_images"] == 3
    assert records[0]["seg_labels"] == str(data / "testB_trainIds")  # the default, beside testB
    assert "feature_extractor" not in records[0]  # no FID fields in a segmentation record
    best = json.loads((folder / "best_net_G.json").read_text())
    assert best["metric"] == "miou" and best["value"] == max(r["miou"] for r in records)
    # the evaluation (its segmenter built and run) leaves training untouched
    assert train.main(common + ["--name", "plain"]) == 0
    for net in "GDF":
        a, b = (torch.load(tmp_path / "ck" / run / f"latest_net_{net}.pth", weights_only=True)
                for run in ("cs", "plain"))
        assert all(torch.equal(a[k], b[k]) for k in a), net
    with pytest.raises(UserError, match="segmenter weights not found"):
        train.main(argv[:-1] + [str(tmp_path / "missing.pth"), "--name", "other"])


def test_best_checkpoint_keeps_the_highest_miou_and_the_lowest_fid(tmp_path):
    saved = []
    for metric, values, best in (("miou", [0.2, 0.5, 0.4], 0.5), ("fid", [30.0, 10.0, 20.0], 10.0)):
        keeper = training_eval.BestCheckpoint(tmp_path, metric, resumed=False)
        kept = [keeper.update({metric: v, "epoch": e}, lambda: saved.append(metric))
                for e, v in enumerate(values, 1)]
        assert kept == [True, True, False] and keeper.best["value"] == best


def test_toy_table_format():
    report = {"rows": {"real photos": dict(miou=0.5, pixel_acc=0.875, class_acc=0.6),
                       "CUT": dict(miou=0.25, pixel_acc=0.6, class_acc=0.3, sec_per_iter=0.5,
                                   iterations=1200, train_s=600.0),
                       "CycleGAN": {"failed": "--model cycle_gan is missing"}},
              "budget": toy_cityscapes.BUDGET["full"], "seed": 0,
              "segmenter": {"wall_s": 61.0}, "total_s": 3600.0,
              "machine": {"cpu": "CPU", "cpus": 2, "torch": "2", "python": "3",
                          "load_average_at_end": [1.0, 2.0, 3.0]}}
    lines = toy_cityscapes.format_markdown(report).splitlines()
    assert lines[2] == "| real photos | 50.0 | 87.5 | 60.0 | | | |"
    assert lines[3] == "| CUT | 25.0 | 60.0 | 30.0 | 0.500 | 1200 | 10:00 |"
    assert lines[4].startswith("| CycleGAN | failed: --model cycle_gan is missing")
    assert "scored at 128x64" in lines[6] and "whole run 60:00" in lines[7]
