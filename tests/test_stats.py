"Unit tests of sgd_noise.claims.stats: each helper on synthetic data where it must pass and where it must fail."
import json
import math

import numpy as np
import pytest
import scipy.stats

from sgd_noise.claims.stats import (KINDS, LEVEL, OUTCOMES, Check, bootstrap, combine, decide, differs, equivalent,
                                    interval_check, jackknife, rank_correlation, seed_ratio, seed_slope, slope,
                                    t_interval, verdict_frame)


def _shared_seed_arms(effect, n=5, seed_sd=1.0, noise=0.05, rng_seed=0):
    "Two arms aligned by seed: a large shared seed effect, and `a` above `b` by `effect` give or take `noise`."
    rng = np.random.default_rng(rng_seed)
    shared = rng.normal(0, seed_sd, size=n)
    return shared + effect + rng.normal(0, noise, size=n), shared + rng.normal(0, noise, size=n)


# --- Check -------------------------------------------------------------------------------------------------------

def _check(**kw):
    d = dict(id='x-beats-y', statement='x beats y', kind='differs', estimate=0.031, interval=(0.012, 0.05),
             margin=0.01, holds=True, n=5, detail='2 seeds dropped')
    return Check(**{**d, **kw})


def test_check_json_round_trip():
    for c in (_check(), _check(kind='ratio', margin=(0.5, 2.0), holds=False)):
        d = json.loads(json.dumps(c.to_dict()))
        assert isinstance(d['interval'], list) and d['holds'] is c.holds
        assert Check.from_dict(d) == c
    c = _check(interval=(math.nan, math.nan), holds=False)
    back = Check.from_dict(json.loads(json.dumps(c.to_dict())))
    assert all(math.isnan(v) for v in back.interval) and back.to_dict()['id'] == c.id


def test_check_coerces_and_validates():
    c = _check(holds=np.bool_(True), estimate=np.float64(0.5), interval=[np.float64(0.1), 1])
    assert type(c.holds) is bool and type(c.estimate) is float and c.interval == (0.1, 1.0)
    with pytest.raises(ValueError, match="'bigger'.*differs"):
        _check(kind='bigger')
    assert 'threshold' in KINDS


def test_check_line():
    line = _check().line()
    assert line.startswith('HOLDS  x-beats-y: x beats y — estimate 0.031, 95% CI [0.012, 0.05] (half-width 0.019), '
                           'margin 0.01, n=5')
    assert line.endswith('; 2 seeds dropped')
    assert _check(holds=False, detail='').line().startswith('INCONCLUSIVE  ')
    assert _check(holds=False, outcome='contradicted').line().startswith('CONTRADICTED  ')
    assert 'margin (0.5, 2)' in _check(margin=(0.5, 2)).line()
    assert '90% CI' in _check(level=1 - 2 * 0.05).line()


# --- t_interval ---------------------------------------------------------------------------------------------------

def test_t_interval_matches_scipy_and_small_n():
    x = [1.0, 2.0, 4.0, 3.5]
    m, lo, hi, n = t_interval(x, 0.9)
    ref = scipy.stats.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=scipy.stats.sem(x))
    assert n == 4 and m == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(ref)
    assert t_interval([2.0, np.nan, 4.0])[3] == 2
    m, lo, hi, n = t_interval([3.0])
    assert m == 3.0 and math.isnan(lo) and math.isnan(hi) and n == 1
    assert math.isnan(t_interval([])[0])
    with pytest.raises(ValueError, match='level'):
        t_interval(x, 95)


def test_t_interval_coverage():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(400):
        _, lo, hi, _ = t_interval(rng.normal(1.0, 2.0, size=5))
        covered.append(lo < 1.0 < hi)
    assert 0.93 <= np.mean(covered) <= 0.97


# --- differs ------------------------------------------------------------------------------------------------------

