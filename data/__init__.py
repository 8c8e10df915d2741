"""Dataset registry and the DataLoader wrapper.

`--dataset_mode NAME` picks a class from DATASETS; `create_dataset(opt)` returns an iterable
loader of batches (dicts of stacked tensors plus lists of paths).

Randomness: shuffling, the random B pick (Python `random`), crops and flips (torch) and zoom/patch
offsets (numpy) all happen in the process that loads the item.  With --num_threads 0 that is the
main process, seeded by the caller (util.runtime).  With workers, and --seed set, the loader owns a
torch.Generator: it drives the shuffle and each epoch draws from it the base seed that workers
derive their torch seed from; `seed_worker` then seeds `random` and numpy from that, so every
epoch differs yet the whole pipeline replays bit for bit.

Workers ignore SIGINT and SIGTERM: Ctrl-C in a terminal and a cluster's pre-emption signal reach
every process of the job, and the main process wants its workers alive to finish the current
iteration and save (see util/signals.py); it shuts them down itself when it exits.
"""
import random
import signal

import numpy as np
import torch
import torch.utils.data

from data.base_dataset import BaseDataset, check_preprocess_options
from data.single_dataset import SingleDataset
from data.singleimage_dataset import SingleImageDataset
from data.unaligned_dataset import UnalignedDataset
from util.errors import UserError

DATASETS = {
    'unaligned': UnalignedDataset,
    'single': SingleDataset,
    'singleimage': SingleImageDataset,  # SinCUT
}

__all__ = ['DATASETS', 'BaseDataset', 'check_preprocess_options', 'find_dataset_class',
           'get_option_setter', 'create_dataset', 'CustomDatasetDataLoader', 'seed_worker',
           'init_worker']


def find_dataset_class(name):
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown --dataset_mode '{name}'; "
                        f"choose from: {', '.join(sorted(DATASETS))}") from None


def get_option_setter(name):
    """The dataset's static `modify_commandline_options(parser, is_train)`."""
    return find_dataset_class(name).modify_commandline_options


def create_dataset(opt, shard=None):
    """Build the dataset named by opt.dataset_mode and wrap it in a loader.

    `shard` = (rank, world_size, shuffle seed) under torchrun (util.distributed): this process
    then reads only its 1/world_size of every epoch.
    """
    return CustomDatasetDataLoader(opt, shard)


def seed_worker(worker_id):
    """DataLoader worker_init_fn: seed `random` and numpy from the worker's torch seed.

    torch gives each worker base_seed + worker_id, where base_seed comes from the loader's
    generator; deriving the other two RNGs from it makes them reproducible as well.
    """
    worker_seed = torch.initial_seed() % 2 ** 32  # numpy accepts 32-bit seeds only
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def init_worker(worker_id):
    """DataLoader worker_init_fn without --seed: only leave the stop signals to the main process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def init_seeded_worker(worker_id):
    """DataLoader worker_init_fn with --seed."""
    init_worker(worker_id)
    seed_worker(worker_id)


class CustomDatasetDataLoader:
    """Dataset + torch DataLoader, capped at opt.max_dataset_size samples per epoch."""

    def __init__(self, opt, shard=None):
        self.opt = opt
        check_preprocess_options(opt)
        self.dataset = find_dataset_class(opt.dataset_mode)(opt)
        print(f"dataset [{type(self.dataset).__name__}] was created")
        drop_last = bool(opt.isTrain)  # training batches are always full
        size = len(self.dataset)
        if size == 0:
            raise UserError(f"the dataset is empty: {self.dataset.describe()}")
        rank, self.world_size, shuffle_seed = shard or (0, 1, None)
        if drop_last and size // self.world_size < opt.batch_size:
            shared = f", shared by {self.world_size} processes" if self.world_size > 1 else ""
            raise UserError(f"--batch_size {opt.batch_size} is larger than the training set "
                            f"({size} samples: {self.dataset.describe()}{shared}), so an epoch "
                            f"would have no batches; lower --batch_size or add images")
        generator, init_fn = None, init_worker
        seed = getattr(opt, 'seed', None)
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(int(seed) + rank)  # worker seeds differ between ranks
            init_fn = init_seeded_worker
        # Under torchrun each rank reads its own equal share of a permutation every rank draws
        # alike (seed + epoch); equal shares keep the ranks in step (one all-reduce per batch).
        self.sampler = None
        if shard is not None:
            self.sampler = torch.utils.data.DistributedSampler(
                self.dataset, num_replicas=self.world_size, rank=rank,
                shuffle=not opt.serial_batches, seed=shuffle_seed, drop_last=drop_last)
        # Workers are not persistent: each epoch's fresh workers copy the dataset and so see the
        # current_epoch set by set_epoch (the fine-tuning switch relies on it).
        self.dataloader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=opt.batch_size,
            shuffle=not opt.serial_batches and self.sampler is None,
            sampler=self.sampler,
            num_workers=int(opt.num_threads),
            drop_last=drop_last,
            generator=generator,
            worker_init_fn=init_fn,
            # page-locked batches let BaseModel.to_device copy them to the GPU asynchronously
            pin_memory=bool(getattr(opt, "gpu_ids", None)) and torch.cuda.is_available(),
        )

    def load_data(self):
        return self

    @property
    def generator(self):
        """The loader's own torch.Generator (with --seed), else None; part of the RNG state."""
        return self.dataloader.generator

    def example_batch(self):
        """A batch of the first items, read in this process (for shape-dependent initialisation
        when resuming, where the real first batch comes from the replayed epoch)."""
        items = [self.dataset[i % len(self.dataset)] for i in range(self.opt.batch_size)]
        return torch.utils.data.default_collate(items)

    def set_epoch(self, epoch):
        self.dataset.current_epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def set_shuffle_seed(self, seed):
        """The seed of the distributed shuffle (a resumed run takes the saved one)."""
        if self.sampler is not None:
            self.sampler.seed = seed

    def __len__(self):
        return int(min(len(self.dataset), self.opt.max_dataset_size))

    def __iter__(self):
        error = None
        try:
            for i, data in enumerate(self.dataloader):
                if i * self.opt.batch_size * self.world_size >= self.opt.max_dataset_size:
                    break
                yield data
        except UserError as err:
            error = _without_worker_traceback(err)
            # The traceback runs through torch's DataLoader frames in a reference cycle; left
            # alone, the iterator and its workers live until the cyclic GC, whose shutdown then
            # stalls for seconds.  Dropping it frees them now.
            err.__traceback__ = None
        if error is not None:
            raise error  # outside the except block: no chaining to the worker's exception


def _without_worker_traceback(err):
    """A UserError raised inside a worker is re-raised by torch with the worker's traceback in
    its message; recover the original one-line message so the user sees a single line."""
    text = str(err)
    marker = 'UserError: '
    if text.startswith('Caught UserError') and marker in text:
        return UserError(text.rsplit(marker, 1)[1].strip())
    return err
