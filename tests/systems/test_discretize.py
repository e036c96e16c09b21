import warnings

import numpy as np
import pytest
import scipy.signal

import ssmctl
from ssmctl.errors import ShapeError, SsmctlError, UnknownNameError
from ssmctl.systems.discretize import UnstableContinuousWarning, phi1


@pytest.fixture
def continuous(rng):
    N = 4
    a = -rng.uniform(0.1, 2.0, N) + 1j * rng.uniform(-5, 5, N)
    B = rng.normal(size=(N, 1)) + 0j
    C = rng.normal(size=(1, N)) + 1j * rng.normal(size=(1, N))
    return a, B, C


@pytest.mark.parametrize("method,scipy_method", [("zoh", "zoh"), ("bilinear", "bilinear")])
def test_matches_scipy_cont2discrete(continuous, method, scipy_method):
    a, B, C = continuous
    dt = 0.07
    sys = ssmctl.from_continuous(a, B, C, dt=dt, method=method)
    Ad, Bd, *_ = scipy.signal.cont2discrete((np.diag(a), B, C, np.zeros((1, 1))), dt, method=scipy_method)
    np.testing.assert_allclose(sys.lam, np.diag(Ad), rtol=1e-12)
    if method == "zoh":
        np.testing.assert_allclose(sys.B, Bd, rtol=1e-10)
    else:
        # scipy's Tustin realization has another state basis; compare transfer functions. S4's bilinear
        # (B̄ = Δ(I − ΔA/2)^{-1}B with y_k = C h_k) is Tustin's G_ct(s) times 2z/(z + 1), s = (2/Δ)(z−1)/(z+1).
        z = np.exp(1j * np.linspace(0.1, 3.0, 7))
        s = 2 / dt * (z - 1) / (z + 1)
        Gct = np.array([(C @ np.linalg.solve(si * np.eye(4) - np.diag(a), B))[0, 0] for si in s])
        G = ssmctl.transfer_function(ssmctl.DiagonalLTI(sys.lam, sys.B, C), z)[:, 0, 0]
        np.testing.assert_allclose(G, Gct * 2 * z / (1 + z), rtol=1e-10)


def test_euler_b_is_mamba_discretization(continuous):
    a, B, C = continuous
    dt = np.array([0.01, 0.02, 0.05, 0.1])
    sys = ssmctl.from_continuous(a, B, C, dt=dt, method="euler_b")
    np.testing.assert_allclose(sys.lam, np.exp(dt * a))
    np.testing.assert_allclose(sys.B[:, 0], dt * B[:, 0])


def test_identity_keeps_discrete_parameters(continuous):
    _, B, C = continuous
    lam = np.array([0.9, 0.5j, -0.3, 0.99])
    D = np.array([[0.25]])
    sys = ssmctl.from_continuous(lam, B, C, D, method="identity", output="conj_pair")
    np.testing.assert_array_equal(sys.lam, lam)
    np.testing.assert_array_equal(sys.B, B)
    np.testing.assert_array_equal(sys.C, C)
    np.testing.assert_array_equal(sys.D, D)
    assert sys.output == "conj_pair"


def test_dt_per_channel_and_per_state(rng):
    H, N = 3, 4
    a = -np.ones((H, N)) * 0.5 + 1j * np.arange(N)
    B = np.ones((H, N, 1))
    C = np.ones((H, 1, N))
    a[:, 0] = 0.0  # ZOH's B̄ → Δ·B at a = 0 (the limit of (e^{Δa} − 1)/a)
    dt_channel = np.array([0.01, 0.1, 1.0])
    sys = ssmctl.from_continuous(a, B, C, dt=dt_channel)
    # closed-form ZOH per entry: Ā = e^{Δa}, B̄ = (e^{Δa} − 1)/a · B, with Δ broadcast along the states
    full = np.broadcast_to(dt_channel[:, None], (H, N))
    lam = np.exp(full * a)
    np.testing.assert_allclose(sys.lam, lam, rtol=1e-14)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(a == 0, full, (lam - 1) / np.where(a == 0, 1, a))
    np.testing.assert_allclose(sys.B[..., 0], gain, rtol=1e-12)
    dt_state = np.tile(np.array([0.01, 0.02, 0.03, 0.04]), (H, 1))
    sys = ssmctl.from_continuous(a, B, C, dt=dt_state)
    lam = np.exp(dt_state * a)
    np.testing.assert_allclose(sys.lam, lam, rtol=1e-14)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(a == 0, dt_state, (lam - 1) / np.where(a == 0, 1, a))
    np.testing.assert_allclose(sys.B[..., 0], gain, rtol=1e-12)
    with pytest.raises(ShapeError, match="fits neither per channel"):
        ssmctl.from_continuous(a, B, C, dt=np.ones(7))


