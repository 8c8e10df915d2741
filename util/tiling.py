"""Run an image-to-image function on overlapping tiles and blend them (for images too large for
memory).

Each tile's output is weighted by a ramp that rises linearly over the overlap from each edge,
so neighbouring tiles cross-fade instead of meeting at a seam.  Weights are normalised by their
sum, so any function that commutes with cropping (a per-pixel one) comes back exactly.  A
generator does not: its receptive field and instance norm statistics see only the tile, so tiled
results are an approximation of translating the whole image at once.
"""
import torch


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` shared
    pixels between neighbours; the last tile ends exactly at `length`."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(size, overlap, device):
    """1-D weights: min(1, distance to the nearer end in pixels / (overlap + 1)), all positive."""
    i = torch.arange(size, device=device, dtype=torch.float32)
    edge = torch.minimum(i + 1, size - i)
    return torch.clamp(edge / (overlap + 1), max=1.0)


def run_tiled(fn, x, tile, overlap):
    """fn applied to `x` (B x C x H x W) tile by tile; tiles are `tile` x `tile` (smaller sides
    of `x` are taken whole).  `fn` must keep the spatial size; its channel count may differ."""
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    _, _, height, width = x.shape
    th, tw = min(tile, height), min(tile, width)
    out = weight_sum = None
    for top in tile_starts(height, th, overlap):
        for left in tile_starts(width, tw, overlap):
            y = fn(x[:, :, top:top + th, left:left + tw]).float()
            if out is None:
                out = y.new_zeros(y.shape[0], y.shape[1], height, width)
                weight_sum = y.new_zeros(1, 1, height, width)
                w = (_ramp(th, overlap, y.device)[:, None] * _ramp(tw, overlap, y.device)[None, :])
            out[:, :, top:top + th, left:left + tw] += y * w
            weight_sum[:, :, top:top + th, left:left + tw] += w
    return out / weight_sum
