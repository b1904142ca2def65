"""Every check can hold and can be contradicted, at every preset that tests the claim (issue 22).

A check that cannot come out `contradicted` at some preset is a check that cannot fail there: its margin does not
fit its scale. For every registered claim, each test builds a made-up world whose truth is known, on the preset's own
grid, seeds and sizes, and runs the claim's own `analyse` (where it can) and `checks` with the preset's declared
margins: in one world every check holds; for each check there is a world where it is contradicted. Two levels:

* frame: a made-up results frame (or table of runs) from the claim's `configs(preset)`, through its own `analyse`
  (two-regimes, step-budget, epoch-budget, adam-regimes, three-factors, sharp-flat-trend);
* raw: the made-up raw output that `analyse` reads where training returns more than a frame (trajectories,
  measurements of models, simulated chains), through its own `analyse` (noise-scale, sharp-flat, sde-quadratic,
  averaged-sgd, swa). No claim needs a made-up summary: each `analyse` reads only what can be made up.

Each world's docstring says what it fakes. One departure from a preset's sizes: averaged-sgd's toy gets at most
`TOY_CHAINS` chains per setting (its jackknife costs O(n²); see `_averaged_world`). `tiny` (any preset in
`contract.PLUMBING_PRESETS`) is a plumbing preset, far too small to test a claim (one or two seeds), and is left
out. A check that a preset's design fixes (swa at paper-vgg16: a network without batch norm, where `update_bn` has
nothing to do, so the check is not testable) is asserted to come out as the design says, in every world.
"""
import math
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest

from sgd_noise.claims import (adam_regimes as ar, critical_batch as cb, noise_needed as nn, sde_quadratic as sdeq, sharp_flat as sf, sharp_flat_trend as sft,
                              three_factors as tf)
from sgd_noise import results_frame
from sgd_noise.claims.contract import PLUMBING_PRESETS, run_checks
from sgd_noise.claims import claims, get_claim
from sgd_noise.claims.sharp_measure import sharpness_key
from sgd_noise.claims.smoothed_toy import ETAS, TOY, smoothed_minimiser


def _presets(name):
    "The presets of claim `name` that test it (every one but the plumbing ones)."
    return [p for p in get_claim(name).presets if p not in PLUMBING_PRESETS]


def _verdict(name, summary, preset):
    "{check id: outcome} of claim `name` on `summary`, with `preset`'s declared margins."
    return {c.id: c.outcome for c in run_checks(get_claim(name), summary, preset)}


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
    """A reproducible normal draw per key (so that a config's made-up number does not depend on the others); the key's
    `repr` is hashed with CRC-32, so that the draw is the same in every process (`hash` of a str is salted)."""
    return sd * np.random.default_rng(zlib.crc32(repr(key).encode())).standard_normal()


def _hold_and_contradict(world, contradicting: dict, preset: str, fixed: dict | None = None):
    """In `world(preset)` every check holds; in `world(preset, **contradicting[id])`, check `id` is contradicted.
    `fixed`: {id: outcome} for a check whose outcome the preset's design fixes (the reason is given where it is
    passed): it comes out so in every world, and has no contradicting world of its own."""
    fixed = fixed or {}
    held = world(preset)
    assert held == {id: fixed.get(id, 'holds') for id in held}, held
    assert set(contradicting) == set(held) - set(fixed)   # a contradicting world for every other check
    for id, kw in contradicting.items():
        got = world(preset, **kw)
        assert got[id] == 'contradicted', (preset, id, got)
        assert all(got[k] == o for k, o in fixed.items()), (preset, id, got)


def _two_regimes_acc(preset, *, flat_until=2, fall=0.05, lr_before=1.0, lr_after=0.0, stop_at=None,
                     mom_small=0.0, mom_large=0.03, edge=False):
    """Made-up two-regimes accuracy of a config: flat for the batch sizes up to index `flat_until` and falling by
    `fall` per doubling after it; log2 of the optimal effective LR growing with slope `lr_before` up to `stop_at`
    (default `flat_until`) and `lr_after` after it; momentum `mom_small` / `mom_large` better than plain SGD inside /
    past the regime; with `edge`, the largest batch size's optimum sits on the top of the grid."""
    p = get_claim('two-regimes').preset(preset)
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
    return acc


def _two_regimes_summary(preset, **kw):
    "The two-regimes summary of a made-up sweep on the preset's grid (`_two_regimes_acc`), from its own `analyse`."
    claim = get_claim('two-regimes')
    return claim.analyse(_frame(claim.configs(preset), _two_regimes_acc(preset, **kw)), claim.margins(preset))


def _two_regimes_world(preset, **kw):
    "Frame level: the made-up two-regimes sweep (`_two_regimes_acc`) through `analyse`."
    return _verdict('two-regimes', _two_regimes_summary(preset, **kw), preset)


TWO_REGIMES_CONTRADICTED = {
    'flat-small-batch': dict(flat_until=0),                    # accuracy falls from the smallest batch size on
    'lr-grows-linearly': dict(lr_before=0.0),                  # the optimal LR does not grow in the regime
    'lr-stops-growing': dict(lr_before=0.75, lr_after=0.75),   # it keeps growing past the transition
    'acc-falls-large-batch': dict(fall=0.0),                   # no fall at all
    'optima-inside-grid': dict(edge=True),                     # an optimum on the grid's edge
    'momentum-equal-small': dict(mom_small=-0.05),             # momentum 5 points worse in the noise regime
    'momentum-better-large': dict(mom_large=0.0),              # momentum no better past the transition
}


@pytest.mark.parametrize('preset', _presets('two-regimes'))
def test_two_regimes_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_two_regimes_world, TWO_REGIMES_CONTRADICTED, preset)


