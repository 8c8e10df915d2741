"""Translate your own images with a trained generator, at their own size.

    python translate.py --checkpoint checkpoints/horse2zebra/latest_net_G.pth photos/ --output zebras/
    python translate.py --checkpoint checkpoints/church_swap --texture sunset.jpg photos/ -o swapped/
    python translate.py --checkpoint checkpoints/church_swap --grid structures/ textures/ -o grid/

INPUT is an image file, a folder (--recursive to descend) or a glob ('photos/**/*.jpg', quoted).
Outputs keep the file names and sub-folders (relative to each folder, or to a glob's fixed
prefix), as PNG unless --keep_ext, and exactly the input's size.  The generator's architecture
comes from train_opt.json beside the checkpoint; flags override it (see models/translator.py).
Unreadable files are skipped with a warning; the exit status is 0 when at least one image was
translated.  For paper-style evaluation on a data set use test.py instead.

Models with a style code (MUNIT, DRIT; pass their checkpoint folder): one random style per image
by default, `--n_styles K` writes <name>_s0 ... <name>_s<K-1> and <name>_styles (the input and
the K outputs side by side), `--style_ref IMAGE` translates in the style of a target-domain image.
A swap_ae checkpoint swaps textures instead (--texture, --texture_mix, --grid:
models/swap_translation.py).
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

from data.image_folder import is_image_file
from data.image_io import load_image
from models import swap_translation
from models.translator import (ARCH_DEFAULTS, StyleTranslator, check_style_options, load_translator,
                               side_by_side)
from options.parser import OptionParser
from util.errors import UserError, run_cli
from util.runtime import parse_gpu_ids, resolve_gpu_ids, seed_everything
from util.util import save_image, str2bool

_GLOB_CHARS = "*?["


def parse_args(argv):
    p = OptionParser(argv, prog="translate.py", description=__doc__.split("\n\n")[0])
    p.formatter_class = argparse.HelpFormatter  # defaults are stated in the help texts
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--checkpoint", required=True,
                   help="generator weights (*_net_G.pth; *_net_G_A.pth / *_net_G_B.pth for "
                        "CycleGAN) or a checkpoint folder (its latest_net_G.pth)")
    p.add_argument("--output", "-o", required=True, help="folder for the translated images")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.add_argument("--keep_ext", action="store_true",
                   help="write each output with its input's extension instead of .png")
    p.add_argument("--load_size", type=int, default=None,
                   help="translate at the scale where the shorter side has this many pixels, then "
                        "resize the result back to the input's size (default: the input's scale)")
    p.add_argument("--tile", type=int, default=None,
                   help="translate tiles of this size (multiple of 4) and blend them, for images "
                        "too large for memory; approximate (instance norm sees one tile)")
    p.add_argument("--tile_overlap", type=int, default=32, help="pixels shared by neighbouring tiles")
    p.add_argument("--batch_size", type=int, default=1, help="images of the same size per batch")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--gpu_ids", default=None, help="as in train.py: 0 for cuda:0, -1 for the CPU")
    p.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed the noise that SinCUT's stylegan2 generator injects, and the random "
                        "style codes of a model with a style code (default 10)")
    add_style_options(p)
    g = p.add_argument_group("generator options (default: train_opt.json beside the checkpoint, "
                             "else the original's defaults)")
    for name, default in ARCH_DEFAULTS.items():
        kind = str2bool if isinstance(default, bool) else type(default)
        extra = dict(nargs="?", const=True) if kind is str2bool else {}
        g.add_argument(f"--{name}", type=kind, default=None, help=f"original default: {default}",
                       **extra)
    swap_translation.add_swap_arguments(p)
    args = p.parse_args()
    args.overrides = {k: getattr(args, k) for k in ARCH_DEFAULTS if getattr(args, k) is not None}
    return args


def collect_inputs(inputs, recursive):
    """[(path, path relative to the output folder)] for every INPUT, in a stable order."""
    found = []
    for item in inputs:
        if os.path.isfile(item):
            found.append((item, os.path.basename(item)))
        elif os.path.isdir(item):
            found += [(path, os.path.relpath(path, item)) for path in _list_folder(item, recursive)]
        elif any(c in item for c in _GLOB_CHARS):
            # names are kept relative to the part of the pattern before its first wildcard
            parts = item.split(os.sep)
            fixed = next(i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARS))
            base = os.sep.join(parts[:fixed]) or "."
            matches = sorted(p for p in glob.glob(item, recursive=True)
                             if os.path.isfile(p) and is_image_file(p))
            if not matches:
                raise UserError(f"no image files match {item}")
            found += [(path, os.path.relpath(path, base)) for path in matches]
        else:
            raise UserError(f"input not found: {item} (give an image file, a folder or a glob)")
    return found


def _list_folder(folder, recursive):
    if not recursive:
        return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                      if is_image_file(f) and os.path.isfile(os.path.join(folder, f)))
    paths = []
    for root, subdirs, files in os.walk(folder):
        subdirs.sort()
        paths += sorted(os.path.join(root, f) for f in files if is_image_file(f))
    return paths


def plan_outputs(found, args):
    """[(input, [output paths])]: one output per input, or several (output_names); refuse
    anything that could overwrite an input or another output."""
    out_root = os.path.realpath(args.output)
    for item in args.inputs:
        if os.path.isdir(item):
            folder = os.path.realpath(item)
            inside = out_root == folder or (args.recursive and out_root.startswith(folder + os.sep))
            if inside:
                raise UserError(f"--output {args.output} is inside the input folder {item}; choose "
                                "a folder outside it (a later run would translate the outputs)")
    inputs = {os.path.realpath(path) for path, _ in found}
    planned, seen = [], {}
    for path, rel in found:
        if not args.keep_ext:
            rel = os.path.splitext(rel)[0] + ".png"
        outs = [os.path.join(args.output, name) for name in output_names(rel, args)]
        for out in outs:
            real = os.path.realpath(out)
            if real in inputs:
                raise UserError(f"{out} would overwrite the input {path}; choose another --output "
                                "folder")
            if real in seen:
                raise UserError(f"{path} and {seen[real]} would both be written to {out}; use "
                                "--keep_ext or translate them in separate runs")
            seen[real] = path
        planned.append((path, outs))
    return planned


def output_names(rel, args):
    """The output file names (relative to --output) for an input whose own name is `rel`."""
    if getattr(args, "n_styles", None) is not None:
        return style_output_names(rel, args.n_styles)
    return [rel]


def pick_device(args):
    if args.gpu_ids is None:
        return args.device
    if args.device is not None:
        raise UserError("give --device or --gpu_ids, not both")
    ids = resolve_gpu_ids(parse_gpu_ids(args.gpu_ids))
    return f"cuda:{ids[0]}" if ids else "cpu"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1 (got {args.batch_size})")
    if swap_translation.handles(args):  # swap_ae checkpoints: --texture / --grid
        return swap_translation.run_swap(args, collect_inputs, plan_outputs, pick_device(args))
    if not args.inputs:
        raise UserError("give at least one INPUT: an image file, a folder or a glob")
    planned = plan_outputs(collect_inputs(args.inputs, args.recursive), args)
    if not planned:
        raise UserError(f"no image files in {' '.join(args.inputs)}"
                        + ("" if args.recursive else " (use --recursive for sub-folders)"))
    translator = load_translator(args.checkpoint, device=pick_device(args), load_size=args.load_size,
                                 tile=args.tile, tile_overlap=args.tile_overlap, amp=args.amp,
                                 seed=args.seed, **args.overrides)
    styled = isinstance(translator, StyleTranslator)
    check_style_options(translator.model.opt.model if styled else translator.arch["model"],
                        args.n_styles, args.style_ref)
    ref_style = translator.style_of(args.style_ref) if args.style_ref is not None else None
    if args.seed is not None:
        seed_everything(args.seed)

    done, skipped = 0, []
    bar = tqdm(total=len(planned), unit="img", file=sys.stderr, disable=not sys.stderr.isatty())

    def warn(path, reason):
        skipped.append(path)
        tqdm.write(f"warning: skipped {path}: {reason}", file=sys.stderr)
        bar.update(1)

    def flush(batch):
        nonlocal done
        try:
            if styled:
                results = translate_styled(translator, batch, args.n_styles, ref_style)
            else:
                results = [[out] for out in translator.translate_images([b[0] for b in batch])]
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            if "out of memory" not in str(err).lower() and "not enough memory" not in str(err):
                raise
            w, h = batch[0][0].size
            for _, path, _ in batch:
                warn(path, f"out of memory at {w}x{h} pixels; use --tile 512, --load_size or "
                           "--batch_size 1")
            return
        for (_, path, outs, _), images in zip(batch, results):
            try:
                for out, image in zip(outs, images):
                    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
                    save_image(np.asarray(image), out)
            except (OSError, ValueError) as err:
                warn(path, f"cannot write {out}: {err}")
                continue
            done += 1
            bar.update(1)

    pending = {}  # image size -> [(image, input path, output paths, style codes or None)]
    for path, outs in planned:
        try:
            image = load_image(path, translator.input_nc)
        except UserError as err:
            warn(path, str(err).split(": ", 1)[-1])
            continue
        codes = None
        if styled and ref_style is None:
            # drawn image by image in input order, so an image's styles do not depend on the
            # other images' sizes (a batch holds images of one size)
            codes = translator.random_styles(args.n_styles or 1)
        group = pending.setdefault(image.size, [])
        group.append((image, path, outs, codes))
        if len(group) == args.batch_size:
            flush(pending.pop(image.size))
    for group in pending.values():
        flush(group)
    bar.close()

    summary = f"translated {done} image(s) into {args.output}"
    if skipped:
        summary += f"; skipped {len(skipped)} file(s) (warnings above)"
    if done == 0:
        raise UserError(f"no image was translated: {summary}")
    print(summary)
    return 0


# ---------------------------------------------------------------- models with a style code
def add_style_options(p):
    g = p.add_argument_group("models with a style code (MUNIT, DRIT; --checkpoint: their folder)")
    g.add_argument("--n_styles", type=int, default=None,
                   help="K random styles per image: <name>_s0 ... <name>_s<K-1> and <name>_styles "
                        "(the input and the K outputs side by side); default: one random style, "
                        "written as <name>")
    g.add_argument("--style_ref", default=None,
                   help="translate every image in the style of this target-domain image")


def style_output_names(rel, n_styles):
    stem, ext = os.path.splitext(rel)
    return [f"{stem}_s{j}{ext}" for j in range(n_styles)] + [f"{stem}_styles{ext}"]


def translate_styled(translator, batch, n_styles, ref_style):
    """For each (image, path, outputs, codes) of one size: the images to write, in output order."""
    images = [image for image, _, _, _ in batch]
    if ref_style is not None:
        codes = ref_style.expand(len(images), 1, -1)
    else:
        codes = torch.stack([codes for _, _, _, codes in batch])  # (B, K, style_dim)
    results = translator.translate_images(images, codes=codes)
    if n_styles is None:
        return results
    return [outs + [side_by_side([image] + outs)] for image, outs in zip(images, results)]


if __name__ == "__main__":
    run_cli(main)
