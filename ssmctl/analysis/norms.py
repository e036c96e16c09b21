"""System norms, gramians, Hankel singular values, balanced truncation, controllability.

Every function takes a :class:`~ssmctl.systems.lti.DiagonalLTI`, a :class:`~ssmctl.systems.lti.DenseLTI` or a
layer, works over the batch dims at once and returns arrays shaped by them.

Conventions (docs/design.md): h_k = Ā h_{k−1} + B̄ u_k, y_k = C h_k + D u_k, so K_0 = CB̄ + D, K_k = CĀ^kB̄ and
G(z) = z·C(zI − Ā)^{-1}B̄ + D. Gramians, Hankel singular values and controllability refer to the textbook
realization x_{k+1} = A x_k + B' u_k, y_k = C x_k + D' u_k with A = Ā, B' = ĀB̄, D' = CB̄ + D — the one
:func:`~ssmctl.systems.control.to_control` hands to python-control — so they equal ``control.gram`` etc.
For real output modes that realization uses the real coordinates x = [Re h; Im h].

Diagonal systems use closed forms in the conjugate-augmented modal coordinates (all modes explicit,
:meth:`DiagonalLTI.augmented`), where every Stein equation is solved entry by entry:
Σ_k conj(λ_i)^k λ_j^k = 1/(1 − conj(λ_i)λ_j).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph

from ..errors import SsmctlError, UnstableSystemError
from ..systems.control import standard_form
from ..systems.lti import DenseLTI, DiagonalLTI, as_system

__all__ = [
    "h2_norm",
    "hinf_norm",
    "gramians",
    "hankel_singular_values",
    "balanced_truncation",
    "is_controllable",
    "is_observable",
    "minimal_order",
]

_EPS = np.finfo(np.float64).eps
# Largest number of complex entries one temporary may hold before work is split into blocks (~128 MiB).
_BLOCK = 1 << 23
# Block size of the elementwise frequency sweeps: small enough for the temporaries to stay in cache.
_SWEEP = 1 << 15
# Block size (entries of one n×n gramian times systems) of the Hankel-value pipeline.
_HSV_BLOCK = 1 << 18
# A dense system is analysed in its eigenbasis V when cond(V)·eps stays below this: the modal residues are
# then accurate to ~1e-10 relative, far inside the H∞ tolerance. Worse-conditioned (strongly non-normal)
# matrices such as S4's DPLR form go through Lyapunov solvers and the symplectic pencil instead.
_MODAL_COND = 1e-10 / _EPS
# Eigenvalues closer than this (relative to max(1, |λ|)) are one cluster in the PBH tests.
_CLUSTER_RTOL = 1e-8
# Default relative rank tolerance of the controllability / observability / McMillan-degree decisions.
_RANK_RTOL = 1e-10
# H∞ branch and bound starts from this many uniform points plus the arguments of this many modes.
_N_UNIFORM = 17
_N_PROBE = 16


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------
def _blocks(total: int, per_item: int, limit: int = _BLOCK) -> Iterator[slice]:
    step = max(1, limit // max(per_item, 1))
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


def _fmt_index(flat: int, batch_shape: tuple[int, ...]) -> str:
    if not batch_shape:
        return "(no batch dims)"
    return f"batch index {tuple(int(i) for i in np.unravel_index(flat, batch_shape))}"


def _require_stable(sys: DiagonalLTI | DenseLTI, what: str) -> np.ndarray | None:
    """Raise :class:`UnstableSystemError` naming the unstable modes; return the dense eigenvalues if computed.

    For a :class:`DiagonalLTI` the stored modes are counted (mode indices refer to ``sys.lam``); for a
    :class:`DenseLTI` its ``eigenvalues()``.
    """
    if isinstance(sys, DiagonalLTI):
        eig = np.broadcast_to(sys.lam, sys.batch_shape + (sys.n_stored,))
    else:
        # The system's own eigenvalues: exact where it carries them (S4 at init), else LAPACK's.
        eig = sys.eigenvalues() if sys.n_states else np.zeros(sys.batch_shape + (0,), complex)
    mod = np.abs(eig).reshape(-1, eig.shape[-1])
    bad = mod >= 1.0
    if bad.any():
        flat = int(np.argmax(np.where(bad, mod, -1.0).max(axis=-1)))
        mode = int(np.argmax(mod[flat]))
        n_sys = int(bad.any(axis=-1).sum())
        kind = "stored modes" if isinstance(sys, DiagonalLTI) else "eigenvalues of Ā"
        raise UnstableSystemError(
            f"{what} needs a stable system (all |λ| < 1), but {int(bad.sum())} {kind} have |λ| ≥ 1 in "
            f"{n_sys} of {mod.shape[0]} system(s); the largest is |λ| = {mod[flat, mode]:.6g} at "
            f"{_fmt_index(flat, sys.batch_shape)}, mode {mode}. Its defining sums diverge there; check the "
            "spectrum with ssmctl.spectral_radius, or analyse a stable sub-batch"
        )
    return None if isinstance(sys, DiagonalLTI) else eig


def _flat_augmented(sys: DiagonalLTI) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Augmented (λ, B, C, D) with the batch flattened to one leading axis."""
    lam, B, C, D = sys.augmented()
    n, m, p = lam.shape[-1], B.shape[-1], C.shape[-2]
    return lam.reshape(-1, n), B.reshape(-1, n, m), C.reshape(-1, p, n), D.reshape(-1, p, m)


def _modal(sys: DenseLTI) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Eigen-decomposition of a flattened dense batch where it is well conditioned.

    Returns
    -------
    ok : (batch,) bool
        Systems whose eigenbasis V has cond(V) below the modal threshold.
    (lam, Bm, Cm, D, V) : for the ``ok`` systems only: λ (k, n), V^{-1}B̄ (k, n, m), CV (k, p, n), D, V.
    """
    A, B, C, D = (x.reshape((-1,) + x.shape[-2:]) for x in sys.broadcast_arrays())
    n = A.shape[-1]
    if n == 0:
        ok = np.ones(A.shape[0], dtype=bool)
        return ok, (np.zeros((A.shape[0], 0), complex), B.astype(complex), C.astype(complex), D, A)
    lam, V = np.linalg.eig(A)
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(V)
    ok = np.isfinite(cond) & (cond < _MODAL_COND)
    Vk = V[ok]
    Bm = np.linalg.solve(Vk, B[ok]) if ok.any() else np.zeros((0, n, B.shape[-1]), complex)
    return ok, (lam[ok], Bm, C[ok] @ Vk, D[ok], Vk)


def _batched_dlyap(A: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Solve A X A^H − X + Q = 0 for each system of a flattened batch (scipy's Bartels–Stewart).

    A is balanced first (an exact diagonal similarity A_b = S^{-1}AS), which keeps badly scaled
    non-normal matrices accurate; X = S X_b S.
    """
    out = np.empty(Q.shape, dtype=np.result_type(A, Q))
    for i in range(A.shape[0]):
        _, (sc, _) = scipy.linalg.matrix_balance(A[i], permute=False, separate=True)
        Ab = A[i] * (sc[None, :] / sc[:, None])
        Xb = scipy.linalg.solve_discrete_lyapunov(Ab, Q[i] / np.outer(sc, sc), method="bilinear")
        out[i] = Xb * np.outer(sc, sc)
    return out


