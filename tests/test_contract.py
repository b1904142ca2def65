"The claim contract: declared specs and margins, verdicts, verdict files and the README's claims table."
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sgd_noise.claims import stats
from sgd_noise.cli import main
from sgd_noise.claims import Claim, Spec, claims
from sgd_noise.claims.contract import (all_of, claims_table, label, load_verdicts, preregistration,
                                       readme_with_table, regressions, run_checks, save_verdict, verdict)

ROOT = Path(__file__).resolve().parents[1]
SPECS = [Spec('a-beats-b', 'a scores higher than b', 'differs', 'paired t'),
         Spec('a-equals-c', 'a scores the same as c', 'equivalent', 'TOST')]


def _claim(checks=None, known=None, margins=None):
    def default(s, m):
        return [stats.differs('a-beats-b', s['a'], s['b'], statement='a > b', margin=m['a-beats-b']),
                stats.equivalent('a-equals-c', s['a'], s['c'], statement='a = c', margin=m['a-equals-c'])]
    margins = margins or {'a-beats-b': (0.01, 'one point'), 'a-equals-c': (0.02, 'two points')}
    return Claim(name='toy', title='a toy claim', paper='nobody 2026', notebook='99_toy.ipynb', specs=SPECS,
                 presets={'smoke': dict(margins=margins)}, run=None, analyse=None, plot=None, table=None,
                 checks=checks or default, known_failures=known or {})


SUMMARY = dict(a=[0.80, 0.71, 0.75, 0.78, 0.73], b=[0.75, 0.66, 0.70, 0.725, 0.68], c=[0.801, 0.709, 0.751, 0.779, 0.731])


def test_specs_and_claims_are_validated():
    with pytest.raises(ValueError, match='kebab-case'): Spec('Bad Id', 's', 'differs', 't')
    with pytest.raises(ValueError, match='unknown kind'): Spec('ok-id', 's', 'bigger', 't')
    with pytest.raises(ValueError, match='unknown checks'): _claim(known={'smoke': {'nope': 'x'}})
    with pytest.raises(ValueError, match='unknown checks'): _claim(margins={'nope': (1, 'x')})
    with pytest.raises(ValueError, match='unknown preset'): _claim().preset('paper')


def test_preregistration_lists_every_check_with_its_margin_and_reason():
    t = preregistration(_claim(), 'smoke')
    assert list(t.index) == ['a-beats-b', 'a-equals-c'] and list(t.margin) == ['0.01', '0.02']
    assert list(t.reason) == ['one point', 'two points']


def test_run_checks_insists_on_the_declared_ids_and_kinds():
    c = _claim()
    assert [k.id for k in run_checks(c, SUMMARY, 'smoke')] == ['a-beats-b', 'a-equals-c']
    swapped = _claim(checks=lambda s, m: list(reversed(_claim().checks(s, m))))
    with pytest.raises(RuntimeError, match='do not answer the specs'): run_checks(swapped, SUMMARY, 'smoke')


def test_verdict_fails_only_when_a_part_that_held_is_contradicted(capsys):
    c = _claim()
    worse = dict(SUMMARY, b=[v + 0.01 for v in SUMMARY['a']])   # a now scores below b: contradicted
    noisy = dict(SUMMARY, b=[0.78, 0.72, 0.74, 0.79, 0.70])      # a − b straddles the margin: inconclusive
    held = {'a-beats-b': 'holds', 'a-equals-c': 'holds'}
    assert [k.outcome for k in run_checks(c, worse, 'smoke')][0] == 'contradicted'
    assert [k.outcome for k in run_checks(c, noisy, 'smoke')][0] == 'inconclusive'
    with pytest.raises(AssertionError, match='a-beats-b'):
        verdict(c, run_checks(c, worse, 'smoke'), 'smoke', committed=held)
    verdict(c, run_checks(c, noisy, 'smoke'), 'smoke', committed=held)     # inconclusive: printed, never failed
    out = capsys.readouterr().out
    assert 'INCONCLUSIVE  a-beats-b' in out and 'NOTE: a-beats-b is inconclusive' in out
    # contradicted in the committed verdict too: printed, not raised
    verdict(c, run_checks(c, worse, 'smoke'), 'smoke', committed=dict(held, **{'a-beats-b': 'contradicted'}))
    # no committed verdict: a recorded known failure is not raised, an unrecorded contradiction is
    known = _claim(known={'smoke': {'a-beats-b': 'measured 0.0'}})
    assert regressions(known, run_checks(known, worse, 'smoke'), 'smoke', {}) == []
    assert regressions(c, run_checks(c, worse, 'smoke'), 'smoke', {}) == ['a-beats-b']
    assert 'recorded at this scale' in (verdict(known, run_checks(known, worse, 'smoke'), 'smoke', committed={}) and
                                        capsys.readouterr().out)


