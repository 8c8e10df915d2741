"""Protocol `demo_h2z_v1`: how well a model translates the demo set's horses (testA) into zebras.

For every translated testA image, with the true animal mask of its input (testA_mask/):

  content_iou   IoU of the input's true animal mask and the animal found in the translation
                (does the animal keep its place and shape?)
  stripe_share  share of the found animal's pixels with zebra texture (0 if no animal is found)
  bg_match      1 - |ground colour - mean real-B ground colour| / |mean real-A - mean real-B|,
                clipped to [0, 1]: 0 = as far from savanna as grass is, 1 = savanna.  The ground
                is the image outside the (slightly grown) true input mask.  Distance is plain RGB,
                so flat mid-grey, which lies between grass and savanna, already gets about 0.47:
                read it together with stripe_share and b_rate.
  b_rate        share of images the detector calls B (striped animal on savanna ground)

Every row also carries `animal_coverage`, the mean share of pixels the detector calls animal (not
a score: the data set's zebras cover about twice the area of its horses, so it shows whether a
model enlarges the animals; on `identity` and `real_B` it is the source's and the target's own).

Columns are means over images; higher is better everywhere.  Two rows frame every model:
`identity` scores the real testA images as if they were translations (what doing nothing gets),
and `real_B` scores real testB images against their own masks (the target; its content_iou is the
detector's own accuracy, i.e. the ceiling a model can reach).  Together they also validate the
detector: mask IoU on A and B, and A-vs-B accuracy from the two b_rates.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from metrics.demo_detector import analyse, mask_iou
from util.errors import UserError

PROTOCOL = "demo_h2z_v1"
COLUMNS = ("content_iou", "stripe_share", "bg_match", "b_rate")
EXTRA = ("animal_coverage",)  # averaged per row like COLUMNS, but not printed by format_table
IDENTITY, TARGET = "identity", "real_B"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
NEEDED = ("testA", "testB", "testA_mask", "testB_mask")


def load_rgb(path):
    """Image file -> uint8 (H, W, 3)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def load_mask(path, size=None):
    """Mask file -> bool (H, W); `size` (W, H) resizes with nearest neighbour first."""
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.NEAREST)
            return np.asarray(im) > 127
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read mask {path}: {err}") from None


def index_images(folder):
    """{file stem: path} of the images directly inside `folder`, sorted by stem."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in names}


def check_dataroot(dataroot):
    missing = [d for d in NEEDED if not os.path.isdir(os.path.join(dataroot, d))]
    if missing:
        raise UserError(f"{dataroot} is not a demo data set (missing {', '.join(missing)}); "
                        f"make one with: python datasets/make_demo_dataset.py --out {dataroot}")


def ground_colour(rgb, animal):
    """Mean RGB of the ground: pixels outside `animal` grown by ~2% of the image side."""
    grow = max(1, round(0.02 * min(animal.shape)))
    ground = ~ndi.binary_dilation(animal, iterations=grow)
    if not ground.any():
        ground = ~animal
    if not ground.any():
        return np.full(3, np.nan)
    return rgb[ground].astype(np.float64).mean(axis=0)


class Reference:
    """Mean ground colour of the real testA and testB images, from their true masks."""

    def __init__(self, ground_a, ground_b):
        self.ground_a = np.asarray(ground_a, dtype=np.float64)
        self.ground_b = np.asarray(ground_b, dtype=np.float64)
        self.scale = max(float(np.linalg.norm(self.ground_a - self.ground_b)), 1e-6)

    @classmethod
    def from_dataroot(cls, dataroot):
        check_dataroot(dataroot)
        means = []
        for domain in "AB":
            colours = [ground_colour(load_rgb(path), load_mask(mask_path))
                       for path, mask_path in _pairs(dataroot, domain)]
            means.append(np.nanmean(colours, axis=0))
        return cls(*means)

    def bg_match(self, colour):
        if np.isnan(colour).any():
            return 0.0
        return float(np.clip(1.0 - np.linalg.norm(colour - self.ground_b) / self.scale, 0, 1))


def _pairs(dataroot, domain):
    """[(image path, mask path)] for the test images of `domain`."""
    images = index_images(os.path.join(dataroot, "test" + domain))
    masks = index_images(os.path.join(dataroot, f"test{domain}_mask"))
    if not images:
        raise UserError(f"no images in {os.path.join(dataroot, 'test' + domain)}")
    missing = [s for s in images if s not in masks]
    if missing:
        raise UserError(f"{dataroot}: test{domain}/{missing[0]} has no mask in test{domain}_mask/"
                        f" ({len(missing)} missing); regenerate the data set")
    return [(images[s], masks[s]) for s in images]


def score_image(rgb, true_mask, ref):
    """Scores of one translated image given its input's true animal mask (same H, W)."""
    found = analyse(rgb)
    return {
        "content_iou": mask_iou(found["animal"], true_mask),
        "stripe_share": found["stripe_share"],
        "bg_match": ref.bg_match(ground_colour(rgb, true_mask)),
        "b_rate": float(found["is_b"]),
        "animal_coverage": float(found["animal"].mean()),
    }


def score_pairs(pairs, ref):
    """Mean scores of (image path, mask path) pairs; the mask is resized to the image."""
    per_image = []
    for path, mask_path in pairs:
        rgb = load_rgb(path)
        mask = load_mask(mask_path, size=(rgb.shape[1], rgb.shape[0]))
        per_image.append(score_image(rgb, mask, ref))
    row = {"n": len(per_image)}
    row.update({c: float(np.mean([s[c] for s in per_image])) for c in COLUMNS + EXTRA})
    return row


