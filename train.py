"""Train an unpaired translation model.

    python train.py --dataroot ./datasets/grumpifycat --name grumpycat_CUT --CUT_mode CUT
    python train.py --dataroot ./datasets/grumpifycat --name grumpycat_FastCUT --CUT_mode FastCUT
    python train.py ... --continue_train        # resume exactly where a stopped run left off

Checkpoints, options, logs and HTML samples go to <checkpoints_dir>/<name>/.  Exit status: 0 when
training finished, 2 for a user error, 3 when the NaN guard stopped the run, 128 + the signal
number (143 for SIGTERM, 130 for Ctrl-C) after a stop request was honoured with a resumable save.

    torchrun --nproc_per_node=N train.py ...    # DistributedDataParallel, see util/distributed.py
"""
import itertools
import time

import torch

from data import create_dataset
from metrics.training_eval import BestCheckpoint, TrainingEvaluator
from models import create_model
from options.train_options import TrainOptions
from util.checkpoint import prune_checkpoints
from util.checkpointer import Checkpointer
from util.distributed import Mute, Session
from util.errors import NonFiniteLossError, first_line, run_cli
from util.monitor import EpochProgress, echo
from util.runtime import get_rng_state, prepare_runtime
from util.signals import StopSignals
from util.training_state import Progress, find_resume_state, option_changes, restore_position
from util.visualizer import Visualizer


def crossed(period, before, after):
    """True when a sample counter going from `before` to `after` passes a multiple of `period`.

    The original fires on `total_iters % period == 0`, which never happens when the batch size
    does not divide the period; this fires exactly once per multiple passed.
    """
    return after // period > before // period


def main(argv=None):
    with Session() as ddp:  # torchrun's processes, or a single one (rank 0 of 1)
        return train(argv, ddp)


def start(opt, model, dataset, resume):
    """Initialise the model for a new run, or restore a stopped one; returns the run's Progress,
    the rest of the current epoch's batches (None: start a fresh epoch) and the epoch's RNGs.

    Data-dependent initialisation happens here, once: CUT builds its MLP heads from a batch
    (their widths depend on the features), before any weights are loaded into them.  A new run
    initialises on the first batch of its first epoch and then trains on that same batch, as the
    original; a resumed run restores every network, optimizer and RNG state and replays the data
    order up to where it stopped.
    """
    if resume is None:
        progress = Progress(epoch=opt.epoch_count, schedule_start=opt.epoch_count)
        epoch_rng = get_rng_state(dataset.generator)
        dataset.set_epoch(progress.epoch)
        batches = iter(dataset)
        first_batch = next(batches)
        model.data_dependent_initialize(first_batch)
        model.setup(opt)
        return progress, itertools.chain([first_batch], batches), epoch_rng
    progress = Progress(**resume["progress"])
    opt.epoch_count = progress.schedule_start  # the LR schedule counts from the run's start
    model.data_dependent_initialize(dataset.example_batch())
    model.setup(opt, training_state=resume)
    print(f"resuming from {resume['path']} ({progress.describe()}, written {resume['written']})")
    for change in option_changes(resume, opt, len(dataset)):
        print(f"notice: changed since the saved run: {change}")
    return progress, restore_position(resume, dataset, progress), resume["epoch_rng"]


