"""Per-channel tables of a layer or system: the numbers ``ssmctl analyze`` prints and the rich display shows.

One code path: :func:`channel_table` calls the analysis functions (:mod:`.spectrum`, :mod:`.norms`,
:mod:`.response`) on a system flattened to one batch axis (its channels), and everything that shows these
numbers — ``ssmctl analyze``, ``_repr_html_``, ``to_frame()`` — reads them from here.

The systems and models layers cannot import this module (docs/design.md); they display through the
describers this module registers with :mod:`ssmctl.systems._display` on import (``ssmctl/__init__.py``
imports it, so the registration is in place whenever a system exists).

LTV layers are analysed at their input-free operating point: the frozen-time system of the layer fed zeros
(``layer.frozen(0, t)``). There Δ is the step size the biases alone give (Mamba: softplus of dt_proj applied to
x_proj(silu(conv bias)) plus the dt bias; equal to softplus(dt bias) when the conv bias is zero) and B̄, C come
from the conv bias; with a zero conv bias B̄ = C = 0 and only the skip D remains.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..errors import SsmctlError, SsmctlWarning, UnsupportedSystemError
from ..systems import _display
from ..systems._display import fmt_margin
from ..systems.lti import DenseLTI, DiagonalLTI, as_system
from ..report import fmt, format_modulus
from ..systems.ltv import LTVSystem, _np
from .norms import h2_norm, hankel_singular_values, hinf_norm
from .progress import Progress, track
from .response import dc_gain, stability_margins
from .spectrum import eigenvalues, memory_horizon, spectral_radius

__all__ = ["EPS", "HANKEL_TOL", "COLUMNS", "STEPS", "operating_point", "channel_table", "layer_report", "maxima"]

EPS = 1e-2
HANKEL_TOL = 1e-3

# Column → (what it is, unit); the order is the table's.
COLUMNS: dict[str, tuple[str, str]] = {
    "radius": ("spectral radius max|λ|", ""),
    "margin": ("spectral margin 1 − max|λ| (negative: unstable)", ""),
    "memory_horizon": ("memory horizon of the slowest mode, ln(eps)/ln max|λ|", "tokens"),
    "h2": ("H2 norm", ""),
    "hinf": ("H∞ norm max_ω σ_max G(e^{iω})", ""),
    "hinf_freq": ("frequency of the H∞ peak", "rad/sample"),
    "dc_gain": ("DC gain G(1) (SISO; MIMO: its largest singular value)", ""),
    "gain_margin": ("gain margin of the unity-feedback loop (SISO)", "ratio"),
    "phase_margin": ("phase margin of the unity-feedback loop (SISO)", "deg"),
    "stability_margin": ("stability margin min_ω |1 + G(e^{iω})| (SISO)", ""),
    "hsv_max": ("largest Hankel singular value σ_1", ""),
    "hankel_states": ("states with σ_i > hankel_tol·σ_1 (states the channel uses)", "states"),
    "hankel_bound": ("2·Σ of the other σ_i: H∞ error bound of balanced truncation to hankel_states", ""),
}
# Columns reported at another column's argmax in :func:`maxima`.
_AT_ARGMAX = {"hinf_freq": "hinf"}
# Progress steps of one layer's channel_table (one per column group).
STEPS = 5
# The cheap columns (closed forms or one Lyapunov solve): what the rich display computes.
CHEAP = ("radius", "margin", "memory_horizon", "h2", "dc_gain")


def operating_point(layer: Any) -> tuple[DiagonalLTI | DenseLTI, np.ndarray, np.ndarray | None]:
    """The system a layer is analysed as, with its eigenvalues and (LTV) its step sizes.

    Parameters
    ----------
    layer : Layer
        LTI families: ``layer.system()`` with ``layer.eigenvalues()`` (S4's exact spectrum); LTV families: the
        frozen-time system at zero input (module docstring), its leading batch axis of one dropped.

    Returns
    -------
    system : DiagonalLTI or DenseLTI
        Batch dims = the layer's channels.
    eigenvalues : ndarray, complex, shape (*channels, n)
    dt : ndarray, float, shape (*channels,), or None
        LTV families: Δ (RG-LRU: its rate c·r) at zero input, as the layer's ``ltv`` reports it; None for LTI.
    """
    if layer.kind == "LTI":
        return as_system(layer.system()), np.asarray(eigenvalues(layer), dtype=np.complex128), None
    ltv = layer.ltv(np.zeros((1, 1, int(layer.config["d_model"])), dtype=np.float32))
    sys = ltv.frozen(0)[0]
    dt = None if ltv.dt is None else np.asarray(_np(ltv.dt), dtype=np.float64)[0, 0]
    return sys, sys.eigenvalues(), dt


def _flat(sys: DiagonalLTI | DenseLTI) -> DiagonalLTI | DenseLTI:
    """The same system with its batch dims flattened to one axis (a system without batch gets one of 1)."""
    flat = [a.reshape((-1,) + a.shape[len(sys.batch_shape):]) for a in sys.broadcast_arrays()]
    if isinstance(sys, DiagonalLTI):
        return DiagonalLTI(*flat, output=sys.output, dt=sys.dt, meta=sys.meta)
    exact = sys.exact_eigenvalues
    if exact is not None:  # S4's exact spectrum travels with its dense matrix
        exact = np.broadcast_to(exact, sys.batch_shape + exact.shape[-1:]).reshape(-1, exact.shape[-1])
    return DenseLTI(*flat, dt=sys.dt, meta=sys.meta, exact_eigenvalues=exact)


def _spectral_columns(lam: np.ndarray, eps: float) -> dict[str, np.ndarray]:
    """radius, margin, memory horizon and the unstable flag per row of eigenvalues (C, n)."""
    with warnings.catch_warnings():
        # The table states instability itself (the unstable column, the text's verdict): a repr must not warn.
        warnings.simplefilter("ignore", SsmctlWarning)
        radius = spectral_radius(lam)
    return {"radius": radius, "margin": 1.0 - radius, "memory_horizon": memory_horizon(radius, eps),
            "unstable": radius >= 1.0}


def channel_table(
    sys: Any,
    eigs: Any = None,
    *,
    columns: Sequence[str] = tuple(COLUMNS),
    eps: float = EPS,
    hankel_tol: float = HANKEL_TOL,
    bar: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The per-channel numbers of :data:`COLUMNS` for a system whose batch elements are channels.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        Batch dims (*channels); a system without batch dims is one (MIMO) channel.
    eigs : array_like, complex, shape (*channels, n), optional
        The eigenvalues for the spectral columns (default ``eigenvalues(sys)``; a layer's exact spectrum).
    columns : sequence of str
        Which of :data:`COLUMNS` to compute (the spectral ones are always there).
    eps : float
        Memory-horizon threshold.
    hankel_tol : float
        Relative threshold of ``hankel_states``.
    bar : Progress, optional
        Updated once per computed column group.

    Returns
    -------
    dict of str → ndarray, float, shape (C,)
        C = prod(channels) (1 without batch dims), channels in C order. Norms, gains, margins and Hankel
        values are NaN on unstable channels (max|λ| ≥ 1), where they do not exist; ``"unstable"`` (bool)
        marks them. Stability margins are NaN for MIMO systems.

    Raises
    ------
    SsmctlError
        An unknown column name, or ``hankel_tol`` outside (0, 1).
    """
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise SsmctlError(f"unknown column(s) {unknown}; known: {list(COLUMNS)}")
    if not 0.0 < hankel_tol < 1.0:
        raise SsmctlError(f"hankel_tol must lie in (0, 1), got {hankel_tol}")
    sys = _flat(as_system(sys))
    nc = sys.batch_shape[0]
    lam = np.asarray(eigenvalues(sys) if eigs is None else eigs, dtype=np.complex128).reshape(nc, -1)
    out = _spectral_columns(lam, eps)
    radius = out["radius"]
    stable = np.flatnonzero(radius < 1.0)
    sub = sys[stable] if stable.size else None
    siso = sys.n_inputs == 1 and sys.n_outputs == 1

    def put(name: str, values: Any) -> None:
        col = np.full(nc, np.nan)
        if stable.size:
            col[stable] = np.asarray(values, dtype=np.float64).reshape(-1)
        out[name] = col

    label = f"{bar.desc.split(':')[0]}: " if bar is not None else ""

    def tick(next_step: str = "") -> None:
        if bar is not None:
            bar.update(1)
            if next_step:
                bar.describe(label + next_step)

    if bar is not None:
        bar.describe(label + "h2")

    if "h2" in columns:
        put("h2", h2_norm(sub) if sub is not None else [])
        tick("hinf")
    if "hinf" in columns or "hinf_freq" in columns:
        norm, freq = hinf_norm(sub, return_frequency=True) if sub is not None else ([], [])
        put("hinf", norm)
        put("hinf_freq", freq)
        tick("dc gain")
    if "dc_gain" in columns:
        if sub is None:
            put("dc_gain", [])
        else:
            G = dc_gain(sub)
            if siso:
                put("dc_gain", G[..., 0, 0].real if sub.is_real else np.abs(G[..., 0, 0]))
            else:
                put("dc_gain", np.linalg.norm(G, ord=2, axis=(-2, -1)))
        tick("margins")
    if {"gain_margin", "phase_margin", "stability_margin"} & set(columns):
        if siso and sub is not None:
            m = stability_margins(sub)
            put("gain_margin", m.gm)
            put("phase_margin", m.pm)
            put("stability_margin", m.sm)
        else:
            for name in ("gain_margin", "phase_margin", "stability_margin"):
                out[name] = np.full(nc, np.nan)
        tick("hankel values")
    if {"hsv_max", "hankel_states", "hankel_bound"} & set(columns):
        if sub is None:
            for name in ("hsv_max", "hankel_states", "hankel_bound"):
                put(name, [])
        else:
            hsv = hankel_singular_values(sub)  # (S, n), descending
            keep = hsv > hankel_tol * hsv[:, :1]
            used = keep.sum(-1)
            put("hsv_max", hsv[:, 0] if hsv.shape[-1] else np.zeros(len(stable)))
            put("hankel_states", used)
            put("hankel_bound", 2.0 * np.where(keep, 0.0, hsv).sum(-1))
        tick()
    return out


def maxima(table: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Maximum (of |·| for the DC gain), its channel, and minimum of each column over the channels.

    ``hinf_freq`` is not maximized: its "max" is the peak frequency of the channel with the largest H∞ norm.

    Parameters
    ----------
    table : dict of str → ndarray, shape (C,)
        A :func:`channel_table`.

    Returns
    -------
    dict
        ``{"max": {col: float}, "argmax": {col: int}, "min": {col: float}}`` over the finite entries; NaN and
        ``None`` where a column has none.
    """
    out: dict[str, dict[str, Any]] = {"max": {}, "argmax": {}, "min": {}}
    for name, col in table.items():
        if name == "unstable" or name in _AT_ARGMAX:
            continue
        v = np.abs(col) if name == "dc_gain" else np.asarray(col, dtype=np.float64)
        ok = ~np.isnan(v)
        if not ok.any():
            out["max"][name], out["argmax"][name], out["min"][name] = np.nan, None, np.nan
            continue
        i = int(np.flatnonzero(ok)[np.argmax(v[ok])])
        out["max"][name], out["argmax"][name] = float(v[i]), i
        out["min"][name] = float(np.nanmin(v))
    for name, of in _AT_ARGMAX.items():  # an attribute of another column's maximum, not a maximum itself
        if name in table:
            i = out["argmax"].get(of)
            out["max"][name] = np.nan if i is None else float(table[name][i])
            out["argmax"][name], out["min"][name] = i, np.nan
    return out


def layer_report(
    layer: Any,
    *,
    columns: Sequence[str] = tuple(COLUMNS),
    eps: float = EPS,
    hankel_tol: float = HANKEL_TOL,
    bar: Progress | None = None,
) -> dict[str, Any]:
    """Everything ``ssmctl analyze`` says about one layer.

    Parameters
    ----------
    layer : Layer
    columns, eps, hankel_tol, bar
        As for :func:`channel_table`.

    Returns
    -------
    dict
        ``index``, ``family``, ``kind``, ``point`` ("lti", "zero input", or "bias eigenvalues" for LTV layers
        ssmctl cannot run, whose ``note`` says why; their other columns are NaN), ``channel_shape`` (the layer's
        channel axes; ``[]`` for one MIMO system), ``n_states`` (order per channel), ``inputs``, ``outputs``,
        ``dt`` (LTV: Δ at the operating point per channel, else None), ``unstable_channels``,
        ``channels`` (columns of :func:`channel_table`), and :func:`maxima`'s ``max``, ``argmax``, ``min``.
    """
    return _layer_report(layer, columns=columns, eps=eps, hankel_tol=hankel_tol, bar=bar)[0]


def _layer_report(layer: Any, *, columns: Sequence[str], eps: float, hankel_tol: float,
                  bar: Progress | None) -> tuple[dict[str, Any], np.ndarray]:
    note = None
    try:
        sys, lam, dt = operating_point(layer)
    except UnsupportedSystemError as exc:
        # A layer ssmctl can read but not run (e.g. FalconH1's μP mixer): its input-free eigenvalues, as inspect
        # shows them, and no input-output numbers.
        if layer.kind != "LTV" or layer.record.bias_eigenvalues is None:
            raise
        note = f"input-free eigenvalues at the dt bias only (as inspect), no input-output numbers: {exc}"
        lam = np.asarray(layer.record.bias_eigenvalues(layer), dtype=np.complex128)
        lam = lam.reshape(lam.shape[0], -1)
        table = _spectral_columns(lam, eps)
        for name in columns:
            table.setdefault(name, np.full(lam.shape[0], np.nan))
        if bar is not None:
            bar.update(STEPS)
        shape, n, m, p, dt = [lam.shape[0]], int(layer.config.get("d_state", lam.shape[1])), 1, 1, None
        point = "bias eigenvalues"
    else:
        table = channel_table(sys, lam, columns=columns, eps=eps, hankel_tol=hankel_tol, bar=bar)
        shape, n, m, p = list(sys.batch_shape), sys.n_states, sys.n_inputs, sys.n_outputs
        point = "lti" if layer.kind == "LTI" else "zero input"
    unstable = table.pop("unstable")
    return {
        "index": int(layer.index),
        "family": layer.family,
        "kind": layer.kind,
        "point": point,
        "note": note,
        "channel_shape": shape,
        "n_states": int(n),
        "inputs": int(m),
        "outputs": int(p),
        "dt": None if dt is None else dt.reshape(-1),
        "unstable_channels": int(unstable.sum()),
        "channels": table,
        **maxima(table),
    }, lam


# --- rich display: the describers the lower layers show through (ssmctl.systems._display) ------------------
def _channel_index(shape: Sequence[int]) -> tuple[list[str], list[np.ndarray]]:
    shape = tuple(shape) or (1,)
    names = ["channel"] if len(shape) == 1 else [f"axis{i}" for i in range(len(shape))]
    return names, [np.asarray(a).reshape(-1) for a in np.unravel_index(np.arange(int(np.prod(shape))), shape)]


def _where(i: int, shape: Sequence[int]) -> str:
    if not tuple(shape):
        return ""
    idx = np.unravel_index(i, tuple(shape))
    return f" (channel {int(idx[0]) if len(idx) == 1 else tuple(int(k) for k in idx)})"


def _spread(col: np.ndarray, f: Callable[[float], str] = fmt) -> str:
    v = col[~np.isnan(col)]
    if not v.size:
        return "-"
    if v.size == 1:
        return f(v[0])
    return f"max {f(v.max())}, median {f(np.median(v))}, min {f(v.min())}"


class _Sizes(NamedTuple):
    n_states: int
    n_inputs: int
    n_outputs: int


def _lti_facts(sys: Any, table: dict[str, np.ndarray], shape: Sequence[int], eps: float) -> list[tuple[str, str]]:
    nc = table["radius"].size
    io = "SISO" if sys.n_inputs == sys.n_outputs == 1 else f"{sys.n_inputs} inputs, {sys.n_outputs} outputs"
    shape = tuple(shape)
    states = f"{sys.n_states} state{'s' if sys.n_states != 1 else ''}"
    if shape:
        size = f"{nc} channels" + (f" {shape}" if len(shape) > 1 else "") + f", {states} each, {io}"
    else:
        size = f"one MIMO system, {states}, {io}"
    facts = [("size", size)]
    i = int(np.argmax(table["radius"]))
    outside = int((table["radius"] > 1.0).sum())
    on_circle = int(table["unstable"].sum()) - outside
    where = "" if not shape else f" of {nc} channels"
    verdict = ("stable" if not outside + on_circle else
               f"UNSTABLE (|λ| > 1) in {outside}{where}" if outside else
               f"marginal (|λ| = 1: no finite norms) in {on_circle}{where}")
    facts.append(("stability", f"{verdict}: max|λ| = {format_modulus(table['radius'][i], 6)}, "
                               f"margin 1 − |λ| = {fmt_margin(table['margin'][i])}{_where(i, shape)}"))
    facts.append((f"memory (eps {fmt(eps)})", _spread(table["memory_horizon"], lambda x: f"{x:.4g}") + " tokens"))
    for name, label in (("h2", "H2 norm"), ("dc_gain", "DC gain")):
        if name in table:
            facts.append((label, _spread(table[name])))
    return facts


def _frame_columns(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in table.items()}


def _describe_lti(sys: Any, full: bool, eps: float = EPS) -> _display.Summary:
    table = channel_table(sys, columns=CHEAP if full else (), eps=eps)
    title = f"{type(sys).__name__} {sys.label!r}" if "label" in sys.meta else type(sys).__name__
    return _display.Summary(title, _lti_facts(sys, table, sys.batch_shape, eps), eigenvalues(sys),
                            columns=_frame_columns(table), index=_channel_index(sys.batch_shape))


def _describe_ltv(ltv: LTVSystem, full: bool, eps: float = EPS) -> _display.Summary:
    lam = np.abs(_np(ltv.lam))  # (batch, L, *channels, N)
    slowest = lam.max(axis=-1)  # (batch, L, *channels)
    k = memory_horizon(slowest, eps)
    facts = [("size", f"batch {ltv.batch_size}, {ltv.length} tokens, channels {ltv.channel_shape}, "
                      f"{ltv.n_states} states each")]
    window = ltv.meta.get("window")
    if window:
        facts.append(("tokens", f"{window[0]}..{window[1] - 1} of the input"))
    facts.append(("|Ā_t|", f"min {fmt(lam.min())}, median {fmt(float(np.median(lam)))}, "
                           f"max {format_modulus(lam.max(), 6)}"))
    facts.append(("margin 1 − |Ā_t|", f"min {fmt_margin(1.0 - lam.max())} over tokens and channels"))
    facts.append((f"memory (eps {fmt(eps)})", f"slowest mode per token: median {fmt(float(np.median(k)))}, "
                                            f"max {fmt(float(k.max()))} tokens"))
    cols: dict[str, np.ndarray] = {}
    if ltv.dt is not None:
        dt = np.asarray(_np(ltv.dt), dtype=np.float64)
        facts.append(("Δ_t", f"min {fmt(dt.min())}, median {fmt(float(np.median(dt)))}, max {fmt(dt.max())}"))
    if full:
        per_channel = slowest.reshape(slowest.shape[0] * slowest.shape[1], -1)
        cols = {"abs_max": per_channel.max(0), "abs_median": np.median(per_channel, 0),
                "memory_horizon_median": np.median(k.reshape(per_channel.shape), 0)}
        if ltv.dt is not None:
            cols["dt_median"] = np.median(dt.reshape(per_channel.shape[0], -1), 0)
    # A picture of every token's modes would be L times the channels': one in every few tokens suffices.
    picture = np.asarray(_np(ltv.lam))[:, :: max(1, ltv.length // 8)] if full else None
    return _display.Summary(type(ltv).__name__, facts, picture, columns=cols or None,
                            index=_channel_index(ltv.channel_shape))


def _layer_facts(layer: Any, rep: dict[str, Any], eps: float) -> list[tuple[str, str]]:
    n_params = sum(int(np.prod(getattr(p, "shape", ()))) for p in layer.params.values())
    facts = [("family", f"{layer.family} ({layer.kind}), {len(layer.params)} tensors, {n_params:,} parameters")]
    if rep["note"]:
        facts.append(("note", rep["note"]))
    if rep["dt"] is not None:
        facts.append(("analysed at", f"zero input (bias point): Δ {_spread(rep['dt'])}"))
    io = _Sizes(rep["n_states"], rep["inputs"], rep["outputs"])
    table = {**rep["channels"], "unstable": rep["channels"]["radius"] >= 1.0}
    return facts + _lti_facts(io, table, rep["channel_shape"], eps)


def _describe_layer(layer: Any, full: bool, eps: float = EPS) -> _display.Summary:
    rep, lam = _layer_report(layer, columns=CHEAP if full else (), eps=eps, hankel_tol=HANKEL_TOL, bar=None)
    return _display.Summary(f"Layer {layer.index} of {layer.family}", _layer_facts(layer, rep, eps), lam,
                            columns=rep["channels"], index=_channel_index(rep["channel_shape"]))


_MODEL_ROWS = [("index", "layer"), ("kind", "kind"), ("channels", "channels"), ("n_states", "states"),
               ("radius", "max|λ|"), ("margin", "min 1−|λ|"), ("memory_horizon", "memory max (tokens)"),
               ("h2", "H2 max"), ("dc_gain", "|DC gain| max")]


def _describe_model(model: Any, full: bool, eps: float = EPS) -> _display.Summary:
    rows, pictures = [], []
    for layer in track(model.layers, f"{model.family} layers", unit="layer"):
        rep, lam = _layer_report(layer, columns=CHEAP if full else (), eps=eps, hankel_tol=HANKEL_TOL, bar=None)
        rows.append({"index": layer.index, "kind": layer.kind, "channels": rep["channels"]["radius"].size,
                     "n_states": rep["n_states"], "unstable_channels": rep["unstable_channels"],
                     **rep["max"], "margin": rep["min"]["margin"]})
        pictures.append(lam.reshape(-1))
    facts = [("model", f"{model.family}, {len(model.layers)} layers, source {model.source}")]
    cfg = {k: v for k, v in model.config.items() if k in ("d_model", "d_state", "d_inner", "nheads", "variant",
                                                           "preset", "lru_width") and v is not None}
    if cfg:
        facts.append(("config", ", ".join(f"{k}={v}" for k, v in cfg.items())))
    if rows:
        worst = min(rows, key=lambda r: r["margin"])
        facts.append(("stability", f"max|λ| = {format_modulus(worst['radius'], 6)}, margin 1 − |λ| = "
                                   f"{fmt_margin(worst['margin'])} (layer {worst['index']})"
                      + ("" if not any(r["unstable_channels"] for r in rows) else ": UNSTABLE channels")))
        facts.append((f"memory (eps {fmt(eps)})", f"max {fmt(max(r['memory_horizon'] for r in rows))} tokens"))
    columns = {k: np.asarray([r.get(k, np.nan) for r in rows]) for k, _ in _MODEL_ROWS if k != "index"}
    return _display.Summary(
        f"Model {model.family}", facts, np.concatenate(pictures) if full and pictures else None,
        rows=rows if full else None, row_columns=[c for c in _MODEL_ROWS if full or c[0] not in CHEAP[3:]],
        columns=columns, index=(["layer"], [np.asarray([r["index"] for r in rows])]),
    )


_display.register("lti", _describe_lti)
_display.register("ltv", _describe_ltv)
_display.register("layer", _describe_layer)
_display.register("model", _describe_model)
