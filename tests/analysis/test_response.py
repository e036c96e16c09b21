import warnings

import numpy as np
import pytest
import scipy.signal

import ssmctl
from ssmctl.errors import SsmctlError
from tests.helpers import random_diagonal


def scipy_impulse_siso(sys, L):
    """scipy.signal.dlti on the textbook form of a SISO real system."""
    from ssmctl.systems.control import standard_form

    A, B, C, D = standard_form(sys)
    _, (y,) = scipy.signal.dimpulse(scipy.signal.dlti(A, B, C, D, dt=1), n=L)
    return y[:, 0]


@pytest.mark.parametrize("output", ["real", "conj_pair"])
def test_impulse_matches_scipy(rng, output):
    sys = random_diagonal(rng, N=7, m=1, p=1, output=output)
    np.testing.assert_allclose(ssmctl.impulse_response(sys, 40)[:, 0, 0], scipy_impulse_siso(sys, 40), atol=1e-12)


def test_impulse_closed_form_scalar():
    lam, b, c, d = 0.8, 2.0, 3.0, 0.5
    sys = ssmctl.DiagonalLTI(np.array([lam]), np.array([[b]]), np.array([[c]]), np.array([[d]]), output="real")
    K = ssmctl.impulse_response(sys, 6)[:, 0, 0]
    expected = c * b * lam ** np.arange(6)
    expected[0] += d
    np.testing.assert_allclose(K, expected)


def test_step_is_cumulative_impulse_and_tends_to_dc_gain(rng):
    sys = random_diagonal(rng, N=4, m=2, p=2, output="conj_pair", radius=(0.1, 0.8))
    S = ssmctl.step_response(sys, 400)
    np.testing.assert_allclose(S[-1], ssmctl.dc_gain(sys), atol=1e-10)
    np.testing.assert_allclose(np.diff(S, axis=0), ssmctl.impulse_response(sys, 400)[1:], atol=1e-12)


def test_frequency_response_is_dtft_of_impulse(rng, output_mode):
    # G(e^{iω}) = Σ_k K_k e^{-iωk}: an independent check through the kernel (fast decay → truncation exact).
    sys = random_diagonal(rng, N=5, m=2, p=2, output=output_mode, radius=(0.1, 0.7))
    K = ssmctl.impulse_response(sys, 200)
    w = ssmctl.frequency_grid(sys, 16)
    dtft = np.einsum("kpm,fk->fpm", K, np.exp(-1j * np.outer(w, np.arange(200))))
    np.testing.assert_allclose(ssmctl.frequency_response(sys, w), dtft, atol=1e-12)


def test_complex_systems_lack_conjugate_symmetry(rng):
    sys = random_diagonal(rng, N=3, m=1, p=1, output="complex")
    w = np.array([0.7])
    G_pos = ssmctl.frequency_response(sys, w)[0, 0, 0]
    G_neg = ssmctl.frequency_response(sys, -w)[0, 0, 0]
    assert abs(G_pos - np.conj(G_neg)) > 1e-3
    np.testing.assert_allclose(ssmctl.frequency_grid(sys, 8), -np.pi + 2 * np.pi * np.arange(8) / 8, rtol=1e-15)
    real = random_diagonal(rng, N=3, m=1, p=1, output="conj_pair")
    np.testing.assert_allclose(
        ssmctl.frequency_response(real, w)[0, 0, 0], np.conj(ssmctl.frequency_response(real, -w)[0, 0, 0])
    )
    np.testing.assert_allclose(ssmctl.frequency_grid(real, 5), [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, np.pi])


