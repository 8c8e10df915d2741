"""Translate test images with a trained generator and write an HTML page of the results.

    python test.py --dataroot ./datasets/grumpifycat --name grumpycat_CUT --CUT_mode CUT --phase train

Results go to <results_dir>/<name>/<phase>_<epoch>/index.html and images/<visual>/<stem>.png.

Models with a style code (MUNIT, DRIT) translate each image with a random style (fake_B; seeded
by --seed, default 10), with --n_styles K random styles (fake_B_s0 ... fake_B_s<K-1>, and the
strip `styles`: the input then the K outputs side by side), or with the style of one
target-domain image (--style_ref, fake_B).
"""
import os
from collections import OrderedDict

import torch

from data import create_dataset
from data.base_dataset import get_transform
from data.image_io import load_image
from models import create_model
from models.translator import DEFAULT_STYLE_SEED, has_style_code
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

    styles = StyleVisuals(opt, model) if has_style_code(model) else None

    web_dir = os.path.join(opt.results_dir, opt.name, f"{opt.phase}_{opt.epoch}")
    print(f"creating web directory {web_dir}")
    webpage = html.HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}")

    for i, data in enumerate(dataset):
        if i >= opt.num_test:
            break
        model.set_input(data)
        if styles is not None:
            visuals = styles(model)
        else:
            model.test()
            visuals = model.get_current_visuals()
        image_paths = model.get_image_paths()
        if i % 5 == 0:
            print(f"processing ({i:04d})-th image... {image_paths}")
        save_images(webpage, visuals, image_paths, width=opt.display_winsize)
    webpage.save()
    print(f"results: {os.path.join(web_dir, 'index.html')}")
    return 0


# ---------------------------------------------------------------- models with a style code
class StyleVisuals:
    """The visuals of one test batch of a model with a style code (models/translator.py's
    interface): real_A and fake_B (one random style per image, or the --style_ref style), or
    with --n_styles K: fake_B_s0 ... fake_B_s<K-1> and `styles`, real_A and the K outputs side
    by side.  Random styles come from one CPU generator seeded with --seed (default 10, as the
    authors' MUNIT test.py), drawn image by image, so the same command gives the same images.
    """

    def __init__(self, opt, model):
        self.n_styles = opt.n_styles
        self.generator = torch.Generator().manual_seed(
            DEFAULT_STYLE_SEED if opt.seed is None else opt.seed)
        self.ref_style = None
        if opt.style_ref is not None:
            # the reference goes through the test images' preprocessing (the authors resize it
            # as the inputs); it is a target-domain image: output_nc channels
            transform = get_transform(opt, grayscale=(opt.output_nc == 1))
            ref = transform(load_image(opt.style_ref, opt.output_nc))[None]
            with torch.no_grad():
                self.ref_style = model.style_of(ref.to(model.device))

    @torch.no_grad()
    def __call__(self, model):
        real = model.real_A
        batch = real.size(0)
        visuals = OrderedDict(real_A=real)
        if self.ref_style is not None:
            visuals["fake_B"] = model.translate_with_styles(real, self.ref_style.expand(batch, -1))
            return visuals
        count = 1 if self.n_styles is None else self.n_styles
        codes = model.random_styles(batch * count, self.generator).view(batch, count, -1)
        outputs = [model.translate_with_styles(real, codes[:, j]) for j in range(count)]
        if self.n_styles is None:
            visuals["fake_B"] = outputs[0]
            return visuals
        for j, out in enumerate(outputs):
            visuals[f"fake_B_s{j}"] = out
        rgb = [t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t for t in [real] + outputs]
        visuals["styles"] = torch.cat(rgb, dim=3)  # (B, 3, H, (K + 1) W)
        return visuals


if __name__ == "__main__":
    run_cli(main)
