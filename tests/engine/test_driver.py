"""The LTV engine against transformers' forward (Mamba, Mamba-2, RecurrentGemma, Jamba built from configs):
every layer's output, Δ_t and Ā_t as transformers computes them, chunk-size independence, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from tests.helpers import needs_grouped_gated_norm
from ssmctl.errors import NonFiniteError, ShapeError, SsmctlError, UnsupportedSystemError
from ssmctl.models import mamba
from ssmctl.models.base import Layer, Model
from ssmctl.engine import driver
from ssmctl.engine.driver import default_chunk, default_slab, partial_note, resolve_device, simulate
from ssmctl.engine.native import native_available, native_status

transformers = pytest.importorskip("transformers")
from transformers.models.mamba import modeling_mamba  # noqa: E402
from transformers.models.mamba2 import modeling_mamba2  # noqa: E402
from transformers.models.recurrent_gemma import modeling_recurrent_gemma  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")

L, VOCAB = 50, 40
# Every scan runs every transformers comparison: the compiled CPU kernel, the tensor form and, on a GPU, the Triton kernel.
SCANS = ["tensor", pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason=native_status())),
         pytest.param("triton", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))]


def _device(scan: str) -> str:
    """The fused Triton kernel runs on the GPU (its interpreter runs are in test_triton_scan.py), the others here."""
    return "cuda" if scan == "triton" else "cpu"


def _np(x):
    return x.detach().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _rel(a, b) -> float:
    a, b = _np(a), _np(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _perturb(module, scale_dt=1.0):
    """Move every parameter away from its init so the comparison sees every weight."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("A_log"):
                p.add_(0.3 * noise)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            elif name.endswith("conv1d.bias") or name.endswith(".D") or name.endswith("dt_bias"):
                p.copy_(noise)
            elif name.endswith("dt_proj.weight"):
                p.mul_(scale_dt)


def _saved_and_loaded(hf_model, tmp_path_factory):
    """The transformers model written by save_pretrained and read back by ssmctl.checkpoints.load."""
    path = tmp_path_factory.mktemp("ckpt")
    hf_model.save_pretrained(path)
    return ssmctl.load(str(path))


def _block_outputs(blocks, run):
    """Outputs of each transformers block captured by forward hooks while ``run()`` executes."""
    seen = {}
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (o[0] if isinstance(o, tuple) else o)))
             for k, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return [seen[k].detach() for k in range(len(blocks))]


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB, (2, L), generator=torch.Generator().manual_seed(3))


# --- Mamba ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_mamba():
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=VOCAB, hidden_size=24, state_size=6, num_hidden_layers=3, expand=2,
                                   conv_kernel=4, time_step_rank=3, use_mambapy=False, use_associative_scan=False)
    model = transformers.MambaForCausalLM(cfg).eval()
    _perturb(model, scale_dt=3.0)
    return model.backbone


@pytest.fixture(scope="module")
def our_mamba(hf_mamba, tmp_path_factory):
    torch.manual_seed(0)
    cfg = hf_mamba.config
    full = transformers.MambaForCausalLM(cfg).eval()
    full.backbone.load_state_dict(hf_mamba.state_dict())
    return _saved_and_loaded(full, tmp_path_factory)


@pytest.mark.parametrize("chunk", [L, 16, 7])
@pytest.mark.parametrize("scan", SCANS)
def test_mamba_every_layer_matches_transformers(hf_mamba, our_mamba, ids, chunk, scan):
    ref = _block_outputs(hf_mamba.layers, lambda: hf_mamba(ids))
    res = simulate(our_mamba, ids, chunk=chunk, block=4, window=(0, L), device=_device(scan), scan=scan,
                   keep_output=True)
    assert res.layers == [0, 1, 2] and res.n_tokens == L and res.batch == 2
    assert _rel(res.output, ref[2]) < 1e-4  # the last layer's output over all chunks
    assert res.scan_backend == scan and res.summary()["scan_backend"] == scan
    for i in range(3):
        assert _rel(res.windows[i]["layer_output"], ref[i]) < 1e-4
        # and the residual branch alone (the mixer's contribution), which is what the scan shapes
        base = ref[i - 1] if i else hf_mamba.embeddings(ids)
        assert _rel(res.windows[i]["layer_output"] - base, ref[i] - base) < 1e-4


