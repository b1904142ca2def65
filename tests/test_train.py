"Training one model: validation, determinism, divergence, budgets, schedules, the result record."
import json, math

import pytest
import torch

from sgd_noise.core.config import SCHEDULES, lr_factor, validate
from sgd_noise import TrainConfig, train
from sgd_noise.core.metrics import eval_steps
from sgd_noise.core.data import load_dataset

FAST = dict(dataset='mnist1d', n_train=512, n_test=128, n_evals=2)


@pytest.mark.parametrize('field, value', [
    ('dataset', 'imagenet'), ('model', 'gpt'), ('batch_size', 0), ('batch_size', -4), ('batch_size', 2.5),
    ('lr', 0), ('lr', -0.1), ('lr', float('nan')), ('momentum', 1.0), ('momentum', -0.1), ('weight_decay', -1),
    ('epochs', 0), ('epochs', -2), ('schedule', 'step'), ('n_evals', -1), ('seed', 1.5),
    # values that used to pass validation: infinities and NaN, seeds torch cannot take, fields that were not checked
    ('epochs', float('inf')), ('epochs', float('nan')), ('lr', float('inf')), ('weight_decay', float('nan')),
    ('momentum', float('nan')), ('target_loss', float('inf')), ('seed', 2**64), ('seed', -1), ('n_train', 0),
    ('n_test', -3), ('data_seed', -1), ('replacement', 'yes'), ('n_evals', 1.5), ('device', 'tpu'), ('lr', 10**400)])
def test_bad_config_is_one_line_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError) as e: validate(TrainConfig(**{'epochs': 1, field: value}))
    msg = str(e.value)
    assert field in msg and '\n' not in msg


def test_budget_must_be_exactly_one():
    for kw in (dict(), dict(epochs=1, steps=3)):
        with pytest.raises(ValueError, match='exactly one budget'): validate(TrainConfig(**kw))
    with pytest.raises(ValueError, match='steps'): validate(TrainConfig(steps=0))


def test_infinite_epochs_are_refused_before_training():
    "epochs=inf used to end in an OverflowError traceback when the budget was turned into steps."
    with pytest.raises(ValueError, match='epochs=inf'): train(TrainConfig(epochs=float('inf'), **FAST), progress=False)


def test_numpy_numbers_are_stored_as_python_numbers():
    "What np.arange / np.logspace give a student: the same config, id and JSON as Python numbers."
    np = pytest.importorskip('numpy')
    a = TrainConfig(batch_size=np.int64(32), steps=np.int32(5), seed=np.uint8(1), lr=np.float64(0.1),
                    model_kwargs={'hidden': (np.int64(16),)})
    b = TrainConfig(batch_size=32, steps=5, seed=1, lr=0.1, model_kwargs={'hidden': (16,)})
    assert validate(a) is a and a.config_id == b.config_id and json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert type(a.batch_size) is int and type(a.replace(n_train=np.int64(64)).n_train) is int


