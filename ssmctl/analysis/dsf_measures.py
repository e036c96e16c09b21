"""Input-output measures, comparisons and explanations computed on a layer's DSF matrix Φ (y = Φ·inputs).

Measures of any layer, trained or not:

- :func:`hankel_profile` — the singular values of Φ[t:, :t] (the time-varying Hankel operator at cut t: how much
  of the past before t reaches the outputs from t on) and their numerical rank, the state dimension the layer
  actually uses across t;
- :func:`window_gain` — the finite-horizon ℓ2 gain over a window of tokens;
- :func:`taylor_error` — softmax attention against its order-p Taylor-feature DSF, with the state each needs.

The DSF paper's comparisons, as functions a test can hold to the claim: :func:`lambda_bounds` (where Λ_i lies for
each family), :func:`linear_attention_as_ssd` and :func:`ssd_bilinear_fit` (when linear attention and SSD give
one Φ, and when no SSD parameters can), :func:`reversed_sigmoid_identity` (exp(a·softplus(x)) = σ(−x)^(−a)).

Explanations on Φ, for every family: :func:`attention_map` (|Φ| with its channels aggregated explicitly),
:func:`rollout` (maps composed across layers with the residual's identity), :func:`attribution` (an output
token's input tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import NonFiniteError, ShapeError, SsmctlError, UnsupportedSystemError, unknown_name
from ..models.base import Layer
from ..systems.ltv import LTVSystem
from .dsf import Phi, _np64, dsf_eigenvalues, materialize

__all__ = [
    "HankelProfile",
    "hankel_profile",
    "window_gain",
    "TaylorError",
    "taylor_error",
    "LambdaBounds",
    "lambda_bounds",
    "SSDMatch",
    "linear_attention_as_ssd",
    "ssd_bilinear_fit",
    "reversed_sigmoid_identity",
    "attention_map",
    "rollout",
    "attribution",
]

AGGREGATES: tuple[str, ...] = ("mean", "sum", "max", "l2")
NORMALIZATIONS: tuple[str, ...] = ("row",)
#: Cuts used by :func:`hankel_profile` when none are given: every cut up to this many, else evenly spaced ones.
DEFAULT_MAX_CUTS = 64


# ------------------------------------------------------------------------------------------------ helpers


def _layout_of(phi: Any) -> str:
    if isinstance(phi, Phi):
        return phi.layout
    ndim = np.ndim(phi)
    if ndim == 4:
        return "per_channel"
    if ndim == 5:
        return "full"
    raise ShapeError(
        f"Φ must be a Phi or an array of shape (batch, channels, L, L) or (batch, L, L, p, m), got {ndim} axes"
    )


def _length(phi: Any, layout: str) -> int:
    shape = phi.shape
    if layout == "per_channel":
        if shape[2] != shape[3]:
            raise ShapeError(f"a per-channel Φ is (batch, channels, L, L), got {tuple(shape)}")
        return int(shape[2])
    if shape[1] != shape[2]:
        raise ShapeError(f"a full Φ is (batch, L, L, p, m), got {tuple(shape)}")
    return int(shape[1])


def _window(phi: Any, layout: str, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Φ[r0:r1, c0:c1] as a finite float64 array (a lazy Phi computes only that window)."""
    if isinstance(phi, Phi) and phi.lazy:
        out = phi[r0:r1, c0:c1]
    else:
        arr = np.asarray(phi)  # an eager Phi's own array: a view, no copy
        out = arr[:, :, r0:r1, c0:c1] if layout == "per_channel" else arr[:, r0:r1, c0:c1]
        out = out.astype(np.float64, copy=False)
    if not np.isfinite(out).all():
        raise NonFiniteError(f"Φ contains NaN or Inf in rows {r0}..{r1 - 1}, columns {c0}..{c1 - 1}")
    return out


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ShapeError(f"{name} must be an integer token index, got {value!r}")
    return int(value)


def _check_channel(channel: Any, layout: str, n_channels: int) -> int:
    if layout != "per_channel":
        raise ShapeError("channel= applies to a per-channel Φ (batch, channels, L, L); a full Φ has no channel axis")
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not -n_channels <= channel < n_channels:
        raise ShapeError(f"channel {channel!r} outside the {n_channels} channels of Φ")
    return int(channel)


def _select_channel(block: np.ndarray, layout: str, channel: int | None, n_channels: int) -> np.ndarray:
    return block if channel is None else block[:, _check_channel(channel, layout, n_channels)]


