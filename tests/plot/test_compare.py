"""plot_compare: the inspect and compare figures draw the eigenvalues and bin percentages they are given;
layer selection, and the memory-horizon panel for real, non-negative eigenvalues."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ssmctl.errors import SsmctlError
from ssmctl.checkpoints.inspect import PHASE_EDGES_DEG, RADIUS_EDGES
import matplotlib.colors as mcolors

from ssmctl.plot.compare import eigenvalue_overlay, histogram_pair, plot_compare, plot_inspect


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _percent(values, edges, last_open=True):
    """Percent of values in right-closed bins [0, e0], (e0, e1], …, (e_last, ∞) (numpy, no ssmctl)."""
    bounds = [0.0, *edges] + ([np.inf] if last_open else [])
    counts = [np.count_nonzero((values > a) & (values <= b)) + (np.count_nonzero(values == 0) if i == 0 else 0)
              for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return 100.0 * np.array(counts) / values.size


def _points(ax, k):
    off = ax.collections[k].get_offsets()
    return np.asarray(off[:, 0]) + 1j * np.asarray(off[:, 1])


def _sides(ax):
    """The overlay's points split by colour: (A's, B's), each in drawing order."""
    pts = _points(ax, 0)
    colours = ax.collections[0].get_facecolors()[:, :3]
    is_a = np.all(np.isclose(colours, mcolors.to_rgb("C0")), axis=1)
    is_b = np.all(np.isclose(colours, mcolors.to_rgb("C1")), axis=1)
    assert (is_a ^ is_b).all()
    return pts[is_a], pts[is_b], is_a


def _cloud(rng, n, r=(0.05, 1.3)):
    return rng.uniform(*r, n) * np.exp(1j * rng.uniform(-np.pi, np.pi, n))


def test_overlay_draws_both_sets_interleaved_and_subsamples_large_ones():
    rng = np.random.default_rng(0)
    a, b = _cloud(rng, 50), _cloud(rng, 300)
    ax = eigenvalue_overlay(a, b, plt.subplots()[1], max_points=100)
    drawn_a, drawn_b, is_a = _sides(ax)
    np.testing.assert_array_equal(np.sort_complex(drawn_a), np.sort_complex(a))
    assert drawn_b.size == 100 and np.isin(drawn_b, b).all() and np.unique(drawn_b).size == 100
    # neither side is drawn wholly on top of the other: A's points are spread through the drawing order
    first_a, last_a = np.flatnonzero(is_a)[[0, -1]]
    assert first_a < 0.25 * is_a.size and last_a > 0.75 * is_a.size
    np.testing.assert_allclose(np.abs(ax.lines[0].get_xdata() + 1j * ax.lines[0].get_ydata()), 1.0)
    assert ax.get_xlim()[1] == pytest.approx(1.05 * max(np.abs(a).max(), np.abs(drawn_b).max()))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Re λ", "Im λ")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["A", "B (100 of 300)"]


def test_overlay_of_eigenvalues_at_the_circle_uses_the_margin_view():
    rng = np.random.default_rng(3)
    a = np.exp(-rng.uniform(1e-5, 5e-3, 40) + 1j * rng.uniform(-0.1, 0.1, 40))
    b = np.exp(-rng.uniform(1e-4, 5e-3, 40))
    ax = eigenvalue_overlay(a, b, plt.subplots()[1])
    drawn_a, drawn_b, _ = _sides(ax)
    np.testing.assert_allclose(np.sort(drawn_a.real), np.sort(1 - np.abs(a)), rtol=1e-12)
    np.testing.assert_allclose(np.sort(drawn_a.imag), np.sort(np.angle(a)), atol=1e-15)
    np.testing.assert_allclose(np.sort(drawn_b.real), np.sort(1 - b), rtol=1e-12)
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("1 − |λ|") and "rad/token" in ax.get_ylabel()


