"""The three-factors claim (JKA17 on a network): the parts' configs, the tiny run end to end, every check can fail."""
import numpy as np
import pandas as pd
import pytest

from sgd_noise.core.metrics import FINISHED
from sgd_noise.claims import three_factors as tf
from sgd_noise.claims.contract import run_checks
from sgd_noise.core.config import validate


def test_the_scaling_part_keeps_eta_over_b_and_the_epoch_budget():
    p = tf.PRESETS['smoke']
    cs = tf.configs('smoke')
    for c in cs['scaling']:
        beta = c.batch_size / p['b0']
        assert any(np.isclose(c.lr, e * beta) for e in p['eta0s']) and c.epochs == p['base']['epochs']
        assert c.momentum == 0 and c.schedule == 'constant' and c.weight_decay == 0
    assert {c.label_noise for c in cs['memorise']} == {0.25} and {c.label_noise for c in cs['ratios']} == {0.0}
    for preset in tf.PRESETS:
        for c in tf.CLAIM.configs(preset): validate(c)


def test_the_tiny_run_measures_curvature_memorisation_and_curves():
    s = tf.analyse(tf.run('tiny', progress=False))
    runs = s['runs']
    assert set(runs.part) == {'scaling', 'ratios', 'memorise', 'cyclic'} and runs.status.isin(FINISHED).all()
    assert sorted(runs[runs.part == 'cyclic'].arm.unique()) == ['cyclic-b', 'cyclic-lr', 'mismatched']
    assert runs[runs.part != 'cyclic'][['top_eig', 'trace', 'stability']].notna().all().all()
    assert runs[runs.part == 'memorise'].memorised.between(0, 1).all()
    assert runs[runs.part != 'memorise'].memorised.isna().all()
    sizes = s['curves'].groupby(['part', 'arm', 'batch_size', 'lr', 'seed'], dropna=False).size()
    assert set(sizes) == {3, 2}   # n_evals + the start (cyclic: one evaluation a cycle)


def test_the_cyclic_arms_share_their_eta_over_b_path():
    a, b, m = (c for c in tf.configs('smoke')['cyclic'] if c.seed == 0)
    assert a.lr_cycle == (1, 0.25) and a.batch_cycle is None and b.batch_cycle == (32, 128) and b.lr_cycle is None
    from sgd_noise.core.config import StepPlan
    pa, pb, pm = (StepPlan(c, 4000) for c in (a, b, m))
    path = lambda c, p: [c.lr * mult / bs for _, bs, mult in p.segments]
    assert np.allclose(path(a, pa), path(b, pb)) and np.allclose(path(m, pm), 4 * np.array(path(b, pb)))
    assert pb.total < pa.total and a.n_evals == 5   # fewer steps; one evaluation at the end of each 4-epoch cycle


def _raw(good: bool, seeds=range(4)):
    rng = np.random.default_rng(0)
    rows, curves = [], []
    for s in seeds:
        e = rng.normal(0, 0.005)
        for eta0 in (0.01, 0.04):
            for beta in (1, 2, 4, 8):
                broken = beta == 8 and eta0 == 0.04
                drift = 0.05 * np.log2(beta) if not good and beta in (2, 4) else 0   # bad: they move with β, and β_max does not
                acc = (0.5 if broken and good else 0.7 - drift) + e + 0.001 * rng.random()
                ev = 3.0 * np.exp(5 * drift) * (1 + 0.01 * rng.random())
                b, lr = 16 * beta, eta0 * beta
                rows.append(dict(part='scaling', seed=s, batch_size=b, lr=lr, ratio=lr / b, status='ok', test_acc=acc,
                                 top_eig=ev, trace=30 * ev, stability=lr * ev / 2))
                for k in range(3):
                    curves.append(dict(part='scaling', seed=s, batch_size=b, lr=lr, eval=k, epoch=k * 5,
                                       test_loss=2.3 - 0.3 * k - k * drift + 0.001 * rng.random()))
        for k, eta in enumerate((0.0125, 0.025, 0.05, 0.1, 0.2)):
            sign = -1 if good else 1
            rows.append(dict(part='ratios', seed=s, batch_size=32, lr=eta, ratio=eta / 32, status='ok',
                             test_acc=0.7 - sign * 0.01 * k + e, top_eig=5.0 + sign * k + rng.random() * 0.1,
                             trace=50.0 + sign * 5 * k + rng.random()))
            rows.append(dict(part='memorise', seed=s, batch_size=32, lr=eta, ratio=eta / 32, status='ok',
                             test_acc=0.6 - sign * 0.02 * k + e, memorised=0.5 + sign * 0.1 * k + 0.01 * rng.random()))
        for arm in ('cyclic-lr', 'cyclic-b', 'mismatched'):   # bad: cyclic B drifts from cyclic LR, mismatched does not
            off = {'cyclic-lr': 0.0, 'cyclic-b': 0.0 if good else 0.3, 'mismatched': 0.3 if good else 0.0}[arm]
            rows.append(dict(part='cyclic', arm=arm, seed=s, batch_size=32, lr=0.05, ratio=0.05 / 32, status='ok',
                             train_loss=1.0 - off + 0.001 * rng.random(), test_acc=0.6))
            for k in range(6):
                curves.append(dict(part='cyclic', arm=arm, seed=s, batch_size=32, lr=0.05, eval=k, epoch=4 * k,
                                   test_loss=2.3 - 0.2 * k - off * (k > 0) + 0.001 * rng.random(),
                                   test_acc=0.1 + 0.1 * k + off * (k > 0) / 3 + 0.001 * rng.random()))
    return dict(preset='smoke', runs=pd.DataFrame(rows), curves=pd.DataFrame(curves))


@pytest.mark.parametrize('good', [True, False])
def test_every_check_can_hold_and_can_fail(good, monkeypatch):
    monkeypatch.setitem(tf.PRESETS['smoke'], 'invariant_betas', [2, 4])
    checks = run_checks(tf.CLAIM, tf.analyse(_raw(good)), 'smoke')
    held = {c.id: c.holds for c in checks}
    assert all(held.values()) if good else not any(held.values()), held


def test_a_diverged_run_counts_as_broken_not_as_a_crash():
    raw = _raw(True)
    r = raw['runs']
    big = (r.part == 'scaling') & (r.batch_size == 128) & np.isclose(r.lr, 0.32)
    r.loc[big, 'status'] = 'diverged'; r.loc[big, ['test_acc', 'top_eig', 'trace']] = np.nan
    checks = {c.id: c for c in run_checks(tf.CLAIM, tf.analyse(raw), 'smoke')}
    assert checks['breaks-at-largest'].holds and '4 diverged' in checks['breaks-at-largest'].detail
