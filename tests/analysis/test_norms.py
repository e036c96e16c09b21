"""System norms, gramians, Hankel values, balanced truncation and structure, against independent references.

References: python-control with slycot (``norm``, ``linfnorm``, ``gram``, ``ctrb``/``obsv``, ``minreal``) for
real systems; for complex systems (which python-control cannot take) brute force written here: explicit
Markov parameters, Stein-equation residuals, finite block Hankel matrices and dense frequency sweeps.
"""

from __future__ import annotations

import warnings

import control
import numpy as np
import pytest
import scipy.optimize

import ssmctl
from tests.helpers import random_diagonal
from ssmctl import DenseLTI, DiagonalLTI, to_control
from ssmctl.errors import SsmctlError, UnstableSystemError
from ssmctl.analysis.norms import (
    balanced_truncation,
    gramians,
    h2_norm,
    hankel_singular_values,
    hinf_norm,
    is_controllable,
    is_observable,
    minimal_order,
)


# --------------------------------------------------------------------------------------------------
# independent helpers (plain numpy, no ssmctl)
# --------------------------------------------------------------------------------------------------
def rand_diag(rng, N, m, p, output="conj_pair", batch=(), rmin=0.3, rmax=0.95):
    return random_diagonal(rng, N, m, p, output=output, batch=batch, radius=(rmin, rmax))


def rand_dense(rng, n, m, p, rho=0.9, nonnormal=False):
    """Random stable real dense system; ``nonnormal`` gives a nearly defective A (a perturbed Jordan block,
    eigenbasis condition number ~1e8) whose modal form is useless."""
    if nonnormal:
        A = np.diag(np.full(n - 1, 1.0), 1) + np.diag(rho * 0.7 + rng.uniform(-1e-4, 1e-4, n))
        upper = np.triu_indices(n, 2)
        A[upper] = rng.standard_normal(upper[0].size)
    else:
        A = rng.standard_normal((n, n))
        A *= rho / np.max(np.abs(np.linalg.eigvals(A)))
    return DenseLTI(A, rng.standard_normal((n, m)), rng.standard_normal((p, n)), rng.standard_normal((p, m)))


def dense_arrays(sys):
    d = sys.to_dense()
    return d.A, d.B, d.C, d.D


def markov(sys, L):
    """K_0 = CB̄ + D, K_k = CĀ^kB̄ by plain recursion."""
    A, B, C, D = dense_arrays(sys)
    out, X = [], B.copy()
    for k in range(L):
        out.append(C @ X + (D if k == 0 else 0))
        X = A @ X
    return np.array(out)


def G_at(sys, omega):
    """G(e^{iω}) = zC(zI − Ā)^{-1}B̄ + D by linear solves, shape (F, p, m)."""
    A, B, C, D = dense_arrays(sys)
    z = np.exp(1j * np.atleast_1d(omega))[:, None, None]
    X = np.linalg.solve(z * np.eye(A.shape[0]) - A, np.broadcast_to(B, (z.shape[0],) + B.shape))
    return z * (C @ X) + D


def smax(sys, omega):
    return np.linalg.svd(G_at(sys, omega), compute_uv=False)[:, 0]


def brute_hinf(sys, lo=-np.pi, hi=np.pi, F=20001):
    """Dense sweep + bounded local maximization around the best sample."""
    om = np.linspace(lo, hi, F)
    f = smax(sys, om)
    k = int(np.argmax(f))
    res = scipy.optimize.minimize_scalar(
        lambda w: -smax(sys, w)[0],
        bounds=(om[max(k - 1, 0)], om[min(k + 1, F - 1)]),
        method="bounded",
        options={"xatol": 1e-13},
    )
    return max(f[k], -res.fun)


class FakeLayer:
    def __init__(self, sys):
        self._sys = sys

    def system(self):
        return self._sys


def hinf_ref(sys):
    return control.linfnorm(to_control(sys), 1e-12)[0]


