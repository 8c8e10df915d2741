"""Adversarial losses (CUT paper, Eq. 1; Mao et al. 2017 for lsgan)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "wgangp", "nonsaturating")


class GANLoss(nn.Module):
    """GAN objective for one discriminator output, for a real or a fake target.

    lsgan:          mean((pred - label)^2)                (CUT / FastCUT default)
    vanilla:        binary cross-entropy with logits
    wgangp:         -mean(pred) for real, mean(pred) for fake (no gradient penalty is applied)
    nonsaturating:  softplus(-pred) for real, softplus(pred) for fake, averaged per sample;
                    returns a length-B vector that the caller averages (SinCUT default)
    """

    def __init__(self, gan_mode, target_real_label=1.0, target_fake_label=0.0):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode '{gan_mode}'; choose from: {', '.join(GAN_MODES)}")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(target_real_label))
        self.register_buffer("fake_label", torch.tensor(target_fake_label))

    def forward(self, prediction, target_is_real):
        if self.gan_mode in ("lsgan", "vanilla"):
            label = self.real_label if target_is_real else self.fake_label
            target = label.expand_as(prediction)
            if self.gan_mode == "lsgan":
                return F.mse_loss(prediction, target)
            return F.binary_cross_entropy_with_logits(prediction, target)
        if self.gan_mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        # nonsaturating: per-sample mean over all remaining dimensions
        per_element = F.softplus(-prediction) if target_is_real else F.softplus(prediction)
        return per_element.view(prediction.size(0), -1).mean(dim=1)


def discriminator_loss(criterion, netD, real, fake):
    """0.5 * (GAN(D(real), real) + GAN(D(fake), fake)), the discriminator side of Eq. 1.

    Halved, as the original CycleGAN, to slow D down relative to G (CycleGAN paper, section 4);
    `fake` is detached, so only D receives gradients.  Used by CycleGAN, DistanceGAN and GcGAN.
    """
    loss_real = criterion(netD(real), True).mean()
    loss_fake = criterion(netD(fake.detach()), False).mean()
    return (loss_real + loss_fake) * 0.5
