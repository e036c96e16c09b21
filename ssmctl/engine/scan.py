"""Chunked parallel scan of diagonal selective state-space recurrences, and its sequential reference twin.

The recurrence shared by S6/Mamba, Mamba-2 and RG-LRU, with states laid out (batch, L, H, P, N)::

    h_t[h, p, n] = exp(dt_t[h] · A[h, n]) · h_{t-1}[h, p, n] + v_t[h, p] · B_t[g(h), n]
    y_t[h, p]    = Σ_n C_t[g(h), n] · h_t[h, p, n]

H channels (Mamba: d_inner; Mamba-2: heads; RG-LRU: width) each with P inputs sharing one decay (Mamba-2: the
head dimension; P = 1 otherwise), N states; A is (H, N) or (H, 1) (one decay per head); B, C are shared by the
H / G channels of each of G groups (G = 1 for Mamba-1). ``v`` already holds the step size where the family
multiplies it in (Mamba: v = Δ_t x_t, Euler-discretized B).

:func:`selective_scan` splits the tokens into blocks of ``block`` tokens. Inside a block it uses cumulative
sums of log Ā (G_t = Σ dt over the block, log-decay A·G_t) so that h_t = e^{A G_t}(h_in + Σ_{s≤t} e^{−A G_s} b_s)
is a few tensor operations and one small triangular matrix product (the exponents measured from the middle of
each block's range, which doubles the decay a block can hold); across blocks a log-depth (Hillis–Steele)
scan carries the states. No Python loop runs over tokens; with ``slab`` (CPU) the tokens are taken in cache-sized
slabs, a short loop across slabs carrying the state. The factor e^{−A G_s} overflows when a state decays by
more than e^{−2K} inside one block (fast-forgetting channels of trained models); those (block, channel) columns
are recomputed exactly with the log-depth scan, so the result is exact for every input.
:func:`selective_scan_ref` is the plain sequential float64 recurrence the tests compare against.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from ._tensor_cache import lru_get, tril_ones
from ..errors import NonFiniteError, ShapeError, SsmctlError
from .native import native_scan, native_status
from .ssd import ssd_default_chunk, ssd_preferred, ssd_scan
from .triton_scan import triton_scan, triton_status

__all__ = ["ScanResult", "selective_scan", "selective_scan_ref", "associative_scan", "SCAN_BACKENDS"]

SCAN_BACKENDS = ("auto", "tensor", "native", "ssd", "triton")  # see selective_scan's ``backend``

# Largest −(log-decay inside one block) for which e^{+K} b stays finite: float32 overflows at e^{88.7},
# and b up to ~1e12 still fits below 3.4e38 with K = 60. float64 has e^{709}.
_LOG2E = 1.4426950408889634
_SAFE_LOG_RANGE = {torch.float32: 60.0, torch.float64: 600.0}


@dataclass
class ScanResult:
    """Output of a scan over one sequence (or one chunk of it).

    Attributes
    ----------
    y : Tensor, shape (batch, L, H, P)
    h_last : Tensor, shape (batch, H, P, N)
        State after the last token (pass it as ``h0`` to continue with the next chunk).
    states : Tensor, shape (batch, L, H, P, N), or None
        Every h_t, when asked for with ``return_states=True``.
    n_fallback : int
        (block, channel) columns recomputed by the exact log-depth path (the fast form would overflow there).
    backend : str
        "tensor" (the cumulative-sum form), "native" (the compiled CPU kernel), "ssd" (the matrix form of
        :mod:`ssmctl.engine.ssd`), "triton" (the fused GPU kernel) or "reference" (the twin).
    """

    y: torch.Tensor
    h_last: torch.Tensor
    states: torch.Tensor | None = None
    n_fallback: int = 0
    backend: str = "tensor"


def associative_scan(a: torch.Tensor, b: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of x_t = a_t x_{t−1} + b_t along ``dim`` in ⌈log2 n⌉ vectorized steps (Hillis–Steele).

    Parameters
    ----------
    a : Tensor, broadcastable to ``b``'s shape except that it must have ``b``'s length along ``dim``
        The multipliers a_t.
    b : Tensor
        The increments b_t.
    dim : int
        The axis of t.

    Returns
    -------
    (a_cum, b_cum) : Tensors
        x_t = a_cum_t · x_{−1} + b_cum_t for every t: a_cum is the running product of a, b_cum the state from
        a zero start. Only products and sums of the inputs are formed, so the scan is stable for |a| ≤ 1.
    """
    a = a.clone()
    b = b.expand(torch.broadcast_shapes(a.shape, b.shape)).clone()
    n = b.shape[dim]
    step = 1
    while step < n:
        a_hi, a_lo = a.narrow(dim, step, n - step), a.narrow(dim, 0, n - step)
        b_hi, b_lo = b.narrow(dim, step, n - step), b.narrow(dim, 0, n - step)
        # Both updates read the previous level only: compute them before writing either.
        new_b = torch.addcmul(b_hi, a_hi, b_lo)
        new_a = a_hi * a_lo
        b_hi.copy_(new_b)
        a_hi.copy_(new_a)
        step *= 2
    return a, b


