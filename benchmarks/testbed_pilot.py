"""Pilot for a gpu testbed with room (issue 26, item 1), on the CPU: does the gpu presets' conv net
(`sgd_noise.claims.contract.GPU_SCALE`: a 5-layer 1-D conv net with ghost batch norm) leave a test error of roughly
8-15% at its best batch size on fewer MNIST-1D examples, or with noisy training labels?

    python benchmarks/testbed_pilot.py [--store PATH]     # about 2 minutes on 2 cores; writes testbed_pilot.{json,md}

Plain SGD, L2 5e-4, 10 epochs, the sed20 schedule (as the two-regimes gpu preset), two seeds, a 2000-example test
set. Part 1: 1000, 2000 and 4000 training examples at B = 32, learning rates 0.25 and 1. Part 2: 4096 examples with
0%, 20% and 40% of the training labels replaced (`label_noise`), at B = 32 (rate 0.25) and B = 512 (rates 0.5, 2).
Every member trains in a `vmap` ensemble. A pilot, not a verdict: it chooses a testbed, it tests no claim.
"""
import argparse, json, platform, time, warnings
from pathlib import Path

import torch

from sgd_noise import TrainConfig, sweep
from sgd_noise.claims.contract import GPU_SCALE, cpu_name

HERE = Path(__file__).resolve().parent


def runs():
    base = TrainConfig(**{**GPU_SCALE, 'device': 'cpu', 'n_test': 2000}, epochs=10, n_evals=1, weight_decay=5e-4)
    for n in (1000, 2000, 4000):
        yield 'examples', [base.replace(n_train=n, batch_size=32, lr=lr, seed=s) for lr in (0.25, 1.0) for s in (0, 1)]
    for noise in (0.0, 0.2, 0.4):
        for b, lrs in ((32, (0.25,)), (512, (0.5, 2.0))):
            yield 'label noise', [base.replace(n_train=4096, batch_size=b, label_noise=noise, lr=lr, seed=s)
                                  for lr in lrs for s in (0, 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=None, help='a results store to resume from (default: none)')
    args = ap.parse_args()
    warnings.simplefilter('ignore')
    rows, t0 = [], time.time()
    for part, cs in runs():
        df = sweep(cs, store=args.store, progress=False, engine='vmap')
        for c, r in zip(cs, df.itertuples()):
            rows.append(dict(part=part, n_train=c.n_train, label_noise=c.label_noise, batch_size=c.batch_size, lr=c.lr,
                             seed=c.seed, status=r.status, test_acc=r.test_acc, train_acc=r.train_acc))
    env = dict(cpu=cpu_name(), threads=torch.get_num_threads(), torch=torch.__version__,
               python=platform.python_version(), seconds=round(time.time() - t0), date=time.strftime('%Y-%m-%d'))
    (HERE / 'testbed_pilot.json').write_text(json.dumps(dict(env=env, rows=rows), indent=1) + '\n')
    lines = [f"# Testbed pilot (issue 26, item 1)\n",
             f"Written by `benchmarks/testbed_pilot.py` on {env['date']}: {env['cpu']}, {env['threads']} threads, torch "
             f"{env['torch']}, {env['seconds']} s. The gpu conv net (`GPU_SCALE`), plain SGD, L2 5e-4, 10 epochs, "
             "sed20; test accuracy on 2000 examples, two seeds (mean, and each seed).\n",
             '| part | training examples | label noise | B | η | test accuracy (mean) | seeds | train accuracy (mean) |',
             '|---|---|---|---|---|---|---|---|']
    keys = sorted({(r['part'], r['n_train'], r['label_noise'], r['batch_size'], r['lr']) for r in rows},
                  key=lambda k: (k[0] != 'examples', k[1], k[2], k[3], k[4]))
    for k in keys:
        rs = [r for r in rows if (r['part'], r['n_train'], r['label_noise'], r['batch_size'], r['lr']) == k]
        te = [r['test_acc'] for r in rs]; tr = [r['train_acc'] for r in rs]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]:.0%} | {k[3]} | {k[4]:g} | {sum(te) / len(te):.4f} | "
                     f"{', '.join(f'{v:.4f}' for v in te)} | {sum(tr) / len(tr):.3f} |")
    (HERE / 'testbed_pilot.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
