"The sweep engine: ensemble members equal single runs, the store, executors (kills and other faults: test_faults.py)."
import json, math, os, sqlite3, warnings

import pandas as pd
import pytest
import torch

from sgd_noise.core.metrics import FINISHED
from sgd_noise import ResultStore, grid, results_frame, sweep
from sgd_noise.sweeps.analysis import best_lr, diverged_fraction, seed_stats
from sgd_noise.sweeps.group import choose_engine, train_group
from sgd_noise.sweeps.grids import group_key, make_groups
from sgd_noise.sweeps.sweeping import run_group
from sgd_noise import make_model
from sgd_noise.core.config import StepPlan
from sgd_noise import TrainConfig, train

FAST = dict(dataset='mnist1d', n_train=512, n_test=128)


def _max_rel_diff(a, b):
    worst = 0.0
    for ra, rb in zip(a, b):
        assert ra['status'] == rb['status'] and ra['diverged_at'] == rb['diverged_at'] and ra['steps_done'] == rb['steps_done']
        assert len(ra['history']) == len(rb['history'])
        for ha, hb in zip(ra['history'], rb['history']):
            assert ha['step'] == hb['step'] and ha['lr'] == hb['lr']
            for k in ('train_loss', 'train_acc', 'test_loss', 'test_acc'):
                if math.isnan(ha[k]): assert math.isnan(hb[k]); continue
                worst = max(worst, abs(ha[k] - hb[k]) / max(abs(ha[k]), 1e-3))
    return worst


def _away_from_the_edge(cfgs, singles):
    """Equivalence tests compare runs picked away from the edge of stability on purpose: near it (digits, MLP, lr 0.2,
    momentum 0.9) a 1e-6 relative change of the LR, one thread instead of two, or an ensemble instead of one model
    moves the final loss as much as a bug would (sweeps/00_sweep, "What is reproducible"). So each compared run is checked
    to be calm: a 1e-6 nudge of its LR moves its final loss by under 1e-4 relative (amplified under 100x)."""
    for c, r in zip(cfgs, singles):
        if r['status'] not in FINISHED: continue
        nudged = train(c.replace(lr=c.lr * (1 + 1e-6)), progress=False).final['train_loss']
        assert abs(nudged - r['final']['train_loss']) < 1e-4 * r['final']['train_loss'], f'{c} is near the edge'


@pytest.mark.parametrize('engine, model, kw', [
    ('mlp', 'mlp', dict()), ('mlp', 'mlp', dict(momentum=0.9, weight_decay=5e-4)),
    ('mlp', 'mlp', dict(schedule='cosine', weight_decay=1e-3, replacement=True)),
    ('vmap', 'mlp', dict(momentum=0.9)), ('vmap', 'cnn', dict(weight_decay=5e-4)), ('loop', 'mlp', dict()),
    ('mlp', 'mlp', dict(optimizer='adam', weight_decay=5e-4)), ('vmap', 'cnn', dict(optimizer='adam')),
    ('vmap', 'mlp', dict(optimizer='adam', schedule='cosine', weight_decay=1e-3)),
    ('vmap', 'autoencoder', dict(momentum=0.9))])   # the reconstruct task: metrics.batch_sums under vmap
def test_ensemble_member_equals_single_run(engine, model, kw):
    "Every member of an ensemble equals `train`'s run of its config, SGD or Adam (`torch.optim.Adam` in `train`)."
    base = TrainConfig(model=model, batch_size=32, steps=40, n_evals=2, **FAST, **kw)
    # the largest LR diverges: it must stop where train stops (Adam's steps are bounded by its LR: it needs more)
    lrs = [1e-3, 5e-3, 1e30] if base.optimizer == 'adam' else [0.02, 0.1, 1e4]
    cfgs = grid(base, lr=lrs, seed=[0, 1])
    singles = [train(c, progress=False).to_dict() for c in cfgs]
    _away_from_the_edge(cfgs, singles)
    together = train_group(cfgs, engine=engine, progress=False)
    statuses = [r['status'] for r in together]
    assert statuses == [r['status'] for r in singles]   # the same status rule ('ok' or 'stalled'; diverged)
    assert all(s in FINISHED for s in statuses[:4]) and statuses[4:] == ['diverged', 'diverged']
    assert _max_rel_diff(singles, together) < 1e-4
    assert all(r['env']['engine'] == engine for r in together)


