"""DistanceGAN's distance losses (Benaim and Wolf, "One-Sided Unsupervised Domain Mapping",
NeurIPS 2017, section 3; the facts below were checked against the authors' code,
github.com/sagiebenaim/DistanceGAN, cyclegan_arch/distance_gan_model.py).

The distance between two tensors is their mean absolute difference over every element, i.e. an
L1 distance divided by the size, as the authors' code (the paper writes ||x_i - x_j||_1).  Each
domain's distances are standardised with a mean mu and standard deviation sigma estimated over
the training set before training:

    pairwise (Eq. 4):  mean over the pairs i < j of the batch of
                       | (d(x_i, x_j) - mu_A) / sigma_A - (d(G(x_i), G(x_j)) - mu_B) / sigma_B |
    self (Eq. 6):      | (d(T(X), U(X)) - mu_A) / sigma_A - (d(T(G(X)), U(G(X))) - mu_B) / sigma_B |

where T and U are the top and bottom halves (the code splits the height; the paper says left and
right, `split="left_right"`).  The code computes the self-distance once for the whole batch X
(one distance between the stacked top halves and the stacked bottom halves), and estimates mu
and sigma over the same kind of quantity: distances between *whole loader batches* (pairwise:
between two batches, image k against image k; self: between a batch's halves).  With its batch
of 2 the batch-level sigma is about 1/sqrt(2) of the sigma of single-image distances, which
weights the loss about 1.4 times more.  `group` below is that batch size; group 1 (and the
per-image self-distance) is the paper's wording, --distance_level image.
With statistics (0, 1) the distances are used as they are (--unnormalized_distances).
"""
import torch

SPLITS = ("top_bottom", "left_right")
LEVELS = ("batch", "image")  # --distance_level


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
    """d(T(x), U(x)) for every image of the batch: (N,)."""
    return image_distances(*halves(images, split))


def batch_half_distance(images, split):
    """d(T(X), U(X)) for the whole batch X at once: a scalar (the mean of the images' half
    distances, as every image has the same size)."""
    top, bottom = halves(images, split)
    return (top - bottom).abs().mean()


def _standardised_gap(d_A, d_B, stats_A, stats_B):
    (mean_A, std_A), (mean_B, std_B) = stats_A, stats_B
    return ((d_A - mean_A) / std_A - (d_B - mean_B) / std_B).abs().mean()


def distance_loss(real, fake, stats_A, stats_B):
    """Eq. 4 (unweighted): real = x (N, C, H, W) from A, fake = G(x) from B, N >= 2.

    stats_A, stats_B: (mean, std) of distances in A and in B (see distance_statistics).
    """
    if len(real) < 2:
        raise ValueError("the pairwise distance loss needs a batch of at least 2 images")
    return _standardised_gap(pair_distances(real), pair_distances(fake), stats_A, stats_B)


def self_distance_loss(real, fake, stats_A, stats_B, split="top_bottom", level="batch"):
    """Eq. 6 (unweighted).  level "batch" (the code): one standardised gap for the whole batch;
    "image": one per image, averaged.  The same for a batch of one.

    stats_A, stats_B: (mean, std) of half distances in A and in B.
    """
    if level == "batch":
        d_A, d_B = batch_half_distance(real, split), batch_half_distance(fake, split)
    else:
        d_A, d_B = half_distances(real, split), half_distances(fake, split)
    return _standardised_gap(d_A, d_B, stats_A, stats_B)


def distance_statistics(images, group=1, self_distance=False, split="top_bottom", chunk=32,
                        decode=None):
    """(mean, std) of the distances that the loss standardises, over `images` (N, C, H, W).

    The images are taken as N // group consecutive groups of `group` (the code's loader batches;
    a last incomplete group is left out, as the code skips short batches).  Pairwise: the
    distance of two groups, image k of one against image k of the other, for every pair of
    groups; self: the distance between a group's top and bottom halves.  The std is the
    population one (divided by the count), as the code.  `decode` (optional) turns a slice of
    `images` into float images, so that they can be kept compactly (e.g. as uint8); distances
    are computed `chunk` groups at a time with torch.cdist (p=1) and summed in float64.
    """
    n_groups = len(images) // group
    if n_groups < 2:
        raise ValueError(f"the statistics need at least 2 groups of {group} image(s), got {len(images)} images")
    decode = decode or (lambda x: x)

    def block(start, stop):  # groups start..stop-1, each flattened: (stop - start, group*C*H*W)
        return decode(images[start * group:stop * group]).reshape(stop - start, -1)

    if self_distance:
        per_group = torch.cat([
            half_distances(decode(images[s * group:min(s + chunk, n_groups) * group]), split)
            .double().view(-1, group).mean(dim=1) for s in range(0, n_groups, chunk)])
        return float(per_group.mean()), float(per_group.std(unbiased=False))
    total = total_sq = 0.0
    for i in range(0, n_groups, chunk):
        rows = block(i, min(i + chunk, n_groups))
        for j in range(i, n_groups, chunk):
            cols = rows if j == i else block(j, min(j + chunk, n_groups))
            d = torch.cdist(rows[None], cols[None], p=1)[0].double() / rows.shape[1]
            if j == i:  # the pairs (a, b) with b > a within the block
                d = d[torch.ones_like(d, dtype=torch.bool).triu(1)]
            total += float(d.sum())
            total_sq += float((d * d).sum())
    count = n_groups * (n_groups - 1) / 2
    mean = total / count
    return mean, max(total_sq / count - mean * mean, 0.0) ** 0.5
