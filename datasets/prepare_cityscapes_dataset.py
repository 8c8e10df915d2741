"""Prepare Cityscapes for labels -> photo translation and for its segmentation score.

    python datasets/prepare_cityscapes_dataset.py --gtFine_dir ./gtFine --leftImg8bit_dir ./leftImg8bit \
        --output_dir ./datasets/cityscapes

Download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from
https://www.cityscapes-dataset.com (an account is needed) and unzip them; pass the folders that
hold train/ val/ test/.  Written under --output_dir, as the CUT authors' script does (the val split
becomes `test`; file i is the i-th of the sorted file list, so 0..499 for val, 0..2974 for train):

    testA/<i>_A.jpg  trainA/<i>_A.jpg    photos (*_leftImg8bit.png), 256x256
    testB/<i>_B.jpg  trainB/<i>_B.jpg    colour label maps (*_gtFine_color.png), 256x256
    testB_trainIds/<i>.png               train ids 0..18, 255 = ignore (from *_gtFine_labelIds.png
    trainB_trainIds/<i>.png              through cityscapesscripts' table), 256x128 nearest
    prepare_cityscapes.json              settings, and which Cityscapes frame each i is

Photos and colour maps: RGB, resized with PIL's bicubic filter (the default of Image.resize the
original relies on) to 256x256 (the 2:1 frames are squeezed, as in the paper), JPEG quality 100
without chroma subsampling.  The train-id maps are the ground truth of the segmentation score
(metrics/segmentation.py): made from the exact label ids, not from the JPEG colour maps, and
nearest-resized to the size the segmenter runs at (256x128, W x H).  --pix2pix_pairs also writes
the original's side-by-side test/<i>.jpg and train/<i>.jpg (photo left, label map right).
"""
import argparse
import glob
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.cityscapes_labels import label_ids_to_train_ids  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402
from util.util import atomic_write  # noqa: E402

PHASES = (("val", "test"), ("train", "train"))  # Cityscapes split -> written split
JPEG = dict(format="JPEG", quality=100, subsampling=0)  # the original's settings
SUFFIX = {"color": "_gtFine_color.png", "labelIds": "_gtFine_labelIds.png",
          "photo": "_leftImg8bit.png"}