def _as_matrices(block: np.ndarray, layout: str) -> np.ndarray:
    """A window as a stack of matrices: (..., rows, cols); a full Φ's (i, p) and (j, m) flattened together."""
    if layout == "per_channel":
        return block
    b, r, c, p, m = block.shape
    return block.transpose(0, 1, 3, 2, 4).reshape(b, r * p, c * m)


def _channels(phi: Any, layout: str) -> int:
    return int(phi.shape[1]) if layout == "per_channel" else 1


# ------------------------------------------------------------------------------------------- Hankel profile


@dataclass
class HankelProfile:
    """Singular values and numerical rank of the Hankel blocks Φ[t:, :t] at each cut t.

    Attributes
    ----------
    cuts : ndarray of int, shape (n_cuts,)
        The cuts t (1 ≤ t ≤ L − 1): rows t..L−1 (outputs from t on) against columns 0..t−1 (inputs before t).
    singular_values : ndarray, shape (..., n_cuts, k_max)
        Descending; zero-padded past each block's min(rows, cols). Leading axes: (batch, channels) for a
        per-channel Φ, (batch,) for one channel or a full Φ.
    rank : ndarray of int, shape (..., n_cuts)
        Number of singular values above ``rtol`` × the block's largest one (0 for a zero block).
    rtol : float
        The tolerance, relative to σ_max of each block.
    max_rank : ndarray of int, shape (n_cuts,)
        min(rows, cols) of each block: min(t, L − t) per channel (× p or m for a full Φ).
    """

    cuts: np.ndarray
    singular_values: np.ndarray
    rank: np.ndarray
    rtol: float
    max_rank: np.ndarray


def _default_cuts(L: int) -> np.ndarray:
    if L - 1 <= DEFAULT_MAX_CUTS:
        return np.arange(1, L)
    return np.unique(np.linspace(1, L - 1, DEFAULT_MAX_CUTS).round().astype(int))


