"""The Swapping Autoencoder's co-occurrence patch loss pieces (Park et al. 2020, Sec. 3.2, Eq. 3)
and its lazy R1 penalty on the patch discriminator.

    L_CooccurGAN(E, G, D_patch) = E_{x1, x2} [ -log D_patch( crop(G(z1_s, z2_t)), crops(x2) ) ]

where z1_s is the structure code of x1, z2_t the texture code of x2, crop(.) a random patch of
an image and crops(x2) several reference patches of the texture source.  The discriminator sees
(reference, query) pairs: real pairs are two crops of one real image, fake pairs a real crop and
a crop of the swapped image; the losses themselves are the non-saturating GAN loss
(models/losses/gan.py, 'nonsaturating').
"""
import torch
import torch.nn.functional as F


def random_crops(x, size, scale_range=(1 / 8, 1 / 4), num_crops=8):
    """`num_crops` random crops of every image of x (B x C x H x W), each resampled to
    `size` x `size`: B x num_crops x C x size x size.

    For each crop independently: a side fraction s_x, s_y ~ U(scale_range) of the image's width
    and height (so crops are not square), a centre uniform over the positions that keep the crop
    inside the image, and a horizontal flip with probability 1/2; bilinear resampling
    (grid_sample, align_corners=False, zeros outside).  The draws come from torch's RNG on x's
    device in the authors' order (flips, then scales, then offsets), so seeded runs of both codes
    cut the same crops.  The crops are differentiable with respect to x.
    """
    batch = x.size(0) * num_crops
    device = x.device
    flip = torch.round(torch.rand(batch, 1, 1, 1, device=device)) * 2 - 1.0
    # grid in [-1, 1]^2 of the output pixels; x coordinates flipped for the mirrored crops
    line = torch.linspace(-1.0, 1.0, size, device=device)
    unit_x = line.view(1, 1, size, 1).expand(batch, size, size, 1)
    unit_y = line.view(1, size, 1, 1).expand(batch, size, size, 1)
    unit = torch.cat([unit_x * flip, unit_y], dim=3)
    scale = torch.rand(batch, 1, 1, 2, device=device) * (scale_range[1] - scale_range[0]) + scale_range[0]
    offset = (torch.rand(batch, 1, 1, 2, device=device) * 2 - 1) * (1 - scale)
    grid = (unit * scale + offset).to(x.dtype)
    # one copy of each image per crop: grid_sample pairs input n with grid n
    images = x.unsqueeze(1).expand(-1, num_crops, -1, -1, -1).flatten(0, 1)
    crops = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.view(x.size(0), num_crops, *crops.shape[1:])


def patch_r1_penalty(logits, reference_crops, target_crops, weight):
    """weight / 4 * E_x [ sum over the crops of x of ||grad_ref D||^2 + ||grad_tgt D||^2 ].

    logits: D_patch(reference, target) for real pairs, (B * T) x 1; reference_crops and
    target_crops: the B x T x C x P x P crops it was computed from, marked requires_grad before
    D_patch ran.  As the image R1 (models/losses/r1.py) but on the two crop sets of a real pair;
    the authors weight it 0.5 * lambda_patch_R1 * 0.5 per image.  Differentiable (create_graph).
    """
    grad_ref, grad_tgt = torch.autograd.grad(logits.sum(), [reference_crops, target_crops],
                                             create_graph=True)
    per_image = grad_ref.pow(2).flatten(1).sum(1) + grad_tgt.pow(2).flatten(1).sum(1)
    return per_image.mean() * (0.25 * weight)
