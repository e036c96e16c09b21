"""S4: layout, the DPLR bilinear kernel (Woodbury/Cauchy and complex recurrence, float64), C̃ and l_kernel,
exact LegS eigenvalues and the non-normality trap, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from ssmctl.analysis.response import impulse_response
from ssmctl.errors import CheckpointError, ShapeError, SsmctlError, UnknownNameError, UnsupportedSystemError
from ssmctl.models import s4


def _c(x):
    return x[..., 0] + 1j * x[..., 1]


def _dt(layer):
    x = layer.params["kernel.inv_dt"]
    return {"softplus": np.log1p(np.exp(x)), "exp": np.exp(x)}[layer.config["dt_transform"]]


def _complex_dplr(layer):
    """Per channel: the conjugate-augmented complex DPLR system of SSMKernelDPLR, bilinear (ssm.py formulas)."""
    p = layer.params
    lam = -np.exp(p["kernel.A_real"]) - 1j * p["kernel.A_imag"]  # (S, K)
    S, K = lam.shape
    C = _c(p["kernel.C"])  # (c, H, K)
    H = C.shape[1]
    s = np.arange(H) % S
    lam_f = np.concatenate([lam, lam.conj()], -1)[s]  # (H, N)
    P = _c(p["kernel.P"])[:, s]  # (r, H, K)
    p_f = np.concatenate([P, P.conj()], -1)
    A = np.einsum("hn,nm->hnm", lam_f, np.eye(2 * K)) - np.einsum("rhn,rhm->hnm", p_f, p_f.conj())
    B = _c(p["kernel.B"])[0][s]
    B = np.concatenate([B, B.conj()], -1)  # (H, N)
    Cf = np.concatenate([C, C.conj()], -1).transpose(1, 0, 2)  # (H, c, N)
    dt = np.broadcast_to(_dt(layer), (H, K))
    Dl = np.concatenate([dt, dt], -1)  # (H, N): diagonal Δ acting on the left
    I = np.eye(2 * K)
    left = I - Dl[:, :, None] * A / 2
    Ad = np.linalg.solve(left, I + Dl[:, :, None] * A / 2)
    Bd = np.linalg.solve(left, (Dl * B)[..., None])[..., 0]
    return Ad, Bd, Cf


def _woodbury_kernel(layer, L):
    """The reference forward pass (truncated generating function, Cauchy sums, rank-1 Woodbury, irfft).

    C is first turned into C̃ = C(I − Ā^L) as _setup_C does, then k_f(ω) at the L-th roots of unity.
    """
    p = layer.params
    Ad, _, Cf = _complex_dplr(layer)
    K = p["kernel.A_real"].shape[-1]
    Ct = np.einsum("hcn,hnm->hcm", Cf, np.eye(2 * K) - np.linalg.matrix_power(Ad, L))[..., :K]  # (H, c, K)
    S = p["kernel.A_real"].shape[0]
    H = Ct.shape[0]
    s = np.arange(H) % S
    lam = (-np.exp(p["kernel.A_real"]) - 1j * p["kernel.A_imag"])[s]  # (H, K)
    B = _c(p["kernel.B"])[0][s]
    P = _c(p["kernel.P"])[0][s]
    Q = P.conj()
    dt = _dt(layer)  # (H, 1)
    omega = np.exp(-2j * np.pi / L) ** np.arange(L // 2 + 1)
    z = 2 * (1 - omega) / (1 + omega)
    w = lam * dt

    def cauchy(v):  # Σ v/(z − w) + v̄/(z − w̄) over the stored modes: (H, F)
        zz = z[None, :, None]
        return (v[:, None, :] / (zz - w[:, None, :]) + v.conj()[:, None, :] / (zz - w.conj()[:, None, :])).sum(-1)

    k_f = []
    for c in range(Ct.shape[1]):
        r00 = cauchy(Ct[:, c] * B * dt)
        r01 = cauchy(Ct[:, c] * P * dt)
        r10 = cauchy(Q * B * dt)
        r11 = cauchy(Q * P * dt)
        k_f.append((r00 - r01 * r10 / (1 + r11)) * 2 / (1 + omega))
    return np.fft.irfft(np.stack(k_f, 1), n=L)  # (H, c, L)


def _kernel_of_system(layer, L):
    K = impulse_response(layer.system(), L)[..., 0]  # (H, L, c)
    K[:, 0, :] -= layer.params["D"].T
    return K.transpose(0, 2, 1)


def test_layout_matches_ssm_kernel_dplr():
    m = ssmctl.init("s4", d_model=6, d_state=16, n_layers=2)
    shapes = {k: v.shape for k, v in m[0].params.items()}
    assert shapes == {
        "kernel.inv_dt": (6, 1),
        "kernel.A_real": (1, 8),
        "kernel.A_imag": (1, 8),
        "kernel.B": (1, 1, 8, 2),
        "kernel.C": (1, 6, 8, 2),
        "kernel.P": (1, 1, 8, 2),
        "D": (1, 6),
    }
    assert m[0].config["l_kernel"] == 0 and m[0].config["dt_transform"] == "softplus"
    np.testing.assert_allclose(m[0].params["kernel.A_real"], np.log(0.5))
    assert np.all(m[0].params["kernel.A_imag"] > 0)
    sys = m[0].system()
    assert sys.batch_shape == (6,) and sys.n_states == 16 and sys.is_real
    dt = _dt(m[0])
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1


@pytest.mark.parametrize("hyper", [{}, {"preset": "kernel_class"}, {"channels": 2}, {"rank": 2}])
def test_impulse_response_is_woodbury_kernel(hyper):
    layer = ssmctl.init("s4", d_model=4, d_state=16, n_layers=1, seed=5, **hyper)[0]
    L = 256
    ref = _woodbury_kernel(layer, L)
    got = _kernel_of_system(layer, L)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("name", s4.TRANSFORMS)
def test_param_transforms_are_the_reference_ones(name):
    """state-spaces/s4 param_transform / inv_transform: none, exp, relu(x) + 1e-4, sigmoid, softplus; the inverse
    clamps to ≥ 1e-4 first (relu's inverse is the identity, as in the reference)."""
    x = np.array([-2.0, -1e-3, 0.0, 0.7, 5.0, 40.0])
    t = torch.from_numpy(x)
    expected = {"none": t, "exp": torch.exp(t), "relu": F.relu(t) + 1e-4, "sigmoid": torch.sigmoid(t),
                "softplus": F.softplus(t)}[name].numpy()
    np.testing.assert_allclose(s4.param_transform(x, name), expected, rtol=1e-14, atol=1e-300)
    p = np.array([1e-6, 1e-4, 0.03, 0.5, 0.9, 3.0])
    q = torch.from_numpy(np.maximum(p, 1e-4))
    if name == "sigmoid":
        p, q = p[:-1], q[:-1]  # the logit needs p < 1
    inverse = {"none": q, "exp": torch.log(q), "relu": q, "sigmoid": torch.logit(q),
               "softplus": torch.log(torch.expm1(q))}[name].numpy()
    np.testing.assert_allclose(s4.inverse_transform(p, name), inverse, rtol=1e-12)


def test_sigmoid_transform_keeps_relative_accuracy_in_the_tail():
    x = np.array([-15.0, -30.0, -40.0])
    np.testing.assert_allclose(s4.param_transform(x, "sigmoid"), torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-12)


def test_step_sizes_follow_the_dt_transform():
    for transform in ("softplus", "exp"):
        hyper = {"preset": "kernel_class"} if transform == "exp" else {}
        layer = ssmctl.init("s4", d_model=3, d_state=8, n_layers=1, seed=1, **hyper)[0]
        assert layer.config["dt_transform"] == transform
        np.testing.assert_allclose(s4.step_sizes(layer), _dt(layer), rtol=1e-14)
    untied = ssmctl.init("s4", d_model=3, d_state=8, n_layers=1, dt_tie=False)[0]
    assert s4.step_sizes(untied).shape == (3, 4)


def test_C_init_is_a_standard_complex_normal():
    """SSMKernelDPLR: C = randn(channels, H, N/2, cfloat): each part N(0, ½)."""
    C = ssmctl.init("s4", d_model=256, d_state=64, n_layers=1, seed=3)[0].params["kernel.C"]
    assert C.shape == (1, 256, 32, 2)
    assert np.var(C[..., 0]) == pytest.approx(0.5, rel=0.05) and np.var(C[..., 1]) == pytest.approx(0.5, rel=0.05)


def test_kernel_class_preset_has_independent_copies():
    layer = ssmctl.init("s4", preset="kernel_class", d_model=3, d_state=8, n_layers=1)[0]
    assert layer.params["kernel.A_real"].shape == (3, 4) and layer.config["dt_transform"] == "exp"


@pytest.mark.parametrize("dt_tie", [True, False])
def test_layer_output_is_complex_dplr_recurrence(dt_tie):
    """Running the conjugate-augmented complex DPLR recurrence (y = Re(C h) + D u) on a random input."""
    layer = ssmctl.init("s4", d_model=3, d_state=12, n_layers=1, seed=2, dt_tie=dt_tie)[0]
    Ad, Bd, Cf = _complex_dplr(layer)
    rng = np.random.default_rng(1)
    L = 200
    u = rng.standard_normal((L, 3))
    h = np.zeros((3, 12), dtype=complex)
    y_ref = np.empty((L, 3))
    for t in range(L):
        h = np.einsum("hnm,hm->hn", Ad, h) + Bd * u[t][:, None]
        y_ref[t] = np.einsum("hn,hn->h", Cf[:, 0], h).real + layer.params["D"][0] * u[t]
    K = impulse_response(layer.system(), L)[:, :, 0, 0]  # (H, L), includes D
    y = np.stack([np.convolve(u[:, i], K[i])[:L] for i in range(3)], axis=1)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-10)


