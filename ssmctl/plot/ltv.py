"""Plots of an LTV simulation (:func:`ssmctl.engine.driver.simulate`): one call each, an optional ``ax=``.

    import ssmctl.plot.ltv as pl
    pl.abs_heatmap(result.stats[0])        # |Ā_t| (slowest mode per channel) over tokens × channels
    pl.dt_histogram(result.stats[0])       # Δ_t over tokens and channels
    pl.memory_trace(result.stats[0])       # frozen-time memory horizon per token
    pl.transition_decay(result.stats[0])   # ‖Ā_t ⋯ Ā_{s+1}‖ against the lag t − s, next to the frozen-time guess
    pl.simulation_figure(result)           # the four panels for each layer
"""

from __future__ import annotations

from typing import Any, Sequence

import warnings

import numpy as np

from ..engine.stats import LayerStats
from ..errors import SsmctlError
from ._common import new_axes, readable_log_ticks

__all__ = ["abs_heatmap", "dt_histogram", "memory_trace", "transition_decay", "simulation_figure"]

# Token traces longer than this are drawn as per-bin minimum / maximum envelopes.
_MAX_POINTS = 4000


def _axes(ax: Any = None) -> Any:
    return new_axes(ax, figsize=(5.0, 3.5))


def _check(stats: Any) -> LayerStats:
    if not isinstance(stats, LayerStats):
        raise SsmctlError(f"expected the LayerStats of one layer (result.stats[i]), got {type(stats).__name__}")
    if stats.n_tokens == 0:
        raise SsmctlError("these statistics saw no tokens")
    return stats


