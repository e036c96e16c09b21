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


# λ^k for k = r·j + i is (λ^r)^j · λ^i: two small power tables instead of L·N complex powers (np.power on
# complex numbers costs ~0.5 µs each, which dominated the whole impulse response).
_POWER_BLOCK = 32


def _power_tables(lam: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, int]:
    """λ^i for i < r and λ^(r·j) for j < J = ceil(L / r); shapes (b, r, N) and (b, J, N)."""
    r = min(L, _POWER_BLOCK)
    J = -(-L // r)
    small = np.power(lam[:, None, :], np.arange(r)[None, :, None])
    big = np.power(lam[:, None, :], (r * np.arange(J))[None, :, None])
    return small, big, r


def _real_product(X: np.ndarray, Y: np.ndarray, factor: float) -> np.ndarray:
    """factor·Re(X @ Y) as one real product [Re X, Im X] @ [Re Y; −Im Y]."""
    Xr = np.concatenate([X.real, X.imag], axis=-1)
    Yr = np.concatenate([Y.real, -Y.imag], axis=-2)
    return factor * (Xr @ Yr)


def _impulse_diagonal(sys: DiagonalLTI, L: int) -> np.ndarray:
    N = sys.n_stored
    lam = np.broadcast_to(sys.lam, sys.batch_shape + (N,)).reshape(-1, N)
    R = residues(sys).reshape(lam.shape[0], N, -1)
    pm = R.shape[-1]
    r = min(L, _POWER_BLOCK)
    J = -(-L // r)
    # Few input-output pairs (SISO layers): fold λ^i into the residues, K[j, i] = (λ^{rj}) @ (λ^i ∘ R), and
    # never form the (L, N) table. Many pairs (MIMO): form V = λ^k once and multiply by R.
    folded = pm * r <= L
    per_item = (J * N + r * N * pm + L * pm) if folded else (L * N + L * pm)
    out = np.empty((lam.shape[0], L, pm), dtype=np.float64 if sys.is_real else np.complex128)
    for blk in _blocks(lam.shape[0], 2 * per_item):
        small, big, _ = _power_tables(lam[blk], L)
        if folded:
            W = (small.transpose(0, 2, 1)[..., :, :, None] * R[blk][..., :, None, :]).reshape(-1, N, r * pm)
            K = _real_product(big, W, sys.real_factor) if sys.is_real else big @ W
        else:
            V = (big[:, :, None, :] * small[:, None, :, :]).reshape(-1, J * r, N)
            K = _real_product(V, R[blk], sys.real_factor) if sys.is_real else V @ R[blk]
        out[blk] = K.reshape(-1, J * r, pm)[:, :L]
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
    out = np.empty((lam.shape[0], z.size, R.shape[-1]), dtype=np.complex128)
    for bblk in _blocks(lam.shape[0], 2 * N * min(z.size, 4096)):
        for fblk in _blocks(z.size, 2 * (bblk.stop - bblk.start) * N):
            zz = z[None, fblk, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                S = zz / (zz - lam[bblk, None, :])  # (b, F, N)
                if not sys.is_real:
                    out[bblk, fblk] = S @ R[bblk]
                    continue
                # Real systems add the conjugate modes: (f/2)[S R + S̄' R̄] with S̄' = z/(z − λ̄). Written as
                # (S + S̄')·Re R + i(S − S̄')·Im R, it takes real products only (half the work of complex ones).
                S_conj = zz / (zz - lam[bblk, None, :].conj())
            plus, minus = S + S_conj, S - S_conj
            Rr, Ri = R[bblk].real, R[bblk].imag
            G = (plus.real @ Rr - minus.imag @ Ri) + 1j * (plus.imag @ Rr + minus.real @ Ri)
            out[bblk, fblk] = (sys.real_factor / 2.0) * G
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
