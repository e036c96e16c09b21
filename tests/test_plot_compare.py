"""plot_compare: layer selection, and the memory-horizon panel for real, non-negative eigenvalues."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ssmctl.errors import SsmctlError  # noqa: E402
from ssmctl.plot_compare import plot_compare  # noqa: E402


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