def test_dense_frequency_response_non_normal_path(rng):
    # A Jordan-like block has an ill-conditioned eigenbasis: the solve path must still agree with scipy.
    A = np.array([[0.5, 50.0, 0.0], [0.0, 0.5, 50.0], [0.0, 0.0, 0.5]])
    B = rng.normal(size=(3, 1))
    C = rng.normal(size=(1, 3))
    sys = ssmctl.DenseLTI(A, B, C)
    w = np.linspace(0, np.pi, 9)
    z = np.exp(1j * w)
    expected = np.array([(zi * C @ np.linalg.solve(zi * np.eye(3) - A, B))[0, 0] for zi in z])
    np.testing.assert_allclose(ssmctl.frequency_response(sys, w)[:, 0, 0], expected, rtol=1e-10)


def test_dc_gain_closed_form(rng):
    sys = random_diagonal(rng, N=4, m=1, p=1, output="conj_pair")
    A, B, C, D = (x for x in sys.to_dense().broadcast_arrays())
    expected = C @ np.linalg.solve(np.eye(8) - A, B) + D
    np.testing.assert_allclose(ssmctl.dc_gain(sys), expected, rtol=1e-12)
    assert np.isrealobj(ssmctl.dc_gain(sys))


def test_batched_shapes(rng):
    sys = random_diagonal(rng, N=3, m=2, p=4, batch=(5, 2))
    assert ssmctl.impulse_response(sys, 7).shape == (5, 2, 7, 4, 2)
    assert ssmctl.frequency_response(sys, np.linspace(0, 1, 6)).shape == (5, 2, 6, 4, 2)
    assert ssmctl.dc_gain(sys).shape == (5, 2, 4, 2)


def test_bad_lengths_and_frequencies(rng):
    sys = random_diagonal(rng)
    with pytest.raises(SsmctlError, match="positive integer"):
        ssmctl.impulse_response(sys, 0)
    with pytest.raises(SsmctlError, match="omega must be real"):
        ssmctl.frequency_response(sys, np.array([1j]))


# --------------------------------------------------------------------------------------------------
# independent references written with numpy only: partial fractions of the stored modes, explicit powers
# --------------------------------------------------------------------------------------------------
def _G_partial_fractions(sys, z):
    """G(z) = D + z·Σ_n c_n b_nᵀ/(z − λ_n), real modes as f/2·(term + conjugate term); shape (..., F, p, m)."""
    z = np.asarray(z, dtype=complex)
    lam, B, C, D = sys.lam, sys.B, sys.C, sys.D
    S = z[:, None] / (z[:, None] - lam[..., None, :])  # (..., F, N)
    G = np.einsum("...pn,...fn,...nm->...fpm", C, S, B)
    if sys.output != "complex":
        f = {"real": 1.0, "conj_pair": 2.0}[sys.output]
        Sc = z[:, None] / (z[:, None] - lam.conj()[..., None, :])
        G = f / 2 * (G + np.einsum("...pn,...fn,...nm->...fpm", C.conj(), Sc, B.conj()))
    return G + np.asarray(D)[..., None, :, :]


def _impulse_by_powers(sys, L):
    """K_0 = CB̄ + D, K_k = C diag(λ^k) B̄ with λ^k from np.power, real modes as f·Re(·); shape (..., L, p, m)."""
    Lk = np.power(sys.lam[..., None, :], np.arange(L)[:, None])  # (..., L, N)
    K = np.einsum("...pn,...kn,...nm->...kpm", sys.C, Lk, sys.B)
    if sys.output != "complex":
        K = {"real": 1.0, "conj_pair": 2.0}[sys.output] * K.real
    K[..., 0, :, :] += sys.D
    return K


@pytest.mark.parametrize("output", ["complex", "real", "conj_pair"])
def test_transfer_function_off_the_unit_circle(rng, output):
    # |z| ≠ 1 (inside and outside the circle, near a pole): nothing else evaluates G away from e^{iω}.
    sys = random_diagonal(rng, N=4, m=2, p=3, output=output, batch=(2,))
    z = np.array([0.5, 2.0j, -1.3 + 0.4j, 0.2 - 0.1j, sys.lam[0, 1] * (1 + 1e-6)])
    G = ssmctl.transfer_function(sys, z)
    assert G.shape == (2, 5, 3, 2)
    np.testing.assert_allclose(G, _G_partial_fractions(sys, z), rtol=1e-9)
    # the dense twin, by linear solves
    d = sys.to_dense()
    X = np.linalg.solve(z[None, :, None, None] * np.eye(d.n_states) - d.A[:, None], d.B[:, None])
    np.testing.assert_allclose(ssmctl.transfer_function(d, z), z[:, None, None] * (d.C[:, None] @ X) + d.D[:, None],
                               rtol=1e-8)


