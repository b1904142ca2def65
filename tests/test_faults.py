"""The fault battery: a sweep killed at random points, concurrent writers, a full disk, damaged and read-only stores.

Each case checks the same two things: nothing finished is lost (every run that was stored is still there, with
the numbers it had) and nothing is recomputed (a resumed sweep trains only what is missing, and stored rows keep
their `finished_at`). Runs are compared bit for bit with one uninterrupted sweep, trained on one thread in every
process: the same machine and thread count give the same bits (see "What is reproducible" in sweeps/00_sweep)."""
import contextlib, json, math, os, random, shutil, signal, sqlite3, subprocess, sys, time

import pytest
import torch

import sgd_noise.sweeps.sweeping as sweep_module
from sgd_noise.cli import main
from sgd_noise import ResultStore, grid, sweep, TrainConfig

# 24 runs in 6 groups of 4 (a group per batch size), a fraction of a second each: kills land between and inside groups
CONFIGS = ("grid(TrainConfig(dataset='mnist1d', n_train=512, n_test=128, steps=250, n_evals=2), "
           "batch_size=[8, 16, 24, 32, 40, 48], lr=[0.02, 0.05], seed=[0, 1])")
N_RUNS = 24
SAME = ('config', 'status', 'final', 'history', 'steps_done', 'diverged_at')   # what a rerun must give bit for bit

_WORKER = f'''
import sys, torch
torch.set_num_threads(1)
from sgd_noise import grid, sweep, TrainConfig
sweep({CONFIGS}, store=sys.argv[1], progress=False)
'''


def _configs(): return eval(CONFIGS)


@contextlib.contextmanager
def one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(old)


def _bits(results) -> dict:
    "{config_id: the JSON of what must not change}: NaN compares equal to NaN as text."
    return {TrainConfig(**r['config']).config_id: json.dumps({k: r[k] for k in SAME}, sort_keys=True) for r in results}


def _stamps(store) -> dict:
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as con:
        return dict(con.execute('SELECT config_id, finished_at FROM runs'))


def _count(store) -> int:
    try: return len(_stamps(store)) if os.path.exists(store) else 0
    except sqlite3.OperationalError: return 0   # not made yet, or locked for a moment


def _healthy(store) -> bool:
    with contextlib.closing(sqlite3.connect(store)) as con:
        return con.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'


def _side_files(path) -> list: return [p for p in (f'{path}-wal', f'{path}-shm') if os.path.exists(p)]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The uninterrupted sweep on one thread: its store (closed, no journal beside it) and its runs' bits."
    store = str(tmp_path_factory.mktemp('reference') / 'ref.sqlite')
    with one_thread(): sweep(_configs(), store=store, progress=False)
    assert not _side_files(store)
    return store, _bits(ResultStore(store).results())


@pytest.fixture
def trained(monkeypatch):
    "The sizes of the groups the sweep trains in this process (to see that nothing is recomputed)."
    sizes, real = [], sweep_module.train_group
    def counting(group, **kw):
        sizes.append(len(group)); return real(group, **kw)
    monkeypatch.setattr(sweep_module, 'train_group', counting)
    return sizes


def _worker(tmp_path, store) -> subprocess.Popen:
    script = tmp_path / 'worker.py'
    if not script.exists(): script.write_text(_WORKER)
    return subprocess.Popen([sys.executable, str(script), store])


def _kill_after(p, store, rows, rng) -> bool:
    "SIGKILL `p` a random moment (up to 0.1 s) after the store holds `rows` runs; False if it finished first."
    while _count(store) < rows and p.poll() is None: time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.1))
    if p.poll() is not None: return False
    os.kill(p.pid, signal.SIGKILL); p.wait()
    return True


def _check_complete(store, reference, kept):
    "Every run once, bit for bit the uninterrupted sweep's, and the rows kept before a kill untouched."
    assert _healthy(store)
    stamps = _stamps(store)
    assert len(stamps) == N_RUNS and all(stamps[k] == v for k, v in kept.items())
    assert _bits(ResultStore(store).results()) == reference[1]


# ---------------------------------------------------------------- kills and concurrent writers

def test_sweep_killed_at_random_points_then_resumed(tmp_path, reference):
    "SIGKILL a real sweep process at seeded random moments (between and inside groups), then resume it."
    store, rng, kept, kills = str(tmp_path / 'kill.sqlite'), random.Random(10), {}, 0
    for _ in range(3):
        have = _count(store)
        if have >= N_RUNS - 4: break
        kills += _kill_after(_worker(tmp_path, store), store, rng.randint(have + 1, min(have + 8, N_RUNS - 4)), rng)
        kept.update(_stamps(store))
    assert kills >= 2, 'the sweep finished before it could be killed: make the workload larger'
    assert 0 < len(kept) < N_RUNS
    assert _worker(tmp_path, store).wait(timeout=300) == 0
    _check_complete(store, reference, kept)


def test_concurrent_writers_one_killed(tmp_path, reference):
    "Two processes share a store; one is killed mid-sweep; the other finishes; a rerun finds nothing to add."
    store, rng = str(tmp_path / 'shared.sqlite'), random.Random(2)
    a, b = _worker(tmp_path, store), _worker(tmp_path, store)
    assert _kill_after(a, store, rng.randint(2, 12), rng), 'the sweep finished before it could be killed'
    assert b.wait(timeout=300) == 0
    kept = _stamps(store)
    assert _worker(tmp_path, store).wait(timeout=300) == 0
    _check_complete(store, reference, kept)


# ---------------------------------------------------------------- a full disk

_FULL_DISK = f'''
import json, os, resource, signal, sys, torch
torch.set_num_threads(1)
import sgd_noise.sweeps.sweeping as sm
from sgd_noise import grid, sweep, TrainConfig
store, how = sys.argv[1], sys.argv[2]
real, calls = sm.train_group, []
def fill_after_two(group, **kw):
    calls.append(len(group))
    if len(calls) == 3:   # two groups are stored: now the disk is full
        if how == 'rlimit':
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG) instead of killing
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        else:
            with open(os.path.join(os.path.dirname(store), 'filler'), 'wb', buffering=0) as f:
                try:
                    while True: f.write(b'x' * 512)
                except OSError: pass   # no space left on the device
    return real(group, **kw)
sm.train_group = fill_after_two
try: sweep({CONFIGS}, store=store, progress=False); print(json.dumps('no error'))
except ValueError as e: print(json.dumps(str(e)))
'''


def _disk(tmp_path):
    "('tmpfs', folder) for a small tmpfs (as root, where mount works), else ('rlimit', folder), else skip."
    folder = tmp_path / 'disk'; folder.mkdir()
    if os.geteuid() == 0 and subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(folder)],
                                            capture_output=True).returncode == 0:
        return 'tmpfs', folder
    pytest.importorskip('resource', reason='neither a tmpfs (needs root) nor RLIMIT_FSIZE (needs Unix) is available')
    return 'rlimit', folder


def test_full_disk_keeps_the_stored_runs_and_resumes(tmp_path, reference, trained):
    how, folder = _disk(tmp_path)
    try:
        store = str(folder / 'full.sqlite'); script = tmp_path / 'full.py'; script.write_text(_FULL_DISK)
        out = subprocess.run([sys.executable, str(script), store, how], capture_output=True, text=True, timeout=300)
        msg = json.loads(out.stdout.strip().splitlines()[-1])
        assert 'cannot write to it' in msg and store in msg and 'rerun to resume' in msg and '\n' not in msg, out.stderr
        try: assert len(ResultStore(store).results()) == 8                  # read on the full disk, or
        except ValueError as e: assert 'cannot be read here' in str(e) and 'free some space' in str(e)  # told why not
        if os.path.exists(folder / 'filler'): os.remove(folder / 'filler')   # space again
        assert _healthy(store)
        kept = _stamps(store)
        assert len(kept) == 8                                       # the two groups stored before the disk filled
        with one_thread(): sweep(_configs(), store=store, progress=False)
        assert sum(trained) == N_RUNS - 8                           # only the missing runs were trained
        _check_complete(store, reference, kept)
    finally:
        if how == 'tmpfs': subprocess.run(['umount', str(folder)])


# ---------------------------------------------------------------- damaged stores

def _zero_middle_page(path):
    b = bytearray(open(path, 'rb').read()); n = len(b) // 4096
    k = n // 2; b[k * 4096:(k + 1) * 4096] = bytes(4096); open(path, 'wb').write(bytes(b))


def _break_one_row(path):
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as con:
        con.execute("UPDATE runs SET history = '[{\"step\": 0, \"train_lo' WHERE rowid = 5")


def _row_id(path, rowid) -> str:
    with contextlib.closing(sqlite3.connect(path)) as con:
        return con.execute('SELECT config_id FROM runs WHERE rowid = ?', (rowid,)).fetchone()[0]


def _truncate(path):
    b = open(path, 'rb').read(); open(path, 'wb').write(b[:len(b) * 2 // 3])


def _zero_header(path):
    b = bytearray(open(path, 'rb').read()); b[:100] = bytes(100); open(path, 'wb').write(bytes(b))


@pytest.mark.parametrize('damage, says', [(_zero_middle_page, 'is damaged (quick_check: '),
                                          (_truncate, 'is damaged'),
                                          (_break_one_row, 'has a damaged history'),
                                          (_zero_header, 'not an sgd_noise results store')])
def test_damaged_store_is_refused_untouched_then_salvaged(tmp_path, reference, trained, capsys, damage, says):
    store, new = str(tmp_path / 'damaged.sqlite'), str(tmp_path / 'salvaged.sqlite')
    shutil.copy(reference[0], store); damage(store)
    before = open(store, 'rb').read()
    with pytest.raises(ValueError) as e: sweep(_configs(), store=store, progress=False)
    msg = str(e.value)
    assert says in msg and store in msg and '\n' not in msg and trained == []      # refused before any training
    if damage is _break_one_row: assert _row_id(reference[0], 5) in msg                # names the run
    assert open(store, 'rb').read() == before and not _side_files(store)          # never modified, nothing beside
    if damage is _zero_header:
        with pytest.raises(ValueError, match='no run'): ResultStore.salvage(store, new)
        return
    assert 'salvage' in msg
    assert main(['salvage', store, new]) == 0 and 'copied' in capsys.readouterr().out
    assert open(store, 'rb').read() == before and not _side_files(store)
    got = ResultStore(new).results()
    assert 0 < len(got) < N_RUNS and all(reference[1][k] == v for k, v in _bits(got).items())
    with one_thread(): sweep(_configs(), store=new, progress=False)
    assert sum(trained) == N_RUNS - len(got)                                       # only the lost runs again
    assert _bits(ResultStore(new).results()) == reference[1]


# ---------------------------------------------------------------- read-only stores

@contextlib.contextmanager
def read_only(folder, how='mount'):
    """`folder` made read-only: 'chmod' (not for root, whom permission bits do not stop) or 'mount' (a read-only
    bind mount of the folder onto itself, as root); skips the test where that cannot be done."""
    folder = str(folder)
    if how == 'chmod':
        if os.geteuid() == 0: pytest.skip('root ignores permission bits: the read-only mount case covers this')
        os.chmod(folder, 0o555)
        try: yield folder
        finally: os.chmod(folder, 0o755)
        return
    if os.geteuid() != 0: pytest.skip('a read-only mount needs root: the chmod case covers this')
    made = subprocess.run(['mount', '--bind', folder, folder], capture_output=True)
    if made.returncode: pytest.skip(f'cannot bind-mount here: {made.stderr.decode().strip()}')
    try:
        if subprocess.run(['mount', '-o', 'remount,bind,ro', folder], capture_output=True).returncode:
            pytest.skip('cannot remount read-only here')
        yield folder
    finally: subprocess.run(['umount', folder])


@pytest.mark.parametrize('how', ['chmod', 'mount'])
def test_read_only_store_is_read_and_never_written(tmp_path, reference, trained, how):
    "A finished store on read-only media (it used to be refused as 'not a store'): read, resumed with nothing to do."
    folder = tmp_path / 'archive'; folder.mkdir()
    store = str(folder / 'ref.sqlite'); shutil.copy(reference[0], store)
    before = open(store, 'rb').read()
    with read_only(folder, how):
        s = ResultStore(store)
        assert s.readonly and len(s) == N_RUNS
        assert len(sweep(_configs(), store=store, progress=False)) == N_RUNS and trained == []  # nothing to train
        assert _bits(s.results()) == reference[1]
        more = _configs() + [_configs()[0].replace(lr=0.1)]
        with pytest.raises(ValueError, match=r'is read-only \(.*\): 1 of 25 runs are left to train'):
            sweep(more, store=store, progress=False)
        assert trained == [] and not _side_files(store)
    assert open(store, 'rb').read() == before


def test_reproduce_reads_a_store_from_read_only_media(tmp_path, capsys):
    "`reproduce --store` on an archived store: the same table and verdict, nothing trained, the archive untouched."
    res, img, arch = tmp_path / 'res', tmp_path / 'img', tmp_path / 'archive'
    args = ['reproduce', 'two-regimes', '--preset', 'tiny', '--no-progress', '--images', str(img)]
    code = main(args + ['--results', str(res)])
    first = capsys.readouterr().out.splitlines()
    arch.mkdir(); shutil.copy(res / 'two-regimes-tiny.sqlite', arch)
    with read_only(arch, 'mount'):
        kept = str(arch / 'two-regimes-tiny.sqlite')
        assert main(args + ['--results', str(tmp_path / 'res2'), '--store', kept]) == code
        again = capsys.readouterr().out.splitlines()
        paths = lambda lines: [l for l in lines if not l.startswith('runs: ')]   # the line that names the paths
        assert paths(again) == paths(first)                    # the same table and checks
        # --results on the read-only archive itself: the store there is complete, so the verdict is re-derived and
        # printed, and nothing is written
        assert main(args + ['--results', str(arch)]) == code
        out = capsys.readouterr().out
        assert 'cannot be written, so no table, figure or verdict file was written' in out
        assert [l for l in out.splitlines() if l.startswith(('HOLDS', 'CONTRADICTED', 'INCONCLUSIVE', 'NOT'))] == \
               [l for l in first if l.startswith(('HOLDS', 'CONTRADICTED', 'INCONCLUSIVE', 'NOT'))]
        assert sorted(os.listdir(arch)) == ['two-regimes-tiny.sqlite']
        # an incomplete store there cannot be finished: refused before anything runs, in one line
        assert main(['reproduce', 'step-budget', '--preset', 'tiny', '--no-progress', '--results', str(arch),
                     '--images', str(img)]) == 2
        err = capsys.readouterr().err
        assert 'cannot be written (read-only file system' in err and err.count('\n') == 1
        assert sorted(os.listdir(arch)) == ['two-regimes-tiny.sqlite']


# ---------------------------------------------------------------- Ctrl-C, the caller's arithmetic, strict JSON (issue 27)

def _sigint_after(args, wait_for, tmp_path, delay=0.0):
    """Start `sgd-noise ARGS`, send SIGINT once `wait_for()` is true (then after `delay` s); return (rc, stderr)."""
    env = dict(os.environ, SGD_NOISE_PROGRESS='0', PYTHONUNBUFFERED='1')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'sgd-noise')] + args
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not wait_for() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.05)
    time.sleep(delay)
    assert p.poll() is None, 'the command ended before it could be interrupted: make the workload larger'
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def _one_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    rc, err = _sigint_after(['list'], lambda: True, tmp_path, delay=0.3)   # during the imports
    assert rc == 130 and _one_line(err).startswith('sgd-noise: interrupted'), (rc, err)


def test_ctrl_c_in_train_says_what_train_leaves(tmp_path):
    rc, err = _sigint_after(['train', '--dataset', 'mnist1d', '--epochs', '200', '--out', 'r.json'],
                            lambda: True, tmp_path, delay=6)
    line = _one_line(err)
    assert rc == 130 and line.startswith('sgd-noise train: interrupted') and 'store' not in line, (rc, err)
    assert not (tmp_path / 'r.json').exists()


def test_ctrl_c_in_reproduce_keeps_the_finished_runs(tmp_path):
    from sgd_noise import ResultStore
    store = tmp_path / 'results' / 'two-regimes-tiny.sqlite'   # its groups store one by one, in about 10 s
    def some_stored():
        try: return store.exists() and len(ResultStore(str(store)).finished()) > 0
        except Exception: return False
    rc, err = _sigint_after(['reproduce', 'two-regimes', '--preset', 'tiny', '--results', 'results'], some_stored,
                            tmp_path)
    assert rc == 130 and _one_line(err).startswith('sgd-noise reproduce: interrupted; finished runs are kept'), err
    assert len(ResultStore(str(store)).finished()) > 0


_ARITHMETIC = '''
import importlib, json, math, pkgutil, torch
def floats(): return dict(denormal=float('5e-324') > 0, ulp=math.ulp(0.0) > 0,
                          torch=(torch.tensor([1e-39]) * 1.0).item() > 0,
                          parallel=int((torch.full((2_000_000,), 1e-39) * 1.0 != 0).sum()))
out = dict(before=floats())
import sgd_noise
for m in pkgutil.walk_packages(sgd_noise.__path__, 'sgd_noise.'): importlib.import_module(m.name)
out['imported'] = floats()
from sgd_noise.core.records import flushing
from sgd_noise import TrainConfig, train
train(TrainConfig(dataset='mnist1d', model='mlp', steps=5, optimizer='adam', lr=1e-3), progress=False)
out['trained'] = floats()
out['inside'] = flushing(floats)()
print(json.dumps(out))
'''


def test_the_package_leaves_the_callers_arithmetic_alone():
    """Importing every module and training leave float arithmetic as it was (denormals kept, in Python, in torch,
    in torch's worker threads); inside the package's loops denormals are flushed, on every thread."""
    r = subprocess.run([sys.executable, '-c', _ARITHMETIC], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SGD_NOISE_PROGRESS='0'))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    caller = dict(denormal=True, ulp=True, torch=True, parallel=2_000_000)
    assert out['before'] == out['imported'] == out['trained'] == caller, out
    assert out['inside'] == dict(denormal=False, ulp=False, torch=False, parallel=0), out


def test_a_diverged_record_is_strict_json(tmp_path):
    from sgd_noise.core.metrics import read_json
    r = subprocess.run([sys.executable, '-c', 'import sys; from sgd_noise.launch import main; sys.exit(main())',
                        'train', '--dataset', 'mnist1d', '--steps', '3', '--lr', '1e30', '--out', 'r.json',
                        '--no-progress'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith('diverged'), r.stderr
    text = (tmp_path / 'r.json').read_text()
    def refuse(c): raise ValueError(f'{c} is not JSON')
    json.loads(text, parse_constant=refuse)   # what a strict parser accepts
    final = read_json(text)['final']
    assert all(math.isnan(v) for v in final.values()), final
