"""The playground as a student meets it: JupyterLab in a real (headless) Chromium, driven by Playwright.

JupyterLab starts on 127.0.0.1 with a token and throw-away config, data, runtime and workspace folders; Chromium is
Debian's (`apt-get install chromium`; no browser download). The test opens the playground, runs every cell, moves the
batch-size slider, presses Train, and waits for a new line in the runs table; the browser console must show no widget
errors. Screenshots go to $SGD_NOISE_SCREENSHOTS (default: a temporary folder; the committed ones are in images/).
Skipped, with the reason, where Chromium or Playwright is missing."""
import os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
playwright = pytest.importorskip('playwright.sync_api', reason='playwright is not installed')
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason='Chromium is not installed (apt-get install chromium)')
FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync']


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


STUDENT_NB = '05_noise_scale'   # a claim notebook whose tiny preset runs in seconds


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server, with throw-away Jupyter folders, on a copy of the playground notebook and the student
    version of a claim notebook (kernels run the `tiny` preset)."""
    from sgd_noise.course.exercises import student_version
    work = tmp_path / 'course' / 'nbs'; work.mkdir(parents=True)
    shutil.copy(ROOT / 'nbs' / 'course/01_playground.ipynb', work)
    nbformat.write(student_version(nbformat.read(ROOT / 'nbs' / 'claims' / f'{STUDENT_NB}.ipynb', as_version=4)),
                   work / f'{STUDENT_NB}.ipynb')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / 'cfg'), JUPYTER_DATA_DIR=str(tmp_path / 'data'),
               JUPYTER_RUNTIME_DIR=str(tmp_path / 'run'), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / 'ws'),
               SGD_NOISE_PROGRESS='0', SGD_NOISE_PRESET='tiny')
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--ServerApp.token={token}', f'--ServerApp.root_dir={work}', '--LabApp.expose_app_in_browser=True',
           '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    if os.geteuid() == 0: cmd.append('--allow-root')   # CI runs as root
    (tmp_path / 'cfg' / 'labconfig').mkdir(parents=True)   # no "Jupyter news?" pop-up over the page
    (tmp_path / 'cfg' / 'labconfig' / 'page_config.json').write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(120):
        try:
            urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=1); break
        except OSError: time.sleep(0.5)
    else:
        proc.kill(); pytest.fail('JupyterLab did not start: ' + (tmp_path / 'lab.log').read_text()[-2000:])
    yield url, token
    proc.terminate()
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()


def _table_rows(page) -> int:
    return page.locator('.widget-html table tr').count()


def test_playground_in_a_real_browser(lab, tmp_path):
    url, token = lab
    shots = Path(os.environ.get('SGD_NOISE_SCREENSHOTS') or tmp_path / 'shots')
    shots.mkdir(parents=True, exist_ok=True)
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        page.goto(f'{url}/lab/tree/01_playground.ipynb?token={token}')
        page.wait_for_selector('.jp-Notebook', timeout=60_000)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000)
        # run the notebook down to the playground widget (the assignments below it train for a minute more)
        cells = nbformat.read(ROOT / 'nbs' / 'course/01_playground.ipynb', as_version=4).cells
        k = next(i for i, c in enumerate(cells) if 'playground.widget()' in c.source)
        page.evaluate(f"""async () => {{
            const app = window.jupyterapp, nb = app.shell.currentWidget;
            await nb.sessionContext.ready;
            nb.content.activeCellIndex = {k};
            await app.commands.execute('notebook:run-all-above');
            await app.commands.execute('notebook:run-cell');
        }}""")
        slider = page.locator('.widget-slider', has=page.locator('label', has_text='B')).first
        slider.wait_for(timeout=120_000)
        slider.scroll_into_view_if_needed()
        before = _table_rows(page)
        handle = slider.locator('.noUi-handle')
        handle.focus(); page.keyboard.press('ArrowRight')                      # B: 32 -> 64
        page.locator('button', has_text='Train').first.click()
        page.wait_for_function(f"document.querySelectorAll('.widget-html table tr').length > {before}",
                               timeout=120_000)
        assert _table_rows(page) > before
        assert 'B=64' in page.locator('.widget-html table').first.inner_text()
        page.locator('.widget-vbox').first.screenshot(path=str(shots / 'browser_playground.png'))
        page.screenshot(path=str(shots / 'browser_playground_page.png'))
        browser.close()
    widget_errors = [e for e in errors if 'widget' in e.lower() or 'model' in e.lower()]
    assert not widget_errors, widget_errors


def _open(page, url, token, name):
    page.goto(f'{url}/lab/tree/{name}?token={token}')
    page.wait_for_selector('.jp-Notebook', timeout=60_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000)


def test_a_student_answers_an_exercise_in_a_real_browser(lab, tmp_path):
    "The student version of a claim notebook: run it all, answer exercise 1, run its test cell, read the verdict."
    url, token = lab
    shots = Path(os.environ.get('SGD_NOISE_SCREENSHOTS') or tmp_path / 'shots')
    shots.mkdir(parents=True, exist_ok=True)
    cells = nbformat.read(lab_nb := tmp_path / 'course' / 'nbs' / f'{STUDENT_NB}.ipynb', as_version=4).cells
    k = next(i for i, c in enumerate(cells) if c.source.startswith('answer_1 = None'))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        _open(page, url, token, lab_nb.name)
        outputs = page.evaluate(f"""async () => {{
            const app = window.jupyterapp, nb = app.shell.currentWidget;
            await nb.sessionContext.ready;
            await app.commands.execute('notebook:run-all-cells');     // the tiny preset: seconds
            const text = i => nb.content.widgets[i].outputArea.node.innerText;
            const before = text({k + 1});
            nb.content.widgets[{k}].model.sharedModel.setSource('answer_1 = 80 / 0.4   # tr Σ / |G|²');
            nb.content.activeCellIndex = {k};
            await app.commands.execute('notebook:run-cell-and-select-next');
            await app.commands.execute('notebook:run-cell');
            return [before, text({k + 1})];
        }}""")
        assert 'exercise 1: not answered yet' in outputs[0], outputs
        assert 'exercise 1: answered (the hidden tests grade it)' in outputs[1], outputs
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
        assert not [e for e in errors if 'Error' in e], errors
        page.locator('.jp-Cell').nth(k).scroll_into_view_if_needed()
        page.screenshot(path=str(shots / 'browser_student_exercise.png'))
        browser.close()
