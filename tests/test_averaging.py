"""The averaging claims: averaged SGD (NKMW23: the toy against the closed-form smoothed loss, the MLP arms) and SWA
(SWA18: the batch-norm statistics three ways); every check can fail; the paper presets start on tiny CIFAR files."""
import numpy as np
import pandas as pd
import pytest
import torch

from sgd_noise.core.metrics import FINISHED
from sgd_noise.claims import averaging as av, sharp_flat_trend as sft, swa, three_factors as tf
from sgd_noise.claims.smoothed_toy import basin_edge, smoothed_loss, toy_grad
from sgd_noise.claims.contract import run_checks
from sgd_noise import TrainConfig, get_data, train


def _closed_form(y, s, t=av.TOY):
    "The toy convolved with N(0, s²) exactly: a parabola gains λs²/2, the Gaussian well widens to √(w² + s²)."
    a, w, h, lam = t['sharp_at'], t['sharp_width'], t['sharp_depth'], t['curvature']
    return 0.5 * lam * (y ** 2 + s ** 2) - h * w / np.sqrt(w ** 2 + s ** 2) * np.exp(-(y - a) ** 2 / (2 * (w ** 2 + s ** 2)))


@pytest.mark.parametrize('s', [0.0, 0.01, 0.2, 1.0, 2.0])
def test_the_numerically_smoothed_toy_matches_its_closed_form(s):
    y = np.linspace(-3, 4, 301)
    assert np.max(np.abs(smoothed_loss(y, s) - _closed_form(y, s))) < 1e-6


def test_smoothing_moves_the_global_minimum_to_the_flat_basin():
    for s, global_is_sharp in [(0.01, True), (1.0, False)]:
        assert (smoothed_loss(2.0, s)[0] < smoothed_loss(0.0, s)[0]) == global_is_sharp
    assert 1.5 < basin_edge() < 1.9 and abs(toy_grad(basin_edge())) < 1e-9
    assert av.smoothed_minimiser(0.01) == pytest.approx(0.0, abs=1e-6)
    assert 0.05 < av.smoothed_minimiser(1.0) < 0.15


def test_the_chains_follow_the_quadratic_theory_in_the_flat_basin():
    """At a small step near the flat minimum f is a quadratic: sd of the iterates √(ησ²/(λ(2 − ηλ))), and of their
    average over n steps about σ/(λ√n), whatever the step."""
    last, avg = av.toy_chains(0.02, 0.0, chains=4000, steps=1000, seed=1)
    assert np.std(last) == pytest.approx(np.sqrt(0.02 * 4 / 1.98), rel=0.05)
    assert np.std(avg) == pytest.approx(2 / np.sqrt(500), rel=0.1)


def _toy_raw(good: bool, n=400, seed=0):
    "Hand-made chains: where the averaging claim holds (good), and where every part of it fails."
    rng = np.random.default_rng(seed)
    v = av.smoothed_minimiser(av.ETAS[-1] * av.TOY['noise'])
    out = {}
    for eta in av.ETAS:
        for start, x0 in (('sharp', 2.0), ('flat', 0.0)):
            noise = rng.standard_normal(n)
            if eta == av.ETAS[0]:
                home = x0 if good else 2.0 - x0                      # bad: the chains crossed to the other basin
                last = home + (0.05 if good else 1.0) * noise         # bad: the last iterate is as wide as at the top
                avg = home + 0.03 * rng.standard_normal(n)
            else:
                last = v + 0.1 * np.sqrt(eta / av.ETAS[0]) * noise
                if eta == av.ETAS[-1] and start == 'sharp': last[: n // 5] = 2.0   # some sit in the sharp well
                avg = v + 0.03 * rng.standard_normal(n) if good else last + (0.3 if start == 'flat' else 0.0)
            out[eta, start] = (last, avg)
    return out


def _net_raw(good: bool, seeds=range(5)):
    rows = []
    rng = np.random.default_rng(0)
    for s in seeds:
        e = rng.normal(0, 0.02)
        base = dict(last=(1.5 + 0.3 * rng.random(), 1.0), average=(1.0 + e, 0.7), small=(1.2 + e, 6.0))
        if not good: base['average'], base['small'] = (base['last'][0] + 0.1, 1.3), (0.9, 0.5)
        for arm, (tl, ev) in base.items():
            j = 1 + 0.02 * rng.random()   # each arm's own measurement noise
            rows.append(dict(seed=s, arm=arm, lr=1.0, status='ok', test_loss=tl, test_acc=0.5, top_eig=ev * j,
                             trace=30 * ev * j))
    df = pd.DataFrame(rows)
    if good:   # the average's spread over seeds is far smaller
        df.loc[df.arm == 'last', 'test_loss'] = 1.5 + np.array([0.0, 0.4, -0.4, 0.3, -0.3])
        df.loc[df.arm == 'average', 'test_loss'] = 1.0 + np.array([0.0, 0.01, -0.01, 0.005, -0.005])
    return df


@pytest.mark.parametrize('good', [True, False])
def test_every_averaged_sgd_check_can_hold_and_can_fail(good):
    s = av.analyse(dict(toy=_toy_raw(good), net=_net_raw(good)))
    checks = run_checks(av.CLAIM, s, 'smoke')
    held = {c.id: c.holds for c in checks}
    assert all(held.values()) if good else not any(held.values()), held


def test_the_averaged_sgd_tiny_run_measures_every_arm():
    raw = av.run('tiny', progress=False)
    net = raw['net']
    assert sorted(net.arm.unique()) == ['average', 'last', 'small'] and (net.status == 'ok').all()
    assert net[['top_eig', 'trace', 'stability']].notna().all().all()
    last = net[net.arm == 'last'].set_index('seed'); avg = net[net.arm == 'average'].set_index('seed')
    assert (last.test_loss != avg.test_loss).all(), 'the average is evaluated, not the last iterate twice'


def test_the_averaged_run_is_swa_of_every_step_of_the_second_half():
    c = av.configs('tiny')
    assert [x.swa_start for x in c[:2]] == [0.5, None] and c[0].swa_every == 1 and c[0].swa_lr is None
    assert {x.schedule for x in c} == {'constant'} and c[0].lr > c[1].lr


# ----------------------------------------------------------------------------------------------------------- SWA

def _bn_model():
    cfg = TrainConfig(dataset='mnist1d', model='cnn', model_kwargs={'channels': 8, 'norm': 'bn'}, n_train=256,
                      n_test=64, batch_size=32, epochs=1, n_evals=1, lr=0.05)
    return train(cfg, progress=False).model, get_data(cfg)


def test_the_batch_norm_statistics_three_ways():
    m, data = _bn_model()
    bns = lambda net: [x for x in net.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]
    carried = swa.with_bn_stats(m, data, 32, 'carried')
    init = swa.with_bn_stats(m, data, 32, 'initial')
    upd = swa.with_bn_stats(m, data, 32, 'update_bn')
    assert all(torch.equal(a.running_mean, b.running_mean) for a, b in zip(bns(m), bns(carried)))
    assert all(float(b.running_mean.abs().max()) == 0 and torch.all(b.running_var == 1) for b in bns(init))
    # update_bn: the plain mean and variance of the first layer's pre-activations over the whole training set
    with torch.no_grad(): z = m.features[0](data.x_train.unsqueeze(1))   # [N, 1, L]: the conv net's one channel
    assert torch.allclose(bns(upd)[0].running_mean, z.mean((0, 2)), atol=1e-5)
    with pytest.raises(ValueError, match='how'): swa.with_bn_stats(m, data, 32, 'average')
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), upd.parameters())), 'only statistics change'


