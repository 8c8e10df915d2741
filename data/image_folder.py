"""List the image files under a folder.

A deliberate fix: the original truncates to `max_dataset_size` in filesystem walk
order and only then sorts, so *which* images survive the cut depends on the file system.  We
sort the complete list first and truncate afterwards, so the same folder always yields the same
subset on every machine.
"""
import os

from util.errors import UserError

# The spec's list (each in lower and upper case) plus .webp.  Matching ignores case, so `.Jpg`
# is accepted too (the original would silently skip it).
IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff', '.webp']


def is_image_file(filename):
    return filename.lower().endswith(tuple(IMG_EXTENSIONS))


def make_dataset(dir, max_dataset_size=float('inf')):
    """Return the sorted paths of all image files below `dir`, at most `max_dataset_size` of them.

    Sub-folders are searched recursively and symbolic links are followed (a link that points back
    up the tree is visited once, not forever).  A missing folder raises UserError.
    """
    if not os.path.isdir(dir):
        raise UserError(
            f"image folder not found: {dir} (check --dataroot and --phase; unaligned data needs "
            f"<dataroot>/trainA and <dataroot>/trainB for training, testA and testB for testing)")
    paths = []
    seen_dirs = set()
    for root, subdirs, fnames in os.walk(dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:
            subdirs[:] = []  # a symlink cycle: do not descend again
            continue
        seen_dirs.add(real)
        paths.extend(os.path.join(root, f) for f in fnames if is_image_file(f))
    paths.sort()
    if max_dataset_size < len(paths):
        paths = paths[:int(max_dataset_size)]
    return paths
