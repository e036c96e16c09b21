"""analysis/summary.py: per-channel tables against python-control, scipy and numpy closed forms."""

from __future__ import annotations

import warnings

import control
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

import ssmctl
from ssmctl.analysis.summary import (
    COLUMNS, channel_table, layer_report, maxima, operating_point,
)
from ssmctl.errors import SsmctlError
from ssmctl.systems.lti import DiagonalLTI


@pytest.fixture(scope="module")
def s4d_sys():
    return ssmctl.init("s4d", d_model=6, d_state=8, n_layers=1, seed=3).layers[0].system()


@pytest.fixture(scope="module")
def s4d_table(s4d_sys):
    return channel_table(s4d_sys)


def _textbook(sys):
    cs = ssmctl.to_control(sys)
    return cs, tuple(np.asarray(x, dtype=np.float64) for x in (cs.A, cs.B, cs.C, cs.D))


def _grid_response(A, B, C, D, w=None):
    """G(e^{iω}) of the textbook realization on a dense grid of [0, π] (independent of ssmctl's code)."""
    w = np.linspace(0.0, np.pi, 400_001) if w is None else w
    lam, V = np.linalg.eig(A)
    b = np.linalg.solve(V, B)[:, 0]
    c = (C @ V)[0]
    return w, (c * b / (np.exp(1j * w)[:, None] - lam)).sum(1) + D[0, 0]


def _grid_min(f, A, B, C, D):
    """min over ω of f(G(e^{iω})): a dense grid, then a finer one around its best point."""
    w, G = _grid_response(A, B, C, D)
    k = int(np.argmin(f(G)))
    fine, Gf = _grid_response(A, B, C, D, np.linspace(w[max(k - 2, 0)], w[min(k + 2, w.size - 1)], 100_001))
    j = int(np.argmin(f(Gf)))
    return fine[j], f(Gf)[j]


@pytest.mark.parametrize("ch", [0, 2, 5])
def test_norms_and_dc_gain_match_python_control(s4d_sys, s4d_table, ch):
    cs, _ = _textbook(s4d_sys[ch])
    assert s4d_table["h2"][ch] == pytest.approx(control.norm(cs, 2), rel=1e-10)
    assert s4d_table["hinf"][ch] == pytest.approx(control.norm(cs, "inf"), rel=1e-6)
    assert s4d_table["dc_gain"][ch] == pytest.approx(float(np.real(control.dcgain(cs))), rel=1e-10)


def _roots(f, A, B, C, D, lo, hi):
    """Bisection of the sign changes of f(G(e^{iω})) bracketed by [lo, hi] (arrays), to machine precision."""
    flo = f(_grid_response(A, B, C, D, lo)[1])
    for _ in range(60):
        mid = (lo + hi) / 2
        fm = f(_grid_response(A, B, C, D, mid)[1])
        left = np.sign(fm) == np.sign(flo)
        lo, hi, flo = np.where(left, mid, lo), np.where(left, hi, mid), np.where(left, fm, flo)
    return _grid_response(A, B, C, D, (lo + hi) / 2)[1]


@pytest.mark.parametrize("ch", [0, 3])
def test_peak_frequency_and_margins_match_a_dense_grid(s4d_sys, s4d_table, ch):
    # python-control's polynomial margins lose accuracy at 16 states; a dense grid is the reference here.
    _, (A, B, C, D) = _textbook(s4d_sys[ch])
    w, G = _grid_response(A, B, C, D)
    mag = np.abs(G)
    w_peak, neg_peak = _grid_min(lambda g: -np.abs(g), A, B, C, D)
    assert s4d_table["hinf_freq"][ch] == pytest.approx(w_peak, abs=1e-5)
    assert s4d_table["hinf"][ch] == pytest.approx(-neg_peak, rel=1e-6)
    assert s4d_table["stability_margin"][ch] == pytest.approx(_grid_min(lambda g: np.abs(1 + g), A, B, C, D)[1],
                                                              rel=1e-8)
    cross = np.flatnonzero(np.diff(np.sign(mag - 1.0)) != 0)
    if cross.size:
        Gc = _roots(lambda g: np.abs(g) - 1.0, A, B, C, D, w[cross], w[cross + 1])
        pms = (np.degrees(np.angle(Gc)) % 360.0) - 180.0
        assert s4d_table["phase_margin"][ch] == pytest.approx(pms[np.argmin(np.abs(pms))], abs=1e-6)
    real_axis = np.flatnonzero((np.diff(np.sign(G.imag)) != 0) & (G.real[:-1] < 0))
    Gr = _roots(lambda g: g.imag, A, B, C, D, w[real_axis], w[real_axis + 1]) if real_axis.size else []
    gms = list(1.0 / np.abs(Gr)) + ([1.0 / abs(G[0])] if G[0].real < 0 else [])
    if gms:
        best = min(gms, key=lambda g: abs(np.log(g)))
        assert s4d_table["gain_margin"][ch] == pytest.approx(best, rel=1e-8)


