"The claim modules: the registry, presets that follow the papers, every claim through the CLI, and checks that can fail."
import json, math, os

import numpy as np
import pandas as pd
import pytest

from sgd_noise.core.metrics import FINISHED
from sgd_noise.claims.stats import OUTCOMES
from sgd_noise.cli import main
from sgd_noise.claims import claims, get_claim
from sgd_noise.claims.contract import claim_run, committed_run, preregistration, run_checks
from sgd_noise import ResultStore, results_frame
from sgd_noise.sweeps.group import train_group
from sgd_noise import TrainConfig, train
from sgd_noise.core.config import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEP_CLAIMS = ['two-regimes', 'step-budget', 'epoch-budget']
ALL = ['two-regimes', 'step-budget', 'epoch-budget', 'noise-scale', 'sharp-flat', 'sde-quadratic', 'averaged-sgd', 'swa', 'three-factors',
       'sharp-flat-trend', 'adam-regimes', 'edge-of-stability', 'critical-batch', 'noise-needed']
TESTED_KINDS = ('differs', 'equivalent', 'slope', 'ratio')   # kinds whose verdict needs a declared margin


def test_registry_finds_every_claim_in_notebook_order():
    assert list(claims()) == ALL
    with pytest.raises(ValueError, match='unknown claim'): get_claim('nonsense')


@pytest.mark.parametrize('name', ALL)
def test_every_preset_declares_every_margin_with_a_reason(name):
    c = get_claim(name)
    assert {'tiny', 'smoke', 'gpu', 'paper'} <= set(c.presets)
    for preset in c.presets:
        pre = preregistration(c, preset)
        assert list(pre.index) == [s.id for s in c.specs]
        for s in c.specs:
            if s.kind in TESTED_KINDS:
                assert s.id in c.declared_margins(preset), (name, preset, s.id)
                assert len(c.declared_margins(preset)[s.id][1]) > 10, 'every margin has a reason'
    for preset, known in c.known_failures.items():
        assert set(known) <= {s.id for s in c.specs} and preset in c.presets
    with pytest.raises(ValueError, match='unknown preset'): c.preset('huge')


@pytest.mark.parametrize('name', SWEEP_CLAIMS)
def test_every_preset_gives_valid_configs(name):
    m = get_claim(name)
    mod = get_claim(name)   # its configs: the module's, or a grid claim's default
    for preset in m.presets:
        cfgs = mod.configs(preset)
        assert len(cfgs) == len({c.config_id for c in cfgs}) > 0
        for c in cfgs: validate(c)
    paper = mod.configs('paper')
    assert all(c.dataset == 'cifar10' and c.model == 'wrn' and c.augment == 'crop-flip' for c in paper)
    assert all(c.weight_decay == 5e-4 for c in paper + mod.configs('smoke'))
    with pytest.raises(ValueError, match='unknown preset'): mod.configs('huge')


@pytest.mark.parametrize('name', ['step-budget', 'epoch-budget'])
def test_budget_studies_use_sed20_momentum(name):
    mod = get_claim(name)   # its configs: the module's, or a grid claim's default
    for preset in ('smoke', 'gpu', 'paper'):
        assert {c.momentum for c in mod.configs(preset)} == {0.9}


@pytest.mark.parametrize('name', SWEEP_CLAIMS)
def test_gpu_presets_train_the_deeper_net_on_the_larger_set_with_five_seeds(name):
    "The gpu scale: MNIST-1D at 16,000 examples, the 5-layer 1-D conv net with ghost batch norm, >= 5 seeds, SED20's L2."
    mod = get_claim(name)   # its configs: the module's, or a grid claim's default
    cfgs = mod.configs('gpu')
    assert all(c.n_train == 16000 and c.model == 'cnn' and c.model_kwargs['norm'] == 'ghost' and c.device == 'auto'
               and c.weight_decay == 5e-4 for c in cfgs)
    assert len({c.seed for c in cfgs}) >= 5
    assert {c.config_id for c in mod.configs('gpu', device='cuda')} == {c.config_id for c in cfgs}  # ids: no device


