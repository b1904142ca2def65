"""Tests for sgd_noise.core.models: shapes, seeding, ghost batch norm, SkipInit, errors, one SGD step per model."""
import re
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from sgd_noise.core.models import MODELS, Autoencoder, MLP, SmallCNN, count_params, uses_batch_norm
from sgd_noise.core.convnets import GhostBatchNorm2d, KeskarC1, WideResNet
from sgd_noise import make_model

SHAPES = {'mnist1d': (40,), 'mnist': (1, 28, 28), 'cifar10': (3, 32, 32), 'digits': (1, 8, 8)}
IMAGE_ONLY = {'wrn', 'resnet', 'vgg', 'c1'}
AT_LEAST_32 = {'vgg'}   # five 2x2 pools
# small variants so that the whole file runs in seconds on 2 CPU cores
SMALL = {'mlp': dict(hidden=(16, 16)), 'cnn': dict(channels=8), 'wrn': dict(depth=10, width=1),
         'resnet': dict(depth=8), 'vgg': dict(depth=11), 'c1': {}, 'autoencoder': dict(sizes=(32, 8))}


def cases():
    for name in MODELS:
        for data, shape in SHAPES.items():
            if name in IMAGE_ONLY and len(shape) != 3: continue
            if name in AT_LEAST_32 and shape[1] < 32: continue
            yield pytest.param(name, shape, id=f'{name}-{data}')


def loss_of(model, x, y):
    out = model(x)
    return F.mse_loss(out, x.flatten(1)) if model.task == 'reconstruct' else F.cross_entropy(out, y)


# ---------------------------------------------------------------- shapes and tasks

@pytest.mark.parametrize('name,shape', list(cases()))
def test_output_shape(name, shape):
    model = make_model(name, input_shape=shape, n_classes=7, seed=0, **SMALL[name])
    out = model(torch.randn(3, *shape))
    n_in = torch.Size(shape).numel()
    assert out.shape == ((3, n_in) if name == 'autoencoder' else (3, 7))


def test_default_sizes_and_tasks():
    assert MODELS == ('mlp', 'cnn', 'wrn', 'resnet', 'vgg', 'c1', 'autoencoder')
    expected = {'mlp': MLP, 'cnn': SmallCNN, 'wrn': WideResNet, 'c1': KeskarC1, 'autoencoder': Autoencoder}
    for name, cls in expected.items():
        model = make_model(name, input_shape=(3, 32, 32), n_classes=10)
        assert type(model) is cls
        assert model.task == ('reconstruct' if name == 'autoencoder' else 'classify')
    assert make_model('wrn16_4', input_shape=(3, 32, 32), n_classes=10).depth == 16


def test_full_size_forward():
    x = torch.randn(2, 3, 32, 32)
    assert make_model('wrn', input_shape=(3, 32, 32), n_classes=10)(x).shape == (2, 10)
    assert make_model('c1', input_shape=(3, 32, 32), n_classes=100)(x).shape == (2, 100)
    assert make_model('autoencoder', input_shape=(1, 28, 28), n_classes=10)(torch.rand(2, 1, 28, 28)).shape == (2, 784)


def test_mlp_structure():
    mlp = make_model('mlp', input_shape=(1, 8, 8), n_classes=10, hidden=(32, 16, 8))
    assert isinstance(mlp, nn.Sequential)
    kinds = [type(m) for m in mlp]
    assert kinds == [nn.Flatten] + [nn.Linear, nn.ReLU] * 3 + [nn.Linear]
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 8), (8, 10)]
    linear = make_model('mlp', input_shape=(40,), n_classes=10, hidden=())
    assert [type(m) for m in linear] == [nn.Flatten, nn.Linear]
    assert make_model('mlp', input_shape=(40,), n_classes=10, hidden=[5]).__getitem__(1).out_features == 5