def parse_size(text):
    """'256x128' -> (256, 128) = (W, H)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--eval_size {text}: give it as WIDTHxHEIGHT, e.g. 256x128") from None
    if width < 8 or height < 8:
        raise UserError(f"--eval_size {text}: at least 8x8")
    return width, height


def frame_id(path, suffix):
    """aachen_000000_000019 from .../aachen/aachen_000000_000019_gtFine_color.png."""
    return os.path.basename(path)[:-len(suffix)]


def list_frames(gt_dir, photo_dir, phase):
    """[(frame, colour map, labelIds, photo)] of one split, sorted as the original sorts (by
    path).  Every label file needs its photo and the other way round."""
    gt_phase, photo_phase = os.path.join(gt_dir, phase), os.path.join(photo_dir, phase)
    for folder, option, inner in ((gt_phase, "--gtFine_dir", "gtFine"),
                                  (photo_phase, "--leftImg8bit_dir", "leftImg8bit")):
        if not os.path.isdir(folder):
            nested = os.path.join(os.path.dirname(folder), inner, phase)
            hint = (f"; it holds {inner}/, so pass {os.path.dirname(nested)}"
                    if os.path.isdir(nested) else f"; pass the unzipped {inner} folder that holds "
                    "train/ val/ test/")
            raise UserError(f"{option}: no folder {folder}{hint}")
    colors = sorted(glob.glob(os.path.join(gt_phase, "*", "*" + SUFFIX["color"])))
    photos = sorted(glob.glob(os.path.join(photo_phase, "*", "*" + SUFFIX["photo"])))
    if not colors:
        raise UserError(f"--gtFine_dir: no */*{SUFFIX['color']} in {gt_phase}")
    if not photos:
        raise UserError(f"--leftImg8bit_dir: no */*{SUFFIX['photo']} in {photo_phase}")
    by_gt = {frame_id(p, SUFFIX["color"]): p for p in colors}
    by_photo = {frame_id(p, SUFFIX["photo"]): p for p in photos}
    only_gt, only_photo = sorted(set(by_gt) - set(by_photo)), sorted(set(by_photo) - set(by_gt))
    if only_gt or only_photo:
        side = (f"{len(only_gt)} label maps in {gt_phase} have no photo in {photo_phase} (e.g. "
                f"{only_gt[0]})" if only_gt else
                f"{len(only_photo)} photos in {photo_phase} have no label map in {gt_phase} (e.g. "
                f"{only_photo[0]})")
        raise UserError(f"the gtFine and leftImg8bit trees do not match: {side}; use the "
                        "gtFine and leftImg8bit folders of the same Cityscapes download")
    frames = []
    for color, photo in zip(colors, photos):  # same frames, so the sorted lists pair up
        frame = frame_id(color, SUFFIX["color"])
        label_ids = color[:-len(SUFFIX["color"])] + SUFFIX["labelIds"]
        if not os.path.isfile(label_ids):
            raise UserError(f"--gtFine_dir: {label_ids} is missing (the label ids of {frame}); "
                            "the gtFine download has a *_labelIds.png beside every *_color.png")
        frames.append((frame, color, label_ids, photo))
    return frames


def save(image, path, **kwargs):
    with atomic_write(path, "wb") as f:
        image.save(f, **kwargs)


def convert_one(job):
    """Write the photo, the colour map and the train-id map of frame `i`."""
    i, (frame, color, label_ids, photo), out, split, size, eval_size, pairs = job
    try:
        with Image.open(photo) as im:
            photo_img = im.convert("RGB").resize((size, size), Image.BICUBIC)
        with Image.open(color) as im:
            color_img = im.convert("RGB").resize((size, size), Image.BICUBIC)
        with Image.open(label_ids) as im:
            if im.mode not in ("L", "P"):
                raise UserError(f"{label_ids} is a {im.mode} image; *_labelIds.png files are "
                                "8-bit single-channel")
            ids = im.resize(eval_size, Image.NEAREST)
            train_ids = label_ids_to_train_ids(np.asarray(ids, dtype=np.uint8))
    except OSError as err:
        raise UserError(f"cannot read frame {frame}: {err}") from None
    save(photo_img, os.path.join(out, split + "A", f"{i}_A.jpg"), **JPEG)
    save(color_img, os.path.join(out, split + "B", f"{i}_B.jpg"), **JPEG)
    save(Image.fromarray(train_ids, "L"), os.path.join(out, split + "B_trainIds", f"{i}.png"),
         format="PNG")
    if pairs:
        side_by_side = Image.new("RGB", (2 * size, size))
        side_by_side.paste(photo_img, (0, 0))
        side_by_side.paste(color_img, (size, 0))
        save(side_by_side, os.path.join(out, split, f"{i}.jpg"), **JPEG)
    return frame


def prepare(gt_dir, photo_dir, out, size=256, eval_size=(256, 128), pairs=False, workers=0,
            log=print):
    """Both splits; returns the manifest written to prepare_cityscapes.json."""
    splits = {phase: list_frames(gt_dir, photo_dir, phase) for phase, _ in PHASES}  # check first
    manifest = {"size": size, "eval_size": f"{eval_size[0]}x{eval_size[1]}",
                "gtFine_dir": os.path.abspath(gt_dir),
                "leftImg8bit_dir": os.path.abspath(photo_dir), "splits": {}}
    start = time.time()
    for phase, split in PHASES:
        frames = splits[phase]
        folders = [split + "A", split + "B", split + "B_trainIds"] + ([split] if pairs else [])
        for folder in folders:
            os.makedirs(os.path.join(out, folder), exist_ok=True)
        jobs = [(i, f, out, split, size, eval_size, pairs) for i, f in enumerate(frames)]
        step = max(1, len(jobs) // 10)
        log(f"{phase} -> {split}: {len(jobs)} frames")
        if workers > 0:
            with ProcessPoolExecutor(workers) as pool:
                done = pool.map(convert_one, jobs, chunksize=8)
                for i, _ in enumerate(done, 1):
                    if i % step == 0 or i == len(jobs):
                        log(f"  {i} / {len(jobs)} ({time.time() - start:.0f} s)")
        else:
            for i, job in enumerate(jobs, 1):
                convert_one(job)
                if i % step == 0 or i == len(jobs):
                    log(f"  {i} / {len(jobs)} ({time.time() - start:.0f} s)")
        manifest["splits"][split] = {"source": phase, "frames": [f[0] for f in frames]}
    with atomic_write(os.path.join(out, "prepare_cityscapes.json")) as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gtFine_dir", required=True, help="the unzipped gtFine folder (train/ val/ test/)")
    p.add_argument("--leftImg8bit_dir", required=True,
                   help="the unzipped leftImg8bit folder (train/ val/ test/)")
    p.add_argument("--output_dir", required=True, help="e.g. ./datasets/cityscapes")
    p.add_argument("--size", type=int, default=256, help="side of the square photos and label maps")
    p.add_argument("--eval_size", default="256x128",
                   help="WIDTHxHEIGHT of the train-id maps: the size the segmenter scores at")
    p.add_argument("--pix2pix_pairs", action="store_true",
                   help="also write the side-by-side test/<i>.jpg and train/<i>.jpg")
    p.add_argument("--num_workers", type=int, default=0, help="processes (0: this one)")
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    if opt.size < 8:
        raise UserError(f"--size must be at least 8 (got {opt.size})")
    manifest = prepare(opt.gtFine_dir, opt.leftImg8bit_dir, opt.output_dir, opt.size,
                       parse_size(opt.eval_size), opt.pix2pix_pairs, max(0, opt.num_workers))
    counts = ", ".join(f"{split} {len(s['frames'])}" for split, s in manifest["splits"].items())
    print(f"prepared {opt.output_dir}: {counts} frames")
    return 0


if __name__ == "__main__":
    run_cli(main)
