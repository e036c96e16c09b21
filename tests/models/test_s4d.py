"""S4D: closed-form inits, models.md ranges, the reference Vandermonde kernel, layout and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.analysis.response import impulse_response
from ssmctl.analysis.spectrum import eigenvalues, memory_horizon
from ssmctl.errors import CheckpointError, NonFiniteError, ShapeError, SsmctlError, UnknownNameError
from ssmctl.models import hippo, s4d


def _continuous(layer):
    p = layer.params
    A = -np.exp(p["kernel.log_A_real"])
    if "kernel.A_imag" in p:
        A = A + 1j * p["kernel.A_imag"]
        C = p["kernel.C"][..., 0] + 1j * p["kernel.C"][..., 1]
    else:
        C = p["kernel.C"]
    return A, C, np.exp(p["kernel.log_dt"])


def _reference_kernel(layer, L):
    """state-spaces/s4 kernels in numpy float64: minimal s4d.py (zoh) and SSMKernelDiag (bilinear); D excluded."""
    A, C, dt = _continuous(layer)
    dtA = A * dt[:, None]
    if layer.config["discretization"] == "zoh":
        Ct = C * (np.exp(dtA) - 1.0) / A
        V = np.exp(dtA[..., None] * np.arange(L))
    else:
        Ct = C * dt[:, None] / (1.0 - dtA / 2)
        V = ((1.0 + dtA / 2) / (1.0 - dtA / 2))[..., None] ** np.arange(L)
    return 2 * np.einsum("hn,hnl->hl", Ct, V).real


def test_layout_matches_minimal_s4d():
    m = ssmctl.init("s4d", d_model=6, d_state=10, n_layers=2, seed=3)
    assert m.family == "s4d" and m.source == "init" and len(m) == 2
    shapes = {k: v.shape for k, v in m[1].params.items()}
    assert shapes == {
        "kernel.log_dt": (6,),
        "kernel.log_A_real": (6, 5),
        "kernel.A_imag": (6, 5),
        "kernel.C": (6, 5, 2),
        "D": (6,),
    }
    assert all(v.dtype == np.float64 for v in m[1].params.values())
    assert m[1].config["variant"] == "lin" and m[1].config["discretization"] == "zoh"
    np.testing.assert_allclose(m[0].params["kernel.log_A_real"], np.log(0.5))


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("lin", lambda n, N: -0.5 + 1j * np.pi * n),
        ("inv", lambda n, N: -0.5 + 1j * (N / np.pi) * (N / (2 * n + 1) - 1)),
        ("real", lambda n, N: -(n + 1.0) + 0j),
    ],
)
def test_closed_form_inits(variant, expected):
    N = 16
    layer = ssmctl.init("s4d", variant=variant, d_model=3, d_state=N, n_layers=1)[0]
    A, _, _ = _continuous(layer)
    n = np.arange(N // 2)
    np.testing.assert_allclose(A, np.broadcast_to(expected(n, N), (3, N // 2)), rtol=1e-14, atol=1e-14)
    re, im = s4d.init_A(variant, N)
    np.testing.assert_allclose(re + 1j * im, expected(n, N), rtol=1e-14, atol=1e-14)


def test_legs_variant_is_hippo_n():
    N = 32
    layer = ssmctl.init("s4d", variant="legs", d_model=2, d_state=N, n_layers=1)[0]
    A, _, _ = _continuous(layer)
    lapack = np.linalg.eigvals(hippo.legs_normal(N))  # independent of the eigh path
    np.testing.assert_allclose(A.real, -0.5, atol=1e-15)
    np.testing.assert_allclose(np.sort(A[0].imag), np.sort(lapack.imag[lapack.imag > 0]), atol=1e-9)


def test_models_md_imaginary_ranges():
    im_lin = ssmctl.init("s4d", variant="lin", d_model=1, n_layers=1)[0].params["kernel.A_imag"]
    im_inv = ssmctl.init("s4d", variant="inv", d_model=1, n_layers=1)[0].params["kernel.A_imag"]
    im_legs = ssmctl.init("s4d", variant="legs", d_model=1, n_layers=1)[0].params["kernel.A_imag"]
    assert im_lin.min() == 0 and im_lin.max() == pytest.approx(97.4, abs=0.05)
    assert im_inv.min() == pytest.approx(0.32, abs=0.005) and im_inv.max() == pytest.approx(1283, abs=0.5)
    assert im_legs.min() == pytest.approx(0.26, abs=0.005) and im_legs.max() == pytest.approx(1303, abs=0.5)


@pytest.mark.parametrize("variant", ["lin", "inv", "legs"])
def test_zoh_moduli_and_memory_follow_models_md(variant):
    """|Ā| = exp(−Δ/2) ∈ [0.9512, 0.9995] and τ = 2/Δ ∈ [20, 2000] (ε = 1/e) for Δ ∈ [1e-3, 1e-1]."""
    sys = ssmctl.init("s4d", variant=variant, d_model=4000, n_layers=1, seed=1)[0].system()
    r = np.abs(eigenvalues(sys))
    assert r.min() >= np.exp(-0.05) - 1e-15 and r.max() <= np.exp(-0.0005) + 1e-15
    assert r.min() == pytest.approx(0.9512, abs=2e-4) and r.max() == pytest.approx(0.9995, abs=2e-5)
    tau = memory_horizon(sys, eps=np.exp(-1.0))
    assert tau.min() >= 20 - 1e-9 and tau.max() <= 2000 + 1e-6
    assert tau.min() < 20.5 and tau.max() > 1950


@pytest.mark.parametrize("is_real, n_states, lo", [(False, 32, np.exp(-3.2)), (True, 64, np.exp(-6.4))])
def test_real_variant_ranges_and_real_state(is_real, n_states, lo):
    layer = ssmctl.init("s4d", variant="real", is_real=is_real, d_model=4000, n_layers=1, seed=2)[0]
    sys = layer.system()
    assert sys.real_state and sys.n_states == n_states
    r = np.abs(sys.lam)
    assert r.min() >= lo - 1e-15 and r.max() <= np.exp(-1e-3) + 1e-15
    assert r.min() == pytest.approx(lo, rel=0.02) and r.max() == pytest.approx(0.999, abs=1e-5)


@pytest.mark.parametrize("variant", ["lin", "inv", "legs", "real"])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_impulse_response_is_reference_kernel(variant, discretization):
    layer = ssmctl.init(
        "s4d", variant=variant, discretization=discretization, d_model=5, d_state=16, n_layers=1, seed=7
    )[0]
    L = 300
    K = impulse_response(layer.system(), L)[:, :, 0, 0]  # (H, L)
    K[:, 0] -= layer.params["D"]  # ssmctl's K_0 includes D; the reference kernel does not
    ref = _reference_kernel(layer, L)
    np.testing.assert_allclose(K, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_is_real_kernel():
    layer = ssmctl.init("s4d", preset="real_states", d_model=3, d_state=12, n_layers=1, seed=5)[0]
    assert "kernel.A_imag" not in layer.params and layer.params["kernel.C"].shape == (3, 12)
    L = 200
    K = impulse_response(layer, L)[:, :, 0, 0]
    K[:, 0] -= layer.params["D"]
    np.testing.assert_allclose(K, _reference_kernel(layer, L), rtol=1e-10, atol=1e-13)


def test_layer_output_on_random_input():
    """The S4D forward (FFT convolution with the reference kernel + D·u) equals the system's recurrence."""
    layer = ssmctl.init("s4d", variant="inv", d_model=4, d_state=8, n_layers=1, seed=11)[0]
    rng = np.random.default_rng(0)
    L = 128
    u = rng.standard_normal((2, 4, L))  # (B, H, L) as s4d.py
    k = _reference_kernel(layer, L)
    y_ref = np.fft.irfft(np.fft.rfft(u, n=2 * L) * np.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
    y_ref = y_ref + u * layer.params["D"][:, None]
    sys = layer.system()
    h = np.zeros((2, 4, sys.n_stored), dtype=complex)
    y = np.empty_like(u)
    for t in range(L):
        h = sys.lam * h + sys.B[..., 0] * u[..., t, None]
        y[..., t] = 2 * np.einsum("hn,bhn->bh", sys.C[:, 0, :], h).real + sys.D[:, 0, 0] * u[..., t]
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-10)


