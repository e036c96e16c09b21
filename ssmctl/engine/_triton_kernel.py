"""The Triton kernel of :mod:`ssmctl.engine.triton_scan` (imported only when that module runs it: importing
triton costs about a second, and ``TRITON_INTERPRET`` must be set before the kernel is defined)."""

import triton
import triton.language as tl


@triton.jit
def _combine(a1, b1, a2, b2):
    # (a1, b1) is the earlier segment: x ↦ a2(a1 x + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _scan_kernel(
    dt_ptr, A2_ptr, v_ptr, B_ptr, C_ptr, h0_ptr, hout_ptr, y_ptr, st_ptr,
    batch, L, H, P, G, N, LANES_G,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, T: tl.constexpr,
    SCALAR_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_STATES: tl.constexpr, PARTIAL_Y: tl.constexpr,
):
    pid_d = tl.program_id(0)  # block of lanes inside the group
    pid_bg = tl.program_id(1)  # batch × group
    pid_n = tl.program_id(2)  # block of states
    b = (pid_bg // G).to(tl.int64)
    g = pid_bg % G
    HP = H * P
    d_in = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)  # lane inside the group
    d_ok = d_in < LANES_G
    lane = (g * LANES_G + d_in).to(tl.int64)  # lane in 0..H·P
    ch = lane // P
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    dn_ok = d_ok[:, None] & n_ok[None, :]
    if SCALAR_A:
        A2 = tl.load(A2_ptr + ch, mask=d_ok, other=0.0)  # (D,)
    else:
        A2 = tl.load(A2_ptr + ch[:, None] * N + n[None, :], mask=dn_ok, other=0.0)  # (D, N)
    hs_off = (b * HP + lane)[:, None] * N + n[None, :]  # (D, N) into (batch, H, P, N)
    if HAS_H0:
        h = tl.load(h0_ptr + hs_off, mask=dn_ok, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=A2.dtype)
    tt = tl.arange(0, T)
    last = (tt == T - 1)[None, None, :]
    y_base = y_ptr
    if PARTIAL_Y:  # y is (n blocks, batch, L, H, P): this block's partial sums
        y_base = y_ptr + pid_n.to(tl.int64) * batch * L * HP
    for t0 in range(0, L, T):
        t = t0 + tt
        t_ok = t < L
        row = b * L + t  # (T,) token rows of (batch, L)
        dm = d_ok[:, None] & t_ok[None, :]
        nm = n_ok[:, None] & t_ok[None, :]
        # masked tokens: rate 0 (decay 1) and input 0 leave the state as it is
        dt = tl.load(dt_ptr + row[None, :] * H + ch[:, None], mask=dm, other=0.0)  # (D, T)
        v = tl.load(v_ptr + row[None, :] * HP + lane[:, None], mask=dm, other=0.0)  # (D, T)
        Bt = tl.load(B_ptr + (row[None, :] * G + g) * N + n[:, None], mask=nm, other=0.0)  # (N, T)
        Ct = tl.load(C_ptr + (row[None, :] * G + g) * N + n[:, None], mask=nm, other=0.0)  # (N, T)
        if SCALAR_A:
            a = tl.broadcast_to(tl.exp2(dt * A2[:, None])[:, None, :], (BLOCK_D, BLOCK_N, T))
        else:
            a = tl.exp2(dt[:, None, :] * A2[:, :, None])  # (D, N, T)
        x = v[:, None, :] * Bt[None, :, :]  # (D, N, T)
        a_run, h_loc = tl.associative_scan((a, x), 2, _combine)
        hh = h_loc + a_run * h[:, :, None]  # every state of the chunk
        y = tl.sum(hh * Ct[None, :, :], 1)  # (D, T)
        tl.store(y_base + row[None, :] * HP + lane[:, None], y, mask=dm)
        if STORE_STATES:
            s_off = (row[None, None, :] * HP + lane[:, None, None]) * N + n[None, :, None]
            tl.store(st_ptr + s_off, hh, mask=dn_ok[:, :, None] & t_ok[None, None, :])
        h = tl.sum(tl.where(last, hh, 0.0), 2)  # masked tail tokens kept the last real state
    tl.store(hout_ptr + hs_off, h, mask=dn_ok)



