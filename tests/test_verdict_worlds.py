"""Every check can hold and can be contradicted, at every preset that tests the claim (issue 22).

A check that cannot come out `contradicted` at some preset is a check that cannot fail there: its margin does not
fit its scale. For the sweep claims two-regimes, step-budget and epoch-budget (the others: not yet), each test builds made-up sweeps on the preset's own grid (its batch sizes,
learning rates, momenta and seeds, through the claim's `configs`), with accuracies from a world whose truth is
known, and runs the claim's own `analyse` and `checks` with the preset's declared margins: in one world every
check holds; for each check there is a world where it is contradicted. `tiny` is a plumbing preset (one seed: no
interval) and is left out.
"""
import math

import numpy as np
import pytest

from sgd_noise.analysis import results_frame
from sgd_noise.contract import get_claim, run_checks


def _frame(cfgs, acc_of, loss_of=lambda c, a: 0.1):
    "A sweep's results frame from configs and a made-up final accuracy for each (`acc_of(config)`)."
    out = []
    for c in cfgs:
        a = float(acc_of(c))
        fin = dict(train_loss=loss_of(c, a), train_acc=a, test_loss=loss_of(c, a), test_acc=a)
        out.append(dict(config=c.to_dict(), status='ok', final=fin, history=[], steps_done=1, diverged_at=None,
                        wall_time=0.0, env={}))
    return results_frame(out)


def _noise(*key, sd=0.002):
    "A reproducible normal draw per key (so that a config's made-up number does not depend on the others)."
    return sd * np.random.default_rng(abs(hash(key)) % 2 ** 32).standard_normal()


def _two_regimes_world(preset, *, flat_until=2, fall=0.05, lr_before=1.0, lr_after=0.0, stop_at=None,
                       mom_small=0.0, mom_large=0.03, edge=False):
    """Made-up two-regimes sweep: accuracy flat for the batch sizes up to index `flat_until` and falling by `fall`
    per doubling after it; log2 of the optimal effective LR growing with slope `lr_before` up to `stop_at` (default
    `flat_until`) and `lr_after` after it; momentum `mom_small` / `mom_large` better than plain SGD inside / past the
    regime; with `edge`, the largest batch size's optimum sits on the top of the grid."""
    claim = get_claim('two-regimes')
    p = claim.preset(preset)
    bs, lrs = p['batch_sizes'], p['eff_lrs']
    stop = flat_until if stop_at is None else stop_at
    x = np.log2(np.array(bs, float)) - math.log2(bs[0])
    x_stop = x[stop]
    lo = math.log2(lrs[0]) + 1.5
    def opt(b):
        j = bs.index(b)
        v = lo + lr_before * min(x[j], x_stop) + lr_after * max(x[j] - x_stop, 0)
        return math.log2(lrs[-1]) if edge and j == len(bs) - 1 else v
    def acc(c):
        m, b, j = c.momentum, c.batch_size, bs.index(c.batch_size)
        eff = c.lr / (1 - m)
        base = 0.8 - fall * max(x[j] - x[flat_until], 0) + 0.01 * math.sin(3 * c.seed)
        gain = (mom_small if j <= flat_until else mom_large) if m > 0 else 0.0
        return base + gain - 0.02 * (math.log2(eff) - opt(b)) ** 2 + _noise(c.seed, b, round(eff, 9), m)
    df = _frame(claim.configs(preset), acc)
    return {c.id: c.outcome for c in run_checks(claim, claim.analyse(df, claim.margins(preset)), preset)}


TWO_REGIMES_CONTRADICTED = {
    'flat-small-batch': dict(flat_until=0),                    # accuracy falls from the smallest batch size on
    'lr-grows-linearly': dict(lr_before=0.0),                  # the optimal LR does not grow in the regime
    'lr-stops-growing': dict(lr_before=0.75, lr_after=0.75),   # it keeps growing past the transition
    'acc-falls-large-batch': dict(fall=0.0),                   # no fall at all
    'optima-inside-grid': dict(edge=True),                     # an optimum on the grid's edge
    'momentum-equal-small': dict(mom_small=-0.05),             # momentum 5 points worse in the noise regime
    'momentum-better-large': dict(mom_large=0.0),              # momentum no better past the transition
}


def _hold_and_contradict(world, contradicting: dict, preset: str):
    "In `world(preset)` every check holds; in `world(preset, **contradicting[id])`, check `id` is contradicted."
    held = world(preset)
    assert set(held.values()) == {'holds'}, held
    assert set(contradicting) == set(held)   # a contradicting world for every check
    for id, kw in contradicting.items():
        got = world(preset, **kw)
        assert got[id] == 'contradicted', (preset, id, got)


@pytest.mark.parametrize('preset', ['smoke', 'gpu', 'paper'])
def test_two_regimes_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_two_regimes_world, TWO_REGIMES_CONTRADICTED, preset)


