"""FID and KID between generated and real images, with the CUT paper's protocol.

    python evaluate.py results/horse2zebra_CUT/test_latest/images/fake_B datasets/horse2zebra/testB

As the pytorch-fid command line: two folders, images read directly in them.  The result is
printed and appended to metrics.jsonl: `results/<name>/metrics.jsonl` when FAKE_DIR is test.py's
`results/<name>/<phase>_<epoch>/images/<visual>`, else beside FAKE_DIR (--jsonl to choose).
Protocol and weights: see metrics/fid.py.  The real folder's features are cached (--cache_dir).
"""
import argparse
import json
import os
import sys
import time

import torch

from metrics import fid
from util.errors import UserError, run_cli
from util.util import jsonable


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("fake_dir", help="folder of generated images (e.g. .../images/fake_B)")
    p.add_argument("real_dir", help="folder of real target-domain images (e.g. datasets/horse2zebra/testB)")
    p.add_argument("--protocol", default=fid.PROTOCOL, choices=(fid.PROTOCOL,),
                   help="paper: pytorch-fid's defaults, as the CUT authors")
    p.add_argument("--inception_weights", default=None,
                   help=f"the FID Inception weights ({fid.WEIGHTS_FILE}); default: the torch hub cache")
    p.add_argument("--download", action="store_true",
                   help="let pytorch-fid download the weights into the torch hub cache if missing")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--batch_size", type=int, default=50, help="images per Inception forward pass")
    p.add_argument("--num_workers", type=int, default=0, help="image loading processes")
    p.add_argument("--no_kid", action="store_true", help="FID only")
    p.add_argument("--cache_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "cut_fid"),
                   help="where real-image features are cached ('' for no cache)")
    p.add_argument("--jsonl", default=None, help="append the result here (default: see above)")
    return p.parse_args(argv)


def default_jsonl(fake_dir):
    """results/<name>/metrics.jsonl for test.py's layout, else <parent of fake_dir>/metrics.jsonl."""
    fake_dir = os.path.abspath(fake_dir)
    images = os.path.dirname(fake_dir)
    if os.path.basename(images) == "images":
        return os.path.join(os.path.dirname(os.path.dirname(images)), "metrics.jsonl")
    return os.path.join(os.path.dirname(fake_dir), "metrics.jsonl")


def evaluate(fake_dir, real_dir, weights_path, device="cpu", batch_size=50, num_workers=0,
             cache_dir=None, kid=True):
    """The metrics record for two folders (everything metrics.jsonl holds but the time)."""
    fake_files, real_files = fid.list_images(fake_dir), fid.list_images(real_dir)
    model = fid.load_inception(weights_path, device)
    fake = fid.features_of_files(fake_files, model, device, batch_size, num_workers)
    real = fid.cached_features(real_files, model, weights_path, cache_dir, device, batch_size,
                               num_workers)
    return {**fid.scores(fake, real, kid), **fid.describe_protocol(),
            "fake_dir": os.path.abspath(fake_dir), "real_dir": os.path.abspath(real_dir),
            **weights_record(weights_path)}


def weights_record(path):
    return {"weights": os.path.abspath(path), "weights_sha256": fid.weights_id(path),
            "weights_match_paper": fid.weights_match_paper(path)}


def check_device(name):
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    return name


def main(argv=None):
    opt = parse_args(sys.argv[1:] if argv is None else argv)
    if opt.batch_size < 1:
        raise UserError(f"--batch_size must be positive (got {opt.batch_size})")
    device = check_device(opt.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    weights = fid.resolve_weights(opt.inception_weights, opt.download)
    if not fid.weights_match_paper(weights):
        print(f"note: {weights} is not the published FID Inception ({fid.WEIGHTS_FILE}): the "
              "scores are not comparable with the paper's")
    start = time.time()
    record = evaluate(opt.fake_dir, opt.real_dir, weights, device, opt.batch_size, opt.num_workers,
                      opt.cache_dir or None, kid=not opt.no_kid)
    record.update(time=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.time() - start,
                  device=device)
    if record["n_fake"] < fid.DIMS or record["n_real"] < fid.DIMS:
        print(f"note: FID from fewer than {fid.DIMS} images is biased upwards; compare only scores "
              "computed from the same numbers of images")
    kid = "" if opt.no_kid else f"  KID {record['kid']:.6f} ± {record['kid_std']:.6f}"
    print(f"FID {record['fid']:.4f}{kid}  (protocol {fid.PROTOCOL}; {record['n_fake']} generated, "
          f"{record['n_real']} real images)")
    path = opt.jsonl or default_jsonl(opt.fake_dir)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({k: jsonable(v) for k, v in record.items()}) + "\n")
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