def _hermitian(X: np.ndarray) -> np.ndarray:
    return 0.5 * (X + X.conj().swapaxes(-1, -2))


# --------------------------------------------------------------------------------------------------
# H2 norm
# --------------------------------------------------------------------------------------------------
def h2_norm(sys: Any) -> np.ndarray:
    """H2 norm sqrt(Σ_k ‖K_k‖_F²) of the impulse response K_0 = CB̄ + D, K_k = CĀ^kB̄.

    Equals python-control's ``norm(to_control(sys), 2)`` for discrete time (slycot ``ab13bd``).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``

    Returns
    -------
    ndarray, float, shape (...)
        One norm per batch element.

    Raises
    ------
    UnstableSystemError
        When any mode has |λ| ≥ 1 (the norm is infinite); the message names the modes.

    Notes
    -----
    Diagonal systems use the closed form Σ_{k≥0} ‖CΛ^kB‖_F² = Σ_ij (C^HC)_ij (BB^H)_ji / (1 − conj(λ_i)λ_j)
    over the augmented modes, with the k = 0 term corrected for D. Dense systems use the same formula in
    their eigenbasis where it is well conditioned, else the controllability gramian from
    ``scipy.linalg.solve_discrete_lyapunov``.
    """
    sys = as_system(sys)
    _require_stable(sys, "h2_norm")
    if isinstance(sys, DiagonalLTI) and sys.is_real and not sys.real_state:
        sq = _h2_squared_pairs(sys)
    elif isinstance(sys, DiagonalLTI):
        lam, B, C, D = _flat_augmented(sys)
        sq = _h2_squared_modal(lam, B, C, D)
    else:
        A, B, C, D = (x.reshape((-1,) + x.shape[-2:]) for x in sys.broadcast_arrays())
        sq = np.empty(A.shape[0])
        ok, (lam, Bm, Cm, Dm, _) = _modal(sys)
        if ok.any():
            sq[ok] = _h2_squared_modal(lam, Bm, Cm, Dm)
        bad = ~ok
        if bad.any():
            W = _batched_dlyap(A[bad], B[bad] @ B[bad].conj().swapaxes(-1, -2))
            CB = C[bad] @ B[bad]
            tail = np.einsum("bpi,bij,bpj->b", C[bad], W, C[bad].conj()).real
            sq[bad] = tail - _fro2(CB) + _fro2(CB + D[bad])
    return np.sqrt(np.maximum(sq, 0.0)).reshape(sys.batch_shape)


def _fro2(X: np.ndarray) -> np.ndarray:
    return np.sum(np.abs(X) ** 2, axis=(-2, -1))


