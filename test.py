"""Translate test images with a trained generator and write an HTML page of the results.

    python test.py --dataroot ./datasets/grumpifycat --name grumpycat_CUT --CUT_mode CUT --phase train

Results go to <results_dir>/<name>/<phase>_<epoch>/index.html and images/<visual>/<stem>.png.
"""
import os

from data import create_dataset
from models import create_model
from options.test_options import TestOptions
from util import html
from util.errors import run_cli
from util.runtime import prepare_runtime
from util.visualizer import save_images


def main(argv=None):
    options = TestOptions(argv)
    opt = options.parse()
    # Test-time settings, as the original: one image at a time, in order, no augmentation.
    opt.num_threads = 0
    opt.batch_size = 1
    opt.serial_batches = True
    opt.no_flip = True
    opt.display_id = -1
    prepare_runtime(opt)

    dataset = create_dataset(opt)
    model = create_model(opt)
    model.setup(opt)  # loads <epoch>_net_<name>.pth of the test-time networks (G; G_A, G_B)
    options.save_options(opt)  # <phase>_opt.txt, only once the data and weights were found
    model.parallelize()
    if opt.eval:
        model.eval()

    web_dir = os.path.join(opt.results_dir, opt.name, f"{opt.phase}_{opt.epoch}")
    print(f"creating web directory {web_dir}")
    webpage = html.HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}")

    for i, data in enumerate(dataset):
        if i >= opt.num_test:
            break
        model.set_input(data)
        model.test()
        image_paths = model.get_image_paths()
        if i % 5 == 0:
            print(f"processing ({i:04d})-th image... {image_paths}")
        save_images(webpage, model.get_current_visuals(), image_paths, width=opt.display_winsize)
    webpage.save()
    print(f"results: {os.path.join(web_dir, 'index.html')}")
    return 0


if __name__ == "__main__":
    run_cli(main)
