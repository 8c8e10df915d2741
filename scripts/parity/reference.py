"""The authors' side of scripts/parity/parity.py: builds a baseline from its authors' code, runs
the training steps on the batches parity.py wrote, and saves what it saw.

Run by parity.py in a subprocess whose working directory and first import path is the authors'
checkout, so their `models`, `util` and `networks` modules never meet this framework's.  Their
files are not edited: what today's PyTorch and Python 3 need is patched from here, each patch
named where it is made:

  * GcGAN calls `.cuda()` on its index tensors: Tensor.cuda becomes the identity in this
    process (nothing here has a GPU to offer).
  * DistanceGAN is Python 2 code for PyTorch 0.1.12: `xrange` is added to the builtins; its
    `from util import util` relied on implicit relative imports, so cyclegan_arch/ goes on the
    import path; its discriminator computes padding as int(np.ceil((4 - 1) / 2)), which is 1
    under Python 2's integer division and 2 under Python 3, so the convolutions get their
    Python 2 padding back after construction; `as_np(...)[0]` indexed the 1-element tensors
    that old reductions returned, so as_np returns 1-element arrays.
  * CycleGAN runs as it is.

    python scripts/parity/reference.py BASELINE REF_DIR WORKDIR    (parity.py does this)

Reads WORKDIR/inputs.pt, writes WORKDIR/reference.pt.
"""
import builtins
import contextlib
import io
import os
import sys
from argparse import Namespace

import numpy as np
import torch
import torch.nn as nn


def common_opt(cfg, **extra):
    """The option fields every reference model reads, at the preset's values."""
    return Namespace(gpu_ids=[], isTrain=True, continue_train=False, checkpoints_dir=cfg["workdir"],
                     name="parity", input_nc=3, output_nc=3, ngf=cfg["ngf"], ndf=cfg["ndf"],
                     n_layers_D=3, lr=cfg["lr"], beta1=0.5, pool_size=50, **extra)


def losses_of(model, names):
    return {ours: float(getattr(model, theirs)) * scale for ours, (theirs, scale) in names.items()}


def cycle_gan(cfg):
    """junyanz/pytorch-CycleGAN-and-pix2pix: models/cycle_gan_model.py as it is."""
    from models.cycle_gan_model import CycleGANModel
    opt = common_opt(cfg, netG=cfg["netG"], netD="basic", norm="instance", no_dropout=True,
                     init_type="normal", init_gain=0.02, preprocess="resize_and_crop",
                     lambda_A=10.0, lambda_B=10.0, lambda_identity=0.5, gan_mode="lsgan",
                     direction="AtoB")
    model = CycleGANModel(opt)
    nets = {"G_A": model.netG_A, "G_B": model.netG_B, "D_A": model.netD_A, "D_B": model.netD_B}
    names = {n: ("loss_" + n, 1.0) for n in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B",
                                              "cycle_B", "idt_B")}

    def step(batch):
        model.set_input(batch)
        model.optimize_parameters()
        return losses_of(model, names)
    return nets, step, {}


class StatsBatches:
    """What DistanceGAN's set_expectation_and_std iterates: loader batches with stop flags."""

    def __init__(self, batches):
        self.batches, self.stop_A, self.stop_B = batches, False, False

    def __iter__(self):
        return iter(self.batches)


