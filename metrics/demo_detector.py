"""A hand-made detector for the demo data set: animal mask, stripe texture, zebra-or-horse.

No learned weights: the demo images are drawn from a known palette (datasets/make_demo_dataset.py),
so simple colour geometry and morphology suffice.  The detector only looks at pixels, never at the
domain an image came from, so it can judge translated images too.

Background model.  Grass and savanna are textured by multiplying a base colour by a brightness
field, so their pixels lie near the rays t*GRASS and t*SAVANNA in RGB.  We call a pixel background
when it is close to the wedge spanned by the two rays (which also admits the olive in-between
colours a half-finished translation produces).  Anything far from the wedge -- brown, grey, white,
purple -- or very dark is animal.

Stripe texture.  Zebra coats are black and white bands: high local contrast of luminance, a nearly
grey local mean colour, and gradients that share one orientation (coherence of the structure
tensor, (l1 - l2) / (l1 + l2) of its eigenvalues; near 1 for bands, near 0 for speckle).
Statistics are taken inside the animal mask only, so the ground never leaks into the texture.

All window sizes scale with the image side (the reference is 64 px), so results written by
test.py at another --load_size are judged alike.
"""
import numpy as np
from scipy import ndimage as ndi

# Palette the background model is built from (RGB); mirrors datasets/make_demo_dataset.py.
GRASS_RGB = (72.0, 122.0, 44.0)
SAVANNA_RGB = (196.0, 176.0, 120.0)

WEDGE_DIST = 20.0     # RGB distance from the background wedge above which a pixel is animal
DARK_LUMA = 40.0      # luminance below which a pixel is animal (black stripes; ground is lighter)
STRIPE_STD = 40.0     # local luminance std above which the texture is striped
STRIPE_MAX_SAT = 0.25  # ... provided the local mean colour is this grey (HSV saturation)
STRIPE_COHERENCE = 0.5  # ... and the contrast is oriented (stripes, not speckle noise)
MIN_AREA = 0.003      # smallest animal, as a share of the image
MAX_HOLE = 0.004      # larger enclosed regions are ground seen between animals, not a hole
REF_SIDE = 64.0       # image side the pixel radii below are tuned for

_RAYS = np.stack([np.array(GRASS_RGB) / np.linalg.norm(GRASS_RGB),
                  np.array(SAVANNA_RGB) / np.linalg.norm(SAVANNA_RGB)], axis=1)  # (3, 2)
_RAYS_PINV = np.linalg.pinv(_RAYS)  # (2, 3)


def _odd(x):
    return max(3, int(round(x)) | 1)


def _disk(radius):
    r = max(int(round(radius)), 1)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def _padded(op, mask, structure):
    """Binary morphology with the border replicated, so animals cut by the frame keep their edge."""
    p = structure.shape[0] // 2
    out = op(np.pad(mask, p, mode="edge"), structure=structure)
    return out[p:-p, p:-p]


def _fill_small_holes(mask, max_area):
    holes, n = ndi.label(ndi.binary_fill_holes(mask) & ~mask)
    if not n:
        return mask
    sizes = ndi.sum_labels(np.ones_like(mask), holes, index=np.arange(1, n + 1))
    return mask | np.concatenate([[False], sizes <= max_area])[holes]


