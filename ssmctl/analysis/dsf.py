"""The Dynamical Systems Framework view of a layer: its DSF core, its transitions Λ_i and its materialized Φ.

Every layer is written as h_i = Λ_i h_{i−1} + B_i u_i, y_i = C_i h_i + D_i u_i (h_{−1} = 0), and its
input-output map as one causal matrix y = Φ u with Φ_ij = C_i Λ_i⋯Λ_{j+1} B_j (j < i), Φ_ii = C_i B_i + D_i,
Φ_ij = 0 (j > i) — the "hidden attention" of Mamba, Griffin and RWKV.

- :func:`dsf` — the core as an ``LTVSystem`` (input-dependent layers) or the constant system (LTI layers);
- :func:`dsf_eigenvalues` — Λ_i of every family, softmax attention included (log space);
- :func:`materialize` — Φ of the core (``scope="core"``) or of the whole mixer (``scope="block"``), from
  cumulative sums of log Λ in blocks of rows, float64; lazy (:class:`Phi` with row blocks and windows) when it
  would exceed ``max_bytes``; :func:`materialize_ref` is its plain product-loop twin.

Layouts: ``"per_channel"`` Φ has shape (batch, channels, L, L) — a core acting on each channel separately
(S4, S4D, S6, SSD, RG-LRU, qLSTM, attention with the values as input), channels flattened in the core's
order; ``"full"`` Φ has shape (batch, L, L, p, m) — MIMO cores (S5, LRU) and every block-scope Φ.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Literal

import numpy as np

from ..errors import NonFiniteError, ShapeError, SsmctlError, UnsupportedSystemError, unknown_name
from ..models.base import Layer
from ..systems.lti import DenseLTI, DiagonalLTI
from ..systems.ltv import LTVSystem
from .response import impulse_response

__all__ = ["Phi", "dsf", "dsf_eigenvalues", "materialize", "materialize_ref"]

Scope = Literal["core", "block"]
SCOPES: tuple[str, ...] = ("core", "block")
# Work memory of one row block when no max_bytes is given.
_DEFAULT_WORKSPACE = 256 * 2**20


def _np64(x: Any) -> np.ndarray:
    """float64 numpy copy of a tensor or array (complex stays complex128)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x if x.is_complex() else x.double()
        return x.numpy()
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64, copy=False)


def dsf(layer: Layer, u: Any = None, *, features: int | None = None) -> LTVSystem | DiagonalLTI | DenseLTI:
    """The DSF core of ``layer`` for the input ``u``.

    Parameters
    ----------
    layer : Layer
        Any registered family's layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model), optional
        The layer's input (as for ``layer.ltv(u)``); not needed by LTI layers.
    features : int, optional
        Softmax attention only: the Taylor order p of the finite-feature approximation (state
        Σ_{r=0}^{p} m^r per value channel, m = head_dim).

    Returns
    -------
    LTVSystem, DiagonalLTI or DenseLTI
        Input-dependent layers: the per-token core (``layer.ltv(u)``: e.g. Mamba's selective scan with the
        convolved signal as ``inputs``, attention with the values as ``inputs``). LTI layers: the constant
        system ``layer.system()`` (S4: its dense DPLR system).

    Raises
    ------
    UnsupportedSystemError
        Softmax attention without ``features`` (the message names the alternatives); ``features`` on a
        layer that has an exact finite DSF.
    ShapeError, NonFiniteError
        A missing or bad ``u``.
    """
    fam = layer.record
    if features is not None:
        if fam.dsf_features is None or layer.config.get("variant") != "softmax":
            raise UnsupportedSystemError(
                f"features= (Taylor features) applies to softmax attention only; {_label(layer)} has an exact "
                "finite DSF: call dsf(layer, u)"
            )
        return fam.dsf_features(layer, _need_u(layer, u), features)
    if fam.kind == "LTI":
        return layer.system()
    return layer.ltv(_need_u(layer, u))


def _label(layer: Layer) -> str:
    variant = layer.config.get("variant")
    return f"{layer.family}{' (' + variant + ')' if variant else ''} layer {layer.index}"


def _need_u(layer: Layer, u: Any) -> Any:
    if u is None:
        raise ShapeError(f"{_label(layer)} is input-dependent: pass its input u of shape (batch, L, d_model)")
    return u


