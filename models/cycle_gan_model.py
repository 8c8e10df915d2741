"""CycleGAN (Zhu et al. 2017), the baseline the CUT paper compares against.

Paper name -> code name:
    G: X -> Y, F: Y -> X      netG_A (A -> B), netG_B (B -> A)
    D_Y, D_X                  netD_A (judges B-domain images), netD_B (judges A-domain images)
    L_GAN(G, D_Y, X, Y) (1)   loss_G_A (generator side), loss_D_A (discriminator side)
    L_GAN(F, D_X, Y, X)       loss_G_B, loss_D_B
    L_cyc(G, F) (Eq. 2)       loss_cycle_A (x -> G -> F) + loss_cycle_B (y -> F -> G)
    L_identity (section 5.2)  loss_idt_A (|G(y) - y|) + loss_idt_B (|F(x) - x|)
Full objective (Eq. 3): L_GAN(G) + L_GAN(F) + lambda_A * cyc_A + lambda_B * cyc_B, plus the
identity terms weighted lambda_identity * lambda_B and lambda_identity * lambda_A.

The original CUT repository ships a copy of this model that cannot run (it reads a missing
`opt.amp`, and its first-batch hook takes no data argument); this one runs in our train.py and
test.py loop, with the NaN guard, exact resume (the image pools included) and size checks.
Written from the paper, not from the original file.
"""
import itertools

import torch

from util.errors import UserError

from . import networks
from .base_model import BaseModel
from .input_checks import check_identity_channels, check_non_negative, check_single_folder
from .image_pool import ImagePool
from .losses import GANLoss, cycle_consistency_loss, discriminator_loss, identity_loss
from .presets import apply_preset

# The original hard-codes Adam's second moment for CycleGAN (CUT reads --beta2); so do we, and
# refuse another --beta2 rather than silently ignore it.
ADAM_BETA2 = 0.999


