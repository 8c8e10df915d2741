"""OneSidedGANModel: what the one-sided baselines of the CUT paper share (DistanceGAN, GcGAN).

One generator G: A -> B (netG, the framework's ResNet generator by default), PatchGAN
discriminator(s) on B images, an image pool per discriminator (--pool_size 50, as CycleGAN and
both authors' codes, which are built on the CycleGAN code base), and the CycleGAN step order:
G step with the discriminators frozen, then D step, one Adam for G and one for all Ds, each
NaN-guarded.  Subclasses add their options and losses (compute_G_loss, compute_D_loss).
"""
import itertools
from abc import abstractmethod

import torch

from util.errors import UserError

from . import networks
from .base_model import BaseModel
from .input_checks import check_single_folder
from .image_pool import ImagePool
from .losses import GANLoss


class OneSidedGANModel(BaseModel):
    """G (A -> B) + discriminators; test.py loads G only and writes real_A, fake_B (real_B)."""

    generator_name = "G"
    # extra discriminators besides netD, by name (GcGAN: ("D_gc",)), each judging output_nc images
    EXTRA_DISCRIMINATORS = ()
    G_STEP_LOSSES = ("G",)
    D_STEP_LOSSES = ("D",)

    @classmethod
    def validate_options(cls, opt):
        check_single_folder(opt, "G")
        if not opt.isTrain:
            return
        if opt.dataset_mode != "unaligned":
            raise UserError(f"--model {opt.model} trains on two image folders: use --dataset_mode "
                            f"unaligned (got {opt.dataset_mode})")
        if opt.pool_size < 0:
            raise UserError(f"--pool_size must be 0 (no pool) or more (got {opt.pool_size})")
        cls.validate_training_options(opt)

    @classmethod
    def validate_training_options(cls, opt):
        """The subclass's checks of its training options (called by validate_options)."""

    def __init__(self, opt):
        super().__init__(opt)
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.discriminator_names = ("D",) + self.EXTRA_DISCRIMINATORS
        self.model_names = ["G"] + (list(self.discriminator_names) if self.isTrain else [])
        self.netG = networks.define_G(opt.input_nc, opt.output_nc, opt.ngf, opt.netG, opt.normG,
                                      not opt.no_dropout, opt.init_type, opt.init_gain,
                                      opt.no_antialias, opt.no_antialias_up, self.gpu_ids)
        self.real_A = self.real_B = None
        if not self.isTrain:
            return
        for name in self.discriminator_names:
            setattr(self, "net" + name, networks.define_D(
                opt.output_nc, opt.ndf, opt.netD, opt.n_layers_D, opt.normD, opt.init_type,
                opt.init_gain, opt.no_antialias, self.gpu_ids))
        # one pool of generated images per discriminator, named after the images it holds
        self.image_pools = {self.pool_name(name): ImagePool(opt.pool_size)
                            for name in self.discriminator_names}
        self.criterionGAN = GANLoss(opt.gan_mode).to(self.device)
        betas = (opt.beta1, opt.beta2)
        self.optimizer_G = self.adam(self.netG.parameters(), betas=betas)
        self.optimizer_D = self.adam(
            itertools.chain(*(self.discriminator(name).parameters() for name in self.discriminator_names)),
            betas=betas)
        self.optimizers = [self.optimizer_G, self.optimizer_D]

    @staticmethod
    def pool_name(discriminator_name):
        """D -> fake_B, D_gc -> fake_gc_B: the generated images that discriminator judges."""
        suffix = discriminator_name[len("D"):]
        return f"fake{suffix}_B"

    def discriminator(self, name):
        return getattr(self, "net" + name)

    def discriminators(self):
        return [self.discriminator(name) for name in self.discriminator_names]

    # ------------------------------------------------------------------ one step
    def size_check_chains(self):
        """What real_A and real_B go through during training (names of networks, in order)."""
        return [("G", "D")], [("D",)]

    def set_input(self, data):
        path_B = self.read_batch(data)
        if not self.isTrain:
            self.check_image_size(self.real_A, self.image_paths[0], ("G",))
            return
        chains_A, chains_B = self.size_check_chains()
        for chain in chains_A:
            self.check_image_size(self.real_A, self.image_paths[0], chain)
        for chain in chains_B:
            self.check_image_size(self.real_B, path_B, chain)

    def forward(self):
        """fake_B = G(real_A)."""
        self.fake_B = self.netG(self.real_A)

    def optimize_parameters(self):
        """G step (discriminators frozen), then D step, as the authors' (CycleGAN-based) code.

        fake_B is not recomputed for the D step.  The NaN guard (--nan_guard) checks each
        player's losses before its own update.
        """
        with self.autocast():
            self.forward()
        self.step([self.optimizer_G], self.compute_G_loss, guard=self.G_STEP_LOSSES,
                  frozen=self.discriminators())
        # the Ds share no parameter: one backward of the summed losses serves all of them
        self.step([self.optimizer_D], self.compute_D_loss, guard=self.D_STEP_LOSSES)
        return self.end_iteration()

    @abstractmethod
    def compute_G_loss(self):
        """The generator's objective; needs forward() first.  Sets loss_G and returns it."""

    @abstractmethod
    def compute_D_loss(self):
        """The sum of the discriminators' losses (each halved); returns it."""
