"""Writing figures and output folders: one way for every command and ``ssmctl.plot.figures``.

    save_figure(fig, "out/eig.svg")    # creates out/, format from the suffix, one dpi, closes fig

:func:`check_figure_path` and :func:`check_folder` answer before anything is computed whether a path can be
written, so a long run does not fail at its last step; they create nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SsmctlError

__all__ = ["FIGURE_FORMATS", "DPI", "figure_format", "check_folder", "ensure_folder", "check_figure_path",
           "save_figure"]

# Suffix → matplotlib format name.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

# Pixels per inch of PNG files, and of the rasterized scatter clouds embedded in SVG and PDF files.
DPI = 150

# Fixed creation dates and SVG ids: saving the same figure twice gives the same bytes, so a regenerated
# figures/ folder only differs where a figure does.
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}
_SVG_SALT = "ssmctl"


def figure_format(path: str | os.PathLike[str]) -> str:
    """The format of a figure file from its suffix (case-insensitive): ``"png"``, ``"svg"`` or ``"pdf"``.

    Parameters
    ----------
    path : str or path-like
        The figure file (it need not exist).

    Returns
    -------
    str
        The matplotlib format name.

    Raises
    ------
    SsmctlError
        The suffix is missing or not one of :data:`FIGURE_FORMATS`.
    """
    suffix = Path(path).suffix
    known = ", ".join(FIGURE_FORMATS)
    if not suffix:
        raise SsmctlError(f"{os.fspath(path)}: no file suffix to tell the figure format; known: {known}")
    fmt = FIGURE_FORMATS.get(suffix.lower())
    if fmt is None:
        raise SsmctlError(f"{os.fspath(path)}: unknown figure format {suffix!r}; known: {known}")
    return fmt


def check_folder(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`SsmctlError` unless ``folder`` exists as a writable folder or can be created; creates nothing.

    The nearest existing ancestor decides: it must be a folder this process may write into.

    Parameters
    ----------
    folder : str or path-like
        The folder to check; an empty string means the current folder.

    Raises
    ------
    SsmctlError
        The nearest existing ancestor is not a folder, or this process may not write into it.
    """
    target = Path(folder or ".")
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SsmctlError(f"cannot create folder {os.fspath(target)}: {os.fspath(probe)} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        if probe == target:
            raise SsmctlError(f"cannot write into folder {os.fspath(target)}: not writable")
        raise SsmctlError(f"cannot create folder {os.fspath(target)}: {os.fspath(probe)} is not writable")


def ensure_folder(folder: str | os.PathLike[str]) -> None:
    """Create ``folder`` and its parents if missing; a clear :class:`SsmctlError` where that is impossible.

    Parameters
    ----------
    folder : str or path-like
        The folder to create; an empty string means the current folder.

    Raises
    ------
    SsmctlError
        As :func:`check_folder`, or when creating the folder fails.
    """
    check_folder(folder)
    try:
        os.makedirs(folder or ".", exist_ok=True)
    except OSError as exc:
        raise SsmctlError(f"cannot create folder {os.fspath(folder)}: {exc.strerror or exc}") from None


def check_figure_path(path: str | os.PathLike[str]) -> str:
    """Check a figure path before drawing: known suffix, writable (or creatable) folder. Returns the format.

    Nothing is created.

    Parameters
    ----------
    path : str or path-like
        The figure file to be written.

    Returns
    -------
    str
        ``"png"``, ``"svg"`` or ``"pdf"``.

    Raises
    ------
    SsmctlError
        Unknown or missing suffix, a folder that cannot be written or created, or a path that is a folder.
    """
    fmt = figure_format(path)
    check_folder(Path(path).parent)
    if os.path.isdir(path):
        raise SsmctlError(f"cannot write {os.fspath(path)}: it is a folder")
    return fmt


def save_figure(fig: Any, path: str | os.PathLike[str], *, close: bool = True) -> str:
    """Write a matplotlib figure to ``path``: the format from the suffix, :data:`DPI`, tight bounding box.

    The parent folder is created when missing. A figure's layout engine runs once and its result is kept
    (saving again, in any format, gives the same layout and the same bytes). Vector formats keep the figure's rasterized artists (the large
    scatter clouds of :func:`ssmctl.plot.eigenvalues`) as embedded images at :data:`DPI`.

    Parameters
    ----------
    fig : matplotlib Figure
    path : str or path-like
        Ending in ``.png``, ``.svg`` or ``.pdf`` (any case).
    close : bool
        Close the figure afterwards (also when writing fails); pass False to save it again in another format.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    SsmctlError
        Unknown suffix, a folder that cannot be created or written, or a failed write.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    try:
        fmt = check_figure_path(path)
        ensure_folder(Path(path).parent)
        # Run the layout engine once and freeze its result: constrained layout around equal-aspect axes with
        # a colour bar moves by a pixel on every draw, and the same figure must give the same bytes.
        if fig.get_layout_engine() is not None:
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
        try:
            with matplotlib.rc_context({"svg.hashsalt": _SVG_SALT}):
                fig.savefig(path, format=fmt, dpi=DPI, bbox_inches="tight", metadata=_METADATA[fmt])
        except OSError as exc:
            raise SsmctlError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
    finally:
        if close:
            plt.close(fig)
    return os.fspath(path)