def test_mamba_delta_and_transition_match_what_transformers_sees(hf_mamba, our_mamba, ids, monkeypatch):
    seen = []
    original = modeling_mamba.mamba_selective_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        delta = F.softplus(dt + kwargs["delta_bias"][:, None])  # transformers' own Δ (b, d_inner, L)
        seen.append((delta.transpose(1, 2).clone(), torch.exp(A[None, :, None, :] * delta[..., None]).clone()))
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_mamba, "mamba_selective_scan", spy)
    with torch.no_grad():
        hf_mamba(ids)
    assert len(seen) == 3, "transformers did not call mamba_selective_scan on every layer"
    res = simulate(our_mamba, ids, chunk=13, window=(5, 40), device="cpu")
    for i, (delta, abar) in enumerate(seen):
        w = res.windows[i]
        assert _rel(w["system"].dt, delta[:, 5:40]) < 1e-5
        assert _rel(w["system"].lam, abar[:, :, 5:40].permute(0, 2, 1, 3)) < 1e-5
        # the streaming statistics see exactly these Δ_t: min / max are exact
        assert res.stats[i].rate_max == pytest.approx(float(delta.max()), rel=1e-5)
        assert res.stats[i].abs_min == pytest.approx(float(abar.min()), rel=1e-4)


def test_mamba_window_states_continue_the_family_reference(our_mamba, ids):
    # The window's LTVSystem, started from h_before, reproduces the window's SSM output (float64 reference).
    res = simulate(our_mamba, ids, chunk=9, window=(20, 35), device="cpu")
    w = res.windows[1]
    sys_, h = w["system"], w["h_before"].double()
    lam, Bb, C, D, x = (t.double() for t in (sys_.lam, sys_.B[..., 0], sys_.C[..., 0, :], sys_.D[:, 0, 0], sys_.inputs[..., 0]))
    ys = []
    for t in range(15):
        h = lam[:, t] * h + Bb[:, t] * x[:, t, :, None]
        ys.append((C[:, t] * h).sum(-1) + D * x[:, t])
    assert _rel(torch.stack(ys, 1), w["ssm_output"]) < 1e-5
    assert _rel(h, w["states"][:, -1]) < 1e-5
    # absolute token 27 of the input is position 7 of the window; Ā there is exp(Δ_27 A) of that layer
    frozen = res.frozen(1, 27)
    A = -torch.exp(our_mamba.layers[1].params["mixer.A_log"].double())
    np.testing.assert_allclose(frozen.lam, torch.exp(sys_.dt[:, 7].double()[..., None] * A).numpy(), rtol=1e-6)
    assert frozen.meta["frozen_at"] == 7 and "tokens 20..34" in repr(sys_) and "L=15" in repr(sys_)
    with pytest.raises(SsmctlError, match=r"token 35 is outside the kept window \[20, 35\)"):
        res.frozen(1, 35)
    with pytest.raises(SsmctlError, match="no window of traces for layer 5"):
        res.frozen(5, 27)


def test_results_do_not_depend_on_chunk_or_block(our_mamba, ids):
    runs = [simulate(our_mamba, ids, chunk=c, block=b, slab=s, device="cpu", keep_output=True, lag_samples=8)
            for c, b, s in ((L, 16, None), (11, 4, 8), (5, 2, "auto"), (20, 16, 3))]
    for other in runs[1:]:
        assert _rel(other.output, runs[0].output) < 1e-5
        for i in range(3):
            a, b = runs[0].stats[i], other.stats[i]
            np.testing.assert_allclose(a.decay_mean, b.decay_mean, rtol=1e-5)
            np.testing.assert_allclose(a.memory_token_max, b.memory_token_max, rtol=1e-5)
            assert abs(math.log(a.rate_quantiles[0.5] / b.rate_quantiles[0.5])) <= a.bin_width
            assert a.abs_min == pytest.approx(b.abs_min, rel=1e-5)


