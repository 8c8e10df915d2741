"""Training and test output: console lines, loss logs, HTML galleries and (optionally) visdom.

Files written under `<checkpoints_dir>/<name>/` during training:
  loss_log.txt    the original human-readable lines, byte-for-byte the original format
  loss_log.jsonl  one JSON object per print with full-precision losses and timings
  web/            index.html + images/epochNNN_<visual>.png (unless --no_html)
  metrics.jsonl   one JSON object per evaluation (--eval_freq), full precision
  tensorboard/    event files (with --tensorboard): losses, learning rate, visuals, metrics

Visdom is an optional sink; training never depends on it.  `--display_id` decides:
  None (default)  "auto": use visdom if the package is importable and a TCP connection to
                  display_server:display_port succeeds within about a second, with a random
                  window id (a multiple of 10, as the original).  Otherwise print one notice and
                  carry on.  The original instead required visdom and tried to spawn a server.
  > 0             the user asked for visdom with this window id: same, but a missing package or
                  server is reported as a warning.
  <= 0            visdom off, silently.
We never start a server, every request has a short timeout, and the first failing visdom call
(say the server died) prints one warning and turns visdom off for the rest of the run.
As in the original, the environment variable `tensorboard_base_url` redirects the client to
port 2004 with base URL `<tensorboard_base_url>/visdom`.
"""
import json
import logging
import os
import socket
import time
import warnings
from urllib.parse import urlparse

import numpy as np

from util import html, util
from util.monitor import TensorBoard, echo

PROBE_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_S = (2.0, 10.0)  # (connect, read) for every visdom request


def save_images(webpage, visuals, image_path, width=256):
    """Save one test batch: images/<label>/<stem>.png for each visual, plus one page row.

    `image_path` is the batch's list of source paths; only the first names the files (the
    visuals hold batch item 0 only, see tensor2im).
    """
    image_dir = webpage.get_image_dir()
    name = os.path.splitext(os.path.basename(image_path[0]))[0]
    webpage.add_header(name)
    ims, txts, links = [], [], []
    for label, image in visuals.items():
        util.mkdir(os.path.join(image_dir, label))
        rel_path = f"{label}/{name}.png"
        util.save_image(util.tensor2im(image), os.path.join(image_dir, label, f"{name}.png"))
        ims.append(rel_path)
        txts.append(label)
        links.append(rel_path)
    webpage.add_images(ims, txts, links, width=width)