def test_l_kernel_recovers_raw_C():
    """A used checkpoint stores C̃ = C(I − Ā^l) and l_kernel = l: system() must give the raw-C kernel."""
    layer = ssmctl.init("s4", d_model=3, d_state=16, n_layers=1, seed=8)[0]
    Ad, _, Cf = _complex_dplr(layer)
    l = 64
    Ct = np.einsum("hcn,hnm->hcm", Cf, np.eye(16) - np.linalg.matrix_power(Ad, l))[..., :8]  # (H, c, K)
    params = dict(layer.params)
    params["kernel.C"] = np.stack([Ct.real, Ct.imag], -1).transpose(1, 0, 2, 3)
    params["kernel.l_kernel"] = torch.tensor(l)
    used = s4.layer_from_params(params, {"dt_transform": "softplus"}, 0)
    assert used.config["l_kernel"] == l and "kernel.l_kernel" not in used.params
    L = 300
    np.testing.assert_allclose(impulse_response(used, L), impulse_response(layer, L), rtol=1e-8, atol=1e-10)
    naive = s4.layer_from_params(dict(params, **{"kernel.l_kernel": 0}), {"dt_transform": "softplus"}, 0)
    ref = impulse_response(layer, L)
    assert np.abs(impulse_response(naive, L) - ref).max() > 1e-2 * np.abs(ref).max()


