"""Tests of sgd_noise.core.data: dataset loading (through the same code a user runs) and the minibatch sampler."""
import gzip
import os
import pickle
import random
import struct
import time

import numpy as np
import pytest
import torch

from sgd_noise.core.data import DATASETS, Dataset, MinibatchSampler, data_root, load_dataset


def _one_line_error(excinfo, *needles):
    "The ValueError is one line, has no chained traceback, and mentions every needle."
    msg = str(excinfo.value)
    assert '\n' not in msg, msg
    assert excinfo.value.__cause__ is None
    for n in needles: assert str(n) in msg, (n, msg)
    return msg


def _check_normalised(ds, per_channel=True, tol=1e-4):
    x = ds.x_train.double()
    dims = (0,) + tuple(range(2, x.ndim)) if per_channel and x.ndim > 2 else tuple(range(x.ndim))
    std, mean = torch.std_mean(x, dim=dims, correction=0)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=tol), mean
    assert torch.allclose(std, torch.ones_like(std), atol=tol), std


def _check_types(ds):
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    assert ds.x_train.shape[0] == ds.y_train.shape[0] == ds.n_train
    assert ds.x_test.shape[0] == ds.y_test.shape[0] == ds.n_test
    assert tuple(ds.x_test.shape[1:]) == ds.input_shape


# ---------------------------------------------------------------- general

def test_unknown_dataset():
    with pytest.raises(ValueError) as e: load_dataset('foo')
    assert str(e.value) == ("unknown dataset 'foo': choose one of mnist1d, digits, mnist, fashion_mnist, cifar10, "
                            "cifar100")
    assert DATASETS == ('mnist1d', 'digits', 'mnist', 'fashion_mnist', 'cifar10', 'cifar100')


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    assert data_root() == tmp_path
    assert data_root('/x/y') == data_root(os.path.join('/x', 'y'))
    monkeypatch.delenv('SGD_NOISE_DATA')
    assert str(data_root()).endswith(os.path.join('.cache', 'sgd_noise', 'data'))


# ---------------------------------------------------------------- mnist1d

@pytest.mark.parametrize('n_train,n_test', [(100, 20), (15, 7), (113, 1000), (1, 1)])
def test_mnist1d_sizes_exact(tmp_path, n_train, n_test):
    ds = load_dataset('mnist1d', n_train=n_train, n_test=n_test, root=tmp_path)
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.n_classes) == (n_train, n_test, (40,), 10)
    _check_types(ds)


def test_mnist1d_large_and_cache_round_trip(tmp_path):
    n_train, n_test = 10_003, 7  # not a multiple of 10 in total
    t0 = time.perf_counter()
    ds = load_dataset('mnist1d', n_train=n_train, n_test=n_test, root=tmp_path)
    t_gen = time.perf_counter() - t0
    assert (ds.n_train, ds.n_test) == (n_train, n_test)
    _check_normalised(ds)
    files = sorted(p.name for p in (tmp_path / 'mnist1d').iterdir())
    assert files == [f'mnist1d_train{n_train}_test{n_test}_seed42.npz']  # no temporary files left behind
    t0 = time.perf_counter()
    ds2 = load_dataset('mnist1d', n_train=n_train, n_test=n_test, root=tmp_path)
    t_cache = time.perf_counter() - t0
    for k in ('x_train', 'y_train', 'x_test', 'y_test'): assert torch.equal(getattr(ds, k), getattr(ds2, k))
    assert t_cache < t_gen / 3, (t_cache, t_gen)
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    assert counts.min() >= 1000 and counts.sum() == n_train + n_test  # balanced classes (1001 each, 3 dropped)


def test_mnist1d_corrupt_cache_is_regenerated(tmp_path):
    ds = load_dataset('mnist1d', n_train=30, n_test=10, root=tmp_path)
    (path,) = (tmp_path / 'mnist1d').iterdir()
    path.write_bytes(b'not an npz file')
    ds2 = load_dataset('mnist1d', n_train=30, n_test=10, root=tmp_path)
    assert torch.equal(ds.x_train, ds2.x_train) and torch.equal(ds.y_test, ds2.y_test)
    with np.load(path) as f: assert f['x_train'].shape == (30, 40)


