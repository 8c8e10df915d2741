"""The Swapping Autoencoder (Park, Zhu, Wang, Lu, Shechtman, Efros, Zhang, NeurIPS 2020).

Paper name -> code name (networks in models/networks/swapae.py):
    E (encoder: structure code z_s, texture code z_t)   netE -> (sp, gl)
    G (generator)                                        netG(sp, gl)
    D (image discriminator)                              netD
    D_patch (co-occurrence patch discriminator)          netDpatch
    L_rec (Eq. 1, L1)                                    loss_G_L1
    L_GAN (Eq. 2, on reconstructions and swaps)          loss_G_GAN_rec, loss_G_GAN_mix /
                                                         loss_D_real, loss_D_rec, loss_D_mix
    L_CooccurGAN (Eq. 3)                                 loss_G_mix / loss_PatchD_real, loss_PatchD_mix
    R1 on D and D_patch (lazy, every 16 D steps)         loss_D_R1

A batch of B (even) real images x is split into pairs (0, 1), (2, 3), ...; `swap` exchanges the
partners.  rec = G(sp, gl) on the first B/2 images only (the authors' memory saving) and
mix = G(swap(sp), gl): image i's texture on its partner's structure.  Losses (the
non-saturating GAN loss, averaged per sample; every term the mean over its samples):

    D step   lambda_GAN (D_real + D_rec / 2 + D_mix / 2) + lambda_PatchGAN (PatchD_real + PatchD_mix)
             PatchD_real: D_patch(crops(x), other crops(x)) is real; PatchD_mix:
             D_patch(crops(x), crops(mix)) is fake (reference crops from the texture source x_i)
    R1 step  (every R1_once_every-th D step, after it): R1_once_every x (lambda_R1 / 2 E||grad_x D(x)||^2
             + lambda_patch_R1 / 4 E sum_crops ||grad D_patch||^2), as StyleGAN2's lazy R1
    G step   lambda_L1 |rec - x|_1 + lambda_GAN (G_GAN_rec / 2 + G_GAN_mix) + lambda_PatchGAN G_mix

The authors alternate D and G steps, each on its own minibatch, the first one a D step.  Here one
`optimize_parameters` call (one batch of the loop) is one step: D steps on the 1st, 3rd, ...
batch, G steps on the 2nd, 4th, ...; the step and D-step counters are in the resumable state.
Like the authors' iteration counter, train.py's sample count (total_iters, --save_latest_freq,
epochs) counts the images of both kinds of step.  D's Adam uses StyleGAN2's lazy-regularisation
correction c = R1_once_every / (R1_once_every + 1): lr * c and betas ** c.
"""
import torch
import torch.nn.functional as F

from util.errors import UserError
from util.util import str2bool

from .base_model import BaseModel
from .input_checks import check_non_negative
from .losses import GANLoss, patch_r1_penalty, r1_penalty, random_crops
from .networks.swapae import (SwapAEDiscriminator, SwapAEEncoder, SwapAEGenerator,
                              SwapAEPatchDiscriminator)
from .speed import unwrap

# The authors' church configuration (experiments/church_launcher.py, "church_default", with the
# argparse defaults of their model, networks and optimizer), on one process.  LSUN church has
# 126,227 training images: their 25M images are ~198 epochs (both kinds of step count).
SWAPAE_DEFAULTS = dict(
    dataset_mode="single", preprocess="scale_shortside_and_crop", load_size=256, crop_size=256,
    lr=0.002, beta1=0.0, beta2=0.99, pool_size=0,
)
SWAPAE_TRAIN_DEFAULTS = dict(batch_size=16, n_epochs=198, n_epochs_decay=0, print_freq=480,
                             display_freq=1600, save_latest_freq=50000)
# test.py: the authors' test preprocessing (short side to --load_size, no crop, no flip)
SWAPAE_TEST_DEFAULTS = dict(preprocess="scale_shortside", batch_size=1)

D_STEP_LOSSES = ("D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix", "D")
R1_STEP_LOSSES = ("D_R1",)
G_STEP_LOSSES = ("G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix", "G")
WEIGHTS = ("lambda_R1", "lambda_patch_R1", "lambda_L1", "lambda_GAN", "lambda_PatchGAN")


