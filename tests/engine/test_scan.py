"""Both selective scans — the chunked tensor form and the compiled CPU kernel — against the sequential float64
twin: shapes of all three families, block sizes, chunk continuation, the exact fallback for fast decays, float32
accuracy, bad input. The kernel's own build, threads and exp are tested in test_native.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssmctl.errors import ShapeError, SsmctlError
from ssmctl.engine.native import native_available, native_status
from ssmctl.engine.scan import associative_scan, selective_scan, selective_scan_ref


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (batch, L, H, P, G, N, Na): Mamba-1 (per-state decay, shared B/C), Mamba-2 (per-head decay, groups),
# RG-LRU (one state, one input per channel).
SHAPES = {
    "mamba": (2, 45, 6, 1, 1, 5, 5),
    "mamba2": (2, 45, 4, 3, 2, 6, 1),
    "rglru": (3, 45, 7, 1, 1, 1, 1),
}


BACKENDS = [
    "tensor",
    pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason=native_status())),
]


def _inputs(shape, dtype=torch.float64, dt_scale=0.3, seed=0):
    batch, L, H, P, G, N, Na = shape
    g = torch.Generator().manual_seed(seed)
    dt = torch.rand(batch, L, H, generator=g, dtype=dtype) * dt_scale
    A = -torch.rand(H, Na, generator=g, dtype=dtype) * 8 - 0.05
    v = torch.randn(batch, L, H, P, generator=g, dtype=dtype)
    B = torch.randn(batch, L, G, N, generator=g, dtype=dtype)
    C = torch.randn(batch, L, G, N, generator=g, dtype=dtype)
    h0 = torch.randn(batch, H, P, N, generator=g, dtype=dtype)
    return dt, A, v, B, C, h0


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_reference_twin_is_the_plain_recurrence():
    # Independent of the code under test: one channel, one state, h_t = e^{dt a} h_{t-1} + v_t B_t, y = C h.
    dt, A, v, B, C, h0 = _inputs((1, 9, 1, 1, 1, 1, 1))
    h, ys = float(h0[0, 0, 0, 0]), []
    for t in range(9):
        h = np.exp(float(dt[0, t, 0] * A[0, 0])) * h + float(v[0, t, 0, 0] * B[0, t, 0, 0])
        ys.append(float(C[0, t, 0, 0]) * h)
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    np.testing.assert_allclose(ref.y[0, :, 0, 0].numpy(), ys, rtol=1e-13)
    np.testing.assert_allclose(float(ref.h_last[0, 0, 0, 0]), h, rtol=1e-13)


def _numpy_recurrence(dt, A, v, B, C, h0):
    """h_t[b,h,p,n] = e^{dt[b,t,h]·A[h,n]} h_{t−1} + v[b,t,h,p]·B[b,t,g(h),n], y = Σ_n C[b,t,g(h),n] h_t, with
    group g(h) = h // (H/G) (Mamba-2's head-to-group map), written with explicit indices in numpy."""
    dt, A, v, B, C, h = (x.double().numpy().copy() for x in (dt, A, v, B, C, h0))
    batch, L, H, P = v.shape
    G = B.shape[2]
    group = np.arange(H) // (H // G)
    A = np.broadcast_to(A, (H, B.shape[-1]))  # (H, 1): one decay per head, shared by its states
    y = np.zeros((batch, L, H, P))
    states = np.zeros((batch, L, H, P, B.shape[-1]))
    for t in range(L):
        for hh in range(H):
            g = group[hh]
            decay = np.exp(dt[:, t, hh, None] * A[hh])  # (batch, N)
            h[:, hh] = decay[:, None, :] * h[:, hh] + v[:, t, hh, :, None] * B[:, t, g, None, :]
            y[:, t, hh] = np.einsum("bpn,bn->bp", h[:, hh], C[:, t, g])
        states[:, t] = h
    return y, h, states


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_reference_twin_matches_explicit_indexing_for_every_shape(family):
    # Groups (G < H), several channels per head (P > 1) and per-state decays (A of shape (H, N)) are where a
    # wrong broadcast in the twin would be copied by every comparison against it: check them independently.
    args = _inputs(SHAPES[family])
    ref = selective_scan_ref(*args)
    y, h_last, states = _numpy_recurrence(*args)
    np.testing.assert_allclose(ref.y.numpy(), y, rtol=1e-12, atol=1e-12 * np.abs(y).max())
    np.testing.assert_allclose(ref.h_last.numpy(), h_last, rtol=1e-12, atol=1e-12 * np.abs(h_last).max())
    np.testing.assert_allclose(ref.states.numpy(), states, rtol=1e-12, atol=1e-12 * np.abs(states).max())


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("block", [1, 4, 16, 64])
def test_chunked_equals_reference_in_float64(family, block):
    args = _inputs(SHAPES[family])
    fast = selective_scan(*args, block=block, return_states=True, backend="tensor")
    ref = selective_scan_ref(*args)
    assert fast.y.dtype == torch.float64 and fast.backend == "tensor"
    assert _rel(fast.y, ref.y) < 1e-12
    assert _rel(fast.h_last, ref.h_last) < 1e-12
    assert _rel(fast.states, ref.states) < 1e-12


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.skipif(not native_available(), reason=native_status())
def test_native_equals_reference_in_float64(family):
    args = _inputs(SHAPES[family])
    fast = selective_scan(*args, return_states=True, backend="native")
    ref = selective_scan_ref(*args)
    assert fast.y.dtype == torch.float64 and fast.backend == "native"
    assert _rel(fast.y, ref.y) < 1e-12
    assert _rel(fast.h_last, ref.h_last) < 1e-12
    assert _rel(fast.states, ref.states) < 1e-12


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_continuing_from_h_last_equals_one_pass(family, backend):
    dt, A, v, B, C, h0 = _inputs(SHAPES[family])
    whole = selective_scan(dt, A, v, B, C, h0, block=8, backend=backend)
    first = selective_scan(dt[:, :17], A, v[:, :17], B[:, :17], C[:, :17], h0, block=8, backend=backend)
    second = selective_scan(dt[:, 17:], A, v[:, 17:], B[:, 17:], C[:, 17:], first.h_last, block=8, backend=backend)
    assert _rel(torch.cat([first.y, second.y], 1), whole.y) < 1e-12
    assert _rel(second.h_last, whole.h_last) < 1e-12


