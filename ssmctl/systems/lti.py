"""Linear time-invariant systems in ssmctl's time convention.

Every LTI layer of a deep SSM becomes one of two objects:

* :class:`DiagonalLTI` — a (complex) diagonal state matrix, vectorized over leading batch dims
  (layers, channels). This is S4D, S5, LRU, and every frozen-time LTV layer.
* :class:`DenseLTI` — a general state matrix: S4's DPLR matrix (expanded to its full state) and the results
  of balanced truncation.

Convention (docs/design.md, eq. (4) of the overview paper)::

    h_k = Ā h_{k-1} + B̄ u_k,     y_k = C h_k + D u_k,

so the impulse response is K_0 = C B̄ + D, K_k = C Ā^k B̄, and G(z) = z·C(zI − Ā)^{-1}B̄ + D. Conversion to
the textbook form x_{k+1} = A x_k + B u_k happens only at the python-control boundary
(:mod:`ssmctl.systems.control`).

Shapes: λ (..., N), B (..., N, m), C (..., p, N), D (..., p, m); leading dims broadcast together.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, Mapping

import numpy as np

from ..errors import NonFiniteError, ShapeError, SsmctlWarning, unknown_name
from . import _display

__all__ = ["DiagonalLTI", "DenseLTI", "OUTPUT_MODES", "OutputMode", "EIGENVECTOR_CONDITION_WARN", "eigenvector_condition"]

#: Eigenvector condition κ₂(V) above which a :class:`DenseLTI` without exact eigenvalues warns that LAPACK's
#: eigenvalues of Ā are unreliable: by Bauer–Fike a rounding-level perturbation (~1e-16·‖Ā‖) of Ā may move
#: them by κ·1e-16·‖Ā‖, so above 1e8 they can be off in the 8th digit and far worse near S4's ~1e15.
EIGENVECTOR_CONDITION_WARN = 1e8

OutputMode = Literal["complex", "real", "conj_pair"]
OUTPUT_MODES: tuple[str, ...] = ("complex", "real", "conj_pair")

# Factor on Re(C h) for each real output mode: y = factor·Re(C h) + D u.
_REAL_FACTOR = {"real": 1.0, "conj_pair": 2.0}


def _as_array(name: str, value: Any, dtype: type) -> np.ndarray:
    """Convert to a float64/complex128 array and refuse NaN/Inf with a message naming the parameter."""
    try:
        arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    except Exception as exc:  # pragma: no cover - defensive: odd array-likes
        raise ShapeError(f"{name} cannot be converted to an array: {exc}") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ShapeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.complex128 if (np.iscomplexobj(arr) or dtype is np.complex128) else np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0].tolist()
        raise NonFiniteError(
            f"{name} has {int(bad.sum())} non-finite entr{'y' if bad.sum() == 1 else 'ies'} "
            f"(first at index {where}); check the parameters or checkpoint it came from"
        )
    return arr


def _batch_shape(name_shapes: list[tuple[str, tuple[int, ...]]]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*(s for _, s in name_shapes))
    except ValueError:
        desc = ", ".join(f"{n} {s}" for n, s in name_shapes)
        raise ShapeError(f"batch dimensions do not broadcast: {desc}") from None


def eigenvector_condition(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LAPACK's eigenvalues of a stack of square matrices and the condition κ₂(V) of their eigenvectors.

    Parameters
    ----------
    A : ndarray, shape (..., n, n)
        Real or complex matrices.

    Returns
    -------
    eigenvalues : ndarray, complex128, shape (..., n)
    kappa : ndarray, float64, shape (...)
        ‖V‖₂‖V^{-1}‖₂ with unit-norm columns of V: 1 for normal matrices, ``inf`` for defective ones (and 1
        for n = 0).
    """
    if A.shape[-1] == 0:
        return np.zeros(A.shape[:-1], dtype=np.complex128), np.ones(A.shape[:-2])
    lam, V = np.linalg.eig(A)
    V = V / np.linalg.norm(V, axis=-2, keepdims=True)
    with np.errstate(all="ignore"):
        kappa = np.linalg.cond(V)
    return lam.astype(np.complex128), np.where(np.isfinite(kappa), kappa, np.inf)


