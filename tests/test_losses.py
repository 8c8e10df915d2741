"""PatchNCE against a naive per-patch loop, GAN loss modes, learning-rate schedules."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from models.losses import GANLoss, PatchNCELoss
from models.schedulers import get_scheduler, linear_lr_factor


def naive_patchnce(q, k, batch_size, tau, all_negatives):
    """Eq. 2 of the paper, one patch at a time, with the original's -10 on the diagonal."""
    n, _ = q.shape
    per_image = n // batch_size
    losses = []
    for row in range(n):
        if all_negatives:
            candidates = range(n)
            pos_in_group = row
        else:
            start = (row // per_image) * per_image
            candidates = range(start, start + per_image)
            pos_in_group = row - start
        positive = float(q[row] @ k[row]) / tau
        logits = [positive]
        for j, col in enumerate(candidates):
            logits.append(-10.0 / tau if j == pos_in_group else float(q[row] @ k[col]) / tau)
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(x - top) for x in logits))
        losses.append(log_sum - positive)
    return torch.tensor(losses, dtype=torch.float64)


def unit_rows(*shape):
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("batch_size,patches,all_negatives", [(1, 16, False), (3, 8, False), (3, 8, True)])
def test_patchnce_matches_naive_loop(batch_size, patches, all_negatives):
    torch.manual_seed(0)
    q = unit_rows(batch_size * patches, 12)
    k = unit_rows(batch_size * patches, 12)
    loss = PatchNCELoss(0.07, all_negatives)(q, k, batch_size)
    assert loss.shape == (batch_size * patches,)
    expected = naive_patchnce(q, k, batch_size, 0.07, all_negatives)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


def test_patchnce_groups_by_tensor_batch_not_option():
    # 2 images x 4 patches grouped per image: a key of image 1 must not be a negative of image 0.
    torch.manual_seed(1)
    q = unit_rows(8, 6)
    k = unit_rows(8, 6)
    per_image = PatchNCELoss(0.07, False)(q, k, batch_size=2)
    k_changed = k.clone()
    k_changed[4:] = unit_rows(4, 6)
    per_image_changed = PatchNCELoss(0.07, False)(q, k_changed, batch_size=2)
    torch.testing.assert_close(per_image[:4], per_image_changed[:4])
    assert not torch.allclose(per_image[4:], per_image_changed[4:])


def test_patchnce_keys_receive_no_gradient():
    q = unit_rows(8, 4).requires_grad_()
    k = unit_rows(8, 4).requires_grad_()
    PatchNCELoss()(q, k, 1).mean().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_patchnce_near_log_of_candidates_for_random_features():
    # Unrelated random unit vectors in D dims have dot products ~ N(0, 1/D), so each logit is
    # ~ N(0, s^2) with s = 1/(sqrt(D) tau) and E[exp(logit)] = exp(s^2/2).  With 255 real
    # negatives (the masked diagonal adds ~exp(-143) = 0) the loss is ~ log(1 + 255 exp(s^2/2)),
    # "near ln(257)" plus the spread of the logits.
    torch.manual_seed(2)
    q = unit_rows(256, 256)
    k = unit_rows(256, 256)
    loss = PatchNCELoss(0.07, False)(q, k, 1).mean().item()
    s = 1 / (math.sqrt(256) * 0.07)
    assert abs(loss - math.log(1 + 255 * math.exp(s * s / 2))) < 0.1


def test_gan_loss_modes():
    pred = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    torch.testing.assert_close(GANLoss("lsgan")(pred, True), ((pred - 1) ** 2).mean())
    torch.testing.assert_close(GANLoss("lsgan")(pred, False), (pred ** 2).mean())
    sig = torch.sigmoid(pred)
    torch.testing.assert_close(GANLoss("vanilla")(pred, True), -torch.log(sig).mean())
    torch.testing.assert_close(GANLoss("vanilla")(pred, False), -torch.log(1 - sig).mean())
    torch.testing.assert_close(GANLoss("wgangp")(pred, True), -pred.mean())
    torch.testing.assert_close(GANLoss("wgangp")(pred, False), pred.mean())
    ns_real = GANLoss("nonsaturating")(pred, True)
    assert ns_real.shape == (2,)  # one value per sample, the caller averages
    torch.testing.assert_close(ns_real, torch.log1p(torch.exp(-pred)).mean(dim=1))
    torch.testing.assert_close(GANLoss("nonsaturating")(pred, False), torch.log1p(torch.exp(pred)).mean(dim=1))
    with pytest.raises(ValueError, match="lsgan"):
        GANLoss("hinge")


def lr_per_epoch(policy, epoch_count=1, n_epochs=4, n_epochs_decay=3, lr_decay_iters=2):
    """The learning rate used during each epoch of a training run, as train.py steps it."""
    opt = SimpleNamespace(lr_policy=policy, epoch_count=epoch_count, n_epochs=n_epochs,
                          n_epochs_decay=n_epochs_decay, lr_decay_iters=lr_decay_iters)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_scheduler(optimizer, opt)
    rates = {}
    for epoch in range(epoch_count, n_epochs + n_epochs_decay + 1):
        rates[epoch] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step(0) if policy == "plateau" else scheduler.step()
    return rates


def test_linear_policy_formula():
    # factor(E) = 1 - max(0, E - n_epochs) / (n_epochs_decay + 1)
    rates = lr_per_epoch("linear", n_epochs=4, n_epochs_decay=3)
    assert rates == pytest.approx({1: 1, 2: 1, 3: 1, 4: 1, 5: 0.75, 6: 0.5, 7: 0.25})
    # resuming at epoch 6 starts from that epoch's rate
    assert lr_per_epoch("linear", epoch_count=6, n_epochs=4, n_epochs_decay=3) == pytest.approx({6: 0.5, 7: 0.25})


def test_linear_factor_cut_and_fastcut_values():
    assert linear_lr_factor(200, 200, 200) == 1.0
    assert linear_lr_factor(201, 200, 200) == pytest.approx(1 - 1 / 201)
    assert linear_lr_factor(400, 200, 200) == pytest.approx(1 / 201)  # never reaches 0
    assert linear_lr_factor(200, 150, 50) == pytest.approx(1 / 51)


def test_step_cosine_plateau_policies():
    assert lr_per_epoch("step", n_epochs=3, n_epochs_decay=3, lr_decay_iters=2) == pytest.approx(
        {1: 1, 2: 1, 3: 0.1, 4: 0.1, 5: 0.01, 6: 0.01})
    cosine = lr_per_epoch("cosine", n_epochs=4, n_epochs_decay=0)
    assert cosine == pytest.approx({e: 0.5 * (1 + math.cos(math.pi * (e - 1) / 4)) for e in range(1, 5)})
    # plateau is fed a constant metric: the rate drops by 0.2 after patience (5) + 1 epochs
    plateau = lr_per_epoch("plateau", n_epochs=8, n_epochs_decay=0)
    assert plateau[7] == pytest.approx(1.0) and plateau[8] == pytest.approx(0.2)
