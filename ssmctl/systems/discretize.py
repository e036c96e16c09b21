"""Continuous → discrete: the discretizations deep SSMs use.

* ``zoh`` (exact): Ā = exp(Δa), B̄ = (exp(Δa) − 1)/a · B — S4D and S5 by default.
* ``bilinear``: Ā = (1 + Δa/2)/(1 − Δa/2), B̄ = Δ/(1 − Δa/2) · B — S4 (DPLR), optional in S4D/S5.
* ``euler_b``: Ā = exp(Δa), B̄ = Δ·B — Mamba-1 and Mamba-2 (exact on A, Euler on B).
* ``identity``: Ā = a, B̄ = B — LRU and RG-LRU parametrize the discrete Ā directly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg

from ..errors import NonFiniteError, ShapeError, SsmctlError, unknown_name
from .lti import DenseLTI, DiagonalLTI, OutputMode, _as_array

__all__ = ["from_continuous", "from_continuous_dense", "DISCRETIZATIONS", "UnstableContinuousWarning", "phi1"]

DISCRETIZATIONS: tuple[str, ...] = ("zoh", "bilinear", "euler_b", "identity")


class UnstableContinuousWarning(UserWarning):
    """Continuous eigenvalues with positive real part: allowed (trained models have them), but flagged."""


def phi1(x: np.ndarray) -> np.ndarray:
    """(exp(x) − 1)/x, accurate near 0 (where the naive quotient loses all digits).

    Parameters
    ----------
    x : array_like, any shape
        Real or complex arguments.

    Returns
    -------
    ndarray, complex128, shape of ``x``
        1 + x/2 + x²/6 where |x| < 1e-4 (truncation error below 1e-17), the quotient elsewhere.
    """
    x = np.asarray(x, dtype=np.complex128)
    small = np.abs(x) < 1e-4
    safe = np.where(small, 1.0, x)
    out = np.where(small, 1.0 + x / 2.0 + x * x / 6.0, (np.exp(safe) - 1.0) / safe)
    return out


def _step_sizes(dt: Any, a_shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast Δ against a (..., N): a Δ shaped like a's batch dims is per channel, else per state."""
    dt = _as_array("dt", dt, np.float64)
    if np.iscomplexobj(dt):
        raise ShapeError("dt must be real")
    if np.any(dt <= 0):
        raise SsmctlError(f"dt must be positive; got min {dt.min():.3g}")
    if dt.ndim > 0 and dt.shape == a_shape[:-1] and dt.shape != a_shape:
        dt = dt[..., None]
    try:
        np.broadcast_shapes(dt.shape, a_shape)
    except ValueError:
        raise ShapeError(
            f"dt of shape {dt.shape} fits neither per channel {a_shape[:-1]} nor per state {a_shape}"
        ) from None
    return dt


def _flag_unstable(a: np.ndarray) -> None:
    n_bad = int(np.count_nonzero(a.real > 0))
    if n_bad:
        warnings.warn(
            f"{n_bad} continuous eigenvalue(s) have positive real part (max Re = {a.real.max():.3g}); "
            "the discrete system will be unstable there",
            UnstableContinuousWarning,
            stacklevel=3,
        )


def from_continuous(
    a: Any,
    B: Any,
    C: Any,
    D: Any = None,
    *,
    dt: Any = None,
    method: str = "zoh",
    output: OutputMode = "complex",
    meta: dict[str, Any] | None = None,
) -> DiagonalLTI:
    """Discretize a diagonal continuous-time system (or wrap a discrete one, ``method="identity"``).

    Parameters
    ----------
    a : array_like, complex, shape (..., N)
        Continuous eigenvalues (for ``identity``: the discrete eigenvalues themselves).
    B : array_like, shape (..., N, m)
    C : array_like, shape (..., p, N)
    D : array_like, shape (..., p, m), optional
        Feedthrough; None means zero.
    dt : array_like
        Step sizes Δ > 0: a scalar, one per channel (shaped like a's batch dims) or one per state (broadcasting
        against (..., N)). Ignored by ``identity``.
    method : {"zoh", "bilinear", "euler_b", "identity"}
        ZOH: Ā = exp(Δa), B̄ = (exp(Δa) − 1)/a·B; bilinear: Ā = (1 + Δa/2)/(1 − Δa/2), B̄ = Δ/(1 − Δa/2)·B;
        euler_b: Ā = exp(Δa), B̄ = ΔB (Mamba's rule); identity: Ā = a, B̄ = B.
    output : {"complex", "real", "conj_pair"}
        See :class:`~ssmctl.systems.lti.DiagonalLTI`.
    meta : dict, optional
        Metadata of the result (labels for plots and reports).

    Returns
    -------
    DiagonalLTI
        Ā (..., N), B̄ (..., N, m), C, D.

    Raises
    ------
    UnknownNameError
        An unknown ``method``.
    ShapeError
        Shapes that do not fit together (a, B, C, D, or a ``dt`` neither per channel nor per state).
    NonFiniteError
        NaN or Inf in an input.
    SsmctlError
        ``dt`` missing or not positive, or a bilinear transform that is singular (Δ·a = 2).

    Warns
    -----
    UnstableContinuousWarning
        When a continuous eigenvalue has a positive real part.
    """
    if method not in DISCRETIZATIONS:
        raise unknown_name("discretization", method, DISCRETIZATIONS)
    a = _as_array("a", a, np.complex128)
    B = _as_array("B", B, np.complex128)
    if a.ndim < 1 or B.ndim < 2 or B.shape[-2] != a.shape[-1]:
        raise ShapeError(f"need a (..., N) and B (..., N, m); got a {a.shape}, B {B.shape}")
    if method == "identity":
        return DiagonalLTI(a, B, C, D, output=output, meta=meta)
    if dt is None:
        raise SsmctlError(f"method={method!r} needs step sizes dt")
    _flag_unstable(a)
    delta = _step_sizes(dt, a.shape)
    x = delta * a
    if method == "zoh":
        lam = np.exp(x)
        b_scale = delta * phi1(x)
    elif method == "bilinear":
        denom = 1.0 - x / 2.0
        if np.any(np.abs(denom) == 0):
            raise SsmctlError("bilinear transform is singular where Δ·a = 2")
        lam = (1.0 + x / 2.0) / denom
        b_scale = delta / denom
    else:  # euler_b
        lam = np.exp(x)
        b_scale = delta * np.ones_like(x)
    Bd = b_scale[..., :, None] * B
    return DiagonalLTI(lam, Bd, C, D, output=output, dt=None, meta=meta)


