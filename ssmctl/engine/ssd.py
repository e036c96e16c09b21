"""Mamba-2's scan in its matrix form (SSD, state-space duality): chunks of tokens as small matrix products.

For heads with one scalar decay each (Mamba-2), the recurrence of :mod:`ssmctl.engine.scan`

    h_t[h] = exp(dt_t[h]·A[h]) · h_{t−1}[h] + v_t[h] B_t[g(h)]ᵀ        (h_t[h] is P × N)
    y_t[h] = h_t[h] C_t[g(h)]

unrolls inside a chunk of l tokens into y = (L ∘ C Bᵀ) v + (decay from the chunk start) · C h_in, with
L[t, s] = exp(Σ_{s<k≤t} dt_k A) for s ≤ t and 0 above the diagonal: a masked "attention" matrix per head and
chunk. The exponents are segment sums of the log-decays formed directly (a masked cumulative sum, not a
difference of two running sums, which would cancel on long chunks), so every factor lies in [0, 1] and nothing
overflows however fast a head forgets. Each chunk's contribution to the state, Σ_s exp(Σ_{s<k≤l} dt_k A) v_s B_sᵀ,
is one more product; the states entering the chunks follow from the same segment-sum construction one level up
(chunks instead of tokens, the initial state as chunk −1), and a last product adds their decayed effect to every
token's output. All work is batched matrix products over (batch, heads, chunks): memory per token is
O(heads · (l + P) + groups · (l + N)), plus one P × N state per head and chunk, instead of the
O(heads · P · N) per token of the element-wise scan.

Matrix products spread a NaN to every row they touch (0·NaN), earlier tokens and chunks of the same sequence
included: a strictly causal scan (``selective_scan(..., backend="native" or "tensor", block=1)``, what the
driver runs to report where a NaN starts) locates it.
"""

from __future__ import annotations

import torch

from ..errors import ShapeError

__all__ = ["ssd_scan", "ssd_default_chunk", "ssd_preferred", "ssd_elements_per_token"]


def ssd_default_chunk(device: torch.device) -> int:
    """Tokens per SSD chunk: 256 on a GPU (Mamba-2's own choice), 64 on the CPU (measured: ``benchmarks/ssd.py``).

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    int
    """
    return 256 if device.type == "cuda" else 64


def ssd_preferred(device: torch.device, decays_per_channel: int, inputs_per_channel: int) -> bool:
    """Whether ``backend="auto"`` runs the SSD form: on a GPU, for heads with one scalar decay and several inputs.

    The matrix form needs one decay per head (A of shape (H, 1)); it pays off when a head's P inputs share it
    (Mamba-2, P = head dim), not for one-input channels (RG-LRU). On the CPU the compiled sequential kernel is
    as fast or faster (SSD at 80-90 % of its speed at 130m size, ``benchmarks/ssd.py``), and "auto" keeps it.

    Parameters
    ----------
    device : torch.device
        Where the scan runs.
    decays_per_channel : int
        A's second axis (1: one decay per head).
    inputs_per_channel : int
        P, the inputs (head dimension) sharing each decay.

    Returns
    -------
    bool
    """
    return device.type == "cuda" and decays_per_channel == 1 and inputs_per_channel > 1


