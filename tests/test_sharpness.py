"""Numerics of sgd_noise.curvature.sharpness against closed forms, in float64 (models built with .double())."""
import copy, itertools

import numpy as np
import pytest
import torch
import torch.nn as nn
from threadpoolctl import threadpool_limits

from sgd_noise.curvature.sharpness import ParamLoss, eigenvalue_spread, full_hessian, hvp, loss_surface_2d
from sgd_noise.curvature.worst_loss import subspace_matrix
from sgd_noise import eps_sharpness, evaluate, hessian_trace, interpolate, top_eigenvalues
from sgd_noise.curvature.landscape import filter_normalized_direction, interpolate_state, rescale_relu_layers


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny problems: a second thread only adds contention on shared cores. Restored afterwards."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # scipy's OpenBLAS too
        yield
    torch.set_num_threads(n)


def mlp(d_in=5, width=4, n_out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, n_out)).double()


def bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    with torch.no_grad():  # running statistics unlike the batch statistics, so the two modes differ
        net[2].running_mean.uniform_(-1, 1); net[2].running_var.uniform_(0.5, 2.)
    return net


def data(n=30, d=5, n_out=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, n_out, (n,), generator=g)


def rel_err(a, b): return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def exact_spectrum(model, x, y, **opts):
    return torch.linalg.eigvalsh(full_hessian(model, x, y, **opts)).flip(0).numpy()


# ---- least squares: H = (2/N) X^T X exactly ----

class Linear(nn.Module):
    def __init__(self, d, seed=0):
        super().__init__()
        self.lin = nn.Linear(d, 1, bias=False).double()
    def forward(self, x): return self.lin(x).squeeze(-1)

mse = lambda out, x, y: ((out - y) ** 2).mean()


def least_squares(N=50, d=8, seed=0, spectrum=None):
    g = np.random.default_rng(seed)
    X = g.standard_normal((N, d))
    if spectrum is not None:  # X = U diag(s) V^T so that (2/N) X^T X has the given eigenvalues
        U, _, Vt = np.linalg.svd(X, full_matrices=False)
        X = U @ np.diag(np.sqrt(np.asarray(spectrum) * N / 2)) @ Vt
    X, y = torch.tensor(X), torch.tensor(g.standard_normal(N))
    torch.manual_seed(seed)
    return Linear(d), X, y, 2 / N * X.T @ X