def distance_gan(cfg, self_distance):
    """sagiebenaim/DistanceGAN: cyclegan_arch/distance_gan_model.py, one-sided (--A_to_B)."""
    builtins.xrange = range  # Python 2
    sys.path.insert(0, os.path.join(cfg["ref"], "cyclegan_arch"))  # its implicit relative imports
    from cyclegan_arch import networks
    from cyclegan_arch.distance_gan_model import DistanceGANModel

    built = networks.NLayerDiscriminator.__init__

    def python2_padding(self, *args, **kwargs):  # int(np.ceil((4 - 1) / 2)) is 1 under Python 2
        built(self, *args, **kwargs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (4, 4):
                m.padding = (1, 1)
    networks.NLayerDiscriminator.__init__ = python2_padding
    DistanceGANModel.as_np = lambda self, x: np.atleast_1d(x.detach().cpu().numpy())

    opt = common_opt(cfg, batchSize=cfg["batch_size"], fineSize=cfg["size"],
                     which_model_netG=cfg["netG"], which_model_netD="basic", norm="instance",
                     use_dropout=False, which_epoch="latest", no_lsgan=False, A_to_B=True,
                     B_to_A=False, use_self_distance=self_distance, unnormalized_distances=False,
                     use_cycle_loss=False, max_items=900, lambda_distance_A=1.0,
                     lambda_distance_B=1.0, lambda_A=10.0, lambda_B=10.0, identity=0.0,
                     which_direction="AtoB")
    model = DistanceGANModel(StatsBatches(cfg["stats_batches"]))
    model.initialize(opt)  # builds the networks, then estimates mu and sigma over the batches
    stats = {"A": (float(model.expectation_A), float(model.std_A)),
             "B": (float(model.expectation_B), float(model.std_B))}
    nets = {"G": model.netG_A, "D": model.netD_A}
    names = {"G_GAN": ("loss_G_A", 1.0), "distance": ("loss_distance_A", 1.0), "D": ("loss_D_A", 1.0)}

    def step(batch):
        model.set_input(batch)
        model.optimize_parameters()
        return losses_of(model, names)
    return nets, step, {"distance_stats": stats}


def gcgan(cfg, variant):
    """hufu6371/GcGAN: models/gc_gan_cross_model.py or gc_gan_share_model.py."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # its index tensors call .cuda()
    if variant == "cross":
        from models.gc_gan_cross_model import GcGANCrossModel as Model
    else:
        from models.gc_gan_share_model import GcGANShareModel as Model
    opt = common_opt(cfg, batchSize=cfg["batch_size"], fineSize=cfg["size"],
                     which_model_netG=cfg["netG"], which_model_netD="basic", norm="instance",
                     no_dropout=True, init_type="xavier", which_epoch="latest", no_lsgan=False,
                     lr_policy="lambda", epoch_count=1, niter=100, niter_decay=100, lambda_AB=10.0,
                     lambda_gc=2.0, identity=0.5, lambda_G=1.0, geometry="rot",
                     which_direction="AtoB")
    model = Model()
    model.initialize(opt)
    nets = {"G": model.netG_AB, "D": model.netD_B, "D_gc": model.netD_gc_B}
    if variant == "cross":
        nets["G_gc"] = model.netG_gc_AB
    # The code's Gc is two half-detached terms, twice our single term (models/losses/geometry.py);
    # its D_B is the sum of both discriminators' losses.
    names = {"G_GAN": ("loss_G_AB", 1.0), "G_GAN_gc": ("loss_G_gc_AB", 1.0), "gc": ("loss_gc", 0.5),
             "idt": ("loss_idt", 1.0), "idt_gc": ("loss_idt_gc", 1.0), "D+D_gc": ("loss_D_B", 1.0)}

    def step(batch):
        model.set_input(batch)
        model.optimize_parameters()
        return losses_of(model, names)
    return nets, step, {}


BUILDERS = {
    "cycle_gan": cycle_gan,
    "distance_gan": lambda cfg: distance_gan(cfg, self_distance=False),
    "self_distance": lambda cfg: distance_gan(cfg, self_distance=True),
    "gcgan_cross": lambda cfg: gcgan(cfg, "cross"),
    "gcgan_shared": lambda cfg: gcgan(cfg, "shared"),
}


def main(baseline, ref, workdir):
    sys.path.insert(0, ref)
    cfg = torch.load(os.path.join(workdir, "inputs.pt"), weights_only=False)
    cfg.update(ref=ref, workdir=workdir)
    chatter = io.StringIO()  # the reference prints its option dump and whole networks
    torch.manual_seed(cfg["seed"])
    with contextlib.redirect_stdout(chatter):
        nets, step, extra = BUILDERS[baseline](cfg)
    initial = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    first = next(iter(nets))
    with torch.no_grad():
        forward = nets[first](cfg["batches"][0]["A"].clone())
    losses = []
    with contextlib.redirect_stdout(chatter):
        for batch in cfg["batches"]:
            losses.append(step({k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}))
    final = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}
    torch.save(dict(extra, initial=initial, final=final, losses=losses, counts=counts,
                    forward=(first, forward)), os.path.join(workdir, "reference.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
