"""MUNIT's networks (Huang, Liu, Belongie, Kautz, "Multimodal Unsupervised Image-to-Image
Translation", ECCV 2018): the AdaIN auto-encoder of one domain and the multi-scale discriminator.

Written from the paper and the facts of the authors' code (NVlabs/MUNIT, networks.py).  Module
names and their order follow the authors' layout, so their state dicts load here unchanged
(their `gen_*.pt` holds {'a': gen_a, 'b': gen_b}; each is a `*_net_G_A.pth` / `*_net_G_B.pth`
here), and the parameter counts are theirs (tests/test_munit.py):

    AdaINGen (dim 64, style 8, mlp 256, 2 downsamplings, 4 res-blocks)   15,026,187
        enc_style    2,764,936    (B, 3, H, W) -> (B, 8)        4 downsamplings whatever the config
        enc_content  5,385,856    (B, 3, H, W) -> (B, 256, H/4, W/4)
        dec          5,754,627    content, AdaIN parameters -> (B, 3, H, W) in [-1, 1]
        mlp          1,120,768    style (B, 8) -> AdaIN parameters (B, 4096)
    MsImageDis (dim 64, 4 layers, 3 scales)                               8,271,171

Every call goes through `forward` (with `mode=`), so that (Distributed)DataParallel wrappers see
it: DDP all-reduces only gradients of parameters used inside its own forward call.
"""
import torch
import torch.nn as nn

STYLE_ENCODER_DOWNSAMPLINGS = 4  # the authors' AdaINGen fixes it, whatever n_downsample says


class LayerNorm(nn.Module):
    """MUNIT's layer norm of the decoder's upsampling blocks (not nn.LayerNorm):

        y = (x - mean) / (std + eps) * gamma_c + beta_c

    with mean and std over all of (C, H, W) of one sample, std UNBIASED (n - 1), eps added to
    the std (not the variance), a per-channel affine, gamma ~ U(0, 1) and beta = 0 at start.
    The authors keep it rather than instance norm so the upsampling path keeps the style's
    statistics that AdaIN put in (instance norm would remove them).
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        flat = x.reshape(x.size(0), -1)  # (B, C*H*W)
        shape = (-1,) + (1,) * (x.dim() - 1)
        mean = flat.mean(1).view(shape)
        std = flat.std(1).view(shape)  # unbiased, as torch.std by default
        y = (x - mean) / (std + self.eps)
        affine = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.gamma.view(affine) + self.beta.view(affine)


class AdaptiveInstanceNorm2d(nn.Module):
    """AdaIN (paper Eq. 7): instance norm of each sample and channel, then a scale and a shift
    computed from the style code:  y = (x - mu(x)) / sqrt(var(x) + eps) * weight + bias,
    biased variance over (H, W), eps 1e-5, and no "1 +" on the scale (the MLP learns it).

    `weight` and `bias`, each (B * C,), are assigned by AdaINGen for one decoder call and cleared
    after it.  The buffers are never used; they exist because the authors' module has them, so
    that their checkpoints load strictly.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = None
        self.bias = None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if self.weight is None or self.bias is None:
            raise RuntimeError("AdaptiveInstanceNorm2d needs its weight and bias from a style code "
                               "(AdaINGen.decode assigns them)")
        b, c = x.shape[:2]
        # Elementwise rather than F.batch_norm on a (1, B*C, H, W) view (the authors' way; equal
        # to rounding): its gradient is right in any memory format and batch size.
        mean = x.mean((2, 3), keepdim=True)
        var = x.var((2, 3), unbiased=False, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(b, c, 1, 1) + self.bias.view(b, c, 1, 1)

    def extra_repr(self):
        return str(self.num_features)


def _norm(name, channels):
    if name == "in":
        return nn.InstanceNorm2d(channels)  # affine=False, no running statistics
    if name == "ln":
        return LayerNorm(channels)
    if name == "adain":
        return AdaptiveInstanceNorm2d(channels)
    if name == "none":
        return None
    raise ValueError(f"unknown norm '{name}'")


def _activation(name):
    return {"relu": lambda: nn.ReLU(inplace=True), "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
            "tanh": nn.Tanh, "none": lambda: None}[name]()


class ConvBlock(nn.Module):
    """Reflection pad -> conv (bias, no padding of its own) -> optional norm -> optional
    activation; the authors' Conv2dBlock with pad_type 'reflect'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, norm="none",
                 activation="relu"):
        super().__init__()
        self.pad = nn.ReflectionPad2d(padding)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=True)
        self.norm = _norm(norm, out_channels)
        self.activation = _activation(activation)

    def forward(self, x):
        x = self.conv(self.pad(x))
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class LinearBlock(nn.Module):
    """Linear (bias) -> optional activation (the MLP's layers; no norm in MUNIT)."""

    def __init__(self, in_features, out_features, activation="relu"):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=True)
        self.activation = _activation(activation)

    def forward(self, x):
        x = self.fc(x)
        return x if self.activation is None else self.activation(x)


class ResBlock(nn.Module):
    """x + [conv3x3 -> norm -> ReLU -> conv3x3 -> norm](x); no activation after the sum."""

    def __init__(self, dim, norm):
        super().__init__()
        self.model = nn.Sequential(ConvBlock(dim, dim, 3, 1, 1, norm, "relu"),
                                   ConvBlock(dim, dim, 3, 1, 1, norm, "none"))

    def forward(self, x):
        return x + self.model(x)


class ResBlocks(nn.Module):
    def __init__(self, num_blocks, dim, norm):
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(dim, norm) for _ in range(num_blocks)])

    def forward(self, x):
        return self.model(x)