# --------------------------------------------------------------------------------------------------
# H2
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["conj_pair", "real"])
@pytest.mark.parametrize("mp", [(1, 1), (3, 2)])
def test_h2_matches_python_control(output, mp):
    rng = np.random.default_rng(0)
    sys = rand_diag(rng, 6, *mp, output=output)
    ref = control.norm(to_control(sys), 2)
    assert h2_norm(sys) == pytest.approx(ref, rel=1e-10)
    assert h2_norm(sys.to_dense()) == pytest.approx(ref, rel=1e-10)
    assert h2_norm(FakeLayer(sys)) == pytest.approx(ref, rel=1e-10)


def test_h2_complex_is_root_sum_of_squares_of_markov_parameters():
    rng = np.random.default_rng(1)
    sys = rand_diag(rng, 5, 2, 3, output="complex", rmax=0.9)
    K = markov(sys, 600)  # 0.9^1200 is far below rounding
    ref = np.sqrt(np.sum(np.abs(K) ** 2))
    assert h2_norm(sys) == pytest.approx(ref, rel=1e-12)
    assert h2_norm(sys.to_dense()) == pytest.approx(ref, rel=1e-12)


def test_h2_batch_and_nonnormal_dense():
    rng = np.random.default_rng(2)
    sys = rand_diag(rng, 4, 1, 1, batch=(3, 2))
    out = h2_norm(sys)
    assert out.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert out[i, j] == pytest.approx(control.norm(to_control(sys[i, j]), 2), rel=1e-10)
    dense = rand_dense(rng, 6, 2, 2, nonnormal=True)  # eigenbasis too ill conditioned for the modal path
    assert h2_norm(dense) == pytest.approx(control.norm(to_control(dense), 2), rel=1e-8)


# --------------------------------------------------------------------------------------------------
# H-infinity
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["conj_pair", "real"])
@pytest.mark.parametrize("mp", [(1, 1), (2, 3)])
def test_hinf_certified_against_slycot(output, mp):
    rng = np.random.default_rng(3)
    for rmax in (0.95, 0.9999):  # the second has resonances 1e-4 wide
        sys = rand_diag(rng, 6, *mp, output=output, rmax=rmax)
        ref = hinf_ref(sys)
        val, w = hinf_norm(sys, return_frequency=True)
        # attained (never above the true norm) and within the certified tolerance of it
        assert ref * (1 - 1e-6) <= val <= ref * (1 + 1e-9)
        assert 0.0 <= w <= np.pi
        assert smax(sys, w)[0] == pytest.approx(val, rel=1e-10)
        assert hinf_norm(sys.to_dense()) == pytest.approx(ref, rel=1e-6)


def test_hinf_tight_rtol_and_dense_paths():
    rng = np.random.default_rng(4)
    sys = rand_diag(rng, 8, 2, 2, rmax=0.99)
    ref = hinf_ref(sys)
    assert ref * (1 - 1e-10) <= hinf_norm(sys, rtol=1e-10) <= ref * (1 + 1e-12)
    for nonnormal in (False, True):  # modal branch and bound, then the symplectic-pencil iteration
        dense = rand_dense(rng, 7, 2, 3, rho=0.97, nonnormal=nonnormal)
        ref = hinf_ref(dense)
        val, w = hinf_norm(dense, return_frequency=True)
        assert ref * (1 - 1e-6) <= val <= ref * (1 + 1e-8)
        assert smax(dense, w)[0] == pytest.approx(val, rel=1e-8)


def test_dense_batch_mixing_modal_and_pencil_paths():
    rng = np.random.default_rng(14)
    s1, s2 = rand_dense(rng, 5, 2, 2), rand_dense(rng, 5, 2, 2, nonnormal=True)
    batch = DenseLTI(np.stack([s1.A, s2.A]), np.stack([s1.B, s2.B]), np.stack([s1.C, s2.C]), np.stack([s1.D, s2.D]))
    val = hinf_norm(batch)
    h2 = h2_norm(batch)
    for i, s in enumerate((s1, s2)):
        ref = hinf_ref(s)
        assert ref * (1 - 1e-6) <= val[i] <= ref * (1 + 1e-8)
        assert h2[i] == pytest.approx(control.norm(to_control(s), 2), rel=1e-9)


