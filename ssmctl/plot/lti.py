"""Plots of systems and layers: one call each, an optional ``ax=``, labels from the systems' metadata.

    import ssmctl.plot
    ssmctl.plot.eigenvalues(model)         # eigenvalues coloured by memory horizon (disk, or the near-1 view)
    ssmctl.plot.impulse(sys, L=256)        # and step(sys, L)
    ssmctl.plot.bode(sys)                  # nyquist(sys), sigma(sys)
    ssmctl.plot.pzmap(sys[0])              # poles, zeros and memory-horizon circles
    ssmctl.plot.hankel(sys)

A batch of systems (a layer's channels) is thinned to at most 8 evenly spaced members; the legend names them
and says how many of how many are drawn. Every number drawn comes from :mod:`ssmctl.analysis`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..analysis.cloud import eigenvalue_cloud
from ..analysis.response import frequency_grid, frequency_response, impulse_response, step_response
from ..analysis.spectrum import eigenvalues as system_eigenvalues
from ..analysis.spectrum import memory_horizon, zeros
from ..errors import SsmctlError
from ..systems.lti import as_system
from ._common import MAX_LINES, batch_names, line_names, new_axes, pick_subset, subset_note, unit_circle
from .views import choose_view, setup_view_axes, view_coordinates

__all__ = ["eigenvalues", "impulse", "step", "bode", "nyquist", "sigma", "pzmap", "hankel", "pseudospectrum",
           "memory_norm", "memory_colour_values", "memory_colorbar"]

# Memory horizons drawn in pzmap, tokens.
_PZ_HORIZONS = (10, 100, 1000, 10000)


def _title(obj: Any, default: str) -> str:
    meta = getattr(obj, "meta", None) or {}
    if "label" in meta:
        return str(meta["label"])
    if hasattr(obj, "family"):
        idx = getattr(obj, "index", None)
        return f"{obj.family}" + (f" layer {idx}" if idx is not None else "")
    return default


def memory_norm(horizons: np.ndarray) -> Any:
    """The log colour scale of memory horizons: from the shortest positive to the longest finite one.

    Parameters
    ----------
    horizons : ndarray, float, any shape
        Memory horizons in tokens (``inf`` and 0 allowed; they do not set the range).

    Returns
    -------
    matplotlib.colors.LogNorm
    """
    import matplotlib.colors as mcolors

    k = np.asarray(horizons, dtype=np.float64).reshape(-1)
    finite = k[np.isfinite(k) & (k > 0)]
    lo = max(float(finite.min()), 1e-3) if finite.size else 1.0
    hi = float(finite.max()) if finite.size else 1.0
    return mcolors.LogNorm(vmin=lo, vmax=max(hi, lo * 1.0001))


def memory_colour_values(horizons: np.ndarray, norm: Any) -> np.ndarray:
    """Horizons as colour values under ``norm``: 0 clipped up to its minimum, ``inf`` (|λ| ≥ 1) above its
    maximum, where the colour map's 'over' colour (red) shows it.

    Parameters
    ----------
    horizons : ndarray, float
        Memory horizons in tokens.
    norm : matplotlib.colors.Normalize
        As :func:`memory_norm` returns.

    Returns
    -------
    ndarray, float, shape of ``horizons``
    """
    k = np.asarray(horizons, dtype=np.float64)
    return np.where(np.isinf(k), norm.vmax * 10.0, np.maximum(k, norm.vmin))


def _memory_cmap() -> Any:
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(over="red")


def memory_colorbar(ax: Any, norm: Any, eps: float, any_infinite: bool, target: Any = None) -> Any:
    """A colour bar of memory horizons beside ``target`` (default ``ax``); red means infinite when any is.

    Parameters
    ----------
    ax : matplotlib Axes
        Any axes of the figure.
    norm : matplotlib.colors.Normalize
        The colour scale the points were drawn with (:func:`memory_norm`).
    eps : float
        The memory-horizon threshold, for the label.
    any_infinite : bool
        Whether some drawn horizon is infinite (red, an arrow past the maximum).
    target : Axes or array of Axes, optional
        The axes the bar steals room from (several: one bar for all of them).

    Returns
    -------
    matplotlib.colorbar.Colorbar
    """
    import matplotlib.cm as cm

    sm = cm.ScalarMappable(norm=norm, cmap=_memory_cmap())
    label = f"memory horizon (tokens until |λ|^k = {eps:g})"
    cb = ax.figure.colorbar(sm, ax=target if target is not None else ax, shrink=0.85,
                            extend="max" if any_infinite else "neither",
                            label=label + ("\nred: |λ| ≥ 1, never forgets" if any_infinite else ""))
    return cb


def eigenvalues(
    obj: Any,
    ax: Any = None,
    *,
    view: str = "auto",
    color_by: str = "memory_horizon",
    eps: float = 1e-2,
    inset: bool = True,
    max_points: int = 20000,
    title: str | None = None,
    colorbar: bool = True,
    norm: Any = None,
) -> Any:
    """Discrete eigenvalues coloured by memory horizon: on the unit disk, or in a near-1 view.

    Parameters
    ----------
    obj : system, layer, model, LTVSystem or array of eigenvalues
        LTV layers are shown as the cloud of Ā_t over a random unit-RMS Gaussian input (see
        :mod:`ssmctl.analysis.cloud`).
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure with constrained layout.
    view : {"auto", "disk", "splane", "margin"}, default "auto"
        ``"disk"``: Re λ against Im λ with the unit circle. ``"splane"``: ln|λ| against arg λ (the
        continuous-time view, s = ln λ per token). ``"margin"``: 1 − |λ| on a log axis against arg λ.
        ``"auto"``: ``"margin"`` when at least half of the eigenvalues lie within 0.01 of the unit circle,
        else ``"disk"`` (:func:`ssmctl.plot.views.choose_view`).
    color_by : {"memory_horizon", "none"}
    eps : float
        Threshold of the memory horizon colour (tokens until |λ|^k = ε).
    inset : bool
        On the disk, add a zoom near z = 1 where eigenvalues of long-memory models crowd.
    max_points : int
        Plot a fixed random subset when the cloud is larger (the axes say so; statistics are not affected).
    title : str, optional
        Axes title; default the system's label or the layer's family and index.
    colorbar : bool, default True
        Add a colour bar of the memory horizon (with ``color_by="memory_horizon"``).
    norm : matplotlib.colors.Normalize, optional
        Colour scale of the memory horizon, to share one colour bar between panels (:func:`memory_norm`).

    Returns
    -------
    matplotlib Axes
        The eigenvalues are the first collection (``ax.collections[0]``), in the view's coordinates.

    Raises
    ------
    SsmctlError
        An unknown ``color_by`` or ``view``, or an ``eps`` outside (0, 1).
    ShapeError
        An ``obj`` that holds no eigenvalues.
    """
    if color_by not in ("memory_horizon", "none"):
        raise SsmctlError(f"unknown color_by {color_by!r}; known: memory_horizon, none")
    lam = eigenvalue_cloud(obj)
    n_all = lam.size
    if lam.size > max_points:
        lam = lam[np.random.default_rng(0).choice(lam.size, max_points, replace=False)]
    chosen = choose_view(lam, view)
    if color_by == "memory_horizon":
        k_all = memory_horizon(lam, eps=eps)  # checks eps before anything is drawn
    ax = new_axes(ax)
    x, y, drawn = view_coordinates(lam, chosen)
    # Rasterize the points (not the axes or text): a vector file of 10^5 markers is tens of megabytes.
    scatter_kw: dict[str, Any] = dict(s=6, alpha=0.8, linewidths=0, rasterized=True)
    norm_used = None
    if color_by == "memory_horizon":
        k = k_all[drawn]
        norm_used = norm if norm is not None else memory_norm(k_all)
        ax.scatter(x, y, c=memory_colour_values(k, norm_used), cmap=_memory_cmap(), norm=norm_used, **scatter_kw)
        if colorbar and lam.size:
            memory_colorbar(ax, norm_used, eps, bool(np.isinf(k).any()))
    else:
        ax.scatter(x, y, color="C0", **scatter_kw)
    setup_view_axes(ax, chosen, x, y)
    ax.set_title(title if title is not None else _title(obj, "eigenvalues"))
    notes = []
    if n_all > lam.size:
        notes.append(f"{lam.size} of {n_all} eigenvalues (random subset)")
    if not drawn.all():
        notes.append(f"{int((~drawn).sum())} with " + ("|λ| ≥ 1" if chosen == "margin" else "λ = 0") + " not drawn")
    if chosen != "disk" and view == "auto":
        notes.append("near-1 view: most |λ| within 0.01 of 1")
    if notes:
        ax.text(0.99, 0.01, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=6,
                color="0.25")
    if inset and chosen == "disk" and lam.size:
        _disk_inset(ax, lam, norm_used, eps, scatter_kw)
    return ax


def _disk_inset(ax: Any, lam: np.ndarray, norm: Any, eps: float, scatter_kw: dict[str, Any]) -> None:
    near = lam[np.abs(lam - 1) < 0.2]
    if near.size < 5:
        return
    # Zoom on the crowd near z = 1: wide enough for half of the nearby eigenvalues (twice their median
    # distance to 1), so long-memory modes separate from the unit circle.
    span = float(np.clip(2.0 * np.median(np.abs(near - 1)), 2e-3, 0.2))
    ins = ax.inset_axes([0.03, 0.64, 0.33, 0.33])
    unit_circle(ins)
    kw = dict(scatter_kw, s=4)
    if norm is not None:
        kn = memory_horizon(near, eps=eps)
        ins.scatter(near.real, near.imag, c=memory_colour_values(kn, norm), cmap=_memory_cmap(), norm=norm, **kw)
    else:
        ins.scatter(near.real, near.imag, color="C0", **kw)
    ins.set_xlim(1 - span, 1 + span * 0.25)
    ins.set_ylim(-span * 0.625, span * 0.625)
    ins.set_xticks([1 - span * 0.8, 1.0])
    ins.set_yticks([-span * 0.5, 0.0, span * 0.5])
    ins.tick_params(labelsize=5, length=2, pad=1)
    ins.xaxis.set_major_formatter(lambda v, _: f"{v:.4g}")
    ins.yaxis.set_major_formatter(lambda v, _: f"{v:.2g}")
    ins.set_title("zoom near z = 1", fontsize=6, pad=2)


def _lines(arr: np.ndarray, batch_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str], str | None]:
    """(..., X, p, m) → the readable subset of its lines (k, X), their names and the subset note."""
    X, p, m = arr.shape[len(batch_shape):]
    lines = arr.reshape((-1, X, p * m)).transpose(0, 2, 1).reshape(-1, X)
    names = line_names(batch_shape, p, m)
    keep = pick_subset(len(lines))
    what = "channels" if batch_shape and p * m == 1 else ("input–output pairs" if not batch_shape else "lines")
    return lines[keep], [names[i] for i in keep], subset_note(keep.size, len(lines), what)


def _legend(ax: Any, names: list[str], note: str | None, **kw: Any) -> None:
    if any(names) or note:
        ax.legend(fontsize=7, title=note, title_fontsize=7, **kw)


def _time_plot(sys: Any, values: np.ndarray, ax: Any, ylabel: str, title: str) -> Any:
    L = values.shape[len(sys.batch_shape)]
    lines, names, note = _lines(values, sys.batch_shape)
    k = np.arange(L)
    for i, (line, name) in enumerate(zip(lines, names)):
        ax.plot(k, line.real, lw=1, label=name or None, color=f"C{i % 10}")
        if not sys.is_real:
            ax.plot(k, line.imag, lw=1, ls="--", color=f"C{i % 10}")
    ax.set_xlabel("lag k (tokens)")
    ax.set_ylabel(ylabel + ("  (Re solid, Im dashed)" if not sys.is_real else ""))
    ax.set_title(title)
    _legend(ax, names, note)
    return ax


def impulse(sys: Any, L: int = 256, ax: Any = None, *, title: str | None = None) -> Any:
    """Impulse response K_k (the convolution kernel, plus D at k = 0) of a system or a batch of them.

    Complex systems show Re (solid) and Im (dashed). A batch is thinned to 8 evenly spaced members (the
    legend says which).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    L : int, default 256
        Number of lags.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes
        One line per drawn (channel, output, input), in C order of the batch (Re part first).

    Raises
    ------
    SsmctlError
        When ``L`` is not a positive integer.
    """
    sys = as_system(sys)
    K = impulse_response(sys, L)
    return _time_plot(sys, K, new_axes(ax), "K_k  (output per unit impulse)",
                      title if title is not None else _title(sys, "impulse response"))


def step(sys: Any, L: int = 256, ax: Any = None, *, title: str | None = None) -> Any:
    """Step response S_k = Σ_{j≤k} K_j of a system or a batch of them (unit step from token 0).

    Complex systems show Re (solid) and Im (dashed). A batch is thinned to 8 evenly spaced members (the
    legend says which); the DC gain is the limit S_∞.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    L : int, default 256
        Number of steps.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
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
    S = step_response(sys, L)
    return _time_plot(sys, S, new_axes(ax), "S_k  (output per unit step)",
                      title if title is not None else _title(sys, "step response"))


