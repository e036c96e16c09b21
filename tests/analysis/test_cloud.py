"""eigenvalue_cloud: the eigenvalues of systems, layers and models, flattened; LTV layers on the stated input."""

from __future__ import annotations

import numpy as np
import pytest

import ssmctl
from ssmctl.analysis.cloud import CLOUD_INPUT, eigenvalue_cloud, random_layer_input
from ssmctl.errors import ShapeError
from tests.helpers import random_diagonal


def _same_multiset(a, b, tol):
    a, b = np.sort_complex(np.asarray(a).ravel()), np.sort_complex(np.asarray(b).ravel())
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=tol)


def test_systems_and_arrays(rng):
    sys = random_diagonal(rng, N=3, output="conj_pair", batch=(2,))
    _same_multiset(eigenvalue_cloud(sys), np.concatenate([sys.lam, sys.lam.conj()], axis=-1), 1e-15)
    A = rng.normal(size=(2, 4, 4))
    dense = ssmctl.DenseLTI(A, np.ones((4, 1)), np.ones((1, 4)))
    _same_multiset(eigenvalue_cloud(dense), np.linalg.eigvals(A), 1e-12)
    arr = np.array([[0.5, 0.1j], [0.2, -0.3]])
    np.testing.assert_array_equal(eigenvalue_cloud(arr), arr.ravel().astype(complex))
    with pytest.raises(ShapeError, match="cannot take eigenvalues of a object"):
        eigenvalue_cloud(object())


def test_lti_layer_is_the_closed_form_spectrum():
    layer = ssmctl.init("s4d", variant="lin", d_model=3, d_state=8, n_layers=1, seed=1)[0]
    dt = np.exp(layer.params["kernel.log_dt"])
    lam = np.exp(dt[:, None] * (-0.5 + 1j * np.pi * np.arange(4)))  # S4D-Lin, ZOH
    _same_multiset(eigenvalue_cloud(layer), np.concatenate([lam, lam.conj()], axis=-1), 1e-13)


def test_random_layer_input_is_the_stated_gaussian():
    u = random_layer_input(16)
    assert u.shape == (CLOUD_INPUT["batch"], CLOUD_INPUT["length"], 16) and u.dtype == np.float32
    ref = np.random.default_rng(CLOUD_INPUT["seed"]).standard_normal(u.shape)
    np.testing.assert_array_equal(u, ref.astype(np.float32))
    assert np.sqrt(np.mean(u.astype(np.float64) ** 2)) == pytest.approx(CLOUD_INPUT["rms"], rel=0.02)
    assert not np.array_equal(random_layer_input(16, seed=1), u)


def test_ltv_layers_and_models_use_one_input_per_layer_index():
    model = ssmctl.init("mamba2", d_model=32, headdim=16, d_state=4, n_layers=2, seed=3)
    H = model.layers[0].config["nheads"]
    clouds = []
    for layer in model.layers:
        # layer i sees the stated input with seed 0 + i; Mamba-2 has one Ā_t per head (shared by its
        # headdim·N states), each counted once
        u = np.random.default_rng(layer.index).standard_normal((4, 256, 32)).astype(np.float32)
        lam = np.asarray(layer.ltv(u).lam[..., 0, 0], dtype=np.float64)  # (batch, L, H)
        cloud = eigenvalue_cloud(layer)
        assert cloud.shape == (4 * 256 * H,)
        _same_multiset(cloud, lam, 0.0)
        clouds.append(cloud)
    np.testing.assert_array_equal(eigenvalue_cloud(model), np.concatenate(clouds))
    short = eigenvalue_cloud(model.layers[0], batch=2, length=7)
    u = np.random.default_rng(0).standard_normal((2, 7, 32)).astype(np.float32)
    _same_multiset(short, np.asarray(model.layers[0].ltv(u).lam[..., 0, 0], dtype=np.float64), 0.0)