def test_exact_eigenvalues_small_N_agree_with_lapack():
    layer = ssmctl.init("s4", d_model=4, d_state=8, n_layers=1, seed=3)[0]
    np.testing.assert_array_equal(s4.exact_continuous_eigenvalues(8), -np.arange(1.0, 9.0))
    exact = s4.exact_discrete_eigenvalues(layer)  # (H, N)
    dt = _dt(layer)
    k = np.arange(1, 9)
    np.testing.assert_allclose(exact, (1 - dt * k / 2) / (1 + dt * k / 2), rtol=1e-14)
    lapack = np.linalg.eigvals(layer.system().A)
    np.testing.assert_allclose(np.sort(lapack.real, -1), np.sort(exact, -1), atol=1e-6)
    assert np.abs(lapack.imag).max() < 1e-6


def test_non_normality_trap_at_default_size():
    """N=64: LAPACK's eigenvalues of Ā are far off, yet the exact λ̄ make zI − Ā singular to rounding."""
    layer = ssmctl.init("s4", d_model=2, n_layers=1, seed=0)[0]
    A = layer.system().A
    exact = s4.exact_discrete_eigenvalues(layer)
    lapack = np.linalg.eigvals(A)
    dist = np.abs(lapack[:, :, None] - exact[:, None, :]).min(-1)
    assert dist.max() > 1e-2
    eye = np.eye(64)
    smin = np.linalg.svd(exact[:, :, None, None] * eye - A[:, None], compute_uv=False)[..., -1]
    assert smin.max() < 1e-10


