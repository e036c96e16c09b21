"""LRU: ring init (KS tests), γ normalization, the minimal-LRU forward on a random input, layout, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import ssmctl
from ssmctl.analysis.response import impulse_response
from ssmctl.analysis.spectrum import memory_horizon
from ssmctl.errors import CheckpointError, NonFiniteError, ShapeError, SsmctlError, UnknownNameError
from ssmctl.models import lru


def _lam(p):
    return np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))


def _lru_forward(p, u):
    """NicolasZucchet/minimal-LRU LRU.__call__ in numpy: h_t = λh_{t−1} + B_norm u_t, y_t = Re(C h_t) + D⊙u_t."""
    lam = _lam(p)
    B_norm = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    C = p["C_re"] + 1j * p["C_im"]
    h = np.zeros(lam.shape, dtype=complex)
    ys = []
    for t in range(u.shape[0]):
        h = lam * h + B_norm @ u[t]
        ys.append((C @ h).real + p["D"] * u[t])
    return np.array(ys)


def test_layout_matches_minimal_lru():
    layer = ssmctl.init("lru", n_layers=1)[0]
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes == {
        "nu_log": (128,),
        "theta_log": (128,),
        "gamma_log": (128,),
        "B_re": (128, 256),
        "B_im": (128, 256),
        "C_re": (256, 128),
        "C_im": (256, 128),
        "D": (256,),
    }
    sys = layer.system()
    assert sys.output == "real" and (sys.n_inputs, sys.n_outputs, sys.n_states) == (256, 256, 256)


@pytest.mark.parametrize("r_min, r_max, max_phase", [(0.0, 1.0, 6.28), (0.9, 0.999, math.pi / 10), (0.4, 0.8, 1.0)])
def test_ring_init_distribution(r_min, r_max, max_phase):
    N = 20000
    ring = {"r_min": r_min, "r_max": r_max, "max_phase": max_phase}
    p = ssmctl.init("lru", d_model=1, d_state=N, n_layers=1, seed=123, **ring)[0].params
    lam = _lam(p)
    r, phase = np.abs(lam), np.angle(lam) % (2 * np.pi)
    assert r.min() >= r_min - 1e-12 and r.max() <= r_max + 1e-12
    assert phase.min() >= 0 and phase.max() <= max_phase + 1e-12
    ks_r = stats.kstest(r**2, stats.uniform(loc=r_min**2, scale=r_max**2 - r_min**2).cdf)
    ks_phase = stats.kstest(np.exp(p["theta_log"]), stats.uniform(loc=0, scale=max_phase).cdf)
    assert ks_r.pvalue > 0.01 and ks_phase.pvalue > 0.01
    # ...and a wrong hypothesis (|λ| itself uniform) is rejected, so the test has power
    if r_min == 0.0:
        assert stats.kstest(r, stats.uniform(loc=0, scale=1).cdf).pvalue < 1e-6
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - r**2), rtol=1e-9, atol=1e-13)


def test_projection_scales():
    p = ssmctl.init("lru", d_model=200, d_state=300, n_layers=1, seed=2)[0].params
    assert np.std(p["B_re"]) == pytest.approx(1 / np.sqrt(400), rel=0.02)
    assert np.std(p["B_im"]) == pytest.approx(1 / np.sqrt(400), rel=0.02)
    assert np.std(p["C_re"]) == pytest.approx(1 / np.sqrt(300), rel=0.02)
    assert np.std(p["D"]) == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize("preset", [None, "long_range"])
def test_system_reproduces_lru_forward(preset):
    layer = ssmctl.init("lru", d_model=6, d_state=10, n_layers=1, seed=4, preset=preset)[0]
    np.testing.assert_allclose(lru.eigenvalues_of(layer), _lam(layer.params), rtol=1e-15)
    u = np.random.default_rng(1).standard_normal((80, 6))
    K = impulse_response(layer.system(), 80)  # (L, p, m)
    idx = np.arange(80)[:, None] - np.arange(80)[None, :]
    Kt = np.where((idx >= 0)[..., None, None], K[np.clip(idx, 0, None)], 0.0)
    y = np.einsum("kjpm,jm->kp", Kt, u)
    np.testing.assert_allclose(y, _lru_forward(layer.params, u), rtol=1e-10, atol=1e-12)


def test_gamma_is_the_stored_parameter():
    """minimal-LRU never recomputes γ from λ: after ν changes, B̄ still uses exp(gamma_log)."""
    layer = ssmctl.init("lru", d_model=3, d_state=4, n_layers=1)[0]
    B0 = layer.system().B
    layer.params["nu_log"] = layer.params["nu_log"] - 1.0
    np.testing.assert_array_equal(layer.system().B, B0)
    u = np.random.default_rng(2).standard_normal((30, 3))
    K = impulse_response(layer, 30)
    y = np.stack([sum(K[j] @ u[t - j] for j in range(t + 1)) for t in range(30)])
    np.testing.assert_allclose(y, _lru_forward(layer.params, u), rtol=1e-10, atol=1e-12)


def test_long_range_memory_models_md():
    """r ∈ [0.9, 0.999] ⇒ τ = −1/ln r ∈ [9.49, 999.5] steps at ε = 1/e."""
    m = ssmctl.init("lru", preset="long_range", d_model=2, d_state=20000, n_layers=1, seed=0)
    assert m.config["r_min"] == 0.9 and m.config["max_phase"] == pytest.approx(math.pi / 10)
    tau = memory_horizon(m[0].system(), eps=math.exp(-1))
    assert tau.min() >= 9.49 and tau.max() <= 999.5 + 1e-6
    assert tau.min() == pytest.approx(9.49, abs=0.02) and tau.max() == pytest.approx(999.5, rel=0.01)


@pytest.mark.parametrize(
    "hyper, err, match",
    [
        ({"r_min": 0.9, "r_max": 0.5}, SsmctlError, r"r_min \(0.9\) must not exceed r_max \(0.5\)"),
        ({"r_max": 1.5}, SsmctlError, "r_max must be <= 1"),
        ({"r_min": -0.1}, SsmctlError, "r_min must be >= 0"),
        ({"r_min": 1.0, "r_max": 1.0}, SsmctlError, "r_min must be < 1"),
        ({"max_phase": 0.0}, SsmctlError, "max_phase must be > 0"),
        ({"preset": "short"}, UnknownNameError, "unknown lru preset 'short'; known: long_range"),
        ({"d_hidden": 3}, UnknownNameError, "unknown hyperparameter 'd_hidden'"),
    ],
)
def test_bad_hyperparameters(hyper, err, match):
    with pytest.raises(err, match=match):
        ssmctl.init("lru", **hyper)


def test_layer_from_params():
    src = ssmctl.init("lru", d_model=4, d_state=5, n_layers=1)[0]
    layer = lru.layer_from_params({k: torch.tensor(v) for k, v in src.params.items()}, {}, 7)
    assert layer.index == 7 and layer.config == {"d_state": 5, "d_model": 4}
    np.testing.assert_array_equal(impulse_response(layer, 10), impulse_response(src, 10))
    with pytest.raises(ShapeError, match=r"'C_im' has shape \(5, 4\), expected \(H, N\) = \(4, 5\)"):
        lru.layer_from_params(dict(src.params, C_im=np.zeros((5, 4))), {}, 0)
    with pytest.raises(NonFiniteError, match="'nu_log' has 1 non-finite"):
        lru.layer_from_params(dict(src.params, nu_log=np.array([0, 0, np.inf, 0, 0.0])), {}, 0)
    with pytest.raises(CheckpointError, match="missing parameter 'gamma_log'"):
        lru.layer_from_params({k: v for k, v in src.params.items() if k != "gamma_log"}, {}, 0)


def test_family_record():
    fam = lru.FAMILY
    assert (fam.discretization, fam.structure, fam.implementation) == ("None", "MIMO", "Parallel Scan")
    assert fam.defaults["max_phase"] == 6.28 and "long_range" in fam.presets
