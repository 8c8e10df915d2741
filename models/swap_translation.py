"""Texture swapping with a trained Swapping Autoencoder (--model swap_ae): the library behind
`translate.py --texture` / `--grid`, and the `swap` of the Python API.

    from models import load_translator
    swapper = load_translator("checkpoints/church_swap")          # the checkpoint folder
    out = swapper.swap(Image.open("church.jpg"), Image.open("sunset.jpg"), alpha=1.0)
    frames = swapper.swap(structure, texture, alpha=[0, 0.25, 0.5, 0.75, 1])   # a list
    rows = swapper.grid([s1, s2], [t1, t2, t3])                   # rows[i][j] = G(sp_i, gl_j)
    rec = swapper(image)                                          # reconstruction (alpha 0)

Texture mixing follows the authors' simple_swapping evaluation: gl = (1 - alpha) gl_structure +
alpha gl_texture (linear, re-normalised inside G), so alpha 0 reconstructs the structure image
and 1 is a full swap.  The noise G injects is frozen (a map per layer and size, drawn from
`seed`), so the same inputs always give the same output; the authors freeze one map drawn at
the first structure image's size.

Sizes: an image is first scaled so its shorter side is `load_size` (default: the training run's
--load_size, as the authors' test preprocessing scale_shortside; None keeps the input's scale),
then each side is rounded to the nearest multiple of 2^netE_num_downsampling_sp (16 by default;
the authors' make_power_2 with base 16), bicubic, and at least the texture branch's smallest
input; the output is resized back to the structure image's own size.

Checkpoints: a training folder (its latest_net_E.pth and latest_net_G.pth and train_opt.json), a
`<epoch>_net_E.pth` / `_net_G.pth` file in one, or the authors' own `*_checkpoint.pth` (one
file holding E., G., D., Dpatch.; built with the 256-px defaults unless keywords say otherwise,
e.g. netE_num_downsampling_sp=5 for their FFHQ-1024 model).
"""
import argparse
import json
import os
import re

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import functional as TF

from data.image_io import convert_image
from util.checkpoint import load_state_dict_file
from util.errors import UserError
from util.monitor import echo
from util.util import tensor2im

MODEL = "swap_ae"
_NET_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<name>[A-Za-z]+)\.pth$")
_AUTHORS_FILE = re.compile(r"_checkpoint\.pth$")
# The options that shape E and G, with the authors' (and our preset's) values.
ARCH_OPTIONS = dict(spatial_code_ch=8, global_code_ch=2048, netE_num_downsampling_sp=4,
                    netE_num_downsampling_gl=2, netE_scale_capacity=1.0, netE_nc_steepness=2.0,
                    netG_num_base_resnet_layers=2, netG_scale_capacity=1.0, netG_use_noise=True,
                    use_antialias=True, load_size=256)


