"""Option parsing: names, defaults, CUT/FastCUT presets, validation and the option dump."""
import json
import os

import pytest

from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError


def parse_train(tmp_path, extra=""):
    root = tmp_path / "root"
    (root / "trainA").mkdir(parents=True, exist_ok=True)
    cmd = f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name exp --gpu_ids -1 {extra}"
    return TrainOptions(cmd).parse()


def test_base_and_train_defaults_match_the_original(tmp_path):
    opt = parse_train(tmp_path)
    expected = dict(model="cut", input_nc=3, output_nc=3, ngf=64, ndf=64, netD="basic",
                    netG="resnet_9blocks", n_layers_D=3, normG="instance", normD="instance",
                    init_type="xavier", init_gain=0.02, no_dropout=True, no_antialias=False,
                    no_antialias_up=False, dataset_mode="unaligned", direction="AtoB",
                    serial_batches=False, num_threads=4, batch_size=1, load_size=286, crop_size=256,
                    max_dataset_size=float("inf"), preprocess="resize_and_crop", no_flip=False,
                    display_winsize=256, random_scale_max=3.0, epoch="latest", suffix="",
                    display_freq=400, display_ncols=4, display_port=8097, update_html_freq=1000,
                    print_freq=100, save_latest_freq=5000, save_epoch_freq=5, epoch_count=1,
                    phase="train", beta1=0.5, beta2=0.999, lr=0.0002, gan_mode="lsgan",
                    pool_size=0, lr_policy="linear", lr_decay_iters=50, lambda_GAN=1.0,
                    nce_layers="0,4,8,12,16", netF="mlp_sample", netF_nc=256, nce_T=0.07,
                    num_patches=256, nce_includes_all_negatives_from_minibatch=False)
    for key, value in expected.items():
        assert getattr(opt, key) == value, key
    assert opt.isTrain is True and opt.gpu_ids == []


@pytest.mark.parametrize("mode", ["CUT", "cut"])
def test_cut_preset(tmp_path, mode):
    opt = parse_train(tmp_path, f"--CUT_mode {mode}")
    assert (opt.nce_idt, opt.lambda_NCE, opt.flip_equivariance) == (True, 1.0, False)
    assert (opt.n_epochs, opt.n_epochs_decay) == (200, 200)


@pytest.mark.parametrize("mode", ["FastCUT", "fastcut"])
def test_fastcut_preset(tmp_path, mode):
    opt = parse_train(tmp_path, f"--CUT_mode {mode}")
    assert (opt.nce_idt, opt.lambda_NCE, opt.flip_equivariance) == (False, 10.0, True)
    assert (opt.n_epochs, opt.n_epochs_decay) == (150, 50)


def test_user_flags_override_mode_defaults(tmp_path):
    opt = parse_train(tmp_path, "--CUT_mode FastCUT --lambda_NCE 3 --nce_idt --n_epochs 7 --flip_equivariance False")
    assert (opt.lambda_NCE, opt.nce_idt, opt.n_epochs, opt.flip_equivariance) == (3.0, True, 7, False)
    assert opt.n_epochs_decay == 50


