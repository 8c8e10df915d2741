"""DRIT's networks (Lee et al., ECCV 2018), as the authors' code builds them.

Layer order, widths, activations (LeakyReLU slope 0.01, 0.2 in the attribute encoder of
concat=1), norms and init follow the authors' src/networks.py, and so do the module names: our
state dicts have the keys of theirs (enc_c, enc_a, gen, disA..., disContent), so weights move
between the two codes as they are (scripts/parity/drit_parity.py does so).  Every network of
both domains lives in one module and takes the domain ("a" or "b") as an argument, as the
authors' forward_a / forward_b.

Widths: `dim` (--ngf, 64) is the first encoder width; content codes have 4 * dim channels (256)
at 1/4 of the image size; the attribute code has NZ = 8 dimensions; `ch` (--ndf, 64) is the
image discriminators' first width.

Two places where the authors' code does not do what it says, kept as it runs:
* LeakyReLUConv2d never applies its InstanceNorm (it compares the string 'norm' with
  'Instance'), so the content discriminator has no normalisation.
* INSResBlock's InstanceNorm2d has no affine parameters (PyTorch's default).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

NZ = 8  # attribute code dimensions (the authors' self.nz)
CONTENT_SIZE = 54  # content map side at the authors' 216 px crops (216 / 4)
DOMAINS = ("a", "b")


def gaussian_weights_init(module):
    """The authors' init: N(0, 0.02) on the weight of every Conv*/ConvTranspose* module; biases,
    Linear layers and the LayerNorm affine keep PyTorch's defaults."""
    if type(module).__name__.startswith("Conv"):
        nn.init.normal_(module.weight, 0.0, 0.02)


def _check_domain(domain):
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
    return domain


def tile_code(z, like):
    """(B, nz) -> (B, nz, H, W) with the spatial size of `like`, to concatenate with features."""
    return z.view(z.size(0), z.size(1), 1, 1).expand(z.size(0), z.size(1), like.size(2), like.size(3))


# ---------------------------------------------------------------- blocks

class LeakyReLUConv2d(nn.Module):
    """ReflectionPad(padding) -> Conv (bias) -> LeakyReLU(slope).  The authors' optional
    InstanceNorm is never applied (see the module docstring)."""

    def __init__(self, n_in, n_out, kernel_size, stride, padding=0, slope=0.01):
        super().__init__()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(n_in, n_out, kernel_size=kernel_size, stride=stride, padding=0, bias=True),
            nn.LeakyReLU(slope))

    def forward(self, x):
        return self.model(x)


class ReLUINSConv2d(nn.Module):
    """ReflectionPad -> Conv (bias) -> InstanceNorm (no affine) -> ReLU."""

    def __init__(self, n_in, n_out, kernel_size, stride, padding=0):
        super().__init__()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(n_in, n_out, kernel_size=kernel_size, stride=stride, padding=0, bias=True),
            nn.InstanceNorm2d(n_out, affine=False),
            nn.ReLU())

    def forward(self, x):
        return self.model(x)


class INSResBlock(nn.Module):
    """x + [ReflPad1, Conv3x3, IN, ReLU, ReflPad1, Conv3x3, IN](x); no activation after the sum."""

    def __init__(self, channels):
        super().__init__()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, kernel_size=3, stride=1),
            nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, kernel_size=3, stride=1),
            nn.InstanceNorm2d(channels))

    def forward(self, x):
        return self.model(x) + x


