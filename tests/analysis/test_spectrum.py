import re
import warnings

import numpy as np
import pytest

import ssmctl
from ssmctl.analysis.spectrum import MARGINAL_TOL, format_modulus, marginal_note
from ssmctl.errors import SsmctlError, SsmctlWarning
from tests.helpers import random_diagonal


def test_eigenvalues_of_equivalent_real_system(rng):
    sys = random_diagonal(rng, N=4, output="conj_pair")
    eig = ssmctl.eigenvalues(sys)
    assert eig.shape == (8,)
    np.testing.assert_allclose(np.sort_complex(eig), np.sort_complex(np.linalg.eigvals(sys.to_dense().A)), atol=1e-12)
    assert ssmctl.eigenvalues(random_diagonal(rng, N=4, output="complex")).shape == (4,)


def test_radius_and_margin(rng):
    sys = random_diagonal(rng, N=6, batch=(3,))
    r = ssmctl.spectral_radius(sys)
    assert r.shape == (3,)
    np.testing.assert_allclose(r, np.abs(sys.lam).max(axis=-1))
    np.testing.assert_allclose(ssmctl.spectral_margin(sys), 1 - r)
    unstable = ssmctl.DiagonalLTI(np.array([1.2, 0.5]), np.ones((2, 1)), np.ones((1, 2)))
    with pytest.warns(SsmctlWarning, match="spectral radius 1.2 is outside the unit circle: unstable"):
        assert ssmctl.spectral_margin(unstable) == pytest.approx(-0.2)


@pytest.mark.parametrize(
    "r, note",
    [
        (1 - 7e-9, "spectral radius 1 − 7e-09 is within 1e-06 of the unit circle: marginally stable"),
        (1 - 1e-15, "spectral radius 1 − 1e-15 is within 1e-06 of the unit circle"),
        (1 - 1e-6, "spectral radius 1 − 1e-06 is within 1e-06"),
        (1.0, "spectral radius 1 is on the unit circle: not asymptotically stable"),
        (1 + 3e-9, "spectral radius 1 + 3e-09 is outside the unit circle: unstable"),
        (1 - 2e-6, None),
        (0.5, None),
    ],
)
def test_near_marginal_radius_is_never_rounded_into_another_statement(r, note):
    sys = ssmctl.DiagonalLTI(np.array([r, 0.3]), np.ones((2, 1)), np.ones((1, 2)))
    if note is None:
        assert marginal_note(r) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error", SsmctlWarning)
            assert ssmctl.spectral_radius(sys) == r
        return
    assert marginal_note(r).startswith(note)
    with pytest.warns(SsmctlWarning, match=re.escape(note)):
        assert ssmctl.spectral_radius(sys) == r


def test_format_modulus_keeps_the_gap_to_one():
    assert format_modulus(0.999999993) == "1 − 7e-09"
    assert format_modulus(0.99991) == "0.9999"
    assert format_modulus(0.99996) == "1 − 4e-05"  # would read "1" at 4 digits
    assert format_modulus(1.0) == "1" and format_modulus(1 + 2e-12) == "1 + 2e-12"
    assert format_modulus(0.25) == "0.25" and MARGINAL_TOL == 1e-6


def test_memory_horizon_closed_form():
    lam = np.array([0.5, 0.99, 1.0, 1.5, 0.0, -0.9j])
    k = ssmctl.memory_horizon(lam)
    # |λ|^k = ε  ⇔  k = ln ε / ln|λ|
    np.testing.assert_allclose(k[0], np.log(1e-2) / np.log(0.5))
    np.testing.assert_allclose(0.99 ** k[1], 1e-2)
    assert np.isinf(k[2]) and np.isinf(k[3])
    assert k[4] == 0.0
    np.testing.assert_allclose(0.9 ** k[5], 1e-2)
    # at ε = 1/e the horizon is the time constant τ = −1/ln|λ|
    np.testing.assert_allclose(ssmctl.memory_horizon(np.array([0.9]), eps=np.exp(-1)), -1 / np.log(0.9))


def test_memory_horizon_of_systems_follows_the_eigenvalues(rng):
    sys = random_diagonal(rng, N=3, output="conj_pair", batch=(2,))
    k = ssmctl.memory_horizon(sys, eps=1e-3)
    assert k.shape == (2, 6)
    r = np.abs(sys.lam)
    expected = np.log(1e-3) / np.log(np.concatenate([r, r], axis=-1))  # both members of each conjugate pair
    np.testing.assert_allclose(np.sort(k, axis=-1), np.sort(expected, axis=-1), rtol=1e-14)
    A = rng.normal(size=(4, 4))
    dense = ssmctl.DenseLTI(0.9 * A / np.abs(np.linalg.eigvals(A)).max(), np.ones((4, 1)), np.ones((1, 4)))
    expected = np.log(1e-2) / np.log(np.abs(np.linalg.eigvals(dense.A)))
    np.testing.assert_allclose(np.sort(ssmctl.memory_horizon(dense)), np.sort(expected), rtol=1e-12)
    np.testing.assert_allclose(ssmctl.spectral_radius(dense), 0.9, rtol=1e-12)


def test_memory_horizon_bad_eps():
    with pytest.raises(SsmctlError, match=r"eps must lie in \(0, 1\)"):
        ssmctl.memory_horizon(np.array([0.5]), eps=1.5)