def abs_heatmap(stats: LayerStats, ax: Any = None, title: str | None = None, max_channels: int = 512) -> Any:
    """|Ā_t| of each channel's slowest mode (Mamba-2: each head's), averaged over the tokens of each bin: channels ×
    token bins.

    Parameters
    ----------
    stats : LayerStats
        The statistics of one layer (``result.stats[i]`` of :func:`ssmctl.engine.driver.simulate`).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 3.5 inch figure.
    title : str, optional
        Axes title; default "|Ā_t| over tokens × channels".
    max_channels : int, default 512
        More channels than this are thinned to every k-th channel.

    Returns
    -------
    matplotlib Axes
        With a colour bar from min(|Ā|, 0.999) to 1.

    Raises
    ------
    SsmctlError
        When ``stats`` is not a :class:`LayerStats` or saw no tokens.
    """
    s = _check(stats)
    ax = _axes(ax)
    heat = s.heatmap.T  # (channels, token bins)
    step = max(1, heat.shape[0] // max_channels)
    heat = heat[::step]
    im = ax.imshow(heat, aspect="auto", origin="lower", cmap="viridis", vmin=min(float(np.nanmin(heat)), 0.999),
                   vmax=1.0, extent=(0, s.n_tokens, 0, s.n_channels), interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="|Ā_t| (slowest mode)")
    ax.set_xlabel(f"token (bins of {s.heatmap_bin})")
    kind = s.extra.get("channel_kind", "channel")  # Mamba-2: heads
    ax.set_ylabel(kind + (f" (every {step}th)" if step > 1 else ""))
    ax.set_title(title or f"|Ā_t| over tokens × {kind}s")
    return ax


def dt_histogram(stats: LayerStats, ax: Any = None, title: str | None = None) -> Any:
    """Histogram of Δ_t (the rate; RG-LRU: c·r_t) over tokens and channels, log-spaced bins.

    Parameters
    ----------
    stats : LayerStats
        The statistics of one layer (``result.stats[i]`` of :func:`ssmctl.engine.driver.simulate`).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 3.5 inch figure.
    title : str, optional
        Axes title; default "step size Δ_t".

    Returns
    -------
    matplotlib Axes
        Fractions of (token, channel) pairs over the occupied range (about 80 bars), the median dashed.

    Raises
    ------
    SsmctlError
        When ``stats`` is not a :class:`LayerStats` or saw no tokens.
    """
    s = _check(stats)
    ax = _axes(ax)
    counts, edges = s.rate_hist, np.exp(s.rate_edges)
    nz = np.nonzero(counts)[0]
    lo, hi = (nz[0], nz[-1] + 1) if nz.size else (0, len(counts))
    # merge the fine bins into ~80 bars over the occupied range
    group = max(1, (hi - lo) // 80)
    c = np.add.reduceat(counts[lo:hi], np.arange(0, hi - lo, group))
    e = np.append(edges[lo:hi:group], edges[min(hi, len(edges) - 1)])
    ax.stairs(c / max(c.sum(), 1), e, fill=True, alpha=0.7)
    ax.set_xscale("log")
    ax.axvline(s.rate_quantiles[0.5], color="k", lw=1, ls="--", label=f"median {s.rate_quantiles[0.5]:.3g}")
    ax.set_xlabel("Δ_t  (step size, in tokens)")
    ax.set_ylabel("fraction of (token, channel)")
    ax.legend(fontsize=8)
    ax.set_title(title or "step size Δ_t")
    return ax


def _envelope(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin minimum and maximum of a long trace (at most ``_MAX_POINTS`` bins of equal width; the last bin
    may be partial), at the bins' centres; a short trace is returned as it is (lo is hi)."""
    n = y.size
    if n <= _MAX_POINTS:
        x = np.arange(n)
        return x, y, y
    size = -(-n // _MAX_POINTS)
    bins = -(-n // size)  # only bins that hold tokens: padding never fills a whole bin
    yp = np.concatenate([y, np.full(bins * size - n, np.nan)]).reshape(bins, size)
    starts = np.arange(bins) * size
    x = starts + (np.minimum(starts + size, n) - starts - 1) / 2
    with warnings.catch_warnings():  # a bin whose tokens are all non-finite (memory ∞) stays NaN: a gap
        warnings.simplefilter("ignore", RuntimeWarning)
        return x, np.nanmin(yp, 1), np.nanmax(yp, 1)


def memory_trace(stats: LayerStats, ax: Any = None, batch: int = 0, title: str | None = None) -> Any:
    """Frozen-time memory horizon k_ε per token: the longest channel memory and the channels' geometric mean.

    Parameters
    ----------
    stats : LayerStats
        The statistics of one layer (``result.stats[i]`` of :func:`ssmctl.engine.driver.simulate`).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 3.5 inch figure.
    batch : int, default 0
        Which sequence of the batch to trace.
    title : str, optional
        Axes title; default "frozen-time memory per token".

    Returns
    -------
    matplotlib Axes
        Log y axis; traces longer than 4000 tokens are drawn as per-bin min–max bands with a line through
        each bin's geometric midpoint √(min·max) (``ax.lines``), infinite horizons as gaps.

    Raises
    ------
    SsmctlError
        When ``stats`` is not a :class:`LayerStats` or saw no tokens.
        Also when ``batch`` is outside the simulated batch.
    """
    s = _check(stats)
    ax = _axes(ax)
    if not 0 <= batch < s.memory_token_max.shape[0]:
        raise SsmctlError(f"batch {batch} outside 0..{s.memory_token_max.shape[0] - 1}")
    binned = False
    for trace, label, color in ((s.memory_token_max[batch], "longest channel", "C3"),
                                (s.memory_token_gmean[batch], "geometric mean over channels", "C0")):
        finite = np.where(np.isfinite(trace), trace, np.nan)
        x, lo, hi = _envelope(finite)
        if lo is hi:
            ax.plot(x, lo, color=color, lw=1.0, label=label)
        else:
            # The band alone vanishes where a bin's min and max nearly agree (a smooth trace): a line through
            # each bin's geometric midpoint keeps both traces visible, the band shows the spread around it.
            ax.fill_between(x, lo, hi, color=color, alpha=0.3, lw=0)
            ax.plot(x, np.sqrt(lo * hi), color=color, lw=1.0, label=label)
            binned = True
    ax.set_yscale("log")
    readable_log_ticks(ax.yaxis)
    ax.set_xlabel("token t")
    ax.set_ylabel(f"memory horizon (tokens, ε = {s.eps:g})")
    ax.legend(fontsize=7, title="band: min–max per bin of tokens" if binned else None, title_fontsize=7)
    ax.set_title(title or "frozen-time memory per token")
    return ax


def transition_decay(stats: LayerStats, ax: Any = None, title: str | None = None) -> Any:
    """‖Ā_t ⋯ Ā_(s+1)‖ averaged over t against the lag t − s, and the frozen-time guess ‖Ā_t‖^lag.

    Parameters
    ----------
    stats : LayerStats
        The statistics of one layer (``result.stats[i]`` of :func:`ssmctl.engine.driver.simulate`).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 3.5 inch figure.
    title : str, optional
        Axes title; default "memory of input s in state t".

    Returns
    -------
    matplotlib Axes
        Log–log (base-2 lags); only the lags with measured pairs are drawn, zeros at 1e-30.

    Raises
    ------
    SsmctlError
        When ``stats`` is not a :class:`LayerStats` or saw no tokens.
    """
    s = _check(stats)
    ax = _axes(ax)
    ok = s.lag_pairs > 0
    lags = s.lags[ok]
    floor = 1e-30  # log axis: exact zeros (underflow) drawn at the floor
    for y, label, style in ((s.decay_mean[ok], "products, mean over channels", "o-"),
                            (s.decay_max_channel[ok], "products, slowest channel", "s--"),
                            (s.frozen_mean[ok], "frozen ‖Ā_t‖^lag, mean over channels", "^:")):
        ax.plot(lags, np.maximum(y, floor), style, ms=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(floor, float(np.nanmin(np.maximum(s.decay_mean[ok], floor))) / 10) if ok.any() else floor)
    ax.set_xlabel("lag t − s (tokens)")
    ax.set_ylabel("‖Ā_t ⋯ Ā_(s+1)‖ (mean over t)")
    ax.legend(fontsize=7)
    ax.set_title(title or "memory of input s in state t")
    return ax


def simulation_figure(result: Any, layers: Sequence[int] | None = None, max_layers: int = 6) -> Any:
    """A figure with the four panels (heatmap, Δ histogram, memory trace, decay) for each chosen layer.

    Parameters
    ----------
    result : SimulationResult
        What :func:`ssmctl.engine.driver.simulate` returned.
    layers : sequence of int, optional
        Layer indices to show (default every simulated layer).
    max_layers : int, default 6
        More layers than this are thinned to ``max_layers`` evenly spaced ones.

    Returns
    -------
    matplotlib.figure.Figure
        One row of four panels per layer.

    Raises
    ------
    SsmctlError
        When a requested layer was not simulated, or its statistics saw no tokens.
    """
    import matplotlib.pyplot as plt

    chosen = list(result.layers if layers is None else layers)
    missing = [i for i in chosen if i not in result.stats]
    if missing:
        raise SsmctlError(f"no statistics for layers {missing}; simulated layers: {result.layers}")
    if len(chosen) > max_layers:
        idx = np.linspace(0, len(chosen) - 1, max_layers).round().astype(int)
        chosen = [chosen[i] for i in sorted(set(idx))]
    fig, axes = plt.subplots(len(chosen), 4, figsize=(19, 3.6 * len(chosen)), squeeze=False, layout="constrained")
    for row, i in zip(axes, chosen):
        s = result.stats[i]
        tag = f"{result.family} layer {i}"
        abs_heatmap(s, ax=row[0], title=f"{tag}: |Ā_t|")
        dt_histogram(s, ax=row[1], title=f"{tag}: Δ_t")
        memory_trace(s, ax=row[2], title=f"{tag}: memory horizon")
        transition_decay(s, ax=row[3], title=f"{tag}: transition products")
    fig.suptitle(f"{result.family} ({result.source}): {result.n_tokens} tokens")
    return fig
