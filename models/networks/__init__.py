"""Network registries and the define_G / define_D / define_F builders used by the models.

Each registry maps an option value (--netG, --netD, --netF) to a builder; options read their
`choices` from these dicts.  To add a network, add one entry.  Builders take keyword arguments and
ignore the ones they do not need (`**_unused`), so new entries may need more without breaking these.
Networks whose name contains 'stylegan2' keep their own initialisation (as the original).
"""

from util.errors import UserError
from .discriminators import NLayerDiscriminator, PixelDiscriminator
from .generators import PADDING_TYPES, ResnetBlock, ResnetGenerator, resnet_generator
from .init import INIT_BIASES, INIT_TYPES, init_net, init_weights
from .layers import (NORMS, Downsample, Upsample, conv_bias_for, get_norm_layer, get_pad_layer,
                     instance_norm_grad_is_wrong, make_norm_gradients_contiguous, set_fast_path)
from .patch_sampler import PatchSampleF
from .stylegan import StyleGAN2Discriminator, StyleGAN2Generator, stylegan_resolution


def _stylegan_g(n_blocks, inject_noise):
    def build(ngf, resolution=64, num_downsampling=1, **_unused):
        # input_nc/output_nc are ignored: the StyleGAN2 networks are RGB only
        return StyleGAN2Generator(ngf, n_blocks, resolution, num_downsampling, inject_noise)
    build.n_blocks = n_blocks  # read by option validation (how many layers --nce_layers may tap)
    return build

GENERATORS = {
    'resnet_9blocks': resnet_generator(9),
    'resnet_6blocks': resnet_generator(6),
    'resnet_4blocks': resnet_generator(4),  # not a CLI choice in the original, but it is buildable
    'stylegan2': _stylegan_g(n_blocks=6, inject_noise=True),  # SinCUT
    'smallstylegan2': _stylegan_g(n_blocks=2, inject_noise=False),
}


def _n_layer_d(input_nc, ndf, norm_layer, n_layers_D=3, no_antialias=False, **_unused):
    return NLayerDiscriminator(input_nc, ndf, n_layers_D, norm_layer=norm_layer, no_antialias=no_antialias)


def _basic_d(input_nc, ndf, norm_layer, no_antialias=False, **_unused):
    # 'basic' is always the 3-layer (70x70) PatchGAN, whatever --n_layers_D says.
    return NLayerDiscriminator(input_nc, ndf, 3, norm_layer=norm_layer, no_antialias=no_antialias)


def _pixel_d(input_nc, ndf, norm_layer, **_unused):
    return PixelDiscriminator(input_nc, ndf, norm_layer=norm_layer)


def _stylegan_d(ndf, resolution=64, **_unused):
    return StyleGAN2Discriminator(ndf, resolution)


DISCRIMINATORS = {
    'basic': _basic_d, 'n_layers': _n_layer_d, 'pixel': _pixel_d,
    'stylegan2': _stylegan_d,  # SinCUT
    'tilestylegan2': _stylegan_d,  # the original builds the same network for this name
}

# Networks that only take and give RGB images.
RGB_ONLY = {'stylegan2', 'smallstylegan2', 'tilestylegan2'}

PATCH_SAMPLERS = {
    'mlp_sample': lambda init_type, init_gain, nc, **_unused: PatchSampleF(True, init_type, init_gain, nc),
    'sample': lambda init_type, init_gain, nc, **_unused: PatchSampleF(False, init_type, init_gain, nc),
}


def _lookup(registry, name, option):
    try:
        return registry[name]
    except KeyError:
        raise UserError(f"unknown {option} '{name}'; choose one of: {', '.join(registry)}") from None


def define_G(input_nc, output_nc, ngf, netG, norm='instance', use_dropout=False, init_type='xavier',
             init_gain=0.02, no_antialias=False, no_antialias_up=False, gpu_ids=(),
             padding_type='reflect', init_bias='zero', **extra):
    """Build generator `netG`, move it to the first GPU in gpu_ids, initialise its weights.

    padding_type (--padding_type) reaches the ResNet generators only; init_bias (--init_bias):
    'zero' sets conv biases to 0, 'default' keeps PyTorch's initial biases.
    """
    build = _lookup(GENERATORS, netG, '--netG')
    net = build(input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm_layer=get_norm_layer(norm),
                use_dropout=use_dropout, no_antialias=no_antialias, no_antialias_up=no_antialias_up,
                padding_type=padding_type, **extra)
    return init_net(net, init_type, init_gain, gpu_ids, initialize_weights='stylegan2' not in netG,
                    init_bias=init_bias)


def define_D(input_nc, ndf, netD, n_layers_D=3, norm='instance', init_type='xavier', init_gain=0.02,
             no_antialias=False, gpu_ids=(), init_bias='zero', **extra):
    """Build discriminator `netD`, move it to the first GPU in gpu_ids, initialise its weights."""
    build = _lookup(DISCRIMINATORS, netD, '--netD')
    net = build(input_nc=input_nc, ndf=ndf, norm_layer=get_norm_layer(norm), n_layers_D=n_layers_D,
                no_antialias=no_antialias, **extra)
    return init_net(net, init_type, init_gain, gpu_ids, initialize_weights='stylegan2' not in netD,
                    init_bias=init_bias)


def define_F(netF, init_type='xavier', init_gain=0.02, netF_nc=256, gpu_ids=(), **extra):
    """Build the patch sampler `netF`; its MLP heads are created later by `create_mlp(feats)`."""
    build = _lookup(PATCH_SAMPLERS, netF, '--netF')
    net = build(init_type=init_type, init_gain=init_gain, nc=netF_nc, **extra)
    # Nothing to initialise yet (no parameters); this only places the module.
    return init_net(net, init_type, init_gain, gpu_ids)


__all__ = [
    'GENERATORS', 'DISCRIMINATORS', 'PATCH_SAMPLERS', 'NORMS', 'INIT_TYPES', 'INIT_BIASES',
    'PADDING_TYPES',
    'define_G', 'define_D', 'define_F', 'init_net', 'init_weights',
    'get_norm_layer', 'get_pad_layer', 'conv_bias_for', 'Downsample', 'Upsample', 'set_fast_path',
    'instance_norm_grad_is_wrong', 'make_norm_gradients_contiguous',
    'ResnetGenerator', 'ResnetBlock', 'NLayerDiscriminator', 'PixelDiscriminator', 'PatchSampleF',
    'StyleGAN2Generator', 'StyleGAN2Discriminator', 'stylegan_resolution', 'RGB_ONLY',
]
