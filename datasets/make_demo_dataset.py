"""Generate the built-in synthetic "miniature horse2zebra" data set.

Domain A ("horses"): one to three brown animals on green grass.  Domain B ("zebras"): animals of
the same shape family, filled with black-and-white stripes, on tan savanna.  Ground-truth animal
masks are written for the test images, so that `metrics/` can score translations A->B for content
preservation (does the animal keep its shape?) and realism (is it striped, is the ground tan?).

Like the real horse2zebra set, the two domains are biased in animal size: the CUT paper (Sec. 5)
counts 17.9% horse pixels and 36.8% zebra pixels, so B's animals cover about twice A's area.

Layout written under --out::

    trainA/ trainB/ testA/ testB/       RGB PNG images
    testA_mask/ testB_mask/             'L' PNG masks (255 = animal), same file names as the images

Every image draws from its own generator, seeded by (seed, split, domain, index), so the output
does not depend on the order of generation or on how many images are asked for.

    python datasets/make_demo_dataset.py --out datasets/demo_horse2zebra
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make `util` importable from the repository root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.errors import UserError, run_cli  # noqa: E402

DOMAINS = ("A", "B")
SPLITS = ("train", "test")
FILE_PREFIX = {"A": "horse", "B": "zebra"}
SUBFOLDERS = ("trainA", "trainB", "testA", "testB", "testA_mask", "testB_mask")

# Target share of the image covered by animals, drawn uniformly per image (means 0.18 and 0.37).
AREA_RANGE = {"A": (0.11, 0.25), "B": (0.29, 0.45)}
BLOB_COUNT_P = (0.5, 0.3, 0.2)  # probability of 1, 2, 3 animals

# Palette (RGB, 0..255).  metrics/demo_detector.py models these colours; keep the two in step.
GRASS = (72.0, 122.0, 44.0)
SAVANNA = (196.0, 176.0, 120.0)
BROWN = (120.0, 62.0, 30.0)
STRIPE_BLACK = (28.0, 26.0, 24.0)
STRIPE_WHITE = (238.0, 236.0, 230.0)
STRIPE_PERIOD = (0.075, 0.12)  # stripe period as a fraction of the image side


def image_rng(seed, split, domain, index):
    """The generator for one image; independent of every other image's."""
    return np.random.default_rng([seed, SPLITS.index(split), DOMAINS.index(domain), index])


def _smooth_noise(rng, size, cells_y, cells_x):
    """(size, size) float32 noise, roughly unit scale, smooth over size/cells pixels per axis."""
    grid = rng.standard_normal((cells_y, cells_x)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC))
    return np.clip(field, -2.0, 2.0)  # no rare pitch-black or blown-out ground


def _random_animal(rng):
    """One animal as ellipses (dy, dx, a, b, angle) in body units (body semi-major axis = 1).

    A body, a head at one end raised on a neck, and a leg block below: a union of three
    ellipses gives smooth, horse-like silhouettes that are not all alike.
    """
    aspect = rng.uniform(1.5, 2.1)
    facing = rng.choice((-1.0, 1.0))
    body = (0.0, 0.0, 1.0, 1.0 / aspect, 0.0)
    head = (-rng.uniform(0.35, 0.6), facing * rng.uniform(0.8, 1.0),
            rng.uniform(0.35, 0.45), rng.uniform(0.17, 0.23), -facing * rng.uniform(0.4, 0.9))
    legs = (rng.uniform(0.5, 0.7) / aspect, rng.uniform(-0.2, 0.2),
            rng.uniform(0.6, 0.8), rng.uniform(0.25, 0.35), 0.0)
    return [body, head, legs], rng.uniform(-0.45, 0.45)


def _animal_field(yy, xx, parts, tilt, cy, cx, scale):
    """min over ellipses of the implicit function; < 1 inside the animal."""
    ct, st = np.cos(tilt), np.sin(tilt)
    field = np.full(yy.shape, np.inf, dtype=np.float32)
    for dy, dx, a, b, angle in parts:
        # Part centre: rotate the body-frame offset by the tilt, then scale and place.
        py = cy + scale * (dx * st + dy * ct)
        px = cx + scale * (dx * ct - dy * st)
        ca, sa = np.cos(tilt + angle), np.sin(tilt + angle)
        u = ((xx - px) * ca + (yy - py) * sa) / (scale * a)
        v = (-(xx - px) * sa + (yy - py) * ca) / (scale * b)
        np.minimum(field, u * u + v * v, out=field)
    return field


def _layout(rng, domain, yy, xx):
    """Place 1-3 animals and size them so their union covers the target share of the image.

    Returns one boolean mask per animal (later ones drawn over earlier ones).
    """
    n = rng.choice(3, p=BLOB_COUNT_P) + 1
    target = rng.uniform(*AREA_RANGE[domain])
    shares = rng.dirichlet(np.full(n, 4.0))
    animals = [_random_animal(rng) for _ in range(n)]
    centres = rng.uniform(0.25, 0.75, size=(n, 2))
    # Body ellipse area is pi / aspect in body units; the other parts add roughly a third.
    base_scale = [np.sqrt(s * target * parts[0][3] / (1.33 * np.pi)) for s, (parts, _) in
                  zip(shares, animals)]

    def masks_at(k):
        return [_animal_field(yy, xx, parts, tilt, cy, cx, k * s) < 1.0
                for (parts, tilt), (cy, cx), s in zip(animals, centres, base_scale)]

    k = 1.0
    for _ in range(4):  # overlaps and the image border eat area: rescale towards the target
        area = np.logical_or.reduce(masks_at(k)).mean()
        k *= float(np.clip(np.sqrt(target / max(area, 1e-4)), 0.7, 1.5))
    return masks_at(k)


