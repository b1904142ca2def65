"""Groups sized to the memory they have (issue 27): the plan, its estimate against what a group really takes, and a
3000-member group trained whole under an address-space limit that the unplanned group overran by 4 GB."""
import json, os, subprocess, sys, textwrap

import pytest

from sgd_noise.sweeps.group import GroupPlan, activations_per_example, free_memory, plan_group
from sgd_noise import make_model, TrainConfig

MLP = make_model('mlp', input_shape=(40,), n_classes=10, seed=0)
CFGS = [TrainConfig(dataset='mnist1d', model='mlp', batch_size=32, lr=lr, seed=s, steps=2)
        for lr in (0.05, 0.1, 0.2) for s in range(1000)]


def _child(code: str, limit_gib: float | None = None, timeout=900) -> dict:
    "Run `code` in a fresh interpreter (under an address-space limit), return the JSON it prints last."
    pre = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gib * 2**30)}, "
           f"{int(limit_gib * 2**30)}))\n" if limit_gib else '')
    env = dict(os.environ, SGD_NOISE_PROGRESS='0')
    r = subprocess.run([sys.executable, '-c', pre + textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_activations_are_counted_layer_by_layer():
    # input 40, then Linear 256, ReLU 256, Linear 256, ReLU 256, Linear 10 (a Flatten, if any, adds its 40)
    assert activations_per_example(MLP, (40,)) in (40 + 4 * 256 + 10, 80 + 4 * 256 + 10)


def test_plan_splits_only_what_does_not_fit():
    whole = plan_group(CFGS, MLP, (40,), 'mlp', free=10**15)
    assert (whole.members, whole.chunks) == (3000, 1)
    p = plan_group(CFGS, MLP, (40,), 'mlp', free=4 * 2**30)
    assert 1 < p.chunks and p.members * p.bytes_per_member <= p.budget and p.eval_chunk == 4096
    assert [len(c) for c in p.split(CFGS)] == [p.members] * (p.chunks - 1) + [3000 - p.members * (p.chunks - 1)]
    assert sum(p.split(CFGS), []) == CFGS
    # one member alone does not fit: the evaluation chunk shrinks instead, to what fits
    tight = plan_group(CFGS, MLP, (40,), 'mlp', free=4 * 2**20)
    assert tight.members == 1 and 1 < tight.eval_chunk < 4096 and tight.bytes_per_member <= tight.budget
    # room for the state but not for a step as well: evaluation chunks no larger than what the state leaves room for
    short = plan_group(CFGS, MLP, (40,), 'mlp', free=2 * 2**20)
    assert short.members == 1 and 1 < short.eval_chunk < tight.eval_chunk
    # less than a member's parameters and state: the least it can do (it may still run out)
    assert plan_group(CFGS, MLP, (40,), 'mlp', free=2**20).eval_chunk == 1
    # the loop engine trains members one at a time; unknown free memory: nothing to plan by
    assert plan_group(CFGS, MLP, (40,), 'loop', free=2**20).members == 3000
    # free=None measures the free memory now, as the default does; it moves by a few MB between two readings (a CI run
    # read 613 members, then 614), so the two plans agree to within 2%
    now, again = plan_group(CFGS, MLP, (40,), 'mlp', free=None).members, plan_group(CFGS, MLP, (40,), 'mlp').members
    assert now == again == 3000 or abs(now - again) <= max(2, 0.02 * again)
    assert GroupPlan(10, 3, 64, 1, 1).to_dict()['chunks'] == 4


def test_free_memory_counts_the_address_space_limit():
    got = _child("""
        import json, resource
        from sgd_noise.sweeps.group import free_memory, _proc_kib
        print(json.dumps(dict(free=free_memory('cpu'), size=_proc_kib('VmSize'),
                              limit=resource.getrlimit(resource.RLIMIT_AS)[0])))""", limit_gib=6)
    assert got['free'] <= got['limit'] - got['size'] + 2**20
    assert free_memory('cpu') is None or free_memory('cpu') > 0


@pytest.mark.parametrize('optimizer, momentum, batch, split',
                         [('sgd', 0.0, 32, False), ('adam', 0.0, 32, True), ('sgd', 0.9, 512, True)])
def test_the_estimate_bounds_the_peak_it_plans_for(optimizer, momentum, batch, split):
    """CPU: the peak resident memory a 200-member group adds (VmHWM) is at most the plan's estimate for the
    largest chunk it trains at once, and that estimate is not more than 3x the peak (a plan that wastes most of the
    memory splits groups for nothing). The estimate is the chunk's, not the group's: where less memory is free (a
    CI machine) the plan splits the group and the peak is one chunk's. On a GPU the same comparison is made against
    torch's allocator statistics (`scripts/` GPU checks). Two of the three cases split the group in two whatever the
    machine has free (a CI run once compared a split group's peak with the whole group's estimate)."""
    got = _child(f"""
        import dataclasses, json
        from sgd_noise.sweeps.group import group_plan, train_group
        from sgd_noise import TrainConfig
        base = TrainConfig(dataset='mnist1d', model='mlp', batch_size={batch}, steps=3, optimizer='{optimizer}',
                           momentum={momentum}, lr=1e-3)
        cfgs = [base.replace(seed=s) for s in range(200)]
        train_group(cfgs[:2], progress=False)   # libraries and data loaded before the measurement
        plan = group_plan(cfgs)
        if {split}: plan = dataclasses.replace(plan, members=100)   # as a machine with less free memory splits it
        kib = lambda f: next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(f + ':'))
        # the peak from here on: writing 5 to clear_refs resets VmHWM to the present VmRSS (Linux >= 4.0); the
        # process's earlier peaks (generating the data) would otherwise hide part of what the group adds
        open('/proc/self/clear_refs', 'w').write('5')
        before = kib('VmRSS')
        train_group(cfgs, progress=False, plan=plan)
        peak = kib('VmHWM')
        print(json.dumps(dict(grew=peak - before, estimate=plan.members * plan.bytes_per_member,
                               chunks=plan.chunks)))""")
    assert got['grew'] <= got['estimate'] <= 3 * got['grew'], got


def test_a_3000_member_group_is_stored_whole_under_a_memory_limit(tmp_path):
    """Three learning rates x 1000 seeds in one group, under a 6 GiB address-space limit: unplanned, the group
    (3000 members' weights, steps and evaluations on 256 examples at once) runs out of memory there (measured:
    'can't allocate 786432000 bytes'). Planned, every run is stored, in chunks, and each is the run a small group
    trains. (The issue's own case, 4000 examples under 8 GiB, was measured once: 3000 runs stored, 247 s.)"""
    got = _child(f"""
        import json
        from sgd_noise import grid, ResultStore, sweep, TrainConfig
        base = TrainConfig(dataset='mnist1d', model='mlp', batch_size=32, steps=2, n_train=256, n_test=256)
        big = sweep(grid(base, lr=[0.05, 0.1, 0.2], seed=range(1000)), store={str(tmp_path / 'big.sqlite')!r},
                    progress=False)
        small = sweep(grid(base, lr=[0.05, 0.1, 0.2], seed=[0, 1, 999]), progress=False)
        pick = big.set_index(['lr', 'seed']).loc[[(l, s) for l in (0.05, 0.1, 0.2) for s in (0, 1, 999)]]
        runs = ResultStore({str(tmp_path / 'big.sqlite')!r}).results()
        print(json.dumps(dict(n=len(big), ok=int((big.status == 'ok').sum()), stored=len(runs),
                              plan=runs[0]['env']['memory_plan'],
                              same=[list(map(float, pick[k])) == list(map(float, small[k]))
                                    for k in ('train_loss', 'train_acc', 'test_loss', 'test_acc')])))""",
                 limit_gib=6)
    assert got['n'] == got['ok'] == got['stored'] == 3000
    assert got['plan']['size'] == 3000 and got['plan']['chunks'] > 1, got['plan']
    assert all(got['same']), got


def test_the_loops_do_not_pay_for_their_memory_again_each_step():
    """`flushing` sets glibc's mmap and trim thresholds before the first loop (core/05_records): 100 steps of a 50-member
    Adam ensemble (the smoke preset's B=16 arm) then take a fraction of the page faults they take with `malloc`
    left alone (measured: 2,300 to 6,500 a step left alone, 50 to 150 tuned)."""
    code = """
        import json, resource, torch
        from sgd_noise.sweeps.stacked import MLPEnsemble
        from sgd_noise.sweeps.group import EnsembleSampler, gather
        from sgd_noise import make_model
        from sgd_noise.core.records import flushing, _loop
        from sgd_noise import TrainConfig, get_data
        cfg = TrainConfig(dataset='mnist1d', model='mlp', batch_size=16, weight_decay=5e-4, optimizer='adam')
        data = get_data(cfg)
        ens = MLPEnsemble([make_model('mlp', input_shape=data.input_shape, n_classes=10, seed=s) for s in range(50)],
                           0.0, cfg.weight_decay, 'adam')
        sampler, lr = EnsembleSampler(data.n_train, 16, list(range(50))), torch.full((50,), 1e-3)
        def steps(n):
            for _ in range(n):
                idx = next(sampler); ens.step(gather(data.x_train, idx), gather(data.y_train, idx), lr)
        flushing(steps)(20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        flushing(steps)(100)
        print(json.dumps(dict(faults=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100,
                              tuned=_loop['malloc'])))"""
    tuned = _child(code)
    os.environ['SGD_NOISE_MALLOC'] = '0'
    try: alone = _child(code)
    finally: del os.environ['SGD_NOISE_MALLOC']
    assert tuned['tuned'] is True and alone['tuned'] is False
    assert tuned['faults'] * 5 < alone['faults'], (tuned, alone)
