"""The authors' Swapping Autoencoder, driven for scripts/parity/swapae_parity.py (run by it, in a
subprocess whose sys.path starts with the authors' checkout; this file imports none of ours).

    python scripts/parity/swapae_reference.py --ref CHECKOUT --work DIR

Reads DIR/config.json (their option values, the seed, the dtype) and DIR/batches.pt, builds
their model and optimizer (models/swapping_autoencoder_model.py,
optimizers/swapping_autoencoder_optimizer.py) with their own initialisation, and runs one
`train_one_step` per batch, re-seeding torch with seed + step before each.  Writes DIR/reference.pt:
the initial and final state_dicts of E, G, D and Dpatch and every step's losses.

Their files are not edited; what a CPU run with today's PyTorch needs is shimmed from outside:
* their custom CUDA ops are compiled at import when util.is_custom_kernel_supported() says so:
  it is replaced by `lambda: False`, so their own pure-PyTorch fallbacks (upfirdn2d_native, the
  fused leaky ReLU as leaky_relu(x + b) * sqrt(2)) run;
* util/ imports scikit-learn (PCA of the structure code, for visualisation) and func_timeout
  (visdom calls) at import: small stand-ins are put in sys.modules (neither is called);
* PyTorch 1.7, which their README targets, zeroed gradients in zero_grad (2.x sets them to
  None, and Adam then skips a parameter instead of stepping it with a zero gradient):
  Optimizer.zero_grad is called with set_to_none=False.
"""
import argparse
import importlib.machinery
import json
import os
import sys
import types


def stand_in(name):
    """An empty module `name` (with a spec, which torch's import-time checks look for)."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return module


def install_shims():
    sklearn = stand_in("sklearn")
    decomposition = stand_in("sklearn.decomposition")

    class PCA:  # only their visualize_spatial_code calls it
        def __init__(self, *args, **kwargs):
            raise RuntimeError("scikit-learn stand-in: PCA is not available in the parity run")

    decomposition.PCA = PCA
    sklearn.decomposition = decomposition
    sys.modules.setdefault("sklearn", sklearn)
    sys.modules.setdefault("sklearn.decomposition", decomposition)
    timeout = stand_in("func_timeout")

    class FunctionTimedOut(Exception):
        pass

    timeout.FunctionTimedOut = FunctionTimedOut
    timeout.func_timeout = lambda seconds, fn, args=(), kwargs=None: fn(*args, **(kwargs or {}))
    sys.modules.setdefault("func_timeout", timeout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ref", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    sys.path.insert(0, os.path.abspath(args.ref))
    install_shims()

    import torch
    import util  # theirs
    util.is_custom_kernel_supported = lambda: False
    util.util.is_custom_kernel_supported = lambda: False
    zero_grad = torch.optim.Optimizer.zero_grad
    torch.optim.Optimizer.zero_grad = lambda self, set_to_none=False: zero_grad(self, set_to_none=False)

    from models import MultiGPUModelWrapper
    from models.swapping_autoencoder_model import SwappingAutoencoderModel
    from optimizers.swapping_autoencoder_optimizer import SwappingAutoencoderOptimizer

    with open(os.path.join(args.work, "config.json")) as f:
        config = json.load(f)
    torch.set_default_dtype(getattr(torch, config["dtype"]))
    opt = argparse.Namespace(**config["options"])
    torch.manual_seed(config["seed"])
    model = SwappingAutoencoderModel(opt)
    model.initialize()
    model.to(torch.get_default_dtype())  # their blur kernels are float32 whatever the default
    wrapper = MultiGPUModelWrapper(opt, model)
    optimizer = SwappingAutoencoderOptimizer(wrapper)
    names = ["E", "G", "D", "Dpatch"]

    def weights():
        return {name: {k: v.detach().clone() for k, v in getattr(model, name).state_dict().items()}
                for name in names}

    initial = weights()
    batches = torch.load(os.path.join(args.work, "batches.pt"))
    losses = []
    for step, batch in enumerate(batches):
        torch.manual_seed(config["seed"] + step)
        values = optimizer.train_one_step({"real_A": batch.to(torch.get_default_dtype())}, step)
        losses.append({k: float(v) for k, v in values.items()})
    torch.save({"initial": initial, "final": weights(), "losses": losses},
               os.path.join(args.work, "reference.pt"))


if __name__ == "__main__":
    main()