def _budget_world(name, preset, group, acc_at, loss_at, opt_acc, opt_loss, keep=None):
    """Frame level: a made-up step- or epoch-budget sweep on the preset's grid through `analyse`: at each value g of
    `group` (batch size or epochs), test accuracy `acc_at(g)` at the optimum `opt_acc(g)` (log2 of the effective LR)
    and falling quadratically away from it, training loss `loss_at(g)` at the optimum `opt_loss(g)` and rising away
    from it; `keep` drops values."""
    claim = get_claim(name)
    cfgs = [c for c in claim.configs(preset) if keep is None or keep(getattr(c, group))]
    def acc(c):
        g, e = getattr(c, group), math.log2(c.lr / (1 - c.momentum))
        return (acc_at(g) + 0.01 * math.sin(3 * c.seed) - 0.02 * (e - opt_acc(g)) ** 2
                + _noise(c.seed, g, round(e, 9)))
    def loss(c, a):
        g, e = getattr(c, group), math.log2(c.lr / (1 - c.momentum))
        return loss_at(g) * 2 ** (0.3 * (e - opt_loss(g)) ** 2 + _noise(c.seed, g, round(e, 9), 'l', sd=0.02))
    return _verdict(name, claim.analyse(_frame(cfgs, acc, loss), claim.margins(preset)), preset)


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


@pytest.mark.parametrize('preset', _presets('step-budget'))
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


@pytest.mark.parametrize('preset', _presets('epoch-budget'))
def test_epoch_budget_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_epoch_world, EPOCH_CONTRADICTED, preset)


def _noise_scale_world(preset, *, level=1.0, growth=8.0):
    """Raw level: what `analyse` reads from `run`: the two-regimes summary of the made-up sweep above (from its own
    `analyse`: the transition at the 3rd batch size), the tracked config (plain SGD at the smallest batch size and its
    tuned LR) and B_simple along the tracked runs (the preset's seeds and evaluations): `level` × the transition at
    the first evaluation after step 0, growing `growth`-fold to the last; the LR constant over the first half of the
    evaluations, then a tenth of it."""
    claim = get_claim('noise-scale')
    p, reg = claim.preset(preset), _two_regimes_summary(preset)
    n, t = p['n_evals'], reg['transition']
    cfg = get_claim('two-regimes').configs(preset)[0].replace(
        batch_size=int(reg['batch_sizes'][0]), lr=float(reg['by_momentum'][0.0]['lr'][0]), momentum=0.0, n_evals=n)
    rows = []
    for sd in p['seeds']:
        for k in range(n + 1):
            b = (level * t * growth ** ((k - 1) / (n - 1)) if k else 3.0) * math.exp(_noise(sd, k, sd=0.05))
            rows.append(dict(step=100 * k, epoch=cfg.epochs * k / n, lr=cfg.lr if k <= n // 2 else cfg.lr / 10,
                             train_loss=1.0 / (k + 1), test_acc=0.8, G2=1.0 / b, trS=1.0, B_simple=b,
                             B_simple_se=0.1 * b, seed=sd))
    raw = dict(regimes=reg, history=pd.DataFrame(rows), config=cfg)
    return _verdict('noise-scale', claim.analyse(raw, claim.margins(preset)), preset)


NOISE_SCALE_CONTRADICTED = {
    'b-simple-grows': dict(growth=1.0),                 # B_simple stays where it started
    'b-simple-predicts-transition': dict(level=8.0),    # over the constant-LR phase it sits 8-16x above the transition
}


@pytest.mark.parametrize('preset', _presets('noise-scale'))
def test_noise_scale_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_noise_scale_world, NOISE_SCALE_CONTRADICTED, preset)


def _sharp_flat_world(preset, *, loss=0.0, fit=0.0, gap=0.05, eig=0.5, eps=0.5, sub=0.5, line=5.0, flat=0.5,
                      lr_gap=0.0):
    """Raw level: what `analyse` reads from `run`, per network of the preset: one row per regime and seed (the
    preset's) with `measure`'s measurements under their own column names, the rises on the SB→LB line per seed, and
    the curvature sample's size (no models, no 2-D slices: no check reads them). LB against SB: log10 training loss
    `loss` higher, training accuracy `fit` lower, test accuracy `gap` lower, log10 λ_max, ε-sharpness (full space) and
    ε-sharpness (subspace) `eig`, `eps`, `sub` higher, the rise past LB `line` times the rise past SB; LB-5xLR: log10
    λ_max `flat` below SB's, test accuracy `lr_gap` below SB's. The same change in every network."""
    claim = get_claim('sharp-flat')
    p = claim.preset(preset)
    meas = p['measure']
    spaces, nets = {None: (5, eps), meas['subspace_dim']: (2, sub)}, {}   # ε-sharpness: SB's value, LB's log10 lift
    for net, regs in sf.configs(preset).items():
        rows = []
        for reg, cfgs in regs.items():
            lb, fast = reg == 'LB', reg == 'LB-5xLR'
            for c in cfgs:
                z = lambda *k, sd=0.01: _noise(net, reg, c.seed, *k, sd=sd)
                top = 10 ** (1 + eig * lb - flat * fast + z('eig'))
                sharp = {sharpness_key(e, d): v * 10 ** (up * lb + z(e, d))
                         for e in meas['eps'] for d, (v, up) in spaces.items()}
                rows.append(dict(network=net, regime=reg, seed=c.seed, batch_size=c.batch_size, lr=c.lr,
                                 epochs=c.epochs, steps=100, epochs_done=c.epochs / 2, status='ok', reached_target=True,
                                 train_loss=0.045 * 10 ** (loss * lb + z('loss')),
                                 train_acc=0.98 - fit * lb + z('fit', sd=0.002),
                                 test_loss=1.0, test_acc=0.7 - gap * lb - lr_gap * fast + z('acc', sd=0.002),
                                 top_eig=top, eig_residual=1e-6, eig_converged=True, trace=20 * top, trace_se=1.0,
                                 stability=c.lr * top / 2, **sharp,
                                 **{k + '_stop': 'CONVERGENCE' for k in sharp}))
        seeds = sorted({r['seed'] for r in rows})
        rise = [0.5 * 10 ** _noise(net, s, 'sb', sd=0.02) for s in seeds]
        rise_lb = [r * line * 10 ** _noise(net, s, 'lb', sd=0.02) for r, s in zip(rise, seeds)]
        nets[net] = dict(runs=pd.DataFrame(rows), rises=pd.DataFrame(dict(rise_sb=rise, rise_lb=rise_lb)),
                         interpolation=None, surfaces={}, curvature_examples=meas['n_curvature'])
    return _verdict('sharp-flat', claim.analyse(dict(preset=preset, networks=nets), claim.margins(preset)), preset)


