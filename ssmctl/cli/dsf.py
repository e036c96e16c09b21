"""``ssmctl dsf``: the Dynamical Systems Framework view of every layer of a checkpoint or a fresh model.

    ssmctl dsf PATH|FAMILY [--variant V] [--eta E] [--num-heads H] [--layer I] [--tokens FILE.npy | --random-tokens L]
                           [--scope core|block] [--json] [--plot FILE]

PATH is a checkpoint ``ssmctl.load`` reads; FAMILY (when no such path exists) a fresh ``ssmctl.init(FAMILY)``
with the hints as its hyperparameters. Per layer: Λ_i's range and how often it exceeds 1, the numerical rank of
the Hankel blocks Φ[t:, :t] across cuts t against the state size N, and the ℓ2 gain of Φ over the whole input.
Every layer is read at the same input u (the tokens' embeddings, or the signal), not at the previous layers'
outputs.

:func:`register` adds it to the main parser's subcommands (``ssmctl/cli/app.py``).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from .common import add_hint_options, add_output_options, emit, hints_from_args, model_from_target, write_plot
from .simulate import _inputs
from ..errors import SsmctlError, UnsupportedSystemError
from ..report import SCHEMA_VERSION, format_table

__all__ = ["register", "cmd_dsf", "dsf_report", "DEFAULT_TOKENS", "HANKEL_RTOL", "PHI_MAX_BYTES"]

DEFAULT_TOKENS = 64
HANKEL_RTOL = 1e-8
# Φ above this is lazy: the Hankel blocks and the gain read it window by window.
PHI_MAX_BYTES = 2**28


def _width(model: Any) -> int:
    """The width of a layer's input u: d_model, or an LTI layer's SSM input (its channels, or m when MIMO)."""
    layer = model.layers[0]
    if layer.record.kind != "LTI":
        return int(layer.config["d_model"])
    system = layer.system()
    if system.n_inputs == 1 and system.n_outputs == 1 and system.batch_shape:
        return int(np.prod(system.batch_shape))
    return int(system.n_inputs)


def _layer_input(model: Any, raw: np.ndarray) -> Any:
    """u (batch, L, width) at a layer's input: token ids through the model's embedding, a signal as it is."""
    import torch

    from ..engine.driver import _Inputs

    inputs = _Inputs(model, raw, _width(model))
    return inputs.chunk(0, inputs.length, torch.device("cpu"))


def _state_bound(layer: Any, u: Any, phi: Any) -> int | None:
    """N, the rank bound of the Hankel blocks: the core's states per channel (per-channel Φ), times the
    channels for a full (block-scope) Φ of a per-channel core; None for softmax (no finite state)."""
    from ..analysis.dsf import dsf

    try:
        core = dsf(layer, u)
    except UnsupportedSystemError:
        return None
    n = int(core.n_states)
    if phi.layout == "full" and layer.record.kind != "LTI":
        n *= int(np.prod(core.channel_shape))
    return n


def _layer_report(layer: Any, u: Any, scope: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from ..analysis.dsf import materialize
    from ..analysis.dsf_measures import hankel_profile, lambda_bounds, window_gain

    lam = lambda_bounds(layer, u)
    phi = materialize(layer, u, scope=scope, max_bytes=PHI_MAX_BYTES)
    L = phi.length
    prof = hankel_profile(phi, rtol=HANKEL_RTOL)
    rank = np.asarray(prof.rank).reshape(-1, len(prof.cuts)).max(axis=0)  # max over batch and channels
    gain = np.asarray(window_gain(phi, 0, L))
    n_bound = _state_bound(layer, u, phi)
    variant = layer.config.get("variant")
    row = {
        "index": layer.index, "family": layer.family, "variant": variant, "kind": layer.record.kind,
        "scope": scope, "layout": phi.layout, "tokens": L, "n_states": n_bound,
        "lambda": {"count": lam.count, "min": lam.min, "max": lam.max, "frac_above_1": lam.frac_above,
                   "frac_inside_0_1": lam.frac_inside, "frac_equal_1": lam.frac_one, "frac_zero": lam.frac_zero},
        "hankel": {"rtol": prof.rtol, "cuts": prof.cuts, "rank_max_over_channels": rank,
                   "min_t_L_minus_t": prof.max_rank, "rank_max": int(rank.max()),
                   "rank_median": float(np.median(rank)),
                   "cuts_at_full_rank": int(np.sum(rank == prof.max_rank)),
                   "within_n_states": None if n_bound is None else bool(rank.max() <= n_bound)},
        "window_gain": {"start": 0, "stop": L, "max": float(gain.max()), "median": float(np.median(gain)),
                        "over": "channels and batch" if phi.layout == "per_channel" else "batch"},
    }
    return row, {"phi": phi, "profile": prof}


def dsf_report(model: Any, u: Any, layers: list[int] | None = None, scope: str = "core"
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The per-layer DSF report of ``model`` at input ``u`` (what ``ssmctl dsf`` prints).

    Parameters
    ----------
    model : Model
        From ``ssmctl.load`` or ``ssmctl.init``.
    u : torch.Tensor, shape (batch, L, d_model)
        The input every reported layer is read at.
    layers : list of int, optional
        Layer indices (negative from the end); default all.
    scope : {"core", "block"}, default "core"
        As for :func:`ssmctl.materialize`.

    Returns
    -------
    (dict, list of dict)
        The JSON-able report (``schema``, ``family``, ``source``, ``input``, ``layers``), and per layer the
        drawn objects (``phi``, ``profile``) for the plot.

    Raises
    ------
    SsmctlError
        A layer index out of range; what :func:`ssmctl.materialize` raises (e.g. block scope of an LTI layer).
    """
    n = len(model.layers)
    picked = list(range(n)) if layers is None else layers
    rows, drawn = [], []
    for i in picked:
        if not -n <= i < n:
            raise SsmctlError(f"--layer {i}: the model has {n} layer(s) (0..{n - 1})")
        row, extra = _layer_report(model.layers[i], u, scope)
        rows.append(row)
        drawn.append(extra)
    report = {
        "schema": SCHEMA_VERSION, "family": model.family, "source": model.source,
        "input": {"batch": int(u.shape[0]), "tokens": int(u.shape[1]),
                  "note": "the same u at every reported layer's input, not the previous layers' outputs"},
        "layers": rows,
        "units": {"window_gain": "ℓ2 gain (σ_max of Φ over tokens [start, stop))", "lambda": "|Λ_i|"},
    }
    return report, drawn


