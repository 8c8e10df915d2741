"""DistanceGAN and SelfDistance (Benaim and Wolf, "One-Sided Unsupervised Domain Mapping",
NeurIPS 2017), one-sided A -> B, one of the CUT paper's baselines (its Table 1).

Sources: the paper (sections 3-4) and the authors' code, github.com/sagiebenaim/DistanceGAN:
cyclegan_based_models/distance_gan_model.py and cyclegan_based_options/train_options.py (the
horse2zebra setup, built on the CycleGAN code).  Read for facts only; written from scratch here.

Paper name -> code name:
    G_AB                          netG (A -> B), D_B: netD
    L_GAN(G_AB, D_B)              loss_G_GAN (generator side), loss_D (discriminator side, halved)
    L_distance (Eq. 4)            loss_distance (pairs of the batch)
    L_self-distance (Eq. 6)       loss_distance with --self_distance (halves of each image)
    mu_A, sigma_A, mu_B, sigma_B  distance_stats, estimated before training (setup)
Objective (one-sided, A_to_B): L_GAN + lambda_distance * L_distance, lambda_distance = 1.

Choices (paper vs code, and where this framework differs):
  * Distances are mean absolute differences (L1 divided by the number of elements), as the
    code; the paper writes plain L1 norms.  Scaling by the image size makes mu and sigma
    independent of the crop size; after standardisation the loss is the same.
  * mu and sigma are estimated once, before training, over --max_items (900, the code's default)
    training images per domain, after the training preprocessing (random crop and flip), as the
    code (which reads its first 900 loader batches; with its batch size 1 these are images).  We
    draw the images by a fixed seed and restore every RNG afterwards, so the estimate does not
    shift the training run's random numbers; the population std, as the code.  They are saved in
    latest_state.pth, so --continue_train reuses them rather than re-estimating.
  * The pairwise loss averages over all pairs i < j of the batch, as the code; a batch of one has
    no pair, so --batch_size must be 2 or more (the code divides by zero).
  * SelfDistance: the paper splits an image into left and right halves, the code into top and
    bottom (it chunks the height); we follow the code by default, --self_distance_halves
    left_right gives the paper's.  The code computes one distance over the whole batch; we take
    one per image and average (the same for its batch size 1).  Odd sizes drop the middle row.
  * No identity or cycle term: the code's one-sided horse2zebra setup (--A_to_B) trains
    GAN + distance only (--use_cycle_loss is off by default, and it has no identity term).
  * GAN: lsgan (the code's default), a pool of 50 generated images for D, D's loss halved, Adam
    (0.5, 0.999), lr 0.0002, G step then D step: all as the code (the CycleGAN settings).  The
    networks are the framework's (CUT-style antialiased ResNet G, PatchGAN D, xavier init); the
    code uses CycleGAN's (normal init, strided convolutions): --no_antialias --no_antialias_up
    --init_type normal gives those.
"""
import os
import random

import torch

from data.base_dataset import domain_channels, get_transform
from data.image_folder import make_dataset
from data.image_io import load_image
from util.errors import UserError
from util.runtime import get_rng_state, set_rng_state
from util.util import str2bool

from .losses import discriminator_loss, distance_loss, distance_statistics, self_distance_loss
from .losses.distance import SPLITS
from .input_checks import check_non_negative
from .one_sided_model import OneSidedGANModel

STATS_SEED = 0  # which images (and crops) estimate mu and sigma: fixed, so resumes agree


