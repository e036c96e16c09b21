"""LTV plots draw what the statistics hold."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ssmctl  # noqa: E402
import ssmctl.plot.ltv as pl  # noqa: E402
from ssmctl.errors import SsmctlError  # noqa: E402
from ssmctl.engine.driver import simulate  # noqa: E402


@pytest.fixture(scope="module")
def run(one_torch_thread):
    model = ssmctl.init("mamba", d_model=16, n_layers=2, d_state=4)
    u = torch.randn(1, 300, 16, generator=torch.Generator().manual_seed(0))
    return model, u, simulate(model, u, device="cpu", heatmap_bins=75)


@pytest.fixture(scope="module")
def result(run):
    return run[2]


def test_panels(run):
    model, u, result = run
    s = result.stats[0]
    # Layer 0's Δ_t and Ā_t straight from its LTV system (checked against transformers in test_mamba.py)
    sys0 = model.layers[0].ltv(u)
    slow = sys0.lam[0].double().numpy().max(axis=-1)  # (L, channels): each channel's slowest mode
    fig, axes = plt.subplots(1, 4)
    pl.abs_heatmap(s, ax=axes[0])
    heat = np.asarray(axes[0].images[0].get_array())
    assert heat.shape == (s.n_channels, 75)
    np.testing.assert_allclose(heat, slow.reshape(75, 4, -1).mean(axis=1).T, rtol=1e-5)  # bins of 300/75 tokens
    pl.dt_histogram(s, ax=axes[1])
    assert axes[1].get_xscale() == "log"
    bars = axes[1].patches[0]  # the stairs: fraction of (token, channel) per drawn bin
    values, edges = bars.get_data().values, bars.get_data().edges
    dt = sys0.dt.double().numpy().ravel()
    assert edges[0] <= dt.min() and dt.max() <= edges[-1]
    np.testing.assert_allclose(values, np.histogram(dt, bins=edges)[0] / dt.size, atol=2 / dt.size)
    pl.memory_trace(s, ax=axes[2])
    k = np.log(1e-2) / np.log(slow)  # frozen-time memory of each channel's slowest mode
    np.testing.assert_allclose(axes[2].lines[0].get_ydata(), k.max(axis=1), rtol=1e-4)
    np.testing.assert_allclose(axes[2].lines[1].get_ydata(), np.exp(np.log(k).mean(axis=1)), rtol=1e-4)
    pl.transition_decay(s, ax=axes[3])
    np.testing.assert_allclose(axes[3].lines[0].get_ydata(), np.maximum(s.decay_mean, 1e-30))
    np.testing.assert_array_equal(axes[3].lines[0].get_xdata(), s.lags)
    plt.close(fig)


def test_figure_and_errors(result):
    fig = pl.simulation_figure(result)
    assert len(fig.axes) >= 8
    plt.close(fig)
    with pytest.raises(SsmctlError, match="no statistics for layers"):
        pl.simulation_figure(result, layers=[5])
    with pytest.raises(SsmctlError, match="LayerStats"):
        pl.abs_heatmap(result)
    with pytest.raises(SsmctlError, match="batch 3"):
        pl.memory_trace(result.stats[0], batch=3)


@pytest.mark.parametrize("n", [8192, 4001, 12003])
def test_envelope_bins_hold_tokens_and_match_a_plain_loop(n):
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n)
    y[100:140] = np.nan  # non-finite tokens (an infinite memory horizon) inside one bin
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" warning from padding
        x, lo, hi = pl._envelope(y)
    size = -(-n // pl._MAX_POINTS)
    starts = list(range(0, n, size))
    assert len(x) == len(starts) <= pl._MAX_POINTS and x[-1] < n
    for k, s0 in enumerate(starts):
        part = y[s0:s0 + size]
        part = part[np.isfinite(part)]
        if part.size:
            assert lo[k] == part.min() and hi[k] == part.max()
        assert s0 <= x[k] <= min(s0 + size, n) - 1


def test_flat_stretches_of_the_memory_trace_are_drawn(result):
    stats = result.stats[0]
    flat = np.full((1, 9000), 42.0)
    stats_flat = type(stats)(**{**stats.__dict__, "memory_token_max": flat, "memory_token_gmean": flat / 2})
    ax = pl.memory_trace(stats_flat)
    drawn = [line.get_ydata() for line in ax.get_lines()]
    assert any(np.nanmax(d) == 42.0 for d in drawn) and any(np.nanmax(d) == 21.0 for d in drawn)
    plt.close(ax.figure)


def test_binned_memory_trace_draws_a_line_through_each_band(result):
    stats = result.stats[0]
    rng = np.random.default_rng(0)
    longest = np.exp(rng.uniform(5, 6, (1, 9000)))
    gmean = np.exp(rng.uniform(2, 3, (1, 9000)))
    ax = pl.memory_trace(type(stats)(**{**stats.__dict__, "memory_token_max": longest, "memory_token_gmean": gmean}))
    size = -(-9000 // pl._MAX_POINTS)  # tokens per bin
    for line, trace in zip(ax.get_lines(), (longest[0], gmean[0])):
        pad = np.concatenate([trace, np.full(-9000 % size, np.nan)]).reshape(-1, size)
        np.testing.assert_allclose(line.get_ydata(), np.sqrt(np.nanmin(pad, 1) * np.nanmax(pad, 1)))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["longest channel", "geometric mean over channels"]
    plt.close(ax.figure)


def test_every_panel_labels_its_axes_with_units(result):
    fig = pl.simulation_figure(result, layers=[0])
    heat, dt, mem, decay = fig.axes[:4]
    assert heat.get_xlabel().startswith("token") and heat.get_ylabel() == "channel"
    assert any("|Ā_t|" in ax.get_ylabel() for ax in fig.axes[4:])  # the heatmap's colour bar
    assert dt.get_xlabel().startswith("Δ_t") and "tokens" in dt.get_xlabel() and dt.get_ylabel()
    assert mem.get_xlabel() == "token t" and "tokens" in mem.get_ylabel()
    assert "tokens" in decay.get_xlabel() and decay.get_ylabel()
    assert all(ax.get_title().startswith("mamba layer 0") for ax in (heat, dt, mem, decay))
    plt.close(fig)


def test_mamba2_heatmap_has_one_row_per_head(one_torch_thread):
    # Mamba-2's statistics are per head (checked against per-channel numbers in tests/engine/test_stats.py)
    model = ssmctl.init("mamba2", d_model=16, headdim=8, d_state=4, n_layers=1, seed=1)
    u = torch.randn(1, 120, 16, generator=torch.Generator().manual_seed(0))
    result = simulate(model, u, device="cpu", heatmap_bins=30)  # bins of 4 tokens (a power of two)
    s = result.stats[0]
    sys0 = model.layers[0].ltv(u)
    heads = sys0.lam.shape[2]
    assert s.n_channels == heads and result.summary()["layers"][0]["channel_kind"] == "head"
    fig, ax = plt.subplots()
    pl.abs_heatmap(s, ax=ax)
    heat = np.asarray(ax.images[0].get_array())
    slow = sys0.lam[0, :, :, 0, 0].double().numpy()  # (L, heads): one eigenvalue per head
    np.testing.assert_allclose(heat, slow.reshape(30, 4, heads).mean(axis=1).T, rtol=1e-5)
    assert ax.get_ylabel() == "head" and ax.get_title() == "|Ā_t| over tokens × heads"
    plt.close(fig)
