"""The segmentation score of labels -> photo translations (CUT Table 1, Cityscapes: mAP, pixAcc,
classAcc) and the "detected pixels" of the paper's dataset-bias study.

Segmentation score (protocol `cityscapes_drn_v1`).  A segmenter trained on real photos labels
each generated photo; its prediction is compared with the label map the photo was generated
from.  One confusion matrix H (classes x classes, rows = ground truth, columns = prediction) is
accumulated over the whole set, counting only pixels whose ground truth is a class (train id
0..18; 255 is ignored), as fyu/drn's fast_hist and pix2pix's evaluation do; then

    pixel accuracy  = sum_c H[c, c] / sum H
    class accuracy  = mean_c H[c, c] / sum_p H[c, p]                        (per-class recall)
    IoU_c           = H[c, c] / (sum_p H[c, p] + sum_g H[g, c] - H[c, c]);   mIoU = mean_c IoU_c

The paper's "mAP" column is this mean IoU (fyu/drn's segment.py logs nanmean(IoU) as "mAP").
Absent classes: a class that is neither in the ground truth nor predicted has no IoU and is left
out of the mean (fyu/drn's nanmean); one that is predicted but absent from the ground truth has
IoU 0 and counts.  A class absent from the ground truth has no recall and is left out of the
class accuracy.  On the full Cityscapes val set every class is present; on subsets this matters.
Scores are reported in percent with one decimal, as in the paper.

Sizes: each label map is the evaluation size (datasets/prepare_cityscapes_dataset.py writes the
train ids nearest-resized to 256x128, the size at which the CUT authors trained and ran their
DRN-D-22); a photo of another size is resized to its label map's size with PIL's bicubic filter
(the filter the preparation uses) before it is segmented.

Pairing: an image and a label map belong together when their file stems agree after removing
one trailing `_A` or `_B` (so test.py's `fake_B/12_B.png` and the prepared `testA/12_A.jpg` both
pair with `testB_trainIds/12.png`).

Detected pixels: per image, the share of pixels whose predicted class is one of the asked
classes (e.g. horse, zebra with DeepLab v2 on COCO-Stuff), averaged over the images.
"""
import os
import re

import numpy as np
from PIL import Image

from data.cityscapes_labels import IGNORE
from data.image_folder import is_image_file
from util.errors import UserError

PROTOCOL = "cityscapes_drn_v1"
DETECT_PROTOCOL = "detected_pixels_v1"
_SUFFIX = re.compile(r"_[AB]$")


# ---------------------------------------------------------------------------- the metrics

def confusion_matrix(ground_truth, prediction, num_classes):
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction; pixels
    whose ground truth is outside 0..num_classes-1 (255 = ignore) are not counted."""
    gt = np.asarray(ground_truth).reshape(-1).astype(np.int64)
    pred = np.asarray(prediction).reshape(-1).astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size ({gt.size}, {pred.size})")
    keep = (gt >= 0) & (gt < num_classes)
    if np.any((pred[keep] < 0) | (pred[keep] >= num_classes)):
        raise ValueError(f"predictions must be class indices 0..{num_classes - 1}")
    return np.bincount(num_classes * gt[keep] + pred[keep],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores_from_confusion(hist):
    """mIoU, pixel and class accuracy (fractions) and per-class IoU / accuracy (None where a
    class is undefined, see the module docstring) from a confusion matrix."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total == 0:
        raise ValueError("the confusion matrix is empty: no labelled pixel was scored")
    tp = np.diag(hist)
    gt_count, pred_count = hist.sum(axis=1), hist.sum(axis=0)
    union = gt_count + pred_count - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        recall = np.where(gt_count > 0, tp / gt_count, np.nan)
    as_list = lambda a: [None if np.isnan(v) else float(v) for v in a]  # noqa: E731
    return {"miou": float(np.nanmean(iou)), "pixel_acc": float(tp.sum() / total),
            "class_acc": float(np.nanmean(recall)), "per_class_iou": as_list(iou),
            "per_class_acc": as_list(recall), "classes_scored": int(np.sum(~np.isnan(iou))),
            "pixels": int(total)}


def percent(value):
    """The paper's way: percent, one decimal."""
    return f"{100 * value:.1f}"


# ---------------------------------------------------------------------------- files

def image_key(path):
    """The pairing key of an image or label file: its stem without one trailing _A or _B."""
    return _SUFFIX.sub("", os.path.splitext(os.path.basename(path))[0])


def index_folder(folder, what):
    """{key: path} of the images in `folder` (not recursive); key = stem without a trailing
    _A/_B.  Two files with one key are an error."""
    if not os.path.isdir(folder):
        raise UserError(f"{what} {folder}: no such folder")
    index = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not (os.path.isfile(path) and is_image_file(name)):
            continue
        key = image_key(name)
        if key in index:
            raise UserError(f"{what} {folder}: {os.path.basename(index[key])} and {name} both "
                            f"stand for image '{key}'; keep one")
        index[key] = path
    if not index:
        raise UserError(f"{what} {folder} holds no images")
    return index


def pair_with_labels(image_dir, label_dir):
    """[(image path, label path)] in key order; every image must have a label map."""
    images = index_folder(image_dir, "image folder")
    labels = index_folder(label_dir, "--seg_labels")
    orphans = [key for key in images if key not in labels]
    if orphans:
        raise UserError(f"{len(orphans)} of the {len(images)} images in {image_dir} have no label "
                        f"map in {label_dir} (e.g. '{orphans[0]}'); label maps are named like the "
                        "images, with a trailing _A/_B ignored")
    return [(images[key], labels[key]) for key in sorted(images, key=_natural)]