def test_mnist1d_standard_matches_make_dataset(tmp_path):
    from mnist1d.data import make_dataset, get_dataset_args
    ref = make_dataset(get_dataset_args())
    ds = load_dataset('mnist1d', root=tmp_path)
    assert (ds.n_train, ds.n_test) == (4000, 1000)
    assert np.array_equal(ds.y_train.numpy(), ref['y']) and np.array_equal(ds.y_test.numpy(), ref['y_test'])
    x = ref['x'].astype(np.float32).astype(np.float64)
    mean, std = x.mean(), x.std()
    np.testing.assert_allclose(ds.x_train.numpy(), (x - mean) / std, atol=1e-5)
    np.testing.assert_allclose(ds.x_test.numpy(), (ref['x_test'] - mean) / std, atol=1e-5)
    assert ds.meta['data_seed'] == 42 and len(ds.meta['mean']) == 1  # one scalar mean/std
    _check_normalised(ds)


def test_mnist1d_determinism_and_seed(tmp_path):
    a = load_dataset('mnist1d', n_train=50, n_test=10, root=tmp_path / 'a')
    b = load_dataset('mnist1d', n_train=50, n_test=10, root=tmp_path / 'b')  # generated again, not cached
    c = load_dataset('mnist1d', n_train=50, n_test=10, root=tmp_path / 'a', data_seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert c.meta['data_seed'] == 3


def test_mnist1d_keeps_global_rng_state(tmp_path):
    np.random.seed(123); random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123); random.seed(123)
    load_dataset('mnist1d', n_train=20, n_test=10, root=tmp_path)
    assert (np.random.rand(), random.random()) == expected


@pytest.mark.parametrize('kw,field', [(dict(n_train=0), 'n_train'), (dict(n_test=-5), 'n_test'),
                                      (dict(n_train=2.5), 'n_train'), (dict(data_seed=-1), 'data_seed')])
def test_mnist1d_bad_arguments(tmp_path, kw, field):
    with pytest.raises(ValueError) as e: load_dataset('mnist1d', root=tmp_path, **kw)
    _one_line_error(e, field)


def test_mnist1d_unwritable_root_still_loads(tmp_path):
    root = tmp_path / 'ro'
    root.write_text('a file where the folder should be')
    ds = load_dataset('mnist1d', n_train=20, n_test=10, root=root)
    assert (ds.n_train, ds.n_test) == (20, 10)


# ---------------------------------------------------------------- digits

def test_digits_default():
    ds = load_dataset('digits')
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.n_classes) == (1497, 300, (1, 8, 8), 10)
    _check_types(ds)
    _check_normalised(ds)
    assert set(ds.y_train.tolist()) == set(range(10))


def test_digits_split_is_seeded_and_disjoint():
    a, b, c = load_dataset('digits'), load_dataset('digits'), load_dataset('digits', data_seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_test, c.y_test)
    small = load_dataset('digits', n_train=100, n_test=50)
    assert (small.n_train, small.n_test) == (100, 50)
    # the test set does not depend on n_train
    assert torch.equal(load_dataset('digits', n_train=10).y_test, a.y_test)
    # train and test are disjoint and together are all 1797 images (de-normalise to compare the raw pixels)
    from sklearn.datasets import load_digits
    raw = load_digits().images.reshape(1797, -1)
    m, s = a.meta['mean'][0], a.meta['std'][0]
    back = lambda x: np.rint((x.reshape(len(x), -1).double().numpy() * s + m) * 16).astype(int)
    rows = {r.tobytes() for r in raw.astype(int)}
    tr, te = back(a.x_train), back(a.x_test)
    assert all(r.tobytes() in rows for r in np.concatenate([tr, te]))
    assert len(tr) + len(te) == 1797


@pytest.mark.parametrize('kw,field,hi', [(dict(n_train=1498), 'n_train', 1497), (dict(n_test=1797), 'n_test', 1796),
                                         (dict(n_train=0), 'n_train', 1497)])
def test_digits_bad_sizes(kw, field, hi):
    with pytest.raises(ValueError) as e: load_dataset('digits', **kw)
    _one_line_error(e, field, hi, 'digits')


def test_dataset_repr_and_to():
    ds = load_dataset('digits', n_train=30, n_test=20)
    r = repr(ds)
    assert r == "Dataset('digits', n_train=30, n_test=20, input_shape=(1, 8, 8), n_classes=10, device=cpu)"
    moved = ds.to('cpu')
    assert isinstance(moved, Dataset) and moved is not ds and moved.device == torch.device('cpu')
    assert torch.equal(moved.x_train, ds.x_train) and moved.task == 'classify'


# ---------------------------------------------------------------- MNIST / Fashion-MNIST in the real IDX format

