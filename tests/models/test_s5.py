"""S5: block-diagonal HiPPO-N init, ranges, the S5 recurrence on a random input, layout and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import ssmctl
from ssmctl.analysis.response import impulse_response
from ssmctl.analysis.spectrum import eigenvalues, memory_horizon
from ssmctl.errors import CheckpointError, ShapeError, SsmctlError, UnknownNameError
from ssmctl.models import hippo, s5


def _c(x):
    return x[..., 0] + 1j * x[..., 1]


def _s5_forward(layer, u):
    """lindermanlab/S5 S5SSM.__call__ in numpy float64: discretize, run the recurrence, 2·Re(C̃x) + D⊙u."""
    p, cfg = layer.params, layer.config
    re = np.minimum(p["Lambda_re"], -1e-4) if cfg["clip_eigs"] else p["Lambda_re"]
    lam = re + 1j * p["Lambda_im"]
    B, C = _c(p["B"]), _c(p["C"])
    step = cfg["step_rescale"] * np.exp(p["log_step"][:, 0])
    if cfg["discretization"] == "zoh":
        lam_bar = np.exp(lam * step)
        B_bar = (1 / lam * (lam_bar - 1))[:, None] * B
    else:
        BL = 1 / (1 - step / 2 * lam)
        lam_bar = BL * (1 + step / 2 * lam)
        B_bar = (BL * step)[:, None] * B
    x = np.zeros(lam.shape, dtype=complex)
    ys = []
    for t in range(u.shape[0]):
        x = lam_bar * x + B_bar @ u[t]
        ys.append((2 if cfg["conj_sym"] else 1) * (C @ x).real + p["D"] * u[t])
    return np.array(ys)


def _conv(K, u):
    """y_k = Σ_j K_j u_{k−j} with K (L, p, m) from impulse_response and u (L, m)."""
    L = u.shape[0]
    idx = np.arange(L)[:, None] - np.arange(L)[None, :]
    Kt = np.where((idx >= 0)[..., None, None], K[np.clip(idx, 0, None)], 0.0)  # (L, L, p, m)
    return np.einsum("kjpm,jm->kp", Kt, u)


def test_layout_matches_s5ssm():
    layer = ssmctl.init("s5", d_model=6, n_layers=1)[0]
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes == {
        "Lambda_re": (128,),
        "Lambda_im": (128,),
        "B": (128, 6, 2),
        "C": (6, 128, 2),
        "D": (6,),
        "log_step": (128, 1),
    }
    sys = layer.system()
    assert sys.output == "conj_pair" and (sys.n_inputs, sys.n_outputs, sys.n_states) == (6, 6, 256)


def test_block_structure_of_default_init():
    """run_train.py defaults: P=256, J=8 → 128 stored values = 16 distinct ×8, Re = −½, Im ∈ [−325.4, −0.301]."""
    layer = ssmctl.init("s5", d_model=4, n_layers=1)[0]
    im = layer.params["Lambda_im"].reshape(8, 16)
    assert np.all(im == im[0]) and len(np.unique(im)) == 16
    np.testing.assert_array_equal(layer.params["Lambda_re"], -0.5)
    lapack = np.linalg.eigvals(hippo.legs_normal(32))  # independent of the eigh path
    np.testing.assert_allclose(np.sort(im[0]), np.sort(lapack.imag[lapack.imag < 0]), atol=1e-9)
    assert im.min() == pytest.approx(-325.4, abs=0.05) and im.max() == pytest.approx(-0.301, abs=5e-4)


def test_eigenbasis_is_block_diagonal_and_unitary():
    lam, Vb = s5.init_eigenbasis(24, 3, conj_sym=True)
    assert lam.shape == (12,) and Vb.shape == (8, 4)
    np.testing.assert_array_equal(lam.reshape(3, 4), np.broadcast_to(lam[:4], (3, 4)))
    np.testing.assert_allclose(Vb.conj().T @ Vb, np.eye(4), atol=1e-13)
    lam_f, Vb_f = s5.init_eigenbasis(24, 3, conj_sym=False)
    assert lam_f.shape == (24,) and Vb_f.shape == (8, 8)
    # each block's V diag(λ) V* is HiPPO-N of the block size
    np.testing.assert_allclose(Vb_f @ np.diag(lam_f[:8]) @ Vb_f.conj().T, hippo.legs_normal(8), atol=1e-12)
    # and the conj_sym half with its conjugates rebuilds it too (2·Re of the half)
    np.testing.assert_allclose(2 * (Vb @ np.diag(lam[:4]) @ Vb.conj().T).real, hippo.legs_normal(8), atol=1e-12)


def test_B_and_C_follow_the_dense_block_diagonal_formulas():
    """B̃ = blkdiag(V_b*)·B and C̃ = C·blkdiag(V_b), as s5/train.py builds them with dense block_diag."""
    rng_layer = ssmctl.init("s5", d_model=3, d_state=24, blocks=3, n_layers=1, seed=6)[0]
    lam, Vb = s5.init_eigenbasis(24, 3)
    V = scipy.linalg.block_diag(*([Vb] * 3))
    B_tilde = _c(rng_layer.params["B"])
    # B real ⇒ V_full V_full* B = B with V_full = [V, V̄]: B = 2·Re(V B̃)
    B = 2 * (V @ B_tilde).real
    np.testing.assert_allclose(scipy.linalg.block_diag(*([Vb.conj().T] * 3)) @ B, B_tilde, atol=1e-13)
    X = np.random.default_rng(0).standard_normal((4, 24)) + 1j
    np.testing.assert_allclose(s5._blockwise(Vb, X, 3, left=False), X @ V, atol=1e-13)
    np.testing.assert_allclose(s5._blockwise(Vb, X.T, 3, left=True), V.conj().T @ X.T, atol=1e-13)


def test_B_is_lecun_normal_pulled_through_V():
    """B̃ = V^{-1}B with real B ~ truncated N(0, 1/P) on (P, H): B = 2·Re(V B̃) under conj_sym."""
    layer = ssmctl.init("s5", d_model=64, d_state=256, blocks=8, n_layers=1, seed=4)[0]
    lam, Vb = s5.init_eigenbasis(256, 8)
    B = scipy.linalg.block_diag(*([Vb] * 8)) @ _c(layer.params["B"])
    B_real = 2 * B.real
    np.testing.assert_allclose(B + B.conj() - B_real, 0, atol=1e-12)
    bound = 2 * np.sqrt(1 / 256) / 0.87962566103423978
    assert np.abs(B_real).max() <= bound + 1e-12
    assert np.std(B_real) == pytest.approx(np.sqrt(1 / 256), rel=0.03)


@pytest.mark.parametrize("C_init, var", [("trunc_standard_normal", 1 / 256), ("lecun_normal", 1 / (64 * 256)),
                                          ("complex_normal", 0.5)])
def test_C_init_variances(C_init, var):
    """S5's C inits: trunc_standard_normal = lecun_normal per output row (fan_in P = 256), lecun_normal on (H, P, 2)
    (fan_in H·P), complex_normal N(0, ½) per part on C̃ directly. C̃ = C·V with orthonormal columns keeps a
    circular entry's variance, so each part of C̃ has the variance of a part of C."""
    layer = ssmctl.init("s5", d_model=64, d_state=256, blocks=8, n_layers=1, seed=5, C_init=C_init)[0]
    Ct = _c(layer.params["C"])
    assert Ct.shape == (64, 128)
    assert np.var(Ct.real) == pytest.approx(var, rel=0.05) and np.var(Ct.imag) == pytest.approx(var, rel=0.05)