def _natural(key):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def load_label_map(path, num_classes):
    """(H, W) uint8 train ids of one label map; values other than 0..num_classes-1 and 255
    mean the file is not a train-id map (e.g. a labelIds or colour image)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise UserError(f"label map {path} is a {im.mode} image; --seg_labels wants "
                                "single-channel train-id maps (datasets/prepare_cityscapes_"
                                "dataset.py writes them)")
            labels = np.asarray(im)
    except OSError as err:
        raise UserError(f"cannot read label map {path}: {err}") from None
    bad = (labels >= num_classes) & (labels != IGNORE)
    if bad.any():
        raise UserError(f"label map {path} holds value {int(labels[bad][0])}, not a train id "
                        f"0..{num_classes - 1} or {IGNORE}; is it a labelIds image? Use the "
                        "*_trainIds folders written by datasets/prepare_cityscapes_dataset.py")
    return labels.astype(np.uint8)


def load_photo(path, size=None):
    """(H, W, 3) uint8 RGB, resized (bicubic) to `size` = (W, H) when given and different."""
    try:
        with Image.open(path) as im:
            return resize_photo(np.asarray(im.convert("RGB")), size)
    except OSError as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def resize_photo(photo, size=None):
    """(H, W, 3) uint8 -> the same at `size` = (W, H), PIL bicubic (unchanged when equal)."""
    if size is None or (photo.shape[1], photo.shape[0]) == tuple(size):
        return photo
    return np.asarray(Image.fromarray(photo).resize(tuple(size), Image.BICUBIC))


# ---------------------------------------------------------------------------- scoring

def _batches(items, batch_size):
    for start in range(0, len(items), batch_size):
        yield items[start:start + batch_size]


def score_arrays(segmenter, photos, label_maps, batch_size=16):
    """Confusion matrix of `segmenter` on photos ((H, W, 3) uint8 each, already at their label
    map's size) against label maps ((H, W) train ids)."""
    n = len(segmenter.classes)
    hist = np.zeros((n, n), np.int64)
    pairs = list(zip(photos, label_maps))
    for batch in _batches(pairs, batch_size):
        shapes = {p.shape for p, _ in batch}
        groups = [batch] if len(shapes) == 1 else [[b] for b in batch]  # one size per forward
        for group in groups:
            prediction = segmenter.predict(np.stack([p for p, _ in group])).numpy()
            for pred, (_, gt) in zip(prediction, group):
                hist += confusion_matrix(gt, pred, n)
    return hist


def segmentation_score(segmenter, image_dir, label_dir, batch_size=16, progress=None):
    """The record metrics.jsonl holds for one folder: scores (fractions), per-class IoU by
    name, the confusion matrix and the protocol."""
    pairs = pair_with_labels(image_dir, label_dir)
    n = len(segmenter.classes)
    hist = np.zeros((n, n), np.int64)
    sizes = set()
    for batch in _batches(pairs, batch_size):
        labels = [load_label_map(lp, n) for _, lp in batch]
        photos = [load_photo(ip, (gt.shape[1], gt.shape[0])) for (ip, _), gt in zip(batch, labels)]
        hist += score_arrays(segmenter, photos, labels, batch_size)
        sizes.update(f"{gt.shape[1]}x{gt.shape[0]}" for gt in labels)
        if progress is not None:
            progress(len(batch))
    scores = scores_from_confusion(hist)
    return {**scores, "n_images": len(pairs), "eval_size": ", ".join(sorted(sizes)),
            "per_class_iou": dict(zip(segmenter.classes, scores["per_class_iou"])),
            "per_class_acc": dict(zip(segmenter.classes, scores["per_class_acc"])),
            "confusion_matrix": hist.tolist()}


def resolve_classes(segmenter, names):
    """Class indices of the comma-separated `names` (case-insensitive); unknown names are a
    one-line error listing a few valid ones."""
    lookup = {c.lower(): i for i, c in enumerate(segmenter.classes)}
    wanted = [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) \
        else list(names)
    if not wanted:
        raise UserError("--detect needs class names, e.g. --detect horse,zebra")
    unknown = [n for n in wanted if n.lower() not in lookup]
    if unknown:
        raise UserError(f"--detect: '{unknown[0]}' is not a class of {segmenter.name} (its classes "
                        f"include {', '.join(segmenter.classes[:12])}, ...)")
    return {n: lookup[n.lower()] for n in wanted}


def detected_pixels(segmenter, image_dir, classes, batch_size=4, progress=None):
    """Mean share of each image's pixels predicted as each class of `classes` ({name: index}),
    and as any of them; images segmented at their own size."""
    paths = list(index_folder(image_dir, "image folder").values())
    shares = {name: [] for name in classes}
    shares["any"] = []
    indices = list(classes.values())
    for batch in _batches(paths, batch_size):
        photos = [load_photo(p) for p in batch]
        groups = [photos] if len({p.shape for p in photos}) == 1 else [[p] for p in photos]
        for group in groups:
            for pred in segmenter.predict(np.stack(group)).numpy():
                for name, index in classes.items():
                    shares[name].append(float((pred == index).mean()))
                shares["any"].append(float(np.isin(pred, indices).mean()))
        if progress is not None:
            progress(len(batch))
    return {"detected": {name: float(np.mean(v)) for name, v in shares.items()},
            "n_images": len(paths), "detect_classes": classes}


def describe_protocol(segmenter):
    resize = ("bicubic to the label map's size" if segmenter.name == "drn_d_22" else
              f"bilinear to a longer side of {segmenter.input_size} px")
    return {"seg_protocol": PROTOCOL, "seg_model": segmenter.name,
            "seg_weights": os.path.abspath(segmenter.weights) if segmenter.weights else None,
            "seg_resize": resize}