def _text(report: dict[str, Any]) -> str:
    rows = []
    for r in report["layers"]:
        lam, hk, g = r["lambda"], r["hankel"], r["window_gain"]
        rows.append({
            "layer": r["index"], "family": r["family"] + (f" ({r['variant']})" if r["variant"] else ""),
            "lam": f"[{lam['min']:.4g}, {lam['max']:.4g}]", "above": f"{100 * lam['frac_above_1']:.1f}%",
            "rank": f"{hk['rank_max']} (median {hk['rank_median']:g})",
            "bound": "∞" if r["n_states"] is None else str(r["n_states"]),
            "full": f"{hk['cuts_at_full_rank']}/{len(hk['cuts'])}", "gain": f"{g['max']:.4g}",
        })
    cols = ["layer", "family", "lam", "above", "rank", "bound", "full", "gain"]
    heads = ["layer", "family", "|Λ_i| range", "Λ > 1", "Hankel rank max", "N", "cuts at min(t, L−t)",
             "ℓ2 gain"]
    first = report["layers"][0] if report["layers"] else {"scope": "core", "tokens": 0}
    rtol = report["layers"][0]["hankel"]["rtol"] if report["layers"] else HANKEL_RTOL
    return "\n".join([
        f"{report['family']} from {report['source']}: {first['scope']} scope, {report['input']['tokens']} tokens "
        f"× batch {report['input']['batch']} ({report['input']['note']})",
        format_table(rows, cols, heads),
        f"\nHankel rank: numerical rank (rtol {rtol:g}) of Φ[t:, :t], max over channels, at up to 64 cuts t; "
        "N: the state bound (∞: softmax has none)",
        "ℓ2 gain: σ_max of Φ over all tokens (per channel, max over channels; a full Φ: all channels at once)",
    ])


