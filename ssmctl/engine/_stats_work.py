"""Work tensors and precomputed views for :class:`~ssmctl.engine.stats.LTVStats` (its private engine room).

Allocated once per accumulator setup and chunk length and reused chunk after chunk, shared by every layer with
the same setup: fresh multi-megabyte temporaries cost page faults on first touch, which on CPU took longer than
the arithmetic, and rebuilding views per chunk cost as much as the tensor operations. A :class:`_Plan` holds the
views of one chunk length and one class of chunk positions, so in steady state an update issues a fixed list
of tensor operations.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ._tensor_cache import tril_ones

# The accumulator these work tensors serve (stats.LTVStats); stats.py imports this module, not the reverse.
LTVStats = Any

_BLOCK = 16  # tokens summed in float32 inside the running sum


class _Scratch:
    """Work tensors for one accumulator setup and chunk length, shared by every layer with that setup.

    Allocated once and reused chunk after chunk: fresh multi-megabyte temporaries cost page faults on first touch,
    which on CPU took longer than the arithmetic. Sized for the largest pair and history counts; plans use prefixes.
    """

    def __init__(self, st: LTVStats, T: int) -> None:
        b, H, dev = st.batch, st.H, st.device
        nlev = max(1, len(st.levels))
        self.pad = pad = st.levels[-1] // 2 if nlev > 1 else 0  # room for the longest tail, k = top / 2
        rows = 0
        if st.chain_D:
            D, strides = st.chain_D, [st.strides[j] for j in st.strided]
            n_blocks = T // strides[0] + 1
            rows = sum(k + n_blocks for k in _powers_below(D)) + sum(D + T // s + 1 for s in strides)
        # One arena, its first part used in turn by the histogram (ln rate, bin indices), the doubling levels
        # and the chain's window sums, whose lifetimes do not overlap; the chain's frozen exponents (written
        # before the doubling, read after it) follow. A working set half the size stays in cache.
        i0 = b * T * H + (b * T * H) % 2  # the int64 indices start on an 8-byte boundary (b·T·H may be odd)
        n_hist = i0 + 2 * b * T * H  # float32 ln rate, then int64 indices
        n_C = b * 2 * (pad + 2 * T) * H
        first = max(n_hist, n_C, b * rows * H)
        arena = torch.empty(first + b * rows * H, device=dev)
        self.log = arena[: b * T * H].view(b, T, H)
        self.idx = arena[i0: n_hist].view(torch.int64)
        # the bin indices ordered by groups of 32 channels: the increments of a group stay within ~120 kB of
        # counters, which scatter_add_ reaches half again as fast as when every token touches every channel's row
        g = 32 if H % 32 == 0 else H
        self.idx_blocks = self.idx.view(H // g, b * T, g).permute(1, 0, 2)
        self.ones = torch.ones(b * T * H, dtype=torch.int32, device=dev)
        # doubling level i, k = 2^i, in C[:, i % 2]: [tail | P_k(t0), …, P_k(t1 − 1) | F_k(t0), …, F_k(t1 − 1)]
        # (level 0 uses no F rows: F_1 = P_1). Two buffers in turn rather than one per level: a smaller working
        # set stays in cache, a quarter faster.
        self.C = arena[:n_C].view(b, 2, pad + 2 * T, H)
        self.sums = torch.zeros(len(st.lags) + 1, 2, H, device=dev)  # per lag, and a row for unused levels
        if st.chain_D:
            # A[0]: the window sums (reusing the first part), A[1]: the frozen exponents
            self.A = arena.as_strided((2, b, rows, H), (first, rows * H, H, 1), arena.storage_offset())
        elif st.strided:
            n_pad = -(-(T // st.grid + 1) // _BLOCK) * _BLOCK
            self.S = torch.zeros(b, n_pad, H, device=dev)
            self.local = torch.empty(b, n_pad // _BLOCK, _BLOCK, H, device=dev)
            n_hist = sum(-(-st.lags[j] // st.strides[j]) for j in st.strided)
            self.G = torch.empty(b * (n_hist + n_pad) * H, dtype=torch.float64, device=dev)
            n_pairs = sum(T // st.strides[j] + 1 for j in st.strided)
            self.Gt = torch.empty(b * n_pairs * H, dtype=torch.float64, device=dev)
            self.Gs = torch.empty(b * n_pairs * H, dtype=torch.float64, device=dev)
            self.X = torch.empty(2 * b * n_pairs * H, device=dev)


class _Plan:
    """Views into a :class:`_Scratch` and index tensors for one chunk length and one class of chunk positions.

    Chunks at positions t0 ≥ the longest lag with equal t0 mod (every stride) share a plan, so in steady state
    an update issues a fixed list of tensor operations without rebuilding any view.
    """

    def __init__(self, st: LTVStats, sc: _Scratch, T: int, t0: int) -> None:
        b, H, dev = st.batch, st.H, st.device
        t1 = t0 + T
        self.sc = sc
        # doubling levels, as (batch, 2, T, H) views over C: [P_k; F_k] at level i, k = 2^i
        pad, C, levels = sc.pad, sc.C, st.levels
        sb, sl = C.stride(0), C.stride(1)

        def view(i: int, row: int, gap: int, rows: int = T) -> torch.Tensor:  # rows `gap` apart in the pair
            return C.as_strided((b, 2, rows, H), (sb, gap * H, H, 1), C.storage_offset() + i % 2 * sl + row * H)

        self.x = C[:, 0, pad: pad + T]
        # [P_2k; F_2k](t) = [P_k(t); F_k(t)]·[P_k(t − k); F_k(t)], one product per level; P_1 = F_1 = e1.
        # Per level: (tail rows, the two factors, the product, the rows that are the next chunk's tail)
        self.dbl = [(C[:, i % 2, pad - k: pad], view(i, pad, T if i else 0), view(i, pad - k, T + k if i else k),
                     view(i + 1, pad, T), C[:, i % 2, pad + T - k: pad + T], k) for i, k in enumerate(levels[:-1])]
        # products and predictions at t < k have no input position s = t − k: zeroed out of the sums
        self.zero = {i: view(i, pad, T, min(T, k - t0)) for i, k in enumerate(levels) if k > t0}
        self.level_sums = [sc.sums[st.doubling.get(k, len(st.lags))] for k in levels]
        self.pairs = [(j, (T - min(T, max(0, k - t0))) * b) for k, j in st.doubling.items()]
        self.pairs += [(j, st._lag_pairs(j, t0, t1)[1] * b) for j in st.strided]
        if st.chain_D:
            self.chain = _ChainPlan(st, sc, T, t0)
            return
        if not st.strided:
            return
        # strided lags: G at the grid positions p0, p0 + g, … of the chunk after the held history, in one buffer
        g = st.grid
        p0 = -(-t0 // g) * g
        n = max(0, -(-(t1 - p0) // g))
        n_pad = -(-n // _BLOCK) * _BLOCK
        held = st._pending(t0)
        nh = len(held)

        def rows(p: np.ndarray) -> np.ndarray:
            return np.where(p < t0, np.searchsorted(held, p), nh + (p - p0) // g)

        t_idx, s_idx, f_idx, lag_of, seg = [], [], [], [], [0]
        for j in st.strided:
            t_first, nj = st._lag_pairs(j, t0, t1)
            ts = t_first + st.strides[j] * np.arange(nj, dtype=np.int64)
            t_idx.append(rows(ts))
            s_idx.append(rows(ts - st.lags[j]))
            f_idx.append(ts - t0)
            lag_of.append(np.full(nj, float(st.lags[j]), dtype=np.float32))
            seg.append(seg[-1] + nj)
        npairs = seg[-1]
        self.n_hist, self.n_grid, self.npairs = nh, n, npairs
        self.first = p0 - t0 + 1  # tokens in the first group (t0..p0)
        self.g = g
        self.tail = p0 - t0 + (n - 1) * g + 1  # chunk row after the last grid position
        G = sc.G[: b * (nh + n_pad) * H].view(b, nh + n_pad, H)
        self.G, self.G_hist = G, G[:, :nh]
        self.G_grid = G[:, nh: nh + n]
        self.G_blocks = G[:, nh:].view(b, n_pad // _BLOCK, _BLOCK, H)
        self.S0, self.S_rest = sc.S[:, 0], sc.S[:, 1:n]
        self.S_blocks = sc.S[:, :n_pad].view(b, n_pad // _BLOCK, _BLOCK, H)
        self.local = sc.local[:, : n_pad // _BLOCK]
        self.local_last = self.local[:, :, -1]
        self.tril = tril_ones(_BLOCK, torch.float32, dev)
        self.excl = tril_ones(n_pad // _BLOCK, torch.float64, dev, strict=True)
        self.Gt = sc.Gt[: b * npairs * H].view(b, npairs, H)
        self.Gs = sc.Gs[: b * npairs * H].view(b, npairs, H)
        X = sc.X[: 2 * b * npairs * H].view(2, b, npairs, H)
        self.X, self.Xd, self.Xf = X, X[0], X[1]
        self.lsum_views = [(X[:, :, seg[i]: seg[i + 1]], sc.sums[j]) for i, j in enumerate(st.strided)]

        def idx(parts: list) -> torch.Tensor:
            return torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0), dtype=torch.long, device=dev)

        self.t_idx, self.s_idx, self.f_idx = idx(t_idx), idx(s_idx), idx(f_idx)
        self.lag_col = torch.as_tensor(np.concatenate(lag_of), device=dev)[:, None]
        self.keep_idx = torch.as_tensor(rows(st._pending(t1)), dtype=torch.long, device=dev)


class _ChainPlan:
    """Views for the strided lags of a doubling chain (see LTVStats.__init__) in the scratch's A.

    A[0] rows run region by region: the doubling stages V_k = [k history rows | nB block rows] for k = 1, 2, …,
    D/2, then W_i = [D history rows | n_i rows at the grid points of stride_i]; A[1] holds the frozen
    predictions' exponents at the rows of the W regions.
    """

    def __init__(self, st: LTVStats, sc: _Scratch, T: int, t0: int) -> None:
        dev = st.device
        t1 = t0 + T
        D = st.chain_D
        strides = [st.strides[j] for j in st.strided]
        self.s1 = s1 = strides[0]

        def grid(s: int) -> tuple[int, int]:  # first grid point of stride s in the chunk, and their count
            p = -(-t0 // s) * s
            return p, max(0, -(-(t1 - p) // s))

        p10, self.nB = grid(s1)
        nB = self.nB
        self.first = p10 - t0 + 1  # chunk tokens in the first block
        self.rest_end = self.first + (nB - 1) * s1 if nB else 0  # after the last whole block
        A0 = self.A0 = sc.A[0]
        regions: list[tuple[int, int, int]] = []  # (offset, history rows, rows in the chunk)
        off = 0
        for k in _powers_below(D):
            regions.append((off, k, nB))
            off += k + nB
        n_V = len(regions)
        w_grid = [grid(s) for s in strides]
        for _, n in w_grid:
            regions.append((off, D, n))
            off += D + n
        R_V, R = regions[n_V][0], off

        def body(i: int) -> torch.Tensor:
            o, h, n = regions[i]
            return A0[:, o + h: o + h + n]

        self.B = body(0)
        if nB:
            self.B_first, self.B_rest = self.B[:, 0], self.B[:, 1:]
        self.adds = []
        for i, k in enumerate(_powers_below(D)):  # V_2k(p) = V_k(p) + V_k(p − k·stride_1)
            o, h, n = regions[i]
            self.adds.append((A0[:, o + k: o + k + n], A0[:, o: o + n], body(i + 1)))
        for i in range(len(strides) - 1):  # W_{i+1}(t) = W_i(t) + W_i(t − lag_i)
            (o, h, n), (p_i, _), (p_next, n_next) = regions[n_V + i], w_grid[i], w_grid[i + 1]
            s = o + (p_next - p_i) // strides[i]
            self.adds.append((A0[:, s + D: s + D + 2 * n_next - 1: 2], A0[:, s: s + 2 * n_next - 1: 2],
                              body(n_V + i + 1)))
        kept = regions[:-1]  # the last W needs no history
        self.tail_in = torch.as_tensor([o + m for o, h, n in kept for m in range(h)], dtype=torch.long, device=dev)
        self.tail_out = torch.as_tensor([o + n + m for o, h, n in kept for m in range(h)], dtype=torch.long,
                                        device=dev)
        self.X = sc.A[:, :, R_V:R]
        # frozen exponents lag·x_t in A[1] at the rows of the W regions: x at the first stride's grid times lag_1,
        # then doubled (exactly) from one lag to the next on the coarser grid
        A1 = sc.A[1]
        x = sc.C[:, 0, sc.pad: sc.pad + T]
        o, h, n = regions[n_V]
        grid1 = x[:, p10 - t0: p10 - t0 + (nB - 1) * s1 + 1: s1] if nB else x[:, :0]
        self.frozen = [(grid1, float(st.lags[st.strided[0]]), A1[:, o + h: o + h + n])]
        for i in range(len(strides) - 1):
            (o, h, n), (p_i, _), (p_next, n_next) = regions[n_V + i], w_grid[i], w_grid[i + 1]
            s = o + h + (p_next - p_i) // strides[i]
            o2, h2, n2 = regions[n_V + i + 1]
            self.frozen.append((A1[:, s: s + 2 * n_next - 1: 2], 2.0, A1[:, o2 + h2: o2 + h2 + n2]))
        self.sum_views = []
        for i, j in enumerate(st.strided):
            o, h, n = regions[n_V + i]
            p, _ = w_grid[i]
            v = min(n, max(0, -(-(st.lags[j] - p) // strides[i])))  # rows with t ≥ lag: s = t − lag exists
            assert n - v == st._lag_pairs(j, t0, t1)[1]
            self.sum_views.append((self.X[:, :, o + h + v - R_V: o + h + n - R_V], sc.sums[j]))


def _powers_below(n: int) -> list[int]:
    """1, 2, 4, … below n."""
    return [1 << i for i in range(max(0, n.bit_length() - 1))] if n > 1 else []


class _Cache(threading.local):
    """Scratch tensors and plans, per thread, least recently used first."""

    def __init__(self) -> None:
        self.scratch: OrderedDict[tuple, _Scratch] = OrderedDict()
        self.plans: OrderedDict[tuple, _Plan] = OrderedDict()


_CACHE = _Cache()