def _check(dt, A, v, B, C, h0) -> tuple[int, int, int, int, int, int]:
    if dt.ndim != 3 or v.ndim != 4 or B.ndim != 4 or C.ndim != 4 or A.ndim != 2:
        raise ShapeError(
            "selective_scan needs dt (batch, L, H), A (H, N or 1), v (batch, L, H, P), B and C (batch, L, G, N); "
            f"got dt {tuple(dt.shape)}, A {tuple(A.shape)}, v {tuple(v.shape)}, B {tuple(B.shape)}, "
            f"C {tuple(C.shape)}"
        )
    batch, L, H, P = v.shape
    G, N = B.shape[2], B.shape[3]
    if tuple(dt.shape) != (batch, L, H) or A.shape[0] != H or A.shape[1] not in (1, N):
        raise ShapeError(f"dt must be (batch, L, H) = {(batch, L, H)} and A (H, N or 1) = ({H}, {N} or 1); "
                         f"got dt {tuple(dt.shape)}, A {tuple(A.shape)}")
    if tuple(C.shape) != tuple(B.shape) or B.shape[:2] != (batch, L) or H % G:
        raise ShapeError(f"B and C must both be (batch, L, G, N) with G dividing H = {H}; "
                         f"got B {tuple(B.shape)}, C {tuple(C.shape)}")
    if h0 is not None and tuple(h0.shape) != (batch, H, P, N):
        raise ShapeError(f"h0 must have shape (batch, H, P, N) = {(batch, H, P, N)}, got {tuple(h0.shape)}")
    return batch, L, H, P, G, N