@pytest.mark.parametrize('name', ['two-regimes', 'step-budget', 'epoch-budget'])
def test_committed_gpu_runs_give_the_committed_verdict(name):
    "The committed stores (H200 runs) re-derive, on a CPU and training nothing, the checks of the committed verdict."
    c = get_claim(name)
    raw, s = committed_run(c, 'gpu', folder=os.path.join(REPO, 'verdicts', 'runs'))
    assert 'NVIDIA H200' in set(raw.hardware) and len(raw) == len(c.configs('gpu'))
    committed = json.load(open(os.path.join(REPO, 'verdicts', f'{name}-gpu.json')))
    assert [(k.id, k.holds) for k in run_checks(c, s, 'gpu')] == [(k['id'], k['holds']) for k in committed['checks']]
    assert sum(committed['trained_on'].values()) == len(raw)
    assert committed['trained_on'].get('NVIDIA H200, torch 2.11.0+cu130', 0) == int((raw.hardware == 'NVIDIA H200').sum())


@pytest.mark.parametrize('name', sorted(claims()))
def test_committed_smoke_run_gives_the_committed_verdict(name, monkeypatch):
    """`SGD_NOISE_RUN=committed` reads the raw results kept beside the committed smoke verdict; re-analysed, training
    nothing, they give that verdict's every estimate and outcome (so the file is the run behind the verdict)."""
    c = get_claim(name)
    monkeypatch.setenv('SGD_NOISE_RUN', 'committed')
    monkeypatch.setattr(c, 'run', lambda *a, **k: pytest.fail('trained instead of reading the committed run'))
    raw = claim_run(c, 'smoke', folder=os.path.join(REPO, 'verdicts', 'runs'), store='unused.sqlite')
    got = run_checks(c, c.analyse(raw, c.margins('smoke')), 'smoke')
    want = json.load(open(os.path.join(REPO, 'verdicts', f'{name}-smoke.json')))['checks']
    assert [(k.id, k.outcome) for k in got] == [(k['id'], k['outcome']) for k in want]
    nan = lambda v: math.nan if v is None else v   # a verdict file writes NaN as null
    assert [k.estimate for k in got] == pytest.approx([nan(k['estimate']) for k in want], rel=1e-9, nan_ok=True)


def test_claim_run_without_a_committed_run_says_which_presets_have_one(tmp_path):
    c = get_claim('swa')
    with pytest.raises(ValueError, match=r"no committed run of swa at preset 'tiny' .*committed presets: smoke"):
        claim_run(c, 'tiny', committed=True, folder=os.path.join(REPO, 'verdicts', 'runs'))
    (tmp_path / 'swa-smoke.pkl.gz').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match=r'cannot be read here .*unset SGD_NOISE_RUN'):
        claim_run(c, 'smoke', committed=True, folder=tmp_path)


def test_committed_run_refuses_to_train(tmp_path):
    "A store missing runs of the preset is a one-line error naming how many, not a silent sweep."
    c = get_claim('step-budget')
    with pytest.raises(ValueError, match='no committed runs'): committed_run(c, 'tiny', folder=tmp_path)
    ResultStore(tmp_path / 'step-budget-tiny.sqlite').add(
        [r for r in [train(c.configs('tiny')[0], progress=False).to_dict()]])
    with pytest.raises(ValueError, match=r'holds 1 of the \d+ runs of preset'): committed_run(c, 'tiny', folder=tmp_path)


def test_sharp_flat_compares_at_matched_loss():
    from sgd_noise.claims.sharp_flat import configs
    for preset in ('smoke', 'paper'):
        for net, regs in configs(preset).items():
            targets = {c.target_loss for cs in regs.values() for c in cs}
            assert len(targets) == 1 and None not in targets, (preset, net, targets)


@pytest.mark.parametrize('name', ALL)
def test_every_claim_reproduces_through_the_cli(name, tmp_path, capsys):
    "`sgd-noise reproduce CLAIM --preset tiny`: a verdict, a table, a figure, exit 0 (a plumbing preset), no traceback."
    res, img = tmp_path / 'res', tmp_path / 'img'
    code = main(['reproduce', name, '--preset', 'tiny', '--no-progress', '--results', str(res), '--images', str(img)])
    out = capsys.readouterr()
    assert code in (0, 1) and 'Traceback' not in out.out + out.err
    n = len(get_claim(name).specs)
    assert sum(line.startswith(tuple(f'{o.upper()}  ' for o in OUTCOMES)) for line in out.out.splitlines()) == n
    assert code == 0 and 'plumbing preset' in out.out   # tiny tests the code path: its outcomes never fail
    assert (img / f"{name.replace('-', '_')}_tiny.png").stat().st_size > 1000
    assert (res / f'{name}-tiny.csv').stat().st_size > 0 and (res / f'{name}-tiny.json').exists()