def test_mlp_default_init_is_pytorch_default():
    torch.manual_seed(3)
    ref = nn.Linear(40, 256)
    mlp = make_model('mlp', input_shape=(40,), n_classes=10, seed=3)
    assert torch.equal(mlp[1].weight, ref.weight) and torch.equal(mlp[1].bias, ref.bias)


def test_cnn_conv_kind():
    assert isinstance(SmallCNN((40,), 10).features[0], nn.Conv1d)
    assert isinstance(SmallCNN((2, 40), 10).features[0], nn.Conv1d)
    assert isinstance(SmallCNN((1, 8, 8), 10).features[0], nn.Conv2d)


@pytest.mark.parametrize('name,shape', [('cnn', (40,)), ('cnn', (1, 8, 8)), ('mlp', (40,)), ('autoencoder', (1, 8, 8))])
def test_per_example_gradients_under_vmap(name, shape):
    model = make_model(name, input_shape=shape, n_classes=5, **SMALL[name])
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(4, *shape), torch.randint(0, 5, (4,))
    def one(p, xi, yi): return _loss_functional(model, p, xi[None], yi[None])  # a batch of one
    per_example = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    loss_of(model, x, y).backward()
    for k, p in model.named_parameters():
        assert per_example[k].shape == (4, *p.shape)
        torch.testing.assert_close(per_example[k].mean(0), p.grad, atol=1e-5, rtol=1e-4)


def _loss_functional(model, params, x, y):
    out = functional_call(model, params, (x,))
    return F.mse_loss(out, x.flatten(1)) if model.task == 'reconstruct' else F.cross_entropy(out, y)


# ---------------------------------------------------------------- seeding

@pytest.mark.parametrize('name', MODELS)
def test_seed_determinism(name):
    kw = dict(input_shape=(3, 32, 32) if name in AT_LEAST_32 else (3, 16, 16), n_classes=10, **SMALL[name])
    a, b = make_model(name, seed=5, **kw), make_model(name, seed=5, **kw)
    c = make_model(name, seed=6, **kw)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_global_rng_untouched():
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    expected = torch.rand(3)
    torch.random.set_rng_state(state)
    for name in MODELS:
        make_model(name, input_shape=(3, 32, 32) if name in AT_LEAST_32 else (1, 8, 8), n_classes=3, seed=11,
                   **SMALL[name])
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- ghost batch norm

def _pair(g, **kw):
    return GhostBatchNorm2d(4, ghost_batch_size=g, **kw), nn.BatchNorm2d(4, **kw)


@pytest.mark.parametrize('n', [2, 5, 8])
def test_ghost_equals_bn_when_batch_fits(n):
    torch.manual_seed(0)
    x = torch.randn(n, 4, 3, 3) * 3 + 2
    ghost, bn = _pair(8)
    for _ in range(2):
        assert torch.equal(ghost(x), bn(x))
    assert torch.equal(ghost.running_mean, bn.running_mean)
    assert torch.equal(ghost.running_var, bn.running_var)
    assert ghost.num_batches_tracked == bn.num_batches_tracked == 2
    ghost.eval(); bn.eval()
    assert torch.equal(ghost(x), bn(x))


def test_ghost_two_halves():
    torch.manual_seed(0)
    x = torch.randn(16, 4, 3, 3) * 3 + 2
    ghost = GhostBatchNorm2d(4, ghost_batch_size=8)
    with torch.no_grad():
        nn.init.uniform_(ghost.weight); nn.init.uniform_(ghost.bias)
    bn_a, bn_b = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
    bn_a.load_state_dict(ghost.state_dict()); bn_b.load_state_dict(ghost.state_dict())
    out = ghost(x)
    torch.testing.assert_close(out[:8], bn_a(x[:8]), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[8:], bn_b(x[8:]), atol=1e-6, rtol=1e-5)
    # one running-stat update per call, with the mean of the two ghost batches' updates
    torch.testing.assert_close(ghost.running_mean, (bn_a.running_mean + bn_b.running_mean) / 2)
    torch.testing.assert_close(ghost.running_var, (bn_a.running_var + bn_b.running_var) / 2)
    assert ghost.num_batches_tracked == 1
    # and it is not batch norm over the whole batch
    assert not torch.allclose(out, nn.BatchNorm2d(4)(x), atol=1e-3)


