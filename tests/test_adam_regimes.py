"Adam in the two regimes (claims/12_adam_regimes): each check can hold and can fail, on hand-made sweeps of both arms."
import math

import numpy as np
import pandas as pd
import pytest

from sgd_noise.core.metrics import FINISHED
from sgd_noise.claims.adam_regimes import CLAIM, PRESETS, configs
from sgd_noise.claims.contract import run_checks
from sgd_noise import results_frame, TrainConfig

SEEDS = range(5)
SEED_EFFECT = np.random.default_rng(1).normal(0, 0.01, 5)   # what the two arms of one seed share (paired)
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 4000)
SGD_LRS = tuple(2.0 ** k for k in range(-5, 5))
ADAM_LRS = tuple(PRESETS['smoke']['adam_lrs'])


def _arm(acc_of_b, lr_star_of_b, lrs, optimizer):
    "One row per (B, LR, seed): accuracy V-shaped in log2 LR around the optimum, the seed's shared effect, a wobble."
    out = []
    for b in BATCHES:
        for lr in lrs:
            for s in SEEDS:
                acc = (acc_of_b(b) - 0.05 * abs(math.log2(lr / lr_star_of_b(b))) + SEED_EFFECT[s]
                       + 0.002 * math.sin(7 * s + lr + (optimizer == 'adam')))
                cfg = TrainConfig(batch_size=b, lr=lr, seed=s, epochs=20, optimizer=optimizer)
                fin = dict(train_loss=1 - acc, train_acc=acc, test_loss=1 - acc, test_acc=acc)
                out.append(dict(config=cfg.to_dict(), status='ok', final=fin, history=[], steps_done=1,
                                diverged_at=None, wall_time=0, env={}))
    return results_frame(out)


FALL = lambda b: 0.75 if b <= 128 else 0.75 - 0.1 * math.log2(b / 128)   # SGD: flat to 128, then falling
SGD = _arm(FALL, lambda b: min(b / 32, 2.0), SGD_LRS, 'sgd')
ADAM_STAR = lambda b: 2.0 ** (-8 + int(math.log2(b / 16)) // 2)   # about √B scaling, on the grid


def _verdict(adam):
    s = CLAIM.analyse(dict(sgd=SGD, adam=adam), CLAIM.margins('smoke'))
    return {c.id: c.holds for c in run_checks(CLAIM, s, 'smoke')}


def test_every_check_holds_when_adam_helps_only_past_the_transition():
    helps = lambda b: FALL(b) + (0.03 * math.log2(b / 128) if b > 128 else 0.0)
    assert all(_verdict(_arm(helps, ADAM_STAR, ADAM_LRS, 'adam')).values())


def test_checks_fail_where_the_claim_does_not_hold():
    same = _verdict(_arm(FALL, ADAM_STAR, ADAM_LRS, 'adam'))               # Adam changes nothing
    assert same['adam-equal-small'] and not same['adam-better-large'] and not same['adam-gain-grows']
    worse = _verdict(_arm(lambda b: FALL(b) - 0.03, ADAM_STAR, ADAM_LRS, 'adam'))   # 3 points below everywhere
    assert not worse['adam-equal-small'] and not worse['adam-better-large']
    edge = _verdict(_arm(FALL, lambda b: 2.0 ** -1, ADAM_LRS, 'adam'))   # the optimum lies above Adam's grid
    assert not edge['optima-inside-grid']


def test_the_arms_must_cover_the_same_batch_sizes():
    fewer = SGD[SGD.batch_size < 4000]
    with pytest.raises(ValueError, match='same batch sizes and seeds'):
        CLAIM.analyse(dict(sgd=fewer, adam=_arm(FALL, ADAM_STAR, ADAM_LRS, 'adam')), CLAIM.margins('smoke'))


def test_adam_arm_is_the_sgd_sweep_with_the_optimiser_changed():
    cs = configs('smoke')
    assert all(c.optimizer == 'adam' and c.momentum == 0 for c in cs['adam'])
    assert {(c.batch_size, c.seed) for c in cs['adam']} == {(c.batch_size, c.seed) for c in cs['sgd']}
    assert len(cs['adam']) == len({(c.batch_size, c.seed) for c in cs['sgd']}) * len(PRESETS['smoke']['adam_lrs'])
    strip = lambda c: c.replace(lr=1.0, optimizer='sgd')
    assert {strip(c).config_id for c in cs['adam']} == {strip(c).config_id for c in cs['sgd']}


def test_paper_preset_code_path_on_tiny_cifar_files(tmp_path, monkeypatch):
    "The paper preset's Adam arm (WRN-16-4, ghost batch norm, crop-flip, CIFAR-10) trains on tiny files in the real format."
    from test_claims import _write_tiny_cifar
    from sgd_noise.sweeps.group import train_group
    _write_tiny_cifar(tmp_path)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    c = configs('paper')['adam'][0]
    assert (c.optimizer, c.model, c.dataset, c.augment) == ('adam', 'wrn', 'cifar10', 'crop-flip')
    small = c.replace(n_train=32, n_test=8, batch_size=16, device='cpu', n_evals=1, epochs=1)
    res = train_group([small, small.replace(seed=1)], progress=False)
    assert all(r['status'] in FINISHED for r in res) and res[0]['final'] != res[1]['final']
