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

__all__ = [
    "Parser", "add_output_options", "add_eps_option", "add_hint_options", "add_seed_option", "hints_from_args",
    "positive_int", "seed_value", "prepare_outputs", "emit", "write_plot", "model_from_target", "variant_keywords", "family_choices",
]


class Parser(argparse.ArgumentParser):
    """argparse's parser with usage errors on one line (``ssmctl simulate: error: argument --chunk: ...``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exit with status 2.

        Parameters
        ----------
        message : str
            argparse's description of the problem.
        """
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_option(text: str, lo: int, hi: float, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not lo <= value < hi:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An option value that must be an integer >= 1 (argparse ``type``).

    Parameters
    ----------
    text : str
        The value as typed.

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        Not an integer, or < 1.
    """
    return _int_option(text, 1, float("inf"), "a positive integer")


def seed_value(text: str) -> int:
    """A random seed: an integer in [0, 2**63), what every family's init takes (argparse ``type``).

    Parameters
    ----------
    text : str
        The value as typed.

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        Not an integer, negative, or too large.
    """
    return _int_option(text, 0, 2**63, "an integer in [0, 2**63)")


def add_seed_option(p: argparse.ArgumentParser, what: str, default: int | None = 0) -> None:
    """Add ``--seed`` (a non-negative integer), saying what it seeds.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    what : str
        What the seed draws, for the help text (e.g. "the fresh init when B is 'init'").
    default : int or None, default 0
        The default seed (None: the family's own default).
    """
    shown = "the family's" if default is None else default
    p.add_argument("--seed", type=seed_value, default=default, help=f"seed of {what} (default: {shown})")


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
    p.add_argument("--eps", type=float, default=1e-2,
                   help="memory-horizon threshold in (0, 1): steps until |λ|^k = EPS (default 1e-2)")


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
                           type=None if allowed else hint.type, help=hint.help,
                           metavar=None if allowed else hint.name.upper())


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
        hyper.update(variant_keywords(target, hyper.pop("variant", None)))
        return init(target, **hyper)
    raise SsmctlError(f"{target!r} is neither a file or folder nor a family name; families: {', '.join(families())}")


def variant_keywords(family: str, variant: str | None) -> dict[str, Any]:
    """``--variant V`` as the family's init keyword: ``variant`` (S4D, the DSF mixers) or ``a_init`` (Mamba-2, RG-LRU).

    Parameters
    ----------
    family : str
        A registered family.
    variant : str or None
        The value of ``--variant``.

    Returns
    -------
    dict
        Keywords for ``ssmctl.init``; empty without a variant or when the family has a single one (S4's legs).

    Raises
    ------
    SsmctlError
        A family with one initialization, or a variant it does not have (the known ones are listed).
    """
    from ..errors import SsmctlError, unknown_name
    from ..models import get_family

    if variant is None:
        return {}
    record = get_family(family)
    if not record.variants:
        raise SsmctlError(f"{family} has one initialization; --variant does not apply (see ssmctl eig --help)")
    if variant not in record.variants:
        raise unknown_name(f"{family} variant (--variant)", variant, record.variants)
    key = next((k for k in ("variant", "a_init") if k in record.defaults), None)
    return {key: variant} if key else {}


def family_choices() -> str:
    """The families with their kind, variants and presets, one line each (the epilog of ``eig --help``).

    Returns
    -------
    str
    """
    from ..models import families, get_family

    lines = ["families (variants; presets):"]
    for name in families():
        record = get_family(name)
        variants = ", ".join(record.variants) or "-"
        presets = ", ".join(record.presets) or "-"
        lines.append(f"  {name:<9} {record.kind}  variants: {variants}; presets: {presets}")
    return "\n".join(lines)
