"Curvature along training (`sgd_noise.curvature.tracking`): checked against exact Hessians of small models."
import math

import numpy as np
import pytest
import torch

from sgd_noise.core.config import TrainConfig
from sgd_noise.core.models import make_model
from sgd_noise.curvature.sharpness import ParamLoss
from sgd_noise.curvature.tracking import (batch_sharpness, mse_one_hot, track_config, track_training, warm_lanczos)


def _small(n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)
    return make_model('mlp', input_shape=(d,), n_classes=3, seed=seed, hidden=(6,)).double(), x, y


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_warm_lanczos_finds_the_top_algebraic_eigenvalue(seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    vals = np.concatenate([rng.uniform(-5, 3, 29), [4.0]])   # the largest in magnitude is negative, the top is 4
    vals[0] = -9.0
    H = torch.tensor(Q @ np.diag(vals) @ Q.T)
    top = warm_lanczos(lambda u: H @ u, torch.tensor(rng.normal(size=30)), steps=30)
    assert abs(top.value - 4.0) < 1e-9 and top.residual < 1e-8
    assert abs(abs(float(top.vector @ torch.tensor(Q[:, -1]))) - 1) < 1e-8
    with pytest.raises(ValueError, match='at least 1'): warm_lanczos(lambda u: H @ u, torch.ones(30), steps=0)


def test_tracked_lambda_equals_the_exact_hessian_along_a_run():
    model, x, y = _small()
    for steps in (1, 15, 40):
        tr = track_training(model, x, y, lr=0.5, steps=steps, every=steps, lanczos_steps=12)
        H = ParamLoss(model, x, y, loss_fn=mse_one_hot).hessian(tr.theta)
        exact = float(torch.linalg.eigvalsh(H)[-1])
        assert tr.curvature.step.iloc[-1] == steps
        assert abs(tr.curvature.lambda_max.iloc[-1] - exact) < 1e-6 * exact, (steps, exact)


def test_batch_sharpness_is_each_batch_rayleigh_quotient():
    model, x, y = _small()
    pl = ParamLoss(model, x, y, loss_fn=mse_one_hot)
    batches = [torch.arange(0, 10), torch.arange(10, 40)]
    want = []
    for idx in batches:
        f = lambda t: pl.chunk_loss(t, x[idx], y[idx])
        g, H = torch.func.grad(f)(pl.theta0), torch.func.hessian(f)(pl.theta0)
        want.append(float(g @ H @ g / (g @ g)))
        assert want[-1] <= float(torch.linalg.eigvalsh(H)[-1]) + 1e-12
    assert batch_sharpness(pl, pl.theta0, batches) == pytest.approx(np.mean(want), rel=1e-10)


def test_sgd_order_is_seeded_and_the_probes_do_not_move_it():
    model, x, y = _small()
    a = track_training(model, x, y, lr=0.3, steps=30, batch_size=8, every=10, probes=1, seed=4)
    b = track_training(model, x, y, lr=0.3, steps=30, batch_size=8, every=5, probes=6, seed=4)
    c = track_training(model, x, y, lr=0.3, steps=30, batch_size=8, every=10, probes=1, seed=5)
    assert a.steps.loss.tolist() == b.steps.loss.tolist() and a.steps.loss.tolist() != c.steps.loss.tolist()
    assert a.curvature.batch_sharpness.notna().all() and len(b.curvature) == 7


def test_bad_input_is_one_line_and_divergence_is_a_result():
    model, x, y = _small()
    for bad, msg in [(dict(batch_size=0), 'batch_size: got 0'), (dict(batch_size=41), 'use 1 … 40'),
                     (dict(lr=float('nan')), 'positive learning rate'), (dict(loss='hinge'), "use one of"),
                     (dict(every=0), 'positive integers')]:
        with pytest.raises(ValueError, match=msg) as e:
            track_training(model, x, y, **dict(dict(lr=0.1, steps=3), **bad))
        assert '\n' not in str(e.value)
    tr = track_training(model, x, y, lr=80.0, steps=300, every=100)
    assert tr.status == 'diverged' and len(tr.steps) < 300 and math.isfinite(tr.lambda_0)


def test_track_config_runs_a_train_config_and_refuses_what_it_would_ignore():
    cfg = TrainConfig(dataset='digits', model='mlp', model_kwargs={'hidden': (8,)}, n_train=64, n_test=32, lr=0.2,
                      batch_size=64, steps=20, schedule='constant', n_evals=0)
    tr = track_config(cfg, every=10, lanczos_steps=5)
    assert tr.batch_size is None and tr.status == 'ok' and list(tr.curvature.step) == [0, 10, 20]
    assert track_config(cfg.replace(batch_size=16), every=10).curvature.batch_sharpness.notna().all()
    for bad in (dict(momentum=0.9), dict(weight_decay=1e-4), dict(schedule='sed20')):
        with pytest.raises(ValueError, match='plain constant-step'): track_config(cfg.replace(**bad))
