"""A model's checkpoint files and its part of the resumable state (a BaseModel mixin).

`<epoch>_net_<Name>.pth` are plain state_dicts, as in the original code, so the files of either
code load into the other.  `training_state()` is what latest_state.pth (util/training_state.py)
holds of the model: networks, optimizers, schedulers, the fp16 scaler and the image pools.
"""
import os

import torch

from util.checkpoint import atomic_torch_save, load_into, strip_module_prefix
from util.errors import UserError

# Scheduler settings that come from options rather than from training progress: a resumed run
# takes them from its own options (so --lr_decay_iters or --n_epochs may change on resume).
_SCHEDULER_SETTINGS = ("step_size", "T_max")


def cpu_state_dict(net):
    """Detached CPU copies of a network's tensors, keys without `module.` prefixes."""
    return {key: value.detach().cpu() for key, value in net.state_dict().items()}


class Checkpointing:
    """Mixed in by BaseModel; expects `opt`, `save_dir`, `device`, `isTrain`, `model_names`,
    `networks()`, `optimizers`, `schedulers`, `scaler` and `image_pools`."""

    def checkpoint_path(self, epoch, name, folder=None):
        return os.path.join(folder or self.save_dir, f"{epoch}_net_{name}.pth")

    def save_networks(self, epoch, names=None):
        """Write `<epoch>_net_<Name>.pth` for every network (or those in `names`), atomically.

        Keys never carry a `module.` prefix and tensors are on the CPU, so the files load into
        the original code as well as ours.
        """
        for name, net in self.networks():
            if names is None or name in names:
                atomic_torch_save(cpu_state_dict(net), self.checkpoint_path(epoch, name))

    def load_networks(self, epoch):
        """Strictly load `<epoch>_net_<Name>.pth` for every network (original files accepted)."""
        folder = self.save_dir
        if self.isTrain and getattr(self.opt, "pretrained_name", None):
            folder = os.path.join(self.opt.checkpoints_dir, self.opt.pretrained_name)
        for name, net in self.networks():
            path = self.checkpoint_path(epoch, name, folder)
            print(f"loading the model from {path}")
            load_into(net, path, map_location=str(self.device))

    def nonfinite_networks(self):
        """Names of networks with a NaN or infinite parameter or buffer (checked before saving)."""
        bad = []
        for name, net in self.networks():
            tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
            if tensors and not all(bool(torch.isfinite(t).all()) for t in tensors):
                bad.append(name)
        return bad

    # ------------------------------------------------------------------ resumable state
    def training_state(self):
        """Networks, optimizers and schedulers, everything a step depends on besides the RNGs.

        Network tensors are CPU copies without `module.` prefixes, as in the `*_net_*.pth` files.
        Image pools, when the model has any, are saved too (the original saves none: its resumed
        runs start with empty pools); they add at most `pool_size` images each, about 39 MB per
        pool of 50 at 256 px.  Models with more state (DistanceGAN's statistics, ...) extend this.
        """
        state = {
            "networks": {name: cpu_state_dict(net) for name, net in self.networks()},
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