def train(argv, ddp):
    # -- options, resumable state, randomness, devices
    options = TrainOptions(argv)
    opt = options.parse()
    ddp.start(opt)  # under torchrun: join the process group, one GPU per process
    resume = find_resume_state(opt, options.given)
    last_epoch = opt.n_epochs + opt.n_epochs_decay
    if resume is not None and resume["progress"]["epoch"] > last_epoch:
        print(f"{resume['path']}: the run already finished its {last_epoch} epochs; raise "
              "--n_epochs or --n_epochs_decay to train longer")
        return 0
    prepare_runtime(opt, seed_offset=ddp.rank)  # network weights: rank 0's, see ddp.parallelize

    # -- data and model
    dataset = create_dataset(opt, shard=ddp.shard())
    dataset_size = len(dataset)
    model = create_model(opt)
    print(f"The number of training images = {dataset_size}")
    if resume is not None:
        ddp.adopt_saved_state(resume, dataset)  # this rank's own RNG states and shuffle seed
    progress, batches, epoch_rng = start(opt, model, dataset, resume)
    saves = Checkpointer(opt, model, dataset, ddp, progress, epoch_rng,
                         saved_at=None if resume is None else progress.describe())
    resume = None  # the weights and moments it held now live in the model: free them
    ddp.parallelize(model)  # DistributedDataParallel under torchrun, else DataParallel if asked

    # -- logging and evaluation; files come once every check has passed, and under torchrun
    # only rank 0 writes or displays
    visualizer = Visualizer(opt, start=False) if ddp.is_main else Mute()
    evaluator = TrainingEvaluator(opt, model.device) if opt.eval_freq > 0 and ddp.is_main else None
    best = BestCheckpoint(model.save_dir, opt.eval_metric, resumed=saves.saved_at is not None,
                          net_name=model.generator_name)
    if ddp.is_main:
        options.save_options(opt)
    visualizer.start()
    bar = EpochProgress(opt.progress if ddp.is_main else "off")

    def stopped(signame):
        bar.close()
        print(f"received {signame}: saved a resumable checkpoint at {progress.describe()} "
              f"({saves.path}); to resume, run the same command with --continue_train")
        visualizer.close()

    # -- the loop
    train_start = time.time()
    with StopSignals() as stop:
        for epoch in range(progress.epoch, last_epoch + 1):
            epoch_start = time.time()
            visualizer.reset()
            if batches is None:  # a fresh epoch
                saves.new_epoch_rng()
                dataset.set_epoch(epoch)
                batches = iter(dataset)
            bar.start(epoch, last_epoch, dataset_size // (opt.batch_size * ddp.world_size),
                      progress.batches)
            iter_data_time = time.time()

            for data in batches:
                t_data = time.time() - iter_data_time
                before = progress.total_iters
                train_step(model, data, data["A"].size(0) * ddp.world_size, opt, progress, epoch,
                           saves.last_good)
                total_iters = progress.total_iters
                visualizer.step = total_iters
                bar.update()

                if ddp.is_main and crossed(opt.display_freq, before, total_iters):
                    model.compute_visuals()
                    visualizer.display_current_results(model.get_current_visuals(), epoch,
                                                       crossed(opt.update_html_freq, before, total_iters))
                if crossed(opt.print_freq, before, total_iters):
                    losses = ddp.average(model.get_current_losses())  # the mean over ranks
                    visualizer.print_current_losses(epoch, progress.epoch_iter, losses,
                                                    progress.optimize_time, t_data,
                                                    total_iters=total_iters, lr=model.get_current_lr(),
                                                    elapsed=time.time() - train_start)
                    visualizer.plot_current_losses(epoch, progress.epoch_iter / dataset_size, losses)
                if crossed(opt.save_latest_freq, before, total_iters):
                    echo(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
                    echo(opt.name)
                    saves.save(f"iter_{total_iters}" if opt.save_by_iter else "latest")
                if ddp.agree_on_stop(stop):
                    saves.save("latest")
                    stopped(stop.name)
                    return 128 + stop.requested
                iter_data_time = time.time()
            batches = None
            bar.close()

            # -- end of the epoch: evaluate, decay the learning rate, save
            if evaluator is not None and epoch % opt.eval_freq == 0:
                evaluate(evaluator, model, opt, epoch, progress, visualizer, best, saves)
            print(f"End of epoch {epoch} / {last_epoch} \t Time Taken: {int(time.time() - epoch_start)} sec")
            model.update_learning_rate()
            progress.next_epoch()
            if epoch % opt.save_epoch_freq == 0:
                # the state stands at the start of the next epoch, its learning rate already set
                print(f"saving the model at the end of epoch {epoch}, iters {progress.total_iters}")
                saves.save("latest", epoch)
                for path in prune_checkpoints(model.save_dir, opt.keep_last if ddp.is_main else 0):
                    print(f"removed {path} (--keep_last {opt.keep_last})")
            if ddp.agree_on_stop(stop) and epoch < last_epoch:  # asked in the end-of-epoch work
                saves.save("latest")
                stopped(stop.name)
                return 128 + stop.requested

        # The original only saves on multiples of --save_epoch_freq, so the final epochs of a run
        # whose length is not such a multiple were lost; keep them as `latest`.
        if last_epoch % opt.save_epoch_freq != 0:
            print(f"saving the final model (epoch {last_epoch}, iters {progress.total_iters})")
            saves.save("latest")
    if model.skipped_steps:
        print(f"warning: {model.skipped_steps} updates were skipped by --nan_guard skip")
    visualizer.close()
    return 0


def train_step(model, data, batch_size, opt, progress, epoch, last_good):
    """One optimisation step of the model on `data` (`batch_size` samples over all ranks);
    advances `progress`.  `last_good()` says where the last checkpoint stands, for errors.

    The step is timed only when its time will be printed: timing a GPU step needs a host sync
    before and after it, which would stall the queue on every step.
    """
    before = progress.total_iters
    timed = crossed(opt.print_freq, before, before + batch_size)
    if timed:
        synchronize(opt)
    t0 = time.time()
    model.set_input(data)
    try:
        model.optimize_parameters()
        model.step_iteration_schedulers()  # --lr_policy step_iter (MUNIT's); else nothing
    except NonFiniteLossError as err:
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch}, iteration {progress.batches + 1} "
            f"(total_iters {before + batch_size}): {err}; the run stopped without "
            f"saving, {last_good()}; --nan_guard skip would leave such updates out",
            err.name, err.value) from None
    progress.step(batch_size)
    if timed:
        synchronize(opt)
        progress.optimize_time = (time.time() - t0) / batch_size


def synchronize(opt):
    if opt.gpu_ids:
        torch.cuda.synchronize()


def evaluate(evaluator, model, opt, epoch, progress, visualizer, best, saves):
    """--eval_freq: score the A -> B generator, log the scores, keep the best weights."""
    try:
        scores = evaluator(dict(model.networks())[model.generator_name])
    except Exception as err:  # evaluation is a bonus: it must never end a run
        echo(f"warning: evaluation at epoch {epoch} failed ({type(err).__name__}: "
             f"{first_line(err, default='')}); training goes on")
        return
    record = {"epoch": epoch, "total_iters": progress.total_iters, **scores}  # scores name their protocol
    visualizer.log_metrics(record)
    name = model.generator_name  # G; CycleGAN's A -> B generator is G_A
    if best.update(record, lambda: saves.save("best", names=[name], state=False)):
        print(f"best {opt.eval_metric.upper()} so far: saved best_net_{name}.pth (epoch {epoch})")


if __name__ == "__main__":
    run_cli(main)
