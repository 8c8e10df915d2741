"""BaseModel: the life cycle every model shares, and its one update step.

Subclasses fill `loss_names`, `model_names`, `visual_names` and `optimizers`, and implement
`set_input`, `forward` and `optimize_parameters`.  Networks are attributes named `net<Name>`;
their checkpoints are `<epoch>_net_<Name>.pth` plain state_dicts, as in the original code.

An iteration of every model is a sequence of updates, one per player, each through `step`:

    def optimize_parameters(self):
        with self.autocast():
            self.forward()
        self.step([self.optimizer_D], self.compute_D_loss, guard=("D_fake", "D_real", "D"))
        self.step([self.optimizer_G], self.compute_G_loss, guard=("G_GAN", "G"), frozen=[self.netD])
        return self.end_iteration()

The rest lives in mixins, one role each: models/speed.py (the speed options, wrapping and
compile), models/checkpointing.py (network files and the resumable state) and
models/input_checks.py (image-size checks).
"""
import contextlib
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping

import torch

from util.distributed import average_gradients, ranks_where
from util.errors import NonFiniteLossError
from util.monitor import echo

from .checkpointing import Checkpointing
from .input_checks import ImageSizeCheck
from .schedulers import get_scheduler
from .speed import SpeedOptions, unwrap

MAX_SKIPS_IN_A_ROW = 100  # --nan_guard skip gives up after this many consecutive bad updates