def hankel_profile(phi: Phi | np.ndarray | LTVSystem, cuts: Sequence[int] | None = None, *, rtol: float = 1e-8,
                   channel: int | None = None) -> HankelProfile:
    """The time-varying Hankel operator of Φ at each cut t: its singular values and numerical rank.

    Φ[t:, :t] maps the inputs before token t to the outputs from t on; everything it passes goes through the
    state h_{t−1} (Φ_ij = C_i Λ_i⋯Λ_t · Λ_{t−1}⋯Λ_{j+1} B_j factors through it), so its rank is at most the
    state size N for any finite-state layer, whatever the input: per channel for a per-channel Φ (S4D, S6,
    SSD, RG-LRU, qLSTM, linear and normalized attention: head_dim), the whole real state for a full Φ (S5,
    LRU; block scope adds the convolution's taps). The numerical rank is the state dimension the layer
    actually uses across t.

    Softmax attention has no finite state. Its block is diag(1/η_i)·[exp(s_ij)], s_ij = q_i·k_j/√m (the row
    scaling leaves the rank alone); exp(s) = Σ_r s^r/r! elementwise, and the r-th power of the rank-m matrix
    [s_ij] has rank at most C(m+r−1, r), so no finite sum of terms is exact and the rank is generically full,
    min(t, L − t), when the logits are of order 1 (many orders stay above the tolerance). For small logits
    (small-weight inits such as N(0, 0.02) projections, |s| ≪ 1) the r-th term is of size |s|^r/r!, and only
    the orders p with |s|^p/p! above ``rtol`` count: the numerical rank is then about Σ_{r≤p} C(m+r−1, r) =
    C(m+p, p) — the symmetric part of the order-p Taylor-feature state (:func:`taylor_error`), well below
    min(t, L − t) once L is large.

    Cost: from Φ, one batched SVD of an (L − t) × t matrix per channel and cut. From a finite-state core (an
    ``LTVSystem``, e.g. ``ssmctl.dsf(layer, u)``), the block is factored through the state instead,
    Φ[t:, :t] = O_t R_tᵀ with O_t[i] = C_i Λ_i⋯Λ_t and R_t[j] = Λ_{t−1}⋯Λ_{j+1} B_j (cumulative products, so
    exact zeros and negative Λ's need no care), and its singular values are those of the N × N product of the
    two factors' QR triangles: O(L·N²) per channel and cut, and Φ is never built.

    Parameters
    ----------
    phi : Phi, ndarray or LTVSystem
        Per-channel (batch, channels, L, L) or full (batch, L, L, p, m), as :func:`ssmctl.materialize`
        returns it; a lazy Phi is read window by window. Or a real DSF core with one input and output per
        channel (an ``LTVSystem``; channels flattened as ``materialize`` does): the factored path above, with
        min(N, t, L − t) singular values per block.
    cuts : sequence of int, optional
        Cuts t in 1..L−1. Default: every cut when L − 1 ≤ 64, else 64 evenly spaced ones.
    rtol : float, default 1e-8
        Singular values above rtol·σ_max(block) count towards the rank.
    channel : int, optional
        One channel of a per-channel Φ (its axis is then dropped).

    Returns
    -------
    HankelProfile
        ``singular_values`` (..., n_cuts, k_max), ``rank`` (..., n_cuts), leading axes (batch, channels),
        or (batch,) for one channel or a full Φ.

    Raises
    ------
    ShapeError
        A Φ of another shape, a cut outside 1..L−1, or a channel out of range.
    UnsupportedSystemError
        An ``LTVSystem`` that is complex or has several inputs or outputs per channel.
    NonFiniteError
        NaN or Inf in Φ or in the core.
    SsmctlError
        ``rtol`` not in (0, 1).
    """
    if isinstance(phi, LTVSystem):
        factors = _StateFactors(phi)
        layout, L = "per_channel", factors.length
    else:
        factors = None
        layout = _layout_of(phi)
        L = _length(phi, layout)
    if not (isinstance(rtol, (float, int)) and 0 < rtol < 1):
        raise SsmctlError(f"rtol must be in (0, 1), got {rtol!r}")
    if L < 2:
        raise ShapeError(f"a Hankel profile needs at least 2 tokens, Φ has L = {L}")
    if cuts is None:
        cut_arr = _default_cuts(L)
    else:
        cut_arr = np.asarray(cuts).reshape(-1)
        if cut_arr.size == 0 or not np.issubdtype(cut_arr.dtype, np.integer) or (cut_arr < 1).any() or (cut_arr > L - 1).any():
            raise ShapeError(f"cuts must be integers in 1..{L - 1} (L = {L}), got {list(np.asarray(cuts).reshape(-1))}")
    n_ch = factors.channels if factors is not None else _channels(phi, layout)
    if factors is not None and channel is not None:
        factors = factors.channel(_check_channel(channel, layout, n_ch))
    svals, ranks, widths = [], [], []
    for t in cut_arr.tolist():  # one SVD per cut, batched over (batch, channels)
        if factors is not None:
            s = factors.hankel_singular_values(t)
        else:
            block = _as_matrices(_select_channel(_window(phi, layout, t, L, 0, t), layout, channel, n_ch), layout)
            s = np.linalg.svd(block, compute_uv=False)
        top = s[..., :1]
        ranks.append(np.sum((s > rtol * top) & (top > 0), axis=-1))
        svals.append(s)
        widths.append(s.shape[-1])
    k_max = max(widths)
    lead = svals[0].shape[:-1]
    out = np.zeros(lead + (len(svals), k_max))
    for n, s in enumerate(svals):
        out[..., n, : s.shape[-1]] = s
    return HankelProfile(cuts=cut_arr.astype(int), singular_values=out, rank=np.stack(ranks, axis=-1).astype(int),
                         rtol=float(rtol), max_rank=np.asarray(widths, dtype=int))


class _StateFactors:
    """A per-channel real DSF core as the factors of its Hankel blocks: Φ[t:, :t] = O_t R_tᵀ through h_{t−1}."""

    def __init__(self, system: LTVSystem) -> None:
        b, L, N = system.batch_size, system.length, system.n_states
        ch = int(np.prod(system.channel_shape, dtype=np.int64))
        if system.n_inputs != 1 or system.n_outputs != 1:
            raise UnsupportedSystemError("hankel_profile needs a core with one input and one output per channel")
        arrays = [_np64(x) for x in (system.lam, system.B, system.C)]
        if any(np.iscomplexobj(x) for x in arrays):
            raise UnsupportedSystemError("hankel_profile's factored path takes real cores; materialize complex ones")
        if not all(np.isfinite(x).all() for x in arrays):
            raise NonFiniteError("the DSF core contains NaN or Inf")
        # Channel-major (b, ch, L, N), as materialize lays Φ out.
        self.lam, self.B, self.C = (x.reshape(b, L, ch, N).transpose(0, 2, 1, 3) for x in arrays)
        self.length, self.channels = L, ch

    def channel(self, c: int) -> "_StateFactors":
        """The same factors restricted to channel ``c`` (its axis dropped)."""
        out = object.__new__(_StateFactors)
        out.lam, out.B, out.C = (x[:, c] for x in (self.lam, self.B, self.C))
        out.length, out.channels = self.length, 1
        return out

    def hankel_singular_values(self, t: int) -> np.ndarray:
        """Singular values of Φ[t:, :t] per (batch, channel): min(N, t, L − t) of them, descending."""
        lam, B, C = self.lam, self.B, self.C
        observe = C[..., t:, :] * np.cumprod(lam[..., t:, :], axis=-2)  # O_t[i] = C_i Λ_i⋯Λ_t
        tail = np.cumprod(lam[..., t - 1 : 0 : -1, :], axis=-2)  # Λ_{t−1}⋯Λ_{j+1} for j = t−2 … 0
        reach = np.concatenate([tail[..., ::-1, :], np.ones_like(lam[..., :1, :])], axis=-2) * B[..., :t, :]
        r_obs = np.linalg.qr(observe, mode="r")
        r_reach = np.linalg.qr(reach, mode="r")
        return np.linalg.svd(r_obs @ np.swapaxes(r_reach, -1, -2), compute_uv=False)


