import matplotlib.pyplot as plt
import numpy as np
import pytest

import ssmctl
import ssmctl.plot
from ssmctl.errors import SsmctlError
from tests.helpers import random_diagonal


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_eigenvalue_plot_shows_every_eigenvalue(rng):
    sys = random_diagonal(rng, N=6, output="conj_pair")
    ax = ssmctl.plot.eigenvalues(sys)
    pts = ax.collections[0].get_offsets()
    expected = ssmctl.eigenvalues(sys)
    np.testing.assert_allclose(np.sort_complex(pts[:, 0] + 1j * pts[:, 1]), np.sort_complex(expected))
    # unit circle drawn
    circle = ax.lines[0].get_xydata()
    np.testing.assert_allclose(np.hypot(circle[:, 0], circle[:, 1]), 1.0)


def test_eigenvalue_plot_colours_by_memory_horizon(rng):
    lam = np.array([0.5, 0.9, 0.99])
    ax = ssmctl.plot.eigenvalues(lam, inset=False)
    np.testing.assert_allclose(np.sort(ax.collections[0].get_array()), np.sort(ssmctl.memory_horizon(lam)))
    with pytest.raises(SsmctlError, match="unknown color_by"):
        ssmctl.plot.eigenvalues(lam, color_by="phase")


def test_impulse_plot_draws_the_kernel(rng):
    sys = random_diagonal(rng, N=3, m=1, p=1, output="conj_pair")
    ax = ssmctl.plot.impulse(sys, L=20)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ssmctl.impulse_response(sys, 20)[:, 0, 0])


def test_bode_plot_draws_magnitude_and_phase(rng):
    sys = random_diagonal(rng, N=3, m=1, p=1, output="conj_pair")
    w = np.linspace(0.01, 3, 50)
    ax_mag, ax_ph = ssmctl.plot.bode(sys, omega=w)
    G = ssmctl.frequency_response(sys, w)[:, 0, 0]
    np.testing.assert_allclose(ax_mag.lines[0].get_ydata(), 20 * np.log10(np.abs(G)))
    np.testing.assert_allclose(ax_ph.lines[0].get_ydata(), np.degrees(np.unwrap(np.angle(G))))


def test_complex_bode_covers_negative_frequencies(rng):
    sys = random_diagonal(rng, N=3, m=1, p=1, output="complex")
    ax_mag, ax_ph = ssmctl.plot.bode(sys)
    w = ax_mag.lines[0].get_xdata()
    assert w.min() == -np.pi and w.max() < np.pi and w.size == 1024 and ax_mag.get_xscale() == "linear"
    z = np.exp(1j * w)
    G = sys.D[0, 0] + z * ((sys.C[0] * sys.B[:, 0])[None, :] / (z[:, None] - sys.lam[None, :])).sum(-1)
    np.testing.assert_allclose(ax_mag.lines[0].get_ydata(), 20 * np.log10(np.abs(G)), rtol=1e-10)
    np.testing.assert_allclose(ax_ph.lines[0].get_ydata(), np.degrees(np.unwrap(np.angle(G))), rtol=1e-10)


def test_hankel_plot_draws_normalized_values(rng):
    sys = random_diagonal(rng, N=4, m=1, p=1, output="conj_pair")
    ax = ssmctl.plot.hankel(sys)
    hsv = ssmctl.hankel_singular_values(sys)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), hsv / hsv[0])


def test_pseudospectrum_plot_marks_the_eigenvalues():
    A = np.array([[0.5, 10.0], [0.0, 0.6]])
    sys = ssmctl.DenseLTI(A, np.ones((2, 1)), np.ones((1, 2)))
    ax = ssmctl.plot.pseudospectrum(sys, resolution=60)
    pts = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(np.sort(pts[:, 0]), [0.5, 0.6])
    with pytest.raises(SsmctlError, match="index it first"):
        ssmctl.plot.pseudospectrum(ssmctl.DenseLTI(np.stack([A, A]), np.ones((2, 1)), np.ones((1, 2))))