def test_differs_finds_paired_effect_hidden_from_unpaired():
    a, b = _shared_seed_arms(0.3)
    welch = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch.low < 0 < welch.high  # unpaired: the shared seed effect hides the difference
    c = differs('a-beats-b', a, b, statement='a beats b', margin=0.0)
    assert c.holds and c.kind == 'differs' and c.n == 5 and c.interval[0] > 0
    assert c.estimate == pytest.approx(np.mean(a - b))


def test_differs_fails_below_margin():
    a, b = _shared_seed_arms(0.3)
    c = differs('a-beats-b', a, b, statement='a beats b by 0.5', margin=0.5)
    assert not c.holds and c.margin == 0.5
    assert not differs('a-beats-b', b, a, statement='b beats a', margin=0.0).holds


def test_differs_nan_pairs_dropped_and_counted():
    a, b = _shared_seed_arms(0.3, n=6)
    a[1], b[4] = np.nan, np.nan
    c = differs('a-beats-b', a, b, statement='a beats b', margin=0.0)
    assert c.n == 4 and c.holds and '2 seed(s) dropped for NaN' in c.detail


def test_too_few_pairs_fail_without_exception():
    for a, b in (([1.0], [0.0]), ([], []), ([1.0, np.nan, 5.0], [np.nan, 0.0, 1.0])):
        for c in (differs('d', a, b, statement='s', margin=0.0), equivalent('e', a, b, statement='s', margin=1.0)):
            assert not c.holds and all(math.isnan(v) for v in c.interval) and 'fewer than 2' in c.detail


def test_mismatched_lengths_name_both():
    for f in (lambda: differs('d', [1, 2, 3], [1, 2], statement='s', margin=0),
              lambda: equivalent('e', [1, 2, 3], [1, 2], statement='s', margin=1)):
        with pytest.raises(ValueError, match=r'len\(a\)=3.*len\(b\)=2'):
            f()
    with pytest.raises(ValueError, match=r'len\(xs_by_seed\)=2.*len\(ys_by_seed\)=1'):
        seed_slope('s', [[1, 2], [1, 2]], [[1, 2]], statement='s', above=0)
    with pytest.raises(ValueError, match=r'len\(x\)=3.*len\(y\)=2'):
        slope([1, 2, 3], [1, 2])


# --- equivalent ---------------------------------------------------------------------------------------------------

def test_equivalent_holds_for_tiny_differences_with_many_seeds():
    a, b = _shared_seed_arms(0.0, n=20, noise=0.01)
    c = equivalent('a-equals-b', a, b, statement='a equals b', margin=0.03)
    assert c.holds and c.kind == 'equivalent' and c.level == pytest.approx(LEVEL) and c.n == 20
    p = float(c.detail.split('TOST p=')[1].split()[0])
    assert p < (1 - LEVEL) / 2


def test_equivalent_fails_for_true_difference_beyond_margin():
    a, b = _shared_seed_arms(0.1, n=20, noise=0.01)
    c = equivalent('a-equals-b', a, b, statement='a equals b', margin=0.03)
    assert not c.holds and float(c.detail.split('TOST p=')[1].split()[0]) > 0.05


def test_equivalent_fails_with_too_few_seeds():
    a = np.array([0.0, 0.0, 0.0]) + [0.02, -0.02, 0.0]  # mean difference exactly 0, but 3 seeds: a wide interval
    b = np.zeros(3)
    c = equivalent('a-equals-b', a, b, statement='a equals b', margin=0.03)
    assert c.estimate == pytest.approx(0.0) and not c.holds and c.interval[1] > 0.03


def test_tost_interval_is_scipy_t_interval_at_1_minus_2alpha():
    a, b = _shared_seed_arms(0.01, n=8, noise=0.02, rng_seed=3)
    d = a - b
    for alpha in (0.05, 0.1):
        c = equivalent('e', a, b, statement='s', margin=0.05, alpha=alpha)
        ref = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(1 - 2 * alpha)
        assert c.interval == pytest.approx((ref.low, ref.high)) and c.level == pytest.approx(1 - 2 * alpha)
    with pytest.raises(ValueError, match='margin'):
        equivalent('e', a, b, statement='s', margin=0.0)


