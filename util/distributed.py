"""Distributed data-parallel training under torchrun: one process per GPU (or per CPU slot).

    torchrun --nproc_per_node=N train.py ...          # N processes on this machine
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \
             --master_addr=HOST --master_port=29500 train.py ...   # and --node_rank=1 on the other

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT) in every process;
`Session` reads them.  Without them the run is an ordinary single process (rank 0 of 1), every
method here is a no-op, and `--gpu_ids 0,1` keeps the original's DataParallel.

What each process does under torchrun (see README, "Multi-GPU and multi-node training"):
  * device cuda:LOCAL_RANK with the nccl backend when GPUs are asked for, else the CPU with gloo;
  * its own 1/N of every epoch (DistributedSampler, shuffled by a seed shared by all ranks) and its
    own random streams (--seed + rank: B-image pick, augmentations, patch locations, flips);
  * the same initial weights: rank 0's parameters and buffers are broadcast to all before the
    networks are wrapped in DistributedDataParallel, netF's lazily built MLP heads included;
  * the same gradients: DistributedDataParallel averages them during each backward, or, for a
    model with gradient_sync = "by_hand" (DRIT), `average_gradients` does before each update;
  * the same decisions: a stop signal or a non-finite loss on any rank counts for all (each is one
    tiny all-reduce), otherwise one rank would wait for the others' gradients for ever;
  * rank 0 alone prints, logs, writes options, HTML pages, checkpoints and the resumable state
    (which holds every rank's RNG states), in the single-process format.
"""
import os
import random
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import UserError
from .runtime import get_rng_state


