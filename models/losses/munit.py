"""MUNIT's losses (Huang et al. 2018, Sec. 3.2; weights and forms from the authors' trainer.py).

    image reconstruction  (Eq. 1)  |G_1(E^c_1(x_1), E^s_1(x_1)) - x_1|_1
    latent reconstruction (Eq. 2, 3)  |E^c_2(G_2(c_1, s_2)) - c_1|_1,  |E^s_2(G_2(c_1, s_2)) - s_2|_1
    adversarial           (Eq. 4)  LSGAN in the authors' configs, summed over the scales of the
                                   multi-scale discriminator
    style-augmented cycle           |G_1(E^c_2(G_2(c_1, s_2)), E^s_1(x_1)) - x_1|_1 (the authors'
                                   recon_x_cyc_w; the paper discusses it as an explicit cycle
                                   consistency that the latent losses imply)

Every L1 is the mean absolute difference over all elements (the authors' recon_criterion); the
content term compares two encoder outputs and neither side is detached, as theirs.
"""
import torch
import torch.nn.functional as F

MULTISCALE_GAN_MODES = ("lsgan", "vanilla")  # vanilla = the authors' 'nsgan'


def recon_loss(output, target):
    """mean |output - target| over every element."""
    return torch.mean(torch.abs(output - target))


def multiscale_discriminator_loss(outputs_fake, outputs_real, gan_mode="lsgan"):
    """D's side of Eq. 4 over the scales of a multi-scale discriminator:

        lsgan:    sum_s mean(D_s(fake)^2) + mean((D_s(real) - 1)^2)
        vanilla:  sum_s mean(BCE(D_s(fake), 0)) + mean(BCE(D_s(real), 1)), BCE on logits (the
                  authors apply BCE to sigmoid outputs: the same value except where the
                  sigmoid saturates in float32)

    Not halved (CycleGAN halves its D loss; MUNIT does not).  The fakes must come detached.
    """
    loss = 0.0
    for fake, real in zip(outputs_fake, outputs_real):
        if gan_mode == "lsgan":
            loss = loss + torch.mean(fake ** 2) + torch.mean((real - 1) ** 2)
        elif gan_mode == "vanilla":
            loss = (loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                    + F.binary_cross_entropy_with_logits(real, torch.ones_like(real)))
        else:
            raise ValueError(f"unknown gan_mode '{gan_mode}'; choose from: "
                             f"{', '.join(MULTISCALE_GAN_MODES)}")
    return loss


def multiscale_generator_loss(outputs_fake, gan_mode="lsgan"):
    """G's side of Eq. 4: sum_s mean((D_s(fake) - 1)^2) (lsgan) or sum_s BCE(D_s(fake), 1)."""
    loss = 0.0
    for fake in outputs_fake:
        if gan_mode == "lsgan":
            loss = loss + torch.mean((fake - 1) ** 2)
        elif gan_mode == "vanilla":
            loss = loss + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        else:
            raise ValueError(f"unknown gan_mode '{gan_mode}'; choose from: "
                             f"{', '.join(MULTISCALE_GAN_MODES)}")
    return loss
