"""FID and KID with the protocol of the CUT paper ("paper"), built on the libraries that define it.

The CUT authors computed FID with the `pytorch-fid` package on the images test.py writes, against
the raw images of the target test folder (e.g. datasets/horse2zebra/testB), with its defaults:
the TensorFlow FID Inception (`pt_inception-2015-12-05-6726825d.pth`), 2048-d pool3 features,
images read as RGB in [0, 1] and resized to 299x299 bilinearly inside the network.  Protocol
"paper" is exactly that: file listing, feature extraction and the Fréchet distance are
pytorch-fid's own functions.  KID (Bińkowski et al. 2018) is computed on the same features with
torch-fidelity's estimator: cubic polynomial kernel, unbiased MMD^2, mean over 100 subsets of
min(1000, n_fake, n_real) images, seeded.

Nothing is downloaded unless asked: the weights come from --inception_weights PATH, or from the
torch hub cache where pytorch-fid keeps them; when neither has them the error says which file
to get and where to put it (or pass --download to let pytorch-fid fetch it).
"""
import contextlib
import functools
import hashlib
import json
import os
import pathlib

import numpy as np
import torch
from PIL import Image

from util.errors import UserError, first_line
from util.util import atomic_write

PROTOCOL = "paper"
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
DIMS = 2048
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's default


def _pytorch_fid():
    try:
        import pytorch_fid.fid_score
        import pytorch_fid.inception
    except ImportError:
        raise UserError("FID needs the pytorch-fid package: pip install pytorch-fid==0.3.0") from None
    return pytorch_fid


def describe_protocol():
    """What "paper" means, for logs and metrics.jsonl."""
    import importlib.metadata as md
    versions = {}
    for package in ("pytorch-fid", "torch-fidelity"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {"protocol": PROTOCOL,
            "feature_extractor": f"pytorch-fid InceptionV3 (FID weights {WEIGHTS_FILE}), pool3, "
                                 f"{DIMS}-d",
            "kid_estimator": f"torch-fidelity, cubic polynomial kernel, {KID_SUBSETS} subsets of "
                             f"min({KID_SUBSET_SIZE}, n) images, seed {KID_SEED}",
            **{f"{k}_version": v for k, v in versions.items()}}


# ---------------------------------------------------------------------------- the Inception network
def default_weights_path():
    """Where pytorch-fid's own download (torch.hub) keeps the weights: $TORCH_HOME/hub/checkpoints."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE)


def resolve_weights(path=None, download=False):
    """The weights file to use; a one-line UserError when there is none.

    `path` (--inception_weights) wins; otherwise the torch hub cache.  With `download`, a missing
    file is fetched by pytorch-fid itself (network needed), into that cache.
    """
    if path:
        if not os.path.isfile(path):
            raise UserError(f"--inception_weights {path}: no such file")
        return path
    cached = default_weights_path()
    if os.path.isfile(cached):
        return cached
    url = _pytorch_fid().inception.FID_WEIGHTS_URL
    if download:
        try:
            torch.hub.load_state_dict_from_url(url, progress=True)
        except Exception as err:
            raise UserError(f"could not download the FID Inception weights from {url} ({err}); get "
                            f"that file and put it at {cached}, or pass --inception_weights PATH") from None
        return cached
    raise UserError(f"FID Inception weights not found: download {url} and put it at {cached} "
                    "(or pass --inception_weights PATH, or --download to fetch it now)")


@contextlib.contextmanager
def _weights_from(path):
    """Let pytorch-fid's own model builder read its weights from `path` instead of the network."""
    inception = _pytorch_fid().inception
    original = inception.load_state_dict_from_url

    def load_local(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)
    inception.load_state_dict_from_url = load_local
    try:
        yield
    finally:
        inception.load_state_dict_from_url = original


def load_inception(weights_path, device="cpu"):
    """pytorch-fid's InceptionV3 returning the 2048-d pool3 block, in eval mode, on `device`."""
    inception = _pytorch_fid().inception
    try:
        with _weights_from(weights_path):
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]])
    except Exception as err:  # a foreign file fails in torch.load or load_state_dict, many ways
        raise UserError(f"{weights_path} does not hold the FID Inception weights "
                        f"({type(err).__name__}: {first_line(err)})") from None
    return model.to(device).eval()


def weights_id(path):
    """sha256 of the weights file (part of every cache key: other weights, other features);
    hashed once per file version."""
    return _sha256(os.path.abspath(path), os.path.getsize(path), os.path.getmtime(path))


@functools.lru_cache(maxsize=None)
def _sha256(path, size, mtime):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- features
def list_images(folder):
    """The files pytorch-fid reads from a folder: its extensions, lower case, not recursive, sorted."""
    if not os.path.isdir(folder):
        raise UserError(f"image folder not found: {folder}")
    path = pathlib.Path(folder)
    files = sorted(f for ext in _pytorch_fid().fid_score.IMAGE_EXTENSIONS for f in path.glob(f"*.{ext}"))
    if not files:
        raise UserError(f"no images in {folder} (pytorch-fid reads *.png, *.jpg, ... directly in it, "
                        "not in sub-folders)")
    return files


def image_sizes(files):
    """The (width, height) of every file, read as pytorch-fid will; an unreadable one is a
    one-line UserError naming it (pytorch-fid would fail deep in its data loader)."""
    sizes = []
    for f in files:
        try:
            with Image.open(f) as img:
                img.convert("RGB").load()
                sizes.append(img.size)
        except (OSError, ValueError, SyntaxError) as err:
            raise UserError(f"cannot read image {f}: {err}; remove or replace it") from None
    return sizes


