"""``ssmctl analyze``: norms, gains, margins and Hankel values of every layer of a checkpoint or a fresh init.

    ssmctl analyze PATH|FAMILY [--layer I] [--json] [--plot FILE] [--eps EPS] [--hankel-tol TOL]
                   [--d-model H] [--d-state N] [--n-layers L] [--variant V] [--preset P] [--seed S]

Per layer and per channel: spectral radius and margin, memory horizon, H2, H∞ and its frequency, DC gain,
gain/phase/stability margins (SISO channels), and the Hankel-value decay (how many states a channel uses at
``--hankel-tol``). LTV layers are analysed at zero input (:func:`ssmctl.analysis.summary.operating_point`).
The numbers come from :func:`ssmctl.analysis.summary.layer_report`, as the rich display's do.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..analysis.progress import Progress, set_enabled
from ..analysis.summary import COLUMNS, EPS, HANKEL_TOL, STEPS, layer_report
from ..errors import SsmctlError
from ..report import SCHEMA_VERSION, fmt, format_modulus, format_table
from .common import add_eps_option, add_output_options, emit, model_from_target, write_plot

__all__ = ["register", "cmd_analyze", "analyze_report", "analyze_text", "analyze_figure"]

_OPERATING_POINT = ("LTI layers: the layer's system. LTV layers: the frozen-time system of the layer fed zeros "
                    "(its input-free operating point: Delta from the biases alone, B_bar and C from the conv bias)")


def _model(target: str, args: argparse.Namespace) -> Any:
    hyper = dict(d_model=args.d_model, d_state=args.d_state, n_layers=args.n_layers, variant=args.variant,
                 preset=args.preset, seed=args.seed)
    return model_from_target(target, hyper=hyper)


def _count_nulls(col: np.ndarray) -> int:
    return int((~np.isfinite(np.asarray(col, dtype=np.float64))).sum())


def analyze_report(model: Any, layer: int | None = None, *, eps: float = EPS, hankel_tol: float = HANKEL_TOL,
                   progress: bool | None = None) -> dict[str, Any]:
    """The ``analyze`` report of a model: one entry per layer (or the one chosen), JSON-ready.

    Parameters
    ----------
    model : Model
    layer : int, optional
        A layer index (``Layer.index``, as ``inspect`` prints it); default every layer.
    eps : float
        Memory-horizon threshold.
    hankel_tol : float
        A channel uses the states whose Hankel singular value exceeds ``hankel_tol``·σ_1.
    progress : bool, optional
        Progress bar over the layers' analyses (default: interactive sessions only).

    Returns
    -------
    dict
        ``schema``, ``kind`` ("analyze"), ``family``, ``source``, ``config``, ``eps``, ``hankel_tol``,
        ``operating_point``, ``columns`` (name → [meaning, unit]) and ``layers``: per layer the entries of
        :func:`~ssmctl.analysis.summary.layer_report` plus ``nonfinite_counts`` (per column, how many channels
        have no finite value: unstable channels, MIMO margins, infinite memory — null in JSON).

    Raises
    ------
    SsmctlError
        An index that is not one of the model's layers.
    """
    chosen = list(model.layers)
    if layer is not None:
        chosen = [lay for lay in model.layers if lay.index == layer]
        if not chosen:
            raise SsmctlError(f"no layer {layer}; this model's layers: {[lay.index for lay in model.layers]}")
    rows = []
    with Progress(len(chosen) * STEPS, "analyze", unit="step", enabled=progress) as bar:
        for lay in chosen:
            bar.describe(f"analyze layer {lay.index}")
            row = layer_report(lay, eps=eps, hankel_tol=hankel_tol, bar=bar)
            row["nonfinite_counts"] = {k: _count_nulls(v) for k, v in row["channels"].items()}
            rows.append(row)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "analyze",
        "family": model.family,
        "source": str(model.source),
        "config": model.config,
        "eps": eps,
        "hankel_tol": hankel_tol,
        "operating_point": _OPERATING_POINT,
        "columns": {k: list(v) for k, v in COLUMNS.items()},
        "layers": rows,
    }


_LAYER_COLS = [("index", "layer"), ("kind", "kind"), ("n_channels", "channels"), ("n_states", "states"),
               ("radius", "max|λ|"), ("margin", "min 1−|λ|"), ("memory_horizon", "memory"), ("h2", "H2"),
               ("hinf", "H∞"), ("hinf_freq", "ω peak"), ("dc_gain", "|DC|"), ("gain_margin", "GM min"),
               ("phase_margin", "PM min"), ("hankel_states", "states used")]
_MIN_COLS = ("margin", "gain_margin", "phase_margin")
_POINT_TAG = {"lti": "", "zero input": "@0", "bias eigenvalues": "@bias"}
_CHANNEL_COLS = [("channel", "ch"), ("radius", "|λ| max"), ("margin", "1−|λ|"), ("memory_horizon", "memory"),
                 ("h2", "H2"), ("hinf", "H∞"), ("hinf_freq", "ω peak"), ("dc_gain", "DC gain"),
                 ("gain_margin", "GM"), ("phase_margin", "PM (deg)"), ("stability_margin", "SM"),
                 ("hankel_states", "states used"), ("hankel_bound", "trunc. bound")]


def _radius_cell(r: Any) -> str:
    return format_modulus(r, 6) if r is not None else "-"


def analyze_text(report: dict[str, Any]) -> str:
    """The readable form: one row per layer (maxima over channels; margins: minima), and with one layer
    chosen, one row per channel.

    Parameters
    ----------
    report : dict
        From :func:`analyze_report`.

    Returns
    -------
    str
    """
    rows = []
    for lay in report["layers"]:
        row = {k: lay["max"].get(k) for k, _ in _LAYER_COLS if k in COLUMNS}
        row.update({k: lay["min"].get(k) for k in _MIN_COLS})
        row = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}  # shown as "-"
        row.update(index=lay["index"], kind=lay["kind"] + _POINT_TAG[lay["point"]],
                   n_channels=len(lay["channels"]["radius"]), n_states=lay["n_states"],
                   radius=_radius_cell(lay["max"]["radius"]))
        rows.append(row)
    out = [f"{report['family']} from {report['source']}: per layer, the maximum over channels "
           f"(margins: the minimum)", "",
           format_table(rows, [k for k, _ in _LAYER_COLS], [h for _, h in _LAYER_COLS])]
    notes = [f"memory: tokens until |λ|^k = {fmt(report['eps'])}; states used: Hankel values > "
             f"{fmt(report['hankel_tol'])}·σ_1; ω in rad/sample; GM as a ratio, PM in degrees"]
    if any(lay["point"] == "zero input" for lay in report["layers"]):
        notes.append("LTV@0: an LTV layer analysed at zero input (its frozen-time system at the input-free operating "
                     "point: Δ from the biases alone)")
    for lay in report["layers"]:
        if lay["unstable_channels"]:
            notes.append(f"layer {lay['index']}: {lay['unstable_channels']} channel(s) with max|λ| ≥ 1 (unstable or "
                         "marginal): no norms there")
        hsv = np.asarray(lay["channels"].get("hsv_max", [np.nan]), dtype=np.float64)
        if lay["point"] != "lti" and hsv.size and np.all(hsv == 0):
            notes.append(f"layer {lay['index']}: at zero input B_bar_t or C_t vanish (a zero conv bias): every "
                         "channel is the static gain D, so the norms are |D| and no state is used")
        if lay["note"]:
            notes.append(f"layer {lay['index']}: {lay['note']}")
        if lay["inputs"] > 1 or lay["outputs"] > 1:
            notes.append(f"layer {lay['index']}: one MIMO system ({lay['inputs']} inputs, {lay['outputs']} outputs): "
                         "DC gain is σ_max G(1); gain/phase margins are SISO-only")
    if len(report["layers"]) == 1:
        lay = report["layers"][0]
        ch = lay["channels"]
        n = len(ch["radius"])
        per = [{"channel": i, **{k: ch[k][i] for k, _ in _CHANNEL_COLS if k in ch},
                "radius": _radius_cell(ch["radius"][i])} for i in range(n)]
        out += ["", f"layer {lay['index']}, per channel (channels {lay['channel_shape'] or 'one MIMO system'}, "
                    "flattened in C order):", format_table(per, [k for k, _ in _CHANNEL_COLS],
                                                           [h for _, h in _CHANNEL_COLS])]
    return "\n".join(out + [""] + notes)


def analyze_figure(model: Any, report: dict[str, Any]) -> Any:
    """Hankel-value decay of each analysed layer: ``ssmctl.plot.hankel`` of a few channels per layer.

    Parameters
    ----------
    model : Model
    report : dict
        From :func:`analyze_report` (it picks the channels: those using the most, the median and the fewest
        states, at most 6 per layer, stable ones only).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ..analysis.summary import operating_point
    from ..plot.lti import hankel

    layers = {lay.index: lay for lay in model.layers}
    n = len(report["layers"])
    cols = min(n, 4)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4 * cols, 3.4 * ((n + cols - 1) // cols)),
                             squeeze=False, constrained_layout=True)
    for ax, lay in zip(axes.flat, report["layers"]):
        used = np.asarray(lay["channels"]["hankel_states"], dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(used))
        if not ok.size:
            ax.set_title(f"layer {lay['index']}: no stable channel")
            ax.axis("off")
            continue
        order = ok[np.argsort(used[ok], kind="stable")]
        pick = sorted(set(order[np.linspace(0, order.size - 1, min(6, order.size)).round().astype(int)].tolist()))
        sys = operating_point(layers[lay["index"]])[0]
        flat = sys if not sys.batch_shape else sys[np.unravel_index(np.asarray(pick), sys.batch_shape)]
        hankel(flat, ax=ax, title=f"layer {lay['index']} ({lay['kind']}): channels {pick}")
        ax.axhline(report["hankel_tol"], color="0.5", lw=0.8, ls="--")
        ax.text(1, report["hankel_tol"], f" tol {fmt(report['hankel_tol'])}", va="bottom", fontsize=7, color="0.4")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{report['family']} ({report['source']}): Hankel singular values σ_i/σ_1 per layer")
    return fig


