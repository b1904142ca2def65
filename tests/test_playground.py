"The playground as a student uses it, driven from Python: sliders, Train, Stop, divergence, runs kept as data."
import numpy as np
import pytest

from sgd_noise.course.playground import (Playground, explore_sweep, in_flat_basin, landscape, landscape_widget,
                                         plot_runs, temperature)

FAST = dict(n_train=512, n_test=128)


@pytest.fixture
def pg(tmp_path):
    p = Playground(store=tmp_path / 'sub' / 'playground.sqlite', **FAST)   # the store's folder is created
    p.widget()
    return p


def _press(p, **values):
    for k, v in values.items(): p.sliders[k].value = v
    started = p.buttons['train'].click() or p._thread is not None
    p.wait()
    return started


def test_sliders_show_real_values_and_stop_at_the_data_size(pg):
    assert pg.sliders['batch_size'].options[-1] == 512 and 8 in pg.sliders['batch_size'].options
    assert Playground(store=pg.store.path, n_train=1000).widget().children[0].children[0].options[-1] == 1000
    labels = [lab for lab, _ in pg.sliders['eff_lr'].options]
    assert '0.5' in labels and '1' in labels and '0.00391' in labels   # real values, including momentum-matched ones


def test_train_adds_a_curve_and_a_table_line_and_a_second_click_is_ignored(pg):
    pg.sliders['epochs'].value = 2
    before = pg.image.value
    assert pg.start() and not pg.start()          # busy: the second press is ignored
    pg.wait()
    assert len(pg.shown) == 1 and pg.shown[0]['status'] == 'ok' and pg.image.value != before
    assert pg.html.value.count('<tr>') == 2 and 'ok' in pg.html.value and pg.progress.description == 'idle'


def test_stop_button_stops_the_run_and_it_is_not_stored(pg):
    pg.sliders['batch_size'].value, pg.sliders['epochs'].value = 8, 60
    assert pg.start()
    pg.buttons['stop'].click()
    pg.wait(timeout=120)
    assert pg.shown[-1]['status'] == 'stopped' and len(pg.runs()) == 0


def test_divergence_is_marked_and_does_not_flatten_the_plot(pg):
    ok = pg.train(32, 0.5, epochs=2)
    bad = pg.train(32, 16.0, epochs=2)
    assert bad['status'] == 'diverged'
    fig = plot_runs([ok, bad])
    ax = fig.axes[0]
    assert any(l.get_marker() == 'x' for l in ax.lines)                       # ✕ at the last finite point
    assert ax.get_ylim()[1] <= 1.5 * ok['history'][0]['train_loss'] * 1.01    # clipped near the initial loss
    assert ax.get_legend() is not None


def test_runs_survive_a_new_playground_and_come_back_as_data(tmp_path):
    store = tmp_path / 'pg.sqlite'
    Playground(store=store, **FAST).train(64, 1.0, epochs=2)
    again = Playground(store=store, **FAST)
    df = again.runs()
    assert len(df) == 1 and df.batch_size.iloc[0] == 64 and df.eff_lr.iloc[0] == 1.0
    assert df['T'].iloc[0] == pytest.approx(temperature(1.0, 64))
    assert again.train(64, 1.0, epochs=2)['history'] == df.history.iloc[0]    # fetched from the store, not retrained


def test_bad_slider_values_are_one_line_errors(pg):
    with pytest.raises(ValueError, match='batch_size'): pg.train(4096, 0.5, epochs=1)


def test_toy_landscape_escapes_with_temperature():
    cold, hot = in_flat_basin(landscape(0.005, 64)).mean(), in_flat_basin(landscape(0.05, 4)).mean()
    assert cold == 0 and hot > 0.2
    assert in_flat_basin(landscape(0.05, 64)).mean() < hot              # same step, larger batch: colder
    assert landscape_widget().children[1].value                          # drawn at once


def test_sweep_explorer_redraws_from_the_store(tmp_path):
    import time
    from sgd_noise import grid, sweep, TrainConfig
    store = tmp_path / 'sweep.sqlite'
    sweep(grid(TrainConfig(steps=5, n_evals=1, **FAST), batch_size=[16, 64], lr=[0.1, 0.5], seed=[0, 1]),
          store=store, progress=False)
    ui = explore_sweep(store)
    slider, image = ui.children[0].children[0], ui.children[1]
    first = image.value
    t0 = time.perf_counter(); slider.value = 64
    assert time.perf_counter() - t0 < 1.0 and image.value != first
    with pytest.raises(ValueError, match='holds no runs'): explore_sweep(tmp_path / 'empty.sqlite')
