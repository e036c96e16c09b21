"""Plots: one call each, an optional ``ax=``, labels from the systems' metadata.

    import ssmctl.plot
    ssmctl.plot.eigenvalues(model)         # unit-disk eigenvalue cloud coloured by memory horizon
    ssmctl.plot.impulse(sys, L=256)
    ssmctl.plot.bode(sys)
    ssmctl.plot.hankel(sys)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..analysis.cloud import eigenvalue_cloud
from ..analysis.response import frequency_grid, frequency_response, impulse_response
from ..analysis.spectrum import memory_horizon
from ..errors import SsmctlError
from ..systems.lti import as_system

__all__ = ["eigenvalues", "impulse", "bode", "hankel", "pseudospectrum"]

# More lines than this make an unreadable plot; the rest are dropped with a note in the legend.
_MAX_LINES = 16


def _axes(ax: Any = None, **subplot_kw: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(5, 5), **subplot_kw)
    return ax


def _title(obj: Any, default: str) -> str:
    meta = getattr(obj, "meta", None) or {}
    if "label" in meta:
        return str(meta["label"])
    if hasattr(obj, "family"):
        idx = getattr(obj, "index", None)
        return f"{obj.family}" + (f" layer {idx}" if idx is not None else "")
    return default


def _flat_lines(arr: np.ndarray, lead: int) -> tuple[np.ndarray, list[str]]:
    """Flatten (..., L, p, m) into lines (n_lines, L) with labels like 'b=(0,) y1←u0'."""
    batch = arr.shape[:lead]
    L, p, m = arr.shape[lead:]
    lines = arr.reshape((-1, L, p * m)).transpose(0, 2, 1).reshape(-1, L)
    labels = []
    for b in np.ndindex(*batch) if batch else [()]:
        for i in range(p):
            for j in range(m):
                labels.append((f"{b} " if b else "") + (f"y{i}←u{j}" if p * m > 1 else ""))
    return lines, labels


def eigenvalues(
    obj: Any,
    ax: Any = None,
    *,
    color_by: str = "memory_horizon",
    eps: float = 1e-2,
    inset: bool = True,
    max_points: int = 20000,
    title: str | None = None,
    colorbar: bool = True,
) -> Any:
    """Discrete eigenvalues on the complex plane with the unit circle, coloured by memory horizon.

    Parameters
    ----------
    obj : system, layer, model, LTVSystem or array of eigenvalues
        LTV layers are shown as the cloud of Ā_t over a random unit-RMS Gaussian input (see
        :mod:`ssmctl.analysis.cloud`).
    ax : matplotlib Axes, optional
    color_by : {"memory_horizon", "none"}
    eps : float
        Threshold of the memory horizon colour (tokens until |λ|^k = ε).
    inset : bool
        Add a zoom near z = 1 where eigenvalues of long-memory models crowd.
    max_points : int
        Plot a fixed random subset when the cloud is larger (statistics are not affected).
    title : str, optional
        Axes title; default the system's label or the layer's family and index.
    colorbar : bool, default True
        Add a colour bar of the memory horizon (with ``color_by="memory_horizon"``).

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    SsmctlError
        An unknown ``color_by``, or an ``eps`` outside (0, 1).
    ShapeError
        An ``obj`` that holds no eigenvalues.
    """
    import matplotlib.colors as mcolors

    ax = _axes(ax)
    lam = eigenvalue_cloud(obj)
    if lam.size > max_points:
        lam = lam[np.random.default_rng(0).choice(lam.size, max_points, replace=False)]
    theta = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=0.8)
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    ax.axvline(0, color="0.85", lw=0.5, zorder=0)
    # Rasterize the points (not the axes or text): a vector file of 10^5 markers is tens of megabytes.
    scatter_kw: dict[str, Any] = dict(s=6, alpha=0.8, linewidths=0, rasterized=True)
    if color_by == "memory_horizon" and lam.size:
        k = memory_horizon(lam, eps=eps)
        finite = k[np.isfinite(k) & (k > 0)]
        hi = finite.max() if finite.size else 1.0
        k = np.clip(np.where(np.isfinite(k), k, hi), max(finite.min() if finite.size else 1e-3, 1e-3), hi)
        norm = mcolors.LogNorm(vmin=k.min(), vmax=max(k.max(), k.min() * 1.0001))
        sc = ax.scatter(lam.real, lam.imag, c=k, cmap="viridis", norm=norm, **scatter_kw)
        if colorbar:
            ax.figure.colorbar(sc, ax=ax, shrink=0.75, label=f"memory horizon (tokens, ε={eps:g})")
    elif color_by in ("memory_horizon", "none"):
        sc = ax.scatter(lam.real, lam.imag, color="C0", **scatter_kw)
    else:
        raise SsmctlError(f"unknown color_by {color_by!r}; known: memory_horizon, none")
    lim = max(1.05, float(np.abs(lam).max()) * 1.05 if lam.size else 1.05)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(title if title is not None else _title(obj, "eigenvalues"))
    if inset and lam.size:
        near = lam[np.abs(lam - 1) < 0.2]
        if near.size >= 5:
            # Zoom on the crowd near z = 1: wide enough for half of the nearby eigenvalues (twice their median
            # distance to 1), so long-memory modes separate from the unit circle.
            span = float(np.clip(2.0 * np.median(np.abs(near - 1)), 2e-3, 0.2))
            ins = ax.inset_axes([0.03, 0.64, 0.33, 0.33])
            ins.plot(np.cos(theta), np.sin(theta), color="0.3", lw=0.8)
            kw = dict(scatter_kw, s=4)
            if color_by == "memory_horizon":
                kn = memory_horizon(near, eps=eps)
                kn = np.clip(np.where(np.isfinite(kn), kn, norm.vmax), norm.vmin, norm.vmax)
                ins.scatter(near.real, near.imag, c=kn, cmap="viridis", norm=norm, **kw)
            else:
                ins.scatter(near.real, near.imag, color="C0", **kw)
            ins.set_xlim(1 - span, 1 + span * 0.25)
            ins.set_ylim(-span * 0.625, span * 0.625)
            ins.set_xticks([])
            ins.set_yticks([])
            ins.text(0.03, 0.03, f"zoom near 1\n(width {span:.2g})", transform=ins.transAxes, fontsize=6, va="bottom")
    return ax


def impulse(sys: Any, L: int = 256, ax: Any = None, *, title: str | None = None) -> Any:
    """Impulse response K_k (kernel plus D at k = 0) of every channel and input-output pair.

    Complex systems show Re (solid) and Im (dashed). At most 16 lines are drawn.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    L : int, default 256
        Number of lags.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 5 inch figure.
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    SsmctlError
        When ``L`` is not a positive integer.
    """
    sys = as_system(sys)
    ax = _axes(ax)
    K = impulse_response(sys, L)
    lines, labels = _flat_lines(K, len(sys.batch_shape))
    k = np.arange(L)
    for i, (line, label) in enumerate(zip(lines[:_MAX_LINES], labels)):
        ax.plot(k, line.real, lw=1, label=label or None, color=f"C{i % 10}")
        if not sys.is_real:
            ax.plot(k, line.imag, lw=1, ls="--", color=f"C{i % 10}")
    if len(lines) > _MAX_LINES:
        ax.text(0.99, 0.99, f"first {_MAX_LINES} of {len(lines)} shown", transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.set_xlabel("lag k (tokens)")
    ax.set_ylabel("K_k")
    ax.set_title(title if title is not None else _title(sys, "impulse response"))
    if 1 < min(len(lines), _MAX_LINES) <= 8:
        ax.legend(fontsize=7)
    return ax


def bode(sys: Any, omega: Sequence[float] | None = None, axes: Any = None, *, title: str | None = None) -> Any:
    """Bode plot: |G(e^{iω})| in dB and phase in degrees over ω in rad/sample.

    Real systems use a log frequency axis on (0, π]; complex systems a linear one over [−π, π), since they
    have no conjugate symmetry. Returns the two axes (magnitude, phase).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    omega : sequence of float, shape (F,), optional
        Frequencies in rad/sample; default 512 log-spaced points in [1e-4, π] for real systems,
        :func:`~ssmctl.analysis.response.frequency_grid` with 1024 points for complex ones.
    axes : pair of matplotlib Axes, optional
        (magnitude, phase) axes to draw into; default a new figure with two rows.
    title : str, optional
        Title of the magnitude axes; default the system's label.

    Returns
    -------
    ax_mag, ax_phase : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    sys = as_system(sys)
    if omega is None:
        omega = np.logspace(-4, np.log10(np.pi), 512) if sys.is_real else frequency_grid(sys, 1024)
    omega = np.asarray(omega, dtype=float)
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    ax_mag, ax_ph = axes
    G = frequency_response(sys, omega)
    lines, labels = _flat_lines(G, len(sys.batch_shape))
    for i, (line, label) in enumerate(zip(lines[:_MAX_LINES], labels)):
        with np.errstate(divide="ignore"):
            ax_mag.plot(omega, 20 * np.log10(np.abs(line)), lw=1, label=label or None, color=f"C{i % 10}")
        ax_ph.plot(omega, np.degrees(np.unwrap(np.angle(line))), lw=1, color=f"C{i % 10}")
    if sys.is_real:
        ax_mag.set_xscale("log")
    ax_mag.set_ylabel("|G| (dB)")
    ax_ph.set_ylabel("phase (deg)")
    ax_ph.set_xlabel("ω (rad/sample)")
    ax_mag.set_title(title if title is not None else _title(sys, "Bode"))
    if 1 < min(len(lines), _MAX_LINES) <= 8:
        ax_mag.legend(fontsize=7)
    return ax_mag, ax_ph