SHARP_FLAT_CONTRADICTED = {
    'matched-loss': dict(loss=0.3),            # LB ends at twice SB's training loss
    'train-acc-equal': dict(fit=0.05),         # LB fits 5 points fewer training examples
    'lb-generalises-worse': dict(gap=0.0),     # no generalisation gap
    'lb-sharper-eig': dict(eig=0.0),           # LB as sharp as SB, by every measure in turn
    'lb-sharper-eps': dict(eps=0.0),
    'lb-sharper-subspace': dict(sub=0.0),
    'line-steeper-at-lb': dict(line=1.0),      # the line rises as fast past LB as past SB
    'larger-lr-flatter': dict(flat=0.0),       # LB at 5x the LR as sharp as SB
    'larger-lr-generalises': dict(lr_gap=0.05),  # and 5 points less accurate
}


@pytest.mark.parametrize('preset', _presets('sharp-flat'))
def test_sharp_flat_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_sharp_flat_world, SHARP_FLAT_CONTRADICTED, preset)


def _sde_world(preset, *, lam_max=None, bias=None):
    """Raw level: what `analyse` reads from `run`: the preset's quadratic (H and Σ from `problem`; with `lam_max`, a
    made-up one with that top curvature), the declared settings, and per setting the preset's number of chains with
    made-up time-averaged losses: the exact stationary loss × (1 + `bias[setting]`), spread 30% from chain to chain
    (a gamma distribution: positive, skewed; NaN where that quadratic is unstable at the setting, as diverged chains
    are). The closed-form checks read nothing
    but H and Σ: a made-up quadratic is the only world where they can fail."""
    claim = get_claim('sde-quadratic')
    p = claim.preset(preset)
    H, Sigma = sdeq.problem(**dict(p['problem'], **({} if lam_max is None else dict(lam_max=lam_max))))
    (e0, b0), (e1, b1), m = sdeq.SETTINGS['small'], sdeq.SETTINGS['edge'], sdeq.SETTINGS['momentum']
    points = {'small': (e0, b0, 0.0), 'edge': (e1, b1, 0.0), 'edge-2x': (2 * e1, 2 * b1, 0.0),
              'momentum': (e0 * (1 - m), b0, m)}   # as `run` declares them
    rng = np.random.default_rng(0)
    mc = {k: sdeq.stationary_loss(H, Sigma, *v) * (1 + (bias or {}).get(k, 0.0))
          * rng.gamma(1 / 0.3 ** 2, 0.3 ** 2, p['chains']) for k, v in points.items()}
    raw = dict(H=H, Sigma=Sigma, points=points, mc=mc)
    with warnings.catch_warnings():   # the mean of an unstable setting's chains: NaN, as in a real run
        warnings.simplefilter('ignore', RuntimeWarning)
        return _verdict('sde-quadratic', claim.analyse(raw, claim.margins(preset)), preset)


SDE_CONTRADICTED = {
    'mc-matches-exact': dict(bias={'small': 0.1}),       # the chains settle 10% above the closed form
    'mc-matches-exact-near-edge': dict(bias={'edge-2x': 0.1}),
    'mc-matches-exact-momentum': dict(bias={'momentum': -0.1}),
    # a stiff quadratic (λ_max 180: η·λ_max = 0.9 at the "small" η), where the small step is not small: ...
    'invariant-small-lr': dict(lam_max=180.0),   # ... doubling η and B raises the loss 1.58x (d = 16; 3.5x at d = 4)
    'sde-small-lr': dict(lam_max=180.0),         # ... the exact loss is 1.08x the SDE's (1.45x)
    'momentum-temperature': dict(lam_max=180.0),  # ... momentum at η(1−m) ends 0.93x as hot (0.70x)
    'breaks-near-edge': dict(lam_max=0.1),       # a soft one (η·λ_max = 0.02 at the edge setting): 1.001x (1.006x)
}


@pytest.mark.parametrize('preset', _presets('sde-quadratic'))
def test_sde_quadratic_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_sde_world, SDE_CONTRADICTED, preset)


TOY_CHAINS = 1000   # at most this many chains per toy setting (see `_averaged_world`)


