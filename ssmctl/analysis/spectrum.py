"""Eigenvalues and what they say about memory: spectral radius, margin, memory horizon."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SsmctlError
from ..systems.lti import DenseLTI, DiagonalLTI, _as_array, as_system

__all__ = ["eigenvalues", "spectral_radius", "spectral_margin", "memory_horizon"]


def eigenvalues(sys: Any) -> np.ndarray:
    """Discrete eigenvalues of the equivalent system.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``

    Returns
    -------
    ndarray, complex, shape (..., n)
        For real output modes of a :class:`DiagonalLTI` both members of each conjugate pair (n = 2N); for a
        :class:`DenseLTI` the eigenvalues of Ā (computed by LAPACK: for strongly non-normal matrices such as
        S4's DPLR form these are ill-conditioned — see the family's exact spectrum instead).
    """
    sys = as_system(sys)
    if isinstance(sys, DiagonalLTI):
        return sys.augmented()[0].copy()
    A = np.broadcast_to(sys.A, sys.batch_shape + sys.A.shape[-2:])
    return np.linalg.eigvals(A).astype(np.complex128)


def _moduli(sys_or_eigs: Any) -> np.ndarray:
    if isinstance(sys_or_eigs, (DiagonalLTI, DenseLTI)) or hasattr(sys_or_eigs, "system"):
        return np.abs(eigenvalues(sys_or_eigs))
    arr = _as_array("eigenvalues", sys_or_eigs, np.float64)
    return np.abs(arr)


def spectral_radius(sys: Any) -> np.ndarray:
    """Largest eigenvalue modulus max |λ|, shape (...) (batch dims)."""
    return _moduli(sys).max(axis=-1)


def spectral_margin(sys: Any) -> np.ndarray:
    """1 − spectral radius: distance of the slowest mode to the unit circle; negative when unstable."""
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