@pytest.mark.parametrize('engine, cycle', [('mlp', dict(lr_cycle=(1, 0.25))), ('vmap', dict(batch_cycle=(32, 128))),
                                           ('mlp', dict(batch_cycle=(32, 64, 128), lr_cycle=(1, 0.5))),
                                           ('vmap', dict(batch_cycle=(32, 64, 128), lr_cycle=(1, 0.5)))])
def test_cyclic_schedules_train_the_same_in_ensembles(engine, cycle):
    "A cyclic LR and/or batch size (JKA17 §5): the ensemble engines follow the same step plan as `train`."
    base = TrainConfig(model='mlp', batch_size=32, epochs=3, cycle_epochs=0.5, n_evals=3, schedule='constant', **FAST,
                       **cycle)
    cfgs = grid(base, lr=[0.02, 0.05], seed=[0, 1])
    singles = [train(c, progress=False).to_dict() for c in cfgs]
    together = train_group(cfgs, engine=engine, progress=False)
    assert _max_rel_diff(singles, together) < 1e-4
    assert [h['epoch'] for h in singles[0]['history']] == [h['epoch'] for h in together[0]['history']]
    plan = StepPlan(base, FAST['n_train'])
    assert singles[0]['steps_done'] == plan.total
    if 'batch_cycle' in cycle: assert len({b for _, b, _ in plan.segments}) == len(cycle['batch_cycle'])
    # the cycle changed the run: the same config without it trains differently
    plain = train(base.replace(lr_cycle=None, batch_cycle=None, cycle_epochs=None), progress=False).to_dict()
    assert abs(plain['final']['train_loss'] - singles[0]['final']['train_loss']) > 1e-3


def test_returned_models_are_the_trained_members():
    cfgs = grid(TrainConfig(batch_size=64, steps=20, n_evals=1, **FAST), lr=[0.05, 0.2])
    res, models = train_group(cfgs, progress=False, return_models=True)
    single = train(cfgs[1], progress=False)
    for (a, b) in zip(models[1].state_dict().values(), single.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_engine_choice_and_loop_fallback_said_once():
    shape = dict(input_shape=(1, 8, 8), n_classes=10)
    assert choose_engine(make_model('mlp', **shape)) == 'mlp'
    assert choose_engine(make_model('cnn', **shape)) == 'vmap'
    assert choose_engine(make_model('c1', **shape)) == 'vmap'          # batch norm: per-member statistics
    assert choose_engine(make_model('mlp', **shape), cfg=TrainConfig(precision='bf16')) == 'vmap'
    with pytest.raises(ValueError, match="engine='mlp' needs an MLP"): choose_engine(make_model('c1', **shape), 'mlp')
    with pytest.raises(ValueError, match='unknown engine'): choose_engine(make_model('mlp', **shape), 'fast')
    cfgs = grid(TrainConfig(dataset='digits', model='cnn', batch_size=32, steps=3, n_evals=1, channels_last=True),
                lr=[0.01, 0.02])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        train_group(cfgs, progress=False); train_group(cfgs, progress=False)
    said = [x for x in w if 'one at a time' in str(x.message)]
    assert len(said) <= 1   # once per process (0 if an earlier test already said it)


@pytest.mark.parametrize('model,kw', [('cnn', dict(norm='bn')), ('cnn', dict(norm='ghost', ghost_batch_size=8)),
                                      ('wrn', dict(depth=10, width=1, norm='ghost', ghost_batch_size=8)),
                                      ('c1', {})])
def test_batch_norm_conv_ensembles_equal_one_at_a_time(model, kw):
    """Conv nets with batch norm (ghost batch norm included) train as one vmap ensemble exactly as `train` trains
    them one by one: the same losses, weights and per-member running statistics (the eval-mode numbers use them)."""
    cfgs = grid(TrainConfig(dataset='digits', model=model, model_kwargs=kw, batch_size=32, steps=12, n_evals=2,
                            momentum=0.9, weight_decay=5e-4), lr=[0.02, 0.05], seed=[0, 1])
    together, models = train_group(cfgs, engine='vmap', progress=False, return_models=True)
    for c, r, m in zip(cfgs, together, models):
        alone = train(c, progress=False)
        assert r['env']['engine'] == 'vmap' and r['status'] == alone.status == 'ok'
        for a, b in zip(r['history'], alone.history):
            for k in ('train_loss', 'test_loss', 'test_acc'): assert abs(a[k] - b[k]) < 2e-4, (k, a[k], b[k])
        for (name, a), b in zip(m.state_dict().items(), alone.model.state_dict().values()):
            # running_mean/var included; running_var reaches ~30, where float32 sums in another order (vmap's batched
            # kernels against one model's, and AVX-512 against AVX2 kernels) differ by ~1e-5 relative after 12 steps:
            # hence a relative part, four orders of magnitude below any error in the statistics' update
            assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=2e-4), name