def test_dplr_sign_convention_gives_the_same_kernel():
    """dplr.py's A = −real − i·imag with conjugated C is the same kernel: the conventions differ by a conjugation."""
    layer = ssmctl.init("s4d", variant="lin", d_model=2, d_state=8, n_layers=1, seed=4)[0]
    A, C, dt = _continuous(layer)
    dtA = np.conj(A) * dt[:, None]
    Ct = np.conj(C) * (np.exp(dtA) - 1) / np.conj(A)
    K_dplr = 2 * np.einsum("hn,hnl->hl", Ct, np.exp(dtA[..., None] * np.arange(50))).real
    np.testing.assert_allclose(K_dplr, _reference_kernel(layer, 50), rtol=1e-12, atol=1e-14)


def test_presets_and_overrides():
    m = ssmctl.init("s4d", preset="s4d_yaml", d_model=2, n_layers=1)
    assert m.config["variant"] == "inv" and m.config["preset"] == "s4d_yaml"
    assert ssmctl.init("s4d", preset="s4d_yaml", variant="lin", d_model=2, n_layers=1).config["variant"] == "lin"
    assert set(s4d.FAMILY.presets) == {"s4d_yaml", "real_states"}
    assert s4d.FAMILY.kind == "LTI" and s4d.FAMILY.discretization == "Exact" and s4d.FAMILY.structure == "SISO"


