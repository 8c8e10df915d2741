"""GcGAN (Fu et al., "Geometry-Consistent Generative Adversarial Networks for One-Sided
Unsupervised Domain Mapping", CVPR 2019), one-sided A -> B, one of the CUT paper's baselines.

Sources: the paper (section 3, Eq. 1-5) and the authors' code, github.com/hufu6371/GcGAN:
models/gc_gan_share_model.py (one generator shared by x and f(x), the model of the paper) and
options/train_options.py (defaults).  Read for facts only; written from scratch here.

Paper name -> code name:
    f (rot or vf)                  --geometry; models/losses/geometry.py
    G_XY = G_X~Y~ (shared)         netG
    D_Y, D_Y~                      netD (judges G(x)), netD_gc (judges G(f(x)) against f(y))
    L_GAN(G_XY, D_Y)               loss_G_GAN;    loss_D (discriminator side, halved)
    L_GAN(G_X~Y~, D_Y~)            loss_G_GAN_gc; loss_D_gc
    L_geo (Eq. 4)                  loss_gc
    identity (CycleGAN's)          loss_idt (|G(y) - y|), loss_idt_gc (|G(f(y)) - f(y)|)
Objective (Eq. 5, with the code's weights):
    lambda_GAN * (L_GAN + L_GAN_gc) + lambda_AB * lambda_gc * L_geo
    + lambda_AB * lambda_identity * (L_idt + L_idt_gc),
    lambda_GAN 1, lambda_AB 10, lambda_gc 2 (L_geo weighted 20), lambda_identity 0.5 (5).

Choices (paper vs code, and where this framework differs):
  * L_geo is one undetached L1 term, G(x) against f^-1(G(f(x))); the code sums two terms whose
    targets are detached, which has the same gradient at twice the value (see
    models/losses/geometry.py): our logged `gc` is half the code's `Gc`, training is the same.
  * --lambda_identity is the code's --identity (0.5 by default; its cityscapes script uses 0.3),
    named as this framework's CycleGAN option, relative to lambda_AB in the same way.  The
    identity terms need --input_nc == --output_nc; --lambda_identity 0 turns them off.
  * --lambda_GAN is the code's --lambda_G (1).
  * rot is a 90-degree clockwise turn (the code's transpose, then reversed columns), vf turns
    the image upside down (reversed rows).  rot needs square images, which the code assumes
    (it reads --fineSize for both sides); we check the options and each batch.
  * GAN: lsgan (the code's default), two pools of 50 generated images (one per D), each D's loss
    halved, one Adam (0.5, 0.999) for G and one for both Ds, lr 0.0002, G step then D step, as
    the code.  The networks are the framework's (CUT-style antialiased ResNet G, PatchGAN D,
    xavier init); the code uses CycleGAN's (normal init, strided convolutions): --no_antialias
    --no_antialias_up --init_type normal gives those.
  * test.py translates with G only (real_A -> fake_B), like the other models; the code's test also
    shows G(f(x)).
"""
from util.errors import UserError

from .losses import GEOMETRIES, discriminator_loss, geometry_consistency_loss, geometry_transform
from .losses.cycle import identity_loss
from .input_checks import check_identity_channels, check_non_negative
from .one_sided_model import OneSidedGANModel

# preprocess modes whose training images are crop_size x crop_size squares
SQUARE_PREPROCESS = ("resize_and_crop", "crop", "scale_width_and_crop", "scale_shortside_and_crop")


