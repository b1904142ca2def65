"""Which modules a config passes through on its way from `sweep` to the store, in order (CONTRIBUTING.md describes it).

Profiles one small sweep (two learning rates x one seed, the course MLP on MNIST-1D, 2 steps, into a store) and
records, for every call inside `sgd_noise` that receives a `TrainConfig` (alone, or a list of them), the module of the
called function. The config's own methods are not counted, nor what they call inside the config's module: a config
that checks itself (`check_data`) or makes its step plan (`step_plan`) stays where it is. Prints the path with repeats collapsed, how many times the config enters each module, and how
many times it comes back to a module it has already left.

    python benchmarks/config_path.py
"""
import collections, os, sys, tempfile, threading

from sgd_noise import TrainConfig, grid, sweep


def carries_config(frame) -> bool:
    "True when a call receives a config (not counting the config's own methods: `self` is skipped)."
    for k, v in frame.f_locals.items():
        if k == 'self': continue
        if isinstance(v, TrainConfig): return True
        if isinstance(v, (list, tuple)) and v and isinstance(v[0], TrainConfig): return True
    return False


def inside_config_method(frame) -> bool:
    "True when `frame` runs inside one of the config's own methods (the chain of callers in its module reaches one)."
    home = TrainConfig.__module__
    while frame is not None and frame.f_globals.get('__name__') == home:
        if isinstance(frame.f_locals.get('self'), TrainConfig): return True
        frame = frame.f_back
    return False


def trace(configs, store):
    path = []
    def prof(frame, event, arg):
        if event != 'call': return
        mod = frame.f_globals.get('__name__', '')
        if mod.startswith('sgd_noise') and carries_config(frame) and not inside_config_method(frame.f_back):
            if not path or path[-1] != mod: path.append(mod)
    sys.setprofile(prof); threading.setprofile(prof)   # the package trains in its own loop thread, started here
    try: sweep(configs, store=store, progress=False)
    finally: sys.setprofile(None); threading.setprofile(None)
    return path


if __name__ == '__main__':
    os.environ.setdefault('SGD_NOISE_PROGRESS', '0')
    configs = grid(TrainConfig(dataset='mnist1d', model='mlp', n_train=256, n_test=64, steps=2, batch_size=32),
                   lr=[0.1, 0.2], seed=[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = trace(configs, os.path.join(tmp, 's.sqlite'))
    short = [m.removeprefix('sgd_noise.') for m in path]
    print('path:', ' -> '.join(short))
    entries = collections.Counter(short)
    back = sum(1 for i, m in enumerate(short) if m in short[:i])
    print('entries per module:', dict(entries))
    print(f'modules: {len(entries)}; entries: {len(short)}; comes back to a module it had left: {back} times')
