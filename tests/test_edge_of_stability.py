"The edge-of-stability claim's checks hold on runs made to agree with it and fail on runs made to contradict it."
import numpy as np
import pandas as pd
import pytest

from sgd_noise.claims import get_claim
from sgd_noise.claims.contract import run_checks

CLAIM = get_claim('edge-of-stability')
P = CLAIM.preset('smoke')


def _raw(edge_gd=1.0, bs_edge=1.0, spike=1.3, edge_sgd=(0.55, 0.8), rng=np.random.default_rng(0)):
    "Hand-made runs of the smoke preset's design: λ_max rises from λ₀ to the given fraction of 2/η."
    steps, every = P['base']['steps'], P['every']
    runs, curv, losses = [], [], []
    def add(arm, lr, b, seed, target, bs=None, spike_to=None, oscillate=True):
        lam0 = 6.0 + 0.2 * seed + rng.normal(0, 0.05)
        t = np.arange(0, steps + 1, every)
        lam = target * 2 / lr + (lam0 - target * 2 / lr) * np.exp(-t / 100) + rng.normal(0, 0.02, len(t))
        bsv = np.full(len(t), np.nan) if bs is None else bs * 2 / lr + rng.normal(0, 0.02, len(t))
        key = dict(arm=arm, lr=lr, batch_size=b, full_batch=b == 1000, seed=seed)
        curv.append(pd.DataFrame(dict(step=t, loss=0.5 * np.exp(-t / 300), accuracy=0.9, lambda_max=lam,
                                      residual=1e-4, batch_sharpness=bsv)).assign(**key))
        s = np.arange(steps)
        loss = 0.5 * np.exp(-s / 300) * (1 + (0.1 * (s % 2) if oscillate else 0)) * (1 + rng.normal(0, 1e-3))
        if spike_to: loss[1:20] = loss[0] * spike_to * (1 + rng.normal(0, 0.01))
        losses.append(pd.DataFrame(dict(step=s, loss=loss)).assign(**key))
        runs.append(dict(key, status='ok', lambda_0=lam[0], seconds=1.0, steps=steps))
    for seed in P['seeds']:
        for lr in P['gd_lrs']:
            ctl = lr == P['control_lr']
            add('gd', lr, 1000, seed, 0.75 if ctl else edge_gd, oscillate=not ctl)
        for b, e in zip(P['sgd_batch_sizes'], edge_sgd): add('sgd', P['sgd_lr'], b, seed, e, bs=bs_edge)
        add('catapult', P['catapult_lr'], 1000, seed, 0.95, spike_to=spike, oscillate=False)
    return dict(preset='smoke', runs=pd.DataFrame(runs), curvature=pd.concat(curv, ignore_index=True),
                losses=pd.concat(losses, ignore_index=True), steps=P['base']['steps'])


def _outcomes(raw):
    return {c.id: c.outcome for c in run_checks(CLAIM, CLAIM.analyse(raw, CLAIM.margins('smoke')), 'smoke')}


def test_checks_hold_on_runs_at_the_edge():
    got = _outcomes(_raw())
    assert {k: v for k, v in got.items() if v != 'holds'} == {'gd-at-edge-small-lr': 'contradicted'}, got


def test_checks_fail_on_runs_that_contradict_the_claim():
    got = _outcomes(_raw(edge_gd=0.6, bs_edge=0.4, spike=0.98, edge_sgd=(0.8, 0.55)))
    for k in ('gd-at-edge', 'batch-sharpness-at-edge', 'catapult-spike', 'sgd-sharper-larger-batch'):
        assert got[k] == 'contradicted', (k, got)
    assert _outcomes(_raw(edge_sgd=(0.97, 0.99)))['sgd-below-edge'] == 'contradicted'


def test_catapult_outside_its_range_is_not_testable():
    raw = _raw()
    cat = raw['curvature'].arm == 'catapult'
    raw['curvature'].loc[cat & (raw['curvature'].step == 0), 'lambda_max'] = 1.0   # η·λ₀/2 = 0.35 < 1
    assert _outcomes(raw)['catapult-spike'] == 'not testable'
