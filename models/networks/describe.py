"""Read a generator's architecture options back from its weights, to explain a mismatch.

A checkpoint that does not fit the network built from the options makes PyTorch list every
missing and unexpected key; a user needs to hear "these weights were trained with --ngf 4".
`guess_generator_options` reads what the keys and shapes reveal; options they cannot reveal are
left out (e.g. 'instance' and 'none' norms of a ResnetGenerator differ only by conv biases, and
a StyleGAN2 generator's widths depend on --ngf and the resolution together).
"""
import re

from .stylegan import generator_channels

_RESNET_INDEX = re.compile(r"^model\.(\d+)\.")


def guess_generator_options(state_dict, resolution=None):
    """Options of GENERATORS' networks the state_dict reveals, as a dict (possibly empty).

    `resolution` (the StyleGAN2 resolution the caller builds for) lets --ngf be read from a
    StyleGAN2 checkpoint's widths.
    """
    if any(key.startswith("model.") for key in state_dict):
        return _guess_resnet(state_dict)
    if any(key.startswith("encoder.convs.") for key in state_dict):
        return _guess_stylegan(state_dict, resolution)
    return {}


def _guess_resnet(sd):
    """ResnetGenerator (generators.py): model.1 is the 7x7 input conv (model.0 with
    --padding_type zero), model.<i>.conv_block.* the residual blocks, Downsample/Upsample carry
    `filt` buffers, the last conv is 7x7 to output_nc; a 1-D weight after the first conv without
    running statistics is an affine instance norm."""
    found = {}
    first = sd.get("model.1.weight")
    zero_padded = first is None or first.dim() != 4  # --padding_type zero: no pad layer, conv first
    if zero_padded and sd.get("model.0.weight") is not None:
        first = sd["model.0.weight"]
        found["padding_type"] = "zero"
    if first is not None and first.dim() == 4:
        found["ngf"], found["input_nc"] = int(first.shape[0]), int(first.shape[1])
    norm = sd.get(f"model.{1 if zero_padded else 2}.weight")
    if norm is not None and norm.dim() == 1 and not any(k.endswith(".running_mean") for k in sd):
        found["normG"] = "instance_affine"
    indices = {int(m.group(1)): key for key in sd if (m := _RESNET_INDEX.match(key))}
    blocks = sorted({i for i, key in indices.items() if ".conv_block." in key})
    found["netG"] = f"resnet_{len(blocks)}blocks"
    if blocks:
        filt = {i for i, key in indices.items() if key.endswith(".filt")}
        found["no_antialias"] = not any(i < blocks[0] for i in filt)
        found["no_antialias_up"] = not any(i > blocks[-1] for i in filt)
        # With dropout the second conv of a block moves from index 5 to 6.
        found["no_dropout"] = not any(".conv_block.6.weight" in key for key in sd)
    if any(key.endswith(".running_mean") for key in sd):
        found["normG"] = "batch"
    last = sd.get(f"model.{max(indices)}.weight") if indices else None
    if last is not None and last.dim() == 4:
        found["output_nc"] = int(last.shape[0])
    return found


def _guess_stylegan(sd, resolution):
    """StyleGAN2Generator (stylegan.py): decoder.convs holds n_blocks // 2 ResBlocks (keys
    `.conv1.`), then one upsampling StyledConv per downsampling (keys `.conv.weight`)."""
    decoder = {}
    for key in sd:
        m = re.match(r"^decoder\.convs\.(\d+)\.(\w+)", key)
        if m:
            decoder.setdefault(int(m.group(1)), set()).add(m.group(2))
    n_res = sum(1 for parts in decoder.values() if "conv1" in parts)
    found = {"netG": {3: "stylegan2", 1: "smallstylegan2"}.get(n_res, f"stylegan2 ({2 * n_res} blocks)"),
             "stylegan2_G_num_downsampling": sum(1 for parts in decoder.values() if "conv" in parts)}
    first = sd.get("encoder.convs.1.0.weight")  # the 1x1 ConvLayer to ch[R]: (ch[R], 3, 1, 1)
    if resolution in generator_channels(1) and first is not None:
        width = int(first.shape[0])
        # ch[R] is monotonic in ngf, so the first ngf that reaches the width is the only candidate.
        for ngf in range(1, 1025):
            if generator_channels(ngf)[resolution] >= width:
                if generator_channels(ngf)[resolution] == width:
                    found["ngf"] = ngf
                break
    return found
