"""A synthetic data set for the Swapping Autoencoder: every image combines a *structure* (a layout
of one to three shapes) with a *texture* (a pattern and a palette), drawn independently, so a
swap has a known right answer: the shapes of one image painted with the texture of another.

    python datasets/make_swap_toy.py                      # datasets/swap_toy (64 px)
    python datasets/make_swap_toy.py --out /tmp/toy --n_train 200 --n_pairs 16

Structure: disks, squares and triangles (centre, size), covering 12-45 % of the image.
Texture: a palette (background, ink 1, ink 2; six palettes of distinct hues) and a two-colour
pattern inside the shapes (horizontal, vertical or diagonal stripes, a checkerboard or dots, of
period 4 or 8 pixels); the background is the palette's plain background colour.

Writes under --out:
    train/NNNN.png                    training images (--dataset_mode single)
    test/structure/pNN.png            structure sources of the test pairs
    test/texture/pNN.png              texture sources (another palette and another pattern)
    test/masks/pNN_structure.png, pNN_texture.png   their shape masks (white = shape)
    test/pairs.json                   for each pair: the files, both textures and both layouts
The same --seed always gives the same images.  metrics/swap_toy_scores.py scores swaps on it.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

# (background, ink 1, ink 2) in RGB; every ink differs from its background by more than 0.35
# (RGB in [0, 1], Euclidean), and no two palettes share a colour.
PALETTES = [
    ((30, 30, 70), (245, 205, 40), (215, 60, 40)),      # navy: yellow, red
    ((235, 232, 210), (20, 125, 60), (60, 40, 110)),    # cream: green, indigo
    ((60, 115, 50), (250, 250, 250), (200, 90, 200)),   # moss: white, orchid
    ((175, 60, 50), (40, 170, 210), (250, 225, 170)),   # brick: cyan, sand
    ((120, 120, 120), (255, 130, 0), (0, 50, 160)),     # grey: orange, blue
    ((245, 175, 195), (10, 95, 110), (95, 50, 20)),     # pink: teal, brown
]
PATTERNS = ("stripes_h", "stripes_v", "stripes_d", "checker", "dots")
PERIODS = (4, 8)
SHAPES = ("disk", "square", "triangle")
COVERAGE = (0.12, 0.45)


def random_layout(rng, size):
    """A list of 1-3 shapes (kind, cx, cy, r) whose union covers COVERAGE of the image."""
    while True:
        shapes = []
        for _ in range(rng.integers(1, 4)):
            r = rng.uniform(0.12, 0.24) * size
            cx, cy = rng.uniform(r, size - r, size=2)
            shapes.append((SHAPES[rng.integers(len(SHAPES))], float(cx), float(cy), float(r)))
        coverage = render_mask(shapes, size).mean()
        if COVERAGE[0] <= coverage <= COVERAGE[1]:
            return shapes


def random_texture(rng):
    return {"palette": int(rng.integers(len(PALETTES))), "pattern": PATTERNS[rng.integers(len(PATTERNS))],
            "period": int(PERIODS[rng.integers(len(PERIODS))]), "phase": int(rng.integers(8))}


def render_mask(shapes, size):
    """H x W bool: the union of the shapes (pixel centres inside)."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    mask = np.zeros((size, size), bool)
    for kind, cx, cy, r in shapes:
        if kind == "disk":
            mask |= (x - cx) ** 2 + (y - cy) ** 2 <= r ** 2
        elif kind == "square":
            mask |= (abs(x - cx) <= r * 0.85) & (abs(y - cy) <= r * 0.85)
        else:  # an upward triangle inscribed in the circle of radius r
            top, bottom = cy - r, cy + 0.5 * r
            half = (y - top) / (1.5 * r) * r * 0.87  # half width grows from the apex
            mask |= (y >= top) & (y <= bottom) & (abs(x - cx) <= half)
    return mask


def render_pattern(texture, size):
    """H x W bool: where ink 2 (instead of ink 1) goes."""
    y, x = np.mgrid[0:size, 0:size]
    p, phase, kind = texture["period"], texture["phase"], texture["pattern"]
    half = p // 2
    if kind == "stripes_h":
        return ((y + phase) // half) % 2 == 1
    if kind == "stripes_v":
        return ((x + phase) // half) % 2 == 1
    if kind == "stripes_d":
        return ((x + y + phase) // half) % 2 == 1
    if kind == "checker":
        return (((x + phase) // half) + ((y + phase) // half)) % 2 == 1
    # dots: a disk of radius p/4 around every lattice point
    dx = (x + phase) % p - (p - 1) / 2
    dy = (y + phase) % p - (p - 1) / 2
    return dx ** 2 + dy ** 2 <= (p / 4 + 0.5) ** 2


def render(shapes, texture, size):
    """H x W x 3 uint8: the palette's background, the shapes filled with the two-ink pattern."""
    bg, ink1, ink2 = (np.array(c, np.uint8) for c in PALETTES[texture["palette"]])
    image = np.empty((size, size, 3), np.uint8)
    image[:] = bg
    mask = render_mask(shapes, size)
    pattern = render_pattern(texture, size)
    image[mask & ~pattern] = ink1
    image[mask & pattern] = ink2
    return image


def different_texture(rng, other):
    """A texture with another palette and another pattern (kind or period) than `other`."""
    while True:
        texture = random_texture(rng)
        if texture["palette"] != other["palette"] and \
                (texture["pattern"], texture["period"]) != (other["pattern"], other["period"]):
            return texture


def make_dataset(out, n_train=1000, n_pairs=48, size=64, seed=0):
    rng = np.random.default_rng(seed)
    train = os.path.join(out, "train")
    os.makedirs(train, exist_ok=True)
    for i in range(n_train):
        image = render(random_layout(rng, size), random_texture(rng), size)
        Image.fromarray(image).save(os.path.join(train, f"{i:04d}.png"))
    test = os.path.join(out, "test")
    for sub in ("structure", "texture", "masks"):
        os.makedirs(os.path.join(test, sub), exist_ok=True)
    pairs = []
    for k in range(n_pairs):
        s_shapes, s_texture = random_layout(rng, size), random_texture(rng)
        t_shapes, t_texture = random_layout(rng, size), different_texture(rng, s_texture)
        name = f"p{k:02d}"
        for role, shapes, texture in (("structure", s_shapes, s_texture), ("texture", t_shapes, t_texture)):
            Image.fromarray(render(shapes, texture, size)).save(os.path.join(test, role, name + ".png"))
            Image.fromarray(render_mask(shapes, size).astype(np.uint8) * 255).save(
                os.path.join(test, "masks", f"{name}_{role}.png"))
        pairs.append({"name": name, "structure": f"structure/{name}.png", "texture": f"texture/{name}.png",
                      "structure_mask": f"masks/{name}_structure.png", "texture_mask": f"masks/{name}_texture.png",
                      "structure_texture": s_texture, "texture_texture": t_texture,
                      "structure_shapes": s_shapes, "texture_shapes": t_shapes})
    with open(os.path.join(test, "pairs.json"), "w") as f:
        json.dump({"size": size, "seed": seed, "palettes": PALETTES, "pairs": pairs}, f, indent=1)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "swap_toy"))
    p.add_argument("--n_train", type=int, default=1000)
    p.add_argument("--n_pairs", type=int, default=48)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.size < 32 or args.n_train < 2 or args.n_pairs < 1:
        p.error("--size must be at least 32, --n_train at least 2, --n_pairs at least 1")
    make_dataset(args.out, args.n_train, args.n_pairs, args.size, args.seed)
    print(f"wrote {args.n_train} training images and {args.n_pairs} test pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
