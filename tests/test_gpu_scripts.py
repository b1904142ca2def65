"The GPU scripts' plumbing, on the CPU: the benchmark and the resumable runner (their numbers come from a GPU)."
import json, os, subprocess, sys, tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_bench_tiny_on_the_cpu_writes_every_part(tmp_path):
    out = tmp_path / 'bench.json'
    r = subprocess.run([sys.executable, 'benchmarks/gpu_bench.py', '--device', 'cpu', '--tiny', '--no-compile',
                        '--out', str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert {(e['model'], e['engine']) for e in d['engine']} == {('mlp', 'mlp'), ('cnn', 'vmap')}
    assert all(e['plain_s'] > 0 and e['sweep_s'] > 0 for e in d['engine'])
    whats = [w['what'] for w in d['wrn_epoch']['rows']]
    assert whats == ['reference loop (airbench-style)', 'sgd_noise.core.training'] and d['wrn_epoch']['step_flops'] > 0
    assert '(b) WRN-16-1 epoch, sgd_noise.core.training' in r.stdout


@pytest.mark.skipif(not os.path.exists('/bin/bash'), reason='needs bash')
def test_gpu_run_packs_each_part_and_resumes(tmp_path):
    env = dict(os.environ, GPU_RUN_PRESET='tiny', GPU_RUN_DEVICE='cpu', GPU_RUN_CLAIMS='step-budget',
               GPU_RUN_SECONDS='400', GPU_RUN_PACK_TO=str(tmp_path), PYTHON=sys.executable)
    out = tmp_path / 'out'
    for _ in range(2):
        r = subprocess.run(['bash', 'benchmarks/gpu_run.sh', str(out)], cwd=REPO, capture_output=True, text=True,
                           timeout=600, env=env)
        assert r.returncode == 0, r.stdout[-2000:]
    with tarfile.open(tmp_path / 'gpu_results.tar.gz') as t: names = set(t.getnames())
    assert {'results/step-budget-tiny.json', 'results/step-budget-tiny.sqlite', 'bench.json', 'run.log'} <= names
    log = (tmp_path / 'run.log').read_text()
    assert log.count('claim step-budget: exit') == 2
    verdict = json.loads((out / 'results' / 'step-budget-tiny.json').read_text())
    assert sum(verdict['trained_on'].values()) == verdict['runs'] > 0      # the second pass trained nothing new


def test_gpu_run_default_list_names_every_claim_once():
    "The runner's default order covers every registered claim, so a lent GPU trains every gpu preset."
    import re, shlex
    from sgd_noise.claims import claims
    text = open(os.path.join(REPO, 'benchmarks', 'gpu_run.sh')).read()
    listed = re.search(r'claims=\$\{GPU_RUN_CLAIMS:-"([^"]*)"\}', text)[1].split()
    assert sorted(listed) == sorted(claims()) and len(listed) == len(set(listed))
