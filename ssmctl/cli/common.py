"""What the ``ssmctl`` subcommands share: the ``--json`` / ``--plot`` / ``--eps`` options, checking output paths
before any work, printing a report, writing a plot.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Mapping

from ..plot.io import FIGURE_FORMATS, check_figure_path, check_folder, save_figure
from ..errors import SsmctlError
from ..report import dumps

__all__ = ["add_output_options", "add_eps_option", "add_hint_options", "hints_from_args", "prepare_outputs", "emit",
           "write_plot", "model_from_target"]


def add_output_options(p: argparse.ArgumentParser, *, plot: str | None = None,
                       json_help: str = "strict JSON instead of a table") -> None:
    """Add ``--json`` and, when ``plot`` says what the figure shows, ``--plot FILE``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    plot : str or None, default None
        What the figure shows, used in the help of ``--plot``; None adds no ``--plot`` option.
    json_help : str, default "strict JSON instead of a table"
        Help text of ``--json``.
    """
    p.add_argument("--json", action="store_true", help=json_help)
    if plot is not None:
        formats = ", ".join(FIGURE_FORMATS)
        p.add_argument("--plot", metavar="FILE",
                       help=f"write {plot} to FILE ({formats}; missing folders are created)")


def add_eps_option(p: argparse.ArgumentParser) -> None:
    """Add ``--eps``, the memory-horizon threshold (float, default 1e-2).

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    """
    p.add_argument("--eps", type=float, default=1e-2, help="memory-horizon threshold (default 1e-2)")


def add_hint_options(p: argparse.ArgumentParser, choices: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Add one option per hint of :data:`ssmctl.checkpoints.hints.HINTS` (e.g. ``--dt-transform {exp,softplus}``).

    Parameters
    ----------
    p : argparse.ArgumentParser
        The parser of a command that loads checkpoints.
    choices : mapping hint name → tuple of str, optional
        Wider choices for a hint on a command that also takes them elsewhere (``ssmctl dsf FAMILY --variant``
        builds a fresh model of any family's variant); a checkpoint still checks the value against the table.
    """
    from ..checkpoints.hints import HINTS

    group = p.add_argument_group("hints", "settings a checkpoint may not record (used only where it does not)")
    for hint in HINTS.values():
        allowed = (choices or {}).get(hint.name, hint.choices)
        group.add_argument(hint.flag, dest=f"hint_{hint.name}", choices=allowed,
                           type=None if allowed else hint.type, help=hint.help)


def hints_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The hints given on the command line, keyword → value (options left out are not included).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of a parser that :func:`add_hint_options` extended.

    Returns
    -------
    dict
        For ``ssmctl.load(path, **hints)``.
    """
    return {k[len("hint_"):]: v for k, v in vars(args).items() if k.startswith("hint_") and v is not None}


def prepare_outputs(args: argparse.Namespace) -> None:
    """Refuse an unwritable or unknown ``--plot`` / ``--outdir`` before any work; draw off-screen.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options; ``plot`` and ``outdir`` are read where present. When either is set, matplotlib is
        switched to the Agg backend.

    Raises
    ------
    SsmctlError
        Unknown figure suffix, or a folder that cannot be written or created.
    """
    plot = getattr(args, "plot", None)
    outdir = getattr(args, "outdir", None)
    if plot:
        check_figure_path(plot)
    if outdir is not None:
        check_folder(outdir)
    if plot or outdir is not None:
        import matplotlib

        # Commands only write files: no window, and no GUI toolkit to import.
        matplotlib.use("Agg")


def emit(args: argparse.Namespace, report: Mapping[str, Any], text: Callable[[Any], str]) -> int:
    """Print ``report`` as strict JSON (``--json``) or as ``text(report)``; returns the exit status 0.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options; ``args.json`` chooses the format.
    report : mapping
        The command's report (JSON-able through :func:`ssmctl.report.dumps`).
    text : callable
        ``text(report) -> str``, the human-readable form.

    Returns
    -------
    int
        Exit status 0.
    """
    print(dumps(report) if args.json else text(report))
    return 0


def write_plot(fig: Any, path: str) -> None:
    """Save ``fig`` with :func:`ssmctl.plot.io.save_figure` (closing it) and say so on stderr.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    path : str
        Output file; its suffix picks the format (missing folders are created).

    Raises
    ------
    SsmctlError
        Unknown suffix, a folder that cannot be created or written, or a failed write.
    """
    save_figure(fig, path)
    print(f"wrote {path}", file=sys.stderr)


def model_from_target(target: str, *, hints: Mapping[str, Any] | None = None,
                      hyper: Mapping[str, Any] | None = None, refuse_hyper: bool = True) -> Any:
    """The model a ``PATH|FAMILY`` argument names: the checkpoint when ``target`` exists on disk, else a fresh
    ``init(target, **hyper)`` of that family.

    Parameters
    ----------
    target : str
        A checkpoint file or folder, or a family name.
    hints : mapping, optional
        For ``ssmctl.load(path, **hints)``.
    hyper : mapping, optional
        A fresh model's hyperparameters (None values dropped).
    refuse_hyper : bool, default True
        Whether hyperparameters given with a checkpoint are an error (its sizes are its own).

    Returns
    -------
    Model

    Raises
    ------
    SsmctlError
        ``target`` is neither; hyperparameters with a checkpoint (``refuse_hyper``); what load/init raise.
    """
    import os

    from ..checkpoints.load import load
    from ..models import families, init

    hyper = {k: v for k, v in (hyper or {}).items() if v is not None}
    if os.path.exists(target):
        if hyper and refuse_hyper:
            flags = ", ".join("--" + k.replace("_", "-") for k in hyper)
            raise SsmctlError(f"{flags} set the sizes of a fresh init; {target!r} is a checkpoint, whose sizes are its own")
        return load(target, **dict(hints or {}))
    if target in families():
        return init(target, **hyper)
    raise SsmctlError(f"{target!r} is neither a file or folder nor a family name; families: {', '.join(families())}")
