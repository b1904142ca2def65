"The sharp/flat (KMN17) claim module: the tiny preset end to end, every check can fail, the paper preset is valid."
import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from sgd_noise import sharp_flat as sf
from sgd_noise.models import make_model
from sgd_noise.train import validate


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Small problems on shared cores: one thread for torch and scipy's BLAS. Restored afterwards."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def tiny():
    return sf.analyse(sf.run('tiny', store='ignored.sqlite', progress=False))


def test_tiny_preset_end_to_end(tiny, tmp_path):
    best = tiny['best']
    assert list(best.regime) == ['SB', 'LB', 'LB-5xLR'] and (best.network == 'mlp').all()
    assert (best.n_seeds == 2).all()
    for col in ['train_acc', 'test_acc', 'top_eig', 'trace', 'sharp_0.001_full', 'sharp_0.001_p10', 'sharp_0.0005_full', 'sharp_0.0005_p10']:
        assert np.isfinite(best[col]).all() and np.isfinite(best[col + '_std']).all(), col
    runs = tiny['runs']
    assert len(runs) == 6 and (runs.eig_residual < 1e-2).all() and (runs.trace_se > 0).all()
    net = tiny['networks']['mlp']
    assert list(net['interpolation'].columns) == ['alpha', 'train_loss', 'train_acc', 'test_loss', 'test_acc']
    assert net['interpolation'].alpha.min() == -1 and net['interpolation'].alpha.max() == 2
    assert set(net['surfaces']) == {'SB', 'LB', 'LB-5xLR'} and net['surfaces']['SB']['losses'].shape == (3, 3)
    assert len(tiny['table2']) == len(tiny['table3']) == len(tiny['slices']) == 3
    checks = sf.check(tiny)
    assert len(checks) == 9 and any('10-dim subspace' in c for c, _, _ in checks)
    assert all(isinstance(c, str) and isinstance(ok, bool) and isinstance(d, str) for c, ok, d in checks)
    fig = sf.plot(tiny, tmp_path / 'fig.png', title='tiny')
    assert (tmp_path / 'fig.png').stat().st_size > 1000 and fig is not None


def test_tiny_models_match_their_records(tiny):
    "The returned models are the trained ones: their train accuracy is the recorded one."
    data = sf.get_data(sf.configs('tiny')['mlp']['SB'][0])
    r = tiny['runs'].iloc[0]
    m = tiny['networks']['mlp']['models'][r.regime, r.seed]
    _, acc = sf.evaluate(m, data.x_train, data.y_train)
    assert abs(acc - r.train_acc) < 1e-6


# --- check on hand-made summaries: the claim holds, and each part can fail ---

def _best(sb=None, lb=None, big=None, std=0.005):
    base = dict(train_loss=0.03, train_acc=1.0, test_loss=1.3, test_acc=0.66, top_eig=4.0, trace=90.0,
                **{'sharp_0.001_full': 18.0, 'sharp_0.001_p100': 4.0})
    rows = []
    for reg, over in [('SB', sb), ('LB', {**dict(train_loss=0.035, test_acc=0.61, top_eig=11.0, **{'sharp_0.001_full': 50.0, 'sharp_0.001_p100': 10.0}), **(lb or {})}),
                      ('LB-5xLR', {**dict(train_loss=0.026, test_acc=0.665, top_eig=2.8), **(big or {})})]:
        row = dict(network='mlp', regime=reg, **{**base, **(over or {})})
        row.update({k + '_std': std * (v if k not in ('train_acc', 'test_acc') else 1) for k, v in list(row.items()) if k in base})
        rows.append(row)
    return {'best': pd.DataFrame(rows)}


def _holds(s): return {c: ok for c, ok, _ in sf.check(s)}


def test_check_holds_on_a_summary_where_the_claim_holds():
    res = sf.check(_best())
    assert len(res) == 8 and all(ok for _, ok, _ in res), [c for c, ok, _ in res if not ok]