# --- Mamba-2 ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_mamba2():
    torch.manual_seed(1)
    cfg = transformers.Mamba2Config(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                                    head_dim=8, num_heads=8, n_groups=2, chunk_size=16, conv_kernel=4)
    model = transformers.Mamba2ForCausalLM(cfg).eval()
    _perturb(model)
    return model


@needs_grouped_gated_norm
@pytest.mark.parametrize("chunk", [L, 9])
@pytest.mark.parametrize("scan", SCANS)
def test_mamba2_every_layer_matches_transformers(hf_mamba2, ids, chunk, scan, monkeypatch, tmp_path_factory):
    seen = []
    original = modeling_mamba2.mamba2_chunk_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        lo, hi = kwargs["dt_limit"]
        seen.append(F.softplus(dt + kwargs["dt_bias"]).clamp(min=lo, max=hi).clone())  # (b, L, heads)
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_mamba2, "mamba2_chunk_scan", spy)
    ref = _block_outputs(hf_mamba2.backbone.layers, lambda: hf_mamba2(ids))
    model = _saved_and_loaded(hf_mamba2, tmp_path_factory)
    res = simulate(model, ids, chunk=chunk, block=4, window=(0, L), device=_device(scan), scan=scan)
    assert res.scan_backend == scan
    for i in range(2):
        assert _rel(res.windows[i]["layer_output"], ref[i]) < 1e-4
        assert _rel(res.windows[i]["system"].dt[..., 0], seen[i]) < 1e-5
        A = -torch.exp(hf_mamba2.backbone.layers[i].mixer.A_log.detach())
        assert _rel(res.windows[i]["system"].lam[..., 0, 0], torch.exp(seen[i] * A)) < 1e-5


# --- RecurrentGemma ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_griffin():
    torch.manual_seed(2)
    cfg = transformers.RecurrentGemmaConfig(
        vocab_size=VOCAB, hidden_size=32, lru_width=48, num_attention_heads=4, num_hidden_layers=3,
        intermediate_size=40, block_types=["recurrent", "recurrent", "attention"], attention_window_size=16,
        conv1d_width=4,
    )
    model = transformers.RecurrentGemmaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "recurrent_param" in name:
                continue
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("bias"):
                p.copy_(0.5 * noise)
            elif "norm" in name:
                p.copy_(0.3 * noise)
            elif "gate_weight" in name:  # transformers' 0.01 variance keeps r_t ≈ ½: widen it
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return model


@pytest.mark.parametrize("scan", SCANS)
def test_recurrentgemma_recurrent_blocks_match_transformers(hf_griffin, ids, scan, monkeypatch, tmp_path_factory):
    gates = []
    original = modeling_recurrent_gemma.RecurrentGemmaRglru._rnn_scan

    def spy(self, hidden_states, recurrent_gate, reset, recurrent_states, *args, **kwargs):
        gates.append(recurrent_gate.detach().clone())  # Ā_t as transformers' scan receives it
        return original(self, hidden_states, recurrent_gate, reset, recurrent_states, *args, **kwargs)

    monkeypatch.setattr(modeling_recurrent_gemma.RecurrentGemmaRglru, "_rnn_scan", spy)
    layers = hf_griffin.model.layers
    inputs, temporal = {}, {}
    hooks = [layers[i].register_forward_pre_hook(lambda m, a, kw, i=i: inputs.__setitem__(i, (a[0] if a else kw["hidden_states"]).detach()), with_kwargs=True)
             for i in (0, 1)]
    hooks += [layers[i].temporal_block.register_forward_hook(lambda m, a, o, i=i: temporal.__setitem__(i, (o[0] if isinstance(o, tuple) else o).detach()))
              for i in (0, 1)]
    with torch.no_grad():
        hf_griffin(ids, use_cache=False)
    for h in hooks:
        h.remove()
    model = _saved_and_loaded(hf_griffin, tmp_path_factory)
    assert [lay.index for lay in model.layers] == [0, 1]
    assert "attention" in partial_note(model) and "mlp" in partial_note(model)
    # Layer 0 from token ids: the embedding and its √d scaling go through Model.extras.
    # (ssmctl.load records the bfloat16-rounded √d_model in extras["embedding_scale"]; the engine applies it)
    first = Model("rglru", {}, model.layers[:1], extras=model.extras)
    res0 = simulate(first, ids, chunk=8, window=(0, L), device=_device(scan), scan=scan)
    assert res0.scan_backend == scan
    assert _rel(res0.windows[0]["system"].lam[..., 0], gates[0]) < 1e-5
    assert _rel(res0.windows[0]["layer_output"], inputs[0] + temporal[0]) < 1e-4
    # Layer 1 fed the input transformers gave it (after layer 0's MLP half, which ssmctl does not model).
    second = Model("rglru", {}, model.layers[1:2])
    for chunk in (L, 6):
        res1 = simulate(second, inputs[1], chunk=chunk, window=(0, L), device=_device(scan), scan=scan)
        assert _rel(res1.windows[0]["layer_output"], inputs[1] + temporal[1]) < 1e-4
        assert _rel(res1.windows[0]["system"].lam[..., 0], gates[1]) < 1e-5


