"""Pieces every plot module shares: new axes, the readable subset of a batch, line names, log-axis ticks, the
unit circle."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_LINES", "new_axes", "pick_subset", "subset_note", "batch_names", "line_names", "readable_log_ticks",
           "unit_circle"]

# More curves than this on one axes cannot be told apart (the default colour cycle has 10 colours): a batch is
# thinned to this many evenly spaced members, and the legend says so.
MAX_LINES = 8


def new_axes(ax: Any = None, figsize: tuple[float, float] = (5.0, 4.2), **subplot_kw: Any) -> Any:
    """``ax`` itself, or the axes of a new figure with constrained layout (labels and colourbars never clip
    or overlap)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained", **subplot_kw)
    return ax


def pick_subset(n: int, max_items: int = MAX_LINES) -> np.ndarray:
    """Indices of at most ``max_items`` of ``n`` items, evenly spaced, first and last included."""
    if n <= max_items:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_items).round().astype(int))


def subset_note(shown: int, total: int, what: str) -> str | None:
    """'8 of 64 channels (evenly spaced)' when a subset is drawn, else None."""
    return f"{shown} of {total} {what} (evenly spaced)" if shown < total else None


def batch_names(batch_shape: tuple[int, ...], what: str = "channel") -> list[str]:
    """One name per batch element in C order: 'channel 3' (one batch dim), 'channel 1,2' (more), [''] (none)."""
    if not batch_shape:
        return [""]
    return [f"{what} " + ",".join(str(i) for i in idx) for idx in np.ndindex(*batch_shape)]


def line_names(batch_shape: tuple[int, ...], p: int, m: int) -> list[str]:
    """Names of the flattened lines (batch element, output i, input j) in C order: 'channel 3 y1←u0'."""
    io = [f"y{i}←u{j}" for i in range(p) for j in range(m)] if p * m > 1 else [""]
    return [" ".join(s for s in (b, pair) if s) for b in batch_names(batch_shape) for pair in io]


def readable_log_ticks(axis: Any) -> None:
    """Major ticks at 1, 2, 5 × 10^k on a log axis spanning under two decades (1 × 10^k otherwise), written
    plainly ('20', '0.005'), and no minor labels: matplotlib's default labels every minor tick of a short
    log axis, and those print on top of each other."""
    from matplotlib import ticker

    lo, hi = sorted(axis.get_view_interval())
    decades = np.log10(hi / lo) if lo > 0 and hi > 0 else np.inf
    subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _plain(v)))
    axis.set_minor_formatter(ticker.NullFormatter())


def _plain(v: float) -> str:
    """A log-axis tick label: '20', '0.005', and powers of ten as 10⁵ / 2×10⁵ outside [1e-3, 1e5)."""
    if v <= 0:
        return ""
    if 1 <= v < 1e5:
        return f"{v:.0f}"
    if 1e-3 <= v < 1:
        return f"{v:.3g}"
    exp = int(np.floor(np.log10(v) + 1e-9))
    mant = round(v / 10.0 ** exp)
    return (f"${mant}\\times10^{{{exp}}}$" if mant != 1 else f"$10^{{{exp}}}$")


def unit_circle(ax: Any, **kw: Any) -> Any:
    """Draw |z| = 1 (the stability boundary) as the axes' first line."""
    theta = np.linspace(0, 2 * np.pi, 400)
    return ax.plot(np.cos(theta), np.sin(theta), **{"color": "0.3", "lw": 0.8, **kw})[0]
