"""Train an unpaired translation model.

    python train.py --dataroot ./datasets/grumpifycat --name grumpycat_CUT --CUT_mode CUT
    python train.py --dataroot ./datasets/grumpifycat --name grumpycat_FastCUT --CUT_mode FastCUT

Checkpoints, options, logs and HTML samples go to <checkpoints_dir>/<name>/.
"""
import time

import torch

from data import create_dataset
from models import create_model
from options.train_options import TrainOptions
from util.errors import run_cli
from util.runtime import prepare_runtime
from util.visualizer import Visualizer


def crossed(period, before, after):
    """True when a sample counter going from `before` to `after` passes a multiple of `period`.

    The original fires on `total_iters % period == 0`, which never happens when the batch size
    does not divide the period; this fires exactly once per multiple passed.
    """
    return after // period > before // period


def main():
    # -- options, randomness, devices
    opt = TrainOptions().parse()
    prepare_runtime(opt)

    def synchronize():
        if opt.gpu_ids:
            torch.cuda.synchronize()

    # -- data, model, logging
    dataset = create_dataset(opt)
    dataset_size = len(dataset)
    model = create_model(opt)
    print(f"The number of training images = {dataset_size}")
    visualizer = Visualizer(opt)
    last_epoch = opt.n_epochs + opt.n_epochs_decay

    # -- data-dependent initialisation, once, on the first batch of the first epoch.  CUT
    # builds its MLP heads here (their widths depend on the features); weights are loaded
    # (--continue_train) only afterwards, so the heads exist to receive them.  The same batch
    # is then trained on as the first iteration, as in the original.
    dataset.set_epoch(opt.epoch_count)
    first_epoch_batches = iter(dataset)
    first_batch = next(first_epoch_batches)
    model.data_dependent_initialize(first_batch)
    model.setup(opt)
    model.parallelize()

    def batches_of(epoch):
        if epoch == opt.epoch_count:
            yield first_batch
            yield from first_epoch_batches
        else:
            dataset.set_epoch(epoch)
            yield from dataset

    # -- training loop
    total_iters = 0
    optimize_time = 0.1  # per-sample compute time, exponential moving average
    train_start = time.time()
    last_saved_epoch = None
    for epoch in range(opt.epoch_count, last_epoch + 1):
        epoch_start = time.time()
        iter_data_time = time.time()
        epoch_iter = 0
        visualizer.reset()

        for data in batches_of(epoch):
            iter_start = time.time()
            t_data = iter_start - iter_data_time
            batch_size = data["A"].size(0)
            before = total_iters
            total_iters += batch_size
            epoch_iter += batch_size

            synchronize()
            t0 = time.time()
            model.set_input(data)
            model.optimize_parameters()
            synchronize()
            optimize_time = 0.995 * optimize_time + 0.005 * (time.time() - t0) / batch_size

            if crossed(opt.display_freq, before, total_iters):
                save_result = crossed(opt.update_html_freq, before, total_iters)
                model.compute_visuals()
                visualizer.display_current_results(model.get_current_visuals(), epoch, save_result)

            if crossed(opt.print_freq, before, total_iters):
                losses = model.get_current_losses()
                visualizer.print_current_losses(epoch, epoch_iter, losses, optimize_time, t_data,
                                                total_iters=total_iters, lr=model.get_current_lr(),
                                                elapsed=time.time() - train_start)
                visualizer.plot_current_losses(epoch, epoch_iter / dataset_size, losses)

            if crossed(opt.save_latest_freq, before, total_iters):
                print(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
                print(opt.name)
                model.save_networks(f"iter_{total_iters}" if opt.save_by_iter else "latest")

            iter_data_time = time.time()

        if epoch % opt.save_epoch_freq == 0:
            print(f"saving the model at the end of epoch {epoch}, iters {total_iters}")
            model.save_networks("latest")
            model.save_networks(epoch)
            last_saved_epoch = epoch

        print(f"End of epoch {epoch} / {last_epoch} \t Time Taken: {int(time.time() - epoch_start)} sec")
        model.update_learning_rate()

    # The original only saves on multiples of --save_epoch_freq, so the final epochs of a run
    # whose length is not such a multiple were lost; keep them as `latest`.
    if last_saved_epoch != last_epoch:
        print(f"saving the final model (epoch {last_epoch}, iters {total_iters})")
        model.save_networks("latest")
    visualizer.close()


if __name__ == "__main__":
    run_cli(main)
