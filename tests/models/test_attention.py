"""Attention family: init, checkpoint names, the mixer against the authors' forward, the DSF core."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import CheckpointError, ShapeError, UnknownNameError, UnsupportedSystemError
from ssmctl.models import attention

from ._authors_mixers import mha_forward, mhna_forward
from ._ltv_checks import rel_err

D, DQK, H, BATCH, L = 8, 6, 2, 2, 9


def _u(length=L, d=D, seed=1):
    return torch.randn(BATCH, length, d, generator=torch.Generator().manual_seed(seed))


def _layer(variant, eta="exp", **kw):
    cfg = dict(variant=variant, d_model=D, d_qk=DQK, num_heads=H, n_layers=1)
    if variant == "normalized":
        cfg["eta"] = eta
    cfg.update(kw)
    return ssmctl.init("attention", **cfg)[0]


def _p64(layer):
    return {k: v.double() for k, v in layer.params.items()}


@pytest.mark.parametrize("variant", ["softmax", "linear"])
def test_mixer_matches_authors_mha(variant):
    layer = _layer(variant)
    u = _u()
    ref = mha_forward(_p64(layer), u.double(), d_qk=DQK, num_heads=H, lin_att=variant == "linear")
    assert rel_err(attention.mixer_output(layer, u), ref.numpy()) < 1e-12


@pytest.mark.parametrize("eta", attention.ETAS)
def test_mixer_matches_authors_mhna(eta):
    layer = _layer("normalized", eta)
    u = _u()
    ref = mhna_forward(_p64(layer), u.double(), d_qk=DQK, num_heads=H, norm_fn=eta)
    assert rel_err(attention.mixer_output(layer, u), ref.numpy()) < 1e-12


@pytest.mark.parametrize("variant,eta", [("linear", None), ("normalized", "exp"), ("normalized", "softplus"),
                                         ("normalized", "sigmoid")])
def test_dsf_core_recurrence_is_alpha_times_values(variant, eta):
    layer = _layer(variant, eta or "exp")
    u = _u()
    system = layer.ltv(u)
    assert system.channel_shape == (H, D // H) and system.n_states == DQK // H
    alpha, v, _ = attention._alpha(layer, u)
    direct = torch.einsum("bhij,bjhc->bihc", alpha, v).numpy()
    assert rel_err(system.output_ref()[..., 0], direct) < 1e-12
    # Λ_i is the same scalar for every state and value channel of a head, and telescopes to η_j/η_i.
    log_eta = attention.log_normalizer(layer, u)
    lam = np.asarray(system.lam)[..., 0, 0]
    np.testing.assert_allclose(lam[:, 1:], np.exp(log_eta[:, :-1] - log_eta[:, 1:]), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(system.log_lam)[..., 0, 0], np.log(lam), rtol=1e-12, atol=1e-15)


def test_linear_attention_rows_convex_and_lambda_exceeds_one():
    layer = _layer("linear")
    u = _u(length=40, seed=3)
    alpha = attention.attention_matrix(layer, u)
    assert (alpha >= 0).all() and np.allclose(alpha.sum(-1), 1.0)
    assert np.all(np.triu(alpha, 1) == 0)
    lam = np.asarray(layer.ltv(u).lam)[..., 0, 0, 0]
    assert (lam > 1).any(), "linear attention's Λ_i is not bounded by 1"


def test_normalized_lambda_closed_form():
    """η = exp: Λ_i = exp(W_η(u_{i−1} − u_i)), the bias cancels."""
    layer = _layer("normalized", "exp")
    u = _u()
    lam = np.asarray(layer.ltv(u).lam)[..., 0, 0]  # (b, L, H)
    W = layer.params["Wn.weight"].double().numpy()
    ud = u.double().numpy()
    want = np.exp((ud[:, :-1] - ud[:, 1:]) @ W.T)
    np.testing.assert_allclose(lam[:, 1:], want, rtol=1e-12)


def test_softmax_log_normalizer_exact_in_log_space():
    layer = _layer("softmax")
    u = 30 * _u()  # scores of hundreds: a naive exp overflows nothing here but loses the small terms
    q, k, _, _ = attention._qkv(layer, u)
    m = DQK // H
    s = torch.einsum("bihm,bjhm->bhij", q, k).numpy() / math.sqrt(m)
    want = np.empty((BATCH, L, H))
    for i in range(L):
        row = s[:, :, i, : i + 1]
        top = row.max(-1, keepdims=True)
        want[:, i] = (top[..., 0] + np.log(np.exp(row - top).sum(-1)))
    np.testing.assert_allclose(attention.log_normalizer(layer, u), want, rtol=1e-12, atol=1e-12)


def test_softmax_ltv_refused_naming_alternatives():
    layer = _layer("softmax")
    with pytest.raises(UnsupportedSystemError, match=r"features=p.*materialize.*dsf_eigenvalues"):
        layer.ltv(_u())


def test_taylor_features_converge_to_softmax():
    layer = _layer("softmax")
    u = 0.5 * _u()
    alpha, v, _ = attention._alpha(layer, u)
    exact = torch.einsum("bhij,bjhc->bihc", alpha, v).numpy()
    m = DQK // H
    errs = []
    for p in (0, 2, 4, 6):
        system = attention.taylor_ltv(layer, u, p)
        assert system.n_states == sum(m**r for r in range(p + 1))
        errs.append(rel_err(system.output_ref()[..., 0], exact))
    assert all(b < a for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-4
    with pytest.raises(ssmctl.errors.SsmctlError, match="non-negative integer"):
        attention.taylor_ltv(layer, u, -1)


def test_init_mixer_bounds_and_mqar_statistics():
    layer = ssmctl.init("attention", d_model=64, variant="normalized", num_heads=4, n_layers=1)[0]
    for name, t in layer.params.items():
        assert t.abs().max() <= 64**-0.5 + 1e-7, name
        assert t.abs().max() > 0.8 * 64**-0.5, name
    model = ssmctl.init("attention", preset="mqar", d_model=256, variant="normalized")
    p = model[0].params
    assert model.config["n_layers"] == 2
    for proj in ("Wqk", "Wv", "Wn"):
        assert abs(p[f"{proj}.weight"].std().item() - 0.02) < 0.002
        assert torch.all(p[f"{proj}.bias"] == 0)
    assert abs(p["out_proj.weight"].std().item() - 0.01) < 0.001
    assert torch.all(p["out_proj.bias"] == 0)


def test_layer_from_params_needs_variant_and_heads():
    layer = _layer("linear")
    with pytest.raises(CheckpointError, match="variant"):
        attention.layer_from_params(layer.params)
    with pytest.raises(CheckpointError, match="num_heads"):
        attention.layer_from_params(layer.params, {"variant": "linear"})
    again = attention.layer_from_params(layer.params, {"variant": "linear", "num_heads": H})
    assert again.config["head_dim"] == DQK // H
    norm = _layer("normalized")
    with pytest.raises(CheckpointError, match="eta"):
        attention.layer_from_params(norm.params)
    got = attention.layer_from_params(norm.params, {"eta": "sigmoid"})
    assert got.config["num_heads"] == H and got.config["variant"] == "normalized"
    with pytest.raises(ShapeError, match="not divisible"):
        attention.layer_from_params(layer.params, {"variant": "linear", "num_heads": 4})
    with pytest.raises(UnknownNameError, match="eta"):
        ssmctl.init("attention", variant="normalized", eta="relu")


def test_bad_input_shape():
    layer = _layer("linear")
    with pytest.raises(ShapeError, match="d_model = 8"):
        layer.ltv(torch.zeros(1, 3, 5))
