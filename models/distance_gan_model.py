"""DistanceGAN and SelfDistance (Benaim and Wolf, "One-Sided Unsupervised Domain Mapping",
NeurIPS 2017), one-sided A -> B, one of the CUT paper's baselines (its Table 1).

Sources: the paper (sections 3-4) and the authors' CycleGAN-based code,
github.com/sagiebenaim/DistanceGAN: cyclegan_arch/distance_gan_model.py, gan_model.py,
networks.py, cyclegan_arch_options/{base,train}_options.py, data/unaligned_data_loader.py and
train.py (the horse2zebra setup).  Read for facts only; written from scratch here.

Paper name -> code name:
    G_AB                          netG (A -> B), D_B: netD
    L_GAN(G_AB, D_B)              loss_G_GAN (generator side), loss_D (discriminator side, halved)
    L_distance (Eq. 4)            loss_distance (pairs of the batch)
    L_self-distance (Eq. 6)       loss_distance with --self_distance (halves of the batch)
    mu_A, sigma_A, mu_B, sigma_B  distance_stats, estimated before training (setup)
Objective (one-sided, the code's --A_to_B): L_GAN + lambda_distance * L_distance, lambda 1.

Preset (models/presets.py): the code's defaults, batch 2, the shorter side scaled to 286
(bilinear) and a random 256 crop, 100 + 100 epochs with the 2017 CycleGAN learning-rate rule,
and its generator: zero padding, InstanceNorm with affine parameters, N(0, 0.02) weights with
PyTorch's own biases, strided and transposed convolutions.

Choices (paper vs code, and where this framework differs):
  * Distances are mean absolute differences (L1 divided by the number of elements), as the
    code; the paper writes plain L1 norms.  After standardisation the loss is the same.
  * mu and sigma (--distance_level batch, the code): the code reads loader batches of its
    --batchSize and takes distances between whole batches (models/losses/distance.py), over every
    training batch up to --max_items (900) batches per domain, i.e. the whole training set unless
    it has more than 900 batches (1,800 images at batch 2).  We do the same with a fixed draw
    (seeded shuffle, the training crop and flip) that leaves the run's random numbers untouched,
    keeping the images as 8-bit pixels (one byte per value: 354 MB per domain for 1,800 crops of
    256 px); the population std, as the code.  They are saved in latest_state.pth, so
    --continue_train reuses them.  --distance_level image takes single images instead (the
    paper's wording), and the per-image self-distance.
  * The pairwise loss averages over all pairs i < j of the batch, image against image, as the
    code; a batch of one has no pair, so --batch_size must be 2 or more.
  * SelfDistance: the paper splits an image into left and right halves, the code into top and
    bottom (it chunks the height); we follow the code, --self_distance_halves left_right gives
    the paper's.  One distance for the whole batch, as the code.  Odd sizes drop the middle row
    (the code crashes there).
  * No identity or cycle term and one direction: the code's --A_to_B mode (its default trains
    both directions, each with its distance loss; --use_cycle_loss is off by default).
  * GAN: lsgan, a pool of 50 generated images for D, D's loss halved, Adam (0.5, 0.999), lr
    0.0002, G step then D step: all as the code.
  * Data: the code flips each loader batch, A and B together, with Python's random; we flip each
    image on its own (torch's RNG), as the CycleGAN and CUT loaders, and pick the B images at
    random rather than from a second shuffled loader.
"""
import os
import random

import numpy as np
import torch

from data.base_dataset import domain_channels, get_transform
from data.image_folder import make_dataset
from data.image_io import load_image
from util.errors import UserError
from util.runtime import get_rng_state, set_rng_state
from util.util import str2bool

