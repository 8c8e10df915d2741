"""Translate users' images with a trained generator, at any size: the library behind translate.py.

    from models import load_translator
    translate = load_translator("checkpoints/horse2zebra/latest_net_G.pth", device="cpu")
    zebra = translate(Image.open("horse.jpg"))   # a PIL RGB image of exactly the input's size

The generator's architecture comes from the `train_opt.json` that training writes beside the
weights (or `test_opt.json`); without one, the original's defaults apply (resnet_9blocks, ngf 64,
instance norm, antialiased, RGB -> RGB; SinCUT's presets with model="sincut"), and keyword
overrides (`ngf=4`, `netG="resnet_6blocks"`, ...) win over both.  Weights that do not fit give
one line naming the options that probably differ.

Unlike test.py, nothing is resized to 256x256: the image is padded by reflection to a
multiple of what the generator needs, translated, and cropped back.

Models with a style code (MUNIT, DRIT) translate with several networks; for their checkpoint
folders `load_translator` returns a `StyleTranslator`, built by `load_test_model` from the run's
train_opt.json:

    translate = load_translator("checkpoints/h2z_munit")
    zebra = translate(horse)                      # one random style (seeded: reproducible)
    zebras = translate(horse, n_styles=3)         # a list of 3 images, 3 random styles
    zebra = translate(horse, style_ref=zebra_ref) # the style of a target-domain image (or path)
"""
import argparse
import json
import os
import re

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import functional as TF

from data.base_dataset import POWER_BASE
from data.image_io import convert_image, load_image
from util.checkpoint import load_state_dict_file
from util.errors import UserError
from util.monitor import echo
from util.tiling import run_tiled
from util.util import tensor2im

from . import networks
from .networks.describe import guess_generator_options
from .registry import MODELS
from .sincut_model import SINCUT_DEFAULTS

# The options that shape a generator, with the original's defaults.
# stylegan_resolution is R = stylegan_resolution(load_size, crop_size) of the training run.
ARCH_DEFAULTS = dict(model="cut", netG="resnet_9blocks", ngf=64, normG="instance", no_dropout=True,
                     no_antialias=False, no_antialias_up=False, padding_type="reflect",
                     input_nc=3, output_nc=3, stylegan_resolution=256, stylegan2_G_num_downsampling=1)
OPTION_FILES = ("train_opt.json", "test_opt.json")  # written by options.save_options
MIN_SIDE = 16  # a resnet G needs >= 2 pixels at its 1/4-size bottleneck; pad tiny images up
_CYCLE_GAN_FILE = re.compile(r"_net_G_([AB])\.pth$")
_NOT_A_GENERATOR = re.compile(r"_net_(D|F|D_A|D_B|D_gc)\.pth$")