def test_bf16_ensembles_follow_train_within_bf16_rounding():
    cfgs = grid(TrainConfig(dataset='digits', model='cnn', batch_size=32, steps=10, n_evals=1, precision='bf16'),
                lr=[0.02, 0.05])
    with pytest.raises(ValueError, match='does not implement precision=bf16'):   # with batch norm: one at a time
        train_group([c.replace(model_kwargs=dict(norm='bn')) for c in cfgs], engine='vmap', progress=False)
    together = train_group(cfgs, progress=False)
    assert [r['env']['engine'] for r in together] == ['vmap', 'vmap']
    for c, r in zip(cfgs, together):
        alone = train(c, progress=False).final
        assert abs(r['final']['train_loss'] - alone['train_loss']) < 0.02 * alone['train_loss']


def test_grid_and_groups():
    cfgs = grid(TrainConfig(epochs=1), batch_size=[32, 64], lr=[0.1, 0.2], seed=[0, 1, 2])
    assert len(cfgs) == 12 and len({c.config_id for c in cfgs}) == 12
    groups = make_groups(cfgs)
    assert [len(g) for g in groups] == [6, 6] and all(len({group_key(c) for c in g}) == 1 for g in groups)
    assert [len(g) for g in make_groups(cfgs, max_members=4)] == [4, 2, 4, 2]
    with pytest.raises(ValueError, match='not a TrainConfig field'): grid(TrainConfig(), batchsize=[1])
    with pytest.raises(ValueError, match='differ only in lr and seed'): train_group(cfgs, progress=False)


def test_store_refuses_corrupt_and_foreign_files_untouched(tmp_path):
    junk = tmp_path / 'junk.sqlite'; junk.write_bytes(b'this is not a database at all' * 100)
    before = junk.read_bytes()
    with pytest.raises(ValueError) as e: ResultStore(junk)
    assert 'not an sgd_noise results store' in str(e.value) and '\n' not in str(e.value)
    assert junk.read_bytes() == before and sorted(os.listdir(tmp_path)) == ['junk.sqlite']
    foreign = tmp_path / 'foreign.sqlite'
    con = sqlite3.connect(foreign); con.execute('CREATE TABLE t (x)'); con.execute('INSERT INTO t VALUES (1)'); con.commit(); con.close()
    before = foreign.read_bytes()
    with pytest.raises(ValueError, match='something else'): ResultStore(foreign)
    assert foreign.read_bytes() == before
    with pytest.raises(ValueError, match='is a folder'): ResultStore(tmp_path)
    junk_bytes = junk.read_bytes()
    with pytest.raises(ValueError): sweep(grid(TrainConfig(steps=2, **FAST), lr=[0.1]), store=junk, progress=False)
    assert junk.read_bytes() == junk_bytes


def test_resume_skips_finished_runs(tmp_path):
    store = tmp_path / 's.sqlite'
    cfgs = grid(TrainConfig(steps=10, n_evals=1, **FAST), batch_size=[32, 64], lr=[0.05, 0.1])
    df1 = sweep(cfgs[:2], store=store, progress=False)
    first = {r['config']['lr']: r for r in ResultStore(store).results()}
    df2 = sweep(cfgs, store=store, progress=False)
    assert len(df1) == 2 and len(df2) == 4 and len(ResultStore(store)) == 4
    again = {r['config']['lr']: r for r in ResultStore(store).results() if r['config']['batch_size'] == 32}
    assert again == first     # untouched, not recomputed
    with sqlite3.connect(store) as con:
        stamps = dict(con.execute('SELECT config_id, finished_at FROM runs'))
    sweep(cfgs, store=store, progress=False)
    with sqlite3.connect(store) as con: assert dict(con.execute('SELECT config_id, finished_at FROM runs')) == stamps


# A sweep killed mid-way and resumed, and processes sharing a store: tests/test_faults.py (the fault battery).


def test_run_group_is_picklable_plain_data():
    import pickle
    cfgs = [c.to_dict() for c in grid(TrainConfig(steps=5, n_evals=1, **FAST), lr=[0.1, 0.2])]
    res = pickle.loads(pickle.dumps(run_group(cfgs)))
    assert json.loads(json.dumps(res)) == res and len(res) == 2


