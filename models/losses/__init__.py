"""Loss functions: the adversarial loss, PatchNCE, and CycleGAN's L1 reconstruction losses."""
from .cycle import cycle_consistency_loss, identity_loss
from .gan import GANLoss, GAN_MODES
from .patchnce import PatchNCELoss

__all__ = ["GANLoss", "GAN_MODES", "PatchNCELoss", "cycle_consistency_loss", "identity_loss"]
