"The sharp/flat (KMN17) claim module: the tiny preset end to end, every check can fail, the paper preset is valid."
import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from sgd_noise.claims import sharp_flat as sf
from sgd_noise.claims.contract import run_checks
from sgd_noise import evaluate, make_model
from sgd_noise.claims.sharp_measure import dinh_rescaling
from sgd_noise.core.config import validate


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
    return sf.analyse(sf.run('tiny', store='ignored.sqlite', progress=False), sf.CLAIM.margins('tiny'))


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
    checks = run_checks(sf.CLAIM, tiny, 'tiny')
    assert [c.id for c in checks] == [s.id for s in sf.SPECS] and all(isinstance(c.holds, bool) for c in checks)
    assert len(net['rises']) == 2 and (runs.stability > 0).all() and 'reached_target' in runs
    fig = sf.plot(tiny, tmp_path / 'fig.png', title='tiny')
    assert (tmp_path / 'fig.png').stat().st_size > 1000 and fig is not None


def test_tiny_models_match_their_records(tiny):
    "The returned models are the trained ones: their train accuracy is the recorded one."
    data = sf.get_data(sf.configs('tiny')['mlp']['SB'][0])
    r = tiny['runs'].iloc[0]
    m = tiny['networks']['mlp']['models'][r.regime, r.seed]
    _, acc = evaluate(m, data.x_train, data.y_train)
    assert abs(acc - r.train_acc) < 1e-6


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
        assert len({c.target_loss for g in regs.values() for c in g}) == 1          # compared at matched loss
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
    t = dinh_rescaling(m, x, y, x, y, factors=(1.0, 10.0))
    assert t.same_predictions.all() and (t.max_output_change < 1e-5).all() and t.test_acc.nunique() == 1
    assert t.top_eig[1] > 5 * t.top_eig[0]