def test_least_squares_hvp_and_eigenvalues():
    model, X, y, H = least_squares()
    v = torch.randn(X.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert (hvp(model, X, y, v, loss_fn=mse) - H @ v).abs().max() < 1e-10
    assert (full_hessian(model, X, y, loss_fn=mse) - H).abs().max() < 1e-10
    exact = torch.linalg.eigvalsh(H).flip(0).numpy()
    r = top_eigenvalues(model, X, y, k=3, loss_fn=mse)
    assert r.converged and rel_err(r.eigenvalues, exact[:3]) < 1e-6
    assert (r.residuals < 1e-8).all()


def test_power_iteration_with_spectral_gap():
    model, X, y, H = least_squares(spectrum=[10., 4., 3., 2., 1., .5, .2, .1])
    r = top_eigenvalues(model, X, y, method='power', loss_fn=mse, seed=3)
    assert r.converged and rel_err(r.eigenvalues, [10.]) < 1e-6
    assert r.iterations == len(r.history) and r.iterations < 100
    with pytest.raises(ValueError, match='k'): top_eigenvalues(model, X, y, k=2, method='power', loss_fn=mse)


# ---- a tiny network against its exact Hessian ----

def test_lanczos_matches_exact_hessian_of_mlp():
    model, (x, y) = mlp(), data()
    exact = exact_spectrum(model, x, y)
    r = top_eigenvalues(model, x, y, k=3, return_eigenvectors=True)
    assert r.converged and rel_err(r.eigenvalues, exact[:3]) < 1e-6
    assert r.eigenvectors.shape == (sum(p.numel() for p in model.parameters()), 3)
    assert np.all(np.diff(r.eigenvalues) <= 0)  # descending
    # the same seed gives the same answer; a power-iteration cross-check on the same problem
    assert np.array_equal(top_eigenvalues(model, x, y, k=3).eigenvalues, r.eigenvalues)
    assert exact[1] < 0.85 * exact[0] and abs(exact[-1]) < 0.85 * exact[0]  # a gap at the top, in magnitude too
    p = top_eigenvalues(model, x, y, method='power', max_iter=5000)
    assert p.converged and rel_err(p.eigenvalues, exact[:1]) < 1e-6


def test_chunks_give_the_same_operator():
    model, (x, y) = mlp(), data()
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    whole, chunked = ParamLoss(model, x, y), ParamLoss(model, x, y, chunk_size=7)
    assert abs(whole.value() - chunked.value()) < 1e-12
    assert (whole.hvp(v) - chunked.hvp(v)).abs().max() < 1e-12
    assert (whole.value_and_grad()[1] - chunked.value_and_grad()[1]).abs().max() < 1e-12


def test_reconstruct_task_is_mse_to_flattened_input():
    torch.manual_seed(0)
    ae = nn.Sequential(nn.Flatten(), nn.Linear(6, 2), nn.ReLU(), nn.Linear(2, 6)).double()
    ae.task = 'reconstruct'
    x = torch.randn(10, 2, 3, dtype=torch.float64)
    with torch.no_grad(): expected = float(((ae(x) - x.flatten(1)) ** 2).mean())
    assert abs(ParamLoss(ae, x).value() - expected) < 1e-12


# ---- Hutchinson ----

@pytest.mark.parametrize('method', ['hutchinson', 'hutch++'])
def test_hessian_trace(method):
    model, (x, y) = mlp(), data()
    exact = float(exact_spectrum(model, x, y).sum())
    small, big = (hessian_trace(model, x, y, n_samples=n, seed=0, method=method) for n in (21, 321))
    assert abs(big.estimate - exact) < 4 * big.stderr + 1e-9   # Hutch++ with 3n products or more is exact
    assert abs(small.estimate - exact) < 4 * small.stderr
    assert big.stderr < small.stderr and big.n_samples == 321
    again = hessian_trace(model, x, y, n_samples=21, seed=0, method=method)
    assert again.estimate == small.estimate and np.array_equal(again.samples, small.samples)
    assert hessian_trace(model, x, y, n_samples=21, seed=1, method=method).estimate != small.estimate
    with pytest.raises(ValueError, match='unknown method'): hessian_trace(model, x, y, method='exactly')


# ---- epsilon-sharpness ----

class Quadratic(nn.Module):
    "Output = parameter vector; with `quadratic_loss(d)` the loss is 0.5 * sum(d * w**2)."
    def __init__(self, w): super().__init__(); self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64))
    def forward(self, x): return self.w

def quadratic_loss(d):
    d = torch.as_tensor(d)
    return lambda out, x, y: 0.5 * (d * out ** 2).sum()

dummy = torch.zeros(1, 1)


@pytest.mark.parametrize('method', ['lbfgsb', 'pga'])
def test_eps_sharpness_full_space_closed_form(method):
    g = np.random.default_rng(0)
    w, d, eps = g.standard_normal(10), g.uniform(0.5, 3, 10), 1e-3
    w_max = w + np.sign(w) * eps * (np.abs(w) + 1)
    f0, fmax = 0.5 * (d * w ** 2).sum(), 0.5 * (d * w_max ** 2).sum()
    s = eps_sharpness(Quadratic(w), dummy, None, eps=eps, method=method, loss_fn=quadratic_loss(d))
    assert rel_err(s.value, (fmax - f0) / (1 + f0) * 100) < 1e-6
    assert rel_err(s.fmax, fmax) < 1e-12 and rel_err(s.f0, f0) < 1e-12
    assert s.at_bound == 1.0 and s.success and isinstance(s.message, str) and s.message
    assert s.n_fev >= 2 and not s.used_fallback and not s.line_search_failed
    if method == 'lbfgsb': assert s.message.startswith('CONVERGENCE')