# --- Jamba (Mamba mixer with Δ/B/C RMSNorms) ----------------------------------------------------------------
def test_jamba_mamba_mixer_matches_transformers(ids):
    torch.manual_seed(4)
    cfg = transformers.JambaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_experts=1, expert_layer_period=1, expert_layer_offset=0, attn_layer_period=2,
        attn_layer_offset=1, mamba_d_state=6, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=4,
    )
    hf = transformers.JambaModel(cfg).eval()
    _perturb(hf)
    block = hf.layers[0]
    assert block.__class__.__name__ == "JambaMambaDecoderLayer"
    seen = {}
    h1 = block.register_forward_pre_hook(lambda m, a, kw: seen.__setitem__("u", (a[0] if a else kw["hidden_states"]).detach()), with_kwargs=True)
    h2 = block.mamba.register_forward_hook(lambda m, a, o: seen.__setitem__("mix", (o[0] if isinstance(o, tuple) else o).detach()))
    with torch.no_grad():
        hf(ids, use_cache=False)
    h1.remove()
    h2.remove()
    sd = block.state_dict()
    params = {("norm.weight" if k == "input_layernorm.weight" else k.replace("mamba.", "mixer.", 1)): v
              for k, v in sd.items() if k.startswith(("mamba.", "input_layernorm."))}
    # Jamba's extra RMSNorms on the Δ input, B and C come with the block's keys; layer_from_params keeps them
    layer = mamba.layer_from_params(params, {"eps": cfg.rms_norm_eps}, index=0)
    assert all(f"mixer.{k}_layernorm.weight" in layer.params for k in ("dt", "b", "c"))
    model = Model("mamba", {}, [layer])
    u = seen["u"]
    for chunk in (L, 12):
        res = simulate(model, u, chunk=chunk, window=(0, L), device="cpu")
        assert _rel(res.windows[0]["layer_output"] - u, seen["mix"]) < 1e-4


# --- devices, bad input -----------------------------------------------------------------------------------
def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert default_chunk(torch.device("cpu"), 512 * 16) == 512
    assert default_chunk(torch.device("cuda"), 512 * 16) == 8192
    assert default_slab(torch.device("cpu"), 512 * 16) == 64 and default_slab(torch.device("cuda"), 1) is None
    with pytest.raises(SsmctlError, match="unknown device 'tpu:9'; use 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("tpu:9")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scan", ["auto", "tensor"])
