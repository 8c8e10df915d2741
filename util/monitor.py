"""Optional live monitoring: a TensorBoard sink and a per-epoch console progress bar.

Both are conveniences; loss_log.jsonl and metrics.jsonl stay the source of truth, and neither is
needed for training to work: a missing package costs one warning line.
"""
import sys

import numpy as np

_active_bars = 0  # progress bars being drawn; console lines go around them


def echo(message):
    """Print a console line without tearing a progress bar that is being drawn."""
    if _active_bars:
        from tqdm import tqdm
        tqdm.write(message, file=sys.stdout)
    else:
        print(message)


class TensorBoard:
    """Losses, learning rate, metrics (scalars) and visuals (images) for `tensorboard --logdir`."""

    def __init__(self, log_dir):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("warning: --tensorboard needs the tensorboard package (pip install tensorboard); "
                  "TensorBoard logging off")
            return
        self.writer = SummaryWriter(log_dir=log_dir)
        print(f"TensorBoard: logging to {log_dir} (view with: tensorboard --logdir {log_dir})")

    def scalars(self, step, values, prefix):
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def images(self, step, images):
        """`images`: label -> (H, W, 3) uint8 array."""
        if self.writer is not None:
            for label, image in images.items():
                self.writer.add_image(label, np.asarray(image), step, dataformats="HWC")

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EpochProgress:
    """A tqdm bar per epoch: iterations, iterations/s and time left in the epoch.

    mode "auto" draws it only when stderr is a terminal (so logs of batch jobs stay clean),
    "on" always, "off" never.
    """

    def __init__(self, mode="auto"):
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self.bar = None

    def start(self, epoch, last_epoch, total, done=0):
        global _active_bars
        self.close()
        if not self.enabled:
            return
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch}/{last_epoch}",
                        unit="it", file=sys.stderr, dynamic_ncols=True, leave=False)
        _active_bars += 1

    def update(self, n=1):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        global _active_bars
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            _active_bars -= 1