def _idx_bytes(arr, magic):
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack('>I', magic) + b''.join(struct.pack('>I', d) for d in arr.shape) + arr.tobytes()


def _write_idx_dataset(folder, n_train=20, n_test=8, gz=False, seed=0):
    "Write the four IDX files (real format, tiny sizes); return the arrays written."
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        arrays[split] = (x, y)
        for fname, arr, magic in ((f'{split}-images-idx3-ubyte', x, 2051), (f'{split}-labels-idx1-ubyte', y, 2049)):
            data = _idx_bytes(arr, magic)
            if gz: (folder / (fname + '.gz')).write_bytes(gzip.compress(data))
            else: (folder / fname).write_bytes(data)
    return arrays


@pytest.mark.parametrize('name,sub', [('mnist', 'MNIST'), ('fashion_mnist', 'FashionMNIST')])
@pytest.mark.parametrize('gz', [False, True])
def test_idx_files_load(tmp_path, name, sub, gz):
    arrays = _write_idx_dataset(tmp_path / sub / 'raw', gz=gz)
    ds = load_dataset(name, root=tmp_path, download=False)
    assert (ds.name, ds.n_train, ds.n_test, ds.input_shape, ds.n_classes) == (name, 20, 8, (1, 28, 28), 10)
    _check_types(ds)
    _check_normalised(ds)
    x, y = arrays['train']
    assert np.array_equal(ds.y_train.numpy(), y.astype(np.int64))
    # x = (pixel / 255 - mean) / std with the train-set mean/std
    x01 = x.astype(np.float64)[:, None] / 255
    np.testing.assert_allclose(ds.x_train.numpy(), (x01 - x01.mean()) / x01.std(), atol=1e-5)
    xt, yt = arrays['t10k']
    np.testing.assert_allclose(ds.x_test.numpy(), (xt.astype(np.float64)[:, None] / 255 - x01.mean()) / x01.std(),
                               atol=1e-5)
    assert np.array_equal(ds.y_test.numpy(), yt.astype(np.int64))


def test_idx_subset_seeded_and_sizes(tmp_path):
    _write_idx_dataset(tmp_path / 'MNIST' / 'raw')
    a = load_dataset('mnist', n_train=10, n_test=5, root=tmp_path, download=False)
    b = load_dataset('mnist', n_train=10, n_test=5, root=tmp_path, download=False)
    c = load_dataset('mnist', n_train=10, n_test=5, root=tmp_path, download=False, data_seed=1)
    assert (a.n_train, a.n_test) == (10, 5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train) or not torch.equal(a.y_test, c.y_test)
    _check_normalised(a)
    for kw, field, hi in ((dict(n_train=21), 'n_train', 20), (dict(n_test=9), 'n_test', 8), (dict(n_train=0), 'n_train', 20)):
        with pytest.raises(ValueError) as e: load_dataset('mnist', root=tmp_path, download=False, **kw)
        _one_line_error(e, field, hi)


@pytest.mark.parametrize('name,sub', [('mnist', 'MNIST'), ('fashion_mnist', 'FashionMNIST'),
                                      ('cifar10', 'cifar-10-batches-py')])
def test_missing_files_one_line_error(tmp_path, name, sub):
    with pytest.raises(ValueError) as e: load_dataset(name, root=tmp_path, download=False)
    _one_line_error(e, name, tmp_path / sub, 'http')


def test_partly_missing_files_named(tmp_path):
    _write_idx_dataset(tmp_path / 'MNIST' / 'raw')
    (tmp_path / 'MNIST' / 'raw' / 't10k-labels-idx1-ubyte').unlink()
    with pytest.raises(ValueError) as e: load_dataset('mnist', root=tmp_path, download=False)
    msg = _one_line_error(e, 't10k-labels-idx1-ubyte')
    assert 'train-images' not in msg


def test_failed_download_one_line_error(tmp_path, monkeypatch):
    "A download that fails (here: torchvision raising as it does without internet) becomes one line."
    import torchvision
    def boom(*a, **k): raise RuntimeError('Error downloading train-images-idx3-ubyte.gz:\nTried https://...')
    monkeypatch.setattr(torchvision.datasets, 'MNIST', boom)
    with pytest.raises(ValueError) as e: load_dataset('mnist', root=tmp_path, download=True)
    _one_line_error(e, 'mnist', 'download failed', tmp_path / 'MNIST' / 'raw')