def test_histogram_pair_bars_are_the_percentages():
    ha = {"percent": [10.0, 60.0, 30.0], "labels": ["x", "y", "z"]}
    hb = {"percent": [50.0, 0.0, 50.0], "labels": ["x", "y", "z"]}
    ax = histogram_pair(ha, hb, plt.subplots()[1], title="t")
    heights = [p.get_height() for p in ax.patches]
    assert heights == ha["percent"] + hb["percent"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"] and ax.get_title() == "t"
    assert ax.get_xlabel() == "bin" and ax.get_ylabel() == "% of eigenvalues"


def test_plot_compare_rows_hold_each_pair_and_its_bins():
    rng = np.random.default_rng(1)
    eig = {"a": {0: _cloud(rng, 400), 2: _cloud(rng, 200)}, "b": {0: _cloud(rng, 400), 1: _cloud(rng, 200)},
           "pairs": [(0, 0), (2, 1)]}
    fig = plot_compare({"a": "ckpt_a", "b": "init"}, eig)
    axes = np.array(fig.axes).reshape(2, 3)
    for (ia, ib), (disk, rad, ph) in zip(eig["pairs"], axes):
        la, lb = eig["a"][ia], eig["b"][ib]
        drawn_a, drawn_b, _ = _sides(disk)
        np.testing.assert_array_equal(np.sort_complex(drawn_a), np.sort_complex(la))
        np.testing.assert_array_equal(np.sort_complex(drawn_b), np.sort_complex(lb))
        expected = np.concatenate([_percent(np.abs(la), RADIUS_EDGES), _percent(np.abs(lb), RADIUS_EDGES)])
        np.testing.assert_allclose([p.get_height() for p in rad.patches], expected)
        deg_a, deg_b = (np.degrees(np.abs(np.angle(x))) for x in (la, lb))
        expected = np.concatenate([_percent(deg_a, PHASE_EDGES_DEG, False), _percent(deg_b, PHASE_EDGES_DEG, False)])
        np.testing.assert_allclose([p.get_height() for p in ph.patches], expected)
    assert axes[1, 0].get_title() == "layer 2 / 1"


def test_plot_inspect_draws_every_layer_and_notes_attention():
    rng = np.random.default_rng(2)
    eig = {0: _cloud(rng, 30, (0.1, 0.99)), 1: _cloud(rng, 20, (0.1, 0.99))}
    report = {"path": "p", "eps": 1e-2, "layers": [
        {"index": 0, "kind": "LTI", "family": "s4d", "at": None},
        {"index": 1, "kind": "LTV", "family": "mamba", "at": "dt_bias"},
        {"index": 2, "kind": "attention", "family": "attention", "name": "layers.2.attn", "warnings": []},
    ]}
    fig = plot_inspect(report, eig)
    for i in (0, 1):
        np.testing.assert_array_equal(np.sort_complex(_points(fig.axes[i], 0)), np.sort_complex(eig[i]))
    assert fig.axes[1].get_title() == "layer 1 mamba at dt_bias"
    assert "layers.2.attn" in fig.axes[2].texts[0].get_text()


def _report(eig_a, eig_b):
    pairs = [(i, i) for i in sorted(eig_a)]
    return {"a": "A", "b": "B", "eps": 1e-2}, {"a": eig_a, "b": eig_b, "pairs": pairs}


def test_real_eigenvalues_get_memory_histograms_with_the_closed_form_counts():
    rng = np.random.default_rng(0)
    la = np.exp(-rng.uniform(1e-3, 0.5, (8, 16)))  # Mamba-like: real, in (0, 1)
    lb = np.exp(-rng.uniform(1e-3, 0.05, (8, 16)))
    report, eig = _report({0: la, 1: la}, {0: lb, 1: lb})
    fig = plot_compare(report, eig)
    panel = fig.axes[2]
    assert panel.get_xscale() == "log" and "memory horizon" in panel.get_xlabel()
    heights = [sum(p.get_height() for p in c) for c in panel.containers]
    assert heights == [la.size, lb.size]  # every finite horizon lands in a bin
    # bars cover the closed-form horizons ln(ε)/ln λ
    k = np.log(1e-2) / np.log(np.concatenate([la.ravel(), lb.ravel()]))
    lefts = [p.get_x() for c in panel.containers for p in c]
    rights = [p.get_x() + p.get_width() for c in panel.containers for p in c]
    assert min(lefts) == pytest.approx(k.min()) and max(rights) == pytest.approx(k.max(), rel=1e-3)
    legend = [t.get_text() for t in panel.get_legend().get_texts()]
    medians = [np.median(np.log(1e-2) / np.log(x)) for x in (la, lb)]
    assert legend == [f"A: median {medians[0]:.3g}", f"B: median {medians[1]:.3g}"]
    plt.close(fig)


def test_complex_eigenvalues_keep_the_phase_histogram_and_layers_select_rows():
    rng = np.random.default_rng(1)
    lam = np.exp(-rng.uniform(1e-3, 0.1, (4, 8)) + 1j * rng.uniform(-np.pi, np.pi, (4, 8)))
    report, eig = _report({0: lam, 2: lam, 5: lam}, {0: lam * 0.99, 2: lam * 0.98, 5: lam * 0.97})
    fig = plot_compare(report, eig, layers=[2, 5])
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[::3]] == ["layer 2", "layer 5"]
    assert "arg" in fig.axes[2].get_title() and fig.axes[2].get_xscale() == "linear"
    plt.close(fig)
    with pytest.raises(SsmctlError, match=r"layers \[3\] are not among the compared layers \[0, 2, 5\]"):
        plot_compare(report, eig, layers=[3])