@pytest.mark.parametrize('lb, part', [
    (dict(test_acc=0.66), 'generalises worse'),                 # no generalisation gap
    (dict(test_acc=0.655), 'generalises worse'),                # a gap smaller than the seed spread (margin 0.01)
    (dict(top_eig=3.0), 'top Hessian eigenvalue'),              # LB flatter
    (dict(top_eig=4.03), 'top Hessian eigenvalue'),             # sharper, but within the spread (margin 0.04)
    (dict(**{'sharp_0.001_full': 10.0}), 'full space'),
    (dict(**{'sharp_0.001_p100': 4.0}), 'subspace'),
    (dict(train_acc=0.9), 'as high as'),                        # LB did not train as well
    (dict(train_loss=0.2), 'as high as'),                       # ... or to a much higher loss
])
def test_each_part_of_the_claim_can_fail(lb, part):
    h = _holds(_best(lb=lb))
    failed = [c for c, ok in h.items() if not ok]
    assert failed and all(part in c for c in failed), failed


@pytest.mark.parametrize('big, part', [
    (dict(top_eig=4.0), 'flatter'), (dict(top_eig=11.0), 'flatter'),
    (dict(test_acc=0.61), 'generalises as well'), (dict(train_loss=0.1), 'as low as')])
def test_each_part_of_the_counterpoint_can_fail(big, part):
    h = _holds(_best(big=big))
    failed = [c for c, ok in h.items() if not ok]
    assert failed and all(part in c and 'counterpoint' in c for c in failed), failed


def test_check_reads_the_interpolation_when_there_is_one():
    s = _best()
    alphas = np.linspace(-1, 2, 31)
    steep_lb = pd.DataFrame(dict(alpha=alphas, train_loss=0.03 + np.where(alphas > 1, alphas - 1, 0) + 0.1 * np.where(alphas < 0, -alphas, 0)))
    steep_sb = steep_lb.assign(train_loss=steep_lb.train_loss[::-1].values)
    key = 'the SB→LB line rises more steeply'
    for line, expect in [(steep_lb, True), (steep_sb, False)]:
        h = _holds({**s, 'networks': {'mlp': {'interpolation': line}}})
        assert [ok for c, ok in h.items() if c.startswith(key)] == [expect]


def test_check_without_lb_says_so():
    s = _best(); s['best'] = s['best'][s['best'].regime == 'SB']
    (c, ok, d), = sf.check(s)
    assert not ok and 'SB and LB' in c


# --- presets ---

def test_paper_preset_configs_validate_without_loading_data():
    cfgs = sf.configs('paper')
    assert set(cfgs) == {'F1', 'C1'}
    sizes = {'F1': 60000, 'C1': 50000}
    for net, regs in cfgs.items():
        assert set(regs) == {'SB', 'LB', 'LB-5xLR'}
        for reg, group in regs.items():
            assert len(group) == len({c.config_id for c in group}) >= 3
            for c in group: validate(c)
        assert regs['SB'][0].batch_size == 256 and regs['LB'][0].batch_size == sizes[net] // 10
        assert regs['SB'][0].lr == regs['LB'][0].lr and regs['LB-5xLR'][0].lr == 5 * regs['SB'][0].lr
        assert all(c.momentum == 0 and c.schedule == 'constant' for g in regs.values() for c in g)  # plain SGD
    assert cfgs['F1']['SB'][0].dataset == 'mnist' and cfgs['F1']['SB'][0].model_kwargs == {'hidden': (512, 512)}
    assert cfgs['C1']['SB'][0].dataset == 'cifar10' and cfgs['C1']['SB'][0].model == 'c1'


def test_presets_and_overrides():
    assert {'tiny', 'smoke', 'paper'} <= set(sf.PRESETS)
    smoke = sf.configs('smoke')['mlp']
    assert [smoke[r][0].batch_size for r in ('SB', 'LB', 'LB-5xLR')] == [32, 400, 400]
    assert smoke['LB'][0].batch_size == smoke['LB'][0].n_train // 10
    assert sf.configs('tiny', device='cpu')['mlp']['SB'][0].device == 'cpu'
    with pytest.raises(ValueError, match='unknown preset'): sf.configs('huge')
    with pytest.raises(ValueError, match='unknown preset'): sf.run('huge')


def test_dinh_rescaling_keeps_the_function_and_changes_the_hessian():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    m = make_model('mlp', input_shape=(8,), n_classes=3, seed=0, hidden=(16, 16))
    t = sf.dinh_rescaling(m, x, y, x, y, factors=(1.0, 10.0))
    assert t.same_predictions.all() and (t.max_output_change < 1e-5).all() and t.test_acc.nunique() == 1
    assert t.top_eig[1] > 5 * t.top_eig[0]