def score_folder(folder, dataroot, ref=None):
    """Scores of a flat folder of translations `<stem>.png` of testA/<stem>.* ."""
    check_dataroot(dataroot)
    images = index_images(folder) if os.path.isdir(folder) else {}
    if not images:
        raise UserError(f"no images in {folder}")
    masks = index_images(os.path.join(dataroot, "testA_mask"))
    missing = [s for s in images if s not in masks]
    if missing:
        raise UserError(f"{images[missing[0]]} has no ground-truth mask "
                        f"{os.path.join(dataroot, 'testA_mask', missing[0])}.png ({len(missing)} "
                        "of the images); score translations of this data set's testA only")
    ref = ref or Reference.from_dataroot(dataroot)
    return score_pairs([(images[s], masks[s]) for s in images], ref)


def find_fake_folder(results_dir):
    """The folder of translations in a test.py results folder (or the folder itself)."""
    for sub in (os.path.join("images", "fake_B"), "fake_B"):
        if os.path.isdir(os.path.join(results_dir, sub)):
            return os.path.join(results_dir, sub)
    if os.path.isdir(results_dir) and index_images(results_dir):
        return results_dir
    raise UserError(f"no translations under {results_dir}: expected "
                    f"{os.path.join(results_dir, 'images', 'fake_B', '<stem>.png')} as written "
                    "by test.py, or a folder of images")


def score_results(results_dir, dataroot, ref=None):
    """Scores of a test.py results folder, e.g. results/<name>/test_latest."""
    return score_folder(find_fake_folder(results_dir), dataroot, ref)


def score_table(dataroot, results=None):
    """The full report: identity, every named results folder, real_B, and a detector check.

    results: {row name: results folder}, in display order.
    """
    results = dict(results or {})
    clash = [name for name in results if name in (IDENTITY, TARGET)]
    if clash:
        raise UserError(f"--results name {clash[0]!r} is reserved for a baseline row; rename it")
    ref = Reference.from_dataroot(dataroot)
    rows = {IDENTITY: score_pairs(_pairs(dataroot, "A"), ref)}
    for name, path in results.items():
        rows[name] = dict(score_results(path, dataroot, ref), path=path)
    rows[TARGET] = score_pairs(_pairs(dataroot, "B"), ref)
    a, b = rows[IDENTITY], rows[TARGET]
    detector = {
        "mask_iou_A": a["content_iou"], "mask_iou_B": b["content_iou"],
        "accuracy_A_vs_B": (a["n"] * (1 - a["b_rate"]) + b["n"] * b["b_rate"]) / (a["n"] + b["n"]),
    }
    return {"protocol": PROTOCOL, "dataroot": dataroot, "rows": rows, "detector": detector,
            "reference_ground_rgb": {"A": ref.ground_a.tolist(), "B": ref.ground_b.tolist()}}


def format_table(report):
    """The report as a plain-text table."""
    rows = report["rows"]
    width = max(len(n) for n in list(rows) + ["model"]) + 2
    lines = [f"{report['protocol']} on {report['dataroot']}",
             f"{'model':<{width}}{'n':>5}" + "".join(f"{c:>14}" for c in COLUMNS)]
    for name, row in rows.items():
        lines.append(f"{name:<{width}}{row['n']:>5}" + "".join(f"{row[c]:>14.3f}" for c in COLUMNS))
    d = report["detector"]
    lines.append(f"(identity = real testA as output; {TARGET} = real testB, whose content_iou is "
                 "the detector's own mask IoU: a model's ceiling)")
    lines.append(f"detector check: mask IoU A {d['mask_iou_A']:.3f}, B {d['mask_iou_B']:.3f}; "
                 f"A-vs-B accuracy {100 * d['accuracy_A_vs_B']:.1f}%")
    return "\n".join(lines)


def parse_results(items):
    """['name=path' or 'path', ...] -> {name: path}; a bare path is named by its last two parts."""
    results = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            path = item
            name = "/".join(os.path.normpath(item).split(os.sep)[-2:])
        if not name or not path:
            raise UserError(f"--results {item!r}: expected NAME=FOLDER")
        if not os.path.isdir(path):
            raise UserError(f"--results {item!r}: folder {path} does not exist")
        if name in results:
            raise UserError(f"--results name {name!r} is given twice")
        results[name] = path
    return results


def write_json(report, path):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Score A->B translations of the demo data set (protocol demo_h2z_v1).")
    parser.add_argument("--dataroot", default=os.path.join("datasets", "demo_horse2zebra"),
                        help="demo data set folder (default: %(default)s)")
    parser.add_argument("--results", action="append", default=[], metavar="NAME=FOLDER",
                        help="a test.py results folder (e.g. results/demo/test_latest) or a "
                             "folder of translated images; repeat for more rows")
    parser.add_argument("--json", default=None, help="where to write the scores (default: "
                        "<first results folder>/demo_scores.json; none without --results)")
    opt = parser.parse_args(argv)

    results = parse_results(opt.results)
    report = score_table(opt.dataroot, results)
    print(format_table(report))
    path = opt.json
    if path is None and results:
        path = os.path.join(next(iter(results.values())), "demo_scores.json")
    if path:
        write_json(report, path)
        print(f"wrote {path}")
    return report
