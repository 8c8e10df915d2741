"""Options shared by training and testing.

Parsing order, as in the original: base options -> the model's option setter (may add options
and change defaults, e.g. CUT/FastCUT presets) -> the dataset's option setter -> strict parse.
The resolved options are validated once and printed; the entry script writes them next to the
checkpoints as `<phase>_opt.txt` (the original's format) and `<phase>_opt.json` with
`save_options` once every other check (data, model) has passed too, so a rejected run never
overwrites the options file of an existing experiment.
"""
import argparse
import json
import os
import shlex
import sys

import data
import models
from data.base_dataset import RESIZE_FILTERS
from models.losses import GAN_MODES
from models.networks import DISCRIMINATORS, GENERATORS, PADDING_TYPES, PATCH_SAMPLERS
from models.networks.init import INIT_BIASES, INIT_TYPES
from models.networks.layers import NORMS
from util.errors import UserError
from util.runtime import parse_gpu_ids, resolve_gpu_ids
from util.util import atomic_write, jsonable, str2bool

from .parser import OptionParser


class BaseOptions:
    """Builds, parses, validates and saves an option set.

    Args:
        cmd_line: optional command line (a string or a list) to parse instead of sys.argv.
    """

    is_train = None  # set by TrainOptions / TestOptions

    def __init__(self, cmd_line=None):
        if cmd_line is None:
            self.argv = sys.argv[1:]
        elif isinstance(cmd_line, str):
            self.argv = shlex.split(cmd_line)
        else:
            self.argv = list(cmd_line)
        self.parser = None
        self.given = set()  # the options typed on the command line (set by parse)
        self.dump = None  # (text, dict) of the options as parsed, written by save_options

    def initialize(self, parser):
        p = parser
        # experiment
        p.add_argument("--dataroot", default="placeholder",
                       help="path to images (should have subfolders trainA, trainB, testA, testB, ...)")
        p.add_argument("--name", type=str, default="experiment_name",
                       help="name of the experiment; decides where samples and models are stored")
        p.add_argument("--easy_label", type=str, default="experiment_name", help="interpretable name")
        p.add_argument("--gpu_ids", type=str, default="0",
                       help="gpu ids, e.g. 0  0,1,2  0,2; -1 for CPU (falls back to CPU when CUDA is absent)")
        p.add_argument("--checkpoints_dir", type=str, default="./checkpoints", help="models are saved here")
        p.add_argument("--seed", type=int, default=None,
                       help="seed all random number generators (data order, augmentation, init, patch "
                            "locations); a CPU run is then reproducible bit for bit")
        # model
        p.add_argument("--model", type=str, default="cut", choices=sorted(models.MODELS),
                       help="chooses which model to use")
        p.add_argument("--input_nc", type=int, default=3, help="# of input image channels: 3 for RGB, 1 for grayscale")
        p.add_argument("--output_nc", type=int, default=3, help="# of output image channels: 3 for RGB, 1 for grayscale")
        p.add_argument("--ngf", type=int, default=64, help="# of gen filters in the last conv layer")
        p.add_argument("--ndf", type=int, default=64, help="# of discrim filters in the first conv layer")
        p.add_argument("--netD", type=str, default="basic", choices=sorted(DISCRIMINATORS),
                       help="discriminator architecture: basic = 70x70 PatchGAN, n_layers = --n_layers_D "
                            "layers, pixel = 1x1 PixelGAN")
        p.add_argument("--netG", type=str, default="resnet_9blocks", choices=sorted(GENERATORS),
                       help="generator architecture")
        p.add_argument("--n_layers_D", type=int, default=3, help="only used if netD==n_layers")
        p.add_argument("--normG", type=str, default="instance", choices=sorted(NORMS),
                       help="instance normalization or batch normalization for G")
        p.add_argument("--normD", type=str, default="instance", choices=sorted(NORMS),
                       help="instance normalization or batch normalization for D")
        p.add_argument("--init_type", type=str, default="xavier", choices=sorted(INIT_TYPES), help="network initialization")
        p.add_argument("--init_gain", type=float, default=0.02,
                       help="scaling factor for normal, xavier and orthogonal")
        p.add_argument("--init_bias", type=str, default="zero", choices=INIT_BIASES,
                       help="conv and linear biases at initialisation: zero (CUT, CycleGAN) or "
                            "default (PyTorch's own, as the GcGAN and DistanceGAN codes)")
        p.add_argument("--no_dropout", type=str2bool, nargs="?", const=True, default=True,
                       help="no dropout for the generator (default True; '--no_dropout False' enables it)")
        # True/False values (not plain switches) so that '--no_antialias False' can undo a preset
        p.add_argument("--no_antialias", type=str2bool, nargs="?", const=True, default=False,
                       help="use strided conv instead of anti-aliased downsampling (G and D)")
        p.add_argument("--no_antialias_up", type=str2bool, nargs="?", const=True, default=False,
                       help="use transposed conv instead of anti-aliased upsampling (G)")
        p.add_argument("--padding_type", type=str, default="reflect", choices=PADDING_TYPES,
                       help="padding of the ResNet generator's convolutions: reflect (CUT, "
                            "CycleGAN) or zero (DistanceGAN: every conv pads with zeros)")
        # dataset
        p.add_argument("--dataset_mode", type=str, default="unaligned", choices=sorted(data.DATASETS),
                       help="chooses how datasets are loaded")
        p.add_argument("--direction", type=str, default="AtoB", choices=("AtoB", "BtoA"), help="AtoB or BtoA")
        p.add_argument("--serial_batches", action="store_true",
                       help="if true, takes images in order to make batches, otherwise takes them randomly")
        p.add_argument("--num_threads", default=4, type=int, help="# threads (DataLoader workers) for loading data")
        p.add_argument("--batch_size", type=int, default=1, help="input batch size")
        p.add_argument("--load_size", type=int, default=286, help="scale images to this size")
        p.add_argument("--crop_size", type=int, default=256, help="then crop to this size")
        p.add_argument("--max_dataset_size", type=int, default=float("inf"),
                       help="maximum number of samples allowed per dataset; extra ones are left out")
        p.add_argument("--preprocess", type=str, default="resize_and_crop",
                       help="scaling and cropping of images at load time [resize_and_crop | crop | "
                            "scale_width | scale_width_and_crop | scale_shortside | "
                            "scale_shortside_and_crop | resize_shortside | resize_shortside_and_crop | none]; "
                            "scale_shortside only enlarges, resize_shortside scales up or down")
        p.add_argument("--no_flip", action="store_true",
                       help="if specified, do not flip the images for data augmentation")
        p.add_argument("--resize_filter", type=str, default="bicubic", choices=sorted(RESIZE_FILTERS),
                       help="resampling filter of the resize steps of --preprocess (CUT and "
                            "CycleGAN: bicubic; DistanceGAN and MUNIT: bilinear)")
        p.add_argument("--display_winsize", type=int, default=256, help="display window size for both visdom and HTML")
        p.add_argument("--random_scale_max", type=float, default=3.0,
                       help="(used for single image translation) Randomly scale the image by at most this factor")
        # additional parameters
        p.add_argument("--epoch", type=str, default="latest",
                       help="which epoch to load? set to latest to use latest cached model")
        p.add_argument("--verbose", action="store_true", help="if specified, print more debugging information")
        p.add_argument("--suffix", default="", type=str,
                       help="customized suffix: opt.name = opt.name + suffix, e.g. {model}_{netG}_size{load_size}")
        p.add_argument("--stylegan2_G_num_downsampling", default=1, type=int,
                       help="number of downsampling layers used by StyleGAN2Generator")
        return p

    def gather_options(self):
        """Base options, then the model's and the dataset's setters, then a strict parse."""
        # -h is added last, so that --help lists the model's and dataset's options too.
        parser = OptionParser(self.argv, prog=os.path.basename(sys.argv[0]) or "cut", add_help=False)
        parser = self.initialize(parser)

        opt, _ = parser.parse_known_args()
        parser = models.get_option_setter(opt.model)(parser, self.is_train)

        opt, _ = parser.parse_known_args()  # the model may have changed dataset_mode's default
        parser = data.get_option_setter(opt.dataset_mode)(parser, self.is_train)

        parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
        self.parser = parser
        opt = parser.parse_args()
        self.given = given_options(parser, self.argv)
        return opt

    def parse(self):
        opt = self.gather_options()
        opt.isTrain = self.is_train

        if opt.suffix:
            try:
                opt.name = opt.name + "_" + opt.suffix.format(**vars(opt))
            except (KeyError, IndexError, ValueError) as err:
                raise UserError(f"--suffix '{opt.suffix}' names an unknown option: {err}") from None

        self.validate(opt)
        # Snapshot the dump now, as the original: gpu_ids still as typed, before the entry
        # script's own changes (test.py forces batch_size 1, ...).
        self.dump = (self.format_options(opt),
                     {k: jsonable(v) for k, v in sorted(vars(opt).items())})
        print(self.dump[0], end="")

        opt.gpu_ids = resolve_gpu_ids(parse_gpu_ids(opt.gpu_ids))
        if len(opt.gpu_ids) > 1 and opt.batch_size < len(opt.gpu_ids):
            raise UserError(f"--batch_size {opt.batch_size} is smaller than the number of GPUs "
                            f"({len(opt.gpu_ids)}): DataParallel needs at least one image per GPU")
        self.opt = opt
        return opt

    def validate(self, opt):
        """Reject impossible option combinations with one clear line, before anything is built."""
        parse_gpu_ids(opt.gpu_ids)
        for name in ("batch_size", "load_size", "crop_size", "input_nc", "output_nc", "ngf", "ndf"):
            if getattr(opt, name) < 1:
                raise UserError(f"--{name} must be a positive integer (got {getattr(opt, name)})")
        if opt.num_threads < 0:
            raise UserError(f"--num_threads must be 0 or more (got {opt.num_threads})")
        if opt.max_dataset_size < 1:
            raise UserError(f"--max_dataset_size must be at least 1 (got {opt.max_dataset_size})")
        if opt.netD == "n_layers" and opt.n_layers_D < 1:
            raise UserError(f"--n_layers_D must be at least 1 (got {opt.n_layers_D})")
        data.check_preprocess_options(opt)
        needs_dataroot = getattr(data.DATASETS[opt.dataset_mode], "needs_dataroot", True)
        if needs_dataroot and not os.path.isdir(opt.dataroot):
            raise UserError(f"--dataroot '{opt.dataroot}' is not a folder "
                            "(it should contain trainA/trainB or testA/testB)")
        models.find_model_class(opt.model).validate_options(opt)

    # ------------------------------------------------------------------ saving
    def format_options(self, opt):
        """The original's option dump: sorted keys, non-default values marked."""
        lines = ["----------------- Options ---------------"]
        for key, value in sorted(vars(opt).items()):
            comment = ""
            default = self.parser.get_default(key)
            if value != default:
                comment = f"\t[default: {default}]"
            lines.append(f"{str(key):>25}: {str(value):<30}{comment}")
        lines.append("----------------- End -------------------")
        return "\n".join(lines) + "\n"

    def save_options(self, opt):
        """Write `<phase>_opt.txt` and `<phase>_opt.json`; call once every check has passed."""
        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        try:
            os.makedirs(expr_dir, exist_ok=True)
            with atomic_write(os.path.join(expr_dir, f"{opt.phase}_opt.txt"), "wt", fsync=True) as f:
                f.write(self.dump[0])
            with atomic_write(os.path.join(expr_dir, f"{opt.phase}_opt.json"), "wt", fsync=True) as f:
                json.dump(self.dump[1], f, indent=2)
                f.write("\n")
        except OSError as err:
            print(f"warning: could not write options to {expr_dir}: {err}")



def given_options(parser, argv):
    """The destinations of the options present on the command line `argv`.

    argparse fills in a default only for attributes the namespace lacks, so parsing into a
    namespace pre-filled with a marker leaves exactly the typed options changed.
    """
    marker = object()
    namespace = argparse.Namespace(**{action.dest: marker for action in parser._actions
                                      if action.dest != argparse.SUPPRESS})
    parser.parse_known_args(argv, namespace)
    return {dest for dest, value in vars(namespace).items() if value is not marker}
