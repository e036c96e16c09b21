"""ssmctl.analysis.dsf_measures: Hankel profiles, window gains, Taylor errors, Λ bounds, linear attention vs SSD,
the reversed-sigmoid identity and the explainability maps, each against a direct numpy computation or a closed
form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import NonFiniteError, ShapeError, SsmctlError, UnknownNameError, UnsupportedSystemError
from ssmctl.models import attention

BATCH = 2


def _u(d, length, seed=1, scale=1.0):
    return scale * torch.randn(BATCH, length, d, generator=torch.Generator().manual_seed(seed))


def _layer(family, **kw):
    return ssmctl.init(family, n_layers=1, **kw)[0]


def _width(layer):
    if "d_model" in layer.config:
        return layer.config["d_model"]
    system = layer.system()
    return system.batch_shape[0] if system.batch_shape else system.n_inputs


def _svd_ranks(P, t, rtol):
    """Singular values and rank of Φ[t:, :t] by numpy, one matrix at a time (no batching tricks)."""
    if P.ndim == 4:
        mats = [P[b, c, t:, :t] for b in range(P.shape[0]) for c in range(P.shape[1])]
        lead = P.shape[:2]
    else:
        L, p, m = P.shape[1], P.shape[3], P.shape[4]
        mats = [P[b, t:, :t].transpose(0, 2, 1, 3).reshape((L - t) * p, t * m) for b in range(P.shape[0])]
        lead = P.shape[:1]
    svals = [np.linalg.svd(M, compute_uv=False) for M in mats]
    ranks = [int((s > rtol * s[0]).sum()) if s[0] > 0 else 0 for s in svals]
    return svals, np.asarray(ranks).reshape(lead)


# --- Hankel profile ------------------------------------------------------------------------------------------

# family, hyperparameters, the real state dimension per channel (full layout: of the whole system)
FINITE_STATE = {
    "s6": ("s6", dict(d_model=8, d_state=4), 4),
    "ssd": ("s6", dict(d_model=8, d_state=4, variant="ssd"), 4),
    "rglru": ("rglru", dict(d_model=8, lru_width=8, num_heads=2), 1),
    "qlstm": ("qlstm", dict(d_model=4), 1),
    "lru": ("lru", dict(d_model=4, d_state=3), 6),  # 3 complex modes, y = Re(Ch): 6 real states
    "s4d": ("s4d", dict(d_model=4, d_state=4, variant="inv"), 4),  # 2 stored modes, y = 2·Re(Ch): 4 real states
    "linear": ("attention", dict(variant="linear", d_model=8, d_qk=6, num_heads=2), 3),
    "normalized": ("attention", dict(variant="normalized", d_model=8, d_qk=6, num_heads=2), 3),
    "mamba": ("mamba", dict(d_model=8, d_state=4), 4),
    "mamba2": ("mamba2", dict(d_model=16, d_state=8, headdim=8), 8),
}


@pytest.mark.parametrize("name", sorted(FINITE_STATE))
def test_hankel_rank_of_finite_state_layers_is_at_most_their_state(name):
    family, kw, n_states = FINITE_STATE[name]
    layer = _layer(family, **kw)
    L = 24
    u = _u(_width(layer), L, scale=2.0)
    phi = ssmctl.materialize(layer, u)
    ref = ssmctl.materialize_ref(layer, u)
    prof = ssmctl.hankel_profile(phi, rtol=1e-8)
    np.testing.assert_array_equal(prof.cuts, np.arange(1, L))
    for n, t in enumerate(prof.cuts):
        svals, ranks = _svd_ranks(ref, t, 1e-8)
        np.testing.assert_array_equal(prof.rank[..., n], ranks)
        got = prof.singular_values[..., n, :].reshape(-1, prof.singular_values.shape[-1])
        for g, s in zip(got, svals):
            np.testing.assert_allclose(g[: s.size], s, rtol=1e-8, atol=1e-12 * s[0])
            assert (g[s.size :] == 0).all()
    assert prof.rank.max() <= n_states
    assert prof.rank.max() == n_states  # and the bound is reached
    assert prof.rank.max() < prof.max_rank.max()  # far from full: a finite state shows


def test_hankel_rank_of_softmax_is_full_with_order_one_logits_and_small_with_small_weights():
    L, t = 40, 20
    big = _layer("attention", variant="softmax", d_model=8, d_qk=2)
    u = _u(8, L, scale=3.0)
    q, k, _, _ = attention._qkv(big, u)
    logits = np.abs(torch.einsum("bihm,bjhm->bhij", q, k).numpy()) / math.sqrt(2)
    assert 0.3 < np.median(logits) < 3  # |q·k|/√m of order 1
    prof = ssmctl.hankel_profile(ssmctl.materialize(big, u), cuts=[5, t, 35])
    np.testing.assert_array_equal(prof.rank, np.broadcast_to([5, 20, 5], prof.rank.shape))  # min(t, L − t)
    # N(0, 0.02) weights (zoology's re-init): |s| ~ 2e-3, so s^r/r! < 1e-8 from r = 3 on: the numerical rank is
    # the order-2 Taylor state on symmetric monomials, C(m + 2, 2) = 6 for m = 2, whatever the cut.
    small = _layer("attention", variant="softmax", d_model=8, d_qk=2, weight_init="mqar")
    prof = ssmctl.hankel_profile(ssmctl.materialize(small, _u(8, L)), cuts=[10, t, 30])
    assert prof.rank.max() == 6
    _, ranks = _svd_ranks(np.asarray(ssmctl.materialize_ref(small, _u(8, L))), t, 1e-8)
    np.testing.assert_array_equal(prof.rank[..., 1], ranks)


def test_hankel_profile_separates_softmax_from_finite_state_layers_on_loaded_checkpoints(tmp_path):
    """One zoology attention checkpoint loaded as softmax (full rank) and as linear attention (≤ head_dim = 3);
    a save_pretrained Mamba (≤ d_state per channel)."""
    from .. import ckpt_builders as cb
    from ..checkpoints.test_load_dsf_mixers import _mixer_params, _zoology

    mixers = [_mixer_params("attention", d_model=8, d_qk=6, num_heads=2, variant="linear")]
    path = cb.write_state_dict(_zoology(mixers), tmp_path / "mqar.pt")
    L = 30
    u = _u(8, L, scale=2.0)
    ranks = {}
    for variant in ("softmax", "linear"):
        layer = ssmctl.load(path, variant=variant, num_heads=2)[0]
        ranks[variant] = ssmctl.hankel_profile(ssmctl.materialize(layer, u), cuts=[5, 15, 25]).rank
    np.testing.assert_array_equal(ranks["softmax"].max(axis=(0, 1)), [5, 15, 5])
    assert ranks["linear"].max() == 3
    hf = cb.hf_model("mamba", seed=3)
    mamba = ssmctl.load(cb.save_hf(hf, tmp_path / "mamba"))[0]
    prof = ssmctl.hankel_profile(ssmctl.materialize(mamba, _u(mamba.config["d_model"], L)), cuts=[5, 15, 25])
    assert 0 < prof.rank.max() <= mamba.config["d_state"] < 15


@pytest.mark.parametrize("name", ["s6", "ssd", "linear", "normalized", "qlstm", "rglru", "mamba", "mamba2"])
def test_hankel_profile_from_the_core_factors_equals_the_svd_of_phi(name):
    """Φ[t:, :t] = O_t R_tᵀ through the state: the same singular values (the first min(N, t, L − t)), the rest 0."""
    family, kw, n_states = FINITE_STATE[name]
    layer = _layer(family, **kw)
    u = _u(_width(layer), 30, seed=4, scale=2.0)
    a = ssmctl.hankel_profile(ssmctl.materialize(layer, u))
    b = ssmctl.hankel_profile(ssmctl.dsf(layer, u))
    k = b.singular_values.shape[-1]
    assert k == min(n_states, 15)
    top = a.singular_values[..., :1]
    np.testing.assert_allclose(b.singular_values, a.singular_values[..., :k], rtol=1e-9, atol=1e-12 * top.max())
    assert (a.singular_values[..., k:] <= 1e-12 * top).all()
    np.testing.assert_array_equal(a.rank, b.rank)
    c = ssmctl.hankel_profile(ssmctl.dsf(layer, u), cuts=[4, 20], channel=-1)
    np.testing.assert_allclose(c.singular_values, a.singular_values[:, -1, [3, 19], :k], rtol=1e-9,
                               atol=1e-12 * top.max())


def test_hankel_profile_from_core_factors_with_zero_and_negative_transitions():
    layer = _layer("mamba", d_model=8, d_state=4)
    layer.params["mixer.A_log"] = layer.params["mixer.A_log"] + 9.0  # float32 exp(Δ·A) underflows to exactly 0
    u = _u(8, 30, seed=12)
    system = ssmctl.dsf(layer, u)
    assert (np.asarray(system.lam) == 0).any()
    a = ssmctl.hankel_profile(ssmctl.materialize_ref(layer, u), cuts=[3, 15, 27])
    b = ssmctl.hankel_profile(system, cuts=[3, 15, 27])
    np.testing.assert_array_equal(a.rank, b.rank)
    softmax = _layer("attention", variant="softmax", d_model=8, d_qk=2, num_heads=1)
    us = _u(8, 30, scale=3.0, seed=13)
    taylor = ssmctl.dsf(softmax, us, features=1)  # odd order: truncated η_i and Λ_i can be negative
    assert (np.asarray(taylor.lam) < 0).any()
    a = ssmctl.hankel_profile(ssmctl.materialize_ref(softmax, us, features=1), cuts=[3, 15, 27])
    b = ssmctl.hankel_profile(taylor, cuts=[3, 15, 27])
    k = b.singular_values.shape[-1]
    np.testing.assert_allclose(b.singular_values, a.singular_values[..., :k], rtol=1e-8,
                               atol=1e-12 * a.singular_values.max())
    assert b.rank.max() <= 3  # Σ_{r≤1} m^r = 3 states for m = 2


def test_hankel_profile_one_channel_lazy_and_errors():
    layer = _layer("s6", d_model=8, d_state=4)
    u = _u(8, 70)
    eager = ssmctl.materialize(layer, u)
    lazy = ssmctl.materialize(layer, u, max_bytes=60_000)
    assert lazy.lazy
    a = ssmctl.hankel_profile(eager, cuts=[3, 35, 69], channel=5)
    b = ssmctl.hankel_profile(lazy, cuts=[3, 35, 69], channel=5)
    assert a.rank.shape == (BATCH, 3) and a.singular_values.shape == (BATCH, 3, 35)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_allclose(a.singular_values, b.singular_values, rtol=1e-10, atol=1e-14)
    _, ranks = _svd_ranks(np.asarray(eager)[:, 5:6], 35, 1e-8)
    np.testing.assert_array_equal(a.rank[:, 1], ranks[:, 0])
    assert ssmctl.hankel_profile(eager).cuts.size == 64  # default: 64 evenly spaced cuts past L − 1 = 64
    with pytest.raises(ShapeError, match="cuts must be integers in 1..69"):
        ssmctl.hankel_profile(eager, cuts=[0])
    with pytest.raises(ShapeError, match="channel 8 outside the 8 channels"):
        ssmctl.hankel_profile(eager, channel=8)
    with pytest.raises(SsmctlError, match="rtol"):
        ssmctl.hankel_profile(eager, rtol=0)
    with pytest.raises(ShapeError, match="3 axes"):
        ssmctl.hankel_profile(np.zeros((1, 4, 4)))
    mimo = ssmctl.LTVSystem(lam=np.full((1, 5, 2, 3), 0.5), B=np.ones((1, 5, 2, 3, 2)), C=np.ones((1, 5, 2, 1, 3)),
                            D=np.zeros((2, 1, 2)), output="real")
    with pytest.raises(UnsupportedSystemError, match="one input and one output per channel"):
        ssmctl.hankel_profile(mimo)
    bad = ssmctl.LTVSystem(lam=np.full((1, 5, 2, 3), np.nan), B=np.ones((1, 5, 2, 3, 1)), C=np.ones((1, 5, 2, 1, 3)),
                           D=np.zeros((2, 1, 1)), output="real")
    with pytest.raises(NonFiniteError, match="core contains NaN"):
        ssmctl.hankel_profile(bad)


# --- window gain ---------------------------------------------------------------------------------------------

def test_window_gain_is_the_largest_singular_value_of_the_window():
    layer = _layer("qlstm", d_model=4)
    u = _u(4, 30)
    phi = ssmctl.materialize(layer, u)
    P = np.asarray(phi)
    got = ssmctl.window_gain(phi, 7, 19)
    want = np.array([[np.linalg.svd(P[b, c, 7:19, 7:19], compute_uv=False)[0] for c in range(P.shape[1])]
                     for b in range(BATCH)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(ssmctl.window_gain(phi, 7, 19, channel=2), want[:, 2], rtol=1e-12)
    # The gain is attained: the top right singular vector as input gives ‖y‖ = gain·‖x‖.
    _, s, vt = np.linalg.svd(P[0, 2, 7:19, 7:19])
    assert np.linalg.norm(P[0, 2, 7:19, 7:19] @ vt[0]) == pytest.approx(s[0], rel=1e-12)
    full = ssmctl.materialize(layer, u, scope="block")
    F = np.asarray(full)
    L, p, m = F.shape[1], F.shape[3], F.shape[4]
    block = F[:, 3:11, 3:11].transpose(0, 1, 3, 2, 4).reshape(BATCH, 8 * p, 8 * m)
    np.testing.assert_allclose(ssmctl.window_gain(full, 3, 11), np.linalg.norm(block, 2, axis=(1, 2)), rtol=1e-12)
    with pytest.raises(ShapeError, match="0 ≤ start < stop ≤ L = 30"):
        ssmctl.window_gain(phi, 5, 5)
    with pytest.raises(ShapeError, match="full Φ has no channel axis"):
        ssmctl.window_gain(full, 0, 4, channel=0)
    with pytest.raises(ShapeError, match="start must be an integer"):
        ssmctl.window_gain(phi, "a", 4)
    bad = P.copy()
    bad[0, 0, 9, 8] = np.nan
    with pytest.raises(NonFiniteError, match="NaN or Inf in rows 7..18"):
        ssmctl.window_gain(bad, 7, 19)
    with pytest.raises(NonFiniteError, match="NaN"):
        ssmctl.hankel_profile(bad, cuts=[9])


# --- Taylor error --------------------------------------------------------------------------------------------

def test_taylor_error_falls_with_order_and_matches_a_direct_computation():
    layer = _layer("attention", variant="softmax", d_model=8, d_qk=4, num_heads=2)
    u = _u(8, 12, scale=0.5)
    res = ssmctl.taylor_error(layer, u, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(res.state_size, [1, 3, 7, 15, 31])  # Σ_{r ≤ p} 2^r, m = head_dim = 2
    assert (np.diff(res.rel_error) < 0).all() and res.rel_error[-1] < 1e-3
    # Direct numpy: α_p = tril(T_p(s)) / rowsum with T_p the Taylor polynomial of exp at s = q·k/√m.
    q, k, _, _ = attention._qkv(layer, u)
    s = torch.einsum("bihm,bjhm->bhij", q, k).numpy() / math.sqrt(2)
    exact = np.tril(np.exp(s))
    exact /= exact.sum(-1, keepdims=True)
    for n, p in enumerate(res.orders):
        poly = np.tril(sum(s**r / math.factorial(r) for r in range(p + 1)))
        approx = poly / poly.sum(-1, keepdims=True)
        diff = np.repeat(approx - exact, 4, axis=1)  # 4 value channels per head
        want = np.linalg.norm(diff) / np.linalg.norm(np.repeat(exact, 4, axis=1))
        assert res.rel_error[n] == pytest.approx(want, rel=1e-9)
    larger = ssmctl.taylor_error(layer, _u(8, 12, scale=2.0), [2])
    assert larger.rel_error[0] > res.rel_error[2]  # bigger logits, bigger error at the same order
    with pytest.raises(UnsupportedSystemError, match="softmax"):
        ssmctl.taylor_error(_layer("attention", variant="linear", d_model=8), _u(8, 5), [1])


# --- Λ bounds ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family, kw", [
    ("s6", dict(d_model=8, d_state=4)), ("s6", dict(d_model=8, d_state=4, variant="ssd")),
    ("qlstm", dict(d_model=4)), ("qlstm", dict(d_model=4, variant="standard")),
    ("rglru", dict(d_model=8, lru_width=8, num_heads=2)), ("mamba", dict(d_model=8, d_state=4)),
    ("lru", dict(d_model=4, d_state=3)), ("s4d", dict(d_model=4, d_state=4)), ("s5", dict(d_model=4, d_state=8, blocks=2)),
    ("s4", dict(d_model=4, d_state=8)), ("mamba2", dict(d_model=16, d_state=8, headdim=8)),
])
def test_transitions_of_ssms_and_rnns_lie_inside_the_unit_interval(family, kw):
    layer = _layer(family, **kw)
    res = ssmctl.lambda_bounds(layer, _u(_width(layer), 20, scale=3.0))
    assert res.frac_inside == 1.0 and res.frac_above == 0.0 and 0 < res.min <= res.max < 1


def test_transition_exceptions_reversed_qlstm_alpha_and_float32_rounding():
    layer = _layer("qlstm", d_model=4)
    layer.params["alpha"] = torch.tensor(-0.5)
    res = ssmctl.lambda_bounds(layer, _u(4, 20))
    assert res.frac_one == 1.0 and res.min == res.max == 1.0  # relu(α) = 0: Λ ≡ 1
    s6 = _layer("s6", d_model=8, d_state=4)
    s6.params["A_log"] = s6.params["A_log"] + 9.0  # exp(Δ·A) underflows in the float32 scan
    res = ssmctl.lambda_bounds(s6, _u(8, 20, scale=3.0))
    assert res.frac_zero > 0 and res.frac_above == 0
    s6 = _layer("s6", d_model=8, d_state=4)
    s6.params["A_log"] = s6.params["A_log"] - 20.0  # |ΔA| < 2^-24: rounds to exactly 1 in float32
    res = ssmctl.lambda_bounds(s6, _u(8, 20))
    assert res.frac_one > 0 and res.frac_above == 0


@pytest.mark.parametrize("variant", ["softmax", "linear"])
def test_attention_transitions_exceed_one_at_some_tokens(variant):
    layer = _layer("attention", variant=variant, d_model=8, d_qk=6, num_heads=2)
    u = _u(8, 40, scale=2.0)
    res = ssmctl.lambda_bounds(layer, u)
    assert res.count == BATCH * 39 * 2 and 0.1 < res.frac_above < 0.9  # often, not always
    log_eta = attention.log_normalizer(layer, u)
    np.testing.assert_allclose(res.lam, np.exp(log_eta[:, :-1] - log_eta[:, 1:]), rtol=1e-12)
    alpha = attention.attention_matrix(layer, u)  # yet the telescoped products are convex weights
    assert (alpha >= 0).all() and np.allclose(alpha.sum(-1), 1.0)


def test_normalized_attention_transitions_are_unbounded():
    layer = _layer("attention", variant="normalized", d_model=8, d_qk=6, num_heads=2)
    maxima = [ssmctl.lambda_bounds(layer, _u(8, 20, scale=s)).max for s in (1.0, 10.0, 100.0)]
    assert maxima[0] < maxima[1] < maxima[2] and maxima[2] > 1e6
    # Λ_i = exp(W_η(u_{i−1} − u_i)): the bias cancels
    u = _u(8, 20).double().numpy()
    w = layer.params["Wn.weight"].double().numpy()
    want = np.exp(np.einsum("hd,bid->bih", w, u[:, :-1] - u[:, 1:]))
    np.testing.assert_allclose(ssmctl.lambda_bounds(layer, u).lam, want, rtol=1e-10)


# --- reversed sigmoid ---------------------------------------------------------------------------------------

def test_reversed_sigmoid_identity_and_reversed_qlstm_uses_it():
    x = np.linspace(-30, 30, 601)
    for a in (-0.1, -1.0, -3.7, 0.5):
        lhs, rhs = ssmctl.reversed_sigmoid_identity(x, a)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-13)
    layer = _layer("qlstm", d_model=4)
    layer.params["alpha"] = torch.tensor(2.5)
    u = _u(4, 15)
    system = ssmctl.dsf(layer, u)
    # the forget pre-activation f from the conv output, by hand
    p = {k: v.double() for k, v in layer.params.items()}
    x_conv = system.inputs[..., 0].double()
    f = torch.nn.functional.linear(x_conv, p["gates.weight"], p["gates.bias"]).chunk(3, dim=-1)[0].numpy()
    _, rhs = ssmctl.reversed_sigmoid_identity(f, -2.5)  # σ(−f)^relu(α)
    np.testing.assert_allclose(ssmctl.dsf_eigenvalues(layer, u)[..., 0], rhs, rtol=1e-12)
    ssd = _layer("s6", d_model=8, d_state=4, variant="ssd")
    us = _u(8, 15)
    system = ssmctl.dsf(ssd, us)
    a = -math.exp(float(ssd.params["A_log"]))
    pre = np.log(np.expm1(np.asarray(system.dt, dtype=np.float64)))  # softplus⁻¹(Δ)
    _, rhs = ssmctl.reversed_sigmoid_identity(pre, a)
    np.testing.assert_allclose(np.asarray(system.lam, dtype=np.float64)[..., 0], rhs, rtol=1e-5)  # float32 scan


# --- linear attention vs SSD --------------------------------------------------------------------------------

def test_linear_attention_with_linear_features_is_an_ssd():
    rng = np.random.default_rng(2)
    d, N, L = 3, 4, 25
    w_q, w_k = rng.standard_normal((2, N, d))
    u = rng.standard_normal((BATCH, L, d))
    match = ssmctl.linear_attention_as_ssd(w_q, w_k, u)
    assert match.max_abs_diff < 1e-10
    want = np.tril(np.einsum("bin,bjn->bij", u @ w_q.T, u @ w_k.T))  # Φ_ij = q_i·k_j, direct
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(match.ssd)), np.broadcast_to(want[:, None], (BATCH, d, L, L)),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(match.ssd.lam), 1.0)  # a = 0: Λ = I
    np.testing.assert_allclose(np.logaddexp(0, match.dt_bias), 1.0)  # Δ ≡ 1 from equal biases
    # unequal dt biases break it: Δ_i differs per channel, so B_i does
    other = ssmctl.analysis.dsf_measures._ssd_core(match.x_proj, match.dt_bias + np.arange(d), 0.0, u)
    assert np.abs(np.asarray(ssmctl.materialize(other)) - np.asarray(ssmctl.materialize(match.attention))).max() > 0.1
    decaying = ssmctl.analysis.dsf_measures._ssd_core(match.x_proj, match.dt_bias, -0.5, u)  # a ≠ 0: Λ ≠ I
    assert np.abs(np.asarray(ssmctl.materialize(decaying)) - np.asarray(ssmctl.materialize(match.attention))).max() > 0.1


def test_no_ssd_matches_linear_attention_with_elu_features():
    rng = np.random.default_rng(3)
    d, N, L = 3, 4, 25
    w_q, w_k = rng.standard_normal((2, N, d))
    u = rng.standard_normal((BATCH, L, d))
    q, k = u @ w_q.T, u @ w_k.T
    _, res_linear = ssmctl.ssd_bilinear_fit(np.tril(np.einsum("bin,bjn->bij", q, k)), u)
    assert res_linear < 1e-10  # the fit is exact when the features are linear
    elu1 = lambda x: np.where(x > 0, x + 1, np.exp(x))  # noqa: E731
    target = np.tril(np.einsum("bin,bjn->bij", elu1(q), elu1(k)))
    _, res_elu = ssmctl.ssd_bilinear_fit(target, u)
    assert res_elu > 0.05
    # and at a zero token no SSD row survives off the diagonal (c_i = W_C·0), while elu + 1 attention's does
    u0 = u.copy()
    u0[:, 10] = 0
    layer = _layer("s6", d_model=3, d_state=4, variant="ssd")
    P = np.asarray(ssmctl.materialize(layer, u0))
    assert (P[:, :, 10, :10] == 0).all()
    assert (np.einsum("bn,bjn->bj", elu1(np.zeros((BATCH, N))), elu1(u0[:, :10] @ w_k.T)) > 0).all()
    with pytest.raises(ShapeError, match=r"need target \(batch, L, L\)"):
        ssmctl.ssd_bilinear_fit(target[:, :5], u)
    with pytest.raises(ShapeError, match=r"need w_q, w_k \(N, d\)"):
        ssmctl.linear_attention_as_ssd(w_q, w_k[:, :2], u)


# --- explainability -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("family, kw", [
    ("attention", dict(variant="softmax", d_model=8, num_heads=2)), ("s6", dict(d_model=8, d_state=4)),
    ("qlstm", dict(d_model=4)), ("rglru", dict(d_model=8, lru_width=8, num_heads=2)), ("lru", dict(d_model=4, d_state=3)),
    ("attention", dict(variant="normalized", d_model=8, num_heads=2)), ("attention", dict(variant="linear", d_model=8)),
    ("mamba2", dict(d_model=16, d_state=8, headdim=8)), ("s4d", dict(d_model=4, d_state=4)),
    ("s5", dict(d_model=4, d_state=8, blocks=2)),
])
def test_attention_map_aggregates_abs_phi_over_channels(family, kw):
    layer = _layer(family, **kw)
    phi = ssmctl.materialize(layer, _u(_width(layer), 10))
    P = np.abs(np.asarray(phi))
    axes = 1 if phi.layout == "per_channel" else (3, 4)
    want = {"mean": P.mean(axis=axes), "sum": P.sum(axis=axes), "max": P.max(axis=axes),
            "l2": np.sqrt((P**2).sum(axis=axes))}
    for agg, w in want.items():
        np.testing.assert_allclose(ssmctl.attention_map(phi, agg), w, rtol=1e-13)
    row = ssmctl.attention_map(phi, "sum", normalize="row")
    np.testing.assert_allclose(row, want["sum"] / want["sum"].sum(-1, keepdims=True), rtol=1e-13)
    assert (np.triu(row, 1) == 0).all()
    with pytest.raises(UnknownNameError, match="aggregate"):
        ssmctl.attention_map(phi, "median")


def test_attention_map_of_softmax_is_the_attention_matrix_and_lazy_equals_eager():
    layer = _layer("attention", variant="softmax", d_model=8, num_heads=1)
    u = _u(8, 12)
    np.testing.assert_allclose(ssmctl.attention_map(ssmctl.materialize(layer, u)), attention.attention_matrix(layer, u)[:, 0],
                               rtol=1e-13)
    s6 = _layer("s6", d_model=8, d_state=4)
    u = _u(8, 60)
    lazy = ssmctl.materialize(s6, u, max_bytes=50_000)
    assert lazy.lazy
    np.testing.assert_allclose(ssmctl.attention_map(lazy, "l2"), ssmctl.attention_map(ssmctl.materialize(s6, u), "l2"),
                               rtol=1e-12)


def test_rollout_is_the_product_of_residual_mixed_maps():
    rng = np.random.default_rng(4)
    L = 6
    maps = [np.tril(rng.random((BATCH, L, L))) for _ in range(3)]
    got = ssmctl.rollout(maps)
    want = np.broadcast_to(np.eye(L), (BATCH, L, L))
    for m in maps:
        a = 0.5 * m / m.sum(-1, keepdims=True) + 0.5 * np.eye(L)
        want = np.einsum("bij,bjk->bik", a, want)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(got.sum(-1), 1.0)
    np.testing.assert_allclose(ssmctl.rollout(maps[:1], residual=0.0), maps[0] / maps[0].sum(-1, keepdims=True))
    with pytest.raises(ShapeError, match="non-negative"):
        ssmctl.rollout([-maps[0]])
    with pytest.raises(ShapeError, match="at least one"):
        ssmctl.rollout([])


def test_attribution_sums_to_the_output_and_reads_map_rows():
    layer = _layer("s6", d_model=8, d_state=4)
    u = _u(8, 10)
    phi = ssmctl.materialize(layer, u)
    P, x = np.asarray(phi), phi.inputs
    contrib = P[:, :, 7, :] * x.transpose(0, 2, 1)  # (b, c, j): Φ_7j x_j per channel
    np.testing.assert_allclose(contrib.sum(-1), np.einsum("bcj,bjc->bc", P[:, :, 7], x), rtol=1e-13)
    np.testing.assert_allclose(contrib.sum(-1), ssmctl.dsf(layer, u).output_ref()[:, 7, :, 0], rtol=1e-5)
    got = ssmctl.attribution(phi, 7)
    np.testing.assert_allclose(got, np.sqrt((contrib**2).sum(1)), rtol=1e-13)
    assert (got[:, 8:] == 0).all()
    np.testing.assert_allclose(ssmctl.attribution(P, -3, aggregate="sum"), np.abs(P[:, :, 7]).sum(1), rtol=1e-13)
    m = ssmctl.attention_map(phi)
    np.testing.assert_array_equal(ssmctl.attribution(m, 4), m[:, 4])
    full = ssmctl.materialize(layer, u, scope="block")
    F = np.asarray(full)
    want = np.abs(np.einsum("bjpm,bjm->bjp", F[:, 5], full.inputs)).max(-1)
    np.testing.assert_allclose(ssmctl.attribution(full, 5, aggregate="max"), want, rtol=1e-13)
    with pytest.raises(ShapeError, match="token 10 outside"):
        ssmctl.attribution(phi, 10)
    with pytest.raises(ShapeError, match="inputs must be"):
        ssmctl.attribution(phi, 2, inputs=np.zeros((BATCH, 10, 3)))