def test_batch_larger_than_training_set():
    with pytest.raises(ValueError, match=r'batch_size=600 is larger than the training set \(512 examples\)'):
        train(TrainConfig(batch_size=600, epochs=1, **FAST), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_missing_gpu_is_one_line_error():
    with pytest.raises(ValueError, match="no GPU"): validate(TrainConfig(epochs=1, device='cuda'))


def test_same_seed_same_numbers_other_seed_differs():
    cfg = TrainConfig(batch_size=32, lr=0.1, steps=40, **FAST)
    a, b, c = (train(x, progress=False) for x in (cfg, cfg, cfg.replace(seed=3)))
    assert a.history == b.history and a.final == b.final
    assert a.history[-1] != c.history[-1]


def test_learns_and_record_is_json_safe():
    r = train(TrainConfig(batch_size=32, lr=0.1, epochs=15, **FAST), progress=False)
    assert r.status == 'ok' and r.final['train_acc'] > 0.3
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {'config', 'status', 'history', 'final', 'steps_done', 'diverged_at', 'wall_time', 'env'}
    assert d['env']['torch'] == torch.__version__ and d['env']['device'] == 'cpu'
    assert [h['step'] for h in d['history']] == eval_steps(r.steps_done, 2) == [0, 120, 240]
    assert r.history[0]['train_loss'] > r.history[-1]['train_loss']


def test_divergence_is_a_result():
    r = train(TrainConfig(batch_size=32, lr=1e4, steps=100, **FAST), progress=False)
    assert r.status == 'diverged' and r.diverged_at is not None and r.diverged_at <= 100
    assert r.steps_done == r.diverged_at - 1 and all(math.isnan(v) for v in r.final.values())


def test_epoch_and_step_budgets():
    assert TrainConfig(batch_size=100, epochs=3).total_steps(512) == 15
    assert TrainConfig(batch_size=100, epochs=0.5).total_steps(512) == 3   # round(0.5 * 5.12)
    # an epoch budget buys every batch size the same number of examples (the old rule, epochs × (n // B), gave
    # B=1024 on 4000 examples 60 steps for 20 epochs: 23% too few)
    assert TrainConfig(batch_size=1024, epochs=20).total_steps(4000) == 78
    for b in (16, 48, 100, 512, 1024, 3000):
        steps = TrainConfig(batch_size=b, epochs=20).total_steps(4000)
        assert abs(steps * b - 20 * 4000) <= b / 2
    # the rule is part of the run id: stores of runs trained under the old rule retrain them
    assert TrainConfig(epochs=2).config_id != TrainConfig(steps=2).config_id
    assert TrainConfig(batch_size=100, steps=7).total_steps(512) == 7
    r = train(TrainConfig(batch_size=128, epochs=2, **FAST), progress=False)
    assert r.steps_done == 8 and r.history[-1]['epoch'] == 2


def test_schedules():
    T = 200
    assert all(lr_factor('constant', t, T) == 1 for t in range(T))
    sed = [lr_factor('sed20', t, T) for t in range(T)]
    assert sed[:100] == [1.0] * 100 and sed[100] == 0.5 and sed[109] == 0.5 and sed[110] == 0.25 and sed[-1] == 2 ** -10
    assert all(a >= b for a, b in zip(sed, sed[1:]))
    cos = [lr_factor('cosine', t, T) for t in range(T)]
    assert cos[0] == 1 and abs(cos[100] - 0.5) < 1e-12 and all(a >= b for a, b in zip(cos, cos[1:]))
    for s in SCHEDULES:  # the schedule is what the optimiser used: the history's lr follows it
        r = train(TrainConfig(batch_size=64, lr=0.2, steps=20, schedule=s, n_evals=4, **{k: v for k, v in FAST.items() if k != 'n_evals'}), progress=False)
        assert [h['lr'] for h in r.history] == [0.2 * lr_factor(s, min(h['step'], 19), 20) for h in r.history]


def test_momentum_and_weight_decay_follow_torch_sgd():
    "Effective LR: momentum m with lr*(1-m) ends near plain SGD with lr (not equal, but far from lr itself)."
    cfg = TrainConfig(batch_size=64, steps=60, momentum=0.9, weight_decay=5e-4, **FAST)
    r = train(cfg, progress=False)
    assert r.status == 'ok' and r.config['momentum'] == 0.9


def test_only_final_evaluation():
    r = train(TrainConfig(batch_size=64, steps=10, dataset='mnist1d', n_train=512, n_test=128, n_evals=0), progress=False)
    assert [h['step'] for h in r.history] == [10]


def test_autoencoder_reconstructs_and_has_no_accuracy():
    r = train(TrainConfig(dataset='digits', model='autoencoder', model_kwargs={'sizes': (32, 8)}, batch_size=64,
                          lr=0.05, steps=30, n_evals=1), progress=False)
    assert r.status == 'ok' and math.isnan(r.final['test_acc']) and r.history[-1]['train_loss'] < r.history[0]['train_loss']


# ---- the speed options (for large models on a GPU): switchable, part of the config, tested here on the CPU ----

def test_speed_options_are_validated_and_keep_old_ids():
    with pytest.raises(ValueError, match='unknown precision'): validate(TrainConfig(epochs=1, precision='fp16'))
    with pytest.raises(ValueError, match='compile'): validate(TrainConfig(epochs=1, compile='yes'))
    # a step budget: epoch budgets changed their ids on purpose when they began to count examples (see config_id)
    base = TrainConfig(steps=10)
    later = ('precision', 'channels_last', 'compile', 'augment', 'target_loss', 'optimizer', 'swa_start', 'swa_lr',
             'label_noise', 'swa_every', 'swa_update_bn', 'lr_cycle', 'batch_cycle', 'cycle_epochs', 'grad_clip',
             'grad_penalty', 'penalty_batch')   # added later
    # the id as it was computed before the options existed, less the device (left out since 0.3: stores written
    # before are read back through ResultStore, which re-derives their ids; see tests/test_sweep.py)
    old = {k: v for k, v in base.to_dict().items() if k not in later + ('device',)}
    import hashlib
    assert base.config_id == hashlib.sha1(json.dumps(old, sort_keys=True, default=list).encode()).hexdigest()[:16]
    ids = {base.config_id, base.replace(precision='bf16').config_id, base.replace(channels_last=True).config_id,
           base.replace(compile=True).config_id}
    assert len(ids) == 4   # each option makes a different run, so a store never mixes them


def test_bf16_autocast_changes_the_arithmetic_not_the_outcome():
    cfg = TrainConfig(steps=60, batch_size=32, lr=0.2, **{**FAST, 'n_evals': 1})
    r32, r16 = train(cfg, progress=False), train(cfg.replace(precision='bf16'), progress=False)
    assert r16.status == 'ok' and r16.final != r32.final          # bf16 products: other numbers ...
    assert abs(r16.final['train_loss'] - r32.final['train_loss']) < 0.1 * r32.final['train_loss']  # ... the same training
    assert all(p.dtype == torch.float32 for p in r16.model.parameters())   # the weights stay fp32


def test_channels_last_is_the_same_computation_in_another_layout():
    cfg = TrainConfig(dataset='digits', model='cnn', steps=20, batch_size=32, lr=0.05, n_evals=1)
    a, b = train(cfg, progress=False), train(cfg.replace(channels_last=True), progress=False)
    assert b.status == 'ok'
    for k in ('train_loss', 'test_loss'): assert b.final[k] == pytest.approx(a.final[k], rel=1e-4)
    assert next(p for p in b.model.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)


def test_compile_trains_the_same_model():
    "torch.compile (inductor; on the CPU it builds C++ with the system compiler) gives the eager run's numbers."
    cfg = TrainConfig(steps=10, batch_size=32, lr=0.1, **{**FAST, 'n_evals': 1})
    a, b = train(cfg, progress=False), train(cfg.replace(compile=True), progress=False)
    assert b.status == 'ok'
    for k in ('train_loss', 'test_loss'): assert b.final[k] == pytest.approx(a.final[k], rel=1e-5)


def test_crop_flip_is_seeded_shape_preserving_and_a_shifted_window():
    from sgd_noise.core.training import crop_flip
    x = torch.randn(16, 3, 8, 8)
    a = crop_flip(x, torch.Generator().manual_seed(0))
    b = crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    c = crop_flip(x, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)
    # every output pixel comes from the image itself (shifted, maybe flipped) or from the zero padding
    assert set(torch.unique(a).tolist()) <= set(torch.unique(x).tolist()) | {0.0}


def test_augment_is_validated_recorded_and_needs_images():
    with pytest.raises(ValueError, match='unknown augment'): validate(TrainConfig(epochs=1, augment='mixup'))
    assert TrainConfig(epochs=1).config_id != TrainConfig(epochs=1, augment='crop-flip').config_id
    assert TrainConfig(epochs=1).config_id == TrainConfig(epochs=1, augment=None).config_id
    with pytest.raises(ValueError, match='needs images'): train(TrainConfig(steps=2, augment='crop-flip', **FAST), progress=False)


def test_augmentation_changes_training_on_images():
    base = TrainConfig(dataset='digits', model='cnn', batch_size=32, steps=6, n_evals=1)
    plain, aug = (train(base.replace(augment=a), progress=False) for a in (None, 'crop-flip'))
    again = train(base.replace(augment='crop-flip'), progress=False)
    assert plain.final != aug.final and aug.final == again.final and aug.config['augment'] == 'crop-flip'


def test_target_loss_stops_at_the_first_epoch_below_it():
    cfg = TrainConfig(batch_size=32, lr=0.1, epochs=60, schedule='constant', target_loss=0.5, **FAST)
    r = train(cfg, progress=False)
    assert r.status == 'ok' and r.final['train_loss'] <= 0.5 and r.steps_done < cfg.total_steps(512)
    assert r.steps_done % 16 == 0 and r.history[-1]['step'] == r.steps_done   # checked once an epoch, evaluated there
    longer = train(cfg.replace(target_loss=0.4), progress=False)
    assert longer.steps_done > r.steps_done
    never = train(cfg.replace(epochs=2, target_loss=1e-6), progress=False)
    assert never.steps_done == cfg.replace(epochs=2).total_steps(512) and never.final['train_loss'] > 1e-6
    for bad in (0, -1.0, float('nan'), 'low', True):
        with pytest.raises(ValueError, match='target_loss'): validate(cfg.replace(target_loss=bad))


def test_swa_averages_weights_and_recomputes_batch_norm_statistics():
    """SWA through torch.optim.swa_utils: the last record is the averaged model's; `update_bn` gave it batch-norm
    statistics of its own (running it again changes nothing), and without it they are stale (running it changes them)."""
    from torch.optim.swa_utils import update_bn
    base = TrainConfig(dataset='digits', model='cnn', model_kwargs={'norm': 'bn'}, batch_size=64, steps=60,
                       lr=0.05, momentum=0.9, n_evals=2, swa_start=0.5, swa_every=5, swa_lr=0.02)
    runs = {bn: train(base.replace(swa_update_bn=bn), progress=False) for bn in (True, False)}
    for bn, r in runs.items():
        last = r.history[-1]
        assert r.status == 'ok' and last['model_kind'] == 'swa' and last['n_averaged'] == 6 and last['lr'] == 0.02
        assert r.final['test_acc'] == last['test_acc'] and 'model_kind' not in r.history[-2]
        bn_layer = next(m for m in r.model.modules() if isinstance(m, torch.nn.BatchNorm1d) or isinstance(m, torch.nn.BatchNorm2d))
        before = bn_layer.running_mean.clone()
        x = load_dataset('digits').x_train
        update_bn([x[i:i + 64] for i in range(0, len(x), 64)], r.model)
        assert torch.allclose(bn_layer.running_mean, before, atol=1e-5) == bn
    assert runs[True].final != runs[False].final          # skipping update_bn shows in the result


def test_swa_options_need_swa_start_and_route_sweeps_to_train():
    from sgd_noise import make_model
    from sgd_noise.sweeps.group import choose_engine
    with pytest.raises(ValueError, match='swa_lr given without swa_start'): validate(TrainConfig(steps=5, swa_lr=0.1))
    with pytest.raises(ValueError, match='swa_start'): validate(TrainConfig(steps=5, swa_start=1.5))
    cfg = TrainConfig(steps=5, swa_start=0.5)
    assert TrainConfig(steps=5).config_id == TrainConfig(steps=5, swa_update_bn=True).config_id   # old ids stand
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # "... train one at a time", said once per process
        assert choose_engine(make_model('mlp', input_shape=(40,), n_classes=10), cfg=cfg) == 'loop'


def test_full_batch_options_are_validated_keep_old_ids_and_route_sweeps_to_train():
    from sgd_noise import make_model
    from sgd_noise.sweeps.group import choose_engine
    with pytest.raises(ValueError, match='give both or neither'): validate(TrainConfig(steps=5, grad_penalty=1.0))
    with pytest.raises(ValueError, match='give both or neither'): validate(TrainConfig(steps=5, penalty_batch=8))
    with pytest.raises(ValueError, match='grad_clip'): validate(TrainConfig(steps=5, grad_clip=-1.0))
    with pytest.raises(ValueError, match='grad_penalty'): validate(TrainConfig(steps=5, grad_penalty=0, penalty_batch=8))
    with pytest.raises(ValueError, match='penalty_batch=0'): validate(TrainConfig(steps=5, grad_penalty=1, penalty_batch=0))
    with pytest.raises(ValueError, match='penalty_batch=600 is larger than the training set'):
        validate(TrainConfig(steps=5, grad_penalty=1, penalty_batch=600), n_train=500)
    base = TrainConfig(steps=5)
    assert base.config_id == base.replace(grad_clip=None, grad_penalty=None, penalty_batch=None).config_id
    ids = {base.config_id, base.replace(grad_clip=0.25).config_id,
           base.replace(grad_penalty=1.0, penalty_batch=32).config_id,
           base.replace(grad_penalty=1.0, penalty_batch=64).config_id}
    assert len(ids) == 4
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert choose_engine(make_model('mlp', input_shape=(40,), n_classes=10), cfg=base.replace(grad_clip=1.0)) == 'loop'
    bn = TrainConfig(model='cnn', model_kwargs={'norm': 'bn'}, n_train=64, n_test=32, batch_size=64, steps=1,
                     grad_penalty=1.0, penalty_batch=16)
    with pytest.raises(ValueError, match='batch norm'): train(bn, progress=False)


def test_gradient_penalty_step_is_the_plain_step_plus_the_penalty_gradient():
    """One full-batch step with the penalty = the plain step − lr·(ρ/4)·∇[(1/m) Σ_k ‖∇L_k‖²], the gradient by an
    autograd loop over the blocks (independent of the torch.func code); a clipped step moves by exactly lr × clip."""
    import torch.nn.functional as F
    from sgd_noise import make_model
    from sgd_noise.core.training import get_data
    cfg = TrainConfig(batch_size=128, lr=0.3, steps=1, n_train=128, n_test=32, n_evals=0, grad_penalty=3.0,
                      penalty_batch=40, seed=2)    # 128 = 3 blocks of 40 and 8 examples left out
    data = get_data(cfg)
    plain = train(cfg.replace(grad_penalty=None, penalty_batch=None), progress=False).model
    pen = train(cfg, progress=False).model
    net = make_model('mlp', input_shape=data.input_shape, n_classes=data.n_classes, seed=cfg.seed)
    idx = torch.randperm(128, generator=torch.Generator().manual_seed(cfg.seed + 104729))[:120].view(3, 40)
    ps = list(net.parameters())
    total = sum(sum((g ** 2).sum() for g in torch.autograd.grad(F.cross_entropy(net(data.x_train[i]), data.y_train[i]),
                                                                  ps, create_graph=True)) for i in idx) / 3
    grad = torch.autograd.grad(total, ps)
    for a, b, g in zip(plain.parameters(), pen.parameters(), grad):
        torch.testing.assert_close((a - b).detach(), cfg.lr * cfg.grad_penalty / 4 * g, atol=1e-6, rtol=1e-3)
    clipped = train(cfg.replace(grad_penalty=None, penalty_batch=None, grad_clip=1e-3), progress=False).model
    moved = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(clipped.parameters(), net.parameters()))).item()
    assert moved == pytest.approx(cfg.lr * 1e-3, rel=1e-4)


