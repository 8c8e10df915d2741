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
from metrics.fid import describe_protocol
from metrics.training_eval import BestCheckpoint, TrainingEvaluator
from models import create_model
from options.train_options import TrainOptions
from util.checkpoint import prune_checkpoints
from util.distributed import Mute, Session
from util.errors import NonFiniteLossError, first_line, run_cli
from util.monitor import EpochProgress, echo
from util.runtime import get_rng_state, prepare_runtime
from util.signals import StopSignals
from util.training_state import (Progress, find_resume_state, option_changes, restore_position,
                                 save_training_state, state_path)
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

    def synchronize():
        if opt.gpu_ids:
            torch.cuda.synchronize()

    # -- data, model, logging
    dataset = create_dataset(opt, shard=ddp.shard())
    dataset_size = len(dataset)
    model = create_model(opt)
    print(f"The number of training images = {dataset_size}")
    # files come once every check has passed; under torchrun only rank 0 writes or displays
    visualizer = Visualizer(opt, start=False) if ddp.is_main else Mute()

    # -- data-dependent initialisation, once.  CUT builds its MLP heads here (their widths depend
    # on the features); weights are loaded only afterwards, so the heads exist to receive them.
    # A new run initialises on the first batch of its first epoch and then trains on that same
    # batch, as the original; a resumed run restores every network, optimizer and RNG state and
    # replays the data order up to where it stopped.
    if resume is None:
        progress = Progress(epoch=opt.epoch_count, schedule_start=opt.epoch_count)
        epoch_rng = get_rng_state(dataset.generator)
        dataset.set_epoch(progress.epoch)
        batches = iter(dataset)
        first_batch = next(batches)
        batches = itertools.chain([first_batch], batches)
        model.data_dependent_initialize(first_batch)
        model.setup(opt)
        saved_at = None  # where the last resumable checkpoint stands, for messages
    else:
        progress = Progress(**resume["progress"])
        ddp.adopt_saved_state(resume, dataset)  # this rank's own RNG states and shuffle seed
        epoch_rng = resume["epoch_rng"]
        opt.epoch_count = progress.schedule_start  # the LR schedule counts from the run's start
        model.data_dependent_initialize(dataset.example_batch())
        model.setup(opt, training_state=resume)
        print(f"resuming from {resume['path']} ({progress.describe()}, written {resume['written']})")
        for change in option_changes(resume, opt, dataset_size):
            print(f"notice: changed since the saved run: {change}")
        batches = restore_position(resume, dataset, progress)
        saved_at = progress.describe()
        resume = None  # the weights and moments it held now live in the model: free them
    ddp.parallelize(model)  # DistributedDataParallel under torchrun, else DataParallel if asked
    evaluator = TrainingEvaluator(opt, model.device) if opt.eval_freq > 0 and ddp.is_main else None
    best = BestCheckpoint(model.save_dir, opt.eval_metric, resumed=saved_at is not None,
                          net_name=model.generator_name)
    if ddp.is_main:
        options.save_options(opt)  # only now that every check has passed
    visualizer.start()
    bar = EpochProgress(opt.progress if ddp.is_main else "off")

    def save_state():
        nonlocal saved_at
        ranks = ddp.gather_rng_states(dataset.generator, epoch_rng)  # every rank takes part
        if ddp.is_main:
            save_training_state(state_path(opt), model, progress, epoch_rng, dataset.generator,
                                opt, dataset_size, distributed=ranks)
        saved_at = progress.describe()

    def save_networks(*labels, names=None):
        bad = model.nonfinite_networks()
        if bad:  # never overwrite a good checkpoint with broken weights
            raise NonFiniteLossError(f"net{bad[0]} holds NaN or infinite weights at epoch "
                                     f"{progress.epoch}, total_iters {progress.total_iters}; "
                                     f"nothing was saved, {last_good()}")
        for label in labels:
            if ddp.is_main:  # the weights are the same on every rank
                model.save_networks(label, names)

    def last_good():
        if saved_at is None:
            return "and this run has not written a checkpoint yet"
        return f"the last good checkpoint is {state_path(opt)} ({saved_at})"

    def stop_for(signame):
        bar.close()
        print(f"received {signame}: saved a resumable checkpoint at {progress.describe()} "
              f"({state_path(opt)}); to resume, run the same command with --continue_train")
        visualizer.close()

    # -- training loop
    train_start = time.time()
    last_saved_epoch = None
    with StopSignals() as stop:
        for epoch in range(progress.epoch, last_epoch + 1):
            epoch_start = time.time()
            visualizer.reset()
            if batches is None:  # a fresh epoch
                epoch_rng = get_rng_state(dataset.generator)
                dataset.set_epoch(epoch)
                batches = iter(dataset)
            bar.start(epoch, last_epoch, dataset_size // (opt.batch_size * ddp.world_size),
                      progress.batches)
            iter_data_time = time.time()

            for data in batches:
                iter_start = time.time()
                t_data = iter_start - iter_data_time
                batch_size = data["A"].size(0) * ddp.world_size  # samples, over all ranks
                before = progress.total_iters

                # Time the step only when its time will be printed: timing a GPU step needs a
                # host sync before and after it, which would stall the queue on every step.
                timed = crossed(opt.print_freq, before, before + batch_size)
                if timed:
                    synchronize()
                t0 = time.time()
                model.set_input(data)
                try:
                    model.optimize_parameters()
                except NonFiniteLossError as err:
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {epoch}, iteration {progress.batches + 1} "
                        f"(total_iters {before + batch_size}): {err}; the run stopped without "
                        f"saving, {last_good()}; --nan_guard skip would leave such updates out",
                        err.name, err.value) from None
                progress.step(batch_size)
                if timed:
                    synchronize()
                    progress.optimize_time = (time.time() - t0) / batch_size
                total_iters = progress.total_iters
                visualizer.step = total_iters
                bar.update()

                if ddp.is_main and crossed(opt.display_freq, before, total_iters):
                    save_result = crossed(opt.update_html_freq, before, total_iters)
                    model.compute_visuals()
                    visualizer.display_current_results(model.get_current_visuals(), epoch, save_result)

                if crossed(opt.print_freq, before, total_iters):
                    losses = ddp.average(model.get_current_losses())  # the mean over ranks
                    visualizer.print_current_losses(epoch, progress.epoch_iter, losses,
                                                    progress.optimize_time, t_data,
                                                    total_iters=total_iters, lr=model.get_current_lr(),
                                                    elapsed=time.time() - train_start)
                    visualizer.plot_current_losses(epoch, progress.epoch_iter / dataset_size, losses)

                saved_latest = False
                if crossed(opt.save_latest_freq, before, total_iters):
                    echo(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
                    echo(opt.name)
                    save_networks(f"iter_{total_iters}" if opt.save_by_iter else "latest")
                    save_state()
                    saved_latest = not opt.save_by_iter

                if ddp.agree_on_stop(stop):
                    if not saved_latest:
                        save_networks("latest")
                    if saved_at != progress.describe():
                        save_state()
                    stop_for(stop.name)
                    return 128 + stop.requested

                iter_data_time = time.time()

            batches = None
            bar.close()
            if epoch % opt.save_epoch_freq == 0:
                print(f"saving the model at the end of epoch {epoch}, iters {progress.total_iters}")
                save_networks("latest", epoch)
                last_saved_epoch = epoch
                for path in prune_checkpoints(model.save_dir, opt.keep_last if ddp.is_main else 0):
                    print(f"removed {path} (--keep_last {opt.keep_last})")

            if evaluator is not None and epoch % opt.eval_freq == 0:
                try:
                    scores = evaluator(dict(model.networks())[model.generator_name])
                except Exception as err:  # evaluation is a bonus: it must never end a run
                    echo(f"warning: evaluation at epoch {epoch} failed ({type(err).__name__}: "
                         f"{first_line(err, default='')}); training goes on")
                else:
                    record = {"epoch": epoch, "total_iters": progress.total_iters, **scores,
                              **describe_protocol()}
                    visualizer.log_metrics(record)
                    name = model.generator_name  # G; CycleGAN's A -> B generator is G_A
                    if best.update(record, lambda: save_networks("best", names=[name])):
                        print(f"best {opt.eval_metric.upper()} so far: saved best_net_{name}.pth "
                              f"(epoch {epoch})")

            print(f"End of epoch {epoch} / {last_epoch} \t Time Taken: {int(time.time() - epoch_start)} sec")
            model.update_learning_rate()
            progress.next_epoch()
            if last_saved_epoch == epoch:
                save_state()  # at the start of the next epoch, learning rate already updated
            if ddp.agree_on_stop(stop) and epoch < last_epoch:  # asked in the end-of-epoch work
                if last_saved_epoch != epoch:
                    save_networks("latest")
                    save_state()
                stop_for(stop.name)
                return 128 + stop.requested

        # The original only saves on multiples of --save_epoch_freq, so the final epochs of a run
        # whose length is not such a multiple were lost; keep them as `latest`.
        if last_saved_epoch != last_epoch:
            print(f"saving the final model (epoch {last_epoch}, iters {progress.total_iters})")
            save_networks("latest")
            save_state()
    if model.skipped_steps:
        print(f"warning: {model.skipped_steps} updates were skipped by --nan_guard skip")
    visualizer.close()
    return 0


if __name__ == "__main__":
    run_cli(main)