# --- bootstrap ----------------------------------------------------------------------------------------------------

def test_bootstrap_deterministic_and_contains_estimate():
    units = list(np.random.default_rng(5).normal(2.0, 1.0, size=10))
    est, lo, hi = bootstrap(np.mean, units, n_boot=500, seed=1)
    assert est == pytest.approx(np.mean(units)) and lo < est < hi
    assert bootstrap(np.mean, units, n_boot=500, seed=1) == (est, lo, hi)
    assert bootstrap(np.mean, units, n_boot=500, seed=2) != (est, lo, hi)


def test_bootstrap_skips_nonfinite_and_gives_up_when_most_are():
    units = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    picky = lambda u: np.mean(u) if 1.0 in u else math.nan  # finite on ~2/3 of the resamples
    est, lo, hi = bootstrap(picky, units, n_boot=400)
    assert est == 3.5 and lo <= hi
    rare = lambda u: np.mean(u) if u.count(1.0) >= 3 else math.nan  # finite on a few per cent only
    est, lo, hi = bootstrap(rare, units, n_boot=400)
    assert est == pytest.approx(math.nan, nan_ok=True) and math.isnan(lo) and math.isnan(hi)
    assert math.isnan(bootstrap(np.mean, [1.0])[1])


# --- interval_check -----------------------------------------------------------------------------------------------

def test_interval_check_bounds():
    kw = dict(statement='s', kind='ratio')
    assert interval_check('r', 1.2, (1.15, 1.25), above=1.1, below=1.3, **kw).margin == (1.1, 1.3)
    assert interval_check('r', 1.2, (1.15, 1.25), above=1.1, below=1.3, **kw).holds
    assert not interval_check('r', 1.2, (1.05, 1.25), above=1.1, below=1.3, **kw).holds
    assert not interval_check('r', 1.2, (1.15, 1.35), above=1.1, below=1.3, **kw).holds
    assert interval_check('r', 1.2, (1.15, 1.25), below=1.3, **kw).margin == 1.3
    c = interval_check('r', 1.2, (math.nan, math.nan), above=1.0, **kw)
    assert not c.holds and 'no interval' in c.detail
    with pytest.raises(ValueError, match='above'):
        interval_check('r', 1.2, (1.15, 1.25), **kw)
    with pytest.raises(ValueError, match='kind'):
        interval_check('r', 1.2, (1.15, 1.25), statement='s', kind='bigger', above=1.0)


# --- slopes -------------------------------------------------------------------------------------------------------

def test_slope():
    assert slope([1, 2, 3, 4], [3, 5, 7, 9]) == pytest.approx(2.0)
    assert slope([1, 2, np.nan], [1, 3, 10]) == pytest.approx(2.0)
    assert math.isnan(slope([2, 2, 2], [1, 2, 3])) and math.isnan(slope([1], [1]))


