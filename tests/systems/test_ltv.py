"""LTVSystem: the per-token container and its sequential reference, checked against closed forms and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from ssmctl.errors import ShapeError
from ssmctl.systems.lti import DiagonalLTI
from ssmctl.systems.ltv import LTVSystem

RNG = np.random.default_rng(0)


def _scalar_channels(lam: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> LTVSystem:
    """Scalar (N = 1) SISO channels with per-token λ_t, b_t, c_t (batch, L, ch) and constant d (ch,)."""
    return LTVSystem(
        lam=lam[..., None], B=b[..., None, None], C=c[..., None, None], D=d[:, None, None], output="real"
    )


def test_constant_coefficients_match_scipy_lfilter():
    batch, L, ch = 2, 40, 3
    lam_c = np.array([0.9, -0.5, 0.3])
    b_c, c_c, d_c = np.array([1.0, 0.5, 2.0]), np.array([0.7, -1.2, 1.0]), np.array([0.1, 0.0, -0.3])
    tile = lambda v: np.broadcast_to(v, (batch, L, ch)).copy()  # noqa: E731
    sys = _scalar_channels(tile(lam_c), tile(b_c), tile(c_c), d_c)
    u = RNG.standard_normal((batch, L, ch, 1))
    y = sys.simulate_ref(u)
    assert y.shape == (batch, L, ch, 1) and y.dtype == np.float64
    # h_t = λ h_{t-1} + b u_t  <=>  H(z) = b / (1 − λ z^{-1}); y = c h + d u.
    for k in range(ch):
        h = scipy.signal.lfilter([b_c[k]], [1.0, -lam_c[k]], u[:, :, k, 0], axis=1)
        np.testing.assert_allclose(y[:, :, k, 0], c_c[k] * h + d_c[k] * u[:, :, k, 0], rtol=1e-12, atol=1e-12)


def test_time_varying_matches_transition_products():
    batch, L, ch = 2, 25, 4
    lam = RNG.uniform(0.5, 0.99, (batch, L, ch))
    b = RNG.standard_normal((batch, L, ch))
    c = RNG.standard_normal((batch, L, ch))
    d = RNG.standard_normal(ch)
    u = RNG.standard_normal((batch, L, ch))
    sys = _scalar_channels(lam, b, c, d)
    y = sys.simulate_ref(u[..., None])[..., 0]
    # y_t = c_t Σ_{k≤t} (Π_{j=k+1..t} λ_j) b_k u_k + d u_t, with the products from cumulative log sums.
    S = np.cumsum(np.log(lam), axis=1)  # (batch, L, ch)
    t_idx, k_idx = np.tril_indices(L)
    phi = np.zeros((batch, L, L, ch))
    phi[:, t_idx, k_idx] = np.exp(S[:, t_idx] - S[:, k_idx])
    h = np.einsum("btkc,bkc->btc", phi, b * u)
    np.testing.assert_allclose(y, c * h + d * u, rtol=1e-10, atol=1e-12)


def test_conj_pair_and_complex_output_modes():
    batch, L = 1, 30
    lam = np.full((batch, L, 1), 0.8 * np.exp(0.4j))
    b = np.ones((batch, L, 1), dtype=complex)
    c = np.full((batch, L, 1), 0.5 - 0.25j)
    u = RNG.standard_normal((batch, L, 1))
    h = scipy.signal.lfilter([1.0], [1.0, -lam[0, 0, 0]], u[0, :, 0])
    for mode, expected in (("complex", c[0, 0, 0] * h), ("conj_pair", 2.0 * (c[0, 0, 0] * h).real)):
        sys = LTVSystem(lam=lam[..., None], B=b[..., None, None], C=c[..., None, None],
                        D=np.zeros((1, 1, 1)), output=mode)
        y = sys.simulate_ref(u[..., None])[0, :, 0, 0]
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        assert np.iscomplexobj(y) == (mode == "complex")


@pytest.mark.parametrize("output", ["real", "conj_pair", "complex"])
def test_mimo_multi_state_matches_an_explicit_loop(output):
    # N = 3 complex states per channel, m = 2 inputs, p = 3 outputs, two channel dims: every index written out.
    batch, L, c1, c2, N, m, p = 2, 7, 2, 3, 3, 2, 3
    lam = RNG.uniform(0.3, 0.95, (batch, L, c1, c2, N)) * np.exp(1j * RNG.uniform(-3, 3, (batch, L, c1, c2, N)))
    B = RNG.standard_normal((batch, L, c1, c2, N, m)) + 1j * RNG.standard_normal((batch, L, c1, c2, N, m))
    C = RNG.standard_normal((batch, L, c1, c2, p, N)) + 1j * RNG.standard_normal((batch, L, c1, c2, p, N))
    D = RNG.standard_normal((c1, c2, p, m))
    u = RNG.standard_normal((batch, L, c1, c2, m))
    y = LTVSystem(lam=lam, B=B, C=C, D=D, output=output).simulate_ref(u)
    f = {"real": 1.0, "conj_pair": 2.0}.get(output)
    for b in range(batch):
        for i in range(c1):
            for j in range(c2):
                h = np.zeros(N, dtype=complex)
                for t in range(L):
                    h = lam[b, t, i, j] * h + B[b, t, i, j] @ u[b, t, i, j]
                    out = C[b, t, i, j] @ h
                    ref = (out if f is None else f * out.real) + D[i, j] @ u[b, t, i, j]
                    np.testing.assert_allclose(y[b, t, i, j], ref, rtol=1e-12, atol=1e-12)


def test_stored_inputs_drive_output_ref_and_accept_torch():
    batch, L, ch, N = 2, 6, 3, 2
    lam = torch.rand(batch, L, ch, N) * 0.9
    B = torch.randn(batch, L, ch, N, 1)
    C = torch.randn(batch, L, ch, 1, N)
    D = torch.randn(ch, 1, 1)
    x = torch.randn(batch, L, ch, 1)
    sys = LTVSystem(lam=lam, B=B, C=C, D=D, inputs=x)
    np.testing.assert_array_equal(sys.output_ref(), sys.simulate_ref(x))
    assert (sys.n_states, sys.n_inputs, sys.n_outputs, sys.channel_shape) == (N, 1, 1, (ch,))
    np.testing.assert_array_equal(sys.abs_eigenvalues(), np.abs(lam.double().numpy()))


def test_frozen_is_the_token_slice():
    batch, L, ch, N = 2, 5, 3, 4
    lam = RNG.uniform(-0.9, 0.9, (batch, L, ch, N))
    B = RNG.standard_normal((batch, L, ch, N, 1))
    C = RNG.standard_normal((batch, L, ch, 1, N))
    D = RNG.standard_normal((ch, 1, 1))
    sys = LTVSystem(lam=torch.from_numpy(lam), B=B, C=C, D=D, output="real")
    for t in (0, 3, -1):
        f = sys.frozen(t)
        assert isinstance(f, DiagonalLTI) and f.batch_shape == (batch, ch)
        np.testing.assert_array_equal(f.lam.real, lam[:, t])
        np.testing.assert_array_equal(f.B.real, B[:, t])
        np.testing.assert_array_equal(f.C.real, C[:, t])
        assert f.real_state and f.n_states == N
        assert f.meta["frozen_at"] == t
    with pytest.raises(ShapeError, match="token index 5 outside the sequence of length 5"):
        sys.frozen(5)


def test_bad_shapes_are_refused():
    lam = np.zeros((1, 4, 2, 3))
    with pytest.raises(ShapeError, match=r"LTVSystem needs lam \(batch, L, \.\.\., N\)"):
        LTVSystem(lam=lam, B=np.zeros((1, 4, 2, 2, 1)), C=np.zeros((1, 4, 2, 1, 3)), D=np.zeros((2, 1, 1)))
    ok = dict(lam=lam, B=np.zeros((1, 4, 2, 3, 1)), C=np.zeros((1, 4, 2, 1, 3)), D=np.zeros((2, 1, 1)))
    with pytest.raises(ShapeError, match=r"inputs must have shape \(batch, L, \*channels, m\) = \(1, 4, 2, 1\), "
                                         r"got \(1, 4, 2\)"):
        LTVSystem(**ok, inputs=np.zeros((1, 4, 2)))
    with pytest.raises(ShapeError, match="no stored inputs"):
        LTVSystem(**ok).output_ref()
