import numpy as np
import pytest

import ssmctl
from ssmctl import DenseLTI, DiagonalLTI
from ssmctl.errors import NonFiniteError, ShapeError, UnknownNameError

from tests.helpers import random_diagonal


def brute_force_impulse(lam, B, C, D, L, output):
    """Run the recurrence h_k = Λh_{k-1} + B u_k on unit impulses, in the model's own read-out."""
    N, m = B.shape
    K = []
    for j in range(m):
        h = np.zeros(N, dtype=complex)
        col = []
        for k in range(L):
            u = np.zeros(m)
            u[j] = 1.0 if k == 0 else 0.0
            h = lam * h + B @ u
            y = C @ h
            y = {"complex": y, "real": y.real, "conj_pair": 2 * y.real}[output]
            col.append(y + D @ u)
        K.append(np.array(col))
    return np.stack(K, axis=-1)  # (L, p, m)


def test_output_modes_match_the_recurrence(rng, output_mode):
    sys = random_diagonal(rng, output=output_mode)
    K = ssmctl.impulse_response(sys, 12)
    ref = brute_force_impulse(sys.lam, sys.B, sys.C, sys.D, 12, output_mode)
    np.testing.assert_allclose(K, ref, atol=1e-12)


def dense_impulse(A, B, C, D, L):
    """Markov parameters of a dense system by plain recursion: K_0 = CB + D, K_k = CA^kB."""
    out, X = [], B.copy()
    for k in range(L):
        out.append(C @ X + (D if k == 0 else 0))
        X = A @ X
    return np.array(out)


def test_to_dense_is_the_same_system(rng, output_mode):
    # The dense realization is the reference many other tests (norms, zeros) build on: check its matrices
    # with plain recursion against the diagonal recurrence, never through ssmctl's own impulse response.
    sys = random_diagonal(rng, output=output_mode, batch=(2,))
    dense = sys.to_dense()
    assert dense.is_real == (output_mode != "complex")
    assert dense.n_states == sys.n_states
    for i in range(2):
        A, B, C, D = dense.A[i], dense.B[i], dense.C[i], dense.D[i]
        assert np.isrealobj(A) == (output_mode != "complex")
        expected_eigs = sys.lam[i] if output_mode == "complex" else np.concatenate([sys.lam[i], sys.lam[i].conj()])
        np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(A)), np.sort_complex(expected_eigs), atol=1e-12)
        ref = brute_force_impulse(sys.lam[i], sys.B[i], sys.C[i], sys.D[i], 9, output_mode)
        np.testing.assert_allclose(dense_impulse(A, B, C, D, 9), ref, atol=1e-12)
    np.testing.assert_allclose(ssmctl.impulse_response(dense, 9), ssmctl.impulse_response(sys, 9), atol=1e-12)


def test_augmented_orders(rng):
    assert random_diagonal(rng, N=4, output="complex").n_states == 4
    assert random_diagonal(rng, N=4, output="real").n_states == 8
    assert random_diagonal(rng, N=4, output="conj_pair").n_states == 8


def test_real_state_keeps_n_states():
    # Mamba-like: real eigenvalues, real B, complex-free read-out: N real states, not 2N.
    lam = np.array([0.3, 0.6, 0.9])
    sys = ssmctl.DiagonalLTI(lam, np.ones((3, 1)), np.array([[1.0, -2.0, 0.5]]), output="real")
    assert sys.real_state and sys.n_states == 3
    np.testing.assert_allclose(np.sort(ssmctl.eigenvalues(sys).real), lam)
    K = ssmctl.impulse_response(sys, 5)[:, 0, 0]
    expected = [(np.array([1.0, -2.0, 0.5]) * lam**k).sum() for k in range(5)]
    np.testing.assert_allclose(K, expected)
    d = sys.to_dense()
    assert d.A.shape == (3, 3) and np.isrealobj(d.A)
    np.testing.assert_allclose(dense_impulse(d.A, d.B, d.C, d.D, 5)[:, 0, 0], expected, atol=1e-15)


def test_batch_broadcast_and_indexing(rng):
    lam = rng.uniform(0.1, 0.9, size=(4, 3)).astype(complex)
    sys = ssmctl.DiagonalLTI(lam, np.ones((3, 1)), np.ones((1, 3)), output="conj_pair")
    assert sys.batch_shape == (4,)
    one = sys[2]
    assert one.batch_shape == ()
    np.testing.assert_allclose(ssmctl.impulse_response(one, 5), ssmctl.impulse_response(sys, 5)[2])
    assert len(sys) == 4


def test_shape_errors_name_the_problem():
    with pytest.raises(ShapeError, match="state sizes disagree"):
        ssmctl.DiagonalLTI(np.ones(3) * 0.5, np.ones((4, 1)), np.ones((1, 3)))
    with pytest.raises(ShapeError, match=r"D must have shape \(\.\.\., p, m\) = \(\.\.\., 1, 1\)"):
        ssmctl.DiagonalLTI(np.ones(3) * 0.5, np.ones((3, 1)), np.ones((1, 3)), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="batch dimensions do not broadcast"):
        ssmctl.DiagonalLTI(np.ones((2, 3)) * 0.5, np.ones((5, 3, 1)), np.ones((1, 3)))
    with pytest.raises(ShapeError, match="A must be square"):
        ssmctl.DenseLTI(np.ones((2, 3)), np.ones((2, 1)), np.ones((1, 2)))
    with pytest.raises(ShapeError, match="must be numeric"):
        ssmctl.DiagonalLTI(np.array(["a"]), np.ones((1, 1)), np.ones((1, 1)))