def _write_tiny_cifar(root, n_per_batch=8, n_test=8, seed=0):
    import pickle
    folder = root / 'cifar-10-batches-py'; folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, n in [(f'data_batch_{i}', n_per_batch) for i in range(1, 6)] + [('test_batch', n_test)]:
        with open(folder / name, 'wb') as f:
            pickle.dump({'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8), 'labels': list(rng.integers(0, 10, n))}, f)
    with open(folder / 'batches.meta', 'wb') as f: pickle.dump({'label_names': ['c%d' % i for i in range(10)]}, f)


@pytest.mark.parametrize('name', SWEEP_CLAIMS)
def test_paper_preset_code_path_on_tiny_cifar_files(name, tmp_path, monkeypatch):
    "The paper presets' code path (CIFAR-10 files, WRN-16-4 with ghost batch norm, augmentation) on tiny files."
    _write_tiny_cifar(tmp_path)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    mod = get_claim(name)   # its configs: the module's, or a grid claim's default
    c = mod.configs('paper')[0]
    budget = dict(steps=2, epochs=None) if c.steps is not None else dict(epochs=1)
    small = c.replace(n_train=32, n_test=8, batch_size=16, device='cpu', n_evals=1, **budget)
    res = train_group([small, small.replace(seed=1)], progress=False)
    assert all(r['status'] in FINISHED for r in res) and res[0]['env']['engine'] == 'loop'
    assert res[0]['final'] != res[1]['final'] and res[0]['config']['augment'] == 'crop-flip'


# --- each claim's checks can fail: hand-made sweeps where the claim holds, and where it does not ---

SEEDS = range(5)
RNG = np.random.default_rng(0)
SEED_EFFECT = RNG.normal(0, 0.01, 5)   # what the arms of one seed share


def _frame(rows):
    out = []
    for cfg, acc, loss in rows:
        fin = dict(train_loss=loss, train_acc=acc, test_loss=loss, test_acc=acc)
        out.append(dict(config=cfg.to_dict(), status='ok', final=fin, history=[], steps_done=1, diverged_at=None,
                        wall_time=0, env={}))
    return results_frame(out)


def _acc(base, lr, lr_star, seed, width=0.05):
    "A V-shaped accuracy in log2 LR around `lr_star`, plus the seed's shared effect and a little run noise."
    return base - width * abs(math.log2(lr / lr_star)) + SEED_EFFECT[seed] + 0.002 * math.sin(7 * seed + lr)


def _two_regimes_frame(acc_of_b, lr_star_of_b, momentum=0.0, lrs=tuple(2.0 ** k for k in range(-5, 5))):
    rows = []
    for b in (16, 32, 64, 128, 256, 512, 1024, 4000):
        for e in lrs:
            for seed in SEEDS:
                acc = _acc(acc_of_b(b), e, lr_star_of_b(b), seed)
                rows.append((TrainConfig(batch_size=b, lr=e * (1 - momentum), momentum=momentum, seed=seed, epochs=20),
                             acc, 1 - acc))
    return _frame(rows)


def _verdict(name, df):
    c = get_claim(name)
    m = c.margins('smoke')
    return {k.id: k.holds for k in run_checks(c, c.analyse(df, m), 'smoke')}


def test_two_regimes_checks_hold_and_fail():
    fall = lambda b: 0.75 if b <= 128 else 0.75 - 0.1 * math.log2(b / 128)
    lr_star = lambda b: min(b / 32, 2.0)
    plain = _two_regimes_frame(fall, lr_star)
    mom = _two_regimes_frame(lambda b: fall(b) + (0.05 if b > 128 else 0.0), lr_star, momentum=0.9)
    assert all(_verdict('two-regimes', pd.concat([plain, mom])).values())
    flat = _two_regimes_frame(lambda b: 0.75, lr_star)                        # accuracy never falls
    v = _verdict('two-regimes', pd.concat([flat, _two_regimes_frame(lambda b: 0.75, lr_star, momentum=0.9)]))
    assert not v['acc-falls-large-batch']
    fixed = _two_regimes_frame(lambda b: 0.75 if b <= 128 else 0.6, lambda b: 0.5)   # the optimal LR never grows
    v = _verdict('two-regimes', pd.concat([fixed, _two_regimes_frame(lambda b: 0.75 if b <= 128 else 0.6,
                                                                     lambda b: 0.5, momentum=0.9)]))
    assert not v['lr-grows-linearly']
    same = _verdict('two-regimes', pd.concat([plain, _two_regimes_frame(fall, lr_star, momentum=0.9)]))
    assert same['momentum-equal-small'] and not same['momentum-better-large']   # momentum changes nothing
    worse = _verdict('two-regimes', pd.concat([plain, _two_regimes_frame(lambda b: fall(b) - 0.03, lr_star, momentum=0.9)]))
    assert not worse['momentum-equal-small']                                   # 3 points below: not equal
    short = tuple(2.0 ** k for k in range(-5, 3))                             # the grid stops below the optimum
    edge = [_two_regimes_frame(fall, lambda b: 16.0, momentum=m, lrs=short) for m in (0.0, 0.9)]
    assert not _verdict('two-regimes', pd.concat(edge))['optima-inside-grid']


def _step_frame(acc_of_b, loss_of_b, slope=0.5):
    lrs = [2.0 ** k for k in range(-5, 7)]
    return _frame([(TrainConfig(batch_size=b, lr=e * 0.1, momentum=0.9, seed=s, steps=300),
                    _acc(acc_of_b(b), e, 0.25 * (b / 16) ** slope, s), loss_of_b(b) * (1 + abs(math.log2(e / 0.5))))
                   for b in (16, 32, 64, 128, 256, 512, 1024) for e in lrs for s in SEEDS])


def test_step_budget_checks_hold_and_fail():
    good = _step_frame(lambda b: 0.7 - 0.03 * abs(math.log2(b / 128)), lambda b: 1 / b)
    assert all(_verdict('step-budget', good).values())
    rising = _step_frame(lambda b: 0.6 + 0.01 * math.log2(b), lambda b: 1 / b)   # accuracy keeps rising with B
    assert not _verdict('step-budget', rising)['acc-falls-at-largest']
    linear = _step_frame(lambda b: 0.7 - 0.03 * abs(math.log2(b / 128)), lambda b: 1 / b, slope=1.0)
    assert not _verdict('step-budget', linear)['lr-sublinear']                  # ε* ∝ B is not sublinear
    flat_loss = _step_frame(lambda b: 0.7 - 0.03 * abs(math.log2(b / 128)), lambda b: 0.01)
    assert not _verdict('step-budget', flat_loss)['loss-lower-at-largest']


def _epoch_frame(acc_lr, loss_lr, acc_of_e=lambda e: min(0.5 + 0.05 * math.log2(e), 0.7)):
    rows = []
    for e in (1, 2, 4, 8, 16, 32):
        for lr in [2.0 ** k for k in range(-7, 3)]:
            loss = (1 / e) * (1 + abs(math.log2(lr / loss_lr(e))))
            rows += [(TrainConfig(batch_size=32, epochs=e, lr=lr * 0.1, momentum=0.9, seed=s),
                      _acc(acc_of_e(e), lr, acc_lr(e), s, width=0.03), loss * (1 + 0.01 * s)) for s in SEEDS]
    return _frame(rows)


def test_epoch_budget_checks_hold_and_fail():
    good = _epoch_frame(lambda e: 0.5, lambda e: 2.0 / e)
    assert all(_verdict('epoch-budget', good).values())
    same = _verdict('epoch-budget', _epoch_frame(lambda e: 2.0 / e, lambda e: 2.0 / e))  # both fall alike
    assert not same['acc-lr-falls-less'] and not same['acc-lr-nearly-constant']
    slow = _verdict('epoch-budget', _epoch_frame(lambda e: 0.5, lambda e: 1.0))          # nothing falls
    assert not slow['loss-lr-falls']
    rising = _verdict('epoch-budget', _epoch_frame(lambda e: 0.5, lambda e: 2.0 / e, acc_of_e=lambda e: 0.4 + 0.05 * math.log2(e)))
    assert not rising['acc-saturates'] and rising['acc-rises']


def test_noise_scale_checks_hold_and_fail():
    """The prediction holds when the interval over seeds of the per-seed median lies within one grid step of the
    transition interval, is contradicted when it lies outside, inconclusive when it straddles an end."""
    ns = get_claim('noise-scale')
    bs = [16, 32, 64, 128, 256, 512]
    def verdict(consts, late=5000.0):
        lr0 = 0.5
        h = pd.concat([pd.DataFrame(dict(step=range(7), epoch=range(7), lr=[lr0] * 4 + [lr0 / 2, lr0 / 4, lr0 / 8],
                                         train_loss=0.1, test_acc=0.7, G2=1.0, trS=1.0,
                                         B_simple=[99999.0] + list(const) + [late] * 3, B_simple_se=1.0, seed=sd))
                       for sd, const in enumerate(consts)], ignore_index=True)
        s = ns.analyse(dict(history=h, regimes=dict(transition=128, batch_sizes=bs), config=TrainConfig(lr=lr0)))
        return {c.id: c.outcome for c in run_checks(ns, s, 'smoke')}
    seeds = lambda const: [tuple(v * (1 + 0.03 * k) for v in const) for k in range(5)]   # five similar seeds
    for const, outcome in [((150, 200, 260), 'holds'), ((80, 90, 110), 'holds'), ((350, 400, 430), 'holds'),
                           ((20, 30, 40), 'contradicted'), ((900, 1100, 1500), 'contradicted')]:
        v = verdict(seeds(const))
        assert v['b-simple-predicts-transition'] == outcome, const
        assert v['b-simple-grows'] == 'holds'                  # 5000 late against the first value after step 0
    spread = [(m, m, m) for m in (40, 90, 60, 120, 50)]         # medians around the window's lower end, 64
    assert verdict(spread)['b-simple-predicts-transition'] == 'inconclusive'
    flat = verdict([(6000 * (1 + 0.01 * k),) * 3 for k in range(5)], late=6000.0)
    assert flat['b-simple-grows'] == 'contradicted'             # no growth (step 0 is not counted)
    one = verdict(seeds((150, 200, 260))[:1])                   # one seed: no interval over seeds
    assert set(one.values()) == {'not testable'}


def _sharp_runs(lb_sharpness=3.0, lb5_sharpness=0.5, lb_acc=-0.04):
    rows = []
    for s in SEEDS:
        for reg, sharp, dacc in [('SB', 1.0, 0.0), ('LB', lb_sharpness, lb_acc), ('LB-5xLR', lb5_sharpness, 0.0)]:
            f = 1 + 0.05 * math.sin(3 * s + len(reg))
            rows.append(dict(network='mlp', regime=reg, seed=s, train_loss=0.048 * (1 + 0.01 * s), train_acc=1.0,
                             test_acc=0.66 + dacc + SEED_EFFECT[s], top_eig=4 * sharp * f, reached_target=True,
                             **{'sharp_0.001_full': 10 * sharp * f, 'sharp_0.001_p100': 2 * sharp * f}))
    rises = pd.DataFrame(dict(rise_sb=[0.1 + 0.01 * s for s in SEEDS], rise_lb=[0.5 + 0.03 * s for s in SEEDS]))
    return dict(runs=pd.DataFrame(rows), networks={'mlp': dict(rises=rises)})


def test_sharp_flat_checks_hold_and_fail():
    c = get_claim('sharp-flat')
    verdict = lambda s: {k.id: k.holds for k in run_checks(c, s, 'smoke')}
    assert all(verdict(_sharp_runs()).values())
    same = verdict(_sharp_runs(lb_sharpness=1.0, lb_acc=0.0))     # LB no sharper and no worse
    assert not same['lb-sharper-eig'] and not same['lb-sharper-eps'] and not same['lb-generalises-worse']
    assert not verdict(_sharp_runs(lb5_sharpness=1.0))['larger-lr-flatter']