class CycleGANModel(BaseModel):
    """Two generators and two PatchGAN discriminators, trained with GAN, cycle and identity losses."""

    generator_name = "G_A"  # the A -> B translator: what test.py's fake_B and --eval_freq use

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        # The authors' defaults (models/presets.py): normal init, strided and transposed
        # convolutions, 100 + 100 epochs, the same random crop in every epoch.
        apply_preset(parser, is_train, "cycle_gan")
        if is_train:
            parser.add_argument("--lambda_A", type=float, default=10.0,
                                help="weight for cycle loss (A -> B -> A)")
            parser.add_argument("--lambda_B", type=float, default=10.0,
                                help="weight for cycle loss (B -> A -> B)")
            parser.add_argument("--lambda_identity", type=float, default=0.5,
                                help="use identity mapping: weight of the identity loss relative to "
                                     "the cycle loss of the same domain; e.g. 0.1 with lambda_A 10 "
                                     "weights |G_B(A) - A| by 1")
        return parser

    @classmethod
    def validate_options(cls, opt):
        check_single_folder(opt, "G_A")
        if not opt.isTrain:
            return
        check_non_negative(opt, ("lambda_A", "lambda_B", "lambda_identity"))
        if opt.pool_size < 0:
            raise UserError(f"--pool_size must be 0 (no pool) or more (got {opt.pool_size})")
        check_identity_channels(opt, "G_A")
        if opt.beta2 != ADAM_BETA2:
            raise UserError(f"--model cycle_gan uses Adam betas (--beta1, {ADAM_BETA2}) as the "
                            f"original; --beta2 {opt.beta2} is not supported, leave it out")

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
        self.use_identity = self.isTrain and opt.lambda_identity > 0
        visuals_A = ["real_A", "fake_B", "rec_A"] + (["idt_B"] if self.use_identity else [])
        visuals_B = ["real_B", "fake_A", "rec_B"] + (["idt_A"] if self.use_identity else [])
        self.visual_names = visuals_A + visuals_B
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]

        def generator(input_nc, output_nc):
            return networks.define_G(input_nc, output_nc, opt.ngf, opt.netG, opt.normG,
                                     not opt.no_dropout, opt.init_type, opt.init_gain,
                                     opt.no_antialias, opt.no_antialias_up, self.gpu_ids,
                                     padding_type=opt.padding_type, init_bias=opt.init_bias)

        self.netG_A = generator(opt.input_nc, opt.output_nc)
        self.netG_B = generator(opt.output_nc, opt.input_nc)
        self.real_A = self.real_B = None
        if not self.isTrain:
            return

        def discriminator(input_nc):
            return networks.define_D(input_nc, opt.ndf, opt.netD, opt.n_layers_D, opt.normD,
                                     opt.init_type, opt.init_gain, opt.no_antialias, self.gpu_ids,
                                     init_bias=opt.init_bias)

        self.netD_A = discriminator(opt.output_nc)  # D_Y: is this B image real?
        self.netD_B = discriminator(opt.input_nc)  # D_X: is this A image real?
        self.fake_A_pool = ImagePool(opt.pool_size)  # feeds D_B
        self.fake_B_pool = ImagePool(opt.pool_size)  # feeds D_A
        # saved in latest_state.pth by BaseModel.training_state, so a resumed run sees the same
        # history (the original saves neither pool nor optimizer)
        self.image_pools = {"fake_A": self.fake_A_pool, "fake_B": self.fake_B_pool}
        self.criterionGAN = GANLoss(opt.gan_mode).to(self.device)
        # One optimizer per player, as the original: G_A and G_B share one Adam, D_A and D_B another.
        betas = (opt.beta1, ADAM_BETA2)
        self.optimizer_G = self.adam(
            itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()), betas=betas)
        self.optimizer_D = self.adam(
            itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()), betas=betas)
        self.optimizers = [self.optimizer_G, self.optimizer_D]

    def data_dependent_initialize(self, data):
        """Nothing to do: every CycleGAN network's shape is fixed by the options.

        train.py calls this before setup() for every model (CUT builds its MLP heads there); the
        original CycleGAN's version took no `data` argument and crashed that call.
        """

    # ------------------------------------------------------------------ one step
    def set_input(self, data):
        path_B = self.read_batch(data)
        if self.real_B is None:  # a single-domain folder (--dataset_mode single), test only
            self.check_image_size(self.real_A, self.image_paths[0], ("G_A", "G_B"))
            return
        # Every way each image travels through the networks (checked once per image size).
        chains_A = [("G_A", "G_B")]
        chains_B = [("G_B", "G_A")]
        if self.isTrain:
            chains_A += [("G_A", "D_A"), ("D_B",)] + ([("G_B",)] if self.use_identity else [])
            chains_B += [("G_B", "D_B"), ("D_A",)] + ([("G_A",)] if self.use_identity else [])
        for chain in chains_A:
            self.check_image_size(self.real_A, self.image_paths[0], chain)
        for chain in chains_B:
            self.check_image_size(self.real_B, path_B, chain)

    def forward(self):
        """fake_B = G_A(A), rec_A = G_B(fake_B); fake_A = G_B(B), rec_B = G_A(fake_A).

        Separate calls rather than one concatenated batch, as the original: the same result with
        instance norm, and the right one with --normG batch.
        """
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        if self.real_B is None:  # test.py on a single folder
            self.fake_A = self.rec_B = None
            return
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    def optimize_parameters(self):
        """G step (both generators), then D step (both discriminators), as the original.

        D is frozen during the G step so that G's loss does not fill D's gradients; fake_A and
        fake_B are not recomputed for the D step.  The NaN guard (--nan_guard) checks each
        player's losses before its own update.
        """
        with self.autocast():
            self.forward()
        self.step([self.optimizer_G], self.compute_G_loss, frozen=[self.netD_A, self.netD_B],
                  guard=("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "G"))
        # D_A and D_B share no parameter: one backward of the summed losses serves both
        self.step([self.optimizer_D], self.compute_D_loss, guard=("D_A", "D_B", "D"))
        return self.end_iteration()

    # ------------------------------------------------------------------ losses
    def compute_G_loss(self):
        """L_GAN(G_A) + L_GAN(G_B) + cycle terms (Eq. 2, weighted as Eq. 3) + identity terms.

        Needs forward() first; the discriminators are evaluated, not trained, here.
        """
        lambda_A, lambda_B = self.opt.lambda_A, self.opt.lambda_B
        if self.use_identity:
            lambda_idt = self.opt.lambda_identity
            self.idt_A = self.netG_A(self.real_B)  # G_A maps into B: a B image should stay put
            self.loss_idt_A = identity_loss(self.idt_A, self.real_B, lambda_B * lambda_idt)
            self.idt_B = self.netG_B(self.real_A)
            self.loss_idt_B = identity_loss(self.idt_B, self.real_A, lambda_A * lambda_idt)
        else:
            self.loss_idt_A = self.loss_idt_B = 0.0
        # Eq. 1, generator side: D_A should call G_A's output real, D_B G_B's.
        self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True).mean()
        self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True).mean()
        self.loss_cycle_A = cycle_consistency_loss(self.rec_A, self.real_A, lambda_A)
        self.loss_cycle_B = cycle_consistency_loss(self.rec_B, self.real_B, lambda_B)
        self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B
                       + self.loss_idt_A + self.loss_idt_B)
        return self.loss_G

    def compute_D_loss(self):
        """D_A on real B against pooled fake B, D_B on real A against pooled fake A.

        The pools are queried in the original's order (B's first), so seeded runs draw the same
        random numbers.
        """
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.loss_D_A = discriminator_loss(self.criterionGAN, self.netD_A, self.real_B, fake_B)
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.loss_D_B = discriminator_loss(self.criterionGAN, self.netD_B, self.real_A, fake_A)
        self.loss_D = self.loss_D_A + self.loss_D_B
        return self.loss_D
