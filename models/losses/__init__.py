"""Loss functions: the adversarial loss, PatchNCE, the R1 penalty (SinCUT), CycleGAN's L1
reconstruction losses, DistanceGAN's distance losses, GcGAN's geometry consistency and the
Swapping Autoencoder's patch crops and patch R1."""
from .cooccurrence import patch_r1_penalty, random_crops
from .cycle import cycle_consistency_loss, identity_loss
from .distance import distance_loss, distance_statistics, self_distance_loss
from .gan import GANLoss, GAN_MODES, discriminator_loss
from .geometry import GEOMETRIES, geometry_consistency_loss, geometry_transform
from .patchnce import PatchNCELoss
from .r1 import r1_penalty

__all__ = ["GANLoss", "GAN_MODES", "discriminator_loss", "PatchNCELoss", "r1_penalty",
           "cycle_consistency_loss", "identity_loss", "distance_loss", "self_distance_loss",
           "distance_statistics", "GEOMETRIES", "geometry_transform", "geometry_consistency_loss",
           "random_crops", "patch_r1_penalty"]