def test_eps_sharpness_subspace_closed_form():
    g = np.random.default_rng(1)
    n, p, eps, seed = 6, 3, 1e-2, 7
    w, d = g.standard_normal(n), g.uniform(0.5, 3, n)
    A = subspace_matrix(n, p, seed)
    radius = eps * (np.abs(np.linalg.pinv(A) @ w) + 1)
    f = lambda z: 0.5 * (d * (w + A @ z) ** 2).sum()
    # f is convex in z, so its maximum over the box is at one of the 2^p vertices
    fmax = max(f(np.array(s) * radius) for s in itertools.product([-1, 1], repeat=p))
    f0 = f(np.zeros(p))
    s = eps_sharpness(Quadratic(w), dummy, None, eps=eps, subspace_dim=p, seed=seed, maxiter=100,
                      loss_fn=quadratic_loss(d))
    assert rel_err(s.value, (fmax - f0) / (1 + f0) * 100) < 1e-6
    assert s.subspace_dim == p and s.z.shape == (p,) and s.message


class FlipGrad(torch.autograd.Function):
    "Identity whose backward returns minus the gradient: a loss and gradient that disagree."
    @staticmethod
    def forward(w): return w.clone()
    @staticmethod
    def setup_context(ctx, inputs, output): pass
    @staticmethod
    def backward(ctx, g): return -g

class WrongGradQuadratic(Quadratic):
    def forward(self, x): return FlipGrad.apply(self.w)


def test_eps_sharpness_reports_line_search_failure():
    g = np.random.default_rng(2)
    w, d = g.standard_normal(5), g.uniform(0.5, 3, 5)
    s = eps_sharpness(WrongGradQuadratic(w), dummy, None, loss_fn=quadratic_loss(d))
    assert not s.success and s.status == 2 and s.line_search_failed and 'ABNORMAL' in s.message
    assert s.used_fallback and 'fallback PGA' in s.message
    assert s.fmax >= s.f0 and s.value >= 0  # the best point evaluated is kept
    s2 = eps_sharpness(WrongGradQuadratic(w), dummy, None, loss_fn=quadratic_loss(d), fallback=False)
    assert s2.line_search_failed and not s2.used_fallback


def test_eps_sharpness_on_a_network_leaves_it_unchanged():
    model, (x, y) = mlp(), data()
    before = copy.deepcopy(model.state_dict())
    s = eps_sharpness(model, x, y, eps=1e-3)
    assert s.value > 0 and s.n_iter >= 1
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())
    with pytest.raises(ValueError, match='method'): eps_sharpness(model, x, y, method='bfgs')


@pytest.mark.parametrize('eps', [float('nan'), float('inf'), 0.0, -1e-3, '1e-3'])
def test_eps_sharpness_refuses_a_box_that_is_not_finite_and_positive(eps):
    "NaN used to pass `eps <= 0` and give phi near 2.4e11 with success=True."
    model, (x, y) = mlp(), data()
    with pytest.raises(ValueError, match='eps'): eps_sharpness(model, x, y, eps=eps)
    for alpha in (float('nan'), float('inf')):
        with pytest.raises(ValueError, match='alpha'): rescale_relu_layers(model, alpha)


# ---- interpolation ----

def test_interpolate_endpoints_and_bn_buffers():
    x, y = data(n=40)
    a, b = bn_net(0), bn_net(1)
    sa, sb = copy.deepcopy(a.state_dict()), copy.deepcopy(b.state_dict())
    line = interpolate(a, b, x, y)
    assert len(line) == 31 and line.alpha.min() == -1 and line.alpha.max() == 2
    assert abs(line.loss[line.alpha == 0].item() - evaluate(a, x, y)[0]) < 1e-12
    assert abs(line.loss[line.alpha == 1].item() - evaluate(b, x, y)[0]) < 1e-12
    assert abs(line.accuracy[line.alpha == 1].item() - evaluate(b, x, y)[1]) < 1e-12
    mid = interpolate_state(a, b, 0.5)
    for k in ('2.running_mean', '2.running_var', '1.weight', '2.bias'):
        assert torch.allclose(mid.state_dict()[k], (sa[k] + sb[k]) / 2)
    half = interpolate(a, b, x, y, alphas=[0.5])
    assert abs(half.loss.item() - evaluate(mid, x, y)[0]) < 1e-12
    assert (interpolate_state(a, b, 2.0).state_dict()['2.running_var'] >= 0).all()  # clipped when extrapolating
    assert all(torch.equal(sa[k], t) for k, t in a.state_dict().items())
    assert all(torch.equal(sb[k], t) for k, t in b.state_dict().items())
    assert a.training and b.training