def weights_match_paper(path):
    """True when the file is the published FID Inception: torch hub files carry the first hex
    digits of their sha256 in their name (pt_inception-2015-12-05-6726825d.pth)."""
    return weights_id(path).startswith(WEIGHTS_FILE.rsplit("-", 1)[1].split(".")[0])


def features_of_files(files, model, device="cpu", batch_size=50, num_workers=0):
    """(N, 2048) float64 pool3 features, by pytorch-fid's get_activations.

    Every file is opened first, so an unreadable one is a one-line error naming it.  pytorch-fid
    batches whole images and stops on a folder of mixed sizes; such a folder goes one image per
    pass instead (the features differ by float rounding only).
    """
    if len(set(image_sizes(files))) > 1:
        print(f"note: the images in {os.path.dirname(files[0])} differ in size: one image per "
              "Inception pass")
        batch_size = 1
    return _pytorch_fid().fid_score.get_activations(files, model, min(batch_size, len(files)), DIMS,
                                                    device, num_workers)


def features_of_images(images, model, device="cpu", batch_size=50):
    """Features of in-memory uint8 H x W x 3 arrays, exactly as if they had been saved as PNG and
    read by `features_of_files` (ToTensor of an RGB image is the uint8 value / 255)."""
    out = np.empty((len(images), DIMS))
    with torch.no_grad():
        for start, stop in _same_shape_batches(images, batch_size):
            chunk = np.stack(images[start:stop])  # (B, H, W, 3) uint8
            # contiguous, as ToTensor's: a channels-last input would take other conv kernels
            batch = torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous().float().div(255)
            pred = model(batch.to(device))[0]
            out[start:stop] = pred.squeeze(3).squeeze(2).cpu().numpy()
    return out


def _same_shape_batches(images, batch_size):
    """(start, stop) of consecutive runs of at most batch_size images of one shape (outputs of
    --preprocess none or scale_width differ in size; the network resizes each to 299 anyway)."""
    start = 0
    while start < len(images):
        stop = start + 1
        while (stop < len(images) and stop - start < batch_size
               and images[stop].shape == images[start].shape):
            stop += 1
        yield start, stop
        start = stop


# ---------------------------------------------------------------------------- the metrics
def fid_from_features(features_1, features_2):
    """The Fréchet distance between Gaussians fitted to two feature sets (pytorch-fid's formula)."""
    if len(features_1) < 2 or len(features_2) < 2:
        raise UserError("FID needs at least 2 images on each side")
    stats = [(np.mean(f, axis=0), np.cov(f, rowvar=False)) for f in (features_1, features_2)]
    try:
        return float(_pytorch_fid().fid_score.calculate_frechet_distance(*stats[0], *stats[1]))
    except ValueError as err:  # "Imaginary component ...": sqrtm failed on too few images
        raise UserError(f"the FID matrix square root failed ({err}), which happens with few "
                        f"images ({len(features_1)} and {len(features_2)} here); use more") from None


def kid_from_features(features_1, features_2, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE):
    """(mean, std) of KID over `subsets` random subsets (torch-fidelity's estimator)."""
    try:
        from torch_fidelity.metric_kid import (KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD,
                                               kid_features_to_metric)
    except ImportError:
        raise UserError("KID needs the torch-fidelity package: pip install torch-fidelity") from None
    size = min(subset_size, len(features_1), len(features_2))
    if size < 2:
        raise UserError("KID needs at least 2 images on each side")
    result = kid_features_to_metric(torch.from_numpy(np.asarray(features_1)),
                                    torch.from_numpy(np.asarray(features_2)),
                                    kid_subsets=subsets, kid_subset_size=size, rng_seed=KID_SEED,
                                    verbose=False)
    return result[KEY_METRIC_KID_MEAN], result[KEY_METRIC_KID_STD]


def scores(fake_features, real_features, kid=True):
    """The metrics record for two feature sets."""
    record = {"fid": fid_from_features(fake_features, real_features),
              "n_fake": len(fake_features), "n_real": len(real_features)}
    if kid:
        record["kid"], record["kid_std"] = kid_from_features(fake_features, real_features)
    return record


# ---------------------------------------------------------------------------- cached real features
def folder_fingerprint(files):
    """Names, sizes and modification times of the files: any change gives another cache entry."""
    digest = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        digest.update(f"{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_features(files, model, weights_path, cache_dir, device="cpu", batch_size=50,
                    num_workers=0):
    """Features of `files`, from `cache_dir` when computed before with the same weights and
    protocol; otherwise computed and stored there (atomically).  `cache_dir` None: no cache."""
    if not cache_dir:
        return features_of_files(files, model, device, batch_size, num_workers)
    key = hashlib.sha256(json.dumps([PROTOCOL, DIMS, weights_id(weights_path),
                                     folder_fingerprint(files)]).encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, f"features_{PROTOCOL}_{key}.npy")
    if os.path.isfile(path):
        try:
            features = np.load(path)
            if features.shape == (len(files), DIMS):
                return features.astype(np.float64)
        except (OSError, ValueError):
            pass  # unreadable: compute again and replace it
    features = features_of_files(files, model, device, batch_size, num_workers)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.save(f, features.astype(np.float32))  # the network's own precision: exact
    except OSError as err:
        print(f"warning: cannot cache the real features in {cache_dir} ({err.strerror or err}); "
              "they will be computed again next time")
    return features
