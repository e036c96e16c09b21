"""Eigenvalues and what they say about memory: spectral radius, margin, memory horizon."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg

from ..report import format_modulus
from ..errors import SsmctlError, SsmctlWarning, UnsupportedSystemError
from ..systems.control import standard_form
from ..systems.lti import DenseLTI, DiagonalLTI, _as_array, as_system

__all__ = [
    "eigenvalues", "spectral_radius", "spectral_margin", "memory_horizon", "zeros", "MARGINAL_TOL",
    "marginal_note", "format_modulus",
]

#: A mode with |λ| ≥ 1 − MARGINAL_TOL is reported as marginal: its memory horizon (≥ 4.6e6 tokens at ε = 1e-2)
#: exceeds any sequence, and a trained value that close to 1 is stable or not only by rounding. inspect,
#: simulate and :func:`spectral_radius` all use this one threshold.
MARGINAL_TOL = 1e-6


def marginal_note(radius: Any, what: str = "spectral radius") -> str | None:
    """The warning text for a spectral radius within :data:`MARGINAL_TOL` of the unit circle, else None.

    Parameters
    ----------
    radius : float or array_like
        Spectral radius (or radii: the largest is judged).
    what : str, default "spectral radius"
        What the number is, for the message.

    Returns
    -------
    str or None
        None when max radius < 1 − MARGINAL_TOL (or no finite radius); otherwise a sentence naming the value
        with :func:`format_modulus` (1 − |λ| shown), and whether it is marginal (< 1), on the circle or outside.
    """
    r = np.asarray(radius, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0 or r.max() < 1.0 - MARGINAL_TOL:
        return None
    top = float(r.max())
    if top < 1.0:
        state = f"within {MARGINAL_TOL:g} of the unit circle: marginally stable, memory beyond any sequence"
    elif top == 1.0:
        state = "on the unit circle: not asymptotically stable"
    else:
        state = "outside the unit circle: unstable"
    return f"{what} {format_modulus(top)} is {state}"


def eigenvalues(sys: Any) -> np.ndarray:
    """Discrete eigenvalues of the equivalent system.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``

    Returns
    -------
    ndarray, complex, shape (..., n)
        For real output modes of a :class:`DiagonalLTI` both members of each conjugate pair (n = 2N); for a
        :class:`DenseLTI` its ``eigenvalues()``: the exact spectrum it carries (S4 at init), else LAPACK's,
        with a warning when the eigenproblem is ill-conditioned. A layer answers with
        ``layer.eigenvalues()``, which for LTI families is its system's: every entry point gives one answer.
    """
    if not isinstance(sys, (DiagonalLTI, DenseLTI)) and callable(getattr(sys, "eigenvalues", None)):
        return np.asarray(sys.eigenvalues())  # a layer: its family's exact spectrum where it has one
    return as_system(sys).eigenvalues()


def _moduli(sys_or_eigs: Any) -> np.ndarray:
    if isinstance(sys_or_eigs, (DiagonalLTI, DenseLTI)) or hasattr(sys_or_eigs, "system"):
        return np.abs(eigenvalues(sys_or_eigs))
    arr = _as_array("eigenvalues", sys_or_eigs, np.float64)
    return np.abs(arr)


def spectral_radius(sys: Any) -> np.ndarray:
    """Largest eigenvalue modulus max |λ|, shape (...) (batch dims).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI, a layer with ``.system()``, or array_like of eigenvalues, shape (..., n)
        Arrays are taken as discrete eigenvalues, the last axis running over the modes.

    Returns
    -------
    ndarray, float, shape (...)
        max_i |λ_i| per batch element (over the augmented modes of real output systems). An
        :class:`~ssmctl.errors.SsmctlWarning` (:func:`marginal_note`) says when the largest is at or beyond
        1 − :data:`MARGINAL_TOL`.

    Raises
    ------
    ShapeError
        When an array of eigenvalues is not numeric.
    NonFiniteError
        When an array of eigenvalues holds NaN or Inf.
    """
    radius = _moduli(sys).max(axis=-1)
    note = marginal_note(radius)
    if note is not None:
        warnings.warn(note, SsmctlWarning, stacklevel=2)
    return radius


def spectral_margin(sys: Any) -> np.ndarray:
    """1 − spectral radius: distance of the slowest mode to the unit circle; negative when unstable.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI, a layer with ``.system()``, or array_like of eigenvalues, shape (..., n)
        As in :func:`spectral_radius`.

    Returns
    -------
    ndarray, float, shape (...)
        1 − max_i |λ_i| per batch element.

    Raises
    ------
    ShapeError
        When an array of eigenvalues is not numeric.
    NonFiniteError
        When an array of eigenvalues holds NaN or Inf.
    """
    return 1.0 - spectral_radius(sys)


def memory_horizon(sys_or_eigs: Any, eps: float = 1e-2) -> np.ndarray:
    """Steps until each mode's free response decays to ``eps``: k_ε(λ) = ln ε / ln |λ|.

    Parameters
    ----------
    sys_or_eigs : system, layer, or array_like of discrete eigenvalues (any shape)
    eps : float in (0, 1)
        Decay threshold; 1e-2 by default (τ at 1/e is k_ε with eps = 1/e).

    Returns
    -------
    ndarray, float, shape of the eigenvalues
        Real-valued steps; ``inf`` for |λ| ≥ 1, 0 for λ = 0.
    """
    if not 0.0 < eps < 1.0:
        raise SsmctlError(f"eps must lie in (0, 1), got {eps}")
    r = _moduli(sys_or_eigs)
    with np.errstate(divide="ignore"):
        log_r = np.log(r)
    out = np.full(r.shape, np.inf)
    decaying = r < 1.0
    out[decaying] = np.log(eps) / log_r[decaying]  # log_r = -inf at λ = 0 gives 0 steps
    return out


# A generalized eigenvalue α/β of the Rosenbrock pencil counts as infinite when |β| ≤ this·|α|: the
# rounding level of β for the structurally infinite ones is ~eps·‖pencil‖, far below it.
_INFINITE_ZERO_RTOL = 1e-10
# D' is inverted (zeros = eig(A − B'D'^{-1}C)) only when it is this well conditioned.
_FEEDTHROUGH_COND = 1e8


def zeros(sys: Any) -> np.ndarray:
    """Transmission zeros of a SISO or square MIMO system.

    The finite generalized eigenvalues of the Rosenbrock pencil of the textbook realization
    (A = Ā, B' = ĀB̄, C, D' = CB̄ + D): [[A, B'], [C, D']] − z·[[I, 0], [0, 0]], as python-control's
    ``zeros(to_control(sys))`` defines them (for minimal systems; decoupling zeros of non-minimal systems
    are included). Where D' is well conditioned the pencil's Schur complement is used: the n zeros are the
    eigenvalues of A − B'D'^{-1}C.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``; p = m required

    Returns
    -------
    ndarray, complex
        Without batch dims: shape (k,), the k finite zeros (sorted with ``np.sort_complex``). With batch
        dims: shape (..., k_max), each row's zeros first, padded with NaN where a system has fewer than the
        most numerous row (k_max ≤ n).

    Raises
    ------
    UnsupportedSystemError
        When the numbers of inputs and outputs differ (non-square systems generically have no transmission
        zeros and the pencil is not square).
    """
    sys = as_system(sys)
    p, m = sys.n_outputs, sys.n_inputs
    if p != m:
        raise UnsupportedSystemError(
            f"zeros needs a square system (as many outputs as inputs); this one has p={p} outputs and m={m} "
            "inputs. Select a square subsystem (rows of C and D, columns of B and D) first"
        )
    A, Bp, C, Dp = (x.reshape((-1,) + x.shape[-2:]) for x in standard_form(sys))
    nb, n = A.shape[0], A.shape[-1]
    found: list[np.ndarray] = [np.zeros(0, dtype=np.complex128)] * nb
    if n:
        with np.errstate(all="ignore"):
            cond = np.linalg.cond(Dp) if m else np.full(nb, np.inf)
        direct = np.isfinite(cond) & (cond < _FEEDTHROUGH_COND)
        if direct.any():
            Z = np.linalg.eigvals(A[direct] - Bp[direct] @ np.linalg.solve(Dp[direct], C[direct]))
            for i, z in zip(np.flatnonzero(direct), Z):
                found[i] = z.astype(np.complex128)
        eye = np.zeros((n + p, n + m))
        eye[:n, :n] = np.eye(n)
        for i in np.flatnonzero(~direct):
            pencil = np.block([[A[i], Bp[i]], [C[i], Dp[i]]])
            alpha, beta = scipy.linalg.eigvals(pencil, eye, homogeneous_eigvals=True)
            finite = np.abs(beta) > _INFINITE_ZERO_RTOL * np.abs(alpha)
            found[i] = (alpha[finite] / beta[finite]).astype(np.complex128)
    found = [np.sort_complex(z) for z in found]
    if not sys.batch_shape:
        return found[0]
    k = max(z.shape[0] for z in found)
    out = np.full((nb, k), np.nan + 1j * np.nan)
    for i, z in enumerate(found):
        out[i, : z.shape[0]] = z
    return out.reshape(sys.batch_shape + (k,))
