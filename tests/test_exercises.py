"Exercises: the self-check never raises, and the student versions run end to end with every check unanswered."
import os, shutil, subprocess, sys
from pathlib import Path

import nbformat
import pytest

from sgd_noise.course.exercises import (NOT_ANSWERED, has_exercises, self_check, student_version,
                                        write_student_versions)

ROOT = Path(__file__).resolve().parents[1]
from sgd_noise.claims import claims

CLAIM_NOTEBOOKS = [str(Path(c.notebook).with_suffix('')) for c in claims().values()]   # e.g. 'claims/02_two_regimes'


@pytest.mark.parametrize('answer, expected, opts, verdict', [
    (None, 64, {}, NOT_ANSWERED), (64, 64, {}, 'correct'), (63.5, 64, dict(rel=0.01), 'correct'),
    (60, 64, dict(rel=0.01), 'not yet'), ('64', 64, {}, 'not yet'), (float('nan'), 64, {}, 'not yet'),
    (True, 1, {}, 'not yet'), (' Yes', {'yes', 'y'}, {}, 'correct'), ('maybe', 'yes', {}, 'not yet'),
    ((0.25, 'yes'), (0.25, 'yes'), {}, 'correct'), ((0.25,), (0.25, 'yes'), {}, 'not yet'), (object(), 3, {}, 'not yet'),
    ([1, 2], 5, {}, 'not yet'), (5, [1, 2], {}, 'not yet')])
def test_self_check_answers_and_never_raises(answer, expected, opts, verdict, capsys):
    assert self_check(answer, expected, hint='h', **opts).startswith(verdict)
    assert capsys.readouterr().out.count('\n') == 1


def test_every_claim_notebook_has_two_to_four_exercises_with_solutions():
    for name in CLAIM_NOTEBOOKS:
        nb = nbformat.read(ROOT / 'nbs' / f'{name}.ipynb', as_version=4)
        sol = [c for c in nb.cells if c.cell_type == 'code' and '### BEGIN SOLUTION' in c.source]
        assert 2 <= len(sol) <= 4 and all(c.metadata['nbgrader']['solution'] for c in sol), name
        assert sum('self_check(' in c.source for c in nb.cells if c.cell_type == 'code') == len(sol), name
        stu = student_version(nb)
        assert not any('### BEGIN SOLUTION' in c.source for c in stu.cells) and has_exercises(nb)
        assert all(c.source.startswith('answer_') for c in stu.cells if c.metadata.get('nbgrader', {}).get('solution'))


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
        n = sum(bool(c.metadata.get('nbgrader', {}).get('solution')) for c in nb.cells)
        assert len(checks) == n and all(NOT_ANSWERED in t for t in checks), (p.name, checks)
    with pytest.raises(ValueError, match='not a folder'): write_student_versions(tmp_path / 'missing', tmp_path / 'x')
