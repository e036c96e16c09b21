"""Pseudospectra, eigenvector conditioning and the complex stability radius against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import ssmctl
from ssmctl.analysis.pseudospectra import (
    complex_stability_radius,
    eigenvalue_condition,
    eigenvalue_condition_numbers,
    pseudospectrum,
)
from ssmctl.analysis.spectrum import spectral_margin
from ssmctl.errors import SsmctlError
from ssmctl.models import s4
from ssmctl.systems.lti import DenseLTI, DiagonalLTI


def _diag(rng, N=6, batch=(), output="conj_pair", rmax=0.95):
    lam = rng.uniform(0.2, rmax, batch + (N,)) * np.exp(1j * rng.uniform(-np.pi, np.pi, batch + (N,)))
    B = rng.standard_normal(batch + (N, 1)) + 1j * rng.standard_normal(batch + (N, 1))
    C = rng.standard_normal(batch + (1, N)) + 1j * rng.standard_normal(batch + (1, N))
    return DiagonalLTI(lam, B, C, output=output)


def _upper(a, b, c):
    return DenseLTI(np.array([[a, b], [0.0, c]]), np.ones((2, 1)), np.ones((1, 2)))


def _smin_2x2(M):
    """σ_min of a 2×2 matrix from |det| and the Frobenius norm (closed form): σ_min = |det|/σ_max."""
    F = np.sum(np.abs(M) ** 2)
    d = np.abs(M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0])
    return d / np.sqrt((F + np.sqrt(F**2 - 4 * d**2)) / 2)


def test_condition_of_normal_systems_is_one():
    rng = np.random.default_rng(0)
    sys = _diag(rng, batch=(3,))
    np.testing.assert_array_equal(eigenvalue_condition(sys), np.ones(3))
    np.testing.assert_allclose(eigenvalue_condition(sys.to_dense()), 1.0, atol=1e-10)
    _, kappa = eigenvalue_condition_numbers(sys.to_dense())
    np.testing.assert_allclose(kappa, 1.0, atol=1e-10)


@pytest.mark.parametrize("a, b, c", [(0.5, 1.0, 0.2), (0.1, 100.0, -0.3), (0.9, 1e-3, 0.8)])
def test_condition_of_triangular_2x2_closed_form(a, b, c):
    sys = _upper(a, b, c)
    r = np.hypot(b, c - a)
    d = abs(c - a) / r  # |det V| with unit columns e1 and (b, c − a)/r
    assert eigenvalue_condition(sys) == pytest.approx((1 + np.sqrt(1 - d**2)) / d, rel=1e-9)
    _, kappa = eigenvalue_condition_numbers(sys)
    np.testing.assert_allclose(kappa, np.sqrt(1 + (b / (c - a)) ** 2), rtol=1e-9)


def test_condition_numbers_pair_with_their_eigenvalues():
    # Each κ must belong to its own λ: scipy's left and right eigenvectors, κ_i = 1/|y_iᴴ x_i| (unit vectors).
    import scipy.linalg

    rng = np.random.default_rng(4)
    A = np.diag([0.9, 0.5, -0.3, 0.1j]) + np.triu(rng.standard_normal((4, 4)) * [1, 5, 0.1, 2], 1)
    lam, kappa = eigenvalue_condition_numbers(DenseLTI(A, np.ones((4, 1)), np.ones((1, 4))))
    w, vl, vr = scipy.linalg.eig(A, left=True, right=True)
    ref = 1 / np.abs(np.einsum("ni,ni->i", vl.conj(), vr))  # scipy normalizes each vector to unit length
    order, order_ref = np.argsort(lam.real + 10 * lam.imag), np.argsort(w.real + 10 * w.imag)
    np.testing.assert_allclose(lam[order], w[order_ref], atol=1e-12)
    np.testing.assert_allclose(kappa[order], ref[order_ref], rtol=1e-8)
    assert np.diff(np.sort(ref)).min() > 0.1  # four distinct values (2.4 … 10.4): a mispairing would show


def test_pseudospectrum_of_diagonal_and_its_dense_twin():
    rng = np.random.default_rng(1)
    sys = _diag(rng, N=4, batch=(2,))
    re, im = np.linspace(-1.2, 1.2, 7), np.linspace(-1, 1, 5)
    S = pseudospectrum(sys, re, im)
    assert S.shape == (2, 5, 7)
    lam = np.concatenate([sys.lam, sys.lam.conj()], -1)
    z = re[None, :] + 1j * im[:, None]
    expected = np.abs(z[None, :, :, None] - lam[:, None, None, :]).min(-1)
    np.testing.assert_allclose(S, expected, rtol=1e-14)
    np.testing.assert_allclose(pseudospectrum(sys.to_dense(), re, im), expected, rtol=1e-10, atol=1e-13)


def test_pseudospectrum_of_jordan_like_block():
    sys = _upper(0.5, 3.0, 0.5)
    re, im = np.linspace(-1, 1, 9), np.linspace(-0.5, 0.5, 4)
    S = pseudospectrum(sys, re, im)
    z = re[None, :] + 1j * im[:, None]
    expected = np.vectorize(lambda zz: _smin_2x2(zz * np.eye(2) - sys.A))(z)
    np.testing.assert_allclose(S, expected, rtol=1e-10, atol=1e-14)


def test_stability_radius_of_normal_systems():
    rng = np.random.default_rng(2)
    sys = _diag(rng, N=5, batch=(3,), output="real")
    rho = np.abs(sys.lam).max(-1)
    np.testing.assert_allclose(complex_stability_radius(sys), 1 - rho, rtol=1e-14)
    r_dense, theta = complex_stability_radius(sys.to_dense(), return_frequency=True)
    np.testing.assert_allclose(r_dense, 1 - rho, rtol=1e-9, atol=1e-12)
    arg = np.abs(np.angle(sys.lam[np.arange(3), np.abs(sys.lam).argmax(-1)]))
    np.testing.assert_allclose(theta, arg, atol=1e-6)


def test_stability_radius_of_complex_dense_system():
    rng = np.random.default_rng(3)
    lam = np.array([0.3 + 0.1j, 0.7 * np.exp(2.5j), 0.6 * np.exp(-2.0j)])
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)))
    sys = DenseLTI(Q @ np.diag(lam) @ Q.conj().T, np.ones((3, 1)), np.ones((1, 3)))  # normal, complex
    r, theta = complex_stability_radius(sys, return_frequency=True)
    assert r == pytest.approx(0.3, rel=1e-9) and np.exp(1j * theta) == pytest.approx(np.exp(2.5j), abs=1e-6)


@pytest.mark.parametrize("a, b", [(0.5, 3.0), (-0.8, 0.5), (0.9, 20.0)])
def test_stability_radius_of_jordan_like_block(a, b):
    """A = [[a, b], [0, a]]: σ_min(zI − A) grows with |z − a|, so r = σ_min at |w| = 1 − |a| (closed form)."""
    sys = _upper(a, b, a)
    w = 1 - abs(a)
    expected = _smin_2x2(np.array([[w, -b], [0.0, w]]))
    assert expected < 1 - abs(a)  # non-normality shrinks the distance to instability below the margin
    assert complex_stability_radius(sys) == pytest.approx(expected, rel=1e-9)


def test_unstable_gives_zero():
    sys = _upper(1.01, 0.1, 0.5)
    r, theta = complex_stability_radius(sys, return_frequency=True)
    assert r == 0 and np.isnan(theta)
    assert complex_stability_radius(DiagonalLTI([1.2, 0.5], np.ones((2, 1)), np.ones((1, 2)))) == 0


def test_s4_layer_non_normality():
    """S4 at init: the exact λ̄ lie in a tiny pseudospectrum, κ(V) is huge, r below the spectral margin."""
    layer = ssmctl.init("s4", d_model=2, d_state=32, n_layers=1, seed=0)[0]
    sys = layer.system()
    assert np.all(eigenvalue_condition(sys) > 1e6)
    exact = s4.exact_discrete_eigenvalues(layer)
    for h in range(2):
        S = pseudospectrum(sys[h], exact[h], np.zeros(1))[0]
        assert S.max() < 1e-10
    r = complex_stability_radius(sys, n_grid=256)
    margin = 1 - np.abs(exact).max(-1)
    assert np.all(r < 0.8 * margin) and np.all(r > 0)
    # brute force on a much finer grid never beats the refined value (it is the same quantity's upper bound)
    theta = np.linspace(0, np.pi, 4001)
    z = np.exp(1j * theta)
    for h in range(2):
        brute = np.linalg.svd(z[:, None, None] * np.eye(32) - sys.A[h], compute_uv=False)[:, -1].min()
        assert r[h] <= brute + 1e-12
        assert r[h] == pytest.approx(brute, rel=1e-3)


def test_layers_are_accepted_and_bad_input():
    layer = ssmctl.init("s4d", d_model=2, d_state=4, n_layers=1)[0]
    # S4D-Lin with ZOH is diagonal (normal: κ = 1) with |λ̄| = exp(−Δ/2) for every mode of a channel, so its
    # complex stability radius is the spectral margin 1 − exp(−Δ/2) (closed form from the stored log Δ).
    np.testing.assert_array_equal(eigenvalue_condition(layer), np.ones(2))
    dt = np.exp(layer.params["kernel.log_dt"])
    np.testing.assert_allclose(complex_stability_radius(layer), -np.expm1(-dt / 2), rtol=1e-10)
    np.testing.assert_allclose(spectral_margin(layer), -np.expm1(-dt / 2), rtol=1e-10)
    with pytest.raises(SsmctlError, match="n_grid must be an integer >= 8"):
        complex_stability_radius(_upper(0.1, 1, 0.2), n_grid=3)
    with pytest.raises(SsmctlError, match="re and im must be real 1-D grids"):
        pseudospectrum(_upper(0.1, 1, 0.2), np.zeros((2, 2)), np.zeros(2))