# ---------------------------------------------------------------------------------- sizes
def nearest_multiple(side, multiple, min_side):
    """The authors' make_power_2: round(side / multiple) * multiple (Python's round), at least
    `min_side` rounded up to a multiple."""
    low = -(-min_side // multiple) * multiple
    return max(low, int(round(side / multiple)) * multiple)


def _resize(x, size):
    """Bicubic resize of B x C x H x W, antialiased when shrinking (as PIL's resize)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)


def fit_size(x, multiple, min_side, load_size=None):
    """(x resized for E and G, restore): each side scaled so the shorter one is `load_size` (if
    given), then rounded to the nearest multiple of `multiple` (at least `min_side`); `restore(y)`
    resizes an output y back to x's size."""
    height, width = x.shape[-2:]
    h, w = float(height), float(width)
    if load_size is not None:
        scale = load_size / min(h, w)
        h, w = h * scale, w * scale
    size = (nearest_multiple(h, multiple, min_side), nearest_multiple(w, multiple, min_side))
    return _resize(x, size), lambda y: _resize(y, (height, width))


# ---------------------------------------------------------------------------------- loading
def checkpoint_folder(path):
    """The folder and epoch of a swap_ae checkpoint path (a folder or one of its network files)."""
    if os.path.isdir(path):
        return path, "latest"
    match = _NET_FILE.match(os.path.basename(path))
    if match:
        return os.path.dirname(os.path.abspath(path)), match.group("epoch")
    return None, None


def is_swap_checkpoint(path):
    """Whether `path` holds a swap_ae model: a training folder (or one of its network files)
    whose train_opt.json says --model swap_ae, or an authors' *_checkpoint.pth."""
    if os.path.isfile(path) and _AUTHORS_FILE.search(os.path.basename(path)):
        return True
    folder, _ = checkpoint_folder(path)
    json_path = os.path.join(folder, "train_opt.json") if folder else None
    if not json_path or not os.path.isfile(json_path):
        return False
    try:
        with open(json_path) as f:
            return json.load(f).get("model") == MODEL
    except (OSError, ValueError):
        return False


def load_swap_translator(path, device=None, load_size="auto", amp=False, seed=0, **overrides):
    """A SwapTranslator for the swap_ae checkpoint at `path` (see the module docstring).

    load_size: "auto" (the training run's --load_size), None (the input's own scale) or pixels.
    overrides: architecture options (ARCH_OPTIONS' names) for an authors' checkpoint.
    """
    from .translator import load_test_model, resolve_device
    device = resolve_device(device)
    if os.path.isfile(path) and _AUTHORS_FILE.search(os.path.basename(path)):
        E, G, arch = _load_authors_checkpoint(path, device, overrides)
    else:
        if overrides:
            raise UserError(f"{path}: the architecture of a training folder comes from its "
                            f"train_opt.json; drop {', '.join(sorted(overrides))}")
        folder, epoch = checkpoint_folder(path)
        if folder is None:
            raise UserError(f"{path} is not a swap_ae checkpoint: pass the training folder or its "
                            "<epoch>_net_G.pth")
        for name in ("E", "G"):
            if not os.path.isfile(os.path.join(folder, f"{epoch}_net_{name}.pth")):
                raise UserError(f"{os.path.join(folder, f'{epoch}_net_{name}.pth')} is missing: a "
                                "swap needs the encoder and the generator of the same epoch")
        model = load_test_model(folder, device=str(device), epoch=epoch)
        E, G = model.netE, model.netG
        arch = {k: getattr(model.opt, k, v) for k, v in ARCH_OPTIONS.items()}
    if amp and device.type != "cuda":
        echo("notice: --amp only applies on CUDA; swapping in float32 on the CPU")
        amp = False
    return SwapTranslator(E, G, arch, device, arch["load_size"] if load_size == "auto" else load_size,
                          amp=amp, seed=seed)


def _load_authors_checkpoint(path, device, overrides):
    """E and G from the authors' single-file checkpoint (keys `E.*`, `G.*`)."""
    from .swap_ae_model import build_networks
    unknown = sorted(set(overrides) - set(ARCH_OPTIONS))
    if unknown:
        raise UserError(f"unknown swap_ae option '{unknown[0]}'; choose from: {', '.join(sorted(ARCH_OPTIONS))}")
    arch = dict(ARCH_OPTIONS, **overrides)
    state = load_state_dict_file(path)
    nets = build_networks(argparse.Namespace(**arch), ["E", "G"])
    for name, net in nets.items():
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        try:
            net.load_state_dict(part, strict=True)
        except RuntimeError as err:
            lines = str(err).strip().splitlines()
            raise UserError(f"{path}: its {name} does not fit the network built from "
                            f"{arch if overrides else 'the 256-px defaults'} "
                            f"({(lines[1] if len(lines) > 1 else lines[0]).strip()}); pass the "
                            "options of that run as keywords") from None
    E, G = (nets[n].to(device).eval() for n in ("E", "G"))
    return E, G, arch


# ---------------------------------------------------------------------------------- swapping
class SwapTranslator:
    """Structure from one image, texture from another (see the module docstring).

    Images are PIL images (any mode; results are PIL RGB images of the structure image's size)
    or B x 3 x H x W tensors in [-1, 1] (results are tensors of that shape, clamped to [-1, 1];
    a texture tensor holds 1 or B images).
    """

    input_nc = 3

    def __init__(self, E, G, arch, device, load_size=None, amp=False, seed=0):
        from .swap_ae_model import min_image_side
        self.E, self.G, self.arch, self.device, self.amp = E.eval(), G.eval(), arch, device, amp
        if load_size is not None and load_size < 1:
            raise UserError(f"load_size must be a positive number of pixels (got {load_size})")
        self.load_size = load_size
        self.multiple = 2 ** arch["netE_num_downsampling_sp"]
        self.min_side = min_image_side(argparse.Namespace(**arch))
        self.seed = seed
        G.freeze_noise(seed)

    # -- tensors
    def to_tensor(self, image):
        """PIL image -> 1 x 3 x H x W in [-1, 1]; tensors pass through (checked)."""
        if isinstance(image, Image.Image):
            return TF.to_tensor(convert_image(image, 3)).sub(0.5).div(0.5).unsqueeze(0)
        if isinstance(image, torch.Tensor):
            if image.dim() != 4 or image.shape[1] != 3:
                raise UserError(f"expected a B x 3 x H x W tensor, got shape {tuple(image.shape)}")
            return image
        raise TypeError(f"expected a PIL image or a B x 3 x H x W tensor, got {type(image).__name__}")

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.amp)

    @torch.no_grad()
    def encode(self, image):
        """(sp, gl, restore): the codes of `image` at its working size, and the function that
        resizes an output of G back to the image's own size."""
        x = self.to_tensor(image).to(self.device, torch.float32)
        x, restore = fit_size(x, self.multiple, self.min_side, self.load_size)
        with self._autocast():
            sp, gl = self.E(x)
        return sp.float(), gl.float(), restore

    @torch.no_grad()
    def decode(self, sp, gl):
        with self._autocast():
            return self.G(sp, gl).float()

    def _result(self, y, like):
        y = y.clamp(-1.0, 1.0)
        if isinstance(like, torch.Tensor):
            return y.to(like.device)
        return Image.fromarray(tensor2im(y[:1]))

    # -- the operations
    def swap(self, structure, texture, alpha=1.0):
        """G(sp of `structure`, (1 - alpha) gl of `structure` + alpha gl of `texture`).
        `alpha` may be a list: the results then come as a list, one per alpha."""
        alphas = list(alpha) if isinstance(alpha, (list, tuple)) else [alpha]
        sp, gl_s, restore = self.encode(structure)
        _, gl_t, _ = self.encode(texture)
        if gl_t.shape[0] not in (1, gl_s.shape[0]):
            raise UserError(f"{gl_t.shape[0]} texture images for {gl_s.shape[0]} structure images; "
                            "give one texture, or one per structure image")
        outs = [self._result(restore(self.decode(sp, torch.lerp(gl_s, gl_t.expand_as(gl_s), float(a)))),
                             structure) for a in alphas]
        return outs if isinstance(alpha, (list, tuple)) else outs[0]

    def reconstruct(self, image):
        sp, gl, restore = self.encode(image)
        return self._result(restore(self.decode(sp, gl)), image)

    __call__ = reconstruct

    def grid(self, structures, textures):
        """rows[i][j] = the structure of structures[i] with the texture of textures[j]."""
        codes = [self.encode(t)[1] for t in textures]
        rows = []
        for structure in structures:
            sp, _, restore = self.encode(structure)
            rows.append([self._result(restore(self.decode(sp, gl.expand(sp.shape[0], -1))), structure)
                         for gl in codes])
        return rows