def _figure(report: dict[str, Any], drawn: list[dict[str, Any]], model: Any, u: Any) -> Any:
    import matplotlib.pyplot as plt

    from ..plot.dsf import hankel_rank_profile, lambda_traces, phi_heatmaps

    names = [f"layer {r['index']} {r['family']}" for r in report["layers"]]
    fig = plt.figure(figsize=(max(8.0, 3.4 * len(names) + 1.0), 7.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    phi_heatmaps(dict(zip(names, (d["phi"] for d in drawn))), axes=list(np.atleast_1d(top.subplots(1, len(names)))))
    ax_lam, ax_rank = bottom.subplots(1, 2)
    lambda_traces({n: (model.layers[r["index"]], u) for n, r in zip(names, report["layers"])}, ax=ax_lam)
    bounds = {r["n_states"] for r in report["layers"]} - {None}
    hankel_rank_profile(dict(zip(names, (d["profile"] for d in drawn))),
                        n_states=bounds.pop() if len(bounds) == 1 else None, ax=ax_rank)
    return fig


def cmd_dsf(args: argparse.Namespace) -> int:
    """``ssmctl dsf PATH|FAMILY``: print the per-layer DSF report, optionally plot it.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options: ``target``, ``tokens`` or ``random_tokens``, ``seed``, ``layer``, ``scope``, ``json``,
        ``plot`` and the hints.

    Returns
    -------
    int
        Exit status 0.

    Raises
    ------
    SsmctlError
        A target that is neither a path nor a family, bad inputs, a layer out of range, or what the analyses
        raise.
    """
    from .simulate import parse_layers

    hints = hints_from_args(args)
    model = model_from_target(args.target, hints=hints, hyper=hints, refuse_hyper=False)  # hints size a fresh model
    if args.tokens is None and args.random_tokens is None:
        args.random_tokens = DEFAULT_TOKENS
    u = _layer_input(model, _inputs(args, model, _width(model)))
    report, drawn = dsf_report(model, u, parse_layers(args.layer), args.scope)
    if args.plot:
        write_plot(_figure(report, drawn, model, u), args.plot)
    return emit(args, report, _text)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``dsf`` subcommand to an ``argparse`` subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``dsf`` subparser.
    """
    from ..analysis.dsf import SCOPES
    from ..checkpoints.hints import HINTS
    from ..models import families

    p = subparsers.add_parser("dsf", help="the DSF view per layer: Λ_i, Hankel rank of Φ across cuts, ℓ2 gain",
                              description=__doc__.split("\n\n")[2])
    p.add_argument("target", metavar="PATH|FAMILY", help="a checkpoint (anything ssmctl.load reads) or a family name")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tokens", metavar="FILE.npy", help="token ids (int) or embeddings / signal (float)")
    src.add_argument("--random-tokens", metavar="L", type=int,
                     help=f"L random token ids (a unit Gaussian signal without an embedding); default {DEFAULT_TOKENS}")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-tokens")
    p.add_argument("--layer", help="layers to report, e.g. '0' or '0,2-3' (default all)")
    p.add_argument("--scope", choices=SCOPES, default="core",
                   help="core: the DSF core on its own inputs; block: the whole mixer on the layer's input")
    add_output_options(p, plot="Φ heatmaps, Λ_i over tokens and the Hankel-rank profile",
                       json_help="strict JSON on stdout, full precision")
    variants = tuple(dict.fromkeys((*HINTS["variant"].choices, *(v for f in families().values() for v in f.variants))))
    add_hint_options(p, choices={"variant": variants})
    p.set_defaults(func=cmd_dsf)
    return p