def test_cuda_matches_transformers_and_the_cpu(hf_mamba, our_mamba, ids, scan):
    # The GPU runs the Triton kernel ("auto") or the tensor scan in one slab per chunk; every layer must still
    # match transformers (on the CPU), and the statistics the CPU's.
    ref = _block_outputs(hf_mamba.layers, lambda: hf_mamba(ids))
    gpu = simulate(our_mamba, ids, chunk=16, window=(0, L), device="cuda", scan=scan)
    assert gpu.device.startswith("cuda") and gpu.scan_backend == ("triton" if scan == "auto" else "tensor")
    for i in range(3):
        assert _rel(gpu.windows[i]["layer_output"], ref[i]) < 1e-4
    cpu = simulate(our_mamba, ids, chunk=16, device="cpu").summary()
    for a, b in zip(gpu.summary()["layers"], cpu["layers"]):
        assert a["abs_min"] == pytest.approx(b["abs_min"], rel=1e-4)
        assert a["transition_decay"]["norm_mean"] == pytest.approx(b["transition_decay"]["norm_mean"], rel=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no GPU is present")
def test_cuda_asked_for_but_absent(our_mamba, ids):
    with pytest.raises(SsmctlError, match=r"no CUDA device.*; use device='cpu' or device='auto'$"):
        simulate(our_mamba, ids, device="cuda")
    with pytest.raises(SsmctlError, match=r"^layers \[7\] outside the model's 3 layers"):
        simulate(our_mamba, ids, layers=[7], device="cpu")


def test_bad_inputs(our_mamba, ids):
    with pytest.raises(SsmctlError, match=r"token id 40 at \(batch 1, position 3\) is outside the vocabulary \[0, 40\)"):
        bad = ids.clone()
        bad[1, 3] = VOCAB
        simulate(our_mamba, bad, device="cpu")
    with pytest.raises(SsmctlError, match=r"token id -1 at \(batch 0, position 1\) is outside the vocabulary"):
        simulate(our_mamba, torch.tensor([0, -1, 2]), device="cpu")
    with pytest.raises(ShapeError, match=r"empty input \(shape \(1, 0\)\): need at least one token"):
        simulate(our_mamba, torch.zeros(1, 0, dtype=torch.long), device="cpu")
    with pytest.raises(ShapeError, match="empty input"):
        simulate(our_mamba, np.zeros((0,), dtype=np.int64), device="cpu")
    with pytest.raises(SsmctlError, match="integer token ids or real embeddings, got dtype torch.bool"):
        simulate(our_mamba, torch.ones(1, 5, dtype=torch.bool), device="cpu")
    with pytest.raises(SsmctlError, match="integer token ids or real embeddings, got dtype torch.complex64"):
        simulate(our_mamba, torch.ones(1, 5, 24, dtype=torch.complex64), device="cpu")
    with pytest.raises(SsmctlError, match="numeric array"):
        simulate(our_mamba, np.array(["a", None], dtype=object), device="cpu")
    with pytest.raises(ShapeError, match=r"shape \(batch, L, d_model=24\) or \(L, d_model\), got \(1, 5, 7\)"):
        simulate(our_mamba, torch.randn(1, 5, 7), device="cpu")
    with pytest.raises(ShapeError, match=r"token ids must have shape \(L,\) or \(batch, L\), got \(1, 2, 3\)"):
        simulate(our_mamba, torch.zeros(1, 2, 3, dtype=torch.long), device="cpu")
    with pytest.raises(ShapeError, match=r"window \(10, 5\) must satisfy 0 <= start < stop <= L = 50"):
        simulate(our_mamba, ids, window=(10, 5), device="cpu")
    with pytest.raises(SsmctlError, match="outside the model's 3 layers"):
        simulate(our_mamba, ids, layers=[3], device="cpu")
    with pytest.raises(SsmctlError, match="chunk must be a positive integer, got 0"):
        simulate(our_mamba, ids, chunk=0, device="cpu")
    with pytest.raises(SsmctlError, match="Model with at least one layer"):
        simulate(object(), ids)
    with pytest.raises(SsmctlError, match="unknown scan 'fast'"):
        simulate(our_mamba, ids, scan="fast", device="cpu")


def test_native_scan_refused_where_it_cannot_run(our_mamba, ids, monkeypatch):
    from ssmctl.engine import driver as engine

    monkeypatch.setattr(engine, "native_available", lambda: False)
    monkeypatch.setattr(engine, "native_status", lambda: "no C compiler found")
    with pytest.raises(SsmctlError, match="scan='native'.*no C compiler found"):
        simulate(our_mamba, ids, scan="native", device="cpu")
    assert simulate(our_mamba, ids, scan="tensor", device="cpu").scan_backend == "tensor"


def test_token_ids_need_an_embedding():
    model = ssmctl.init("mamba", d_model=16, n_layers=1)
    with pytest.raises(SsmctlError, match=r"no embedding matrix.*\(batch, L, d_model=16\)"):
        simulate(model, torch.tensor([1, 2, 3]), device="cpu")


def test_time_invariant_layers_are_refused(our_mamba):
    lti = Layer(family="s4d", index=0, params={}, config={"d_model": 24})
    with pytest.raises(UnsupportedSystemError, match="'s4d'.*input-dependent"):
        simulate(Model("s4d", {}, [lti]), torch.randn(1, 4, 24), device="cpu")


@pytest.mark.parametrize("deferred", [False, True])
def test_nan_reported_with_layer_and_token(our_mamba, deferred, monkeypatch):
    # deferred: the GPU's way (checks kept on the device, read after the loop, the run repeated with checks
    # after every chunk when one failed), forced here on the CPU; the messages are the same
    monkeypatch.setattr(driver, "_checks_each_chunk", lambda dev: not deferred)
    u = torch.randn(1, 40, 24)
    u[0, 23, 5] = float("nan")
    with pytest.raises(NonFiniteError, match="input has NaN/Inf at token 23"):
        simulate(our_mamba, u, chunk=16, device="cpu")
    # With layer 0's norm eps set to 0, an all-zero input token makes its RMSNorm compute 0·rsqrt(0) = NaN: the
    # input is finite, the NaN appears mid-sequence inside layer 0 (and spreads from token 29 on).
    layers = list(our_mamba.layers)
    layers[0] = Layer("mamba", 0, layers[0].params, {**layers[0].config, "eps": 0.0})
    u = torch.randn(1, 40, 24)
    u[0, 29] = 0.0
    with pytest.raises(NonFiniteError, match=r"NaN/Inf first appears in layer 0 \(mamba\) at token 29 \(batch 0\)"):
        simulate(Model("mamba", {}, layers), u, chunk=16, device="cpu")
    # Layer 1 with eps 0: an all-zero input token gives layer 0 an all-zero output there too (its gate SiLU(z) is
    # 0 when z = in_proj(0) = 0), so layer 0 stays finite and the NaN first appears in layer 1, at token 31.
    layers = list(our_mamba.layers)
    layers[1] = Layer("mamba", 1, layers[1].params, {**layers[1].config, "eps": 0.0})
    u[0, 29] = torch.randn(24)
    u[:, 31] = 0.0
    with pytest.raises(NonFiniteError, match=r"layer 1 \(mamba\) at token 31"):
        simulate(Model("mamba", {}, layers), u, chunk=16, device="cpu")
    assert simulate(Model("mamba", {}, layers[:1]), u, chunk=16, device="cpu").n_tokens == 40


class _HostRead(AssertionError):
    pass


def test_deferred_checks_read_nothing_back_inside_the_loop_and_change_nothing(our_mamba, ids, monkeypatch):
    """The GPU's chunk loop: no value goes from the device to the host until the loop ends (every way a tensor's
    value reaches Python raises here), and the statistics are those of the checking loop."""
    eager = simulate(our_mamba, ids, chunk=16, device="cpu").summary()
    monkeypatch.setattr(driver, "_checks_each_chunk", lambda dev: False)
    go = driver._Run.go

    def strict_go(self, bar):
        def refuse(*args, **kwargs):
            raise _HostRead("a tensor's value was read on the host inside the chunk loop")

        with monkeypatch.context() as m:
            for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "cpu"):
                m.setattr(torch.Tensor, name, refuse)
            go(self, bar)

    monkeypatch.setattr(driver._Run, "go", strict_go)
    deferred = simulate(our_mamba, ids, chunk=16, device="cpu", scan="native" if native_available() else "auto")
    got = deferred.summary()
    for a, b in zip(got["layers"], eager["layers"]):
        for key in ("abs_min", "abs_max", "dt_median", "memory_horizon_median"):
            assert a[key] == b[key]
        assert a["transition_decay"] == b["transition_decay"]
        assert a["dt_out_of_histogram_range"] == b["dt_out_of_histogram_range"]


