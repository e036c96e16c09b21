"""``ssmctl inspect`` and ``ssmctl compare``: checkpoint commands of the command line.

    ssmctl inspect PATH [--json] [--plot FILE] [--eps EPS] [--dt-transform {exp,softplus}]
    ssmctl compare A B [--json] [--plot FILE] [--eps EPS] [--seed SEED] [hints]   (B: a checkpoint or "init")

:func:`register` adds both to the main parser's subcommands.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_eps_option, add_hint_options, add_output_options, emit, hints_from_args, write_plot

__all__ = ["register", "cmd_inspect", "cmd_compare"]


def cmd_inspect(args: argparse.Namespace) -> int:
    """``ssmctl inspect PATH``: print the per-layer eigenvalue report of a checkpoint, optionally plot it.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options: ``path``, ``eps``, ``json``, ``plot``.

    Returns
    -------
    int
        Exit status 0.
    """
    from ..checkpoints.inspect import inspect_report, inspect_text

    report = inspect_report(args.path, eps=args.eps, eigenvalues=bool(args.plot), hints=hints_from_args(args))
    eigs = report.pop("eigenvalues", None)
    if args.plot:
        from ..plot.compare import plot_inspect

        write_plot(plot_inspect(report, eigs), args.plot)
    return emit(args, report, inspect_text)


def cmd_compare(args: argparse.Namespace) -> int:
    """``ssmctl compare A B``: print how the eigenvalues moved between two checkpoints (or A and a fresh init).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options: ``a``, ``b`` (a checkpoint or ``"init"``), ``eps``, ``seed``, ``json``, ``plot``.

    Returns
    -------
    int
        Exit status 0.
    """
    from ..checkpoints.inspect import compare_report, compare_text

    report = compare_report(args.a, args.b, eps=args.eps, seed=args.seed, eigenvalues=bool(args.plot),
                            hints=hints_from_args(args))
    eigs = report.pop("eigenvalues", None)
    if args.plot:
        from ..plot.compare import plot_compare

        write_plot(plot_compare(report, eigs), args.plot)
    return emit(args, report, compare_text)


def register(subparsers: Any) -> None:
    """Add ``inspect`` and ``compare`` to an ``argparse`` subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = subparsers.add_parser(
        "inspect",
        help="per-layer eigenvalue table of a checkpoint (HF folder, mamba_ssm folder, state dict, Lightning .ckpt)",
        description="Per-layer eigenvalues of a checkpoint on disk. LTV layers (Mamba, Mamba-2, RG-LRU) are "
        "shown input-free, at the step sizes of the checkpoint's Δ bias alone (column 'at').",
    )
    p.add_argument("path", help="checkpoint file or folder (local only; nothing is downloaded)")
    add_output_options(p, plot="eigenvalue plots of every layer")
    add_eps_option(p)
    add_hint_options(p)
    p.set_defaults(func=cmd_inspect)

    p = subparsers.add_parser(
        "compare",
        help="how eigenvalues moved between two checkpoints, or a checkpoint and a fresh init",
        description="Radius and phase histograms (bins of Task-Level-Insights-from-Eigenvalues), unit-disk "
        "overlays and memory-horizon changes per layer. B may be 'init': a fresh initialization of A's family "
        "and sizes.",
    )
    p.add_argument("a", help="checkpoint (e.g. after training)")
    p.add_argument("b", help="second checkpoint (e.g. before training) or 'init'")
    add_output_options(p, plot="histograms and unit-disk overlays")
    add_eps_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh init when B is 'init'")
    add_hint_options(p)
    p.set_defaults(func=cmd_compare)