def _default_omega(sys: Any, omega: Sequence[float] | None) -> np.ndarray:
    if omega is None:
        return np.logspace(-4, np.log10(np.pi), 512) if sys.is_real else frequency_grid(sys, 1024)
    return np.asarray(omega, dtype=float)


def bode(sys: Any, omega: Sequence[float] | None = None, axes: Any = None, *, title: str | None = None) -> Any:
    """Bode plot: |G(e^{iω})| in dB and phase in degrees over ω in rad/sample (one sample = one token).

    Real systems use a log frequency axis on (0, π]; complex systems a linear one over [−π, π), since they
    have no conjugate symmetry. A batch (a layer's channels) is thinned to 8 evenly spaced members, named in
    the legend. Returns the two axes (magnitude, phase).

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
    omega = _default_omega(sys, omega)
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(6, 5), sharex=True, layout="constrained")
    ax_mag, ax_ph = axes
    lines, names, note = _lines(frequency_response(sys, omega), sys.batch_shape)
    for i, (line, name) in enumerate(zip(lines, names)):
        with np.errstate(divide="ignore"):
            ax_mag.plot(omega, 20 * np.log10(np.abs(line)), lw=1, label=name or None, color=f"C{i % 10}")
        ax_ph.plot(omega, np.degrees(np.unwrap(np.angle(line))), lw=1, color=f"C{i % 10}")
    if sys.is_real:
        ax_mag.set_xscale("log")
    ax_mag.set_ylabel(r"$|G(e^{i\omega})|$  (dB)")
    ax_ph.set_ylabel("phase  (deg)")
    ax_ph.set_xlabel("ω  (rad/sample)")
    ax_mag.set_title(title if title is not None else _title(sys, "Bode"))
    _legend(ax_mag, names, note)
    return ax_mag, ax_ph


def _nyquist_grid(sys: Any, n: int = 2048) -> np.ndarray:
    """0 and log-spaced ω up to π, starting well below the slowest mode's bandwidth (1 − |λ| rad/sample)."""
    margin = float(np.min(1.0 - np.abs(system_eigenvalues(sys)))) if sys.n_states else 1.0
    lo = float(np.clip(0.1 * margin, 1e-7, 1e-2)) if margin > 0 else 1e-5
    pos = np.concatenate([[0.0], np.geomspace(lo, np.pi, n)])
    return pos if sys.is_real else np.concatenate([-pos[:0:-1], pos])