def test_phi1_is_accurate_near_zero():
    x = np.array([1e-12, 1e-6, 1e-3, 0.5 + 0.5j])
    np.testing.assert_allclose(phi1(x), [np.expm1(v) / v if np.isreal(v) else (np.exp(v) - 1) / v for v in x], rtol=1e-12)
    assert phi1(np.array([0.0]))[0] == 1.0


def test_zoh_at_zero_eigenvalue_is_integrator():
    sys = ssmctl.from_continuous(np.array([0.0 + 0j]), np.ones((1, 1)), np.ones((1, 1)), dt=0.3)
    assert sys.lam[0] == 1.0
    np.testing.assert_allclose(sys.B[0, 0], 0.3)


def test_positive_real_part_is_flagged_not_refused():
    with pytest.warns(UnstableContinuousWarning, match="1 continuous eigenvalue"):
        sys = ssmctl.from_continuous(np.array([0.2, -1.0]), np.ones((2, 1)), np.ones((1, 2)), dt=0.1)
    assert abs(sys.lam[0]) > 1


def test_bad_discretization_and_dt():
    with pytest.raises(UnknownNameError, match="unknown discretization 'foh'; known: bilinear, euler_b, identity, zoh"):
        ssmctl.from_continuous(np.array([-1.0]), np.ones((1, 1)), np.ones((1, 1)), dt=0.1, method="foh")
    with pytest.raises(SsmctlError, match="dt must be positive"):
        ssmctl.from_continuous(np.array([-1.0]), np.ones((1, 1)), np.ones((1, 1)), dt=0.0)
    with pytest.raises(SsmctlError, match="needs step sizes dt"):
        ssmctl.from_continuous(np.array([-1.0]), np.ones((1, 1)), np.ones((1, 1)))


@pytest.mark.parametrize("method", ["zoh", "bilinear", "euler_b"])
def test_dense_matches_diagonal(continuous, method):
    a, B, C = continuous
    diag = ssmctl.from_continuous(a, B, C, dt=0.05, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense = ssmctl.from_continuous_dense(np.diag(a), B, C, dt=0.05, method=method)
    np.testing.assert_allclose(ssmctl.impulse_response(dense, 8), ssmctl.impulse_response(diag, 8), atol=1e-12)


def test_dense_zoh_matches_scipy(rng):
    A = rng.normal(size=(3, 3)) - 2 * np.eye(3)
    B = rng.normal(size=(3, 2))
    C = rng.normal(size=(1, 3))
    dense = ssmctl.from_continuous_dense(A, B, C, dt=0.2)
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, C, np.zeros((1, 2))), 0.2, method="zoh")
    np.testing.assert_allclose(dense.A, Ad, atol=1e-12)
    np.testing.assert_allclose(dense.B, Bd, atol=1e-12)


@pytest.mark.parametrize("method", ["bilinear", "euler_b", "zoh"])
def test_dense_batch_against_closed_forms(rng, method):
    # A batch of two real non-diagonal systems with one Δ each: Tustin's (I − ΔA/2)^{-1}(I + ΔA/2) and
    # (I − ΔA/2)^{-1}ΔB, Mamba's expm(ΔA) and ΔB, ZOH from scipy's cont2discrete.
    import scipy.linalg

    A = rng.normal(size=(2, 3, 3)) - 2 * np.eye(3)
    B = rng.normal(size=(2, 3, 2))
    C = rng.normal(size=(1, 3))
    dt = np.array([0.05, 0.3])
    dense = ssmctl.from_continuous_dense(A, B, C, dt=dt, method=method)
    for i in range(2):
        if method == "bilinear":
            left = np.eye(3) - dt[i] / 2 * A[i]
            Ad, Bd = np.linalg.solve(left, np.eye(3) + dt[i] / 2 * A[i]), np.linalg.solve(left, dt[i] * B[i])
        elif method == "euler_b":
            Ad, Bd = scipy.linalg.expm(dt[i] * A[i]), dt[i] * B[i]
        else:
            Ad, Bd, *_ = scipy.signal.cont2discrete((A[i], B[i], C, np.zeros((1, 2))), dt[i], method="zoh")
        np.testing.assert_allclose(dense.A[i], Ad, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dense.B[i], Bd, rtol=1e-12, atol=1e-14)