@triton.jit
def _scan_kernel_tokens_first(
    dt_ptr, A2_ptr, v_ptr, B_ptr, C_ptr, h0_ptr, hout_ptr, y_ptr, st_ptr,
    batch, L, H, P, G, N, LANES_G,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, T: tl.constexpr,
    SCALAR_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_STATES: tl.constexpr, PARTIAL_Y: tl.constexpr,
):
    # The same computation as _scan_kernel with tiles laid out (tokens, states, lanes): the lanes, contiguous in
    # memory, are the tile's fastest axis, and the scan runs along its first. Which layout Triton compiles to
    # the faster code depends on the compiler and the GPU: the benchmark times both.
    pid_d = tl.program_id(0)
    pid_bg = tl.program_id(1)
    pid_n = tl.program_id(2)
    b = (pid_bg // G).to(tl.int64)
    g = pid_bg % G
    HP = H * P
    d_in = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = d_in < LANES_G
    lane = (g * LANES_G + d_in).to(tl.int64)
    ch = lane // P
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    nd_ok = n_ok[:, None] & d_ok[None, :]
    if SCALAR_A:
        A2 = tl.load(A2_ptr + ch, mask=d_ok, other=0.0)  # (D,)
    else:
        A2 = tl.load(A2_ptr + ch[None, :] * N + n[:, None], mask=nd_ok, other=0.0)  # (N, D)
    hs_off = (b * HP + lane)[None, :] * N + n[:, None]  # (N, D)
    if HAS_H0:
        h = tl.load(h0_ptr + hs_off, mask=nd_ok, other=0.0)
    else:
        h = tl.zeros((BLOCK_N, BLOCK_D), dtype=A2.dtype)
    tt = tl.arange(0, T)
    last = (tt == T - 1)[:, None, None]
    y_base = y_ptr
    if PARTIAL_Y:
        y_base = y_ptr + pid_n.to(tl.int64) * batch * L * HP
    for t0 in range(0, L, T):
        t = t0 + tt
        t_ok = t < L
        row = b * L + t
        dm = t_ok[:, None] & d_ok[None, :]
        nm = t_ok[:, None] & n_ok[None, :]
        dt = tl.load(dt_ptr + row[:, None] * H + ch[None, :], mask=dm, other=0.0)  # (T, D)
        v = tl.load(v_ptr + row[:, None] * HP + lane[None, :], mask=dm, other=0.0)  # (T, D)
        Bt = tl.load(B_ptr + (row[:, None] * G + g) * N + n[None, :], mask=nm, other=0.0)  # (T, N)
        Ct = tl.load(C_ptr + (row[:, None] * G + g) * N + n[None, :], mask=nm, other=0.0)  # (T, N)
        if SCALAR_A:
            a = tl.broadcast_to(tl.exp2(dt * A2[None, :])[:, None, :], (T, BLOCK_N, BLOCK_D))
        else:
            a = tl.exp2(dt[:, None, :] * A2[None, :, :])  # (T, N, D)
        x = Bt[:, :, None] * v[:, None, :]
        a_run, h_loc = tl.associative_scan((a, x), 0, _combine)
        hh = h_loc + a_run * h[None, :, :]
        y = tl.sum(hh * Ct[:, :, None], 1)  # (T, D)
        tl.store(y_base + row[:, None] * HP + lane[None, :], y, mask=dm)
        if STORE_STATES:
            s_off = (row[:, None, None] * HP + lane[None, None, :]) * N + n[None, :, None]
            tl.store(st_ptr + s_off, hh, mask=t_ok[:, None, None] & nd_ok[None, :, :])
        h = tl.sum(tl.where(last, hh, 0.0), 0)
    tl.store(hout_ptr + hs_off, h, mask=nd_ok)
