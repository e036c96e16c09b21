"""The fused Triton scan against the float64 twin and the tensor form: the three families' shapes, awkward sizes
(lanes, states and tokens that are not powers of two, chunk tails, several blocks of states), continuation
from h_last, fast decays, NaN propagation, tile sizes, and the backend's refusals.

With a GPU the kernel runs on CUDA tensors; without one (CI) it runs on CPU tensors in Triton's interpreter
(tests/engine/conftest.py sets ``TRITON_INTERPRET=1``), at small sizes: a broken kernel fails either way.
"""

from __future__ import annotations

import pytest
import torch

from ssmctl.errors import SsmctlError
from ssmctl.engine.scan import selective_scan, selective_scan_ref
from ssmctl.engine import triton_scan as triton_scan_module
from ssmctl.engine.triton_scan import triton_available, triton_scan, triton_status

from .test_scan import SHAPES, _inputs, _rel

DEV = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not triton_available(DEV), reason=triton_status())]

# (batch, L, H, P, G, N, Na) beyond the families' SHAPES: one token; fewer tokens than a chunk; lanes over
# several programs with a ragged last one; 40 states (two blocks of states, partial sums of y); Mamba-2 sizes
# with groups and per-head decay; 3 channels, 3 inputs each.
AWKWARD = {
    "one_token": (1, 1, 5, 1, 1, 3, 3),
    "short": (2, 7, 3, 1, 1, 16, 16),
    "ragged_lanes": (1, 33, 150, 1, 1, 4, 4),
    "two_state_blocks": (1, 19, 3, 2, 1, 40, 40),
    "mamba2_groups": (1, 20, 6, 5, 3, 20, 1),
    "odd_heads": (1, 17, 3, 3, 1, 7, 1),
}


def _on(args):
    return [a.to(DEV) for a in args]


@pytest.mark.parametrize("case", sorted(SHAPES) + sorted(AWKWARD))
def test_equals_the_reference_in_float64(case):
    shape = SHAPES.get(case) or AWKWARD[case]
    args = _inputs(shape)
    fast = selective_scan(*_on(args), return_states=True, backend="triton")
    ref = selective_scan_ref(*args)
    assert fast.backend == "triton" and fast.y.dtype == torch.float64 and fast.n_fallback == 0
    assert fast.y.shape == ref.y.shape and fast.h_last.shape == ref.h_last.shape
    assert _rel(fast.y.cpu(), ref.y) < 1e-12
    assert _rel(fast.h_last.cpu(), ref.h_last) < 1e-12
    assert _rel(fast.states.cpu(), ref.states) < 1e-12


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_float32_agrees_with_the_tensor_form_and_the_reference(family):
    args64 = _inputs(SHAPES[family], dt_scale=0.5)
    args32 = _on([a.float() for a in args64])
    fast = selective_scan(*args32, backend="triton")
    twin = selective_scan(*args32, block=16, backend="tensor")
    ref = selective_scan_ref(*args64)
    assert fast.y.dtype == torch.float32
    assert _rel(fast.y.cpu(), ref.y) < 1e-5 and _rel(fast.h_last.cpu(), ref.h_last) < 1e-5
    assert _rel(fast.y.cpu(), twin.y.cpu()) < 1e-5


def test_zero_initial_state_by_default():
    dt, A, v, B, C, _ = _inputs(SHAPES["mamba"])
    fast = selective_scan(*_on([dt, A, v, B, C]), backend="triton")
    assert _rel(fast.y.cpu(), selective_scan_ref(dt, A, v, B, C).y) < 1e-12


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_continuing_from_h_last_equals_one_pass(family):
    dt, A, v, B, C, h0 = _on(_inputs(SHAPES[family]))
    whole = selective_scan(dt, A, v, B, C, h0, backend="triton")
    first = selective_scan(dt[:, :17], A, v[:, :17], B[:, :17], C[:, :17], h0, backend="triton")
    second = selective_scan(dt[:, 17:], A, v[:, 17:], B[:, 17:], C[:, 17:], first.h_last, backend="triton")
    assert _rel(torch.cat([first.y, second.y], 1).cpu(), whole.y.cpu()) < 1e-12
    assert _rel(second.h_last.cpu(), whole.h_last.cpu()) < 1e-12