class _System:
    """Behaviour shared by both LTI types: metadata, batch indexing, labels."""

    meta: dict[str, Any]
    batch_shape: tuple[int, ...]

    @property
    def label(self) -> str:
        return str(self.meta.get("label", type(self).__name__))

    def _index_batch(self, key: Any) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        """Index the batch dimensions, e.g. ``sys[3]`` is channel 3 of a per-channel system."""
        if not self.batch_shape:
            raise ShapeError("this system has no batch dimensions to index")
        return self._index_batch(key)

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("len() of a system without batch dimensions")
        return self.batch_shape[0]

    def _plain_repr(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return _display.text(self, "lti", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "lti", self._plain_repr())

    def to_frame(self) -> Any:
        """Per-channel table (one row per batch element): spectral radius, margin, memory horizon, H2, DC gain.

        Returns
        -------
        pandas.DataFrame
            Index: the batch position (one level per batch dim); the numbers of
            :func:`ssmctl.analysis.summary.channel_table`.

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "lti")


class DiagonalLTI(_System):
    """Diagonal discrete-time system h_k = diag(λ) h_{k-1} + B u_k, y_k = C h_k + D u_k.

    Parameters
    ----------
    lam : array_like, complex, shape (..., N)
        Discrete eigenvalues (the diagonal of Ā).
    B : array_like, shape (..., N, m)
        Discrete input matrix B̄.
    C : array_like, shape (..., p, N)
        Output matrix.
    D : array_like, shape (..., p, m), optional
        Feedthrough; zeros when omitted.
    output : {"complex", "real", "conj_pair"}
        How the model reads its state: ``"complex"`` y = C h + D u; ``"real"`` y = Re(C h) + D u (LRU, S5
        without conjugate symmetry); ``"conj_pair"`` y = 2·Re(C h) + D u (one of each conjugate pair stored:
        S4D, S5). Analyses report the equivalent real system for the last two (2N real states).
    dt : float, optional
        Sampling time for plots' frequency axes; ``None`` means one step per token.
    meta : mapping, optional
        Free-form labels (``family``, ``layer``, ``label``) used by plots and reports.

    Leading dims of all four arrays broadcast together into :attr:`batch_shape`.
    """

    def __init__(
        self,
        lam: Any,
        B: Any,
        C: Any,
        D: Any = None,
        output: OutputMode = "complex",
        dt: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if output not in OUTPUT_MODES:
            raise unknown_name("output mode", output, OUTPUT_MODES)
        lam = _as_array("lam", lam, np.complex128)
        B = _as_array("B", B, np.complex128)
        C = _as_array("C", C, np.complex128)
        if lam.ndim < 1 or B.ndim < 2 or C.ndim < 2:
            raise ShapeError(
                f"need lam (..., N), B (..., N, m), C (..., p, N); got lam {lam.shape}, B {B.shape}, C {C.shape}"
            )
        N = lam.shape[-1]
        if B.shape[-2] != N or C.shape[-1] != N:
            raise ShapeError(
                f"state sizes disagree: lam has N={N}, B {B.shape} has N={B.shape[-2]} (axis -2), "
                f"C {C.shape} has N={C.shape[-1]} (axis -1)"
            )
        p, m = C.shape[-2], B.shape[-1]
        if D is None:
            D = np.zeros((p, m))
        D = _as_array("D", D, np.float64 if output != "complex" else np.complex128)
        if D.ndim < 2 or D.shape[-2:] != (p, m):
            raise ShapeError(f"D must have shape (..., p, m) = (..., {p}, {m}), got {D.shape}")
        if output != "complex" and np.iscomplexobj(D):
            if np.any(D.imag != 0):
                raise ShapeError(f"output={output!r} gives a real system, so D must be real")
            D = D.real.copy()
        self.batch_shape = _batch_shape(
            [("lam", lam.shape[:-1]), ("B", B.shape[:-2]), ("C", C.shape[:-2]), ("D", D.shape[:-2])]
        )
        self.lam, self.B, self.C, self.D = lam, B, C, D
        self.output: OutputMode = output
        self.dt = dt
        self.meta = dict(meta or {})

    # --- sizes -------------------------------------------------------------------------------------
    @property
    def n_stored(self) -> int:
        """Number of stored (complex) modes N."""
        return self.lam.shape[-1]

    @property
    def real_state(self) -> bool:
        """True when λ and B are real under a real output mode: the state itself stays real.

        Then the equivalent real system needs only the N stored states, y = f·Re(C)·h + D u (Mamba's and
        S4D-Real's real eigenvalues; RG-LRU), instead of 2N.
        """
        return self.output != "complex" and not self.lam.imag.any() and not self.B.imag.any()

    @property
    def n_states(self) -> int:
        """Order of the equivalent system: N for complex outputs or real states, else 2N real states."""
        return self.n_stored * (1 if self.output == "complex" or self.real_state else 2)

    @property
    def n_inputs(self) -> int:
        """Inputs m (the last axis of ``B``)."""
        return self.B.shape[-1]

    @property
    def n_outputs(self) -> int:
        """Outputs p (the second-to-last axis of ``C``)."""
        return self.C.shape[-2]

    @property
    def is_real(self) -> bool:
        """True when the input-output map is real (``output`` is ``"real"`` or ``"conj_pair"``)."""
        return self.output != "complex"

    @property
    def real_factor(self) -> float:
        """Factor f in y = f·Re(C h) + D u (1 for ``"real"``, 2 for ``"conj_pair"``); 0 for complex."""
        return _REAL_FACTOR.get(self.output, 0.0)

    # --- forms -------------------------------------------------------------------------------------
    def augmented(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Diagonal realization with the same transfer function, all modes explicit.

        For real output modes the conjugate modes are appended (2N states): λ_a = [λ, λ̄], B_a = [B; B̄],
        C_a = (f/2)·[C, C̄]; when the state is real (:attr:`real_state`) the N stored modes suffice with
        C_a = f·Re(C). For ``"complex"`` the arrays are returned as stored (broadcast).

        Returns
        -------
        lam : (..., n) complex, B : (..., n, m), C : (..., p, n), D : (..., p, m)
        """
        lam, B, C, D = self.broadcast_arrays()
        if self.output == "complex":
            return lam, B, C, D
        if self.real_state:
            return lam, B, (self.real_factor * C.real).astype(np.complex128), D
        half = self.real_factor / 2.0
        return (
            np.concatenate([lam, lam.conj()], axis=-1),
            np.concatenate([B, B.conj()], axis=-2),
            np.concatenate([half * C, half * C.conj()], axis=-1),
            D,
        )

    def eigenvalues(self) -> np.ndarray:
        """Discrete eigenvalues of the equivalent system, shape (..., n) complex (a copy).

        Returns
        -------
        ndarray, complex, shape (..., n)
            The modes of :meth:`augmented`: both members of each conjugate pair for real output modes (n = 2N).
        """
        return self.augmented()[0].copy()

    def broadcast_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(λ, B, C, D) broadcast to the full batch shape (views, not copies)."""
        b = self.batch_shape
        N, m, p = self.n_stored, self.n_inputs, self.n_outputs
        return (
            np.broadcast_to(self.lam, b + (N,)),
            np.broadcast_to(self.B, b + (N, m)),
            np.broadcast_to(self.C, b + (p, N)),
            np.broadcast_to(self.D, b + (p, m)),
        )

    def to_dense(self) -> "DenseLTI":
        """The equivalent dense system; real matrices for real output modes.

        For ``"real"``/``"conj_pair"`` the state is x = [Re h; Im h] (2N real states), so
        A = [[Re Λ, −Im Λ], [Im Λ, Re Λ]], B = [Re B; Im B], C = f·[Re C, −Im C]; a real state
        (:attr:`real_state`) keeps its N states: A = diag(λ), B, C = f·Re(C). This realization is the one
        handed to python-control.
        """
        lam, B, C, D = self.broadcast_arrays()
        if self.real_state:
            N = self.n_stored
            A = np.zeros(self.batch_shape + (N, N))
            idx = np.arange(N)
            A[..., idx, idx] = lam.real
            return DenseLTI(A, B.real, self.real_factor * C.real, D, dt=self.dt, meta=self.meta, exact_eigenvalues=lam)
        if self.output == "complex":
            A = np.zeros(lam.shape + (lam.shape[-1],), dtype=np.complex128)
            idx = np.arange(lam.shape[-1])
            A[..., idx, idx] = lam
            return DenseLTI(A, B, C, D, dt=self.dt, meta=self.meta, exact_eigenvalues=lam)
        N = self.n_stored
        idx = np.arange(N)
        A = np.zeros(self.batch_shape + (2 * N, 2 * N))
        A[..., idx, idx] = lam.real
        A[..., idx + N, idx + N] = lam.real
        A[..., idx, idx + N] = -lam.imag
        A[..., idx + N, idx] = lam.imag
        Br = np.concatenate([B.real, B.imag], axis=-2)
        f = self.real_factor
        Cr = f * np.concatenate([C.real, -C.imag], axis=-1)
        return DenseLTI(A, Br, Cr, D, dt=self.dt, meta=self.meta, exact_eigenvalues=self.augmented()[0])

    def _index_batch(self, key: Any) -> "DiagonalLTI":
        lam, B, C, D = self.broadcast_arrays()
        if not isinstance(key, tuple):
            key = (key,)
        return DiagonalLTI(lam[key], B[key], C[key], D[key], output=self.output, dt=self.dt, meta=self.meta)

    def _plain_repr(self) -> str:
        return (
            f"DiagonalLTI(batch={self.batch_shape}, N={self.n_stored}, m={self.n_inputs}, "
            f"p={self.n_outputs}, output={self.output!r}{', ' + repr(self.label) if 'label' in self.meta else ''})"
        )


class DenseLTI(_System):
    """Dense discrete-time system h_k = Ā h_{k-1} + B̄ u_k, y_k = C h_k + D u_k.

    Parameters
    ----------
    A : array_like, shape (..., n, n)
        State matrix Ā. Real for real systems; complex matrices make a complex system whose frequency
        response covers the whole circle.
    B : array_like, shape (..., n, m)
    C : array_like, shape (..., p, n)
    D : array_like, shape (..., p, m), optional
    dt, meta : as for :class:`DiagonalLTI`.
    exact_eigenvalues : array_like, complex, shape (..., n), optional
        The eigenvalues of Ā when they are known in closed form (S4 at its HiPPO-LegS init; the modes of a
        diagonal system made dense). :meth:`eigenvalues` returns them instead of LAPACK's, whose
        eigenvalues of strongly non-normal matrices are unreliable. Kept by indexing.
    """

    def __init__(
        self,
        A: Any,
        B: Any,
        C: Any,
        D: Any = None,
        dt: float | None = None,
        meta: Mapping[str, Any] | None = None,
        exact_eigenvalues: Any = None,
    ) -> None:
        A = _as_array("A", A, np.float64)
        B = _as_array("B", B, np.float64)
        C = _as_array("C", C, np.float64)
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise ShapeError(f"A must be square (..., n, n), got {A.shape}")
        n = A.shape[-1]
        if B.ndim < 2 or C.ndim < 2 or B.shape[-2] != n or C.shape[-1] != n:
            raise ShapeError(f"need B (..., {n}, m) and C (..., p, {n}); got B {B.shape}, C {C.shape}")
        p, m = C.shape[-2], B.shape[-1]
        D = np.zeros((p, m)) if D is None else _as_array("D", D, np.float64)
        if D.ndim < 2 or D.shape[-2:] != (p, m):
            raise ShapeError(f"D must have shape (..., p, m) = (..., {p}, {m}), got {D.shape}")
        self.batch_shape = _batch_shape(
            [("A", A.shape[:-2]), ("B", B.shape[:-2]), ("C", C.shape[:-2]), ("D", D.shape[:-2])]
        )
        complex_ = any(np.iscomplexobj(x) for x in (A, B, C, D))
        dtype = np.complex128 if complex_ else np.float64
        self.A, self.B, self.C, self.D = (x.astype(dtype, copy=False) for x in (A, B, C, D))
        self.dt = dt
        self.meta = dict(meta or {})
        self.exact_eigenvalues: np.ndarray | None = None
        if exact_eigenvalues is not None:
            lam = _as_array("exact_eigenvalues", exact_eigenvalues, np.complex128)
            if lam.ndim < 1 or lam.shape[-1] != n:
                raise ShapeError(f"exact_eigenvalues must have shape (..., n) = (..., {n}), got {lam.shape}")
            try:
                lam = np.broadcast_to(lam, self.batch_shape + (n,))
            except ValueError:
                raise ShapeError(
                    f"exact_eigenvalues {lam.shape} do not broadcast to the batch shape {self.batch_shape} (+ ({n},))"
                ) from None
            self.exact_eigenvalues = lam
        self._warned = False

    @property
    def n_states(self) -> int:
        """Order n (the last axis of ``A``)."""
        return self.A.shape[-1]

    @property
    def n_inputs(self) -> int:
        """Inputs m (the last axis of ``B``)."""
        return self.B.shape[-1]

    @property
    def n_outputs(self) -> int:
        """Outputs p (the second-to-last axis of ``C``)."""
        return self.C.shape[-2]

    @property
    def is_real(self) -> bool:
        """True when the matrices are real (A, B, C, D share one dtype: complex if any was given complex)."""
        return not np.iscomplexobj(self.A)

    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of Ā, shape (..., n) complex: the exact ones when known, else LAPACK's.

        Returns
        -------
        ndarray, complex, shape (..., n)
            :attr:`exact_eigenvalues` (a copy) when the system carries them. Otherwise LAPACK's eigenvalues;
            when the eigenvector condition κ₂(V) of some batch element exceeds
            :data:`EIGENVECTOR_CONDITION_WARN` (strongly non-normal Ā, e.g. a trained S4 layer's DPLR matrix)
            an :class:`~ssmctl.errors.SsmctlWarning` names the largest κ, once per system: those
            eigenvalues can be far off, and the ε-pseudospectrum says what they are worth.
        """
        if self.exact_eigenvalues is not None:
            return self.exact_eigenvalues.copy()
        A = np.broadcast_to(self.A, self.batch_shape + self.A.shape[-2:])
        lam, kappa = eigenvector_condition(A)
        bad = kappa > EIGENVECTOR_CONDITION_WARN
        if bad.any() and not self._warned:
            self._warned = True
            where = f" ({int(bad.sum())} of {bad.size} systems)" if self.batch_shape else ""
            warnings.warn(
                f"{self.label}: ill-conditioned eigenproblem, eigenvector condition {float(kappa.max()):.3g} "
                f"> {EIGENVECTOR_CONDITION_WARN:g}{where}: LAPACK's eigenvalues of this non-normal Ā may be far "
                "off; see ssmctl.pseudospectrum / ssmctl.plot.pseudospectrum for what they are worth",
                SsmctlWarning,
                stacklevel=2,
            )
        return lam

    def broadcast_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(A, B, C, D) broadcast to the full batch shape (views, not copies)."""
        b = self.batch_shape
        n, m, p = self.n_states, self.n_inputs, self.n_outputs
        return (
            np.broadcast_to(self.A, b + (n, n)),
            np.broadcast_to(self.B, b + (n, m)),
            np.broadcast_to(self.C, b + (p, n)),
            np.broadcast_to(self.D, b + (p, m)),
        )

    def to_dense(self) -> "DenseLTI":
        """This system itself (already dense), so callers can call ``to_dense()`` on any LTI system.

        Returns
        -------
        DenseLTI
            ``self``.
        """
        return self

    def _index_batch(self, key: Any) -> "DenseLTI":
        A, B, C, D = self.broadcast_arrays()
        if not isinstance(key, tuple):
            key = (key,)
        exact = None if self.exact_eigenvalues is None else self.exact_eigenvalues[key]
        return DenseLTI(A[key], B[key], C[key], D[key], dt=self.dt, meta=self.meta, exact_eigenvalues=exact)

    def _plain_repr(self) -> str:
        return (
            f"DenseLTI(batch={self.batch_shape}, n={self.n_states}, m={self.n_inputs}, p={self.n_outputs}, "
            f"{'real' if self.is_real else 'complex'}{', ' + repr(self.label) if 'label' in self.meta else ''})"
        )


def as_system(obj: Any) -> DiagonalLTI | DenseLTI:
    """Accept a system, or anything with a ``system()`` method (a ``Layer``), and return the system."""
    if isinstance(obj, (DiagonalLTI, DenseLTI)):
        return obj
    if hasattr(obj, "system") and callable(obj.system):
        return as_system(obj.system())
    raise ShapeError(
        f"expected a DiagonalLTI, DenseLTI or a layer with .system(), got {type(obj).__name__}; "
        "for input-dependent layers use layer.frozen(u, t)"
    )