def hankel(sys: Any, ax: Any = None, *, title: str | None = None, normalize: bool = True) -> Any:
    """Hankel singular values (descending, log scale): how many states the system really uses.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        A stable system; one line per batch element (at most 16).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 5 inch figure.
    title : str, optional
        Axes title; default the system's label.
    normalize : bool, default True
        Plot σ_i / σ_1 instead of σ_i.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    UnstableSystemError
        When any mode has |λ| ≥ 1.
    """
    from ..analysis import norms

    sys = as_system(sys)
    ax = _axes(ax)
    hsv = np.asarray(norms.hankel_singular_values(sys))
    hsv = hsv.reshape(-1, hsv.shape[-1])
    for i, row in enumerate(hsv[:_MAX_LINES]):
        vals = row / row[0] if normalize and row[0] > 0 else row
        ax.semilogy(np.arange(1, row.size + 1), vals, ".-", lw=0.8, ms=3, color=f"C{i % 10}")
    ax.set_xlabel("index")
    ax.set_ylabel("σ_i / σ_1" if normalize else "σ_i")
    ax.set_title(title if title is not None else _title(sys, "Hankel singular values"))
    return ax


def pseudospectrum(
    sys: Any,
    ax: Any = None,
    *,
    levels: Sequence[float] = (1e-3, 1e-2, 1e-1),
    resolution: int = 200,
    extent: tuple[float, float, float, float] | None = None,
    title: str | None = None,
) -> Any:
    """ε-pseudospectra contours {z : σ_min(zI − Ā) ≤ ε} of a dense system, with its eigenvalues.

    For strongly non-normal matrices (S4's DPLR form) these say more about transient growth than the
    eigenvalues do.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        One system (no batch dims); diagonal systems are made dense first.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new 5 × 5 inch figure.
    levels : sequence of float, default (1e-3, 1e-2, 1e-1)
        The ε of the contours.
    resolution : int, default 200
        Grid points per axis.
    extent : (float, float, float, float), optional
        (Re min, Re max, Im min, Im max) of the grid; default a square of half-width max(1.1, 1.1·ρ(Ā)).
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    SsmctlError
        When the system has batch dims.
    """
    from ..analysis.pseudospectra import pseudospectrum as sigma_min_grid
    from ..analysis.spectrum import eigenvalues as eigenvalue_path

    sys = as_system(sys).to_dense()
    if sys.batch_shape:
        raise SsmctlError("pseudospectrum plots one system: index it first (sys[i])")
    ax = _axes(ax)
    lam = eigenvalue_path(sys)  # exact where the system carries them; LAPACK's otherwise (with a warning)
    if extent is None:
        r = max(1.1, float(np.abs(lam).max()) * 1.1)
        extent = (-r, r, -r, r)
    re = np.linspace(extent[0], extent[1], resolution)
    im = np.linspace(extent[2], extent[3], resolution)
    smin = sigma_min_grid(sys, re, im)
    cs = ax.contour(re, im, np.log10(smin), levels=np.log10(np.sort(np.asarray(levels))), cmap="magma_r")
    ax.clabel(cs, fmt=lambda v: f"ε=1e{v:.0f}", fontsize=7)
    theta = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=0.8)
    ax.scatter(lam.real, lam.imag, s=6, color="k")
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title(title if title is not None else _title(sys, "ε-pseudospectra"))
    return ax