@pytest.mark.parametrize("N, m, p", [(1, 3, 2), (2, 3, 3)])
@pytest.mark.parametrize("output", ["real", "conj_pair"])
def test_frequency_response_with_more_channel_pairs_than_states(rng, N, m, p, output):
    # p·m > 2N takes the real-pair sweep's folded branch (the factors z², −z moved into the mode table).
    sys = random_diagonal(rng, N=N, m=m, p=p, output=output, batch=(3,))
    w = np.linspace(-0.3, np.pi, 17)
    np.testing.assert_allclose(ssmctl.frequency_response(sys, w), _G_partial_fractions(sys, np.exp(1j * w)),
                               rtol=1e-10, atol=1e-12)


def test_frequency_response_of_large_and_batched_systems_in_blocks(rng):
    # N = 1024 over 300 frequencies (several frequency blocks) and 300 systems of 64 modes (several system
    # blocks): the blocked sweep against plain partial fractions.
    big = random_diagonal(rng, N=1024, m=1, p=1, output="conj_pair", radius=(0.9, 0.999))
    w = np.linspace(0.0, np.pi, 300)
    np.testing.assert_allclose(ssmctl.frequency_response(big, w), _G_partial_fractions(big, np.exp(1j * w)),
                               rtol=1e-9)
    many = random_diagonal(rng, N=64, m=1, p=1, output="real", batch=(300,))
    w = np.linspace(0.0, np.pi, 8)
    np.testing.assert_allclose(ssmctl.frequency_response(many, w), _G_partial_fractions(many, np.exp(1j * w)),
                               rtol=1e-9)


@pytest.mark.parametrize("output", ["complex", "real", "conj_pair"])
@pytest.mark.parametrize("m, p, L", [(1, 1, 100), (1, 1, 33), (2, 3, 65), (1, 1, 1)])
def test_impulse_response_against_explicit_powers(rng, output, m, p, L):
    # Lengths around the power tables' block of 32, SISO (folded residues) and MIMO (power table) branches.
    sys = random_diagonal(rng, N=5, m=m, p=p, output=output, batch=(2,), radius=(0.5, 0.99))
    np.testing.assert_allclose(ssmctl.impulse_response(sys, L), _impulse_by_powers(sys, L), rtol=1e-11, atol=1e-13)


def test_dc_gain_with_a_pole_at_one_says_so():
    """An accumulator (λ = 1) has no DC gain: NaN/inf entries come with a warning, only for those systems."""
    from ssmctl.errors import SsmctlWarning

    lam = np.array([[1.0, 0.5], [0.2, 0.5]])
    sys = ssmctl.DiagonalLTI(lam, np.ones((2, 2, 1)), np.ones((2, 1, 2)), output="real")
    with pytest.warns(SsmctlWarning, match=r"pole at z = 1 \(nearest eigenvalue 1\+0j\) in 1 of 2 systems"):
        G = ssmctl.dc_gain(sys)
    assert not np.isfinite(G[0]).all()
    np.testing.assert_allclose(G[1, 0, 0], 1 / 0.8 + 1 / 0.5, rtol=1e-14)  # Σ 1/(1 − λ), closed form
    dense = sys[0].to_dense()
    with pytest.warns(SsmctlWarning, match="pole at z = 1"):
        assert not np.isfinite(ssmctl.dc_gain(dense)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SsmctlWarning)
        ssmctl.dc_gain(sys[1])
