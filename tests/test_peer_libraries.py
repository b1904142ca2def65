"""The curvature toolkit against the peer libraries, PyHessian 0.1 and hessian-eigenthings 1.0.0a5, on one small model
at settings where they converge, and against the exact Hessian (#15: keep the toolkit, but check it against both)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgd_noise.curvature.sharpness import full_hessian
from sgd_noise import hessian_spectrum, hessian_trace, top_eigenvalues

pyhessian = pytest.importorskip('pyhessian', reason='a dev requirement: pip install -e ".[dev]"')
he = pytest.importorskip('hessian_eigenthings', reason='a dev requirement: pip install -e ".[dev]"')


@pytest.fixture(scope='module')
def problem():
    "A trained-ish MLP (a few SGD steps, so the Hessian is not that of the initialisation), its data, the exact H."
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    exact = torch.linalg.eigvalsh(full_hessian(model, x, y).double()).numpy()
    return model, x, y, exact


def test_top_eigenvalue_agrees_with_pyhessian_and_the_exact_one(problem):
    model, x, y, exact = problem
    ours = top_eigenvalues(model, x, y).eigenvalues[0]
    torch.manual_seed(0)
    theirs = pyhessian.hessian(model, F.cross_entropy, data=(x, y), cuda=False).eigenvalues(maxIter=2000, tol=1e-9)[0][0]
    assert ours == pytest.approx(exact[-1], rel=1e-4)
    assert theirs == pytest.approx(exact[-1], rel=1e-3)


def test_top_eigenvalue_agrees_with_hessian_eigenthings(problem):
    model, x, y, exact = problem
    op = he.HessianOperator(model, [(x, y)], he.supervised_loss(F.cross_entropy))
    res = he.lanczos(op, k=1, max_iter=min(op.size - 1, 80), which='LA', seed=0)
    assert float(res.eigenvalues[0]) == pytest.approx(exact[-1], rel=1e-4)
    assert top_eigenvalues(model, x, y).eigenvalues[0] == pytest.approx(float(res.eigenvalues[0]), rel=1e-4)


def test_trace_agrees_with_both_libraries_and_the_exact_one(problem):
    model, x, y, exact = problem
    ours = hessian_trace(model, x, y, n_samples=99).estimate
    op = he.HessianOperator(model, [(x, y)], he.supervised_loss(F.cross_entropy))
    theirs_hpp = float(he.trace(op, num_matvecs=99, method='hutch++', seed=0).estimate)
    torch.manual_seed(0)
    ph = float(np.mean(pyhessian.hessian(model, F.cross_entropy, data=(x, y), cuda=False).trace(maxIter=2000, tol=1e-4)))
    assert ours == pytest.approx(exact.sum(), rel=0.02)
    assert theirs_hpp == pytest.approx(exact.sum(), rel=0.02)
    assert ph == pytest.approx(exact.sum(), rel=0.10)   # Hutchinson: a wider error at any affordable sample


def test_spectral_density_first_moment_agrees_with_the_exact_trace(problem):
    model, x, y, exact = problem
    sp = hessian_spectrum(model, x, y, n_probes=30, steps=30)
    assert sp.moment(1) * sp.n == pytest.approx(exact.sum(), rel=0.1)
    assert max(np.max(t) for t in sp.nodes) == pytest.approx(exact[-1], rel=1e-3)