def selective_scan(
    dt: torch.Tensor,
    A: torch.Tensor,
    v: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    block: int = 8,
    slab: int | None = None,
    return_states: bool = False,
    backend: str = "auto",
    ssd_chunk: int | None = None,
    check: bool = True,
) -> ScanResult:
    """Chunked parallel scan of the selective recurrence (module docstring), in ``v``'s dtype and device.

    Parameters
    ----------
    dt : Tensor, shape (batch, L, H)
        Non-negative rates (Δ_t); the per-step log-decay is dt_t[h]·A[h, n].
    A : Tensor, shape (H, N) or (H, 1)
        Non-positive continuous-time decay rates.
    v : Tensor, shape (batch, L, H, P)
    B, C : Tensor, shape (batch, L, G, N)
    h0 : Tensor, shape (batch, H, P, N), optional
        State before the first token (zeros by default).
    block : int
        Tokens per block of the cumulative-sum form (results do not depend on it).
    slab : int, optional
        Process the tokens in consecutive slabs of this many tokens, carrying the state from one to the next,
        so that the (slab × H × P × N) temporaries stay in cache (CPU); None: all tokens at once (GPU).
    return_states : bool
        Also return every state h_t (memory L·H·P·N: ask only for short windows).
    backend : {"auto", "tensor", "native", "ssd", "triton"}
        "tensor": the cumulative-sum form above, on any device. "native": the compiled sequential CPU kernel
        (:mod:`ssmctl.engine.native`; an error when it is unavailable or the tensors are not float32/64 on the
        CPU). "ssd": Mamba-2's matrix form (:mod:`ssmctl.engine.ssd`; needs A of shape (H, 1)). "triton": the
        fused GPU kernel (:mod:`ssmctl.engine.triton_scan`; float32/64 CUDA tensors, or CPU tensors in Triton's
        interpreter; an error otherwise). "auto": SSD where :func:`~ssmctl.engine.ssd.ssd_preferred` says so (a
        GPU, one decay per head, P > 1), else triton for float32/64 CUDA tensors when triton is installed, else
        native for float32/64 CPU tensors when it is available, else tensor. All give the recurrence's result;
        ``block`` and ``slab`` only shape the tensor form.
    ssd_chunk : int, optional
        Tokens per chunk of the SSD form (default :func:`~ssmctl.engine.ssd.ssd_default_chunk` of the device).
    check : bool, default True
        Check on the host that dt ≥ 0 (an error otherwise). That check waits for the device: callers whose rates
        are non-negative by construction (softplus, sigmoid) pass False to keep a GPU's queue flowing.

    Returns
    -------
    ScanResult
    """
    batch, L, H, P, G, N = _check(dt, A, v, B, C, h0)
    if L == 0:
        raise ShapeError("selective_scan needs at least one token")
    if block < 1:
        raise ShapeError(f"block must be a positive integer, got {block}")
    dtype = v.dtype
    dt, A, B, C = (t.to(dtype) for t in (dt, A, B, C))
    if check and bool((dt < 0).any()):
        raise SsmctlError("selective_scan: dt must be non-negative (a step size or rate)")
    if backend not in SCAN_BACKENDS:
        raise SsmctlError(f"unknown scan backend {backend!r}; known: {', '.join(map(repr, SCAN_BACKENDS))}")
    if backend == "ssd" or (backend == "auto" and ssd_preferred(v.device, A.shape[1], P)):
        chunk = ssd_default_chunk(v.device) if ssd_chunk is None else ssd_chunk
        y, h_last, states = ssd_scan(dt, A, v, B, C, h0, chunk=chunk, return_states=return_states)
        return ScanResult(y=y, h_last=h_last, states=states, backend="ssd")
    # the kernels: each returns None where it cannot run (then "auto" goes on, and asking for it is an error)
    kernels = (("triton", triton_scan, triton_status, v.device.type == "cuda",
                "float32/float64 tensors on a CUDA device (or TRITON_INTERPRET=1 for CPU tensors)"),
               ("native", native_scan, native_status, True, "float32/float64 tensors on the CPU"))
    for name, kernel, status, auto, needs in kernels:
        if backend == name or (backend == "auto" and auto):
            fast = kernel(dt, A, v, B, C, h0, return_states)
            if fast is not None:
                y, h_last, states = fast
                return ScanResult(y=y, h_last=h_last, states=states, backend=name)
            if backend == name:
                raise SsmctlError(f"the {name} scan cannot run here ({status()}); it needs {needs}, got {v.dtype} "
                                  f"on {v.device}; use backend='auto' or 'tensor'")
    if slab is None or slab >= L:
        return _scan_slab(dt, A, v, B, C, h0, block, return_states)
    if slab < 1:
        raise ShapeError(f"slab must be a positive integer, got {slab}")
    y = v.new_empty(batch, L, H, P)
    states = v.new_empty(batch, L, H, P, N) if return_states else None
    h, n_fallback = h0, 0
    for t0 in range(0, L, slab):  # a short recurrence across slabs, not over tokens
        t1 = min(L, t0 + slab)
        part = _scan_slab(dt[:, t0:t1], A, v[:, t0:t1], B[:, t0:t1], C[:, t0:t1], h, block, return_states)
        y[:, t0:t1] = part.y
        if states is not None:
            states[:, t0:t1] = part.states
        h, n_fallback = part.h_last, n_fallback + part.n_fallback
    return ScanResult(y=y, h_last=h, states=states, n_fallback=n_fallback)