class Visualizer:
    """Console, log files, HTML gallery and optional visdom plots for one training run."""

    def __init__(self, opt, start=True):
        """Connect to visdom (drawing the window id); with `start`, also create the log files.

        train.py passes start=False and calls `start()` once every check has passed, so that a
        rejected run leaves no trace in an existing experiment, while the window id is still
        drawn at the original's point in the random stream.
        """
        self.opt = opt
        self.name = opt.name
        self.win_size = getattr(opt, "display_winsize", 256)
        self.ncols = getattr(opt, "display_ncols", 4)
        self.use_html = getattr(opt, "isTrain", False) and not getattr(opt, "no_html", False)
        self.saved = False  # HTML images written for the current epoch yet?
        self.plot_data = {}  # plot name -> {'X': [...], 'Y': [[...]], 'legend': [...]}
        self.vis = None  # a visdom client while visdom is on
        self.display_id = 0
        self._open_visdom(getattr(opt, "display_id", None))

        save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.web_dir = os.path.join(save_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.log_name = os.path.join(save_dir, "loss_log.txt")
        self.jsonl_name = os.path.join(save_dir, "loss_log.jsonl")
        self.metrics_name = os.path.join(save_dir, "metrics.jsonl")
        self.tensorboard = None
        self.step = 0  # samples trained so far, the x axis of TensorBoard
        if start:
            self.start()

    def start(self):
        """Create the web folder and append the session header to loss_log.txt."""
        util.mkdir(os.path.dirname(self.log_name))
        if self.use_html:
            print(f"create web directory {self.web_dir}...")
            util.mkdirs([self.web_dir, self.img_dir])
        now = time.strftime("%c")
        with open(self.log_name, "a") as log_file:
            log_file.write(f"================ Training Loss ({now}) ================\n")
        if getattr(self.opt, "tensorboard", False):
            self.tensorboard = TensorBoard(os.path.join(os.path.dirname(self.log_name), "tensorboard"))

    # ----------------------------------------------------------------------------- visdom setup
    def _open_visdom(self, display_id):
        drawn_id = None
        if display_id is None:
            # The original draws a window id from numpy's global RNG here whenever --display_id
            # is unset, connected or not; drawing it too keeps seeded runs on the original's
            # stream of numpy numbers (flip-equivariance flips, patch locations).
            drawn_id = int(np.random.randint(100000)) * 10
        if display_id is not None and display_id <= 0:
            return
        opt = self.opt
        server = getattr(opt, "display_server", "http://localhost")
        port = getattr(opt, "display_port", 8097)
        env = getattr(opt, "display_env", "main")
        base_url = "/"
        if os.environ.get("tensorboard_base_url"):
            port = 2004
            base_url = "/" + os.environ["tensorboard_base_url"].strip("/") + "/visdom"
        where = f"{server}:{port}{base_url.rstrip('/')}"

        problem, client = _connect(server, port, env, base_url)
        if problem is None:
            self.vis = client
            self.display_id = display_id or drawn_id or 10  # id 0 would mean "off"
            print(f"visdom: plotting to {where} (env '{env}', window id {self.display_id})")
        elif display_id is None:
            print(f"visdom: {problem} at {where}, live plots off "
                  "(start one with 'python -m visdom.server' or pass --display_id 0 to silence)")
        else:
            print(f"warning: --display_id {display_id} asks for visdom, but {problem} at "
                  f"{where}; live plots off (start one with 'python -m visdom.server')")

    def _visdom_call(self, send):
        """Run `send()`; on any failure warn once and switch visdom off (never stop training)."""
        try:
            send()
        except Exception as err:  # visdom is an optional sink: no error of its may end a run
            echo(f"warning: visdom call failed ({type(err).__name__}: {err}); "
                  "live plots off for the rest of this run")
            self.vis = None

    # ----------------------------------------------------------------------------- public API
    def reset(self):
        """Start of an epoch: the next display_current_results saves the HTML images again."""
        self.saved = False

    def display_current_results(self, visuals, epoch, save_result):
        """Show `visuals` (label -> image tensor) in visdom and, when due, on the HTML page."""
        if self.vis is not None:
            self._visdom_call(lambda: self._show_images(visuals))
        if self.tensorboard is not None:
            self.tensorboard.images(self.step, {label: util.tensor2im(image)
                                                for label, image in visuals.items()})
        if not (self.use_html and (save_result or not self.saved)):
            return
        self.saved = True
        for label, image in visuals.items():
            path = os.path.join(self.img_dir, f"epoch{epoch:03d}_{label}.png")
            util.save_image(util.tensor2im(image), path)
        # Regenerated from scratch each time; earlier epochs' files are already on disk.
        webpage = html.HTML(self.web_dir, f"Experiment name = {self.name}", refresh=0)
        for n in range(epoch, 0, -1):
            webpage.add_header(f"epoch [{n}]")
            names = [f"epoch{n:03d}_{label}.png" for label in visuals]
            webpage.add_images(names, list(visuals), names, width=self.win_size)
        webpage.save()

    def plot_current_losses(self, epoch, counter_ratio, losses):
        """Add a point at x = epoch + counter_ratio (fraction of the epoch) and redraw the plot.

        One plot per distinct set of loss names; its window id is display_id - plot index.
        """
        if not losses:
            return
        legend = list(losses)
        plot_name = "_".join(legend)
        data = self.plot_data.setdefault(plot_name, {"X": [], "Y": [], "legend": legend})
        data["X"].append(epoch + counter_ratio)
        data["Y"].append([float(losses[k]) for k in data["legend"]])
        if self.vis is None:
            return
        win = self.display_id - list(self.plot_data).index(plot_name)
        x = np.stack([np.array(data["X"])] * len(data["legend"]), axis=1)  # (points, losses)
        opts = {"title": self.name, "legend": data["legend"], "xlabel": "epoch", "ylabel": "loss"}
        self._visdom_call(lambda: self.vis.line(X=x, Y=np.array(data["Y"]), win=win, opts=opts))

    def print_current_losses(self, epoch, iters, losses, t_comp, t_data, **extra):
        """Print the original one-line summary, append it to loss_log.txt, and append the same
        numbers at full precision (plus any `extra` fields) to loss_log.jsonl."""
        message = "(epoch: %d, iters: %d, time: %.3f, data: %.3f) " % (epoch, iters, t_comp, t_data)
        for name, value in losses.items():
            message += "%s: %.3f " % (name, value)
        echo(message)
        with open(self.log_name, "a") as log_file:
            log_file.write(message + "\n")
        record = {"epoch": epoch, "iters": iters, "time": float(t_comp), "data": float(t_data),
                  "losses": {name: float(value) for name, value in losses.items()}}
        record.update(extra)
        with open(self.jsonl_name, "a") as jsonl_file:
            jsonl_file.write(json.dumps(record, default=_json_scalar) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.scalars(self.step, record["losses"], "loss")
            if "lr" in extra:
                self.tensorboard.scalars(self.step, {"lr": extra["lr"]}, "train")

    def log_metrics(self, record):
        """An evaluation (metrics/training_eval.py): console line, metrics.jsonl, TensorBoard."""
        protocol = record.get("protocol", "unnamed")
        if "miou" in record:  # --eval_metric miou: the segmentation score, percent
            echo(f"evaluation at epoch {record['epoch']}: mIoU {100 * record['miou']:.1f}, pixAcc "
                 f"{100 * record['pixel_acc']:.1f}, classAcc {100 * record['class_acc']:.1f} "
                 f"({record['n_images']} generated images, protocol {protocol})")
        else:
            kid = f", KID {record['kid']:.5f}" if "kid" in record else ""
            echo(f"evaluation at epoch {record['epoch']}: FID {record['fid']:.3f}{kid} "
                 f"({record['n_fake']} generated vs {record['n_real']} real images, protocol "
                 f"{protocol})")
        with open(self.metrics_name, "a") as f:
            f.write(json.dumps(record, default=_json_scalar) + "\n")
        if self.tensorboard is not None:
            names = ("fid", "kid", "miou", "pixel_acc", "class_acc")
            self.tensorboard.scalars(self.step, {k: record[k] for k in names if k in record},
                                     "metrics")

    def close(self):
        """End of the run: stop talking to visdom, flush TensorBoard.  The log files are opened
        per write and already complete."""
        self.vis = None
        if self.tensorboard is not None:
            self.tensorboard.close()

    # ----------------------------------------------------------------------------- internals
    def _show_images(self, visuals):
        images = [util.tensor2im(image).transpose(2, 0, 1) for image in visuals.values()]  # (3,H,W)
        labels = list(visuals)
        if self.ncols <= 0:  # one window per image
            for i, (label, image) in enumerate(zip(labels, images)):
                self.vis.image(image, win=self.display_id + 1 + i, opts={"title": label})
            return
        ncols = min(self.ncols, len(images))
        n_fill = -len(images) % ncols  # white tiles complete the last row of the grid
        images += [np.full_like(images[0], 255)] * n_fill
        cells = labels + [""] * n_fill
        rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells[i:i + ncols]) + "</tr>"
                       for i in range(0, len(cells), ncols))
        height, width = images[0].shape[1:]
        css = ("<style>table {border-collapse: separate; border-spacing: 4px; white-space: nowrap;"
               " text-align: center} table td {width: %dpx; height: %dpx; padding: 4px;"
               " outline: 4px solid black}</style>" % (width, height))
        self.vis.images(images, nrow=ncols, padding=2, win=self.display_id + 1,
                        opts={"title": f"{self.name} images"})
        self.vis.text(f"{css}<table>{rows}</table>", win=self.display_id + 2,
                      opts={"title": f"{self.name} labels"})


