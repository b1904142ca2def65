"The built wheel, installed into an empty folder outside the repository, carries what the notebooks read there."
import os, shutil, subprocess, sys, zipfile
from pathlib import Path

import nbformat

from sgd_noise.claims import claims

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ['02_two_regimes', '03_step_budget', '04_epoch_budget']   # the claims with committed gpu runs


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-3000:])
    return r


def test_wheel_in_an_empty_folder_runs_the_gpu_sections_and_exercises(tmp_path):
    wheels, site, work, src = (tmp_path / d for d in ('wheels', 'site', 'empty', 'src'))
    # build from a copy of what the build reads (pip builds in the tree, and a build/ left there would leak in)
    src.mkdir()
    for name in ('setup.py', 'settings.ini', 'README.md', 'MANIFEST.in'): shutil.copy(ROOT / name, src / name)
    for d in ('sgd_noise', 'verdicts'):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', str(wheels), str(src)])
    [wheel] = wheels.glob('sgd_noise-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    for nb in NOTEBOOKS:   # the committed gpu stores are package data
        claim = nb[3:].replace('_', '-')
        assert {f'sgd_noise/verdicts/runs/{claim}-gpu.sqlite', f'sgd_noise/verdicts/{claim}-gpu.json'} <= set(names), \
            (claim, [n for n in names if 'verdicts/' in n])
    for claim in claims():   # and every claim's committed smoke run, for SGD_NOISE_RUN=committed
        assert f'sgd_noise/verdicts/runs/{claim}-smoke.pkl.gz' in names, claim
    _run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site), str(wheel)])
    # the notebooks alone, two folders down (their ../../results stays inside), no repository beside them
    (work / 'course' / 'claims').mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(site), SGD_NOISE_PRESET='tiny', SGD_NOISE_PROGRESS='0')
    env.pop('SGD_NOISE_VERDICTS', None); env.pop('SGD_NOISE_IMAGES', None)
    r = _run([sys.executable, '-c', 'import sgd_noise; print(sgd_noise.__file__)'], cwd=work, env=env)
    assert r.stdout.strip().startswith(str(site)), r.stdout   # the wheel's package, not the repository's
    for nb in NOTEBOOKS:
        dst = work / 'course' / 'claims' / f'{nb}.ipynb'
        shutil.copy(ROOT / 'nbs' / 'claims' / f'{nb}.ipynb', dst)   # with solutions: the hidden tests run too
        _run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'notebook', '--execute', '--inplace', dst.name],
             cwd=dst.parent, env=env)
        out = nbformat.read(dst, as_version=4)
        text = '\n'.join(''.join(o.get('text', '')) for c in out.cells if c.cell_type == 'code' for o in c.outputs)
        assert 'gpu' in text and 'answered (the hidden tests grade it)' in text, (nb, text[-1500:])
    # a student's switch: the smoke preset shown from the committed run, training nothing (no results store appears)
    dst = work / 'course' / 'claims' / '02_two_regimes.ipynb'
    shutil.copy(ROOT / 'nbs' / 'claims' / '02_two_regimes.ipynb', dst)
    _run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'notebook', '--execute', '--inplace', dst.name],
         cwd=dst.parent, env=dict(env, SGD_NOISE_PRESET='smoke', SGD_NOISE_RUN='committed'))
    out = nbformat.read(dst, as_version=4)
    text = '\n'.join(''.join(o.get('text', '')) for c in out.cells if c.cell_type == 'code' for o in c.outputs)
    assert 'flat-small-batch' in text and 'answered (the hidden tests grade it)' in text, text[-1500:]
    assert (work / 'results').is_dir() and not (work / 'results' / 'two-regimes-smoke.sqlite').exists()
    assert not (ROOT / 'nbs' / 'claims' / 'results').exists()