# ---- batch-norm modes ----

def test_bn_modes_differ_and_leave_buffers_alone():
    x, y = data(n=40)
    net = bn_net()
    before = copy.deepcopy(net.state_dict())
    f_eval, f_batch = ParamLoss(net, x, y, bn='eval'), ParamLoss(net, x, y, bn='batch')
    assert abs(f_eval.value() - f_batch.value()) > 1e-3
    with torch.no_grad():  # the two modes are what nn.BatchNorm1d computes in eval and train mode
        assert abs(f_eval.value() - float(nn.functional.cross_entropy(copy.deepcopy(net).eval()(x), y))) < 1e-12
        assert abs(f_batch.value() - float(nn.functional.cross_entropy(copy.deepcopy(net).train()(x), y))) < 1e-12
    v = torch.randn(f_eval.n, dtype=torch.float64)
    for bn in ('eval', 'batch'):
        H = full_hessian(net, x, y, bn=bn)
        assert (hvp(net, x, y, v, bn=bn) - H @ v).abs().max() < 1e-10
        r = top_eigenvalues(net, x, y, k=2, bn=bn)
        assert rel_err(r.eigenvalues, torch.linalg.eigvalsh(H).flip(0)[:2].numpy()) < 1e-6
        hessian_trace(net, x, y, n_samples=6, bn=bn); eps_sharpness(net, x, y, bn=bn, maxiter=2)
    assert all(torch.equal(before[k], t) for k, t in net.state_dict().items())
    assert net.training
    with pytest.raises(ValueError, match='bn'): ParamLoss(net, x, y, bn='train')


def test_batch_mode_hvp_against_finite_differences_and_double_backward():
    "Independent references: torch.func.hessian is wrong through batch-statistics BN (torch 2.14), so not that."
    x, y = data(n=40)
    f = ParamLoss(bn_net(), x, y, bn='batch')
    v = torch.randn(f.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = 1e-5
    fd = (f.value_and_grad(f.theta0 + h * v)[1] - f.value_and_grad(f.theta0 - h * v)[1]) / (2 * h)
    theta = f.theta0.clone().requires_grad_(True)
    g, = torch.autograd.grad(f(theta), theta, create_graph=True)
    double_backward, = torch.autograd.grad(g @ v, theta)
    Hv = f.hvp(v)
    assert (Hv - fd).abs().max() < 1e-7
    assert (Hv - double_backward).abs().max() < 1e-12
    H = f.hessian()
    assert (H - H.T).abs().max() < 1e-12 and (H @ v - Hv).abs().max() < 1e-12


# ---- Dinh et al. rescaling ----

def test_rescale_relu_layers_same_function_different_curvature():
    model, (x, y) = mlp(), data()
    before = copy.deepcopy(model.state_dict())
    scaled = rescale_relu_layers(model, 5.0, layer=0)
    also = rescale_relu_layers(model, 0.3, layer=1)
    assert torch.allclose(model(x), scaled(x), atol=1e-12) and torch.allclose(model(x), also(x), atol=1e-12)
    e0, e1 = (top_eigenvalues(m, x, y).eigenvalues[0] for m in (model, scaled))
    assert abs(e1 / e0 - 1) > 0.5
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())
    with pytest.raises(ValueError, match='alpha'): rescale_relu_layers(model, -1.0)
    with pytest.raises(ValueError, match='layer'): rescale_relu_layers(model, 2.0, layer=2)
    with pytest.raises(ValueError, match='layer'): rescale_relu_layers(bn_net(), 2.0, layer=0)  # BatchNorm in between


# ---- directions, surfaces, spread ----

def test_filter_normalized_direction():
    model = mlp()
    d = filter_normalized_direction(model, seed=0)
    assert torch.equal(d, filter_normalized_direction(model, seed=0))
    assert not torch.equal(d, filter_normalized_direction(model, seed=1))
    i = 0
    for p in model.parameters():
        part = d[i:i + p.numel()].view(p.shape); i += p.numel()
        if p.dim() < 2: assert (part == 0).all()
        else: assert torch.allclose(part.norm(dim=1), p.detach().norm(dim=1))