def test_dask_local_cluster_gives_the_local_results():
    distributed = pytest.importorskip('dask.distributed')
    cfgs = grid(TrainConfig(steps=15, n_evals=1, **FAST), batch_size=[32, 64], lr=[0.05, 0.1])
    local = sweep(cfgs, progress=False)
    # LocalCluster writes OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_, PYTHONHASHSEED, ...) into this process's
    # environment for its workers; left there, every notebook kernel nbval starts afterwards inherits it and
    # trains on one thread (the claim notebooks ran 2x slower in the full suite). Put the environment back.
    env = dict(os.environ)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            remote = sweep(cfgs, executor=client.get_executor(), progress=False)
    finally:
        os.environ.clear(); os.environ.update(env)
    assert list(remote.config_id) == list(local.config_id)
    pd.testing.assert_series_equal(remote.test_loss, local.test_loss, rtol=1e-4)
    pd.testing.assert_series_equal(remote.train_loss, local.train_loss, rtol=1e-4)


def _fake(rows):
    out = []
    for b, lr, seed, acc, loss, status in rows:
        c = TrainConfig(batch_size=b, lr=lr, seed=seed, epochs=1)
        fin = dict(train_loss=loss, train_acc=acc, test_loss=loss, test_acc=acc) if status == 'ok' else \
            dict(train_loss=float('nan'), train_acc=float('nan'), test_loss=float('nan'), test_acc=float('nan'))
        out.append(dict(config=c.to_dict(), status=status, final=fin, history=[], steps_done=1, diverged_at=None, wall_time=0, env={}))
    return results_frame(out)


def test_reading_helpers():
    df = _fake([(32, 0.1, 0, .70, .5, 'ok'), (32, 0.1, 1, .72, .4, 'ok'), (32, 0.2, 0, .75, .3, 'ok'), (32, 0.2, 1, .10, 9, 'diverged'),
                (32, 0.05, 0, .60, .2, 'ok'), (32, 0.05, 1, .62, .1, 'ok')])
    b = best_lr(df)
    assert b.lr.tolist() == [0.1] and abs(b.test_acc[0] - 0.71) < 1e-12   # 0.2 is not eligible: a seed diverged
    assert best_lr(df, by='train_loss').lr.tolist() == [0.05]
    assert diverged_fraction(df)[(32, 0.2)] == 0.5
    s = seed_stats(df)
    assert s.loc[(32, 0.1), 'n'] == 2 and abs(s.loc[(32, 0.1), 'std'] - 0.0141421356) < 1e-8