def test_spectral_columns_and_hankel_values_match_closed_forms(s4d_sys, s4d_table):
    lam = np.concatenate([s4d_sys.lam, s4d_sys.lam.conj()], axis=-1)
    radius = np.abs(lam).max(-1)
    np.testing.assert_allclose(s4d_table["radius"], radius, rtol=1e-15)
    np.testing.assert_allclose(s4d_table["margin"], 1.0 - radius, rtol=1e-12)
    np.testing.assert_allclose(s4d_table["memory_horizon"], np.log(1e-2) / np.log(radius), rtol=1e-12)
    for ch in (1, 4):
        _, (A, B, C, _) = _textbook(s4d_sys[ch])
        Wc = scipy.linalg.solve_discrete_lyapunov(A, B @ B.T)
        Wo = scipy.linalg.solve_discrete_lyapunov(A.T, C.T @ C)
        hsv = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert s4d_table["hsv_max"][ch] == pytest.approx(hsv[0], rel=1e-8)
        used = int((hsv > 1e-3 * hsv[0]).sum())
        assert s4d_table["hankel_states"][ch] == used
        assert s4d_table["hankel_bound"][ch] == pytest.approx(2 * hsv[used:].sum(), rel=1e-4, abs=1e-12 * hsv[0])


def test_unstable_channels_get_nan_norms_but_spectral_numbers():
    lam = np.array([[0.5, 0.9], [1.01, 0.2], [0.3, 0.1]])
    sys = DiagonalLTI(lam, np.ones((3, 2, 1)), np.ones((3, 1, 2)), output="real")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the table says "unstable" itself; nothing goes to stderr
        t = channel_table(sys)
        assert "UNSTABLE (|λ| > 1) in 1 of 3 channels" in repr(sys)
    assert t["unstable"].tolist() == [False, True, False]
    assert t["radius"][1] == 1.01 and t["margin"][1] == pytest.approx(-0.01) and np.isinf(t["memory_horizon"][1])
    assert all(np.isnan(t[c][1]) for c in ("h2", "hinf", "dc_gain", "gain_margin", "hsv_max", "hankel_states"))
    # Channel 0 in closed form: real modes with B̄ = C = 1, so G(1) = Σ 1/(1 − λ).
    assert t["dc_gain"][0] == pytest.approx(1 / 0.5 + 1 / 0.1)
    m = maxima({k: v for k, v in t.items() if k != "unstable"})
    assert m["max"]["radius"] == 1.01 and m["argmax"]["radius"] == 1 and m["min"]["margin"] == pytest.approx(-0.01)
    assert m["max"]["h2"] == pytest.approx(max(t["h2"][0], t["h2"][2]))


def test_maxima_reports_the_peak_frequency_of_the_largest_hinf(s4d_table):
    m = maxima(s4d_table)
    i = int(np.argmax(s4d_table["hinf"]))
    assert m["argmax"]["hinf"] == i and m["max"]["hinf_freq"] == s4d_table["hinf_freq"][i]
    assert m["max"]["dc_gain"] == pytest.approx(np.abs(s4d_table["dc_gain"]).max())


def test_mimo_system_is_one_channel_with_sigma_max_dc_gain():
    layer = ssmctl.init("lru", d_model=4, d_state=3, n_layers=1).layers[0]
    sys = layer.system()
    t = channel_table(sys, columns=("h2", "dc_gain", "gain_margin"))
    G1 = np.asarray(control.dcgain(ssmctl.to_control(sys)))
    assert t["radius"].shape == (1,)
    assert t["dc_gain"][0] == pytest.approx(np.linalg.norm(G1, 2), rel=1e-10)
    assert t["h2"][0] == pytest.approx(control.norm(ssmctl.to_control(sys), 2), rel=1e-9)
    assert np.isnan(t["gain_margin"][0])  # SISO-only


def test_bad_arguments_are_named(s4d_sys):
    with pytest.raises(SsmctlError, match="unknown column"):
        channel_table(s4d_sys, columns=("h3",))
    with pytest.raises(SsmctlError, match="hankel_tol must lie in"):
        channel_table(s4d_sys, hankel_tol=2.0)
    assert set(COLUMNS) >= {"h2", "hinf", "dc_gain", "gain_margin", "hankel_states"}


def test_mamba_operating_point_is_the_layer_at_zero_input():
    layer = ssmctl.init("mamba", d_model=8, d_state=4, n_layers=1, seed=1).layers[0]
    sys, lam, dt = operating_point(layer)
    p = {k: v.double() for k, v in layer.params.items()}
    # Zero residual input: RMSNorm gives 0, in_proj has no bias, so the conv output is silu(conv bias).
    x = F.silu(p["mixer.conv1d.bias"])
    r = p["mixer.dt_proj.weight"].shape[1]
    xdbl = p["mixer.x_proj.weight"] @ x
    delta = F.softplus(p["mixer.dt_proj.weight"] @ xdbl[:r] + p["mixer.dt_proj.bias"])
    A = -torch.exp(p["mixer.A_log"])
    np.testing.assert_allclose(dt, delta.numpy(), rtol=1e-5)
    np.testing.assert_allclose(lam.real, torch.exp(delta[:, None] * A).numpy(), rtol=1e-5)
    N = A.shape[1]
    np.testing.assert_allclose(sys.C[..., 0, :].real, np.broadcast_to(xdbl[r + N:].numpy(), (8 * 2, N)), rtol=1e-5)
    report = layer_report(layer, columns=("h2",))
    assert report["point"] == "zero input" and report["channel_shape"] == [16] and report["dt"].shape == (16,)


def test_lti_layer_report_uses_the_exact_spectrum_of_s4():
    layer = ssmctl.init("s4", d_model=2, d_state=8, n_layers=1).layers[0]
    report = layer_report(layer, columns=())
    np.testing.assert_array_equal(report["channels"]["radius"], np.abs(layer.eigenvalues()).max(-1).reshape(-1))
    assert report["point"] == "lti" and report["dt"] is None