def test_hinf_complex_systems_cover_the_whole_circle():
    rng = np.random.default_rng(5)
    sys = rand_diag(rng, 6, 2, 2, output="complex", rmax=0.97)
    ref = brute_hinf(sys)
    val, w = hinf_norm(sys, return_frequency=True)
    assert ref * (1 - 1e-6) <= val <= ref * (1 + 1e-9)
    assert -np.pi <= w <= np.pi
    # a complex dense system with an ill-conditioned eigenbasis goes through the pencil
    d = sys.to_dense()
    T = np.eye(6) + np.triu(rng.standard_normal((6, 6)) * 30.0, 1)
    nn = DenseLTI(T @ d.A @ np.linalg.inv(T), T @ d.B, d.C @ np.linalg.inv(T), d.D)
    assert ref * (1 - 1e-6) <= hinf_norm(nn) <= ref * (1 + 1e-7)


def test_hinf_of_an_allpass_cascade_is_one():
    # G(z) = Π (1 − a_k z)/(z − a_k): |G(e^{iω})| = 1 at every ω, a flat maximum that must still terminate.
    a = np.array([0.5, -0.3, 0.8])
    n = a.size
    A = np.zeros((n, n))
    Bp, Cc, Dp = np.zeros((n, 1)), np.zeros((1, n)), np.ones((1, 1))
    for k, ak in enumerate(a):  # series connection of first-order all-pass sections (textbook form)
        Ak, Bk, Ck, Dk = ak, 1.0, 1.0 - ak**2, -ak
        A[k, :k] = Bk * Cc[0, :k]
        A[k, k] = Ak
        Bp[k] = Bk * Dp[0]
        Cc[0, :k] = Dk * Cc[0, :k]
        Cc[0, k] = Ck
        Dp = Dk * Dp
    sys = ssmctl.from_control(control.ss(A, Bp, Cc, Dp, dt=True))
    assert np.allclose(np.abs(G_at(sys, np.linspace(0, np.pi, 7))), 1.0)
    assert hinf_norm(sys) == pytest.approx(1.0, rel=1e-6)
    assert hinf_norm(sys) <= 1.0 + 1e-12


def test_hinf_batched_layer_matches_each_channel():
    rng = np.random.default_rng(6)
    a = -0.5 + 1j * np.pi * np.arange(16)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), 6))
    C = rng.standard_normal((6, 1, 16)) + 1j * rng.standard_normal((6, 1, 16))
    a = np.broadcast_to(a, (6, 16))
    layer = ssmctl.from_continuous(a, np.ones((6, 16, 1)), C, rng.standard_normal((6, 1, 1)), dt=dt, output="conj_pair")
    val, w = hinf_norm(FakeLayer(layer), return_frequency=True)
    assert val.shape == w.shape == (6,)
    for h in range(6):
        ref = hinf_ref(layer[h])
        assert ref * (1 - 1e-6) <= val[h] <= ref * (1 + 1e-9)


def test_hinf_rejects_bad_rtol():
    sys = rand_diag(np.random.default_rng(0), 2, 1, 1)
    with pytest.raises(SsmctlError, match="rtol must lie in"):
        hinf_norm(sys, rtol=0.0)


# --------------------------------------------------------------------------------------------------
# gramians and Hankel singular values
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["conj_pair", "real"])
def test_gramians_match_python_control(output):
    rng = np.random.default_rng(7)
    for sys in (rand_diag(rng, 5, 2, 3, output=output), rand_dense(rng, 6, 2, 1)):
        ss = to_control(sys)
        Wc, Wo = gramians(sys)
        for W, kind in ((Wc, "c"), (Wo, "o")):
            ref = control.gram(ss, kind)
            assert W.dtype == np.float64
            assert np.abs(W - ref).max() <= 1e-10 * np.abs(ref).max()