def test_inf_in_an_embedding_row_names_the_row_not_the_tokens(our_mamba):
    """Token ids that are valid but look up a non-finite embedding row: the message names the row."""
    emb = our_mamba.extras["embedding"].clone()
    emb[7, 3] = float("inf")
    model = Model("mamba", our_mamba.config, our_mamba.layers, source="test", extras={**our_mamba.extras, "embedding": emb})
    ids = torch.tensor([[1, 2, 4, 7, 1]])
    with pytest.raises(NonFiniteError) as err:
        simulate(model, ids, device="cpu")
    assert str(err.value) == ("embedding row 7 (the id of token 3, batch 0) has 1 NaN/Inf entries: the model's "
                              "embedding matrix is not finite there; the token ids are valid")


@pytest.mark.parametrize("bad, message", [
    ([[1, 2], ["a"]], "sequence 1 of the corpus: inputs must be a numeric array"),  # [[1, 2], [3]] is a corpus
    (["a", "b"], "simulate takes token ids or embeddings, not text: tokenize it"),
    (np.array([b"x"]), "inputs must be a numeric array: token ids (integers) or embeddings (floats), got |S1"),
    ({"ids": 1}, "inputs must be a numeric array"),
])
def test_inputs_that_are_not_numeric_arrays(our_mamba, bad, message):
    with pytest.raises(SsmctlError) as err:
        simulate(our_mamba, bad, device="cpu")
    assert message in str(err.value)