def _averaged_world(preset, *, stray=0.0, stuck=0.0, last_stuck=0.2, bias=0.0, avg_sd=0.02, growth=0.5,
                    avg_growth=0.0, loss=0.5, eig=0.5, trace=0.5, spread=0.1, small_loss=0.5, small_eig=0.5):
    """Raw level: what `analyse` reads from `run`. The toy: last iterates and averages at every step of the ladder
    from each minimum, `min(preset's chains, TOY_CHAINS)` chains each: the jackknife over chains of the spread checks
    costs O(n²), some 30 s per check at the gpu and paper presets' 20,000 chains, and more chains only narrow every
    interval, so a world that holds or is contradicted here is so there too. At the small step the chains stay at
    their start (a fraction `stray` of them in the other minimum); past it they sit around v*, the averages `bias` off
    it, except, from the sharp minimum, a fraction `last_stuck` of the last iterates and `stuck` of the averages that
    are still in the sharp well. Their sd: the last iterates' 0.03 at the small step, × (η/η_small)^`growth`; the
    averages' `avg_sd` × (η/η_small)^`avg_growth`. The network: per seed of the preset, the last iterate, the average
    and the small step; the average's test loss `loss` lower than the last iterate's (its deviation over seeds `spread`
    × the last iterate's), its log λ_max `eig` and log trace `trace` lower; the small step's test loss `small_loss`
    and log λ_max `small_eig` above the average's."""
    claim = get_claim('averaged-sgd')
    p = claim.preset(preset)
    n, v, sharp = min(p['toy']['chains'], TOY_CHAINS), smoothed_minimiser(ETAS[-1] * TOY['noise']), TOY['sharp_at']
    first = lambda f: np.arange(n) < f * n   # the first fraction f of the chains
    rng = np.random.default_rng(0)
    toy = {}
    for eta in ETAS:
        sd_last, sd_avg = 0.03 * (eta / ETAS[0]) ** growth, avg_sd * (eta / ETAS[0]) ** avg_growth
        for start, x0 in (('sharp', sharp), ('flat', 0.0)):
            if eta == ETAS[0]:   # at the start, a fraction `stray` in the other minimum
                home = np.where(first(stray), sharp - x0, x0)
                last, avg = home + sd_last * rng.standard_normal(n), home + sd_avg * rng.standard_normal(n)
            else:
                last, avg = v + sd_last * rng.standard_normal(n), v + bias + sd_avg * rng.standard_normal(n)
                if start == 'sharp':   # some still in the sharp well
                    last, avg = np.where(first(last_stuck), sharp, last), np.where(first(stuck), sharp, avg)
            toy[eta, start] = (last, avg)
    rows = []
    for s in p['net']['seeds']:
        d = _noise(s, 'seed', sd=0.1)   # the seed's deviation
        arms = dict(last=(1.5 + d, 0.0, 0.0), average=(1.5 - loss + spread * d, -eig, -trace),
                    small=(1.5 - loss + small_loss + d, small_eig - eig, 0.0))
        for arm, (tl, le, lt) in arms.items():
            z = lambda k, sd=0.02: _noise(s, arm, k, sd=sd)
            rows.append(dict(seed=s, arm=arm, lr=1.0, status='ok', train_loss=0.1, train_acc=0.99,
                             test_loss=tl + z('loss', sd=0.001), test_acc=0.7, top_eig=math.exp(le + z('eig')),
                             trace=30 * math.exp(lt + z('trace')), trace_se=1.0, n_curvature=1000))
    net = pd.DataFrame(rows).assign(stability=lambda d: d.lr * d.top_eig / 2)
    return _verdict('averaged-sgd', claim.analyse(dict(preset=preset, toy=toy, net=net), claim.margins(preset)),
                    preset)


AVERAGED_CONTRADICTED = {
    'toy-small-step-stays': dict(stray=0.2),            # a fifth of the small-step chains cross the barrier
    'toy-large-step-leaves-sharp': dict(stuck=0.5),     # half the averages stay in the sharp well
    'toy-avg-in-flat-more-often': dict(last_stuck=0.0),  # the last iterates all leave it too: no difference
    'toy-avg-near-smoothed-min': dict(bias=0.3),        # the averages settle 0.3 off v*
    'toy-avg-closer-than-last': dict(avg_sd=0.8),       # the averages scatter wider than the last iterates
    'toy-last-spread-grows': dict(growth=0.0),          # the last iterate's spread does not grow with η
    'toy-avg-spread-does-not': dict(avg_growth=0.5),    # the average's grows like √η
    'net-avg-lower-test-loss': dict(loss=-0.5),         # the average is worse than the last iterate ...
    'net-avg-lower-top-eig': dict(eig=-0.5),            # ... and sharper
    'net-avg-lower-trace': dict(trace=-0.5),
    'net-avg-smaller-spread': dict(spread=1.5),         # its test loss varies 1.5x as much over seeds
    'net-avg-beats-small-step': dict(small_loss=-0.5),  # the small step has the lower test loss ...
    'net-avg-flatter-than-small-step': dict(small_eig=-0.5),   # ... and the lower λ_max
}


@pytest.mark.parametrize('preset', _presets('averaged-sgd'))
def test_averaged_sgd_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_averaged_world, AVERAGED_CONTRADICTED, preset)


def _without_bn(preset) -> bool:
    "Whether the swa preset's network has no batch norm (VGG without `bn`: paper-vgg16, as its preset says)."
    base = get_claim('swa').preset(preset)['base']
    return base['model'] == 'vgg' and not base.get('model_kwargs', {}).get('bn', False)


def _swa_world(preset, *, acc=0.005, trace=0.3, rise=0.5, bn=0.1):
    """Raw level: what `analyse` reads from `run` (its rows; the SGD→SWA line is left out: no check reads it): per
    seed of the preset, SGD, SWA with update_bn, SWA without (the initial BN statistics) and SWA with stale ones. SWA
    `acc` more accurate than SGD, its log trace `trace` and its rise along random directions `rise` lower; without
    update_bn `bn` less accurate. Where the network has no batch norm (`_without_bn`), update_bn and the initial
    statistics leave the same model: that arm is SWA's itself, whatever `bn`."""
    claim, same = get_claim('swa'), _without_bn(preset)
    rows = []
    for s in claim.preset(preset)['seeds']:
        z = lambda *k, sd=0.002: _noise(s, *k, sd=sd)
        a = 0.8 + 0.01 * math.sin(3 * s) + z('sgd')
        aw = a + acc + z('swa')
        rows += [dict(seed=s, arm='sgd', test_acc=a, trace=100 * math.exp(z('t0', sd=0.02)), rise=2.0 + z('r0')),
                 dict(seed=s, arm='swa', test_acc=aw, trace=100 * math.exp(-trace + z('t', sd=0.02)),
                      rise=2.0 - rise + z('r')),
                 dict(seed=s, arm='swa-no-update-bn', test_acc=aw if same else aw - bn + z('bn')),
                 dict(seed=s, arm='swa-stale-bn', test_acc=aw - 0.05 + z('stale'))]
    runs = pd.DataFrame(rows).assign(status='ok', train_loss=0.1, train_acc=0.99, test_loss=lambda d: 1 - d.test_acc)
    raw = dict(preset=preset, runs=runs, line=None, batch_norm=not same)
    return _verdict('swa', claim.analyse(raw, claim.margins(preset)), preset)


SWA_CONTRADICTED = {
    'swa-at-least-as-accurate': dict(acc=-0.02),   # SWA 2 points less accurate
    'swa-flatter-trace': dict(trace=-0.3),         # SWA's trace higher
    'swa-flatter-directions': dict(rise=-0.5),     # the loss rises faster around SWA
    'no-update-bn-worse': dict(bn=0.0),            # update_bn changes nothing
}


