"""Mamba-2's matrix (SSD) form of the scan against the sequential float64 twin, the tensor form, transformers'
own chunked scan and forward: odd lengths, chunk boundaries, groups, initial and final states, fast decays,
NaN propagation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.cli import main
from ssmctl.engine.driver import simulate
from ssmctl.engine.native import native_available, native_status
from ssmctl.engine.scan import selective_scan, selective_scan_ref
from ssmctl.engine.ssd import ssd_elements_per_token, ssd_preferred, ssd_scan
from ssmctl.errors import NonFiniteError, ShapeError, SsmctlError

from .test_driver import _block_outputs, _rel, _saved_and_loaded, hf_mamba2, ids, L as L_DRIVER  # noqa: F401

transformers = pytest.importorskip("transformers")
from transformers.models.mamba2 import modeling_mamba2  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# transformers' Mamba-2 gated RMSNorm ignored n_groups before 5.25 (the comparisons below use 2 groups)
_GROUPED_NORM_FIXED = tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (5, 25)
needs_grouped_norm = pytest.mark.skipif(not _GROUPED_NORM_FIXED, reason="transformers < 5.25: Mamba2's gated "
                                        f"RMSNorm ignores n_groups (found {transformers.__version__})")


def _inputs(batch=2, L=45, H=6, P=3, G=2, N=5, dtype=torch.float64, dt_scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dt = torch.rand(batch, L, H, generator=g, dtype=dtype) * dt_scale
    A = -torch.rand(H, 1, generator=g, dtype=dtype) * 8 - 0.05
    v = torch.randn(batch, L, H, P, generator=g, dtype=dtype)
    B = torch.randn(batch, L, G, N, generator=g, dtype=dtype)
    C = torch.randn(batch, L, G, N, generator=g, dtype=dtype)
    h0 = torch.randn(batch, H, P, N, generator=g, dtype=dtype)
    return dt, A, v, B, C, h0


# --- against the sequential float64 twin ------------------------------------------------------------------

# L below, at and above a multiple of the chunk; one token; one chunk longer than the sequence
@pytest.mark.parametrize("L,chunk", [(45, 8), (47, 8), (48, 8), (49, 8), (1, 8), (45, 64), (45, 1), (45, 45)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_float64_equals_the_sequential_twin(L, chunk, with_h0):
    dt, A, v, B, C, h0 = _inputs(L=L)
    h0 = h0 if with_h0 else None
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    y, h_last, states = ssd_scan(dt, A, v, B, C, h0, chunk=chunk, return_states=True)
    assert y.dtype == h_last.dtype == states.dtype == torch.float64
    assert y.shape == (2, L, 6, 3) and h_last.shape == (2, 6, 3, 5) and states.shape == (2, L, 6, 3, 5)
    scale = float(ref.y.abs().max())
    assert float((y - ref.y).abs().max()) < 1e-12 * scale
    assert float((h_last - ref.h_last).abs().max()) < 1e-12 * float(ref.h_last.abs().max())
    assert float((states - ref.states).abs().max()) < 1e-12 * float(ref.states.abs().max())


@pytest.mark.parametrize("G", [1, 2, 6])
def test_groups_share_B_and_C(G):
    dt, A, v, B, C, h0 = _inputs(G=G)
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    res = selective_scan(dt, A, v, B, C, h0, backend="ssd", ssd_chunk=16)
    assert res.backend == "ssd"
    np.testing.assert_allclose(res.y.numpy(), ref.y.numpy(), rtol=0, atol=1e-12 * float(ref.y.abs().max()))


def test_chunked_calls_continue_from_the_final_state():
    dt, A, v, B, C, h0 = _inputs(L=50)
    whole = ssd_scan(dt, A, v, B, C, h0, chunk=8)
    first = ssd_scan(dt[:, :21], A, v[:, :21], B[:, :21], C[:, :21], h0, chunk=8)
    second = ssd_scan(dt[:, 21:], A, v[:, 21:], B[:, 21:], C[:, 21:], first[1], chunk=8)
    np.testing.assert_allclose(torch.cat([first[0], second[0]], 1).numpy(), whole[0].numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second[1].numpy(), whole[1].numpy(), rtol=1e-12, atol=1e-12)


def test_fast_and_never_decaying_heads_stay_exact():
    # Per-token log-decays down to −800 (a chunk's products would underflow e^{−10^4}), next to a head that
    # never forgets (A = 0): every factor is a segment's own exp in [0, 1], nothing overflows.
    dt, A, v, B, C, h0 = _inputs(L=40, dt_scale=50.0)
    A[0], A[1] = 0.0, -16.0
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-5)):
        y, h_last, _ = ssd_scan(*(t.to(dtype) for t in (dt, A, v, B, C, h0)), chunk=16)
        assert torch.isfinite(y).all()
        assert float((y.double() - ref.y).abs().max()) < tol * float(ref.y.abs().max())
        assert float((h_last.double() - ref.h_last).abs().max()) < tol * float(ref.h_last.abs().max())


def test_float32_agrees_with_the_twin_and_the_tensor_form():
    dt, A, v, B, C, h0 = _inputs(batch=1, L=300, H=8, P=16, G=2, N=32, dtype=torch.float32, dt_scale=0.1)
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    res = selective_scan(dt, A, v, B, C, h0, backend="ssd", ssd_chunk=64)
    tensor = selective_scan(dt, A, v, B, C, h0, backend="tensor")
    assert res.y.dtype == torch.float32
    assert _rel(res.y, ref.y) < 2e-5 and _rel(res.h_last, ref.h_last) < 2e-5
    assert _rel(res.y, tensor.y) < 2e-5


def test_nan_propagates_and_stays_in_its_sequence():
    dt, A, v, B, C, h0 = _inputs(L=40)
    v[0, 21, 2, 1] = float("nan")
    y, h_last, _ = ssd_scan(dt, A, v, B, C, h0, chunk=8)
    # every token from the NaN on is NaN (the matrix products may reach earlier tokens too: 0·NaN), the final
    # state is NaN, and the other sequence of the batch is untouched
    assert torch.isnan(y[0, 21:]).any(-1).any(-1).all()
    assert torch.isnan(h_last[0]).any()
    assert torch.isfinite(y[1]).all() and torch.isfinite(h_last[1]).all()
    dt[1, 5, 0] = float("nan")
    y, h_last, _ = ssd_scan(dt, A, v, B, C, h0, chunk=8)
    assert torch.isnan(y[1, 5:, 0]).any(-1).all() and torch.isnan(h_last[1, 0]).all()


def test_the_driver_locates_a_nan_causally_with_ssd():
    model = ssmctl.init("mamba2", d_model=16, headdim=8, d_state=4, n_layers=1, seed=3)
    layers = [ssmctl.models.base.Layer("mamba2", 0, model.layers[0].params, {**model.layers[0].config, "eps": 0.0})]
    u = torch.randn(1, 40, 16, generator=torch.Generator().manual_seed(0))
    u[0, 29] = 0.0  # RMSNorm with eps 0: 0·rsqrt(0) = NaN inside the layer at token 29, in the SSD chunk [0, 64)
    with pytest.raises(NonFiniteError, match=r"first appears in layer 0 \(mamba2\) at token 29"):
        simulate(ssmctl.models.base.Model("mamba2", {}, layers), u, device="cpu", scan="ssd")


# --- against transformers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("L,chunk", [(37, 8), (40, 8), (37, 64)])
def test_equals_transformers_chunk_scan(L, chunk):
    # transformers' own torch SSD (mamba2_chunk_scan) on the same discretized inputs, initial and final state
    dt, A, v, B, C, h0 = _inputs(batch=2, L=L, H=4, P=8, G=2, N=6, dtype=torch.float32)
    x = v  # transformers multiplies x by dt itself
    ref_y, ref_h = modeling_mamba2.mamba2_chunk_scan(x, dt, A[:, 0], B, C, chunk_size=16, initial_states=h0,
                                                     return_final_states=True)
    y, h_last, _ = ssd_scan(dt, A, dt[..., None] * x, B, C, h0, chunk=chunk)
    assert _rel(y, ref_y) < 1e-5 and _rel(h_last, ref_h) < 1e-5


@needs_grouped_norm
@pytest.mark.parametrize("chunk", [L_DRIVER, 9])
def test_every_mamba2_layer_matches_transformers_forward(hf_mamba2, ids, chunk, tmp_path_factory):
    ref = _block_outputs(hf_mamba2.backbone.layers, lambda: hf_mamba2(ids))
    model = _saved_and_loaded(hf_mamba2, tmp_path_factory)
    res = simulate(model, ids, chunk=chunk, window=(0, L_DRIVER), device="cpu", scan="ssd")
    assert res.scan_backend == "ssd"
    for i in range(2):
        assert _rel(res.windows[i]["layer_output"], ref[i]) < 1e-4
    # the window's states come from the SSD form too: the twin from the window's own per-token system
    w = res.windows[1]
    sys = w["system"]
    twin = selective_scan_ref(sys.dt[..., 0], -torch.exp(hf_mamba2.backbone.layers[1].mixer.A_log.detach())[:, None],
                              sys.dt * sys.inputs[..., 0], sys.B[:, :, :, 0, :, 0] / sys.dt[..., :1],
                              sys.C[:, :, :, 0, 0, :], w["h_before"])
    assert _rel(w["states"], twin.states) < 1e-4


@pytest.mark.parametrize("scan", ["ssd", "tensor", pytest.param("native", marks=pytest.mark.skipif(
    not native_available(), reason=native_status()))])
def test_mamba2_window_inside_and_across_chunks(hf_mamba2, ids, scan, tmp_path_factory):
    # Window [13, 31) with chunks of 9 tokens: it starts inside one chunk, spans one, ends inside another; only its
    # tokens' states are kept. They, and h_before, must continue the window's own system (float64 twin), and
    # equal those of a run keeping every state.
    model = _saved_and_loaded(hf_mamba2, tmp_path_factory)
    res = simulate(model, ids, chunk=9, window=(13, 31), device="cpu", scan=scan)
    full = simulate(model, ids, chunk=L_DRIVER, window=(0, L_DRIVER), device="cpu", scan=scan)
    for i in range(2):
        w, f = res.windows[i], full.windows[i]
        sys = w["system"]
        A = -torch.exp(hf_mamba2.backbone.layers[i].mixer.A_log.detach())[:, None]
        twin = selective_scan_ref(sys.dt[..., 0], A, sys.dt * sys.inputs[..., 0], sys.B[:, :, :, 0, :, 0] /
                                  sys.dt[..., :1], sys.C[:, :, :, 0, 0, :], w["h_before"])
        assert w["states"].shape[1] == 18 and _rel(w["states"], twin.states) < 1e-4
        assert _rel(w["h_before"], f["states"][:, 12]) < 1e-4
        assert _rel(w["states"], f["states"][:, 13:31]) < 1e-4
        assert _rel(w["layer_output"], f["layer_output"][:, 13:31]) < 1e-5


# --- the rule and bad input -------------------------------------------------------------------------------

def test_auto_takes_ssd_on_a_gpu_for_scalar_decay_heads_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert ssd_preferred(cuda, 1, 64)
    assert not ssd_preferred(cuda, 16, 1) and not ssd_preferred(cuda, 1, 1) and not ssd_preferred(cpu, 1, 64)
    dt, A, v, B, C, h0 = _inputs()
    assert selective_scan(dt, A, v, B, C, h0).backend != "ssd"  # on the CPU
    # 130m size, chunk 256: ~17k numbers per token instead of the element-wise scan's H·P·N = 196,608
    assert ssd_elements_per_token(24, 64, 128, 1, 256) == 24 * (512 + 128) + (256 + 256) + 768


def test_bad_input():
    dt, A, v, B, C, h0 = _inputs()
    with pytest.raises(ShapeError, match=r"one decay per head, A of shape \(6, 1\); got \(6, 5\)"):
        selective_scan(dt, A.expand(6, 5), v, B, C, h0, backend="ssd")
    with pytest.raises(ShapeError, match="chunk must be a positive integer, got 0"):
        selective_scan(dt, A, v, B, C, h0, backend="ssd", ssd_chunk=0)
    with pytest.raises(ShapeError, match="at least one token"):
        ssd_scan(dt[:, :0], A, v[:, :0], B[:, :0], C[:, :0], h0)
    mamba = ssmctl.init("mamba", d_model=16, d_state=4, n_layers=1, seed=0)
    with pytest.raises(SsmctlError, match=r"scan='ssd' is Mamba-2's matrix form .* layer 0 is 'mamba'"):
        simulate(mamba, torch.randn(1, 8, 16), device="cpu", scan="ssd")


def test_cli_runs_ssd_and_refuses_it_for_mamba(hf_mamba2, tmp_path_factory, tmp_path, capsys):
    path = tmp_path_factory.mktemp("m2")
    hf_mamba2.save_pretrained(path)
    assert main(["simulate", str(path), "--random-tokens", "40", "--scan", "ssd", "--device", "cpu"]) == 0
    assert "(ssd scan)" in capsys.readouterr().out
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=50, hidden_size=16, state_size=4, num_hidden_layers=1)
    transformers.MambaForCausalLM(cfg).save_pretrained(tmp_path)
    capsys.readouterr()  # transformers' progress bars
    assert main(["simulate", str(tmp_path), "--random-tokens", "40", "--scan", "ssd", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scan='ssd' is Mamba-2's matrix form" in err


@needs_grouped_norm
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_ssd_by_default_and_matches_the_twin_and_transformers(hf_mamba2, ids, tmp_path_factory):
    dt, A, v, B, C, h0 = _inputs(batch=1, L=700, H=8, P=16, G=2, N=32, dtype=torch.float32, dt_scale=0.1)
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    res = selective_scan(*(t.cuda() for t in (dt, A, v, B, C, h0)))  # auto: SSD on a GPU, chunk 256
    assert res.backend == "ssd" and res.y.is_cuda
    assert _rel(res.y.cpu(), ref.y) < 2e-5 and _rel(res.h_last.cpu(), ref.h_last) < 2e-5
    expected = _block_outputs(hf_mamba2.backbone.layers, lambda: hf_mamba2(ids))
    model = _saved_and_loaded(hf_mamba2, tmp_path_factory)
    gpu = simulate(model, ids, chunk=16, window=(0, L_DRIVER), device="cuda")
    assert gpu.scan_backend == "ssd"
    for i in range(2):
        assert _rel(gpu.windows[i]["layer_output"], expected[i]) < 1e-4
