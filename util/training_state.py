"""The resumable checkpoint, `<checkpoints_dir>/<name>/latest_state.pth` (the original has none).

The original saves network weights only, so its `--continue_train` restarts Adam from zero and
needs the epoch typed by hand.  This file holds everything a training step depends on, so that
`--continue_train` goes on exactly as if the run had never stopped:

    networks, optimizers, schedulers   model.training_state()
    progress                           Progress below: epoch, batches and samples done in it, ...
    rng                                every RNG stream at the moment of saving
    epoch_rng                          every RNG stream just before this epoch's loader was made
    options, dataset_size              the run's resolved options, to report what a resume changes
    distributed                        under torchrun: world size, shuffle seed, and `rng` and
                                       `epoch_rng` of every rank (rank 0 writes the file)

Resuming mid-epoch replays the epoch's data order: the RNGs are set to `epoch_rng`, the loader is
recreated (same shuffle, same worker seeds), the batches already trained on are read and dropped,
and then the RNGs are set to `rng`.  Reading those batches again costs data loading only.
The file is written atomically, weights included, so it is always self-consistent even when the
`latest_net_*.pth` files beside it are newer or older.
"""
import dataclasses
import os
import time

import torch

from .checkpoint import STATE_FILE, atomic_torch_save
from .errors import UserError
from .runtime import get_rng_state, set_rng_state
from .util import jsonable

FORMAT_VERSION = 1

# Options that may differ between a run and its resumption without changing the training itself.
_BOOKKEEPING_OPTIONS = {
    "continue_train", "epoch", "epoch_count", "isTrain", "phase", "verbose", "gpu_ids", "name",
    "checkpoints_dir", "display_freq", "display_ncols", "display_id", "display_server",
    "display_env", "display_port", "display_winsize", "update_html_freq", "print_freq", "no_html",
    "save_latest_freq", "save_epoch_freq", "save_by_iter", "keep_last", "nan_guard",
    "evaluation_freq", "easy_label", "suffix", "eval_freq", "eval_metric", "eval_num_test",
    "inception_weights", "fid_cache_dir", "tensorboard", "progress", "seg_model", "seg_weights",
    "seg_labels",
}

# Options whose values live in the optimizers' and schedulers' state once training has begun.
_OPTIMIZER_OPTIONS = {"lr", "beta1", "beta2"}


@dataclasses.dataclass
class Progress:
    """Where a run stands.  `batches`/`epoch_iter` count what has been trained in `epoch`."""

    epoch: int
    schedule_start: int  # the --epoch_count the LR schedulers were built with
    batches: int = 0
    epoch_iter: int = 0  # samples trained in this epoch
    total_iters: int = 0  # samples trained since the run began
    optimize_time: float = 0.1  # per-sample compute time of the last printed step (logs)

    def step(self, batch_size):
        self.batches += 1
        self.epoch_iter += batch_size
        self.total_iters += batch_size

    def next_epoch(self):
        self.epoch += 1
        self.batches = 0
        self.epoch_iter = 0

    def describe(self):
        return f"epoch {self.epoch}, {self.epoch_iter} samples into it, total_iters {self.total_iters}"


def state_path(opt):
    return os.path.join(opt.checkpoints_dir, opt.name, STATE_FILE)


def save_training_state(path, model, progress, epoch_rng, loader_generator, opt, dataset_size,
                        distributed=None):
    """Write the resumable checkpoint atomically; the RNGs are captured now.  Under torchrun,
    `distributed` holds every rank's RNG states (util.distributed.Session.gather_rng_states)."""
    state = {
        "format": FORMAT_VERSION,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": str(torch.__version__),
        **model.training_state(),
        "progress": dataclasses.asdict(progress),
        "rng": get_rng_state(loader_generator),
        "epoch_rng": epoch_rng,
        "options": {key: jsonable(value) for key, value in sorted(vars(opt).items())},
        "dataset_size": dataset_size,
    }
    if distributed is not None:
        state["distributed"] = distributed
    atomic_torch_save(state, path)


