"""HiPPO-LegS and its normal / diagonal-plus-low-rank forms: the one implementation S4, S4D-LegS and S5 share.

* :func:`legs` — the HiPPO-LegS transition, lower triangular:
  A_nk = −√(2n+1)√(2k+1) (n > k), A_nn = −(n+1), 0 above the diagonal; B_n = √(2n+1).
  Its exact eigenvalues are its diagonal −1, …, −N (:func:`exact_eigenvalues`).
* :func:`rank_correction` — P_n = √(n+½), so that S = A + P Pᵀ = −½ I + (skew-symmetric) is normal
  ("HiPPO-N", :func:`legs_normal`).
* :func:`dplr` — S = V Λ V* with Re Λ = −½ exactly (lindermanlab/S5 ssm_init.py: the mean of diag S) and
  Im Λ from the Hermitian eigenproblem of −i(S + ½I), ascending; hence A = V(Λ − P̃P̃*)V* with
  P̃ = V*P, B̃ = V*B. S4 (state-spaces/s4 hippo.nplr) and S5 keep the half with Im Λ < 0, i.e. the
  first N/2 entries of this ordering (:meth:`DPLR.half`).

Numerical trap: the dense DPLR matrix V(Λ − P̃P̃*)V* reproduces A to ~1e-13, but LAPACK's eigenvalues of
it are off by up to ≈60 at N = 64, because A is extremely non-normal. Use :func:`exact_eigenvalues`, and
eigenvector conditioning / pseudospectra (:mod:`ssmctl.analysis.pseudospectra`) for trained DPLR models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SsmctlError

__all__ = ["legs", "rank_correction", "legs_normal", "exact_eigenvalues", "DPLR", "dplr"]


def _check_size(N: int, *, even: bool = False, what: str = "N") -> int:
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise SsmctlError(f"{what} must be a positive integer, got {N!r}")
    N = int(N)
    if even and N % 2:
        raise SsmctlError(f"{what} must be even (the modes come in conjugate pairs), got {N}")
    return N


def legs(N: int) -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO-LegS matrices (A, B) in their lower-triangular form.

    Parameters
    ----------
    N : int
        State size.

    Returns
    -------
    A : ndarray, float64, shape (N, N)
        A_nk = −√(2n+1)√(2k+1) for n > k, A_nn = −(n+1), 0 for n < k.
    B : ndarray, float64, shape (N,)
        B_n = √(2n+1).
    """
    N = _check_size(N)
    r = np.sqrt(2.0 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(r, r), k=-1) - np.diag(np.arange(1.0, N + 1.0))
    return A, r.copy()


def rank_correction(N: int) -> np.ndarray:
    """P_n = √(n + ½), shape (N,): A + P Pᵀ is normal (−½ I plus a skew-symmetric matrix).

    Parameters
    ----------
    N : int
        State size.

    Returns
    -------
    ndarray, float64, shape (N,)

    Raises
    ------
    SsmctlError
        When N is not a positive integer.
    """
    N = _check_size(N)
    return np.sqrt(np.arange(N) + 0.5)


def legs_normal(N: int) -> np.ndarray:
    """HiPPO-N: S = A + P Pᵀ, shape (N, N); S + Sᵀ = −I exactly.

    Parameters
    ----------
    N : int
        State size.

    Returns
    -------
    ndarray, float64, shape (N, N)

    Raises
    ------
    SsmctlError
        When N is not a positive integer.
    """
    A, _ = legs(N)
    P = rank_correction(N)
    return A + np.outer(P, P)


def exact_eigenvalues(N: int) -> np.ndarray:
    """Exact eigenvalues of HiPPO-LegS, read off the diagonal of its triangular form: −1, …, −N (float64).

    Parameters
    ----------
    N : int
        State size.

    Returns
    -------
    ndarray, float64, shape (N,)
        −1, −2, …, −N.

    Raises
    ------
    SsmctlError
        When N is not a positive integer.
    """
    A, _ = legs(N)
    return np.diag(A).copy()


@dataclass(frozen=True)
class DPLR:
    """HiPPO-LegS as A = V (diag(Λ) − P̃ P̃*) V*, B = V B̃.

    Attributes
    ----------
    lam : complex128, shape (K,)
        Eigenvalues of the normal part, Re = −½, Im ascending.
    V : complex128, shape (N, K)
        Unitary eigenvectors (columns) of the normal part.
    P : complex128, shape (K,)
        P̃ = V* P.
    B : complex128, shape (K,)
        B̃ = V* B.

    K = N for the full form, N/2 after :meth:`half`.
    """

    lam: np.ndarray
    V: np.ndarray
    P: np.ndarray
    B: np.ndarray

    def half(self) -> "DPLR":
        """Keep one of each conjugate pair: the first N/2 modes (Im Λ < 0), as S4 and S5 store them."""
        N = _check_size(self.lam.shape[-1], even=True, what="the state size of a conjugate-pair form")
        k = N // 2
        return DPLR(self.lam[:k].copy(), self.V[:, :k].copy(), self.P[:k].copy(), self.B[:k].copy())


def dplr(N: int) -> DPLR:
    """Diagonalize HiPPO-N for N states (full form; :meth:`DPLR.half` keeps the stored half).

    Parameters
    ----------
    N : int
        State size.

    Returns
    -------
    DPLR
        ``lam`` (N,) with Re = −½ and Im ascending (negative half first), ``V`` (N, N) unitary,
        ``P`` = V*P and ``B`` = V*B, each (N,).
    """
    N = _check_size(N)
    A, B = legs(N)
    P = rank_correction(N)
    S = A + np.outer(P, P)
    # S = −½I + K with K real skew-symmetric (diag S = −(n+1) + (n+½)); S5 takes the mean of diag S, which is
    # −½ up to rounding, so ssmctl uses the exact value. −iK is Hermitian: K v = iω v, S v = (−½ + iω) v.
    skew = 0.5 * (S - S.T)
    omega, V = np.linalg.eigh(-1j * skew)
    lam = -0.5 + 1j * omega
    Vh = V.conj().T
    return DPLR(lam.astype(np.complex128), V, Vh @ P, Vh @ B)