def window_gain(phi: Phi | np.ndarray, start: int, stop: int, channel: int | None = None) -> np.ndarray:
    """Finite-horizon ℓ2 gain over tokens [start, stop): σ_max of Φ restricted to those rows and columns.

    The largest ‖y[start:stop]‖₂ / ‖x[start:stop]‖₂ over inputs x that are zero outside the window (and with the
    state empty at ``start``'s past), at the input Φ was built for.

    Parameters
    ----------
    phi : Phi or ndarray
        Per-channel (batch, channels, L, L) or full (batch, L, L, p, m).
    start, stop : int
        The window, 0 ≤ start < stop ≤ L.
    channel : int, optional
        One channel of a per-channel Φ.

    Returns
    -------
    ndarray
        (batch, channels) for a per-channel Φ; (batch,) for one channel or a full Φ (all its channels at once).

    Raises
    ------
    ShapeError
        An empty or out-of-range window, or a bad channel.
    """
    layout = _layout_of(phi)
    L = _length(phi, layout)
    start, stop = _int("start", start), _int("stop", stop)
    if not (0 <= start < stop <= L):
        raise ShapeError(f"the window [start, stop) must satisfy 0 ≤ start < stop ≤ L = {L}, got [{start}, {stop})")
    block = _select_channel(_window(phi, layout, start, stop, start, stop), layout, channel,
                            _channels(phi, layout))
    return np.linalg.norm(_as_matrices(block, layout), ord=2, axis=(-2, -1))


# ------------------------------------------------------------------------------------------- Taylor error


@dataclass
class TaylorError:
    """Softmax attention's Φ against its order-p Taylor-feature DSF.

    Attributes
    ----------
    orders : ndarray of int, shape (n_orders,)
    state_size : ndarray of int, shape (n_orders,)
        Σ_{r=0}^{p} m^r states per value channel (m = head_dim).
    rel_error : ndarray, shape (n_orders,)
        ‖Φ_p − Φ‖_F / ‖Φ‖_F over the whole batch.
    max_abs_error : ndarray, shape (n_orders,)
        max |Φ_p − Φ|.
    head_dim : int
    """

    orders: np.ndarray
    state_size: np.ndarray
    rel_error: np.ndarray
    max_abs_error: np.ndarray
    head_dim: int


def taylor_error(layer: Layer, u: Any, orders: Sequence[int]) -> TaylorError:
    """The error of softmax attention's order-p Taylor-feature DSF against its exact Φ, and the state it needs.

    Softmax's separable form needs infinitely many features; truncating exp(q·k/√m) at order p leaves
    Σ_{r≤p} m^r states per value channel. The error falls with p, fastest when |q·k|/√m is small.

    Parameters
    ----------
    layer : Layer
        A softmax attention layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.
    orders : sequence of int
        Taylor orders p ≥ 0.

    Returns
    -------
    TaylorError
        ``orders``, ``state_size``, ``rel_error``, ``max_abs_error`` (each (n_orders,)), ``head_dim``.

    Raises
    ------
    UnsupportedSystemError
        A layer other than softmax attention.
    SsmctlError
        A bad order (see ``materialize(..., features=p)``), or no orders.
    """
    if layer.record.dsf_features is None or layer.config.get("variant") != "softmax":
        raise UnsupportedSystemError(f"taylor_error compares softmax attention with its Taylor features; "
                                     f"got {layer.family} ({layer.config.get('variant')})")
    orders = list(orders)
    if not orders:
        raise SsmctlError("taylor_error needs at least one Taylor order")
    exact = np.asarray(materialize(layer, u))
    norm = np.linalg.norm(exact)
    m = int(layer.config["head_dim"])
    rel, mx = [], []
    for p in orders:
        diff = np.asarray(materialize(layer, u, features=p)) - exact
        rel.append(np.linalg.norm(diff) / norm)
        mx.append(np.abs(diff).max())
    return TaylorError(orders=np.asarray(orders, dtype=int),
                       state_size=np.asarray([sum(m**r for r in range(p + 1)) for p in orders], dtype=int),
                       rel_error=np.asarray(rel), max_abs_error=np.asarray(mx), head_dim=m)