def from_continuous_dense(
    A: Any,
    B: Any,
    C: Any,
    D: Any = None,
    *,
    dt: float,
    method: str = "zoh",
    meta: dict[str, Any] | None = None,
) -> DenseLTI:
    """Discretize a dense continuous-time system with one step size per system.

    Parameters
    ----------
    A : array_like, shape (..., n, n)
    B : array_like, shape (..., n, m)
    C : array_like, shape (..., p, n)
    D : array_like, shape (..., p, m), optional
        Feedthrough; None means zero.
    dt : float or array_like of shape (...)
        Step size Δ > 0, one per batch element.
    method : {"zoh", "bilinear", "euler_b"}
        ZOH: exact (Van Loan's block exponential, also for singular A); bilinear: Ā = (I − ΔA/2)^{-1}(I + ΔA/2),
        B̄ = (I − ΔA/2)^{-1}ΔB; euler_b: Ā = exp(ΔA), B̄ = ΔB.
    meta : dict, optional
        Metadata of the result (labels for plots and reports).

    Returns
    -------
    DenseLTI
        Ā (..., n, n), B̄ (..., n, m), C, D, float64 (batch dims broadcast).

    Raises
    ------
    UnknownNameError
        An unknown ``method`` (``"identity"`` included).
    ShapeError
        Shapes that do not fit together.
    NonFiniteError
        NaN or Inf in an input, or a discretization that overflowed.
    SsmctlError
        ``dt`` not positive.

    Warns
    -----
    UnstableContinuousWarning
        When an eigenvalue of A has a positive real part.
    """
    if method not in DISCRETIZATIONS or method == "identity":
        raise unknown_name("dense discretization", method, ("zoh", "bilinear", "euler_b"))
    A = _as_array("A", A, np.float64)
    B = _as_array("B", B, np.float64)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2] or B.shape[-2] != A.shape[-1]:
        raise ShapeError(f"need A (..., n, n) and B (..., n, m); got A {A.shape}, B {B.shape}")
    _flag_unstable(np.linalg.eigvals(A))
    delta = _as_array("dt", dt, np.float64)
    if np.any(delta <= 0):
        raise SsmctlError("dt must be positive")
    delta = delta[..., None, None]
    n = A.shape[-1]
    eye = np.eye(n)
    if method == "bilinear":
        left = eye - delta / 2.0 * A
        Ad = np.linalg.solve(left, eye + delta / 2.0 * A)
        Bd = np.linalg.solve(left, delta * B)
    elif method == "zoh":
        # Van Loan: expm([[ΔA, ΔB], [0, 0]]) = [[Ā, B̄], [0, I]]; exact also for singular A.
        m = B.shape[-1]
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2], delta.shape[:-2])
        big = np.zeros(batch + (n + m, n + m), dtype=np.result_type(A, B))
        big[..., :n, :n] = delta * A
        big[..., :n, n:] = delta * B
        expo = scipy.linalg.expm(big)
        Ad, Bd = expo[..., :n, :n], expo[..., :n, n:]
    else:  # euler_b
        Ad = scipy.linalg.expm(delta * A)
        Bd = delta * B
    if not np.all(np.isfinite(Ad)):
        raise NonFiniteError("discretization overflowed: Δ·A is too large")
    return DenseLTI(Ad, Bd, C, D, meta=meta)