def ssd_elements_per_token(heads: int, head_dim: int, n_state: int, groups: int, chunk: int) -> int:
    """Numbers the SSD form holds per token of one sequence (the driver sizes its chunks of tokens by it).

    Parameters
    ----------
    heads, head_dim, n_state, groups : int
        H, P, N and G of the layer.
    chunk : int
        Tokens per SSD chunk.

    Returns
    -------
    int
        The masked matrices (heads and groups × chunk), inputs and outputs (2 × heads × P), B and C, and one
        state per head and chunk spread over its tokens.
    """
    return heads * (2 * chunk + 2 * head_dim) + groups * (chunk + 2 * n_state) + -(-heads * head_dim * n_state // chunk)


def _segsum(x: torch.Tensor) -> torch.Tensor:
    """S[..., t, s] = Σ_{s<k≤t} x[..., k] for s ≤ t, −inf above the diagonal; x (..., T) → (..., T, T).

    Each entry is a sum over its own segment (a masked cumulative sum), so small exponents of late tokens do not
    come out of the cancellation of two large running sums. Formed as S[s, t] with the sum running along the
    contiguous last axis (three times faster than down the columns), returned transposed (a view).
    """
    T = x.shape[-1]
    later = torch.ones(T, T, dtype=torch.bool, device=x.device).triu_(1)  # [s, k]: k > s
    S = x[..., None, :].expand(*x.shape, T).masked_fill(~later, 0.0).cumsum_(-1)  # [s, t]
    return S.transpose(-1, -2).masked_fill_(later, -torch.inf)  # [t, s]: s > t is above the diagonal


def ssd_scan(
    dt: torch.Tensor,
    A: torch.Tensor,
    v: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    chunk: int = 64,
    return_states: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The scalar-decay selective scan in SSD form (module docstring), in ``v``'s dtype and on its device.

    The arguments are :func:`~ssmctl.engine.scan.selective_scan`'s, which checks them and calls this with
    ``backend="ssd"``; A must hold one decay per head.

    Parameters
    ----------
    dt : Tensor, shape (batch, L, H)
        Non-negative rates; the per-token log-decay of head h is dt_t[h]·A[h, 0].
    A : Tensor, shape (H, 1)
        Non-positive decay rate per head.
    v : Tensor, shape (batch, L, H, P)
        Inputs, step size included (Mamba-2: Δ_t x_t).
    B, C : Tensor, shape (batch, L, G, N)
        Shared by the H / G heads of each group.
    h0 : Tensor, shape (batch, H, P, N), optional
        State before the first token (zeros by default).
    chunk : int, default 64
        Tokens per chunk (any L: the last chunk is padded with tokens that leave the state unchanged).
    return_states : bool, default False
        Also return every h_t (memory L·H·P·N).

    Returns
    -------
    y : Tensor, shape (batch, L, H, P)
    h_last : Tensor, shape (batch, H, P, N)
    states : Tensor, shape (batch, L, H, P, N), or None

    Notes
    -----
    The step between chunks is one product with an (L/chunk + 1)² decay matrix per head: its cost grows with the
    square of the number of chunks, small for the driver's calls (16 chunks of 256 tokens at Mamba-2 130m size on
    a GPU) but not for one call over a whole long sequence: cut such a sequence into calls passing ``h_last`` on.
    """
    batch, L, H, P = v.shape
    G, N = B.shape[2], B.shape[3]
    if A.shape != (H, 1):
        raise ShapeError(f"the SSD form needs one decay per head, A of shape ({H}, 1); got {tuple(A.shape)} "
                         "(per-state decays: use the 'native' or 'tensor' scan)")
    if chunk < 1:
        raise ShapeError(f"chunk must be a positive integer, got {chunk}")
    if L == 0:
        raise ShapeError("the SSD scan needs at least one token")
    dtype, dev = v.dtype, v.device
    Hg = H // G
    l = min(chunk, L)
    nc = -(-L // l)
    pad = nc * l - L
    loga = dt.to(dtype) * A[:, 0].to(dtype)  # (batch, L, H), ≤ 0
    B, C = B.to(dtype), C.to(dtype)
    if pad:  # padded tokens: log-decay 0 (decay 1) and input 0 leave the state unchanged
        loga, v, B, C = (torch.nn.functional.pad(t, (0, 0) * (t.ndim - 2) + (0, pad)) for t in (loga, v, B, C))
    # Layouts with (batch, groups, heads per group, chunks) in front and tokens × features last: every step
    # below is a batched matrix product over those leading axes.
    la = loga.view(batch, nc, l, G, Hg).permute(0, 3, 4, 1, 2)  # (b, G, Hg, nc, l)
    X = v.view(batch, nc, l, G, Hg, P).permute(0, 3, 4, 1, 2, 5)  # (b, G, Hg, nc, l, P)
    Bc = B.view(batch, nc, l, G, N).permute(0, 3, 1, 2, 4).unsqueeze(2)  # (b, G, 1, nc, l, N)
    Cc = C.view(batch, nc, l, G, N).permute(0, 3, 1, 2, 4).unsqueeze(2)

    # The masked decay matrices L (b, G, Hg, nc, l, l) are the largest tensors: one buffer, exponentiated and
    # multiplied in place.
    Lmat = _segsum(la)
    # each chunk's own contribution to the state at its end, Σ_s decay(s → end) v_s B_sᵀ (…, nc, P, N), from the
    # last row of the segment sums
    to_end = torch.exp(Lmat[..., -1, :])  # (b, G, Hg, nc, l)
    S = (X * to_end[..., None]).transpose(-1, -2) @ Bc
    Lmat.exp_()
    # every state inside the chunks, only when asked for: Σ_{s≤t} L[t, s] v_s B_sᵀ with (P·N) columns per token
    local = Lmat @ (X[..., :, None] * Bc[..., None, :]).reshape(batch, G, Hg, nc, l, P * N) if return_states else None
    # inside each chunk: y_t = Σ_{s≤t} L[t, s] (C_t · B_s) v_s
    Y = Lmat.mul_(Cc @ Bc.transpose(-1, -2)) @ X  # (b, G, Hg, nc, l, P)
    del Lmat

    # the states entering each chunk: the same segment-sum matrix over chunks, h0 acting as chunk −1
    chunk_loga = torch.nn.functional.pad(la.sum(-1), (1, 0))  # (b, G, Hg, nc + 1)
    decay = torch.exp(_segsum(chunk_loga))  # (b, G, Hg, nc + 1, nc + 1); column 0 acts on h0
    carried = decay[..., 1:] @ S.reshape(batch, G, Hg, nc, P * N)  # (b, G, Hg, nc + 1, P·N)
    if h0 is not None:
        carried.addcmul_(decay[..., :1], h0.to(dtype).reshape(batch, G, Hg, 1, P * N))
    h_in = carried[..., :nc, :].view(batch, G, Hg, nc, P, N)
    h_last = carried[..., nc, :].reshape(batch, H, P, N)

    # the entering state's share of every output: decay(chunk start → t) · C_t h_in
    from_start = torch.exp(la.cumsum(-1))[..., None]  # (b, G, Hg, nc, l, 1): a running sum from the chunk start
    Y.addcmul_(Cc @ h_in.transpose(-1, -2), from_start)
    y = Y.permute(0, 3, 4, 1, 2, 5).reshape(batch, nc * l, H, P)[:, :L]

    states = None
    if local is not None:  # h_t = decay(start → t) h_in + the chunk's own part
        local.addcmul_(from_start, h_in.reshape(batch, G, Hg, nc, 1, P * N))
        states = local.view(batch, G, Hg, nc, l, P, N).permute(0, 3, 4, 1, 2, 5, 6).reshape(batch, nc * l, H, P, N)
        states = states[:, :L]
    return y, h_last, states