def nyquist(sys: Any, omega: Sequence[float] | None = None, ax: Any = None, *, title: str | None = None) -> Any:
    """Nyquist plot: G(e^{iω}) on the complex plane as ω runs over the frequencies, with the point −1.

    Real systems: ω over [0, π] solid and its mirror image (ω < 0, the complex conjugate) dotted, so the
    curve closes; a dot marks ω = 0 (the DC gain). Complex systems: ω over [−π, π). A batch is thinned to 8
    evenly spaced members, named in the legend.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    omega : sequence of float, shape (F,), optional
        Frequencies in rad/sample; default 0 and 2048 log-spaced frequencies from a tenth of the slowest mode's
        distance to the unit circle up to π (mirrored for complex systems), so the fast turns of G near the
        lightly damped modes of long-memory layers are resolved.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes
        One solid line per drawn (channel, output, input) (``ax.lines[2 * i]`` for real systems, each followed
        by its mirror).
    """
    sys = as_system(sys)
    omega = _nyquist_grid(sys) if omega is None else np.asarray(omega, dtype=float)
    ax = new_axes(ax, figsize=(5.0, 4.6))
    lines, names, note = _lines(frequency_response(sys, omega), sys.batch_shape)
    for i, (line, name) in enumerate(zip(lines, names)):
        color = f"C{i % 10}"
        ax.plot(line.real, line.imag, lw=1, color=color, label=name or None)
        if sys.is_real:
            ax.plot(line.real, -line.imag, lw=0.8, ls=":", color=color)
            at0 = np.flatnonzero(omega == 0)
            if at0.size:
                ax.plot(line.real[at0[0]], line.imag[at0[0]], "o", ms=3, color=color)
    ax.plot([-1], [0], "+", color="red", ms=10, mew=1.5, label="−1")
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    ax.axvline(0, color="0.85", lw=0.5, zorder=0)
    ax.set_xlabel(r"Re $G(e^{i\omega})$  (output per unit input)")
    ax.set_ylabel(r"Im $G(e^{i\omega})$  (output per unit input)")
    ax.set_title(title if title is not None else _title(sys, "Nyquist"))
    _legend(ax, names + ["−1"], note)
    if sys.is_real:
        ax.text(0.01, 0.01, "solid: ω ∈ [0, π], dotted: ω < 0, dot: ω = 0", transform=ax.transAxes, fontsize=6,
                color="0.25")
    return ax


