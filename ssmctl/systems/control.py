"""The python-control bridge: the only place where the time convention changes.

ssmctl: h_k = Ā h_{k-1} + B̄ u_k, y_k = C h_k + D u_k. python-control: x_{k+1} = A x_k + B u_k,
y_k = C x_k + D u_k. With x_k = h_k − B̄u_k the exact translation is A = Ā, B = ĀB̄, C = C, D = CB̄ + D:
both have impulse response K_0 = CB̄ + D, K_k = CĀ^kB̄.
python-control takes real matrices only, so complex diagonal modes go through their real realization
(:meth:`DiagonalLTI.to_dense`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedSystemError
from .lti import DenseLTI, DiagonalLTI, as_system

__all__ = ["to_control", "from_control", "standard_form"]


def standard_form(sys: DiagonalLTI | DenseLTI) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, C, D) of the textbook form x_{k+1} = A x_k + B u_k with the same impulse response.

    Real matrices for real systems (the real realization of complex modes), complex128 otherwise. Batch dims
    are kept: all four arrays are broadcast to the system's full batch shape.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``

    Returns
    -------
    A : ndarray, shape (..., n, n)
        Ā (n = :attr:`n_states`: 2N real coordinates for real output modes of a diagonal system).
    B : ndarray, shape (..., n, m)
        ĀB̄.
    C : ndarray, shape (..., p, n)
    D : ndarray, shape (..., p, m)
        CB̄ + D.

    Raises
    ------
    ShapeError
        When ``sys`` is not a system or a layer with ``.system()``.
    """
    dense = as_system(sys).to_dense()
    A, Bbar, C, D = dense.broadcast_arrays()
    B = A @ Bbar
    return A.copy(), B, C.copy(), D + C @ Bbar


def to_control(sys: Any) -> Any:
    """Convert to a discrete-time ``control.StateSpace`` with the same input-output behaviour.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or layer, without batch dims (index one out with ``sys[i]``)

    Returns
    -------
    control.StateSpace
        Real matrices, ``dt`` = the system's ``dt`` or ``True`` (unspecified sampling time).
    """
    import control

    sys = as_system(sys)
    if sys.batch_shape:
        raise ShapeError(
            f"to_control converts one system; this one has batch shape {sys.batch_shape}: pass sys[i]"
        )
    if not sys.is_real:
        raise UnsupportedSystemError(
            "python-control supports real matrices only (its issue #371), and this system has complex "
            "coefficients (output='complex'); analyse it with ssmctl's own functions"
        )
    A, B, C, D = standard_form(sys)
    return control.ss(A, B, C, D, dt=sys.dt if sys.dt is not None else True)


def from_control(ss: Any, meta: dict[str, Any] | None = None) -> DenseLTI:
    """Convert a discrete-time python-control system into a :class:`DenseLTI` in ssmctl's convention.

    Where A is invertible, Ā = A, B̄ = B, C' = C A^{-1}, D' = D − C A^{-1} B (same order). Otherwise the
    realization h_k = [x_{k+1}; x_k] (order 2n) is exact for any A.

    Parameters
    ----------
    ss : control.StateSpace or control.TransferFunction
        A discrete-time system (transfer functions are realized with ``control.ss`` first).
    meta : dict, optional
        Metadata of the result (labels for plots and reports).

    Returns
    -------
    DenseLTI
        No batch dims, float64: A (n, n), B (n, m), C (p, n), D (p, m), n the order of ``ss`` (2n where
        cond(A) ≥ 1e10); ``dt`` the sampling time of ``ss``, None when unspecified (``dt=True``).

    Raises
    ------
    ShapeError
        When ``ss`` is neither a StateSpace nor a TransferFunction.
    UnsupportedSystemError
        When ``ss`` is a continuous-time system.
    """
    import control

    if isinstance(ss, control.TransferFunction):
        ss = control.ss(ss)
    if not isinstance(ss, control.StateSpace):
        raise ShapeError(f"expected a control.StateSpace or TransferFunction, got {type(ss).__name__}")
    if not ss.isdtime(strict=True):
        raise UnsupportedSystemError(
            "from_control needs a discrete-time system; discretize first (control.c2d or "
            "ssmctl.from_continuous_dense)"
        )
    A, B, C, D = (np.asarray(x, dtype=np.float64) for x in (ss.A, ss.B, ss.C, ss.D))
    n = A.shape[0]
    dt = None if ss.dt is True else float(ss.dt)
    if n == 0:
        return DenseLTI(np.zeros((0, 0)), np.zeros((0, B.shape[1])), np.zeros((C.shape[0], 0)), D, dt=dt, meta=meta)
    if np.linalg.cond(A) < 1e10:
        Cbar = np.linalg.solve(A.T, C.T).T
        return DenseLTI(A, B, Cbar, D - Cbar @ B, dt=dt, meta=meta)
    Z = np.zeros((n, n))
    A2 = np.block([[A, Z], [np.eye(n), Z]])
    B2 = np.vstack([B, np.zeros_like(B)])
    C2 = np.hstack([np.zeros_like(C), C])
    return DenseLTI(A2, B2, C2, D, dt=dt, meta=meta)