# ------------------------------------------------------------------------------------------- Λ comparisons


@dataclass
class LambdaBounds:
    """Where the DSF transitions Λ_i of a layer lie, counted over tokens, channels and states.

    Attributes
    ----------
    family : str
        The family (and variant) label.
    lam : ndarray
        The values counted: |Λ_i| (attention from token 1 on: Λ_0 = 1 by convention; LTI: |λ|).
    count : int
    frac_inside : float
        Fraction strictly inside (0, 1).
    frac_above : float
        Fraction above 1.
    frac_one : float
        Fraction exactly 1.
    frac_zero : float
        Fraction exactly 0.
    min, max : float
    """

    family: str
    lam: np.ndarray = field(repr=False)
    count: int
    frac_inside: float
    frac_above: float
    frac_one: float
    frac_zero: float
    min: float
    max: float


def lambda_bounds(layer: Layer, u: Any = None) -> LambdaBounds:
    """Count where Λ_i lies for one layer on one input: inside (0, 1), exactly 0 or 1, above 1.

    S6, SSD, qLSTM and RG-LRU have Λ_i ∈ (0, 1) by construction (exp of a negative number, a sigmoid), except
    reversed qLSTM with α ≤ 0 (Λ ≡ 1) and float32 rounding to exactly 0 or 1; LTI families have |λ| < 1 when
    stable; attention's Λ_i = η_{i−1}/η_i is positive but exceeds 1 wherever η falls (softmax, linear), and
    normalized attention's is exp(W_η(u_{i−1} − u_i)), unbounded.

    Parameters
    ----------
    layer : Layer
        Any registered family's layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model), optional
        The layer's input (not needed by LTI layers).

    Returns
    -------
    LambdaBounds
        Fractions, count, min and max of |Λ_i| (attention: tokens 1..L−1).

    Raises
    ------
    ShapeError, NonFiniteError
        A missing or bad ``u``.
    """
    lam = np.abs(np.asarray(dsf_eigenvalues(layer, u)))
    if layer.record.attention_matrix is not None:
        lam = lam[:, 1:]  # Λ_0 = η_{−1}/η_0 is set to 1: h_{−1} = 0 makes it irrelevant
    flat = lam.reshape(-1)
    n = flat.size
    variant = layer.config.get("variant")
    return LambdaBounds(
        family=f"{layer.family}{' (' + variant + ')' if variant else ''}", lam=lam, count=int(n),
        frac_inside=float(np.mean((flat > 0) & (flat < 1))) if n else math.nan,
        frac_above=float(np.mean(flat > 1)) if n else math.nan,
        frac_one=float(np.mean(flat == 1)) if n else math.nan,
        frac_zero=float(np.mean(flat == 0)) if n else math.nan,
        min=float(flat.min()) if n else math.nan, max=float(flat.max()) if n else math.nan,
    )


