"""HiPPO-LegS, HiPPO-N and the DPLR form, checked against closed forms and independent LAPACK routines."""

from __future__ import annotations

import numpy as np
import pytest

from ssmctl.errors import SsmctlError
from ssmctl.models import hippo


def _legs_s4_recipe(N):
    """LegS as state-spaces/s4 hippo.transition('legs') builds it: T M T^{-1}, an independent construction."""
    q = np.arange(N, dtype=np.float64)
    col, row = np.meshgrid(q, q)
    M = -(np.where(row >= col, 2 * q + 1, 0) - np.diag(q))
    T = np.diag(np.sqrt(2 * q + 1))
    return T @ M @ np.linalg.inv(T), np.sqrt(2 * q + 1)


@pytest.mark.parametrize("N", [1, 2, 7, 64])
def test_legs_matches_closed_form_and_reference_recipe(N):
    A, B = hippo.legs(N)
    n = np.arange(N)
    expected = np.where(n[:, None] > n[None, :], -np.sqrt(2 * n[:, None] + 1) * np.sqrt(2 * n[None, :] + 1), 0.0)
    expected[n, n] = -(n + 1.0)
    np.testing.assert_allclose(A, expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(B, np.sqrt(2 * n + 1.0), rtol=1e-15)
    A_ref, B_ref = _legs_s4_recipe(N)
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(B, B_ref, rtol=1e-15)


@pytest.mark.parametrize("N", [4, 64])
def test_exact_eigenvalues_are_minus_one_to_minus_N(N):
    lam = hippo.exact_eigenvalues(N)
    np.testing.assert_array_equal(lam, -np.arange(1.0, N + 1.0))
    A, _ = hippo.legs(N)
    assert np.array_equal(A, np.tril(A))  # triangular, so these are the eigenvalues
    # Each −k makes A + kI singular: σ_min at the level of rounding.
    smin = np.linalg.svd(A[None] + np.arange(1, N + 1)[:, None, None] * np.eye(N), compute_uv=False)[:, -1]
    assert smin.max() < 1e-12 * np.linalg.norm(A, 2)


@pytest.mark.parametrize("N", [8, 64])
def test_hippo_n_is_normal_with_real_part_minus_half(N):
    S = hippo.legs_normal(N)
    np.testing.assert_allclose(S + S.T, -np.eye(N), atol=1e-12)
    np.testing.assert_allclose(S @ S.T, S.T @ S, atol=1e-9 * N * N)
    lam_lapack = np.linalg.eigvals(S)  # general eig: an independent route to the same spectrum
    np.testing.assert_allclose(lam_lapack.real, -0.5, atol=1e-9)
    form = hippo.dplr(N)
    np.testing.assert_array_equal(form.lam.real, -0.5)
    np.testing.assert_allclose(np.sort(form.lam.imag), np.sort(lam_lapack.imag), atol=1e-9 * N)
    assert np.all(np.diff(form.lam.imag) >= 0)


@pytest.mark.parametrize("N", [8, 64])
def test_dplr_reconstructs_legs(N):
    form = hippo.dplr(N)
    A, B = hippo.legs(N)
    V = form.V
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N), atol=1e-12)
    rec = V @ (np.diag(form.lam) - np.outer(form.P, form.P.conj())) @ V.conj().T
    np.testing.assert_allclose(rec, A, atol=1e-11 * N)
    np.testing.assert_allclose(V @ form.B, B, atol=1e-11 * N)


@pytest.mark.parametrize("N", [8, 64])
def test_conjugate_half_rebuilds_the_full_matrix(N):
    """The stored half (Im < 0) with its conjugates is unitarily similar to LegS: the S4/S5 storage."""
    h = hippo.dplr(N).half()
    assert np.all(h.lam.imag < 0)
    lam = np.concatenate([h.lam, h.lam.conj()])
    p = np.concatenate([h.P, h.P.conj()])
    W = np.concatenate([h.V, h.V.conj()], axis=1)
    np.testing.assert_allclose(W.conj().T @ W, np.eye(N), atol=1e-12)
    A, B = hippo.legs(N)
    rec = W @ (np.diag(lam) - np.outer(p, p.conj())) @ W.conj().T
    np.testing.assert_allclose(rec, A, atol=1e-11 * N)
    np.testing.assert_allclose(W @ np.concatenate([h.B, h.B.conj()]), B, atol=1e-11 * N)


def test_models_md_ranges_of_legs_imaginary_parts():
    """models.md (numpy): N=64 |Im| ∈ [0.26, 1303]; LegS(32) half Im ∈ [−325.4, −0.301] (S5 default blocks)."""
    im64 = np.abs(hippo.dplr(64).half().lam.imag)
    assert im64.min() == pytest.approx(0.26, abs=0.005) and im64.max() == pytest.approx(1303, abs=0.5)
    im32 = hippo.dplr(32).half().lam.imag
    assert im32.min() == pytest.approx(-325.4, abs=0.05) and im32.max() == pytest.approx(-0.301, abs=5e-4)


def test_non_normality_trap_is_real():
    """models.md: LAPACK's eigenvalues of the (accurately rebuilt) DPLR matrix are far from −1..−64."""
    N = 64
    form = hippo.dplr(N)
    rec = form.V @ (np.diag(form.lam) - np.outer(form.P, form.P.conj())) @ form.V.conj().T
    eig = np.linalg.eigvals(rec)
    dist = np.abs(eig[:, None] - hippo.exact_eigenvalues(N)[None, :]).min(axis=1)
    assert dist.max() > 10  # models.md: up to ≈60


def test_bad_sizes():
    with pytest.raises(SsmctlError, match="positive integer"):
        hippo.legs(0)
    with pytest.raises(SsmctlError, match="state size of a conjugate-pair form must be even .* got 7"):
        hippo.dplr(7).half()
