"""DRIT (Lee, Tseng, Huang, Singh, Yang, ECCV 2018): diverse image-to-image translation via
disentangled representations; the objective of the ECCV paper by default, DRIT++'s mode-seeking
term (IJCV 2020) with --drit_ms.

Paper name -> code name (A = the source side of --direction, B = the target side):
    E^c_X, E^c_Y (shared last block)    netE_content(x, "a" | "b")
    E^a_X, E^a_Y                        netE_attr(x, "a" | "b") -> (mu, logvar) (concat=1) or z
    G_X, G_Y                            netG(content, z, "a" | "b")
    D_X, D_Y (encoded attributes)       netD_A, netD_B
    second pair (random attributes)     netD_A2, netD_B2 (the authors' disA2, disB2)
    D^c (content)                       netD_content
Losses (Eq. numbers of the ECCV paper) -> loss_<name>:
    L^content_adv (2)   D_content; G_GAN_Acontent, G_GAN_Bcontent (encoder side, BCE to 0.5)
    L^domain_adv (3)    D_A, D_B; G_GAN_A, G_GAN_B (translations with the other image's content)
                        D_A2, D_B2; G_GAN2_A, G_GAN2_B (translations with random attributes)
    L^cc_1 (4)          cross_A, cross_B (x2 weights 10)
    L^recon_1           self_A, self_B (weights 10)
    L_KL (5)            kl_za_a, kl_za_b (0.01, a sum), kl_zc_a, kl_zc_b (0.01, a mean)
    L^latent_1 (6)      latent_A, latent_B (10)
    mode seeking (DRIT++, --drit_ms)    ms_AB, ms_BA (1)
    G = the encoder/generator update's total, G_alone = the generator-alone update's total.

One iteration, as the authors' train.py / model.py (batch of 2 per domain: image 0 is
"encoded", image 1 the real image of the random-attribute discriminators):
  * on 2 of every 3 batches (--drit_d_iter 3), except the last two of an epoch, only D_c
    trains: encode image 0 of each domain, one step of D_c (gradient norm clipped to 5);
  * otherwise: forward (every translation, one graph), then one step each of D_A, D_A2, D_B,
    D_B2 on detached fakes and of D_c (clipped), then the encoder/generator update (E_c, E_a
    and G on the first group of losses) and the generator-alone update (E_c and G on the
    random-attribute adversarial, latent regression [and mode-seeking] losses).

The generator-alone update (the authors' HsinYingLee/DRIT#62).  The authors step E_c, E_a and G
on the first loss and then back-propagate the second loss through the same graph.  PyTorch 0.4,
which they used, did not notice that the first step had changed the weights under the graph;
PyTorch >= 1.5 raises "modified by an inplace operation".  What 0.4 computed was the gradient of
the second loss at the pre-update activations, with the post-update weights wherever the graph
held a weight itself (a mixture of two points).  We take both gradients first, at the weights of
the forward pass, then step (BaseModel.simultaneous_steps): the loss values and activations are
exactly those 0.4 used, only the weights inside the backward of the second loss differ from
0.4's by one Adam step.  Re-running the forward after the first step instead would change the
activations, the loss values and the random draws as well.  scripts/parity/drit_parity.py
measures both against the authors' code (docs/models.md).
"""
import copy
import functools
import math
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.nn.functional as F

from util.errors import UserError, first_line

from .base_model import BaseModel
from .input_checks import check_non_negative, check_single_folder
from .losses import drit as L
from .networks import drit as nets
from .speed import unwrap

# The authors' hyper-parameters (src/model.py, src/options.py), as option defaults.
WEIGHT_DECAY = 1e-4  # every Adam
CONTENT_D_LR_RATIO = 1 / 2.5  # D_c learns at lr / 2.5
CONTENT_D_CLIP = 5.0  # gradient-norm clip of D_c's updates
BATCH = 2  # per domain and step: one "encoded" image, one real image for the random-attribute Ds
MULTIPLE = 4  # E_c halves the size twice, G doubles it twice
MIN_SIDE = 16  # the attribute encoders' four halvings

