"""Figures of ``ssmctl inspect --plot`` and ``ssmctl compare --plot``.

One panel per layer for inspect (the eigenvalue plot of :func:`ssmctl.plot.eigenvalues`, one shared memory
colour bar); one row per layer pair for compare: A's and B's eigenvalues overlaid (on the disk or in the near-1
view), and their radius and phase histograms side by side in the bins of Task-Level-Insights-from-Eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from . import lti as plot
from ._common import readable_log_ticks
from .views import choose_view, setup_view_axes, view_coordinates
from ..analysis.spectrum import memory_horizon
from ..errors import SsmctlError
from ..checkpoints.inspect import EPS, PHASE_EDGES_DEG, RADIUS_EDGES, phase_histogram, radius_histogram

__all__ = ["plot_inspect", "plot_compare", "eigenvalue_overlay", "histogram_pair", "memory_histogram_pair"]

# A dense plot of many layers stays legible with this many panels per row.
_COLS = 4


def _grid(n: int, cols: int, size: float = 3.2) -> tuple[Any, np.ndarray]:
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.0, size * rows), squeeze=False,
                             layout="constrained")
    return fig, axes


def plot_inspect(report: Mapping[str, Any], eigenvalues: Mapping[int, np.ndarray]) -> Any:
    """Every layer of an inspect report: its eigenvalues (attention layers: a note), one memory colour bar.

    Each panel uses :func:`ssmctl.plot.eigenvalues`' view rule (the unit disk, or the near-1 view when most
    eigenvalues crowd the unit circle); all panels share one colour scale of the memory horizon.

    Parameters
    ----------
    report : dict from :func:`ssmctl.checkpoints.inspect.inspect_report`
    eigenvalues : dict, layer index → complex array (``inspect_report(..., eigenvalues=True)``)

    Returns
    -------
    matplotlib Figure
    """
    rows = report["layers"]
    n = len(rows)
    cols = min(_COLS, max(1, n))
    fig, axes = _grid(n, cols)
    eps = float(report["eps"])
    shown = {row["index"]: np.asarray(eigenvalues[row["index"]]).reshape(-1) for row in rows
             if row["kind"] in ("LTI", "LTV") and eigenvalues.get(row["index"]) is not None}
    horizons = memory_horizon(np.concatenate(list(shown.values())), eps=eps) if shown else np.ones(1)
    norm = plot.memory_norm(horizons)
    for ax, row in zip(axes.flat, rows):
        lam = shown.get(row["index"])
        if lam is None:
            ax.axis("off")
            what = row.get("name") or f"layer {row['index']}"
            ax.text(0.5, 0.5, f"{what}\n{row['kind']}\n" + "\n".join(row.get("warnings") or [row.get("note", "")]),
                    ha="center", va="center", fontsize=7, wrap=True, transform=ax.transAxes)
            continue
        at = f" at {row['at']}" if row.get("at") else ""
        plot.eigenvalues(lam, ax=ax, title=f"layer {row['index']} {row['family']}{at}", eps=eps,
                         colorbar=False, inset=True, norm=norm)
        ax.title.set_fontsize(8)
        for label in (ax.xaxis.label, ax.yaxis.label):
            label.set_fontsize(7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if shown:
        plot.memory_colorbar(fig.axes[0], norm, eps, bool(np.isinf(horizons).any()), target=axes)
    fig.suptitle(f"{report['path']} — eigenvalues per layer, coloured by memory horizon (ε = {eps:g})", fontsize=9)
    return fig


def eigenvalue_overlay(lam_a: np.ndarray, lam_b: np.ndarray, ax: Any, *, labels: tuple[str, str] = ("A", "B"),
                       max_points: int = 8000, view: str = "auto") -> Any:
    """A's and B's eigenvalues in one view, their points interleaved so neither side hides the other.

    Parameters
    ----------
    lam_a, lam_b : array_like, complex, any shape
        Eigenvalues of A and B (flattened).
    ax : matplotlib Axes
        Axes to draw into.
    labels : (str, str), default ("A", "B")
        Legend entries of A and B.
    max_points : int, default 8000
        Each side larger than this is shown as a fixed random subset of that many points (the legend says so).
    view : {"auto", "disk", "splane", "margin"}, default "auto"
        As in :func:`ssmctl.plot.eigenvalues`; ``"auto"`` applies its rule to A and B together.

    Returns
    -------
    matplotlib Axes
        ``ax``; its first collection holds every drawn point (A in colour C0, B in C1) in a fixed random
        order, so that A is drawn over B as often as B over A.
    """
    import matplotlib.colors as mcolors
    from matplotlib.lines import Line2D

    rng = np.random.default_rng(0)
    sides = []
    for lam, label in ((lam_a, labels[0]), (lam_b, labels[1])):
        lam = np.asarray(lam, dtype=np.complex128).reshape(-1)
        total = lam.size
        if lam.size > max_points:
            lam = lam[rng.choice(lam.size, max_points, replace=False)]
        sides.append((lam, label + (f" ({lam.size} of {total})" if lam.size < total else "")))
    chosen = choose_view(np.concatenate([sides[0][0], sides[1][0]]), view)
    xs, ys, colours, handles = [], [], [], []
    for (lam, label), color in zip(sides, ("C0", "C1")):
        x, y, drawn = view_coordinates(lam, chosen)
        xs.append(x)
        ys.append(y)
        colours.append(np.broadcast_to(mcolors.to_rgba(color, 0.55), (x.size, 4)))
        hidden = int((~drawn).sum())
        handles.append(Line2D([], [], ls="", marker="o", ms=4, color=color,
                              label=label + (f", {hidden} with |λ| ≥ 1 not drawn" if hidden else "")))
    x, y, c = np.concatenate(xs), np.concatenate(ys), np.concatenate(colours)
    order = rng.permutation(x.size)
    # Rasterized like ssmctl.plot.eigenvalues: thousands of vector markers would bloat an SVG or PDF.
    ax.scatter(x[order], y[order], s=5, c=c[order], linewidths=0, rasterized=True)
    setup_view_axes(ax, chosen, x, y)
    for label in (ax.xaxis.label, ax.yaxis.label):
        label.set_fontsize(7)
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    return ax


def histogram_pair(hist_a: Mapping[str, Any], hist_b: Mapping[str, Any], ax: Any, *, title: str = "",
                   labels: tuple[str, str] = ("A", "B"), xlabel: str = "bin") -> Any:
    """Percentages of A and B per bin as side-by-side bars.

    Parameters
    ----------
    hist_a, hist_b : mapping
        Histograms as :func:`~ssmctl.checkpoints.inspect.radius_histogram` or :func:`~ssmctl.checkpoints.inspect.phase_histogram`
        return them (``percent`` and, for A, ``labels`` are read), over the same bins.
    ax : matplotlib Axes
        Axes to draw into.
    title : str, default ""
        Axes title.
    labels : (str, str), default ("A", "B")
        Legend entries of A and B.
    xlabel : str, default "bin"
        Label of the bin axis (what is binned, with its unit).

    Returns
    -------
    matplotlib Axes
        ``ax``.
    """
    x = np.arange(len(hist_a["percent"]))
    ax.bar(x - 0.2, hist_a["percent"], width=0.4, color="C0", label=labels[0])
    ax.bar(x + 0.2, hist_b["percent"], width=0.4, color="C1", label=labels[1])
    ax.set_xticks(x)
    ax.set_xticklabels(hist_a["labels"], rotation=45, ha="right", fontsize=6)
    ax.set_ylabel("% of eigenvalues", fontsize=7)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    return ax


def memory_histogram_pair(lam_a: np.ndarray, lam_b: np.ndarray, ax: Any, *, eps: float = EPS,
                          labels: tuple[str, str] = ("A", "B"), bins: int = 40) -> Any:
    """Histograms of the memory horizons (tokens until |λ|^k = eps) of A and B, log-spaced bins.

    Eigenvalues on or outside the unit circle (infinite memory) are counted in the legend, not drawn.

    Parameters
    ----------
    lam_a, lam_b : array_like, complex, any shape
        Eigenvalues of A and B (flattened).
    ax : matplotlib Axes
        Axes to draw into.
    eps : float, default 1e-2
        Memory-horizon threshold.
    labels : (str, str), default ("A", "B")
        Legend entries of A and B (followed by each side's median horizon).
    bins : int, default 40
        Number of log-spaced bins spanning the finite, positive horizons of both sides.

    Returns
    -------
    matplotlib Axes
        ``ax``.

    Raises
    ------
    SsmctlError
        An ``eps`` outside (0, 1).
    """
    ka = np.asarray(memory_horizon(np.asarray(lam_a).reshape(-1), eps=eps), dtype=np.float64)
    kb = np.asarray(memory_horizon(np.asarray(lam_b).reshape(-1), eps=eps), dtype=np.float64)
    finite = np.concatenate([ka[np.isfinite(ka) & (ka > 0)], kb[np.isfinite(kb) & (kb > 0)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        edges = np.geomspace(lo, hi * 1.0001 if hi > lo else lo * 2, bins + 1)
        for k, color, label in ((ka, "C0", labels[0]), (kb, "C1", labels[1])):
            ok = k[np.isfinite(k) & (k > 0)]
            n_inf = int(np.isinf(k).sum())
            ax.hist(ok, edges, color=color, alpha=0.55,
                    label=f"{label}: median {np.median(k):.3g}" + (f", {n_inf} ∞" if n_inf else ""))
        ax.set_xscale("log")
        readable_log_ticks(ax.xaxis)
        ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel(f"memory horizon (tokens, ε = {eps:g})", fontsize=7)
    ax.set_ylabel("eigenvalues", fontsize=7)
    ax.set_title("memory horizons", fontsize=8)
    ax.legend(fontsize=7)
    return ax


def _phase_is_trivial(*lams: np.ndarray) -> bool:
    """All eigenvalues real and non-negative (Mamba, Mamba-2, RG-LRU, S4D-Real): the phase histogram says
    nothing, the memory horizons say more."""
    return all(np.all(np.abs(np.angle(np.asarray(lam).reshape(-1))) <= np.radians(PHASE_EDGES_DEG[0]))
               for lam in lams)


def plot_compare(report: Mapping[str, Any], eigenvalues: Mapping[str, Any], layers: Any = None) -> Any:
    """One row per layer pair: unit-disk overlay, radius histogram, and the phase histogram (A vs B) — or,
    when every eigenvalue of the pair is real and non-negative, the memory-horizon histograms instead.

    Parameters
    ----------
    report : dict from :func:`ssmctl.checkpoints.inspect.compare_report`
    eigenvalues : ``compare_report(..., eigenvalues=True)["eigenvalues"]``
    layers : sequence of int, optional
        A's layer indices to draw (default: every pair).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    pairs = [p for p in eigenvalues["pairs"] if p[0] in eigenvalues["a"] and p[1] in eigenvalues["b"]]
    if layers is not None:
        wanted = [int(i) for i in layers]
        known = [p[0] for p in pairs]
        missing = [i for i in wanted if i not in known]
        if missing:
            raise SsmctlError(f"layers {missing} are not among the compared layers {known}")
        pairs = [p for p in pairs if p[0] in wanted]
    eps = float(report.get("eps", EPS))
    n = max(1, len(pairs))
    fig, axes = plt.subplots(n, 3, figsize=(11, 3.3 * n), squeeze=False, layout="constrained")
    for row_axes, (ia, ib) in zip(axes, pairs):
        la, lb = eigenvalues["a"][ia], eigenvalues["b"][ib]
        eigenvalue_overlay(la, lb, row_axes[0], labels=("A", "B"))
        row_axes[0].set_title(f"layer {ia}" + (f" / {ib}" if ib != ia else ""), fontsize=8)
        histogram_pair(radius_histogram(la), radius_histogram(lb), row_axes[1],
                       title=f"|λ| (edges {', '.join(f'{e:g}' for e in RADIUS_EDGES)})", xlabel="|λ| bin")
        if _phase_is_trivial(la, lb):
            memory_histogram_pair(la, lb, row_axes[2], eps=eps)
        else:
            histogram_pair(phase_histogram(la), phase_histogram(lb), row_axes[2],
                           title=f"|arg λ| in degrees (edges {', '.join(f'{e:g}' for e in PHASE_EDGES_DEG)})",
                           xlabel="|arg λ| bin (degrees)")
    if not pairs:
        for ax in axes.flat:
            ax.axis("off")
    fig.suptitle(f"A = {report['a']}\nB = {report['b']}", fontsize=8)
    return fig