def read_training_state(path):
    """Load and check a resumable checkpoint; problems become one-line UserErrors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # written atomically by us, so this is a foreign or damaged file
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        unpickler = [line for line in lines if line.startswith("WeightsUnpickler error")]
        reason = (unpickler or lines or [type(err).__name__])[0]
        raise UserError(f"cannot read {path}: {reason}; move it away to continue from the "
                        "*_net_*.pth weights only (fresh optimizers, as the original)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{path} is not a resumable checkpoint of format {FORMAT_VERSION} "
                        f"(found {found}); move it away to continue from the weights only")
    state["path"] = path
    return state


def find_resume_state(opt, given):
    """The state to resume from, or None for a new run or the original's weights-only resume.

    `given` is the set of options typed on the command line.  With --continue_train the
    resumable state is used when the run that wrote it chose its starting weights the same way
    (the same --epoch and --pretrained_name, so the command that started a fine-tuning run also
    resumes it); a different choice asks for other weights: the original's behaviour applies
    (weights only, fresh optimizers, --epoch_count by hand).
    """
    if not opt.continue_train:
        return None
    path = state_path(opt)
    if not os.path.isfile(path) and not opt.pretrained_name and not _network_files(opt):
        # Every save writes the state before any network file (util/checkpointer.py): this run
        # stopped before its first save was complete, so it starts again from the beginning.
        print(f"notice: {os.path.dirname(path)} holds no checkpoint yet (the run stopped before "
              "its first save): starting from the beginning")
        opt.continue_train = False
        return None
    if not os.path.isfile(path):
        print(f"notice: no {STATE_FILE} in {os.path.dirname(path)}: loading the --epoch {opt.epoch} "
              f"weights only, fresh optimizers, starting at --epoch_count {opt.epoch_count} "
              "(as the original)")
        return None
    state = read_training_state(path)
    saved = state["options"]
    for key in ("epoch", "pretrained_name"):
        if jsonable(getattr(opt, key)) != saved.get(key):
            print(f"notice: {path} was written by a run with --{key} {saved.get(key)}, this one asks "
                  f"for --{key} {getattr(opt, key)}: loading those weights only, fresh optimizers, "
                  f"starting at --epoch_count {opt.epoch_count} (as the original)")
            return None
    progress = state["progress"]
    if "epoch_count" in given and opt.epoch_count not in (progress["epoch"], saved["epoch_count"]):
        raise UserError(f"--epoch_count {opt.epoch_count} disagrees with {path}, which resumes at "
                        f"epoch {progress['epoch']} (after {progress['batches']} batches); drop "
                        "--epoch_count to resume exactly, or pick weights with --epoch (e.g. "
                        "--epoch 5) to continue from weights only, as the original")
    if opt.lr_policy != saved["lr_policy"]:
        raise UserError(f"--lr_policy {opt.lr_policy} differs from the saved run's "
                        f"{saved['lr_policy']} ({path}); resume with --lr_policy {saved['lr_policy']}, "
                        f"or start a new run from these weights: another --name with --continue_train "
                        f"--pretrained_name {opt.name}")
    return state


def _network_files(opt):
    """The `<--epoch>_net_*.pth` files in the run's folder."""
    folder = os.path.join(opt.checkpoints_dir, opt.name)
    prefix = f"{opt.epoch}_net_"
    return [name for name in os.listdir(folder) if name.startswith(prefix)] \
        if os.path.isdir(folder) else []


def option_changes(state, opt, dataset_size):
    """Human-readable differences between the saved run and this one that affect training."""
    saved = state["options"]
    changes = []
    for key, value in sorted(vars(opt).items()):
        if key in _BOOKKEEPING_OPTIONS or key not in saved:
            continue
        if jsonable(value) != saved[key]:
            kept = " (no effect: the restored optimizers keep the saved value)" \
                if key in _OPTIMIZER_OPTIONS else ""
            changes.append(f"--{key} {saved[key]} -> {jsonable(value)}{kept}")
    if state["dataset_size"] != dataset_size:
        changes.append(f"data set size {state['dataset_size']} -> {dataset_size}")
    return changes


def restore_position(state, dataset, progress):
    """Put the RNGs and the data loader where the saved run was; returns the loader's iterator
    for the rest of the epoch (None at an epoch boundary, where the loop starts a new epoch)."""
    generator = dataset.generator
    problems = []
    batches = None
    if progress.batches > 0:
        problems += set_rng_state(state["epoch_rng"], generator)
        dataset.set_epoch(progress.epoch)
        batches = iter(dataset)
        print(f"resuming epoch {progress.epoch}: replaying its data order past the "
              f"{progress.batches} batches already trained")
        for done in range(progress.batches):
            if next(batches, None) is None:
                raise UserError(f"{state['path']} resumes after batch {progress.batches} of epoch "
                                f"{progress.epoch}, but the data set now has only {done} batches "
                                "per epoch; resume with the same data and --batch_size")
    problems += set_rng_state(state["rng"], generator)
    for problem in sorted(set(problems)):
        print(f"warning: could not restore {problem}; the resumed run is no longer identical "
              "to an uninterrupted one")
    return batches