@pytest.mark.parametrize('preset', _presets('swa'))
def test_swa_checks_can_hold_and_be_contradicted(preset):
    # paper-vgg16: VGG-16 has no batch norm, so `no-update-bn-worse` has nothing to test there (the preset says so,
    # and keeps the published setup as it is): its two arms are one model. `run` records that the network has no
    # batch norm and the check is 'not testable' in every world
    fixed = {'no-update-bn-worse': 'not testable'} if _without_bn(preset) else {}
    _hold_and_contradict(_swa_world, {k: v for k, v in SWA_CONTRADICTED.items() if k not in fixed}, preset, fixed)


def _three_factors_world(preset, *, acc=0.0, eig=0.0, trace=0.0, curves=0.0, fall=0.1, eig_slope=-1.0,
                         trace_slope=-1.0, acc_slope=0.01, mem_slope=-0.1, clean_slope=0.01, cyc_loss=0.0,
                         cyc_acc=0.0, mismatch=0.3):
    """Frame level: a made-up row (final metrics, λ_max, trace, memorisation) and history (test loss at every
    evaluation) for every run of the preset (`configs`: its η₀, β, η, seeds and cycles), through `analyse`. Scaling:
    per doubling of β, test accuracy `acc` higher, log λ_max `eig` and log trace `trace` higher, the test-loss curve
    `curves` higher; at the largest β and η₀, `fall` less accurate. Ratios: per step of η, log λ_max `eig_slope`, log
    trace `trace_slope` and test accuracy `acc_slope` higher. Memorisation: per step of η, accuracy on the wrong labels
    `mem_slope` and clean test accuracy `clean_slope` higher. Cyclic: the cyclic-B curves `cyc_loss` (test loss) and
    `cyc_acc` (accuracy) off the cyclic-LR ones after step 0; the mismatched path's final training loss `mismatch`
    lower."""
    claim = get_claim('three-factors')
    p = claim.preset(preset)
    cy, e_hi, b_max = p['cyclic'], max(p['eta0s']), max(p['betas'])
    rows, curves_ = [], []
    for part, cfgs in tf.configs(preset).items():
        for c in cfgs:
            arm = tf._arm(c, cy['eta'])
            z = lambda *k, sd=0.002: _noise(part, arm, c.batch_size, round(c.lr, 9), c.seed, *k, sd=sd)
            row = dict(part=part, arm=arm, seed=c.seed, batch_size=c.batch_size, lr=c.lr, ratio=c.lr / c.batch_size,
                       status='ok', train_loss=0.3, train_acc=0.9, test_loss=1.0, test_acc=0.7)
            if part == 'scaling':
                u, eta0 = math.log2(c.batch_size / p['b0']), c.lr * p['b0'] / c.batch_size
                lam = 5 * math.exp(eig * u + z('eig', sd=0.02))
                broken = c.batch_size == b_max * p['b0'] and math.isclose(eta0, e_hi)
                row.update(test_acc=0.7 + acc * u - fall * broken + z('acc'), top_eig=lam,
                           trace=50 * math.exp(trace * u + z('trace', sd=0.02)))
                hist = [dict(test_loss=2.3 - 1.5 * k / c.n_evals + curves * u * (k > 0) + z(k), test_acc=0.7)
                        for k in range(c.n_evals + 1)]
            else:
                hist = []
            if part in ('ratios', 'memorise'):
                r = part == 'ratios'
                step = math.log2(c.lr / min(p['etas' if r else 'memorise_etas']))
                row.update(top_eig=5 * math.exp(eig_slope * step * r + z('eig', sd=0.02)),
                           trace=50 * math.exp(trace_slope * step * r + z('trace', sd=0.02)),
                           test_acc=0.7 + (acc_slope if r else clean_slope) * step + z('acc'))
                if not r: row['memorised'] = 0.5 + mem_slope * step + z('mem')
            if part == 'cyclic':
                off = {'cyclic-lr': (0.0, 0.0), 'cyclic-b': (cyc_loss, cyc_acc), 'mismatched': (0.0, 0.0)}[arm]
                row['train_loss'] = 0.5 - (mismatch if arm == 'mismatched' else 0.0) + z('train')
                hist = [dict(test_loss=2.3 - 1.5 * k / c.n_evals + off[0] * (k > 0) + z(k),
                             test_acc=0.2 + 0.5 * k / c.n_evals + off[1] * (k > 0) + z(k, 'a'))
                        for k in range(c.n_evals + 1)]
            rows.append(row)
            curves_ += [dict(part=part, arm=arm, seed=c.seed, batch_size=c.batch_size, lr=c.lr, eval=k,
                             epoch=c.epochs * k / c.n_evals, train_loss=0.3, **h) for k, h in enumerate(hist)]
    raw = dict(preset=preset, runs=pd.DataFrame(rows), curves=pd.DataFrame(curves_))
    return _verdict('three-factors', claim.analyse(raw, claim.margins(preset)), preset)


THREE_FACTORS_CONTRADICTED = {
    'invariant-accuracy': dict(acc=-0.05),          # 5 points less accurate per doubling of β
    'invariant-top-eig': dict(eig=1.0),             # λ_max doubles and more per doubling of β
    'invariant-trace': dict(trace=1.0),
    'invariant-curves': dict(curves=0.3),           # the curves part by 0.3 nats per doubling of β
    'breaks-at-largest': dict(fall=0.0),            # the largest β as accurate as β = 1
    'wider-top-eig': dict(eig_slope=1.0),           # a higher η/B ends sharper
    'wider-trace': dict(trace_slope=1.0),
    'accuracy-does-not-fall': dict(acc_slope=-0.01),  # and less accurate
    'memorises-less': dict(mem_slope=0.1),          # a higher η/B fits more wrong labels
    'clean-test-better': dict(clean_slope=-0.01),
    'cyclic-b-matches-loss': dict(cyc_loss=0.3),    # the cyclic-B curves 0.3 nats off the cyclic-LR ones
    'cyclic-b-matches-accuracy': dict(cyc_acc=0.1),  # 10 points off
    'mismatched-cycle-differs': dict(mismatch=0.0),  # the 4x path ends where the matched one does
}


