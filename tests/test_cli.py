"The sgd-noise command line: one run, a claim's reproduction, and one-line errors with exit status 2."
import json, os, subprocess, sys

import pytest

from sgd_noise.claims.stats import OUTCOMES
from sgd_noise.cli import main

EXE = [os.path.join(os.path.dirname(sys.executable), 'sgd-noise')]   # the installed console script


def run(*args, cwd=None):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize('args, needle', [
    (['train', '--batch-size', '-4'], 'batch_size'), (['train', '--batch-size', '0'], 'batch_size'),
    (['train', '--dataset', 'imagenet'], 'unknown dataset'), (['train', '--model', 'gpt'], 'unknown model'),
    (['train', '--lr', '0'], 'lr'), (['train', '--lr', '-1'], 'lr'), (['train', '--epochs', '0'], 'epochs'),
    (['train', '--steps', '-5'], 'steps'), (['train', '--batch-size', 'many'], 'invalid int'),
    (['train', '--n-train', '500', '--batch-size', '600'], 'larger than the training set'),
    (['reproduce', 'nonsense'], 'unknown claim'), (['reproduce', 'two-regimes', '--preset', 'huge'], 'unknown preset'),
    (['frobnicate'], 'invalid choice')])
def test_bad_arguments_exit_2_with_one_line(args, needle, capsys):
    code = None
    try: code = main(args)
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and '\n' not in err and 'Traceback' not in err


def test_console_script_bad_input_in_a_real_process():
    r = run('train', '--batch-size', '-1')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr


def test_train_writes_record(tmp_path):
    out = tmp_path / 'r.json'
    r = run('train', '--n-train', '512', '--n-test', '128', '--batch-size', '64', '--steps', '20', '--no-progress', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('ok: train loss') and json.loads(out.read_text())['status'] == 'ok'


def test_train_speed_flags_reach_the_config(tmp_path):
    from sgd_noise.cli import main
    out = tmp_path / 'r.json'
    assert main(['train', '--n-train', '256', '--n-test', '64', '--steps', '3', '--bf16', '--no-progress', '--out', str(out)]) == 0
    cfg = json.loads(out.read_text())['config']
    assert (cfg['precision'], cfg['channels_last'], cfg['compile']) == ('bf16', False, False)


def test_reproduce_tiny_writes_store_table_and_figure(tmp_path):
    r = run('reproduce', 'two-regimes', '--preset', 'tiny', '--no-progress', '--results', str(tmp_path / 'res'),
            '--images', str(tmp_path / 'img'))
    # the tiny preset is too small for the claim: exit 1 says a part of it failed, 0 that all held
    assert r.returncode == 0, r.stderr   # tiny is a plumbing preset: its outcomes are printed, never failed
    labels = tuple(f'{o.upper()}  ' for o in OUTCOMES)
    assert sum(line.startswith(labels) for line in r.stdout.splitlines()) == 7   # 5 parts, 2 for momentum
    assert (tmp_path / 'img' / 'two_regimes_tiny.png').stat().st_size > 1000
    assert (tmp_path / 'res' / 'two-regimes-tiny.csv').exists()
    # a second reproduction resumes from the store: nothing is retrained, the same table comes out
    r2 = run('reproduce', 'two-regimes', '--preset', 'tiny', '--no-progress', '--results', str(tmp_path / 'res'),
             '--images', str(tmp_path / 'img'))
    assert r2.stdout == r.stdout


def test_reproduce_refuses_a_corrupt_store_and_keeps_it(tmp_path):
    res = tmp_path / 'res'; res.mkdir()
    bad = res / 'two-regimes-tiny.sqlite'; bad.write_bytes(b'\x00garbage' * 50)
    r = run('reproduce', 'two-regimes', '--preset', 'tiny', '--no-progress', '--results', str(res), '--images', str(tmp_path))
    assert r.returncode == 2 and 'not an sgd_noise results store' in r.stderr and r.stderr.count('\n') == 1
    assert bad.read_bytes() == b'\x00garbage' * 50


def test_train_record_is_kept_when_it_cannot_be_written(tmp_path, monkeypatch, capsys):
    "A write that fails after training (a full disk) prints the record instead of losing it, and says so in one line."
    def full(*a, **k): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'replace', full)
    out = tmp_path / 'r.json'
    args = ['train', '--n-train', '256', '--n-test', '64', '--steps', '3', '--no-progress', '--out', str(out)]
    assert main(args) == 2
    printed = capsys.readouterr()
    assert json.loads(printed.out.splitlines()[-1])['steps_done'] == 3 and not out.exists()
    assert 'No space left on device' in printed.err and printed.err.count('\n') == 1 and os.listdir(tmp_path) == []


def test_no_command_prints_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ('train', 'reproduce', 'report', 'salvage', 'list'))


def test_help_shows_defaults_and_choices(capsys):
    with pytest.raises(SystemExit): main(['train', '--help'])
    out = capsys.readouterr().out
    assert '(default: 32)' in out and 'mnist1d' in out and 'cifar10' in out and 'sed20' in out
    with pytest.raises(SystemExit): main(['reproduce', '--help'])
    out = capsys.readouterr().out
    assert 'two-regimes' in out and '(default: smoke)' in out and '--dry-run' in out


def test_dry_run_costs_a_preset_and_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(['reproduce', 'two-regimes', '--preset', 'tiny', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'model-steps' in out and 'Nothing was trained' in out and 'step_seconds' in out
    assert os.listdir(tmp_path) == []                      # no store, no folders
    assert main(['reproduce', 'sde-quadratic', '--preset', 'tiny', '--dry-run']) == 0


def test_reproduce_output_fits_100_columns(tmp_path, capsys):
    code = main(['reproduce', 'step-budget', '--preset', 'tiny', '--no-progress', '--results', str(tmp_path / 'r'),
                 '--images', str(tmp_path / 'i')])
    lines = capsys.readouterr().out.splitlines()
    table = lines[:lines.index(next(l for l in lines if l.startswith(tuple(o.upper() for o in OUTCOMES))))]
    assert code in (0, 1) and table and max(len(l) for l in table) <= 100
