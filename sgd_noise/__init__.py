"""sgd_noise: what is known about noise in SGD and generalisation, claim by claim, with the code that tests it.

This file is the package's one public front (hand-written; `nbdev_export` leaves it alone). It names the API a user
needs and loads each name from the module that defines it on first use, so `import sgd_noise` (and the `sgd-noise`
command's start-up) stays light. The parts live in subpackages, each with its own front:

* `sgd_noise.core`: datasets and their readers, models, the config, metrics, records, one training run;
* `sgd_noise.sweeps`: grids of configs, stacked models, group training, the result store, analysis, cost;
* `sgd_noise.curvature`: Hessian operators, spectra and traces, epsilon-sharpness, loss landscapes;
* `sgd_noise.claims`: the statistics, the contract, and one module per claim;
* `sgd_noise.course`: the exercises and the playground; `sgd_noise.cli` is the `sgd-noise` command.
"""
import importlib

__version__ = "0.1.0"

_FRONT = {
    'TrainConfig': 'core.config', 'pick_preset': 'core.config', 'load_dataset': 'core.data', 'DATASETS': 'core.data',
    'make_model': 'core.models', 'MODELS': 'core.models', 'evaluate': 'core.metrics', 'train': 'core.training',
    'get_data': 'core.training',
    'grid': 'sweeps.grids', 'sweep': 'sweeps.sweeping', 'ResultStore': 'sweeps.store',
    'results_frame': 'sweeps.analysis', 'metric_cube': 'sweeps.analysis', 'tune_lr': 'sweeps.analysis',
    'hessian_trace': 'curvature.sharpness', 'top_eigenvalues': 'curvature.sharpness',
    'hessian_spectrum': 'curvature.sharpness', 'eps_sharpness': 'curvature.worst_loss',
    'lanczos': 'curvature.spectrum', 'hutchinson': 'curvature.spectrum', 'hutchpp': 'curvature.spectrum',
    'slq': 'curvature.spectrum', 'interpolate': 'curvature.landscape',
    'Claim': 'claims.contract', 'Spec': 'claims.contract', 'get_claim': 'claims.contract', 'verdict': 'claims.contract',
}
__all__ = list(_FRONT)

def __getattr__(name):
    "A front name, imported from the module that defines it the first time it is asked for."
    if name not in _FRONT: raise AttributeError(f"module 'sgd_noise' has no attribute {name!r}")
    value = getattr(importlib.import_module(f'sgd_noise.{_FRONT[name]}'), name)
    globals()[name] = value
    return value

def __dir__(): return sorted([*globals(), *_FRONT])