def luminance(rgb):
    """(H, W, 3) -> (H, W) float, Rec. 601 weights."""
    return np.asarray(rgb, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def ground_coefficients(rgb):
    """Project colours onto the (grass, savanna) rays: (H, W, 3) -> (H, W, 2), clipped at 0."""
    return np.clip(np.asarray(rgb, dtype=np.float32) @ _RAYS_PINV.T.astype(np.float32), 0, None)


def wedge_distance(rgb):
    """RGB distance of each colour to the background wedge {a*grass + b*savanna : a, b >= 0}.

    (H, W, 3) -> (H, W).  Where the unconstrained projection has a negative coefficient, the
    nearest point lies on one of the two rays (or at black), which the clipped one-ray
    projections cover.
    """
    x = np.asarray(rgb, dtype=np.float32)
    coef = x @ _RAYS_PINV.T.astype(np.float32)                      # (H, W, 2)
    inside = (coef >= 0).all(axis=-1)
    d_wedge = np.linalg.norm(x - coef @ _RAYS.T.astype(np.float32), axis=-1)
    d_rays = []
    for k in range(2):
        ray = _RAYS[:, k].astype(np.float32)
        t = np.clip(x @ ray, 0, None)
        d_rays.append(np.linalg.norm(x - t[..., None] * ray, axis=-1))
    return np.where(inside, d_wedge, np.minimum(*d_rays))


def detect_animals(rgb):
    """Animal mask of an RGB image: (H, W, 3) uint8 -> (H, W) bool."""
    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    scale = min(h, w) / REF_SIDE
    x = rgb.astype(np.float32)
    smooth = ndi.uniform_filter(x, size=(_odd(2 * scale), _odd(2 * scale), 1))  # less noise
    raw = (wedge_distance(smooth) > WEDGE_DIST) | (luminance(x) < DARK_LUMA)
    # Close the gaps between stripes, fill the body, then drop speckles and tiny components.
    mask = _padded(ndi.binary_closing, raw, _disk(scale))
    mask = _fill_small_holes(mask, MAX_HOLE * h * w)
    mask = _padded(ndi.binary_opening, mask, _disk(scale))
    labels, n = ndi.label(mask)
    if n:
        sizes = ndi.sum_labels(mask, labels, index=np.arange(1, n + 1))
        keep = np.concatenate([[False], sizes >= MIN_AREA * h * w])
        mask = keep[labels]
    return mask


def stripe_map(rgb, animal):
    """Zebra-like texture inside `animal`: (H, W, 3), (H, W) bool -> (H, W) bool.

    Local statistics over a window of about one stripe period, taken over animal pixels only:
    std of luminance (contrast), saturation of the mean colour (black + white = grey) and
    coherence of the luminance gradients (one stripe direction).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    m = np.asarray(animal, dtype=np.float32)
    size = _odd(0.12 * min(rgb.shape[:2]))
    weight = np.maximum(ndi.uniform_filter(m, size), 1e-6)

    def local_mean(v):
        return ndi.uniform_filter(v * m, size) / weight

    y = luminance(rgb)
    std = np.sqrt(np.maximum(local_mean(y * y) - local_mean(y) ** 2, 0.0))
    mean_rgb = np.stack([local_mean(rgb[..., c]) for c in range(3)], axis=-1)
    hi, lo = mean_rgb.max(axis=-1), mean_rgb.min(axis=-1)
    sat = (hi - lo) / np.maximum(hi, 1.0)
    gy, gx = ndi.sobel(y, axis=0), ndi.sobel(y, axis=1)
    jxx, jyy, jxy = local_mean(gx * gx), local_mean(gy * gy), local_mean(gx * gy)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / np.maximum(jxx + jyy, 1e-6)
    return animal & (std > STRIPE_STD) & (sat < STRIPE_MAX_SAT) & (coherence > STRIPE_COHERENCE)


def analyse(rgb):
    """Everything the scores need from one image, as a dict.

    animal: (H, W) bool; stripes: (H, W) bool; stripe_share: share of animal pixels that are
    striped (0 when no animal is found -- no zebra without an animal); savanna_share: mean over
    background pixels of b / (a + b), where a, b are the grass and savanna coefficients;
    is_b: the image-level decision, striped animal on savanna ground.
    """
    rgb = np.asarray(rgb)
    animal = detect_animals(rgb)
    stripes = stripe_map(rgb, animal)
    n_animal = int(animal.sum())
    stripe_share = float(stripes.sum() / n_animal) if n_animal else 0.0
    ground = ~animal
    if ground.any():
        coef = ground_coefficients(rgb[ground])
        savanna_share = float(np.mean(coef[:, 1] / np.maximum(coef.sum(axis=1), 1e-6)))
    else:
        savanna_share = 0.0
    return {
        "animal": animal, "stripes": stripes, "stripe_share": stripe_share,
        "savanna_share": savanna_share,
        "is_b": stripe_share >= 0.5 and savanna_share >= 0.5,
    }


def mask_iou(a, b):
    """Intersection over union of two boolean masks; 1 when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
