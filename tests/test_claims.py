"The claim modules: presets are valid, the tiny presets run end to end, and every check can fail."
import importlib, math

import numpy as np
import pytest

from sgd_noise.cli import CLAIMS
from sgd_noise.sweep import results_frame, train_group
from sgd_noise.train import TrainConfig, validate

SWEEP_CLAIMS = ['two-regimes', 'step-budget', 'epoch-budget']


def mod(name): return importlib.import_module(CLAIMS[name])


@pytest.mark.parametrize('name', SWEEP_CLAIMS)
def test_every_preset_gives_valid_configs(name):
    m = mod(name)
    assert {'tiny', 'smoke', 'paper'} <= set(m.PRESETS)
    for preset in m.PRESETS:
        cfgs = m.configs(preset)
        assert len(cfgs) == len({c.config_id for c in cfgs}) > 0
        for c in cfgs: validate(c)
    paper = m.configs('paper')
    assert all(c.dataset == 'cifar10' and c.model == 'wrn' for c in paper)
    with pytest.raises(ValueError, match='unknown preset'): m.configs('huge')


@pytest.mark.parametrize('name', SWEEP_CLAIMS + ['noise-scale'])
def test_tiny_preset_end_to_end(name, tmp_path):
    m = mod(name)
    s = m.analyse(m.run('tiny', store=tmp_path / f'{name}.sqlite', progress=False))
    checks = m.check(s)
    assert checks and all(isinstance(c, str) and isinstance(ok, bool) and isinstance(d, str) for c, ok, d in checks)
    fig = m.plot(s, tmp_path / 'fig.png')
    assert (tmp_path / 'fig.png').stat().st_size > 1000 and fig is not None