def test_memory_panel_counts_eigenvalues_on_the_circle_as_infinite():
    la = np.array([[0.5, 0.9, 1.0, 1.0]])  # two modes that never forget
    lb = np.array([[0.5, 0.9, 0.99, 0.999]])
    report, eig = _report({0: la}, {0: lb})
    fig = plot_compare(report, eig)
    legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert legend[0].endswith(", 2 ∞") and "∞" not in legend[1]
    assert sum(p.get_height() for p in fig.axes[2].containers[0]) == 2  # only the finite horizons are drawn
    plt.close(fig)


def _overlapping_tick_labels(ax):
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)], len(boxes)


@pytest.mark.parametrize("span", [(20.0, 70.0), (5.0, 5e4)])
def test_memory_histogram_tick_labels_do_not_overlap(span):
    k = np.geomspace(*span, 50)  # horizons inside one decade, and over four
    lam = np.exp(np.log(1e-2) / k)
    report, eig = _report({0: lam}, {0: lam ** 1.1})
    fig = plot_compare(report, eig)
    overlaps, n = _overlapping_tick_labels(fig.axes[2])
    assert not overlaps and n >= 2


def test_plot_inspect_has_one_memory_colourbar_and_labelled_axes():
    rng = np.random.default_rng(2)
    eig = {0: _cloud(rng, 30, (0.1, 0.99)), 1: _cloud(rng, 20, (0.1, 0.99))}
    report = {"path": "p", "eps": 1e-2, "layers": [
        {"index": 0, "kind": "LTI", "family": "s4d", "at": None},
        {"index": 1, "kind": "LTV", "family": "mamba", "at": "dt_bias"}]}
    fig = plot_inspect(report, eig)
    bars = [ax for ax in fig.axes if "memory horizon" in ax.get_ylabel()]
    assert len(bars) == 1
    norm = fig.axes[0].collections[0].norm
    k = np.log(1e-2) / np.log(np.abs(np.concatenate([eig[0], eig[1]])))
    assert (norm.vmin, norm.vmax) == pytest.approx((k.min(), k.max()))  # one scale for every panel
    assert all(fig.axes[i].get_xlabel() == "Re λ" and fig.axes[i].get_ylabel() == "Im λ" for i in (0, 1))
