"""Loss functions: the adversarial loss, PatchNCE, the R1 penalty (SinCUT) and CycleGAN's L1
reconstruction losses."""
from .cycle import cycle_consistency_loss, identity_loss
from .gan import GANLoss, GAN_MODES
from .patchnce import PatchNCELoss
from .r1 import r1_penalty

__all__ = ["GANLoss", "GAN_MODES", "PatchNCELoss", "r1_penalty", "cycle_consistency_loss",
           "identity_loss"]
