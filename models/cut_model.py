"""CUT and FastCUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation").

Paper name -> code name:
    G = enc + dec          netG (ResnetGenerator; the encoder is the first layers of netG.model)
    H_l (MLP heads)        netF (PatchSampleF, one 2-layer MLP per NCE layer)
    D                      netD (PatchGAN)
    L_GAN (Eq. 1)          loss_G_GAN / loss_D_real, loss_D_fake
    L_PatchNCE(G,H,X) (3)  loss_NCE
    L_PatchNCE(G,H,Y)      loss_NCE_Y (identity term, CUT only)
Final objective (Eq. 5): L_GAN + lambda_X * L_PatchNCE(X) + lambda_Y * L_PatchNCE(Y); CUT uses
lambda_X = lambda_Y = 1 (implemented as 0.5 * (NCE + NCE_Y) with lambda_NCE folded in, exactly as
the original code), FastCUT lambda_X = 10, lambda_Y = 0.

CUT and FastCUT are the same class; --CUT_mode only changes option defaults.
"""
import numpy as np
import torch

from util.errors import UserError
from util.util import str2bool

from . import networks
from .base_model import BaseModel
from .losses import GANLoss, PatchNCELoss
from .networks.stylegan import check_stylegan_sizes, encoder_layer_count

# --CUT_mode presets. User flags still override these defaults.
CUT_MODE_DEFAULTS = {
    "cut": dict(nce_idt=True, lambda_NCE=1.0),
    "fastcut": dict(nce_idt=False, lambda_NCE=10.0, flip_equivariance=True,
                    n_epochs=150, n_epochs_decay=50),
}
CUT_MODES = ("CUT", "cut", "FastCUT", "fastcut")


def parse_layer_list(text, option="--nce_layers"):
    try:
        layers = [int(part) for part in str(text).split(",") if part.strip() != ""]
    except ValueError:
        raise UserError(f"{option} '{text}' must be a comma-separated list of layer indices, e.g. 0,4,8,12,16") from None
    if not layers:
        raise UserError(f"{option} is empty; give at least one layer index, e.g. 0,4,8,12,16")
    return layers


def check_stylegan_options(opt):
    """The StyleGAN2 networks (SinCUT) are RGB only, exist for resolutions 4..1024, and D judges
    whole crops of exactly the resolution it was built for."""
    g_used = opt.netG in networks.RGB_ONLY
    d_used = opt.isTrain and opt.netD in networks.RGB_ONLY
    if not (g_used or d_used):
        return
    if (opt.input_nc, opt.output_nc) != (3, 3):
        name = "netG" if g_used else "netD"
        raise UserError(f"--{name} {getattr(opt, name)} works on RGB images only; use --input_nc 3 "
                        "--output_nc 3")
    resolution = networks.stylegan_resolution(opt.load_size, opt.crop_size)
    check_stylegan_sizes(resolution, ngf=opt.ngf if g_used else None, ndf=opt.ndf if d_used else None,
                         num_downsampling=opt.stylegan2_G_num_downsampling if g_used else 0)
    if g_used:
        count = encoder_layer_count(networks.GENERATORS[opt.netG].n_blocks,
                                    opt.stylegan2_G_num_downsampling)
        bad = [i for i in parse_layer_list(opt.nce_layers) if not 0 <= i < count]
        if bad:
            # The original skips missing layers silently but still divides the NCE sum by the
            # number listed (smallstylegan2 with 0,2,4 trains with 2/3 of the NCE weight).
            raise UserError(f"--nce_layers names layer {bad[0]}, but --netG {opt.netG} has encoder "
                            f"layers 0..{count - 1}; use e.g. --nce_layers 0,2,{count - 1}")
    if d_used and opt.crop_size != resolution:
        raise UserError(f"--netD {opt.netD} judges whole {resolution}x{resolution} crops "
                        f"(min(--load_size, --crop_size) rounded to a power of 2), but --crop_size "
                        f"is {opt.crop_size}; use a power of 2 for --crop_size, no larger than "
                        "--load_size")