# src/options.py: n_ep 1200, n_ep_decay 600, lr 1e-4 (hard-coded in model.py), Adam (0.5, 0.999),
# batch 2, resize 256x256 bicubic, random 216 crop, flip.  The authors' epoch-0-based LambdaLR
# factor is 1 - max(0, e - 600) / 601; ours (models/schedulers.py, epochs from 1) with 600 + 600
# epochs is 1 - max(0, k - 600) / 601 for epoch k = e + 1: the decay starts one epoch earlier.
DRIT_TRAIN_DEFAULTS = dict(
    batch_size=BATCH, load_size=256, crop_size=216, preprocess="resize_and_crop", lr=1e-4,
    beta1=0.5, beta2=0.999, n_epochs=600, n_epochs_decay=600, lr_policy="linear",
    crop_in_decay_epochs=True)


@contextmanager
def eval_mode(*modules):
    """Modules in eval mode inside the block (the content noise off), their own mode after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def pad_to_multiple(images, multiple=MULTIPLE, min_side=MIN_SIDE):
    """Reflection-pad right and bottom to a multiple of `multiple` (and at least `min_side`);
    returns the padded images and the original (H, W) to crop back to."""
    height, width = images.shape[-2:]
    ph = max(min_side, -(-height // multiple) * multiple) - height
    pw = max(min_side, -(-width // multiple) * multiple) - width
    if ph or pw:
        mode = "reflect" if ph < height and pw < width else "replicate"
        images = F.pad(images, (0, pw, 0, ph), mode=mode)
    return images, (height, width)


class DRITModel(BaseModel):
    """Content and attribute encoders, two generators, four image and one content discriminator."""

    style_dim = nets.NZ  # the attribute code: the multimodal interface (random_styles, style_of)
    # Under torchrun each update averages its gradients over the ranks itself (BaseModel): the
    # two encoder/generator updates differentiate one forward graph, and DDP would all-reduce
    # only the first (util/distributed.py).
    gradient_sync = "by_hand"

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.add_argument("--drit_concat", type=int, default=1, choices=(0, 1),
                            help="1: the attribute code is concatenated to the generator's features "
                                 "and the attribute encoder is a VAE (the authors' default); 0: "
                                 "feature-wise transform and a deterministic attribute code (the "
                                 "authors' advice for shape-changing tasks such as cat <-> dog)")
        if is_train:
            parser.add_argument("--drit_ms", action="store_true",
                                help="add DRIT++'s mode-seeking term (the authors' current code has "
                                     "it on by default; --no_ms there is this default)")
            parser.add_argument("--drit_d_iter", type=int, default=3,
                                help="the content discriminator alone trains on d_iter - 1 of every "
                                     "d_iter batches (and never on an epoch's last two); 1: every "
                                     "batch is a full iteration")
            parser.add_argument("--drit_dis_scale", type=int, default=3,
                                help="scales of the image discriminators (1: the single-scale one)")
            parser.add_argument("--drit_lambda_rec", type=float, default=10.0,
                                help="weight of the self and cross-cycle reconstruction losses")
            parser.add_argument("--drit_lambda_latent", type=float, default=10.0,
                                help="weight of the latent regression loss")
            parser.add_argument("--drit_lambda_kl", type=float, default=0.01,
                                help="weight of the KL terms on the attribute and content codes")
            parser.set_defaults(**DRIT_TRAIN_DEFAULTS)
        return parser

    @classmethod
    def validate_options(cls, opt):
        check_single_folder(opt, "E_content")
        if not opt.isTrain:
            return
        if opt.batch_size != BATCH:
            raise UserError(f"--model drit trains on exactly {BATCH} images per domain and step (one "
                            f"encoded, one for the random-attribute discriminators), as the "
                            f"authors' code; use --batch_size {BATCH} (got {opt.batch_size})")
        if "crop" in opt.preprocess:
            need = max(MIN_SIDE, nets.min_image_side(opt.drit_dis_scale))
            if opt.crop_size % MULTIPLE or opt.crop_size < need:
                raise UserError(f"--crop_size {opt.crop_size} does not fit --model drit: it must be a "
                                f"multiple of {MULTIPLE} and at least {need} (--drit_dis_scale "
                                f"{opt.drit_dis_scale}); the authors train on 216 px crops")
        if opt.drit_d_iter < 1 or opt.drit_dis_scale < 1:
            raise UserError(f"--drit_d_iter and --drit_dis_scale must be at least 1 (got "
                            f"{opt.drit_d_iter} and {opt.drit_dis_scale})")
        check_non_negative(opt, ("drit_lambda_rec", "drit_lambda_latent", "drit_lambda_kl"))
        if getattr(opt, "amp", "off") == "fp16":
            raise UserError("--amp fp16 is not supported with --model drit (its encoders and "
                            "generator step twice per iteration, which the fp16 gradient scaler "
                            "does not allow); use --amp bf16")
        if len([i for i in str(opt.gpu_ids).split(",") if i.strip() and int(i) >= 0]) > 1:
            raise UserError("--model drit cannot split its batch among GPUs with DataParallel (its "
                            "batch of 2 is split by role, one image each); pass a single --gpu_ids, "
                            "or use several GPUs with torchrun --nproc_per_node N train.py ... "
                            "--gpu_ids 0")
        if getattr(opt, "eval_freq", 0) > 0:
            raise UserError("--eval_freq scores a single-network generator; DRIT translates with "
                            "three networks and a random attribute: leave --eval_freq at 0 and "
                            "score test.py's output with evaluate.py")

    def __init__(self, opt):
        super().__init__(opt)
        self.concat = bool(opt.drit_concat)
        self.ms = self.isTrain and opt.drit_ms
        nc_a, nc_b, dim = opt.input_nc, opt.output_nc, opt.ngf
        attr_encoder = nets.AttributeEncoderConcat if self.concat else nets.AttributeEncoder
        generator = nets.GeneratorConcat if self.concat else nets.Generator
        self.netE_content = nets.ContentEncoder(nc_a, nc_b, dim).to(self.device)
        self.netE_attr = attr_encoder(nc_a, nc_b, self.style_dim, dim).to(self.device)
        self.netG = generator(nc_a, nc_b, self.style_dim, dim).to(self.device)
        self.model_names = ["E_content", "E_attr", "G"]
        self.real_A = self.real_B = None
        if not self.isTrain:
            # test.py writes the style-code visuals (its StyleVisuals); model.test() gives fake_B
            self.visual_names = ["real_A", "fake_B"]
            return

        self.loss_names = (["D_A", "D_A2", "D_B", "D_B2", "D_content",
                            "G_GAN_A", "G_GAN_B", "G_GAN_Acontent", "G_GAN_Bcontent",
                            "self_A", "self_B", "cross_A", "cross_B",
                            "kl_za_a", "kl_za_b", "kl_zc_a", "kl_zc_b", "G",
                            "G_GAN2_A", "G_GAN2_B", "latent_A", "latent_B"]
                           + (["ms_AB", "ms_BA"] if self.ms else []) + ["G_alone"])
        for name in self.loss_names:  # content-only iterations leave the others as they were
            setattr(self, "loss_" + name, 0.0)
        # the authors' display grid: row A, then row B
        self.visual_names = ["real_A", "fake_B", "fake_B_random", "fake_AA", "fake_A_recon",
                             "real_B", "fake_A", "fake_A_random", "fake_BB", "fake_B_recon"]

        def image_discriminator(nc):
            return nets.define_image_discriminator(nc, opt.drit_dis_scale, opt.ndf).to(self.device)
        self.netD_A, self.netD_B = image_discriminator(nc_a), image_discriminator(nc_b)
        self.netD_A2, self.netD_B2 = image_discriminator(nc_a), image_discriminator(nc_b)
        self.netD_content = nets.ContentDiscriminator(dim * 4).to(self.device)
        self.model_names += ["D_A", "D_A2", "D_B", "D_B2", "D_content"]

        def adam(net, lr):
            return self.adam(net.parameters(), betas=(opt.beta1, opt.beta2), lr=lr,
                             weight_decay=WEIGHT_DECAY)
        # eight Adams, in the authors' order
        self.optimizer_D_A, self.optimizer_D_B = adam(self.netD_A, opt.lr), adam(self.netD_B, opt.lr)
        self.optimizer_D_A2 = adam(self.netD_A2, opt.lr)
        self.optimizer_D_B2 = adam(self.netD_B2, opt.lr)
        self.optimizer_D_content = adam(self.netD_content, opt.lr * CONTENT_D_LR_RATIO)
        self.optimizer_E_content = adam(self.netE_content, opt.lr)
        self.optimizer_E_attr = adam(self.netE_attr, opt.lr)
        self.optimizer_G = adam(self.netG, opt.lr)
        self.optimizers = [self.optimizer_D_A, self.optimizer_D_B, self.optimizer_D_A2,
                           self.optimizer_D_B2, self.optimizer_D_content, self.optimizer_E_content,
                           self.optimizer_E_attr, self.optimizer_G]
        self.batch_in_epoch = 0  # the authors' `it`: it decides the content-only iterations
        if "crop" in opt.preprocess and opt.crop_size != 216:
            print(f"notice: --crop_size {opt.crop_size}: DRIT's content discriminator was built for "
                  f"the authors' 216 px crops; content maps of {opt.crop_size // 4} px are "
                  f"average-pooled to {nets.CONTENT_SIZE} px first")
        self._epoch_size = None  # images per epoch, read from the data folders when first needed

    # ------------------------------------------------------------------ the multimodal interface
    def random_styles(self, count, generator=None):
        """`count` attribute codes drawn from the prior N(0, I), (count, style_dim) on our device."""
        device = generator.device if generator is not None else self.device
        return torch.randn(count, self.style_dim, generator=generator, device=device).to(self.device)

    @torch.no_grad()
    def style_of(self, images):
        """The attribute codes (B, style_dim) of target-domain (B) images.  With concat=1 the
        encoder gives a Gaussian and we return its mean (deterministic; the authors'
        test_transfer.py draws mu + sigma * eps instead); with concat=0 the code itself."""
        E_attr = unwrap(self.netE_attr)
        with eval_mode(E_attr):
            images, _ = pad_to_multiple(images.to(self.device), 1)
            out = E_attr(images, "b")
        return out[0] if self.concat else out

    @torch.no_grad()
    def translate_with_styles(self, images, styles):
        """A -> B with one attribute code per image: G_B(E_c_A(x), z), the content noise off.
        Any image size: reflection-padded to a multiple of 4 (at least 16), translated, cropped
        back.  Returns (B, output_nc, H, W) in [-1, 1]."""
        if styles.shape != (images.shape[0], self.style_dim):
            raise ValueError(f"expected styles of shape ({images.shape[0]}, {self.style_dim}), got "
                             f"{tuple(styles.shape)}")
        E_content, G = unwrap(self.netE_content), unwrap(self.netG)
        with eval_mode(E_content, G):
            padded, (height, width) = pad_to_multiple(images.to(self.device))
            out = G(E_content(padded, "a"), styles.to(self.device, padded.dtype), "b")
        return out[:, :, :height, :width]

    # ------------------------------------------------------------------ input
    def set_input(self, data):
        path_B = self.read_batch(data)
        if self.isTrain:
            if self.real_A.shape[0] != BATCH or self.real_B.shape[0] != BATCH:
                raise ValueError(f"DRIT trains on batches of exactly {BATCH} images per domain, got "
                                 f"{self.real_A.shape[0]} and {self.real_B.shape[0]}")
            self._check_size(self.real_A, self.image_paths[0], "a", ("E_content", "E_attr", "D_A"))
            self._check_size(self.real_B, path_B, "b", ("E_content", "E_attr", "D_B"))

    def _check_size(self, images, path, domain, names):
        """One line naming the file when `images` are too small for a network, as
        BaseModel.check_image_size (which cannot pass DRIT's domain argument): each new size is
        tried once on weightless `meta` copies of the networks."""
        key = (tuple(images.shape[1:]), domain, names)
        if key in self._sizes_ok:
            return
        built = dict(self.networks())
        x = torch.empty((1,) + key[0], device="meta")
        for name in names:
            if name not in self._meta_nets:
                self._meta_nets[name] = copy.deepcopy(built[name]).to("meta")
            net = self._meta_nets[name]
            try:
                with torch.no_grad():
                    net(x) if name.startswith("D") else net(x, domain)
            except (RuntimeError, ValueError) as err:
                h, w = images.shape[-2:]
                raise UserError(f"image {path} becomes {w}x{h} pixels after preprocessing, a size "
                                f"net{name} cannot take ({first_line(err)}); use larger images or "
                                "raise --load_size/--crop_size (the authors' crop is 216)") from None
        self._sizes_ok.add(key)

    # ------------------------------------------------------------------ forward passes
    def draw_codes(self, count):
        """Prior samples for the random-attribute translations (the authors' get_z_random)."""
        return torch.randn(count, self.style_dim, device=self.device)

    def encode_attributes(self, images, domain):
        """(z, mu, logvar): concat=1 samples z = mu + exp(logvar / 2) * eps; concat=0 has z only."""
        if not self.concat:
            return self.netE_attr(images, domain), None, None
        mu, logvar = self.netE_attr(images, domain)
        eps = torch.randn(logvar.shape, device=logvar.device, dtype=logvar.dtype)
        return L.reparameterize(mu, logvar, eps), mu, logvar

    def forward(self):
        """Every translation of a full iteration, in one graph (the authors' forward()); the
        random draws (content noise A, B; eps A, B; z_random [, z_random2]; content noise of the
        re-encoding A, B; its eps A, B) come in the authors' order.  At test time: fake_B, A's
        content with an attribute drawn from the prior (the authors' test.py)."""
        if not self.isTrain:
            self.fake_B = self.translate_with_styles(self.real_A, self.random_styles(self.real_A.shape[0]))
            return
        self.real_A_encoded, self.real_A_random = self.real_A[:1], self.real_A[1:]
        self.real_B_encoded, self.real_B_random = self.real_B[:1], self.real_B[1:]
        E_c, G = self.netE_content, self.netG
        self.z_content_a = E_c(self.real_A_encoded, "a")  # (1, 4 dim, H/4, W/4)
        self.z_content_b = E_c(self.real_B_encoded, "b")
        self.z_attr_a, self.mu_a, self.logvar_a = self.encode_attributes(self.real_A_encoded, "a")
        self.z_attr_b, self.mu_b, self.logvar_b = self.encode_attributes(self.real_B_encoded, "b")
        self.z_random = self.draw_codes(1)
        self.z_random2 = self.draw_codes(1) if self.ms else None

        # first cross translation: [other's content + own attribute, own content + own attribute,
        # other's content + random attribute (, + a second random attribute)] in one batch
        contents_A = [self.z_content_b, self.z_content_a, self.z_content_b]
        contents_B = [self.z_content_a, self.z_content_b, self.z_content_a]
        attrs_A = [self.z_attr_a, self.z_attr_a, self.z_random]
        attrs_B = [self.z_attr_b, self.z_attr_b, self.z_random]
        if self.ms:
            contents_A.append(self.z_content_b)
            contents_B.append(self.z_content_a)
            attrs_A.append(self.z_random2)
            attrs_B.append(self.z_random2)
        fakes_A = G(torch.cat(contents_A), torch.cat(attrs_A), "a").split(1)
        fakes_B = G(torch.cat(contents_B), torch.cat(attrs_B), "b").split(1)
        self.fake_A, self.fake_AA, self.fake_A_random = fakes_A[:3]
        self.fake_B, self.fake_BB, self.fake_B_random = fakes_B[:3]
        self.fake_A_random2 = fakes_A[3] if self.ms else None
        self.fake_B_random2 = fakes_B[3] if self.ms else None

        # second cross translation: re-encode the translations, swap back
        self.z_content_recon_b = E_c(self.fake_A, "a")
        self.z_content_recon_a = E_c(self.fake_B, "b")
        self.z_attr_recon_a, _, _ = self.encode_attributes(self.fake_A, "a")
        self.z_attr_recon_b, _, _ = self.encode_attributes(self.fake_B, "b")
        self.fake_A_recon = G(self.z_content_recon_a, self.z_attr_recon_a, "a")
        self.fake_B_recon = G(self.z_content_recon_b, self.z_attr_recon_b, "b")

    # ------------------------------------------------------------------ losses
    def compute_D_loss(self, name, real, fakes):
        """One image discriminator: BCE(D(real), 1) + BCE(D(fake), 0) summed over scales, once
        per fake (the random-attribute Ds see two fakes under --drit_ms, and the real twice)."""
        net = getattr(self, "netD_" + name)
        out_real = net(real)
        loss = sum(L.discriminator_loss(out_real, net(fake.detach())) for fake in fakes)
        setattr(self, "loss_D_" + name, loss)
        return loss

    def compute_D_content_loss(self):
        """D_c on detached content codes: A's labelled 0, B's 1."""
        self.loss_D_content = L.content_discriminator_loss(
            self.netD_content(self.z_content_a.detach()), self.netD_content(self.z_content_b.detach()))
        return self.loss_D_content

    def compute_EG_loss(self):
        """The authors' backward_EG: content and domain adversarial, self and cross-cycle
        reconstruction, KL on attribute and content codes.  D_A, D_B, D_c are frozen."""
        opt = self.opt
        self.loss_G_GAN_Acontent = L.content_adversarial_loss(self.netD_content(self.z_content_a))
        self.loss_G_GAN_Bcontent = L.content_adversarial_loss(self.netD_content(self.z_content_b))
        self.loss_G_GAN_A = L.adversarial_loss(self.netD_A(self.fake_A), 1.0)
        self.loss_G_GAN_B = L.adversarial_loss(self.netD_B(self.fake_B), 1.0)
        if self.concat:
            self.loss_kl_za_a = opt.drit_lambda_kl * L.kl_divergence(self.mu_a, self.logvar_a)
            self.loss_kl_za_b = opt.drit_lambda_kl * L.kl_divergence(self.mu_b, self.logvar_b)
        else:
            self.loss_kl_za_a = opt.drit_lambda_kl * L.l2_regularization(self.z_attr_a)
            self.loss_kl_za_b = opt.drit_lambda_kl * L.l2_regularization(self.z_attr_b)
        self.loss_kl_zc_a = opt.drit_lambda_kl * L.l2_regularization(self.z_content_a)
        self.loss_kl_zc_b = opt.drit_lambda_kl * L.l2_regularization(self.z_content_b)
        self.loss_cross_A = opt.drit_lambda_rec * L.l1(self.fake_A_recon, self.real_A_encoded)
        self.loss_cross_B = opt.drit_lambda_rec * L.l1(self.fake_B_recon, self.real_B_encoded)
        self.loss_self_A = opt.drit_lambda_rec * L.l1(self.fake_AA, self.real_A_encoded)
        self.loss_self_B = opt.drit_lambda_rec * L.l1(self.fake_BB, self.real_B_encoded)
        self.loss_G = (self.loss_G_GAN_A + self.loss_G_GAN_B
                       + self.loss_G_GAN_Acontent + self.loss_G_GAN_Bcontent
                       + self.loss_self_A + self.loss_self_B + self.loss_cross_A + self.loss_cross_B
                       + self.loss_kl_zc_a + self.loss_kl_zc_b + self.loss_kl_za_a + self.loss_kl_za_b)
        return self.loss_G

    def compute_G_alone_loss(self):
        """The authors' backward_G_alone: adversarial loss of the random-attribute translations,
        latent regression (concat=1 regresses the mean) [and mode seeking].  D_A2, D_B2 and E_a
        are frozen: E_a's gradient here is never used (the authors do not step it)."""
        opt = self.opt
        self.loss_G_GAN2_A = L.adversarial_loss(self.netD_A2(self.fake_A_random), 1.0)
        self.loss_G_GAN2_B = L.adversarial_loss(self.netD_B2(self.fake_B_random), 1.0)
        if self.ms:
            self.loss_G_GAN2_A = self.loss_G_GAN2_A + L.adversarial_loss(self.netD_A2(self.fake_A_random2), 1.0)
            self.loss_G_GAN2_B = self.loss_G_GAN2_B + L.adversarial_loss(self.netD_B2(self.fake_B_random2), 1.0)
        z_a = self.netE_attr(self.fake_A_random, "a")
        z_b = self.netE_attr(self.fake_B_random, "b")
        if self.concat:
            z_a, z_b = z_a[0], z_b[0]  # the means
        self.loss_latent_A = opt.drit_lambda_latent * L.latent_regression(z_a, self.z_random)
        self.loss_latent_B = opt.drit_lambda_latent * L.latent_regression(z_b, self.z_random)
        self.loss_G_alone = (self.loss_latent_A + self.loss_latent_B
                             + self.loss_G_GAN2_A + self.loss_G_GAN2_B)
        if self.ms:
            self.loss_ms_AB = L.mode_seeking_loss(self.fake_B_random, self.fake_B_random2,
                                                  self.z_random, self.z_random2)
            self.loss_ms_BA = L.mode_seeking_loss(self.fake_A_random, self.fake_A_random2,
                                                  self.z_random, self.z_random2)
            self.loss_G_alone = self.loss_G_alone + self.loss_ms_AB + self.loss_ms_BA
        return self.loss_G_alone

    # ------------------------------------------------------------------ one iteration
    @property
    def epoch_size(self):
        """Images this process reads per epoch (the larger domain, capped by --max_dataset_size),
        as train.py's loader counts them; read once from the data folders.  Under torchrun each
        rank reads its own share (size // ranks, the cap shared alike), and the authors' rule
        applies to that share: every rank makes the same content-only decisions."""
        if self._epoch_size is None:
            from data import find_dataset_class
            size = len(find_dataset_class(self.opt.dataset_mode)(self.opt))
            cap = self.opt.max_dataset_size
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            if world > 1:
                size //= world
                cap = cap if math.isinf(cap) else math.ceil(cap / world)
            self._epoch_size = int(min(size, cap))
        return self._epoch_size

    @epoch_size.setter
    def epoch_size(self, value):
        self._epoch_size = value

    def content_only(self, it):
        """The authors' rule for loader step `it` of an epoch: D_c alone unless (it + 1) is a
        multiple of d_iter or `it` is among the last two steps of their loader, which keeps the
        incomplete last batch (len = ceil(images / 2)) that their loop then skips."""
        if (it + 1) % self.opt.drit_d_iter == 0:
            return False
        return it < math.ceil(self.epoch_size / BATCH) - 2

    def optimize_parameters(self):
        it = self.batch_in_epoch
        self.batch_in_epoch += 1
        if self.content_only(it):
            # the authors' update_D_content: encode image 0 of each domain (the graph is not
            # needed: D_c's loss detaches the codes)
            with torch.no_grad(), self.autocast():
                self.z_content_a = self.netE_content(self.real_A[:1], "a")
                self.z_content_b = self.netE_content(self.real_B[:1], "b")
            self.step([self.optimizer_D_content], self.compute_D_content_loss, guard=("D_content",),
                      clip_grad_norm=CONTENT_D_CLIP)
            return self.end_iteration()

        with self.autocast():
            self.forward()
        # the authors' update_D: each discriminator its own step, on detached fakes
        fakes_A2 = [self.fake_A_random] + ([self.fake_A_random2] if self.ms else [])
        fakes_B2 = [self.fake_B_random] + ([self.fake_B_random2] if self.ms else [])
        for name, real, fakes in (("A", self.real_A_encoded, [self.fake_A]),
                                  ("A2", self.real_A_random, fakes_A2),
                                  ("B", self.real_B_encoded, [self.fake_B]),
                                  ("B2", self.real_B_random, fakes_B2)):
            self.step([getattr(self, "optimizer_D_" + name)],
                      functools.partial(self.compute_D_loss, name, real, fakes), guard=("D_" + name,))
        self.step([self.optimizer_D_content], self.compute_D_content_loss, guard=("D_content",),
                  clip_grad_norm=CONTENT_D_CLIP)
        # the authors' update_EG: both gradients at the forward pass's weights, then the steps
        # (see the module docstring)
        eg_losses = ("G_GAN_A", "G_GAN_B", "G_GAN_Acontent", "G_GAN_Bcontent", "self_A", "self_B",
                     "cross_A", "cross_B", "kl_za_a", "kl_za_b", "kl_zc_a", "kl_zc_b", "G")
        alone_losses = (("G_GAN2_A", "G_GAN2_B", "latent_A", "latent_B")
                        + (("ms_AB", "ms_BA") if self.ms else ()) + ("G_alone",))
        self.simultaneous_steps([
            dict(optimizers=[self.optimizer_E_content, self.optimizer_E_attr, self.optimizer_G],
                 loss_fn=self.compute_EG_loss, guard=eg_losses,
                 frozen=[self.netD_A, self.netD_B, self.netD_content]),
            dict(optimizers=[self.optimizer_E_content, self.optimizer_G],
                 loss_fn=self.compute_G_alone_loss, guard=alone_losses,
                 frozen=[self.netD_A2, self.netD_B2, self.netE_attr]),
        ])
        return self.end_iteration()

    def update_learning_rate(self):
        """End of an epoch: the schedulers step, and the next batch is the epoch's first."""
        self.batch_in_epoch = 0
        super().update_learning_rate()

    # ------------------------------------------------------------------ resumable state
    def training_state(self):
        state = super().training_state()
        state["drit"] = {"batch_in_epoch": self.batch_in_epoch}
        return state

    def load_training_state(self, state):
        super().load_training_state(state)
        self.batch_in_epoch = int(state.get("drit", {}).get("batch_in_epoch", 0))
