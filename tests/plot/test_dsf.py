"""The DSF plots: labels, and the drawn data against numpy computations on the reference twins (materialize_ref,
the families' own transitions, SVDs)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import ssmctl
import ssmctl.plot
from ssmctl.errors import SsmctlError

matplotlib.use("Agg")

L = 20


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def u():
    return torch.randn(1, L, 8, generator=torch.Generator().manual_seed(3))


def _s6():
    return ssmctl.init("s6", d_model=8, d_state=4, n_layers=1)[0]


def _attention(variant):
    return ssmctl.init("attention", d_model=8, d_qk=8, num_heads=2, variant=variant, n_layers=1)[0]


def test_phi_heatmaps_draw_the_channel_mean_of_abs_phi_below_the_diagonal(u, one_torch_thread):
    s6, lin = _s6(), _attention("linear")
    phis = {"S6": ssmctl.materialize(s6, u), "linear attention": ssmctl.materialize(lin, u)}
    axes = ssmctl.plot.phi_heatmaps(phis)
    assert len(axes) == 2 and len(axes[0].figure.axes) == 3  # two panels and one shared colour bar
    for ax, (name, layer) in zip(axes, (("S6", s6), ("linear attention", lin))):
        assert ax.get_title() == name
        assert ax.get_xlabel() == "input token j" and ax.get_ylabel() == "output token i"
        drawn = ax.images[0].get_array()
        expected = np.abs(ssmctl.materialize_ref(layer, u))[0].mean(axis=0)  # the product-loop twin
        below = ~np.triu(np.ones((L, L), dtype=bool), k=1)
        np.testing.assert_array_equal(np.ma.getmaskarray(drawn), ~below)  # the causal triangle is blank
        np.testing.assert_allclose(drawn.data[below], np.maximum(expected[below], drawn.data[below].min()),
                                   rtol=1e-10)
        assert type(ax.images[0].norm).__name__ == "LogNorm"
    assert axes[0].images[0].norm.vmax == pytest.approx(max(np.abs(np.asarray(p))[0].mean(0).max()
                                                             for p in phis.values()))
    assert axes[0].figure.axes[-1].get_ylabel() == "|Φ_ij| (mean over channels)"


def test_phi_heatmaps_wrap_into_rows(u, one_torch_thread):
    phis = [ssmctl.materialize(_s6(), u)] * 3
    axes = ssmctl.plot.phi_heatmaps(phis, ncols=2)
    grid = [ax for ax in axes[0].figure.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 3 and len(grid) == 4 and not grid[3].get_visible()
    assert [ax.get_title() for ax in axes] == ["Φ 0", "Φ 1", "Φ 2"]


def test_phi_heatmaps_refuse_an_empty_input():
    with pytest.raises(SsmctlError, match="at least one Φ"):
        ssmctl.plot.phi_heatmaps({})


def test_lambda_traces_draw_median_and_band_with_the_unit_line(u, one_torch_thread):
    s6 = _s6()
    s4d = ssmctl.init("s4d", d_model=8, d_state=4, n_layers=1)[0]
    ax = ssmctl.plot.lambda_traces({"S6": s6, "S4D": s4d}, u)
    # S6: Λ_i = exp(Δ_i A), from the layer's own LTV system.
    lam = np.abs(ssmctl.dsf(s6, u).lam.double().numpy())[0].reshape(L, -1)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(lam, axis=1), rtol=1e-12)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(lam.min()) and band.max() == pytest.approx(lam.max())
    # S4D: its constant discrete eigenvalues, exp(Δ·A) in closed form, on every token.
    system = s4d.system()
    modes = np.abs(np.asarray(system.lam)).reshape(-1)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.full(L, np.median(modes)), rtol=1e-12)
    assert list(ax.lines[-1].get_ydata()) == [1.0, 1.0]  # |Λ| = 1
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "token i" and ax.get_ylabel() == "|Λ_i|: median, min–max band"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["S6", "S4D", "|Λ| = 1"]


def test_lambda_traces_start_attention_at_token_one(u, one_torch_thread):
    soft = _attention("softmax")
    ax = ssmctl.plot.lambda_traces({"softmax": soft}, u)
    assert ax.lines[0].get_xdata()[0] == 1 and len(ax.lines[0].get_xdata()) == L - 1


def _numpy_rank(block, rtol):
    s = np.linalg.svd(block, compute_uv=False)
    return int(np.sum(s > rtol * s[0])) if s[0] > 0 else 0


def test_hankel_rank_profile_draws_max_rank_over_channels_and_the_reference_lines(u, one_torch_thread):
    s6, soft = _s6(), _attention("softmax")
    profiles = {"S6": ssmctl.hankel_profile(ssmctl.materialize(s6, u)),
                "softmax": ssmctl.hankel_profile(ssmctl.materialize(soft, u))}
    ax = ssmctl.plot.hankel_rank_profile(profiles, n_states=4)
    cuts = np.arange(1, L)
    for line, layer in zip(ax.lines[:2], (s6, soft)):
        phi = ssmctl.materialize_ref(layer, u)[0]
        expected = [max(_numpy_rank(phi[c, t:, :t], 1e-8) for c in range(phi.shape[0])) for t in cuts]
        np.testing.assert_array_equal(line.get_xdata(), cuts)
        np.testing.assert_array_equal(line.get_ydata(), expected)
    assert max(ax.lines[0].get_ydata()) <= 4  # a finite-state layer stays under N
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), np.minimum(cuts, L - cuts))
    assert list(ax.lines[3].get_ydata()) == [4, 4]
    assert ax.get_xlabel() == "cut t" and "rank of Φ[t:, :t]" in ax.get_ylabel() and "1e-08" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["S6", "softmax", "min(t, L − t)", "N = 4"]


def test_taylor_error_curve_draws_error_against_state_size(u, one_torch_thread):
    soft = _attention("softmax")
    err = ssmctl.taylor_error(soft, u, [0, 1, 2])
    ax = ssmctl.plot.taylor_error_curve(err)
    m = 4  # head_dim = d_qk / num_heads
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 1 + m, 1 + m + m * m])
    exact = ssmctl.materialize_ref(soft, u)
    rel = [np.linalg.norm(ssmctl.materialize_ref(soft, u, features=p) - exact) / np.linalg.norm(exact)
           for p in (0, 1, 2)]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), rel, rtol=1e-8)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "state size" in ax.get_xlabel() and "m = 4" in ax.get_xlabel() and "‖Φ_p − Φ‖_F" in ax.get_ylabel()
    assert [t.get_text() for t in ax.texts] == ["p=0", "p=1", "p=2"]