def test_C_and_D_init_variances():
    """state-spaces/s4: C = randn(cfloat) (each part N(0, ½)); is_real keeps its real part; D = randn."""
    layer = ssmctl.init("s4d", d_model=256, d_state=64, n_layers=1, seed=2)[0]
    C = layer.params["kernel.C"]
    assert np.var(C[..., 0]) == pytest.approx(0.5, rel=0.05) and np.var(C[..., 1]) == pytest.approx(0.5, rel=0.05)
    assert np.var(layer.params["D"]) == pytest.approx(1.0, rel=0.2)
    real = ssmctl.init("s4d", preset="real_states", d_model=256, d_state=64, n_layers=1, seed=2)[0]
    assert np.var(real.params["kernel.C"]) == pytest.approx(0.5, rel=0.05)


def test_seed_reproducible():
    a = ssmctl.init("s4d", d_model=3, n_layers=1, seed=9)[0].params["kernel.C"]
    b = ssmctl.init("s4d", d_model=3, n_layers=1, seed=9)[0].params["kernel.C"]
    c = ssmctl.init("s4d", d_model=3, n_layers=1, seed=10)[0].params["kernel.C"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "hyper, err, match",
    [
        ({"variant": "foo"}, UnknownNameError, "unknown s4d variant 'foo'; known: inv, legs, lin, real"),
        ({"preset": "bar"}, UnknownNameError, "unknown s4d preset 'bar'; known: real_states, s4d_yaml"),
        ({"discretization": "euler"}, UnknownNameError, "known: bilinear, zoh"),
        ({"d_state": 63}, SsmctlError, "d_state must be even"),
        ({"dt_min": 0.0}, SsmctlError, "dt_min must be > 0"),
        ({"dt_min": 0.2, "dt_max": 0.1}, SsmctlError, r"dt_min \(0.2\) must not exceed dt_max \(0.1\)"),
        ({"is_real": True}, SsmctlError, "is_real=True needs variant 'real'"),
        ({"d_modle": 3}, UnknownNameError, "unknown hyperparameter 'd_modle'"),
        ({"n_layers": 0}, SsmctlError, "n_layers must be a positive integer"),
    ],
)
def test_bad_hyperparameters(hyper, err, match):
    with pytest.raises(err, match=match):
        ssmctl.init("s4d", **hyper)


def test_odd_d_state_allowed_for_real_storage():
    layer = ssmctl.init("s4d", variant="real", is_real=True, d_state=5, d_model=2, n_layers=1)[0]
    np.testing.assert_allclose(-np.exp(layer.params["kernel.log_A_real"][0]), -np.arange(1.0, 6.0))


def test_layer_from_params_round_trip_with_torch_float32():
    src = ssmctl.init("s4d", d_model=4, d_state=8, n_layers=1, seed=2)[0]
    tens = {k: torch.tensor(v, dtype=torch.float32) for k, v in src.params.items()}
    tens["output_linear.0.weight"] = torch.zeros(8, 4, 1)
    layer = s4d.layer_from_params(tens, {"discretization": "zoh"}, 3)
    assert layer.index == 3 and layer.family == "s4d" and layer.config["d_state"] == 8
    assert layer.params["kernel.C"].dtype == np.float32 and "output_linear.0.weight" in layer.params
    np.testing.assert_allclose(impulse_response(layer, 64), impulse_response(src, 64), rtol=1e-5, atol=1e-5)


def test_layer_from_params_errors():
    good = ssmctl.init("s4d", d_model=4, d_state=8, n_layers=1)[0].params
    bad = dict(good, **{"kernel.C": np.zeros((4, 3, 2))})
    with pytest.raises(ShapeError, match=r"'kernel.C' has shape \(4, 3, 2\), expected \(H, N/2, 2\) = \(4, 4, 2\)"):
        s4d.layer_from_params(bad, {}, 0)
    nan = dict(good, **{"D": np.array([0.0, np.nan, 1.0, 2.0])})
    with pytest.raises(NonFiniteError, match="'D' has 1 non-finite"):
        s4d.layer_from_params(nan, {}, 0)
    missing = {k: v for k, v in good.items() if k != "kernel.A_imag"}
    with pytest.raises(CheckpointError, match="missing parameter 'kernel.A_imag'"):
        s4d.layer_from_params(missing, {}, 0)
    with pytest.raises(UnknownNameError, match="unknown s4d discretization 'dss'"):
        s4d.layer_from_params(good, {"discretization": "dss"}, 0)