class MisINSResBlock(nn.Module):
    """The concat=0 generator's residual block with the attribute features z (B, dim_extra):

        o1 = IN(Conv3x3(x)); o2 = blk1([o1, z]); o3 = IN(Conv3x3(o2)); out = blk2([o3, z]) + x
        blk = Conv1x1 (dim + extra -> dim + extra), ReLU, Conv1x1 (-> dim), ReLU
    """

    def __init__(self, dim, dim_extra):
        super().__init__()

        def conv3x3():
            return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, stride=1))

        def mlp():
            return nn.Sequential(
                nn.Conv2d(dim + dim_extra, dim + dim_extra, kernel_size=1), nn.ReLU(),
                nn.Conv2d(dim + dim_extra, dim, kernel_size=1), nn.ReLU())
        self.conv1 = nn.Sequential(conv3x3(), nn.InstanceNorm2d(dim))
        self.conv2 = nn.Sequential(conv3x3(), nn.InstanceNorm2d(dim))
        self.blk1 = mlp()
        self.blk2 = mlp()

    def forward(self, x, z):
        z_map = tile_code(z, x)
        o2 = self.blk1(torch.cat([self.conv1(x), z_map], dim=1))
        return self.blk2(torch.cat([self.conv2(o2), z_map], dim=1)) + x


class LayerNorm(nn.Module):
    """Layer norm over (C, H, W) with a per-channel affine (weight 1, bias 0 at init), stored as
    (C, 1, 1) tensors as in the authors' code."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x):
        shape = x.shape[1:]
        return F.layer_norm(x, shape, self.weight.expand(shape), self.bias.expand(shape), self.eps)


class ReLUINSConvTranspose2d(nn.Module):
    """ConvTranspose 3x3 stride 2 (doubles the size) -> LayerNorm over (C, H, W) -> ReLU."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(n_in, n_out, kernel_size=3, stride=2, padding=1, output_padding=1,
                               bias=True),
            LayerNorm(n_out),
            nn.ReLU())

    def forward(self, x):
        return self.model(x)


class GaussianNoiseLayer(nn.Module):
    """Adds N(0, 1) noise to the content code while training; the identity in eval mode."""

    def forward(self, x):
        if not self.training:
            return x
        return x + torch.randn_like(x)


class BasicBlock(nn.Module):
    """The concat=1 attribute encoder's residual block (no norm; LeakyReLU 0.2), halving the size:
    [LReLU, Conv3x3 in->in, LReLU, Conv3x3 in->out, AvgPool2] + [AvgPool2, Conv1x1 in->out]."""

    def __init__(self, n_in, n_out, slope=0.2):
        super().__init__()
        self.conv = nn.Sequential(
            nn.LeakyReLU(slope),
            nn.ReflectionPad2d(1), nn.Conv2d(n_in, n_in, kernel_size=3, stride=1, padding=0),
            nn.LeakyReLU(slope),
            nn.Sequential(nn.ReflectionPad2d(1),
                          nn.Conv2d(n_in, n_out, kernel_size=3, stride=1, padding=0),
                          nn.AvgPool2d(kernel_size=2, stride=2)))
        self.shortcut = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2),
                                      nn.Conv2d(n_in, n_out, kernel_size=1, stride=1, padding=0))

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


# ---------------------------------------------------------------- encoders

class ContentEncoder(nn.Module):
    """E_c: image (B, C, H, W) -> content code (B, 4 dim, H/4, W/4), noisy while training.

    Per domain: LeakyReLUConv2d 7x7 (C -> dim), two ReLUINSConv2d 3x3 stride 2 (-> 2 dim ->
    4 dim), three INSResBlocks; shared by both domains: one INSResBlock, then the noise layer.
    """

    def __init__(self, input_dim_a, input_dim_b, dim=64):
        super().__init__()

        def branch(input_dim):
            return nn.Sequential(
                LeakyReLUConv2d(input_dim, dim, kernel_size=7, stride=1, padding=3),
                ReLUINSConv2d(dim, dim * 2, kernel_size=3, stride=2, padding=1),
                ReLUINSConv2d(dim * 2, dim * 4, kernel_size=3, stride=2, padding=1),
                INSResBlock(dim * 4), INSResBlock(dim * 4), INSResBlock(dim * 4))
        # the authors' attribute order, so that parameters() lists tensors in their order
        self.conv_share = nn.Sequential(INSResBlock(dim * 4), GaussianNoiseLayer())
        self.convA = branch(input_dim_a)
        self.convB = branch(input_dim_b)
        self.apply(gaussian_weights_init)

    def forward(self, x, domain="a"):
        branch = self.convA if _check_domain(domain) == "a" else self.convB
        return self.conv_share(branch(x))