def test_ghost_gradients_match_bn_per_half():
    torch.manual_seed(1)
    x = torch.randn(8, 4, 2, 2)
    ghost = GhostBatchNorm2d(4, ghost_batch_size=4)
    bn = nn.BatchNorm2d(4)
    w = torch.randn(8, 4, 2, 2)
    (ghost(x) * w).sum().backward()
    ((bn(x[:4]) * w[:4]).sum() + (bn(x[4:]) * w[4:]).sum()).backward()
    torch.testing.assert_close(ghost.weight.grad, bn.weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ghost.bias.grad, bn.bias.grad, atol=1e-5, rtol=1e-5)


def test_ghost_remainder_is_its_own_ghost_batch():
    torch.manual_seed(2)
    x = torch.randn(11, 4, 3, 3)
    ghost = GhostBatchNorm2d(4, ghost_batch_size=4, affine=False)
    out = ghost(x)
    for lo, hi in [(0, 4), (4, 8), (8, 11)]:
        ref = nn.BatchNorm2d(4, affine=False)(x[lo:hi])
        torch.testing.assert_close(out[lo:hi], ref, atol=1e-6, rtol=1e-5)
    # running mean: example-weighted mean of the per-ghost-batch updates (momentum 0.1, start at 0)
    chunk_means = torch.stack([x[lo:hi].mean((0, 2, 3)) for lo, hi in [(0, 4), (4, 8), (8, 11)]])
    weights = torch.tensor([4., 4., 3.])[:, None] / 11
    torch.testing.assert_close(ghost.running_mean, 0.1 * (weights * chunk_means).sum(0))


def test_ghost_momentum_none_and_no_running_stats():
    x = torch.randn(8, 4, 2, 2)
    ghost = GhostBatchNorm2d(4, ghost_batch_size=4, momentum=None)
    ghost(x)  # cumulative average after one step = the batch statistics
    torch.testing.assert_close(ghost.running_mean, (x[:4].mean((0, 2, 3)) + x[4:].mean((0, 2, 3))) / 2)
    untracked = GhostBatchNorm2d(4, ghost_batch_size=4, track_running_stats=False).eval()
    torch.testing.assert_close(untracked(x)[:4], F.batch_norm(x[:4], None, None, training=True))


def test_ghost_bad_size():
    with pytest.raises(ValueError, match='ghost_batch_size'): GhostBatchNorm2d(4, ghost_batch_size=0)
    with pytest.raises(ValueError, match='ghost_batch_size'):
        make_model('wrn', input_shape=(3, 8, 8), n_classes=10, norm='ghost', ghost_batch_size=-1)


