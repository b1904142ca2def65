"Exercises: graded by hidden tests that the student versions lack; those run end to end, every check unanswered."
import ast, os, shutil, subprocess, sys
from pathlib import Path

import nbformat
import pytest

from sgd_noise.course.exercises import (NOT_ANSWERED, answered, expect, has_exercises, student_version,
                                        write_student_versions)

ROOT = Path(__file__).resolve().parents[1]
from sgd_noise.claims import claims

CLAIM_NOTEBOOKS = [str(Path(c.notebook).with_suffix('')) for c in claims().values()]   # e.g. 'claims/02_two_regimes'


@pytest.mark.parametrize('answer, expected, opts, ok', [
    (64, 64, {}, True), (63.5, 64, dict(rel=0.01), True), (60, 64, dict(rel=0.01), False), ('64', 64, {}, False),
    (float('nan'), 64, {}, False), (float('nan'), float('nan'), {}, True), (1.0, float('nan'), {}, False), (True, 1, {}, False), (' Yes', {'yes', 'y'}, {}, True), ('maybe', 'yes', {}, False),
    ((0.25, 'yes'), (0.25, 'yes'), {}, True), ((0.25,), (0.25, 'yes'), {}, False), (object(), 3, {}, False),
    ([1, 2], 5, {}, False), (5, [1, 2], {}, False), (None, 64, {}, False), (..., 64, {}, False)])
def test_expect_passes_right_answers_and_never_names_the_expected_value(answer, expected, opts, ok):
    if ok: expect(answer, expected, name='exercise 1', **opts)
    else:
        with pytest.raises(AssertionError) as e: expect(answer, expected, name='exercise 1', **opts)
        msg = str(e.value)
        assert msg.startswith('exercise 1: ') and repr(expected) not in msg[12:].replace(repr(answer), '')


def test_answered_prints_one_line_and_never_raises(capsys):
    assert answered(1, 'a', name='exercise 2') and not answered(1, None, name='exercise 2', hint='h')
    assert not answered(...)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ['exercise 2: answered (the hidden tests grade it)', f'exercise 2: {NOT_ANSWERED} — hint: h']


def _grader(c): return c.get('metadata', {}).get('nbgrader', {})


def test_every_claim_notebook_has_graded_exercises_whose_visible_cells_hide_the_answers():
    for name in CLAIM_NOTEBOOKS + ['course/01_playground']:
        nb = nbformat.read(ROOT / 'nbs' / f'{name}.ipynb', as_version=4)
        code = [c for c in nb.cells if c.cell_type == 'code']
        sol = [i for i, c in enumerate(code) if '### BEGIN SOLUTION' in c.source]
        assert len(sol) >= 2 and all(_grader(code[i])['solution'] for i in sol), name
        for i in sol:   # each answer cell is followed by its test cell: points, hidden tests, a visible answered()
            test = code[i + 1]
            assert _grader(test).get('grade') and _grader(test).get('points', 0) > 0, (name, test.source[:80])
            assert '### BEGIN HIDDEN TESTS' in test.source and 'answered(' in test.source.split('### BEGIN')[0], name
        ids = [_grader(c)['grade_id'] for c in code if _grader(c)]
        assert len(ids) == len(set(ids)), name
        stu = student_version(nb)
        for c in stu.cells:
            if c.cell_type != 'code': continue
            assert 'BEGIN SOLUTION' not in c.source and 'HIDDEN TESTS' not in c.source and 'expect(' not in c.source
            ast.parse('\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith(('%', '!'))))
            if _grader(c).get('solution'): assert c.source.startswith(('answer_', 'def ')), (name, c.source[:80])
        assert has_exercises(nb) and not has_exercises(stu)


def test_student_versions_keep_the_figures_and_tables_but_not_the_exercise_outputs():
    nb = nbformat.read(ROOT / 'nbs' / 'claims' / '05_noise_scale.ipynb', as_version=4)
    stu = student_version(nb)
    kept = [o for c in stu.cells if c.cell_type == 'code' for o in c.outputs]
    assert any('image/png' in o.get('data', {}) for o in kept) and any('text/html' in o.get('data', {}) for o in kept)
    assert all(not c.outputs for c in stu.cells if c.cell_type == 'code' and _grader(c))


def test_student_versions_run_and_say_not_answered(tmp_path):
    "The student version of every claim notebook runs (tiny preset) and every self-check says 'not answered yet'."
    course = tmp_path / 'course'
    written = write_student_versions(ROOT / 'nbs', course / 'nbs')
    (course / 'verdicts').symlink_to(ROOT / 'verdicts')   # beside nbs/, as in a clone: the committed gpu runs
    named = {p: str(p.relative_to(course / 'nbs').with_suffix('')) for p in written}
    assert set(named.values()) >= set(CLAIM_NOTEBOOKS) | {'course/01_playground'}
    env = dict(os.environ, SGD_NOISE_PRESET='tiny', SGD_NOISE_PROGRESS='0')
    for p in written:
        if named[p] not in CLAIM_NOTEBOOKS + ['course/01_playground']: continue
        r = subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'notebook', '--execute', '--inplace',
                            str(p)], cwd=p.parent, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (p.name, r.stderr[-3000:])
        nb = nbformat.read(p, as_version=4)
        text = [''.join(o.get('text', '')) for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
        checks = [t for t in text if 'exercise ' in t]
        n = sum(bool(c.metadata.get('nbgrader', {}).get('grade')) for c in nb.cells)
        assert len(checks) == n and all(NOT_ANSWERED in t for t in checks), (p.name, checks)
    with pytest.raises(ValueError, match='not a folder'): write_student_versions(tmp_path / 'missing', tmp_path / 'x')
