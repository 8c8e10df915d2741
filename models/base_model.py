"""BaseModel: what every model shares (spec 5.9, 11).

Subclasses fill `loss_names`, `model_names`, `visual_names` and `optimizers`, and implement
`set_input`, `forward` and `optimize_parameters`.  Networks are attributes named `net<Name>`;
their checkpoints are `<epoch>_net_<Name>.pth` plain state_dicts, as in the original code.
"""
import os
from abc import ABC, abstractmethod
from collections import OrderedDict

import torch

from util.checkpoint import atomic_torch_save, load_into

from .schedulers import get_scheduler


class BaseModel(ABC):
    """Checkpointing, schedulers, device handling and visual/loss bookkeeping."""

    def __init__(self, opt):
        self.opt = opt
        self.gpu_ids = opt.gpu_ids
        self.isTrain = opt.isTrain
        self.device = torch.device(f"cuda:{self.gpu_ids[0]}") if self.gpu_ids else torch.device("cpu")
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names = []
        self.model_names = []
        self.visual_names = []
        self.optimizers = []
        self.schedulers = []
        self.image_paths = []
        self.metric = 0  # fed to the plateau scheduler (constant, as in the original)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """Add model-specific options and change defaults; returns the parser."""
        return parser

    @classmethod
    def validate_options(cls, opt):
        """Raise UserError for option combinations this model cannot run with."""

    @abstractmethod
    def set_input(self, data):
        """Unpack a batch from the data loader."""

    @abstractmethod
    def forward(self):
        """Run the generator(s); called by optimize_parameters and test."""

    @abstractmethod
    def optimize_parameters(self):
        """One training step; returns the dict of losses it computed."""

    def data_dependent_initialize(self, data):
        """Initialisation that needs one real batch (CUT builds its MLP heads here)."""

    # ------------------------------------------------------------------ setup
    def networks(self):
        """(name, unwrapped network) for every name in model_names."""
        for name in self.model_names:
            net = getattr(self, "net" + name)
            yield name, net.module if isinstance(net, torch.nn.DataParallel) else net

    def setup(self, opt):
        """Create schedulers; load checkpoints when testing or continuing; print sizes."""
        if self.isTrain:
            self.schedulers = [get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        if not self.isTrain or opt.continue_train:
            self.load_networks(opt.epoch)
        self.print_networks(opt.verbose)

    def parallelize(self):
        """Wrap the networks in DataParallel when several GPUs are used.

        The original wraps even for one GPU (and crashes for none on a CUDA machine); with one
        device DataParallel is a pass-through, so we only wrap when it splits the batch.
        """
        if len(self.gpu_ids) > 1:
            for name in self.model_names:
                net = getattr(self, "net" + name)
                setattr(self, "net" + name, torch.nn.DataParallel(net, self.gpu_ids))

    def eval(self):
        for _, net in self.networks():
            net.eval()

    def test(self):
        """Forward pass without gradients, for test.py."""
        with torch.no_grad():
            self.forward()
            self.compute_visuals()

    def compute_visuals(self):
        """Extra visuals for display; nothing by default."""

    def get_image_paths(self):
        return self.image_paths

    # ------------------------------------------------------------------ learning rate
    def update_learning_rate(self):
        """Step every scheduler once (end of epoch) and print the new rate."""
        for scheduler in self.schedulers:
            if self.opt.lr_policy == "plateau":
                scheduler.step(self.metric)
            else:
                scheduler.step()
        print(f"learning rate = {self.get_current_lr():.7f}")

    def get_current_lr(self):
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    # ------------------------------------------------------------------ visuals and losses
    def get_current_visuals(self):
        return OrderedDict((name, getattr(self, name)) for name in self.visual_names
                           if isinstance(getattr(self, name, None), torch.Tensor))

    def get_current_losses(self):
        def scalar(value):
            return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        return OrderedDict((name, scalar(getattr(self, "loss_" + name))) for name in self.loss_names)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, epoch, name, folder=None):
        return os.path.join(folder or self.save_dir, f"{epoch}_net_{name}.pth")

    def save_networks(self, epoch):
        """Write `<epoch>_net_<Name>.pth` for every network, atomically.

        Keys never carry a `module.` prefix and tensors are on the CPU, so the files load into
        the original code as well as ours.
        """
        for name, net in self.networks():
            state_dict = {key: value.detach().cpu() for key, value in net.state_dict().items()}
            atomic_torch_save(state_dict, self.checkpoint_path(epoch, name))

    def load_networks(self, epoch):
        """Strictly load `<epoch>_net_<Name>.pth` for every network (original files accepted)."""
        folder = self.save_dir
        if self.isTrain and getattr(self.opt, "pretrained_name", None):
            folder = os.path.join(self.opt.checkpoints_dir, self.opt.pretrained_name)
        for name, net in self.networks():
            path = self.checkpoint_path(epoch, name, folder)
            print(f"loading the model from {path}")
            load_into(net, path, map_location=str(self.device))

    def print_networks(self, verbose=False):
        print("---------- Networks initialized -------------")
        for name, net in self.networks():
            if verbose:
                print(net)
            num_params = sum(p.numel() for p in net.parameters())
            print(f"[Network {name}] Total number of parameters : {num_params / 1e6:.3f} M")
        print("-----------------------------------------------")

    @staticmethod
    def set_requires_grad(nets, requires_grad=False):
        if not isinstance(nets, (list, tuple)):
            nets = [nets]
        for net in nets:
            if net is not None:
                for param in net.parameters():
                    param.requires_grad = requires_grad
