"""Loss functions: the adversarial loss and PatchNCE."""
from .gan import GANLoss, GAN_MODES
from .patchnce import PatchNCELoss

__all__ = ["GANLoss", "GAN_MODES", "PatchNCELoss"]