def _write_tiny_cifar(root, n_per_batch=8, n_test=8, seed=0):
    import pickle
    folder = root / 'cifar-10-batches-py'; folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, n in [(f'data_batch_{i}', n_per_batch) for i in range(1, 6)] + [('test_batch', n_test)]:
        with open(folder / name, 'wb') as f:
            pickle.dump({b'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8), b'labels': list(rng.integers(0, 10, n))}, f)
    with open(folder / 'batches.meta', 'wb') as f: pickle.dump({b'label_names': [b'c%d' % i for i in range(10)]}, f)


@pytest.mark.parametrize('name', SWEEP_CLAIMS)
def test_paper_preset_code_path_on_tiny_cifar_files(name, tmp_path, monkeypatch):
    "The paper presets' code path (CIFAR-10 files, WRN-16-4 with ghost batch norm) on tiny files in the real format."
    _write_tiny_cifar(tmp_path)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    c = mod(name).configs('paper')[0]
    budget = dict(steps=2, epochs=None) if c.steps is not None else dict(epochs=1)
    small = c.replace(n_train=32, n_test=8, batch_size=16, device='cpu', n_evals=1, **budget)
    res = train_group([small, small.replace(seed=1)], progress=False)
    assert [r['status'] for r in res] == ['ok', 'ok'] and res[0]['env']['engine'] == 'loop'
    assert res[0]['final'] != res[1]['final']


# --- each check can fail: hand-made sweeps where the claim holds, and where it does not ---

def _frame(rows):
    out = []
    for cfg, acc, loss in rows:
        fin = dict(train_loss=loss, train_acc=acc, test_loss=loss, test_acc=acc)
        out.append(dict(config=cfg.to_dict(), status='ok', final=fin, history=[], steps_done=1, diverged_at=None, wall_time=0, env={}))
    return results_frame(out)


def _two_regimes_frame(acc_of_b, lr_star_of_b, momentum=0.0, lrs=tuple(2.0 ** k for k in range(-5, 4))):
    rows = []
    for b in (8, 16, 32, 64, 128, 256, 512, 1024, 4000):
        for e in lrs:
            for seed in (0, 1):
                acc = acc_of_b(b) - 0.05 * abs(math.log2(e / lr_star_of_b(b))) + 0.002 * seed
                rows.append((TrainConfig(batch_size=b, lr=e * (1 - momentum), momentum=momentum, seed=seed, epochs=20), acc, 1 - acc))
    return _frame(rows)


def test_two_regimes_check_holds_and_fails():
    tr = mod('two-regimes')
    good = _two_regimes_frame(lambda b: 0.75 if b <= 128 else 0.75 - 0.1 * math.log2(b / 128), lambda b: min(b / 32, 2.0))
    assert all(ok for _, ok, _ in tr.check(tr.analyse(good)))
    flat = _two_regimes_frame(lambda b: 0.75, lambda b: min(b / 32, 2.0))          # accuracy never falls
    assert not dict((c, ok) for c, ok, _ in tr.check(tr.analyse(flat)))['test accuracy falls in the curvature-dominated regime']
    fixed_lr = _two_regimes_frame(lambda b: 0.75 if b <= 128 else 0.6, lambda b: 0.5)  # optimal LR never grows
    assert not tr.check(tr.analyse(fixed_lr))[1][1]
    import pandas as pd   # momentum equal to plain everywhere: "momentum wins at large B" must fail
    both = pd.concat([good, _two_regimes_frame(lambda b: 0.75 if b <= 128 else 0.75 - 0.1 * math.log2(b / 128),
                                               lambda b: min(b / 32, 2.0), momentum=0.9)])
    checks = tr.check(tr.analyse(both))
    assert len(checks) == 7 and checks[5][1] and not checks[6][1]


def test_step_budget_check_holds_and_fails():
    sb = mod('step-budget')
    lrs = [2.0 ** k for k in range(-5, 4)]
    def frame(acc_of_b, loss_of_b):
        return _frame([(TrainConfig(batch_size=b, lr=e, seed=s, steps=300), acc_of_b(b) - 0.05 * abs(math.log2(e / min(b / 64, 2) ** 0.5)),
                        loss_of_b(b) * (1 + abs(math.log2(e / 0.5)))) for b in (16, 32, 64, 128, 256, 512, 1024) for e in lrs for s in (0, 1)])
    good = frame(lambda b: 0.7 - 0.03 * abs(math.log2(b / 64)), lambda b: 1 / b)
    assert all(ok for _, ok, _ in sb.check(sb.analyse(good)))
    bad = frame(lambda b: 0.6 + 0.01 * math.log2(b), lambda b: 1 / b)   # accuracy keeps rising with B
    assert not sb.check(sb.analyse(bad))[0][1]


def test_epoch_budget_check_holds_and_fails():
    eb = mod('epoch-budget')
    lrs = [2.0 ** k for k in range(-7, 3)]
    def frame(acc_lr, loss_lr):
        rows = []
        for e in (1, 2, 4, 8, 16, 32):
            for lr in lrs:
                acc = min(0.5 + 0.05 * math.log2(e), 0.7) - 0.03 * abs(math.log2(lr / acc_lr(e)))
                loss = (1 / e) * (1 + abs(math.log2(lr / loss_lr(e))))
                rows += [(TrainConfig(batch_size=32, epochs=e, lr=lr, seed=s), acc, loss) for s in (0, 1)]
        return _frame(rows)
    good = frame(lambda e: 0.5, lambda e: 2.0 / e)
    assert all(ok for _, ok, _ in eb.check(eb.analyse(good)))
    same = frame(lambda e: 2.0 / e, lambda e: 2.0 / e)       # test-optimal LR falls as fast as the loss-optimal one
    assert not eb.check(eb.analyse(same))[2][1]


def test_noise_scale_estimator_matches_closed_form():
    ns = importlib.import_module('sgd_noise.noise_scale')
    model, x, y, loss, truth = ns.regression_problem(d=10, n=50_000, sigma=0.3, seed=1)
    est = ns.gradient_noise_scale(model, x, y, b_small=8, b_big=1024, n_batches=300, loss=loss, seed=2)
    for k in ('G2', 'trS', 'B_simple'): assert abs(est[k] / truth[k] - 1) < 0.15, (k, est[k], truth[k])
    exact = ns.noise_scale_from_norms(truth['G2'] + truth['trS'] / 8, truth['G2'] + truth['trS'] / 1024, 8, 1024)
    for k in ('G2', 'trS', 'B_simple'): assert abs(exact[k] - truth[k]) < 1e-9 * truth[k]
    with pytest.raises(ValueError, match='b_small < b_big'): ns.gradient_noise_scale(model, x, y, b_small=64, b_big=32)


def test_noise_scale_check_holds_and_fails():
    "The prediction counts only within one grid step of the sweep's transition interval."
    import pandas as pd
    ns = mod('noise-scale')
    best = pd.DataFrame(dict(batch_size=[16, 32, 64, 128, 256, 512]))
    def s(b_simple_const, late=5000.0):
        lr0 = 0.5
        h = pd.DataFrame(dict(step=range(6), epoch=range(6), lr=[lr0] * 3 + [lr0 / 2, lr0 / 4, lr0 / 8],
                              train_loss=0.1, test_acc=0.7, G2=1.0, trS=1.0, B_simple=list(b_simple_const) + [late] * 3,
                              B_simple_se=1.0))
        return ns.analyse(dict(history=h, regimes=dict(transition=128, best=best), config=TrainConfig(lr=lr0)))
    for const, holds in [((150, 200, 260), True), ((60, 70, 90), True), ((400, 480, 600), True),
                         ((20, 30, 40), False), ((900, 1100, 1500), False)]:
        checks = ns.check(s(const))
        assert checks[1][1] is holds, (const, checks[1])
        assert checks[0][1]                       # 5000 late vs the first value: it grew
    assert not ns.check(s((6000, 6000, 6000)))[0][1]   # no growth: the first part fails
