"""Where an eigenvalue is drawn: the unit disk, or one of the two views control theorists use near z = 1.

Trained and long-memory SSMs put most eigenvalues within a hair of the unit circle, where the disk shows a
line at its right edge. Two views separate them:

- ``"splane"``, the continuous-time view: s = ln λ per token, Re s = ln|λ| (the decay rate, negative when
  stable) against Im s = arg λ (rad/token). The stability boundary is the line Re s = 0. The Re axis is
  symmetric-logarithmic so decay rates of different orders of magnitude separate.
- ``"margin"``: 1 − |λ| on a log axis (the distance to the unit circle; the memory horizon is
  k_ε ≈ ln(1/ε) / (1 − |λ|) there) against arg λ (rad/token).

The rule of ``view="auto"`` (:func:`choose_view`): the ``"margin"`` view when at least half of the
eigenvalues lie closer to the unit circle than :data:`NEAR_CIRCLE` (1 − |λ| < 0.01: on a disk of a few
inches that is under a marker's width, and a memory horizon over ln(100)/0.01 ≈ 460 tokens at ε = 1e-2),
the disk otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SsmctlError

__all__ = ["VIEWS", "NEAR_CIRCLE", "choose_view", "view_coordinates", "view_labels", "setup_view_axes"]

VIEWS = ("auto", "disk", "splane", "margin")
NEAR_CIRCLE = 0.01


def choose_view(lam: np.ndarray, view: str = "auto") -> str:
    """The view to draw ``lam`` in: ``view`` itself, or for ``"auto"`` the rule of this module.

    Parameters
    ----------
    lam : ndarray, complex, any shape
        Discrete eigenvalues.
    view : {"auto", "disk", "splane", "margin"}, default "auto"

    Returns
    -------
    str
        ``"disk"``, ``"splane"`` or ``"margin"``.

    Raises
    ------
    SsmctlError
        An unknown ``view``.
    """
    if view not in VIEWS:
        raise SsmctlError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
    if view != "auto":
        return view
    lam = np.asarray(lam).reshape(-1)
    if lam.size and np.count_nonzero(1.0 - np.abs(lam) < NEAR_CIRCLE) * 2 >= lam.size:
        return "margin"
    return "disk"


def view_coordinates(lam: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, drawn) of eigenvalues in a view; ``drawn`` marks those the view can show.

    Parameters
    ----------
    lam : ndarray, complex, shape (n,)
    view : {"disk", "splane", "margin"}

    Returns
    -------
    x, y : ndarray, float, shape (k,)
        The coordinates of the k drawable eigenvalues: (Re λ, Im λ), (ln|λ|, arg λ) or (1 − |λ|, arg λ).
    drawn : ndarray, bool, shape (n,)
        Which eigenvalues those are: all on the disk; λ ≠ 0 in the s-plane; |λ| < 1 in the margin view (a
        log axis has no place for 1 − |λ| ≤ 0).
    """
    lam = np.asarray(lam, dtype=np.complex128).reshape(-1)
    if view == "disk":
        return lam.real, lam.imag, np.ones(lam.shape, dtype=bool)
    r = np.abs(lam)
    if view == "splane":
        drawn = r > 0
        return np.log(r[drawn]), np.angle(lam[drawn]), drawn
    if view == "margin":
        drawn = r < 1
        return 1.0 - r[drawn], np.angle(lam[drawn]), drawn
    raise SsmctlError(f"unknown view {view!r}; known: disk, splane, margin")


def view_labels(view: str) -> tuple[str, str]:
    """(x label, y label) of a view, with units.

    Parameters
    ----------
    view : {"disk", "splane", "margin"}

    Returns
    -------
    (str, str)
    """
    return {
        "disk": ("Re λ", "Im λ"),
        "splane": ("Re ln λ = ln|λ|  (1/token, symlog)", "Im ln λ = arg λ  (rad/token)"),
        "margin": ("1 − |λ|  (distance to the unit circle, log)", "arg λ  (rad/token)"),
    }[view]


def setup_view_axes(ax: Any, view: str, x: np.ndarray, y: np.ndarray) -> None:
    """Scales, limits, reference lines (unit circle, stability boundary) and labels of a view's axes.

    Parameters
    ----------
    ax : matplotlib Axes
        Axes the points were drawn into.
    view : {"disk", "splane", "margin"}
    x, y : ndarray, float, shape (k,)
        The drawn coordinates (:func:`view_coordinates`): they set the limits.

    Returns
    -------
    None
    """
    from ._common import unit_circle

    xl, yl = view_labels(view)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    if view == "disk":
        unit_circle(ax)
        ax.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax.axvline(0, color="0.85", lw=0.5, zorder=0)
        lim = max(1.05, float(np.hypot(x, y).max()) * 1.05 if x.size else 1.05)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        return
    spread = float(np.abs(y).max()) if y.size else 0.0
    if spread > np.pi / 4:
        ax.set_ylim(-np.pi * 1.05, np.pi * 1.05)
        ax.set_yticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["−π", "−π/2", "0", "π/2", "π"])
    else:  # real or nearly real eigenvalues (Mamba, RG-LRU): no need for the whole circle of phases
        half = max(spread * 1.2, 0.05)
        ax.set_ylim(-half, half)
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    if view == "splane":
        nonzero = np.abs(x[x != 0])
        ax.set_xscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 1e-3)
        ax.axvline(0, color="0.3", lw=0.8)  # the stability boundary |λ| = 1
        ax.set_xlim(right=max(float(nonzero.min()) if nonzero.size else 1e-3, float(x.max()) if x.size else 0))
    else:
        ax.set_xscale("log")
        if x.size:
            ax.set_xlim(float(x.min()) / 1.5, min(float(x.max()) * 1.5, 2.0))
