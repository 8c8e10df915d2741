"""The Cityscapes label table: label ids of the `*_gtFine_labelIds.png` files -> the 19 train ids
that segmenters predict and the segmentation score counts; everything else is 255 (ignored).

The values are those of cityscapesscripts' `helpers/labels.py` (the official table, identical to
the one fyu/drn trains with); scripts/parity/cityscapes_labels.py compares this copy with an
installed or checked-out cityscapesscripts entry by entry.  Only the columns the score needs are
kept: name, id, trainId and colour.

The table's 'license plate' has id -1 (and train id -1): cityscapesscripts never writes it into
a labelIds image (the plate's pixels keep the car's id), so an 8-bit label image cannot hold it.
`ID_TO_TRAIN_ID` maps every byte value that is not one of the 34 ids 0..33 (and every id whose
train id is 255) to IGNORE.
"""
from collections import namedtuple

import numpy as np

Label = namedtuple("Label", ["name", "id", "train_id", "color"])
IGNORE = 255  # train id of the void classes: no loss, not counted by the score
NUM_CLASSES = 19

LABELS = (
    Label("unlabeled", 0, IGNORE, (0, 0, 0)),
    Label("ego vehicle", 1, IGNORE, (0, 0, 0)),
    Label("rectification border", 2, IGNORE, (0, 0, 0)),
    Label("out of roi", 3, IGNORE, (0, 0, 0)),
    Label("static", 4, IGNORE, (0, 0, 0)),
    Label("dynamic", 5, IGNORE, (111, 74, 0)),
    Label("ground", 6, IGNORE, (81, 0, 81)),
    Label("road", 7, 0, (128, 64, 128)),
    Label("sidewalk", 8, 1, (244, 35, 232)),
    Label("parking", 9, IGNORE, (250, 170, 160)),
    Label("rail track", 10, IGNORE, (230, 150, 140)),
    Label("building", 11, 2, (70, 70, 70)),
    Label("wall", 12, 3, (102, 102, 156)),
    Label("fence", 13, 4, (190, 153, 153)),
    Label("guard rail", 14, IGNORE, (180, 165, 180)),
    Label("bridge", 15, IGNORE, (150, 100, 100)),
    Label("tunnel", 16, IGNORE, (150, 120, 90)),
    Label("pole", 17, 5, (153, 153, 153)),
    Label("polegroup", 18, IGNORE, (153, 153, 153)),
    Label("traffic light", 19, 6, (250, 170, 30)),
    Label("traffic sign", 20, 7, (220, 220, 0)),
    Label("vegetation", 21, 8, (107, 142, 35)),
    Label("terrain", 22, 9, (152, 251, 152)),
    Label("sky", 23, 10, (70, 130, 180)),
    Label("person", 24, 11, (220, 20, 60)),
    Label("rider", 25, 12, (255, 0, 0)),
    Label("car", 26, 13, (0, 0, 142)),
    Label("truck", 27, 14, (0, 0, 70)),
    Label("bus", 28, 15, (0, 60, 100)),
    Label("caravan", 29, IGNORE, (0, 0, 90)),
    Label("trailer", 30, IGNORE, (0, 0, 110)),
    Label("train", 31, 16, (0, 80, 100)),
    Label("motorcycle", 32, 17, (0, 0, 230)),
    Label("bicycle", 33, 18, (119, 11, 32)),
    Label("license plate", -1, -1, (0, 0, 142)),
)

NAME_TO_LABEL = {label.name: label for label in LABELS}
ID_TO_LABEL = {label.id: label for label in LABELS}
# The 19 evaluated classes in train-id order: TRAIN_CLASSES[t] is the name of train id t.
TRAIN_CLASSES = tuple(label.name for label in sorted(
    (lb for lb in LABELS if 0 <= lb.train_id < NUM_CLASSES), key=lambda lb: lb.train_id))
# (NUM_CLASSES, 3) uint8 colours of the train ids, for pictures of predictions.
TRAIN_ID_COLORS = np.array([NAME_TO_LABEL[name].color for name in TRAIN_CLASSES], np.uint8)


def _lookup_table():
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for label in LABELS:
        if label.id >= 0 and 0 <= label.train_id < NUM_CLASSES:
            lut[label.id] = label.train_id
    return lut


ID_TO_TRAIN_ID = _lookup_table()  # (256,) uint8: index by a labelIds byte


def train_id_of(label_id):
    """The train id of one label id (any int); IGNORE unless it is one of the 19 classes."""
    return int(ID_TO_TRAIN_ID[label_id]) if 0 <= label_id < 256 else IGNORE


def label_ids_to_train_ids(label_ids):
    """(H, W) uint8 array of label ids -> (H, W) uint8 array of train ids (IGNORE = 255)."""
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        raise ValueError(f"label ids must be 8-bit (got {label_ids.dtype})")
    return ID_TO_TRAIN_ID[label_ids]


def colorize_train_ids(train_ids, ignore_color=(0, 0, 0)):
    """(H, W) train ids -> (H, W, 3) uint8 picture in the table's colours (ignored: black)."""
    palette = np.zeros((256, 3), np.uint8)
    palette[:] = ignore_color
    palette[:NUM_CLASSES] = TRAIN_ID_COLORS
    return palette[np.asarray(train_ids, dtype=np.uint8)]
