"""PatchNCE loss (CUT paper, Eq. 2 and 3).

For every sampled query patch q (a feature of the *generated* image) the positive is the key k+
at the same location of the *input* image; the negatives are the keys at the other sampled
locations.  The loss is the (N+1)-way cross-entropy of Eq. 2 with temperature tau = nce_T:

    l(q, k+, k-) = -log( exp(q.k+/tau) / (exp(q.k+/tau) + sum_n exp(q.k-_n/tau)) )
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchNCELoss(nn.Module):
    """Per-patch InfoNCE between query and key features of one layer.

    Args:
        nce_T: temperature tau (0.07 in the paper).
        include_all_negatives_from_minibatch: if True, the negatives of a query are the keys of
            every image in the minibatch (SinCUT); otherwise only keys of the same image (CUT).
    """

    def __init__(self, nce_T=0.07, include_all_negatives_from_minibatch=False):
        super().__init__()
        self.nce_T = nce_T
        self.include_all_negatives_from_minibatch = include_all_negatives_from_minibatch

    def forward(self, feat_q, feat_k, batch_size):
        """feat_q, feat_k: (B*P, D) L2-normalised rows, batch-major; returns a (B*P,) loss vector.

        `batch_size` is the number of images B in this tensor (the original read the option
        --batch_size instead, which is wrong for a last partial batch or a multi-GPU split).
        """
        num_rows, dim = feat_q.shape
        feat_k = feat_k.detach()  # gradients never flow through the keys

        # positive logits: (N, 1)
        l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)

        # negatives grouped per image (G = B) or over the whole minibatch (G = 1): (G, S, D)
        groups = 1 if self.include_all_negatives_from_minibatch else batch_size
        feat_q = feat_q.view(groups, -1, dim)
        feat_k = feat_k.view(groups, -1, dim)
        per_group = feat_q.size(1)
        l_neg = torch.bmm(feat_q, feat_k.transpose(1, 2))  # (G, S, S)

        # The diagonal is the positive pair, already in l_pos.  The original fills it with -10
        # (not -inf) *before* dividing by tau; we keep that so losses match it exactly.
        diagonal = torch.eye(per_group, device=feat_q.device, dtype=torch.bool)[None]
        l_neg = l_neg.masked_fill(diagonal, -10.0).view(-1, per_group)  # (N, S)

        logits = torch.cat((l_pos, l_neg), dim=1) / self.nce_T  # (N, S+1)
        target = torch.zeros(num_rows, dtype=torch.long, device=feat_q.device)
        return F.cross_entropy(logits, target, reduction="none")