def compose_grid(structures, textures, rows, cell):
    """The authors' grid layout as one PIL image: a blank (white) corner, the texture images along
    the top, the structure images down the left, swaps inside; every cell `cell` x `cell`."""
    canvas = Image.new("RGB", ((len(textures) + 1) * cell, (len(structures) + 1) * cell), "white")

    def put(image, i, j):
        canvas.paste(image.convert("RGB").resize((cell, cell), Image.BICUBIC), (j * cell, i * cell))

    for j, texture in enumerate(textures):
        put(texture, 0, j + 1)
    for i, (structure, row) in enumerate(zip(structures, rows)):
        put(structure, i + 1, 0)
        for j, image in enumerate(row):
            put(image, i + 1, j + 1)
    return canvas


# ---------------------------------------------------------------------------------- translate.py
def add_swap_arguments(parser):
    """translate.py's options for swap_ae checkpoints."""
    g = parser.add_argument_group("texture swapping (swap_ae checkpoints)")
    g.add_argument("--texture", default=None, metavar="IMAGE",
                   help="take the texture from this image and the structure from each INPUT (both "
                        "scaled to a short side of the training run's --load_size unless --load_size "
                        "is given; outputs have the INPUTs' sizes)")
    g.add_argument("--texture_mix", default="1", metavar="ALPHAS",
                   help="comma-separated alphas: (1 - a) texture of INPUT + a texture of --texture; "
                        "0 reconstructs, 1 swaps fully (default 1); several give one output each, "
                        "named <name>_<alpha>.png")
    g.add_argument("--grid", nargs=2, default=None, metavar=("STRUCTURE_DIR", "TEXTURE_DIR"),
                   help="every structure image with every texture image: one output per pair "
                        "(<structure>_<texture>.png) and grid.png")
    return parser


