"""GcGAN's geometry-consistency loss (Fu et al., "Geometry-Consistent Generative Adversarial
Networks for One-Sided Unsupervised Domain Mapping", CVPR 2019, Eq. 4; checked against the
authors' code, github.com/hufu6371/GcGAN, models/gc_gan_share_model.py).

f is a fixed geometric transformation of the image: `rot`, a 90-degree clockwise rotation, or
`vf`, a vertical flip (upside down).  With one generator G applied to x and to f(x):

    L_geo = E_x || G(x) - f^-1(G(f(x))) ||_1            (mean absolute error over all elements)

The paper (and the authors' code) write it as two terms, ||G(x) - f^-1(G(f(x)))|| +
||G(f(x)) - f(G(x))||, and the code detaches the target of each term.  f only permutes pixels,
so the two terms are equal and the code's pair of half-detached terms has exactly the gradient
of the single undetached term above, at twice its value.  We keep the single term: the same
training signal at the same weights, a loss that finite differences can check, and a logged
value half of the code's `Gc`.
"""
import torch

GEOMETRIES = ("rot", "vf")


def geometry_transform(images, geometry, inverse=False):
    """f(images) (or f^-1 with `inverse`) for a batch (N, C, H, W); `rot` needs H == W only
    where both orientations must line up (the caller checks).

    Returns a contiguous tensor, and autograd hands back a contiguous gradient through flip and
    rot90 (checked in tests/test_baselines.py): PyTorch's instance_norm backward is wrong for a
    single image with a channels-last gradient (scripts/check_torch_norm_grad.py), and this
    gradient reaches the generator's instance norms.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry '{geometry}'; choose from: {', '.join(GEOMETRIES)}")
    if geometry == "vf":  # its own inverse
        return torch.flip(images, dims=[2])
    # rot90 with k = -1 turns clockwise (the code's transpose, then reversed columns); k = 1 undoes it
    return torch.rot90(images, 1 if inverse else -1, dims=(2, 3)).contiguous()


def geometry_consistency_loss(fake, fake_gc, geometry, weight):
    """weight * mean |G(x) - f^-1(G(f(x)))|: fake = G(x), fake_gc = G(f(x)), both (N, C, H, W)."""
    return weight * (fake - geometry_transform(fake_gc, geometry, inverse=True)).abs().mean()
