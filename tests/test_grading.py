"An instructor's workflow: nbgrader releases an assignment from the course folder and autogrades the submissions."
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

from sgd_noise.course.exercises import write_course

ROOT = Path(__file__).resolve().parents[1]
NAME = '05_noise_scale'   # a claim notebook whose tiny preset trains in seconds


def _nbgrader(course, *args):
    # nbgrader runs the `alembic` command by name: the environment's bin/ must be on PATH, as in an activated venv
    # (the README's test command calls .venv/bin/python without activating it)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')])
    env = dict(os.environ, SGD_NOISE_PRESET='tiny', SGD_NOISE_PROGRESS='0', PATH=path)
    r = subprocess.run([sys.executable, '-m', 'nbgrader', *args], cwd=course, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, f'nbgrader {" ".join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-6000:]}'
    return r


def test_release_then_autograde_gives_full_marks_solved_and_zero_unsolved(tmp_path):
    course = tmp_path / 'course'
    [src] = write_course(course, src=ROOT / 'nbs', notebooks=[f'claims/{NAME}'])
    _nbgrader(course, 'generate_assignment', NAME, '--force')
    released = course / 'release' / NAME / f'{NAME}.ipynb'
    text = released.read_text()
    assert 'BEGIN SOLUTION' not in text and 'HIDDEN TESTS' not in text and 'expect(' not in text
    for student, copy in (('solved', src), ('unsolved', released)):
        dst = course / 'submitted' / student / NAME / f'{NAME}.ipynb'
        dst.parent.mkdir(parents=True)
        shutil.copy(copy, dst)
    _nbgrader(course, 'autograde', NAME, '--force', '--create')
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        solved, unsolved = (gb.find_submission(NAME, s) for s in ('solved', 'unsolved'))
        points = sum(c.get('metadata', {}).get('nbgrader', {}).get('points', 0)
                     for c in json.loads(src.read_text())['cells'])
        assert solved.max_score == points >= 3
        assert (solved.score, unsolved.score) == (solved.max_score, 0), (solved.score, unsolved.score)