def test_gramians_of_complex_systems_solve_the_stein_equations():
    rng = np.random.default_rng(8)
    sys = rand_diag(rng, 5, 2, 2, output="complex", rmax=0.8)
    A, B, C, _ = dense_arrays(sys)
    Bp = A @ B
    Wc, Wo = gramians(sys)
    assert np.abs(A @ Wc @ A.conj().T - Wc + Bp @ Bp.conj().T).max() < 1e-12 * np.abs(Wc).max()
    assert np.abs(A.conj().T @ Wo @ A - Wo + C.conj().T @ C).max() < 1e-12 * np.abs(Wo).max()
    # and equal the truncated sums Σ_k A^k B'B'^H A^kH
    S, X = np.zeros_like(Wc), Bp.copy()
    for _ in range(300):
        S += X @ X.conj().T
        X = A @ X
    assert np.abs(Wc - S).max() < 1e-12 * np.abs(S).max()
    Wc2, _ = gramians(sys.to_dense())
    assert np.abs(Wc2 - Wc).max() < 1e-12 * np.abs(Wc).max()


def _block_hankel_svals(sys, L):
    K = markov(sys, 2 * L + 1)
    p, m = K.shape[1:]
    H = np.block([[K[i + j + 1] for j in range(L)] for i in range(L)])
    return np.linalg.svd(H, compute_uv=False)


@pytest.mark.parametrize("output", ["conj_pair", "real", "complex"])
def test_hankel_singular_values_against_block_hankel_matrix(output):
    rng = np.random.default_rng(9)
    sys = rand_diag(rng, 4, 2, 2, output=output, rmax=0.8)
    hsv = hankel_singular_values(sys)
    n = sys.n_states
    assert hsv.shape == (n,)
    assert np.all(np.diff(hsv) <= 0)
    ref = _block_hankel_svals(sys, 80)[:n]  # 0.8^160 truncation error
    assert np.allclose(hsv, ref, rtol=1e-9, atol=1e-12 * ref[0])
    if output != "complex":
        Wc, Wo = control.gram(to_control(sys), "c"), control.gram(to_control(sys), "o")
        ref2 = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert np.allclose(hsv, ref2, rtol=1e-8, atol=1e-12 * ref2[0])
        assert np.allclose(hankel_singular_values(sys.to_dense()), hsv, rtol=1e-9, atol=1e-12 * hsv[0])


def test_hankel_singular_values_of_a_non_minimal_system():
    # two copies of the same mode with a single input: one direction is uncontrollable
    lam = np.array([0.6 + 0.3j, 0.6 + 0.3j, -0.2 + 0.5j])
    sys = DiagonalLTI(lam, [[1.0], [2.0], [1.0j]], [[1.0, 0.5, 1.0]], [[0.0]], output="conj_pair")
    hsv = hankel_singular_values(sys)
    assert np.all(np.isfinite(hsv)) and np.all(hsv >= 0)
    assert hsv[-2:].max() < 1e-7 * hsv[0]  # both real states of the redundant pair vanish
    ref = _block_hankel_svals(sys, 60)[:4]
    assert np.allclose(hsv[:4], ref, rtol=1e-8)


@pytest.mark.parametrize("output", ["conj_pair", "real"])
def test_hankel_singular_values_of_siso_batches_against_block_hankel_matrices(output):
    # SISO real systems take a one-gramian symmetric-eigenvalue route; each channel is checked against
    # the SVD of its own finite Hankel matrix, and a channel with an unexcited mode (c_n = 0) is included.
    rng = np.random.default_rng(21)
    sys = rand_diag(rng, 5, 1, 1, output=output, batch=(3,), rmax=0.8)
    C = sys.C.copy()
    C[1, 0, 2] = 0.0
    sys = DiagonalLTI(sys.lam, sys.B, C, sys.D, output=output)
    hsv = hankel_singular_values(sys)
    assert hsv.shape == (3, 10)
    for i in range(3):
        ref = _block_hankel_svals(sys[i], 80)[:10]
        np.testing.assert_allclose(hsv[i], ref, rtol=1e-9, atol=1e-12 * ref[0])
    assert hsv[1, -2:].max() < 1e-12 * hsv[1, 0]
    assert np.allclose(hankel_singular_values(sys.to_dense()), hsv, rtol=1e-9, atol=1e-12 * hsv[:, :1])


