"""Figures of ``ssmctl inspect --plot`` and ``ssmctl compare --plot``.

One panel per layer for inspect (the unit-disk eigenvalue plot of :func:`ssmctl.plot.eigenvalues`); one row
per layer pair for compare: overlaid unit-disk plots of A and B, and their radius and phase histograms side
by side in the bins of Task-Level-Insights-from-Eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from . import lti as plot
from ..analysis.spectrum import memory_horizon
from ..errors import SsmctlError
from ..checkpoints.inspect import EPS, PHASE_EDGES_DEG, RADIUS_EDGES, phase_histogram, radius_histogram

__all__ = ["plot_inspect", "plot_compare", "unit_disk_overlay", "histogram_pair", "memory_histogram_pair"]

# A dense plot of many layers stays legible with this many panels per row.
_COLS = 4


def _grid(n: int, cols: int, size: float = 3.2) -> tuple[Any, np.ndarray]:
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    return fig, axes


def plot_inspect(report: Mapping[str, Any], eigenvalues: Mapping[int, np.ndarray]) -> Any:
    """Every layer of an inspect report: its eigenvalues on the unit disk (attention layers: a note).

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
    for ax, row in zip(axes.flat, rows):
        lam = eigenvalues.get(row["index"]) if row["kind"] in ("LTI", "LTV") else None
        if lam is None:
            ax.axis("off")
            what = row.get("name") or f"layer {row['index']}"
            ax.text(0.5, 0.5, f"{what}\n{row['kind']}\n" + "\n".join(row.get("warnings") or [row.get("note", "")]),
                    ha="center", va="center", fontsize=7, wrap=True, transform=ax.transAxes)
            continue
        at = f" at {row['at']}" if row.get("at") else ""
        plot.eigenvalues(lam.reshape(-1), ax=ax, title=f"layer {row['index']} {row['family']}{at}",
                         colorbar=False, inset=True)
        ax.title.set_fontsize(8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{report['path']} — eigenvalues per layer (colour: memory horizon, ε = {report['eps']:g})",
                 fontsize=9)
    fig.tight_layout()
    return fig


def unit_disk_overlay(lam_a: np.ndarray, lam_b: np.ndarray, ax: Any, *, labels: tuple[str, str] = ("A", "B"),
                      max_points: int = 8000) -> Any:
    """A and B eigenvalues on one unit-disk plot (B first, A on top).

    Parameters
    ----------
    lam_a, lam_b : array_like, complex, any shape
        Eigenvalues of A and B (flattened).
    ax : matplotlib Axes
        Axes to draw into.
    labels : (str, str), default ("A", "B")
        Legend entries of A and B.
    max_points : int, default 8000
        Each side larger than this is shown as a fixed random subset of that many points.

    Returns
    -------
    matplotlib Axes
        ``ax``, square, limits at least ±1.05.
    """
    theta = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=0.8)
    rng = np.random.default_rng(0)
    lim = 1.05
    for lam, color, label, z in ((lam_b, "C1", labels[1], 1), (lam_a, "C0", labels[0], 2)):
        lam = np.asarray(lam, dtype=np.complex128).reshape(-1)
        if lam.size > max_points:
            lam = lam[rng.choice(lam.size, max_points, replace=False)]
        if lam.size:
            lim = max(lim, float(np.abs(lam).max()) * 1.05)
        # Rasterized like ssmctl.plot.eigenvalues: thousands of vector markers would bloat an SVG or PDF.
        ax.scatter(lam.real, lam.imag, s=5, alpha=0.6, linewidths=0, color=color, label=label, zorder=z,
                   rasterized=True)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left", markerscale=2)
    return ax


def histogram_pair(hist_a: Mapping[str, Any], hist_b: Mapping[str, Any], ax: Any, *, title: str = "",
                   labels: tuple[str, str] = ("A", "B")) -> Any:
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
    fig, axes = plt.subplots(n, 3, figsize=(11, 3.1 * n), squeeze=False)
    for row_axes, (ia, ib) in zip(axes, pairs):
        la, lb = eigenvalues["a"][ia], eigenvalues["b"][ib]
        unit_disk_overlay(la, lb, row_axes[0], labels=("A", "B"))
        row_axes[0].set_title(f"layer {ia}" + (f" / {ib}" if ib != ia else ""), fontsize=8)
        histogram_pair(radius_histogram(la), radius_histogram(lb), row_axes[1],
                       title=f"|λ| (edges {', '.join(f'{e:g}' for e in RADIUS_EDGES)})")
        if _phase_is_trivial(la, lb):
            memory_histogram_pair(la, lb, row_axes[2], eps=eps)
        else:
            histogram_pair(phase_histogram(la), phase_histogram(lb), row_axes[2],
                           title=f"|arg λ| in degrees (edges {', '.join(f'{e:g}' for e in PHASE_EDGES_DEG)})")
    if not pairs:
        for ax in axes.flat:
            ax.axis("off")
    fig.suptitle(f"A = {report['a']}\nB = {report['b']}", fontsize=8)
    fig.tight_layout()
    return fig