@pytest.mark.parametrize("dtype, limit", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_fast_decays_need_no_fallback(dtype, limit):
    # dt·|A| up to 8·40 per token: decays underflow to 0, the scan's products stay exact
    args = _inputs(SHAPES["mamba"], dtype=dtype, dt_scale=40.0)
    fast = selective_scan(*_on(args), backend="triton")
    ref = selective_scan_ref(*args)
    assert torch.isfinite(fast.y).all()
    assert _rel(fast.y.cpu(), ref.y) < limit and _rel(fast.h_last.cpu(), ref.h_last) < limit


def test_nan_propagates_from_its_token_on_and_only_in_its_channel():
    g = torch.Generator().manual_seed(1)
    dt = torch.rand(1, 40, 20, generator=g)
    A = -torch.rand(20, 4, generator=g)
    v = torch.randn(1, 40, 20, 1, generator=g)
    B, C = torch.randn(1, 40, 1, 4, generator=g), torch.randn(1, 40, 1, 4, generator=g)
    dt[0, 21, 3] = float("nan")  # inside the second chunk of 16 tokens
    v[0, 7, 11, 0] = float("nan")
    res = selective_scan(*_on([dt, A, v, B, C]), backend="triton")
    bad = torch.isnan(res.y[0, :, :, 0]).cpu()
    assert bad[:, 3].tolist() == [False] * 21 + [True] * 19
    assert bad[:, 11].tolist() == [False] * 7 + [True] * 33
    assert int(bad.sum()) == 19 + 33
    assert torch.isnan(res.h_last[0, [3, 11]]).all().item() and int(torch.isnan(res.h_last).sum()) == 8


@pytest.mark.parametrize("family, tiles", [
    ("mamba", (8, 2, 2, 1)), ("mamba2", (16, 4, 4, 2)), ("mamba2", (8, 8, 32, 4)),  # several blocks of states
    ("mamba", (8, 4, 4, 1, "tnd")), ("mamba2", (16, 8, 8, 2, "tnd")),  # the (tokens, states, lanes) layout
])
def test_tile_sizes_and_layouts_do_not_change_the_result(family, tiles):
    args = _inputs(SHAPES[family])
    ref = selective_scan_ref(*args)
    y, h_last, states = triton_scan(*_on(args), return_states=True, tiles=tiles)
    assert _rel(y.cpu(), ref.y) < 1e-12 and _rel(h_last.cpu(), ref.h_last) < 1e-12
    assert _rel(states.cpu(), ref.states) < 1e-12


def test_tiles_from_the_environment(monkeypatch):
    monkeypatch.setattr(triton_scan_module, "triton_interpreting", lambda: False)
    monkeypatch.setenv("SSMCTL_TRITON_TILES", "32,16,8,8,tnd")
    assert triton_scan_module._tiles(1536, 16, torch.float32) == (32, 16, 8, 8, "tnd")
    # only for layers whose states fit that block of N (Mamba-1's), not RG-LRU's one state or Mamba-2's 128
    assert triton_scan_module._tiles(2560, 1, torch.float32)[1] == 2
    assert triton_scan_module._tiles(1536, 128, torch.float32)[1] == 32
    monkeypatch.setenv("SSMCTL_TRITON_TILES", "32,16,8")
    with pytest.raises(SsmctlError, match=r"SSMCTL_TRITON_TILES='32,16,8': expected 'D,N,T,W'"):
        triton_scan_module._tiles(1536, 16, torch.float32)
    monkeypatch.setenv("SSMCTL_TRITON_TILES", "32,16,8,6,dnt")
    with pytest.raises(SsmctlError, match="powers of two"):
        triton_scan_module._tiles(1536, 16, torch.float32)


def test_refusals_and_auto_choice():
    dt, A, v, B, C, h0 = _inputs(SHAPES["mamba2"])
    with pytest.raises(SsmctlError, match=r"triton scan cannot run here.*bfloat16.*backend='auto'"):
        selective_scan(*_on([dt, A, v.bfloat16(), B, C]), backend="triton")
    # CPU tensors never take the kernel by themselves (the interpreter is for tests only)
    assert selective_scan(dt, A, v, B, C, backend="auto").backend in ("native", "tensor")
    if DEV == "cuda":  # on a GPU "auto" takes the kernel, but Mamba-2's matrix form for one decay per head
        assert selective_scan(*_on(_inputs(SHAPES["mamba"])), backend="auto").backend == "triton"
        assert selective_scan(*_on(_inputs(SHAPES["rglru"])), backend="auto").backend == "triton"
        assert selective_scan(*_on([dt, A, v, B, C]), backend="auto").backend == "ssd"
