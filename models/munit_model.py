"""MUNIT (Huang, Liu, Belongie, Kautz, "Multimodal Unsupervised Image-to-Image Translation",
ECCV 2018), as the authors' code (NVlabs/MUNIT: networks.py, trainer.py, train.py, configs/).

Paper name -> code name:
    E_1 = (E^c_1, E^s_1), G_1    netG_A.enc_content, netG_A.enc_style, netG_A.dec (+ netG_A.mlp)
    E_2, G_2                     netG_B (the auto-encoder of domain B; the authors' gen_b)
    D_1, D_2                     netD_A (judges A images; dis_a), netD_B (judges B images)
    x_{1->2} = G_2(c_1, s_2)     fake_B (x_ab), s_2 ~ N(0, I) of --munit_style_dim dimensions
    L^x_recon (Eq. 1)            loss_recon_x_A, loss_recon_x_B      (weight --recon_x_w)
    L^c_recon, L^s_recon (2, 3)  loss_recon_c_A/B, loss_recon_s_A/B  (--recon_c_w, --recon_s_w)
    L^x_GAN (Eq. 4)              loss_G_adv_A/B (G side), loss_D_A/B (D side)   (--gan_w)
    style-augmented cycle        loss_cyc_A/B (|x_aba - x_a|, --recon_x_cyc_w)
    domain-invariant perceptual  loss_vgg_A/B (--vgg_w, needs --vgg_weights)
The logged terms are unweighted, as the authors log them; `G` and `D` are the weighted totals
(Eq. 5 plus the cycle and perceptual terms) that each update minimises.

Unlike CycleGAN's G_A (an A -> B translator), netG_A here is domain A's auto-encoder: A -> B
takes the content of netG_A and the decoder of netG_B.  The multimodal interface that test.py,
translate.py and models/translator.py use (style_dim, random_styles, style_of,
translate_with_styles) is at the end of the class.
"""
import itertools
import os

import torch

from util.errors import UserError

from . import networks
from .base_model import BaseModel
from .input_checks import check_non_negative, check_single_folder
from .losses.munit import (MULTISCALE_GAN_MODES, multiscale_discriminator_loss,
                           multiscale_generator_loss, recon_loss)
from .losses.perceptual import domain_invariant_perceptual_loss, load_caffe_vgg16
from .networks.munit import AdaINGen, MsImageDis

# The authors' configs (configs/*.yaml), as option values.  Everything but recon_x_cyc_w is
# shared by their four configs; the cycle weight is summer2winter_yosemite256's 10 (edges2shoes
# and edges2handbags use 0): that config is the closest to the 256x256 photo benchmarks of CUT
# (horse2zebra, cat2dog, Cityscapes), and no source gives the CUT paper's exact MUNIT settings.
# Their 1e6 iterations are n_epochs x images per epoch: 750 epochs of horse2zebra's 1,334
# (max(|A|, |B|), our epoch) = 1,000,500 iterations; other data sets: --n_epochs 1e6 / that size.
MUNIT_DEFAULTS = dict(
    ngf=64, ndf=64, init_type="kaiming", gan_mode="lsgan",
    preprocess="resize_shortside_and_crop", resize_filter="bilinear", load_size=256, crop_size=256,
)
MUNIT_TRAIN_DEFAULTS = dict(
    batch_size=1, lr=1e-4, beta1=0.5, beta2=0.999,
    lr_policy="step_iter", lr_decay_iters=100000, lr_gamma=0.5,
    n_epochs=750, n_epochs_decay=0,
)
# At test time the authors resize the shorter side to 256 and do not crop.
MUNIT_TEST_DEFAULTS = dict(preprocess="resize_shortside")
DISCRIMINATOR_INIT_STD = 0.02  # both Ds are re-initialised N(0, 0.02) ("gaussian") after kaiming