def cmd_analyze(args: argparse.Namespace) -> int:
    """``ssmctl analyze PATH|FAMILY``: print (or write as JSON) the analysis of every layer.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options: ``target``, ``layer``, ``eps``, ``hankel_tol``, ``json``, ``plot`` and the init
        hyperparameters.

    Returns
    -------
    int
        Exit status 0.
    """
    if args.json:
        set_enabled(False)
    model = _model(args.target, args)
    report = analyze_report(model, args.layer, eps=args.eps, hankel_tol=args.hankel_tol)
    if args.plot:
        write_plot(analyze_figure(model, report), args.plot)
    return emit(args, report, analyze_text)


def register(subparsers: Any) -> None:
    """Add ``analyze`` to an ``argparse`` subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = subparsers.add_parser(
        "analyze",
        help="H2, H-infinity, DC gain, margins and Hankel values of every layer (checkpoint or fresh init)",
        description="Per layer and channel: spectral radius and margin, memory horizon, H2 and H-infinity norms, "
        "DC gain, gain/phase/stability margins and how many states each channel uses (Hankel singular values), "
        "with each number's maximum over the layer's channels. " + _OPERATING_POINT + ".",
    )
    p.add_argument("target", metavar="PATH|FAMILY",
                   help="checkpoint file or folder (as for inspect), or a family name for a fresh init")
    p.add_argument("--layer", type=int, help="only this layer (its index as inspect prints it), per channel")
    add_output_options(p, plot="the Hankel-value decay of each layer")
    add_eps_option(p)
    p.add_argument("--hankel-tol", type=float, default=HANKEL_TOL,
                   help=f"a state counts as used when its Hankel value exceeds TOL·σ_1 (default {HANKEL_TOL:g})")
    for name, kind in (("--d-model", int), ("--d-state", int), ("--n-layers", int), ("--variant", str),
                       ("--preset", str), ("--seed", int)):
        p.add_argument(name, type=kind, help="fresh init only: the family's hyperparameter (default its own)")
    p.set_defaults(func=cmd_analyze)