def swap(x):
    """Exchange the partners of each pair (0, 1), (2, 3), ... along the batch dimension."""
    shape = x.shape
    return torch.flip(x.view(shape[0] // 2, 2, *shape[1:]), [1]).view(shape)


def build_networks(opt, names, device="cpu"):
    """The networks in `names` (E, G, D, Dpatch) built from the options, on `device`."""
    builders = {
        "E": lambda: SwapAEEncoder(opt.spatial_code_ch, opt.global_code_ch, opt.netE_num_downsampling_sp,
                                   opt.netE_num_downsampling_gl, opt.netE_scale_capacity,
                                   opt.netE_nc_steepness, opt.use_antialias),
        "G": lambda: SwapAEGenerator(opt.spatial_code_ch, opt.global_code_ch, opt.netE_num_downsampling_sp,
                                     opt.netG_num_base_resnet_layers, opt.netG_scale_capacity,
                                     opt.netG_use_noise, opt.use_antialias),
        "D": lambda: SwapAEDiscriminator(opt.crop_size, opt.netD_scale_capacity, opt.use_antialias,
                                         opt.netD_max_nc),
        "Dpatch": lambda: SwapAEPatchDiscriminator(opt.patch_size, opt.netPatchD_scale_capacity,
                                                   opt.netPatchD_max_nc, opt.use_antialias,
                                                   opt.netPatchD_mlp_nc),
    }
    with torch.device(device):
        return {name: builders[name]() for name in names}


def min_image_side(opt):
    """The smallest side E takes: the midpoint (1/2^sp of the image) must survive the texture
    branch's unpadded stride-2 3x3 convs (7 -> 3 -> 1 for two of them)."""
    return 2 ** opt.netE_num_downsampling_sp * (2 ** (opt.netE_num_downsampling_gl + 1) - 1)


class SwapAEModel(BaseModel):
    """Encoder, generator, image and co-occurrence patch discriminators; one D or G step per batch."""

    generator_name = "G"

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        p = parser
        g = p.add_argument_group("swap_ae (the authors' option names)")
        g.add_argument("--spatial_code_ch", type=int, default=8, help="channels of the structure code")
        g.add_argument("--global_code_ch", type=int, default=2048,
                       help="size of the texture code (also caps E's widths)")
        g.add_argument("--lambda_R1", type=float, default=10.0, help="R1 weight on D (lazy)")
        g.add_argument("--lambda_patch_R1", type=float, default=1.0, help="R1 weight on D_patch (lazy)")
        g.add_argument("--lambda_L1", type=float, default=1.0, help="reconstruction L1 weight")
        g.add_argument("--lambda_GAN", type=float, default=1.0,
                       help="image GAN weight (0: no image discriminator)")
        g.add_argument("--lambda_PatchGAN", type=float, default=1.0,
                       help="co-occurrence patch GAN weight (0: no patch discriminator)")
        g.add_argument("--patch_min_scale", type=float, default=1 / 8,
                       help="smallest patch side, as a fraction of the image side")
        g.add_argument("--patch_max_scale", type=float, default=1 / 4,
                       help="largest patch side, as a fraction of the image side")
        g.add_argument("--patch_num_crops", type=int, default=8, help="patches per image")
        g.add_argument("--patch_use_aggregation", type=str2bool, nargs="?", const=True, default=True,
                       help="average the reference patches' features per image (the preset follows "
                            "the authors' church_default: False)")
        g.add_argument("--patch_size", type=int, default=128,
                       help="side the patches are resampled to (a power of 2, 4..256)")
        g.add_argument("--R1_once_every", type=int, default=16,
                       help="lazy R1: one R1 step every this many D steps")
        g.add_argument("--netE_scale_capacity", type=float, default=1.0, help="E width multiplier")
        g.add_argument("--netE_num_downsampling_sp", type=int, default=4,
                       help="downsamplings to the structure code (also G's upsamplings)")
        g.add_argument("--netE_num_downsampling_gl", type=int, default=2,
                       help="further stride-2 convs of the texture branch")
        g.add_argument("--netE_nc_steepness", type=float, default=2.0, help="E width growth per level")
        g.add_argument("--netG_scale_capacity", type=float, default=1.0, help="G width multiplier")
        g.add_argument("--netG_num_base_resnet_layers", type=int, default=2,
                       help="residual blocks at the structure code's resolution")
        g.add_argument("--netG_use_noise", type=str2bool, nargs="?", const=True, default=True,
                       help="noise in G's upsampling blocks")
        g.add_argument("--netD_scale_capacity", type=float, default=1.0, help="D width multiplier")
        g.add_argument("--netD_max_nc", type=int, default=512,
                       help="D's width at 4..32 px (the authors fix 512; lower it for CPU-sized runs)")
        g.add_argument("--netPatchD_scale_capacity", type=float, default=4.0,
                       help="D_patch width multiplier")
        g.add_argument("--netPatchD_max_nc", type=int, default=384,
                       help="D_patch's width cap and feature channels")
        g.add_argument("--netPatchD_mlp_nc", type=int, default=2048,
                       help="widths of D_patch's pair MLP: this, this, half of it (the authors fix "
                            "2048; lower it for CPU-sized runs)")
        g.add_argument("--use_antialias", type=str2bool, nargs="?", const=True, default=True,
                       help="blurred resampling (False: 1x1 filters)")
        p.set_defaults(**SWAPAE_DEFAULTS)
        if is_train:
            p.set_defaults(**SWAPAE_TRAIN_DEFAULTS, patch_use_aggregation=False)
        else:
            p.set_defaults(**SWAPAE_TEST_DEFAULTS)
        return p

    @classmethod
    def validate_options(cls, opt):
        if (opt.input_nc, opt.output_nc) != (3, 3):
            raise UserError("--model swap_ae works on RGB images; use --input_nc 3 --output_nc 3")
        for name in ("spatial_code_ch", "global_code_ch", "patch_num_crops", "R1_once_every",
                     "netD_max_nc", "netPatchD_max_nc"):
            if getattr(opt, name) < 1:
                raise UserError(f"--{name} must be a positive integer (got {getattr(opt, name)})")
        if opt.netPatchD_mlp_nc < 2:
            raise UserError(f"--netPatchD_mlp_nc must be at least 2 (got {opt.netPatchD_mlp_nc})")
        for name in ("netE_scale_capacity", "netG_scale_capacity", "netD_scale_capacity",
                     "netPatchD_scale_capacity", "netE_nc_steepness"):
            if getattr(opt, name) <= 0:
                raise UserError(f"--{name} must be positive (got {getattr(opt, name)})")
        if opt.netE_num_downsampling_sp < 1 or opt.netE_num_downsampling_gl < 0 \
                or opt.netG_num_base_resnet_layers < 0:
            raise UserError("--netE_num_downsampling_sp must be 1 or more, --netE_num_downsampling_gl "
                            "and --netG_num_base_resnet_layers 0 or more")
        if not 0 < opt.patch_min_scale <= opt.patch_max_scale <= 1:
            raise UserError(f"--patch_min_scale and --patch_max_scale must satisfy 0 < min <= max <= 1 "
                            f"(got {opt.patch_min_scale} and {opt.patch_max_scale})")
        if opt.patch_size not in (4, 8, 16, 32, 64, 128, 256):
            raise UserError(f"--patch_size must be a power of 2 from 4 to 256 (got {opt.patch_size})")
        if not opt.isTrain:
            return
        check_non_negative(opt, WEIGHTS)
        if opt.batch_size % 2:
            raise UserError(f"--model swap_ae swaps codes within pairs of images, so --batch_size must "
                            f"be even (got {opt.batch_size}; under torchrun, per process)")
        if opt.lambda_L1 == 0 and opt.lambda_GAN == 0 and opt.lambda_PatchGAN == 0:
            raise UserError("--lambda_L1, --lambda_GAN and --lambda_PatchGAN are all 0: the encoder "
                            "and generator have nothing to learn")
        if getattr(opt, "eval_freq", 0) > 0:
            raise UserError("--eval_freq scores an image-to-image generator on a test split; swap_ae's "
                            "G takes a structure and a texture code: leave it at 0 and swap with "
                            "translate.py --texture / --grid")
        if getattr(opt, "amp", "off") == "fp16":
            raise UserError("--amp fp16 is not supported with --model swap_ae (its R1 penalties "
                            "differentiate the discriminators' unscaled outputs); use --amp bf16")
        if opt.crop_size % 2 ** opt.netE_num_downsampling_sp or opt.crop_size < min_image_side(opt):
            raise UserError(f"--crop_size {opt.crop_size} must be a multiple of "
                            f"{2 ** opt.netE_num_downsampling_sp} (2^--netE_num_downsampling_sp) and at "
                            f"least {min_image_side(opt)} (the texture branch's smallest input)")
        check_shapes(opt)

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix", "D_R1", "D",
                           "G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix", "G"]
        for name in self.loss_names:
            setattr(self, "loss_" + name, 0.0)
        self.visual_names = ["real_A", "rec", "mix"] if self.isTrain else ["real_A", "rec"]
        names = ["E", "G"]
        if self.isTrain:
            # As the authors: a network whose loss weight is 0 is not built (nor saved).
            names += ["D"] if opt.lambda_GAN > 0 else []
            names += ["Dpatch"] if opt.lambda_PatchGAN > 0 else []
        self.model_names = names
        for name, net in build_networks(opt, names).items():
            setattr(self, "net" + name, net.to(self.device))
        self.steps = 0  # optimize_parameters calls so far (even: the next one is a D step)
        self.d_steps = 0  # D steps so far (the authors' discriminator_iter_counter)
        if not self.isTrain:
            self.netG.freeze_noise(0)  # test.py: the same image always gives the same output
            return
        self.criterionGAN = GANLoss("nonsaturating").to(self.device)
        betas = (opt.beta1, opt.beta2)
        self.optimizer_G = self.adam(list(self.netG.parameters()) + list(self.netE.parameters()),
                                     betas=betas)
        d_params = [p for name in names[2:] for p in getattr(self, "net" + name).parameters()]
        # StyleGAN2 (Karras et al. 2020, App. B): R1 every k steps, so Adam's lr and betas are
        # adapted by c = k / (k + 1).
        c = opt.R1_once_every / (opt.R1_once_every + 1)
        self.optimizer_D = (self.adam(d_params, betas=(opt.beta1 ** c, opt.beta2 ** c), lr=opt.lr * c)
                            if d_params else None)
        self.optimizers = [o for o in (self.optimizer_G, self.optimizer_D) if o is not None]

    # ------------------------------------------------------------------ data
    def set_input(self, data):
        """The images of the batch (real_A; the B images of an unaligned set are not used, as
        the authors' code)."""
        self.read_batch(data)
        if not self.isTrain:
            return
        if self.real_A.size(0) % 2:
            raise UserError(f"a batch of {self.real_A.size(0)} images reached swap_ae, which swaps "
                            "within pairs: use an even --batch_size")
        size = self.opt.crop_size
        if tuple(self.real_A.shape[-2:]) != (size, size):
            h, w = self.real_A.shape[-2:]
            raise UserError(f"image {self.image_paths[0]} is {w}x{h} pixels after preprocessing, but "
                            f"swap_ae's discriminator takes --crop_size {size} squares; use a "
                            "--preprocess that crops (e.g. scale_shortside_and_crop)")

    def forward(self):
        """Test time: the reconstruction rec = G(E(x)) at a size G can produce."""
        from .swap_translation import fit_size
        x, restore = fit_size(self.real_A, 2 ** self.opt.netE_num_downsampling_sp, min_image_side(self.opt))
        sp, gl = self.netE(x)
        self.rec = restore(self.netG(sp, gl))

    # ------------------------------------------------------------------ one step
    def optimize_parameters(self):
        """One step: a D step (and, every R1_once_every-th, its R1 step) or a G step."""
        d_turn = self.steps % 2 == 0
        self.steps += 1
        if d_turn:
            if self.optimizer_D is not None:  # no discriminator at all: the D turn is empty
                self.d_steps += 1
                frozen = [self.netE, self.netG]
                self.step([self.optimizer_D], self.compute_D_loss, guard=D_STEP_LOSSES, frozen=frozen)
                if self.d_steps % self.opt.R1_once_every == 0 and self.r1_needed():
                    self.step([self.optimizer_D], self.compute_R1_loss, guard=R1_STEP_LOSSES,
                              frozen=frozen)
        else:
            self.step([self.optimizer_G], self.compute_G_loss, guard=G_STEP_LOSSES,
                      frozen=[getattr(self, "net" + name) for name in self.model_names[2:]])
        return self.end_iteration()

    def r1_needed(self):
        return ((self.opt.lambda_R1 > 0 and "D" in self.model_names)
                or (self.opt.lambda_patch_R1 > 0 and "Dpatch" in self.model_names))

    def crops(self, x):
        opt = self.opt
        return random_crops(x, opt.patch_size, (opt.patch_min_scale, opt.patch_max_scale),
                            opt.patch_num_crops)

    def gan(self, prediction, real):
        """Non-saturating GAN loss, averaged over the samples of `prediction`."""
        return self.criterionGAN(prediction, real).mean()

    def compute_D_loss(self):
        """D step on this batch: E and G run without gradients (frozen, as the authors')."""
        opt, real = self.opt, self.real_A
        half = real.size(0) // 2
        with torch.no_grad():
            sp, gl = self.netE(real)
            rec = self.netG(sp[:half], gl[:half])
            mix = self.netG(swap(sp), gl)
        total = 0.0
        if "D" in self.model_names:
            self.loss_D_real = self.gan(self.netD(real), True) * opt.lambda_GAN
            self.loss_D_rec = self.gan(self.netD(rec), False) * (0.5 * opt.lambda_GAN)
            self.loss_D_mix = self.gan(self.netD(mix), False) * (0.5 * opt.lambda_GAN)
            total = self.loss_D_real + self.loss_D_rec + self.loss_D_mix
        if "Dpatch" in self.model_names:
            ref, target, query = self.crops(real), self.crops(real), self.crops(mix)
            pred_real, pred_mix = self.netDpatch(ref, target, query, aggregate=opt.patch_use_aggregation)
            self.loss_PatchD_real = self.gan(pred_real, True) * opt.lambda_PatchGAN
            self.loss_PatchD_mix = self.gan(pred_mix, False) * opt.lambda_PatchGAN
            total = total + self.loss_PatchD_real + self.loss_PatchD_mix
        self.loss_D = total
        return total

    def compute_R1_loss(self):
        """The lazy R1 step: R1_once_every x (image R1 + patch R1) on this batch's real images.

        The `0 * logits` terms change no value: they make every discriminator parameter part of
        the backward (the last biases do not enter a gradient with respect to the input), so
        that DistributedDataParallel sees each one, and so that Adam moves their moments with a
        zero gradient as in the authors' PyTorch 1.7 (whose zero_grad kept zeros, not None).
        Under --compile the discriminators run eagerly here: compiled graphs have no double
        backward.
        """
        opt = self.opt
        real = self.real_A.detach().requires_grad_(True)
        penalty, anchor = 0.0, 0.0
        if opt.lambda_R1 > 0 and "D" in self.model_names:
            logits = eager(self.netD)(real)
            penalty = r1_penalty(logits, real, opt.lambda_R1)
            anchor = logits.sum() * 0.0
        if opt.lambda_patch_R1 > 0 and "Dpatch" in self.model_names:
            ref = self.crops(real).detach().requires_grad_(True)
            target = self.crops(real).detach().requires_grad_(True)
            logits, = eager(self.netDpatch)(ref, target, aggregate=opt.patch_use_aggregation)
            penalty = penalty + patch_r1_penalty(logits, ref, target, opt.lambda_patch_R1)
            anchor = anchor + logits.sum() * 0.0
        self.loss_D_R1 = penalty
        return penalty * opt.R1_once_every + anchor

    def compute_G_loss(self):
        """G step on this batch (a fresh forward of E and G; D and D_patch frozen)."""
        opt, real = self.opt, self.real_A
        half = real.size(0) // 2
        sp, gl = self.netE(real)
        rec = self.netG(sp[:half], gl[:half])
        sp_mix = swap(sp)
        self.loss_G_L1 = F.l1_loss(rec, real[:half]) * opt.lambda_L1
        if opt.crop_size >= 1024:
            # the authors' memory saving at 1024 px: swaps of the second half only
            real, gl, sp_mix = real[half:], gl[half:], sp_mix[half:]
        mix = self.netG(sp_mix, gl)
        total = self.loss_G_L1
        if "D" in self.model_names:
            self.loss_G_GAN_rec = self.gan(self.netD(rec), True) * (0.5 * opt.lambda_GAN)
            self.loss_G_GAN_mix = self.gan(self.netD(mix), True) * opt.lambda_GAN
            total = total + self.loss_G_GAN_rec + self.loss_G_GAN_mix
        if "Dpatch" in self.model_names:
            # the reference features carry no gradient, as the authors' (detached)
            pred, = self.netDpatch(self.crops(real), self.crops(mix),
                                   aggregate=opt.patch_use_aggregation, detach_reference=True)
            self.loss_G_mix = self.gan(pred, True) * opt.lambda_PatchGAN
            total = total + self.loss_G_mix
        self.loss_G = total
        return total

    # ------------------------------------------------------------------ visuals
    def compute_visuals(self):
        """For the display: the first (at most) 4 images, their reconstructions and their
        textures swapped within pairs (G(sp_i, gl_partner)), as the authors' snapshots.  Runs
        on its own copy of the random state, so displaying changes no training draw."""
        if not self.isTrain:
            return
        n = min(4, self.real_A.size(0)) // 2 * 2
        devices = [self.device] if self.device.type == "cuda" else []
        E, G = unwrap(self.netE), unwrap(self.netG)
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            sp, gl = E(self.real_A[:n])
            self.rec = G(sp, gl)
            self.mix = G(sp, swap(gl))

    # ------------------------------------------------------------------ resumable state
    def training_state(self):
        """BaseModel's, plus the step counters (which step comes next, when R1 is due) and the
        latest value of every loss (a G step logs the D losses of the step before it)."""
        state = super().training_state()
        losses = {name: float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
                  for name, value in ((n, getattr(self, "loss_" + n)) for n in self.loss_names)}
        state["swap_ae"] = {"steps": self.steps, "d_steps": self.d_steps, "losses": losses}
        return state

    def load_training_state(self, state):
        super().load_training_state(state)
        saved = state.get("swap_ae", {})
        self.steps, self.d_steps = saved.get("steps", 0), saved.get("d_steps", 0)
        for name, value in saved.get("losses", {}).items():
            setattr(self, "loss_" + name, value)


def eager(net):
    """The network without its torch.compile wrapper (a (Distributed)DataParallel one stays)."""
    return getattr(net, "_orig_mod", net)


def check_shapes(opt):
    """Run every network of a training run once on PyTorch's `meta` device (shapes only, no
    memory): widths that round to 0, or a crop or patch size the layers cannot take, become one
    line here instead of an error deep inside the first step."""
    names = ["E", "G"] + (["D"] if opt.lambda_GAN > 0 else []) + (["Dpatch"] if opt.lambda_PatchGAN > 0 else [])
    try:
        nets = build_networks(opt, names, device="meta")
        for name, net in nets.items():
            empty = next((key for key, p in net.named_parameters() if p.numel() == 0), None)
            if empty is not None:
                raise ValueError(f"net{name}'s {empty} gets 0 channels")
        with torch.no_grad():
            x = torch.empty(2, 3, opt.crop_size, opt.crop_size, device="meta")
            sp, gl = nets["E"](x)
            out = nets["G"](sp, gl)
            if tuple(out.shape) != tuple(x.shape):
                raise RuntimeError(f"G gives {tuple(out.shape[-2:])} for {tuple(x.shape[-2:])}")
            if "D" in nets:
                nets["D"](x)
            if "Dpatch" in nets:
                crops = torch.empty(2, 1, 3, opt.patch_size, opt.patch_size, device="meta")
                nets["Dpatch"](crops, crops)
    except ZeroDivisionError:  # an equalised-lr layer with 0 input channels
        raise UserError("--model swap_ae cannot be built with these capacities (a layer gets 0 "
                        "channels); raise the *_scale_capacity / *_max_nc options") from None
    except (RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--model swap_ae cannot be built with these sizes and capacities ({reason}); "
                        "check --crop_size, --patch_size and the *_scale_capacity / *_max_nc "
                        "options") from None