def sigma(sys: Any, omega: Sequence[float] | None = None, ax: Any = None, *, title: str | None = None) -> Any:
    """Singular values of G(e^{iω}) over frequency, in dB: the MIMO generalization of the Bode magnitude.

    The largest singular value peaks at the H∞ norm. Real systems use a log frequency axis on (0, π]; complex
    ones a linear one over [−π, π). A batch is thinned to 8 evenly spaced members; each draws its min(p, m)
    singular values in one colour (σ₁ solid, the rest dashed).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    omega : sequence of float, shape (F,), optional
        Frequencies in rad/sample; default as in :func:`bode`.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes
        Lines in order: for each drawn batch member, σ₁ … σ_min(p,m).
    """
    sys = as_system(sys)
    omega = _default_omega(sys, omega)
    ax = new_axes(ax, figsize=(6.0, 4.0))
    G = frequency_response(sys, omega)
    sv = np.linalg.svd(G, compute_uv=False)  # (..., F, min(p, m)), descending
    sv = sv.reshape((-1,) + sv.shape[-2:])
    names = batch_names(sys.batch_shape)
    keep = pick_subset(sv.shape[0])
    for c, b in enumerate(keep):
        for j in range(sv.shape[-1]):
            with np.errstate(divide="ignore"):
                db = 20 * np.log10(sv[b, :, j])
            label = " ".join(s for s in (names[b], f"σ{j + 1}" if sv.shape[-1] > 1 else "") if s)
            ax.plot(omega, db, lw=1, ls="-" if j == 0 else "--", color=f"C{c % 10}", label=label or None)
    if sys.is_real:
        ax.set_xscale("log")
    ax.set_xlabel("ω  (rad/sample)")
    ax.set_ylabel(r"singular values of $G(e^{i\omega})$  (dB)")
    ax.set_title(title if title is not None else _title(sys, "singular values"))
    note = subset_note(keep.size, sv.shape[0], "channels")
    _legend(ax, [line.get_label() for line in ax.lines if not line.get_label().startswith("_")], note)
    return ax


