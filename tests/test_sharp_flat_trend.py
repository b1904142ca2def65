"""The sharp-flat trend claim (KMN17 §2–§4): configs, warm starts and augmentation work, every check can fail, and the
paper preset (C1 with Adam) starts on tiny CIFAR-10 files."""
import numpy as np
import pandas as pd
import pytest
import torch

from sgd_noise.claims import sharp_flat_trend as sft
from sgd_noise.claims.contract import run_checks
from sgd_noise import TrainConfig, train
from sgd_noise.core.training import shift_noise
from sgd_noise.core.config import validate


def test_every_run_stops_at_the_same_target_loss():
    cs = sft.configs('smoke')
    assert {c.target_loss for c in cs['trend'] + cs['augment']} == {0.05}
    assert {c.batch_size for c in cs['trend']} == {16, 32, 64, 144}
    for k, sb, lb in cs['warm']:
        assert (sb is None) == (k == 0) and lb.batch_size == 144 and lb.target_loss == 0.05
        if sb is not None: assert sb.epochs == k and sb.target_loss is None and sb.batch_size == 16
    for preset in sft.PRESETS:
        for c in sft.CLAIM.configs(preset): validate(c)


def test_a_warm_start_starts_from_the_given_weights():
    cfg = TrainConfig(dataset='digits', model='mlp', model_kwargs={'hidden': (16,)}, epochs=1, n_evals=1)
    first = train(cfg, progress=False)
    second = train(cfg.replace(batch_size=64), progress=False, init=first.model.state_dict())
    assert second.history[0]['train_loss'] == pytest.approx(first.final['train_loss'], rel=1e-6)
    with pytest.raises(ValueError, match='init: a state dict of another model'):
        train(cfg.replace(model_kwargs={'hidden': (8,)}), progress=False, init=first.model.state_dict())


def test_shift_noise_rolls_each_example_and_adds_noise():
    x = torch.arange(4 * 40, dtype=torch.float32).reshape(4, 40)
    rolled = shift_noise(x, torch.Generator().manual_seed(0), noise=0.0)
    shifts = [next(k for k in range(-4, 5) if torch.equal(rolled[i], x[i].roll(k))) for i in range(4)]
    assert len(set(shifts)) > 1, 'each example its own shift'
    noisy = shift_noise(x, torch.Generator().manual_seed(0), noise=0.1)
    assert 0.05 < float((noisy - rolled).std()) < 0.15
    img = torch.randn(3, 1, 8, 8)
    out = shift_noise(img, torch.Generator().manual_seed(2), noise=0.0)
    assert all(any(torch.equal(out[i], img[i].roll((u, v), (1, 2))) for u in (-1, 0, 1) for v in (-1, 0, 1))
               for i in range(3))
    r = train(TrainConfig(dataset='mnist1d', n_train=256, n_test=64, epochs=1, augment='shift-noise'), progress=False)
    assert r.status == 'ok' and r.config['augment'] == 'shift-noise'


def _raw(good: bool, seeds=range(5)):
    rng = np.random.default_rng(0)
    rows = []
    for s in seeds:
        e = rng.normal(0, 0.003)
        for b in (16, 32, 64, 144):
            g = np.log2(b / 16) * (1 if good else -1)
            rows.append(dict(part='trend', seed=s, batch_size=b, warm_epochs=0, status='ok', reached_target=good,
                             test_acc=0.97 - 0.01 * g + e, top_eig=3 + g + 0.1 * rng.random(),
                             trace=30 + 5 * g + rng.random(), eps_sharpness=1 + 0.2 * g + 0.01 * rng.random()))
        for k in (2, 4, 8):
            g = np.log2(k) * (1 if good else -1)
            rows.append(dict(part='warm', seed=s, batch_size=144, warm_epochs=k, status='ok', reached_target=True,
                             test_acc=0.94 + 0.005 * g + e, top_eig=6 - g + 0.1 * rng.random()))
        for b, acc in ((16, 0.985), (144, 0.955)):
            rows.append(dict(part='augment', seed=s, batch_size=b, warm_epochs=0, status='ok', reached_target=True,
                             test_acc=(acc if good else 0.9) + 0.002 * rng.random()))
    return dict(preset='smoke', runs=pd.DataFrame(rows))


@pytest.mark.parametrize('good', [True, False])
def test_every_check_can_hold_and_can_fail(good):
    held = {c.id: c.holds for c in run_checks(sft.CLAIM, sft.analyse(_raw(good)), 'smoke')}
    assert all(held.values()) if good else not any(held.values()), held
