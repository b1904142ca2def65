"""Denormal floats in an Adam ensemble on the CPU: milliseconds per step with and without flushing them to zero.

Trains the smoke preset's Adam arm at B=16 (the 40-256-256-10 MLP on MNIST-1D, 10 learning rates x 5 seeds as one
`mlp`-engine ensemble, L2 5e-4) for STEPS steps, timing each block of BLOCK steps, in a fresh process per setting:
flush-to-zero on or off (set by the child before its first parallel operation: the switch is per thread and
PyTorch's worker threads copy it when they start), at 1 and 2 threads; and `package`: the child leaves its own
threads unflushed (after a parallel operation, as a user's session would) and runs the loop through
`sgd_noise.core.records.flushing`, the package's loop thread, as `train_group` and `sweep` do. Every row but the last sets
glibc's malloc thresholds as the package's loops do (`records._tune_malloc`: otherwise page faults, not denormals,
dominate the step); `untuned` (the package's loop with SGD_NOISE_MALLOC=0) shows what that setting buys, and `before`
(flush-to-zero set in the process, malloc untouched) is what the package did before issue 27.
Writes benchmarks/denormals_cpu.md.  Usage: python benchmarks/denormals_cpu.py [STEPS] [BLOCK]
"""
import json, os, resource, statistics, subprocess, sys, time


def child(flush: str, threads: int, steps: int, block: int):
    import torch
    from sgd_noise.sweeps.stacked import MLPEnsemble
    from sgd_noise.sweeps.group import EnsembleSampler, gather
    from sgd_noise import make_model, TrainConfig, get_data
    from sgd_noise.core.records import flushing, _tune_malloc
    if flush not in ('untuned', 'before'): _tune_malloc()   # those two: malloc as glibc left it (SGD_NOISE_MALLOC=0)
    torch.set_flush_denormal(flush in ('on', 'before'))   # before any parallel operation
    torch.set_num_threads(threads)
    (torch.ones(1_000_000) * 2).sum()   # the caller's worker threads start now (unflushed unless 'on')
    lrs, seeds = [2.0 ** k for k in range(-12, -2)], range(5)
    cfg = TrainConfig(dataset='mnist1d', model='mlp', n_train=4000, n_test=1000, epochs=20, batch_size=16,
                      weight_decay=5e-4, optimizer='adam')
    data = get_data(cfg)
    models = [make_model('mlp', input_shape=data.input_shape, n_classes=10, seed=s) for _ in lrs for s in seeds]
    ens = MLPEnsemble(models, 0.0, cfg.weight_decay, 'adam')
    lr = torch.tensor([l for l in lrs for _ in seeds])
    sampler = EnsembleSampler(data.n_train, cfg.batch_size, [s for _ in lrs for s in seeds])
    def loop():
        ms = []
        for _ in range(steps // block):
            t = time.perf_counter()
            for _ in range(block):
                idx = next(sampler)
                ens.step(gather(data.x_train, idx), gather(data.y_train, idx), lr)
            ms.append((time.perf_counter() - t) / block * 1e3)
        return ms
    ms = flushing(loop)() if flush in ('package', 'untuned') else loop()
    tiny = torch.finfo(torch.float32).tiny
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    den = sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in ens.W + ens.b + ens.adam.m + ens.adam.v)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), 'unknown CPU')
    print(json.dumps(dict(flush=flush, threads=threads, ms=ms, denormals=den, faults=faults, cpu=f'{cpu} ({os.cpu_count()} cores)',
                          torch=torch.__version__)))


FLUSH = dict(off='off', on='on (set in the process)', package="on, in the package's loop thread (`flushing`)",
             untuned="on, in the package's loop thread, malloc as glibc left it",
             before='on (set in the process), malloc as glibc left it: the package before issue 27')


def main(steps: int, block: int):
    rows = []
    for threads, flush in [(1, 'off'), (1, 'on'), (2, 'off'), (2, 'on'), (2, 'package'), (2, 'untuned'), (2, 'before')]:
        env = dict(os.environ, SGD_NOISE_MALLOC='0' if flush in ('untuned', 'before') else '1')
        out = subprocess.run([sys.executable, __file__, 'child', flush, str(threads), str(steps),
                              str(block)], capture_output=True, text=True, check=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1])); print(rows[-1], flush=True)
    head = [f'| threads | flush to zero | denormals at the end | page faults (process) | ms per step, each block of '
            f'{block} steps | last block |', '|---|---|---|---|---|---|']
    body = [f"| {r['threads']} | {FLUSH[r['flush']]} | {r['denormals']:,} | {r['faults']:,} | "
            f"{', '.join(f'{v:.1f}' for v in r['ms'])} | {r['ms'][-1]:.1f} |" for r in rows]
    last = {(r['threads'], r['flush']): statistics.mean(r['ms'][-2:]) for r in rows}
    ratios = [f"{t} thread{'s' if t > 1 else ''}: {last[t, 'off'] / last[t, 'on']:.1f}x" for t in (1, 2)]
    ratios.append(f"2 threads, the package's loop thread against flushing set in the process: "
                  f"{last[2, 'package'] / last[2, 'on']:.2f}x")
    ratios.append(f"2 threads, the package's loop thread with malloc as glibc left it against tuned: "
                  f"{last[2, 'untuned'] / last[2, 'package']:.2f}x")
    ratios.append(f"2 threads, the package now against the package before issue 27 (flushing set at import): "
                  f"{last[2, 'package'] / last[2, 'before']:.2f}x")
    lines = ['# Denormal floats in an Adam ensemble (CPU)', '',
             f"`python benchmarks/denormals_cpu.py {steps} {block}` on {rows[0]['cpu']}, torch {rows[0]['torch']}; "
             'one fresh process per row, run one after another.', '',
             '50 members (10 learning rates x 5 seeds, Adam with L2 5e-4, B=16, 4000 MNIST-1D examples, the '
             '40-256-256-10 MLP) as one `mlp`-engine ensemble: the smoke preset\'s Adam arm of `claims/12_adam_regimes`. '
             'Denormals count the weights and Adam moments below float32\'s smallest normal number (1.2e-38) at the '
             'end.', ''] + head + body + ['', 'Mean of the last two blocks, unflushed against flushed (the slow-down), and the package against the process: '
                                          + '; '.join(ratios) + '.', '']
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'denormals_cpu.md')
    open(path, 'w').write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    if sys.argv[1:2] == ['child']:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main(*(int(a) for a in (sys.argv[1:] + ['3000', '250'][len(sys.argv) - 1:])))
