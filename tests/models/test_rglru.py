"""RG-LRU: the init conventions' closed forms, checkpoint names, and the LTV view against transformers'
RecurrentGemma recurrent block."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import CheckpointError, ShapeError, SsmctlError, UnknownNameError, UnsupportedSystemError
from ssmctl.models import rglru
from ssmctl.systems.lti import DiagonalLTI

from ._ltv_checks import assert_block_output, block_input, rel_err

transformers = pytest.importorskip("transformers")

D_MODEL, LRU_WIDTH, HEADS, D_CONV = 16, 24, 4, 4
BATCH, L = 2, 13
RP = "temporal_block.rg_lru.recurrent_param"


def _softplus(x):
    return np.logaddexp(0.0, x)


@pytest.fixture(scope="module")
def hf_layer():
    """Decoder layer 1 of a tiny random RecurrentGemma (recurrent blocks only), parameters perturbed."""
    torch.manual_seed(0)
    cfg = transformers.RecurrentGemmaConfig(
        vocab_size=32, hidden_size=D_MODEL, lru_width=LRU_WIDTH, num_attention_heads=HEADS, num_hidden_layers=2,
        intermediate_size=48, block_types=["recurrent"], attention_window_size=16, conv1d_width=D_CONV,
    )
    model = transformers.RecurrentGemmaForCausalLM(cfg).eval()
    layer = model.model.layers[1]
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("recurrent_param"):
                continue
            if name.endswith("bias"):
                p.copy_(0.5 * torch.randn_like(p))
            elif "norm" in name:
                p.copy_(0.3 * torch.randn_like(p))
            elif "gate_weight" in name:  # transformers' 0.01 variance makes r_t ≈ ½: widen it
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
    return layer


@pytest.fixture(scope="module")
def layer(hf_layer):
    return rglru.layer_from_params(hf_layer.state_dict(), {"eps": hf_layer.temporal_pre_norm.eps}, index=1)


@pytest.fixture(scope="module")
def u():
    return block_input(BATCH, L, D_MODEL)


# --- init conventions -------------------------------------------------------------------------------------

def test_recurrentgemma_ring_init():
    lay = ssmctl.init("rglru", d_model=256, n_layers=1, seed=4)[0]
    a = rglru.recurrence_base(lay)
    p = lay.params[RP].double().numpy()
    np.testing.assert_allclose(a, 1.0 / (1.0 + np.exp(p)), rtol=1e-12)  # a = σ(−recurrent_param)
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    assert a.min() < 0.92 and a.max() > 0.99  # covers the ring
    a8 = rglru.bias_eigenvalues(lay)
    np.testing.assert_allclose(a8, a**8, rtol=1e-12)
    assert a8.min() >= 0.9**8 - 1e-6 and a8.max() <= 0.999**8 + 1e-6  # models.md: [0.430, 0.992]
    np.testing.assert_allclose(rglru.bias_eigenvalues(lay, r=1 / 8), a, rtol=1e-12)
    np.testing.assert_allclose(rglru.bias_eigenvalues(lay, r="bias"), a**4, rtol=1e-12)  # zero gate bias: r = ½
    assert lay.config["c"] == 8.0 and lay.config["a_init"] == "recurrentgemma"


def test_ssm_benchmark_conventions():
    lo, hi = math.exp(-8 * _softplus(-4.323)), math.exp(-8 * _softplus(-9.0))  # a^8 at the grid ends
    assert abs(lo - 0.900) < 1e-3 and abs(hi - 0.999) < 1e-3
    exp_lay = ssmctl.init("rglru", preset="ssm-benchmark-exp", n_layers=1)[0]
    np.testing.assert_allclose(exp_lay.params[RP].numpy(), np.linspace(-4.323, -9.0, 256), rtol=1e-6)
    uni = ssmctl.init("rglru", preset="ssm-benchmark", n_layers=1)[0]
    assert uni.config["num_heads"] == 1 and uni.config["lru_width"] == 256
    a8 = np.sort(rglru.bias_eigenvalues(uni))
    np.testing.assert_allclose([a8[0], a8[-1]], [lo, hi], rtol=1e-6)
    np.testing.assert_allclose(np.quantile(a8, [0.25, 0.5, 0.75]), [0.925, 0.949, 0.974], atol=3e-3)
    # the grid itself: softplus⁻¹(linspace(1e-3, 0.1)) mapped affinely onto [−9, −4.323]
    grid = np.log(np.expm1(np.linspace(1e-3, 0.1, 256)))
    expected = (grid - grid.min()) / (grid.max() - grid.min()) * 4.677 - 9.0
    np.testing.assert_allclose(uni.params[RP].numpy(), expected, rtol=1e-5)


def test_init_names_and_shapes_match_transformers(hf_layer):
    ours = ssmctl.init("rglru", d_model=D_MODEL, lru_width=LRU_WIDTH, num_heads=HEADS, n_layers=1)[0].params
    ref = {k: tuple(v.shape) for k, v in hf_layer.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: ref[k] for k in ours}
    assert set(ref) - set(ours) == {k for k in ref if k.startswith(("channel_pre_norm", "mlp_block"))}


def test_family_record():
    fam = ssmctl.families()["rglru"]
    assert fam.kind == "LTV" and fam.discretization.startswith("None") and set(fam.variants) == set(rglru.A_INITS)
    assert "recurrent_param" in fam.notes and {"recurrentgemma", "ssm-benchmark"} <= set(fam.presets)


# --- against transformers ---------------------------------------------------------------------------------

def test_config_inferred(layer):
    c = layer.config
    assert (c["d_model"], c["lru_width"], c["num_heads"], c["d_conv"], c["c"]) == (D_MODEL, LRU_WIDTH, HEADS, 4, 8.0)


def test_gates_match_what_transformers_rg_lru_sees(hf_layer, layer, u, monkeypatch):
    seen = {}
    rg = hf_layer.temporal_block.rg_lru
    original = rg._rnn_scan

    def spy(hidden_states, recurrent_gate, reset, recurrent_states, *args, **kwargs):
        seen.update(bx=hidden_states.detach().clone(), a=recurrent_gate.detach().clone(), reset=reset.clone())
        return original(hidden_states, recurrent_gate, reset, recurrent_states, *args, **kwargs)

    monkeypatch.setattr(rg, "_rnn_scan", spy)
    handle = rg.register_forward_hook(lambda mod, args, out: seen.update(x=args[0].detach().clone()))
    try:
        with torch.no_grad():
            hf_layer(u, position_ids=torch.arange(L)[None], attention_mask=None, use_cache=False)
    finally:
        handle.remove()
    assert "a" in seen and "x" in seen, "transformers did not run the hooked RG-LRU path"
    sys = layer.ltv(u)
    assert sys.lam.shape == (BATCH, L, LRU_WIDTH, 1) and sys.B.shape == (BATCH, L, LRU_WIDTH, 1, 1)
    assert sys.C.shape == (BATCH, L, LRU_WIDTH, 1, 1) and sys.D.shape == (LRU_WIDTH, 1, 1)
    assert rel_err(sys.lam[..., 0], seen["a"]) < 1e-5  # a_t before the reference's reset masking
    assert rel_err(sys.inputs[..., 0], seen["x"]) < 1e-5
    assert rel_err(sys.B[..., 0, 0] * sys.inputs[..., 0], seen["bx"]) < 1e-5  # B̄_t x_t incl. the reset at t = 0
    np.testing.assert_array_equal(sys.C.numpy(), 1.0)
    np.testing.assert_array_equal(sys.D.numpy(), 0.0)
    # Δ_t = c·r_t, Ā_t = exp(Δ_t · log a)
    np.testing.assert_allclose(sys.lam[..., 0].numpy(), np.exp(sys.dt.numpy() * rglru.continuous_A(layer)),
                               rtol=1e-5)


def test_simulated_block_output_matches_transformers(hf_layer, layer, u):
    pos = torch.arange(L)[None]
    with torch.no_grad():
        temporal = hf_layer.temporal_block(hf_layer.temporal_pre_norm(u), position_ids=pos, attention_mask=None,
                                           use_cache=False)[0]
        full = hf_layer(u, position_ids=pos, attention_mask=None, use_cache=False)
    ref = (u + temporal).double().numpy()
    ours = rglru.block_output_ref(layer, u)
    assert_block_output(ours, ref, u)
    # our temporal residual through transformers' own channel (MLP) half gives the whole decoder layer
    res = torch.from_numpy(ours).float()
    with torch.no_grad():
        whole = res + hf_layer.mlp_block(hf_layer.channel_pre_norm(res))
    assert rel_err(whole, full) < 1e-4


def test_reset_option_and_frozen(layer, u):
    with_reset, without = layer.ltv(u), rglru.ltv(layer, u, reset=False)
    lam0 = with_reset.lam[:, 0, :, 0]
    np.testing.assert_allclose(without.B[:, 0, :, 0, 0].numpy(),
                               (with_reset.B[:, 0, :, 0, 0] * torch.sqrt(1 - lam0**2)).numpy(), rtol=1e-5)
    assert torch.equal(with_reset.B[:, 1:], without.B[:, 1:]) and torch.equal(with_reset.lam, without.lam)
    f = layer.frozen(u, 5)
    assert isinstance(f, DiagonalLTI) and f.batch_shape == (BATCH, LRU_WIDTH) and f.n_states == 1 and f.real_state
    np.testing.assert_array_equal(f.lam.real, with_reset.lam[:, 5].double().numpy())
    np.testing.assert_array_equal(f.B.real, with_reset.B[:, 5].double().numpy())
    np.testing.assert_array_equal(f.C.real, 1.0)
    np.testing.assert_array_equal(f.D, 0.0)
    lam = with_reset.abs_eigenvalues()
    assert lam.min() > 0 and lam.max() < 1
    with pytest.raises(UnsupportedSystemError, match="input-dependent"):
        layer.system()


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_hyperparameters(layer):
    with pytest.raises(UnknownNameError, match="unknown rglru a_init convention 'linear'; known: exp, "
                                               "recurrentgemma, transformers, uniform"):
        ssmctl.init("rglru", a_init="linear")
    with pytest.raises(ShapeError, match="lru_width = 30 is not divisible by num_heads = 4"):
        ssmctl.init("rglru", d_model=30)
    with pytest.raises(SsmctlError, match="c must be a positive number, got 0"):
        ssmctl.init("rglru", d_model=16, c=0)
    with pytest.raises(SsmctlError, match="need 0 < min_rad <= max_rad < 1"):
        ssmctl.init("rglru", d_model=16, min_rad=0.9, max_rad=1.2)
    with pytest.raises(SsmctlError, match=r"the gate value r must lie in \[0, 1\], got 2"):
        rglru.bias_eigenvalues(layer, r=2)
    with pytest.raises(UnknownNameError, match="unknown rglru gate value 'mean'; known: bias"):
        rglru.bias_eigenvalues(layer, r="mean")


def test_bad_inputs_and_checkpoints(hf_layer, layer):
    with pytest.raises(ShapeError, match="rglru layer 1: ltv\\(u\\) expects input width d_model = 16, got 24"):
        layer.ltv(np.zeros((1, 5, 24)))
    sd = dict(hf_layer.state_dict())
    bad = {**sd, "temporal_block.rg_lru.input_gate_bias": torch.zeros(4, 5)}
    with pytest.raises(ShapeError, match=r"parameter temporal_block.rg_lru.input_gate_bias has shape \(4, 5\), "
                                         r"expected \(4, 6\)"):
        rglru.layer_from_params(bad, {}, 0)
    with pytest.raises(CheckpointError, match=f"missing parameter\\(s\\) {RP}"):
        rglru.layer_from_params({k: v for k, v in sd.items() if k != RP}, {}, 0)
    with pytest.raises(ShapeError, match="lru_width = 24 is not divisible by num_heads = 5"):
        rglru.layer_from_params(sd, {"num_heads": 5}, 0)