def pzmap(sys: Any, ax: Any = None, *, eps: float = 1e-2, title: str | None = None) -> Any:
    """Pole-zero map on the unit disk, with circles of constant memory horizon.

    Poles (×) are the discrete eigenvalues; zeros (○) the transmission zeros of :func:`ssmctl.zeros` (square
    systems only; a non-square system shows its poles and says so). Dashed circles |z| = ε^{1/k} mark memory
    horizons k of 10, 100, 1000 and 10000 tokens: a pole outside the k circle remembers longer than k tokens.
    A batch is thinned to 8 evenly spaced members, one colour each, named in the legend.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
    eps : float, default 1e-2
        Threshold of the memory-horizon circles (tokens until |λ|^k = ε).
    title : str, optional
        Axes title; default the system's label.

    Returns
    -------
    matplotlib Axes
        For each drawn member its poles, then (square systems) its zeros, as ``ax.collections`` in that order.

    Raises
    ------
    SsmctlError
        An ``eps`` outside (0, 1).
    """
    if not 0.0 < eps < 1.0:
        raise SsmctlError(f"eps must lie in (0, 1), got {eps}")
    sys = as_system(sys)
    ax = new_axes(ax, figsize=(5.0, 5.0))
    poles = system_eigenvalues(sys)
    poles = poles.reshape((-1, poles.shape[-1]))
    square = sys.n_inputs == sys.n_outputs
    zs = zeros(sys) if square else None
    if zs is not None:
        zs = zs.reshape((-1, zs.shape[-1]))
    names = batch_names(sys.batch_shape)
    keep = pick_subset(poles.shape[0])
    lim = 1.05
    for c, b in enumerate(keep):
        color = f"C{c % 10}"
        ax.scatter(poles[b].real, poles[b].imag, marker="x", s=18, linewidths=0.8, color=color,
                   label=" ".join(s for s in (names[b], "poles") if s))
        lim = max(lim, float(np.abs(poles[b]).max()) * 1.05 if poles[b].size else lim)
        if zs is not None:
            z = zs[b][np.isfinite(zs[b])]
            ax.scatter(z.real, z.imag, marker="o", s=18, facecolors="none", edgecolors=color, linewidths=0.8,
                       label=" ".join(s for s in (names[b], "zeros") if s))
            if z.size:
                lim = max(lim, min(float(np.abs(z).max()) * 1.05, 3.0))
    unit_circle(ax)
    _pz_inset(ax, poles[keep], None if zs is None else zs[keep])
    theta = np.linspace(0, 2 * np.pi, 200)
    for k in _PZ_HORIZONS:
        r = eps ** (1.0 / k)
        ax.plot(r * np.cos(theta), r * np.sin(theta), color="0.6", lw=0.6, ls="--")
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    ax.axvline(0, color="0.85", lw=0.5, zorder=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title(title if title is not None else _title(sys, "poles and zeros"))
    note = subset_note(keep.size, poles.shape[0], "channels")
    horizons = ", ".join(str(k) for k in _PZ_HORIZONS)
    extra = f"dashed circles, inside out: memory horizon k = {horizons} tokens\n(|z| = {eps:g}^(1/k))"
    if not square:
        extra += f"; no zeros: p={sys.n_outputs} ≠ m={sys.n_inputs}"
    ax.text(0.01, 0.01, extra, transform=ax.transAxes, fontsize=6, color="0.25")
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) > 2 or note:
        ax.legend(fontsize=6, title=note, title_fontsize=6, loc="upper left", ncols=2 if len(labels) > 8 else 1)
    else:
        ax.legend(fontsize=7, loc="upper left")
    return ax


