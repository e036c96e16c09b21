"""Mamba-2 (SSD): both A inits, checkpoint names, and the LTV view against transformers' Mamba2Block."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from tests.helpers import needs_grouped_gated_norm
from ssmctl.errors import (
    CheckpointError,
    ShapeError,
    SsmctlError,
    UnknownNameError,
    UnsupportedSystemError,
)
from ssmctl.models import mamba2
from ssmctl.systems.lti import DiagonalLTI

from ._ltv_checks import assert_block_output, block_input, rel_err

transformers = pytest.importorskip("transformers")
from transformers.models.mamba2 import modeling_mamba2  # noqa: E402

D_MODEL, N_STATE, HEADDIM, NHEADS, NGROUPS, CHUNK = 16, 4, 8, 4, 2, 8
D_INNER = 2 * D_MODEL
BATCH, L = 2, 13  # L not a multiple of the chunk size: the reference pads


@pytest.fixture(scope="module")
def hf_block():
    torch.manual_seed(0)
    cfg = transformers.Mamba2Config(
        vocab_size=32, hidden_size=D_MODEL, state_size=N_STATE, num_hidden_layers=2, expand=2,
        head_dim=HEADDIM, num_heads=NHEADS, n_groups=NGROUPS, chunk_size=CHUNK, conv_kernel=4,
    )
    model = transformers.Mamba2ForCausalLM(cfg).eval()
    block = model.backbone.layers[1]
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("A_log"):
                p.add_(0.3 * torch.randn_like(p))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith("conv1d.bias") or name.endswith(".D"):
                p.copy_(torch.randn_like(p))
    return block


@pytest.fixture(scope="module")
def layer(hf_block):
    eps = hf_block.norm.variance_epsilon
    cfg = {"ngroups": NGROUPS, "eps": eps, "norm_eps": hf_block.mixer.norm.variance_epsilon}
    return mamba2.layer_from_params(hf_block.state_dict(), cfg, index=1)


@pytest.fixture(scope="module")
def u():
    return block_input(BATCH, L, D_MODEL)


# --- init -------------------------------------------------------------------------------------------------

def test_mamba_ssm_init_draws_A_in_1_16():
    lay = ssmctl.init("mamba2", d_model=256, headdim=8, d_state=8, n_layers=1, seed=2)[0]
    A = -mamba2.continuous_A(lay)
    assert A.shape == (64,) and A.min() >= 1.0 - 1e-6 and A.max() <= 16.0 + 1e-5
    assert A.max() - A.min() > 10  # spread over the range, not a constant
    dt0 = np.log1p(np.exp(lay.params["mixer.dt_bias"].double().numpy()))
    assert dt0.min() >= 1e-3 * (1 - 1e-5) and dt0.max() <= 1e-1 * (1 + 1e-5)
    np.testing.assert_array_equal(lay.params["mixer.D"].numpy(), np.ones(64))
    ev = mamba2.bias_eigenvalues(lay)
    np.testing.assert_allclose(ev, np.exp(-dt0 * A), rtol=1e-12)
    assert ev.min() >= np.exp(-1.6) - 1e-9 and ev.max() <= np.exp(-1e-3) + 1e-9  # models.md: [0.20, 0.999]


def test_transformers_init_equals_transformers_A_log():
    cfg = transformers.Mamba2Config(vocab_size=8, hidden_size=32, state_size=8, num_hidden_layers=1, expand=2,
                                    head_dim=8, num_heads=8, n_groups=2, conv_kernel=4)
    ref = transformers.Mamba2ForCausalLM(cfg).backbone.layers[0].state_dict()
    model = ssmctl.init("mamba2", preset="transformers", d_model=32, headdim=8, d_state=8, ngroups=2, n_layers=1)
    ours = model[0].params
    np.testing.assert_allclose(ours["mixer.A_log"].numpy(), ref["mixer.A_log"].numpy(), rtol=1e-7)
    np.testing.assert_allclose(-mamba2.continuous_A(model[0]), np.arange(1, 9), rtol=1e-6)
    assert model[0].config["a_init"] == "transformers"
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert ssmctl.init("mamba2", a_init="transformers", d_model=32, headdim=8, d_state=8,
                       n_layers=1)[0].params["mixer.A_log"].allclose(ours["mixer.A_log"])


def test_family_record_and_presets():
    fam = ssmctl.families()["mamba2"]
    assert fam.kind == "LTV" and set(fam.variants) == {"mamba_ssm", "transformers"}
    assert "U[1, 16]" in fam.notes and "1..nheads" in fam.notes
    lay = ssmctl.init("mamba2", d_model=32, headdim=16, d_state=4, n_layers=1, D_has_hdim=True)[0]
    assert lay.params["mixer.D"].shape == (64,) and lay.config["nheads"] == 4


# --- against transformers ---------------------------------------------------------------------------------

def test_config_inferred_from_state_dict(layer):
    c = layer.config
    assert (c["d_model"], c["d_inner"], c["nheads"], c["headdim"]) == (D_MODEL, D_INNER, NHEADS, HEADDIM)
    assert (c["ngroups"], c["d_state"], c["d_conv"]) == (NGROUPS, N_STATE, 4)


def test_delta_and_transition_match_what_transformers_scan_sees(hf_block, layer, u, monkeypatch):
    seen = {}
    original = modeling_mamba2.mamba2_chunk_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        seen.update({k: v.detach().clone() for k, v in dict(
            x=hidden_states, dt=dt, A=A, B=B, C=C, dt_bias=kwargs["dt_bias"]).items()})
        seen["dt_limit"] = kwargs["dt_limit"]
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_mamba2, "mamba2_chunk_scan", spy)
    with torch.no_grad():
        hf_block(u)
    assert seen, "transformers did not call mamba2_chunk_scan (the path this test hooks)"
    lo, hi = seen["dt_limit"]
    delta = F.softplus(seen["dt"] + seen["dt_bias"]).clamp(min=lo, max=hi)  # (b, L, H)
    lam_ref = torch.exp(seen["A"] * delta)
    reps = NHEADS // NGROUPS
    B_ref = delta[..., None] * seen["B"].repeat_interleave(reps, dim=2)  # (b, L, H, N)
    sys = layer.ltv(u)
    assert sys.lam.shape == (BATCH, L, NHEADS, HEADDIM, N_STATE)
    assert sys.B.shape == (BATCH, L, NHEADS, HEADDIM, N_STATE, 1)
    assert sys.C.shape == (BATCH, L, NHEADS, HEADDIM, 1, N_STATE) and sys.D.shape == (NHEADS, HEADDIM, 1, 1)
    assert rel_err(sys.dt[..., 0], delta) < 1e-5
    assert rel_err(sys.lam[..., 0, 0], lam_ref) < 1e-5
    # One scalar per head: identical over headdim channels and states.
    assert torch.equal(sys.lam, sys.lam[:, :, :, :1, :1].expand_as(sys.lam))
    assert rel_err(sys.B[:, :, :, 0, :, 0], B_ref) < 1e-5
    assert rel_err(sys.C[:, :, :, 0, 0, :], seen["C"].repeat_interleave(reps, dim=2)) < 1e-5
    assert rel_err(sys.inputs[..., 0], seen["x"]) < 1e-5


@needs_grouped_gated_norm
def test_simulated_block_output_matches_transformers(hf_block, layer, u):
    with torch.no_grad():
        ref = hf_block(u).double().numpy()
    ours = mamba2.block_output_ref(layer, u)
    assert_block_output(ours, ref, u)


def test_D_with_headdim_follows_head_major_layout(layer, u):
    params = dict(layer.params)
    params["mixer.D"] = torch.arange(D_INNER, dtype=torch.float32)
    lay = mamba2.layer_from_params(params, {"ngroups": NGROUPS}, 0)
    assert lay.config["D_has_hdim"]
    D = lay.ltv(u).D[..., 0, 0]
    np.testing.assert_array_equal(D.numpy(), np.arange(D_INNER).reshape(NHEADS, HEADDIM))


def test_frozen_view(layer, u):
    f = layer.frozen(u, 12)
    assert isinstance(f, DiagonalLTI) and f.batch_shape == (BATCH, NHEADS, HEADDIM) and f.n_states == N_STATE
    sys = layer.ltv(u)  # checked against transformers' scan inputs above
    np.testing.assert_array_equal(f.lam.real, sys.lam[:, 12].double().numpy())
    np.testing.assert_array_equal(f.B.real, sys.B[:, 12].double().numpy())
    np.testing.assert_array_equal(f.C.real, sys.C[:, 12].double().numpy())
    np.testing.assert_array_equal(f.D, sys.D.double().numpy())
    assert f.real_state and f.meta["frozen_at"] == 12
    lam = sys.abs_eigenvalues()
    assert lam.min() > 0 and lam.max() < 1
    with pytest.raises(UnsupportedSystemError, match="input-dependent"):
        layer.system()


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_hyperparameters():
    with pytest.raises(UnknownNameError, match="unknown mamba2 a_init convention 'random'; known: mamba_ssm, "
                                               "transformers"):
        ssmctl.init("mamba2", a_init="random")
    with pytest.raises(UnknownNameError, match="unknown mamba2 preset 'big'; known: mamba2-130m, mamba_ssm, "
                                               "transformers"):
        ssmctl.init("mamba2", preset="big")
    with pytest.raises(ShapeError, match="d_inner = expand·d_model = 40 is not divisible by headdim = 64"):
        ssmctl.init("mamba2", d_model=20)
    with pytest.raises(ShapeError, match="nheads = 4 is not divisible by ngroups = 3"):
        ssmctl.init("mamba2", d_model=32, headdim=16, ngroups=3)
    with pytest.raises(SsmctlError, match="dt_min must be a positive number, got -0.1"):
        ssmctl.init("mamba2", d_model=32, headdim=16, dt_min=-0.1)
    with pytest.raises(SsmctlError, match=r"A_init_range must satisfy 0 < low <= high, got \(0, 16\)"):
        ssmctl.init("mamba2", d_model=32, headdim=16, A_init_range=(0, 16))


def test_bad_inputs_and_checkpoints(hf_block, layer):
    with pytest.raises(ShapeError, match="mamba2 layer 1: ltv\\(u\\) expects input width d_model = 16, got 8"):
        layer.ltv(torch.zeros(1, 4, 8))
    sd = dict(hf_block.state_dict())
    with pytest.raises(ShapeError, match="nheads = 4 is not divisible by ngroups = 3"):
        mamba2.layer_from_params(sd, {"ngroups": 3}, 0)
    with pytest.raises(ShapeError, match="mixer.conv1d.weight has 45 channels; expected d_inner \\+ "
                                         "2·ngroups·d_state with d_inner = 32, ngroups = 2"):
        mamba2.layer_from_params({**sd, "mixer.conv1d.weight": torch.zeros(45, 1, 4)}, {"ngroups": NGROUPS}, 0)
    with pytest.raises(ShapeError, match=r"mamba2 layer 0: parameter mixer.in_proj.weight has shape \(80, 16\), "
                                         r"expected \(84, 16\)"):
        mamba2.layer_from_params({**sd, "mixer.in_proj.weight": torch.zeros(80, 16)}, {"ngroups": NGROUPS}, 0)
    with pytest.raises(CheckpointError, match="missing parameter\\(s\\) mixer.dt_bias"):
        mamba2.layer_from_params({k: v for k, v in sd.items() if k != "mixer.dt_bias"}, {"ngroups": NGROUPS}, 0)
    with pytest.raises(UnsupportedSystemError, match="gated-MLP share"):
        mamba2.layer_from_params({**sd, "mixer.norm.weight": torch.ones(24)}, {"ngroups": NGROUPS}, 0)
