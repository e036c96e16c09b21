"""Bare S6 / SSD mixers (dsf-mqar S6, S6_2): init, names, the scan against the authors' forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import ShapeError, UnknownNameError
from ssmctl.models import s6

from ._authors_mixers import s6_forward
from ._ltv_checks import rel_err

D, N, BATCH, L = 8, 4, 2, 10


def _layer(variant, **kw):
    layer = ssmctl.init("s6", d_model=D, d_state=N, variant=variant, n_layers=1, bias=True, **kw)[0]
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # move every parameter off its init so each one matters
        for k, t in layer.params.items():
            if k != "Id":
                layer.params[k] = t + 0.3 * torch.randn(t.shape, generator=g)
    return layer


@pytest.mark.parametrize("variant", s6.VARIANTS)
def test_mixer_matches_authors_scan(variant):
    layer = _layer(variant)
    u = torch.randn(BATCH, L, D, generator=torch.Generator().manual_seed(1))
    ref = s6_forward({k: v.double() for k, v in layer.params.items()}, u.double(), ssd=variant == "ssd")
    assert rel_err(s6.mixer_output(layer, u), ref.numpy()) < 1e-6  # the scan's parameters in float32


def test_ssd_ignores_dt_proj_weight_and_has_channel_scalar_transition():
    layer = _layer("ssd")
    u = torch.randn(BATCH, L, D)
    before = s6.mixer_output(layer, u)
    layer.params["dt_proj.weight"] = layer.params["dt_proj.weight"] * 7.0
    np.testing.assert_array_equal(s6.mixer_output(layer, u), before)
    lam = np.asarray(layer.ltv(u).lam)
    np.testing.assert_allclose(lam, lam[..., :1].repeat(N, -1), rtol=1e-6)  # scalar·I within a channel
    # exp(a·softplus(x)) = σ(−x)^(−a): the reversed-sigmoid form of the SSD transition (a = −exp(A_log)).
    a = -np.exp(layer.params["A_log"].double().item())
    x = np.asarray(layer.ltv(u).dt)
    pre = np.log(np.expm1(x))  # softplus⁻¹
    np.testing.assert_allclose(lam[..., 0], (1 / (1 + np.exp(pre))) ** (-a), rtol=1e-5)


def test_init_and_sizes():
    m = ssmctl.init("s6", d_model=32, d_state=8, n_layers=1)[0]
    assert m.config["dt_rank"] == 2
    np.testing.assert_allclose(-s6.continuous_A(m), np.tile(np.arange(1, 9), (32, 1)), rtol=1e-6)
    dt0 = np.log1p(np.exp(m.params["dt_proj.bias"].double().numpy()))
    assert dt0.min() >= 1e-4 and dt0.max() <= 0.1 + 1e-6
    ssd = ssmctl.init("s6", variant="ssd", d_model=32, d_state=8, preset="mqar")[0]
    assert ssd.config["dt_rank"] == 1 and torch.all(ssd.params["dt_proj.bias"] == 0)
    np.testing.assert_allclose(s6.bias_eigenvalues(ssd), np.exp(-np.log(2.0)), rtol=1e-12)  # softplus(0) = ln 2
    with pytest.raises(UnknownNameError):
        ssmctl.init("s6", variant="s7")
    with pytest.raises(ShapeError):
        s6.layer_from_params({**m.params, "D": torch.ones(3)})