@pytest.mark.parametrize("dtype, limit", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_fast_decays_take_the_exact_fallback(dtype, limit):
    # dt·|A| up to 8·40 per token: e^{-A G} would overflow inside a block; those columns are recomputed.
    args = _inputs(SHAPES["mamba"], dtype=dtype, dt_scale=40.0)
    fast = selective_scan(*args, block=16, backend="tensor")
    assert fast.n_fallback > 0
    assert torch.isfinite(fast.y).all()
    ref = selective_scan_ref(*args)
    assert _rel(fast.y, ref.y) < limit and _rel(fast.h_last, ref.h_last) < limit
    if native_available():  # the sequential kernel needs no fallback: e^{dt A} underflows to 0 harmlessly
        seq = selective_scan(*args, backend="native")
        assert seq.n_fallback == 0 and _rel(seq.y, ref.y) < limit and _rel(seq.h_last, ref.h_last) < limit


def test_fallback_and_fast_paths_mix_in_one_block():
    dt, A, v, B, C, h0 = _inputs(SHAPES["mamba2"])
    dt[:, :, 0] *= 2000.0  # head 0 forgets within a token, the others keep memory
    fast = selective_scan(dt, A, v, B, C, h0, block=16, backend="tensor")
    assert 0 < fast.n_fallback < dt.shape[0] * 3 * dt.shape[2]
    assert _rel(fast.y, selective_scan_ref(dt, A, v, B, C, h0).y) < 1e-12


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_is_close_to_the_float64_reference(family, backend):
    args64 = _inputs(SHAPES[family], dt_scale=0.5)
    args32 = [a.float() for a in args64]
    fast = selective_scan(*args32, block=16, backend=backend)
    assert fast.y.dtype == torch.float32
    assert _rel(fast.y, selective_scan_ref(*args64).y) < 1e-5


def test_associative_scan_matches_a_loop():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(11, 4, generator=g, dtype=torch.float64), torch.randn(11, 4, generator=g, dtype=torch.float64)
    a_cum, b_cum = associative_scan(a, b, dim=0)
    x, prod = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    for t in range(11):
        x, prod = a[t] * x + b[t], prod * a[t]
        np.testing.assert_allclose(b_cum[t].numpy(), x.numpy(), rtol=1e-13)
        np.testing.assert_allclose(a_cum[t].numpy(), prod.numpy(), rtol=1e-13)


def test_bad_input():
    dt, A, v, B, C, h0 = _inputs(SHAPES["mamba2"])
    with pytest.raises(ShapeError, match=r"dt must be \(batch, L, H\) = \(2, 45, 4\).*got dt \(2, 45, 2\)"):
        selective_scan(dt[:, :, :2], A, v, B, C)
    with pytest.raises(ShapeError, match=r"G dividing H = 4; got B \(2, 45, 3, 6\)"):
        selective_scan(dt, A, v, B[:, :, :1].expand(-1, -1, 3, -1), C[:, :, :1].expand(-1, -1, 3, -1))
    with pytest.raises(ShapeError, match=r"h0 must have shape \(batch, H, P, N\) = \(2, 4, 3, 6\), got \(2, 1, 3, 6\)"):
        selective_scan(dt, A, v, B, C, h0[:, :1])
    with pytest.raises(ShapeError, match=r"selective_scan needs dt \(batch, L, H\).*got dt \(45, 4\)"):
        selective_scan(dt[0], A, v, B, C)
    with pytest.raises(ShapeError, match="at least one token"):
        selective_scan(dt[:, :0], A, v[:, :0], B[:, :0], C[:, :0])
    with pytest.raises(SsmctlError, match="dt must be non-negative"):
        selective_scan(-dt, A, v, B, C)
    with pytest.raises(ShapeError, match="block must be a positive integer, got 0"):
        selective_scan(dt, A, v, B, C, block=0)
    with pytest.raises(SsmctlError, match="unknown scan backend 'fast'.*'native'"):
        selective_scan(dt, A, v, B, C, backend="fast")
    with pytest.raises(SsmctlError, match="native scan cannot run here.*bfloat16"):
        selective_scan(dt, A, v.bfloat16(), B, C, backend="native")
    bad = v.clone()
    bad[0, 3, 0, 0] = float("nan")
    with pytest.raises(SsmctlError, match="v contains NaN or Inf"):
        selective_scan_ref(dt, A, bad, B, C)