class CUTModel(BaseModel):
    """Generator + PatchGAN discriminator + MLP heads, trained with GAN and PatchNCE losses."""

    # the losses the NaN guard checks before D's step and before G's (the totals last)
    D_STEP_LOSSES = ("D_fake", "D_real", "D")
    G_STEP_LOSSES = ("G_GAN", "NCE", "NCE_Y", "G")

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.add_argument("--CUT_mode", type=str, default="CUT", choices=CUT_MODES,
                            help="CUT (identity NCE, lambda_NCE 1) or FastCUT (no identity NCE, "
                                 "lambda_NCE 10, flip equivariance, 150+50 epochs)")
        parser.add_argument("--lambda_GAN", type=float, default=1.0, help="weight for GAN loss: GAN(G(X))")
        parser.add_argument("--lambda_NCE", type=float, default=1.0, help="weight for NCE loss: NCE(G(X), X)")
        parser.add_argument("--nce_idt", type=str2bool, nargs="?", const=True, default=False,
                            help="use NCE loss for identity mapping: NCE(G(Y), Y)")
        parser.add_argument("--nce_layers", type=str, default="0,4,8,12,16",
                            help="compute NCE loss on which layers of the generator")
        parser.add_argument("--nce_includes_all_negatives_from_minibatch", type=str2bool, nargs="?",
                            const=True, default=False,
                            help="(used for single image translation) If True, include the negatives from "
                                 "the other samples of the minibatch when computing the contrastive loss.")
        parser.add_argument("--netF", type=str, default="mlp_sample", choices=sorted(networks.PATCH_SAMPLERS),
                            help="how to downsample the feature map")
        parser.add_argument("--netF_nc", type=int, default=256)
        parser.add_argument("--nce_T", type=float, default=0.07, help="temperature for NCE loss")
        parser.add_argument("--num_patches", type=int, default=256, help="number of patches per layer")
        parser.add_argument("--flip_equivariance", type=str2bool, nargs="?", const=True, default=False,
                            help="Enforce flip-equivariance as additional regularization. "
                                 "It's used by FastCUT, but not CUT")
        parser.set_defaults(pool_size=0)  # no image pool in CUT

        opt, _ = parser.parse_known_args()
        parser.set_defaults(**CUT_MODE_DEFAULTS[opt.CUT_mode.lower()])
        return parser

    @classmethod
    def validate_options(cls, opt):
        parse_layer_list(opt.nce_layers)
        if opt.num_patches < 1:
            raise UserError(f"--num_patches must be at least 1 (got {opt.num_patches})")
        if opt.nce_T <= 0:
            raise UserError(f"--nce_T must be positive (got {opt.nce_T})")
        if opt.netF_nc < 1:
            raise UserError(f"--netF_nc must be a positive integer (got {opt.netF_nc})")
        if opt.isTrain and opt.dataset_mode == "single":
            raise UserError("--dataset_mode single has no B images to train against; use it with test.py, "
                            "or --dataset_mode unaligned for training")
        check_stylegan_options(opt)
        if opt.isTrain and opt.input_nc != opt.output_nc and (opt.lambda_NCE > 0 or opt.nce_idt):
            raise UserError(f"PatchNCE and the identity pass feed images of one domain into the generator "
                            f"built for the other, so they need --input_nc == --output_nc (got "
                            f"{opt.input_nc} and {opt.output_nc}); make them equal, or use "
                            "--lambda_NCE 0 --nce_idt False")
        if opt.isTrain and opt.lambda_NCE <= 0 and opt.lambda_GAN <= 0:
            raise UserError("--lambda_GAN and --lambda_NCE are both 0: the generator has nothing to learn")
        if opt.dataset_mode == "single" and opt.direction == "BtoA" and opt.input_nc != opt.output_nc:
            raise UserError("--dataset_mode single feeds its images to the generator's input: use "
                            "--direction AtoB (or equal --input_nc and --output_nc)")

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["G_GAN", "D_real", "D_fake", "G", "NCE"]
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.nce_layers = parse_layer_list(opt.nce_layers)
        if opt.nce_idt and self.isTrain:
            self.loss_names += ["NCE_Y"]
            self.visual_names += ["idt_B"]
        self.model_names = ["G", "F", "D"] if self.isTrain else ["G"]
        self.flipped_for_equivariance = False
        self.key_feats = None  # PatchNCE keys from the last forward pass (fast path)

        # StyleGAN2 networks size their channels by R = min(load_size, crop_size) as a power of 2
        resolution = networks.stylegan_resolution(opt.load_size, opt.crop_size)
        self.netG = networks.define_G(opt.input_nc, opt.output_nc, opt.ngf, opt.netG, opt.normG,
                                      not opt.no_dropout, opt.init_type, opt.init_gain,
                                      opt.no_antialias, opt.no_antialias_up, self.gpu_ids,
                                      padding_type=opt.padding_type, init_bias=opt.init_bias,
                                      resolution=resolution,
                                      num_downsampling=opt.stylegan2_G_num_downsampling)
        num_layers = self.netG.num_layers
        bad = [i for i in self.nce_layers if not 0 <= i < num_layers]
        if bad:
            raise UserError(f"--nce_layers index {bad[0]} does not exist: --netG {opt.netG} has layers "
                            f"0..{num_layers - 1}")
        if not self.isTrain:
            return

        self.netF = networks.define_F(opt.netF, opt.init_type, opt.init_gain, opt.netF_nc, self.gpu_ids)
        self.netD = networks.define_D(opt.output_nc, opt.ndf, opt.netD, opt.n_layers_D, opt.normD,
                                      opt.init_type, opt.init_gain, opt.no_antialias, self.gpu_ids,
                                      init_bias=opt.init_bias, resolution=resolution)
        self.criterionGAN = GANLoss(opt.gan_mode).to(self.device)
        self.criterionNCE = [PatchNCELoss(opt.nce_T, opt.nce_includes_all_negatives_from_minibatch)
                             for _ in self.nce_layers]
        self.optimizer_G = self.adam(self.netG.parameters(), betas=(opt.beta1, opt.beta2))
        self.optimizer_D = self.adam(self.netD.parameters(), betas=(opt.beta1, opt.beta2))
        self.optimizers = [self.optimizer_G, self.optimizer_D]
        self.optimizer_F = None

    # ------------------------------------------------------------------ initialisation
    def data_dependent_initialize(self, data):
        """Create the MLP heads of netF from one real batch, then their optimizer.

        The heads' input widths are those of the generator features, known only after a
        forward pass.  As in the original we run the full losses once on the first batch
        (gradients are discarded by the first zero_grad); this also consumes the same random
        draws (flip, patch locations) as the original, keeping seeded runs comparable.
        Must run before setup(), so that --continue_train can load F and its optimizer exists.
        """
        per_gpu = data["A"].size(0) // max(len(self.gpu_ids), 1)
        self.set_input(data)
        self.real_A = self.real_A[:per_gpu]
        self.real_B = self.real_B[:per_gpu]
        self.forward()
        if self.isTrain:
            self.compute_D_loss().backward()
            self.compute_G_loss().backward()
            if self.opt.lambda_NCE > 0 and any(True for _ in self.netF.parameters()):
                self.optimizer_F = self.adam(self.netF.parameters(), betas=(self.opt.beta1, self.opt.beta2))
                self.optimizers.append(self.optimizer_F)

    # ------------------------------------------------------------------ one step
    def set_input(self, data):
        path_B = self.read_batch(data)
        if self.real_B is None:  # a single-domain folder (--dataset_mode single), test only
            self.check_image_size(self.real_A, self.image_paths[0], ("G",))
            return
        # What each image goes through: A -> G -> D, and B -> D (and B -> G for the identity term).
        self.check_image_size(self.real_A, self.image_paths[0], ("G", "D") if self.isTrain else ("G",))
        if self.isTrain:
            self.check_image_size(self.real_B, path_B, ("G", "D") if self.opt.nce_idt else ("D",))

    def forward(self):
        """fake_B = G(real_A); with the identity term, idt_B = G(real_B) in the same pass."""
        use_idt = self.opt.nce_idt and self.isTrain
        real = torch.cat((self.real_A, self.real_B), dim=0) if use_idt else self.real_A
        self.flipped_for_equivariance = False
        if self.opt.flip_equivariance:
            # numpy's global RNG, drawn once per forward, as the original
            self.flipped_for_equivariance = self.isTrain and (np.random.random() < 0.5)
            if self.flipped_for_equivariance:
                real = torch.flip(real, [3])
        # The fast path: the keys of PatchNCE are encoder features of real_A (and real_B), which
        # G's own pass computes anyway; PatchNCELoss detaches them, so they need no graph.
        self.key_feats = None
        if self.keys_from_forward():
            fake, feats = self.netG(real, self.nce_layers)
            self.key_feats = [feat.detach() for feat in feats]
        else:
            fake = self.netG(real)
        self.fake_B = fake[:self.real_A.size(0)]
        if use_idt:
            self.idt_B = fake[self.real_A.size(0):]

    def keys_from_forward(self):
        """Whether this forward pass can also yield the PatchNCE keys, exactly.

        Not when the input was flipped (the keys are features of the unflipped images), nor when
        a pass over [real_A; real_B] differs from separate passes: batch norm (statistics over the
        batch) and dropout (fresh masks per pass).
        """
        opt = self.opt
        return (self.isTrain and opt.fast_path and opt.lambda_NCE > 0.0
                and not self.flipped_for_equivariance
                and opt.no_dropout and not (opt.normG == "batch" and opt.netG not in networks.RGB_ONLY))

    def key_features(self, image):
        """The PatchNCE keys of real_A or real_B taken from forward(), or None."""
        if self.key_feats is None:
            return None
        n = self.real_A.size(0)
        part = slice(0, n) if image is self.real_A else slice(n, None)
        return [feat[part] for feat in self.key_feats]

    def optimize_parameters(self):
        """D step, then G+F step (fake_B is not recomputed in between, as the original).

        The NaN guard (--nan_guard) checks each loss before its own step: `stop` raises (the run
        then ends without saving), `skip` leaves that step out (D's, or G's and F's together).
        """
        with self.autocast():
            self.forward()
        self.step([self.optimizer_D], self.compute_D_loss, guard=self.D_STEP_LOSSES)
        self.step([self.optimizer_G, self.optimizer_F], self.compute_G_loss, guard=self.G_STEP_LOSSES,
                  frozen=[self.netD])
        return self.end_iteration()

    # ------------------------------------------------------------------ losses
    def compute_D_loss(self):
        """L_D = 0.5 * (GAN(D(G(x)), fake) + GAN(D(y), real))."""
        pred_fake = self.netD(self.fake_B.detach())
        self.loss_D_fake = self.criterionGAN(pred_fake, False).mean()
        self.pred_real = self.netD(self.real_B)
        self.loss_D_real = self.criterionGAN(self.pred_real, True).mean()
        self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        return self.loss_D

    def compute_G_loss(self):
        """L_G = lambda_GAN * GAN(D(G(x)), real) + NCE term (Eq. 5)."""
        if self.opt.lambda_GAN > 0.0:
            pred_fake = self.netD(self.fake_B)
            self.loss_G_GAN = self.criterionGAN(pred_fake, True).mean() * self.opt.lambda_GAN
        else:
            self.loss_G_GAN = 0.0

        if self.opt.lambda_NCE > 0.0:
            self.loss_NCE = self.calculate_NCE_loss(self.real_A, self.fake_B,
                                                    feat_k=self.key_features(self.real_A))
        else:
            self.loss_NCE = 0.0

        if self.opt.nce_idt and self.opt.lambda_NCE > 0.0:
            self.loss_NCE_Y = self.calculate_NCE_loss(self.real_B, self.idt_B,
                                                      feat_k=self.key_features(self.real_B))
            nce_term = (self.loss_NCE + self.loss_NCE_Y) * 0.5
        else:
            self.loss_NCE_Y = 0.0
            nce_term = self.loss_NCE

        self.loss_G = self.loss_G_GAN + nce_term
        return self.loss_G

    def calculate_NCE_loss(self, src, tgt, patch_ids=None, feat_k=None):
        """L_PatchNCE(G, H, X) (Eq. 3): lambda_NCE * mean over layers of the mean patch loss.

        Queries are features of the translated image `tgt`, keys those of the source `src`,
        both from the generator's encoder, projected by the same MLP head at the same patch
        locations.  `patch_ids` (one index tensor per layer) fixes the locations, for tests;
        by default they are drawn afresh from numpy's RNG.  `feat_k`: the keys' encoder features
        when the caller has them (the fast path); otherwise they are computed here.
        """
        feat_q = self.netG(tgt, self.nce_layers, encode_only=True)
        if self.opt.flip_equivariance and self.flipped_for_equivariance:
            feat_q = [torch.flip(fq, [3]) for fq in feat_q]
        # PatchNCELoss detaches the keys: on the fast path they are computed without a graph.
        no_graph = getattr(self.opt, "fast_path", False)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not no_graph):
            if feat_k is None:
                feat_k = self.netG(src, self.nce_layers, encode_only=True)
            feat_k_pool, sample_ids = self.netF(feat_k, self.opt.num_patches, patch_ids)
        feat_q_pool, _ = self.netF(feat_q, self.opt.num_patches, sample_ids)

        batch_size = src.size(0)
        total = 0.0
        for f_q, f_k, criterion in zip(feat_q_pool, feat_k_pool, self.criterionNCE):
            total += (criterion(f_q, f_k, batch_size) * self.opt.lambda_NCE).mean()
        return total / len(self.nce_layers)