def _swa_runs(good: bool):
    rows = []
    for s in range(5):
        acc = 0.95 + 0.005 * s
        d = 0.004 if good else -0.02
        rows += [dict(seed=s, arm='sgd', status='ok', test_acc=acc, test_loss=0.1, trace=90 + s, rise=1.0 + 0.1 * s),
                 dict(seed=s, arm='swa', status='ok', test_acc=acc + d + 0.001 * (s % 2), test_loss=0.09,
                      trace=(80 if good else 100) + s + 0.3 * (s % 2), rise=(0.8 if good else 1.2) + 0.1 * s + 0.01 * (s % 2)),
                 dict(seed=s, arm='swa-no-update-bn', status='ok', test_acc=(0.4 if good else acc + d) + 0.01 * s,
                      test_loss=1.5),
                 dict(seed=s, arm='swa-stale-bn', status='ok', test_acc=acc, test_loss=0.1)]
    return dict(runs=pd.DataFrame(rows), line=None)


@pytest.mark.parametrize('good', [True, False])
def test_every_swa_check_can_hold_and_can_fail(good):
    checks = run_checks(swa.CLAIM, swa.analyse(_swa_runs(good)), 'smoke')
    held = {c.id: c.holds for c in checks}
    assert all(held.values()) if good else not any(held.values()), held


def test_the_swa_arms_differ_only_in_the_swa_phase():
    sgd, s = swa.configs('smoke')[:2]
    assert s == sgd.replace(swa_start=0.75, swa_lr=0.025, swa_update_bn=False) and sgd.schedule == 'swa18'


def _write_tiny_cifar(root, n=8):
    "CIFAR-10 and CIFAR-100 in their real on-disk layouts, with n images in each file."
    import pickle
    rng = np.random.default_rng(0)
    c10, c100 = root / 'cifar-10-batches-py', root / 'cifar-100-python'
    c10.mkdir(parents=True); c100.mkdir(parents=True)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(c10 / name, 'wb') as f:
            pickle.dump({'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         'labels': list(rng.integers(0, 10, n))}, f)
    for name, k in (('train', 5 * n), ('test', n)):
        with open(c100 / name, 'wb') as f:
            pickle.dump({'data': rng.integers(0, 256, (k, 3072), dtype=np.uint8),
                         'fine_labels': list(rng.integers(0, 100, k)), 'coarse_labels': [0] * k}, f)


PAPER = [(av, 'paper', 'cifar10', 'wrn'), (swa, 'paper', 'cifar100', 'wrn'), (swa, 'paper-vgg16', 'cifar100', 'vgg'),
         (tf, 'paper', 'cifar10', 'resnet'), (tf, 'paper-vgg11', 'cifar10', 'vgg'), (sft, 'paper', 'cifar10', 'c1')]


@pytest.mark.parametrize('mod, preset, dataset, model', PAPER, ids=[f'{m.CLAIM.name}-{p}' for m, p, _, _ in PAPER])
def test_the_paper_presets_start_on_tiny_cifar_files(mod, preset, dataset, model, tmp_path, monkeypatch):
    "The paper presets' code path (CIFAR-10/100 files, the paper's network, augmentation, the averaging) on tiny files."
    _write_tiny_cifar(tmp_path)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    cfgs = mod.CLAIM.configs(preset)
    assert {(c.dataset, c.model) for c in cfgs} == {(dataset, model)}
    for cfg in cfgs[:2]:
        small = cfg.replace(n_train=32, n_test=8, batch_size=16, epochs=2, device='cpu', n_evals=1)
        r = train(small, progress=False)
        assert r.status in FINISHED
        assert (r.history[-1].get('model_kind') == 'swa') == (cfg.swa_start is not None)