class Mute:
    """Stands in for a rank-0-only object (the visualizer) on the other ranks: calls do nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class Session:
    """This process's place in a torchrun job, as a context manager around training.

    On entering, ranks other than 0 send their standard output to /dev/null (errors still reach
    stderr); on leaving, the ranks meet at a barrier, so none exits while rank 0 is still
    writing, and the process group is destroyed.
    """

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.enabled = all(key in environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        self.rank = int(environ.get("RANK", 0)) if self.enabled else 0
        self.world_size = int(environ.get("WORLD_SIZE", 1)) if self.enabled else 1
        self.local_rank = int(environ.get("LOCAL_RANK", 0)) if self.enabled else 0
        self.is_main = self.rank == 0
        self.device = torch.device("cpu")
        self.sampler_seed = None
        self._stdout = None

    # ------------------------------------------------------------------ life cycle
    def __enter__(self):
        if not self.is_main:
            self._stdout = sys.stdout
            sys.stdout = open(os.devnull, "w")
        return self

    def __exit__(self, exc_type, exc, tb):
        if dist.is_initialized():
            if exc_type is None:
                dist.barrier()
            dist.destroy_process_group()
        if self._stdout is not None:
            sys.stdout.close()
            sys.stdout = self._stdout
        return False

    def start(self, opt):
        """Join the process group; fix opt.gpu_ids to this process's GPU.  Call after parsing."""
        if not self.enabled:
            return
        if len(opt.gpu_ids) > 1:
            raise UserError(f"--gpu_ids {','.join(map(str, opt.gpu_ids))}: under torchrun each "
                            "process drives one GPU, cuda:LOCAL_RANK; pass --gpu_ids 0 (GPUs) or "
                            "-1 (CPU) and choose the GPU count with --nproc_per_node")
        if opt.gpu_ids:
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise UserError(f"LOCAL_RANK {self.local_rank} but only {count} GPU(s) are visible "
                                f"on this node; lower --nproc_per_node to at most {count}")
            torch.cuda.set_device(self.local_rank)
            opt.gpu_ids = [self.local_rank]
            self.device = torch.device("cuda", self.local_rank)
            backend = "nccl"
        else:
            backend = "gloo"
        dist.init_process_group(backend)  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
        # The data order is shuffled by a seed every rank must share, so that their shards of an
        # epoch are disjoint: --seed, or a number rank 0 draws (saved in the resumable state).
        self.sampler_seed = opt.seed if opt.seed is not None else self._broadcast_int(
            random.SystemRandom().randrange(2 ** 31))
        print(f"distributed: {self.world_size} processes ({backend}); this is rank 0 on {self.device}; "
              f"global batch {self.world_size} x --batch_size {opt.batch_size}")

    def shard(self):
        """(rank, world_size, shuffle seed) for data.create_dataset; None for a single process."""
        return (self.rank, self.world_size, self.sampler_seed) if self.enabled else None

    # ------------------------------------------------------------------ networks
    def parallelize(self, model):
        """Wrap the model's networks in DistributedDataParallel (else the model's own
        DataParallel rule).  Call after data_dependent_initialize and setup, so that netF's
        heads exist and resumed weights are loaded.

        Rank 0's parameters and buffers are broadcast first (DDP would also do so on wrapping;
        doing it here makes it explicit and covers networks that are not wrapped).  Networks
        are called several times before one backward (CUT's encoder-only passes, D in both the
        D and the G step with requires_grad toggled): every parameter a backward reaches gets
        its gradient exactly once, so the default find_unused_parameters=False is right.
        Buffers are synchronised once here and never in forward passes: an in-place broadcast
        between two forwards of one step would invalidate tensors the first saved for backward
        (the blur filters), and BatchNorm statistics stay per rank (rank 0's are saved).

        A model with gradient_sync = "by_hand" keeps its networks unwrapped (after the
        broadcast): DDP's reducer all-reduces a parameter's gradient in the first backward that
        reaches it after a forward, and ignores later backward passes through the same graph
        (retain_graph), even with find_unused_parameters or static_graph, so DRIT's second
        update from one forward would step on each rank's own gradients.  Such a model averages
        its gradients itself (`average_gradients`, called by BaseModel before each update).
        """
        if not self.enabled:
            model.parallelize()
            return
        device_ids = [self.local_rank] if self.device.type == "cuda" else None
        by_hand = getattr(model, "gradient_sync", "ddp") == "by_hand"

        def wrap(name, net):
            for tensor in list(net.parameters()) + list(net.buffers()):
                dist.broadcast(tensor.data, src=0)
            if by_hand or not any(p.requires_grad for p in net.parameters()):
                return net
            return DistributedDataParallel(net, device_ids=device_ids, forward_sync_buffers=False)

        model.parallelize(wrap)  # speed options before the wrapping, --compile after it

    # ------------------------------------------------------------------ agreement between ranks
    def _tensor(self, values, dtype=torch.float64):
        return torch.tensor(values, dtype=dtype, device=self.device)

    def _broadcast_int(self, value):
        tensor = self._tensor([value], torch.int64)
        dist.broadcast(tensor, src=0)
        return int(tensor.item())

    def agree_on_stop(self, stop):
        """Make a stop request seen by any rank the request of all (util.signals.StopSignals);
        returns it.  torchrun forwards SIGTERM to every worker, but not at the same instant."""
        if self.enabled:
            flag = self._tensor([int(stop.requested or 0)], torch.int64)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop.requested = int(flag.item()) or None
        return stop.requested

    def average(self, losses):
        """The mean of each loss over the ranks (what the logs show under torchrun)."""
        if not self.enabled or not losses:
            return losses
        values = self._tensor(list(losses.values()))
        dist.all_reduce(values)
        return type(losses)(zip(losses, (values / self.world_size).tolist()))

    def gather_rng_states(self, loader_generator, epoch_rng):
        """Every rank's RNG streams now and at the start of this epoch, for rank 0 to save
        (None for a single process).  All ranks must call it together."""
        if not self.enabled:
            return None
        mine = {"rng": get_rng_state(loader_generator), "epoch_rng": epoch_rng}
        ranks = [None] * self.world_size
        dist.all_gather_object(ranks, mine)
        return {"world_size": self.world_size, "sampler_seed": self.sampler_seed, "ranks": ranks}

    def adopt_saved_state(self, state, dataset):
        """Point `state`'s RNG states at this rank's own and restore the shuffle seed, so that
        restore_position replays this rank's shard and random draws exactly."""
        saved = state.get("distributed")
        saved_world = saved["world_size"] if saved else 1
        if saved_world == self.world_size:
            if saved:
                state["rng"] = saved["ranks"][self.rank]["rng"]
                state["epoch_rng"] = saved["ranks"][self.rank]["epoch_rng"]
                dataset.set_shuffle_seed(saved["sampler_seed"])
            return
        # Another process count: each rank reads another shard, so no replay can be exact.
        # Rank 0 takes the saved rank 0's streams; the others keep their own (--seed + rank).
        print(f"warning: {state['path']} was written by {saved_world} process(es), this run has "
              f"{self.world_size}: rank 0 restores the saved rank 0's RNG states, the other "
              "ranks start from their own seeds; the resumed run is no longer identical to an "
              "uninterrupted one")
        if saved and self.enabled:
            dataset.set_shuffle_seed(saved["sampler_seed"])
        if not self.is_main:
            state["rng"] = state["epoch_rng"] = get_rng_state(dataset.generator)


def average_gradients(params):
    """Replace each gradient of `params` by its mean over the ranks, in place (what DDP does
    during backward): one all-reduce of a flat copy per device and dtype.  Parameters without a
    gradient are left out; every rank must hold gradients for the same parameters, which it
    does when all run the same update (the NaN guard and the stop signal decide for all).
    Nothing happens in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    groups = {}
    seen = set()
    for p in params:
        if p.grad is not None and id(p) not in seen:
            seen.add(id(p))
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    world = dist.get_world_size()
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numel,), logical order
        dist.all_reduce(flat)
        flat /= world
        for g, mean in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(mean.view(g.shape))  # copy_ keeps g's memory format (channels_last)


def ranks_where(flag, device="cpu"):
    """The ranks of the job where `flag` holds, in order ([0] or [] for a single process).
    Every rank must call it at the same point: the NaN guard (models/base_model.py) uses it so
    that all ranks skip or stop together.  `device` must be this rank's GPU under nccl."""
    if not (dist.is_available() and dist.is_initialized()):
        return [0] if flag else []
    flags = torch.zeros(dist.get_world_size(), dtype=torch.int64, device=device)
    flags[dist.get_rank()] = int(bool(flag))
    dist.all_reduce(flags)
    return [rank for rank, value in enumerate(flags.tolist()) if value]