def test_bilinear_negative_eigenvalues_models_md():
    """Δ = 0.1: λ̄_n = (1 − Δ(n+1)/2)/(1 + Δ(n+1)/2) < 0 exactly for n ≥ 20 (0 at n = 19)."""
    layer = ssmctl.init("s4", d_model=1, n_layers=1)[0]
    params = dict(layer.params, **{"kernel.inv_dt": np.full((1, 1), np.log(np.expm1(0.1)))})
    lam = s4.exact_discrete_eigenvalues(s4.layer_from_params(params, {}, 0))[0]
    assert np.all(lam[20:] < 0) and np.all(lam[:19] > 0) and abs(lam[19]) < 1e-15


def test_exact_eigenvalues_refuse_trained_layers():
    layer = ssmctl.init("s4", d_model=2, d_state=8, n_layers=1)[0]
    params = dict(layer.params, **{"kernel.A_imag": layer.params["kernel.A_imag"] * 1.1})
    with pytest.raises(UnsupportedSystemError, match="differ from the HiPPO-LegS DPLR form"):
        s4.exact_discrete_eigenvalues(s4.layer_from_params(params, {}, 0))
    untied = ssmctl.init("s4", d_model=2, d_state=8, n_layers=1, dt_tie=False)[0]
    with pytest.raises(UnsupportedSystemError, match=r"need a tied Δ \(kernel.inv_dt of shape \(H, 1\)\)"):
        s4.exact_discrete_eigenvalues(untied)


def test_default_init_exact_moduli():
    layer = ssmctl.init("s4", n_layers=1)[0]
    r = np.abs(s4.exact_discrete_eigenvalues(layer))
    dt = _dt(layer)
    assert r.max() < 1 and r.max() == pytest.approx((1 - dt.min() / 2) / (1 + dt.min() / 2), rel=1e-14)


def test_layer_from_params_float32_round_trip():
    """A float32 checkpoint (the model's dtype) is kept as float32; the analysis upcasts."""
    src = ssmctl.init("s4", d_model=3, d_state=16, n_layers=1, seed=6)[0]
    tens = {k: torch.tensor(v, dtype=torch.float32) for k, v in src.params.items()}
    layer = s4.layer_from_params(tens, {"dt_transform": "softplus"}, 0)
    assert layer.params["kernel.C"].dtype == np.float32 and layer.system().A.dtype == np.float64
    K, K_ref = impulse_response(layer, 128), impulse_response(src, 128)
    np.testing.assert_allclose(K, K_ref, rtol=0, atol=1e-5 * np.abs(K_ref).max())


def test_layer_from_params_errors():
    good = ssmctl.init("s4", d_model=4, d_state=8, n_layers=1)[0].params
    with pytest.raises(ShapeError, match=r"'kernel.inv_dt' has shape \(4, 3\), expected \(H, 1\) = \(4, 1\) or"):
        s4.layer_from_params(dict(good, **{"kernel.inv_dt": np.zeros((4, 3))}), {}, 1)
    with pytest.raises(ShapeError, match=r"'kernel.P' has shape \(1, 1, 5, 2\), expected \(r, S, N/2, 2\)"):
        s4.layer_from_params(dict(good, **{"kernel.P": np.zeros((1, 1, 5, 2))}), {}, 1)
    with pytest.raises(CheckpointError, match="missing parameter 'kernel.B'"):
        s4.layer_from_params({k: v for k, v in good.items() if k != "kernel.B"}, {}, 1)
    with pytest.raises(UnknownNameError, match="unknown s4 dt_transform 'tanh'"):
        s4.layer_from_params(good, {"dt_transform": "tanh"}, 1)
    with pytest.raises(SsmctlError, match="disagrees with the kernel.l_kernel buffer"):
        s4.layer_from_params(dict(good, **{"kernel.l_kernel": np.array(8)}), {"l_kernel": 4}, 1)


@pytest.mark.parametrize(
    "hyper, err, match",
    [
        ({"d_state": 63}, SsmctlError, "d_state must be even"),
        ({"n_ssm": 3, "d_model": 4}, SsmctlError, r"n_ssm \(3\) must divide d_model \(4\)"),
        ({"preset": "lra"}, UnknownNameError, "unknown s4 preset 'lra'; known: kernel_class"),
        ({"dt_transform": "tanh"}, UnknownNameError, "known: exp, none, relu, sigmoid, softplus"),
        ({"dt_min": -1.0}, SsmctlError, "dt_min must be > 0"),
        ({"dt_min": 1.0}, SsmctlError, "must not exceed dt_max"),
        ({"discretization": "zoh"}, UnknownNameError, "unknown s4 discretization 'zoh'; known: bilinear"),
        ({"rank": 0}, SsmctlError, "rank must be a positive integer"),
    ],
)
def test_bad_hyperparameters(hyper, err, match):
    with pytest.raises(err, match=match):
        ssmctl.init("s4", **hyper)