def test_nonfinite_parameters_are_refused():
    lam = np.array([0.5, np.nan])
    with pytest.raises(NonFiniteError, match=r"lam has 1 non-finite entry \(first at index \[1\]\)"):
        ssmctl.DiagonalLTI(lam, np.ones((2, 1)), np.ones((1, 2)))
    with pytest.raises(NonFiniteError, match=r"A has 1 non-finite entry \(first at index \[0, 0\]\)"):
        ssmctl.DenseLTI(np.array([[np.inf]]), np.ones((1, 1)), np.ones((1, 1)))


def test_unknown_output_mode_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: complex, conj_pair, real"):
        ssmctl.DiagonalLTI(np.ones(1) * 0.5, np.ones((1, 1)), np.ones((1, 1)), output="imag")


def test_real_mode_refuses_complex_feedthrough():
    with pytest.raises(ShapeError, match="D must be real"):
        ssmctl.DiagonalLTI(np.ones(1) * 0.5, np.ones((1, 1)), np.ones((1, 1)), np.array([[1j]]), output="real")


def test_errors_are_value_errors():
    assert issubclass(ssmctl.errors.SsmctlError, ValueError)
    with pytest.raises(ValueError, match="state sizes disagree"):
        ssmctl.DiagonalLTI(np.ones(3), np.ones((4, 1)), np.ones((1, 3)))


# --- exact eigenvalues carried by a DenseLTI ---------------------------------------------------------------
def test_exact_eigenvalues_are_returned_and_kept_by_indexing():
    import warnings

    from ssmctl.errors import SsmctlWarning

    n = 12
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))[0]
    shift = np.diag(np.ones(n - 1), 1)
    J = Q @ (0.5 * np.eye(n) + shift) @ Q.T  # a Jordan block: LAPACK scatters 0.5 on a circle
    A = np.stack([J, Q @ (0.25 * np.eye(n) + shift) @ Q.T])
    exact = np.stack([np.full(n, 0.5), np.full(n, 0.25)]).astype(complex)
    sys = DenseLTI(A, np.ones((n, 1)), np.ones((1, n)), exact_eigenvalues=exact)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SsmctlWarning)  # carried eigenvalues need no warning
        np.testing.assert_array_equal(sys.eigenvalues(), exact)
        np.testing.assert_array_equal(sys[1].eigenvalues(), exact[1])
        np.testing.assert_array_equal(ssmctl.spectral_radius(sys), [0.5, 0.25])
    lapack = np.linalg.eigvals(J)
    assert np.abs(lapack - 0.5).max() > 1e-3  # why carrying them matters
    with pytest.raises(ShapeError, match=r"exact_eigenvalues must have shape \(\.\.\., n\) = \(\.\.\., 12\)"):
        DenseLTI(A, np.ones((n, 1)), np.ones((1, n)), exact_eigenvalues=np.zeros(3))
    with pytest.raises(ShapeError, match="do not broadcast to the batch shape"):
        DenseLTI(A, np.ones((n, 1)), np.ones((1, n)), exact_eigenvalues=np.zeros((3, n)))


def test_non_normal_dense_system_without_exact_spectrum_warns_once():
    from ssmctl.errors import SsmctlWarning
    from ssmctl.systems.lti import EIGENVECTOR_CONDITION_WARN

    n = 12
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))[0]
    J = Q @ (0.5 * np.eye(n) + np.diag(np.ones(n - 1), 1)) @ Q.T
    sys = DenseLTI(np.stack([J, np.diag(np.linspace(0.1, 0.9, n))]), np.ones((n, 1)), np.ones((1, n)))
    kappa = ssmctl.eigenvalue_condition(sys)
    assert kappa[0] > EIGENVECTOR_CONDITION_WARN and kappa[1] == pytest.approx(1.0)
    with pytest.warns(SsmctlWarning) as rec:
        lam = sys.eigenvalues()
        sys.eigenvalues()
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert f"eigenvector condition {kappa.max():.3g} > 1e+08 (1 of 2 systems)" in msg and "pseudospectrum" in msg
    np.testing.assert_array_equal(lam, np.linalg.eigvals(sys.A))
    normal = DenseLTI(np.diag(np.linspace(0.1, 0.9, n)), np.ones((n, 1)), np.ones((1, n)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", SsmctlWarning)
        normal.eigenvalues()


@pytest.mark.parametrize("output", ["complex", "real", "conj_pair"])
def test_diagonal_to_dense_carries_its_modes(output, rng):
    sys = DiagonalLTI(rng.uniform(0.1, 0.9, (2, 3)) * np.exp(1j * rng.uniform(0, 3, (2, 3))),
                      rng.standard_normal((2, 3, 1)), rng.standard_normal((2, 1, 3)), output=output)
    dense = sys.to_dense()
    np.testing.assert_array_equal(dense.eigenvalues(), sys.eigenvalues())
    for b in range(2):  # and they are the eigenvalues of the dense matrix
        got = np.sort_complex(np.linalg.eigvals(dense.A[b]))
        np.testing.assert_allclose(got, np.sort_complex(sys.eigenvalues()[b]), atol=1e-12)
