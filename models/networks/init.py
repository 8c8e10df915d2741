"""Weight initialisation and device placement of a freshly built network."""
import torch
import torch.nn as nn

from util.errors import UserError


def _normal(w, gain):
    nn.init.normal_(w, 0.0, gain)


def _xavier(w, gain):
    nn.init.xavier_normal_(w, gain=gain)


def _kaiming(w, gain):
    # The original ignores the gain here: kaiming_normal with a=0, fan_in.
    nn.init.kaiming_normal_(w, a=0, mode='fan_in')


def _orthogonal(w, gain):
    nn.init.orthogonal_(w, gain=gain)


INIT_TYPES = {'normal': _normal, 'xavier': _xavier, 'kaiming': _kaiming, 'orthogonal': _orthogonal}
# What happens to the biases of Conv*/Linear layers: 'zero' (CUT and today's CycleGAN code set
# them to 0) or 'default' (left as PyTorch built them, uniform in +-1/sqrt(fan_in): the GcGAN and
# DistanceGAN codes initialise weights only).
INIT_BIASES = ('zero', 'default')


def init_weights(net, init_type='normal', init_gain=0.02, init_bias='zero'):
    """Initialise every Conv*/Linear weight of `net` (biases by `init_bias`) and every BatchNorm2d
    and affine InstanceNorm2d (weight N(1, gain), bias 0).

    Modules are matched by class name as in the original (so ConvTranspose2d counts as a conv) and
    visited in `net.apply` order, so a seeded run draws the same numbers as the original.  Affine
    instance norms exist only with --norm instance_affine (DistanceGAN's networks), whose code
    initialises them as batch norms.
    """
    if init_type not in INIT_TYPES:
        raise UserError(f"unknown --init_type '{init_type}'; choose one of: {', '.join(INIT_TYPES)}")
    if init_bias not in INIT_BIASES:
        raise UserError(f"unknown --init_bias '{init_bias}'; choose one of: {', '.join(INIT_BIASES)}")
    init_fn = INIT_TYPES[init_type]

    def init_module(m):
        classname = type(m).__name__
        if ('Conv' in classname or 'Linear' in classname) and getattr(m, 'weight', None) is not None:
            init_fn(m.weight.data, init_gain)
            if getattr(m, 'bias', None) is not None and init_bias == 'zero':
                nn.init.constant_(m.bias.data, 0.0)
        elif 'BatchNorm2d' in classname or ('InstanceNorm2d' in classname
                                            and getattr(m, 'weight', None) is not None):
            nn.init.normal_(m.weight.data, 1.0, init_gain)
            nn.init.constant_(m.bias.data, 0.0)

    net.apply(init_module)
    return net


def init_net(net, init_type='normal', init_gain=0.02, gpu_ids=(), initialize_weights=True,
             init_bias='zero'):
    """Move `net` to cuda:<gpu_ids[0]> when GPUs are requested, then initialise its weights."""
    if len(gpu_ids) > 0:
        if not torch.cuda.is_available():
            raise UserError(f"--gpu_ids {','.join(map(str, gpu_ids))} asks for a GPU but CUDA is not "
                            "available; pass --gpu_ids -1 to run on the CPU")
        net.to(torch.device('cuda', gpu_ids[0]))
    if initialize_weights:
        init_weights(net, init_type, init_gain, init_bias)
    return net