def _ground(rng, domain, size):
    """Grass (A) or savanna (B) texture, float (size, size, 3)."""
    if domain == "A":
        base = np.array(GRASS) * rng.uniform(0.85, 1.15) + rng.normal(0.0, 3.0, 3)
        patches = 0.12 * _smooth_noise(rng, size, 4, 4)
        blades = 0.10 * _smooth_noise(rng, size, 5, max(size // 3, 4))  # vertical streaks
    else:
        base = np.array(SAVANNA) * rng.uniform(0.9, 1.1) + rng.normal(0.0, 3.0, 3)
        patches = 0.08 * _smooth_noise(rng, size, 4, 4)
        blades = 0.06 * _smooth_noise(rng, size, max(size // 3, 4), 5)  # horizontal dry grass
    return base * (1.0 + patches + blades)[..., None]


def _horse_coat(rng, size, yy):
    """Brown coat with top-lit shading, float (size, size, 3)."""
    base = np.array(BROWN) * rng.uniform(0.85, 1.2) + rng.normal(0.0, (6.0, 4.0, 3.0))
    shade = 1.0 + 0.2 * (0.5 - yy) + 0.06 * _smooth_noise(rng, size, 6, 6)
    return base * shade[..., None]


def _zebra_coat(rng, size, yy, xx):
    """Black-and-white stripes of random orientation and period, float (size, size, 3)."""
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(*STRIPE_PERIOD)
    warp = 1.2 * _smooth_noise(rng, size, 3, 3)  # stripes bend a little, as on a real coat
    phase = 2.0 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + warp
    white = np.clip(0.5 + 2.0 * np.sin(phase + rng.uniform(0, 2 * np.pi)), 0.0, 1.0)
    black, bright = np.array(STRIPE_BLACK), np.array(STRIPE_WHITE)
    coat = black + (bright - black) * white[..., None]
    shade = 1.0 + 0.12 * (0.5 - yy) + 0.04 * _smooth_noise(rng, size, 6, 6)
    return coat * shade[..., None]


def _pixel_grid(size):
    """Pixel centres in image units: (yy, xx), each (size, size)."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="ij")


def _check_domain(domain):
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")


def paint_image(domain, masks, rng):
    """Paint `domain`'s ground and one coat per animal mask: uint8 (size, size, 3).

    masks: a bool (size, size) array or a list of them (later ones drawn over earlier ones).
    Besides generate_image, this renders an ideal translation: a testA layout painted as B.
    """
    _check_domain(domain)
    masks = [masks] if isinstance(masks, np.ndarray) else list(masks)
    size = masks[0].shape[0]
    yy, xx = _pixel_grid(size)
    img = _ground(rng, domain, size)
    for m in masks:
        coat = _horse_coat(rng, size, yy) if domain == "A" else _zebra_coat(rng, size, yy, xx)
        img[m] = coat[m]
    img += rng.normal(0.0, 3.5, img.shape)  # sensor noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def generate_image(domain, rng, size):
    """Draw one image of `domain` ('A' or 'B').

    Returns (rgb, mask): uint8 (size, size, 3) and bool (size, size), True on animal pixels.
    """
    _check_domain(domain)
    masks = _layout(rng, domain, *_pixel_grid(size))
    return paint_image(domain, masks, rng), np.logical_or.reduce(masks)


def generate_dataset(out, seed=0, size=64, n_train=450, n_test=50, overwrite=False,
                     progress=None):
    """Write the demo data set under `out`; return a summary dict.

    Refuses to write into a non-empty `out` unless `overwrite`, which removes only the six
    sub-folders this function writes.  `progress`, if given, is called as progress(done, total).
    """
    if size < 16:
        raise UserError(f"--size must be at least 16 pixels, got {size}")
    if n_train < 0 or n_test < 0:
        raise UserError("--n_train and --n_test must not be negative")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise UserError(f"{out} already exists and is not empty; pass --overwrite to "
                            "regenerate it or choose another --out")
        for sub in SUBFOLDERS:
            shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    for sub in SUBFOLDERS:
        os.makedirs(os.path.join(out, sub), exist_ok=True)

    start = time.perf_counter()
    counts = {"train": n_train, "test": n_test}
    total, done = 2 * (n_train + n_test), 0
    fractions = {d: [] for d in DOMAINS}
    for split in SPLITS:
        for domain in DOMAINS:
            for i in range(counts[split]):
                rgb, mask = generate_image(domain, image_rng(seed, split, domain, i), size)
                name = f"{FILE_PREFIX[domain]}_{i:04d}.png"
                Image.fromarray(rgb, "RGB").save(os.path.join(out, split + domain, name))
                if split == "test":
                    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(
                        os.path.join(out, f"test{domain}_mask", name))
                fractions[domain].append(float(mask.mean()))
                done += 1
                if progress is not None:
                    progress(done, total)
    return {
        "out": out, "seed": seed, "size": size, "n_train": n_train, "n_test": n_test,
        "images": total, "seconds": time.perf_counter() - start,
        "mask_fraction": {d: float(np.mean(v)) if v else float("nan")
                          for d, v in fractions.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(".", "datasets", "demo_horse2zebra"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels "
                        "(default: %(default)s)")
    parser.add_argument("--n_train", type=int, default=450, help="training images per domain "
                        "(default: %(default)s)")
    parser.add_argument("--n_test", type=int, default=50, help="test images per domain "
                        "(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the sub-folders of an existing --out")
    opt = parser.parse_args(argv)

    def progress(done, total):
        if done % 100 == 0 or done == total:
            print(f"\r{done}/{total} images", end="", flush=True)

    s = generate_dataset(opt.out, opt.seed, opt.size, opt.n_train, opt.n_test, opt.overwrite,
                         progress=progress if sys.stdout.isatty() else None)
    print(f"\rwrote {s['images']} images ({opt.n_train}+{opt.n_train} train, "
          f"{opt.n_test}+{opt.n_test} test, {opt.size} px) to {opt.out} in {s['seconds']:.1f} s; "
          f"mean animal share A {s['mask_fraction']['A']:.3f}, B {s['mask_fraction']['B']:.3f}")


if __name__ == "__main__":
    run_cli(lambda: main())
