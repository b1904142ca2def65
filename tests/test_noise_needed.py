"The noise-needed claim's own pieces: the arms' configs, the explicit regulariser's wiring, the analysis's guards."
import math

import numpy as np
import pandas as pd
import pytest

from sgd_noise.claims import noise_needed as nn
from sgd_noise.core.config import validate


def test_each_arm_adds_one_ingredient_and_the_full_batch_is_the_training_set():
    p = nn.PRESETS['smoke']
    by_arm = nn.configs('smoke')
    assert list(by_arm) == list(nn.ARMS)
    n = p['base']['n_train']
    for arm, cs in by_arm.items():
        assert len(cs) == len(p['lrs'][arm]) * len(p['seeds']) == len({c.config_id for c in cs})
        assert sorted({c.lr for c in cs}) == sorted(p['lrs'][arm])
        for c in cs: validate(c, n_train=n)
    sgd, gd, long, clip, reg = (by_arm[a][0] for a in nn.ARMS)
    assert (sgd.batch_size, sgd.epochs, sgd.steps) == (32, 50, None)
    # full-batch GD for the same 50 epochs is 50 steps; the long arms ten times as many
    assert (gd.batch_size, gd.steps, gd.total_steps(n)) == (n, 50, 50)
    assert {c.steps for a in ('gd_long', 'gd_clip', 'gd_reg') for c in by_arm[a]} == {500}
    assert (long.grad_clip, clip.grad_clip, reg.grad_clip) == (None, 0.25, 0.25)
    # the explicit regulariser is SGD's own: its batch size and the pilot's SGD rate, whatever the arm's step
    assert {(c.grad_penalty, c.penalty_batch) for c in by_arm['gd_reg']} == {(p['rho'], sgd.batch_size)}
    assert all(c.grad_penalty is None for a in nn.ARMS[:-1] for c in by_arm[a])
    # every arm shares the network, the data, the schedule, and has no momentum or weight decay
    assert len({(c.model, c.n_train, c.n_test, c.schedule, c.momentum, c.weight_decay, str(c.model_kwargs))
                for cs in by_arm.values() for c in cs}) == 1
    with pytest.raises(ValueError, match='unknown preset|choose'): nn.configs('nonsense')


def test_every_preset_makes_valid_configs():
    for preset in nn.PRESETS:
        for c in nn.all_configs(preset): validate(c)
    assert all(c.dataset == 'cifar10' and c.model_kwargs == {'norm': 'none'} for c in nn.all_configs('paper'))


def _raw(arms=nn.ARMS, seeds=(0, 1, 2)):
    rows = [dict(arm=a, seed=s, lr=lr, status='ok', test_acc=0.5 + 0.01 * s - 0.01 * abs(math.log2(lr)), n_train=100,
                 history=[dict(step=0, epoch=0.0, test_acc=0.1), dict(step=1, epoch=1.0, test_acc=0.5)])
            for a in arms for s in seeds for lr in (0.5, 1.0, 2.0)]
    return pd.DataFrame(rows)


def test_analysis_reads_each_seed_at_the_rate_tuned_on_the_others_and_needs_every_arm():
    s = nn.analyse(_raw())
    assert s['seeds'] == [0, 1, 2] and s['lr'] == {a: 1.0 for a in nn.ARMS}
    np.testing.assert_allclose(s['acc']['sgd'], [0.50, 0.51, 0.52])
    assert s['grids']['gd'] == [0.5, 1.0, 2.0] and set(s['curves']) == set(nn.ARMS)
    t = nn.table(s)
    assert list(t.arm) == list(nn.ARMS) and t.gap_closed.iloc[0] == 1.0
    with pytest.raises(ValueError, match='run every arm'): nn.analyse(_raw(arms=nn.ARMS[:3]))


def test_a_diverged_rate_is_not_eligible():
    raw = _raw()
    raw.loc[(raw.arm == 'gd') & (raw.lr == 1.0) & (raw.seed == 0), ['status', 'test_acc']] = ['diverged', np.nan]
    s = nn.analyse(raw)
    assert s['lr']['gd'] != 1.0 and s['diverged'] == 1
