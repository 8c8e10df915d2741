"""Scores of a texture swap on the synthetic structure/texture data (datasets/make_swap_toy.py),
computed from pixels and the generator's ground truth only: no learned weights.

For a swap output O of (structure source S, texture source T):

  structure: the shapes of O are segmented without knowing its colours (the background is the
      most frequent colour; a shape pixel is one farther than SEG_DISTANCE from it) and compared
      with the true shape masks: iou_s = IoU(shapes(O), mask(S)), iou_t = IoU(shapes(O), mask(T)).
      Kept when iou_s > iou_t.
  palette: the mean distance of O's pixels to the nearest colour of T's palette, and to the
      nearest of S's.  Adopted when closer to T's.
  pattern: a colour-blind descriptor of the pattern inside the shapes (a histogram of edge
      orientations, weighted by edge strength, and the share of edge pixels) of O (inside
      shapes(O)), of T (inside mask(T)) and of S (inside mask(S)), compared by L1 distance.
      Adopted when closer to T's.
  swap: structure kept, palette adopted and pattern adopted.

The trivial answers bound the scores: O = S keeps the structure but adopts nothing; O = T adopts
everything but keeps no structure; both swap 0 %.
"""
import numpy as np

SEG_DISTANCE = 0.2  # RGB in [0, 1], Euclidean: well below every palette's ink-background gap
ORIENTATION_BINS = 8
EDGE_STRENGTH = 0.15  # colour gradient norm above which a pixel counts as an edge


def to_float(image):
    """uint8 H x W x 3 (or PIL) -> float H x W x 3 in [0, 1]."""
    return np.asarray(image, dtype=np.float64)[..., :3] / 255.0


def segment_shapes(image):
    """H x W bool: pixels far from the most frequent colour (quantised to 6 levels a channel)."""
    x = to_float(image)
    q = np.clip((x * 6).astype(int), 0, 5)
    codes = q[..., 0] * 36 + q[..., 1] * 6 + q[..., 2]
    mode = np.bincount(codes.ravel(), minlength=216).argmax()
    background = np.median(x[codes == mode], axis=0)
    return np.linalg.norm(x - background, axis=-1) > SEG_DISTANCE


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def palette_distance(image, palette):
    """Mean over pixels of the distance to the nearest colour of `palette` (RGB 0-255 triples)."""
    x = to_float(image).reshape(-1, 1, 3)
    colours = np.asarray(palette, dtype=np.float64).reshape(1, -1, 3) / 255.0
    return float(np.linalg.norm(x - colours, axis=-1).min(axis=1).mean())


def erode(mask, steps=1):
    m = mask.copy()
    for _ in range(steps):
        inner = m.copy()
        inner[1:, :] &= m[:-1, :]
        inner[:-1, :] &= m[1:, :]
        inner[:, 1:] &= m[:, :-1]
        inner[:, :-1] &= m[:, 1:]
        m = inner
    return m


def pattern_descriptor(image, mask):
    """Edge orientations (ORIENTATION_BINS bins over [0, pi), weighted by the colour gradient's
    norm, summing to 1) and the share of edge pixels (times 2), inside `mask` shrunk by 2 pixels
    (so that the shapes' outlines do not count).  Colour-blind: the gradient is that of the RGB
    vector, its orientation from the structure tensor (doubled angles, so a stripe's two edges
    agree)."""
    x = to_float(image)
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :-1] = x[:, 1:] - x[:, :-1]
    gy[:-1, :] = x[1:, :] - x[:-1, :]
    jxx, jyy, jxy = (gx * gx).sum(-1), (gy * gy).sum(-1), (gx * gy).sum(-1)
    strength = np.sqrt(jxx + jyy)
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # gradient orientation in (-pi/2, pi/2]
    inside = erode(mask, 2)
    if inside.sum() == 0:
        return np.zeros(ORIENTATION_BINS + 1)
    bins = ((angle[inside] + np.pi / 2) / np.pi * ORIENTATION_BINS).astype(int) % ORIENTATION_BINS
    hist = np.bincount(bins, weights=strength[inside], minlength=ORIENTATION_BINS)
    hist = hist / hist.sum() if hist.sum() > 0 else hist
    edges = float((strength[inside] > EDGE_STRENGTH).mean())
    return np.concatenate([hist, [2 * edges]])


def score_swap(output, structure, texture, structure_mask, texture_mask, structure_palette,
               texture_palette):
    """The per-pair scores (see the module docstring) of one output image."""
    shapes = segment_shapes(output)
    iou_s, iou_t = iou(shapes, structure_mask), iou(shapes, texture_mask)
    pal_s, pal_t = palette_distance(output, structure_palette), palette_distance(output, texture_palette)
    mine = pattern_descriptor(output, shapes)
    pat_s = float(np.abs(mine - pattern_descriptor(structure, structure_mask)).sum())
    pat_t = float(np.abs(mine - pattern_descriptor(texture, texture_mask)).sum())
    record = {"iou_structure": iou_s, "iou_texture": iou_t, "structure_kept": iou_s > iou_t,
              "palette_adopted": pal_t < pal_s, "pattern_adopted": pat_t < pat_s}
    record["swap"] = record["structure_kept"] and record["palette_adopted"] and record["pattern_adopted"]
    return record


def summarize(records):
    """Mean IoU with the structure source and the rate of each yes/no score, in %."""
    n = len(records)
    return {"pairs": n,
            "iou_structure": float(np.mean([r["iou_structure"] for r in records])),
            **{key: 100.0 * sum(r[key] for r in records) / n
               for key in ("structure_kept", "palette_adopted", "pattern_adopted", "swap")}}