class StyleEncoder(nn.Module):
    """E^s: conv7x7 -> 2 downsamplings doubling the width -> (n_downsample - 2) more at that
    width -> global average pool -> conv1x1 to style_dim.  No norm (it would remove the style).
    (B, C, H, W) -> (B, style_dim); any H, W >= 16."""

    def __init__(self, n_downsample, input_nc, dim, style_dim):
        super().__init__()
        layers = [ConvBlock(input_nc, dim, 7, 1, 3, "none", "relu")]
        for _ in range(2):
            layers.append(ConvBlock(dim, 2 * dim, 4, 2, 1, "none", "relu"))
            dim *= 2
        for _ in range(n_downsample - 2):
            layers.append(ConvBlock(dim, dim, 4, 2, 1, "none", "relu"))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1, 1, 0)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x):
        return self.model(x).flatten(1)  # (B, style_dim, 1, 1) -> (B, style_dim)


class ContentEncoder(nn.Module):
    """E^c: conv7x7 -> n_downsample stride-2 convs doubling the width -> n_res res-blocks, all
    with instance norm.  (B, C, H, W) -> (B, dim * 2^n_downsample, H / 2^n, W / 2^n)."""

    def __init__(self, n_downsample, n_res, input_nc, dim):
        super().__init__()
        layers = [ConvBlock(input_nc, dim, 7, 1, 3, "in", "relu")]
        for _ in range(n_downsample):
            layers.append(ConvBlock(dim, 2 * dim, 4, 2, 1, "in", "relu"))
            dim *= 2
        layers.append(ResBlocks(n_res, dim, "in"))
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    """G: n_res AdaIN res-blocks -> n_upsample x [nearest x2, conv5x5 halving the width, layer
    norm, ReLU] -> conv7x7 -> tanh."""

    def __init__(self, n_upsample, n_res, dim, output_nc):
        super().__init__()
        layers = [ResBlocks(n_res, dim, "adain")]
        for _ in range(n_upsample):
            layers += [nn.Upsample(scale_factor=2),
                       ConvBlock(dim, dim // 2, 5, 1, 2, "ln", "relu")]
            dim //= 2
        layers.append(ConvBlock(dim, output_nc, 7, 1, 3, "none", "tanh"))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class MLP(nn.Module):
    """Style code -> AdaIN parameters: n_blk linear layers, ReLU between them, none at the end."""

    def __init__(self, in_features, out_features, dim, n_blk=3):
        super().__init__()
        layers = [LinearBlock(in_features, dim, "relu")]
        layers += [LinearBlock(dim, dim, "relu") for _ in range(n_blk - 2)]
        layers.append(LinearBlock(dim, out_features, "none"))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x.reshape(x.size(0), -1))


class AdaINGen(nn.Module):
    """The auto-encoder of one domain: style encoder, content encoder, decoder and MLP.

    Calls (all through forward, see the module docstring):
        net(x)                          reconstruction: decode(*encode(x))
        net(x, mode="encode")           (content (B, D, h, w), style (B, style_dim))
        net(x, mode="content")          content only (the D step and test time need no style)
        net(x, mode="style")            style only (the style of a reference image)
        net(content, style, mode="decode")  image (B, C, H, W) in [-1, 1]
    """

    MODES = ("reconstruct", "encode", "content", "style", "decode")

    def __init__(self, input_nc, dim=64, style_dim=8, n_downsample=2, n_res=4, mlp_dim=256):
        super().__init__()
        self.style_dim = style_dim
        self.enc_style = StyleEncoder(STYLE_ENCODER_DOWNSAMPLINGS, input_nc, dim, style_dim)
        self.enc_content = ContentEncoder(n_downsample, n_res, input_nc, dim)
        self.dec = Decoder(n_downsample, n_res, self.enc_content.output_dim, input_nc)
        self.mlp = MLP(style_dim, sum(2 * m.num_features for m in self.adain_layers()), mlp_dim, 3)

    def forward(self, x, style=None, mode="reconstruct"):
        if mode == "reconstruct":
            return self.decode(*self.encode(x))
        if mode == "encode":
            return self.encode(x)
        if mode == "content":
            return self.enc_content(x)
        if mode == "style":
            return self.enc_style(x)
        if mode == "decode":
            return self.decode(x, style)
        raise ValueError(f"unknown mode '{mode}'; choose from: {', '.join(self.MODES)}")

    def encode(self, x):
        return self.enc_content(x), self.enc_style(x)

    def adain_layers(self):
        # looked up on every call: DataParallel's replicas have modules of their own
        return [m for m in self.dec.modules() if isinstance(m, AdaptiveInstanceNorm2d)]

    def decode(self, content, style):
        """The MLP's output (B, sum 2C) is cut, in decoder order, into per-layer slices of C
        values for the bias (the mean) and then C for the weight (the std), as the authors."""
        params = self.mlp(style)
        layers = self.adain_layers()
        start = 0
        for layer in layers:
            c = layer.num_features
            layer.bias = params[:, start:start + c].reshape(-1)  # (B * C,)
            layer.weight = params[:, start + c:start + 2 * c].reshape(-1)
            start += 2 * c
        try:
            return self.dec(content)
        finally:
            # no stale tensors (and the graph they hold) on the modules between calls
            for layer in layers:
                layer.weight = layer.bias = None


class MsImageDis(nn.Module):
    """Multi-scale PatchGAN: `num_scales` identical sub-networks judge x, down(x), down(down(x)),
    down = 3x3 average pooling with stride 2 (padding not counted).  Each: n_layer stride-2 4x4
    convs (64, 128, 256, 512 wide; LeakyReLU 0.2, no norm) then a 1x1 conv to one channel.
    Returns the list of patch maps, e.g. 16x16, 8x8 and 4x4 for a 256x256 image."""

    def __init__(self, input_nc, dim=64, n_layer=4, num_scales=3):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.cnns = nn.ModuleList(self._scale(input_nc, dim, n_layer) for _ in range(num_scales))

    @staticmethod
    def _scale(input_nc, dim, n_layer):
        layers = [ConvBlock(input_nc, dim, 4, 2, 1, "none", "lrelu")]
        for _ in range(n_layer - 1):
            layers.append(ConvBlock(dim, 2 * dim, 4, 2, 1, "none", "lrelu"))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1, 1, 0))
        return nn.Sequential(*layers)

    def forward(self, x):
        outputs = []
        for i, net in enumerate(self.cnns):
            if i > 0:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs
