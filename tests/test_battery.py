"""The bad-input battery: what a new user types by mistake, as tables of input -> one-line message -> exit 2.

Every CLI case runs `sgd_noise.cli.main` in a fresh working folder (holding a file, a folder, a file that is not
a store, a damaged store and a damaged verdict) and checks exit status 2, one line on stderr with the expected
fragment, no traceback, and that no file in the folder was created or changed. Every API case checks a one-line
`ValueError` naming the field (or path), and the same for the folder. Paths that cannot be written are a
read-only mount (as root) or a chmod 555 folder (as anyone else)."""
import os, subprocess, sys

import numpy as np
import pytest

import sgd_noise.claims.sharp_flat as sharp_flat
from sgd_noise.cli import main
from sgd_noise.claims import claims, get_claim
from sgd_noise import ResultStore, grid, sweep
from sgd_noise.sweeps.group import choose_engine, train_group
from sgd_noise import TrainConfig, train
from sgd_noise.core.config import lr_factor, validate

CLAIMS = claims()
NAN, INF = float('nan'), float('inf')
RO = '{ro}'   # stands for a folder that cannot be written


# ---------------------------------------------------------------- the command line

CLI = [
    # train: every option, wrong types, NaN/inf, zero/negative, huge, unknown names
    ('train --dataset imagenet', 'unknown dataset'), ('train --dataset', 'expected one argument'),
    ('train --model gpt', 'unknown model'),
    ('train --batch-size 0', 'batch_size=0'), ('train --batch-size -4', 'batch_size=-4'),
    ('train --batch-size 2.5', "invalid int value: '2.5'"), ('train --batch-size many', 'invalid int value'),
    ('train --batch-size 1000000000000000000000000', 'larger than the training set'),
    ('train --n-train 500 --batch-size 600', 'larger than the training set (500 examples)'),
    ('train --lr 0', 'lr=0 must'), ('train --lr -1', 'lr=-1 must'), ('train --lr nan', 'lr=nan must be a finite number'),
    ('train --lr inf', 'lr=inf'), ('train --lr -inf', 'lr=-inf'), ('train --lr 1e400', 'lr=1e400 must be a finite number'),
    ('train --lr fast', "invalid float value: 'fast'"), ('train --lr', 'expected one argument'),
    # beyond float32 (issue 27): refused, naming the field and the range, quoting the value as typed
    ('train --lr 1.7976931348623157e308', "lr=1.7976931348623157e308 is outside float32's range"),
    ('train --lr 5e-324', "lr=5e-324 is outside float32's range"), ('train --lr 1e39', 'lr=1e39 is outside'),
    ('train --weight-decay 1e39', 'weight_decay=1e39 is outside'), ('train --momentum 1e-40', 'momentum=1e-40 is'),
    ('train --swa-start 0.5 --swa-lr 3.5e38', 'swa_lr=3.5e38 is outside'),
    ('train --momentum 1', 'momentum=1 must'), ('train --momentum -0.5', 'momentum=-0.5'),
    ('train --momentum nan', 'momentum=nan'),
    ('train --weight-decay -1e-4', 'weight_decay=-1e-4 must'), ('train --weight-decay inf', 'weight_decay=inf'),
    ('train --weight-decay -1E+2', 'weight_decay=-1E+2 must'),
    ('train --epochs 0', 'epochs=0 must'), ('train --epochs -2', 'epochs=-2 must'), ('train --epochs inf', 'epochs=inf'),
    ('train --epochs nan', 'epochs=nan'), ('train --epochs 1e300', 'more than 2**53'),
    ('train --steps 0', 'steps=0'), ('train --steps -5', 'steps=-5'), ('train --steps 2.5', 'invalid int value'),
    ('train --steps 9007199254740993', 'steps=9007199254740993'),
    ('train --epochs 1 --steps 5', 'not allowed with argument'),
    ('train --schedule step', 'unknown schedule'),
    ('train --seed -1', 'seed=-1'), ('train --seed 18446744073709551616', 'seed=18446744073709551616'),
    ('train --seed 1.5', 'invalid int value'),
    ('train --device tpu', "device='tpu'"), ('train --device cuda:7', "device='cuda:7'"),
    ('train --n-train 0', 'n_train=0'), ('train --n-train -5', 'n_train=-5'), ('train --n-test 0', 'n_test=0'),
    ('train --dataset digits --n-train 100000', 'n_train=100000 is out of range for digits'),
    ('train --n-train 1000000000', 'n_train=1000000000 is out of range for mnist1d'),
    ('train --out adir', '--out adir is a folder'), ('train --out afile/r.json', 'afile is a file, not a folder'),
    (f'train --out {RO}/r.json', 'cannot be written'),
    ('train --bf16=yes', "ignored explicit argument 'yes'"), ('train --no-progress=1', 'ignored explicit argument'),
    ('train --channels-last=1', 'argument --channels-last'), ('train --compile=no', 'argument --compile'),
    ('train --n-test many', 'invalid int value'), ('train --schedule', 'expected one argument'),
    ('train --frobnicate', 'unrecognized arguments'),
    # reproduce (every claim and preset name below), report, salvage, list, the command itself
    ('reproduce', 'the following arguments are required: claim'), ('reproduce nonsense', 'unknown claim'),
    ('reproduce two-regimes --preset ""', "unknown preset ''"),
    ('reproduce two-regimes --results afile/res', 'afile is a file, not a folder'),
    (f'reproduce two-regimes --results {RO}/res', 'cannot be written'),
    ('reproduce two-regimes --store adir', 'is a folder'),
    ('reproduce two-regimes --store junk.sqlite', 'not an sgd_noise results store'),
    ('reproduce two-regimes --store damaged.sqlite', 'is damaged (quick_check'),
    (f'reproduce two-regimes --store {RO}/new.sqlite', 'cannot be written'),
    ('reproduce two-regimes --device tpu', "device='tpu'"), ('reproduce two-regimes --bf16=1', 'ignored explicit'),
    ('reproduce two-regimes --channels-last=1', 'ignored explicit'), ('reproduce two-regimes --compile=1', 'ignored'),
    ('reproduce two-regimes --no-progress=x', 'ignored explicit'), ('reproduce two-regimes --images', 'expected one'),
    ('report --check=yes', 'ignored explicit'), ('salvage damaged.sqlite', 'required: new'),
    ('report --verdicts nope', '--verdicts nope is not a folder'), ('report --verdicts afile', 'is not a folder'),
    ('report --verdicts adir --readme nope.md', 'cannot read nope.md'),
    ('report --verdicts adir --readme adir', 'cannot read adir'),
    ('report --verdicts adir --readme afile', 'markers'), ('report --verdicts verdicts', 'is damaged'),
    ('salvage', 'required'), ('salvage nope.sqlite new.sqlite', 'does not exist'),
    ('salvage damaged.sqlite afile', 'afile already exists'), ('salvage damaged.sqlite adir', 'adir already exists'),
    ('salvage junk.sqlite new.sqlite', 'no run of an sgd_noise results store'),
    ('list extra', 'unrecognized arguments'), ('frobnicate', 'invalid choice'),
]
CLI += [(f'reproduce {c} --preset huge', f"unknown preset 'huge' for {c}") for c in CLAIMS]
CLI += [(f'reproduce {c} --images afile', '--images afile is a file') for c in CLAIMS]
CLI += [(f'reproduce {c} --preset {p} --results afile', '--results afile is a file')
        for c, claim in CLAIMS.items() for p in claim.presets]


def _listing(folder) -> dict:
    "Every file and folder under `folder` with its size and modification time."
    out = {}
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(root, n); st = os.stat(p)
            out[os.path.relpath(p, folder)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope='module')
def ro(tmp_path_factory):
    "A folder that cannot be written: a read-only tmpfs (as root), else a folder with mode 555."
    d = str(tmp_path_factory.mktemp('ro'))
    if os.geteuid() != 0:
        os.chmod(d, 0o555); yield d; os.chmod(d, 0o755); return
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', d], capture_output=True).returncode:
        yield None; return
    yield d
    subprocess.run(['umount', d])


@pytest.fixture(scope='module')
def damaged_store(tmp_path_factory) -> bytes:
    "The bytes of a store of 8 runs with a page in the middle zeroed."
    path = tmp_path_factory.mktemp('store') / 's.sqlite'
    sweep(grid(TrainConfig(steps=3, n_evals=30, n_train=256, n_test=64), lr=[0.1, 0.2], seed=[0, 1, 2, 3]),
          store=path, progress=False)
    b = bytearray(path.read_bytes()); k = len(b) // 4096 // 2
    b[k * 4096:(k + 1) * 4096] = bytes(4096)
    return bytes(b)


@pytest.fixture
def cwd(tmp_path, monkeypatch, damaged_store):
    "A fresh working folder with a file, a folder, a file that is not a store, a damaged store and verdict."
    (tmp_path / 'afile').write_text('a file\n'); (tmp_path / 'adir').mkdir()
    (tmp_path / 'junk.sqlite').write_bytes(b'not a database ' * 100)
    (tmp_path / 'damaged.sqlite').write_bytes(damaged_store)
    (tmp_path / 'verdicts').mkdir(); (tmp_path / 'verdicts' / 'two-regimes-smoke.json').write_text('{"claim": ')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(args, capsys):
    try: code = main(args)
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_exit_2(code, out, err, fragment):
    assert code == 2, (code, out, err)
    assert err.count('\n') == 1 and err.startswith('sgd-noise') and ' error: ' in err, err
    assert fragment in err and 'Traceback' not in err + out, err


@pytest.mark.parametrize('line, fragment', CLI)
def test_cli_bad_input(line, fragment, cwd, ro, capsys):
    if RO in line and ro is None: pytest.skip('no read-only folder can be made here')
    args = [a.strip('"') for a in line.replace(RO, ro or RO).split()]
    before = _listing(cwd)
    _one_line_exit_2(*_run(args, capsys), fragment)
    assert _listing(cwd) == before, 'a file was created or changed'


@pytest.mark.parametrize('claim, dataset', [('two-regimes', 'cifar10'), ('sharp-flat', 'mnist')])
def test_paper_preset_without_its_data_leaves_nothing(claim, dataset, cwd, tmp_path_factory, monkeypatch, capsys):
    "Without the dataset's files (and no network), one line names them, and no store or folder is left behind."
    import torchvision
    def offline(*a, **k): raise OSError('no network')
    for cls in ('CIFAR10', 'MNIST'): monkeypatch.setattr(torchvision.datasets, cls, offline)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path_factory.mktemp('no-data')))
    before = _listing(cwd)
    code_out_err = _run(['reproduce', claim, '--preset', 'paper', '--no-progress'], capsys)
    _one_line_exit_2(*code_out_err, f'{dataset}: download failed')
    assert _listing(cwd) == before   # no results/ with an empty store, no images/


def test_a_real_process_prints_no_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), 'sgd-noise')
    r = subprocess.run([exe, 'train', '--weight-decay', '-1e-4'], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'weight_decay' in r.stderr and os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the API: every TrainConfig field

FIELDS = [
    ('dataset', 'imagenet'), ('dataset', 5), ('dataset', None), ('dataset', ['mnist1d']),
    ('model', 'gpt'), ('model', None),
    ('batch_size', 0), ('batch_size', -1), ('batch_size', 2.5), ('batch_size', True), ('batch_size', '32'),
    ('batch_size', np.float64(32)), ('batch_size', None),
    ('lr', 0), ('lr', -0.1), ('lr', NAN), ('lr', INF), ('lr', -INF), ('lr', '0.1'), ('lr', True), ('lr', None),
    ('lr', 10**400), ('lr', np.float32('nan')),
    ('momentum', 1.0), ('momentum', -0.1), ('momentum', NAN), ('momentum', INF),
    ('weight_decay', -1e-4), ('weight_decay', NAN), ('weight_decay', INF),
    ('epochs', 0), ('epochs', -1), ('epochs', INF), ('epochs', NAN), ('epochs', 'ten'), ('epochs', True),
    ('schedule', 'step'), ('schedule', None),
    ('seed', -1), ('seed', 2**63), ('seed', 1.5), ('seed', True), ('seed', None), ('seed', np.float64(1)),
    ('device', 'tpu'), ('device', 5), ('device', None), ('device', 'cuda:7'),
    ('n_train', 0), ('n_train', -1), ('n_train', 2.5), ('n_train', '100'), ('n_test', 0), ('n_test', INF),
    ('data_seed', -1), ('data_seed', 1.5),
    ('replacement', 'yes'), ('replacement', 1), ('n_evals', -1), ('n_evals', 1.5), ('n_evals', None),
    ('model_kwargs', []), ('model_kwargs', None), ('precision', 'fp16'), ('precision', None),
    ('channels_last', 'yes'), ('channels_last', 1), ('compile', 'no'), ('augment', 'mixup'), ('augment', True),
    ('target_loss', 0), ('target_loss', -1), ('target_loss', NAN), ('target_loss', INF), ('target_loss', 'low'),
    ('target_loss', True),
    ('optimizer', 'rmsprop'), ('optimizer', None), ('swa_start', 1.0), ('swa_start', -0.1), ('swa_start', NAN),
    ('swa_start', 'late'), ('label_noise', 1.5), ('label_noise', -0.1), ('label_noise', NAN), ('swa_lr', 0.1), ('swa_every', 5), ('swa_update_bn', False),   # the last three: without swa_start
    ('lr_cycle', (1, 0)), ('lr_cycle', ()), ('lr_cycle', 'fast'), ('lr_cycle', (1, NAN)), ('batch_cycle', (16, 32)),
    ('batch_cycle', (32, 0)), ('batch_cycle', (32, 2.5)), ('cycle_epochs', 1),   # the last: without a cycle
]
STEPS = [0, -1, 2.5, np.float64(5), 2**60, INF]


def _one_line_error(fn, fragment, folder):
    before = _listing(folder)
    with pytest.raises(ValueError) as e: fn()
    msg = str(e.value)
    assert fragment in msg and '\n' not in msg, msg
    assert _listing(folder) == before


@pytest.mark.parametrize('field, value', FIELDS)
def test_config_field(field, value, cwd):
    _one_line_error(lambda: validate(TrainConfig(**{'epochs': 1, field: value})), field, cwd)


@pytest.mark.parametrize('value', STEPS)
def test_config_steps(value, cwd):
    _one_line_error(lambda: validate(TrainConfig(steps=value)), 'steps', cwd)


@pytest.mark.parametrize('kw, fragment', [(dict(lr_cycle=(1, 0.5)), 'cycle_epochs'),
                                          (dict(lr_cycle=(1, 0.5), cycle_epochs=0), 'cycle_epochs'),
                                          (dict(lr_cycle=(1, 0.5), cycle_epochs=1, epochs=None, steps=5), 'epoch budget'),
                                          (dict(batch_cycle=(32, 4096), cycle_epochs=1, n_train=1000), 'larger than')])
def test_cyclic_schedules_need_a_phase_and_an_epoch_budget(kw, fragment, cwd):
    _one_line_error(lambda: validate(TrainConfig(**{'epochs': 1, **kw}), n_train=kw.get('n_train')), fragment, cwd)


@pytest.mark.parametrize('kw', [dict(), dict(epochs=1, steps=3)])
def test_config_needs_one_budget(kw, cwd):
    _one_line_error(lambda: validate(TrainConfig(**kw)), 'exactly one budget', cwd)


def test_numpy_scalars_are_accepted_as_python_numbers():
    "What np.arange / np.logspace give: accepted, stored as Python ints and floats, the same ids."
    cfgs = grid(TrainConfig(steps=2, n_train=256, n_test=64), batch_size=np.array([16, 32]), lr=np.logspace(-2, -1, 2))
    assert [type(c.batch_size) for c in cfgs] == [int] * 4 and [type(c.lr) for c in cfgs] == [float] * 4
    assert cfgs[0].config_id == TrainConfig(steps=2, n_train=256, n_test=64, batch_size=16, lr=0.01).config_id
    assert validate(TrainConfig(batch_size=np.int64(32), epochs=np.float32(1.5), seed=np.uint64(3))).batch_size == 32
    assert len(sweep(cfgs, progress=False)) == 4


# ---------------------------------------------------------------- the API: functions, paths and names

def _tiny_model():
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def _sharpness(eps):
    import torch
    from sgd_noise import eps_sharpness
    return eps_sharpness(_tiny_model(), torch.randn(8, 3), torch.randint(0, 2, (8,)), eps=eps)


def _load(**kw):
    from sgd_noise.core.data import load_dataset
    return load_dataset(**kw)


def _sampler(n, b):
    from sgd_noise.core.data import MinibatchSampler
    return MinibatchSampler(n, b)


def _in_ro(ro, name):
    "A path in the folder that cannot be written (the case is skipped where there is none)."
    if ro is None: pytest.skip('no read-only folder can be made here')
    return os.path.join(ro, name)


E1 = TrainConfig(epochs=1)
API = [
    (lambda ro: grid(E1, lr=0.1), "grid axis lr=0.1 must be a list"),
    (lambda ro: grid(E1, lr='0.1'), 'grid axis lr'), (lambda ro: grid(E1, batchsize=[1]), "'batchsize'"),
    (lambda ro: grid(E1, replace=[1]), "'replace' is not a TrainConfig field"),
    (lambda ro: sweep(grid(TrainConfig(steps=0), lr=[0.1]), progress=False), 'steps=0'),
    (lambda ro: ResultStore('adir'), 'results store adir is a folder'),
    (lambda ro: ResultStore('junk.sqlite'), 'junk.sqlite is not an sgd_noise results store'),
    (lambda ro: ResultStore('damaged.sqlite'), 'damaged.sqlite is damaged'),
    (lambda ro: ResultStore('afile/x.sqlite'), 'afile is a file, not a folder'),
    (lambda ro: ResultStore(_in_ro(ro, 'new.sqlite')), 'cannot be written'),
    (lambda ro: sweep(grid(E1, lr=[0.1]), store=_in_ro(ro, 's.sqlite'), progress=False), 'cannot be written'),
    (lambda ro: ResultStore.salvage('nope.sqlite', 'new.sqlite'), 'nope.sqlite does not exist'),
    (lambda ro: ResultStore.salvage('damaged.sqlite', 'afile'), 'afile already exists'),
    (lambda ro: _sharpness(NAN), 'eps'), (lambda ro: _sharpness(INF), 'eps'), (lambda ro: _sharpness(0.0), 'eps'),
    (lambda ro: _load(name='imagenet'), 'unknown dataset'),
    (lambda ro: _load(name='mnist1d', n_train=10**9), 'n_train'),
    (lambda ro: _load(name='digits', n_test=10**6), 'n_test'),
    (lambda ro: _load(name='mnist1d', n_train=20, n_test=10, data_seed=-1), 'data_seed'),
    (lambda ro: _sampler(10, 0), 'batch_size'), (lambda ro: _sampler(10, 11), 'batch_size'),
    (lambda ro: _sampler(0, 1), 'n=0'),
    (lambda ro: lr_factor('step', 0, 10), 'unknown schedule'),
    (lambda ro: choose_engine(_tiny_model(), 'fast'), 'unknown engine'),
    (lambda ro: train(TrainConfig(steps=2, augment='crop-flip', n_train=256, n_test=64), progress=False), 'augment'),
    (lambda ro: train_group(grid(TrainConfig(steps=2), batch_size=[16, 32])), 'differ only in lr and seed'),
    (lambda ro: get_claim('nonsense'), 'unknown claim'),
    (lambda ro: validate(TrainConfig(epochs=1, lr=1e39)), "lr=1e+39 is outside float32's range"),
    (lambda ro: validate(TrainConfig(epochs=1, lr=1e-45)), "lr=1e-45 is outside float32's range"),
    (lambda ro: grid(E1, batch_size=list(range(1, 2000)), lr=[0.05, 0.1, 0.2], seed=range(1000)),
     'grid of 5,997,000 configs (1999 batch_size × 3 lr × 1000 seed) is beyond the limit of 1,000,000'),
    (lambda ro: sweep([E1] * 1_000_001, progress=False), 'sweep of 1,000,001 configs is beyond the limit'),
    (lambda ro: sharp_flat.configs('huge'), "unknown preset 'huge' for sharp-flat"),
]
API += [(lambda ro, c=c: get_claim(c).preset('huge'), f"unknown preset 'huge' for {c}") for c in CLAIMS]


@pytest.mark.parametrize('fn, fragment', API)
def test_api_bad_input(fn, fragment, cwd, ro):
    _one_line_error(lambda: fn(ro), fragment, cwd)
