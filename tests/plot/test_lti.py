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


# ---------------------------------------------------------------------------------------------------------------
# Independent references: scipy.signal and python-control on the textbook realization
# (A, B', C, D') = (Ā, ĀB̄, C, CB̄ + D) of docs/design.md, built here without ssmctl.

def _real_dense(rng, n=4, m=1, p=1, batch=()):
    A = rng.normal(size=batch + (n, n))
    A = 0.9 * A / np.abs(np.linalg.eigvals(A)).max(axis=-1)[..., None, None]
    B, C, D = rng.normal(size=batch + (n, m)), rng.normal(size=batch + (p, n)), rng.normal(size=batch + (p, m))
    return ssmctl.DenseLTI(A, B, C, D), (A, B, C, D)


def _textbook(A, B, C, D):
    return A, A @ B, C, C @ B + D


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()], legend.get_title().get_text()


def test_step_plot_matches_scipy_dstep_per_channel(rng):
    import scipy.signal

    sys, (A, B, C, D) = _real_dense(rng, batch=(3,))
    ax = ssmctl.plot.step(sys, L=40)
    for b in range(3):
        _, (y,) = scipy.signal.dstep(_textbook(A[b], B[b], C[b], D[b]) + (1,), n=40)
        np.testing.assert_allclose(ax.lines[b].get_ydata(), y[:, 0], rtol=1e-10, atol=1e-12)
    assert _legend_texts(ax) == (["channel 0", "channel 1", "channel 2"], "")
    assert ax.get_xlabel() == "lag k (tokens)" and "unit step" in ax.get_ylabel()


def test_impulse_plot_matches_scipy_dimpulse(rng):
    import scipy.signal

    sys, (A, B, C, D) = _real_dense(rng)
    ax = ssmctl.plot.impulse(sys, L=30)
    _, (y,) = scipy.signal.dimpulse(_textbook(A, B, C, D) + (1,), n=30)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), y[:, 0], rtol=1e-10, atol=1e-12)
    assert ax.get_legend() is None  # one SISO system: nothing to name


def test_nyquist_plot_matches_scipy_freqresp_and_closes_the_curve(rng):
    import scipy.signal

    sys, (A, B, C, D) = _real_dense(rng)
    w = np.linspace(0, np.pi, 300)
    ax = ssmctl.plot.nyquist(sys, omega=w)
    _, G = scipy.signal.dlti(*_textbook(A, B, C, D), dt=1).freqresp(w)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), G.real, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), G.imag, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), -G.imag, rtol=1e-8, atol=1e-10)  # ω < 0: the mirror
    minus_one = [line for line in ax.lines if line.get_label() == "−1"][0]
    assert (minus_one.get_xdata()[0], minus_one.get_ydata()[0]) == (-1, 0)
    assert ax.get_xlabel().startswith("Re") and ax.get_ylabel().startswith("Im")


def test_sigma_plot_matches_python_control_singular_values(rng):
    control = pytest.importorskip("control")
    sys, (A, B, C, D) = _real_dense(rng, n=5, m=2, p=3)
    w = np.logspace(-3, np.log10(np.pi), 80)
    ax = ssmctl.plot.sigma(sys, omega=w)
    G = control.ss(*_textbook(A, B, C, D), dt=1)(np.exp(1j * w))  # (p, m, F)
    sv = np.linalg.svd(np.moveaxis(G, -1, 0), compute_uv=False)  # (F, 2)
    assert len(ax.lines) == 2
    for j in range(2):
        np.testing.assert_allclose(ax.lines[j].get_ydata(), 20 * np.log10(sv[:, j]), rtol=1e-9)
    assert ax.get_xscale() == "log" and "dB" in ax.get_ylabel() and "rad/sample" in ax.get_xlabel()
    assert _legend_texts(ax)[0] == ["σ1", "σ2"]
    # the peak of σ1 is the H∞ norm
    hinf = control.norm(control.ss(*_textbook(A, B, C, D), dt=1), "inf")
    assert 20 * np.log10(hinf) >= ax.lines[0].get_ydata().max() - 1e-9