def test_speed_options_train_one_at_a_time_through_train():
    cfgs = grid(TrainConfig(steps=5, n_evals=1, compile=False, channels_last=True, **FAST), lr=[0.05, 0.1])
    with pytest.raises(ValueError, match="does not implement channels_last=True"): sweep(cfgs, engine='vmap', progress=False)
    with pytest.raises(ValueError, match="does not implement precision=bf16"):
        sweep([c.replace(precision='bf16') for c in cfgs], engine='mlp', progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # "... train one at a time", said once per process
        df = sweep(cfgs, progress=False)
    assert list(df.engine) == ['loop', 'loop'] and (df.status == 'ok').all()
    assert df.test_loss.iloc[0] == train(cfgs[0], progress=False).final['test_loss']


def test_lr_fit_is_the_optimum_between_grid_points():
    "On a parabola in log2 lr the fit is exact; a near tie on the grid gives a point between the two, not either."
    lrs = [2.0 ** k for k in range(-3, 3)]
    rows = [(64, lr, s, 0.8 - 0.05 * (math.log2(lr) - 0.3) ** 2, 1.0, 'ok') for lr in lrs for s in (0, 1)]
    b = best_lr(_fake(rows))
    assert b.lr.iloc[0] == 1.0 and b.lr_fit.iloc[0] == pytest.approx(2 ** 0.3, rel=1e-9)
    tie = [(64, lr, 0, acc, 1.0, 'ok') for lr, acc in zip(lrs, (0.1, 0.2, 0.5, 0.7, 0.7 - 1e-4, 0.3))]
    b = best_lr(_fake(tie))
    assert b.lr.iloc[0] == 1.0 and 1.0 < b.lr_fit.iloc[0] < 2.0   # the argmax flips with 1e-4; the fit barely moves
    edge = [(64, lr, 0, acc, 1.0, 'ok') for lr, acc in zip(lrs, (0.9, 0.5, 0.4, 0.3, 0.2, 0.1))]
    assert best_lr(_fake(edge)).lr_fit.iloc[0] == 0.125            # at the edge of the grid: the grid point


def test_mlp_engine_trains_images_like_train():
    "The ensemble engine flattens images as the model's Flatten does (it used to fail on digits/MNIST/CIFAR)."
    cfgs = grid(TrainConfig(dataset='digits', model='mlp', batch_size=32, steps=20, n_evals=1), lr=[0.05, 0.1])
    together = train_group(cfgs, engine='mlp', progress=False)
    alone = [train(c, progress=False).to_dict() for c in cfgs]
    _away_from_the_edge(cfgs, alone)
    assert [r['env']['engine'] for r in together] == ['mlp', 'mlp']
    for a, b in zip(alone, together):
        assert abs(a['final']['train_loss'] - b['final']['train_loss']) < 1e-4


def test_train_only_options_route_to_train():
    import warnings
    cfgs = grid(TrainConfig(n_train=512, n_test=128, batch_size=32, epochs=3, n_evals=1, target_loss=2.0,
                            schedule='constant'), lr=[0.1, 0.2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res = train_group(cfgs, progress=False)
    assert [r['env']['engine'] for r in res] == ['loop', 'loop']
    with pytest.raises(ValueError, match='does not implement'): train_group(cfgs, engine='mlp', progress=False)


def test_sharp_flat_paper_preset_starts_training_on_mnist_files(tmp_path, monkeypatch):
    """`reproduce sharp-flat --preset paper` trains the F1 network (an MLP on MNIST) first: its configs, shrunk to a
    tiny budget, train on MNIST files in the real IDX format (the MLP engine used to fail on images)."""
    from test_data import _write_idx_dataset
    from sgd_noise.claims import sharp_flat
    _write_idx_dataset(tmp_path / 'MNIST' / 'raw', n_train=240, n_test=60)
    monkeypatch.setenv('SGD_NOISE_DATA', str(tmp_path))
    nets = sharp_flat.configs('paper', device='cpu')
    assert list(nets) == ['F1', 'C1'] and {c.dataset for g in nets['F1'].values() for c in g} == {'mnist'}
    small = {'SB': 24, 'LB': 120, 'LB-5xLR': 120}   # the paper's 256 and 6000 of 60 000, on 240 examples
    for regime, group in nets['F1'].items():
        cfgs = [c.replace(n_train=240, n_test=60, batch_size=small[regime], epochs=1, n_evals=1) for c in group[:2]]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # "target_loss=0.01: ... one at a time, through `train`"
            res = train_group(cfgs, progress=False)
        assert [r['status'] for r in res] == ['ok', 'ok'] and all(r['steps_done'] == 240 // small[regime] for r in res)
        assert all(math.isfinite(r['final']['train_loss']) for r in res)
    # to a target loss the members train through `train`; without one, the F1 MLP trains as an ensemble on images
    res = train_group([c.replace(target_loss=None) for c in cfgs], engine='mlp', progress=False)
    assert [r['env']['engine'] for r in res] == ['mlp', 'mlp'] and [r['status'] for r in res] == ['ok', 'ok']


def test_ids_leave_out_the_device_and_old_stores_still_resume(tmp_path):
    """The device is where a run trains, not what it computes: 'cpu' and 'cuda' share an id. A store written under
    the old rule (the device inside the hash) is read back under the new one, so nothing is trained twice."""
    import hashlib
    cfg = TrainConfig(steps=3, n_evals=1, **FAST)
    assert cfg.config_id == cfg.replace(device='cuda').config_id == cfg.replace(device='auto').config_id
    res = train(cfg, progress=False).to_dict()
    d = cfg.to_dict()
    for k in ('precision', 'channels_last', 'compile', 'augment', 'target_loss'): d.pop(k)
    old_id = hashlib.sha1(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:16]
    assert old_id != cfg.config_id
    store = ResultStore(tmp_path / 's.sqlite')
    row = (old_id, json.dumps(res['config']), res['status'], json.dumps(res['final']), json.dumps(res['history']),
           res['steps_done'], res['diverged_at'], res['wall_time'], json.dumps(res['env']), 0.0)
    store._insert([row])
    assert store.finished() == {cfg.config_id}
    df = sweep([cfg], store=store, progress=False)
    assert len(df) == 1 and len(store) == 1                    # found, not retrained
    assert list(df.hardware) == [f"CPU ({res['env']['threads']} threads)"]


# ---- steps to a target and McCandlish et al.'s trade-off (sweeps/05_analysis) ----
from sgd_noise.sweeps.analysis import fit_tradeoff, steps_to_target


def _hist(steps, losses): return [dict(step=s, train_loss=l) for s, l in zip(steps, losses)]


def test_steps_to_target_interpolates_in_log_loss():
    # an exponential decay is a straight line in log loss: the interpolation is exact for it
    steps = [0, 100, 200, 300]
    losses = [2.0 * math.exp(-0.01 * s) for s in steps]
    target = 2.0 * math.exp(-0.01 * 137.5)
    assert steps_to_target(_hist(steps, losses), target) == pytest.approx(137.5, rel=1e-9)
    assert steps_to_target(_hist(steps, losses), 3.0) == 0.0                  # reached at the start
    assert math.isnan(steps_to_target(_hist(steps, losses), 1e-6))            # never reached
    assert math.isnan(steps_to_target(_hist([0, 10], [1.0, float('nan')]), 0.1))   # diverged first
    # a loss that rises after the evaluation before: the first evaluation at or below the target is the answer
    assert steps_to_target(_hist([0, 10, 20], [0.05, 0.5, 0.04]), 0.06) == 0.0
    with pytest.raises(ValueError, match='target'): steps_to_target(_hist(steps, losses), 0.0)


def test_fit_tradeoff_recovers_the_model_and_reports_misfit():
    import numpy as np
    bs = np.array([16, 32, 64, 128, 256, 512])
    f = fit_tradeoff(bs, 300 * (1 + 150 / bs))
    assert f['S_min'] == pytest.approx(300, rel=1e-6) and f['B_crit'] == pytest.approx(150, rel=1e-6)
    assert f['E_min'] == pytest.approx(45000, rel=1e-6) and f['rms'] < 1e-9 and f['n'] == 6
    # 5% multiplicative noise: the fit stays near the truth and its residual says how far the points are
    noisy = 300 * (1 + 150 / bs) * np.exp(0.05 * np.array([1, -1, 1, -1, 1, -1]))
    g = fit_tradeoff(bs, noisy)
    assert 100 < g['B_crit'] < 220 and 0.02 < g['rms'] < 0.06
    # a power law with no knee fits worse than the hyperbola does
    assert fit_tradeoff(bs, 5000 * bs ** -0.5)['rms'] > 10 * f['rms']
    # NaN points (never reached) are dropped; fewer than 3 batch sizes give no fit
    h = fit_tradeoff(bs, np.where(bs == 64, np.nan, 300 * (1 + 150 / bs)))
    assert h['n'] == 5 and h['B_crit'] == pytest.approx(150, rel=1e-6)
    assert math.isnan(fit_tradeoff([16, 32], [500, 300])['B_crit'])
    with pytest.raises(ValueError, match='one step count per batch size'): fit_tradeoff([16, 32, 64], [1, 2])


def test_auto_engine_weighs_the_cpu_for_conv_nets():
    """On a CPU, conv-net ensembles above `CPU_VMAP_MAX_BATCH` train one at a time (measured slower there as a vmap
    group); MLPs keep their engine at any batch size, and an explicit engine is obeyed."""
    import warnings
    from sgd_noise import make_model
    from sgd_noise.sweeps.group import CPU_VMAP_MAX_BATCH, choose_engine
    cnn = make_model('cnn', input_shape=(1, 40), n_classes=10)
    mlp = make_model('mlp', input_shape=(40,), n_classes=10)
    small, large = (TrainConfig(model='cnn', batch_size=b, steps=1) for b in (CPU_VMAP_MAX_BATCH, 2 * CPU_VMAP_MAX_BATCH))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert choose_engine(cnn, cfg=small) == 'vmap' and choose_engine(cnn, cfg=large) == 'loop'
        cyc = small.replace(epochs=2, steps=None, batch_cycle=(CPU_VMAP_MAX_BATCH, 4 * CPU_VMAP_MAX_BATCH),
                            cycle_epochs=1)
        assert choose_engine(cnn, cfg=cyc) == 'loop'          # the largest batch of a cycle decides
        assert choose_engine(cnn, 'vmap', cfg=large) == 'vmap'
        assert choose_engine(mlp, cfg=TrainConfig(batch_size=1024, steps=1)) == 'mlp'
        assert choose_engine(cnn) == 'vmap'                   # without a config: no device to weigh
