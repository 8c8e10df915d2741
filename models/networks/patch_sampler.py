"""PatchSampleF: pick the same random locations from each feature map, project, L2-normalise.

This is the netF of CUT (Park et al. 2020, sect. 3.1): the patch embeddings z_l^s fed to PatchNCE,
one small MLP head H_l per tapped generator layer l (`mlp_sample`), or none (`sample`).
"""
import numpy as np
import torch
import torch.nn as nn

from .init import init_weights

EPS = 1e-7  # added to the L2 norm, as the original


class PatchSampleF(nn.Module):
    """Samples patch features per layer and projects them with lazily built 2-layer MLP heads."""

    def __init__(self, use_mlp=False, init_type='normal', init_gain=0.02, nc=256):
        super().__init__()
        self.use_mlp = use_mlp
        self.nc = nc
        self.init_type = init_type
        self.init_gain = init_gain
        # The heads' input widths are only known from the generator's features, so they are
        # built by create_mlp (called explicitly by the model, or on the first forward).
        self.mlp_init = False
        self.num_heads = 0

    def create_mlp(self, feats, device=None):
        """Build `mlp_<i>` = Linear(C_i, nc), ReLU, Linear(nc, nc) for each feature map, then init.

        `feats` is the list of B x C_i x H x W tensors (or plain channel counts C_i).  The heads go
        to the features' device (or `device`).  A no-op for the `sample` variant or when done.
        """
        if not self.use_mlp or self.mlp_init:
            return
        for i, feat in enumerate(feats):
            in_nc = feat if isinstance(feat, int) else feat.shape[1]
            dev = device if device is not None or isinstance(feat, int) else feat.device
            mlp = nn.Sequential(nn.Linear(in_nc, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc))
            setattr(self, f'mlp_{i}', mlp.to(dev) if dev is not None else mlp)
        # As the original: create every head first, then initialise the whole module once.
        init_weights(self, self.init_type, self.init_gain)
        self.num_heads = len(feats)
        self.mlp_init = True

    def forward(self, feats, num_patches=64, patch_ids=None):
        """Sample and embed patches of each B x C_l x H_l x W_l map in `feats`.

        Returns (features, ids).  With num_patches > 0, features[l] is (B*P) x C' with
        P = min(num_patches, H_l*W_l), batch-major (all P rows of image 0 first), and ids[l] the
        P spatial indices h*W_l + w -- shared by all images of the batch.  Pass `patch_ids` to reuse
        locations (the original draws them for the source image and reuses them for the target).
        With num_patches == 0 every location is kept, features[l] is B x C' x H_l x W_l and ids[l]
        is empty.  C' is nc with the MLP, C_l without.  Rows are L2-normalised.
        """
        if self.use_mlp and not self.mlp_init:
            self.create_mlp(feats)
        if torch.is_autocast_enabled(feats[0].device.type):
            # Under --amp the heads and the normalisation run in float32: an untrained head's
            # rows are ~1e-6 long, and 1/norm in their backward overflows fp16 (NaN gradients).
            with torch.autocast(feats[0].device.type, enabled=False):
                return self.forward([f.float() for f in feats], num_patches, patch_ids)
        if self.use_mlp and len(feats) > self.num_heads:
            raise ValueError(f"PatchSampleF has {self.num_heads} MLP heads but got {len(feats)} feature maps")
        out_feats, out_ids = [], []
        for i, feat in enumerate(feats):
            B, C, H, W = feat.shape
            flat = feat.flatten(2)  # B x C x (H*W), spatial index h*W + w
            if num_patches > 0:
                if patch_ids is not None:
                    ids = torch.as_tensor(patch_ids[i], dtype=torch.long, device=feat.device)
                else:
                    # numpy's global RNG, as the original, so seeded runs draw the same locations.
                    perm = np.random.permutation(H * W)[:min(num_patches, H * W)]
                    ids = torch.as_tensor(perm, dtype=torch.long, device=feat.device)
                # B x C x P -> B x P x C -> (B*P) x C, batch-major.  Index before permuting, on
                # purpose: this gather's backward returns a contiguous gradient.  The original's
                # feat.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :] returns a channels-last one,
                # and PyTorch's instance_norm backward (seen on 2.14.1 CPU) is wrong for a batch
                # of one with such a gradient, which corrupts NCE layers 12 and 16 (the
                # InstanceNorm ending each ResnetBlock).  Guarded by tests/test_norm_grad_guard.py.
                x = flat[:, :, ids].permute(0, 2, 1).reshape(-1, C)
            else:
                ids = torch.empty(0, dtype=torch.long, device=feat.device)
                x = flat.permute(0, 2, 1)  # B x (H*W) x C
            if self.use_mlp:
                x = getattr(self, f'mlp_{i}')(x)
            # Unit rows over the channel dimension (the embedding of one patch).
            x = x / (x.norm(p=2, dim=-1, keepdim=True) + EPS)
            if num_patches == 0:
                x = x.permute(0, 2, 1).reshape(B, x.shape[-1], H, W)
            out_feats.append(x)
            out_ids.append(ids)
        return out_feats, out_ids
