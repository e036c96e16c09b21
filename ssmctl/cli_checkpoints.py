"""``ssmctl inspect`` and ``ssmctl compare``: checkpoint commands of the command line.

    ssmctl inspect PATH [--json] [--plot FILE] [--eps EPS]
    ssmctl compare A B [--json] [--plot FILE] [--eps EPS] [--seed SEED]     (B: a checkpoint or "init")

:func:`register` adds both to the main parser's subcommands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .report import dumps

__all__ = ["register", "cmd_inspect", "cmd_compare"]


def _save(fig: Any, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}", file=sys.stderr)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_report, inspect_text

    report = inspect_report(args.path, eps=args.eps, eigenvalues=bool(args.plot))
    eigs = report.pop("eigenvalues", None)
    if args.plot:
        import matplotlib.pyplot as plt

        from .plot_compare import plot_inspect

        fig = plot_inspect(report, eigs)
        _save(fig, args.plot)
        plt.close(fig)
    print(dumps(report) if args.json else inspect_text(report))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .inspect import compare_report, compare_text

    report = compare_report(args.a, args.b, eps=args.eps, seed=args.seed, eigenvalues=bool(args.plot))
    eigs = report.pop("eigenvalues", None)
    if args.plot:
        import matplotlib.pyplot as plt

        from .plot_compare import plot_compare

        fig = plot_compare(report, eigs)
        _save(fig, args.plot)
        plt.close(fig)
    print(dumps(report) if args.json else compare_text(report))
    return 0


def register(subparsers: Any) -> None:
    """Add ``inspect`` and ``compare`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "inspect",
        help="per-layer eigenvalue table of a checkpoint (HF folder, mamba_ssm folder, state dict, Lightning .ckpt)",
        description="Per-layer eigenvalues of a checkpoint on disk. LTV layers (Mamba, Mamba-2, RG-LRU) are "
        "shown input-free, at the step sizes of the checkpoint's Δ bias alone (column 'at').",
    )
    p.add_argument("path", help="checkpoint file or folder (local only; nothing is downloaded)")
    p.add_argument("--json", action="store_true", help="strict JSON instead of a table")
    p.add_argument("--plot", metavar="FILE", help="write eigenvalue plots of every layer to FILE")
    p.add_argument("--eps", type=float, default=1e-2, help="memory-horizon threshold (default 1e-2)")
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
    p.add_argument("--json", action="store_true", help="strict JSON instead of a table")
    p.add_argument("--plot", metavar="FILE", help="write histograms and unit-disk overlays to FILE")
    p.add_argument("--eps", type=float, default=1e-2, help="memory-horizon threshold (default 1e-2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh init when B is 'init'")
    p.set_defaults(func=cmd_compare)