class AttributeEncoderConcat(nn.Module):
    """E_a for concat=1 (the default): image -> (mu, logvar), each (B, nz); the code is sampled
    as mu + exp(logvar / 2) * eps.

    ReflPad1 + Conv4x4 stride 2 (C -> dim), BasicBlocks dim -> 2 dim -> 3 dim -> 4 dim,
    LeakyReLU 0.2, global average pool, and two Linear heads 4 dim -> nz (mu and logvar).
    """

    def __init__(self, input_dim_a, input_dim_b, nz=NZ, dim=64):
        super().__init__()

        def trunk(input_dim):
            layers = [nn.ReflectionPad2d(1),
                      nn.Conv2d(input_dim, dim, kernel_size=4, stride=2, padding=0, bias=True)]
            layers += [BasicBlock(dim * n, dim * (n + 1)) for n in range(1, 4)]
            layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1)]
            return nn.Sequential(*layers)
        self.fc_A = nn.Sequential(nn.Linear(dim * 4, nz))
        self.fcVar_A = nn.Sequential(nn.Linear(dim * 4, nz))
        self.conv_A = trunk(input_dim_a)
        self.fc_B = nn.Sequential(nn.Linear(dim * 4, nz))
        self.fcVar_B = nn.Sequential(nn.Linear(dim * 4, nz))
        self.conv_B = trunk(input_dim_b)
        self.apply(gaussian_weights_init)

    def forward(self, x, domain="a"):
        if _check_domain(domain) == "a":
            conv, fc, fc_var = self.conv_A, self.fc_A, self.fcVar_A
        else:
            conv, fc, fc_var = self.conv_B, self.fc_B, self.fcVar_B
        h = conv(x).flatten(1)  # (B, 4 dim)
        return fc(h), fc_var(h)


class AttributeEncoder(nn.Module):
    """E_a for concat=0: image -> attribute code (B, nz), deterministic.

    ReflPad3 Conv7x7 (C -> dim), ReLU; four [ReflPad1, Conv4x4 stride 2, ReLU] (dim -> 2 dim ->
    4 dim -> 4 dim -> 4 dim); global average pool; Conv1x1 4 dim -> nz.
    """

    def __init__(self, input_dim_a, input_dim_b, nz=NZ, dim=64):
        super().__init__()

        def model(input_dim):
            widths = [dim, dim * 2, dim * 4, dim * 4, dim * 4]
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_dim, dim, 7, 1), nn.ReLU()]
            for n_in, n_out in zip(widths, widths[1:]):
                layers += [nn.ReflectionPad2d(1), nn.Conv2d(n_in, n_out, 4, 2), nn.ReLU()]
            layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim * 4, nz, 1, 1, 0)]
            return nn.Sequential(*layers)
        self.model_a = model(input_dim_a)
        self.model_b = model(input_dim_b)
        self.apply(gaussian_weights_init)

    def forward(self, x, domain="a"):
        model = self.model_a if _check_domain(domain) == "a" else self.model_b
        return model(x).flatten(1)


# ---------------------------------------------------------------- generators

