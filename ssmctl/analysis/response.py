"""Time and frequency responses: impulse (the convolution kernel plus D), step, G(e^{iω}), DC gain.

All functions follow docs/design.md's convention: K_0 = C B̄ + D, K_k = C Ā^k B̄, G(z) = z·C(zI − Ā)^{-1}B̄ + D.
The research codes' kernels exclude D (they add D·u separately): their K_0 is ours minus D.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

import numpy as np

from ..errors import SsmctlError, SsmctlWarning, UnsupportedSystemError
from ..systems.lti import DenseLTI, DiagonalLTI, _as_array, as_system
from .norms import _ArcBounds, _blocks
from .spectrum import eigenvalues, format_modulus

__all__ = [
    "impulse_response",
    "step_response",
    "transfer_function",
    "frequency_response",
    "frequency_grid",
    "dc_gain",
    "stability_margins",
    "StabilityMargins",
]

# Largest number of complex entries a temporary may hold before work is split into blocks (~256 MiB).
_BLOCK_ELEMENTS = 1 << 24


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
    small = _cumulative_powers(lam, r)
    big = _cumulative_powers(np.power(lam, r), J)
    return small, big, r


def _cumulative_powers(x: np.ndarray, count: int) -> np.ndarray:
    """x^j for j < count by a cumulative product (relative error ≲ count·eps), shape (b, count, N)."""
    table = np.empty((x.shape[0], count, x.shape[-1]), dtype=np.result_type(x, np.complex128))
    table[:, 0] = 1.0
    table[:, 1:] = x[:, None, :]
    return np.cumprod(table, axis=1)


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
    for blk in _blocks(lam.shape[0], 2 * per_item, _BLOCK_ELEMENTS):
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
    """Step response S_k = Σ_{j≤k} K_j, shape (..., L, p, m).

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
    L : int
        Number of steps.

    Returns
    -------
    ndarray, shape (..., L, p, m)
        Cumulative sum of :func:`impulse_response` over the lag axis. Real for real systems, complex otherwise.

    Raises
    ------
    SsmctlError
        When ``L`` is not a positive integer.
    """
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
        return _tf_real_pairs(lam, R, z, sys.real_factor)
    out = np.empty((lam.shape[0], z.size, R.shape[-1]), dtype=np.complex128)
    for bblk in _blocks(lam.shape[0], 2 * N * min(z.size, 4096), _BLOCK_ELEMENTS):
        for fblk in _blocks(z.size, 2 * (bblk.stop - bblk.start) * N, _BLOCK_ELEMENTS):
            zz = z[None, fblk, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                S = zz / (zz - lam[bblk, None, :])  # (b, F, N)
            out[bblk, fblk] = S @ R[bblk]
    return out


# Entries of one (systems, frequencies, modes) real temporary of the pair sweep: small enough to stay in cache.
_PAIR_SWEEP = 1 << 16


def _tf_real_pairs(lam: np.ndarray, R: np.ndarray, z: np.ndarray, f: float) -> np.ndarray:
    """Σ_n f·Re-pair terms of a real diagonal system: lam (b, N), residues R (b, N, p·m), z (F,) → (b, F, p·m).

    Each mode and its conjugate over a common denominator,
    R z/(z − λ) + R̄ z/(z − λ̄) = 2z(z·Re R − Re(R λ̄))/d with d = z² − 2 Re λ·z + |λ|², so G − D =
    f·z·(z·Σ α_n/d_n − Σ γ_n/d_n) with real weights α = Re R, γ = Re(R λ̄) (f/2 of the pair's 2 folded into f).
    1/d is formed in real arithmetic from the factors of d, (Re d − i Im d)/|d|², and the mode sums are one real product
    [Re 1/d; Im 1/d] @ [α, γ]. With many input-output pairs the factors f z² and −f z are folded into the
    (F, N) table first, so the (F, p·m) result needs no further passes.
    """
    nb, N = lam.shape
    pm = R.shape[-1]
    F = z.size
    out = np.empty((nb, F, pm), dtype=np.complex128)
    if N == 0 or F == 0 or pm == 0:
        out[...] = 0.0
        return out
    a, b_ = lam.real, lam.imag
    alpha = R.real
    gamma = (R * lam.conj()[..., None]).real
    zr, zi = z.real, z.imag
    zsq = z * z
    two_zi = 2.0 * zi
    coef_u, coef_v = f * zsq, -f * z  # out = coef_u·Σα/d + coef_v·Σγ/d
    fold = pm > 2 * N
    W = np.concatenate([alpha, gamma], axis=-2 if fold else -1)  # (b, 2N, pm) or (b, N, 2pm)
    per_sys = max(1, _PAIR_SWEEP // N)
    bstep = max(1, per_sys // F)
    fstep = F if bstep > 1 else min(F, per_sys)
    for b0 in range(0, nb, bstep):
        bb = slice(b0, min(b0 + bstep, nb))
        k = bb.stop - bb.start
        for f0 in range(0, F, fstep):
            ff = slice(f0, min(f0 + fstep, F))
            n_f = ff.stop - ff.start
            X = np.empty((k, 2, n_f, N))
            dre, dim = X[:, 0], X[:, 1]
            # d = (z − λ)(z − λ̄) from its factors, so that d keeps a small relative error next to a pole:
            # Re d = (zr − a)² − (zi − b)(zi + b), Im d = 2(zr − a)·zi.
            np.subtract(zr[None, ff, None], a[bb, None, :], out=dim)
            np.multiply(dim, dim, out=dre)
            y = np.subtract(zi[None, ff, None], b_[bb, None, :])
            y *= np.add(zi[None, ff, None], b_[bb, None, :])
            dre -= y
            dim *= two_zi[None, ff, None]
            q = dre * dre
            q += dim * dim
            with np.errstate(divide="ignore"):
                np.reciprocal(q, out=q)
            dre *= q  # Re 1/d
            dim *= q  # −Im 1/d
            if fold:
                # [Re(c·(1/d)), Im(c·(1/d))] for c = coef_u then coef_v, as a (2F, 2N) real table.
                T = np.empty((k, 2, n_f, 2 * N))
                for j, c in enumerate((coef_u[ff], coef_v[ff])):
                    cr, ci = c.real[None, :, None], c.imag[None, :, None]
                    cols = slice(j * N, (j + 1) * N)
                    np.multiply(dre, cr, out=T[:, 0, :, cols])
                    T[:, 0, :, cols] += dim * ci
                    np.multiply(dre, ci, out=T[:, 1, :, cols])
                    T[:, 1, :, cols] -= dim * cr
                Y = T.reshape(k, 2 * n_f, 2 * N) @ W[bb]  # (k, 2F, pm)
                out[bb, ff].real = Y[:, :n_f]
                out[bb, ff].imag = Y[:, n_f:]
            else:
                Y = X.reshape(k, 2 * n_f, N) @ W[bb]  # (k, 2F, 2pm)
                u = Y[:, :n_f, :pm] - 1j * Y[:, n_f:, :pm]
                v = Y[:, :n_f, pm:] - 1j * Y[:, n_f:, pm:]
                out[bb, ff] = coef_u[None, ff, None] * u + coef_v[None, ff, None] * v
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
        for fblk in _blocks(z.size, n * n, _BLOCK_ELEMENTS):
            zz = z[fblk, None, None]
            X = np.linalg.solve(zz * eye - A[i], np.broadcast_to(B[i], (zz.shape[0], n, m)))
            out[i, fblk] = (zz * (C[i] @ X)).reshape(zz.shape[0], -1)
    return out


def frequency_grid(sys: Any, n: int = 512) -> np.ndarray:
    """A default frequency grid in rad/sample: [0, π] for real systems, [−π, π) for complex ones.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``
        Only whether it is real matters (a complex system has no conjugate symmetry, so it needs ω < 0 too).
    n : int, default 512
        Number of frequencies.

    Returns
    -------
    ndarray, float64, shape (n,)
        Evenly spaced: both ends included for real systems, π left out for complex ones.
    """
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

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``

    Returns
    -------
    ndarray, shape (..., p, m)
        Real for real systems, complex otherwise. Where Ā has an eigenvalue at z = 1 the DC gain does not
        exist: those entries are NaN or inf, and an :class:`~ssmctl.errors.SsmctlWarning` says how many
        systems and which pole.
    """
    sys = as_system(sys)
    if isinstance(sys, DiagonalLTI):
        # One point: C·diag(1/(1 − λ))·B̄ as a single product, without forming the (N, p·m) residues.
        lam, B, C, D = sys.broadcast_arrays()
        with np.errstate(divide="ignore", invalid="ignore"):
            G = (C * (1.0 / (1.0 - lam))[..., None, :]) @ B
        G = D + sys.real_factor * G.real if sys.is_real else D + G
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            G = transfer_function(sys, np.array([1.0 + 0j]))[..., 0, :, :]
        G = G.real if sys.is_real else G
    undefined = ~np.isfinite(G).all(axis=(-2, -1))
    if undefined.any():
        lam = eigenvalues(sys)
        nearest = lam.reshape(-1)[np.argmin(np.abs(1.0 - lam.reshape(-1)))] if lam.size else np.nan
        where = f" in {int(undefined.sum())} of {undefined.size} systems" if sys.batch_shape else ""
        warnings.warn(
            f"dc_gain: Ā has a pole at z = 1 (nearest eigenvalue {complex(nearest):.6g}){where}, so G(1) does "
            "not exist; those entries are NaN/inf (a pure accumulator's step response grows without bound)",
            SsmctlWarning,
            stacklevel=2,
        )
    return G


# --------------------------------------------------------------------------------------------------
# classical stability margins
# --------------------------------------------------------------------------------------------------
class StabilityMargins(NamedTuple):
    """Classical margins of the unity-feedback loop around G, as python-control's ``stability_margins``.

    Every field is an array shaped by the batch dims (0-d without them); frequencies in rad/sample.
    """

    gm: np.ndarray
    """Gain margin 1/|G(e^{iω_pc})| (a ratio, not dB); inf when the Nyquist plot never crosses the
    negative real axis."""
    pm: np.ndarray
    """Phase margin in degrees, (arg G(e^{iω_gc}) mod 360°) − 180°; inf when |G| never crosses 1."""
    sm: np.ndarray
    """Stability margin min_ω |1 + G(e^{iω})|: the distance of the Nyquist plot to −1."""
    wpc: np.ndarray
    """Phase crossover frequency (the gain margin's); NaN when there is none."""
    wgc: np.ndarray
    """Gain crossover frequency (the phase margin's); NaN when there is none."""
    wms: np.ndarray
    """Frequency of the stability margin."""


# Uniform part of the margin search grid, and the offsets (in units of the damping 1 − |λ|) of the
# points placed around every pole's argument, where a lightly damped mode turns the phase quickly.
_MARGIN_UNIFORM = 64
_MARGIN_POLE_OFFSETS = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
# The trivial real-axis crossings of a real system at ω = 0 and π are kept out of the search brackets.
_EDGE = 1e-9


class _SisoPointwise:
    """G(e^{iω}) of a flattened batch of SISO systems at per-row frequencies."""

    def __init__(self, sys: DiagonalLTI | DenseLTI) -> None:
        self.dense: list[DenseLTI] | None = None
        self.real = sys.is_real
        if isinstance(sys, DiagonalLTI):
            lam, B, C, D = sys.augmented()
        else:
            A, B, C, D = (x.reshape((-1,) + x.shape[-2:]) for x in sys.broadcast_arrays())
            lam, V = np.linalg.eig(A)
            with np.errstate(all="ignore"):
                cond = np.linalg.cond(V) if A.shape[-1] else np.ones(A.shape[0])
            if np.all(cond < 1e8):
                B, C = np.linalg.solve(V, B), C @ V
            else:  # strongly non-normal matrices: per-system linear solves (rare, slow path)
                self.dense = [DenseLTI(A[i], B[i], C[i], D[i]) for i in range(A.shape[0])]
        n = lam.shape[-1]
        self.lam = lam.reshape(-1, n)
        # Pole arguments for the search grid: for real diagonal systems the stored modes suffice (the
        # conjugates have the same |arg|).
        self.grid_modes = self.lam[:, : sys.n_stored] if isinstance(sys, DiagonalLTI) else self.lam
        self.res = (C[..., 0, :] * B[..., :, 0]).reshape(-1, n)
        self.d = np.broadcast_to(D, lam.shape[:-1] + (1, 1)).reshape(-1)
        # G = d + Σ r_n + Σ λ_n r_n/(z − λ_n): the H∞ module's bounds on arcs apply as they are.
        self.bounds = None
        if self.dense is None:
            ones = np.ones((self.lam.shape[0], 1, n))
            self.bounds = _ArcBounds(self.lam, self.res[:, :, None], ones, np.abs(self.d + self.res.sum(axis=-1)))

    def __call__(self, rows: np.ndarray, omega: np.ndarray) -> np.ndarray:
        out = np.empty(rows.shape[0], dtype=np.complex128)
        z = np.exp(1j * omega)
        if self.dense is not None:
            for r in np.unique(rows):
                sel = rows == r
                out[sel] = transfer_function(self.dense[r], z[sel])[:, 0, 0]
            return out
        n = self.lam.shape[-1]
        # Small blocks keep the (rows, modes) temporaries in cache.
        step = max(1, (1 << 15) // max(n, 1))
        for start in range(0, rows.shape[0], step):
            blk = slice(start, start + step)
            rr, zz = rows[blk], z[blk]
            with np.errstate(divide="ignore", invalid="ignore"):
                S = np.reciprocal(zz[:, None] - self.lam[rr])
                out[blk] = self.d[rr] + zz * np.einsum("ln,ln->l", S, self.res[rr])
        return out


def _bracket_roots(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rows: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    fa: np.ndarray,
    fb: np.ndarray,
) -> np.ndarray:
    """Roots of real f(row, ω) in brackets with f(a)·f(b) ≤ 0, all brackets at once (Illinois method)."""
    a, b, fa, fb = a.copy(), b.copy(), fa.copy(), fb.copy()
    side = np.zeros(a.shape, dtype=np.int8)
    for _ in range(100):
        live = (b - a) > 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(a))
        live &= (fa != 0) & (fb != 0)
        if not live.any():
            break
        i = np.flatnonzero(live)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (a[i] * fb[i] - b[i] * fa[i]) / (fb[i] - fa[i])
        bad = ~np.isfinite(c) | (c <= a[i]) | (c >= b[i])
        c[bad] = 0.5 * (a[i][bad] + b[i][bad])
        fc = f(rows[i], c)
        left = np.sign(fc) == np.sign(fa[i])
        # Illinois: halve the value kept at an end that stays twice in a row (superlinear, never stalls).
        jl, jr = i[left], i[~left]
        fb[jl] = np.where(side[jl] == 1, 0.5 * fb[jl], fb[jl])
        a[jl], fa[jl] = c[left], fc[left]
        side[jl] = 1
        fa[jr] = np.where(side[jr] == -1, 0.5 * fa[jr], fa[jr])
        b[jr], fb[jr] = c[~left], fc[~left]
        side[jr] = -1
    return np.where(np.abs(fa) <= np.abs(fb), a, b)


def _first_per_row(rows: np.ndarray, key: np.ndarray, omega: np.ndarray, nb: int) -> np.ndarray:
    """Index (into the candidates) of the smallest key per row, ties to the lowest ω; −1 for empty rows."""
    pick = np.full(nb, -1)
    if rows.size:
        order = np.lexsort((omega, key, rows))
        first = np.r_[True, rows[order][1:] != rows[order][:-1]]
        pick[rows[order][first]] = order[first]
    return pick


def stability_margins(sys: Any) -> StabilityMargins:
    """Gain, phase and stability margins of the unity-feedback loop around a SISO system.

    Matches python-control's ``stability_margins(to_control(sys))`` (discrete time, ``returnall=False``):
    the phase crossovers are the ω in [0, π) where G(e^{iω}) is real and ≤ 0 (ω = 0 counts when G(1) ≤ 0;
    ω = π does not, as python-control keeps arguments < π), and the one whose gain margin 1/|G| is
    closest to 1 (smallest |log gm|) is reported; the gain crossovers are the ω in (0, π) with |G| = 1,
    reporting the one with the smallest |pm|; the stability margin is the global minimum of |1 + G|. Complex
    systems (``output="complex"``) use the whole circle [−π, π).

    Unlike python-control's polynomial method, which loses all accuracy beyond a few dozen states (and can
    report crossings of roots that are up to eps^(1/degree) off the unit circle), the crossings are
    bracketed on a grid (uniform plus points around every pole's argument, scaled by its damping) that is
    subdivided until derivative bounds prove that no arc hides a further crossing or a smaller |1 + G|
    (the stability margin is certified to 1e-9 relative), then refined by a vectorized Illinois root
    finder; it works for thousands of states and for whole batches. Strongly non-normal dense systems
    (no usable eigenbasis) keep the initial grid without that proof. Static gains (B̄ = 0 or C = 0: G ≡ D)
    cross nothing, as in python-control: gm = pm = inf, sm = |1 + D|.

    Parameters
    ----------
    sys : DiagonalLTI, DenseLTI or a layer with ``.system()``; one input and one output

    Returns
    -------
    StabilityMargins
        ``(gm, pm, sm, wpc, wgc, wms)``, each shaped by the batch dims. When the open loop has a pole on or
        outside the unit circle an :class:`~ssmctl.errors.SsmctlWarning` says so: the margins are then no
        statement about closed-loop stability.

    Raises
    ------
    UnsupportedSystemError
        For MIMO systems.
    """
    sys = as_system(sys)
    if sys.n_inputs != 1 or sys.n_outputs != 1:
        raise UnsupportedSystemError(
            f"stability_margins is defined for SISO loops only; this system has {sys.n_inputs} inputs and "
            f"{sys.n_outputs} outputs. Pick one channel (e.g. a per-channel system sys[i]) or use hinf_norm "
            "for a MIMO robustness measure"
        )
    radius = np.abs(eigenvalues(sys)).max(axis=-1, initial=0.0)
    if (radius >= 1.0).any():
        n_bad = int((radius >= 1.0).sum())
        where = f" ({n_bad} of {radius.size} systems)" if sys.batch_shape else ""
        warnings.warn(
            f"stability_margins: the open loop is not stable, spectral radius {format_modulus(radius.max())}"
            f"{where}: gain and phase margins of an unstable open loop do not say whether the closed loop is "
            "stable (that takes the Nyquist encirclement count); check the closed-loop poles instead",
            SsmctlWarning,
            stacklevel=2,
        )
    G = _SisoPointwise(sys)
    static = np.zeros(G.lam.shape[0], dtype=bool) if G.dense is not None else ~G.res.any(axis=-1)
    if static.any():
        return _margins_with_static_rows(sys, G, static)
    nb, real = G.lam.shape[0], sys.is_real
    lo, hi = (0.0, np.pi) if real else (-np.pi, np.pi)
    rows_all = np.arange(nb)

    # Initial per-row grid: uniform plus points around each pole's argument.
    lam = G.grid_modes
    theta = np.abs(np.angle(lam)) if real else np.angle(lam)
    damp = np.maximum(1.0 - np.abs(lam), 1e-9)
    local = (theta[:, :, None] + damp[:, :, None] * _MARGIN_POLE_OFFSETS).reshape(nb, -1)
    uniform = np.linspace(lo + _EDGE, hi - _EDGE, _MARGIN_UNIFORM) if real else np.linspace(lo, hi, _MARGIN_UNIFORM)
    grid = np.concatenate([np.broadcast_to(uniform, (nb, _MARGIN_UNIFORM)), local], axis=1)
    # Real systems: G is real at ω = 0 and π, so Im G has trivial roots there; the search stays inside.
    grid = np.sort(np.clip(grid, lo + _EDGE, hi - _EDGE) if real else np.clip(grid, lo, hi), axis=1)
    F = grid.shape[1]
    Gg = G(np.repeat(rows_all, F), grid.ravel()).reshape(nb, F)
    rows = np.repeat(rows_all, F - 1)
    a, b = grid[:, :-1].ravel(), grid[:, 1:].ravel()
    ga, gb = Gg[:, :-1].ravel(), Gg[:, 1:].ravel()

    # Running stability margin (attained values), endpoints included for real systems.
    dist = np.abs(1.0 + Gg)
    k = np.argmin(np.where(np.isfinite(dist), dist, np.inf), axis=1)
    sm, wms = dist[rows_all, k], grid[rows_all, k]
    if real:
        for w_end in (lo, hi):
            d_end = np.abs(1.0 + G(rows_all, np.full(nb, w_end)))
            better = d_end < sm
            sm, wms = np.where(better, d_end, sm), np.where(better, w_end, wms)

    a, b, ga, gb, rows = _certify_margin_grid(G, rows, a, b, ga, gb, sm, wms)

    def sign_changes(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        return np.flatnonzero((np.sign(fa) != np.sign(fb)) & np.isfinite(fa) & np.isfinite(fb))

    # Phase crossovers: Im G = 0 with Re G ≤ 0.
    i = sign_changes(ga.imag, gb.imag)
    w180 = _bracket_roots(lambda r, w: G(r, w).imag, rows[i], a[i], b[i], ga[i].imag, gb[i].imag)
    r180 = rows[i]
    g180 = G(r180, w180)
    if real:
        r180 = np.concatenate([rows_all, r180])
        w180 = np.concatenate([np.zeros(nb), w180])
        g180 = np.concatenate([G(rows_all, np.zeros(nb)).real + 0j, g180])  # G(1) is real
    neg = g180.real <= 0
    r180, w180, g180 = r180[neg], w180[neg], g180[neg]
    with np.errstate(divide="ignore"):
        gm_all = 1.0 / np.abs(g180)
        key = np.abs(np.log(gm_all))
    fin = np.isfinite(gm_all)
    pick = _first_per_row(r180[fin], key[fin], w180[fin], nb)
    gm, wpc = np.full(nb, np.inf), np.full(nb, np.nan)
    has = pick >= 0
    gm[has], wpc[has] = gm_all[fin][pick[has]], w180[fin][pick[has]]

    # Gain crossovers: |G| = 1.
    fa, fb = np.abs(ga) - 1.0, np.abs(gb) - 1.0
    i = sign_changes(fa, fb)
    wc = _bracket_roots(lambda r, w: np.abs(G(r, w)) - 1.0, rows[i], a[i], b[i], fa[i], fb[i])
    rc = rows[i]
    pm_all = np.remainder(np.angle(G(rc, wc), deg=True), 360.0) - 180.0
    pick = _first_per_row(rc, np.abs(pm_all), wc, nb)
    pm, wgc = np.full(nb, np.inf), np.full(nb, np.nan)
    has = pick >= 0
    pm[has], wgc[has] = pm_all[pick[has]], wc[pick[has]]

    # Stability margin: polish the best point by golden section between its neighbours.
    step = np.zeros(nb)
    around = (a <= wms[rows]) & (b >= wms[rows])
    np.maximum.at(step, rows[around], (b - a)[around])
    step = np.where(step > 0, step, 1e-6)
    left, right = np.maximum(wms - step, lo), np.minimum(wms + step, hi)
    w_g, d_g = _golden_min(lambda w: np.abs(1.0 + G(rows_all, w)), left, right)
    better = d_g < sm
    sm, wms = np.where(better, d_g, sm), np.where(better, w_g, wms)

    shape = sys.batch_shape
    return StabilityMargins(*(x.reshape(shape)[()] for x in (gm, pm, sm, wpc, wgc, wms)))


def _margins_with_static_rows(sys: DiagonalLTI | DenseLTI, G: "_SisoPointwise", static: np.ndarray) -> StabilityMargins:
    """Margins of a batch in which some systems are static gains G ≡ d (B̄ = 0 or C = 0, e.g. a Mamba channel
    at zero input without conv bias): their Nyquist plot is one point, which python-control treats as crossing
    nothing (gm = pm = inf, sm = |1 + d|, no crossover frequencies). The grid search, which would subdivide
    the identically-zero |G| − 1 forever, runs on the other systems only."""
    nb = static.size
    out = [np.full(nb, np.inf), np.full(nb, np.inf), np.abs(1.0 + G.d), np.full(nb, np.nan), np.full(nb, np.nan),
           np.zeros(nb)]
    dynamic = np.flatnonzero(~static)
    if dynamic.size:
        flat = [x.reshape((-1,) + x.shape[len(sys.batch_shape):]) for x in sys.broadcast_arrays()]
        if isinstance(sys, DiagonalLTI):
            sub = DiagonalLTI(*(x[dynamic] for x in flat), output=sys.output, dt=sys.dt, meta=sys.meta)
        else:
            exact = sys.exact_eigenvalues
            if exact is not None:
                exact = np.broadcast_to(exact, sys.batch_shape + exact.shape[-1:]).reshape(-1, exact.shape[-1])[dynamic]
            sub = DenseLTI(*(x[dynamic] for x in flat), dt=sys.dt, meta=sys.meta, exact_eigenvalues=exact)
        for col, values in zip(out, stability_margins(sub)):
            col[dynamic] = values
    return StabilityMargins(*(x.reshape(sys.batch_shape)[()] for x in out))


# Relative accuracy to which the stability margin is certified, and the narrowest arc the crossing search
# subdivides (a tangency of the Nyquist plot would otherwise be refined forever).
_SM_RTOL = 1e-9
_MIN_ARC = 1e-12
# Real systems: arcs within this distance of ω = 0 or π are not subdivided for the phase test.
_EDGE_ZONE = 1e-6


def _certify_margin_grid(
    G: "_SisoPointwise",
    rows: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    ga: np.ndarray,
    gb: np.ndarray,
    sm: np.ndarray,
    wms: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Subdivide the arcs until none can hide a crossing or a smaller |1 + G|.

    With L = Σ|λ_n r_n|/d_n² ≥ |G'| and M = Σ|λ_n r_n|(1 + |λ_n|)/d_n³ ≥ |G''| on an arc (d_n: distance
    from λ_n to the arc; the H∞ bounds of :mod:`ssmctl.analysis.norms`): an arc whose ends lie on the same
    side of the negative real axis (resp. of the unit circle) cannot touch it if the two ends' distances to
    it add up to more than L·(b − a); and |1 + G| ≥ max(dist(0, chord) − M(b − a)²/8,
    (|1 + G(a)| + |1 + G(b)| − L(b − a))/2) on the arc. Updates ``sm``/``wms`` in place; returns the final
    arcs. Systems without a modal form (strongly non-normal dense ones) keep the initial grid.
    """
    if G.bounds is None:
        return a, b, ga, gb, rows
    done: list[tuple[np.ndarray, ...]] = []

    def to_neg_axis(g: np.ndarray) -> np.ndarray:
        return np.where(g.real <= 0, np.abs(g.imag), np.abs(g))

    def needs_split(
        rows: np.ndarray, a: np.ndarray, b: np.ndarray, ga: np.ndarray, gb: np.ndarray, sums: np.ndarray
    ) -> np.ndarray:
        width = b - a
        with np.errstate(invalid="ignore"):
            L, M = sums[:, 1] * width, sums[:, 2] * width * width / 8.0
        phase = (np.sign(ga.imag) == np.sign(gb.imag)) & ~(to_neg_axis(ga) + to_neg_axis(gb) > L)
        if G.real:
            # Im G vanishes at ω = 0 and π (G is real there): do not chase those trivial crossings.
            phase &= (a > _EDGE_ZONE) & (b < np.pi - _EDGE_ZONE)
        fa, fb = np.abs(ga) - 1.0, np.abs(gb) - 1.0
        gain = (np.sign(fa) == np.sign(fb)) & ~(np.abs(fa) + np.abs(fb) > L)
        ua, ub = 1.0 + ga, 1.0 + gb
        seg = ub - ua
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(-(ua.real * seg.real + ua.imag * seg.imag) / (np.abs(seg) ** 2), 0.0, 1.0)
            t = np.where(np.isfinite(t), t, 0.0)
            lower = np.fmax(np.abs(ua + t * seg) - M, 0.5 * (np.abs(ua) + np.abs(ub) - L))
        margin = ~(lower >= sm[rows] * (1.0 - _SM_RTOL))
        return (phase | gain | margin) & (width > _MIN_ARC)

    # Children first try their parent's mode sums (valid on any sub-arc); only arcs that this cheaper test
    # cannot settle get their own O(n) sums.
    sums = np.full((rows.shape[0], 3), np.inf)
    for _ in range(80):
        if rows.shape[0] == 0:
            break
        split = needs_split(rows, a, b, ga, gb, sums)
        done.append((a[~split], b[~split], ga[~split], gb[~split], rows[~split]))
        rows, a, b, ga, gb = rows[split], a[split], b[split], ga[split], gb[split]
        sums = G.bounds.sums(rows, a, b)
        split = needs_split(rows, a, b, ga, gb, sums)
        done.append((a[~split], b[~split], ga[~split], gb[~split], rows[~split]))
        rows, a, b, ga, gb, sums = rows[split], a[split], b[split], ga[split], gb[split], sums[split]
        mid = 0.5 * (a + b)
        gm_ = G(rows, mid)
        d = np.abs(1.0 + gm_)
        better = d < sm[rows]
        if better.any():
            np.minimum.at(sm, rows[better], d[better])
            hit = better & (d == sm[rows])
            wms[rows[hit]] = mid[hit]
        rows = np.concatenate([rows, rows])
        a, b = np.concatenate([a, mid]), np.concatenate([mid, b])
        ga, gb = np.concatenate([ga, gm_]), np.concatenate([gm_, gb])
        sums = np.concatenate([sums, sums])
    done.append((a, b, ga, gb, rows))
    return tuple(np.concatenate(parts) for parts in zip(*done))


def _golden_min(
    f: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray, iters: int = 80
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized golden-section search of a unimodal f on [a, b]; returns (argmin, min)."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = a.copy(), b.copy()
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new, d_new = b - g * (b - a), a + g * (b - a)
        # Reuse the surviving interior point; evaluate the new one only.
        x = np.where(left, c_new, d_new)
        fx = f(x)
        c, d, fc, fd = (
            np.where(left, c_new, d),
            np.where(left, c, d_new),
            np.where(left, fx, fd),
            np.where(left, fc, fx),
        )
        if np.all(b - a <= 1e-15 * np.maximum(1.0, np.abs(a))):
            break
    w = 0.5 * (a + b)
    ends = np.stack([a, b, c, d, w])
    vals = np.stack([f(a), f(b), fc, fd, f(w)])
    j = np.argmin(vals, axis=0)
    idx = np.arange(a.shape[0])
    return ends[j, idx], vals[j, idx]
