"""Time and frequency responses: impulse (the convolution kernel plus D), step, G(e^{iω}), DC gain.

All functions follow DESIGN.md's convention: K_0 = C B̄ + D, K_k = C Ā^k B̄, G(z) = z·C(zI − Ā)^{-1}B̄ + D.
The research codes' kernels exclude D (they add D·u separately): their K_0 is ours minus D.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import SsmctlError
from ..systems.lti import DenseLTI, DiagonalLTI, _as_array, as_system

__all__ = [
    "impulse_response",
    "step_response",
    "transfer_function",
    "frequency_response",
    "frequency_grid",
    "dc_gain",
]

# Largest number of complex entries a temporary may hold before work is split into blocks (~256 MiB).
_BLOCK_ELEMENTS = 1 << 24


def _blocks(total: int, per_item: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(per_item, 1))
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


def residues(sys: DiagonalLTI) -> np.ndarray:
    """Rank-one residues R_n = c_n b_nᵀ of the stored modes, shape (..., N, p·m)."""
    lam, B, C, _ = sys.broadcast_arrays()
    R = C.swapaxes(-1, -2)[..., :, :, None] * B[..., :, None, :]  # (..., N, p, m)
    return R.reshape(R.shape[:-2] + (-1,))


def _check_length(L: int) -> int:
    if int(L) != L or L < 1:
        raise SsmctlError(f"response length L must be a positive integer, got {L!r}")
    return int(L)


def impulse_response(sys: Any, L: int) -> np.ndarray:
    """Impulse response (the convolution kernel including D at lag 0).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    L : int
        Number of lags.

    Returns
    -------
    ndarray, shape (..., L, p, m)
        K_0 = C B̄ + D, K_k = C Ā^k B̄. Real for real systems, complex otherwise.
    """
    sys = as_system(sys)
    L = _check_length(L)
    p, m = sys.n_outputs, sys.n_inputs
    if isinstance(sys, DiagonalLTI):
        K = _impulse_diagonal(sys, L)
    else:
        K = _impulse_dense(sys, L)
    K = K.reshape(sys.batch_shape + (L, p, m))
    K[..., 0, :, :] += np.broadcast_to(sys.D, sys.batch_shape + (p, m))
    return K


def _impulse_diagonal(sys: DiagonalLTI, L: int) -> np.ndarray:
    lam = np.broadcast_to(sys.lam, sys.batch_shape + (sys.n_stored,)).reshape(-1, sys.n_stored)
    R = residues(sys).reshape(lam.shape[0], sys.n_stored, -1)
    k = np.arange(L)
    out = np.empty((lam.shape[0], L, R.shape[-1]), dtype=np.float64 if sys.is_real else np.complex128)
    # Block over the flattened batch so that λ^k (batch, L, N) stays bounded in memory.
    for blk in _blocks(lam.shape[0], L * sys.n_stored):
        V = np.power(lam[blk, None, :], k[None, :, None])  # (b, L, N)
        if sys.is_real:
            # f·Re(V R) as one real product: [Re V, Im V] @ [Re R; −Im R].
            Vr = np.concatenate([V.real, V.imag], axis=-1)
            Rr = np.concatenate([R[blk].real, -R[blk].imag], axis=-2)
            out[blk] = sys.real_factor * (Vr @ Rr)
        else:
            out[blk] = V @ R[blk]
    return out


def _impulse_dense(sys: DenseLTI, L: int) -> np.ndarray:
    A, B, C, _ = sys.broadcast_arrays()
    # Ā^k B̄ for k < L by doubling: log2(L) matrix products instead of L.
    X = B[..., None, :, :]  # (..., 1, n, m)
    P = A
    while X.shape[-3] < L:
        X = np.concatenate([X, P[..., None, :, :] @ X], axis=-3)
        if X.shape[-3] < L:
            P = P @ P
    K = C[..., None, :, :] @ X[..., :L, :, :]
    return K.reshape((-1, L, sys.n_outputs * sys.n_inputs))


def step_response(sys: Any, L: int) -> np.ndarray:
    """Step response S_k = Σ_{j≤k} K_j, shape (..., L, p, m)."""
    return np.cumsum(impulse_response(sys, L), axis=-3)


def transfer_function(sys: Any, z: Any) -> np.ndarray:
    """G(z) = z·C(zI − Ā)^{-1}B̄ + D at arbitrary complex points.

    Parameters
    ----------
    sys : system or layer
    z : array_like, complex, shape (F,)

    Returns
    -------
    ndarray, complex, shape (..., F, p, m)
    """
    sys = as_system(sys)
    z = np.atleast_1d(_as_array("z", z, np.complex128))
    if z.ndim != 1:
        raise SsmctlError(f"z must be one-dimensional (F,), got shape {z.shape}")
    p, m = sys.n_outputs, sys.n_inputs
    if isinstance(sys, DiagonalLTI):
        G = _tf_diagonal(sys, z)
    else:
        G = _tf_dense(sys, z)
    G = G.reshape(sys.batch_shape + (z.size, p, m))
    return G + np.broadcast_to(sys.D, sys.batch_shape + (p, m))[..., None, :, :]


def _tf_diagonal(sys: DiagonalLTI, z: np.ndarray) -> np.ndarray:
    N = sys.n_stored
    lam = np.broadcast_to(sys.lam, sys.batch_shape + (N,)).reshape(-1, N)
    R = residues(sys).reshape(lam.shape[0], N, -1)
    if sys.is_real:
        half = sys.real_factor / 2.0
        lam = np.concatenate([lam, lam.conj()], axis=-1)
        R = half * np.concatenate([R, R.conj()], axis=-2)
    out = np.empty((lam.shape[0], z.size, R.shape[-1]), dtype=np.complex128)
    for bblk in _blocks(lam.shape[0], lam.shape[1] * min(z.size, 4096)):
        for fblk in _blocks(z.size, (bblk.stop - bblk.start) * lam.shape[1]):
            zz = z[None, fblk, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                S = zz / (zz - lam[bblk, None, :])  # (b, F, n)
            out[bblk, fblk] = S @ R[bblk]
    return out


def _tf_dense(sys: DenseLTI, z: np.ndarray) -> np.ndarray:
    A, B, C, _ = sys.broadcast_arrays()
    n, m, p = sys.n_states, sys.n_inputs, sys.n_outputs
    A = A.reshape(-1, n, n)
    B = B.reshape(-1, n, m)
    C = C.reshape(-1, p, n)
    out = np.empty((A.shape[0], z.size, p * m), dtype=np.complex128)
    lam, V = np.linalg.eig(A)
    # Where the eigenbasis is well conditioned, evaluate modally in O(F·n·p·m) instead of O(F·n³);
    # strongly non-normal matrices (S4's DPLR form) go through linear solves instead.
    modal = np.linalg.cond(V) < 1e4 if n else np.ones(A.shape[0], dtype=bool)
    if modal.any():
        diag = DiagonalLTI(lam[modal], np.linalg.solve(V[modal], B[modal]), C[modal] @ V[modal])
        out[modal] = _tf_diagonal(diag, z)
    eye = np.eye(n)
    for i in np.flatnonzero(~modal):
        for fblk in _blocks(z.size, n * n):
            zz = z[fblk, None, None]
            X = np.linalg.solve(zz * eye - A[i], np.broadcast_to(B[i], (zz.shape[0], n, m)))
            out[i, fblk] = (zz * (C[i] @ X)).reshape(zz.shape[0], -1)
    return out


def frequency_grid(sys: Any, n: int = 512) -> np.ndarray:
    """A default frequency grid in rad/sample: [0, π] for real systems, [−π, π) for complex ones."""
    sys = as_system(sys)
    if sys.is_real:
        return np.linspace(0.0, np.pi, n)
    return np.linspace(-np.pi, np.pi, n, endpoint=False)


def frequency_response(sys: Any, omega: Any) -> np.ndarray:
    """G(e^{iω}) on a grid of frequencies.

    Parameters
    ----------
    sys : system or layer
    omega : array_like, shape (F,)
        Frequencies in rad/sample (multiply by 1/dt for rad/s). Complex systems (``output="complex"``) have
        no conjugate symmetry: pass negative frequencies too (:func:`frequency_grid` does).

    Returns
    -------
    ndarray, complex, shape (..., F, p, m)
    """
    omega = np.atleast_1d(_as_array("omega", omega, np.float64))
    if np.iscomplexobj(omega):
        raise SsmctlError("omega must be real (rad/sample)")
    return transfer_function(sys, np.exp(1j * omega))


def dc_gain(sys: Any) -> np.ndarray:
    """G(1) = C(I − Ā)^{-1}B̄ + D, the steady-state response to a unit step; shape (..., p, m).

    Real for real systems. Infinite entries where Ā has an eigenvalue at 1.
    """
    sys = as_system(sys)
    G = transfer_function(sys, np.array([1.0 + 0j]))[..., 0, :, :]
    if sys.is_real:
        return G.real
    return G
