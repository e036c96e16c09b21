"""Mamba (S6): init closed forms, checkpoint names, and the LTV view against transformers' MambaBlock."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from ssmctl.errors import (
    CheckpointError,
    NonFiniteError,
    ShapeError,
    SsmctlError,
    UnknownNameError,
    UnsupportedSystemError,
)
from ssmctl.models import mamba
from ssmctl.systems.lti import DiagonalLTI

from ._ltv_checks import assert_block_output, block_input, rel_err

transformers = pytest.importorskip("transformers")
from transformers.models.mamba import modeling_mamba  # noqa: E402

D_MODEL, N_STATE, EXPAND, D_CONV, DT_RANK = 16, 4, 2, 4, 3
BATCH, L = 2, 13


@pytest.fixture(scope="module")
def hf_block():
    """Block 1 of a tiny random transformers Mamba, every parameter perturbed away from its init."""
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(
        vocab_size=32, hidden_size=D_MODEL, state_size=N_STATE, num_hidden_layers=2, expand=EXPAND,
        conv_kernel=D_CONV, time_step_rank=DT_RANK, use_associative_scan=False, use_mambapy=False,
    )
    model = transformers.MambaForCausalLM(cfg).eval()
    block = model.backbone.layers[1]
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("A_log"):
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith("conv1d.bias") or name.endswith(".D"):
                p.copy_(torch.randn_like(p))
            elif name.endswith("dt_proj.weight"):
                p.mul_(3.0)
    return block


@pytest.fixture(scope="module")
def layer(hf_block):
    return mamba.layer_from_params(hf_block.state_dict(), {"eps": hf_block.norm.variance_epsilon}, index=1)


@pytest.fixture(scope="module")
def u():
    return block_input(BATCH, L, D_MODEL)


# --- init -------------------------------------------------------------------------------------------------

def test_init_follows_mamba_ssm_closed_forms():
    model = ssmctl.init("mamba", d_model=32, n_layers=2, seed=3)
    assert model.source == "init" and len(model) == 2 and model.family == "mamba"
    lay = model[0]
    d_inner = 2 * 32
    assert lay.config["dt_rank"] == math.ceil(32 / 16) and lay.config["d_conv"] == 4 and lay.config["d_state"] == 16
    # S4D-Real: A = −(1..N) in every row.
    np.testing.assert_allclose(mamba.continuous_A(lay), -np.tile(np.arange(1, 17), (d_inner, 1)), rtol=1e-6)
    np.testing.assert_array_equal(lay.params["mixer.D"].numpy(), np.ones(d_inner))
    # dt_proj.bias = softplus⁻¹(Δ0), Δ0 ∈ [1e-3, 1e-1] log-uniform.
    dt0 = np.log1p(np.exp(lay.params["mixer.dt_proj.bias"].double().numpy()))
    assert dt0.min() >= 1e-3 * (1 - 1e-5) and dt0.max() <= 1e-1 * (1 + 1e-5)
    assert np.log10(dt0).min() < -2.6 and np.log10(dt0).max() > -1.4  # spread over the decades, not clumped
    bound = lay.config["dt_rank"] ** -0.5
    assert np.abs(lay.params["mixer.dt_proj.weight"].numpy()).max() <= bound
    for p in lay.params.values():
        assert p.dtype == torch.float32


def test_bias_eigenvalues_closed_form_and_range():
    lay = ssmctl.init("mamba", d_model=64, n_layers=1)[0]
    dt0 = np.log1p(np.exp(lay.params["mixer.dt_proj.bias"].double().numpy()))
    ev = mamba.bias_eigenvalues(lay)
    assert ev.shape == (128, 16)
    np.testing.assert_allclose(ev, np.exp(-dt0[:, None] * np.arange(1, 17)[None, :]), rtol=1e-6)  # A_log is float32
    # models.md: |Ā| ∈ [exp(−16·0.1), exp(−1e-3)] = [0.20, 0.999] at bias-only Δ.
    assert ev.min() >= math.exp(-1.6) - 1e-12 and ev.max() <= math.exp(-1e-3) + 1e-12


def test_dt_range_override_and_seed():
    lay = ssmctl.init("mamba", d_model=16, n_layers=1, dt_min=0.01, dt_max=0.02, seed=5)[0]
    dt0 = np.log1p(np.exp(lay.params["mixer.dt_proj.bias"].double().numpy()))
    assert dt0.min() >= 0.01 * (1 - 1e-5) and dt0.max() <= 0.02 * (1 + 1e-5)
    again = ssmctl.init("mamba", d_model=16, n_layers=1, dt_min=0.01, dt_max=0.02, seed=5)[0]
    other = ssmctl.init("mamba", d_model=16, n_layers=1, dt_min=0.01, dt_max=0.02, seed=6)[0]
    assert torch.equal(lay.params["mixer.in_proj.weight"], again.params["mixer.in_proj.weight"])
    assert not torch.equal(lay.params["mixer.in_proj.weight"], other.params["mixer.in_proj.weight"])


def test_init_names_and_shapes_match_transformers_block():
    cfg = transformers.MambaConfig(vocab_size=8, hidden_size=24, state_size=8, num_hidden_layers=1, expand=2,
                                   conv_kernel=3)
    ref = transformers.MambaForCausalLM(cfg).backbone.layers[0].state_dict()
    ours = ssmctl.init("mamba", d_model=24, d_state=8, d_conv=3, n_layers=1)[0].params
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_presets_and_family_record():
    lay = ssmctl.init("mamba", preset="ssm-benchmark", n_layers=1)[0]
    assert (lay.config["d_model"], lay.config["d_state"]) == (128, 64)
    fam = ssmctl.families()["mamba"]
    assert fam.kind == "LTV" and fam.discretization.startswith("Exact") and "Euler" in fam.notes
    assert all((fam.parametrization, fam.structure, fam.implementation, fam.scaffolding))
    assert set(fam.presets) == {"mamba-130m", "ssm-benchmark"}


# --- against transformers ---------------------------------------------------------------------------------

def test_config_inferred_from_transformers_state_dict(layer):
    assert layer.config["d_model"] == D_MODEL and layer.config["d_inner"] == EXPAND * D_MODEL
    assert (layer.config["d_state"], layer.config["dt_rank"], layer.config["d_conv"]) == (N_STATE, DT_RANK, D_CONV)
    assert mamba.config_from_params(layer.params)["conv_bias"] is True


def test_delta_and_transition_match_what_transformers_scan_sees(hf_block, layer, u, monkeypatch):
    seen = {}
    original = modeling_mamba.mamba_selective_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        captured = dict(x=hidden_states, dt=dt, A=A, B=B, C=C, bias=kwargs["delta_bias"])
        seen.update({k: v.detach().clone() for k, v in captured.items()})
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_mamba, "mamba_selective_scan", spy)
    with torch.no_grad():
        hf_block(u)
    assert seen, "transformers did not call mamba_selective_scan (the path this test hooks)"
    # The scan's own discretization: Δ = softplus(dt + bias), Ā = exp(A Δ), B̄ = Δ B.  (b, d_inner, L) layout.
    delta = F.softplus(seen["dt"] + seen["bias"][:, None]).transpose(1, 2)  # (b, L, d_inner)
    lam_ref = torch.exp(seen["A"][None, None] * delta[..., None])
    Bbar_ref = delta[..., None] * seen["B"].transpose(1, 2)[:, :, None, :]
    sys = layer.ltv(u)
    assert sys.lam.shape == (BATCH, L, 2 * D_MODEL, N_STATE) and sys.B.shape == (BATCH, L, 2 * D_MODEL, N_STATE, 1)
    assert sys.C.shape == (BATCH, L, 2 * D_MODEL, 1, N_STATE) and sys.D.shape == (2 * D_MODEL, 1, 1)
    assert rel_err(sys.dt, delta) < 1e-5
    assert rel_err(sys.lam, lam_ref) < 1e-5
    assert rel_err(sys.B[..., 0], Bbar_ref) < 1e-5
    assert rel_err(sys.C[:, :, 0, 0], seen["C"].transpose(1, 2)) < 1e-5
    assert rel_err(sys.inputs[..., 0], seen["x"].transpose(1, 2)) < 1e-5
    np.testing.assert_array_equal(sys.D[:, 0, 0].numpy(), hf_block.mixer.D.detach().numpy())


def test_simulated_block_output_matches_transformers(hf_block, layer, u):
    with torch.no_grad():
        ref = hf_block(u).double().numpy()
    ours = mamba.block_output_ref(layer, u)
    assert ours.shape == (BATCH, L, D_MODEL)
    assert_block_output(ours, ref, u)


def test_frozen_view_and_stability(layer, u):
    sys = layer.ltv(u.numpy())
    f = layer.frozen(u, 4)
    assert isinstance(f, DiagonalLTI) and f.batch_shape == (BATCH, 2 * D_MODEL) and f.n_states == N_STATE
    np.testing.assert_array_equal(f.lam.real, sys.lam[:, 4].double().numpy())
    lam = sys.abs_eigenvalues()
    assert lam.min() > 0 and lam.max() < 1  # exp(Δ A) with Δ > 0, A < 0
    with pytest.raises(UnsupportedSystemError, match="input-dependent"):
        layer.system()


def test_loaded_jamba_layer_applies_the_inner_dt_b_c_norms(tmp_path, monkeypatch):
    """Jamba's mixer RMS-normalizes δ, B and C after x_proj; a loaded Jamba layer's ltv(u) must too."""
    from transformers.models.jamba import modeling_jamba

    from .. import ckpt_builders as cb

    model = cb.hf_model("jamba", seed=2)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("dt_layernorm.weight", "b_layernorm.weight", "c_layernorm.weight")):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith(("input_layernorm.weight", "mamba.D", "conv1d.bias")):
                p.copy_(torch.randn(p.shape, generator=gen))
    m = ssmctl.load(cb.save_hf(model, tmp_path))
    assert m.extras["layouts"] == ["hf-jamba"] and [lay.index for lay in m.layers] == [0, 2]

    calls, inputs = [], {}
    original = modeling_jamba.mamba_selective_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        y = original(hidden_states, dt, A, B, C, *args, **{**kwargs, "z": None, "return_last_state": False})
        calls.append({k: v.detach().clone() for k, v in
                      dict(x=hidden_states, dt=dt, A=A, B=B, C=C, bias=kwargs["delta_bias"], y=y).items()})
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_jamba, "mamba_selective_scan", spy)
    hooks = [model.model.layers[lay.index].register_forward_pre_hook(
        lambda mod, a, kw, i=lay.index: inputs.__setitem__(i, (a[0] if a else kw["hidden_states"]).detach()),
        with_kwargs=True) for lay in m.layers]
    ids = torch.randint(0, model.config.vocab_size, (BATCH, L), generator=gen)
    with torch.no_grad():
        model(ids, use_cache=False)
    for h in hooks:
        h.remove()
    assert len(calls) == len(m.layers), "transformers did not call mamba_selective_scan (the path this test hooks)"
    for lay, seen in zip(m.layers, calls):
        # The scan's own discretization: Δ = softplus(dt + bias), Ā = exp(A Δ), B̄ = Δ B; (b, d_inner, L) layout.
        delta = F.softplus(seen["dt"] + seen["bias"][:, None]).transpose(1, 2)
        lam_ref = torch.exp(seen["A"][None, None] * delta[..., None])
        sys = lay.ltv(inputs[lay.index])
        assert rel_err(sys.dt, delta) < 1e-4
        assert rel_err(sys.lam, lam_ref) < 1e-4
        assert rel_err(sys.B[..., 0], delta[..., None] * seen["B"].transpose(1, 2)[:, :, None, :]) < 1e-4
        assert rel_err(sys.C[:, :, 0, 0], seen["C"].transpose(1, 2)) < 1e-4
        assert rel_err(sys.output_ref()[..., 0], seen["y"].transpose(1, 2)) < 1e-4
        f = lay.frozen(inputs[lay.index], 5)
        np.testing.assert_allclose(f.lam.real, lam_ref[:, 5].double().numpy(), rtol=1e-4)


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_hyperparameters():
    with pytest.raises(UnknownNameError, match="unknown mamba preset 'huge'; known: mamba-130m, ssm-benchmark"):
        ssmctl.init("mamba", preset="huge")
    with pytest.raises(UnknownNameError, match="mamba: unknown hyperparameter 'd_sate'; known: "):
        ssmctl.init("mamba", d_sate=4)
    with pytest.raises(SsmctlError, match="mamba: dt_min must be > 0 .*, got 0.0"):
        ssmctl.init("mamba", d_model=8, dt_min=0)
    with pytest.raises(SsmctlError, match=r"mamba: dt_min \(0.1\) must not exceed dt_max \(0.01\)"):
        ssmctl.init("mamba", d_model=8, dt_min=0.1, dt_max=0.01)
    with pytest.raises(SsmctlError, match="d_state must be a positive integer, got 0"):
        ssmctl.init("mamba", d_model=8, d_state=0)
    with pytest.raises(UnknownNameError, match="unknown mamba dt_init 'zeros'; known: constant, random"):
        ssmctl.init("mamba", d_model=8, dt_init="zeros")


def test_bad_inputs(layer):
    with pytest.raises(ShapeError, match="expects input width d_model = 16, got 15"):
        layer.ltv(np.zeros((1, 3, 15)))
    with pytest.raises(ShapeError, match=r"needs u of shape \(batch, L, d_model=16\), got \(3, 16\)"):
        layer.ltv(np.zeros((3, 16)))
    with pytest.raises(NonFiniteError, match="input u contains NaN"):
        layer.ltv(np.full((1, 2, 16), np.nan))


def test_bad_checkpoints(hf_block):
    sd = dict(hf_block.state_dict())
    bad = {**sd, "mixer.D": torch.ones(5)}
    with pytest.raises(ShapeError, match=r"parameter mixer.D has shape \(5,\), expected \(32,\)"):
        mamba.layer_from_params(bad, {}, 0)
    bad = {k: v for k, v in sd.items() if k != "mixer.dt_proj.bias"}
    with pytest.raises(CheckpointError, match="missing parameter\\(s\\) mixer.dt_proj.bias"):
        mamba.layer_from_params(bad, {}, 0)
    bad = {**sd, "mixer.x_proj.weight": sd["mixer.x_proj.weight"].clone()}
    bad["mixer.x_proj.weight"][0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="parameter mixer.x_proj.weight has 1 NaN/Inf"):
        mamba.layer_from_params(bad, {}, 0)
    with pytest.raises(ShapeError, match=r"mixer.A_log has shape \(32, 4\), expected \(32, 8\)"):
        mamba.layer_from_params(sd, {"d_state": 8}, 0)
    # Jamba's inner norms come as a set of three, sized (dt_rank,), (N,), (N,).
    partial = {**sd, "mixer.dt_layernorm.weight": torch.ones(DT_RANK)}
    with pytest.raises(CheckpointError, match="missing parameter\\(s\\) mixer.b_layernorm.weight, mixer.c_layernorm"):
        mamba.layer_from_params(partial, {}, 0)
    norms = {**partial, "mixer.b_layernorm.weight": torch.ones(N_STATE), "mixer.c_layernorm.weight": torch.ones(3)}
    with pytest.raises(ShapeError, match=r"mixer.c_layernorm.weight has shape \(3,\), expected \(4,\)"):
        mamba.layer_from_params(norms, {}, 0)
