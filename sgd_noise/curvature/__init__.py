"""Curvature: iterative eigenvalue and trace estimators on any matrix-vector product (`spectrum`), the Hessian of a
model's loss and the estimators built on it (`sharpness`), Keskar et al.'s epsilon-sharpness (`worst_loss`), and
lines and planes through the loss landscape (`landscape`). The names a user needs are imported here."""
from .worst_loss import SharpnessResult, eps_sharpness
from .landscape import filter_normalized_direction, interpolate, interpolate_state, rescale_relu_layers
from .sharpness import (ParamLoss, curvature, hessian_spectrum, hessian_trace, hvp, loss_surface_2d,
                        top_eigenvalues)
from .spectrum import hutchinson, hutchpp, lanczos, power_iteration, slq

__all__ = ['SharpnessResult', 'eps_sharpness', 'filter_normalized_direction', 'interpolate', 'interpolate_state',
           'rescale_relu_layers', 'ParamLoss', 'curvature', 'hessian_spectrum', 'hessian_trace', 'hvp', 'loss_surface_2d',
           'top_eigenvalues', 'hutchinson', 'hutchpp', 'lanczos', 'power_iteration', 'slq']