def test_hankel_singular_values_of_siso_systems_without_a_cholesky_factor(monkeypatch):
    # Numerically singular gramians (no Cholesky factor) send a block of SISO channels through the
    # two-factor SVD route; force that and check the values against the finite Hankel matrices again.
    import ssmctl.analysis.norms as norms

    rng = np.random.default_rng(22)
    sys = rand_diag(rng, 4, 1, 1, batch=(2,), rmax=0.8)
    monkeypatch.setattr(norms, "_cholesky_factor", lambda W: None)
    hsv = hankel_singular_values(sys)
    for i in range(2):
        ref = _block_hankel_svals(sys[i], 80)[:8]
        np.testing.assert_allclose(hsv[i], ref, rtol=1e-9, atol=1e-12 * ref[0])

# --------------------------------------------------------------------------------------------------
# balanced truncation
# --------------------------------------------------------------------------------------------------
def _difference(s1, s2):
    A1, B1, C1, D1 = dense_arrays(s1)
    A2, B2, C2, D2 = dense_arrays(s2)
    n1, n2 = A1.shape[0], A2.shape[0]
    A = np.block([[A1, np.zeros((n1, n2))], [np.zeros((n2, n1)), A2]])
    return DenseLTI(A, np.vstack([B1, B2]), np.hstack([C1, -C2]), D1 - D2)


@pytest.mark.parametrize("output", ["conj_pair", "complex"])
def test_balanced_truncation_full_order_and_error_bound(output):
    rng = np.random.default_rng(10)
    sys = rand_diag(rng, 5, 2, 2, output=output, rmax=0.9)
    n = sys.n_states
    full = balanced_truncation(sys, n)
    assert isinstance(full, DenseLTI) and full.n_states == n
    assert full.is_real == sys.is_real
    assert np.allclose(markov(full, 40), markov(sys, 40), atol=1e-10)
    hsv = hankel_singular_values(sys)
    for r in (1, 3, n - 1):
        red = balanced_truncation(sys, r)
        err = hinf_norm(_difference(sys, red))
        assert err <= 2.0 * hsv[r:].sum() * (1 + 1e-8)
        assert err >= hsv[r] * (1 - 1e-6)  # the classical lower bound σ_{r+1} ≤ ‖G − G_r‖∞


