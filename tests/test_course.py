"The course around the notebooks: the website builds offline, every notebook has a page, a Colab link and an install cell."
import configparser, re, subprocess, sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(str(p.relative_to(ROOT / 'nbs').with_suffix('')) for p in (ROOT / 'nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts))
CFG = configparser.ConfigParser(); CFG.read(ROOT / 'settings.ini'); CFG = CFG['DEFAULT']


def colab_url(nb: str) -> str:
    return f"https://colab.research.google.com/github/{CFG['user']}/{CFG['repo']}/blob/{CFG['branch']}/nbs/{nb}.ipynb"


def test_every_notebook_is_in_the_toc_in_course_order():
    toc = yaml.safe_load((ROOT / 'nbs' / '_toc.yml').read_text())
    files = [toc['root']] + [c['file'] for part in toc['parts'] for c in part['chapters']]
    assert sorted(files) == NBS
    for part in toc['parts']:   # a part is a folder of nbs/ (the tools sit at the top), its notebooks in number order
        chapters = [c['file'] for c in part['chapters']]
        assert chapters == sorted(chapters) and len({f.rpartition('/')[0] for f in chapters}) == 1, part['caption']


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
