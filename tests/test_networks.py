"""Unit tests of models/networks: structure, parameter counts and state_dict keys,
resampling filters, generator layer taps, weight init and patch sampling.

Expected numbers come from the original code or are recomputed naively here.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import models.networks as N
from models.networks.layers import binomial_filter
from util.errors import UserError


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def conv_keys(*indices, prefix='model'):
    return {f'{prefix}.{i}.{w}' for i in indices for w in ('weight', 'bias')}


def block_keys(indices):
    return {f'model.{i}.conv_block.{j}.{w}' for i in indices for j in (1, 5) for w in ('weight', 'bias')}


def filt_keys(*indices):
    return {f'model.{i}.filt' for i in indices}


@pytest.fixture(scope='module')
def G():
    return N.define_G(3, 3, 64, 'resnet_9blocks')


@pytest.fixture(scope='module')
def small_G():
    """Same layer structure as the default G, with few channels, for fast logic tests."""
    torch.manual_seed(0)
    return N.define_G(3, 3, 8, 'resnet_9blocks').eval()


# ---------------------------------------------------------------- generator structure

def test_default_generator_params_and_keys(G):
    assert n_params(G) == 11_378_179
    assert len(G.model) == 32
    expected = conv_keys(1, 4, 8, 22, 26, 30) | filt_keys(7, 11, 21, 25) | block_keys(range(12, 21))
    keys = set(G.state_dict())
    assert len(G.state_dict()) == 52
    assert keys == expected
    for k in ('model.7.filt', 'model.11.filt', 'model.21.filt', 'model.25.filt',
              'model.12.conv_block.1.weight', 'model.12.conv_block.5.bias', 'model.30.weight'):
        assert k in keys
    assert G.state_dict()['model.7.filt'].shape == (128, 1, 3, 3)
    assert G.state_dict()['model.21.filt'].shape == (256, 1, 4, 4)


def test_resnet_6blocks():
    G6 = N.define_G(3, 3, 64, 'resnet_6blocks')
    assert n_params(G6) == 7_837_699
    assert len(G6.model) == 29
    # 6 blocks at 12..17, then Upsample 18, conv 19, Upsample 22, conv 23, pad 26, conv 27.
    expected = conv_keys(1, 4, 8, 19, 23, 27) | filt_keys(7, 11, 18, 22) | block_keys(range(12, 18))
    assert set(G6.state_dict()) == expected


def test_no_antialias_shifts_encoder_indices():
    Gn = N.define_G(3, 3, 64, 'resnet_9blocks', no_antialias=True)
    assert n_params(Gn) == 11_378_179
    # 0 pad, 1 conv, 4 conv s2, 7 conv s2, blocks 10..18, Upsample 19, conv 20, Upsample 23,
    # conv 24, pad 27, conv 28, Tanh 29.
    assert len(Gn.model) == 30
    expected = conv_keys(1, 4, 7, 20, 24, 28) | filt_keys(19, 23) | block_keys(range(10, 19))
    assert set(Gn.state_dict()) == expected
    assert Gn.model[4].stride == (2, 2) and Gn.model[7].stride == (2, 2)


def test_no_antialias_up():
    Gu = N.define_G(3, 3, 64, 'resnet_9blocks', no_antialias_up=True)
    assert n_params(Gu) == 11_378_179
    # blocks 12..20, ConvTranspose 21, 24, pad 27, conv 28, Tanh 29.
    assert len(Gu.model) == 30
    expected = conv_keys(1, 4, 8, 21, 24, 28) | filt_keys(7, 11) | block_keys(range(12, 21))
    assert set(Gu.state_dict()) == expected
    assert isinstance(Gu.model[21], nn.ConvTranspose2d)
    with torch.no_grad():
        assert Gu(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_batch_norm_generator():
    Gb = N.define_G(3, 3, 64, 'resnet_9blocks', norm='batch')
    assert n_params(Gb) == 11_383_427
    assert len(Gb.state_dict()) == 144
    # Convs before a BatchNorm have no bias; the last conv keeps one.
    assert Gb.model[1].bias is None and Gb.model[30].bias is not None


def test_norm_none_drops_conv_bias_as_the_original():
    Gn = N.define_G(3, 3, 8, 'resnet_4blocks', norm='none')
    assert Gn.model[1].bias is None
    assert Gn.model[12].conv_block[1].bias is None
    assert Gn.model[-2].bias is not None
    assert isinstance(Gn.model[2], nn.Identity)


def test_dropout_shifts_second_block_conv():
    Gd = N.define_G(3, 3, 8, 'resnet_4blocks', use_dropout=True)
    block = Gd.model[12].conv_block
    assert isinstance(block[4], nn.Dropout) and block[4].p == 0.5
    assert isinstance(block[6], nn.Conv2d)


# ---------------------------------------------------------------- generator forward

def test_nce_feature_shapes_256(G):
    with torch.no_grad():
        feats = G(torch.randn(1, 3, 256, 256), [0, 4, 8, 12, 16], encode_only=True)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (3, 262, 262), (128, 256, 256), (256, 128, 128), (256, 64, 64), (256, 64, 64)]


def test_generator_non_square_input(G):
    with torch.no_grad():
        out = G(torch.randn(1, 3, 260, 300))
    assert out.shape == (1, 3, 260, 300)
    assert out.abs().max() <= 1.0  # Tanh


def test_forward_does_not_mutate_layers_and_sorts(small_G):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref_out = small_G(x)
        sorted_feats = small_G(x, [0, 4, 16], encode_only=True)
        layers = [16, 0, 4]
        unsorted_feats = small_G(x, layers, encode_only=True)
        assert layers == [16, 0, 4]
        assert len(unsorted_feats) == 3
        for a, b in zip(sorted_feats, unsorted_feats):
            assert torch.equal(a, b)
        # Ascending index order: layer 0 is the padded input (3 channels, 70x70).
        assert unsorted_feats[0].shape == (2, 3, 70, 70)
        assert torch.equal(sorted_feats[0][:, :, 3:-3, 3:-3], x)

        # -1 means "one past the last layer": no feature for it, no early stop, output returned.
        layers = [-1, 4]
        out, feats = small_G(x, layers, encode_only=True)
        assert layers == [-1, 4]
        assert torch.equal(out, ref_out)
        assert len(feats) == 1 and torch.equal(feats[0], sorted_feats[1])

        # Non-empty layers without encode_only: (output, feats).
        out, feats = small_G(x, (0, 4))
        assert torch.equal(out, ref_out) and len(feats) == 2


def test_forward_rejects_out_of_range_layer(small_G):
    with pytest.raises(UserError, match='nce_layers'):
        small_G(torch.randn(1, 3, 16, 16), [0, 32], encode_only=True)


# ---------------------------------------------------------------- discriminators

def test_default_discriminator():
    D = N.define_D(3, 64, 'basic')
    assert n_params(D) == 2_764_737
    expected = conv_keys(0, 3, 7, 11, 14) | filt_keys(2, 6, 10)
    assert set(D.state_dict()) == expected and len(D.state_dict()) == 13
    Dn = N.define_D(3, 64, 'basic', no_antialias=True)
    assert n_params(Dn) == 2_764_737
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert D(x).shape == (1, 1, 30, 30)
        assert Dn(x).shape == (1, 1, 30, 30)


def test_basic_ignores_n_layers_and_n_layers_5():
    assert n_params(N.define_D(3, 64, 'basic', n_layers_D=5)) == 2_764_737
    D5 = N.define_D(3, 64, 'n_layers', n_layers_D=5)
    with torch.no_grad():
        assert D5(torch.randn(1, 3, 256, 256)).shape == (1, 1, 6, 6)


def test_pixel_discriminator():
    D = N.define_D(3, 8, 'pixel')
    assert set(D.state_dict()) == conv_keys(0, 2, 5, prefix='net')
    with torch.no_grad():
        assert D(torch.randn(2, 3, 17, 23)).shape == (2, 1, 17, 23)
    Db = N.define_D(3, 8, 'pixel', norm='batch')
    assert Db.net[2].bias is None and Db.net[5].bias is None


# ---------------------------------------------------------------- blur filters and resampling

def test_binomial_filters():
    assert torch.allclose(binomial_filter(3), torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    t4 = torch.tensor([1., 3, 3, 1])
    assert torch.allclose(binomial_filter(4), torch.outer(t4, t4) / 64)
    t7 = torch.tensor([1., 6, 15, 20, 15, 6, 1])
    assert torch.allclose(binomial_filter(7), torch.outer(t7, t7) / 64 ** 2)


def test_resampling_filter_buffers():
    down, up = N.Downsample(5), N.Upsample(5)
    assert down.filt.shape == (5, 1, 3, 3) and up.filt.shape == (5, 1, 4, 4)
    expected_down = torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    t4 = torch.tensor([1., 3, 3, 1])
    expected_up = torch.outer(t4, t4) / 16  # /64 * stride^2
    for c in range(5):
        assert torch.allclose(down.filt[c, 0], expected_down)
        assert torch.allclose(up.filt[c, 0], expected_up)
    assert up.filt.min().item() == pytest.approx(0.0625) and up.filt.max().item() == pytest.approx(0.5625)
    assert 'filt' in down.state_dict() and 'filt' in up.state_dict()


@pytest.mark.parametrize('h,w', [(256, 256), (8, 12), (7, 9)])
def test_resampling_sizes(h, w):
    x = torch.randn(1, 2, h, w)
    assert N.Upsample(2)(x).shape == (1, 2, 2 * h, 2 * w)
    assert N.Downsample(2)(x).shape == (1, 2, math.ceil(h / 2), math.ceil(w / 2))


def test_resampling_keeps_constants():
    x = torch.full((1, 3, 6, 10), 0.7)
    assert torch.allclose(N.Upsample(3)(x), torch.full((1, 3, 12, 20), 0.7))
    assert torch.allclose(N.Downsample(3)(x), torch.full((1, 3, 3, 5), 0.7))


def test_downsample_matches_naive():
    rng = np.random.RandomState(1)
    x = rng.randn(5, 7)
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16
    xp = np.pad(x, 1, mode='reflect')
    expected = np.array([[(xp[2 * i:2 * i + 3, 2 * j:2 * j + 3] * f).sum() for j in range(4)]
                         for i in range(3)])
    out = N.Downsample(1)(torch.tensor(x, dtype=torch.float32)[None, None])[0, 0]
    assert np.allclose(out.numpy(), expected, atol=1e-6)


def test_upsample_matches_naive():
    # Spec 3.2: replicate-pad 1, transposed conv (stride 2, padding 2) with the 4x4 filter,
    # drop first and last row/column.  Recomputed as scatter-add of the unpadded full output.
    rng = np.random.RandomState(2)
    x = rng.randn(3, 4)
    f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16
    xp = np.pad(x, 1, mode='edge')
    full = np.zeros((2 * xp.shape[0] + 2, 2 * xp.shape[1] + 2))
    for i in range(xp.shape[0]):
        for j in range(xp.shape[1]):
            full[2 * i:2 * i + 4, 2 * j:2 * j + 4] += xp[i, j] * f
    # padding 2 trims 2 per side, then one more row/column at the start and at the end.
    expected = full[3:-3, 3:-3]
    out = N.Upsample(1)(torch.tensor(x, dtype=torch.float32)[None, None])[0, 0]
    assert out.shape == (6, 8)
    assert np.allclose(out.numpy(), expected, atol=1e-6)


# ---------------------------------------------------------------- norm / pad factories

def test_norm_and_pad_factories():
    inorm = N.get_norm_layer('instance')(16)
    assert isinstance(inorm, nn.InstanceNorm2d)
    assert len(inorm.state_dict()) == 0 and not inorm.affine
    bnorm = N.get_norm_layer('batch')(16)
    assert bnorm.affine and bnorm.track_running_stats
    assert isinstance(N.get_norm_layer('none')(16), nn.Identity)
    assert N.conv_bias_for(N.get_norm_layer('instance'))
    assert not N.conv_bias_for(N.get_norm_layer('batch'))
    assert not N.conv_bias_for(N.get_norm_layer('none'))
    with pytest.raises(UserError, match='instance, batch, none'):
        N.get_norm_layer('group')
    assert N.get_pad_layer('refl') is N.get_pad_layer('reflect') is nn.ReflectionPad2d
    assert N.get_pad_layer('repl') is N.get_pad_layer('replicate') is nn.ReplicationPad2d
    assert N.get_pad_layer('zero') is nn.ZeroPad2d


# ---------------------------------------------------------------- weight init

def test_xavier_init_std():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(256, 256, 3), nn.Linear(300, 100), nn.BatchNorm2d(1000))
    N.init_weights(net, 'xavier', 0.02)
    fan = 256 * 9
    assert net[0].weight.std().item() == pytest.approx(0.02 * math.sqrt(2 / (fan + fan)), rel=0.02)
    assert net[1].weight.std().item() == pytest.approx(0.02 * math.sqrt(2 / 400), rel=0.03)
    assert net[0].bias.abs().max() == 0 and net[1].bias.abs().max() == 0
    assert net[2].weight.mean().item() == pytest.approx(1.0, abs=0.005)
    assert net[2].weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert net[2].bias.abs().max() == 0


def test_other_init_types():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    N.init_weights(conv, 'normal', 0.05)
    assert conv.weight.std().item() == pytest.approx(0.05, rel=0.02)
    N.init_weights(conv, 'kaiming', 0.05)  # gain ignored: std sqrt(2 / fan_in)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    lin = nn.Linear(50, 20)
    N.init_weights(lin, 'orthogonal', 1.0)
    assert torch.allclose(lin.weight @ lin.weight.T, torch.eye(20), atol=1e-5)
    with pytest.raises(UserError, match='normal, xavier, kaiming, orthogonal'):
        N.init_weights(conv, 'uniform')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only error')
def test_init_net_gpu_without_cuda():
    with pytest.raises(UserError, match='gpu_ids'):
        N.init_net(nn.Linear(2, 2), gpu_ids=[0])


# ---------------------------------------------------------------- registries

@pytest.mark.parametrize('call,option,valid', [
    (lambda: N.define_G(3, 3, 64, 'unet_256'), '--netG', 'resnet_9blocks, resnet_6blocks'),
    (lambda: N.define_D(3, 64, 'patch'), '--netD', 'basic, n_layers, pixel'),
    (lambda: N.define_F('reshape'), '--netF', 'mlp_sample, sample'),
])
def test_unknown_network_names(call, option, valid):
    with pytest.raises(UserError) as err:
        call()
    assert option in str(err.value) and valid in str(err.value)


def test_registry_names():
    assert set(N.GENERATORS) == {'resnet_9blocks', 'resnet_6blocks', 'resnet_4blocks', 'stylegan2',
                                 'smallstylegan2'}
    assert set(N.DISCRIMINATORS) == {'basic', 'n_layers', 'pixel', 'stylegan2', 'tilestylegan2'}
    assert set(N.PATCH_SAMPLERS) == {'mlp_sample', 'sample'}
    assert len(N.define_G(3, 3, 8, 'resnet_4blocks').model) == 32 - 5


# ---------------------------------------------------------------- PatchSampleF

DEFAULT_DIMS = (3, 128, 256, 256, 256)


def test_patch_sampler_params_and_keys():
    F = N.define_F('mlp_sample')
    assert n_params(F) == 0
    F.create_mlp([torch.zeros(1, c, 2, 2) for c in DEFAULT_DIMS])
    # Linear(C, 256) + Linear(256, 256) per layer.
    assert n_params(F) == 560_384 == sum(c * 256 + 256 + 256 * 256 + 256 for c in DEFAULT_DIMS)
    assert set(F.state_dict()) == {f'mlp_{i}.{j}.{w}' for i in range(5) for j in (0, 2)
                                   for w in ('weight', 'bias')}
    # xavier gain 0.02 on the Linear weights, zero biases.
    assert F.mlp_1[2].weight.std().item() == pytest.approx(0.02 * math.sqrt(2 / 512), rel=0.05)
    assert F.mlp_1[0].bias.abs().max() == 0


def test_patch_sampler_lazy_creation_once():
    # Gain 1 keeps the embeddings O(1), so the 1e-7 in the norm is negligible for the unit check.
    F = N.define_F('mlp_sample', init_gain=1.0, netF_nc=16)
    feats = [torch.randn(2, 4, 5, 5), torch.randn(2, 6, 3, 3)]
    out, ids = F(feats, num_patches=7)
    assert [tuple(o.shape) for o in out] == [(14, 16), (14, 16)]
    weight = F.mlp_0[0].weight
    F.create_mlp(feats)  # already built: nothing changes
    F(feats, num_patches=7)
    assert F.mlp_0[0].weight is weight
    for o in out:
        assert torch.allclose(o.norm(dim=1), torch.ones(len(o)), atol=1e-5)


def test_patch_sampler_same_locations_for_batch_and_naive_rows():
    F = N.define_F('sample')
    assert n_params(F) == 0
    feat = torch.randn(3, 5, 4, 6)
    (out,), (ids,) = F([feat], num_patches=10)
    assert out.shape == (30, 5) and ids.shape == (10,)
    assert len(set(ids.tolist())) == 10
    for b in range(3):
        for p, idx in enumerate(ids.tolist()):
            v = feat[b, :, idx // 6, idx % 6]
            assert torch.allclose(out[b * 10 + p], v / (v.norm() + 1e-7), atol=1e-6)


def test_patch_sampler_reuses_ids_and_clamps():
    F = N.define_F('mlp_sample', netF_nc=8)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 3)]
    out1, ids1 = F(feats, num_patches=64)
    assert [len(i) for i in ids1] == [16, 6]  # min(num_patches, H*W)
    assert sorted(ids1[1].tolist()) == list(range(6))
    out2, ids2 = F(feats, num_patches=64, patch_ids=ids1)
    for a, b in zip(out1, out2):
        assert torch.equal(a, b)
    out3, _ = F(feats, num_patches=64, patch_ids=[i.numpy() for i in ids1])
    assert torch.equal(out3[0], out1[0])


def test_patch_sampler_uses_numpy_global_rng():
    F = N.define_F('sample')
    feats = [torch.randn(1, 2, 8, 8), torch.randn(1, 2, 4, 5)]
    np.random.seed(123)
    _, ids = F(feats, num_patches=6)
    rs = np.random.RandomState(123)
    assert ids[0].tolist() == rs.permutation(64)[:6].tolist()
    assert ids[1].tolist() == rs.permutation(20)[:6].tolist()


def test_patch_sampler_all_positions():
    F = N.define_F('mlp_sample', init_gain=1.0, netF_nc=8)
    feat = torch.randn(2, 3, 4, 5)
    (out,), (ids,) = F([feat], num_patches=0)
    assert out.shape == (2, 8, 4, 5)
    assert ids.numel() == 0
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 4, 5), atol=1e-5)
    # Position (h, w) of image b holds the MLP embedding of feat[b, :, h, w].
    v = F.mlp_0(feat[1, :, 2, 3])
    assert torch.allclose(out[1, :, 2, 3], v / (v.norm() + 1e-7), atol=1e-6)
