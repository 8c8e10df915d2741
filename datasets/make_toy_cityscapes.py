"""Generate a toy Cityscapes: synthetic street scenes in the real data set's folder layout.

Each frame is a label map drawn first (perspective road with lane marks, sidewalks, building
blocks with a skyline, trees, cars, poles with signs, pedestrians, the ego vehicle's bonnet,
sky) and a photo rendered from it: every class has its own texture (window grids on facades,
tiles on sidewalks, leaves, clouds), object colours are drawn per object (cars, facades,
clothes), and each frame has its own lighting (brightness, colour cast, a cast shadow across
the street, vignetting, sensor noise).  So the photo is not a colour lookup of the label map: a
segmenter must learn textures and layout, and a labels -> photo translator must invent them.

Label ids are the official ones (data/cityscapes_labels.py): road 7, sidewalk 8, building 11,
pole 17, traffic sign 20, vegetation 21, sky 23, person 24, car 26, and the ego vehicle 1
(ignored by the score, as in the real set).  Layout written under --out, as the real download:

    gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_color.png      RGBA, the table's colours
    gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelIds.png   8-bit label ids
    leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png  RGB photo

so datasets/prepare_cityscapes_dataset.py prepares it exactly as the real one.  Every frame
draws from its own generator, seeded by (seed, split, index).

    python datasets/make_toy_cityscapes.py --out datasets/toy_cityscapes_raw
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.cityscapes_labels import ID_TO_LABEL, NAME_TO_LABEL  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402

CITIES = {"train": ("aachen", "bremen", "zurich"), "val": ("frankfurt", "lindau", "munster")}
SPLITS = ("train", "val")
ID = {name: NAME_TO_LABEL[name].id for name in (
    "ego vehicle", "road", "sidewalk", "building", "pole", "traffic sign", "vegetation", "sky",
    "person", "car")}
TOY_CLASSES = ("road", "sidewalk", "building", "pole", "traffic sign", "vegetation", "sky",
               "person", "car")  # the classes the toy frames contain (besides the ego vehicle)


def frame_rng(seed, split, index):
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _noise(rng, shape, cells):
    """Smooth noise of `shape` (H, W), about unit scale, `cells` = (rows, cols) of the grid."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((shape[1], shape[0]), Image.BICUBIC))


# ---------------------------------------------------------------------------- the label map

