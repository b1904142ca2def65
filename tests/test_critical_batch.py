"The critical-batch claim's own pieces: learning-rate windows, budgets, arms, B_simple at the target, the transition."
import math

import numpy as np
import pandas as pd
import pytest

from sgd_noise.claims import critical_batch as cb


def test_windows_scale_linearly_then_cap_and_budgets_cover_the_pilot():
    arm = cb.PRESETS['smoke']['arms']['main']
    assert cb.lr_window(arm, 16, [0.5, 1, 2]) == [0.125, 0.25, 0.5]        # η_c = 0.25 at B = 16
    assert cb.lr_window(arm, 64, [1]) == [1.0]                              # ∝ B ...
    assert cb.lr_window(arm, 512, [1]) == [2.0]                             # ... capped at lr_max
    # the budget is `factor` times the pilot's S(B) = E/B + S, rounded up
    assert cb.budget(arm, 16, 2.0) == math.ceil(2.0 * (48000 / 16 + 280))


def test_every_arm_has_its_own_grid_and_no_batch_above_its_data():
    p = cb.PRESETS['smoke']
    by_arm = cb.configs('smoke')
    assert set(by_arm) == {'main', 'data', 'width'}
    assert sorted({c.batch_size for c in by_arm['width']})[-1] == 1024     # the width arm's B_crit is the largest
    assert sorted({c.batch_size for c in by_arm['main']})[-1] == 512
    for name, cs in by_arm.items():
        arm = p['arms'][name]
        assert all(c.batch_size <= c.n_train == arm['n_train'] for c in cs)
        assert {c.model_kwargs['hidden'] for c in cs} == {tuple(arm['hidden'])}
        assert len(cs) == len(cb.arm_batch_sizes(p, name)) * len(p['lr_window']) * len(p['seeds'])
    # the tiny preset's data arm (256 examples) drops its batch sizes above 256
    assert max(c.batch_size for c in cb.configs('tiny')['data']) <= 256
    with pytest.raises(ValueError, match='unknown preset|choose'): cb.configs('nonsense')


def test_b_simple_at_the_target_interpolates_log_log():
    hist = pd.DataFrame(dict(train_loss=[2.0, 0.4, 0.1], B_simple=[100.0, 200.0, 800.0]))
    # loss 0.2 is halfway between 0.4 and 0.1 in log loss: B_simple halfway between 200 and 800 in log, i.e. 400
    assert cb.b_simple_at(hist, 0.2) == pytest.approx(400.0)
    assert math.isnan(cb.b_simple_at(hist, 0.05))                             # never reached
    assert math.isnan(cb.b_simple_at(hist, 3.0))                              # reached at the start: no bracket
    bad = hist.assign(B_simple=[100.0, float('nan'), 800.0])
    assert math.isnan(cb.b_simple_at(bad, 0.2))                               # not measurable there


def test_the_transition_is_read_not_retrained():
    # no committed tiny run of the two-regimes claim: nothing to read, and nothing trains
    assert math.isnan(cb.two_regimes_transition('tiny'))
    # the committed smoke sweep puts its transition on the smallest batch size: not located, so not shown
    assert math.isnan(cb.two_regimes_transition('smoke'))