def test_balanced_truncation_batch_and_errors():
    rng = np.random.default_rng(11)
    sys = rand_diag(rng, 3, 1, 1, batch=(2,))
    red = balanced_truncation(sys, 2)
    assert red.A.shape == (2, 2, 2) and red.B.shape == (2, 2, 1) and red.D.shape == (2, 1, 1)
    for i in range(2):
        ref = balanced_truncation(sys[i], 2)
        assert np.allclose(markov(red[i], 20), markov(ref, 20), atol=1e-12)
    with pytest.raises(SsmctlError, match=r"0 < r ≤ n = 6"):
        balanced_truncation(sys, 7)
    with pytest.raises(SsmctlError, match=r"0 < r ≤ n"):
        balanced_truncation(sys, 0)
    # a mode that is never excited: only 4 nonzero Hankel values
    lam = np.array([0.5 + 0.2j, 0.3 - 0.4j, 0.7j])
    nm = DiagonalLTI(lam, [[1.0], [0.5], [0.0]], [[1.0, 1.0, 1.0]], output="conj_pair")
    with pytest.raises(SsmctlError, match=r"σ_5 is numerically zero .* choose r ≤ 4"):
        balanced_truncation(nm, 5)
    # an FIR system: its minimal realization has Ā nilpotent, so B̄ = Ā^{-1}B' does not exist
    J = np.diag([1.0, 1.0], k=1)
    fir = DenseLTI(J, [[0.0], [0.0], [1.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(SsmctlError, match="reduced state matrix A_r is singular .* pole at z = 0"):
        balanced_truncation(fir, 2)


# --------------------------------------------------------------------------------------------------
# controllability, observability, McMillan degree
# --------------------------------------------------------------------------------------------------
def _ref_structure(sys):
    ss = to_control(sys)
    n = ss.nstates
    ctrl = np.linalg.matrix_rank(control.ctrb(ss.A, ss.B)) == n
    obs = np.linalg.matrix_rank(control.obsv(ss.A, ss.C)) == n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        order = control.minreal(ss, verbose=False).nstates
    return ctrl, obs, order


def _check_structure(sys):
    ref = _ref_structure(sys)
    for s in (sys, sys.to_dense()):
        assert (bool(is_controllable(s)), bool(is_observable(s)), int(minimal_order(s))) == ref
    return ref


def test_structure_of_random_systems():
    rng = np.random.default_rng(12)
    assert _check_structure(rand_diag(rng, 3, 1, 1, rmin=0.5)) == (True, True, 6)
    assert _check_structure(rand_diag(rng, 3, 2, 2, output="real", rmin=0.5)) == (True, True, 6)
    assert _check_structure(rand_dense(rng, 5, 1, 2)) == (True, True, 5)


def test_structure_of_hand_built_non_minimal_systems():
    lam = np.array([0.5 + 0.3j, -0.4 + 0.2j, 0.1 + 0.7j])
    C = np.array([[1.0, 2.0 - 1j, 0.5j]])
    # a zero row of B: that mode (both real states) is uncontrollable
    B0 = np.array([[1.0], [0.0], [1.0 + 1j]])
    assert _check_structure(DiagonalLTI(lam, B0, C, output="conj_pair")) == (False, True, 4)
    # a zero column of C: unobservable
    assert _check_structure(DiagonalLTI(lam, B0 + 1, C * [1, 0, 1], output="conj_pair")) == (True, False, 4)
    # the same mode twice with one input: one copy is redundant (the cluster's residue has rank 1)
    lam2 = np.array([0.5 + 0.3j, 0.5 + 0.3j, 0.1 + 0.7j])
    dup = DiagonalLTI(lam2, [[1.0], [2.0j], [1.0]], C, output="conj_pair")
    assert _check_structure(dup) == (False, False, 4)
    # the same mode twice with two independent inputs and outputs is minimal
    B2, C2 = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    dup2 = DiagonalLTI(lam2, B2, C2, output="conj_pair")
    assert _check_structure(dup2) == (True, True, 6)
    # a real mode stored as a conjugate pair: two real states with the same eigenvalue, so one input
    # (output) cannot reach (see) both
    lam3 = np.array([0.5, 0.1 + 0.7j])
    real_mode = DiagonalLTI(lam3, [[1.0 + 1j], [1.0]], [[1.0 - 2j, 1.0j]], output="conj_pair")
    assert _check_structure(real_mode) == (False, False, 3)
    # λ = 0 only feeds through (B' = ĀB̄ = 0): not part of the dynamics
    lam4 = np.array([0.0, 0.1 + 0.7j])
    assert _check_structure(DiagonalLTI(lam4, [[1.0], [1.0j]], [[1.0, 1.0]], output="conj_pair")) == (False, False, 2)


def test_structure_complex_and_batched():
    lam = np.array([0.5 + 0.3j, 0.5 + 0.3j, -0.2j])
    B = np.array([[1.0], [2.0], [1.0]])
    C = np.array([[1.0, 1.0, 0.0]])
    sys = DiagonalLTI(lam, B, C, output="complex")
    for s in (sys, sys.to_dense()):
        assert not is_controllable(s) and not is_observable(s)
        assert minimal_order(s) == 1  # only the first cluster reaches the output, with a rank-one residue
    # λ = 0: observable, but B' = ĀB̄ = 0 leaves it uncontrollable in the textbook form (ctrb by hand)
    z = DiagonalLTI([0.0, 0.5j], [[1.0], [1.0]], [[1.0, 1.0]], output="complex")
    A, Bbar, Cz, _ = dense_arrays(z)
    Bp = A @ Bbar
    assert np.linalg.matrix_rank(np.hstack([Bp, A @ Bp])) == 1
    assert np.linalg.matrix_rank(np.vstack([Cz, Cz @ A])) == 2
    for s in (z, z.to_dense()):
        assert not is_controllable(s) and is_observable(s) and minimal_order(s) == 1
    batch = DiagonalLTI(np.stack([lam, lam * [1, 0.5, 1]]), B, C, output="complex")
    assert minimal_order(batch).tolist() == [1, 2]
    assert is_controllable(batch).tolist() == [False, True]
    assert is_observable(batch).tolist() == [False, False]
    with pytest.raises(SsmctlError, match="tol must be positive"):
        minimal_order(sys, tol=-1.0)


# --------------------------------------------------------------------------------------------------
# unstable systems
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn", [h2_norm, hinf_norm, gramians, hankel_singular_values, lambda s: balanced_truncation(s, 2)]
)
def test_unstable_systems_are_refused_naming_the_modes(fn):
    rng = np.random.default_rng(13)
    sys = rand_diag(rng, 5, 1, 1, batch=(4,), rmax=0.9)
    lam = sys.lam.copy()
    lam[2, 3] = 1.05j
    bad = DiagonalLTI(lam, sys.B, sys.C, sys.D, output="conj_pair")
    expected = (
        r"1 stored modes have \|λ\| ≥ 1 in 1 of 4 system\(s\); "
        r"the largest is \|λ\| = 1\.05 at batch index \(2,\), mode 3"
    )
    with pytest.raises(UnstableSystemError, match=expected):
        fn(bad)
    A = np.diag([0.5, -1.2, 0.3])
    with pytest.raises(UnstableSystemError, match=r"1 eigenvalues of Ā have \|λ\| ≥ 1 .* \|λ\| = 1\.2"):
        fn(DenseLTI(A, np.ones((3, 1)), np.ones((1, 3))))


@pytest.mark.parametrize("m,p", [(1, 1), (3, 3)])
def test_real_state_systems_match_python_control(m, p):
    # Real λ and B under a real read-out (Mamba, RG-LRU, S4D-Real): the real system keeps N states.
    rng = np.random.default_rng(5)
    N = 6
    lam = rng.uniform(0.1, 0.97, N)
    B = rng.normal(size=(N, m))
    C = rng.normal(size=(p, N)) + 1j * rng.normal(size=(p, N))
    sys = ssmctl.DiagonalLTI(lam, B, C, rng.normal(size=(p, m)), output="conj_pair")
    assert sys.real_state and sys.n_states == N
    cs = ssmctl.to_control(sys)
    Wc, Wo = ssmctl.gramians(sys)
    np.testing.assert_allclose(Wc, control.gram(cs, "c"), atol=1e-12)
    np.testing.assert_allclose(Wo, control.gram(cs, "o"), atol=1e-10)
    ref = np.sort(np.sqrt(np.abs(np.linalg.eigvals(control.gram(cs, "c") @ control.gram(cs, "o")))))[::-1]
    # sqrt(eig(Wc·Wo)) itself is only accurate to about eps·σ1²/σ_i for the small values
    np.testing.assert_allclose(ssmctl.hankel_singular_values(sys), ref, rtol=1e-8, atol=1e-8 * ref[0])
    assert ssmctl.hinf_norm(sys) == pytest.approx(control.norm(cs, "inf", tol=1e-12), rel=2e-6)