def reversed_sigmoid_identity(x: Any, a: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of exp(a·softplus(x)) = σ(−x)^(−a), each computed on its own path, float64.

    S6/SSD's transition exp(Δ·a) with Δ = softplus(x) is a reversed sigmoid σ(−x) raised to the power −a;
    reversed qLSTM (the DSF paper's eq. (23)) uses the same form with power relu(α).

    Parameters
    ----------
    x : array_like
        Pre-activations.
    a : array_like
        Exponents (broadcast against ``x``); a ≤ 0 for a transition in (0, 1].

    Returns
    -------
    (ndarray, ndarray)
        exp(a·softplus(x)) (softplus as log(1 + eˣ)) and σ(−x)^(−a) (σ(−x) = 1/(1 + eˣ)).
    """
    x, a = np.asarray(x, dtype=np.float64), np.asarray(a, dtype=np.float64)
    lhs = np.exp(a * np.logaddexp(0.0, x))
    with np.errstate(over="ignore"):
        rhs = (1.0 / (1.0 + np.exp(x))) ** (-a)
    return lhs, rhs


# ---------------------------------------------------------------------------------- linear attention vs SSD


@dataclass
class SSDMatch:
    """Un-normalized linear attention and the SSD that gives the same Φ, both built at the DSF level.

    Attributes
    ----------
    attention : LTVSystem
        η ≡ 1, values = inputs (W_V = I): Λ_i = I, B_i = φ(k_i), C_i = ψ(q_i) per channel.
    ssd : LTVSystem
        SSD with x_proj rows [dt; W_B; W_C], dt weight 0, equal dt biases b = log(e − 1) (Δ ≡ 1), a = 0
        (Λ_i = exp(aΔ_i) = I), B_i = Δ_i·W_B u_i, C_i = W_C u_i.
    x_proj : ndarray, shape (1 + 2N, d)
        SSD's x_proj weight: [0; W_K; W_Q].
    dt_bias : ndarray, shape (d,)
    a : float
        SSD's scalar A (0: the limit A_log → −∞).
    max_abs_diff : float
        max |Φ_attention − Φ_ssd|.
    """

    attention: LTVSystem
    ssd: LTVSystem
    x_proj: np.ndarray
    dt_bias: np.ndarray
    a: float
    max_abs_diff: float


def _ssd_core(x_proj: np.ndarray, dt_bias: np.ndarray, a: float, u: np.ndarray) -> LTVSystem:
    """SSD's DSF in float64: [δ, b, c] = x_proj·u_i, Δ = softplus(δ + b_c), Λ = exp(aΔ)·I, B = Δb, C = c."""
    b, L, d = u.shape
    N = (x_proj.shape[0] - 1) // 2
    proj = u @ x_proj.T
    delta, bb, cc = proj[..., :1], proj[..., 1 : 1 + N], proj[..., 1 + N :]
    dt = np.logaddexp(0.0, delta + dt_bias)  # (b, L, d): one δ per token, a bias per channel
    lam = np.exp(a * dt)[..., None] * np.ones(N)
    return LTVSystem(lam=lam, B=(dt[..., None] * bb[:, :, None, :])[..., None],
                     C=np.broadcast_to(cc[:, :, None, None, :], (b, L, d, 1, N)), D=np.zeros((d, 1, 1)),
                     output="real", inputs=u[..., None])


def linear_attention_as_ssd(w_q: Any, w_k: Any, u: Any) -> SSDMatch:
    """Un-normalized linear attention with linear feature maps, and the SSD parameters giving the same Φ.

    Linear attention with η ≡ 1 has Λ_i = I and Φ_ij = ψ(q_i)·φ(k_j). SSD's b_i = W_B u_i and c_i = W_C u_i are
    linear in u (x_proj has no bias), so the two coincide only for linear feature maps ψ(q) = q = W_Q u,
    φ(k) = k = W_K u with W_V = I: then W_B = W_K, W_C = W_Q, a zero dt weight and equal dt biases
    log(e − 1) (Δ_i ≡ 1), and a = 0 (Λ_i = I). Both cores are built here at the DSF level, in float64.

    Parameters
    ----------
    w_q, w_k : array_like, shape (N, d)
        The query and key projections (no bias).
    u : array_like, shape (batch, L, d)
        The input (= the values).

    Returns
    -------
    SSDMatch
        Both cores, the SSD parameters and max |Φ_attention − Φ_ssd|.

    Raises
    ------
    ShapeError
        Shapes that do not fit.
    """
    w_q, w_k, x = (np.asarray(_np64(t), dtype=np.float64) for t in (w_q, w_k, u))
    if w_q.ndim != 2 or w_q.shape != w_k.shape or x.ndim != 3 or x.shape[-1] != w_q.shape[1]:
        raise ShapeError(f"need w_q, w_k (N, d) and u (batch, L, d); got {w_q.shape}, {w_k.shape}, {x.shape}")
    b, L, d = x.shape
    N = w_q.shape[0]
    q, k = x @ w_q.T, x @ w_k.T
    attention = LTVSystem(lam=np.ones((b, L, d, N)), B=np.broadcast_to(k[:, :, None, :, None], (b, L, d, N, 1)),
                          C=np.broadcast_to(q[:, :, None, None, :], (b, L, d, 1, N)), D=np.zeros((d, 1, 1)),
                          output="real", inputs=x[..., None])
    x_proj = np.concatenate([np.zeros((1, d)), w_k, w_q])
    dt_bias = np.full(d, math.log(math.e - 1.0))
    ssd = _ssd_core(x_proj, dt_bias, 0.0, x)
    diff = np.abs(np.asarray(materialize(attention)) - np.asarray(materialize(ssd))).max()
    return SSDMatch(attention=attention, ssd=ssd, x_proj=x_proj, dt_bias=dt_bias, a=0.0, max_abs_diff=float(diff))


def ssd_bilinear_fit(target: Any, u: Any) -> tuple[np.ndarray, float]:
    """Least-squares fit of a unit-transition SSD's Φ to a target attention matrix; the relative residual.

    With Λ_i = I and Δ_i ≡ 1 (the only SSD setting whose transitions match η ≡ 1), SSD's Φ_ij = c_i·b_j =
    u_iᵀ W_Cᵀ W_B u_j is a bilinear form uᵢᵀ M u_j. Fitting M over every causal pair (j ≤ i) is linear least
    squares; a nonzero residual means no such SSD gives the target. (More generally: c_i = W_C u_i vanishes at
    a zero token, so any SSD's Φ row is 0 off the diagonal there, while elu + 1 attention's is positive.)

    Parameters
    ----------
    target : array_like, shape (batch, L, L)
        The attention matrix to match (lower triangle used).
    u : array_like, shape (batch, L, d)
        The input.

    Returns
    -------
    (ndarray, float)
        The fitted M (d, d) and ‖fit − target‖ / ‖target‖ over the causal pairs.

    Raises
    ------
    ShapeError
        Shapes that do not fit.
    """
    T, x = np.asarray(target, dtype=np.float64), np.asarray(_np64(u), dtype=np.float64)
    if T.ndim != 3 or x.ndim != 3 or T.shape != (x.shape[0], x.shape[1], x.shape[1]):
        raise ShapeError(f"need target (batch, L, L) and u (batch, L, d); got {T.shape}, {x.shape}")
    b, L, d = x.shape
    ii, jj = np.tril_indices(L)
    design = np.einsum("bpi,bpj->bpij", x[:, ii], x[:, jj]).reshape(-1, d * d)
    rhs = T[:, ii, jj].reshape(-1)
    coef, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    residual = np.linalg.norm(design @ coef - rhs) / np.linalg.norm(rhs)
    return coef.reshape(d, d), float(residual)


# ------------------------------------------------------------------------------------------- explainability


def _aggregate(absval: np.ndarray, axes: tuple[int, ...], aggregate: str) -> np.ndarray:
    if aggregate == "mean":
        return absval.mean(axis=axes)
    if aggregate == "sum":
        return absval.sum(axis=axes)
    if aggregate == "max":
        return absval.max(axis=axes)
    return np.sqrt((absval**2).sum(axis=axes))


def _row_normalize(m: np.ndarray) -> np.ndarray:
    total = m.sum(axis=-1, keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def attention_map(phi: Phi | np.ndarray, aggregate: str = "mean", normalize: str | None = None) -> np.ndarray:
    """A token-to-token map of any layer: |Φ_ij| with its channels aggregated, optionally row-normalized.

    Parameters
    ----------
    phi : Phi or ndarray
        Per-channel (batch, channels, L, L) — aggregated over channels — or full (batch, L, L, p, m) —
        aggregated over (p, m); a lazy Phi is read in row blocks.
    aggregate : {"mean", "sum", "max", "l2"}, default "mean"
        How |Φ_ij| of the channels combine ("l2": the root of the sum of squares, the Frobenius norm of the
        block).
    normalize : {None, "row"}, default None
        "row": each row divided by its sum (rows that are all zero stay zero).

    Returns
    -------
    ndarray, shape (batch, L, L)
        Non-negative, zero above the diagonal for a causal layer.

    Raises
    ------
    UnknownNameError
        An unknown ``aggregate`` or ``normalize``.
    ShapeError
        A Φ of another shape.
    """
    if aggregate not in AGGREGATES:
        raise unknown_name("attention_map aggregate", aggregate, AGGREGATES)
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise unknown_name("attention_map normalize", normalize, NORMALIZATIONS)
    layout = _layout_of(phi)
    L = _length(phi, layout)
    axes = (1,) if layout == "per_channel" else (3, 4)
    if isinstance(phi, Phi) and phi.lazy:
        out = np.empty((phi.shape[0], L, L))
        for r0, r1, block in phi.row_blocks():
            out[:, r0:r1] = _aggregate(np.abs(block), axes, aggregate)
    else:
        out = _aggregate(np.abs(_window(phi, layout, 0, L, 0, L)), axes, aggregate)
    return _row_normalize(out) if normalize == "row" else out


def rollout(maps: Sequence[np.ndarray], residual: float = 0.5) -> np.ndarray:
    """Attention rollout across layers (Abnar & Zuidema 2020), the residual stream as the identity.

    Each layer's map is row-normalized, mixed with the identity for the residual connection,
    Â_l = (1 − residual)·rownorm(A_l) + residual·I, row-normalized again, and the layers are composed:
    R = Â_{last} ⋯ Â_{first}. Row i of R: how much each input token reaches output token i through the stack.

    Parameters
    ----------
    maps : sequence of ndarray, each (batch, L, L)
        Per-layer non-negative maps (e.g. :func:`attention_map`), first layer first.
    residual : float, default 0.5
        Weight of the identity (0.5 as Abnar & Zuidema; 0 composes the maps alone).

    Returns
    -------
    ndarray, shape (batch, L, L)
        Rows sum to 1 (with ``residual`` = 0, a row that is zero in some map stays zero).

    Raises
    ------
    ShapeError
        No maps, maps of different shapes, or negative entries.
    SsmctlError
        ``residual`` outside [0, 1].
    """
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    if not maps:
        raise ShapeError("rollout needs at least one map")
    shape = maps[0].shape
    if len(shape) != 3 or shape[1] != shape[2] or any(m.shape != shape for m in maps):
        raise ShapeError(f"rollout needs maps of one shape (batch, L, L); got {[m.shape for m in maps]}")
    if any((m < 0).any() for m in maps):
        raise ShapeError("rollout needs non-negative maps (take attention_map of Φ, which uses |Φ|)")
    if any(not np.isfinite(m).all() for m in maps):
        raise NonFiniteError("rollout: a map contains NaN or Inf")
    if not 0.0 <= residual <= 1.0:
        raise SsmctlError(f"residual must be in [0, 1], got {residual!r}")
    eye = np.eye(shape[1])
    out = np.broadcast_to(eye, shape).copy()
    for m in maps:
        a = _row_normalize((1.0 - residual) * _row_normalize(m) + residual * eye)
        out = a @ out
    return out


def attribution(phi_or_map: Phi | np.ndarray, token: int, *, inputs: Any = None, aggregate: str = "l2") -> np.ndarray:
    """How much each input token contributes to output token ``token``.

    Given Φ and the inputs it multiplies, the contribution of input j to output i is exact: Φ_ij x_j (per
    channel; Σ_j Φ_ij x_j = y_i − offset_i), and its size over channels is aggregated. Given Φ alone, |Φ_ij|
    aggregated (:func:`attention_map`'s row); given a map (batch, L, L), its row.

    Parameters
    ----------
    phi_or_map : Phi or ndarray
        A Phi (its ``inputs`` used unless ``inputs`` is given), a per-channel or full Φ array, or a map
        (batch, L, L) such as :func:`attention_map` or :func:`rollout` returns.
    token : int
        The output token i (negative counts from the end).
    inputs : array_like, optional
        What Φ multiplies: (batch, L, channels) per channel, (batch, L, m) full.
    aggregate : {"mean", "sum", "max", "l2"}, default "l2"
        How the channels' |contributions| combine.

    Returns
    -------
    ndarray, shape (batch, L)
        Zero after ``token`` for a causal layer.

    Raises
    ------
    ShapeError
        A token out of range or inputs of the wrong shape.
    UnknownNameError
        An unknown ``aggregate``.
    """
    if aggregate not in AGGREGATES:
        raise unknown_name("attribution aggregate", aggregate, AGGREGATES)
    if not isinstance(phi_or_map, Phi) and np.ndim(phi_or_map) == 3:
        m = np.asarray(phi_or_map, dtype=np.float64)
        return m[:, _token(token, m.shape[1])]
    layout = _layout_of(phi_or_map)
    L = _length(phi_or_map, layout)
    i = _token(token, L)
    row = _window(phi_or_map, layout, i, i + 1, 0, L)  # (b, ch, 1, L) or (b, 1, L, p, m)
    if inputs is None and isinstance(phi_or_map, Phi):
        inputs = phi_or_map.inputs
    if inputs is None:
        axes = (1,) if layout == "per_channel" else (2, 3)
        return _aggregate(np.abs(row[:, :, 0] if layout == "per_channel" else row[:, 0]), axes, aggregate)
    x = np.asarray(_np64(inputs), dtype=np.float64)
    width = row.shape[1] if layout == "per_channel" else row.shape[-1]
    if x.shape != (row.shape[0], L, width):
        raise ShapeError(f"inputs must be (batch, L, {width}) = {(row.shape[0], L, width)}, got {x.shape}")
    if layout == "per_channel":
        contrib = row[:, :, 0] * x.transpose(0, 2, 1)  # (b, ch, L)
        return _aggregate(np.abs(contrib), (1,), aggregate)
    contrib = np.einsum("bjpm,bjm->bjp", row[:, 0], x)  # (b, L, p)
    return _aggregate(np.abs(contrib), (2,), aggregate)


def _token(token: int, L: int) -> int:
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not -L <= token < L:
        raise ShapeError(f"token {token!r} outside the sequence of length {L}")
    return int(token) % L
