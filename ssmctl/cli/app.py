"""The ``ssmctl`` command line.

    ssmctl figures                 eigenvalue figure and tables of every family's initialization
    ssmctl eig FAMILY [...]        eigenvalue statistics of one fresh layer (--json, --plot)
    ssmctl demo [--json]           full LTI analysis of a built-in S4D-style example layer
    ssmctl inspect PATH            per-layer eigenvalue table of a checkpoint (--json, --plot)
    ssmctl compare A B|init        how the eigenvalues moved between two checkpoints (--json, --plot)
    ssmctl simulate PATH           token-by-token eigenvalues, step sizes and memory of LTV layers on an input
    ssmctl analyze PATH|FAMILY     H2, H∞, DC gain, margins and Hankel values of every layer (--json, --plot)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import numpy as np

from .. import __version__
from .common import add_output_options, emit, prepare_outputs, write_plot
from ..errors import SsmctlError
from ..report import SCHEMA_VERSION, format_table

__all__ = ["main", "build_parser"]


# --- demo -----------------------------------------------------------------------------------------------
def demo_system(channels: int = 8, d_state: int = 32, seed: int = 0):
    """The built-in example: an S4D-Lin layer (A_n = −½ + iπn, ZOH, log-uniform Δ ∈ [1e-3, 1e-1])."""
    from ..systems.discretize import from_continuous

    rng = np.random.default_rng(seed)
    n = np.arange(d_state)
    a = np.broadcast_to(-0.5 + 1j * np.pi * n, (channels, d_state))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), channels))
    B = np.ones((channels, d_state, 1))
    C = (rng.standard_normal((channels, 1, d_state)) + 1j * rng.standard_normal((channels, 1, d_state))) * np.sqrt(0.5)
    D = rng.standard_normal((channels, 1, 1))
    sys_ = from_continuous(a, B, C, D, dt=dt, method="zoh", output="conj_pair", meta={"label": "S4D-Lin example"})
    return sys_, dt


def demo_report(channels: int = 8, d_state: int = 32, seed: int = 0, hsv_rtol: float = 1e-3) -> dict[str, Any]:
    from ..analysis.spectrum import memory_horizon
    from ..analysis.summary import channel_table

    sys_, dt = demo_system(channels, d_state, seed)
    k = memory_horizon(sys_)
    # The numbers `ssmctl analyze` prints, from the same table.
    t = channel_table(sys_, columns=("h2", "hinf", "dc_gain", "hankel_states"), hankel_tol=hsv_rtol)
    rows = []
    for c in range(channels):
        rows.append(
            {
                "channel": c,
                "dt": float(dt[c]),
                "n_states": sys_.n_states,
                "spectral_radius": float(t["radius"][c]),
                "memory_horizon_median": float(np.median(k[c])),
                "h2_norm": float(t["h2"][c]),
                "hinf_norm": float(t["hinf"][c]),
                "dc_gain": float(t["dc_gain"][c]),
                "states_used": int(t["hankel_states"][c]),
            }
        )
    return {
        "schema": SCHEMA_VERSION,
        "system": "S4D-Lin example: A_n = -1/2 + i*pi*n, ZOH, conj_pair output, B = 1, C ~ CN(0, 1), D ~ N(0, 1)",
        "eps": 1e-2,
        "units": {"memory_horizon": "tokens", "dt": "continuous time per token"},
        "hsv_rtol": hsv_rtol,
        "channels": rows,
    }


def demo_text(report: dict[str, Any]) -> str:
    cols = ["channel", "dt", "n_states", "spectral_radius", "memory_horizon_median", "h2_norm", "hinf_norm", "dc_gain", "states_used"]
    heads = ["ch", "Δ", "states", "radius", "memory (tok)", "H2", "H∞", "DC gain", f"HSV>{report['hsv_rtol']:g}·σ1"]
    return (f"{report['system']}\n\n{format_table(report['channels'], cols, heads)}\n\n"
            "memory horizon: tokens until |λ|^k = 1e-2 (median over modes)")


def cmd_demo(args: argparse.Namespace) -> int:
    return emit(args, demo_report(args.channels, args.d_state, args.seed), demo_text)


# --- eig -------------------------------------------------------------------------------------------------
def eig_report(family: str, **hyper: Any) -> tuple[dict[str, Any], Any]:
    from ..analysis.cloud import CLOUD_INPUT, eigenvalue_cloud
    from ..analysis.spectrum import memory_horizon
    from ..models import get_family, init

    record = get_family(family)
    model = init(family, n_layers=1, **hyper)
    layer = model.layers[0]
    lam = eigenvalue_cloud(layer)
    r = np.abs(lam)
    k = memory_horizon(lam)
    report = {
        "schema": SCHEMA_VERSION,
        "family": family,
        "kind": record.kind,
        "config": model.config,
        "n_eigenvalues": int(lam.size),
        "abs_min": float(r.min()),
        "abs_median": float(np.median(r)),
        "abs_max": float(r.max()),
        "eps": 1e-2,
        "memory_horizon_median": float(np.median(k)),
        "memory_horizon_max": float(k.max()),
        "memory_horizon_inf_count": int(np.isinf(k).sum()),
        "units": {"memory_horizon": "tokens"},
    }
    if record.kind == "LTV":
        report["input"] = dict(CLOUD_INPUT, note="unit-RMS Gaussian at the layer input; eigenvalues of A_bar_t over all tokens")
    return report, layer


def eig_text(report: dict[str, Any]) -> str:
    cols = ["family", "kind", "n_eigenvalues", "abs_min", "abs_median", "abs_max", "memory_horizon_median", "memory_horizon_max"]
    heads = ["family", "kind", "n", "|λ| min", "|λ| median", "|λ| max", "memory median", "memory max"]
    ltv = "; LTV: over a unit-RMS Gaussian input batch" if report["kind"] == "LTV" else ""
    return f"{format_table([report], cols, heads)}\n\nmemory horizon in tokens at ε = 1e-2{ltv}"


def cmd_eig(args: argparse.Namespace) -> int:
    hyper = {k: v for k, v in dict(variant=args.variant, preset=args.preset, d_model=args.d_model, d_state=args.d_state, seed=args.seed).items() if v is not None}
    report, layer = eig_report(args.family, **hyper)
    if args.plot:
        import matplotlib.pyplot as plt

        from ..plot import lti as plot

        fig, ax = plt.subplots(figsize=(5.8, 5), layout="constrained")  # room for the colour bar
        plot.eigenvalues(layer, ax=ax, title=f"{args.family} (fresh init)")
        write_plot(fig, args.plot)
    return emit(args, report, eig_text)


# --- figures ---------------------------------------------------------------------------------------------
def cmd_figures(args: argparse.Namespace) -> int:
    from ..plot.figures import write_all

    for path in write_all(args.outdir):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``ssmctl`` argument parser with every subcommand (figures, eig, demo, inspect, compare, simulate, analyze, dsf).

    Returns
    -------
    argparse.ArgumentParser
        Each subcommand sets ``func``, the function that runs it on the parsed Namespace.
    """
    parser = argparse.ArgumentParser(prog="ssmctl", description="Deep state-space models seen as linear systems.")
    parser.add_argument("--version", action="version", version=f"ssmctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("figures", help="eigenvalue figure and tables of every family's initialization")
    p.add_argument("--outdir", default="figures", help="folder to write into (created when missing)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("eig", help="eigenvalue statistics of one fresh layer of FAMILY")
    p.add_argument("family")
    p.add_argument("--variant")
    p.add_argument("--preset")
    p.add_argument("--d-model", type=int)
    p.add_argument("--d-state", type=int)
    p.add_argument("--seed", type=int)
    add_output_options(p, plot="the eigenvalues (unit disk, or the near-1 view when they crowd the unit circle)")
    p.set_defaults(func=cmd_eig)

    p = sub.add_parser("demo", help="analyse a built-in S4D-style example layer")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--d-state", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(func=cmd_demo)

    from .checkpoints import register as register_checkpoints

    register_checkpoints(sub)

    from .simulate import register as register_simulate

    register_simulate(sub)

    from .analyze import register as register_analyze

    register_analyze(sub)

    from .dsf import register as register_dsf

    register_dsf(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ssmctl`` command line.

    Parameters
    ----------
    argv : sequence of str or None, default None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: the command's (0 on success), or 2 after printing an :class:`SsmctlError` to stderr as
        ``ssmctl COMMAND: error: MESSAGE``. Usage errors exit through argparse (``SystemExit(2)``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prepare_outputs(args)
        return int(args.func(args) or 0)
    except SsmctlError as exc:
        print(f"ssmctl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
