"""DistanceGAN's distance losses (Benaim and Wolf, "One-Sided Unsupervised Domain Mapping",
NeurIPS 2017, section 3; the facts below were checked against the authors' code,
github.com/sagiebenaim/DistanceGAN, cyclegan_based_models/distance_gan_model.py).

The distance between two images is the mean absolute difference over every element
(channels x pixels), i.e. an L1 distance divided by the image size, as the authors' code
(the paper writes ||x_i - x_j||_1).  Each domain's distances are standardised with the mean mu
and standard deviation sigma of such distances, estimated over training images before training:

    pairwise (Eq. 4):  mean over pairs i < j of the batch of
                       | (d(x_i, x_j) - mu_A) / sigma_A - (d(G(x_i), G(x_j)) - mu_B) / sigma_B |
    self (Eq. 6):      mean over the images x of the batch of
                       | (d(L(x), R(x)) - mu_A) / sigma_A - (d(L(G(x)), R(G(x))) - mu_B) / sigma_B |

where L and R are the two halves of an image.  The paper names them left and right; the code
splits along the height (top and bottom halves), our default (`split="top_bottom"`).
With statistics (0, 1) the distances are used as they are (--unnormalized_distances).
"""
import torch

SPLITS = ("top_bottom", "left_right")


def image_distances(x, y):
    """Per-image mean |x - y| over channels and pixels: (N, C, H, W) x 2 -> (N,)."""
    return (x - y).abs().flatten(1).mean(dim=1)


def pair_distances(images):
    """d(x_i, x_j) for every pair i < j of the batch, in row-major order: (N*(N-1)/2,).

    Indexing copies the images, so the gradient comes back as a contiguous index_add.
    """
    i, j = torch.triu_indices(len(images), len(images), offset=1, device=images.device)
    return image_distances(images[i], images[j])


def halves(images, split):
    """The two halves (top/bottom or left/right) of each image; an odd middle row or column is
    left out, so both halves have the same size (the authors' torch.chunk fails there)."""
    dim = 2 if split == "top_bottom" else 3
    size = images.size(dim)
    n = size // 2
    return images.narrow(dim, 0, n), images.narrow(dim, size - n, n)


def half_distances(images, split):
    """d(L(x), R(x)) for every image of the batch: (N,)."""
    return image_distances(*halves(images, split))


def _standardised_gap(d_A, d_B, stats_A, stats_B):
    (mean_A, std_A), (mean_B, std_B) = stats_A, stats_B
    return ((d_A - mean_A) / std_A - (d_B - mean_B) / std_B).abs().mean()


def distance_loss(real, fake, stats_A, stats_B):
    """Eq. 4 (unweighted): real = x (N, C, H, W) from A, fake = G(x) from B, N >= 2.

    stats_A, stats_B: (mean, std) of pairwise distances in A and in B.
    """
    if len(real) < 2:
        raise ValueError("the pairwise distance loss needs a batch of at least 2 images")
    return _standardised_gap(pair_distances(real), pair_distances(fake), stats_A, stats_B)


def self_distance_loss(real, fake, stats_A, stats_B, split="top_bottom"):
    """Eq. 6 (unweighted), per image and averaged over the batch; works for one image.

    stats_A, stats_B: (mean, std) of the distance between an image's two halves in A and in B.
    """
    return _standardised_gap(half_distances(real, split), half_distances(fake, split),
                             stats_A, stats_B)


def distance_statistics(images, self_distance=False, split="top_bottom", chunk=64):
    """(mean, std) of the distances that the loss standardises, over `images` (N, C, H, W).

    Pairwise: over all N*(N-1)/2 pairs; self: over the N images' half distances.  The standard
    deviation is the population one (divided by the count), as the authors' code.  Distances are
    computed in chunks of rows with torch.cdist (p=1), summed in float64.
    """
    if self_distance:
        d = half_distances(images, split).double()
        return float(d.mean()), float(d.std(unbiased=False))
    flat = images.flatten(1)
    n, size = flat.shape
    total = total_sq = 0.0
    for start in range(0, n - 1, chunk):
        rows = flat[start:start + chunk]
        d = torch.cdist(rows[None], flat[start + 1:][None], p=1)[0].double() / size
        # keep the pairs (i, j) with j > i: row r (image start + r) against images start + 1 ...
        keep = torch.ones_like(d, dtype=torch.bool).triu(0)
        d = d[keep]
        total += float(d.sum())
        total_sq += float((d * d).sum())
    count = n * (n - 1) / 2
    mean = total / count
    return mean, max(total_sq / count - mean * mean, 0.0) ** 0.5