def test_label_counts_claim_parts_and_keeps_design_checks_apart():
    specs = [Spec('p1', 's', 'differs', 't'), Spec('p2', 's', 'differs', 't'),
             Spec('grid', 's', 'threshold', 't', design=True), Spec('p3', 's', 'differs', 't', requires='p1')]
    mk = lambda id, o: stats.Check(id, 's', 'threshold' if id == 'grid' else 'differs', 0, (0, 1), 0, False, 5,
                                   outcome=o)
    claim = Claim(name='t', title='t', paper='p', notebook='99_t.ipynb', specs=specs, presets={'smoke': {}},
                  run=None, analyse=None, plot=None, table=None,
                  checks=lambda s, m: [mk(i, o) for i, o in s.items()])
    out = run_checks(claim, dict(p1='inconclusive', p2='holds', grid='contradicted', p3='holds'), 'smoke')
    assert out[3].outcome == 'not testable' and 'presupposes `p1`' in out[3].detail
    lab, counts = label(claim, out)
    assert lab == 'mixed' or lab == 'inconclusive'
    assert lab == 'mixed' and 'design checks: 0 of 1 met' in counts and '1 not testable' in counts
    out = run_checks(claim, dict(p1='holds', p2='holds', grid='contradicted', p3='holds'), 'smoke')
    assert label(claim, out)[0] == 'holds'          # a design check does not count in the label
    out = run_checks(claim, dict(p1='contradicted', p2='contradicted', grid='holds', p3='holds'), 'smoke')
    assert label(claim, out)[0] == 'contradicted'
    out = run_checks(claim, dict(p1='inconclusive', p2='inconclusive', grid='holds', p3='holds'), 'smoke')
    assert label(claim, out)[0] == 'inconclusive'
    with pytest.raises(ValueError, match='presuppose itself'): Spec('p', 's', 'differs', 't', requires='p')


def test_all_of_reports_the_part_nearest_to_failing():
    parts = [stats.equivalent(f'b{k}', [0.1, 0.2, 0.3, 0.25], [0.1 + d, 0.2 + d, 0.3 + d, 0.25 + d + 0.001],
                              statement='eq', margin=0.02) for k, d in [(1, 0.001), (2, 0.015)]]
    c = all_of('both', parts, statement='both equal')
    assert c.id == 'both' and c.holds == all(p.holds for p in parts) and c.detail.startswith('worst at b2')
    assert all_of('none', [], statement='nothing').outcome == 'not testable'
    bad = stats.equivalent('b3', [0.1, 0.2, 0.3, 0.25], [0.2, 0.3, 0.4, 0.35], statement='eq', margin=0.02)
    assert bad.outcome == 'contradicted' and all_of('all', parts + [bad], statement='x').outcome == 'contradicted'


def test_verdict_files_round_trip_and_make_the_table(tmp_path):
    c = _claim()
    checks = run_checks(c, SUMMARY, 'smoke')
    path = save_verdict(tmp_path, c, 'smoke', checks, runs=5, seeds=5)
    (v,) = load_verdicts(tmp_path)
    assert path.name == 'toy-smoke.json' and [k.to_dict() for k in v['checks']] == [k.to_dict() for k in checks]
    table = claims_table([v])
    assert '| [a toy claim](nbs/99_toy.ipynb) | nobody 2026 | smoke | **holds** (2 parts: 2 holds) |' in table
    (tmp_path / 'bad.json').write_text('{"claim": ')
    with pytest.raises(ValueError, match='bad.json is damaged'): load_verdicts(tmp_path)


def test_readme_table_is_replaced_between_its_markers():
    text = 'head\n<!-- claims-table:start -->\nold\n<!-- claims-table:end -->\ntail\n'
    assert readme_with_table(text, 'new') == 'head\n<!-- claims-table:start -->\nnew\n<!-- claims-table:end -->\ntail\n'
    with pytest.raises(ValueError, match='markers'): readme_with_table('no markers', 'x')


def test_every_committed_verdict_answers_its_claims_current_checks():
    from sgd_noise import get_claim
    vs = load_verdicts(ROOT / 'verdicts')
    assert {v['claim'] for v in vs} >= {'two-regimes', 'step-budget', 'epoch-budget', 'noise-scale', 'sharp-flat'}
    for v in vs:
        assert [k.id for k in v['checks']] == [s.id for s in get_claim(v['claim']).specs], v['claim']


def test_readme_claims_table_is_what_report_writes(capsys):
    "The README's table is generated: `sgd-noise report --check` fails when it differs from the verdict files."
    code = main(['report', '--check', '--verdicts', str(ROOT / 'verdicts'), '--readme', str(ROOT / 'README.md')])
    assert code == 0, capsys.readouterr().out


def test_report_check_fails_on_a_hand_edited_table(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text((ROOT / 'README.md').read_text().replace('| **mixed** (', '| **holds** (', 1))
    assert main(['report', '--check', '--verdicts', str(ROOT / 'verdicts'), '--readme', str(readme)]) == 1
    assert main(['report', '--verdicts', str(ROOT / 'verdicts'), '--readme', str(readme)]) == 0
    assert readme.read_text() == (ROOT / 'README.md').read_text()


BLOCK_IPYWIDGETS = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'ipywidgets': raise ImportError(f'{name} is blocked here')
sys.meta_path.insert(0, Blocker())
from sgd_noise.claims import claims
print(' '.join(claims()))
"""


def test_claims_import_without_ipywidgets():
    "The registry imports every module, and a GPU image may lack ipywidgets: only the widget builders may need it."
    r = subprocess.run([sys.executable, '-c', BLOCK_IPYWIDGETS], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == list(claims())
