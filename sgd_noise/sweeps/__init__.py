"""Sweeps: a grid of configs (`grids`) trained group by group as stacked models (`stacked`, `group`), each result
stored as it finishes (`store`), read back as tables and tuned (`analysis`), its cost estimated first (`cost`,
whose function `cost` stays in its module: a front never hides a module);
`sweeping` ties them together. The names a user needs are imported here."""
from .analysis import at_tuned, metric_cube, results_frame, seed_stats, tune_lr, tuned
from .grids import grid, preset_configs
from .group import plan_group, train_group
from .store import ResultStore
from .sweeping import sweep

__all__ = ['at_tuned', 'metric_cube', 'results_frame', 'seed_stats', 'tune_lr', 'tuned', 'grid',
           'preset_configs', 'plan_group', 'train_group', 'ResultStore', 'sweep']
