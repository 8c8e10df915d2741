"""DRIT's losses (Lee et al., ECCV 2018, Sect. 3; DRIT++, IJCV 2020, for mode seeking).

Each takes the tensors it compares and returns an unweighted scalar; DRITModel applies the
authors' weights (10 for the reconstructions and the latent regression, 0.01 for the KL terms,
1 for the adversarial and mode-seeking terms).

The adversarial terms are binary cross-entropies on logits.  The authors apply a sigmoid and
then binary_cross_entropy; binary_cross_entropy_with_logits is the same function of the logits,
computed without the sigmoid's rounding and the log's clamp at -100 (it stays finite for logits
beyond +-17 in float32, where sigmoid rounds to 0 or 1).
"""
import torch
import torch.nn.functional as F


def bce_to(logits, target):
    """mean over elements of BCE(sigmoid(logits), target) for a constant target in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial_loss(outputs, target):
    """Sum over the discriminator's scales of the mean BCE to `target`: L_adv^domain (Eq. 3),
    generator side with target 1; `outputs` is the list a discriminator returns."""
    return sum(bce_to(out, target) for out in outputs)


def discriminator_loss(outputs_real, outputs_fake):
    """Sum over scales of BCE(real, 1) + BCE(fake, 0): L_adv^domain, discriminator side."""
    return sum(bce_to(real, 1.0) + bce_to(fake, 0.0)
               for real, fake in zip(outputs_real, outputs_fake))


def content_discriminator_loss(logits_a, logits_b):
    """L_adv^content (Eq. 2), discriminator side: A's content codes are labelled 0, B's 1."""
    return bce_to(logits_a, 0.0) + bce_to(logits_b, 1.0)


def content_adversarial_loss(logits):
    """L_adv^content, encoder side: the content encoder wants D_c undecided, BCE to 0.5, i.e.
    0.5 * softplus(-l) + 0.5 * softplus(l), smallest (log 2) at logit 0."""
    return bce_to(logits, 0.5)


def l1(output, target):
    """mean |output - target| over all elements (nn.L1Loss): the self reconstruction
    L_1^recon and the cross-cycle reconstruction L_1^cc (Eq. 4)."""
    return torch.mean(torch.abs(output - target))


def kl_divergence(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)), summed
    over the batch and the code's dimensions, as the authors' code (L_KL, Eq. 5; concat=1)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def l2_regularization(z):
    """mean z^2: the KL term of concat=0's deterministic attribute code, and the "KL" on the
    content code (a mean, unlike the attribute term's sum)."""
    return torch.mean(z.pow(2))


def latent_regression(predicted, z):
    """L_1^latent (Eq. 6): mean |E_a(G(c, z)) - z|."""
    return torch.mean(torch.abs(predicted - z))


def mode_seeking_loss(fake_1, fake_2, z_1, z_2, eps=1e-5):
    """DRIT++'s mode-seeking term: 1 / (mean |G(c, z2) - G(c, z1)| / mean |z2 - z1| + eps)."""
    ratio = torch.mean(torch.abs(fake_2 - fake_1)) / torch.mean(torch.abs(z_2 - z_1))
    return 1 / (ratio + eps)


def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn by the caller."""
    return mu + torch.exp(0.5 * logvar) * eps