def _linear_seeds(true_slope, n_seeds=6, noise=0.05, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    xs = [np.arange(5.0, 11.0) for _ in range(n_seeds)]
    return xs, [true_slope * x + rng.normal(0, 1) + rng.normal(0, noise, size=len(x)) for x in xs]


def test_seed_slope_contains_true_slope_and_excludes_half():
    xs, ys = _linear_seeds(1.0)
    c = seed_slope('lr-linear', xs, ys, statement='slope above 0.5', above=0.5)
    assert c.holds and c.kind == 'slope' and c.n == 6 and c.interval[0] < 1.0 < c.interval[1]
    assert not seed_slope('lr-sqrt', xs, ys, statement='slope below 0.5', below=0.5).holds
    within = seed_slope('lr-linear', xs, ys, statement='slope in (0.9, 1.1)', above=0.9, below=1.1)
    assert within.holds and within.margin == (0.9, 1.1)


def test_seed_slope_noisy_data_contains_true_slope_but_fails_tight_bounds():
    xs, ys = _linear_seeds(0.7, n_seeds=4, noise=1.0, rng_seed=0)
    c = seed_slope('s', xs, ys, statement='slope in (0.6, 0.8)', above=0.6, below=0.8)
    assert c.interval[0] < 0.7 < c.interval[1] and not c.holds


def test_seed_slope_too_few_seeds():
    xs, ys = _linear_seeds(1.0, n_seeds=2)
    xs[1] = np.full(6, 3.0)  # one distinct x: no slope for that seed
    c = seed_slope('s', xs, ys, statement='s', above=0.5)
    assert not c.holds and c.n == 1 and 'fewer than 2 usable slopes' in c.detail and 'nan' in c.detail


# --- verdict_frame ------------------------------------------------------------------------------------------------

def test_verdict_frame():
    checks = [_check(), _check(id='r', kind='ratio', margin=(0.5, 2.0), holds=False)]
    df = verdict_frame(checks)
    assert list(df.columns) == ['id', 'outcome', 'kind', 'estimate', 'lo', 'hi', 'half_width', 'margin', 'n',
                                'statement']
    assert list(df['id']) == ['x-beats-y', 'r'] and list(df['outcome']) == ['holds', 'inconclusive']
    assert df['margin'][1] == '(0.5, 2.0)' and df['margin'][0] == 0.01 and df['lo'][0] == 0.012
    assert len(verdict_frame([])) == 0


# --- three outcomes -------------------------------------------------------------------------------------------------

def test_decide_gives_three_outcomes():
    assert decide(0.03, 0.05, above=0.02) == 'holds'
    assert decide(-0.01, 0.05, above=0.02) == 'inconclusive'
    assert decide(-0.04, 0.01, above=0.02) == 'contradicted'
    assert decide(-0.01, 0.01, above=-0.02, below=0.02) == 'holds'
    assert decide(0.01, 0.03, above=-0.02, below=0.02) == 'inconclusive'
    assert decide(0.03, 0.05, above=-0.02, below=0.02) == 'contradicted'
    assert decide(math.nan, math.nan, above=0) == 'inconclusive'
    with pytest.raises(ValueError, match='needs a bound'): decide(0, 1)


def test_checks_are_contradicted_only_when_the_interval_is_on_the_wrong_side():
    a, b = _shared_seed_arms(0.3, n=8)
    assert differs('x', a, b, statement='s', margin=0.1).outcome == 'holds'
    assert differs('x', b, a, statement='s', margin=0.1).outcome == 'contradicted'
    assert differs('x', a, b, statement='s', margin=float(np.mean(a - b))).outcome == 'inconclusive'
    assert differs('x', [1.0], [0.0], statement='s', margin=0.0).outcome == 'not testable'
    a, b = _shared_seed_arms(0.1, n=20, noise=0.01)
    assert equivalent('x', a, b, statement='s', margin=0.03).outcome == 'contradicted'
    a, b = _shared_seed_arms(0.0, n=3, noise=0.02)
    assert equivalent('x', a, b, statement='s', margin=0.03).outcome == 'inconclusive'
    assert combine(['holds', 'holds']) == 'holds' and combine(['holds', 'contradicted']) == 'contradicted'
    assert combine(['holds', 'inconclusive']) == 'inconclusive' and combine([]) == 'not testable'
    with pytest.raises(ValueError, match='not an outcome'): _check(outcome='maybe')
    assert set(OUTCOMES) == {'holds', 'contradicted', 'inconclusive', 'not testable'}


def test_outcome_survives_json_and_nan_is_strict_json():
    c = _check(interval=(math.nan, math.nan), holds=False, outcome='not testable', estimate=math.nan)
    text = json.dumps(c.to_dict(), allow_nan=False)   # strict JSON: NaN is written as null
    back = Check.from_dict(json.loads(text))
    assert back.outcome == 'not testable' and math.isnan(back.estimate) and math.isnan(back.interval[0])


# --- coverage: every interval the claims use covers at n = 5 and n = 10 ------------------------------------------------

def _coverage(make, truth, reps=400, seed=0):
    "How often the interval of `make(rng)` (a Check or an (est, lo, hi)) contains `truth`."
    rng = np.random.default_rng(seed)
    hit = 0
    for _ in range(reps):
        r = make(rng)
        lo, hi = r.interval if isinstance(r, Check) else r[1:]
        hit += lo < truth < hi
    return hit / reps


@pytest.mark.parametrize('n', [5, 10])
def test_intervals_cover_at_five_and_ten_seeds(n):
    """Simulated coverage at a nominal 95%, floor 93%, for each interval the claims use: the paired t-interval
    (differs, equivalent, arms_differ), the t-interval of per-seed slopes (seed_slope) and of per-seed log ratios
    (seed_ratio), the jackknife of a ratio of means, of a log sd ratio (averaging) and of Spearman's ρ over seeds
    (rank_correlation). 2000 simulated experiments each (the standard error of a coverage near 95% is then 0.5%),
    400 for the slower Spearman one (1.1%)."""
    floor = 0.93
    paired = lambda r: differs('d', *(lambda s: (s + 0.2 + r.normal(0, .1, n), s + r.normal(0, .1, n)))(
        r.normal(0, 1, n)), statement='s', margin=0)
    assert _coverage(paired, 0.2, reps=2000) >= floor
    x = np.arange(5, dtype=float)
    slopes = lambda r: seed_slope('s', [x] * n, [0.8 * x + r.normal(0, 1) + r.normal(0, .3, 5) for _ in range(n)],
                                  statement='s', above=0)
    assert _coverage(slopes, 0.8, reps=2000) >= floor
    ratios = lambda r: seed_ratio('r', np.exp(r.normal(np.log(3), .4, n)), np.ones(n), statement='s', above=1)
    assert _coverage(ratios, 3.0, reps=2000) >= floor
    def ratio_of_means(r):
        small = r.normal(1, .1, n)
        units = list(zip(small, 1.2 * small + r.normal(0, .1, n)))
        return jackknife(lambda u: np.mean([v[1] for v in u]) / np.mean([v[0] for v in u]), units)
    assert _coverage(ratio_of_means, 1.2, reps=2000) >= floor
    def log_sd_ratio(r):
        a, b = r.normal(0, 2, n), r.normal(0, 1, n)
        return jackknife(lambda idx: np.log(np.std(a[idx], ddof=1) / np.std(b[idx], ddof=1)), list(range(n)))
    assert _coverage(log_sd_ratio, math.log(2), reps=2000) >= floor
    import pandas as pd
    def runs(r, seeds):
        off = r.normal(0, .5, seeds)
        return pd.DataFrame([dict(seed=s, b=b, y=0.3 * b + off[s] + r.normal(0, 1)) for s in range(seeds)
                             for b in range(6)])
    truth = scipy.stats.spearmanr((big := runs(np.random.default_rng(99), 4000)).b, big.y).statistic
    spear = lambda r: rank_correlation('rho', runs(r, n), 'b', 'y', statement='s', above=0)
    assert _coverage(spear, truth, reps=400) >= floor


def test_the_percentile_bootstrap_undercovers_at_five_seeds():
    "Why the claims no longer use it: at n = 5 the percentile bootstrap of a mean covers well under 95%."
    cov = _coverage(lambda r: bootstrap(np.mean, list(r.normal(0, 1, 5)), n_boot=400, seed=1), 0.0, reps=300)
    assert cov < 0.91
