"""Our Cityscapes label table (data/cityscapes_labels.py) against cityscapesscripts' own.

    python scripts/parity/cityscapes_labels.py                      # an installed cityscapesscripts
    python scripts/parity/cityscapes_labels.py --path PATH          # a checkout or an unpacked wheel

PATH is the folder that holds the `cityscapesscripts` package (github.com/mcordts/cityscapesScripts,
or the PyPI wheel unzipped).  Only `cityscapesscripts/helpers/labels.py` is loaded (it imports
nothing but the standard library), so the package's other dependencies are not needed.  Checks
every label's name, id, trainId and colour, and the 256-entry id -> trainId lookup table against
one built from their `id2label`.
"""
import argparse
import importlib.util
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from data.cityscapes_labels import (ID_TO_TRAIN_ID, IGNORE, LABELS, NUM_CLASSES,  # noqa: E402
                                    TRAIN_CLASSES)


def their_labels_module(path):
    if path is None:
        import cityscapesscripts
        path = os.path.dirname(os.path.dirname(cityscapesscripts.__file__))
    file = os.path.join(path, "cityscapesscripts", "helpers", "labels.py")
    spec = importlib.util.spec_from_file_location("cs_labels", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    version_file = os.path.join(path, "cityscapesscripts", "VERSION")
    version = open(version_file).read().strip() if os.path.isfile(version_file) else "?"
    return module, file, version


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", default=None, help="folder holding the cityscapesscripts package")
    opt = p.parse_args()
    cs, file, version = their_labels_module(opt.path)
    theirs = [(lb.name, lb.id, lb.trainId, tuple(lb.color)) for lb in cs.labels]
    ours = [(lb.name, lb.id, lb.train_id, tuple(lb.color)) for lb in LABELS]
    assert theirs == ours, f"tables differ: {[(a, b) for a, b in zip(theirs, ours) if a != b][:3]}"
    lut = np.full(256, IGNORE, np.uint8)
    for label_id, label in cs.id2label.items():
        if 0 <= label_id < 256 and 0 <= label.trainId < NUM_CLASSES:
            lut[label_id] = label.trainId
    assert np.array_equal(lut, ID_TO_TRAIN_ID), "id -> trainId lookup differs"
    names = tuple(cs.trainId2label[t].name for t in range(NUM_CLASSES))
    assert names == TRAIN_CLASSES, f"train-id class names differ: {names}"
    print(f"{file} (cityscapesscripts {version}): {len(ours)} labels, the id -> trainId lookup "
          f"and the {NUM_CLASSES} train-id names agree")


if __name__ == "__main__":
    main()
