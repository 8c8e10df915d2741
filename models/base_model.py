"""BaseModel: what every model shares (spec 5.9, 11).

Subclasses fill `loss_names`, `model_names`, `visual_names` and `optimizers`, and implement
`set_input`, `forward` and `optimize_parameters`.  Networks are attributes named `net<Name>`;
their checkpoints are `<epoch>_net_<Name>.pth` plain state_dicts, as in the original code.
"""
import copy
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping

import torch

from util.checkpoint import atomic_torch_save, load_into, strip_module_prefix
from util.distributed import ranks_where
from util.errors import NonFiniteLossError, UserError, first_line
from util.monitor import echo

from . import networks
from .schedulers import get_scheduler

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MAX_SKIPS_IN_A_ROW = 100  # --nan_guard skip gives up after this many consecutive bad updates

# Scheduler settings that come from options rather than from training progress: a resumed run
# takes them from its own options (so --lr_decay_iters or --n_epochs may change on resume).
_SCHEDULER_SETTINGS = ("step_size", "T_max")


def check_single_folder(opt, generator):
    """--dataset_mode single is for test.py, and its images feed `generator`'s input."""
    if opt.dataset_mode == "single" and opt.direction == "BtoA" and opt.input_nc != opt.output_nc:
        raise UserError(f"--dataset_mode single feeds its images to {generator}'s input: use "
                        "--direction AtoB (or equal --input_nc and --output_nc)")
    if opt.isTrain and opt.dataset_mode == "single":
        raise UserError("--dataset_mode single has no B images to train against; use it with "
                        "test.py, or --dataset_mode unaligned for training")


def check_non_negative(opt, names):
    """Loss weights (and the like): each option in `names` must be 0 or more."""
    for name in names:
        if getattr(opt, name) < 0:
            raise UserError(f"--{name} must be 0 or more (got {getattr(opt, name)})")


def check_identity_channels(opt, generator):
    """An identity loss feeds B images to the A -> B generator: equal channel counts needed."""
    if opt.lambda_identity > 0 and opt.input_nc != opt.output_nc:
        raise UserError(f"the identity loss feeds B images to {generator} (built for A images), so "
                        f"it needs --input_nc == --output_nc (got {opt.input_nc} and "
                        f"{opt.output_nc}); make them equal or pass --lambda_identity 0")


