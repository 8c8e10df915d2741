"""SinCUT: CUT trained on a single pair of images (Park et al. 2020, sect. 5.2 and Fig. 9).

Everything is CUT (PatchNCE with the identity term, D step then G+F step) with other option
values, plus two terms:

    L_D += lambda_R1 / 2 * E_y ||grad_y D(y)||^2     (R1, on every D step, no lazy regularisation)
    L_G += lambda_identity * |G(y) - y|_1            (pixel identity on the target crops)

Presets: StyleGAN2-based G and D, non-saturating GAN loss, Adam(0.002, betas 0, 0.99),
64x64 crops of the zoomed images in batches of 16, and PatchNCE with one patch location per layer
whose negatives are the other crops of the minibatch at that location (a 1 x 16 x 16 logit
matrix per layer instead of CUT's per-image 256 x 256).
"""
import torch.nn.functional as F

from util.errors import UserError

from .cut_model import CUTModel
from .losses import r1_penalty

SINCUT_DEFAULTS = dict(
    nce_includes_all_negatives_from_minibatch=True, dataset_mode="singleimage",
    netG="stylegan2", stylegan2_G_num_downsampling=1, netD="stylegan2", gan_mode="nonsaturating",
    num_patches=1, nce_layers="0,2,4", lambda_NCE=4.0, ngf=10, ndf=8, lr=0.002, beta1=0.0,
    beta2=0.99, load_size=1024, crop_size=64, preprocess="zoom_and_patch",
)
SINCUT_TRAIN_DEFAULTS = dict(batch_size=16, save_epoch_freq=1, save_latest_freq=20000,
                             n_epochs=8, n_epochs_decay=8)
# At test time the whole A image is translated at full resolution (rounded to a multiple of 4).
SINCUT_TEST_DEFAULTS = dict(preprocess="none", batch_size=1, num_test=1)


class SinCUTModel(CUTModel):
    """CUT with the R1 penalty on D and an L1 identity loss on G (loss names D_R1 and idt)."""

    D_STEP_LOSSES = ("D_fake", "D_real", "D_R1", "D")
    G_STEP_LOSSES = ("G_GAN", "NCE", "NCE_Y", "idt", "G")

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser = CUTModel.modify_commandline_options(parser, is_train)
        parser.add_argument("--lambda_R1", type=float, default=1.0,
                            help="weight for the R1 gradient penalty on real images")
        parser.add_argument("--lambda_identity", type=float, default=1.0,
                            help="weight for the L1 identity loss |G(y) - y|")
        parser.set_defaults(**SINCUT_DEFAULTS)
        parser.set_defaults(**(SINCUT_TRAIN_DEFAULTS if is_train else SINCUT_TEST_DEFAULTS))
        return parser

    @classmethod
    def validate_options(cls, opt):
        super().validate_options(opt)
        if not opt.isTrain:
            return
        if opt.lambda_R1 < 0 or opt.lambda_identity < 0:
            raise UserError(f"--lambda_R1 and --lambda_identity must be 0 or more (got "
                            f"{opt.lambda_R1} and {opt.lambda_identity})")
        if getattr(opt, "eval_freq", 0) > 0:
            raise UserError("--eval_freq computes FID/KID over a test split, which a single-image "
                            "run does not have; leave it at 0 and look at test.py's output")
        if opt.lambda_identity > 0 and not opt.nce_idt:
            # The original crashes here (idt_B is only computed for the NCE identity term).
            raise UserError("the identity loss (--lambda_identity) translates the target images, "
                            "which only happens with --nce_idt True; set --nce_idt True or "
                            "--lambda_identity 0")

    def __init__(self, opt):
        super().__init__(opt)
        if self.isTrain:
            if opt.lambda_R1 > 0.0:
                self.loss_names += ["D_R1"]
            if opt.lambda_identity > 0.0:
                self.loss_names += ["idt"]
        self.loss_D_R1 = 0.0
        self.loss_idt = 0.0

    def compute_D_loss(self):
        """L_D = CUT's D loss + R1 on the real images (their gradient is the penalty's input)."""
        if self.opt.lambda_R1 > 0.0:
            # As the original, real_B itself is marked: D(real_B) must depend on it for R1.
            self.real_B.requires_grad_()
        loss_gan = super().compute_D_loss()
        if self.opt.lambda_R1 > 0.0:
            self.loss_D_R1 = r1_penalty(self.pred_real, self.real_B, self.opt.lambda_R1)
        self.loss_D = loss_gan + self.loss_D_R1
        return self.loss_D

    def compute_G_loss(self):
        """L_G = CUT's G loss + lambda_identity * mean |G(y) - y|.  The logged `G` includes idt."""
        loss_cut = super().compute_G_loss()
        if self.opt.lambda_identity > 0.0:
            self.loss_idt = F.l1_loss(self.idt_B, self.real_B) * self.opt.lambda_identity
        self.loss_G = loss_cut + self.loss_idt
        return self.loss_G