def test_wrn_ghost_uses_ghost_layers():
    wrn = make_model('wrn', input_shape=(3, 8, 8), n_classes=10, norm='ghost', ghost_batch_size=2, **SMALL['wrn'])
    ghosts = [m for m in wrn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert ghosts and all(isinstance(m, GhostBatchNorm2d) and m.ghost_batch_size == 2 for m in ghosts)
    assert wrn(torch.randn(6, 3, 8, 8)).shape == (6, 10)


# ---------------------------------------------------------------- Wide-ResNet

def test_wrn_param_counts():
    assert count_params(make_model('wrn', input_shape=(3, 32, 32), n_classes=10)) == 2_748_890
    assert count_params(make_model('wrn', input_shape=(3, 32, 32), n_classes=10, norm='ghost')) == 2_748_890
    assert count_params(make_model('wrn', input_shape=(3, 32, 32), n_classes=10, norm='none')) == 2_747_088


def test_uses_batch_norm():
    kw = dict(input_shape=(3, 8, 8), n_classes=10)
    assert uses_batch_norm(make_model('wrn', **kw)) and uses_batch_norm(make_model('wrn', norm='ghost', **kw))
    assert uses_batch_norm(make_model('c1', **kw))
    for name in ('mlp', 'cnn', 'autoencoder'): assert not uses_batch_norm(make_model(name, **kw))
    assert not uses_batch_norm(make_model('wrn', norm='none', **kw))


def test_skipinit_blocks_are_identity_at_init():
    wrn = make_model('wrn', input_shape=(3, 16, 16), n_classes=10, norm='none')
    assert not any(isinstance(m, nn.BatchNorm2d) for m in wrn.modules())
    h = wrn.stem(torch.randn(2, 3, 16, 16))
    n_proj = 0
    for block in wrn.blocks:
        assert block.skip_gain is not None and block.skip_gain.item() == 0.0
        assert block.conv1.bias is not None and block.conv2.bias is not None
        out = block(h)
        assert torch.equal(out, block.shortcut(h, F.relu(h)))
        if block.proj is None: assert torch.equal(out, h)
        else: n_proj += 1
        h = out
    assert n_proj == 3  # 16 -> 64 channels, then two stride-2 stages
    # the branch still matters: a non-zero gain changes the block output
    block = wrn.blocks[0]
    with torch.no_grad(): block.skip_gain.fill_(1.0)
    x = wrn.stem(torch.randn(2, 3, 16, 16))
    assert not torch.equal(block(x), block.shortcut(x, F.relu(x)))


def test_wrn_structure():
    wrn = make_model('wrn', input_shape=(3, 32, 32), n_classes=10)
    assert len(wrn.blocks) == 6  # (16 - 4) / 6 = 2 blocks per group, 3 groups
    assert [b.conv2.out_channels for b in wrn.blocks] == [64, 64, 128, 128, 256, 256]
    assert [b.conv1.stride[0] for b in wrn.blocks] == [1, 1, 2, 1, 2, 1]
    assert wrn.stem.bias is None and wrn.blocks[0].conv1.bias is None
    assert make_model('wrn', input_shape=(1, 28, 28), n_classes=10).stem.in_channels == 1


# ---------------------------------------------------------------- Keskar C1

def test_c1_structure():
    c1 = make_model('c1', input_shape=(3, 32, 32), n_classes=10)
    convs = [m for m in c1.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size) for m in convs] == [(64, (5, 5))] * 2
    linears = [m for m in c1.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [384, 192, 10]
    assert linears[0].in_features == 64 * 8 * 8
    assert make_model('c1', input_shape=(1, 28, 28), n_classes=10).classifier[1].in_features == 64 * 7 * 7
    assert not any(isinstance(m, nn.Dropout) for m in c1.modules())
    dropped = make_model('c1', input_shape=(3, 32, 32), n_classes=10, dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == 2


def test_autoencoder_structure():
    ae = make_model('autoencoder', input_shape=(1, 28, 28), n_classes=10)
    linears = [m for m in ae.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 1000), (1000, 500), (500, 250), (250, 30), (30, 250), (250, 500), (500, 1000), (1000, 784)]
    # linear code and linear output: no ReLU at the end of either half
    assert isinstance(ae.encoder[-1], nn.Linear) and isinstance(ae.decoder[-1], nn.Linear)
    assert ae.encoder(torch.rand(2, 1, 28, 28)).shape == (2, 30)


# ---------------------------------------------------------------- one SGD step

@pytest.mark.parametrize('name,norm', [(n, 'bn') for n in MODELS] + [('wrn', 'ghost'), ('wrn', 'none')])
def test_one_sgd_step_changes_parameters(name, norm):
    kw = dict(SMALL[name], **({'norm': norm, 'ghost_batch_size': 2} if name == 'wrn' else {}))
    shape = (3, 32, 32) if name in AT_LEAST_32 else (3, 16, 16)
    model = make_model(name, input_shape=shape, n_classes=10, seed=1, **kw)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, *shape), torch.randint(0, 10, (4,))
    loss = loss_of(model.train(), x, y)
    assert torch.isfinite(loss)
    opt.zero_grad(); loss.backward(); opt.step()
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert changed
    if norm != 'none': assert len(changed) == len(before)  # every parameter gets a gradient
    else: assert all(k in changed for k in before if k.endswith('skip_gain'))


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize('call,field', [
    (dict(name='transformer'), 'unknown model'),
    (dict(name='mlp', hidden=(0, 4)), 'hidden'),
    (dict(name='mlp', hidden=3), 'hidden'),
    (dict(name='mlp', width=3), 'width'),
    (dict(name='cnn', channels=0), 'channels'),
    (dict(name='wrn', depth=15), 'depth'),
    (dict(name='wrn', width=0), 'width'),
    (dict(name='wrn', norm='layer'), 'norm'),
    (dict(name='wrn', in_channels=3), 'in_channels'),
    (dict(name='c1', dropout=1.5), 'dropout'),
    (dict(name='autoencoder', sizes=()), 'sizes'),
    (dict(name='mlp', input_shape=(0, 3)), 'input_shape'),
    (dict(name='mlp', input_shape=40), 'input_shape'),
    (dict(name='wrn', input_shape=(40,)), 'input_shape'),
    (dict(name='cnn', input_shape=(1, 2, 3, 4)), 'input_shape'),
    (dict(name='mlp', n_classes=0), 'n_classes'),
    (dict(name='mlp', seed=1.5), 'seed'),
])
def test_bad_input_one_line_value_error(call, field):
    call = {**dict(input_shape=(3, 8, 8), n_classes=10), **call}
    with pytest.raises(ValueError) as info:
        make_model(call.pop('name'), **call)
    msg = str(info.value)
    assert field in msg and '\n' not in msg