from .losses import discriminator_loss, distance_loss, distance_statistics, self_distance_loss
from .losses.distance import LEVELS, SPLITS
from .input_checks import check_non_negative
from .one_sided_model import OneSidedGANModel
from .presets import apply_preset

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
        apply_preset(parser, is_train, "distance_gan")
        if is_train:
            parser.add_argument("--lambda_distance", type=float, default=1.0,
                                help="weight for the distance loss (the code's --lambda_distance_A)")
            parser.add_argument("--distance_level", type=str, default="batch", choices=LEVELS,
                                help="batch (the code): mu and sigma are those of distances between "
                                     "whole batches of --batch_size images, and the self-distance "
                                     "is one distance for the whole batch; image: single images "
                                     "(the paper's wording)")
            parser.add_argument("--max_items", type=int, default=900,
                                help="at most this many batches (single images with "
                                     "--distance_level image) per domain estimate the mean and std "
                                     "of distances before training, as the code's --max_items")
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
                            "least 2 batches per domain; raise it or pass --unnormalized_distances")

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

    def stats_group(self):
        """How many images one distance of the statistics covers: a batch (the code) or one."""
        return self.opt.batch_size if self.opt.distance_level == "batch" else 1

    def estimate_distance_stats(self):
        """mu and sigma of each domain's distances over its training set (at most --max_items
        groups of stats_group() images), with the training crop and flip."""
        opt = self.opt
        phase_dirs = {"A": os.path.join(opt.dataroot, opt.phase + "A"),
                      "B": os.path.join(opt.dataroot, opt.phase + "B")}
        nc = dict(zip("AB", domain_channels(opt)))
        if opt.direction == "BtoA":  # the model's A side reads the B folder
            phase_dirs = {"A": phase_dirs["B"], "B": phase_dirs["A"]}
            nc = {"A": nc["B"], "B": nc["A"]}
        group = self.stats_group()
        saved_rng = get_rng_state()
        stats = {}
        try:
            torch.manual_seed(STATS_SEED)  # the random crops and flips of the training transform
            picker = random.Random(STATS_SEED)
            for side, folder in phase_dirs.items():
                paths = sorted(make_dataset(folder, opt.max_dataset_size))
                if len(paths) < 2 * group:
                    raise UserError(f"{folder} holds {len(paths)} image(s): DistanceGAN's mean and std "
                                    f"of distances need at least 2 batches of {group} per domain; "
                                    "add images, lower --batch_size or pass --unnormalized_distances")
                picker.shuffle(paths)  # the loader's shuffled order; full groups only, as the code
                paths = paths[:min(opt.max_items, len(paths) // group) * group]
                images = load_uint8(paths, get_transform(opt, grayscale=(nc[side] == 1), convert=False),
                                    nc[side], folder, opt.preprocess)
                mean, std = distance_statistics(images, group, opt.self_distance,
                                                opt.self_distance_halves, decode=self.decode_uint8)
                if not std > 0:
                    raise UserError(f"the distances between the images of {folder} do not vary "
                                    "(std 0), so they cannot be standardised; add different images "
                                    "or pass --unnormalized_distances")
                stats[side] = (mean, std)
                print(f"distance statistics of {folder} ({len(paths)} images, "
                      f"{len(paths) // group} batches of {group}, "
                      f"{'self' if opt.self_distance else 'pairwise'}): mean {mean:.6f}, std {std:.6f}")
        finally:
            set_rng_state(saved_rng)
        return stats

    def decode_uint8(self, pixels):
        """8-bit pixels (N, C, H, W) -> the loader's float images in [-1, 1], bit for bit
        (ToTensor divides by 255, then (x - 0.5) / 0.5), on the model's device."""
        return (pixels.to(self.device).float().div(255) - 0.5) / 0.5

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
                                          self.opt.self_distance_halves, self.opt.distance_level)
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


def load_uint8(paths, transform, channels, folder, preprocess):
    """The images at `paths` through `transform` (ending in a PIL image), as one uint8 tensor
    (N, C, H, W): a quarter of the float32 memory."""
    arrays = []
    for path in paths:
        array = np.asarray(transform(load_image(path, channels)), dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"the images in {folder} have different sizes after --preprocess "
                        f"{preprocess}; DistanceGAN compares images of one size: use --preprocess "
                        "resize_and_crop or crop")
    return torch.from_numpy(np.stack(arrays))
