"""R1 gradient penalty (Mescheder, Geiger, Nowozin, "Which Training Methods for GANs do actually
Converge?", ICML 2018, Eq. 9), as SinCUT applies it on every discriminator step.
"""
import torch


def r1_penalty(pred_real, real, weight):
    """weight / 2 * E_x[ ||grad_x D(x)||^2 ] over the real images x of the batch.

    pred_real: D(real), any shape with the batch first; real: the B x C x H x W images it was
    computed from, with requires_grad set before D ran.  The gradient is taken with
    create_graph=True, so the penalty itself back-propagates into D's parameters.
    """
    grad, = torch.autograd.grad(pred_real.sum(), real, create_graph=True)
    # Summing the logits keeps samples apart: image b only influences its own D(x_b).
    return grad.pow(2).flatten(1).sum(1).mean() * (weight * 0.5)