def handles(args):
    """Whether translate.py hands this run to `run_swap`: a swap is asked for, or the checkpoint
    is a swap_ae one (which only swaps)."""
    return args.texture is not None or args.grid is not None or is_swap_checkpoint(args.checkpoint)


def parse_alphas(text):
    try:
        alphas = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--texture_mix '{text}' must be comma-separated numbers, e.g. 0,0.5,1") from None
    if not alphas:
        raise UserError("--texture_mix is empty; give e.g. 0,0.5,1")
    return alphas


def run_swap(args, collect_inputs, plan_outputs, device):
    """translate.py --texture / --grid.  `collect_inputs` and `plan_outputs` are translate.py's
    own (the same input forms and the same overwrite checks)."""
    from data.image_io import load_image
    from models.translator import check_style_options
    from util.util import save_image
    import numpy as np

    check_style_options("swap_ae", args.n_styles, args.style_ref)  # it swaps textures instead
    if args.texture is not None and args.grid is not None:
        raise UserError("give --texture (with INPUTs) or --grid, not both")
    if args.texture is None and args.grid is None:
        raise UserError(f"{args.checkpoint} is a swap_ae model, which swaps textures: pass --texture "
                        "IMAGE (--texture_mix 0 reconstructs the INPUTs) or --grid STRUCTURE_DIR "
                        "TEXTURE_DIR")
    if args.tile is not None or args.overrides:
        raise UserError("--tile and the generator options apply to translation, not to --texture / "
                        "--grid swaps (the architecture comes from the checkpoint)")
    if not is_swap_checkpoint(args.checkpoint):
        raise UserError(f"{args.checkpoint} is not a swap_ae checkpoint: --texture and --grid need a "
                        "model trained with --model swap_ae (its folder or <epoch>_net_G.pth)")
    alphas = parse_alphas(args.texture_mix)
    swapper = load_swap_translator(args.checkpoint, device=device,
                                   load_size="auto" if args.load_size is None else args.load_size,
                                   amp=args.amp, seed=0 if args.seed is None else args.seed)

    def read(path):
        return load_image(path, 3)  # raises a one-line UserError naming an unreadable file

    def write(image, out):
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        save_image(np.asarray(image), out)

    if args.grid is not None:
        folders = args.grid
        found = [collect_inputs([folder], args.recursive) for folder in folders]
        for folder, items in zip(folders, found):
            if not items:
                raise UserError(f"no image files in {folder}")
        structures = [(path, read(path)) for path, _ in found[0]]
        textures = [(path, read(path)) for path, _ in found[1]]
        rows = swapper.grid([s for _, s in structures], [t for _, t in textures])
        for (s_path, _), row in zip(structures, rows):
            for (t_path, _), image in zip(textures, row):
                stem = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
                write(image, os.path.join(args.output, f"{stem(s_path)}_{stem(t_path)}.png"))
        cell = min(256, min(rows[0][0].size))
        write(compose_grid([s for _, s in structures], [t for _, t in textures], rows, cell),
              os.path.join(args.output, "grid.png"))
        print(f"swapped {len(structures)} structure x {len(textures)} texture images into "
              f"{args.output} (grid.png)")
        return 0

    if not args.inputs:
        raise UserError("--texture swaps the texture into the structure of each INPUT: give at "
                        "least one image, folder or glob")
    texture = read(args.texture)
    planned = plan_outputs(collect_inputs(args.inputs, args.recursive), args)
    if not planned:
        raise UserError(f"no image files in {' '.join(args.inputs)}")
    done = 0
    for path, (out,) in planned:  # one output per input (no --n_styles here)
        outs = swapper.swap(read(path), texture, alpha=alphas)
        for alpha, image in zip(alphas, outs):
            target = out if len(alphas) == 1 else f"{os.path.splitext(out)[0]}_{alpha:.2f}.png"
            write(image, target)
            done += 1
    print(f"swapped the texture of {args.texture} into {len(planned)} image(s): {done} output(s) "
          f"in {args.output}")
    return 0