def _json_scalar(value):
    """json.dumps fallback for numpy scalars and 0-d tensors passed as extra fields."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"loss_log.jsonl: cannot write {type(value).__name__} values")


def _connect(server, port, env, base_url):
    """Return (None, client) or (reason, None); never blocks for more than a few seconds."""
    try:
        import visdom
    except ImportError:
        return "the visdom package is not installed (pip install visdom)", None
    url = urlparse(server if "://" in server else f"http://{server}")
    try:
        # A plain TCP probe first: the visdom client itself has no connect timeout.
        socket.create_connection((url.hostname or "localhost", port), PROBE_TIMEOUT_S).close()
    except OSError:
        return "no server", None
    try:
        return None, _make_client(visdom, server, port, env, base_url)
    except Exception as err:  # a half-alive or foreign server: report it, do not crash
        return f"the server did not answer ({type(err).__name__}: {err})", None


def _make_client(visdom, server, port, env, base_url):
    class TimeoutVisdom(visdom.Visdom):
        """visdom 0.2.4 posts without a timeout; a hung server would freeze training."""

        def _handle_post(self, url, data=None):
            return self.session.post(url, data=data or {}, timeout=REQUEST_TIMEOUT_S).text

    # The client logs two warnings on creation (new session; no incoming socket, which we do
    # not want: it would start a thread and wait for it).  Keep them off the console.
    visdom_logger = logging.getLogger("visdom")
    old_level = visdom_logger.level
    visdom_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its use of Logger.warn
            return TimeoutVisdom(server=server, port=port, base_url=base_url, env=env,
                                 raise_exceptions=True, use_incoming_socket=False)
    finally:
        visdom_logger.setLevel(old_level)