def test_family_record():
    fam = s4.FAMILY
    assert (fam.parametrization, fam.discretization, fam.structure) == ("LTI", "Bilinear", "SISO")
    assert fam.implementation == "Convolution and Recurrence" and fam.scaffolding == "MLP / H3"
    assert "l_kernel" in fam.notes and fam.defaults["d_state"] == 64


def test_every_entry_point_gives_the_exact_spectrum():
    """One answer: layer, ssmctl.eigenvalues of the layer and of its system, memory horizons, inspect, the
    figures' table and the pseudospectrum plot all give λ̄ = (1 − Δk/2)/(1 + Δk/2), k = 1..N (closed form)."""
    import warnings

    import matplotlib.pyplot as plt

    from ssmctl.checkpoints.inspect import layer_row, layer_spectrum
    from ssmctl.plot.figures import memory_horizon_rows

    layer = ssmctl.init("s4", d_model=3, n_layers=1, seed=0)[0]  # N = 64: LAPACK is O(1) off here
    k = np.arange(1, 65)
    dt = _dt(layer)
    closed = (1 - dt * k / 2) / (1 + dt * k / 2)  # (H, N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exact spectrum needs no warning
        answers = {
            "layer.eigenvalues()": layer.eigenvalues(),
            "ssmctl.eigenvalues(layer)": ssmctl.eigenvalues(layer),
            "ssmctl.eigenvalues(layer.system())": ssmctl.eigenvalues(layer.system()),
            "system[1] (indexed)": ssmctl.eigenvalues(layer.system()[1])[None].repeat(3, 0),
            "inspect": layer_spectrum(layer)["eigenvalues"],
        }
    for where, lam in answers.items():
        lam = np.asarray(lam)
        if where.startswith("system[1]"):
            np.testing.assert_allclose(np.sort(lam[0].real), np.sort(closed[1]), rtol=1e-13, err_msg=where)
            continue
        np.testing.assert_allclose(np.sort(lam.real, -1), np.sort(closed, -1), rtol=1e-13, err_msg=where)
        assert not np.asarray(lam).imag.any(), where
    mem = np.log(1e-2) / np.log(np.abs(closed))
    for sys_or_layer in (layer, layer.system()):
        np.testing.assert_allclose(np.sort(ssmctl.memory_horizon(sys_or_layer), -1), np.sort(mem, -1), rtol=1e-12)
    row = layer_row(layer)
    assert row["memory_horizon_median"] == pytest.approx(np.median(mem), rel=1e-12)
    assert ssmctl.spectral_radius(layer.system()) == pytest.approx(np.abs(closed).max(1), rel=1e-14)
    fig_row = memory_horizon_rows({"s4": (layer, ssmctl.eigenvalue_cloud(layer))})[0]
    assert fig_row["memory_median"] == pytest.approx(np.median(mem), rel=1e-12)
    ax = ssmctl.plot.pseudospectrum(layer.system()[0], resolution=8)
    dots = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(np.sort(np.asarray(dots)[:, 0]), np.sort(closed[0]), rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(dots)[:, 1], 0.0)
    plt.close(ax.figure)


def test_layer_without_closed_form_warns_once_about_its_eigenproblem():
    """The same DPLR matrix without its closed form (as any user-built DenseLTI): LAPACK's answer comes with
    one warning naming κ(V) ≈ 1e15, pointing to the pseudospectrum."""
    layer = ssmctl.init("s4", d_model=2, d_state=64, n_layers=1)[0]
    exact = layer.system()
    sys_ = ssmctl.DenseLTI(exact.A, exact.B, exact.C, exact.D)
    assert sys_.exact_eigenvalues is None and exact.exact_eigenvalues is not None
    with pytest.warns(ssmctl.errors.SsmctlWarning, match=r"eigenvector condition \d.*e\+\d+ > 1e\+08.*pseudospectrum") as rec:
        lam = ssmctl.eigenvalues(sys_)
        ssmctl.eigenvalues(sys_)  # once per system
    assert len(rec) == 1
    np.testing.assert_array_equal(lam, np.linalg.eigvals(sys_.A))
    assert np.abs(lam.imag).max() > 0.1  # what LAPACK makes of a real spectrum: why the warning exists