class MUNITModel(BaseModel):
    """Two AdaIN auto-encoders and two multi-scale discriminators; D step, then G step."""

    D_STEP_LOSSES = ("D_A", "D_B", "D")
    # No single network translates A -> B, so --eval_freq (which scores one) is refused; the
    # name only labels best_net_*.json, which MUNIT never writes.
    generator_name = "G_A"

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        # The authors' gen/dis config keys; --ngf and --ndf are their gen and dis `dim`.
        parser.add_argument("--munit_style_dim", type=int, default=8, help="length of the style code")
        parser.add_argument("--munit_mlp_dim", type=int, default=256,
                            help="width of the MLP that maps a style code to AdaIN parameters")
        parser.add_argument("--munit_n_downsample", type=int, default=2,
                            help="downsamplings of the content encoder (upsamplings of the decoder); "
                                 "the style encoder always has 4")
        parser.add_argument("--munit_n_res", type=int, default=4,
                            help="residual blocks of the content encoder and of the decoder")
        parser.add_argument("--munit_dis_layers", type=int, default=4,
                            help="stride-2 convolutions per discriminator scale (the authors' n_layer)")
        parser.add_argument("--munit_num_scales", type=int, default=3,
                            help="scales of the multi-scale discriminator")
        if is_train:
            parser.add_argument("--gan_w", type=float, default=1.0, help="weight of the adversarial losses")
            parser.add_argument("--recon_x_w", type=float, default=10.0,
                                help="weight of the image reconstruction losses")
            parser.add_argument("--recon_s_w", type=float, default=1.0,
                                help="weight of the style reconstruction losses")
            parser.add_argument("--recon_c_w", type=float, default=1.0,
                                help="weight of the content reconstruction losses")
            parser.add_argument("--recon_x_cyc_w", type=float, default=10.0,
                                help="weight of the style-augmented cycle losses (the authors' "
                                     "summer2winter_yosemite256 config; 0 in edges2shoes)")
            parser.add_argument("--vgg_w", type=float, default=0.0,
                                help="weight of the domain-invariant perceptual loss (needs "
                                     "--vgg_weights)")
            parser.add_argument("--vgg_weights", type=str, default=None,
                                help="the authors' Caffe VGG16 state dict (vgg16.weight) for --vgg_w")
            parser.add_argument("--weight_decay", type=float, default=1e-4,
                                help="Adam's L2 weight decay (coupled, not AdamW), both players")
        parser.set_defaults(**MUNIT_DEFAULTS)
        parser.set_defaults(**(MUNIT_TRAIN_DEFAULTS if is_train else MUNIT_TEST_DEFAULTS))
        return parser

    @classmethod
    def validate_options(cls, opt):
        check_single_folder(opt, "G_A")
        for name in ("munit_style_dim", "munit_mlp_dim", "munit_dis_layers", "munit_num_scales"):
            if getattr(opt, name) < 1:
                raise UserError(f"--{name} must be a positive integer (got {getattr(opt, name)})")
        for name in ("munit_n_downsample", "munit_n_res"):
            if getattr(opt, name) < 0:
                raise UserError(f"--{name} must be 0 or more (got {getattr(opt, name)})")
        if not opt.isTrain:
            return
        check_non_negative(opt, ("gan_w", "recon_x_w", "recon_s_w", "recon_c_w", "recon_x_cyc_w",
                                 "vgg_w", "weight_decay"))
        if opt.gan_mode not in MULTISCALE_GAN_MODES:
            raise UserError(f"--model munit supports --gan_mode lsgan (the authors' configs) or "
                            f"vanilla (their nsgan), not {opt.gan_mode}")
        if opt.vgg_w > 0 and not (opt.vgg_weights and os.path.isfile(opt.vgg_weights)):
            raise UserError(f"--vgg_weights {opt.vgg_weights}: file not found; --vgg_w > 0 needs "
                            "the authors' Caffe VGG16 state dict (vgg16.weight, written by MUNIT's "
                            "utils.load_vgg16), or pass --vgg_w 0")
        if getattr(opt, "eval_freq", 0) > 0:
            raise UserError("--eval_freq scores one generator network, but MUNIT translates with "
                            "two (G_A's content encoder, G_B's decoder); leave it at 0 and score "
                            "test.py's fake_B with evaluate.py")

    def __init__(self, opt):
        super().__init__(opt)
        self.style_dim = opt.munit_style_dim
        self.size_multiple = 2 ** opt.munit_n_downsample
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]
        self.real_A = self.real_B = None

        def generator(nc):
            return AdaINGen(nc, opt.ngf, opt.munit_style_dim, opt.munit_n_downsample,
                            opt.munit_n_res, opt.munit_mlp_dim)

        # The authors' order: build gen_a, gen_b, dis_a, dis_b; kaiming on all four (their
        # trainer.apply); then N(0, 0.02) on both discriminators.  Layer norms keep gamma U(0, 1).
        # A -> B needs the content of G_A (input_nc channels) and the decoder of G_B (output_nc).
        self.netG_A = networks.init_net(generator(opt.input_nc), opt.init_type, opt.init_gain,
                                        self.gpu_ids)
        self.netG_B = networks.init_net(generator(opt.output_nc), opt.init_type, opt.init_gain,
                                        self.gpu_ids)
        if not self.isTrain:
            self.loss_names = []
            self.visual_names = ["real_A", "fake_B"]
            return

        def discriminator(nc):
            net = networks.init_net(MsImageDis(nc, opt.ndf, opt.munit_dis_layers, opt.munit_num_scales),
                                    opt.init_type, opt.init_gain, self.gpu_ids)
            return networks.init_weights(net, "normal", DISCRIMINATOR_INIT_STD)

        self.netD_A = discriminator(opt.input_nc)
        self.netD_B = discriminator(opt.output_nc)
        self.use_cycle = opt.recon_x_cyc_w > 0
        self.vgg = load_caffe_vgg16(opt.vgg_weights, self.device) if opt.vgg_w > 0 else None
        per_domain = ["G_adv", "recon_x", "recon_s", "recon_c"] + (["cyc"] if self.use_cycle else []) \
            + (["vgg"] if self.vgg is not None else [])
        g_terms = [f"{term}_{side}" for term in per_domain for side in "AB"]
        self.G_STEP_LOSSES = tuple(g_terms) + ("G",)
        self.loss_names = list(self.D_STEP_LOSSES) + list(self.G_STEP_LOSSES)
        for name in self.loss_names:
            setattr(self, "loss_" + name, 0.0)
        self.visual_names = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
        # Two Adams, one per player, as the authors (dis_opt, gen_opt)
        betas = (opt.beta1, opt.beta2)
        self.optimizer_G = self.adam(itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()),
                                     betas=betas, weight_decay=opt.weight_decay)
        self.optimizer_D = self.adam(itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()),
                                     betas=betas, weight_decay=opt.weight_decay)
        self.optimizers = [self.optimizer_G, self.optimizer_D]

    def data_dependent_initialize(self, data):
        """Nothing to do: every network's shape is fixed by the options."""

    # ------------------------------------------------------------------ input
    def set_input(self, data):
        path_B = self.read_batch(data)
        self._check_multiple(self.real_A, self.image_paths[0])
        self.check_image_size(self.real_A, self.image_paths[0], ("G_A",))
        if self.isTrain:
            self._check_multiple(self.real_B, path_B)
            self.check_image_size(self.real_A, self.image_paths[0], ("D_A",))
            self.check_image_size(self.real_B, path_B, ("G_B",))
            self.check_image_size(self.real_B, path_B, ("D_B",))

    def _check_multiple(self, images, path):
        h, w = images.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise UserError(f"image {path} is {w}x{h} pixels after preprocessing; MUNIT needs sides "
                            f"that are multiples of {m} (the content encoder halves them "
                            f"{self.opt.munit_n_downsample} times, the decoder doubles them back); "
                            f"use a --crop_size that is a multiple of {m}")

    # ------------------------------------------------------------------ one iteration
    def forward(self):
        """Test time: fake_B = G_B.dec(G_A.content(real_A), s) with s ~ N(0, I) per image (the
        training steps run their own passes, each with fresh styles)."""
        self.fake_B = self.translate_with_styles(self.real_A, self.random_styles(self.real_A.size(0)))

    def optimize_parameters(self):
        """dis_update then gen_update on the same batch, as the authors' train.py; each draws its
        own random styles and runs its own forward pass.

        The authors leave D's requires_grad on during the G step (D collects gradients that its
        next zero_grad discards); freezing D here gives the same parameter updates without
        computing them.  The G pass of the D step runs without autograd: its outputs enter D
        detached in the authors' code too, so the values and updates are the same.
        """
        self.step([self.optimizer_D], self.compute_D_loss, guard=self.D_STEP_LOSSES)
        self.step([self.optimizer_G], self.compute_G_loss, guard=self.G_STEP_LOSSES,
                  frozen=[self.netD_A, self.netD_B])
        return self.end_iteration()

    def compute_D_loss(self):
        """gan_w * (L_D(D_A; x_ba, x_a) + L_D(D_B; x_ab, x_b)), fresh styles s_a, s_b (drawn in
        that order, as the authors)."""
        batch = self.real_A.size(0)
        s_a, s_b = self.random_styles(batch), self.random_styles(batch)
        with torch.no_grad():
            c_a = self.netG_A(self.real_A, mode="content")
            c_b = self.netG_B(self.real_B, mode="content")
            self.fake_A = self.netG_A(c_b, s_a, mode="decode")  # x_ba
            self.fake_B = self.netG_B(c_a, s_b, mode="decode")  # x_ab
        mode = self.opt.gan_mode
        self.loss_D_A = multiscale_discriminator_loss(self.netD_A(self.fake_A), self.netD_A(self.real_A), mode)
        self.loss_D_B = multiscale_discriminator_loss(self.netD_B(self.fake_B), self.netD_B(self.real_B), mode)
        self.loss_D = self.opt.gan_w * self.loss_D_A + self.opt.gan_w * self.loss_D_B
        return self.loss_D

    def compute_G_loss(self):
        """The authors' gen_update: encode both, reconstruct within each domain, translate with
        fresh random styles, encode the translations again, decode them back with the original
        styles (style-augmented cycle), and weigh every term."""
        opt = self.opt
        batch = self.real_A.size(0)
        s_a, s_b = self.random_styles(batch), self.random_styles(batch)
        c_a, s_a_prime = self.netG_A(self.real_A, mode="encode")
        c_b, s_b_prime = self.netG_B(self.real_B, mode="encode")
        rec_A = self.netG_A(c_a, s_a_prime, mode="decode")  # x_a_recon
        rec_B = self.netG_B(c_b, s_b_prime, mode="decode")
        fake_A = self.netG_A(c_b, s_a, mode="decode")  # x_ba
        fake_B = self.netG_B(c_a, s_b, mode="decode")  # x_ab
        c_b_recon, s_a_recon = self.netG_A(fake_A, mode="encode")
        c_a_recon, s_b_recon = self.netG_B(fake_B, mode="encode")

        self.loss_recon_x_A = recon_loss(rec_A, self.real_A)
        self.loss_recon_x_B = recon_loss(rec_B, self.real_B)
        self.loss_recon_s_A = recon_loss(s_a_recon, s_a)  # against the random code
        self.loss_recon_s_B = recon_loss(s_b_recon, s_b)
        self.loss_recon_c_A = recon_loss(c_a_recon, c_a)  # neither side detached
        self.loss_recon_c_B = recon_loss(c_b_recon, c_b)
        self.loss_G_adv_A = multiscale_generator_loss(self.netD_A(fake_A), opt.gan_mode)
        self.loss_G_adv_B = multiscale_generator_loss(self.netD_B(fake_B), opt.gan_mode)
        total = (opt.gan_w * (self.loss_G_adv_A + self.loss_G_adv_B)
                 + opt.recon_x_w * (self.loss_recon_x_A + self.loss_recon_x_B)
                 + opt.recon_s_w * (self.loss_recon_s_A + self.loss_recon_s_B)
                 + opt.recon_c_w * (self.loss_recon_c_A + self.loss_recon_c_B))
        if self.use_cycle:
            cyc_A = self.netG_A(c_a_recon, s_a_prime, mode="decode")  # x_aba
            cyc_B = self.netG_B(c_b_recon, s_b_prime, mode="decode")  # x_bab
            self.loss_cyc_A = recon_loss(cyc_A, self.real_A)
            self.loss_cyc_B = recon_loss(cyc_B, self.real_B)
            total = total + opt.recon_x_cyc_w * (self.loss_cyc_A + self.loss_cyc_B)
        if self.vgg is not None:
            # x_ba against x_b, x_ab against x_a: each translation against its content source
            self.loss_vgg_A = domain_invariant_perceptual_loss(self.vgg, fake_A, self.real_B)
            self.loss_vgg_B = domain_invariant_perceptual_loss(self.vgg, fake_B, self.real_A)
            total = total + opt.vgg_w * (self.loss_vgg_A + self.loss_vgg_B)
        self.loss_G = total
        self.fake_A, self.fake_B = fake_A.detach(), fake_B.detach()
        self.rec_A, self.rec_B = rec_A.detach(), rec_B.detach()
        return self.loss_G

    # ------------------------------------------------------------------ multimodal interface
    def random_styles(self, count, generator=None):
        """(count, style_dim) codes ~ N(0, I) on self.device.  With a torch.Generator they are
        drawn on the generator's device (a CPU generator gives the same codes on any device)."""
        device = self.device if generator is None else generator.device
        return torch.randn(count, self.style_dim, generator=generator, device=device).to(self.device)

    def style_of(self, images):
        """(B, style_dim): the style codes of target-domain (B) images, by G_B's style encoder."""
        return self.netG_B(images.to(self.device), mode="style")

    def translate_with_styles(self, images, styles):
        """A -> B with one style per image: G_B.dec(G_A.content(images), styles).

        images (B, input_nc, H, W) in [-1, 1] with H, W multiples of 2^munit_n_downsample;
        styles (B, style_dim).  Returns (B, output_nc, H, W) in [-1, 1].
        """
        h, w = images.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise UserError(f"MUNIT translates images whose sides are multiples of "
                            f"{self.size_multiple}; got {w}x{h} (pad them, as load_translator does)")
        if styles.shape != (images.size(0), self.style_dim):
            raise UserError(f"expected styles of shape ({images.size(0)}, {self.style_dim}), got "
                            f"{tuple(styles.shape)}")
        content = self.netG_A(images.to(self.device), mode="content")
        return self.netG_B(content, styles.to(self.device), mode="decode")
