"""Plots of the DSF view: Φ heatmaps side by side, Λ_i over tokens, the Hankel-rank profile, the Taylor error curve.

Every number drawn comes from :mod:`ssmctl.analysis.dsf` and :mod:`ssmctl.analysis.dsf_measures`
(``attention_map``, ``dsf_eigenvalues``, ``hankel_profile``, ``taylor_error``); these functions only lay them out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..analysis.dsf import Phi, dsf_eigenvalues
from ..analysis.dsf_measures import HankelProfile, TaylorError, attention_map
from ..errors import ShapeError, SsmctlError
from ..models.base import Layer
from ._common import new_axes

__all__ = ["phi_heatmaps", "lambda_traces", "hankel_rank_profile", "taylor_error_curve", "lambda_magnitudes"]

UNIT_LINE_STYLE = {"color": "0.3", "lw": 0.8, "ls": "--"}
# Entries of |Φ| below this fraction of the largest are drawn at it: a log colour scale has no zero.
_LOG_FLOOR = 1e-12


def _named(items: Mapping[str, Any] | Sequence[Any], what: str) -> list[tuple[str, Any]]:
    pairs = list(items.items()) if isinstance(items, Mapping) else [(f"{what} {k}", v) for k, v in enumerate(items)]
    if not pairs:
        raise SsmctlError(f"nothing to plot: give at least one {what}")
    return pairs


def phi_heatmaps(phis: Mapping[str, Phi | np.ndarray] | Sequence[Phi | np.ndarray], *, aggregate: str = "mean",
                 batch: int = 0, axes: Sequence[Any] | None = None, ncols: int | None = None) -> list[Any]:
    """|Φ_ij| of several models on one input, side by side, on one shared log colour scale with a colour bar.

    Parameters
    ----------
    phis : mapping name → Phi or ndarray, or a sequence of them
        Each Φ as :func:`ssmctl.materialize` returns it: per-channel (batch, channels, L, L) or full
        (batch, L, L, p, m); a lazy Phi is read in row blocks. Names title the panels.
    aggregate : {"mean", "sum", "max", "l2"}, default "mean"
        How the channels' |Φ_ij| combine (:func:`ssmctl.attention_map`); the colour bar says which.
    batch : int, default 0
        The batch element drawn.
    axes : sequence of matplotlib Axes, optional
        One per Φ; default a new figure with one row of panels.
    ncols : int, optional
        Panels per row of the new figure (default all in one row); unused panels are hidden.

    Returns
    -------
    list of matplotlib Axes
        One per Φ: image ``images[0]`` holds the drawn map (a masked array: entries above the diagonal, j > i,
        are masked — the causal triangle — and entries below the smallest positive one, or ``1e-12`` × the largest
        if that is higher, are drawn at that floor).
    """
    from matplotlib.colors import LogNorm

    pairs = _named(phis, "Φ")
    maps = []
    for name, phi in pairs:
        m = attention_map(phi, aggregate=aggregate)
        if not 0 <= batch < m.shape[0]:
            raise ShapeError(f"batch = {batch} outside Φ {name!r}'s batch of {m.shape[0]}")
        maps.append(m[batch])
    vmax = max(float(m.max()) for m in maps)
    if not vmax > 0:
        raise SsmctlError("every Φ is zero: nothing to draw on a log colour scale")
    positive = [float(m[m > 0].min()) for m in maps if (m > 0).any()]
    floor = max(min(positive), vmax * _LOG_FLOOR)  # the scale spans what is drawn, at most 12 decades
    norm = LogNorm(vmin=floor, vmax=vmax)
    if axes is None:
        import matplotlib.pyplot as plt

        cols = len(pairs) if ncols is None else max(1, min(int(ncols), len(pairs)))
        nrows = -(-len(pairs) // cols)
        _, grid = plt.subplots(nrows, cols, figsize=(3.4 * cols + 1.0, 3.6 * nrows), layout="constrained",
                               squeeze=False)
        for extra in grid.flat[len(pairs):]:
            extra.set_visible(False)
        axes = list(grid.flat[: len(pairs)])
    if len(axes) != len(pairs):
        raise ShapeError(f"{len(pairs)} Φ's need {len(pairs)} axes, got {len(axes)}")
    image = None
    for ax, (name, _), m in zip(axes, pairs, maps):
        L = m.shape[-1]
        upper = np.triu(np.ones((L, L), dtype=bool), k=1)
        drawn = np.ma.masked_array(np.maximum(m, floor), mask=upper)
        image = ax.imshow(drawn, norm=norm, cmap="viridis", interpolation="nearest", origin="upper")
        ax.set_title(name)
        ax.set_xlabel("input token j")
        ax.set_ylabel("output token i")
    fig = axes[0].figure
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label(f"|Φ_ij| ({aggregate} over channels)")
    return list(axes)


def lambda_magnitudes(layer: Layer, u: Any = None, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """|Λ_i| of one layer per token, every channel and state flattened: what :func:`lambda_traces` draws.

    Parameters
    ----------
    layer : Layer
        Any registered family's layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model), optional
        The layer's input (LTI layers: not needed).
    length : int, optional
        Tokens to draw an LTI layer's constant eigenvalues over (default: u's length).

    Returns
    -------
    (ndarray, ndarray)
        Tokens (T,) and |Λ| (T, K) of batch element 0. Attention starts at token 1 (Λ_0 = 1 by convention).
    """
    lam = np.abs(np.asarray(dsf_eigenvalues(layer, u)))
    if layer.record.kind == "LTI":
        L = length if length is not None else (np.shape(u)[1] if u is not None else None)
        if L is None:
            raise ShapeError(f"{layer.family}: give u or length to draw constant eigenvalues over tokens")
        return np.arange(L), np.broadcast_to(lam.reshape(1, -1), (L, lam.size))
    lam = lam[0].reshape(lam.shape[1], -1)
    start = 1 if layer.record.attention_matrix is not None else 0
    return np.arange(start, lam.shape[0]), lam[start:]


def lambda_traces(layers: Mapping[str, Layer | tuple[Layer, Any]], u: Any = None, *, ax: Any = None) -> Any:
    """Λ_i over tokens for several layers: per layer the median |Λ_i| over channels and states, with the band
    between their min and max, on a log axis with the unit line |Λ| = 1 marked.

    Parameters
    ----------
    layers : mapping name → Layer or (Layer, u)
        Each layer with its own input, or sharing ``u``.
    u : array_like or torch.Tensor, shape (batch, L, d_model), optional
        The input shared by layers given without one.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        ``lines[k]`` is layer k's median (in the mapping's order); the last line is the unit line.
    """
    ax = new_axes(ax, figsize=(6.0, 3.8))
    for name, item in _named(layers, "layer"):
        layer, x = item if isinstance(item, tuple) else (item, u)
        t, lam = lambda_magnitudes(layer, x)
        line, = ax.plot(t, np.median(lam, axis=1), lw=1.2, label=name)
        ax.fill_between(t, lam.min(axis=1), lam.max(axis=1), color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(1.0, **UNIT_LINE_STYLE, label="|Λ| = 1")
    ax.set_yscale("log")
    ax.set_xlabel("token i")
    ax.set_ylabel("|Λ_i|: median, min–max band")
    ax.legend(fontsize="small")
    return ax


def hankel_rank_profile(profiles: HankelProfile | Mapping[str, HankelProfile], *, n_states: int | None = None,
                        ax: Any = None) -> Any:
    """Numerical rank of the Hankel block Φ[t:, :t] against the cut t, with the reference lines N (a
    finite-state layer's bound) and min(t, L − t) (a full-rank block).

    Parameters
    ----------
    profiles : HankelProfile or mapping name → HankelProfile
        From :func:`ssmctl.hankel_profile`; each is drawn as its largest rank over batch and channels at each
        cut (the state the most demanding channel uses).
    n_states : int, optional
        N, drawn as a horizontal line.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        ``lines[k]`` is profile k's rank; then the min(t, L − t) line (of the first profile), then N.
    """
    ax = new_axes(ax, figsize=(5.6, 3.8))
    pairs = [("", profiles)] if isinstance(profiles, HankelProfile) else _named(profiles, "profile")
    for name, prof in pairs:
        rank = np.asarray(prof.rank).reshape(-1, len(prof.cuts)).max(axis=0)
        ax.plot(prof.cuts, rank, marker=".", label=name or "rank")
    first = pairs[0][1]
    ax.plot(first.cuts, first.max_rank, **UNIT_LINE_STYLE, label="min(t, L − t)")
    if n_states is not None:
        ax.axhline(n_states, color="tab:red", lw=0.8, ls=":", label=f"N = {n_states}")
    ax.set_xlabel("cut t")
    ax.set_ylabel(f"rank of Φ[t:, :t] (rtol {first.rtol:g}; max over channels)")
    ax.legend(fontsize="small")
    return ax


def taylor_error_curve(error: TaylorError, *, ax: Any = None) -> Any:
    """Softmax attention's Taylor-feature error against the state size, on log–log axes, each point labelled
    with its order p.

    Parameters
    ----------
    error : TaylorError
        From :func:`ssmctl.taylor_error`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        ``lines[0]``: (state size, relative error) per order.
    """
    ax = new_axes(ax, figsize=(5.0, 3.8))
    size, rel = np.asarray(error.state_size, dtype=float), np.asarray(error.rel_error, dtype=float)
    ax.plot(size, rel, marker="o")
    for p, x, y in zip(np.asarray(error.orders).tolist(), size, rel):
        ax.annotate(f"p={p}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"state size per value channel Σ_(r≤p) m^r (m = {error.head_dim})")
    ax.set_ylabel("‖Φ_p − Φ‖_F / ‖Φ‖_F")
    return ax