class DistanceGANModel(OneSidedGANModel):
    """G + D trained with the GAN loss and the (self-)distance loss."""

    G_STEP_LOSSES = ("G_GAN", "distance", "G")
    D_STEP_LOSSES = ("D",)

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.add_argument("--self_distance", type=str2bool, nargs="?", const=True, default=False,
                            help="SelfDistance: keep the distance between the two halves of each "
                                 "image instead of between pairs of images (works with batch size 1)")
        parser.add_argument("--self_distance_halves", type=str, default="top_bottom", choices=SPLITS,
                            help="which halves --self_distance compares: top_bottom (the authors' "
                                 "code) or left_right (the paper)")
        if is_train:
            parser.add_argument("--lambda_distance", type=float, default=1.0,
                                help="weight for the distance loss")
            parser.add_argument("--max_items", type=int, default=900,
                                help="training images per domain used to estimate the mean and std "
                                     "of distances, before training")
            parser.add_argument("--unnormalized_distances", action="store_true",
                                help="use raw distances (no mean/std standardisation)")
        return parser

    @classmethod
    def validate_training_options(cls, opt):
        check_non_negative(opt, ("lambda_distance",))
        if not opt.self_distance and opt.batch_size < 2:
            raise UserError(f"--model distance_gan compares pairs of images of a batch, so it needs "
                            f"--batch_size 2 or more (got {opt.batch_size}); or pass --self_distance, "
                            "which works with one image")
        if not opt.unnormalized_distances and opt.max_items < 2:
            raise UserError(f"--max_items {opt.max_items}: the mean and std of distances need at "
                            "least 2 images per domain; raise it or pass --unnormalized_distances")

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["G_GAN", "distance", "G", "D"]
        # {"A": (mean, std), "B": (mean, std)}; None until setup() estimates or restores it
        self.distance_stats = None
        if self.isTrain and opt.unnormalized_distances:
            self.distance_stats = {"A": (0.0, 1.0), "B": (0.0, 1.0)}

    # ------------------------------------------------------------------ statistics
    def setup(self, opt, training_state=None):
        """BaseModel.setup (which restores the statistics from a resumable checkpoint), then
        estimate them over the training set if this is a new run."""
        super().setup(opt, training_state)
        if self.isTrain and self.distance_stats is None:
            self.distance_stats = self.estimate_distance_stats()

    def estimate_distance_stats(self):
        """mu and sigma of each domain's distances over up to --max_items training images."""
        opt = self.opt
        phase_dirs = {"A": os.path.join(opt.dataroot, opt.phase + "A"),
                      "B": os.path.join(opt.dataroot, opt.phase + "B")}
        nc = dict(zip("AB", domain_channels(opt)))
        if opt.direction == "BtoA":  # the model's A side reads the B folder
            phase_dirs = {"A": phase_dirs["B"], "B": phase_dirs["A"]}
            nc = {"A": nc["B"], "B": nc["A"]}
        saved_rng = get_rng_state()
        stats = {}
        try:
            torch.manual_seed(STATS_SEED)  # the random crops and flips of the training transform
            picker = random.Random(STATS_SEED)
            for side, folder in phase_dirs.items():
                paths = sorted(make_dataset(folder, opt.max_dataset_size))
                if len(paths) < 2:
                    raise UserError(f"{folder} holds {len(paths)} image(s): DistanceGAN's mean and std "
                                    "of distances need at least 2 per domain; add images or pass "
                                    "--unnormalized_distances")
                paths = picker.sample(paths, min(opt.max_items, len(paths)))
                transform = get_transform(opt, grayscale=(nc[side] == 1))
                images = [transform(load_image(path, nc[side])) for path in paths]
                if len({tuple(image.shape) for image in images}) > 1:
                    raise UserError(f"the images in {folder} have different sizes after "
                                    f"--preprocess {opt.preprocess}; DistanceGAN compares images of "
                                    "one size: use --preprocess resize_and_crop or crop")
                mean, std = distance_statistics(torch.stack(images).to(self.device), opt.self_distance,
                                                opt.self_distance_halves)
                if not std > 0:
                    raise UserError(f"the distances between the images of {folder} do not vary "
                                    "(std 0), so they cannot be standardised; add different images "
                                    "or pass --unnormalized_distances")
                stats[side] = (mean, std)
                print(f"distance statistics of {folder} ({len(paths)} images, "
                      f"{'self' if opt.self_distance else 'pairwise'}): mean {mean:.6f}, std {std:.6f}")
        finally:
            set_rng_state(saved_rng)
        return stats

    def training_state(self):
        """BaseModel's state (networks, optimizers, schedulers, image pool) plus mu and sigma."""
        state = super().training_state()
        state["distance_stats"] = {side: list(values) for side, values in self.distance_stats.items()}
        return state

    def load_training_state(self, state):
        super().load_training_state(state)
        saved = state.get("distance_stats")
        if saved is not None and not self.opt.unnormalized_distances:
            self.distance_stats = {side: tuple(values) for side, values in saved.items()}

    # ------------------------------------------------------------------ losses
    def compute_G_loss(self):
        """L_GAN(G, D) + lambda_distance * L_distance (Eq. 4) or L_self-distance (Eq. 6)."""
        self.loss_G_GAN = self.criterionGAN(self.netD(self.fake_B), True).mean()
        stats_A, stats_B = self.distance_stats["A"], self.distance_stats["B"]
        if self.opt.self_distance:
            distance = self_distance_loss(self.real_A, self.fake_B, stats_A, stats_B,
                                          self.opt.self_distance_halves)
        else:
            distance = distance_loss(self.real_A, self.fake_B, stats_A, stats_B)
        self.loss_distance = distance * self.opt.lambda_distance
        self.loss_G = self.loss_G_GAN + self.loss_distance
        return self.loss_G

    def compute_D_loss(self):
        """D on real B against pooled fake B (the discriminator side of L_GAN, halved)."""
        fake_B = self.image_pools["fake_B"].query(self.fake_B)
        self.loss_D = discriminator_loss(self.criterionGAN, self.netD, self.real_B, fake_B)
        return self.loss_D