def _pz_inset(ax: Any, poles: np.ndarray, zs: np.ndarray | None) -> None:
    """A zoom near z = 1 when at least half of the drawn poles lie within 0.05 of it (long-memory layers)."""
    p = poles.reshape(-1)
    near = np.abs(p - 1) < 0.05
    if p.size < 4 or near.mean() < 0.5:
        return
    span = float(np.clip(1.5 * np.abs(p[near] - 1).max(), 1e-4, 0.05))
    ins = ax.inset_axes([0.6, 0.6, 0.38, 0.38])
    unit_circle(ins)
    for c, row in enumerate(poles):
        ins.scatter(row.real, row.imag, marker="x", s=12, linewidths=0.7, color=f"C{c % 10}")
        if zs is not None:
            z = zs[c][np.isfinite(zs[c])]
            ins.scatter(z.real, z.imag, marker="o", s=12, facecolors="none", edgecolors=f"C{c % 10}", linewidths=0.7)
    ins.set_xlim(1 - span, 1 + span * 0.3)
    ins.set_ylim(-span * 0.65, span * 0.65)
    ins.tick_params(labelsize=5, length=2, pad=1)
    ins.xaxis.set_major_formatter(lambda v, _: f"{v:.4g}")
    ins.set_title("zoom near z = 1", fontsize=6, pad=2)


