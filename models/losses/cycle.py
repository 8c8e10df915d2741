"""CycleGAN's reconstruction losses (Zhu et al. 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks").

Both are L1 distances averaged over every element (batch, channels, pixels), as the original's
nn.L1Loss(); the paper writes them as expectations of an L1 norm.
"""
import torch


def weighted_l1(output, target, weight):
    """weight * mean |output - target| over all elements."""
    return weight * torch.mean(torch.abs(output - target))


def cycle_consistency_loss(reconstructed, real, weight):
    """One direction of L_cyc (Eq. 2): weight * mean |F(G(x)) - x|.

    CycleGAN adds both directions, x -> G -> F and y -> F -> G, with weights lambda_A and
    lambda_B (lambda = 10 in the paper's full objective, Eq. 3).
    """
    return weighted_l1(reconstructed, real, weight)


def identity_loss(same_domain_output, real, weight):
    """One direction of L_identity (section 5.2, after Taigman et al. 2017):
    weight * mean |G(y) - y|, where G maps *into* y's domain, so an image already in that domain
    should come back unchanged (this preserves colour composition).  The original weights it by
    lambda_identity times the lambda of that image's domain (0.5 * 10 by default).
    """
    return weighted_l1(same_domain_output, real, weight)