def dsf_eigenvalues(layer: Layer, u: Any = None) -> np.ndarray:
    """Λ_i, the DSF transition of every token, float64.

    Parameters
    ----------
    layer : Layer
        Any registered family's layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model), optional
        The layer's input; not needed by LTI layers.

    Returns
    -------
    ndarray
        Attention (every variant, softmax included): (batch, L, num_heads), Λ_i = η_{i−1}/η_i computed as
        exp(log η_{i−1} − log η_i) with log η exact in log space (Λ_0 = 1: h_{−1} = 0 makes it irrelevant).
        Other input-dependent layers: the core's diagonal, (batch, L, *channels, N). LTI layers: the constant
        eigenvalues ``layer.eigenvalues()`` (complex where the system is).

    Raises
    ------
    ShapeError, NonFiniteError
        A missing or bad ``u``.
    """
    fam = layer.record
    if fam.kind == "LTI":
        return np.asarray(layer.eigenvalues())
    u = _need_u(layer, u)
    if fam.dsf_log_transition is not None:
        return np.exp(fam.dsf_log_transition(layer, u))
    system = layer.ltv(u)
    return np.exp(_np64(system.log_lam)) if system.log_lam is not None else _np64(system.lam)


class Phi:
    """A materialized Φ, array-like: ``np.asarray(phi)`` is the matrix (refused when lazy).

    Attributes
    ----------
    layout : {"per_channel", "full"}
        ``"per_channel"``: shape (batch, channels, L, L); ``"full"``: shape (batch, L, L, p, m).
    shape : tuple of int
    offset : ndarray, shape (batch, L, p)
        The affine part from biases (zero where there is none); p = channels for a per-channel core.
    inputs : ndarray, shape (batch, L, m)
        What Φ multiplies: y = Φ·inputs + offset (per channel: y[b, i, c] = Σ_j Φ[b, c, i, j] inputs[b, j, c]).
    scope : {"core", "block"}
    lazy : bool
        True when Φ was not built (``max_bytes`` smaller than Φ): use :meth:`row_blocks` or ``phi[rows, cols]``.
    nbytes : int
        The size Φ has (or would have) in memory.
    """

    def __init__(self, layout: str, shape: tuple[int, ...], rows: Callable[[int, int, int, int], np.ndarray],
                 offset: np.ndarray, inputs: np.ndarray, scope: str, dtype: Any, budget: int | None,
                 work_per_pair: int | tuple[int, int], data: np.ndarray | None = None) -> None:
        self.layout, self.shape, self.offset, self.inputs, self.scope = layout, shape, offset, inputs, scope
        self.dtype = np.dtype(dtype)
        self._rows, self._budget, self._data = rows, budget, data
        # Temporaries of one rows(…) call: bytes per (i, j) pair, and per column whatever the row count.
        self._work, self._work_col = work_per_pair if isinstance(work_per_pair, tuple) else (work_per_pair, 0)

    @property
    def length(self) -> int:
        """Tokens L."""
        return self.shape[2] if self.layout == "per_channel" else self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole Φ."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def lazy(self) -> bool:
        """Whether Φ is computed on demand (row blocks, windows) instead of held."""
        return self._data is None

    def __repr__(self) -> str:
        kind = "lazy " if self.lazy else ""
        return f"Phi({kind}{self.scope} scope, layout={self.layout!r}, shape={self.shape}, {_size(self.nbytes)})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._data is None:
            raise SsmctlError(
                f"Φ {self.shape} would take {_size(self.nbytes)}, more than max_bytes = {_size(self._budget or 0)}: "
                "iterate phi.row_blocks() or take windows phi[rows, cols] instead of np.asarray(phi)"
            )
        return self._data if dtype is None else self._data.astype(dtype)

    def _row_step(self, n_cols: int) -> int:
        """Rows per block: a quarter of the budget holds the block's output, half its temporaries."""
        out_per_pair = self.nbytes // max(1, self.length * self.length)
        budget = self._budget or _DEFAULT_WORKSPACE
        need = 4 * out_per_pair * max(1, n_cols)
        if need > budget:
            raise SsmctlError(
                f"max_bytes = {_size(budget)} is too small for one row of Φ {self.shape}: "
                f"give at least {_size(need)}"
            )
        return max(1, budget // need)

    def row_blocks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Φ in blocks of rows, each computed on demand within ``max_bytes``.

        Returns
        -------
        iterator of (r0, r1, block)
            ``block`` holds rows r0..r1−1: shape (batch, channels, r1 − r0, L) or (batch, r1 − r0, L, p, m).
        """
        L = self.length
        step = self._row_step(L)
        for r0 in range(0, L, step):
            r1 = min(L, r0 + step)
            yield r0, r1, self._window(r0, r1, 0, L)

    def _window(self, r0: int, r1: int, c0: int, c1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows r0..r1−1, columns c0..c1−1, computed in column tiles whose temporaries fit half the budget;
        written into ``out`` (that window's shape) when given, so filling Φ makes no second copy."""
        per_channel = self.layout == "per_channel"
        if self._data is not None:
            return self._data[:, :, r0:r1, c0:c1] if per_channel else self._data[:, r0:r1, c0:c1]
        budget = self._budget or _DEFAULT_WORKSPACE
        tile = max(1, (budget // 2) // max(1, self._work * (r1 - r0) + self._work_col))
        if tile >= c1 - c0 and out is None:
            return self._rows(r0, r1, c0, c1)
        if out is None:
            shape = list(self.shape)
            row_axis = 2 if per_channel else 1
            shape[row_axis], shape[row_axis + 1] = r1 - r0, c1 - c0
            out = np.empty(shape, dtype=self.dtype)
        for a in range(c0, c1, tile):
            b = min(c1, a + tile)
            if per_channel:
                out[:, :, :, a - c0 : b - c0] = self._rows(r0, r1, a, b)
            else:
                out[:, :, a - c0 : b - c0] = self._rows(r0, r1, a, b)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        """The window Φ[rows, cols] (slices or ints over tokens), all other axes kept.

        Parameters
        ----------
        key : (slice or int, slice or int)
            Rows (output tokens i) and columns (input tokens j).

        Returns
        -------
        ndarray
            (batch, channels, rows, cols) or (batch, rows, cols, p, m).
        """
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ShapeError("index Φ by (rows, cols): token slices or integers, e.g. phi[0:64, 0:64]")
        L = self.length
        ranges = []
        for k in key:
            if isinstance(k, (int, np.integer)):
                i = int(k) + (L if k < 0 else 0)
                if not 0 <= i < L:
                    raise ShapeError(f"token index {k} outside the sequence of length {L}")
                ranges.append((i, i + 1, True))
            elif isinstance(k, slice) and k.step in (None, 1):
                a, b, _ = k.indices(L)
                ranges.append((a, max(a, b), False))
            else:
                raise ShapeError(f"Φ windows take integers or contiguous slices, got {k!r}")
        (r0, r1, ri), (c0, c1, ci) = ranges
        step = self._row_step(max(1, c1 - c0))
        axis = 2 if self.layout == "per_channel" else 1
        parts = [self._window(a, min(r1, a + step), c0, c1) for a in range(r0, r1, step)]
        out = np.concatenate(parts, axis=axis) if parts else self._window(r0, r0, c0, c1)
        if ci:
            out = np.take(out, 0, axis=axis + 1)
        if ri:
            out = np.take(out, 0, axis=axis)
        return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---------------------------------------------------------------------------------------------------- core


class _CoreRows:
    """Φ of a per-channel (SISO) LTV core, row block by row block, from cumulative sums of log Λ.

    With S = cumsum log|Λ| along tokens, Λ_i⋯Λ_{j+1} = exp(S_i − S_j). Rows go in sub-blocks [a, e): columns
    j < a factor through the sub-block's first token, exp(S_i − S_a)·exp(S_a − S_j) — both ≤ 1 for a
    contractive core — so that part is one matrix product over the states per channel; columns inside the
    sub-block take the differences directly. A Λ_k that is exactly 0 (a float32 underflow) is counted apart
    (Z), so it zeroes exactly the products that contain it; negative Λ's (odd Taylor orders) by their parity.
    """

    def __init__(self, system: LTVSystem, budget: int | None) -> None:
        b, L = system.batch_size, system.length
        ch = int(np.prod(system.channel_shape, dtype=np.int64))
        N = system.n_states
        if system.n_inputs != 1 or system.n_outputs != 1:
            raise UnsupportedSystemError("materialize needs a core with one input and one output per channel")
        lam = _np64(system.lam).reshape(b, L, ch, N)
        if np.iscomplexobj(lam) or np.iscomplexobj(_np64(system.B)) or np.iscomplexobj(_np64(system.C)):
            raise UnsupportedSystemError("materialize handles real input-dependent cores (every LTV family here)")
        # Channel-major (b, ch, L, N): the matrix products below run over contiguous (L, N) slabs.
        self.B = np.ascontiguousarray(_np64(system.B).reshape(b, L, ch, N).transpose(0, 2, 1, 3))
        self.C = np.ascontiguousarray(_np64(system.C).reshape(b, L, ch, N).transpose(0, 2, 1, 3))
        self.D = np.broadcast_to(_np64(system.D), system.channel_shape + (1, 1)).reshape(ch)
        if system.log_lam is not None:
            log_abs = _np64(system.log_lam).reshape(b, L, ch, N)
            self.Z = self.sign = None
        else:
            zero = lam == 0
            log_abs = np.log(np.where(zero, 1.0, np.abs(lam)))
            self.Z = np.cumsum(zero, axis=1).transpose(0, 2, 1, 3) if zero.any() else None
            negative = lam < 0
            self.sign = (1.0 - 2.0 * (np.cumsum(negative, axis=1) % 2)).transpose(0, 2, 1, 3) if negative.any() else None
        self.S = np.ascontiguousarray(np.cumsum(log_abs, axis=1).transpose(0, 2, 1, 3))
        self.shape = (b, ch, L, N)
        # Rows per sub-block: its direct part holds about three (b, ch, s, s, N) temporaries.
        room = (budget or _DEFAULT_WORKSPACE) // 4
        self.sub = int(max(1, min(16, math.isqrt(max(1, room // (24 * b * ch * N))))))
        # Per (i, j) pair of a row block: the output and the product's result; per column the right factor
        # (its exponent, exponential and product with B, each (cols, N) per channel).
        self.work = (8 * b * ch * 3, 8 * b * ch * 4 * N)

    def __call__(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        b, ch, _, _ = self.shape
        S, B, C, Z, sign = self.S, self.B, self.C, self.Z, self.sign
        out = np.empty((b, ch, r1 - r0, max(0, c1 - c0)))  # every entry is written below (zeros included)
        hi = min(c1, r1)  # Φ_ij = 0 for j > i
        for a in range(r0, r1, self.sub):
            e = min(r1, a + self.sub)
            jb = min(hi, a)
            if jb > c0:  # columns before the sub-block: one product over the states through token a
                left = np.exp(S[:, :, a:e] - S[:, :, a : a + 1]) * C[:, :, a:e]
                right = np.exp(S[:, :, a : a + 1] - S[:, :, c0:jb]) * B[:, :, c0:jb]
                if Z is not None:
                    left *= Z[:, :, a:e] == Z[:, :, a : a + 1]
                    right *= Z[:, :, a : a + 1] == Z[:, :, c0:jb]
                if sign is not None:
                    left *= sign[:, :, a:e]
                    right *= sign[:, :, c0:jb]
                np.matmul(left, right.transpose(0, 1, 3, 2), out=out[:, :, a - r0 : e - r0, : jb - c0])
            ja, jz = max(c0, a), min(hi, e)
            out[:, :, a - r0 : e - r0, max(c0, jz) - c0 :] = 0.0  # above the diagonal
            if jz > ja:  # columns inside the sub-block: the differences directly, strictly below the diagonal
                diff = S[:, :, a:e, None] - S[:, :, None, ja:jz]  # (b, ch, rows, cols, N)
                below = (np.arange(ja, jz)[None, :] < np.arange(a, e)[:, None])[None, None, :, :, None]
                if Z is not None:
                    below = below & (Z[:, :, a:e, None] == Z[:, :, None, ja:jz])
                prod = np.exp(np.where(below, diff, -np.inf))
                if sign is not None:
                    prod *= sign[:, :, a:e, None] * sign[:, :, None, ja:jz]
                blk = np.einsum("bcin,bcijn,bcjn->bcij", C[:, :, a:e], prod, B[:, :, ja:jz], optimize=True)
                diag = np.arange(max(a, ja), min(e, jz))
                if diag.size:  # Φ_ii = C_i B_i + D
                    blk[:, :, diag - a, diag - ja] = np.einsum("bcin,bcin->bci", C[:, :, diag], B[:, :, diag]) + self.D[:, None]
                out[:, :, a - r0 : e - r0, ja - c0 : jz - c0] = blk
        return out


def _lti_rows(system: DiagonalLTI | DenseLTI, L: int) -> tuple[Callable[[int, int, int, int], np.ndarray], int, int, int]:
    """Φ of a constant system from its kernel K_k (Toeplitz): rows(…) → (C, rows, cols, p, m)."""
    K = impulse_response(system, L)  # (*batch, L, p, m)
    p, m = K.shape[-2:]
    K = K.reshape((-1, L, p, m))
    if np.iscomplexobj(K):
        K = K.real  # real output modes give a real kernel; imaginary parts are rounding
    ch = K.shape[0]

    def rows(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        lag = np.arange(r0, r1)[:, None] - np.arange(c0, c1)[None, :]
        out = K[:, np.clip(lag, 0, L - 1)]
        return np.where((lag >= 0)[None, :, :, None, None], out, 0.0)

    return rows, ch, p, m


# --------------------------------------------------------------------------------------------------- block


def _block_rows(factors: Any, budget: int | None) -> tuple[Callable[[int, int, int, int], np.ndarray], np.ndarray, np.ndarray, int]:
    """rows(…) of the block-scope Φ (batch, rows, cols, p, m), its offset (batch, L, p), its inputs and the
    peak bytes per (i, j) pair of one row block."""
    x = _np64(factors.inputs)
    b, L, _ = x.shape
    w_in, w_out = _np64(factors.w_in), _np64(factors.w_out)
    ch = w_in.shape[0]
    ones = np.ones((b, L, ch))
    act = ones if factors.act is None else _np64(factors.act).reshape(b, L, ch)
    gate = ones if factors.gate is None else _np64(factors.gate).reshape(b, L, ch)
    taps = None if factors.conv_w is None else _np64(factors.conv_w)[:, 0, ::-1]  # taps[c, k]: k steps back
    width = 1 if taps is None else taps.shape[1]
    if factors.core is not None:
        core = _CoreRows(factors.core, budget)
        core_work = sum(core.work)  # per pair, as if one row
    else:
        core_work = 8 * 2 * b * ch

        def core(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return _np64(factors.core_rows(r0, r1))[..., c0:c1]

    def mixed(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """M[b, c, i, j] = g_i Σ_k Φcore[i, j+k] a_{j+k} w_k: the per-channel part, conv as a Toeplitz factor."""
        hi = min(L, c1 + width - 1)
        P = core(r0, r1, c0, hi) * act[:, None, c0:hi].transpose(0, 3, 1, 2)  # (b, C, rows, hi − c0)
        if taps is None:
            M = P
        else:
            M = np.zeros(P.shape[:3] + (c1 - c0,))
            for k in range(width):  # conv taps (≤ 4), not tokens
                n = min(c1 - c0, hi - c0 - k)
                if n > 0:
                    M[..., :n] += P[..., k : k + n] * taps[None, :, None, k : k + 1]
        return M * gate[:, r0:r1].transpose(0, 2, 1)[..., None]

    def rows(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        M = mixed(r0, r1, c0, c1)
        return np.einsum("pc,bcij,cm->bijpm", w_out, M, w_in, optimize=True)

    # The affine part: the biases' path through the same factors.
    b_in = np.zeros(ch) if factors.b_in is None else _np64(factors.b_in)
    v_off = np.broadcast_to(b_in, (b, L, ch))
    if taps is not None:
        shifted = np.zeros((b, L, ch))
        for k in range(width):
            shifted[:, k:] += v_off[:, : L - k] * taps[:, k]
        v_off = shifted + (0.0 if factors.conv_b is None else _np64(factors.conv_b))
    x_off = act * v_off
    y_off = np.zeros((b, L, ch))
    step = max(1, (budget or _DEFAULT_WORKSPACE) // (2 * core_work * L))
    for r0 in range(0, L, step):
        r1 = min(L, r0 + step)
        y_off[:, r0:r1] = np.einsum("bcij,bjc->bic", core(r0, r1, 0, r1), x_off[:, :r1])
    offset = np.einsum("pc,bic->bip", w_out, gate * y_off)
    if factors.b_out is not None:
        offset = offset + _np64(factors.b_out)
    p, m = w_out.shape[0], w_in.shape[1]
    return rows, offset, x, core_work + 8 * b * (4 * ch + 2 * p * m + p * ch)


# ---------------------------------------------------------------------------------------------- materialize


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise unknown_name("materialize scope", scope, SCOPES)


def _check_budget(max_bytes: Any) -> int | None:
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
        raise SsmctlError(f"max_bytes must be a positive integer number of bytes, got {max_bytes!r}")
    return int(max_bytes)


def _lti_inputs(layer: Layer, u: Any, ch: int, m: int, per_channel: bool) -> np.ndarray:
    if u is None:
        raise ShapeError(f"{_label(layer)}: pass the input u (batch, L, channels) whose Φ to build")
    x = _np64(u.detach() if hasattr(u, "detach") else u)
    width = ch if per_channel else m
    if x.ndim != 3 or x.shape[-1] != width or x.shape[1] == 0:
        raise ShapeError(f"{_label(layer)}: materialize needs u of shape (batch, L, {width}), got {x.shape}")
    if not np.isfinite(x).all():
        raise NonFiniteError(f"{_label(layer)}: the input u contains NaN or Inf")
    return x


def _plan(layer: Layer, u: Any, scope: str, budget: int | None, *, features: int | None = None) -> tuple[str, tuple[int, ...], Callable, np.ndarray, np.ndarray]:
    """Layout, shape, rows(r0, r1, c0, c1) in that layout, offset and inputs of Φ."""
    if isinstance(layer, LTVSystem):
        if scope != "core":
            raise UnsupportedSystemError("an LTVSystem is a DSF core: materialize it with scope='core'")
        core = _CoreRows(layer, budget)
        b, ch, L, _ = core.shape
        inputs = _np64(layer.inputs).reshape(b, L, ch) if layer.inputs is not None else None
        return "per_channel", (b, ch, L, L), core, np.zeros((b, L, ch)), inputs, core.work
    fam = layer.record
    if scope == "block":
        if fam.dsf_block is None:
            raise UnsupportedSystemError(
                f"scope='block' is available for the input-dependent mixers (attention, qLSTM, Mamba, Mamba-2, "
                f"RG-LRU); {_label(layer)} has scope='core' only"
            )
        rows, offset, x, work = _block_rows(fam.dsf_block(layer, _need_u(layer, u)), budget)
        b, L, m = x.shape
        return "full", (b, L, L, offset.shape[-1], m), rows, offset, x, work
    if fam.kind == "LTI":
        system = layer.system()
        per_channel = system.n_outputs == 1 and system.n_inputs == 1 and len(system.batch_shape) > 0
        probe = _lti_inputs(layer, u, int(np.prod(system.batch_shape, dtype=np.int64)), system.n_inputs,
                            per_channel)
        b, L = probe.shape[:2]
        lti_rows, ch, p, m = _lti_rows(system, L)
        if per_channel:
            def rows(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
                return np.broadcast_to(lti_rows(r0, r1, c0, c1)[..., 0, 0], (b, ch, r1 - r0, c1 - c0))
            return "per_channel", (b, ch, L, L), rows, np.zeros((b, L, ch)), probe, 8 * 3 * b * ch
        if ch != 1:
            raise UnsupportedSystemError(f"{_label(layer)}: a batch of MIMO systems has no single Φ")

        def rows(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:  # noqa: F811
            return np.broadcast_to(lti_rows(r0, r1, c0, c1)[0], (b, r1 - r0, c1 - c0, p, m))
        return "full", (b, L, L, p, m), rows, np.zeros((b, L, p)), probe, 8 * 3 * b * p * m
    if fam.attention_matrix is not None and layer.config.get("variant") == "softmax" and features is None:
        # Softmax has no finite DSF state, but its Φ is exact: the attention matrix, per value channel.
        factors = fam.dsf_block(layer, _need_u(layer, u))
        values = _np64(factors.inputs) @ _np64(factors.w_in).T
        if factors.b_in is not None:
            values = values + _np64(factors.b_in)
        b, L, ch = values.shape
        return ("per_channel", (b, ch, L, L), lambda r0, r1, c0, c1: _np64(factors.core_rows(r0, r1))[..., c0:c1],
                np.zeros((b, L, ch)), values, 8 * 3 * b * ch)
    system = dsf(layer, u, features=features)
    core = _CoreRows(system, budget)
    b, ch, L, _ = core.shape
    inputs = _np64(system.inputs).reshape(b, L, ch) if system.inputs is not None else None
    return "per_channel", (b, ch, L, L), core, np.zeros((b, L, ch)), inputs, core.work


def materialize(layer: Layer | LTVSystem, u: Any = None, *, scope: Scope = "core", max_bytes: int | None = None,
                features: int | None = None) -> Phi:
    """Φ, the layer's input-output matrix at input ``u``: y = Φ·inputs + offset.

    Parameters
    ----------
    layer : Layer or LTVSystem
        Any registered family's layer, or a DSF core itself (an ``LTVSystem`` with one input and output per
        channel, e.g. one built by hand to compare two realizations; ``u`` is then not used).
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The layer's input (as for ``layer.ltv(u)``). LTI layers: the SSM's own input (batch, L, channels).
    scope : {"core", "block"}, default "core"
        ``"core"``: the DSF core exactly, acting on ``.inputs`` (the values v for attention, the convolved
        signal for qLSTM/Mamba/Mamba-2/RG-LRU, u for LTI layers). ``"block"``: the sequence mixer from after
        its pre-norm to before the residual add — convolutions as Toeplitz factors, activations and gates
        as the diagonal factors they are at this input, projections included — acting on the mixer's input.
    max_bytes : int, optional
        When Φ is larger, it is not built: the result is lazy (row blocks and windows computed on demand,
        each within this budget).
    features : int, optional
        Softmax attention: materialize the order-p Taylor-feature DSF instead of the exact attention matrix.

    Returns
    -------
    Phi
        Array-like; ``layout`` "per_channel" (batch, channels, L, L) or "full" (batch, L, L, p, m), float64,
        zero above the diagonal; ``offset`` (batch, L, p); ``inputs``.

    Raises
    ------
    UnknownNameError
        An unknown scope.
    UnsupportedSystemError
        ``scope="block"`` for an LTI family.
    SsmctlError
        A ``max_bytes`` that is not a positive integer.
    ShapeError, NonFiniteError
        A missing or bad ``u``.
    """
    _check_scope(scope)
    budget = _check_budget(max_bytes)
    layout, shape, rows, offset, inputs, work = _plan(layer, u, scope, budget, features=features)
    phi = Phi(layout, shape, rows, offset, inputs, scope, np.float64, budget, work)
    if budget is None or phi.nbytes <= budget:
        data = np.empty(shape)
        L = phi.length
        step = phi._row_step(L)
        for r0 in range(0, L, step):  # filled in place, tile by tile: no second copy of Φ
            r1 = min(L, r0 + step)
            phi._window(r0, r1, 0, L, out=data[:, :, r0:r1] if layout == "per_channel" else data[:, r0:r1])
        phi._data = data
    return phi


# ------------------------------------------------------------------------------------------ reference twin


def _product_loop(lam: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Φ[b, i, j, c, p, m] = C_i (Λ_i⋯Λ_{j+1}) B_j (+ D on the diagonal), one (i, j) pair at a time."""
    b, L, ch, N = lam.shape
    p, m = C.shape[-2], B.shape[-1]
    out = np.zeros((b, L, L, ch, p, m))
    for i in range(L):
        prod = np.ones((b, ch, N))
        for j in range(i, -1, -1):
            out[:, i, j] = np.einsum("bcpn,bcn,bcnm->bcpm", C[:, i], prod, B[:, j])
            prod = prod * lam[:, j]
        out[:, i, i] += D
    return out


def materialize_ref(layer: Layer | LTVSystem, u: Any = None, *, scope: Scope = "core",
                    features: int | None = None) -> np.ndarray:
    """Plain twin of :func:`materialize`: the products Λ_i⋯Λ_{j+1} one pair (i, j) at a time, float64.

    Block scope multiplies dense matrices: out-projection · diag(gate) · Φ_core · diag(act) · Toeplitz(conv)
    · in-projection, each built as an (L·channels)-sized matrix. For tests on small inputs.

    Parameters
    ----------
    layer : Layer or LTVSystem
        As for :func:`materialize`.
    u : array_like or torch.Tensor
        As for :func:`materialize`.
    scope : {"core", "block"}, default "core"
    features : int, optional
        As for :func:`materialize`.

    Returns
    -------
    ndarray
        Φ in the layout :func:`materialize` gives.

    Raises
    ------
    UnknownNameError, UnsupportedSystemError, ShapeError, NonFiniteError
        As :func:`materialize`.
    """
    _check_scope(scope)
    if isinstance(layer, LTVSystem):
        return _system_product_loop(layer)
    fam = layer.record
    if scope == "block":
        if fam.dsf_block is None:
            return materialize(layer, u, scope="block")  # raises the same error
        return _block_ref(fam.dsf_block(layer, u))
    if fam.kind == "LTI":
        system = layer.system().to_dense()
        A, B, C, D = (_np64(x) for x in system.broadcast_arrays())
        x = _np64(u)
        L = x.shape[1]
        ch = int(np.prod(system.batch_shape, dtype=np.int64))
        A, B, C, D = (y.reshape((ch,) + y.shape[-2:]) for y in (A, B, C, D))
        out = np.zeros((ch, L, L) + D.shape[-2:])
        power = np.broadcast_to(np.eye(A.shape[-1]), A.shape).copy()
        for k in range(L):
            K = C @ power @ B + (D if k == 0 else 0.0)
            for i in range(k, L):
                out[:, i, i - k] = K.real
            power = A @ power
        b = x.shape[0]
        if C.shape[-2] == 1 and B.shape[-1] == 1 and system.batch_shape:
            return np.broadcast_to(out[..., 0, 0], (b,) + out.shape[:3]).copy()
        return np.broadcast_to(out[0], (b,) + out.shape[1:]).copy()
    if fam.attention_matrix is not None and layer.config.get("variant") == "softmax" and features is None:
        alpha = fam.attention_matrix(layer, u)  # (b, H, L, L)
        H = alpha.shape[1]
        dv = layer.config["d_model"] // H
        return np.repeat(alpha, dv, axis=1)
    return _system_product_loop(dsf(layer, u, features=features))


def _system_product_loop(system: LTVSystem) -> np.ndarray:
    """Per-channel Φ (batch, channels, L, L) of an LTVSystem by :func:`_product_loop`."""
    ch = int(np.prod(system.channel_shape, dtype=np.int64))
    b, L, N = system.batch_size, system.length, system.n_states
    lam = _np64(system.lam).reshape(b, L, ch, N)
    B = _np64(system.B).reshape(b, L, ch, N, -1)
    C = _np64(system.C).reshape(b, L, ch, -1, N)
    D = np.broadcast_to(_np64(system.D), system.channel_shape + C.shape[-2:-1] + B.shape[-1:]).reshape(
        ch, C.shape[-2], B.shape[-1])
    full = _product_loop(lam, B, C, D)
    return full[..., 0, 0].transpose(0, 3, 1, 2)


def _block_ref(factors: Any) -> np.ndarray:
    x = _np64(factors.inputs)
    b, L, d_in = x.shape
    w_in, w_out = _np64(factors.w_in), _np64(factors.w_out)
    ch, p = w_in.shape[0], w_out.shape[0]
    if factors.core is not None:
        system = factors.core
        lam = _np64(system.lam).reshape(b, L, ch, -1)
        N = lam.shape[-1]
        B = _np64(system.B).reshape(b, L, ch, N, 1)
        C = _np64(system.C).reshape(b, L, ch, 1, N)
        D = np.broadcast_to(_np64(system.D), system.channel_shape + (1, 1)).reshape(ch, 1, 1)
        core = _product_loop(lam, B, C, D)[..., 0, 0]  # (b, i, j, c)
    else:
        core = _np64(factors.core_rows(0, L)).transpose(0, 2, 3, 1)
    out = np.zeros((b, L, L, p, d_in))
    eye_L = np.eye(L)
    T = np.zeros((ch, L, L))  # Toeplitz of the conv per channel: T[c, j', j] = w[c, j' − j]
    if factors.conv_w is None:
        T[:] = eye_L
    else:
        taps = _np64(factors.conv_w)[:, 0, ::-1]
        for k in range(taps.shape[1]):
            T += taps[:, k, None, None] * np.eye(L, k=-k)[None]
    act = np.ones((b, L, ch)) if factors.act is None else _np64(factors.act).reshape(b, L, ch)
    gate = np.ones((b, L, ch)) if factors.gate is None else _np64(factors.gate).reshape(b, L, ch)
    for n in range(b):
        Win = np.kron(eye_L, w_in)  # (L·C, L·d_in), token-major
        Wout = np.kron(eye_L, w_out)
        Tbig = np.zeros((L * ch, L * ch))
        Pbig = np.zeros((L * ch, L * ch))
        for c in range(ch):
            Tbig[c::ch, c::ch] = T[c]
            Pbig[c::ch, c::ch] = core[n, :, :, c]
        G = np.diag(gate[n].reshape(-1))
        A = np.diag(act[n].reshape(-1))
        full = Wout @ G @ Pbig @ A @ Tbig @ Win
        out[n] = full.reshape(L, p, L, d_in).transpose(0, 2, 1, 3)
    return out