def test_pzmap_draws_scipy_poles_zeros_and_memory_circles(rng):
    import scipy.signal

    sys, (A, B, C, D) = _real_dense(rng, n=4)
    ax = ssmctl.plot.pzmap(sys)
    z, p, _ = scipy.signal.ss2zpk(*_textbook(A, B, C, D))
    poles, zeros = (_points_of(ax.collections[i]) for i in (0, 1))
    np.testing.assert_allclose(np.sort_complex(poles), np.sort_complex(p), rtol=1e-8)
    np.testing.assert_allclose(np.sort_complex(zeros), np.sort_complex(z), rtol=1e-6)
    circles = [np.hypot(line.get_xdata(), line.get_ydata()) for line in ax.lines if len(line.get_xdata()) > 10]
    assert all(np.ptp(r) < 1e-12 for r in circles)
    expected = [1.0] + [0.01 ** (1 / k) for k in (10, 100, 1000, 10000)]  # unit circle, then |z| = ε^(1/k)
    np.testing.assert_allclose([r[0] for r in circles], expected, rtol=1e-12)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Re z", "Im z")
    # a non-square system shows its poles and says why it has no zeros
    wide, _ = _real_dense(rng, n=3, m=2, p=1)
    ax = ssmctl.plot.pzmap(wide, ax=plt.subplots()[1])
    assert len(ax.collections) == 1 and any("no zeros: p=1 ≠ m=2" in t.get_text() for t in ax.texts)
    with pytest.raises(SsmctlError, match="eps"):
        ssmctl.plot.pzmap(wide, eps=2.0)


def _points_of(collection):
    off = collection.get_offsets()
    return np.asarray(off[:, 0]) + 1j * np.asarray(off[:, 1])


def test_batched_bode_draws_an_evenly_spaced_named_subset():
    layer = ssmctl.init("s4d", d_model=64, d_state=8, n_layers=1, seed=0).layers[0]
    w = np.linspace(0.01, 3, 40)
    ax_mag, ax_ph = ssmctl.plot.bode(layer, omega=w)
    names, note = _legend_texts(ax_mag)
    assert note == "8 of 64 channels (evenly spaced)"
    picked = [int(n.split()[-1]) for n in names]
    assert picked[0] == 0 and picked[-1] == 63 and len(picked) == 8
    G = ssmctl.frequency_response(layer.system()[np.array(picked)], w)[:, :, 0, 0]
    for line, g in zip(ax_mag.lines, G):
        np.testing.assert_allclose(line.get_ydata(), 20 * np.log10(np.abs(g)))
    assert "dB" in ax_mag.get_ylabel() and "deg" in ax_ph.get_ylabel() and "rad/sample" in ax_ph.get_xlabel()


def test_mimo_lines_are_named_by_output_and_input(rng):
    sys = random_diagonal(rng, N=3, m=2, p=2, output="conj_pair")
    ax = ssmctl.plot.impulse(sys, L=10)
    assert _legend_texts(ax)[0] == ["y0←u0", "y0←u1", "y1←u0", "y1←u1"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), ssmctl.impulse_response(sys, 10)[:, 0, 1])


def test_near_one_views_draw_closed_form_coordinates():
    rng = np.random.default_rng(7)
    lam = np.exp(-rng.uniform(1e-5, 5e-3, 60) + 1j * rng.uniform(-np.pi, np.pi, 60))
    ax = ssmctl.plot.eigenvalues(lam)  # most within 0.01 of the circle: the rule picks the margin view
    drawn = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.sort(drawn[:, 0]), np.sort(1 - np.abs(lam)), rtol=1e-12)
    np.testing.assert_allclose(np.sort(drawn[:, 1]), np.sort(np.angle(lam)), atol=1e-15)
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("1 − |λ|") and "rad/token" in ax.get_ylabel()
    assert any("near-1 view" in t.get_text() for t in ax.texts)
    ax = ssmctl.plot.eigenvalues(lam, view="splane", ax=plt.subplots()[1])
    drawn = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.sort(drawn[:, 0]), np.sort(np.log(np.abs(lam))), rtol=1e-12)
    assert ax.get_xscale() == "symlog" and "ln|λ|" in ax.get_xlabel()
    # mostly far from the circle: the disk
    ax = ssmctl.plot.eigenvalues(np.concatenate([lam[:10], 0.5 * lam[10:]]), ax=plt.subplots()[1])
    assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "Re λ"
    with pytest.raises(SsmctlError, match="unknown view 'polar'"):
        ssmctl.plot.eigenvalues(lam, view="polar")


def test_margin_view_leaves_out_unstable_modes_and_says_so():
    lam = np.array([0.999, 0.9995, 0.9999, 1.0, 1.01])
    ax = ssmctl.plot.eigenvalues(lam, view="margin")
    assert len(ax.collections[0].get_offsets()) == 3
    assert any("2 with |λ| ≥ 1 not drawn" in t.get_text() for t in ax.texts)


def test_eigenvalue_colourbar_and_infinite_memory_in_red():
    lam = np.array([0.5, 0.9, 0.99, 1.0])
    ax = ssmctl.plot.eigenvalues(lam, inset=False, view="disk")
    colours = ax.collections[0].get_array()
    np.testing.assert_allclose(colours[:3], np.log(1e-2) / np.log(lam[:3]))
    norm = ax.collections[0].norm
    assert colours[3] > norm.vmax and tuple(ax.collections[0].cmap.get_over()[:3]) == (1.0, 0.0, 0.0)
    cbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert len(cbar_axes) == 1 and "memory horizon" in cbar_axes[0].get_ylabel()
    assert "never forgets" in cbar_axes[0].get_ylabel()


