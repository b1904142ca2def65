"The course around the notebooks: the website builds offline, every notebook has a page, a Colab link and an install cell."
import configparser, json, re, subprocess, sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(str(p.relative_to(ROOT / 'nbs').with_suffix('')) for p in (ROOT / 'nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts))
CFG = configparser.ConfigParser(); CFG.read(ROOT / 'settings.ini'); CFG = CFG['DEFAULT']


def colab_url(nb: str) -> str:
    return f"https://colab.research.google.com/github/{CFG['user']}/{CFG['repo']}/blob/{CFG['branch']}/nbs/{nb}.ipynb"


def test_every_notebook_is_in_the_toc_in_course_order():
    "The course opens with the playground and the claims; each claim's parts sit under it; the library is an appendix."
    toc = yaml.safe_load((ROOT / 'nbs' / '_toc.yml').read_text())
    chapters = [c for part in toc['parts'] for c in part['chapters']]
    files = [toc['root']] + [f for c in chapters for f in [c['file']] + [s['file'] for s in c.get('sections', [])]]
    assert sorted(files) == NBS and len(files) == len(set(files))
    parts = [[c['file'] for c in part['chapters']] for part in toc['parts']]
    assert parts[0] == ['notation'], 'the front matter: notation, glossary, bibliography'
    assert parts[1] == ['course/01_playground'], 'the first hands-on lesson comes next'
    claims = [str(Path(c.notebook).with_suffix('')) for c in __import__('sgd_noise.claims').claims.claims().values()]
    assert parts[2] == claims, 'then every claim, in number order'
    for c in chapters:   # a claim's parts (06a, 06b, ...) are sections of the claim whose number they share
        for s in c.get('sections', []):
            assert s['file'].startswith(c['file'].split('_')[0]) and s['file'] > c['file'], (c['file'], s['file'])
    library = [f for part in parts[2:] for f in part if not f.startswith('claims/')]
    assert all(toc['parts'][k]['caption'].startswith('Appendix') for k in range(len(parts))
               if any(f in library for f in parts[k])), 'the library notebooks form the appendix'


def test_every_notebook_has_a_colab_link_in_the_readme_and_the_index():
    readme, index = (ROOT / 'README.md').read_text(), (ROOT / 'nbs' / 'index.ipynb').read_text()
    for nb in NBS:
        if nb == 'index': continue
        assert colab_url(nb) in readme and colab_url(nb) in index, nb


def test_every_notebook_installs_the_package_when_it_is_missing():
    pip = f"git+https://github.com/{CFG['user']}/{CFG['repo']}"
    for nb in NBS:
        cells = nbformat.read(ROOT / 'nbs' / f'{nb}.ipynb', as_version=4).cells
        code = [c.source for c in cells if c.cell_type == 'code'][:3]
        assert any(pip in c and 'enable_custom_widget_manager' in c and 'PYTEST_CURRENT_TEST' in c for c in code), nb


def test_the_website_builds_offline_with_a_page_per_notebook(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / 'jupyter-book'), 'build', str(ROOT / 'nbs'),
                        '--path-output', str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    html = tmp_path / '_build' / 'html'
    for nb in NBS: assert (html / f'{nb}.html').stat().st_size > 5000, nb
    assert (html / 'searchindex.js').exists() and len(list((html / '_images').glob('*.png'))) >= 10
    page = (html / 'claims' / '02_two_regimes.html').read_text()
    assert re.search(r'<img[^>]+_images/', page) and 'colab.research.google.com' in page


CLAIM_NBS = {name: str(Path(c.notebook).with_suffix('')) for name, c in __import__('sgd_noise.claims').claims.claims().items()}


def _means(md: str) -> set:
    "The check ids that a 'What it means if `a` (or `b`) does not hold' paragraph discusses."
    return {i for head in re.findall(r'\*\*What it means if (.*?)\*\*', md) for i in re.findall(r'`([\w-]+)`', head)}


@pytest.mark.parametrize('claim', sorted(CLAIM_NBS))
def test_every_claim_notebook_is_a_lesson_with_the_harness_at_the_end(claim):
    """Objectives, prerequisites and time first; display LaTeX; a summary and exercises, two of them code; a paragraph
    on what it means for every part that does not hold in a committed verdict; the harness (criteria changes, the
    `tiny` plumbing run, configuration checks) only in the closing 'How this verdict is made' section."""
    cells = nbformat.read(ROOT / 'nbs' / f'{CLAIM_NBS[claim]}.ipynb', as_version=4).cells
    front = cells[0].source
    assert all(w in front for w in ('**Learning objectives.**', '**Prerequisites.**', '**Time.**')), claim
    md = '\n'.join(c.source for c in cells if c.cell_type == 'markdown')
    assert '$$' in md, f'{claim}: no display equation'
    heads = [c.source.splitlines()[0] for c in cells if c.cell_type == 'markdown' and c.source.startswith('## ')]
    assert heads[-1] == '## How this verdict is made', (claim, heads[-3:])
    assert '## Summary' in heads and '## Exercises' in heads and heads.index('## Summary') < heads.index('## Exercises')
    end = max(i for i, c in enumerate(cells) if c.source.startswith('## How this verdict is made'))
    for c in cells[:end]:
        if c.cell_type != 'code' or c.source.startswith('#| export'): continue
        assert 'criteria_changes(' not in c.source and "('tiny'" not in c.source, (claim, c.source[:80])
    assert any('criteria_changes(CLAIM)' in c.source for c in cells[end:]), claim
    coding = [c for c in cells if c.cell_type == 'code' and '### BEGIN SOLUTION' in c.source
              and c.source.lstrip().startswith('def ')]
    assert len(coding) >= 2, f'{claim}: {len(coding)} coding exercises'
    for path in sorted((ROOT / 'verdicts').glob(f'{claim}-*.json')):
        verdict = json.loads(path.read_text())
        if verdict.get('claim') != claim: continue
        weak = {c['id'] for c in verdict['checks'] if c['outcome'] != 'holds'}
        assert weak <= _means(md), f'{claim} ({path.name}): no "What it means if" for {sorted(weak - _means(md))}'
