"""qLSTM family: init, checkpoint names, the mixer against the authors' forward, the DSF core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import CheckpointError, UnknownNameError
from ssmctl.models import qlstm

from ._authors_mixers import qlstm_forward
from ._ltv_checks import rel_err

D, BATCH, L = 6, 2, 11


def _u(seed=1):
    return torch.randn(BATCH, L, D, generator=torch.Generator().manual_seed(seed))


def _layer(variant, **kw):
    return ssmctl.init("qlstm", d_model=D, variant=variant, n_layers=1, **kw)[0]


@pytest.mark.parametrize("variant", qlstm.VARIANTS)
def test_mixer_matches_authors_qlstm(variant):
    layer = _layer(variant)
    layer.params["alpha"] = torch.tensor(1.7)
    u = _u()
    ref = qlstm_forward({k: v.double() for k, v in layer.params.items()}, u.double(),
                        reversed_sigmoid=variant == "reversed")
    assert rel_err(qlstm.mixer_output(layer, u), ref.numpy()) < 1e-12


def test_dsf_core_shapes_and_transition():
    layer = _layer("reversed")
    layer.params["alpha"] = torch.tensor(2.5)
    system = layer.ltv(_u())
    assert system.channel_shape == (2 * D,) and system.n_states == 1
    lam = np.asarray(system.lam)
    assert ((lam > 0) & (lam < 1)).all()
    # σ(−f)^relu(α) against the gates computed separately.
    x = np.asarray(system.inputs)[..., 0]
    W, b = layer.params["gates.weight"].double().numpy(), layer.params["gates.bias"].double().numpy()
    f = (x @ W.T + b)[..., : 2 * D]
    np.testing.assert_allclose(lam[..., 0], (1 / (1 + np.exp(f))) ** 2.5, rtol=1e-12)
    layer.params["alpha"] = torch.tensor(-0.3)
    assert np.all(np.asarray(layer.ltv(_u()).lam) == 1.0)


def test_init_statistics():
    layer = ssmctl.init("qlstm", d_model=128, n_layers=1)[0]
    p = layer.params
    assert abs(p["input.weight"].std().item() - 128**-0.5) < 0.05 * 128**-0.5
    assert abs(p["gates.weight"].std().item() - 256**-0.5) < 0.05 * 256**-0.5
    assert p["alpha"].item() == 1.0 and p["conv.weight"].abs().max() <= 0.5
    mq = ssmctl.init("qlstm", d_model=128, preset="mqar")[0].params
    assert abs(mq["gates.weight"].std().item() - 0.02) < 0.001 and torch.all(mq["gates.bias"] == 0)


def test_layer_from_params_needs_variant():
    layer = _layer("standard")
    with pytest.raises(CheckpointError, match="variant.*standard, reversed"):
        qlstm.layer_from_params(layer.params)
    with pytest.raises(UnknownNameError):
        qlstm.layer_from_params(layer.params, {"variant": "forward"})
    assert qlstm.layer_from_params(layer.params, {"variant": "standard"}).config["hidden"] == 2 * D
