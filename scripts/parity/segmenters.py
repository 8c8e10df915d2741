"""Parity of our segmenters with the authors' modules (not part of the test suite).

    python scripts/parity/segmenters.py --drn_repo PATH/TO/fyu-drn --deeplab_repo PATH/TO/deeplab-pytorch

Needs checkouts of github.com/fyu/drn and github.com/kazuto1011/deeplab-pytorch; nothing is
copied from them.  For each pair (their module, ours):
  1. the state_dict keys and shapes are identical (so their published files load into ours);
  2. their randomly initialised weights, loaded into ours, give the same outputs (eval mode);
  3. the parameter counts, printed: tests/test_segmentation_networks.py holds these figures.
DRNSeg lives in segment.py, which does not import on Python 3 (`.cuda(async=True)`), so the class
and its fill_up_weights are taken from the file's syntax tree and run with the names they use.
"""
import argparse
import ast
import importlib
import math
import os
import sys

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from models.networks.segmentation import DRN, DRNSeg, DeepLabV2MSC  # noqa: E402


def their_drnseg_class(repo):
    """segment.py's DRNSeg and fill_up_weights, executed without the rest of the file."""
    with open(os.path.join(repo, "segment.py")) as f:
        tree = ast.parse(f.read().replace("async=True", "non_blocking=True"))
    wanted = [node for node in tree.body if getattr(node, "name", None) in ("DRNSeg",
                                                                              "fill_up_weights")]
    sys.path.insert(0, repo)
    namespace = {"nn": nn, "math": math, "torch": torch, "drn": importlib.import_module("drn")}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "segment.py", "exec"), namespace)
    return namespace["DRNSeg"], namespace["drn"]


def count(net):
    return sum(p.numel() for p in net.parameters())


def compare_keys(theirs, ours, label):
    a = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert list(a) == list(b), f"{label}: keys differ: {sorted(set(a) ^ set(b))[:5]}"
    assert a == b, f"{label}: shapes differ: {[k for k in a if a[k] != b[k]][:5]}"
    print(f"{label}: {len(a)} state_dict entries, same names, order and shapes")


def compare_outputs(theirs, ours, x, label, pick=lambda out: out):
    ours.load_state_dict(theirs.state_dict())
    theirs.eval(), ours.eval()
    with torch.no_grad():
        a, b = pick(theirs(x)), ours(x)
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err < 1e-4, f"{label}: outputs differ ({a.shape}, {b.shape}, {err})"
    print(f"{label}: same output {tuple(a.shape)} (max |difference| {err:.2e})")


def drn_parity(repo):
    their_seg, drn = their_drnseg_class(repo)
    torch.manual_seed(0)
    theirs = drn.drn_d_22(pretrained=False)
    ours = DRN()
    compare_keys(theirs, ours, "drn_d_22 (ImageNet)")
    compare_outputs(theirs, ours, torch.randn(1, 3, 224, 224), "drn_d_22 (ImageNet)")
    print(f"  parameters: theirs {count(theirs):,}, ours {count(ours):,}")

    theirs = their_seg("drn_d_22", 19, pretrained_model=None, pretrained=False)
    ours = DRNSeg(19)
    compare_keys(theirs, ours, "DRNSeg drn_d_22, 19 classes")
    assert torch.equal(theirs.up.weight, ours.up.weight), "bilinear upsampling weights differ"
    for parameter in theirs.base.parameters():  # BN statistics and weights away from 1/0
        parameter.data.add_(0.1 * torch.randn_like(parameter))
    compare_outputs(theirs, ours, torch.randn(2, 3, 128, 256), "DRNSeg drn_d_22, 19 classes",
                    pick=lambda out: out[0])
    trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    print(f"  parameters: theirs {count(theirs):,} ({trainable:,} trainable), ours "
          f"{count(ours):,} ({sum(p.numel() for p in ours.parameters() if p.requires_grad):,})")
    base_keys = [k for k in theirs.state_dict() if k.startswith("base.")]
    imagenet = drn.drn_d_22(pretrained=False).state_dict()
    used = DRNSeg(19).load_imagenet_base(imagenet)
    assert len(used) == len(base_keys), "ImageNet keys do not cover DRNSeg's base"
    print(f"  an ImageNet drn_d_22 state dict initialises all {len(base_keys)} base entries")


def deeplab_parity(repo):
    sys.path.insert(0, repo)
    from libs.models.deeplabv2 import DeepLabV2
    from libs.models.msc import MSC
    torch.manual_seed(0)
    # hubconf.py's deeplabv2_resnet101 for the COCO-Stuff files: 182 classes, rates 6/12/18/24
    theirs = MSC(base=DeepLabV2(n_classes=182, n_blocks=[3, 4, 23, 3],
                                atrous_rates=[6, 12, 18, 24]), scales=[0.5, 0.75])
    ours = DeepLabV2MSC(182)
    compare_keys(theirs, ours, "DeepLabV2 ResNet-101 MSC, 182 classes")
    compare_outputs(theirs, ours, torch.randn(1, 3, 97, 129), "DeepLabV2 ResNet-101 MSC, 182 classes")
    print(f"  parameters: theirs {count(theirs):,}, ours {count(ours):,}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drn_repo", required=True, help="checkout of github.com/fyu/drn")
    p.add_argument("--deeplab_repo", required=True, help="checkout of kazuto1011/deeplab-pytorch")
    opt = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    drn_parity(os.path.abspath(opt.drn_repo))
    deeplab_parity(os.path.abspath(opt.deeplab_repo))
    print("parity: OK")


if __name__ == "__main__":
    main()
