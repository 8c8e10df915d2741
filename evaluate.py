"""Score generated images: realism (FID/KID, the CUT paper's protocol) and correspondence (the
segmentation score of labels -> photo, or the share of detected pixels).

    python evaluate.py results/horse2zebra_CUT/test_latest/images/fake_B datasets/horse2zebra/testB
    python evaluate.py results/cityscapes_CUT/test_latest/images/fake_B datasets/cityscapes/testA \
        --seg_weights seg_drn_d_22.pth --seg_labels datasets/cityscapes/testB_trainIds
    python evaluate.py results/horse2zebra_CUT/test_latest/images/fake_B --detect zebra,horse \
        --seg_weights deeplabv2_resnet101_msc-cocostuff164k-100000.pth

FID/KID as the pytorch-fid command line: two folders, images read directly in them (leave out
REAL_DIR to skip them).  --seg_labels adds mIoU, pixel and class accuracy of a segmenter (default
drn_d_22) against train-id label maps; --seg_real_dir also scores the real photos (the upper
bound).  --detect adds the mean share of pixels a segmenter (default deeplabv2_cocostuff) calls
each class.  The result is printed and appended to metrics.jsonl: `results/<name>/metrics.jsonl`
when FAKE_DIR is test.py's `results/<name>/<phase>_<epoch>/images/<visual>`, else beside
FAKE_DIR (--jsonl to choose).  Protocols and weights: metrics/fid.py, metrics/segmentation.py;
docs/segmentation.md.  The real folder's Inception features are cached (--cache_dir).
"""
import argparse
import json
import os
import sys
import time

import torch

from metrics import fid
from metrics import segmentation as seg_metrics
from models.networks.segmentation import SEGMENTERS, load_segmenter
from util.errors import UserError, run_cli
from util.util import jsonable


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("fake_dir", help="folder of generated images (e.g. .../images/fake_B)")
    p.add_argument("real_dir", nargs="?", default=None,
                   help="folder of real target-domain images for FID/KID (e.g. "
                        "datasets/horse2zebra/testB); leave out to skip FID/KID")
    p.add_argument("--protocol", default=fid.PROTOCOL, choices=(fid.PROTOCOL,),
                   help="paper: pytorch-fid's defaults, as the CUT authors")
    p.add_argument("--inception_weights", default=None,
                   help=f"the FID Inception weights ({fid.WEIGHTS_FILE}); default: the torch hub cache")
    p.add_argument("--download", action="store_true",
                   help="let pytorch-fid download the weights into the torch hub cache if missing")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--batch_size", type=int, default=50, help="images per Inception forward pass")
    p.add_argument("--num_workers", type=int, default=0, help="image loading processes")
    p.add_argument("--no_kid", action="store_true", help="FID only")
    p.add_argument("--cache_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "cut_fid"),
                   help="where real-image features are cached ('' for no cache)")
    p.add_argument("--jsonl", default=None, help="append the result here (default: see above)")
    seg = p.add_argument_group("segmentation score and detected pixels (docs/segmentation.md)")
    seg.add_argument("--seg_model", default=None, choices=tuple(SEGMENTERS),
                     help="default: drn_d_22 with --seg_labels, deeplabv2_cocostuff with --detect")
    seg.add_argument("--seg_weights", default=None, help="the segmenter's weights (a local file)")
    seg.add_argument("--seg_labels", default=None,
                     help="train-id label maps of the inputs (e.g. datasets/cityscapes/"
                          "testB_trainIds): report mIoU, pixel accuracy and class accuracy")
    seg.add_argument("--seg_real_dir", default=None,
                     help="with --seg_labels: also score these real photos (e.g. "
                          "datasets/cityscapes/testA), the upper bound")
    seg.add_argument("--detect", default=None, metavar="CLASSES",
                     help="comma-separated classes, e.g. horse,zebra: report the mean share of "
                          "pixels predicted as each")
    seg.add_argument("--seg_batch_size", type=int, default=8, help="images per segmenter pass")
    seg.add_argument("--seg_size", type=int, default=513,
                     help="deeplabv2_cocostuff: the longer side images are resized to (513 as "
                          "deeplab-pytorch's demo); drn_d_22 runs at the label maps' size")
    return p.parse_args(argv)


def default_jsonl(fake_dir):
    """results/<name>/metrics.jsonl for test.py's layout, else <parent of fake_dir>/metrics.jsonl."""
    fake_dir = os.path.abspath(fake_dir)
    images = os.path.dirname(fake_dir)
    if os.path.basename(images) == "images":
        return os.path.join(os.path.dirname(os.path.dirname(images)), "metrics.jsonl")
    return os.path.join(os.path.dirname(fake_dir), "metrics.jsonl")


def evaluate(fake_dir, real_dir, weights_path, device="cpu", batch_size=50, num_workers=0,
             cache_dir=None, kid=True):
    """The metrics record for two folders (everything metrics.jsonl holds but the time)."""
    fake_files, real_files = fid.list_images(fake_dir), fid.list_images(real_dir)
    model = fid.load_inception(weights_path, device)
    fake = fid.features_of_files(fake_files, model, device, batch_size, num_workers)
    real = fid.cached_features(real_files, model, weights_path, cache_dir, device, batch_size,
                               num_workers)
    return {**fid.scores(fake, real, kid), **fid.describe_protocol(),
            "fake_dir": os.path.abspath(fake_dir), "real_dir": os.path.abspath(real_dir),
            **weights_record(weights_path)}


