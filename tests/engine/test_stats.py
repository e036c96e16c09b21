"""Streaming LTV statistics against brute force on the full (tokens × channels × states) arrays in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssmctl.engine.stats import LTVStats, default_lags, hist_quantile
from ssmctl.analysis.spectrum import memory_horizon
from ssmctl.errors import NonFiniteError, ShapeError, SsmctlError


pytestmark = pytest.mark.usefixtures("one_torch_thread")

B, L, H, N = 2, 700, 6, 4


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    # float32 rates, as the engine produces them; the brute-force checks below work in float64 from these values
    rate = torch.exp(torch.randn(B, L, H, generator=g) - 2.5)  # Δ-like, log-normal
    a = torch.rand(H, N, generator=g, dtype=torch.float64) * 12 + 0.2
    return rate, a


def _run(rate, a, chunk, **kw):
    st = LTVStats(a, rate.shape[1], batch=rate.shape[0], **kw)
    for t0 in range(0, rate.shape[1], chunk):
        st.update(rate[:, t0:t0 + chunk])
    return st, st.result()


@pytest.fixture(scope="module")
def result(data):
    return _run(*data, chunk=128, lag_samples=16)[1]


def test_default_lags():
    assert default_lags(1) == [1] and default_lags(2) == [1] and default_lags(9) == [1, 2, 4, 8]
    assert default_lags(4097) == [2**k for k in range(13)]


def test_extremes_are_exact(data, result):
    rate, a = (x.double().numpy() for x in data)
    absA = np.exp(-rate[..., None] * a)  # |Ā_t| for every (batch, token, channel, state)
    assert result.abs_min == pytest.approx(absA.min(), rel=1e-12)
    assert result.abs_max == pytest.approx(absA.max(), rel=1e-12)
    assert result.rate_min == rate.min() and result.rate_max == rate.max()
    assert result.n_tokens == L and result.n_channels == H and result.n_states == N


def test_quantiles_within_one_bin_of_numpy(data, result):
    rate, a = (x.double().numpy() for x in data)
    w = result.bin_width
    absA = np.exp(-rate[..., None] * a)
    mh = memory_horizon(absA, eps=1e-2)  # ssmctl's frozen-time horizon, per eigenvalue
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        # rate: bins of w in ln; |Ā| and horizon: one bin plus the half-bin snap of ln a
        assert abs(math.log(result.rate_quantiles[q]) - math.log(np.quantile(rate, q))) <= w
        exact_y = np.log(-np.log(np.quantile(absA, q)))
        assert abs(math.log(-math.log(result.abs_quantiles[q])) - exact_y) <= 1.5 * w
        assert abs(math.log(result.memory_horizon_quantiles[q]) - math.log(np.quantile(mh, q))) <= 1.5 * w
    assert result.memory_horizon_inf_count == 0
    assert result.rate_hist.sum() == B * L * H and result.abs_hist.sum() == B * L * H * N


def test_token_traces_and_heatmap(data, result):
    rate, a = (x.double().numpy() for x in data)
    slow = rate * a.min(1)  # −ln of each channel's largest |Ā_t|
    k = np.log(100.0) / slow
    np.testing.assert_allclose(result.memory_token_max, np.log(100.0) / slow.min(-1), rtol=1e-5)
    np.testing.assert_allclose(result.memory_token_gmean, np.exp(np.log(k).mean(-1)), rtol=1e-5)
    binsize = result.heatmap_bin
    heat = np.exp(-slow).mean(0)  # (L, H) averaged over the batch
    n_bins = -(-L // binsize)
    expect = np.stack([heat[i * binsize:(i + 1) * binsize].mean(0) for i in range(n_bins)])
    np.testing.assert_allclose(result.heatmap, expect, rtol=1e-6)


def test_transition_decay_matches_products_of_eigenvalues(data, result):
    rate, a = (x.double().numpy() for x in data)
    absA = np.exp(-rate[..., None] * a)
    for j, (lag, stride) in enumerate(zip(result.lags, result.lag_stride)):
        assert stride == max(1, lag // 16)
        s = np.arange(0, L - lag, stride)
        # ‖Ā_t ⋯ Ā_{s+1}‖ for a diagonal matrix: the largest |entry|, products taken token by token
        prods = np.stack([np.prod(absA[:, si + 1:si + lag + 1], axis=1) for si in s], axis=1)  # (B, n, H, N)
        norms = prods.max(-1)
        frozen = (absA[:, s + lag] ** lag).max(-1)
        assert result.lag_pairs[j] == B * len(s)
        # exponentials in float32: values below ~1e-38 read as 0
        np.testing.assert_allclose(result.decay_channel[j], norms.mean((0, 1)), rtol=2e-5, atol=1e-36)
        assert result.decay_mean[j] == pytest.approx(norms.mean(), rel=2e-5, abs=1e-36)
        assert result.frozen_mean[j] == pytest.approx(frozen.mean(), rel=2e-5, abs=1e-36)
        assert result.decay_at(int(lag)) == pytest.approx((norms.mean(), frozen.mean()), rel=2e-5, abs=1e-36)
    with pytest.raises(SsmctlError, match=r"lag 3 was not measured; measured lags: \[1, 2, 4"):
        result.decay_at(3)


@pytest.mark.parametrize("chunk", [3, 37, 700])
def test_chunking_does_not_change_anything(data, result, chunk):
    other = _run(*data, chunk=chunk, lag_samples=16)[1]
    for name in ("rate_hist", "abs_hist", "lag_pairs", "memory_token_gmean", "memory_token_max"):
        np.testing.assert_array_equal(getattr(other, name), getattr(result, name))
    for name in ("decay_mean", "frozen_mean", "heatmap"):  # float32 partial sums per chunk
        np.testing.assert_allclose(getattr(other, name), getattr(result, name), rtol=1e-6, atol=1e-36)


def test_state_is_independent_of_sequence_length():
    a = torch.rand(5, 3, dtype=torch.float64) + 0.1
    sizes = []
    for length in (2_000, 40_000):
        st = LTVStats(a, length, lags=[1, 4, 64, 1024], lag_samples=32, heatmap_bins=500)
        r = torch.rand(1, length, 5, dtype=torch.float64) * 0.1
        for t0 in range(0, length, 1000):
            st.update(r[:, t0:t0 + 1000])
        # heatmap bins are powers of two of tokens: at most heatmap_bins of them, however long the sequence
        assert st.heat_sum.shape[0] <= 500
        sizes.append(st.state_numel() - st.heat_sum.numel())
    assert sizes[0] == sizes[1]


def test_zero_rates_and_zero_decay_count_as_infinite_memory():
    a = torch.tensor([[1.0, 0.0], [2.0, 3.0]], dtype=torch.float64)
    rate = torch.tensor([[[0.0, 0.5], [0.1, 0.2]]], dtype=torch.float64)  # (1, 2 tokens, 2 channels)
    res = _run(rate, a, chunk=2)[1]
    # channel 0 state 1 never decays (2 tokens), channel 0 state 0 at the zero rate (1 token)
    assert res.memory_horizon_inf_count == 3
    assert res.abs_max == 1.0


def test_hist_quantile_interpolates():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    counts = np.array([2.0, 0.0, 2.0])
    np.testing.assert_allclose(hist_quantile(counts, edges, [0.0, 0.25, 0.5, 0.75, 1.0]), [0, 0.5, 1.0, 2.5, 3.0])
    assert np.isnan(hist_quantile(np.zeros(3), edges, [0.5])).all()


def test_bad_arguments():
    a = torch.ones(3, 2)
    with pytest.raises(ShapeError, match="channels, states"):
        LTVStats(torch.ones(3), 10)
    with pytest.raises(SsmctlError, match="non-negative"):
        LTVStats(-a, 10)
    with pytest.raises(SsmctlError, match="eps"):
        LTVStats(a, 10, eps=2.0)
    with pytest.raises(SsmctlError, match="rate_range"):
        LTVStats(a, 10, rate_range=(1.0, 0.5))
    with pytest.raises(SsmctlError, match="lags"):
        LTVStats(a, 10, lags=[0, 2])
    st = LTVStats(a, 10)
    with pytest.raises(ShapeError, match="rate must have shape"):
        st.update(torch.rand(1, 4, 2))
    with pytest.raises(ShapeError, match="announced length"):
        st.update(torch.rand(1, 11, 3))


def _decay_reference(rate, a, lags, strides):
    """Mean over (batch, s) of exp(−a_min·Σ_{s<τ≤t} rate_τ) per channel, and of the frozen prediction
    exp(−lag·a_min·rate_t), from float64 running sums (the slowest mode dominates a diagonal product's norm)."""
    r = rate.double().numpy()
    a_min = a.min(1).values.numpy()
    G = np.cumsum(r, axis=1)
    decay, frozen, pairs = [], [], []
    for lag, st in zip(lags, strides):
        s = np.arange(0, r.shape[1] - lag, st)
        decay.append(np.exp(-a_min * (G[:, s + lag] - G[:, s])).mean((0, 1)))
        frozen.append(np.exp(-lag * a_min * r[:, s + lag]).mean())
        pairs.append(r.shape[0] * len(s))
    return np.array(decay), np.array(frozen), np.array(pairs)


@pytest.mark.parametrize("lags, lag_samples", [
    (None, 4),  # powers of two: a doubling chain with 4 blocks per window
    ([1, 2, 32], 16),  # a chain of one strided lag
    ([1, 3, 5, 12, 40, 100], 8),  # odd lags and strides: running sums at every token
    ([1, 4, 64, 256], 32),  # strides 2 and 8: running sums on the even tokens
])
@pytest.mark.parametrize("chunk", [128, 37])
def test_transition_decay_for_other_lag_layouts(data, lags, lag_samples, chunk):
    rate, a = data
    res = _run(rate, a, chunk=chunk, lags=lags, lag_samples=lag_samples)[1]
    assert list(res.lag_stride) == [max(1, lag // lag_samples) for lag in res.lags]
    decay, frozen, pairs = _decay_reference(rate, a, res.lags, res.lag_stride)
    np.testing.assert_array_equal(res.lag_pairs, pairs)
    np.testing.assert_allclose(res.decay_channel, decay, rtol=2e-5, atol=1e-36)
    np.testing.assert_allclose(res.frozen_mean, frozen, rtol=2e-5, atol=1e-36)


def test_long_sequence_of_tiny_rates_keeps_float32_precision():
    # 65 536 tokens of Δ ~ 4e-3: the running sum reaches ~260, where a float32 ulp (3e-5) would already be 2e-4
    # of a 32-token window; window sums of same-signed terms and float64 running sums keep ~1e-6.
    g = torch.Generator().manual_seed(1)
    length, H = 65_536, 4
    rate = torch.nn.functional.softplus(torch.randn(1, length, H, generator=g) - 6)
    a = torch.rand(H, 3, generator=g, dtype=torch.float64) * 8 + 0.5
    for lags, lag_samples in ((None, 16), ([1, 4, 64, 256, 4096], 32)):
        res = _run(rate, a, chunk=512, lags=lags, lag_samples=lag_samples)[1]
        decay, frozen, _ = _decay_reference(rate, a, res.lags, res.lag_stride)
        keep = decay.min(1) > 1e-30  # float32 exponentials: below ~1e-38 they read as 0
        assert keep.sum() >= 4
        # exp2 of a float32 exponent: relative error grows with |ln value|
        tol = 2e-6 * (1 + np.abs(np.log(decay[keep])))
        assert np.all(np.abs(res.decay_channel[keep] / decay[keep] - 1) <= tol)
        np.testing.assert_allclose(res.frozen_mean, frozen, rtol=2e-6, atol=1e-36)


def test_accumulators_sharing_a_setup_do_not_interfere(data):
    # layers of one model share scratch buffers; updating them in turn must equal updating each alone
    rate, a = data
    other = rate.flip(1) * 1.7
    a2 = a.flip(0)
    alone = [_run(rate, a, chunk=100)[1], _run(other, a2, chunk=100)[1]]
    st = [LTVStats(a, L, batch=B), LTVStats(a2, L, batch=B)]
    for t0 in range(0, L, 100):
        st[0].update(rate[:, t0:t0 + 100])
        st[1].update(other[:, t0:t0 + 100])
    for s, ref in zip(st, alone):
        res = s.result()
        for name in ("rate_hist", "lag_pairs", "decay_channel", "frozen_mean", "heatmap", "memory_token_max"):
            np.testing.assert_array_equal(getattr(res, name), getattr(ref, name))


def test_nan_and_negative_rates_are_rejected():
    st = LTVStats(torch.ones(3, 2), 10)
    bad = torch.rand(1, 4, 3)
    bad[0, 2, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN rate among tokens 0..3"):
        st.update(bad)
    bad[0, 2, 1] = -0.5
    with pytest.raises(SsmctlError, match="non-negative; tokens 0..3 hold -0.5"):
        st.update(bad)


def test_deferred_checks_flag_nan_and_negative_rates_on_the_device():
    # the simulation driver's mode on a GPU: nothing is read back per update, the failure shows at the end
    for value in (float("nan"), -0.5):
        st = LTVStats(torch.ones(3, 2), 10)
        st.defer_checks = True
        bad = torch.rand(1, 4, 3)
        bad[0, 2, 1] = value
        st.update(bad)  # no error yet: the histogram stays within its bins
        st.update(torch.rand(1, 4, 3))
        assert bool(st.deferred_failure()) and int(st.rate_hist.sum()) == 8 * 3
        with pytest.raises(NonFiniteError, match="some rate was NaN or negative"):
            st.result()


@pytest.mark.parametrize("deferred", [False, True])
def test_rates_outside_the_histogram_range_land_in_the_edge_bins(deferred):
    lo, hi, w = 1e-4, 10.0, 0.05
    K = math.ceil(math.log(hi / lo) / w)
    inside = lo * np.exp(w * (np.arange(0, K, 7) + 0.5))  # mid-bin rates, bins 0, 7, 14, …
    outside = np.array([0.0, 1e-9, lo * 0.999, hi, 3e3])
    a = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    st = LTVStats(a, len(inside) + len(outside), rate_range=(lo, hi), bin_width=w)
    st.defer_checks = deferred  # counted and clamped on the device, unconditionally
    for r in (inside, outside):  # a chunk well inside the range, then one outside it
        st.update(torch.tensor(np.stack([r, r[::-1]], -1)[None], dtype=torch.float32))
    res = st.result()
    expect = np.zeros(K)
    np.add.at(expect, np.arange(0, K, 7), 2)
    expect[0] += 2 * 3  # 0, 1e-9 and just below lo
    expect[-1] += 2 * 2  # hi (inside the last bin: K rounds the range up to whole bins) and above
    np.testing.assert_array_equal(res.rate_hist, expect)
    assert res.rate_out_of_range == 2 * 4
    assert res.memory_horizon_inf_count == 2  # the zero rate, once per channel (one state each)


def test_histograms_of_many_channels_against_counted_bins():
    # 64 channels (bin indices scattered in groups of 32 channels); mid-bin rates and a = e^(w·shift) with integer
    # shifts make every bin exact: the |Ā| histogram is the rate bins moved by each state's shift
    g = np.random.default_rng(3)
    w, H, batch, length = 0.025, 64, 2, 90
    K = math.ceil((math.log(1e3) - math.log(1e-7)) / w)
    k = g.integers(100, 700, size=(batch, length, H))
    rate = torch.tensor(1e-7 * np.exp(w * (k + 0.5)), dtype=torch.float32)
    shift = g.integers(-3, 4, size=(H, 2))
    a = torch.tensor(np.exp(w * shift), dtype=torch.float64)
    res = _run(rate, a, chunk=40)[1]
    np.testing.assert_array_equal(res.rate_hist, np.bincount(k.ravel(), minlength=K))
    y = (k[..., None] + shift).ravel() - shift.min()  # abs bins counted from the smallest shift
    np.testing.assert_array_equal(res.abs_hist, np.bincount(y, minlength=len(res.abs_hist)))
    assert res.abs_edges[0] == pytest.approx(math.log(1e-7) + shift.min() * w)


def test_odd_sized_chunks_keep_the_bin_indices_aligned():
    # batch × T × channels odd: the int64 bin indices after the float32 ln rates must still start 8-byte aligned
    a = torch.rand(5, 3, dtype=torch.float64) + 0.1
    rate = torch.rand(3, 17, 5) * 0.1
    st = LTVStats(a, 17, batch=3)
    st.update(rate)
    assert st.result().rate_hist.sum() == rate.numel()


# --- Mamba-2: one decay per head ----------------------------------------------------------------------------

def test_mamba2_statistics_per_head_equal_per_channel_statistics_collapsed():
    # Independent of the engine: every channel (head, p) of the per-token system layer.ltv(u), in numpy, then
    # collapsed over each head's P channels (all equal: one decay per head). The engine keeps heads only.
    import ssmctl
    from ssmctl.engine.driver import simulate
    from ssmctl.models import mamba2

    model = ssmctl.init("mamba2", d_model=32, headdim=8, d_state=4, n_layers=1, seed=4)
    layer = model.layers[0]
    u = torch.randn(2, 70, 32, generator=torch.Generator().manual_seed(2))
    res = simulate(model, u, device="cpu", chunk=32, heatmap_bins=10).stats[0]
    sys = layer.ltv(u)
    b, T, H, P, N = sys.lam.shape
    absA = sys.lam.abs().double().numpy().reshape(b, T, H * P, N)  # per channel
    dt = sys.dt.double().numpy().reshape(b, T, H * P)
    assert res.n_channels == H and res.n_states == 1 and H * P == layer.config["d_inner"]

    # each channel's largest |Ā_t| (b, T, channels), and its −ln from Δ_t and A (near 1, float32 |Ā_t| would
    # lose its last digits of 1 − |Ā_t|)
    slow = absA.max(-1)
    a = np.repeat(-mamba2.continuous_A(layer).astype(np.float64), P)  # per channel
    assert np.allclose(slow, np.exp(-dt * a), rtol=1e-6)
    neg_log_slow = dt * a
    assert res.abs_min == pytest.approx(absA.min(), rel=1e-6) and res.abs_max == pytest.approx(absA.max(), rel=1e-6)
    assert res.rate_min == pytest.approx(dt.min(), rel=1e-6) and res.rate_max == pytest.approx(dt.max(), rel=1e-6)
    # histograms: per-channel counts, each head's P channels identical, one of them per head
    w = res.bin_width
    k = np.floor((np.log(dt) - res.rate_edges[0]) / w).astype(int)
    per_channel = np.stack([np.bincount(k[:, :, c].ravel(), minlength=len(res.rate_hist)) for c in range(H * P)])
    per_channel = per_channel.reshape(H, P, -1)
    assert (per_channel == per_channel[:, :1]).all()
    collapsed = per_channel[:, 0].sum(0)
    assert res.rate_hist.sum() == collapsed.sum() == b * T * H
    assert np.abs(np.cumsum(res.rate_hist) - np.cumsum(collapsed)).max() <= 2  # float32 vs float64 at bin edges
    for q in (0.05, 0.5, 0.95):  # a head's value repeated P times leaves the quantiles where they were
        assert abs(math.log(res.rate_quantiles[q]) - math.log(np.quantile(dt, q))) <= w
    # per-token horizons over channels: geometric mean and maximum
    horizon = np.log(100.0) / neg_log_slow
    np.testing.assert_allclose(res.memory_token_gmean, np.exp(np.log(horizon).mean(-1)), rtol=1e-5)
    np.testing.assert_allclose(res.memory_token_max, horizon.max(-1), rtol=1e-5)
    # heatmap and transition-product decay per channel, averaged over each head's channels
    hb = res.heatmap_bin
    heat = slow.mean(0)
    per_channel_heat = np.stack([heat[i:i + hb].mean(0) for i in range(0, T, hb)]).reshape(-1, H, P)
    np.testing.assert_allclose(res.heatmap, per_channel_heat.mean(-1), rtol=1e-5)
    logs = np.concatenate([np.zeros((b, 1, H * P)), np.cumsum(-neg_log_slow, axis=1)], axis=1)
    for j, (lag, stride) in enumerate(zip(res.lags, res.lag_stride)):
        ts = np.arange(0, T - lag, stride) + lag  # pairs (s, t = s + lag), s on the lag's sampling grid
        assert res.lag_pairs[j] == b * len(ts)
        prods = np.exp(logs[:, ts + 1] - logs[:, ts + 1 - lag])  # Π_{s<k≤t} |Ā_k| per channel
        per_head = prods.mean((0, 1)).reshape(H, P).mean(-1)
        np.testing.assert_allclose(res.decay_channel[j], per_head, rtol=2e-5, atol=1e-30)
        frozen = (slow[:, ts] ** lag).mean()
        assert res.frozen_mean[j] == pytest.approx(frozen, rel=2e-5, abs=1e-30)


def test_mamba2_statistics_memory_scales_with_heads_not_channels():
    from ssmctl import init
    from ssmctl.engine.blocks import runner_for

    sizes = []
    for d_model, headdim in ((16, 4), (64, 16)):  # 8 heads each, 32 and 128 channels
        runner = runner_for(init("mamba2", d_model=d_model, headdim=headdim, d_state=4, n_layers=1)[0], "cpu")
        assert runner.a.shape == (8, 1)
        sizes.append(LTVStats(runner.a, 4096).state_numel())
    assert sizes[0] == sizes[1]