@pytest.mark.parametrize('damage', ['truncate', 'magic', 'bad_gzip', 'count_mismatch'])
def test_corrupt_idx_one_line_error(tmp_path, damage):
    raw = tmp_path / 'MNIST' / 'raw'
    _write_idx_dataset(raw, gz=(damage == 'bad_gzip'))
    if damage == 'truncate':
        p = raw / 'train-images-idx3-ubyte'; p.write_bytes(p.read_bytes()[:-100])
    elif damage == 'magic':
        p = raw / 'train-images-idx3-ubyte'; p.write_bytes(struct.pack('>I', 2049) + p.read_bytes()[4:])
    elif damage == 'bad_gzip':
        p = raw / 'train-images-idx3-ubyte.gz'; p.write_bytes(p.read_bytes()[:40])
    else:
        p = raw / 'train-labels-idx1-ubyte'; p.write_bytes(_idx_bytes(np.zeros(19), 2049))
    with pytest.raises(ValueError) as e: load_dataset('mnist', root=tmp_path, download=False)
    _one_line_error(e, 'mnist', 'corrupt', p.name)


# ---------------------------------------------------------------- CIFAR-10 in the real pickled-batch format

def _write_cifar(folder, per_batch=6, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for fname, n in [(f'data_batch_{i}', per_batch) for i in range(1, 6)] + [('test_batch', n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[:, :1024] //= 4  # make the red channel darker than green and blue, to check per-channel stats
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / fname, 'wb') as f:
            # str keys, as the official batches (pickled by Python 2) give when read with encoding='latin1'
            pickle.dump({'batch_label': fname, 'labels': labels, 'data': data, 'filenames': ['x.png'] * n}, f)
        out[fname] = (data, labels)
    return out


def test_cifar10_batches_load(tmp_path):
    written = _write_cifar(tmp_path / 'cifar-10-batches-py')
    ds = load_dataset('cifar10', root=tmp_path, download=False)
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.n_classes) == (30, 5, (3, 32, 32), 10)
    _check_types(ds)
    _check_normalised(ds)
    data = np.concatenate([written[f'data_batch_{i}'][0] for i in range(1, 6)])
    labels = sum((written[f'data_batch_{i}'][1] for i in range(1, 6)), [])
    assert ds.y_train.tolist() == labels and ds.y_test.tolist() == written['test_batch'][1]
    x01 = data.reshape(-1, 3, 32, 32).astype(np.float64) / 255  # rows are 1024 R, 1024 G, 1024 B
    mean, std = x01.mean(axis=(0, 2, 3), keepdims=True), x01.std(axis=(0, 2, 3), keepdims=True)
    assert mean[0, 0, 0, 0] < mean[0, 1, 0, 0] / 2  # the darker red channel is channel 0
    np.testing.assert_allclose(ds.x_train.numpy(), (x01 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(ds.meta['mean'], mean.flatten(), atol=1e-6)


def _write_cifar100(folder, n_train=12, n_test=4, seed=0):
    "The real CIFAR-100 layout: two pickles, `train` and `test`, with 'fine_labels' (0..99) and 'coarse_labels'."
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for fname, n in (('train', n_train), ('test', n_test)):
        data, fine = rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 100, n)]
        with open(folder / fname, 'wb') as f:
            pickle.dump({'filenames': ['x.png'] * n, 'batch_label': fname, 'fine_labels': fine,
                         'coarse_labels': [v // 5 for v in fine], 'data': data}, f)
        out[fname] = (data, fine)
    with open(folder / 'meta', 'wb') as f: pickle.dump({'fine_label_names': [f'c{i}' for i in range(100)]}, f)
    return out


def test_cifar100_loads_with_its_fine_labels(tmp_path):
    written = _write_cifar100(tmp_path / 'cifar-100-python')
    ds = load_dataset('cifar100', root=tmp_path, download=False)
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.n_classes) == (12, 4, (3, 32, 32), 100)
    assert ds.y_train.tolist() == written['train'][1] and ds.y_test.tolist() == written['test'][1]
    _check_types(ds)
    (tmp_path / 'cifar-100-python' / 'test').write_bytes(b'not a pickle')
    with pytest.raises(ValueError) as e: load_dataset('cifar100', root=tmp_path, download=False)
    _one_line_error(e, 'cifar100', 'corrupt', 'test')


def test_cifar10_subset(tmp_path):
    _write_cifar(tmp_path / 'cifar-10-batches-py')
    ds = load_dataset('cifar10', n_train=7, n_test=3, root=tmp_path, download=False, data_seed=5)
    assert (ds.n_train, ds.n_test) == (7, 3)
    with pytest.raises(ValueError) as e: load_dataset('cifar10', n_train=31, root=tmp_path, download=False)
    _one_line_error(e, 'n_train', 30)


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'wrong_shape', 'label_count'])
def test_cifar10_corrupt_one_line_error(tmp_path, damage):
    folder = tmp_path / 'cifar-10-batches-py'
    _write_cifar(folder)
    p = folder / 'data_batch_3'
    if damage == 'garbage': p.write_bytes(b'\x00\x01 this is not a pickle')
    elif damage == 'truncated': p.write_bytes(p.read_bytes()[:500])
    else:
        data, n_labels = (np.zeros((4, 100), np.uint8), 4) if damage == 'wrong_shape' else (np.zeros((4, 3072), np.uint8), 3)
        with open(p, 'wb') as f: pickle.dump({'data': data, 'labels': [0] * n_labels}, f)
    with pytest.raises(ValueError) as e: load_dataset('cifar10', root=tmp_path, download=False)
    _one_line_error(e, 'cifar10', 'corrupt', 'data_batch_3')


# ---------------------------------------------------------------- MinibatchSampler

def test_sampler_epochs_are_permutations_drop_last():
    n, B = 103, 10
    s = MinibatchSampler(n, B, seed=0)
    assert s.steps_per_epoch == 10 and iter(s) is s
    epochs = []
    for _ in range(3):
        batches = [next(s) for _ in range(s.steps_per_epoch)]
        assert all(b.shape == (B,) and b.dtype == torch.int64 for b in batches)
        idx = torch.cat(batches)
        assert len(set(idx.tolist())) == 100  # no repeats within an epoch; the last 3 are dropped
        assert idx.min() >= 0 and idx.max() < n
        epochs.append(idx)
    assert not torch.equal(epochs[0], epochs[1])  # a new permutation each epoch


def test_sampler_matches_documented_draws():
    n, B, seed = 23, 5, 7
    g = torch.Generator().manual_seed(seed)
    expected = []
    for _ in range(2):
        perm = torch.randperm(n, generator=g)
        expected += [perm[i * B:(i + 1) * B] for i in range(n // B)]
    s = MinibatchSampler(n, B, seed=seed)
    for e in expected: assert torch.equal(next(s), e)
    g = torch.Generator().manual_seed(seed)
    s = MinibatchSampler(n, B, seed=seed, replacement=True)
    for _ in range(5): assert torch.equal(next(s), torch.randint(n, (B,), generator=g))


def test_sampler_with_replacement():
    s = MinibatchSampler(5, 5, seed=1, replacement=True)
    draws = torch.stack([next(s) for _ in range(200)])
    assert draws.min() >= 0 and draws.max() < 5
    assert any(len(set(d.tolist())) < 5 for d in draws)  # repeats happen within a batch


@pytest.mark.parametrize('replacement', [False, True])
def test_sampler_determinism(replacement):
    a = MinibatchSampler(50, 8, seed=3, replacement=replacement)
    b = MinibatchSampler(50, 8, seed=3, replacement=replacement)
    c = MinibatchSampler(50, 8, seed=4, replacement=replacement)
    sa, sb, sc = ([next(s) for _ in range(20)] for s in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(sa, sb))
    assert not all(torch.equal(x, y) for x, y in zip(sa, sc))


def test_sampler_full_batch_and_device():
    s = MinibatchSampler(7, 7, seed=0, device='cpu')
    assert s.steps_per_epoch == 1
    assert sorted(next(s).tolist()) == list(range(7)) and next(s).device == torch.device('cpu')


@pytest.mark.parametrize('n,B,needles', [(4000, 5000, ['batch_size=5000', '4000', 'at most 4000']),
                                         (10, 0, ['batch_size=0']), (10, 2.0, ['batch_size=2.0']),
                                         (10, -3, ['batch_size=-3']), (0, 1, ['n=0'])])
def test_sampler_validation(n, B, needles):
    with pytest.raises(ValueError) as e: MinibatchSampler(n, B)
    _one_line_error(e, *needles)


def test_sampler_exact_large_batch_message():
    with pytest.raises(ValueError) as e: MinibatchSampler(4000, 5000)
    assert str(e.value) == "batch_size=5000 is larger than the training set (4000 examples): use at most 4000"
