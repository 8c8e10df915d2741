"""Report whether the installed PyTorch gets instance_norm's input gradient wrong.

    python scripts/check_torch_norm_grad.py
    python scripts/check_torch_norm_grad.py --json norm_grad.json    # also write the figures
    python scripts/check_torch_norm_grad.py --cpu_only

Known bug (seen on torch 2.14.1, CPU): with a batch of ONE image, F.instance_norm (hence
nn.InstanceNorm2d) returns a wrong input gradient when the incoming gradient has channels-last
strides.  The original CUT's patch gather sends such gradients into the generator's InstanceNorms;
ours does not (see models/networks/patch_sampler.py and tests/test_norm_grad_guard.py).

For each device (the CPU, then every CUDA device) and dtype (float32, and float64 where the device
has it) and for batch sizes 1 and 2, the script takes L(x) = <instance_norm(x), g> for one random
x and one incoming gradient g, computes dL/dx by autograd twice -- g as a channels-last view and
as a contiguous copy -- and prints the relative difference of the two results and whether each
agrees with a float64 central finite difference of L along a random direction (the true answer).
Exit status 0 whenever the report is complete, bug or no bug; 2 when --json cannot be written;
1 on an internal error.
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from util.errors import UserError, run_cli  # noqa: E402

SHAPE = (8, 6, 7)  # C, H, W: non-square, so a transposed gradient cannot pass by accident
FD_STEP = 1e-5
# A gradient "agrees with FD" when its directional derivative is this close (relative); the
# bug's errors are of order 1, float64 rounding gives ~1e-10, float32 ~1e-6.
AGREE_TOL = {torch.float64: 1e-7, torch.float32: 1e-3}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def devices(cpu_only):
    """(device string, human name) for the CPU and each visible CUDA device."""
    found = [("cpu", cpu_name())]
    if not cpu_only and torch.cuda.is_available():
        found += [(f"cuda:{i}", torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]
    return found


def supports(device, dtype):
    try:
        F.instance_norm(torch.ones(1, 1, 2, 2, device=device, dtype=dtype))
        return True
    except RuntimeError:
        return False


def check(device, dtype, batch_size, seed=0):
    """Figures for one case: layout difference, and each layout's error against finite differences."""
    g = torch.Generator().manual_seed(seed)
    C, H, W = SHAPE
    x64 = torch.randn(batch_size, C, H, W, generator=g, dtype=torch.float64)
    grad_out64 = torch.randn(batch_size, H, W, C, generator=g, dtype=torch.float64).permute(0, 3, 1, 2)
    direction64 = torch.randn(batch_size, C, H, W, generator=g, dtype=torch.float64)

    # Reference: L(x) = <instance_norm(x), g> differentiated numerically along `direction`, in
    # float64 (on the CPU when the device has no float64).
    ref_device = device if supports(device, torch.float64) else "cpu"
    x_ref, g_ref, d_ref = (t.to(ref_device) for t in (x64, grad_out64, direction64))
    with torch.no_grad():
        plus = (F.instance_norm(x_ref + FD_STEP * d_ref) * g_ref).sum()
        minus = (F.instance_norm(x_ref - FD_STEP * d_ref) * g_ref).sum()
    fd = float(plus - minus) / (2 * FD_STEP)

    x = x64.to(device, dtype).requires_grad_(True)
    grad_out = grad_out64.to(device, dtype)  # .to keeps the channels-last strides
    assert not grad_out.is_contiguous()
    strided, = torch.autograd.grad(F.instance_norm(x), x, grad_out)
    dense, = torch.autograd.grad(F.instance_norm(x), x, grad_out.contiguous())
    direction = direction64.to(device)

    def fd_error(grad):
        return abs(float((grad.double() * direction).sum()) - fd) / abs(fd)

    rel_diff = float((strided - dense).double().norm() / dense.double().norm())
    err_strided, err_dense = fd_error(strided), fd_error(dense)
    tol = AGREE_TOL[dtype]
    return {"device": device, "dtype": str(dtype).replace("torch.", ""), "batch_size": batch_size,
            "shape": [batch_size, C, H, W], "rel_diff_channels_last_vs_contiguous": rel_diff,
            "fd_rel_error_channels_last": err_strided, "fd_rel_error_contiguous": err_dense,
            "channels_last_agrees_with_fd": err_strided < tol,
            "contiguous_agrees_with_fd": err_dense < tol,
            "bug": not (err_strided < tol and err_dense < tol),
            "fd_reference_device": ref_device}


def verdict(row):
    if not row["bug"]:
        return "ok"
    wrong = [name for name, key in (("channels-last", "channels_last_agrees_with_fd"),
                                    ("contiguous", "contiguous_agrees_with_fd")) if not row[key]]
    return "BUG: " + " and ".join(wrong) + " gradient wrong"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--cpu_only", action="store_true", help="skip CUDA devices")
    args = parser.parse_args(argv)

    found = devices(args.cpu_only)
    print(f"torch {torch.__version__}, python {platform.python_version()}")
    for device, name in found:
        print(f"  {device}: {name}")
    print(f"instance_norm input gradient, incoming gradient channels-last vs contiguous, "
          f"shape B x {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]}")
    print(f"{'device':<8} {'dtype':<8} {'batch':>5} {'rel. diff':>10} {'FD err (ch-last)':>17} "
          f"{'FD err (contig.)':>17}  verdict")
    results = []
    for device, _ in found:
        for dtype in (torch.float32, torch.float64):
            if not supports(device, dtype):
                print(f"{device:<8} {str(dtype)[6:]:<8} (not supported on this device)")
                continue
            for batch_size in (1, 2):
                row = check(device, dtype, batch_size)
                results.append(row)
                print(f"{device:<8} {row['dtype']:<8} {batch_size:>5} "
                      f"{row['rel_diff_channels_last_vs_contiguous']:>10.2e} "
                      f"{row['fd_rel_error_channels_last']:>17.2e} "
                      f"{row['fd_rel_error_contiguous']:>17.2e}  {verdict(row)}")
    buggy = sorted({r["device"] for r in results if r["bug"]})
    print("summary: " + (f"instance_norm backward is WRONG on {', '.join(buggy)} "
                         "(see the rows marked BUG)" if buggy else "no instance_norm gradient bug found"))

    if args.json:
        report = {"torch": torch.__version__, "python": platform.python_version(),
                  "devices": [{"device": d, "name": n} for d, n in found],
                  "fd_step": FD_STEP, "agree_tol": {str(k)[6:]: v for k, v in AGREE_TOL.items()},
                  "results": results}
        try:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
        except OSError as err:
            raise UserError(f"could not write --json {args.json}: {err}") from None
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
