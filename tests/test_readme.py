"The README's code works as pasted into a fresh folder (a newcomer's first contact with the package)."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block(after: str) -> str:
    text = (ROOT / 'README.md').read_text()
    return re.search(r'```python\n(.*?)```', text[text.index(after):], re.S).group(1)


def test_using_the_package_snippet_runs_as_pasted(tmp_path):
    "In an empty folder (no results/ yet), the snippet trains, sweeps into a new store, and prints the optima."
    code = _block('## Using the package') + '\nprint(best_lr(df, by="test_acc").to_string())\n'
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env={'SGD_NOISE_PROGRESS': '0', 'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / 'results' / 'my-sweep.sqlite').exists() and 'batch_size' in r.stdout