class BaseModel(SpeedOptions, Checkpointing, ImageSizeCheck, ABC):
    """Life cycle (build, set up, train step, test), losses, visuals and learning rates."""

    # The network that translates A to B: what --eval_freq scores and keeps as best_net_<name>.pth.
    generator_name = "G"
    # How gradients meet under torchrun: "ddp" (util/distributed.py wraps every network in
    # DistributedDataParallel) or "by_hand" (no wrapping; each update averages its optimizers'
    # gradients over the ranks before clipping and stepping, for models that differentiate one
    # forward graph several times, which DDP's reducer does not follow: see models/drit_model.py).
    gradient_sync = "ddp"

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
        self._stepped = False  # whether an optimizer stepped in this iteration (fp16 scaler)
        # name -> ImagePool of generated images fed to a discriminator; saved in the resumable
        # checkpoint, so that a resumed run sees the same history (CycleGAN, the one-sided models)
        self.image_pools = {}
        self.init_speed_options(opt)
        self.init_size_check()

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
        """One training iteration (a `step` per player); returns `end_iteration()`."""

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

    # ------------------------------------------------------------------ one update
    def step(self, optimizers, loss_fn, guard, frozen=(), clip_grad_norm=None):
        """One update of one player, the same for every model; returns the loss `loss_fn` gave.

            the `frozen` networks stop collecting gradients (the other player's, whose outputs
            the loss goes through) -> zero_grad -> loss = loss_fn() under --amp autocast ->
            the NaN guard on the losses named in `guard` (attributes loss_<name>) -> backward,
            scaled for --amp fp16 -> optional gradient-norm clipping (unscaled first) -> a
            step of each optimizer -> the frozen networks collect gradients again.

        `optimizers` may hold None (a player without parameters yet).  Under --nan_guard skip a
        non-finite loss leaves the backward and the steps out.
        """
        optimizers = [optimizer for optimizer in optimizers if optimizer is not None]
        with self.frozen(frozen):
            for optimizer in optimizers:
                optimizer.zero_grad()
            with self.autocast():
                loss = loss_fn()
            if self.losses_are_finite(tuple(guard)):
                self.scaler.scale(loss).backward()
                self._apply_gradients(optimizers, clip_grad_norm)
        return loss

    def simultaneous_steps(self, updates):
        """Several updates from one forward graph, every gradient taken before any step.

        `updates` is a list of dicts of `step`'s keyword arguments (optimizers, loss_fn, guard,
        frozen, clip_grad_norm).  For each in turn: freeze, zero_grad, loss under --amp autocast,
        the NaN guard, backward keeping the graph for the next one; its gradients are then put
        aside, so that an optimizer listed in several updates (a player updated twice, as DRIT's
        encoders and generator) steps once with each update's own gradients.  Once every
        backward is done, each update's gradients are restored and its optimizers step, in list
        order.  `step` taking the updates one after another would differentiate the later losses
        through weights the earlier steps had already changed in place (an autograd error).
        Returns the losses.  Under --amp fp16 the gradient scaler allows one step per optimizer
        and iteration, so a model that lists an optimizer twice must refuse fp16.
        """
        done = []
        for k, update in enumerate(updates):
            optimizers = [optimizer for optimizer in update["optimizers"] if optimizer is not None]
            with self.frozen(update.get("frozen", ())):
                for optimizer in optimizers:
                    optimizer.zero_grad()
                with self.autocast():
                    loss = update["loss_fn"]()
                finite = self.losses_are_finite(tuple(update["guard"]))
                if finite:
                    self.scaler.scale(loss).backward(retain_graph=k < len(updates) - 1)
            params = [p for optimizer in optimizers for group in optimizer.param_groups
                      for p in group["params"]]
            grads = [p.grad for p in params]
            for p in params:
                p.grad = None  # the next update's backward starts from nothing
            done.append((optimizers, update.get("clip_grad_norm"), finite, params, grads, loss))
        for optimizers, clip_grad_norm, finite, params, grads, _ in done:
            if finite:
                for p, grad in zip(params, grads):
                    p.grad = grad
                self._apply_gradients(optimizers, clip_grad_norm)
        return [loss for *_, loss in done]

    def _apply_gradients(self, optimizers, clip_grad_norm):
        """Under torchrun with gradient_sync "by_hand" the mean of the ranks' gradients, then
        optional gradient-norm clipping (unscaled first under fp16), then each optimizer's step."""
        if self.gradient_sync == "by_hand":
            average_gradients([p for optimizer in optimizers for group in optimizer.param_groups
                               for p in group["params"]])  # a no-op in a single process
        if clip_grad_norm is not None:
            for optimizer in optimizers:
                self.scaler.unscale_(optimizer)
                params = [p for group in optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        for optimizer in optimizers:
            self.scaler.step(optimizer)  # skipped by the fp16 scaler after an overflow
        self._stepped = True

    def end_iteration(self):
        """After the last update of an iteration: the fp16 scaler adapts its scale (unless the NaN
        guard skipped every update).  Returns this iteration's losses, read lazily."""
        if self._stepped:
            self.scaler.update()
        self._stepped = False
        return self.lazy_losses()

    @staticmethod
    @contextlib.contextmanager
    def frozen(nets):
        """Parameters of `nets` do not require gradients inside the block; each gets its own
        flag back afterwards (parameters frozen for good stay frozen)."""
        params = [p for net in nets if net is not None for p in net.parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    @staticmethod
    def set_requires_grad(nets, requires_grad=False):
        if not isinstance(nets, (list, tuple)):
            nets = [nets]
        for net in nets:
            if net is not None:
                for param in net.parameters():
                    param.requires_grad = requires_grad

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

    # ------------------------------------------------------------------ test
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

    # ------------------------------------------------------------------ learning rate
    def update_learning_rate(self):
        """Step every per-epoch scheduler once (end of epoch) and print the new rate."""
        for scheduler in self.schedulers:
            if getattr(scheduler, "per_iteration", False):
                continue  # stepped by step_iteration_schedulers
            if self.opt.lr_policy == "plateau":
                scheduler.step(self.metric)
            else:
                scheduler.step()
        print(f"learning rate = {self.get_current_lr():.7f}")

    def step_iteration_schedulers(self):
        """Step the per-iteration schedulers (--lr_policy step_iter) once; train.py calls this
        after every training step.  Nothing to do for the per-epoch policies."""
        for scheduler in self.schedulers:
            if getattr(scheduler, "per_iteration", False):
                scheduler.step()

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

    def print_networks(self, verbose=False):
        print("---------- Networks initialized -------------")
        for name, net in self.networks():
            if verbose:
                print(net)
            num_params = sum(p.numel() for p in net.parameters())
            print(f"[Network {name}] Total number of parameters : {num_params / 1e6:.3f} M")
        print("-----------------------------------------------")


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