@pytest.mark.parametrize('preset', _presets('three-factors'))
def test_three_factors_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_three_factors_world, THREE_FACTORS_CONTRADICTED, preset)


def _trend_world(preset, *, miss=False, eig=1.0, trace=1.0, eps=1.0, acc=-0.02, warm_acc=0.01, warm_eig=-1.0,
                 aug_small=0.02, aug_large=0.02):
    """Frame level: a made-up row (final metrics and curvature) for every run of the preset (`configs`: its batch
    sizes, warm starts and seeds), through `analyse`. Per step of the batch-size grid: log λ_max `eig`, log trace
    `trace`, log ε-sharpness `eps` and test accuracy `acc` higher; per step of the warm-start grid (at the largest
    batch size): test accuracy `warm_acc` and log λ_max `warm_eig` higher; augmentation `aug_small` / `aug_large` more
    accurate at the smallest / largest batch size; with `miss`, one run stops short of the target loss."""
    claim = get_claim('sharp-flat-trend')
    p, cfgs = claim.preset(preset), sft.configs(preset)
    bs, ks = p['batch_sizes'], p['warm_epochs']
    rows = []
    for part, c, k in ([('trend', c, 0) for c in cfgs['trend']] + [('augment', c, 0) for c in cfgs['augment']]
                       + [('warm', lb, k) for k, sb, lb in cfgs['warm'] if sb is not None]):
        z = lambda *x, sd=0.002: _noise(part, c.batch_size, k, c.seed, *x, sd=sd)
        j, w = bs.index(c.batch_size), ks.index(k)
        gain = (aug_small if j == 0 else aug_large) if part == 'augment' else 0.0
        lam = math.exp(eig * j + warm_eig * w + z('eig', sd=0.02))
        rows.append(dict(part=part, seed=c.seed, batch_size=c.batch_size, lr=c.lr, augment=c.augment, status='ok',
                         steps=100, reached_target=not (miss and part == 'trend' and j == 0 and c.seed == 0),
                         train_loss=0.04, train_acc=1.0, test_loss=0.3,
                         test_acc=0.8 + acc * j + warm_acc * w + gain + z('acc'), warm_epochs=k, top_eig=lam,
                         trace=10 * math.exp(trace * j + z('trace', sd=0.02)),
                         eps_sharpness=math.exp(eps * j + z('eps', sd=0.02)), stability=c.lr * lam / 2))
    raw = dict(preset=preset, runs=pd.DataFrame(rows))
    return _verdict('sharp-flat-trend', claim.analyse(raw, claim.margins(preset)), preset)


TREND_CONTRADICTED = {
    'all-reach-target': dict(miss=True),            # one run stops short of the target loss
    'sharper-top-eig': dict(eig=-1.0),              # a larger batch ends flatter, by each measure in turn
    'sharper-trace': dict(trace=-1.0),
    'sharper-eps': dict(eps=-1.0),
    'accuracy-falls': dict(acc=0.02),               # and more accurate
    'warm-start-accuracy-rises': dict(warm_acc=-0.01),  # a longer warm start costs accuracy
    'warm-start-flatter': dict(warm_eig=1.0),       # and ends sharper
    'augmentation-helps-small': dict(aug_small=-0.02),  # augmentation costs 2 points at the small batch
    'augmentation-helps-large': dict(aug_large=-0.02),  # ... at the large one
    # the large batch gains so much from augmentation that it overtakes the small one (`accuracy-falls` still holds,
    # as the check presupposes)
    'gap-remains-with-augmentation': dict(aug_large=0.2),
}


@pytest.mark.parametrize('preset', _presets('sharp-flat-trend'))
def test_sharp_flat_trend_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_trend_world, TREND_CONTRADICTED, preset)


def _adam_world(preset, *, small=0.0, large=0.03, edge=False):
    """Frame level: made-up SGD and Adam sweeps on the preset's grids (`configs`: the two-regimes plain-SGD runs, and
    Adam at the same batch sizes and seeds over its own LRs), through `analyse`. SGD as in the two-regimes world above
    (its transition at the 3rd batch size); Adam `small` more accurate than SGD up to the transition and `large` past
    it, its optimal LR in the middle of its grid (with `edge`, the largest batch size's on the top of it)."""
    claim = get_claim('adam-regimes')
    p, cfgs = claim.preset(preset), ar.configs(preset)
    sgd, lrs = _two_regimes_acc(p['sgd']), p['adam_lrs']
    bs = sorted({c.batch_size for c in cfgs['sgd']})
    x = lambda b: math.log2(b / bs[0])
    mid, top = math.floor((math.log2(lrs[0]) + math.log2(lrs[-1])) / 2) + 0.5, math.log2(lrs[-1])   # as SGD's
    def adam(c):   # SGD's accuracy at its optimum (as in `_two_regimes_acc`), plus Adam's gain
        j = bs.index(c.batch_size)
        opt = top if edge and j == len(bs) - 1 else mid
        return (0.8 - 0.05 * max(x(c.batch_size) - x(bs[2]), 0) + 0.01 * math.sin(3 * c.seed)
                + (small if j <= 2 else large) - 0.02 * (math.log2(c.lr) - opt) ** 2
                + _noise(c.seed, c.batch_size, c.lr, 'adam'))
    raw = dict(sgd=_frame(cfgs['sgd'], sgd), adam=_frame(cfgs['adam'], adam))
    return _verdict('adam-regimes', claim.analyse(raw, claim.margins(preset)), preset)


ADAM_CONTRADICTED = {
    'adam-equal-small': dict(small=-0.05),          # Adam 5 points worse in SGD's noise regime
    'adam-better-large': dict(large=0.0),           # and no better past it
    'adam-gain-grows': dict(small=0.03),            # better by the same 3 points everywhere
    'optima-inside-grid': dict(edge=True),          # Adam's optimum at the largest batch size on its grid's top
}


@pytest.mark.parametrize('preset', _presets('adam-regimes'))
def test_adam_regimes_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_adam_world, ADAM_CONTRADICTED, preset)