def test_any_numpy_integer_dtype_is_token_ids(our_mamba, ids):
    ref = simulate(our_mamba, ids.numpy(), device="cpu").summary()["layers"]
    for dtype in (np.uint8, np.int16, np.uint16, np.uint32):
        got = simulate(our_mamba, ids.numpy().astype(dtype), device="cpu").summary()["layers"]
        assert [r["abs_min"] for r in got] == [r["abs_min"] for r in ref]


def test_layers_selection_runs_only_what_is_needed(our_mamba, ids):
    res = simulate(our_mamba, ids, layers=[1], device="cpu")
    assert res.layers == [1] and set(res.stats) == {1}
    full = simulate(our_mamba, ids, device="cpu")
    np.testing.assert_allclose(res.stats[1].decay_mean, full.stats[1].decay_mean, rtol=1e-6)
    summary = full.summary()
    assert [row["index"] for row in summary["layers"]] == [0, 1, 2]
    ssmctl.report.dumps(summary)  # strict JSON


# --- rich display -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_layer_run():
    model = ssmctl.init("mamba", d_model=16, n_layers=4, seed=0)
    u = np.random.default_rng(0).standard_normal((1, 600, 16)).astype(np.float32)
    return simulate(model, u, window=(100, 110), progress=False)


def test_simulation_result_and_stats_reprs_are_short(four_layer_run):
    res = four_layer_run
    text = repr(res)
    assert text.startswith("SimulationResult('mamba', tokens=600, batch=1, layers=[0, 1, 2, 3])") and len(text) < 800
    stats = repr(res.stats[3])
    assert stats.startswith("LayerStats(tokens=600, channels=32, states=16)") and len(stats) < 1000
    s = res.stats[3]
    assert f"median {ssmctl.report.fmt(s.abs_quantiles[0.5])}" in stats
    assert f"max {ssmctl.report.format_modulus(s.abs_max, 6)}" in stats
    html = s._repr_html_()
    assert "<svg" in html and "log10(−ln|Ā_t|)" in html and len(html) < 40_000
    assert len(res._repr_html_()) < 20_000


def test_simulation_frames_equal_the_summary(four_layer_run):
    pytest.importorskip("pandas")
    res = four_layer_run
    df = res.to_frame()
    rows = res.summary()["layers"]
    assert df.index.tolist() == [0, 1, 2, 3]
    for row in rows:
        for key in ("abs_max", "dt_median", "memory_horizon_median", "channels"):
            assert df.loc[row["index"], key] == row[key]
    lags = res.stats[2].to_frame()
    np.testing.assert_array_equal(lags.index, res.stats[2].lags)
    np.testing.assert_array_equal(lags["norm_mean"], res.stats[2].decay_mean)
