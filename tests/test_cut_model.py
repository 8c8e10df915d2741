"""CUTModel: PatchNCE through the real networks, initialisation order, one training step, checkpoints."""
import math

import numpy as np
import pytest
import torch

from models import create_model
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.checkpoint import load_state_dict_file
from util.errors import UserError

SMALL = "--ngf 8 --ndf 8 --netF_nc 16 --num_patches 6 --gpu_ids -1"


def build(tmp_path, extra="", train=True):
    root = tmp_path / "root"
    for sub in ("trainA", "testA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = TrainOptions if train else TestOptions
    opt = options(f"--dataroot {root} --checkpoints_dir {tmp_path / 'ck'} --name m {SMALL} {extra}").parse()
    torch.manual_seed(0)
    return opt, create_model(opt)


def batch(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "A_paths": [f"a{i}.png" for i in range(n)], "B_paths": [f"b{i}.png" for i in range(n)]}


def layer_outputs(netG, image, layers):
    """Run the generator's Sequential by hand and keep the outputs of `layers`."""
    outputs, x = {}, image
    for index, layer in enumerate(netG.model):
        x = layer(x)
        outputs[index] = x
    return [outputs[i] for i in layers]


def naive_nce(model, src, tgt, ids, lambda_nce, tau):
    """Eq. 3 computed patch by patch: mean over layers of the mean per-patch InfoNCE loss."""
    layers = model.nce_layers
    f_q = layer_outputs(model.netG, tgt, layers)
    f_k = layer_outputs(model.netG, src, layers)
    per_layer = []
    for l, (q_map, k_map) in enumerate(zip(f_q, f_k)):
        mlp = getattr(model.netF, f"mlp_{l}")
        losses = []
        for b in range(src.size(0)):
            def embed(feature_map):
                rows = []
                for loc in ids[l].tolist():
                    h, w = divmod(loc, feature_map.size(3))
                    z = mlp(feature_map[b, :, h, w])
                    rows.append(z / (z.norm() + 1e-7))
                return rows
            qs, ks = embed(q_map), embed(k_map)
            for i, q in enumerate(qs):
                logits = [float(q @ ks[i]) / tau]  # positive first
                logits += [-10.0 / tau if j == i else float(q @ k) / tau for j, k in enumerate(ks)]
                top = max(logits)
                losses.append(top + math.log(sum(math.exp(v - top) for v in logits)) - logits[0])
        per_layer.append(lambda_nce * sum(losses) / len(losses))
    return sum(per_layer) / len(per_layer)


def test_nce_loss_equals_naive_computation_with_fixed_patches(tmp_path):
    opt, model = build(tmp_path, "--lambda_NCE 2.5")
    data = batch(n=2)
    model.data_dependent_initialize(data)
    src, tgt = data["A"], data["B"]  # any two images of the right shape
    ids = [torch.as_tensor(np.random.default_rng(l).permutation(h * h)[:6])
           for l, h in enumerate([38, 32, 16, 8, 8])]  # H*W of layers 0,4,8,12,16 for 32x32 input
    with torch.no_grad():
        ours = float(model.calculate_NCE_loss(src, tgt, patch_ids=ids))
        expected = naive_nce(model, src, tgt, ids, lambda_nce=2.5, tau=opt.nce_T)
    assert ours == pytest.approx(expected, rel=1e-5)


def test_data_dependent_init_creates_heads_and_optimizer_before_setup(tmp_path):
    opt, model = build(tmp_path)
    assert not any(True for _ in model.netF.parameters())
    model.data_dependent_initialize(batch(n=1))
    widths = [getattr(model.netF, f"mlp_{l}")[0].in_features for l in range(5)]
    assert widths == [3, 16, 32, 32, 32]  # image, 2ngf, 4ngf, 4ngf, 4ngf (3, 128, 256, 256, 256 at ngf 64)
    assert model.optimizer_F is not None and len(model.optimizers) == 3
    model.setup(opt)
    assert len(model.schedulers) == 3


def test_fastcut_has_no_identity_term(tmp_path):
    opt, model = build(tmp_path, "--CUT_mode FastCUT")
    assert "NCE_Y" not in model.loss_names and "idt_B" not in model.visual_names
    model.data_dependent_initialize(batch(n=1))
    assert model.fake_B.shape[0] == 1


def test_cut_objective_combines_terms_as_the_paper(tmp_path):
    opt, model = build(tmp_path, "--lambda_GAN 0.5")
    model.data_dependent_initialize(batch(n=1))
    model.forward()
    total = model.compute_G_loss()
    expected = model.loss_G_GAN + 0.5 * (model.loss_NCE + model.loss_NCE_Y)
    assert total.item() == pytest.approx(expected.item())
    d_loss = model.compute_D_loss()
    assert d_loss.item() == pytest.approx(0.5 * (model.loss_D_fake + model.loss_D_real).item())


def test_one_step_updates_G_D_and_F(tmp_path):
    opt, model = build(tmp_path)
    data = batch(n=1)
    model.data_dependent_initialize(data)
    model.setup(opt)
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in model.networks()}
    model.set_input(data)
    losses = model.optimize_parameters()
    assert set(losses) == {"G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y"}
    assert all(math.isfinite(v) for v in losses.values())
    for name, net in model.networks():
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[name][k])]
        assert changed, f"net{name} did not change"


def test_checkpoints_round_trip_and_accept_module_prefix(tmp_path):
    opt, model = build(tmp_path)
    model.data_dependent_initialize(batch(n=1))
    model.save_networks("latest")
    folder = tmp_path / "ck" / "m"
    state = torch.load(folder / "latest_net_G.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    assert "model.7.filt" in state and all(v.device.type == "cpu" for v in state.values())
    assert sorted(torch.load(folder / "latest_net_F.pth", weights_only=True))[0] == "mlp_0.0.bias"

    # the original's CPU runs saved the DataParallel wrapper: keys start with `module.`
    torch.save({"module." + k: v for k, v in state.items()}, folder / "wrapped_net_G.pth")
    assert set(load_state_dict_file(str(folder / "wrapped_net_G.pth"))) == set(state)

    test_opt, test_model = build(tmp_path, "--epoch wrapped", train=False)
    test_model.setup(test_opt)
    for k, v in test_model.netG.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_images_too_small_for_the_networks_are_named_in_one_line(tmp_path):
    opt, model = build(tmp_path)
    model.set_input(batch(size=24))  # the smallest square size the default D accepts
    data = batch(size=32)
    data["B"], data["B_paths"] = batch(size=16)["B"], ["tiny_b.png", "b1.png"]
    with pytest.raises(UserError, match=r"image tiny_b.png becomes 16x16 pixels .* a size netD cannot take"):
        model.set_input(data)
    # at test time only G has to accept it
    _, test_model = build(tmp_path, train=False)
    test_model.set_input(batch(size=8))
    with pytest.raises(UserError, match=r"image a0.png becomes 4x4 pixels .* a size netG cannot take"):
        test_model.set_input(batch(size=4))