def _eos_raw(preset, *, edge_gd=1.0, edge_control=1.0, sharpen=True, late_rise=False, oscillate=True, edge_sgd=None,
             bs_edge=1.0, spike=1.3, catapult_late=0.95):
    """Raw level: made-up tracked runs of the edge-of-stability design on the preset's grid and seeds. λ_max relaxes
    from λ₀ (η·λ₀/2 = 2.5 at the catapult's η, so the GD grid starts below its edges) to the given fraction of 2/η;
    SGD's full-batch λ_max to `edge_sgd` (one per batch size, rising with B) and its batch sharpness to `bs_edge`;
    the GD loss falls (or, with `late_rise`, rises in the late phase) and alternates at the edge η (`oscillate`); the
    catapult's loss jumps to `spike` times its start over its first steps."""
    p = get_claim('edge-of-stability').preset(preset)
    steps, every, bs = p['base']['steps'], p['every'], p['sgd_batch_sizes']
    edge_sgd = edge_sgd or list(np.linspace(0.55, 0.8, len(bs)))
    runs, curv, losses = [], [], []
    def add(arm, lr, b, seed, target, *, bsv=None, osc=False, spike_to=None, flat=False):
        lam0 = 5.0 / p['catapult_lr'] * (1 + 0.01 * seed)
        t = np.arange(0, steps + 1, every)
        top = lam0 if flat else target * 2 / lr
        lam = top + (lam0 - top) * np.exp(-t / (steps / 10)) + _noise('eos', arm, lr, b, seed, sd=0.002) * top
        key = dict(arm=arm, lr=lr, batch_size=b, full_batch=b is None, seed=seed)
        bsc = np.full(len(t), np.nan) if bsv is None else np.full(len(t), bsv * 2 / lr * (1 + 0.002 * seed))
        curv.append(pd.DataFrame(dict(step=t, loss=0.5, accuracy=0.9, lambda_max=lam, residual=1e-4,
                                      batch_sharpness=bsc)).assign(**key))
        s = np.arange(steps)
        loss = 0.5 * np.exp(-s / steps * (1 + 0.01 * seed))
        if late_rise and arm == 'gd' and lr != p['control_lr']:
            loss[steps // 2:] = loss[steps // 2] * (1 + s[: steps - steps // 2] / steps)
        if osc: loss = loss * (1 + 0.05 * (s % 2))
        if spike_to: loss[1:p['spike_steps'] // 2] = loss[0] * spike_to * (1 + 0.002 * seed)
        losses.append(pd.DataFrame(dict(step=s, loss=loss)).assign(**key))
        runs.append(dict(key, status='ok', lambda_0=lam[0], seconds=1.0, steps=steps))
    n = p['base']['n_train']
    for seed in p['seeds']:
        for lr in p['gd_lrs']:
            ctl = lr == p['control_lr']
            stable = lr * 5.0 / p['catapult_lr'] / 2 < 1
            add('gd', lr, n, seed, edge_control if ctl else edge_gd, osc=oscillate and not ctl,
                flat=not sharpen and stable)
        for b, e in zip(bs, edge_sgd): add('sgd', p['sgd_lr'], b, seed, e, bsv=bs_edge)
        add('catapult', p['catapult_lr'], n, seed, catapult_late, spike_to=spike)
    return dict(preset=preset, runs=pd.DataFrame(runs), curvature=pd.concat(curv, ignore_index=True),
                losses=pd.concat(losses, ignore_index=True), steps=steps)


def _eos_world(preset, **kw):
    "Raw level: the made-up tracked runs (`_eos_raw`) through the claim's own `analyse`."
    claim = get_claim('edge-of-stability')
    return _verdict('edge-of-stability', claim.analyse(_eos_raw(preset, **kw), claim.margins(preset)), preset)


EOS_CONTRADICTED = {
    'sharpening': dict(sharpen=False),                 # λ_max stays at λ₀ where the run starts below its edge
    'gd-at-edge': dict(edge_gd=0.6),                    # GD stops at 0.6 of its edge
    'gd-at-edge-small-lr': dict(edge_control=0.6),      # so does the control
    'loss-falls-at-edge': dict(late_rise=True),         # the late loss rises at the edge
    'loss-non-monotone': dict(oscillate=False),         # and never goes up from one step to the next
    'sgd-below-edge': dict(edge_sgd=[0.98] * 3),        # SGD's full-batch λ_max at the edge
    'sgd-sharper-larger-batch': dict(edge_sgd=[0.8, 0.7, 0.55]),   # falling with the batch size
    'batch-sharpness-at-edge': dict(bs_edge=0.4),       # batch sharpness far below 2/η
    'catapult-spike': dict(spike=0.97),                 # no spike: the loss only falls
    'catapult-flattens': dict(catapult_late=2.5),       # λ_max ends where it started
}


@pytest.mark.parametrize('preset', _presets('edge-of-stability'))
def test_edge_of_stability_checks_can_hold_and_be_contradicted(preset):
    p = get_claim('edge-of-stability').preset(preset)
    world = lambda pr, **kw: _eos_world(pr, **{k: (v[:len(p['sgd_batch_sizes'])] if k == 'edge_sgd' else v)
                                               for k, v in kw.items()})
    _hold_and_contradict(world, EOS_CONTRADICTED, preset)


def _cbs_raw(preset, *, bc=(150.0, 100.0, 150.0), wiggle=0.0, opt_index=2, bsimple=1.0):
    """Raw level: made-up steps to the target for every run of the critical-batch sweep (its configs, seeds, windows):
    S = 300·(1 + B_crit/B) with B_crit per arm (main, data, width) from `bc`, times 1 + 0.3·|log2(η/η_opt)| away from
    the window's `opt_index`-th rate, times `exp(wiggle)` with alternating sign across batch sizes, times a small
    per-seed draw; B_simple = `bsimple`·B_crit(main) per seed; no two-regimes transition."""
    claim = get_claim('critical-batch')
    p = claim.preset(preset)
    bcs = dict(zip(('main', 'data', 'width'), bc))
    rows = []
    for arm, cs in cb.configs(preset).items():
        a = p['arms'][arm]
        for c in cs:
            win = cb.lr_window(a, c.batch_size, p['lr_window'])
            j = cb.arm_batch_sizes(p, arm).index(c.batch_size)
            S = 300 * (1 + bcs[arm] / c.batch_size) * (1 + 0.3 * abs(math.log2(c.lr / win[opt_index])))
            S *= math.exp(wiggle * (-1) ** j + _noise('cbs', arm, c.batch_size, c.lr, c.seed, sd=0.02))
            rows.append(dict(arm=arm, seed=c.seed, batch_size=c.batch_size, lr=c.lr, status='ok', S=S))
    noise = pd.DataFrame([dict(seed=s, step=st, train_loss=l, B_simple=bsimple * bcs['main'] *
                               math.exp(_noise('cbs-noise', s, sd=0.05)))
                          for s in p['seeds'] for st, l in ((0, 2.0), (100, 0.5), (200, 0.1), (300, 0.01))])
    return dict(preset=preset, target=p['target'], runs=pd.DataFrame(rows), noise=noise, transition=math.nan)


def _cbs_world(preset, **kw):
    "Raw level: the made-up steps (`_cbs_raw`) through the claim's own `analyse`."
    claim = get_claim('critical-batch')
    return _verdict('critical-batch', claim.analyse(_cbs_raw(preset, **kw), claim.margins(preset)), preset)


CBS_CONTRADICTED = {
    'steps-fall': dict(bc=(0.01, 0.01, 0.01)),          # no noise-dominated regime: S the same at every B
    'perfect-scaling-small': dict(bc=(8.0, 6.0, 8.0)),  # B_crit below the grid's second batch size
    'diminishing-returns': dict(bc=(1e5, 7e4, 1e5)),    # B_crit far above the grid: perfect scaling throughout
    'hyperbola-fits': dict(wiggle=0.4),                 # S zigzags about the curve by 40% per batch size
    'bcrit-located': dict(bc=(1e5, 7e4, 1e5)),          # ... and B_crit is then outside the grid
    'optima-inside-grid': dict(opt_index=3),            # the best rate is the top of every window
    'bcrit-near-bsimple': dict(bsimple=20.0),           # B_simple twenty times B_crit
    'bcrit-grows-with-data': dict(bc=(150.0, 300.0, 150.0)),   # B_crit halves with four times the data
    'bcrit-flat-in-width': dict(bc=(150.0, 100.0, 600.0)),     # B_crit four times larger for the narrower net
}


@pytest.mark.parametrize('preset', _presets('critical-batch'))
def test_critical_batch_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_cbs_world, CBS_CONTRADICTED, preset)


NN_MEANS = dict(sgd=0.50, gd=0.36, gd_long=0.47, gd_clip=0.49, gd_reg=0.52)


def _nn_world(preset, *, edge=False, **means):
    """Frame level: made-up test accuracies for every run of the noise-needed sweep (its configs: five arms, each on its
    own grid, the preset's seeds), through `analyse`: each arm's mean from `NN_MEANS` (overridden by `means`), less
    0.02·(log2 η − log2 η_opt)² with η_opt the middle rate of the arm's grid (with `edge`, the regularised arm's
    optimum on the top of its grid), plus a per-seed offset shared by the arms (pairing) and a small draw per run."""
    claim = get_claim('noise-needed')
    p = claim.preset(preset)
    mu = dict(NN_MEANS, **means)
    by_arm = nn.configs(preset)
    frames = []
    for arm, cs in by_arm.items():
        grid = p['lrs'][arm]
        opt = math.log2(grid[-1] if edge and arm == 'gd_reg' else grid[len(grid) // 2])
        acc = lambda c: (mu[arm] - 0.02 * (math.log2(c.lr) - opt) ** 2 + 0.01 * math.sin(3 * c.seed)
                         + _noise('nn', arm, c.lr, c.seed))
        frames.append(_frame(cs, acc).assign(arm=arm))
    raw = pd.concat(frames, ignore_index=True)
    return _verdict('noise-needed', claim.analyse(raw, claim.margins(preset)), preset)


NN_CONTRADICTED = {   # each two points on the wrong side, so that the paper preset's three seeds can tell
    'noise-helps-equal-epochs': dict(gd=0.52),     # full-batch GD better than SGD at equal epochs
    'longer-training-helps': dict(gd_long=0.34),   # ten times the steps lose two points
    'plain-long-gd-worse': dict(gd_long=0.52),     # ... or pass SGD
    'clipping-helps': dict(gd_clip=0.45),          # clipping loses two points
    'penalty-helps': dict(gd_reg=0.47),            # so does the explicit regulariser
    'full-batch-not-worse': dict(gd_reg=0.45),     # the recipe five points below SGD
    'optima-inside-grid': dict(edge=True),         # the regularised arm's best rate on its grid's top
}


@pytest.mark.parametrize('preset', _presets('noise-needed'))
def test_noise_needed_checks_can_hold_and_be_contradicted(preset):
    _hold_and_contradict(_nn_world, NN_CONTRADICTED, preset)


def test_every_registered_claim_has_its_worlds():
    "A claim added to the registry needs its worlds here."
    assert set(claims()) == {'two-regimes', 'step-budget', 'epoch-budget', 'noise-scale', 'sharp-flat', 'sde-quadratic',
                             'averaged-sgd', 'swa', 'three-factors', 'sharp-flat-trend', 'adam-regimes',
                             'edge-of-stability', 'critical-batch', 'noise-needed'}


def test_edge_of_stability_catapult_outside_its_range_is_not_testable():
    "A catapult run that starts below its edge (η·λ₀/2 < 1 for a seed) is not in the catapult phase at all."
    claim = get_claim('edge-of-stability')
    raw = _eos_raw('smoke')
    cv = raw['curvature']
    cv.loc[(cv.arm == 'catapult') & (cv.step == 0), 'lambda_max'] = 1.0   # η·λ₀/2 = 0.35 < 1
    outcomes = {c.id: c.outcome for c in run_checks(claim, claim.analyse(raw, claim.margins('smoke')), 'smoke')}
    assert outcomes['catapult-spike'] == 'not testable', outcomes