def weights_record(path):
    return {"weights": os.path.abspath(path), "weights_sha256": fid.weights_id(path),
            "weights_match_paper": fid.weights_match_paper(path)}


def segmentation_record(opt, device):
    """The segmentation score or detected-pixel fields of the record, printed as they come."""
    name = opt.seg_model or ("drn_d_22" if opt.seg_labels else "deeplabv2_cocostuff")
    segmenter = load_segmenter(name, opt.seg_weights, device, input_size=opt.seg_size)
    record = seg_metrics.describe_protocol(segmenter)
    if opt.seg_labels:
        def score(folder, what):
            scores = seg_metrics.segmentation_score(segmenter, folder, opt.seg_labels,
                                                    opt.seg_batch_size)
            print(f"segmentation score, {what}: mIoU {seg_metrics.percent(scores['miou'])}  "
                  f"pixAcc {seg_metrics.percent(scores['pixel_acc'])}  classAcc "
                  f"{seg_metrics.percent(scores['class_acc'])}  ({scores['n_images']} images at "
                  f"{scores['eval_size']}, {name}, protocol {seg_metrics.PROTOCOL})")
            return scores

        record.update(score(opt.fake_dir, "generated"), seg_labels=os.path.abspath(opt.seg_labels))
        if opt.seg_real_dir:  # the upper bound: real photos through the same segmenter
            record["real_photos"] = {**score(opt.seg_real_dir, "real photos"),
                                     "dir": os.path.abspath(opt.seg_real_dir)}
    else:
        classes = seg_metrics.resolve_classes(segmenter, opt.detect)
        found = seg_metrics.detected_pixels(segmenter, opt.fake_dir, classes, opt.seg_batch_size)
        shares = "  ".join(f"{c} {100 * v:.1f}%" for c, v in found["detected"].items())
        print(f"detected pixels: {shares}  ({found['n_images']} images, {name})")
        record.update(found, seg_protocol=seg_metrics.DETECT_PROTOCOL)
    return record


def check_options(opt):
    """The combinations that make a run; each mistake is one line."""
    if opt.batch_size < 1 or opt.seg_batch_size < 1 or opt.seg_size < 16:
        raise UserError("--batch_size and --seg_batch_size must be positive, --seg_size at least 16")
    if opt.seg_labels and opt.detect:
        raise UserError("--seg_labels and --detect use different segmenters; run them separately")
    if opt.real_dir is None and not (opt.seg_labels or opt.detect):
        raise UserError("nothing to compute: give REAL_DIR for FID/KID, or --seg_labels DIR "
                        "(segmentation score), or --detect CLASSES (detected pixels)")
    if (opt.seg_labels or opt.detect) and not opt.seg_weights:
        raise UserError("--seg_labels / --detect need --seg_weights FILE (a local file; see "
                        "docs/segmentation.md for where to get or how to train one)")
    if opt.seg_real_dir and not opt.seg_labels:
        raise UserError("--seg_real_dir needs --seg_labels")
    for folder, what in ((opt.fake_dir, "FAKE_DIR"), (opt.seg_labels, "--seg_labels"),
                         (opt.seg_real_dir, "--seg_real_dir")):
        if folder and not os.path.isdir(folder):
            raise UserError(f"{what} {folder}: no such folder")


def check_device(name):
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    return name


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    check_options(opt)
    device = check_device(opt.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.time()
    record = {"fake_dir": os.path.abspath(opt.fake_dir)}
    if opt.real_dir is not None:
        weights = fid.resolve_weights(opt.inception_weights, opt.download)
        if not fid.weights_match_paper(weights):
            print(f"note: {weights} is not the published FID Inception ({fid.WEIGHTS_FILE}): the "
                  "scores are not comparable with the paper's")
        record = evaluate(opt.fake_dir, opt.real_dir, weights, device, opt.batch_size,
                          opt.num_workers, opt.cache_dir or None, kid=not opt.no_kid)
        if record["n_fake"] < fid.DIMS or record["n_real"] < fid.DIMS:
            print(f"note: FID from fewer than {fid.DIMS} images is biased upwards; compare only "
                  "scores computed from the same numbers of images")
        kid = "" if opt.no_kid else f"  KID {record['kid']:.6f} ± {record['kid_std']:.6f}"
        print(f"FID {record['fid']:.4f}{kid}  (protocol {fid.PROTOCOL}; {record['n_fake']} "
              f"generated, {record['n_real']} real images)")
    if opt.seg_labels or opt.detect:
        record.update(segmentation_record(opt, device))
    record.update(time=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.time() - start,
                  device=device)
    path = opt.jsonl or default_jsonl(opt.fake_dir)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({k: v if isinstance(v, (dict, list)) else jsonable(v)
                            for k, v in record.items()}) + "\n")
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
