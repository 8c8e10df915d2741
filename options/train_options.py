"""Training options."""
import os

import torch

from models.losses import GAN_MODES
from models.schedulers import LR_POLICIES

from util.checkpoint import existing_checkpoints
from util.errors import UserError
from util.util import str2bool

from .base_options import BaseOptions


class TrainOptions(BaseOptions):
    """Base options plus visdom/HTML display, saving and optimisation settings."""

    is_train = True

    def initialize(self, parser):
        p = super().initialize(parser)
        # visdom and HTML visualization
        p.add_argument("--display_freq", type=int, default=400,
                       help="show training results every this many samples")
        p.add_argument("--display_ncols", type=int, default=4,
                       help="if positive, display all images in a single visdom panel with this many columns")
        p.add_argument("--display_id", type=int, default=None,
                       help="visdom window id; default: use visdom only if a server answers at "
                            "--display_server:--display_port; 0 or negative disables visdom")
        p.add_argument("--display_server", type=str, default="http://localhost", help="visdom server")
        p.add_argument("--display_env", type=str, default="main", help="visdom environment name")
        p.add_argument("--display_port", type=int, default=8097, help="visdom port")
        p.add_argument("--update_html_freq", type=int, default=1000,
                       help="save training results to HTML every this many samples")
        p.add_argument("--print_freq", type=int, default=100, help="print losses every this many samples")
        p.add_argument("--no_html", action="store_true",
                       help="do not save intermediate training results to [checkpoints_dir]/[name]/web/")
        # saving
        p.add_argument("--save_latest_freq", type=int, default=5000, help="save the latest model every this many samples")
        p.add_argument("--save_epoch_freq", type=int, default=5, help="save checkpoints at the end of every this many epochs")
        p.add_argument("--evaluation_freq", type=int, default=5000,
                       help="the original's option, which it never used; accepted so old command "
                            "lines run, ignored: see --eval_freq")
        p.add_argument("--save_by_iter", action="store_true", help="whether saves model by iteration")
        p.add_argument("--keep_last", type=int, default=0,
                       help="keep only the newest N numbered checkpoints (<epoch>_net_*.pth, "
                            "iter_<n>_net_*.pth); 0 keeps all")
        p.add_argument("--continue_train", action="store_true",
                       help="continue training: resume exactly from latest_state.pth when present "
                            "(optimizers, epoch, RNGs), otherwise load the --epoch weights as the "
                            "original")
        p.add_argument("--epoch_count", type=int, default=1,
                       help="the starting epoch count; models are saved by <epoch_count>, <epoch_count>+<save_latest_freq>, ...")
        p.add_argument("--phase", type=str, default="train", help="train, val, test, etc")
        p.add_argument("--pretrained_name", type=str, default=None,
                       help="resume training from another checkpoint folder")
        # optimisation
        p.add_argument("--n_epochs", type=int, default=200, help="number of epochs with the initial learning rate")
        p.add_argument("--n_epochs_decay", type=int, default=200, help="number of epochs to linearly decay learning rate to zero")
        p.add_argument("--beta1", type=float, default=0.5, help="momentum term of adam")
        p.add_argument("--beta2", type=float, default=0.999, help="momentum term of adam")
        p.add_argument("--lr", type=float, default=0.0002, help="initial learning rate for adam")
        p.add_argument("--gan_mode", type=str, default="lsgan", choices=GAN_MODES,
                       help="the type of GAN objective; vanilla is the cross-entropy of the original GAN paper")
        p.add_argument("--pool_size", type=int, default=50,
                       help="the size of the image buffer that stores previously generated images")
        p.add_argument("--lr_policy", type=str, default="linear", choices=LR_POLICIES,
                       help="learning rate policy; linear: constant for --n_epochs, then down to "
                            "1/(n_epochs_decay+1) in the last epoch (CUT, CycleGAN); "
                            "linear_gcgan: the decay starts one epoch earlier and the last epoch "
                            "runs at 0 (GcGAN's code); linear_2017: the first decay epoch still "
                            "at the full rate, the last at 1/n_epochs_decay (the 2017 CycleGAN "
                            "code in DistanceGAN); step_iter: --lr_gamma every --lr_decay_iters "
                            "iterations (MUNIT)")
        p.add_argument("--crop_in_decay_epochs", type=str2bool, nargs="?", const=True, default=False,
                       help="keep --load_size (and so the random crop) in the decay epochs; "
                            "False: images are resized straight to --crop_size there, as CUT's "
                            "loader (CycleGAN's, DistanceGAN's and GcGAN's keep cropping)")
        p.add_argument("--lr_decay_iters", type=int, default=50,
                       help="step policies: multiply the rate by --lr_gamma every this many epochs "
                            "(step) or iterations (step_iter)")
        p.add_argument("--lr_gamma", type=float, default=0.1,
                       help="the factor of the step policies (the original's step policy: 0.1)")
        # evaluation and monitoring
        p.add_argument("--eval_freq", type=int, default=0,
                       help="every this many epochs, translate the test split and compute FID/KID "
                            "(protocol 'paper', see evaluate.py); keeps the best as best_net_G.pth; "
                            "0 = off")
        p.add_argument("--eval_metric", type=str, default="fid", choices=("fid", "kid", "miou"),
                       help="the metric that decides best_net_G.pth: fid, kid (lower is better) "
                            "or miou, the segmentation score of labels -> photo (higher is "
                            "better; needs --seg_weights, see docs/segmentation.md)")
        p.add_argument("--eval_num_test", type=int, default=500,
                       help="test images translated per evaluation (as test.py's --num_test in the "
                            "dataset scripts)")
        p.add_argument("--inception_weights", type=str, default=None,
                       help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth); default: "
                            "the torch hub cache, as pytorch-fid")
        p.add_argument("--fid_cache_dir", type=str,
                       default=os.path.join(os.path.expanduser("~"), ".cache", "cut_fid"),
                       help="cache of the real images' Inception features ('' for none)")
        p.add_argument("--seg_model", type=str, default="drn_d_22", choices=("drn_d_22",),
                       help="--eval_metric miou: the segmenter")
        p.add_argument("--seg_weights", type=str, default=None,
                       help="--eval_metric miou: the segmenter's weights (a local file)")
        p.add_argument("--seg_labels", type=str, default=None,
                       help="--eval_metric miou: train-id label maps of the test inputs; default "
                            "<test source folder>_trainIds (e.g. testB_trainIds)")
        p.add_argument("--tensorboard", action="store_true",
                       help="also log losses, learning rate, images and metrics for TensorBoard "
                            "(<checkpoints_dir>/<name>/tensorboard)")
        p.add_argument("--progress", type=str, default="auto", choices=("auto", "on", "off"),
                       help="a progress bar per epoch on stderr; auto: only on a terminal")
        # reliability
        p.add_argument("--nan_guard", type=str, default="stop", choices=("stop", "skip", "off"),
                       help="on a NaN/Inf loss: stop the run without saving (stop), leave that "
                            "update out and go on (skip), or do not check (off; no host sync)")
        # speed (README "Speed and memory"); every option here keeps fp32 results unless noted
        p.add_argument("--fast_path", type=str2bool, nargs="?", const=True, default=True,
                       help="exact savings: PatchNCE keys without autograd, taken from G's own "
                            "forward pass when the input was not flipped; crops folded into the "
                            "upsampling convs (same results to float rounding). False: compute as "
                            "the original does")
        p.add_argument("--amp", type=str, default="off", choices=("off", "bf16", "fp16"),
                       help="mixed precision (autocast; fp16 adds a gradient scaler). Changes the "
                            "numbers: see the README")
        p.add_argument("--channels_last", action="store_true",
                       help="keep images, activations and weights in channels-last memory format")
        p.add_argument("--compile", action="store_true",
                       help="torch.compile the generator(s) and discriminator(s)")
        p.add_argument("--compile_backend", type=str, default="inductor",
                       help="torch.compile backend for --compile (inductor, aot_eager, eager...)")
        p.add_argument("--tf32", action="store_true",
                       help="allow TF32 matrix multiplies and convolutions on Ampere and newer GPUs "
                            "(changes the numbers slightly; no effect on the CPU)")
        return p

    def validate(self, opt):
        super().validate(opt)
        for name in ("display_freq", "update_html_freq", "print_freq", "save_latest_freq", "save_epoch_freq"):
            if getattr(opt, name) < 1:
                raise UserError(f"--{name} must be a positive integer (got {getattr(opt, name)})")
        total = opt.n_epochs + opt.n_epochs_decay
        if opt.n_epochs < 0 or opt.n_epochs_decay < 0 or total < 1:
            raise UserError("--n_epochs and --n_epochs_decay must be >= 0 with a positive sum "
                            f"(got {opt.n_epochs} and {opt.n_epochs_decay})")
        if not 1 <= opt.epoch_count <= total:
            raise UserError(f"--epoch_count {opt.epoch_count} is outside 1..{total} (n_epochs + n_epochs_decay)")
        if opt.lr <= 0:
            raise UserError(f"--lr must be positive (got {opt.lr})")
        if opt.lr_policy in ("step", "step_iter") and (opt.lr_decay_iters < 1 or opt.lr_gamma <= 0):
            raise UserError(f"--lr_policy {opt.lr_policy} needs --lr_decay_iters >= 1 and "
                            f"--lr_gamma > 0 (got {opt.lr_decay_iters} and {opt.lr_gamma})")
        if opt.eval_freq < 0 or opt.eval_num_test < 2:
            raise UserError(f"--eval_freq must be 0 (off) or positive and --eval_num_test at least 2 "
                            f"(got {opt.eval_freq} and {opt.eval_num_test})")
        if opt.eval_freq > 0:  # fail now, not after the first epoch
            from metrics import fid, training_eval
            source_dir, _ = training_eval.test_split(opt)
            if opt.eval_metric in training_eval.SEGMENTATION_METRICS:
                from models.networks.segmentation import read_weights
                read_weights(opt.seg_weights)
                labels = training_eval.seg_label_dir(opt, source_dir)
                if not os.path.isdir(labels):
                    raise UserError(f"--eval_metric {opt.eval_metric}: no label maps at {labels}; "
                                    "pass --seg_labels DIR (datasets/prepare_cityscapes_dataset.py "
                                    "writes testB_trainIds)")
            else:
                fid.resolve_weights(opt.inception_weights)
        if opt.amp == "fp16" and opt.model == "sincut":
            raise UserError("--amp fp16 is not supported with --model sincut (its R1 penalty "
                            "differentiates D's unscaled output); use --amp bf16")
        if opt.compile and not hasattr(torch, "compile"):
            raise UserError(f"--compile needs torch.compile (torch 2.0 or newer; this is "
                            f"{torch.__version__}); drop --compile")
        if opt.keep_last < 0:
            raise UserError(f"--keep_last must be 0 (keep all) or more (got {opt.keep_last})")
        if not opt.continue_train:
            folder = os.path.join(opt.checkpoints_dir, opt.name)
            found = existing_checkpoints(folder)
            if found:
                raise UserError(f"{folder} already holds checkpoints of an earlier run ({found[0]}"
                                f"{' and more' if len(found) > 1 else ''}); pass --continue_train "
                                "to resume it, or choose another --name to start a new run")