def _h2_squared_modal(lam: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> np.ndarray:
    n = lam.shape[-1]
    out = np.empty(lam.shape[0])
    for blk in _blocks(lam.shape[0], 3 * n * n):
        CC = C[blk].conj().swapaxes(-1, -2) @ C[blk]  # (b, n, n)
        BB = B[blk] @ B[blk].conj().swapaxes(-1, -2)  # (b, n, n)
        l = lam[blk]
        kern = 1.0 / (1.0 - l.conj()[:, :, None] * l[:, None, :])
        tail = np.einsum("bij,bji,bij->b", CC, BB, kern).real
        CB = C[blk] @ B[blk]
        out[blk] = tail - _fro2(CB) + _fro2(CB + D[blk])
    return out


def _h2_squared_pairs(sys: DiagonalLTI) -> np.ndarray:
    """H2² of a real-output system from its N stored modes (the modal formula over the 2N augmented modes).

    With C_a = (f/2)[C, C̄] and B_a = [B; B̄] the four blocks of the modal sum are conjugate in pairs, so
    the tail reduces to f²·(Re Σ (C^HC)_ji(BB^H)_ij K_ij + Re Σ (CᵀC)_ij(BBᵀ)_ji J_ij) with the
    halved kernels K = ½/(1 − λ_iλ̄_j), J = ½/(1 − λ_iλ_j); SISO systems need two quadratic forms in u = c∘b.
    """
    lam, B, C, D = sys.broadcast_arrays()
    N, m, p = sys.n_stored, sys.n_inputs, sys.n_outputs
    lam, B, C, D = lam.reshape(-1, N), B.reshape(-1, N, m), C.reshape(-1, p, N), D.reshape(-1, p, m)
    f = sys.real_factor
    out = np.empty(lam.shape[0])
    for blk in _blocks(lam.shape[0], 3 * N * N):
        K, J = _pair_kernels(lam[blk])
        if m == p == 1:
            u = C[blk, 0, :] * B[blk, :, 0]
            s = np.einsum("bi,bij,bj->b", u, K, u.conj()).real + np.einsum("bi,bij,bj->b", u, J, u).real
        else:
            Cb, Bb = C[blk], B[blk]
            CC = Cb.conj().swapaxes(-1, -2) @ Cb
            BB = Bb @ Bb.conj().swapaxes(-1, -2)
            CtC = Cb.swapaxes(-1, -2) @ Cb
            BBt = Bb @ Bb.swapaxes(-1, -2)
            s = np.einsum("bji,bij,bij->b", CC, BB, K).real + np.einsum("bij,bji,bij->b", CtC, BBt, J).real
        CB = f * (C[blk] @ B[blk]).real
        out[blk] = f * f * s - _fro2(CB) + _fro2(CB + D[blk])
    return out


# --------------------------------------------------------------------------------------------------
# gramians and Hankel singular values
# --------------------------------------------------------------------------------------------------
def gramians(sys: Any) -> tuple[np.ndarray, np.ndarray]:
    """Controllability and observability gramians of the textbook realization.

    Wc = Σ_k A^k B' B'^H A^{kH} and Wo = Σ_k A^{kH} C^H C A^k with A = Ā, B' = ĀB̄: the realization that
    :func:`~ssmctl.to_control` builds, so for real systems they equal ``control.gram(to_control(sys), 'c')``
    and ``'o'``.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer

    Returns
    -------
    Wc, Wo : ndarray, shape (..., n, n)
        Real for real systems (n = 2N real states x = [Re h; Im h] for real output modes); complex
        Hermitian in the stored coordinates for ``output="complex"`` and complex dense systems.

    Raises
    ------
    UnstableSystemError
        When any mode has |λ| ≥ 1.
    """
    sys = as_system(sys)
    _require_stable(sys, "gramians")
    n = sys.n_states
    if isinstance(sys, DiagonalLTI):
        build, nb = _diagonal_gramian_builder(sys)
        Wc, Wo = build(slice(0, nb))
    else:
        A, Bp, C, _ = (x.reshape((-1,) + x.shape[-2:]) for x in standard_form(sys))
        Wc = _batched_dlyap(A, Bp @ Bp.conj().swapaxes(-1, -2))
        AH = A.conj().swapaxes(-1, -2)
        Wo = _batched_dlyap(AH, C.conj().swapaxes(-1, -2) @ C)
        if sys.is_real:
            Wc, Wo = Wc.real, Wo.real
    shape = sys.batch_shape + (n, n)
    return _hermitian(Wc).reshape(shape), _hermitian(Wo).reshape(shape)


def _diagonal_gramian_builder(
    sys: DiagonalLTI,
) -> tuple[Callable[[slice], tuple[np.ndarray, np.ndarray]], int]:
    """A function giving (Wc, Wo) for a slice of the flattened batch, and the flattened batch size.

    The gramians are in the coordinates of :func:`gramians` (real ones for real systems) but not yet
    symmetrized: callers that read one triangle only (Cholesky, eigh) skip that pass.
    """
    if sys.is_real and not sys.real_state:
        lam, B, C, _ = sys.broadcast_arrays()
        N = sys.n_stored
        lam, B = lam.reshape(-1, N), B.reshape(-1, N, sys.n_inputs)
        C = sys.real_factor * C.reshape(-1, sys.n_outputs, N)
        return (lambda blk: _real_pair_gramians(lam[blk], B[blk], C[blk])), lam.shape[0]
    lam, B, C, _ = _flat_augmented(sys)

    def build(blk: slice) -> tuple[np.ndarray, np.ndarray]:
        Wc, Wo = _modal_gramians(lam[blk], B[blk], C[blk])
        if sys.real_state:  # modal coordinates are already the real ones (real λ, B and f·Re C)
            Wc, Wo = Wc.real, Wo.real
        return Wc, Wo

    return build, lam.shape[0]


def _outer(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """X @ Y for (b, n, k) @ (b, k, n); a broadcast product when k = 1 (matmul is slow for inner size 1)."""
    if X.shape[-1] == 1:
        return X * Y
    return X @ Y


def _modal_gramians(lam: np.ndarray, B: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Textbook gramians of (Λ, ΛB, C) in modal coordinates: entrywise Stein solutions."""
    l = lam[:, :, None]
    lc = lam.conj()[:, None, :]
    Bp = lam[:, :, None] * B
    Wc = _outer(Bp, Bp.conj().swapaxes(-1, -2)) / (1.0 - l * lc)
    Wo = _outer(C.conj().swapaxes(-1, -2), C) / (1.0 - l.conj() * lam[:, None, :])
    return Wc, Wo


def _real_pair_gramians(lam: np.ndarray, B: np.ndarray, fC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gramians in x = [Re h; Im h] straight from the N stored modes of a real-output system.

    ``lam`` (b, N), ``B`` (b, N, m) and ``fC`` = f·C (b, p, N). The conjugate-augmented gramian
    [[X11, X12], [X̄12, X̄11]] (X11 over pairs (λ_i, λ̄_j), X12 over (λ_i, λ_j)) maps to
    ½[[Re(X11 + X12), Im(X12 − X11)], [Im(X12 + X11), Re(X11 − X12)]]: two N×N blocks instead of a 2N×2N
    matrix and its transform, a quarter of the work. Both gramians share the two Stein kernels
    K = 1/(1 − λ_iλ̄_j) and J = 1/(1 − λ_iλ_j): the observability blocks are conj((f²CᵀC̄)∘K) and
    conj((f²CᵀC)∘J), whose real blocks follow with the signs of the imaginary parts flipped.
    """
    K, J = _pair_kernels(lam)
    Wc = _real_pair_ctrb(lam, lam[:, :, None] * B, kernels=(K, J))
    b, N = lam.shape
    Ct = fC.swapaxes(-1, -2)
    Y11 = _outer(Ct, fC.conj())
    Y11 *= K
    Y12 = _outer(Ct, fC)
    Y12 *= J
    Wo = np.empty((b, 2 * N, 2 * N))
    _real_blocks_into(Wo, Y11, Y12, -1.0)
    return Wc, Wo


def _pair_kernels(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """½/(1 − λ_iλ̄_j) and ½/(1 − λ_iλ_j), shape (b, N, N); the ½ of the real blocks folded in (exact)."""
    li, lj = lam[:, :, None], lam[:, None, :]
    K = np.reciprocal(1.0 - li * lj.conj())
    K *= 0.5
    J = np.reciprocal(1.0 - li * lj)
    J *= 0.5
    return K, J


def _real_pair_ctrb(
    lam: np.ndarray, Bp: np.ndarray, kernels: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Real-coordinate controllability gramian of the pairs (λ, B') and (λ̄, B̄'): lam (b, N), Bp (b, N, m)."""
    b, N = lam.shape
    K, J = _pair_kernels(lam) if kernels is None else kernels
    X11 = _outer(Bp, Bp.conj().swapaxes(-1, -2))
    X11 *= K
    X12 = _outer(Bp, Bp.swapaxes(-1, -2))
    X12 *= J
    Wc = np.empty((b, 2 * N, 2 * N))
    _real_blocks_into(Wc, X11, X12, 1.0)
    return Wc


def _real_blocks_into(W: np.ndarray, X11: np.ndarray, X12: np.ndarray, sign: float) -> None:
    """W = [[Re(X11 + X12), s·Im(X12 − X11)], [s·Im(X12 + X11), Re(X11 − X12)]] (s = ±1), written in place."""
    N = X11.shape[-1]
    r11, r12, i11, i12 = X11.real, X12.real, X11.imag, X12.imag
    np.add(r11, r12, out=W[:, :N, :N])
    np.subtract(r11, r12, out=W[:, N:, N:])
    if sign > 0:
        np.subtract(i12, i11, out=W[:, :N, N:])
        np.add(i12, i11, out=W[:, N:, :N])
    else:
        np.subtract(i11, i12, out=W[:, :N, N:])
        np.add(i12, i11, out=W[:, N:, :N])
        np.negative(W[:, N:, :N], out=W[:, N:, :N])


def _sqrt_factor(W: np.ndarray) -> np.ndarray:
    """L with W = L L^H from the lower triangle of W: Cholesky where it succeeds (≈10× cheaper than eigh),
    else from eigh.

    States whose gramian diagonal is at rounding level (|W_kk| ≤ n·eps·max W) are structurally
    uncontrollable/unobservable (e.g. the imaginary half of a real mode in the real coordinates); they are
    decoupled first so that Cholesky applies, and their rows of L are zero. Other semidefinite gramians make
    Cholesky fail; then eigenvalues at rounding level (|s| ≤ n·eps·max s) are set to zero, which gives the exact
    rank, so the Hankel values of the missing directions come out as exact zeros.
    """
    L = _cholesky_factor(W)
    if L is not None:
        return L
    n = W.shape[-1]
    s_, U = np.linalg.eigh(W)
    floor = n * _EPS * np.max(np.abs(s_), axis=-1, keepdims=True)
    s_ = np.where(s_ > floor, s_, 0.0)
    return U * np.sqrt(s_)[..., None, :]


def _pivoted_cholesky(W: np.ndarray) -> np.ndarray:
    """L with W ≈ L L^H for positive semidefinite W, by LAPACK's rank-revealing pivoted Cholesky (?pstrf).

    Used only where the batched plain Cholesky fails; LAPACK has no batched ?pstrf, so the (rare) blocks that
    need it are factored one matrix at a time. Columns past the numerical rank (tol n·eps·max W_kk) are zero.
    """
    import scipy.linalg.lapack as lapack

    flat = W.reshape((-1,) + W.shape[-2:])
    n = W.shape[-1]
    pstrf = lapack.zpstrf if np.iscomplexobj(W) else lapack.dpstrf
    out = np.zeros_like(flat)
    for i, Wi in enumerate(flat):
        tol = n * _EPS * float(np.max(np.abs(np.diagonal(Wi))))
        c, piv, rank, info = pstrf(Wi, lower=1, tol=tol)
        if info < 0:
            raise SsmctlError(f"pivoted Cholesky failed (LAPACK info {info})")
        Lp = np.tril(c)
        Lp[:, rank:] = 0.0
        out[i][piv - 1] = Lp  # W[piv][:, piv] = Lp Lp^H, so W = P Lp Lp^H Pᵀ
    return out.reshape(W.shape)


def _cholesky_factor(W: np.ndarray) -> np.ndarray | None:
    """The Cholesky part of :func:`_sqrt_factor` (dead states decoupled); None where Cholesky fails."""
    n = W.shape[-1]
    diag = np.real(np.diagonal(W, axis1=-2, axis2=-1))
    dead = diag <= n * _EPS * np.max(np.abs(diag), axis=-1, keepdims=True)
    any_dead = bool(dead.any())
    Wd = W
    if any_dead:
        keep = (~dead).astype(W.real.dtype)
        Wd = W * keep[..., :, None] * keep[..., None, :]
        idx = np.arange(n)
        Wd[..., idx, idx] += dead  # unit diagonal on decoupled states
    try:
        L = np.linalg.cholesky(Wd)
    except np.linalg.LinAlgError:
        return None
    if any_dead:
        L *= keep[..., :, None]
    return L


def hankel_singular_values(sys: Any) -> np.ndarray:
    """Hankel singular values σ_i = sqrt(λ_i(Wc Wo)), descending.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer

    Returns
    -------
    ndarray, float, shape (..., n)
        n = :attr:`n_states`; zeros for the uncontrollable or unobservable part.

    Notes
    -----
    Square-root method: Wc = L_c L_c^H and Wo = L_o L_o^H from symmetric eigendecompositions with the
    (rounding-level) negative eigenvalues clipped, then σ = svd(L_o^H L_c). Unlike a Cholesky factorization it
    works for the semidefinite gramians of non-minimal systems. Diagonal systems use the closed-form
    gramians (in the real coordinates for real systems, in the modal ones for complex systems; the values
    are invariant under a change of coordinates). python-control's ``hsvd`` does
    not support discrete time; these equal sqrt(eig(gram(…,'c')·gram(…,'o'))).
    """
    sys = as_system(sys)
    _require_stable(sys, "hankel_singular_values")
    n = sys.n_states
    if isinstance(sys, DiagonalLTI) and sys.is_real and sys.n_inputs == sys.n_outputs == 1:
        return _hsv_real_siso(sys)
    if isinstance(sys, DiagonalLTI):
        build, nb = _diagonal_gramian_builder(sys)
    else:
        Wc_all, Wo_all = (W.reshape((-1, n, n)) for W in gramians(sys))
        nb = Wc_all.shape[0]

        def build(blk: slice) -> tuple[np.ndarray, np.ndarray]:
            return Wc_all[blk], Wo_all[blk]

    out = np.empty((nb, n))
    # Channel blocks small enough for the gramians, factors and product to stay in cache together.
    for blk in _blocks(nb, n * n, _HSV_BLOCK):
        Wc, Wo = build(blk)
        Lc, Lo = _sqrt_factor(Wc), _sqrt_factor(Wo)
        out[blk] = np.linalg.svd(Lo.conj().swapaxes(-1, -2) @ Lc, compute_uv=False)
    return out.reshape(sys.batch_shape + (n,))


def _hsv_real_siso(sys: DiagonalLTI) -> np.ndarray:
    """Hankel values of real SISO diagonal systems from one gramian and a symmetric eigenproblem.

    The Hankel matrix of a real SISO system is symmetric, so its singular values are the moduli of its
    eigenvalues, i.e. of the cross gramian X = Σ_k A^k B'C A^k. In the augmented modal coordinates
    X_ij = b'_i c_j/(1 − λ_iλ_j) has the eigenvalues of S K S E, where g = b'∘c = ε∘s² (s = sqrt(g) for
    complex modes, with s̄ on the conjugates; s = sqrt|g|, ε = sign g for a real state), K_ij = 1/(1 − λ_iλ_j)
    and E = diag(ε). For conjugate pairs S K S = Wc·Π with Wc the controllability gramian of (Λ, s) and Π
    the swap of the halves, which in the real coordinates x = [Re h; Im h] becomes Wc_real·2·diag(I, −I).
    With Wc_real = L Lᵀ the values are |eig(Lᵀ·diag(ε)·L)|: one Cholesky, one product and a symmetric
    eigenvalue problem (eigvalsh, half the cost of an SVD), and no observability gramian at all. Where the
    Cholesky factor exists this agrees with the square-root SVD method to ~eps·σ₁; blocks where it does not
    go through that method.
    """
    lam, B, C, _ = sys.broadcast_arrays()
    N = sys.n_stored
    lam, b, c = lam.reshape(-1, N), B.reshape(-1, N), C.reshape(-1, N)
    nb, n = lam.shape[0], sys.n_states
    out = np.empty((nb, n))
    general, _ = _diagonal_gramian_builder(sys)
    if sys.real_state:
        g = sys.real_factor * c.real * lam.real * b.real
        s_all = np.sqrt(np.abs(g))
        sign_all = np.where(g < 0, -1.0, 1.0)
    else:
        s_all = np.sqrt((0.5 * sys.real_factor) * c * lam * b)
        sign = np.concatenate([np.full(N, 2.0), np.full(N, -2.0)])
    for blk in _blocks(nb, n * n, _HSV_BLOCK):
        if sys.real_state:
            l = lam[blk].real
            s = s_all[blk]
            Wc = (s[:, :, None] * s[:, None, :]) / (1.0 - l[:, :, None] * l[:, None, :])
            sg = sign_all[blk]
        else:
            Wc = _real_pair_ctrb(lam[blk], s_all[blk][:, :, None])
            sg = sign
        L = _cholesky_factor(Wc)
        if L is None:
            # A numerically singular gramian (long memory makes the Cauchy-like gramian's eigenvalues decay
            # fast): a rank-revealing pivoted Cholesky factor keeps this method's accuracy, where an eigh-based
            # factor would not (its error is not filtered by the observability side).
            L = _pivoted_cholesky(Wc)
        M = L.swapaxes(-1, -2) @ (L * sg[..., :, None])
        out[blk] = np.abs(np.linalg.eigvalsh(M))
    out = -np.sort(-out, axis=-1)
    return out.reshape(sys.batch_shape + (n,))


# --------------------------------------------------------------------------------------------------
# balanced truncation
# --------------------------------------------------------------------------------------------------
def balanced_truncation(sys: Any, r: int) -> DenseLTI:
    """Square-root balanced truncation to order r, returned in ssmctl's convention.

    The textbook realization (A, B', C, D') is balanced and truncated (keeping the r largest Hankel singular
    values), then translated back: Ā_r = A_r, B̄_r = A_r^{-1}B'_r, C_r, D_r = D'_r − C_r B̄_r. The error
    obeys ‖G − G_r‖_∞ ≤ 2·Σ_{i>r} σ_i.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer (stable)
    r : int
        Reduced order, 0 < r ≤ n. Real systems give real reduced matrices.

    Returns
    -------
    DenseLTI
        Batch shape of ``sys``; A (..., r, r), B (..., r, m), C (..., p, r), D (..., p, m).

    Raises
    ------
    SsmctlError
        When r is out of range, when σ_r is numerically zero (r exceeds the minimal order), or when A_r is
        singular (the reduced model then has a pole at z = 0 that ssmctl's convention cannot carry).
    """
    sys = as_system(sys)
    n = sys.n_states
    if int(r) != r or not 0 < r <= n:
        raise SsmctlError(f"balanced_truncation needs an integer order 0 < r ≤ n = {n}, got r = {r!r}")
    r = int(r)
    Wc, Wo = gramians(sys)  # raises on unstable systems
    A, Bp, C, Dp = (x.reshape((-1,) + x.shape[-2:]) for x in standard_form(sys))
    Wc = Wc.reshape((-1, n, n))
    Wo = Wo.reshape((-1, n, n))
    Lc, Lo = _sqrt_factor(Wc), _sqrt_factor(Wo)
    U, s, Vh = np.linalg.svd(Lo.conj().swapaxes(-1, -2) @ Lc)
    small = s[:, r - 1] <= n * _EPS * np.maximum(s[:, 0], np.finfo(float).tiny)
    if small.any():
        i = int(np.argmax(small))
        k = int(np.sum(s[i] > n * _EPS * s[i, 0]))
        raise SsmctlError(
            f"balanced_truncation: σ_{r} is numerically zero at {_fmt_index(i, sys.batch_shape)} "
            f"(only {k} of {n} Hankel singular values are nonzero); choose r ≤ {k}"
        )
    inv_sqrt = 1.0 / np.sqrt(s[:, :r])
    Tr = Lc @ (Vh[:, :r].conj().swapaxes(-1, -2) * inv_sqrt[:, None, :])  # (b, n, r)
    Tl = (U[:, :, :r].conj().swapaxes(-1, -2) * inv_sqrt[:, :, None]) @ Lo.conj().swapaxes(-1, -2)  # (b, r, n)
    Ar, Bpr, Cr = Tl @ A @ Tr, Tl @ Bp, C @ Tr
    sv = np.linalg.svd(Ar, compute_uv=False)
    singular = sv[:, -1] <= 1e3 * _EPS * np.maximum(sv[:, 0], 1.0)
    if singular.any():
        i = int(np.argmax(singular))
        raise SsmctlError(
            f"balanced_truncation: the reduced state matrix A_r is singular at {_fmt_index(i, sys.batch_shape)} "
            f"(smallest singular value {sv[i, -1]:.3g}); its pole at z = 0 has no realization "
            "h_k = Ā h_{k-1} + B̄ u_k of the same order. Try another r"
        )
    Bbar = np.linalg.solve(Ar, Bpr)
    Dr = Dp - Cr @ Bbar
    if sys.is_real:
        Ar, Bbar, Cr, Dr = Ar.real, Bbar.real, Cr.real, Dr.real
    b = sys.batch_shape
    p, m = sys.n_outputs, sys.n_inputs
    return DenseLTI(
        Ar.reshape(b + (r, r)),
        Bbar.reshape(b + (r, m)),
        Cr.reshape(b + (p, r)),
        Dr.reshape(b + (p, m)),
        dt=sys.dt,
        meta={**sys.meta, "reduced_from": n},
    )


# --------------------------------------------------------------------------------------------------
# H-infinity norm
# --------------------------------------------------------------------------------------------------
def hinf_norm(sys: Any, rtol: float = 1e-6, return_frequency: bool = False) -> Any:
    """H∞ norm max_ω σ_max(G(e^{iω})), certified to a relative tolerance.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer (stable)
    rtol : float
        Relative tolerance: the returned value is attained (σ_max(G) at the returned frequency) and the true
        norm is proven to lie in [value, value·(1 + rtol)].
    return_frequency : bool
        Also return the peak frequency.

    Returns
    -------
    norm : ndarray, float, shape (...)
    omega : ndarray, float, shape (...), only with ``return_frequency``
        Peak frequency in rad/sample: in [0, π] for real systems, in [−π, π] for complex ones.

    Raises
    ------
    UnstableSystemError
        When any mode has |λ| ≥ 1.

    Notes
    -----
    Diagonal systems (and dense ones with a well-conditioned eigenbasis) use branch and bound on the
    frequency circle. With G(e^{iω}) = D + CB + Σ_n λ_n c_n b_nᵀ/(e^{iω} − λ_n) over the augmented modes,
    ‖d²G/dω²‖ ≤ M(arc) = Σ_n |λ_n|(1 + |λ_n|)‖c_n‖‖b_n‖/dist(arc, λ_n)³, with the distance in closed form.
    On an arc [a, b], σ_max of the chord between G(a) and G(b) is convex, so
    σ_max(G(ω)) ≤ max(σ_max(G(a)), σ_max(G(b))) + M·(b − a)²/8. Arcs whose bound is below
    best·(1 + rtol) are dropped, the rest bisected; every round is vectorized over all live arcs of all
    batch elements. Real systems need ω ∈ [0, π] only. Strongly non-normal dense systems use the
    discrete-time level-set method of Boyd–Balakrishnan–Bruinsma (unit-circle eigenvalues of a symplectic
    pencil), as slycot's ``ab13dd`` does.
    """
    sys = as_system(sys)
    if not 0 < rtol < 1:
        raise SsmctlError(f"rtol must lie in (0, 1), got {rtol}")
    eig = _require_stable(sys, "hinf_norm")
    real = sys.is_real
    if isinstance(sys, DiagonalLTI):
        lam, B, C, D = _flat_augmented(sys)
        # Conjugate pairs (first half / second half of the augmented modes) exist unless the state is real.
        val, w = _hinf_modal(lam, B, C, D, real, rtol, pairs=real and not sys.real_state)
    else:
        nb = int(np.prod(sys.batch_shape))
        val, w = np.empty(nb), np.empty(nb)
        ok, (lam, Bm, Cm, Dm, _) = _modal(sys)
        if ok.any():
            val[ok], w[ok] = _hinf_modal(lam, Bm, Cm, Dm, real, rtol)
        if (~ok).any():
            A, Bp, C, Dp = (x.reshape((-1,) + x.shape[-2:]) for x in standard_form(sys))
            eigs = eig.reshape(nb, -1)
            for i in np.flatnonzero(~ok):
                # A diagonal similarity (LAPACK balancing) removes bad scaling before the pencil.
                _, (sc, _) = scipy.linalg.matrix_balance(A[i], permute=False, separate=True)
                Ab = A[i] * (sc[None, :] / sc[:, None])
                val[i], w[i] = _hinf_pencil(Ab, Bp[i] / sc[:, None], C[i] * sc[None, :], Dp[i], real, rtol, eigs[i])
    val = val.reshape(sys.batch_shape)
    if return_frequency:
        return val, w.reshape(sys.batch_shape)
    return val


class _ModalEvaluator:
    """σ_max(G(e^{iω})) for many (batch row, ω) pairs of a flattened modal system.

    G(e^{iω}) = K + Σ_n R_n / (e^{iω} − λ_n) with K = D + CB and R_n = λ_n c_n b_nᵀ. With ``pairs`` the
    second half of the modes is the conjugate of the first (a real system's augmented modes).
    """

    def __init__(self, lam: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray, pairs: bool = False) -> None:
        self.lam = lam
        self.p, self.m = C.shape[-2], B.shape[-1]
        n = lam.shape[-1]
        self.K = (D + C @ B).reshape(lam.shape[0], -1)
        self.siso = self.p * self.m == 1
        self.pairs = pairs and self.p * self.m > 4
        keep = n // 2 if self.pairs else n
        R = np.empty((lam.shape[0], keep, self.p, self.m), dtype=np.complex128)
        lc = lam[:, :keep, None] * C[:, :, :keep].swapaxes(-1, -2)  # (b, n, p)
        np.multiply(lc[:, :, :, None], B[:, :keep, None, :], out=R)
        R = R.reshape(lam.shape[0], keep, -1)
        if self.pairs:
            # S₁R + S₂R̄ = (S₁ + S₂)Re R + i(S₁ − S₂)Im R: one real product of half the complex cost.
            self.R_real = np.concatenate([R.real, R.imag], axis=1)
            self.lam_half = lam[:, :keep]
        else:
            self.R = R

    def __call__(self, rows: np.ndarray, omega: np.ndarray) -> np.ndarray:
        """σ_max(G(e^{iω})) at each (row, ω) pair, shape (L,)."""
        L = rows.shape[0]
        out = np.empty(L)
        if L == 0:
            return out
        z = np.exp(1j * omega)
        n = self.lam.shape[-1]
        if self.siso:
            R, K = self.R[..., 0], self.K[:, 0]
            for blk in _blocks(L, n, _SWEEP):
                rr = rows[blk]
                S = np.reciprocal(z[blk, None] - self.lam[rr])
                out[blk] = np.abs(K[rr] + np.einsum("ln,ln->l", S, R[rr]))
            return out
        if self.p * self.m <= 4:
            for blk in _blocks(L, n * (self.p * self.m + 1), _SWEEP):
                rr = rows[blk]
                S = np.reciprocal(z[blk, None] - self.lam[rr])  # (L, n)
                out[blk] = self._sigma(self.K[rr] + np.einsum("ln,lnk->lk", S, self.R[rr]))
            return out
        # Wide outputs: one matrix product per batch row instead of gathering the (n, p·m) residues.
        order = np.argsort(rows, kind="stable")
        srows = rows[order]
        starts = np.flatnonzero(np.r_[True, srows[1:] != srows[:-1]])
        ends = np.r_[starts[1:], L]
        for s0, e0 in zip(starts, ends):
            row = srows[s0]
            for blk in _blocks(e0 - s0, n + self.p * self.m):
                ii = order[s0 + blk.start : s0 + blk.stop]
                if self.pairs:
                    S1 = np.reciprocal(z[ii, None] - self.lam_half[row])
                    S2 = np.reciprocal(z[ii, None] - self.lam_half[row].conj())
                    Sp, Sm = S1 + S2, S1 - S2
                    X = np.block([[Sp.real, -Sm.imag], [Sp.imag, Sm.real]])
                    Y = X @ self.R_real[row]
                    k = ii.shape[0]
                    G = self.K[row] + (Y[:k] + 1j * Y[k:])
                else:
                    G = self.K[row] + np.reciprocal(z[ii, None] - self.lam[row]) @ self.R[row]
                out[ii] = self._sigma(G)
        return out

    def _sigma(self, G: np.ndarray) -> np.ndarray:
        G = G.reshape(-1, self.p, self.m)
        if self.p == 1 or self.m == 1:
            return np.sqrt(np.sum(G.real**2 + G.imag**2, axis=(-2, -1)))
        return np.linalg.svd(G, compute_uv=False)[:, 0]

    def norm_K(self) -> np.ndarray:
        """σ_max of the constant term K per batch row."""
        K = self.K.reshape(-1, self.p, self.m)
        if self.p * self.m == 0:
            return np.zeros(K.shape[0])
        return np.linalg.svd(K, compute_uv=False)[:, 0]


def _hinf_modal(
    lam: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    real: bool,
    rtol: float,
    pairs: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Branch and bound over arcs (see :func:`hinf_norm`); flattened batch in, (value, ω_peak) out."""
    nb, n = lam.shape
    evaluate = _ModalEvaluator(lam, B, C, D, pairs)
    lo, hi = (0.0, np.pi) if real else (-np.pi, np.pi)
    bounds = _ArcBounds(lam, B, C, evaluate.norm_K())

    # Initial points: a uniform grid plus the arguments of the modes with the highest potential peak
    # |λ|‖c‖‖b‖/(1 − |λ|) (peaks sit next to lightly damped, strongly coupled poles).
    n_uniform = _N_UNIFORM if n else 2
    theta = np.angle(lam)
    potential = np.abs(lam) * np.linalg.norm(C, axis=-2) * np.linalg.norm(B, axis=-1) / (1.0 - np.abs(lam))
    if real:
        theta = np.abs(theta)
        potential = np.where(lam.imag < 0, -np.inf, potential)  # a conjugate repeats its partner's |arg|
    top = np.argsort(-potential, axis=1)[:, : min(_N_PROBE, n)]
    probe = np.take_along_axis(theta, top, axis=1)
    pts = np.concatenate([np.broadcast_to(np.linspace(lo, hi, n_uniform), (nb, n_uniform)), probe], axis=1)
    pts = np.sort(np.clip(pts, lo, hi), axis=1)
    rows_all = np.repeat(np.arange(nb), pts.shape[1])
    f_all = evaluate(rows_all, pts.ravel()).reshape(pts.shape)
    arg = np.argmax(f_all, axis=1)
    best = f_all[np.arange(nb), arg]
    best_w = pts[np.arange(nb), arg]

    rows = np.repeat(np.arange(nb), pts.shape[1] - 1)
    a, b = pts[:, :-1].ravel(), pts[:, 1:].ravel()
    fa, fb = f_all[:, :-1].ravel(), f_all[:, 1:].ravel()
    # The mode sums behind the bounds only shrink on a sub-arc, so children first try their parent's
    # sums and the O(n) sums are recomputed only for arcs that this cheaper bound cannot drop.
    sums = np.full((rows.shape[0], 3), np.inf)
    for _ in range(200):
        keep = bounds.combine(rows, b - a, fa, fb, sums) > best[rows] * (1.0 + rtol)
        rows, a, b, fa, fb = rows[keep], a[keep], b[keep], fa[keep], fb[keep]
        sums = bounds.sums(rows, a, b)
        keep = bounds.combine(rows, b - a, fa, fb, sums) > best[rows] * (1.0 + rtol)
        if not keep.any():
            break
        rows, a, b, fa, fb, sums = rows[keep], a[keep], b[keep], fa[keep], fb[keep], sums[keep]
        mid = 0.5 * (a + b)
        fm = evaluate(rows, mid)
        np.maximum.at(best, rows, fm)
        hit = fm == best[rows]
        best_w[rows[hit]] = mid[hit]
        rows = np.concatenate([rows, rows])
        a, b = np.concatenate([a, mid]), np.concatenate([mid, b])
        fa, fb = np.concatenate([fa, fm]), np.concatenate([fm, fb])
        sums = np.concatenate([sums, sums])
    else:  # pragma: no cover - the bound shrinks quadratically, so 200 halvings cannot be exhausted
        raise SsmctlError("hinf_norm did not converge; please report this system")
    return best, best_w


class _ArcBounds:
    """Upper bounds of σ_max(G(e^{iω})) over arcs [a, b], given the values fa, fb at the ends.

    With d_n = dist(arc, λ_n) and w_n = ‖R_n‖ = |λ_n|‖c_n‖‖b_n‖ the minimum of three bounds:
    ‖K‖ + Σ w_n/d_n (triangle inequality); (fa + fb)/2 + (b − a)/2·Σ w_n/d_n² (Lipschitz); and
    max(fa, fb) + (b − a)²/8·Σ w_n(1 + |λ_n|)/d_n³ (chord + curvature: σ_max of the chord is convex).
    """

    def __init__(self, lam: np.ndarray, B: np.ndarray, C: np.ndarray, norm_K: np.ndarray) -> None:
        r = np.abs(lam)
        w = r * np.linalg.norm(C, axis=-2) * np.linalg.norm(B, axis=-1)
        self.theta, self.q, self.four_r = np.angle(lam), (1.0 - r) ** 2, 4.0 * r
        self.w, self.onep = w, 1.0 + r
        self.norm_K = norm_K

    def sums(self, rows: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(Σ w_n/d_n, Σ w_n/d_n², Σ w_n(1 + |λ_n|)/d_n³) for each arc, shape (L, 3)."""
        n = self.theta.shape[1]
        out = np.zeros((rows.shape[0], 3))
        if n == 0:
            return out
        width = b - a
        for blk in _blocks(rows.shape[0], n, _SWEEP):
            rr = rows[blk]
            x = self.theta[rr]
            x -= 0.5 * (a[blk] + b[blk])[:, None]
            np.abs(x, out=x)
            np.minimum(x, 2.0 * np.pi - x, out=x)  # angular gap between the arc's centre and λ_n
            x -= 0.5 * width[blk, None]
            np.maximum(x, 0.0, out=x)
            x *= 0.5
            # sin x ≥ x(1 − x²/6) on [0, π/2]: a lower bound of the distance keeps the bounds valid, cheaply.
            s = x * x
            s *= -1.0 / 6.0
            s += 1.0
            s *= x
            s *= s
            s *= self.four_r[rr]
            s += self.q[rr]
            inv = np.sqrt(s, out=s)
            np.reciprocal(inv, out=inv)
            t = self.w[rr]
            t *= inv
            out[blk, 0] = t.sum(axis=1)
            t *= inv
            out[blk, 1] = t.sum(axis=1)
            t *= inv
            t *= self.onep[rr]
            out[blk, 2] = t.sum(axis=1)
        return out

    def combine(
        self, rows: np.ndarray, width: np.ndarray, fa: np.ndarray, fb: np.ndarray, sums: np.ndarray
    ) -> np.ndarray:
        """The minimum of the three bounds from the mode sums of an arc (or of any arc containing it)."""
        with np.errstate(invalid="ignore"):
            u0 = self.norm_K[rows] + sums[:, 0]
            u1 = 0.5 * (fa + fb) + 0.5 * width * sums[:, 1]
            u2 = np.maximum(fa, fb) + 0.125 * width * width * sums[:, 2]
        return np.fmin(np.fmin(u0, u1), u2)


def _sigma_dense(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """σ_max of C(zI − A)^{-1}B + D at z = e^{iω} by linear solves (no eigenbasis needed)."""
    z = np.exp(1j * np.asarray(omega))[:, None, None]
    X = np.linalg.solve(z * np.eye(A.shape[0]) - A, np.broadcast_to(B, (z.shape[0],) + B.shape))
    G = C @ X + D
    return np.linalg.svd(G, compute_uv=False)[:, 0]


def _hinf_pencil(
    A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray, real: bool, rtol: float, eig: np.ndarray
) -> tuple[float, float]:
    """Discrete-time Boyd–Balakrishnan–Bruinsma iteration for one textbook system (A, B, C, D).

    γ is a singular value of G(e^{iω}) iff e^{iω} is a generalized eigenvalue of M − zL with
    M = [[A, 0, B, 0], [0, I, 0, 0], [C, 0, D, −γI], [0, B^H, −γI, D^H]] and
    L = [[I, 0, 0, 0], [0, A^H, 0, C^H], [0, 0, 0, 0], [0, 0, 0, 0]] (unknowns x, y, u, v with
    zx = Ax + Bu, y = z(A^H y + C^H v), Cx + Du = γv, B^H y + D^H v = γu).
    """
    n, m, p = A.shape[0], B.shape[1], C.shape[0]
    lo, hi = (0.0, np.pi) if real else (-np.pi, np.pi)
    grid = np.concatenate([np.linspace(lo, hi, 257), np.clip(np.abs(np.angle(eig)) if real else np.angle(eig), lo, hi)])
    f = _sigma_dense(A, B, C, D, grid)
    k = int(np.argmax(f))
    best, best_w = float(f[k]), float(grid[k])
    AH, BH, CH, DH = (x.conj().T for x in (A, B, C, D))
    dtype = np.result_type(A, B, C, D)
    size = 2 * n + m + p
    Mbase = np.zeros((size, size), dtype=dtype)
    L = np.zeros((size, size), dtype=dtype)
    x, y, u, v = slice(0, n), slice(n, 2 * n), slice(2 * n, 2 * n + m), slice(2 * n + m, size)
    r1, r2, r3, r4 = slice(0, n), slice(n, 2 * n), slice(2 * n, 2 * n + p), slice(2 * n + p, size)
    Mbase[r1, x], Mbase[r1, u] = A, B
    Mbase[r2, y] = np.eye(n)
    Mbase[r3, x], Mbase[r3, u] = C, D
    Mbase[r4, y], Mbase[r4, v] = BH, DH
    L[r1, x] = np.eye(n)
    L[r2, y], L[r2, v] = AH, CH
    for _ in range(100):
        if best == 0.0:
            break
        gamma = best * (1.0 + rtol)
        M = Mbase.copy()
        M[r3, v] = -gamma * np.eye(p)
        M[r4, u] = -gamma * np.eye(m)
        alpha, beta = scipy.linalg.eigvals(M, L, homogeneous_eigvals=True)
        finite = np.abs(beta) > 1e-13 * np.abs(alpha)
        zz = alpha[finite] / beta[finite]
        # Liberal: spurious candidates only cost evaluations, while a crossing missed through rounding
        # would stop the iteration early. Any true crossing lies among the candidates, so every arc where
        # σ_max > γ contains a midpoint of consecutive candidates.
        on = np.abs(np.abs(zz) - 1.0) < 1e-3
        if not on.any():
            break
        w = np.sort(np.angle(zz[on]))
        if real:
            w = np.unique(np.abs(w))
        cand = np.concatenate([w, 0.5 * (w[1:] + w[:-1])])
        if real:
            cand = np.append(cand, [lo, hi])  # level-set arcs may end at ω = 0 or π instead of a crossing
        else:
            cand = np.append(cand, np.angle(np.exp(1j * (0.5 * (w[0] + w[-1] + 2 * np.pi)))))
        fc = _sigma_dense(A, B, C, D, np.clip(cand, lo, hi))
        k = int(np.argmax(fc))
        if fc[k] <= gamma:
            break  # no arc above γ: γ = best·(1 + rtol) is an upper bound
        best, best_w = float(fc[k]), float(np.clip(cand[k], lo, hi))
    return best, best_w


# --------------------------------------------------------------------------------------------------
# controllability, observability, McMillan degree
# --------------------------------------------------------------------------------------------------
def is_controllable(sys: Any, tol: float | None = None) -> np.ndarray:
    """Whether the textbook pair (A, B' = ĀB̄) is controllable (the realization python-control sees).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer
    tol : float, optional
        Relative rank tolerance (default 1e-10): singular values below tol × (scale of B' or A) count as zero.

    Returns
    -------
    ndarray, bool, shape (...)

    Raises
    ------
    SsmctlError
        When ``tol`` is not positive.

    Notes
    -----
    Diagonal systems: PBH test over clusters S of numerically equal augmented eigenvalues, rank(B'_S) = |S|.
    Modes with λ = 0 only feed through (B' = λB̄ = 0 there) and count as uncontrollable, as in
    ``ctrb(to_control(sys))``. Dense systems: orthogonal staircase (deflated block Krylov) reduction.
    """
    return _structure(sys, tol)[0]


def is_observable(sys: Any, tol: float | None = None) -> np.ndarray:
    """Whether the pair (A, C) is observable; PBH rank(C_S) = |S| per eigenvalue cluster.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer
    tol : float, optional
        Relative rank tolerance (default 1e-10): singular values below tol × (scale of C or A) count as zero.

    Returns
    -------
    ndarray, bool, shape (...)
        One answer per batch element.

    Raises
    ------
    SsmctlError
        When ``tol`` is not positive.
    ShapeError
        When ``sys`` is not a system or a layer with ``.system()``.

    Notes
    -----
    Diagonal systems: PBH test over clusters S of numerically equal augmented eigenvalues, rank(C_S) = |S|.
    Dense systems: orthogonal staircase (deflated block Krylov) reduction on (Aᴴ, Cᴴ); see
    :func:`is_controllable`.
    """
    return _structure(sys, tol)[1]


def minimal_order(sys: Any, tol: float | None = None) -> np.ndarray:
    """McMillan degree: the order of a minimal realization of G, shape (...), int.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer
    tol : float, optional
        Relative rank tolerance (default 1e-10), as in :func:`is_controllable`.

    Returns
    -------
    ndarray, int64, shape (...)
        One order per batch element, between 0 and :attr:`n_states`.

    Raises
    ------
    SsmctlError
        When ``tol`` is not positive.
    ShapeError
        When ``sys`` is not a system or a layer with ``.system()``.

    Notes
    -----
    Diagonal systems: Σ over eigenvalue clusters S of rank(C_S B'_S) (the rank of the residue at that pole).
    Dense systems: dimension of the observable part of the controllable part (orthogonal staircases).
    """
    return _structure(sys, tol)[2]


def _structure(sys: Any, tol: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sys = as_system(sys)
    tol = _RANK_RTOL if tol is None else float(tol)
    if not tol > 0:
        raise SsmctlError(f"tol must be positive, got {tol}")
    if isinstance(sys, DiagonalLTI):
        ctrl, obs, order = _structure_diagonal(sys, tol)
    else:
        ctrl, obs, order = _structure_dense(sys, tol)
    b = sys.batch_shape
    return ctrl.reshape(b), obs.reshape(b), order.reshape(b)


def _rank(X: np.ndarray, atol: float) -> int:
    if X.size == 0:
        return 0
    return int(np.sum(np.linalg.svd(X, compute_uv=False) > atol))


def _structure_diagonal(sys: DiagonalLTI, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lam, B, C, _ = _flat_augmented(sys)
    nb, n = lam.shape
    Bp = lam[:, :, None] * B
    nb_ = np.linalg.norm(Bp, axis=-1)  # (b, n)
    nc_ = np.linalg.norm(C, axis=-2)
    # Scales are per system so that the decisions do not depend on the units of B and C.
    sc_b = tol * np.max(nb_, axis=-1, initial=0.0)
    sc_c = tol * np.max(nc_, axis=-1, initial=0.0)
    sc_r = tol * np.max(nb_ * nc_, axis=-1, initial=0.0)
    ctrl_mode = nb_ > sc_b[:, None]
    obs_mode = nc_ > sc_c[:, None]
    order_mode = (nb_ * nc_ > sc_r[:, None]).astype(np.int64)
    ctrl = np.ones(nb, dtype=bool)
    obs = np.ones(nb, dtype=bool)
    order = np.zeros(nb, dtype=np.int64)
    in_cluster = np.zeros((nb, n), dtype=bool)
    for blk in _blocks(nb, n * n):
        l = lam[blk]
        close = np.abs(l[:, :, None] - l[:, None, :]) <= _CLUSTER_RTOL * np.maximum(1.0, np.abs(l))[:, :, None]
        in_cluster[blk] = close.sum(axis=-1) > 1
        for i in np.flatnonzero(in_cluster[blk].any(axis=-1)):
            row = blk.start + i
            members = np.flatnonzero(in_cluster[row])
            graph = scipy.sparse.csr_matrix(close[i][np.ix_(members, members)])
            _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
            for c in range(labels.max() + 1):
                S = members[labels == c]
                BS, CS = Bp[row][S], C[row][:, S]
                ctrl[row] &= _rank(BS, sc_b[row]) == S.size
                obs[row] &= _rank(CS, sc_c[row]) == S.size
                order[row] += _rank(CS @ BS, sc_r[row])
    single = ~in_cluster
    ctrl &= np.all(ctrl_mode | ~single, axis=-1)
    obs &= np.all(obs_mode | ~single, axis=-1)
    order += np.sum(order_mode * single, axis=-1)
    return ctrl, obs, order


def _krylov_basis(A: np.ndarray, B: np.ndarray, tol: float) -> np.ndarray:
    """Orthonormal basis of the controllable subspace of (A, B) by a deflated block Krylov staircase."""
    n = A.shape[0]
    scale_a = max(np.linalg.norm(A, 2), np.finfo(float).tiny)
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    k = int(np.sum(s > tol * max(s[0] if s.size else 0.0, np.finfo(float).tiny)))
    V = U[:, :k]
    new = V
    while new.shape[1] and V.shape[1] < n:
        W = A @ new
        for _ in range(2):  # twice is enough for orthogonality to working precision
            W = W - V @ (V.conj().T @ W)
        U, s, _ = np.linalg.svd(W, full_matrices=False)
        k = int(np.sum(s > tol * scale_a))
        new = U[:, :k]
        V = np.concatenate([V, new], axis=1)
    return V[:, :n]


def _structure_dense(sys: DenseLTI, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    A, Bp, C, _ = (x.reshape((-1,) + x.shape[-2:]) for x in standard_form(sys))
    nb, n = A.shape[0], A.shape[-1]
    ctrl = np.empty(nb, dtype=bool)
    obs = np.empty(nb, dtype=bool)
    order = np.empty(nb, dtype=np.int64)
    for i in range(nb):
        Vc = _krylov_basis(A[i], Bp[i], tol)
        Vo = _krylov_basis(A[i].conj().T, C[i].conj().T, tol)
        ctrl[i] = Vc.shape[1] == n
        obs[i] = Vo.shape[1] == n
        # Observable part of the controllable part (Kalman): the McMillan degree.
        Ac, Cc = Vc.conj().T @ A[i] @ Vc, C[i] @ Vc
        order[i] = _krylov_basis(Ac.conj().T, Cc.conj().T, tol).shape[1] if Vc.shape[1] else 0
    return ctrl, obs, order