def _scan_slab(dt, A, v, B, C, h0, block: int, return_states: bool) -> ScanResult:
    """One pass of the cumulative-sum form over all tokens given (see :func:`selective_scan`).

    Internally the states are laid out (batch, blocks, Ts, N, H, P): the output's sum over N then runs over
    an outer axis, which vectorizes (a sum over a short innermost axis does not).
    """
    batch, L, H, P = v.shape
    G, N = B.shape[2], B.shape[3]
    dtype, dev = v.dtype, v.device
    Na = A.shape[1]
    Hg = H // G
    Ts = min(block, L)
    nb = -(-L // Ts)
    pad = nb * Ts - L
    if pad:
        # Padded tokens have rate 0 (decay 1) and input 0: they leave the state unchanged.
        dt, v, B, C = (torch.nn.functional.pad(t, (0, 0) * (t.ndim - 2) + (0, pad)) for t in (dt, v, B, C))
    dtb = dt.view(batch, nb, Ts, H)
    vb = v.view(batch, nb, Ts, H, P)
    Bb = B.view(batch, nb, Ts, G, N)
    Cb = C.view(batch, nb, Ts, G, N)

    # Cumulative log-decay inside each block, measured from the middle of the block's range R = G_end / 2 so
    # that both e^{A(G_t − R)} and e^{−A(G_s − R)} stay within e^{±|A|·G_end/2}: E (batch, nb, Ts, Na, H, 1).
    Gc = torch.cumsum(dtb, dim=2)
    half = 0.5 * Gc[:, :, -1]  # (batch, nb, H)
    # dt ≥ 0 makes the log-decay monotone in t, so its block-end value bounds the whole block.
    unsafe = (half[..., None] * A).abs_() > _SAFE_LOG_RANGE.get(dtype, 60.0)  # (batch, nb, H, Na)
    # Temporaries are reused between calls of the same shape (written with out=): allocating them each time
    # costs as much as the arithmetic on CPU.
    E_, W_, Hl_ = _workspace((batch, nb, Ts, H, P, N, Na), dtype, dev, fresh_states=return_states)
    A2T = (A * _LOG2E).T.contiguous()  # (Na, H): contiguous along H, the innermost axis of E
    E = torch.mul((Gc - half[:, :, None])[:, :, :, None, :], A2T, out=E_).exp2_().unsqueeze(-1)  # exp2: 2× exp

    # b_s e^{−A(G_s − R)}, summed over s ≤ t by a lower-triangular matrix product, then back to states.
    W = torch.mul(Bb.transpose(3, 4)[..., None, None], vb.view(batch, nb, Ts, 1, G, Hg, P),
                  out=W_.view(batch, nb, Ts, N, G, Hg, P)).view(batch, nb, Ts, N, H, P)
    W.div_(E)
    Hloc = torch.matmul(tril_ones(Ts, dtype, dev), W.view(batch * nb, Ts, N * H * P),
                        out=Hl_.view(batch * nb, Ts, N * H * P)).view(batch, nb, Ts, N, H, P)
    Hloc.mul_(E)  # block-local states Σ_{s≤t} e^{A(G_t − G_s)} b_s

    n_fallback = int(unsafe.sum())
    fallback = _exact_columns(Hloc, unsafe, dtb, A, vb, Bb, Hg) if n_fallback else None

    # Carry across blocks: state entering block j = Π decays · h0 + scanned block-end states.
    h0n = None if h0 is None else h0.to(dtype).permute(0, 3, 1, 2)  # (batch, N, H, P)
    a_blk = torch.exp2(Gc[:, :, -1, None, :] * A2T).unsqueeze(-1)  # e^{A G_end}, (batch, nb, Na, H, 1)
    if nb > 1:
        a_cum, b_cum = associative_scan(a_blk, Hloc[:, :, -1], dim=1)
    else:
        a_cum, b_cum = a_blk, Hloc[:, :, -1]
    if h0n is not None:
        b_cum = b_cum + a_cum * h0n[:, None]
    if nb > 1 or h0n is not None:
        h_in = torch.zeros(batch, nb, N, H, P, dtype=dtype, device=dev)
        if h0n is not None:
            h_in[:, 0] = h0n
        h_in[:, 1:] = b_cum[:, :-1]
        # e^{A G_t} h_in = E_t · (e^{A R} h_in): the reference factor goes on the (small) entering state
        Hloc.addcmul_(E, h_in[:, :, None] * torch.exp2(half[:, :, None, :] * A2T).unsqueeze(-1)[:, :, None])
        if fallback is not None:
            # E over/underflows in the fallback columns: add their entering state there with e^{A G_t} itself
            bi, ji, hi, local = fallback
            decay = torch.exp(dtb.permute(0, 1, 3, 2)[bi, ji, hi].cumsum(-1)[..., None] * A[hi][:, None, :])
            entering = h_in.permute(0, 1, 3, 4, 2)[bi, ji, hi]  # (n, P, N)
            Hloc.permute(0, 1, 4, 2, 5, 3)[bi, ji, hi] = local + decay[:, :, None, :] * entering[:, None]
    h_last = b_cum[:, -1].permute(0, 2, 3, 1).contiguous()  # (batch, H, P, N)

    # y_t[h, p] = Σ_n C_t[g(h), n] h_t[h, p, n]; W's storage is free again and holds the product.
    prod = torch.mul(Hloc.view(batch, nb, Ts, N, G, Hg, P), Cb.transpose(3, 4)[..., None, None],
                     out=W_.view(batch, nb, Ts, N, G, Hg, P))
    y = prod.sum(3).reshape(batch, nb * Ts, H, P)[:, :L]
    states = Hloc.view(batch, nb * Ts, N, H, P)[:, :L].permute(0, 1, 3, 4, 2) if return_states else None
    return ScanResult(y=y, h_last=h_last, states=states, n_fallback=n_fallback)


# chunk tails and windows bring a few other shapes than the steady one: keep the set small
_WORKSPACE: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()


def _workspace(dims: tuple[int, ...], dtype: torch.dtype, device: torch.device, fresh_states: bool):
    """Scratch tensors for E (…, Na, H), W and the states (…, N, H, P), kept for the last few shapes."""
    batch, nb, Ts, H, P, N, Na = dims
    bufs = lru_get(_WORKSPACE, (dims, dtype, device), lambda: (
        torch.empty(batch, nb, Ts, Na, H, dtype=dtype, device=device),
        torch.empty(batch, nb, Ts, N, H, P, dtype=dtype, device=device),
        torch.empty(batch, nb, Ts, N, H, P, dtype=dtype, device=device)), 4)
    if fresh_states:  # the caller keeps the states: they must not be overwritten by the next call
        return bufs[0], bufs[1], torch.empty_like(bufs[2])
    return bufs


def _exact_columns(Hloc, unsafe, dtb, A, vb, Bb, Hg):
    """Recompute in place the block-local states of (block, channel) columns whose decay overflows the fast form.

    ``Hloc`` is laid out (batch, nb, Ts, N, H, P). Returns the rows (batch, block, channel indices) and their
    local states (n, Ts, P, N).
    """
    Na = A.shape[1]
    bi, ji, hi = unsafe.any(-1).nonzero(as_tuple=True)  # (batch, block, channel) triples
    a = torch.exp(dtb.permute(0, 1, 3, 2)[bi, ji, hi][..., None] * A[hi][:, None, :])  # (n, Ts, Na)
    v = vb.permute(0, 1, 3, 2, 4)[bi, ji, hi]  # (n, Ts, P)
    Bsel = Bb.permute(0, 1, 3, 2, 4)[bi, ji, hi // Hg]  # (n, Ts, N)
    b = v[..., None] * Bsel[:, :, None, :]  # (n, Ts, P, N)
    _, h = associative_scan(a.view(a.shape[0], a.shape[1], 1, Na), b, dim=1)
    Hloc.permute(0, 1, 4, 2, 5, 3)[bi, ji, hi] = h
    return bi, ji, hi, h


def selective_scan_ref(
    dt: torch.Tensor,
    A: torch.Tensor,
    v: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor | None = None,
) -> ScanResult:
    """The same recurrence as :func:`selective_scan`, one token at a time in float64 (the reference twin).

    Shapes as in :func:`selective_scan`; every output is float64 on the inputs' device, ``states`` included.

    Parameters
    ----------
    dt : Tensor, shape (batch, L, H)
        Rates Δ_t; the per-step log-decay is dt_t[h]·A[h, n].
    A : Tensor, shape (H, N) or (H, 1)
        Continuous-time decay rates.
    v : Tensor, shape (batch, L, H, P)
        The scan's inputs.
    B, C : Tensor, shape (batch, L, G, N)
        Input and output vectors; head h reads group h // (H/G).
    h0 : Tensor, shape (batch, H, P, N), optional
        State before the first token (zeros by default).

    Returns
    -------
    ScanResult
        y (batch, L, H, P), h_last (batch, H, P, N), states (batch, L, H, P, N), backend ``"reference"``.

    Raises
    ------
    ShapeError
        Shapes that do not fit together (as :func:`selective_scan` checks them).
    NonFiniteError
        NaN or Inf in dt, A, v, B or C.
    """
    batch, L, H, P, G, N = _check(dt, A, v, B, C, h0)
    f64 = torch.float64
    dt, A, v, B, C = (t.to(f64) for t in (dt, A, v, B, C))
    for name, t in (("dt", dt), ("A", A), ("v", v), ("B", B), ("C", C)):
        if not torch.isfinite(t).all():
            raise NonFiniteError(f"selective_scan_ref: {name} contains NaN or Inf")
    Hg = H // G
    Bh = B.repeat_interleave(Hg, dim=2)  # (batch, L, H, N)
    Ch = C.repeat_interleave(Hg, dim=2)
    h = torch.zeros(batch, H, P, N, dtype=f64, device=v.device) if h0 is None else h0.to(f64).clone()
    ys, hs = [], []
    for t in range(L):
        a = torch.exp(dt[:, t, :, None] * A)[:, :, None, :]  # (batch, H, 1, N or 1)
        h = a * h + v[:, t, :, :, None] * Bh[:, t, :, None, :]
        ys.append((h * Ch[:, t, :, None, :]).sum(-1))
        hs.append(h)
    return ScanResult(y=torch.stack(ys, 1), h_last=h, states=torch.stack(hs, 1), backend="reference")
