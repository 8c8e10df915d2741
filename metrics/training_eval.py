"""FID/KID or mIoU of the generator during training (--eval_freq), with the protocols of
evaluate.py.

Every --eval_freq epochs the current generator translates the test split exactly as test.py
would (resized straight to --crop_size, no flip, one image at a time, the network in the mode
test.py leaves it in) and the outputs, quantised to 8 bits as test.py saves them, are scored:
  --eval_metric fid / kid   against the raw images of the target test folder (Inception)
  --eval_metric miou        by the segmenter --seg_weights against the train-id label maps of
                            the source images (--seg_labels, default <source folder>_trainIds,
                            e.g. testB_trainIds for Cityscapes labels -> photo); the record also
                            holds pixel and class accuracy (metrics/segmentation.py)
The paper reports the best epoch; train.py keeps that generator as best_net_G.pth (lowest FID or
KID, highest mIoU).

Evaluation must not change training: it runs on a copy of G (BatchNorm statistics untouched),
and every random-number state is restored afterwards (even a DataLoader draws one number), so a
seeded run ends with the same weights with or without --eval_freq.
"""
import copy
import json
import os
import time

import torch

from data.single_dataset import SingleDataset
from util.errors import UserError
from util.runtime import get_rng_state, set_rng_state
from util.util import atomic_write, tensor2im

from . import fid
from . import segmentation as seg_metrics

# Metrics for which a larger value is better (the others: smaller is better).
HIGHER_IS_BETTER = {"miou"}
SEGMENTATION_METRICS = {"miou"}


def seg_label_dir(opt, source_dir):
    """--seg_labels, or the prepared set's <source folder>_trainIds."""
    return opt.seg_labels or source_dir.rstrip(os.sep) + "_trainIds"


def test_split(opt):
    """(source folder, target folder) of the test split, as test.py finds them."""
    for phase in ("test", "val"):
        folders = [os.path.join(opt.dataroot, phase + side) for side in "AB"]
        if all(os.path.isdir(f) for f in folders):
            return tuple(folders) if opt.direction == "AtoB" else tuple(reversed(folders))
    raise UserError(f"--eval_freq needs a test split: {opt.dataroot}/testA and testB (or valA and "
                    "valB); add them or leave --eval_freq at 0")


class TrainingEvaluator:
    """Built once before training (loads Inception and the target's features, cached, or the
    segmenter and the label maps); `evaluator(netG)` returns the metrics record of that
    generator."""

    def __init__(self, opt, device):
        self.device = device
        self.source_dir, self.target_dir = test_split(opt)
        self.segmentation = opt.eval_metric in SEGMENTATION_METRICS
        eval_opt = copy.copy(opt)
        eval_opt.dataroot, eval_opt.direction = self.source_dir, "AtoB"  # a folder that feeds G
        eval_opt.isTrain, eval_opt.phase, eval_opt.no_flip = False, "test", True
        eval_opt.load_size = opt.crop_size  # test.py's default: straight to the crop size
        eval_opt.max_dataset_size = opt.eval_num_test
        state = get_rng_state()
        try:
            self.dataset = SingleDataset(eval_opt)
            for index in range(len(self.dataset)):  # an unreadable test image fails now, not later
                self.dataset[index]
            if self.segmentation:
                self._setup_segmentation(opt, device)
            else:
                self._setup_fid(opt, device)
        finally:
            set_rng_state(state)

    def _setup_fid(self, opt, device):
        self.weights = fid.resolve_weights(opt.inception_weights)
        self.model = fid.load_inception(self.weights, device)
        self.real = fid.cached_features(fid.list_images(self.target_dir), self.model,
                                        self.weights, opt.fid_cache_dir or None, device)
        self.context = {"source_dir": self.source_dir, "target_dir": self.target_dir,
                        "weights": self.weights, "weights_sha256": fid.weights_id(self.weights),
                        "weights_match_paper": fid.weights_match_paper(self.weights),
                        **fid.describe_protocol()}
        print(f"evaluation: {len(self.dataset)} images of {self.source_dir} against "
              f"{len(self.real)} of {self.target_dir} (protocol {fid.PROTOCOL})")

    def _setup_segmentation(self, opt, device):
        from models.networks.segmentation import load_segmenter
        label_dir = seg_label_dir(opt, self.source_dir)
        self.segmenter = load_segmenter(opt.seg_model, opt.seg_weights, device)
        labels = seg_metrics.index_folder(label_dir, "--seg_labels")
        self.labels = []
        for path in self.dataset.A_paths:
            key = seg_metrics.image_key(path)
            if key not in labels:
                raise UserError(f"--eval_metric miou: test image {path} has no label map in "
                                f"{label_dir} (pass --seg_labels DIR)")
            self.labels.append(seg_metrics.load_label_map(labels[key],
                                                          len(self.segmenter.classes)))
        self.context = {"source_dir": self.source_dir, "seg_labels": label_dir,
                        **seg_metrics.describe_protocol(self.segmenter),
                        "protocol": seg_metrics.PROTOCOL}
        print(f"evaluation: {len(self.dataset)} images of {self.source_dir}, segmented by "
              f"{opt.seg_model} ({opt.seg_weights}) against {label_dir} (protocol "
              f"{seg_metrics.PROTOCOL})")

    def _score(self, images):
        if not self.segmentation:
            return fid.scores(fid.features_of_images(images, self.model, self.device), self.real)
        photos = [seg_metrics.resize_photo(image, (gt.shape[1], gt.shape[0]))
                  for image, gt in zip(images, self.labels)]
        hist = seg_metrics.score_arrays(self.segmenter, photos, self.labels)
        scores = seg_metrics.scores_from_confusion(hist)
        return {k: scores[k] for k in ("miou", "pixel_acc", "class_acc")} | {
            "per_class_iou": dict(zip(self.segmenter.classes, scores["per_class_iou"])),
            "n_images": len(photos)}

    def __call__(self, netG):
        state = get_rng_state()
        try:
            generator = copy.deepcopy(netG)
            images = []
            with torch.no_grad():
                for index in range(len(self.dataset)):
                    source = self.dataset[index]["A"].unsqueeze(0).to(self.device)
                    images.append(tensor2im(generator(source)))
            return {**self._score(images), **self.context,
                    "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        finally:
            set_rng_state(state)


class BestCheckpoint:
    """best_net_G.pth with best_net_G.json beside it: the generator with the best `metric` so
    far (the lowest FID/KID, the highest mIoU), its epoch and its scores.  Read back when a run
    is resumed, so the best survives.
    `net_name` is the generator's name in the model (CycleGAN's is G_A: best_net_G_A.*)."""

    def __init__(self, folder, metric, resumed, net_name="G"):
        self.metric = metric
        self.path = os.path.join(folder, f"best_net_{net_name}.json")
        self.best = None  # a new run ignores (and in time overwrites) an earlier run's best
        if resumed and os.path.isfile(self.path):
            with open(self.path) as f:
                saved = json.load(f)
            if saved.get("metric") == metric:
                self.best = saved

    def update(self, record, save_generator):
        """Keep `record`'s generator (via `save_generator()`) if it beats the best; True if so."""
        value = record[self.metric]
        if self.best is not None:
            better = value > self.best["value"] if self.metric in HIGHER_IS_BETTER \
                else value < self.best["value"]
            if not better:
                return False
        save_generator()
        self.best = {"metric": self.metric, "value": value, **record}
        with atomic_write(self.path, "w", fsync=True) as f:
            json.dump(self.best, f, indent=2, default=float)
            f.write("\n")
        return True