def _budget_world(name, preset, group, acc_at, loss_at, opt_acc, opt_loss, keep=None):
    """Made-up step- or epoch-budget sweep on the preset's grid: at each value g of `group` (batch size or epochs),
    test accuracy `acc_at(g)` at the optimum `opt_acc(g)` (log2 of the effective LR) and falling quadratically away
    from it, training loss `loss_at(g)` at the optimum `opt_loss(g)` and rising away from it; `keep` drops values."""
    claim = get_claim(name)
    cfgs = [c for c in claim.configs(preset) if keep is None or keep(getattr(c, group))]
    def acc(c):
        g, e = getattr(c, group), math.log2(c.lr / (1 - c.momentum))
        return (acc_at(g) + 0.01 * math.sin(3 * c.seed) - 0.02 * (e - opt_acc(g)) ** 2
                + _noise(c.seed, g, round(e, 9)))
    def loss(c, a):
        g, e = getattr(c, group), math.log2(c.lr / (1 - c.momentum))
        return loss_at(g) * 2 ** (0.3 * (e - opt_loss(g)) ** 2 + _noise(c.seed, g, round(e, 9), 'l', sd=0.02))
    df = _frame(cfgs, acc, loss)
    return {c.id: c.outcome for c in run_checks(claim, claim.analyse(df, claim.margins(preset)), preset)}


def _step_world(preset, *, fall=0.05, loss_slope=-0.3, lr_slope=0.5, edge=False):
    "Accuracy flat but `fall` lower at the largest B; loss ∝ B^loss_slope; the accuracy-optimal LR ∝ B^lr_slope."
    bs = get_claim('step-budget').preset(preset)['axes']['batch_size']
    lrs = get_claim('step-budget').preset(preset)['axes']['lr']
    lo, hi = math.log2(lrs[0] / 0.1), math.log2(lrs[-1] / 0.1)        # effective LRs: momentum 0.9
    x = lambda b: math.log2(b / bs[0])
    mid = (lo + hi) / 2 + 0.3   # the optima centred on the grid (off its points, so that no two tie)
    opt = lambda b: hi if edge and b == bs[-1] else mid + lr_slope * (x(b) - x(bs[-1]) / 2)
    return _budget_world('step-budget', preset, 'batch_size', lambda b: 0.8 - (fall if b == bs[-1] else 0.0),
                         lambda b: 0.1 * 2 ** (loss_slope * x(b)), opt, lambda b: lo + 1 + 0.5 * x(b))


STEP_CONTRADICTED = {
    'acc-falls-at-largest': dict(fall=0.0),              # the largest batch size is as accurate as the rest
    'loss-lower-at-largest': dict(loss_slope=0.3),       # a larger batch reaches a higher training loss
    'lr-sublinear': dict(lr_slope=-0.3),                 # the optimal LR falls as B grows
    'optima-inside-grid': dict(edge=True),
}


@pytest.mark.parametrize('preset', ['smoke', 'gpu', 'paper'])
def test_step_budget_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_step_world, STEP_CONTRADICTED, preset)


def _epoch_world(preset, *, loss_fall=0.6, acc_fall=0.1, acc=lambda e: 0.9 - 0.3 / e, edge=False, keep=None):
    "log2 of the loss-optimal LR falls by `loss_fall` per doubling of the budget, the accuracy-optimal by `acc_fall`."
    lrs = get_claim('epoch-budget').preset(preset)['axes']['lr']
    eps = get_claim('epoch-budget').preset(preset)['axes']['epochs']
    top = math.log2(lrs[-1] / 0.1)
    x = lambda e: math.log2(e / eps[0])
    opt_a = lambda e: top if edge and e == eps[-1] else top - 2 - acc_fall * x(e)
    return _budget_world('epoch-budget', preset, 'epochs', acc, lambda e: 0.5 / e, opt_a,
                         lambda e: top - 1.5 - loss_fall * x(e), keep=keep)


EPOCH_CONTRADICTED = {
    'budgets-span': dict(keep=lambda e: e <= 2),                # a made-up run with only the budgets 1 and 2
    'loss-lr-falls': dict(loss_fall=0.2),                       # the loss-optimal LR falls only 2x over 32x
    'acc-lr-falls-less': dict(acc_fall=0.8),                    # the test-optimal LR falls more than the other
    'acc-lr-nearly-constant': dict(loss_fall=0.8, acc_fall=0.6),  # the test-optimal LR falls 8x
    'acc-rises': dict(acc=lambda e: 0.8),                       # more epochs buy nothing
    'acc-saturates': dict(acc=lambda e: 0.5 + 0.1 * math.log2(e)),  # still rising 10 points per doubling
    'optima-inside-grid': dict(edge=True),
}


@pytest.mark.parametrize('preset', ['smoke', 'gpu', 'paper'])
def test_epoch_budget_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_epoch_world, EPOCH_CONTRADICTED, preset)