class GcGANModel(OneSidedGANModel):
    """G + D + D_gc trained with two GAN losses, geometry consistency and identity losses."""

    EXTRA_DISCRIMINATORS = ("D_gc",)
    G_STEP_LOSSES = ("G_GAN", "G_GAN_gc", "gc", "idt", "idt_gc", "G")
    D_STEP_LOSSES = ("D", "D_gc")

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.add_argument("--geometry", type=str, default="rot", choices=GEOMETRIES,
                            help="the geometric transformation f: rot (90 degrees clockwise; needs "
                                 "square images) or vf (vertical flip)")
        if is_train:
            parser.add_argument("--lambda_GAN", type=float, default=1.0,
                                help="weight for both GAN losses (the code's lambda_G)")
            parser.add_argument("--lambda_AB", type=float, default=10.0,
                                help="weight scale of the geometry-consistency and identity losses")
            parser.add_argument("--lambda_gc", type=float, default=2.0,
                                help="geometry-consistency weight, times lambda_AB")
            parser.add_argument("--lambda_identity", type=float, default=0.5,
                                help="identity weight, times lambda_AB (the code's --identity); 0: off")
        return parser

    @classmethod
    def validate_training_options(cls, opt):
        check_non_negative(opt, ("lambda_GAN", "lambda_AB", "lambda_gc", "lambda_identity"))
        # --preprocess none keeps each image's shape: square data sets (the demo's) are fine, and
        # set_input names any non-square image in one line
        if opt.geometry == "rot" and opt.preprocess not in SQUARE_PREPROCESS + ("none",):
            raise UserError(f"--geometry rot needs square training images, but --preprocess "
                            f"{opt.preprocess} keeps their shape; use --preprocess resize_and_crop "
                            "(square --crop_size crops) or --geometry vf")
        check_identity_channels(opt, "G")

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["G_GAN", "G_GAN_gc", "gc", "idt", "idt_gc", "G", "D", "D_gc"]
        self.use_identity = self.isTrain and opt.lambda_identity > 0
        if self.isTrain:
            self.visual_names = ["real_A", "fake_B", "real_gc_A", "fake_gc_B", "real_B"]
            if self.use_identity:
                self.visual_names += ["idt_B"]

    # ------------------------------------------------------------------ one step
    def size_check_chains(self):
        chains_A = [("G", "D"), ("G", "D_gc")]
        chains_B = [("D",), ("D_gc",)] + ([("G",)] if self.use_identity else [])
        return chains_A, chains_B

    def set_input(self, data):
        super().set_input(data)
        if self.isTrain and self.opt.geometry == "rot":
            for images, path in ((self.real_A, self.image_paths[0]), (self.real_B, None)):
                h, w = images.shape[-2:]
                if h != w:
                    where = f"image {path}" if path else "a B image"
                    raise UserError(f"{where} is {w}x{h} pixels after preprocessing: --geometry rot "
                                    "needs square images; use --preprocess resize_and_crop or "
                                    "--geometry vf")

    def forward(self):
        """fake_B = G(x); in training also fake_gc_B = G(f(x)) (separate passes, as the code)."""
        self.fake_B = self.netG(self.real_A)
        if self.isTrain:
            self.real_gc_A = geometry_transform(self.real_A, self.opt.geometry)
            self.fake_gc_B = self.netG(self.real_gc_A)

    # ------------------------------------------------------------------ losses
    def compute_G_loss(self):
        """Eq. 5: both GAN terms, geometry consistency (Eq. 4) and the two identity terms."""
        opt = self.opt
        self.loss_G_GAN = self.criterionGAN(self.netD(self.fake_B), True).mean() * opt.lambda_GAN
        self.loss_G_GAN_gc = self.criterionGAN(self.netD_gc(self.fake_gc_B), True).mean() * opt.lambda_GAN
        self.loss_gc = geometry_consistency_loss(self.fake_B, self.fake_gc_B, opt.geometry,
                                                 opt.lambda_AB * opt.lambda_gc)
        if self.use_identity:
            weight = opt.lambda_AB * opt.lambda_identity
            real_gc_B = geometry_transform(self.real_B, opt.geometry)
            self.idt_B = self.netG(self.real_B)
            self.loss_idt = identity_loss(self.idt_B, self.real_B, weight)
            self.loss_idt_gc = identity_loss(self.netG(real_gc_B), real_gc_B, weight)
        else:
            self.loss_idt = self.loss_idt_gc = 0.0
        self.loss_G = (self.loss_G_GAN + self.loss_G_GAN_gc + self.loss_gc
                       + self.loss_idt + self.loss_idt_gc)
        return self.loss_G

    def compute_D_loss(self):
        """D: real y against pooled G(x); D_gc: real f(y) against pooled G(f(x)).  The pools are
        queried in the code's order (G(x)'s first), so seeded runs draw the same numbers."""
        fake_B = self.image_pools["fake_B"].query(self.fake_B)
        fake_gc_B = self.image_pools["fake_gc_B"].query(self.fake_gc_B)
        real_gc_B = geometry_transform(self.real_B, self.opt.geometry)
        self.loss_D = discriminator_loss(self.criterionGAN, self.netD, self.real_B, fake_B)
        self.loss_D_gc = discriminator_loss(self.criterionGAN, self.netD_gc, real_gc_B, fake_gc_B)
        return self.loss_D + self.loss_D_gc