class GeneratorConcat(nn.Module):
    """G for concat=1 (the default): (content (B, 4 dim, h, w), z (B, nz)) -> image (B, C, 4h, 4w).

    Shared INSResBlock; then per domain, with z tiled and concatenated before every stage:
    3 INSResBlocks (4 dim + nz), ReLUINSConvTranspose (4 dim + 2 nz -> half), ReLUINSConvTranspose
    (half + nz -> half of that), ConvTranspose 1x1 (+ nz -> C), tanh.  At dim 64:
    256 -> 264 -> 272 -> 136 -> 144 -> 72 -> 80 -> 3 channels.
    """

    def __init__(self, output_dim_a, output_dim_b, nz=NZ, dim=64):
        super().__init__()
        self.nz = nz
        self.dec_share = nn.Sequential(INSResBlock(dim * 4))

        def stages(output_dim):
            width = dim * 4 + nz
            dec1 = nn.Sequential(INSResBlock(width), INSResBlock(width), INSResBlock(width))
            width += nz
            dec2 = nn.Sequential(ReLUINSConvTranspose2d(width, width // 2))
            width = width // 2 + nz
            dec3 = nn.Sequential(ReLUINSConvTranspose2d(width, width // 2))
            width = width // 2 + nz
            dec4 = nn.Sequential(nn.ConvTranspose2d(width, output_dim, kernel_size=1, stride=1,
                                                    padding=0), nn.Tanh())
            return dec1, dec2, dec3, dec4
        self.decA1, self.decA2, self.decA3, self.decA4 = stages(output_dim_a)
        self.decB1, self.decB2, self.decB3, self.decB4 = stages(output_dim_b)
        self.apply(gaussian_weights_init)

    def forward(self, x, z, domain="a"):
        if _check_domain(domain) == "a":
            decoders = (self.decA1, self.decA2, self.decA3, self.decA4)
        else:
            decoders = (self.decB1, self.decB2, self.decB3, self.decB4)
        out = self.dec_share(x)
        for decoder in decoders:
            out = decoder(torch.cat([out, tile_code(z, out)], dim=1))
        return out


class Generator(nn.Module):
    """G for concat=0 (feature-wise transform): an MLP maps z to four (4 dim)-vectors, one per
    MisINSResBlock; then two ReLUINSConvTranspose (4 dim -> 2 dim -> dim), ConvTranspose 1x1
    (dim -> C), tanh.  The MLP is Linear nz -> 4 dim, ReLU, 4 dim -> 4 dim, ReLU, -> 16 dim
    (at dim 64: the authors' 8 -> 256 -> 256 -> 1024)."""

    def __init__(self, output_dim_a, output_dim_b, nz=NZ, dim=64):
        super().__init__()
        self.tch_add = width = dim * 4

        def decoder(output_dim):
            blocks = [MisINSResBlock(width, width) for _ in range(4)]
            tail = nn.Sequential(
                ReLUINSConvTranspose2d(width, width // 2),
                ReLUINSConvTranspose2d(width // 2, width // 4),
                nn.ConvTranspose2d(width // 4, output_dim, kernel_size=1, stride=1, padding=0),
                nn.Tanh())
            mlp = nn.Sequential(nn.Linear(nz, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                nn.Linear(width, width * 4))
            return blocks + [tail], mlp
        (self.decA1, self.decA2, self.decA3, self.decA4, self.decA5), mlp_a = decoder(output_dim_a)
        (self.decB1, self.decB2, self.decB3, self.decB4, self.decB5), mlp_b = decoder(output_dim_b)
        self.mlpA, self.mlpB = mlp_a, mlp_b
        self.apply(gaussian_weights_init)

    def forward(self, x, z, domain="a"):
        if _check_domain(domain) == "a":
            blocks, tail, mlp = (self.decA1, self.decA2, self.decA3, self.decA4), self.decA5, self.mlpA
        else:
            blocks, tail, mlp = (self.decB1, self.decB2, self.decB3, self.decB4), self.decB5, self.mlpB
        codes = torch.split(mlp(z), self.tch_add, dim=1)  # 4 x (B, 4 dim)
        out = x
        for block, code in zip(blocks, codes):
            out = block(out, code.contiguous())
        return tail(out)


# ---------------------------------------------------------------- discriminators

class MultiScaleDis(nn.Module):
    """Image discriminator at n_scale scales (AvgPool 3 stride 2 between them); per scale four
    LeakyReLUConv2d 4x4 stride 2 (C -> ch -> 2 ch -> 4 ch -> 8 ch) and a Conv1x1 -> 1 logit map.
    Returns the list of logit maps, finest first (13x13, 6x6, 3x3 at 216 px)."""

    def __init__(self, input_dim, n_scale=3, n_layer=4, ch=64):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

        def net():
            layers = [LeakyReLUConv2d(input_dim, ch, 4, 2, 1)]
            width = ch
            for _ in range(1, n_layer):
                layers.append(LeakyReLUConv2d(width, width * 2, 4, 2, 1))
                width *= 2
            layers.append(nn.Conv2d(width, 1, 1, 1, 0))
            return nn.Sequential(*layers)
        self.Diss = nn.ModuleList([net() for _ in range(n_scale)])
        self.apply(gaussian_weights_init)

    def forward(self, x):
        outs = []
        for index, dis in enumerate(self.Diss):
            if index:
                x = self.downsample(x)
            outs.append(dis(x))
        return outs


class Dis(nn.Module):
    """The single-scale image discriminator (--drit_dis_scale 1): six LeakyReLUConv2d 3x3
    stride 2 (C -> ch -> ... -> 32 ch) and a Conv1x1 -> 1.  Returns a one-element list."""

    def __init__(self, input_dim, ch=64, n_layer=6):
        super().__init__()
        layers = [LeakyReLUConv2d(input_dim, ch, kernel_size=3, stride=2, padding=1)]
        width = ch
        for _ in range(1, n_layer):
            layers.append(LeakyReLUConv2d(width, width * 2, kernel_size=3, stride=2, padding=1))
            width *= 2
        layers.append(nn.Conv2d(width, 1, kernel_size=1, stride=1, padding=0))
        self.model = nn.Sequential(*layers)
        self.apply(gaussian_weights_init)

    def forward(self, x):
        return [self.model(x)]


class ContentDiscriminator(nn.Module):
    """D_c: content code (B, 4 dim, h, w) -> one logit per image (B,).

    Three LeakyReLUConv2d 7x7 stride 2 padding 1 (54 -> 25 -> 11 -> 4), LeakyReLUConv2d 4x4
    (-> 1x1), Conv1x1 -> 1, all at the content width.  This stack only fits the 54x54 content
    maps of the authors' 216 px crops; other sizes are first average-pooled to 54x54
    (adaptive_avg_pool2d, which upsamples small maps by repetition).  At 54x54 nothing is
    changed: the authors' computation exactly.
    """

    def __init__(self, channels=256):
        super().__init__()
        self.model = nn.Sequential(
            LeakyReLUConv2d(channels, channels, kernel_size=7, stride=2, padding=1),
            LeakyReLUConv2d(channels, channels, kernel_size=7, stride=2, padding=1),
            LeakyReLUConv2d(channels, channels, kernel_size=7, stride=2, padding=1),
            LeakyReLUConv2d(channels, channels, kernel_size=4, stride=1, padding=0),
            nn.Conv2d(channels, 1, kernel_size=1, stride=1, padding=0))
        self.apply(gaussian_weights_init)

    def forward(self, x):
        if tuple(x.shape[-2:]) != (CONTENT_SIZE, CONTENT_SIZE):
            x = F.adaptive_avg_pool2d(x, CONTENT_SIZE)
        return self.model(x).flatten()


def define_image_discriminator(input_dim, n_scale=3, ch=64):
    """The authors' choice: MultiScaleDis for dis_scale > 1, else the single-scale Dis."""
    return MultiScaleDis(input_dim, n_scale, ch=ch) if n_scale > 1 else Dis(input_dim, ch=ch)


def min_image_side(n_scale):
    """The smallest square image side every scale of define_image_discriminator accepts (each
    reflection pad needs an input of at least 2 pixels); 61 for the default 3 scales."""
    side = 1
    while True:
        s, ok = side, True
        for scale in range(max(n_scale, 1)):
            if scale:
                s = (s + 1) // 2  # AvgPool 3, stride 2, padding 1: ceil(s / 2)
            n_layer = 4 if n_scale > 1 else 6
            t = s
            for _ in range(n_layer):
                if t < 2:
                    ok = False
                    break
                t = t // 2 if n_scale > 1 else (t + 1) // 2  # 4x4 s2 p1 / 3x3 s2 p1
            if not ok:
                break
        if ok:
            return side
        side += 1
