"""Each baseline as its authors ran it: option presets that `--model NAME` applies.

The CUT paper's Table 1 runs every baseline from its authors' code at that code's defaults.
`--model cycle_gan`, `--model distance_gan` (also SelfDistance) and `--model gcgan` therefore set
those defaults here, the way `--CUT_mode` sets CUT's (models/cut_model.py): with
`parser.set_defaults`, so that any flag given on the command line still wins, and train_opt.txt
records the values used.  CUT, FastCUT and SinCUT have no entry: the framework's defaults are
theirs.

Two groups per preset: `networks` (architecture, initialisation, resize filter), applied to
training and testing alike, so that test.py builds the network that was trained; `training`
(schedule, batch, data pipeline, optimiser), applied to training only: test.py keeps its own
data settings (load_size = crop_size, batch 1, no flip), as for CUT.  Options a model defines
itself (lambda_A, --geometry, --max_items, ...) carry their authors' defaults in that model's
file.  docs/models.md lists every value with the file it comes from.

Sources (read for the facts; nothing is copied):
  CycleGAN     github.com/junyanz/pytorch-CycleGAN-and-pix2pix: options/base_options.py,
               options/train_options.py, models/cycle_gan_model.py, models/networks.py,
               data/base_dataset.py, data/unaligned_dataset.py
  DistanceGAN  github.com/sagiebenaim/DistanceGAN, its CycleGAN-based code (cyclegan_arch/):
               cyclegan_arch_options/base_options.py and train_options.py, networks.py,
               gan_model.py, distance_gan_model.py, data/unaligned_data_loader.py, train.py
  GcGAN        github.com/hufu6371/GcGAN: options/base_options.py, options/train_options.py,
               models/networks.py, models/gc_gan_cross_model.py, models/gc_gan_share_model.py,
               data/base_dataset.py, train.py, train_gcgan.sh, README.md
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    source: str  # the authors' repository
    networks: dict = field(default_factory=dict)  # training and testing
    training: dict = field(default_factory=dict)  # training only


# What the three codes share (all are built on the CycleGAN code): lsgan, Adam(0.5, 0.999) at
# 0.0002, a pool of 50 generated images per discriminator, random horizontal flips, 256 px crops,
# no dropout (their published commands), 100 epochs at the full rate and 100 decaying, and the
# same crop in every epoch (only CUT's loader stops cropping in the decay epochs).
_SHARED_TRAINING = dict(n_epochs=100, n_epochs_decay=100, crop_size=256, no_flip=False,
                        crop_in_decay_epochs=True, lr=0.0002, beta1=0.5, pool_size=50,
                        gan_mode="lsgan")
# CycleGAN's networks: strided and transposed convolutions, reflection padding, instance norm
# without affine parameters.
_CYCLEGAN_NETWORKS = dict(no_antialias=True, no_antialias_up=True, padding_type="reflect",
                          normG="instance", normD="instance", no_dropout=True, init_gain=0.02)

PRESETS = {
    "cycle_gan": Preset(
        source="junyanz/pytorch-CycleGAN-and-pix2pix",
        # models/networks.py: init_weights ('normal' by default in base_options.py) zeroes the
        # biases; cycle_gan_model.py sets no_dropout=True; data/base_dataset.py resizes bicubic.
        networks=dict(_CYCLEGAN_NETWORKS, init_type="normal", init_bias="zero",
                      resize_filter="bicubic"),
        training=dict(_SHARED_TRAINING, batch_size=1, load_size=286,
                      preprocess="resize_and_crop", lr_policy="linear"),
    ),
    "distance_gan": Preset(
        source="sagiebenaim/DistanceGAN",
        # cyclegan_arch/networks.py: every conv pads with zeros and keeps its bias,
        # InstanceNorm2d(affine=True); weights_init draws conv weights from N(0, 0.02) and norm
        # weights from N(1, 0.02) and leaves the conv biases as PyTorch built them.  The loader
        # (data/unaligned_data_loader.py) scales the shorter side to --loadSize with
        # transforms.Scale, whose default filter is bilinear; --use_dropout is off.
        networks=dict(_CYCLEGAN_NETWORKS, init_type="normal", init_bias="default",
                      padding_type="zero", normG="instance_affine", normD="instance_affine",
                      resize_filter="bilinear"),
        # base_options.py: --batchSize 2, --loadSize 286, --fineSize 256; train_options.py:
        # --niter 100, --niter_decay 100; gan_model.py's update_learning_rate (called after each
        # epoch beyond niter) subtracts lr / niter_decay.
        training=dict(_SHARED_TRAINING, batch_size=2, load_size=286,
                      preprocess="resize_shortside_and_crop", lr_policy="linear_2017"),
    ),
    "gcgan": Preset(
        source="hufu6371/GcGAN",
        # models/networks.py: weights_init_xavier is xavier_normal with gain 0.02 and leaves the
        # biases alone; base_options.py: --init_type xavier, --norm instance.  Dropout is on
        # unless --no_dropout, which train_gcgan.sh and test_gcgan.sh pass: we follow the scripts.
        networks=dict(_CYCLEGAN_NETWORKS, init_type="xavier", init_bias="default",
                      resize_filter="bicubic"),
        # base_options.py: --batchSize 8, --loadSize 288, --fineSize 256, resize_and_crop
        # (bicubic); networks.py's lambda rule adds 1 to the epoch (the decay starts an epoch
        # early and the last epoch runs at lr 0), the rule its published runs trained with.
        training=dict(_SHARED_TRAINING, batch_size=8, load_size=288,
                      preprocess="resize_and_crop", lr_policy="linear_gcgan"),
    ),
}


def apply_preset(parser, is_train, name):
    """Make preset `name` the parser's defaults (flags on the command line still win)."""
    preset = PRESETS[name]
    values = dict(preset.networks, **(preset.training if is_train else {}))
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:  # a preset naming an option that does not exist would be silently ignored
        raise ValueError(f"preset {name} sets unknown options: {', '.join(unknown)}")
    parser.set_defaults(**values)
    return parser