def test_zoh_moduli_and_memory_follow_models_md():
    sys = ssmctl.init("s5", d_model=2, d_state=2048, blocks=64, n_layers=1, seed=1)[0].system()
    r = np.abs(eigenvalues(sys))
    assert r.min() >= np.exp(-0.05) - 1e-15 and r.max() <= np.exp(-0.0005) + 1e-15
    assert r.min() == pytest.approx(0.9512, abs=3e-4) and r.max() == pytest.approx(0.9995, abs=3e-5)
    tau = memory_horizon(sys, eps=np.exp(-1.0))
    assert tau.min() >= 20 - 1e-9 and tau.max() <= 2000 + 1e-6


@pytest.mark.parametrize(
    "hyper",
    [
        {},
        {"discretization": "bilinear"},
        {"conj_sym": False},
        {"clip_eigs": True, "step_rescale": 2.0},
        {"C_init": "complex_normal"},
        {"C_init": "lecun_normal", "discretization": "bilinear", "conj_sym": False},
    ],
)
def test_system_reproduces_s5_recurrence(hyper):
    layer = ssmctl.init("s5", d_model=5, d_state=16, blocks=2, n_layers=1, seed=3, **hyper)[0]
    if hyper.get("clip_eigs"):
        layer.params["Lambda_re"][:3] = [0.2, -1e-6, -3.0]  # exercise the clip as a trained model would
    rng = np.random.default_rng(0)
    L = 64
    u = rng.standard_normal((L, 5))
    y_ref = _s5_forward(layer, u)
    y = _conv(impulse_response(layer.system(), L), u)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-10)


