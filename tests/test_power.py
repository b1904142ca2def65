"""Power (issue 22, item 7): each preset declares the parts it cannot power, from a pilot; `check_power` reports
every part after a run; the committed verdicts agree with their presets' declarations."""
import json
import math
from pathlib import Path

import pytest

from sgd_noise.claims.contract import POWER_SHARE, check_power, power_line, power_scale, verdict
from sgd_noise.claims import Claim, Spec, claims
from sgd_noise.claims.stats import Check

VERDICTS = Path(__file__).resolve().parents[1] / 'verdicts'
COMMITTED = sorted(VERDICTS.glob('*.json'))


def _check(id='a', kind='differs', interval=(0.1, 0.3), margin=0.2, n=5, outcome=''):
    return Check(id, 'a statement', kind, sum(interval) / 2, interval, margin, False, n=n, outcome=outcome or 'holds')


def test_the_scale_is_the_margin_or_half_a_band():
    assert power_scale(_check(margin=0.2)) == pytest.approx(0.2)
    assert power_scale(_check(margin=-0.05)) == pytest.approx(0.05)
    assert power_scale(_check(margin=(0.25, 4.0), kind='ratio')) == pytest.approx(1.875)
    assert power_scale(_check(margin=0.0)) is None                      # any effect counts: no effect size
    assert power_scale(_check(margin=(0.0, math.inf), kind='slope')) is None   # an open band
    assert power_scale(_check(interval=(math.nan, math.nan))) is None     # no interval


def _claim(underpowered=None):
    specs = [Spec(i, 'a statement', 'differs', 'paired t') for i in ('wide', 'narrow', 'declared', 'any')]
    specs.append(Spec('design', 'a statement', 'threshold', 'grid', design=True))
    preset = dict(margins={}, underpowered=underpowered if underpowered is not None else
                  {'declared': 'pilot: a made-up run, half-width 0.2 > 0.05'})
    return Claim(name='toy', title='t', paper='p', notebook='99_toy.ipynb', specs=specs, presets={'smoke': preset},
                 run=None, analyse=None, checks=None, plot=None, table=None)


def test_each_part_gets_its_status_and_the_verdict_prints_the_tally(capsys):
    checks = [_check('wide', interval=(0.0, 0.5), margin=0.2),       # half-width 0.25 > 0.1
              _check('narrow', interval=(0.25, 0.35), margin=0.2),   # 0.05 <= 0.1
              _check('declared', interval=(0.25, 0.35), margin=0.2),
              _check('any', margin=0.0),
              _check('design', kind='threshold', interval=(math.nan, math.nan), n=0)]
    got = check_power(_claim(), checks, 'smoke')
    assert got == {'wide': 'UNDERPOWERED in this run', 'narrow': 'powered', 'declared': 'underpowered (declared)',
                   'any': 'no effect size', 'design': 'design check'}
    line = power_line(got)
    assert line.startswith(f'power (half-width <= {POWER_SHARE:g} x margin): 1 powered; UNDERPOWERED in this run: wide')
    verdict(_claim(), checks, 'smoke', committed={})
    assert line in capsys.readouterr().out


def test_a_preset_cannot_declare_an_unknown_part():
    with pytest.raises(ValueError, match="declares underpowered for unknown checks \\['nope'\\]"):
        _claim({'nope': 'why'})


@pytest.mark.parametrize('path', COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_verdicts_agree_with_their_presets_declarations(path):
    """Every part a preset calls powered is powered in its committed verdict, and every part it declares
    underpowered is so there (a declaration that no longer describes the pilot is stale: update it)."""
    d = json.loads(path.read_text())
    claim = claims()[d['claim']]
    checks = [Check.from_dict(c) for c in d['checks']]
    got = check_power(claim, checks, d['preset'])
    assert 'UNDERPOWERED in this run' not in got.values(), got
    for c in checks:
        if c.id in claim.underpowered(d['preset']):
            assert c.half_width > POWER_SHARE * power_scale(c), (c.id, c.half_width, c.margin)