def test_loss_surface_2d_centre_is_the_loss():
    model, (x, y) = mlp(), data()
    s = loss_surface_2d(model, x, y, span=0.5, n=5, seed=0)
    assert s['losses'].shape == (5, 5) and s['alphas'][2] == 0 and s['betas'][2] == 0
    assert abs(s['losses'][2, 2] - ParamLoss(model, x, y).value()) < 1e-12


def test_eigenvalue_spread():
    model, (x, y) = mlp(), data()
    t = eigenvalue_spread(model, x, y, sample_sizes=(10, 30), seeds=(0, 1))
    assert list(t.sample_size) == [10, 10, 30, 30] and t.converged.all()
    full = top_eigenvalues(model, x, y).eigenvalues[0]
    assert np.allclose(t.eigenvalue[t.sample_size == 30], full, rtol=1e-6)
    with pytest.raises(ValueError, match='sample_sizes'): eigenvalue_spread(model, x, y, sample_sizes=(31,))


def test_hutchpp_is_exact_with_a_full_sketch_and_beats_hutchinson_on_a_decaying_spectrum():
    "Hutch++ (Meyer et al. 2021): with 3n products the sketch spans everything; on 1/i² eigenvalues it wins clearly."
    from sgd_noise import hutchinson, hutchpp
    gen = torch.Generator().manual_seed(0)
    n = 40
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    lam = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 2
    A = U @ torch.diag(lam) @ U.T
    mv = lambda v: A @ v
    assert abs(hutchpp(mv, n, n_samples=3 * n, dtype=torch.float64).estimate - float(lam.sum())) < 1e-10
    rms = {f.__name__: np.sqrt(np.mean([(f(mv, n, n_samples=30, seed=s, dtype=torch.float64).estimate
                                         - float(lam.sum())) ** 2 for s in range(40)])) for f in (hutchinson, hutchpp)}
    assert rms['hutchpp'] < 0.2 * rms['hutchinson'], rms
    with pytest.raises(ValueError, match='at least 6'): hutchpp(mv, n, n_samples=5)


# ---------------------------------------------------------------- stochastic Lanczos quadrature

def _small_model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    return model, torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 3, (30,))


def test_slq_with_full_steps_is_the_exact_quadrature():
    "n Lanczos steps from one probe: the nodes are H's eigenvalues (where the probe reaches them), the moments vᵀHᵏv."
    from sgd_noise import slq
    from sgd_noise.curvature.sharpness import full_hessian
    model, x, y = _small_model_and_data()
    H = full_hessian(model, x, y)
    n = H.shape[0]
    sp = slq(lambda v: H @ v, n, n_probes=1, steps=n, dtype=torch.float64)
    v = (torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1) / n ** 0.5
    for k in (0, 1, 2, 3):
        assert sp.moment(k) == pytest.approx(float(v @ torch.linalg.matrix_power(H, k) @ v), rel=1e-8, abs=1e-12)
    exact = torch.linalg.eigvalsh(H).numpy()
    heavy = sp.nodes[0][sp.weights[0] > 1e-8]
    assert all(np.min(np.abs(exact - t)) < 1e-7 for t in heavy)


def test_slq_density_matches_the_exact_spectrum():
    from sgd_noise.curvature.spectrum import Spectrum
    from sgd_noise.curvature.sharpness import full_hessian
    from sgd_noise import hessian_spectrum
    model, x, y = _small_model_and_data(1)
    exact = torch.linalg.eigvalsh(full_hessian(model, x, y)).numpy()
    sp = hessian_spectrum(model, x, y, n_probes=60, steps=15, dtype=torch.float64)
    grid = np.linspace(exact.min() - 1, exact.max() + 1, 500)
    ref = Spectrum([exact], [np.full(len(exact), 1 / len(exact))], len(exact)).density(grid, 0.05)
    est = sp.density(grid, 0.05)
    dx = grid[1] - grid[0]
    assert est.sum() * dx == pytest.approx(1, abs=1e-3)
    assert np.abs(est - ref).sum() * dx < 0.15
    assert sp.moment(1) == pytest.approx(exact.mean(), rel=0.1)     # Hutchinson-like: unbiased, 60 probes
    assert max(np.max(t) for t in sp.nodes) == pytest.approx(exact.max(), rel=1e-6)   # extremes converge first