def hankel(sys: Any, ax: Any = None, *, title: str | None = None, normalize: bool = True) -> Any:
    """Hankel singular values (descending, log scale): how many states the system really uses.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        A stable system; a batch is thinned to 8 evenly spaced members, named in the legend.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
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
    ax = new_axes(ax)
    hsv = np.asarray(norms.hankel_singular_values(sys))
    hsv = hsv.reshape(-1, hsv.shape[-1])
    names = batch_names(sys.batch_shape)
    keep = pick_subset(hsv.shape[0])
    for c, b in enumerate(keep):
        row = hsv[b]
        vals = row / row[0] if normalize and row[0] > 0 else row
        ax.semilogy(np.arange(1, row.size + 1), vals, ".-", lw=0.8, ms=3, color=f"C{c % 10}", label=names[b] or None)
    ax.set_xlabel("index i  (states, by decreasing σ_i)")
    ax.set_ylabel("Hankel singular value σ_i / σ_1" if normalize else "Hankel singular value σ_i")
    ax.set_title(title if title is not None else _title(sys, "Hankel singular values"))
    _legend(ax, [names[b] for b in keep], subset_note(keep.size, hsv.shape[0], "channels"))
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
    eigenvalues do. The contour colours are the ε of the colour bar.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        One system (no batch dims); diagonal systems are made dense first.
    ax : matplotlib Axes, optional
        Axes to draw into; default a new figure.
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
        The eigenvalues are the last collection.

    Raises
    ------
    SsmctlError
        When the system has batch dims.
    """
    from ..analysis.pseudospectra import pseudospectrum as sigma_min_grid

    sys = as_system(sys).to_dense()
    if sys.batch_shape:
        raise SsmctlError("pseudospectrum plots one system: index it first (sys[i])")
    ax = new_axes(ax, figsize=(5.6, 4.6))
    lam = system_eigenvalues(sys)  # exact where the system carries them; LAPACK's otherwise (with a warning)
    if extent is None:
        r = max(1.1, float(np.abs(lam).max()) * 1.1)
        extent = (-r, r, -r, r)
    re = np.linspace(extent[0], extent[1], resolution)
    im = np.linspace(extent[2], extent[3], resolution)
    smin = sigma_min_grid(sys, re, im)
    log_levels = np.log10(np.sort(np.asarray(levels, dtype=float)))
    cs = ax.contour(re, im, np.log10(smin), levels=log_levels, cmap="magma_r")
    cb = ax.figure.colorbar(cs, ax=ax, shrink=0.85, label="ε of the contour  (σ_min(zI − Ā) = ε)")
    cb.set_ticks(log_levels, labels=[f"{10 ** v:.0e}" for v in log_levels])
    unit_circle(ax)
    ax.scatter(lam.real, lam.imag, s=6, color="k", label="eigenvalues of Ā")
    ax.set_aspect("equal")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title if title is not None else _title(sys, "ε-pseudospectra"))
    return ax