class BaseModel(ABC):
    """Checkpointing, schedulers, device handling and visual/loss bookkeeping."""

    # The network that translates A to B: what --eval_freq scores and keeps as best_net_<name>.pth.
    generator_name = "G"

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
        # What a non-finite loss does: stop (raise), skip (the update), off (no check, no sync).
        self.nan_guard = getattr(opt, "nan_guard", "off")
        self.skipped_steps = 0
        self._skips_in_a_row = {}  # per guarded group of losses
        self._meta_nets = {}  # weightless copies of networks, for image-size checks
        self._sizes_ok = set()
        # Opt-in speed options of training (options/train_options.py); tests build models without.
        self.amp = getattr(opt, "amp", "off") if self.isTrain else "off"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.memory_format = (torch.channels_last if self.isTrain and getattr(opt, "channels_last", False)
                              else torch.contiguous_format)
        # name -> ImagePool of generated images fed to a discriminator; saved in the resumable
        # checkpoint, so that a resumed run sees the same history (CycleGAN, the one-sided models)
        self.image_pools = {}

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
            yield name, unwrap(getattr(self, "net" + name))

    def setup(self, opt, training_state=None):
        """Create schedulers; load checkpoints when testing or continuing; print sizes.

        With `training_state` (a resumable checkpoint, see util/training_state.py) the networks,
        optimizers and schedulers are restored from it instead of the `<epoch>_net_*.pth` files.
        """
        if self.isTrain:
            self.schedulers = [get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        if training_state is not None:
            self.load_training_state(training_state)
        elif not self.isTrain or opt.continue_train:
            self.load_networks(opt.epoch)
        self.print_networks(opt.verbose)

    def parallelize(self, wrap=None):
        """Apply the speed options, wrap the networks, then compile them (--compile), in the
        order each step needs.

        `wrap(name, net)` returns the wrapped network (util/distributed.py passes its
        DistributedDataParallel wrapper).  By default: DataParallel when several GPUs are used.
        The original wraps even for one GPU (and crashes for none on a CUDA machine); with one
        device DataParallel is a pass-through, so we only wrap when it splits the batch.
        """
        if self.isTrain:
            self.apply_speed_options(self.opt)
        if wrap is None and len(self.gpu_ids) > 1:
            wrap = lambda name, net: torch.nn.DataParallel(net, self.gpu_ids)  # noqa: E731
        if wrap is not None:
            for name, net in list(self.networks()):
                setattr(self, "net" + name, wrap(name, net))
        if self.isTrain:
            self.compile_networks(self.opt)

    # ------------------------------------------------------------------ speed options
    def apply_speed_options(self, opt):
        """--fast_path False and --channels_last, on the built (and loaded) networks, before any
        wrapping (DataParallel, DistributedDataParallel, torch.compile)."""
        if not getattr(opt, "fast_path", True):
            for _, net in self.networks():
                networks.set_fast_path(net, False)
        if self.memory_format == torch.channels_last:
            for _, net in self.networks():
                net.to(memory_format=torch.channels_last)  # in place: optimizers keep their params
            if networks.instance_norm_grad_is_wrong(self.device):
                # PyTorch's instance_norm backward is wrong for a batch of one with a
                # channels-last gradient (tests/test_norm_grad_guard.py), which this format
                # makes the rule: hand every InstanceNorm a contiguous gradient instead.
                for _, net in self.networks():
                    networks.make_norm_gradients_contiguous(net)

    def compile_networks(self, opt):
        """--compile: torch.compile every network but the MLP heads (small, built lazily), after
        the (Distributed)DataParallel wrapping."""
        if not getattr(opt, "compile", False):
            return
        for name in self.model_names:
            if name.startswith("F"):
                continue
            net = getattr(self, "net" + name)
            setattr(self, "net" + name, torch.compile(net, backend=opt.compile_backend))

    def adam(self, params, betas):
        """Adam at --lr.  On the fast path the fused kernel (one pass over each tensor instead of
        about ten elementwise ops; 3-4x less optimizer time on the CPU), which equals PyTorch's
        default loop exactly in float64 and to 1 ulp in float32."""
        fused = getattr(self.opt, "fast_path", False) and self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=self.opt.lr, betas=betas, fused=True if fused else None)

    def autocast(self):
        """The --amp context for forward passes and losses (a no-op without --amp)."""
        return torch.autocast(self.device.type, dtype=AMP_DTYPES.get(self.amp, torch.float32),
                              enabled=self.amp != "off")

    def backward(self, loss):
        """loss.backward(), scaled for --amp fp16."""
        self.scaler.scale(loss).backward()

    def step(self, *optimizers):
        """optimizer.step() for each (skipped by the fp16 scaler after an overflow)."""
        for optimizer in optimizers:
            if optimizer is not None:
                self.scaler.step(optimizer)
                self._stepped = True

    def end_of_step(self):
        """After the last optimizer step of an iteration: the fp16 scaler adapts its scale
        (unless the NaN guard skipped every step)."""
        if getattr(self, "_stepped", False):
            self.scaler.update()
        self._stepped = False

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

    def lazy_losses(self):
        """This step's losses as a read-only mapping name -> float that reads each tensor only
        when asked: what optimize_parameters returns, so that a training step costs no host
        sync for its loss values (train.py reads them only on the steps it prints)."""
        return LazyLosses(OrderedDict((name, getattr(self, "loss_" + name)) for name in self.loss_names))

    def get_current_losses(self):
        def scalar(value):
            return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        return OrderedDict((name, scalar(getattr(self, "loss_" + name))) for name in self.loss_names)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, epoch, name, folder=None):
        return os.path.join(folder or self.save_dir, f"{epoch}_net_{name}.pth")

    def save_networks(self, epoch, names=None):
        """Write `<epoch>_net_<Name>.pth` for every network (or those in `names`), atomically.

        Keys never carry a `module.` prefix and tensors are on the CPU, so the files load into
        the original code as well as ours.
        """
        for name, net in self.networks():
            if names is not None and name not in names:
                continue
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

    # ------------------------------------------------------------------ resumable state
    def training_state(self):
        """Networks, optimizers and schedulers, everything a step depends on besides the RNGs.

        Network tensors are CPU copies without `module.` prefixes, as in the `*_net_*.pth` files.
        Image pools, when the model has any, are saved too (the original saves none: its resumed
        runs start with empty pools); they add at most `pool_size` images each, about 39 MB per
        pool of 50 at 256 px.
        """
        state = {
            "networks": {name: {key: value.detach().cpu() for key, value in net.state_dict().items()}
                         for name, net in self.networks()},
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "grad_scaler": self.scaler.state_dict(),  # empty unless --amp fp16
        }
        if self.image_pools:
            state["image_pools"] = {name: pool.state_dict() for name, pool in self.image_pools.items()}
        return state

    def load_training_state(self, state):
        """Restore what `training_state` returned; a mismatch becomes a one-line UserError."""
        where = state.get("path", "the resumable checkpoint")
        saved = state["networks"]
        if sorted(saved) != sorted(self.model_names):
            raise UserError(f"{where} holds networks {sorted(saved)} but --model {self.opt.model} "
                            f"has {sorted(self.model_names)}; resume with the options of that run")
        for name, net in self.networks():
            try:
                net.load_state_dict(strip_module_prefix(saved[name]), strict=True)
            except RuntimeError as err:
                first = str(err).strip().splitlines()
                detail = first[1].strip() if len(first) > 1 else first[0]
                raise UserError(f"{where}: net{name} does not fit the network built from the options "
                                f"({detail}); resume with the options of that run "
                                "(--netG/--ngf/--normG/--no_antialias...)") from None
        if state.get("grad_scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["grad_scaler"])
        for kind, objects in (("optimizers", self.optimizers), ("schedulers", self.schedulers)):
            if len(state[kind]) != len(objects):
                raise UserError(f"{where} holds {len(state[kind])} {kind} but this model has "
                                f"{len(objects)}; resume with the options of that run")
            for obj, obj_state in zip(objects, state[kind]):
                if kind == "schedulers":
                    obj_state = {k: v for k, v in obj_state.items() if k not in _SCHEDULER_SETTINGS}
                obj.load_state_dict(obj_state)
        if self.image_pools:
            pools = state.get("image_pools")
            if pools is None or any(name not in pools for name in self.image_pools):
                print("notice: the resumable checkpoint holds no image pools: they start empty")
                return
            for name, pool in self.image_pools.items():
                pool.load_state_dict(pools[name], self.device)

    # ------------------------------------------------------------------ input sizes
    def read_batch(self, data):
        """Set real_A, real_B and image_paths from a loader batch, following --direction.

        A single-domain batch (--dataset_mode single, test only) has no B: real_B is None.
        Returns the path of the first B image (None without B), for size-check messages.
        """
        if "B" not in data:
            self.real_A, self.real_B = self.to_device(data["A"]), None
            self.image_paths = data["A_paths"]
            return None
        a_to_b = self.opt.direction == "AtoB"
        self.real_A = self.to_device(data["A" if a_to_b else "B"])
        self.real_B = self.to_device(data["B" if a_to_b else "A"])
        self.image_paths = data["A_paths" if a_to_b else "B_paths"]
        return data["B_paths" if a_to_b else "A_paths"][0]

    def to_device(self, images):
        return images.to(self.device, non_blocking=True, memory_format=self.memory_format)

    def check_image_size(self, images, path, chain):
        """Raise a one-line UserError if `images` (B x C x H x W) cannot pass through the networks
        named in `chain` (each fed the previous one's output, e.g. ("G", "D")).

        Too small an image otherwise fails deep inside a padding, convolution or instance norm.
        Each new size is tried once on weightless copies of the networks on PyTorch's `meta`
        device, which computes shapes only, so the check costs nothing measurable.
        """
        key = (tuple(images.shape[1:]), chain)
        if key in self._sizes_ok:
            return
        nets = dict(self.networks())
        x = torch.empty((1,) + key[0], device="meta")
        for name in chain:
            if name not in self._meta_nets:
                self._meta_nets[name] = copy.deepcopy(nets[name]).to("meta")
            try:
                with torch.no_grad():
                    x = self._meta_nets[name](x)
            except (RuntimeError, ValueError) as err:
                reason = first_line(err)
                h, w = images.shape[-2:]
                raise UserError(f"image {path} becomes {w}x{h} pixels after preprocessing, a size "
                                f"net{name} cannot take ({reason}); use larger images or raise "
                                "--load_size/--crop_size (e.g. --preprocess resize_and_crop)") from None
        self._sizes_ok.add(key)

    # ------------------------------------------------------------------ numerical guard
    def losses_are_finite(self, names):
        """The NaN/Inf guard (--nan_guard), called before an optimizer step.

        True when the step may go ahead.  With `stop` a non-finite loss among `names` raises
        NonFiniteLossError naming it; with `skip` it returns False (the caller skips the update
        and we count it); with `off` no check is made.  One host sync per call.  Under torchrun
        a non-finite loss on any rank counts for all (one all-reduce): a rank that stepped alone
        would wait for the others' gradients for ever.
        """
        if self.nan_guard == "off":
            return True
        values = [getattr(self, "loss_" + name) for name in names]
        tensors = [v.detach().reshape(()) for v in values if isinstance(v, torch.Tensor)]
        finite = not tensors or bool(torch.isfinite(torch.stack(tensors).float()).all())
        bad_ranks = ranks_where(not finite, self.device)
        if not bad_ranks:
            self._skips_in_a_row[names] = 0
            return True
        name, value = next(((n, float(v.detach())) for n, v in zip(names, values)
                            if isinstance(v, torch.Tensor) and not torch.isfinite(v.detach()).all()),
                           (f"of rank {bad_ranks[0]}", float("nan")))
        if self.nan_guard == "skip":
            self.skipped_steps += 1
            in_a_row = self._skips_in_a_row[names] = self._skips_in_a_row.get(names, 0) + 1
            if in_a_row >= MAX_SKIPS_IN_A_ROW:
                raise NonFiniteLossError(f"loss {name} is {value}, non-finite {in_a_row} updates in a "
                                         "row: the model is broken, skipping no longer helps",
                                         name=name, value=value)
            echo(f"warning: non-finite loss {name} = {value}: update skipped (--nan_guard skip; "
                  f"{self.skipped_steps} skipped so far)")
            return False
        raise NonFiniteLossError(f"loss {name} is {value}", name=name, value=value)

    def nonfinite_networks(self):
        """Names of networks with a NaN or infinite parameter or buffer (checked before saving)."""
        bad = []
        for name, net in self.networks():
            tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
            if tensors and not all(bool(torch.isfinite(t).all()) for t in tensors):
                bad.append(name)
        return bad

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


class LazyLosses(Mapping):
    """name -> float, converted from the loss tensors on access (see BaseModel.lazy_losses)."""

    def __init__(self, values):
        self._values = values

    def __getitem__(self, name):
        value = self._values[name]
        return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"LazyLosses({dict(self)})"


def unwrap(net):
    """The network inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            net = net.module
        elif hasattr(net, "_orig_mod"):  # torch.compile's OptimizedModule
            net = net._orig_mod
        else:
            return net