def find_generator_file(path):
    """`path` itself, or for a checkpoint folder its latest_net_G.pth (latest_net_G_A.pth)."""
    if os.path.isdir(path):
        for name in ("latest_net_G.pth", "latest_net_G_A.pth"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise UserError(f"no latest_net_G.pth or latest_net_G_A.pth in {path}; pass the "
                        "generator file itself (e.g. <folder>/5_net_G.pth)")
    if _NOT_A_GENERATOR.search(os.path.basename(path)):
        raise UserError(f"{path} holds a discriminator or patch sampler, not a generator; pass the "
                        "*_net_G.pth file (*_net_G_A.pth / *_net_G_B.pth for CycleGAN)")
    return path


def read_architecture(path, overrides):
    """(options dict, where they came from) for the generator in `path`."""
    unknown = sorted(set(overrides) - set(ARCH_DEFAULTS))
    if unknown:
        raise UserError(f"unknown generator option '{unknown[0]}'; choose from: "
                        f"{', '.join(sorted(ARCH_DEFAULTS))}")
    folder = os.path.dirname(os.path.abspath(path))
    saved, source = None, "the original's defaults"
    for name in OPTION_FILES:
        json_path = os.path.join(folder, name)
        if os.path.isfile(json_path):
            try:
                with open(json_path) as f:
                    saved = json.load(f)
            except (OSError, ValueError) as err:
                raise UserError(f"cannot read {json_path}: {err}; fix or delete it and pass the "
                                "generator options as flags") from None
            source = json_path
            break
    arch = dict(ARCH_DEFAULTS)
    cycle_file = _CYCLE_GAN_FILE.search(os.path.basename(path))
    if saved is None:
        if cycle_file:
            arch["model"] = "cycle_gan"
        if overrides.get("model", arch["model"]) == "sincut":
            arch.update(_sincut_architecture(SINCUT_DEFAULTS))
    else:
        arch.update({k: saved[k] for k in ARCH_DEFAULTS if k in saved})
        if "load_size" in saved and "crop_size" in saved:
            arch["stylegan_resolution"] = networks.stylegan_resolution(saved["load_size"],
                                                                       saved["crop_size"])
    if cycle_file and cycle_file.group(1) == "B":
        # G_B maps B -> A: built as define_G(output_nc, input_nc) by CycleGANModel
        arch["input_nc"], arch["output_nc"] = arch["output_nc"], arch["input_nc"]
    arch.update(overrides)
    if arch["model"] not in MODELS:
        raise UserError(f"unknown model '{arch['model']}'; choose from: {', '.join(sorted(MODELS))}")
    if overrides:
        source += " and the options given here"
    return arch, source


def _sincut_architecture(preset):
    return dict(netG=preset["netG"], ngf=preset["ngf"],
                stylegan2_G_num_downsampling=preset["stylegan2_G_num_downsampling"],
                stylegan_resolution=networks.stylegan_resolution(preset["load_size"],
                                                                 preset["crop_size"]))


def build_generator(arch):
    for name in ("input_nc", "output_nc"):
        if arch[name] not in (1, 3):
            raise UserError(f"{name} {arch[name]} is not supported for images; use 1 or 3")
    return networks.define_G(arch["input_nc"], arch["output_nc"], arch["ngf"], arch["netG"],
                             arch["normG"], not arch["no_dropout"], "xavier", 0.02,
                             arch["no_antialias"], arch["no_antialias_up"],
                             padding_type=arch["padding_type"],
                             resolution=arch["stylegan_resolution"],
                             num_downsampling=arch["stylegan2_G_num_downsampling"])


def load_weights(net, state_dict, arch, path, source):
    """Strictly load; a mismatch becomes one line naming the options that probably differ."""
    if "networks" in state_dict and isinstance(state_dict["networks"], dict):
        raise UserError(f"{path} is a resumable training state; pass the latest_net_G.pth "
                        "beside it")
    own = net.state_dict()
    bad_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if set(own) == set(state_dict) and not bad_shape:
        net.load_state_dict(state_dict, strict=True)
        return
    guess = guess_generator_options(state_dict, arch["stylegan_resolution"])
    differ = {k: v for k, v in guess.items() if arch.get(k) != v}
    if differ:
        look = ", ".join(f"{k}={v}" for k, v in differ.items())
        used = ", ".join(f"{k}={arch[k]}" for k in differ)
        flags = " ".join(f"--{k} {v}" for k, v in differ.items())
        raise UserError(f"checkpoint {path} does not fit the generator built from {source}: its "
                        f"weights look like {look} (the options say {used}); pass {flags} "
                        "(translate.py) or those keywords (load_translator)")
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    detail = (f"shape of {bad_shape[0]}: file {tuple(state_dict[bad_shape[0]].shape)} vs network "
              f"{tuple(own[bad_shape[0]].shape)}" if bad_shape else
              f"{len(missing)} missing keys, {len(unexpected)} unexpected (e.g. "
              f"{(missing or unexpected)[0]})")
    hint = ("check ngf and the resolution (load_size/crop_size of the training run)"
            if arch["netG"] in networks.RGB_ONLY else "check netG/ngf/normG/no_antialias")
    raise UserError(f"checkpoint {path} does not fit the generator built from {source} "
                    f"({detail}); {hint}")


def resolve_device(device):
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {device} asked for, but CUDA is not available; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {device} does not exist ({torch.cuda.device_count()} GPU(s))")
    return device


def load_test_model(folder, device=None, epoch="latest"):
    """The model of checkpoint `folder` in test mode, its test-time networks loaded from
    `<epoch>_net_<Name>.pth`, built from the train_opt.json that training wrote beside them.

    For models whose translation takes more than one network (a content encoder, a style
    encoder, a decoder...): their translators call the model's own test-time methods.
    """
    json_path = os.path.join(folder, "train_opt.json")
    if not os.path.isfile(json_path):
        raise UserError(f"no train_opt.json in {folder}: this model is rebuilt from the options "
                        "its training wrote there; pass the checkpoint folder of a training run")
    try:
        with open(json_path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {json_path}: {err}") from None
    if saved.get("model") not in MODELS:
        raise UserError(f"{json_path} names model '{saved.get('model')}'; choose from: "
                        f"{', '.join(sorted(MODELS))}")
    device = resolve_device(device)
    opt = argparse.Namespace(**saved)
    opt.isTrain, opt.epoch = False, epoch
    opt.gpu_ids = [device.index or 0] if device.type == "cuda" else []
    opt.checkpoints_dir, opt.name = os.path.split(os.path.abspath(folder))
    model = MODELS[opt.model](opt)
    model.load_networks(epoch)
    model.eval()
    return model


def load_translator(path, device=None, load_size=None, tile=None, tile_overlap=32, amp=False,
                    seed=None, **overrides):
    """A `Translator` for the generator checkpoint `path` (a *_net_G*.pth file or its folder),
    or a `StyleTranslator` for the checkpoint folder of a model with a style code (MUNIT, DRIT;
    a file of it, e.g. <folder>/5_net_G_A.pth, picks that epoch).

    device: "cpu", "cuda", "cuda:N" (default: cuda when available).  load_size, tile,
    tile_overlap, amp: see Translator.  seed: the random style codes of a StyleTranslator
    (default DEFAULT_STYLE_SEED).  overrides: generator options (ARCH_DEFAULTS' names).
    """
    styled = find_style_checkpoint(path)
    if styled is not None:
        folder, epoch, name = styled
        if overrides:
            raise UserError(f"generator options ({', '.join(sorted(overrides))}) do not apply to "
                            f"--model {name}: it is rebuilt from {folder}/train_opt.json")
        model = load_test_model(folder, device, epoch)
        return StyleTranslator(model, load_size=load_size, tile=tile, tile_overlap=tile_overlap,
                               amp=amp, seed=seed)
    path = find_generator_file(path)
    device = resolve_device(device)
    state_dict = load_state_dict_file(path)
    if any(key.startswith("enc_style.") for key in state_dict):
        raise UserError(f"{path} is one auto-encoder of a model with a style code (MUNIT); pass "
                        "the checkpoint folder of its training run, with its train_opt.json")
    arch, source = read_architecture(path, overrides)
    net = build_generator(arch)
    load_weights(net, state_dict, arch, path, source)
    net.to(device).eval()  # eval: dropout off and batch norm on its running statistics
    if amp and device.type != "cuda":
        echo("notice: --amp only applies on CUDA; translating in float32 on the CPU")
        amp = False
    return Translator(net, arch, device, load_size=load_size, tile=tile,
                      tile_overlap=tile_overlap, amp=amp)


class Translator:
    """Callable: PIL image -> PIL RGB image of the same size; B x C x H x W tensor in [-1, 1] ->
    B x output_nc x H x W tensor in [-1, 1] (clamped: SinCUT's generator is unbounded).

    load_size: translate at a scale where the shorter side is `load_size` pixels (bicubic, both
        up and down), then resize the result back to the input's size.  None: the input's scale.
    tile: translate `tile` x `tile` pieces overlapping by `tile_overlap` pixels and blend them
        (less memory; approximate, as each tile's instance-norm statistics are its own).
    amp: float16 autocast (CUDA only).
    """

    def __init__(self, net, arch, device, load_size=None, tile=None, tile_overlap=32, amp=False):
        self.net, self.arch, self.device, self.amp = net, arch, device, amp
        # The resnet halves the size twice; a StyleGAN2 G num_downsampling times.
        downs = 2 ** arch["stylegan2_G_num_downsampling"] if arch["netG"] in networks.RGB_ONLY else 4
        self.multiple = max(POWER_BASE, downs)
        self.load_size = load_size
        if load_size is not None and load_size < 1:
            raise UserError(f"load_size must be a positive number of pixels (got {load_size})")
        if tile is not None:
            if tile < MIN_SIDE or tile % self.multiple:
                raise UserError(f"tile {tile} must be a multiple of {self.multiple} and at least "
                                f"{MIN_SIDE}")
            if not 0 <= tile_overlap < tile:
                raise UserError(f"tile_overlap must be in [0, tile) (got {tile_overlap})")
        self.tile, self.tile_overlap = tile, tile_overlap

    @property
    def input_nc(self):
        return self.arch["input_nc"]

    def __call__(self, image):
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image)
        if isinstance(image, Image.Image):
            return self.translate_images([image])[0]
        raise TypeError(f"expected a PIL image or a B x C x H x W tensor, got {type(image).__name__}")

    def to_tensor(self, image):
        """PIL image (any mode) -> input_nc x H x W in [-1, 1], exactly as test.py's pipeline."""
        return TF.to_tensor(convert_image(image, self.input_nc)).sub(0.5).div(0.5)

    def translate_images(self, images):
        """Translate PIL images of one size as one batch; returns PIL RGB images."""
        batch = torch.stack([self.to_tensor(image) for image in images])
        out = self.translate_tensor(batch)
        return [Image.fromarray(tensor2im(out[i:i + 1])) for i in range(len(images))]

    @torch.no_grad()
    def translate_tensor(self, x):
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise UserError(f"expected a B x {self.input_nc} x H x W tensor, got shape "
                            f"{tuple(x.shape)}")
        height, width = x.shape[-2:]
        y = x.to(self.device, torch.float32)
        if self.load_size is not None:
            scale = self.load_size / min(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            y = _resize(y, size)
        y = self._padded_forward(y)
        if self.load_size is not None:
            y = _resize(y, (height, width))
        return y.clamp(-1.0, 1.0).to(x.device)

    def _padded_forward(self, x):
        """G(x) for any H x W: reflection-pad right and bottom to a multiple of what G needs (and
        at least MIN_SIDE), translate (whole or tiled), crop back."""
        height, width = x.shape[-2:]
        ph = _padded(height, self.multiple) - height
        pw = _padded(width, self.multiple) - width
        if ph or pw:
            # reflection needs the pad to be smaller than the side; tiny images replicate
            mode = "reflect" if ph < height and pw < width else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if self.tile is not None:
            out = run_tiled(self._forward, x, self.tile, self.tile_overlap)
        else:
            out = self._forward(x)
        return out[:, :, :height, :width].float()

    def _forward(self, x):
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            return self.net(x)


def _padded(side, multiple):
    return max(MIN_SIDE, -(-side // multiple) * multiple)


def _resize(x, size):
    """Bicubic resize of a B x C x H x W tensor, antialiased when shrinking (like PIL)."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


# ---------------------------------------------------------------- models with a style code
# The interface (MUNIT, DRIT): a model with a style code has
#     style_dim                              int > 0
#     random_styles(count, generator=None)   (count, style_dim) ~ N(0, I) on model.device
#     style_of(images)                       (B, style_dim): styles of target-domain images
#     translate_with_styles(images, styles)  (B, C, H, W) in [-1, 1]: A -> B, one style per image
# and may set `size_multiple` (what its input sides must be multiples of; default 4).
STYLE_METHODS = ("random_styles", "style_of", "translate_with_styles")
DEFAULT_STYLE_SEED = 10  # the default --seed of the authors' MUNIT test.py
_EPOCH_OF_FILE = re.compile(r"^(.+)_net_[A-Za-z0-9_]+\.pth$")


def has_style_code(model):
    """Whether a model (instance or class) translates with style codes."""
    return all(callable(getattr(model, name, None)) for name in STYLE_METHODS)


def style_model_names():
    return sorted(name for name, cls in MODELS.items() if has_style_code(cls))


def check_style_options(model_name, n_styles=None, style_ref=None, prefix="--"):
    """One-line errors for --n_styles / --style_ref (`prefix` "" names the keywords instead)."""
    if n_styles is None and style_ref is None:
        return
    n_flag, ref_flag = f"{prefix}n_styles", f"{prefix}style_ref"
    if not has_style_code(MODELS.get(model_name)):
        raise UserError(f"--model {model_name} has no style code; {n_flag} and {ref_flag} work "
                        f"with {' and '.join(style_model_names())}")
    if n_styles is not None and style_ref is not None:
        raise UserError(f"give {n_flag} or {ref_flag}, not both (a reference image gives one style)")
    if n_styles is not None and (isinstance(n_styles, bool) or not isinstance(n_styles, int)
                                 or n_styles < 1):
        raise UserError(f"{n_flag} must be a positive number of styles (got {n_styles})")
    if isinstance(style_ref, (str, os.PathLike)) and not os.path.isfile(style_ref):
        raise UserError(f"{ref_flag} {style_ref}: file not found (give a target-domain image)")


def find_style_checkpoint(path):
    """(folder, epoch, model name) when `path` is the checkpoint folder, or a network file in it,
    of a run whose train_opt.json names a model with a style code; else None."""
    if not os.path.exists(path):
        return None  # find_generator_file / load_state_dict_file name the missing file
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    json_path = os.path.join(folder, "train_opt.json")
    if not os.path.isfile(json_path):
        return None
    try:
        with open(json_path) as f:
            name = json.load(f).get("model")
    except (OSError, ValueError, AttributeError):
        return None  # read_architecture reports a broken file
    if not has_style_code(MODELS.get(name)):
        return None
    epoch = "latest"
    if not os.path.isdir(path):
        match = _EPOCH_OF_FILE.match(os.path.basename(path))
        if match is None:
            raise UserError(f"{path} is not a network file (<epoch>_net_<name>.pth) of the "
                            f"--model {name} run in {folder}; pass the folder")
        epoch = match.group(1)
    return folder, epoch, name


class StyleTranslator:
    """Callable translator of a model with a style code (see the interface above).

        translate(image)                    one image: a random style (from `generator`)
        translate(image, n_styles=K)        a list of K images, K random styles
        translate(image, style_ref=ref)     one image in the style of `ref` (PIL image, path, or
                                            a 1 x C x H x W tensor in [-1, 1]; a target-domain image)
        translate(image, styles=codes)      a list, one image per row of codes (K, style_dim)

    `image` is a PIL image (outputs: PIL RGB images of its size) or a B x C x H x W tensor in
    [-1, 1] (outputs: tensors; random styles are drawn per image, image by image).  Random
    styles come from a CPU torch.Generator seeded with `seed` (DEFAULT_STYLE_SEED): the same
    codes on any device, a new one for every draw; pass `generator=` to a call to use another.
    Inputs are padded by reflection to a multiple of the model's `size_multiple` (and at least
    MIN_SIDE), translated, and cropped back, as Translator does; load_size, tile, tile_overlap
    and amp as there (the reference image is scaled by load_size too, as the authors' test.py
    resizes it).
    """

    def __init__(self, model, load_size=None, tile=None, tile_overlap=32, amp=False, seed=None):
        self.model = model
        self.device = model.device
        self.style_dim = model.style_dim
        self.input_nc, self.output_nc = model.opt.input_nc, model.opt.output_nc
        self.multiple = max(POWER_BASE, getattr(model, "size_multiple", POWER_BASE))
        if amp and self.device.type != "cuda":
            echo("notice: --amp only applies on CUDA; translating in float32 on the CPU")
            amp = False
        self.amp = amp
        if load_size is not None and load_size < 1:
            raise UserError(f"load_size must be a positive number of pixels (got {load_size})")
        if tile is not None:
            if tile < MIN_SIDE or tile % self.multiple:
                raise UserError(f"tile {tile} must be a multiple of {self.multiple} and at least "
                                f"{MIN_SIDE}")
            if not 0 <= tile_overlap < tile:
                raise UserError(f"tile_overlap must be in [0, tile) (got {tile_overlap})")
        self.load_size, self.tile, self.tile_overlap = load_size, tile, tile_overlap
        self.generator = torch.Generator().manual_seed(DEFAULT_STYLE_SEED if seed is None else seed)

    # -- style codes
    def random_styles(self, count, generator=None):
        """(count, style_dim) codes drawn from `generator` (default: this translator's)."""
        return self.model.random_styles(count, self.generator if generator is None else generator)

    @torch.no_grad()
    def style_of(self, reference):
        """(1, style_dim): the style of a target-domain image (PIL image, path or tensor)."""
        if isinstance(reference, (str, os.PathLike)):
            reference = load_image(reference, self.output_nc)  # the loader's reader (EXIF, modes)
        if isinstance(reference, Image.Image):
            reference = TF.to_tensor(convert_image(reference, self.output_nc)).sub(0.5).div(0.5)[None]
        if not isinstance(reference, torch.Tensor) or reference.dim() != 4 or \
                reference.shape[:2] != (1, self.output_nc):
            raise UserError(f"style_ref must be a PIL image, a path or a 1 x {self.output_nc} x H x W "
                            "tensor of the target domain")
        x = reference.to(self.device, torch.float32)
        if self.load_size is not None:
            x = _resize(x, _scaled_size(x, self.load_size))
        if min(x.shape[-2:]) < MIN_SIDE:
            raise UserError(f"the style reference is {x.shape[-1]}x{x.shape[-2]} pixels; it needs "
                            f"at least {MIN_SIDE} on each side")
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            return self.model.style_of(x).float()

    # -- translation
    def __call__(self, image, n_styles=None, style_ref=None, styles=None, generator=None):
        given = [k for k, v in (("n_styles", n_styles), ("style_ref", style_ref), ("styles", styles))
                 if v is not None]
        if len(given) > 1:
            raise UserError(f"give one of n_styles, style_ref and styles (got {' and '.join(given)})")
        check_style_options(self.model.opt.model, n_styles, style_ref if isinstance(
            style_ref, (str, os.PathLike)) else None, prefix="")
        if isinstance(image, Image.Image):
            outputs = self.translate_images([image], n_styles, style_ref, styles, generator)[0]
            return outputs if n_styles is not None or styles is not None else outputs[0]
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"expected a PIL image or a B x C x H x W tensor, got {type(image).__name__}")
        batch = image.shape[0] if image.dim() == 4 else 0
        codes = self._codes(batch, n_styles, style_ref, styles, generator)
        outputs = [self.translate_tensor(image, codes[:, j]) for j in range(codes.shape[1])]
        return outputs if n_styles is not None or styles is not None else outputs[0]

    def _codes(self, batch, n_styles, style_ref, styles, generator):
        """(batch, K, style_dim): K codes per image."""
        if style_ref is not None:
            return self.style_of(style_ref).expand(batch, 1, self.style_dim)
        if styles is not None:
            styles = torch.as_tensor(styles, dtype=torch.float32).to(self.device)
            if styles.dim() != 2 or styles.shape[1] != self.style_dim:
                raise UserError(f"styles must be a K x {self.style_dim} tensor (got shape "
                                f"{tuple(styles.shape)})")
            return styles[None].expand(batch, -1, -1)
        count = 1 if n_styles is None else n_styles
        # image by image, so an image's codes do not depend on the batch it came in
        return self.random_styles(batch * count, generator).view(batch, count, self.style_dim)

    def translate_images(self, images, n_styles=None, style_ref=None, styles=None, generator=None,
                         codes=None):
        """PIL images of one size -> for each, a list of PIL RGB images (one per style).
        `codes` (len(images), K, style_dim) overrides the other style arguments."""
        batch = torch.stack([TF.to_tensor(convert_image(im, self.input_nc)).sub(0.5).div(0.5)
                             for im in images])
        if codes is None:
            codes = self._codes(len(images), n_styles, style_ref, styles, generator)
        outs = [self.translate_tensor(batch, codes[:, j]) for j in range(codes.shape[1])]
        return [[Image.fromarray(tensor2im(out[i:i + 1])) for out in outs]
                for i in range(len(images))]

    @torch.no_grad()
    def translate_tensor(self, x, styles):
        """x (B, input_nc, H, W) in [-1, 1], styles (B, style_dim) -> (B, output_nc, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise UserError(f"expected a B x {self.input_nc} x H x W tensor, got shape "
                            f"{tuple(x.shape)}")
        height, width = x.shape[-2:]
        y = x.to(self.device, torch.float32)
        styles = styles.to(self.device)
        if self.load_size is not None:
            y = _resize(y, _scaled_size(y, self.load_size))
        ph = _padded(y.shape[-2], self.multiple) - y.shape[-2]
        pw = _padded(y.shape[-1], self.multiple) - y.shape[-1]
        if ph or pw:
            mode = "reflect" if ph < y.shape[-2] and pw < y.shape[-1] else "replicate"
            padded = F.pad(y, (0, pw, 0, ph), mode=mode)
        else:
            padded = y

        def forward(tile):
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                return self.model.translate_with_styles(tile, styles)
        out = run_tiled(forward, padded, self.tile, self.tile_overlap) if self.tile else forward(padded)
        out = out[:, :, :y.shape[-2], :y.shape[-1]].float()
        if self.load_size is not None:
            out = _resize(out, (height, width))
        return out.clamp(-1.0, 1.0).to(x.device)


def _scaled_size(x, load_size):
    """(height, width) of x scaled so that its shorter side is load_size."""
    height, width = x.shape[-2:]
    scale = load_size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def side_by_side(images):
    """One RGB strip of PIL images of one height, left to right."""
    images = [im.convert("RGB") for im in images]
    strip = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)))
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width
    return strip
