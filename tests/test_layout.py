"""The package's layout (CONTRIBUTING.md, "The notebooks are the source"): names come from where they live.

Inside the package every name is imported from the module that defines it, no private name crosses a module, only
the fronts (`__init__.py`) gather names, a front never hides a module, there is one `evaluate`, and the exported
code keeps to whole-sentence module docstrings and lines of at most 120 characters."""
import ast, importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / 'sgd_noise'
MODULES = {'.'.join(p.relative_to(PKG.parent).with_suffix('').parts): p
           for p in sorted(PKG.rglob('*.py')) if p.name not in ('__init__.py', '_modidx.py')}
FRONTS = ['sgd_noise'] + sorted('sgd_noise.' + p.parent.name for p in PKG.glob('*/__init__.py'))


def _tree(mod): return ast.parse(MODULES[mod].read_text())

def _patched(n) -> bool:
    "A method added to a class in a later cell (fastcore's `@patch`): the class's name, not the module's."
    return any('patch' in ast.unparse(d) for d in getattr(n, 'decorator_list', []))

def _defined(mod) -> set:
    names = set()
    for n in _tree(mod).body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not _patched(n): names.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                names |= {x.id for x in ast.walk(t) if isinstance(x, ast.Name)}
    return names

def _imports(mod):
    "(line, source module, name, local name) of every name `mod` imports from the package."
    parts = mod.split('.')
    for n in ast.walk(_tree(mod)):
        if not isinstance(n, ast.ImportFrom): continue
        if n.level: src = '.'.join(parts[:-n.level] + ([n.module] if n.module else []))
        elif (n.module or '').split('.')[0] == 'sgd_noise': src = n.module
        else: continue
        for a in n.names: yield n.lineno, src, a.name, a.asname or a.name


def test_every_name_is_imported_from_the_module_that_defines_it():
    wrong = [f'{m}:{line} imports {name} from {src}' for m in MODULES for line, src, name, _ in _imports(m)
             if f'{src}.{name}' not in MODULES and f'{src}.{name}' not in FRONTS
             and (src not in MODULES or name not in _defined(src))]
    assert not wrong, '\n'.join(wrong)


def test_no_private_name_crosses_a_module():
    crossing = [f'{m}:{line} imports {name} from {src}' for m in MODULES for line, src, name, _ in _imports(m)
                if name.startswith('_') and name != '__future__' and src != '__future__']
    assert not crossing, '\n'.join(crossing)


def test_no_module_passes_on_names_it_does_not_use():
    "A name imported and never used is a re-export in disguise (and nbdev's `_all_` is the explicit kind)."
    passed = []
    for m in MODULES:
        tree = _tree(m)
        used = {x.id for x in ast.walk(tree) if isinstance(x, ast.Name)}
        passed += [f'{m}: {local}' for _, src, _, local in _imports(m) if src != '__future__' and local not in used]
        assert '_all_' not in _defined(m), f'{m} re-exports names with _all_'
    assert not passed, '\n'.join(passed)


def test_there_is_one_evaluate():
    defs = [m for m in MODULES if 'evaluate' in _defined(m)]
    assert defs == ['sgd_noise.core.metrics'], defs


@pytest.mark.parametrize('front', FRONTS)
def test_the_fronts_name_what_their_modules_define_and_hide_no_module(front):
    pkg = importlib.import_module(front)
    assert pkg.__all__, f'{front} names no public API'
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        home = getattr(obj, '__module__', None)
        if home is not None and home.startswith('sgd_noise'):
            assert name in _defined(home), f'{front}.{name} is not defined in {home}'
        assert not (importlib.util.find_spec(f'{front}.{name}') if f'{front}.{name}' in MODULES else None), \
            f'{front}.{name} is a module and a public name'
    subs = {p.stem for p in (PKG if front == 'sgd_noise' else PKG / front.split('.')[1]).iterdir()}
    assert not subs & set(pkg.__all__), f'{front}: a public name hides a module: {subs & set(pkg.__all__)}'


def test_the_top_front_loads_lazily():
    "`import sgd_noise` (what the command's start-up pays) imports no torch; asking for a name loads it."
    import subprocess, sys
    code = "import sys, sgd_noise; print('torch' in sys.modules); sgd_noise.TrainConfig; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ['False', 'True'], out


def test_module_docstrings_are_sentences_and_lines_fit():
    short, long = [], []
    for m, p in MODULES.items():
        doc = ast.get_docstring(ast.parse(p.read_text())) or ''
        if not doc.rstrip().endswith(('.', '?', '.)')): short.append(f'{m}: {doc[-50:]!r}')
        in_all = False
        for k, line in enumerate(p.read_text().splitlines(), 1):
            in_all = in_all or line.startswith('__all__')    # nbdev writes __all__; every other line is ours
            if in_all:
                in_all = not line.rstrip().endswith(']'); continue
            if len(line) > 120: long.append(f'{m}:{k} ({len(line)} characters)')
    assert not short, '\n'.join(short)
    assert not long, '\n'.join(long)
