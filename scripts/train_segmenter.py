"""Train the segmenter of the segmentation score: DRN-D-22 on prepared Cityscapes photos.

    python scripts/train_segmenter.py --dataroot ./datasets/cityscapes --name cityscapes_drn_d_22 \
        --imagenet_weights drn_d_22-4bd2f8ea.pth
    python scripts/train_segmenter.py ... --continue_train         # resume where it stopped

For users without the weights the CUT authors trained (never published): the network of
fyu/drn's segment.py, trained on the same photos the translations are compared with.  Input:
the prepared folder of datasets/prepare_cityscapes_dataset.py, photos trainA/<i>_A.jpg resized
(bicubic) to the size of their train-id maps trainB_trainIds/<i>.png (256x128): the photos go
through the same 256x256 JPEG and resizing as the generated ones are scored through.

The recipe is fyu/drn's README for drn_d_22 (segment.py train -s 896 --batch-size 32
--epochs 250 --lr 0.01 --momentum 0.9 --step 100): SGD, momentum 0.9, weight decay 1e-4, the
learning rate divided by 10 every --step epochs (or --lr_mode poly), NLL loss ignoring 255, the
base started from the ImageNet drn_d_22 weights, random horizontal flips.  Adapted to 256x128:
the 896-pixel random crop becomes the whole image (a crop larger than the image would only
pad).  Without --imagenet_weights the network starts from the authors' random init (the toy
data set does that, with a narrower --width).

Written to <checkpoints_dir>/<name>/:
  seg_drn_d_22.pth      the weights (DRNSeg state dict, as segment.py's models): --seg_weights
  latest_state.pth      weights, optimizer, epoch, options: --continue_train resumes from it
  seg_log.jsonl         per epoch: loss, pixel accuracy on the training batches, learning rate,
                        seconds; with --eval_freq, the real test photos' score (the upper bound)
Each epoch's data order and flips come from a generator seeded by (--seed, epoch), so a run
resumed at an epoch boundary draws what an uninterrupted run would.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from metrics.segmentation import (load_label_map, load_photo, pair_with_labels,  # noqa: E402
                                  score_arrays, scores_from_confusion, percent)
from models.networks.segmentation import DRNSeg, Segmenter, read_weights  # noqa: E402
from data.cityscapes_labels import IGNORE, NUM_CLASSES  # noqa: E402
from util.checkpoint import atomic_torch_save  # noqa: E402
from util.errors import UserError, run_cli  # noqa: E402
from util.monitor import EpochProgress  # noqa: E402
from util.util import atomic_write  # noqa: E402

ARCH = "drn_d_22"
WEIGHTS_FILE = f"seg_{ARCH}.pth"
STATE_FILE = "latest_state.pth"
# Options a resumed run may change (the rest must match the saved run).
FREE_OPTIONS = {"continue_train", "epochs", "eval_freq", "progress", "device", "num_threads",
                "dataroot", "checkpoints_dir", "name"}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataroot", required=True,
                   help="prepared Cityscapes (trainA/, trainB_trainIds/, testA/, testB_trainIds/)")
    p.add_argument("--name", required=True, help="run name: <checkpoints_dir>/<name>/")
    p.add_argument("--checkpoints_dir", default="./checkpoints")
    p.add_argument("--imagenet_weights", default=None,
                   help="ImageNet drn_d_22 weights (drn_d_22-4bd2f8ea.pth) to start the base from")
    p.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier (1.0 = DRN-D-22; smaller for toy data and tests)")
    p.add_argument("--epochs", type=int, default=250)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--lr_mode", choices=("step", "poly"), default="step")
    p.add_argument("--step", type=int, default=100, help="epochs between the x0.1 decays (step)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval_freq", type=int, default=0,
                   help="every this many epochs, score the real test photos (testA against "
                        "testB_trainIds); 0 = only at the end")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="a progress bar per epoch on stderr; auto: only on a terminal")
    p.add_argument("--continue_train", action="store_true",
                   help=f"resume from <checkpoints_dir>/<name>/{STATE_FILE}")
    return p.parse_args(argv)


def validate(opt):
    for name in ("epochs", "batch_size", "step"):
        if getattr(opt, name) < 1:
            raise UserError(f"--{name} must be positive (got {getattr(opt, name)})")
    if opt.lr <= 0 or not 0 < opt.width <= 4:
        raise UserError(f"--lr must be positive and --width in (0, 4] (got {opt.lr}, {opt.width})")
    if opt.imagenet_weights and not os.path.isfile(opt.imagenet_weights):
        raise UserError(f"--imagenet_weights {opt.imagenet_weights}: no such file")
    for sub in ("trainA", "trainB_trainIds"):
        if not os.path.isdir(os.path.join(opt.dataroot, sub)):
            raise UserError(f"--dataroot {opt.dataroot} has no {sub}/; prepare it with "
                            "datasets/prepare_cityscapes_dataset.py")


def load_split(dataroot, split):
    """(N, H, W, 3) uint8 photos at their label maps' size and (N, H, W) uint8 train ids."""
    pairs = pair_with_labels(os.path.join(dataroot, split + "A"),
                             os.path.join(dataroot, split + "B_trainIds"))
    labels = [load_label_map(lp, NUM_CLASSES) for _, lp in pairs]
    sizes = {lb.shape for lb in labels}
    if len(sizes) != 1:
        raise UserError(f"the label maps of {dataroot}/{split}B_trainIds differ in size "
                        f"({sorted(sizes)[:2]}); prepare them again")
    photos = [load_photo(ip, (lb.shape[1], lb.shape[0])) for (ip, _), lb in zip(pairs, labels)]
    return torch.from_numpy(np.stack(photos)), torch.from_numpy(np.stack(labels))


