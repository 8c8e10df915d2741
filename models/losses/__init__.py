"""Loss functions: the adversarial loss, PatchNCE and the R1 penalty."""
from .gan import GANLoss, GAN_MODES
from .patchnce import PatchNCELoss
from .r1 import r1_penalty

__all__ = ["GANLoss", "GAN_MODES", "PatchNCELoss", "r1_penalty"]