def test_adam_option_is_torch_adam_and_trains_in_ensembles():
    """optimizer='adam' is torch.optim.Adam on the same minibatches: two steps by hand give the same weights."""
    from sgd_noise.core.data import MinibatchSampler
    from sgd_noise import make_model
    from sgd_noise.sweeps.group import choose_engine
    cfg = TrainConfig(optimizer='adam', lr=1e-3, weight_decay=1e-4, steps=2, n_evals=1, n_train=256, n_test=64,
                      schedule='constant')
    r = train(cfg, progress=False)
    data = load_dataset('mnist1d', n_train=256, n_test=64)
    model = make_model('mlp', input_shape=data.input_shape, n_classes=10, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sampler = MinibatchSampler(256, cfg.batch_size, seed=0)
    for _ in range(2):
        idx = next(sampler)
        loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    for a, b in zip(r.model.parameters(), model.parameters()): assert torch.allclose(a, b, atol=1e-7)
    with pytest.raises(ValueError, match="set momentum=0"): validate(cfg.replace(momentum=0.9))
    # both ensemble engines implement Adam (member-by-member equality with `train`: tests/test_sweep.py)
    assert choose_engine(make_model('mlp', input_shape=(40,), n_classes=10), cfg=cfg) == 'mlp'
    assert choose_engine(make_model('cnn', input_shape=(40,), n_classes=10), cfg=cfg) == 'vmap'


def test_label_noise_makes_a_seeded_fraction_of_training_labels_wrong():
    "label_noise: exactly that fraction of training labels moves to another class, seeded; test labels stay true."
    from sgd_noise import grid
    from sgd_noise.sweeps.group import train_group
    from sgd_noise import get_data
    cfg = TrainConfig(n_train=500, n_test=100, steps=20, n_evals=1, label_noise=0.2)
    clean, noisy = get_data(cfg.replace(label_noise=0.0)), get_data(cfg)
    wrong = (clean.y_train != noisy.y_train)
    assert int(wrong.sum()) == 100 and sorted(torch.nonzero(wrong).flatten().tolist()) == sorted(noisy.meta['noisy_idx'])
    assert torch.equal(clean.y_test, noisy.y_test) and torch.equal(get_data(cfg).y_train, noisy.y_train)
    assert not torch.equal(get_data(cfg.replace(data_seed=1)).y_train, noisy.y_train)
    assert cfg.replace(label_noise=0.0).config_id == TrainConfig(n_train=500, n_test=100, steps=20, n_evals=1).config_id
    together = train_group(grid(cfg, lr=[0.05, 0.1]), progress=False)          # an ensemble sees the same labels
    for c, r in zip(grid(cfg, lr=[0.05, 0.1]), together):
        assert abs(r['final']['train_loss'] - train(c, progress=False).final['train_loss']) < 1e-4
    with pytest.raises(ValueError, match='label_noise'): validate(cfg.replace(label_noise=1.5))