def learning_rate(opt, epoch):
    """segment.py's adjust_learning_rate, `epoch` counted from 0."""
    if opt.lr_mode == "step":
        return opt.lr * 0.1 ** (epoch // opt.step)
    return opt.lr * (1 - epoch / opt.epochs) ** 0.9


def epoch_batches(count, batch_size, seed, epoch):
    """Shuffled index batches (the last partial batch dropped, as segment.py) and flip flags,
    drawn from a generator of (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    order = torch.randperm(count, generator=g)
    flips = torch.rand(count, generator=g) < 0.5
    usable = count // batch_size * batch_size
    return [(order[i:i + batch_size], flips[order[i:i + batch_size]])
            for i in range(0, usable, batch_size)]


class Normalise:
    """uint8 (B, H, W, 3) -> the Cityscapes-normalised (B, 3, H, W) input DRNSeg expects."""

    def __init__(self, device):
        from models.networks.segmentation import CITYSCAPES_MEAN, CITYSCAPES_STD
        self.mean = torch.tensor(CITYSCAPES_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CITYSCAPES_STD, device=device).view(1, 3, 1, 1)

    def __call__(self, photos):
        # contiguous: a permuted (channels-last) input makes torch 2.14's CPU backward of the
        # narrow 1x1 stride-2 shortcut convs corrupt memory (and is slower besides)
        x = photos.permute(0, 3, 1, 2).contiguous().float()
        return (x / 255.0 - self.mean) / self.std


def build(opt, device):
    net = DRNSeg(NUM_CLASSES, width=opt.width)
    if opt.imagenet_weights and not opt.continue_train:
        try:
            net.load_imagenet_base(read_weights(opt.imagenet_weights))
        except ValueError as err:
            raise UserError(f"--imagenet_weights {opt.imagenet_weights}: {err} (--width "
                            f"{opt.width})") from None
    net.to(device)
    optimizer = torch.optim.SGD(net.trainable_parameters(), opt.lr, momentum=opt.momentum,
                                weight_decay=opt.weight_decay)
    return net, optimizer


def resume(opt, folder, net, optimizer):
    """The epoch to start from (0 for a new run)."""
    path = os.path.join(folder, STATE_FILE)
    if not opt.continue_train:
        if os.path.exists(path):
            raise UserError(f"{folder} already holds a segmenter run ({STATE_FILE}); pass "
                            "--continue_train to resume it, or choose another --name")
        return 0
    if not os.path.isfile(path):
        raise UserError(f"--continue_train: no {path} to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state["options"]
    changed = [k for k, v in saved.items() if k not in FREE_OPTIONS and getattr(opt, k, v) != v]
    if changed:
        raise UserError(f"--continue_train: --{changed[0]} differs from the saved run "
                        f"({saved[changed[0]]}); resume with the same options")
    net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    return state["epoch"]


def real_photo_score(net, photos, labels, device):
    segmenter = Segmenter(ARCH, net, device)
    hist = score_arrays(segmenter, list(photos.numpy()), list(labels.numpy()))
    net.train()
    return scores_from_confusion(hist)


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    validate(opt)
    device = torch.device(opt.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if opt.num_threads > 0:
        torch.set_num_threads(opt.num_threads)
    folder = os.path.join(opt.checkpoints_dir, opt.name)
    torch.manual_seed(opt.seed)  # the network's init
    net, optimizer = build(opt, device)
    start_epoch = resume(opt, folder, net, optimizer)
    if start_epoch >= opt.epochs:
        print(f"{folder}: already trained for {start_epoch} epochs (--epochs {opt.epochs})")
        return 0
    photos, labels = load_split(opt.dataroot, "train")
    if len(photos) < opt.batch_size:
        raise UserError(f"{len(photos)} training images, fewer than --batch_size {opt.batch_size}")
    test = None
    if os.path.isdir(os.path.join(opt.dataroot, "testB_trainIds")):
        test = load_split(opt.dataroot, "test")
    os.makedirs(folder, exist_ok=True)
    normalise = Normalise(device)
    height, width = labels.shape[1:]
    print(f"{ARCH} (width {opt.width}, {sum(p.numel() for p in net.parameters()):,} parameters) "
          f"on {len(photos)} photos of {width}x{height}, epochs {start_epoch + 1}..{opt.epochs}, "
          f"batch {opt.batch_size}, {device}", flush=True)
    bar = EpochProgress(opt.progress)
    net.train()
    for epoch in range(start_epoch, opt.epochs):
        lr = learning_rate(opt, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = epoch_batches(len(photos), opt.batch_size, opt.seed, epoch)
        bar.start(epoch + 1, opt.epochs, len(batches))
        start, loss_sum, correct, counted = time.time(), 0.0, 0, 0
        for index, flip in batches:
            x, y = photos[index].clone(), labels[index].clone()
            x[flip], y[flip] = x[flip].flip(2), y[flip].flip(2)  # horizontal: the W axis
            x, y = normalise(x.to(device)), y.to(device).long()
            log_prob = net(x)  # (B, 19, H, W)
            loss = F.nll_loss(log_prob, y, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                keep = y != IGNORE
                correct += int((log_prob.argmax(1) == y)[keep].sum())
                counted += int(keep.sum())
            loss_sum += loss.item()
            bar.update()
        bar.close()
        record = {"epoch": epoch + 1, "lr": lr, "loss": loss_sum / len(batches),
                  "train_pixel_acc": correct / max(counted, 1), "seconds": time.time() - start}
        last = epoch + 1 == opt.epochs
        if test is not None and (last or (opt.eval_freq and (epoch + 1) % opt.eval_freq == 0)):
            scores = real_photo_score(net, *test, device)
            record.update({f"test_{k}": scores[k] for k in ("miou", "pixel_acc", "class_acc")})
        atomic_torch_save(net.state_dict(), os.path.join(folder, WEIGHTS_FILE))
        atomic_torch_save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                           "epoch": epoch + 1, "options": vars(opt)},
                          os.path.join(folder, STATE_FILE))
        with open(os.path.join(folder, "seg_log.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        line = (f"epoch {epoch + 1}/{opt.epochs}  lr {lr:.2e}  loss {record['loss']:.4f}  "
                f"train pixAcc {percent(record['train_pixel_acc'])}  {record['seconds']:.1f} s")
        if "test_miou" in record:
            line += (f"  | real test photos: mIoU {percent(record['test_miou'])}  pixAcc "
                     f"{percent(record['test_pixel_acc'])}  classAcc "
                     f"{percent(record['test_class_acc'])}")
        print(line, flush=True)
    with atomic_write(os.path.join(folder, "seg_opt.json")) as f:
        json.dump(vars(opt), f, indent=1)
    print(f"weights: {os.path.join(folder, WEIGHTS_FILE)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