def test_presets():
    m = ssmctl.init("s5", preset="lra_pathx", d_model=4, n_layers=1)
    assert m.config["blocks"] == 16 and m.config["dt_min"] == 1e-4 and m.config["C_init"] == "complex_normal"
    im = m[0].params["Lambda_im"].reshape(16, 8)
    assert np.all(im == im[0])
    c = ssmctl.init("s5", preset="lra_cifar", d_model=8, n_layers=1)
    assert c.config["d_state"] == 384 and c[0].params["Lambda_re"].shape == (192,) and c[0].config["clip_eigs"]


@pytest.mark.parametrize(
    "hyper, err, match",
    [
        ({"d_state": 100, "blocks": 8}, SsmctlError, r"d_state \(100\) must be divisible by blocks \(8\)"),
        ({"d_state": 24, "blocks": 8}, SsmctlError, "block size d_state/blocks must be even"),
        ({"C_init": "glorot"}, UnknownNameError, "known: complex_normal, lecun_normal, trunc_standard_normal"),
        ({"discretization": "foh"}, UnknownNameError, "unknown s5 discretization 'foh'; known: bilinear, zoh"),
        ({"preset": "listops"}, UnknownNameError, "unknown s5 preset 'listops'; known: lra_cifar, lra_pathx"),
        ({"dt_min": 0}, SsmctlError, "dt_min must be > 0"),
        ({"dt_max": 1e-4}, SsmctlError, r"dt_min \(0.001\) must not exceed dt_max \(0.0001\)"),
        ({"blocks": 0}, SsmctlError, "blocks must be a positive integer"),
    ],
)
def test_bad_hyperparameters(hyper, err, match):
    with pytest.raises(err, match=match):
        ssmctl.init("s5", **hyper)


def test_odd_blocks_allowed_without_conj_sym():
    layer = ssmctl.init("s5", d_state=24, blocks=8, conj_sym=False, d_model=2, n_layers=1)[0]
    assert layer.params["Lambda_re"].shape == (24,) and layer.system().output == "real"
    # eight copies of HiPPO-N(3)'s spectrum, one of them real (LAPACK on the block, independent of the eigh path)
    block = np.linalg.eigvals(hippo.legs_normal(3))
    lam = (layer.params["Lambda_re"] + 1j * layer.params["Lambda_im"]).reshape(8, 3)
    by_imag = lambda z: z[np.argsort(z.imag)]  # noqa: E731 (all real parts are −½)
    for row in lam:
        np.testing.assert_allclose(by_imag(row), by_imag(block), atol=1e-12)


def test_layer_from_params():
    src = ssmctl.init("s5", d_model=4, d_state=16, blocks=2, n_layers=1, seed=1)[0]
    tens = {k: torch.tensor(v) for k, v in src.params.items()}
    layer = s5.layer_from_params(tens, {"conj_sym": True, "discretization": "zoh"}, 2)
    assert layer.config["d_state"] == 16 and layer.index == 2
    np.testing.assert_array_equal(impulse_response(layer, 20), impulse_response(src, 20))
    with pytest.raises(ShapeError, match=r"'C' has shape \(4, 7, 2\), expected \(H, P, 2\) = \(4, 8, 2\)"):
        s5.layer_from_params(dict(src.params, C=np.zeros((4, 7, 2))), {}, 0)
    with pytest.raises(ShapeError, match=r"'log_step' has shape \(8,\), expected \(P, 1\) = \(8, 1\)"):
        s5.layer_from_params(dict(src.params, log_step=np.zeros(8)), {}, 0)
    with pytest.raises(CheckpointError, match="missing parameter 'Lambda_im'"):
        s5.layer_from_params({k: v for k, v in src.params.items() if k != "Lambda_im"}, {}, 0)
    with pytest.raises(SsmctlError, match="bidirectional S5"):
        s5.layer_from_params(dict(src.params, C1=src.params["C"], C2=src.params["C"]), {}, 0)


def test_family_record():
    fam = s5.FAMILY
    assert (fam.discretization, fam.structure, fam.implementation) == ("Exact / Bilinear", "MIMO", "Parallel Scan")
    assert fam.defaults["blocks"] == 8 and fam.defaults["d_state"] == 256