def draw_layout(rng, width, height):
    """(H, W) uint8 label ids of one street scene, and the drawing's geometry for the painter."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    labels = np.full((height, width), ID["sky"], np.uint8)
    horizon = height * rng.uniform(0.36, 0.5)
    vx = width * rng.uniform(0.35, 0.65)  # vanishing point
    depth = np.clip((yy - horizon) / (height - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom
    road_half = width * rng.uniform(0.32, 0.5) * depth + 0.5
    walk_half = road_half * rng.uniform(1.3, 1.6) + 1.0
    below = yy >= horizon

    # Buildings: blocks along the skyline, taller towards the image sides (closer to the camera).
    x = 0.0
    while x < width:
        w = width * rng.uniform(0.08, 0.25)
        side = abs((x + w / 2) - vx) / width
        top = horizon - height * (rng.uniform(0.05, 0.22) + 0.5 * side)
        block = (xx >= x) & (xx < x + w) & (yy >= top) & ~below
        labels[block] = ID["building"]
        x += w
    labels[below] = ID["building"]  # facades down to the pavement at the sides
    labels[below & (np.abs(xx - vx) < walk_half)] = ID["sidewalk"]
    labels[below & (np.abs(xx - vx) < road_half)] = ID["road"]

    # Trees: crowns (ellipses) on the pavement edge, and hedges along the facades.
    for _ in range(rng.integers(0, 4)):
        side = rng.choice((-1, 1))
        d = rng.uniform(0.15, 0.9)
        y0 = horizon + d * (height - horizon)
        x0 = vx + side * (width * rng.uniform(0.32, 0.5) * d * rng.uniform(1.3, 1.7) + 1)
        r = (0.05 + 0.25 * d) * height * rng.uniform(0.8, 1.2)
        crown = ((xx - x0) / (r * 1.1)) ** 2 + ((yy - (y0 - 1.6 * r)) / r) ** 2 < 1
        trunk = (np.abs(xx - x0) < max(0.6, 0.12 * r)) & (yy > y0 - 1.6 * r) & (yy < y0)
        labels[crown | trunk] = ID["vegetation"]

    # Poles with signs, and pedestrians, on the sidewalk.
    for kind in ("pole", "person"):
        for _ in range(rng.integers(0, 3)):
            side = rng.choice((-1, 1))
            d = rng.uniform(0.2, 0.95)
            y0 = horizon + d * (height - horizon)
            half_road = (walk_half[int(min(y0, height - 1)), 0] + road_half[int(min(y0, height - 1)), 0]) / 2
            x0 = vx + side * half_road
            if kind == "pole":
                tall = (0.15 + 0.6 * d) * height
                labels[(np.abs(xx - x0) < max(0.5, 0.5 * d * 2)) & (yy > y0 - tall) & (yy < y0)] = ID["pole"]
                if rng.random() < 0.7:
                    s = max(1.0, 0.07 * height * d * 2)
                    sign = (np.abs(xx - x0) < s) & (np.abs(yy - (y0 - tall + s)) < s * 0.8)
                    labels[sign] = ID["traffic sign"]
            else:
                tall = (0.06 + 0.3 * d) * height
                body = ((xx - x0) / (0.2 * tall)) ** 2 + ((yy - (y0 - tall / 2)) / (tall / 2)) ** 2 < 1
                labels[body] = ID["person"]

    # Cars on the road, far ones first so that near ones hide them.
    cars = []
    for d in sorted(rng.uniform(0.15, 0.9, size=rng.integers(0, 4))):
        y0 = horizon + d * (height - horizon)
        w = width * (0.06 + 0.26 * d)
        x0 = vx + rng.uniform(-0.8, 0.8) * road_half[int(min(y0, height - 1)), 0]
        h = w * rng.uniform(0.5, 0.65)
        body = (np.abs(xx - x0) < w / 2) & (yy < y0) & (yy > y0 - h * 0.6)
        cabin = (np.abs(xx - x0) < w * 0.35) & (yy <= y0 - h * 0.6) & (yy > y0 - h)
        labels[body | cabin] = ID["car"]
        cars.append((x0, y0, w, h))

    # The ego vehicle's bonnet at the bottom (void: ignored by the score).
    bonnet = yy > height * (1 - rng.uniform(0.06, 0.12)) + 0.04 * height * ((xx - width / 2) / width * 2) ** 2
    labels[bonnet] = ID["ego vehicle"]
    return labels, {"horizon": horizon, "vx": vx, "cars": cars}


# ---------------------------------------------------------------------------- the photo

def _choice(rng, colours):
    return np.array(colours[rng.integers(len(colours))], np.float32)


def paint_photo(labels, geometry, rng):
    """(H, W, 3) uint8 photo of a label map, with this frame's textures, colours and light."""
    height, width = labels.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    img = np.zeros((height, width, 3), np.float32)
    horizon = geometry["horizon"]
    fine = lambda: _noise(rng, (height, width), (max(2, height // 2), max(2, width // 2)))  # noqa: E731

    def put(label_id, colour):
        mask = labels == label_id
        img[mask] = np.broadcast_to(colour, img.shape)[mask]

    # Sky: brighter towards the horizon, blue or overcast grey, soft clouds.
    sky = _choice(rng, [(110, 160, 215), (150, 180, 210), (185, 190, 195), (120, 150, 200)])
    gradient = 0.8 + 0.35 * np.clip(yy / max(horizon, 1), 0, 1)
    clouds = np.clip(_noise(rng, (height, width), (3, 6)), 0, None)[..., None]
    put(ID["sky"], sky * gradient[..., None] + 45 * clouds)

    # Facades: one colour per building column band, window grids.
    facade = np.zeros_like(img)
    x = 0
    while x < width:
        w = int(width * rng.uniform(0.08, 0.25)) + 1
        facade[:, x:x + w] = _choice(rng, [(170, 150, 120), (140, 140, 140), (160, 90, 70),
                                          (210, 205, 190), (110, 100, 90), (190, 170, 140)])
        x += w
    period_x, period_y = rng.uniform(3, 6), rng.uniform(3, 6)
    windows = ((np.sin(2 * np.pi * xx / period_x) > 0.2) & (np.sin(2 * np.pi * yy / period_y) > 0.1))
    facade *= np.where(windows, 0.55, 1.0)[..., None]
    put(ID["building"], facade * (1 + 0.08 * fine()[..., None]))

    # Road: dark asphalt, fine grain, dashed centre line (still road, as in Cityscapes).
    asphalt = _choice(rng, [(80, 80, 85), (95, 92, 90), (70, 72, 78)])
    road = asphalt * (1 + 0.12 * fine()[..., None])
    depth = np.clip((yy - horizon) / (height - horizon), 1e-3, 1)
    lane = (np.abs(xx - geometry["vx"]) < 0.8 + 1.5 * depth) & (np.sin(3.0 / depth) > 0.3)
    road[lane] = (225, 225, 215)
    put(ID["road"], road)

    # Sidewalk: light paving with a tile grid.
    paving = _choice(rng, [(175, 165, 160), (160, 150, 150), (190, 170, 160)])
    tiles = ((np.abs(np.sin(np.pi * xx / 3)) < 0.25) | (np.abs(np.sin(np.pi * yy / 2.5)) < 0.25))
    put(ID["sidewalk"], paving * np.where(tiles, 0.82, 1.0)[..., None])

    # Vegetation: greens with leafy high-frequency noise and dark gaps.
    green = _choice(rng, [(70, 110, 40), (90, 125, 50), (55, 90, 45)])
    leaves = _noise(rng, (height, width), (height, width))
    put(ID["vegetation"], green * (1 + 0.3 * leaves[..., None]))

    put(ID["pole"], _choice(rng, [(90, 90, 95), (60, 65, 60), (120, 120, 120)]))
    put(ID["traffic sign"], _choice(rng, [(30, 70, 170), (200, 40, 40), (230, 200, 40)]))
    clothes = np.zeros_like(img)
    clothes[:] = _choice(rng, [(40, 40, 60), (150, 30, 40), (200, 190, 170), (60, 90, 60)])
    clothes[yy % 7 < 2] = (210, 170, 140)  # faces and hands, roughly
    put(ID["person"], clothes)

    # Cars: a body colour each, dark windows in the cabin, black wheels.
    for x0, y0, w, h in geometry["cars"]:
        colour = _choice(rng, [(180, 30, 30), (30, 60, 150), (225, 225, 225), (30, 30, 30),
                               (160, 165, 170), (200, 160, 40)])
        near = (np.abs(xx - x0) < w / 2 + 0.5) & (yy < y0 + 0.5) & (yy > y0 - h - 0.5)
        car = np.broadcast_to(colour, img.shape).copy()
        car[yy < y0 - h * 0.62] = (50, 60, 70)
        car[(yy > y0 - h * 0.18) & (np.abs(np.abs(xx - x0) - w * 0.3) < w * 0.1)] = (15, 15, 15)
        mask = near & (labels == ID["car"])
        img[mask] = car[mask]
    put(ID["ego vehicle"], np.array((35, 35, 40), np.float32) * (1 + 0.3 * (yy / height))[..., None])

    # Light: exposure, colour cast, a cast shadow across the street, vignetting, noise.
    img *= rng.uniform(0.7, 1.25) * rng.uniform(0.9, 1.1, size=3)
    edge = geometry["vx"] + rng.uniform(-0.6, 0.6) * width + (yy - horizon) * rng.uniform(-1.5, 1.5)
    shadow = (yy > horizon) & ((xx < edge) if rng.random() < 0.5 else (xx > edge))
    img[shadow] *= rng.uniform(0.55, 0.8)
    vignette = 1 - 0.25 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2)
    img *= vignette[..., None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def colour_map(labels):
    """(H, W, 4) uint8 RGBA in the table's colours, as the real *_gtFine_color.png."""
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 3] = 255
    for label_id, label in ID_TO_LABEL.items():
        if label_id >= 0:
            palette[label_id, :3] = label.color
    return palette[labels]


def generate_frame(rng, width, height):
    labels, geometry = draw_layout(rng, width, height)
    return labels, paint_photo(labels, geometry, rng)


# ---------------------------------------------------------------------------- the tree

def frame_name(split, index):
    cities = CITIES[split]
    return cities[index % len(cities)], f"{cities[index % len(cities)]}_{index:06d}_000019"


def generate_tree(out, seed=0, width=128, height=64, n_train=400, n_val=50, overwrite=False,
                  progress=None):
    """Write the toy tree under `out`; returns a summary.  `overwrite` removes only gtFine/ and
    leftImg8bit/ under `out`."""
    if width < 32 or height < 16:
        raise UserError(f"the toy frames need at least 32x16 px (got {width}x{height})")
    folders = [os.path.join(out, "gtFine"), os.path.join(out, "leftImg8bit")]
    if any(os.path.exists(f) for f in folders):
        if not overwrite:
            raise UserError(f"{out} already holds gtFine/ or leftImg8bit/; pass --overwrite or "
                            "another --out")
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)
    start, total, done = time.time(), n_train + n_val, 0
    for split, count in (("train", n_train), ("val", n_val)):
        for index in range(count):
            city, name = frame_name(split, index)
            labels, photo = generate_frame(frame_rng(seed, split, index), width, height)
            gt_dir = os.path.join(out, "gtFine", split, city)
            photo_dir = os.path.join(out, "leftImg8bit", split, city)
            os.makedirs(gt_dir, exist_ok=True)
            os.makedirs(photo_dir, exist_ok=True)
            Image.fromarray(labels, "L").save(os.path.join(gt_dir, name + "_gtFine_labelIds.png"))
            Image.fromarray(colour_map(labels), "RGBA").save(
                os.path.join(gt_dir, name + "_gtFine_color.png"))
            Image.fromarray(photo, "RGB").save(os.path.join(photo_dir, name + "_leftImg8bit.png"))
            done += 1
            if progress is not None:
                progress(done, total)
    return {"frames": total, "seconds": time.time() - start, "size": f"{width}x{height}"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="root of the gtFine/ and leftImg8bit/ trees")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--n_train", type=int, default=400)
    p.add_argument("--n_val", type=int, default=50)
    p.add_argument("--overwrite", action="store_true")
    opt = p.parse_args(sys.argv[1:] if argv is None else argv)
    summary = generate_tree(opt.out, opt.seed, opt.width, opt.height, opt.n_train, opt.n_val,
                            opt.overwrite)
    print(f"wrote {summary['frames']} frames ({summary['size']}) under {opt.out} in "
          f"{summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