def test_unknown_model_message():
    with pytest.raises(ValueError) as info: make_model('foo', input_shape=(40,), n_classes=10)
    assert str(info.value) == "unknown model 'foo': choose one of mlp, cnn, wrn, resnet, vgg, c1, autoencoder"


def test_count_params():
    assert count_params(nn.Linear(3, 2)) == 8
    assert count_params(make_model('mlp', input_shape=(40,), n_classes=10, hidden=())) == 410


# ---------------------------------------------------------------- ResNet-32 and VGG (JKA17, SWA18)

def test_resnet32_and_vgg_on_cifar_shapes():
    from sgd_noise.core.convnets import ResNet, VGG
    r = make_model('resnet32', input_shape=(3, 32, 32), n_classes=10)
    assert isinstance(r, ResNet) and 460_000 < count_params(r) < 480_000   # He et al.: 0.46M (option A shortcuts)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in r.modules()) == 31 + 2   # 31 3x3 convs + 2 projections
    for d, lo, hi in ((11, 9.0e6, 9.9e6), (16, 14.5e6, 15.3e6)):
        v = make_model(f'vgg{d}', input_shape=(3, 32, 32), n_classes=100)
        assert isinstance(v, VGG) and lo < count_params(v) < hi and v(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert uses_batch_norm(make_model('vgg', input_shape=(3, 32, 32), n_classes=10, depth=11, bn=True))
    assert not uses_batch_norm(make_model('vgg', input_shape=(3, 32, 32), n_classes=10))


@pytest.mark.parametrize('kw, fragment', [
    (dict(name='resnet', depth=33), 'depth must be 6n+2'), (dict(name='resnet', norm='none'), 'norm must be'),
    (dict(name='vgg', depth=13), 'depth must be one of 11, 16'), (dict(name='vgg', bn='yes'), 'bn must be'),
    (dict(name='vgg', input_shape=(1, 28, 28)), 'at least 32x32'), (dict(name='resnet', input_shape=(40,)), '(C, H, W)')])
def test_resnet_and_vgg_reject_bad_options(kw, fragment):
    kw = dict(dict(input_shape=(3, 32, 32), n_classes=10), **kw)
    with pytest.raises(ValueError, match=re.escape(fragment)): make_model(**kw)