def test_zoom_inset_has_ticks():
    rng = np.random.default_rng(1)
    lam = np.concatenate([np.exp(-rng.uniform(1e-3, 0.05, 50) + 1j * rng.uniform(-0.05, 0.05, 50)),
                          rng.uniform(0.1, 0.6, 50) * np.exp(1j * rng.uniform(-3, 3, 50))])
    ax = ssmctl.plot.eigenvalues(lam, view="disk")
    (inset,) = ax.child_axes
    assert len(inset.get_xticks()) >= 2 and len(inset.get_yticks()) >= 2
    assert "zoom near z = 1" in inset.get_title()


def test_subsampled_cloud_says_so():
    lam = np.random.default_rng(0).uniform(0.1, 0.9, 500)
    ax = ssmctl.plot.eigenvalues(lam, max_points=100, view="disk")
    assert len(ax.collections[0].get_offsets()) == 100
    assert any("100 of 500 eigenvalues" in t.get_text() for t in ax.texts)


def test_pseudospectrum_colourbar_names_the_contour_levels():
    A = np.array([[0.5, 10.0], [0.0, 0.6]])
    ax = ssmctl.plot.pseudospectrum(ssmctl.DenseLTI(A, np.ones((2, 1)), np.ones((1, 2))), resolution=40)
    (cbar,) = [a for a in ax.figure.axes if a is not ax]
    assert [t.get_text() for t in cbar.get_yticklabels()] == ["1e-03", "1e-02", "1e-01"]
    assert "ε" in cbar.get_ylabel()


def _all_plots(rng):
    sys = random_diagonal(rng, N=3, m=1, p=1, output="conj_pair", batch=(3,))
    return {
        "eigenvalues": lambda: ssmctl.plot.eigenvalues(sys),
        "impulse": lambda: ssmctl.plot.impulse(sys, L=20),
        "step": lambda: ssmctl.plot.step(sys, L=20),
        "bode": lambda: ssmctl.plot.bode(sys),
        "nyquist": lambda: ssmctl.plot.nyquist(sys),
        "sigma": lambda: ssmctl.plot.sigma(sys),
        "pzmap": lambda: ssmctl.plot.pzmap(sys),
        "hankel": lambda: ssmctl.plot.hankel(sys),
        "pseudospectrum": lambda: ssmctl.plot.pseudospectrum(sys[0], resolution=30),
    }


@pytest.mark.parametrize("name", list(_all_plots(np.random.default_rng(0))))
def test_every_plot_labels_its_axes_and_nothing_overlaps(rng, name):
    out = _all_plots(rng)[name]()
    axes = out if isinstance(out, tuple) else (out,)
    fig = axes[0].figure
    fig.canvas.draw()
    for ax in axes:
        assert ax.get_ylabel() and ax.get_title() or ax is axes[-1], (name, ax.get_ylabel(), ax.get_title())
        assert ax.get_ylabel()
    assert axes[-1].get_xlabel()
    # constrained layout: every label inside the figure, no two labels on top of each other
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for a in fig.axes for t in (a.xaxis.label, a.yaxis.label, a.title)
             if t.get_text()]
    fbox = fig.bbox
    for b in boxes:
        assert fbox.x0 - 1 <= b.x0 and b.x1 <= fbox.x1 + 1 and fbox.y0 - 1 <= b.y0 and b.y1 <= fbox.y1 + 1
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1:])


def test_nyquist_default_grid_resolves_lightly_damped_modes():
    lam = np.array([0.9995 * np.exp(0.002j), 0.9995 * np.exp(-0.002j)])
    rot = np.array([[lam[0].real, -lam[0].imag], [lam[0].imag, lam[0].real]])  # real 2×2 block, eigenvalues lam
    sys = ssmctl.DenseLTI(rot,
                          np.array([[1.0], [0.0]]), np.array([[0.0, 1.0]]))
    ax = ssmctl.plot.nyquist(sys)
    G = ax.lines[0].get_xdata() + 1j * ax.lines[0].get_ydata()
    # the curve's steps are small: consecutive points never jump by more than a tenth of its size
    assert np.abs(np.diff(G)).max() < 0.1 * np.abs(G).max()
    # and every point is G(e^{iω}) of the textbook realization (numpy) on the documented default grid
    A, B, C, D = _textbook(sys.A, sys.B, sys.C, sys.D)
    w = np.concatenate([[0.0], np.geomspace(0.1 * (1 - 0.9995), np.pi, 2048)])
    ref = [(C @ np.linalg.solve(np.exp(1j * x) * np.eye(2) - A, B) + D)[0, 0] for x in w]
    np.testing.assert_allclose(G, ref, rtol=1e-9, atol=1e-12)
