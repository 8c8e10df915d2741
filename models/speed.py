"""The speed options of training, applied to a model's networks (a BaseModel mixin).

--amp bf16|fp16 (autocast, and a GradScaler for fp16), --channels_last, --compile, --fast_path
(on by default: the fused Adam here, and the exact shortcuts of models/networks/layers.py), and
the order in which they meet the (Distributed)DataParallel wrapping.  The measured effect of each
is in docs/performance.md.
"""
import torch

from . import networks

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def unwrap(net):
    """The network inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            net = net.module
        elif hasattr(net, "_orig_mod"):  # torch.compile's OptimizedModule
            net = net._orig_mod
        else:
            return net


def to_channels_last(net):
    """What net.to(memory_format=torch.channels_last) does, for the 4-D parameters (and their
    gradients) and buffers only, in place (optimizers keep their parameters): Module.to also
    converts 5-D tensors, which channels_last cannot hold (StyleGAN2's modulated weights)."""
    for tensor in list(net.parameters()) + list(net.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
            if tensor.grad is not None:
                tensor.grad.data = tensor.grad.data.contiguous(memory_format=torch.channels_last)


class SpeedOptions:
    """Mixed in by BaseModel; expects `opt`, `device`, `gpu_ids`, `isTrain`, `model_names` and
    `networks()`."""

    def init_speed_options(self, opt):
        # Opt-in options of training (options/train_options.py); tests build models without.
        self.amp = getattr(opt, "amp", "off") if self.isTrain else "off"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.memory_format = (torch.channels_last if self.isTrain and getattr(opt, "channels_last", False)
                              else torch.contiguous_format)

    def parallelize(self, wrap=None):
        """Apply the speed options, wrap the networks, then compile them (--compile), in the
        order each step needs.

        `wrap(name, net)` returns the wrapped network (util/distributed.py passes its
        DistributedDataParallel wrapper).  By default: DataParallel when several GPUs are used.
        The original wraps even for one GPU (and crashes for none on a CUDA machine); with one
        device DataParallel is a pass-through, so we only wrap when it splits the batch.
        """
        if self.isTrain:
            self.apply_speed_options(self.opt)
        if wrap is None and len(self.gpu_ids) > 1:
            wrap = lambda name, net: torch.nn.DataParallel(net, self.gpu_ids)  # noqa: E731
        if wrap is not None:
            for name, net in list(self.networks()):
                setattr(self, "net" + name, wrap(name, net))
        if self.isTrain:
            self.compile_networks(self.opt)

    def apply_speed_options(self, opt):
        """--fast_path False and --channels_last, on the built (and loaded) networks, before any
        wrapping (DataParallel, DistributedDataParallel, torch.compile)."""
        if not getattr(opt, "fast_path", True):
            for _, net in self.networks():
                networks.set_fast_path(net, False)
        if self.memory_format == torch.channels_last:
            for _, net in self.networks():
                to_channels_last(net)
            if networks.instance_norm_grad_is_wrong(self.device):
                # PyTorch's instance_norm backward is wrong for a batch of one with a
                # channels-last gradient (tests/test_norm_grad_guard.py), which this format
                # makes the rule: hand every InstanceNorm a contiguous gradient instead.
                for _, net in self.networks():
                    networks.make_norm_gradients_contiguous(net)

    def compile_networks(self, opt):
        """--compile: torch.compile every network but the MLP heads (small, built lazily), after
        the (Distributed)DataParallel wrapping."""
        if not getattr(opt, "compile", False):
            return
        for name in self.model_names:
            if name.startswith("F"):
                continue
            net = getattr(self, "net" + name)
            setattr(self, "net" + name, torch.compile(net, backend=opt.compile_backend))

    def adam(self, params, betas, **kwargs):
        """Adam at --lr (unless `lr` is given).  On the fast path the fused kernel (one pass over
        each tensor instead of about ten elementwise ops; 3-4x less optimizer time on the CPU),
        which equals PyTorch's default loop exactly in float64 and to 1 ulp in float32."""
        fused = getattr(self.opt, "fast_path", False) and self.device.type in ("cpu", "cuda")
        kwargs.setdefault("lr", self.opt.lr)
        return torch.optim.Adam(params, betas=betas, fused=True if fused else None, **kwargs)

    def autocast(self):
        """The --amp context for forward passes and losses (a no-op without --amp)."""
        return torch.autocast(self.device.type, dtype=AMP_DTYPES.get(self.amp, torch.float32),
                              enabled=self.amp != "off")

    def to_device(self, images):
        return images.to(self.device, non_blocking=True, memory_format=self.memory_format)