@pytest.mark.parametrize("bad", ["CU", "Fast", "FASTCUT", "sincut"])
def test_cut_mode_rejects_substrings_and_other_spellings(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_train(tmp_path, f"--CUT_mode {bad}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--CUT_mode" in err[0] and "FastCUT" in err[0]


@pytest.mark.parametrize("flag,value", [("--netD", "patch"), ("--netG", "resnet_cat"), ("--netG", "unet_256"),
                                        ("--netF", "reshape"), ("--model", "pix2pix"),
                                        ("--dataset_mode", "aligned"), ("--gan_mode", "hinge")])
def test_unusable_choices_are_rejected_in_one_line_listing_valid_ones(tmp_path, flag, value, capsys):
    with pytest.raises(SystemExit):
        parse_train(tmp_path, f"{flag} {value}")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert flag in err[0] and value in err[0] and "choose from" in err[0]


def test_str2bool_flags(tmp_path):
    assert parse_train(tmp_path, "--no_dropout False").no_dropout is False
    assert parse_train(tmp_path, "--no_dropout").no_dropout is True
    assert parse_train(tmp_path, "--nce_idt no").nce_idt is False


@pytest.mark.parametrize("extra,needle", [
    ("--input_nc 1", "--input_nc"),
    ("--input_nc 1 --lambda_NCE 0", "--nce_idt False"),  # the identity pass still needs equal channels
    ("--lambda_NCE 0 --lambda_GAN 0", "nothing to learn"),
    ("--load_size 100 --crop_size 128", "--crop_size"),
    ("--batch_size 0", "--batch_size"),
    ("--nce_layers 0,4,x", "--nce_layers"),
    ("--num_patches 0", "--num_patches"),
    ("--gpu_ids a", "--gpu_ids"),
    ("--epoch_count 500", "--epoch_count"),
    ("--print_freq 0", "--print_freq"),
    ("--preprocess squash", "--preprocess"),
])
def test_impossible_combinations_raise_user_errors(tmp_path, extra, needle):
    with pytest.raises(UserError, match=needle):
        parse_train(tmp_path, extra)


def test_missing_dataroot_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does_not_exist"):
        TrainOptions(f"--dataroot {tmp_path / 'does_not_exist'} --checkpoints_dir {tmp_path}").parse()


def test_option_dump_format_and_json(tmp_path):
    root = tmp_path / "root"
    (root / "trainA").mkdir(parents=True)
    options = TrainOptions(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name exp "
                           "--gpu_ids -1 --CUT_mode FastCUT --batch_size 2")
    opt = options.parse()
    folder = tmp_path / "ck" / "exp"
    assert not (folder / "train_opt.txt").exists()  # parse() checks and prints, never writes
    opt.batch_size = 5  # what the entry script changes later is not part of the dump
    options.save_options(opt)
    assert by_key_value(folder / "train_opt.txt", "gpu_ids") == "-1"  # as typed, as the original
    lines = (folder / "train_opt.txt").read_text().splitlines()
    assert lines[0] == "----------------- Options ---------------"
    assert lines[-1] == "----------------- End -------------------"
    body = lines[1:-1]
    keys = [line[:25].strip() for line in body]
    assert keys == sorted(keys)
    by_key = {line[:25].strip(): line for line in body}
    # key right-aligned in 25, ': ', value left-aligned in 30, then the default when it differs
    assert by_key["batch_size"] == f"{'batch_size':>25}: {'2':<30}\t[default: 1]"
    assert by_key["crop_size"] == f"{'crop_size':>25}: {'256':<30}"
    # a FastCUT preset is the parser's default, so it is not marked
    assert by_key["lambda_NCE"] == f"{'lambda_NCE':>25}: {'10.0':<30}"
    stored = json.loads((folder / "train_opt.json").read_text())
    assert stored["batch_size"] == 2 and stored["CUT_mode"] == "FastCUT" and stored["max_dataset_size"] == "inf"


def by_key_value(path, key):
    for line in path.read_text().splitlines():
        if line[:25].strip() == key:
            return line[27:].split("\t")[0].strip()
    raise KeyError(key)


def test_given_options_are_the_typed_ones(tmp_path):
    root = tmp_path / "root"
    (root / "trainA").mkdir(parents=True)
    options = TrainOptions(f"--dataroot {root} --checkpoints_dir {tmp_path} --epoch_count 1 "
                           "--CUT_mode FastCUT --no_antialias")
    options.parse()
    # --epoch_count 1 equals the default and still counts as typed; presets do not
    assert options.given == {"dataroot", "checkpoints_dir", "epoch_count", "CUT_mode", "no_antialias"}


def test_suffix_is_expanded_into_the_name(tmp_path):
    opt = parse_train(tmp_path, "--suffix {netG}_bs{batch_size}")
    assert opt.name == "exp_resnet_9blocks_bs1"


def test_test_options(tmp_path):
    root = tmp_path / "root"
    (root / "testA").mkdir(parents=True)
    opt = TestOptions(f"--dataroot {root} --checkpoints_dir {tmp_path} --name t --gpu_ids -1").parse()
    assert (opt.phase, opt.num_test, opt.eval, opt.results_dir) == ("test", 50, False, "./results/")
    assert opt.load_size == 256 and opt.crop_size == 256  # resized straight to the crop size
    assert opt.isTrain is False
    assert not os.path.exists(tmp_path / "t")  # test.py writes test_opt.txt once G is loaded
    assert not hasattr(opt, "display_id")


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        TrainOptions("--help").parse()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--CUT_mode", "--nce_idt", "--num_patches", "--display_id", "--seed", "--lr_policy",
                 "--no_antialias_up", "--max_dataset_size", "--pretrained_name"):
        assert flag in out
