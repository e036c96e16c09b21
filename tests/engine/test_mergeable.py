"""Statistics that merge: LTVStats results of several sequences merged, against brute force over all of them,
and the same answer whatever the grouping or order."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
import torch

from ssmctl.engine.mergeable import HeatBins, LogHistogram, dd, dd_add, hist_quantile
from ssmctl.engine.stats import LTVStats
from ssmctl.errors import SsmctlError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, N = 5, 3
SHAPES = [(1, 300), (2, 90), (1, 1100), (3, 17), (1, 650)]  # (batch, L) of each sequence


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(H, N, generator=g, dtype=torch.float64) * 10 + 0.3
    rates = [torch.exp(torch.randn(b, L, H, generator=g) - 2.5) for b, L in SHAPES]
    return a, rates


def _stats(a, rate, chunk=128):
    st = LTVStats(a, rate.shape[1], batch=rate.shape[0], heatmap_bins=64)
    for t0 in range(0, rate.shape[1], chunk):
        st.update(rate[:, t0:t0 + chunk])
    return st.result()


@pytest.fixture(scope="module")
def parts(data):
    a, rates = data
    return [_stats(a, r) for r in rates]


@pytest.fixture(scope="module")
def merged(parts):
    return reduce(lambda x, y: x.merge(y), parts)


def test_dd_add_is_exact_where_float64_is_not():
    a, b, c = dd(np.array([1.0])), dd(np.array([1e-17])), dd(np.array([-1.0]))
    assert (1.0 + 1e-17) - 1.0 == 0.0  # float64 loses the small term
    assert dd_add(dd_add(a, b), c)[0, 0] == 1e-17  # the double-double keeps it
    x = dd(np.array([math.inf, 2.0]))
    assert np.array_equal(dd_add(x, x), np.array([[math.inf, 4.0], [0.0, 0.0]]))


def test_log_histogram_merges_and_reads_quantiles():
    rng = np.random.default_rng(0)
    v = np.exp(rng.normal(3, 1, 4000))
    v[:7] = np.inf
    whole = LogHistogram.of(v, 0.025)
    halves = LogHistogram.of(v[:1234], 0.025).merge(LogHistogram.of(v[1234:], 0.025))
    assert halves.k0 == whole.k0 and np.array_equal(halves.counts, whole.counts) and halves.n_inf == 7
    assert halves.max_finite == v[np.isfinite(v)].max()
    for q in (0.1, 0.5, 0.9):  # within one bin of numpy's quantile over the same values
        assert abs(math.log(halves.quantile(q)) - math.log(np.quantile(v, q))) <= 0.025
    assert halves.quantile(1.0) == math.inf and LogHistogram.of(np.zeros(0), 0.1).quantile(0.5) != 0.5


def test_heat_bins_coarsen_to_wider_power_of_two():
    rng = np.random.default_rng(1)
    sums = rng.random((10, 2))
    fine = HeatBins(2, dd(sums), np.full(10, 2.0))
    coarse = fine.coarsen(8)
    assert coarse.bin == 8 and coarse.counts.tolist() == [8.0, 8.0, 4.0]
    np.testing.assert_allclose(coarse.sums[0], np.add.reduceat(sums, [0, 4, 8]), rtol=1e-15)
    with pytest.raises(SsmctlError, match="do not nest"):
        HeatBins(3, dd(sums), np.ones(10)).coarsen(8)


def test_heat_bins_of_one_run_keep_plain_sums_until_a_merge():
    # one run's float32 sums are exact as they are: no double-double (2x float64) copy per layer until merged
    rng = np.random.default_rng(2)
    sums = rng.random((6, 3)).astype(np.float32)
    plain, paired = HeatBins(4, sums, np.full(6, 4.0)), HeatBins(4, dd(sums), np.full(6, 4.0))
    assert plain.sums.nbytes == sums.nbytes
    np.testing.assert_array_equal(plain.mean(), sums.astype(np.float64) / 4.0)
    np.testing.assert_array_equal(plain.mean(), paired.mean())
    for a, b in ((plain, plain), (plain, paired), (paired, plain)):
        merged = a.merge(b)
        np.testing.assert_array_equal(merged.sums, paired.merge(paired).sums)
    np.testing.assert_array_equal(plain.coarsen(8).sums, paired.coarsen(8).sums)


def test_merged_statistics_are_those_of_all_tokens(data, merged):
    a, rates = (x.double().numpy() if torch.is_tensor(x) else x for x in data)
    a = a.numpy() if torch.is_tensor(a) else a
    rs = [r.double().numpy() for r in rates]
    flat = np.concatenate([r.reshape(-1, H) for r in rs])
    assert merged.rate_min == flat.min() and merged.rate_max == flat.max()
    absA = np.exp(-flat[..., None] * a)
    assert merged.abs_min == pytest.approx(absA.min(), rel=1e-12) and merged.abs_max == pytest.approx(absA.max(), rel=1e-12)
    assert merged.rate_hist.sum() == flat.size and merged.abs_hist.sum() == absA.size
    for q in (0.25, 0.5, 0.75):
        assert abs(math.log(merged.rate_quantiles[q]) - math.log(np.quantile(flat, q))) <= merged.bin_width
    assert merged.n_tokens == max(L for _, L in SHAPES) and merged.parts.rows == sum(b for b, _ in SHAPES)
    # transition decay at lag 1 and 2 (every pair): the mean over all pairs of all sequences
    slow = a.min(1)
    for j, lag in enumerate(merged.lags[:2]):
        norms = np.concatenate([np.exp(-(r[:, 1:] if lag == 1 else r[:, 1:-1] + r[:, 2:]) * slow).reshape(-1, H)
                                for r in rs])
        assert merged.lag_pairs[j] == norms.shape[0]
        np.testing.assert_allclose(merged.decay_channel[j], norms.mean(0), rtol=2e-5)
    assert merged.lags.tolist() == [2**k for k in range(11)]  # the union: up to the longest sequence's lags
    # by position: token t of every row that reaches it
    L_max = merged.n_tokens
    gm = np.full((sum(b for b, _ in SHAPES), L_max), np.nan)
    heat = np.full((gm.shape[0], L_max, H), np.nan)
    row = 0
    for r in rs:
        k = np.log(100.0) / (r * slow)
        gm[row: row + r.shape[0], : r.shape[1]] = np.exp(np.log(k).mean(-1))
        heat[row: row + r.shape[0], : r.shape[1]] = np.exp(-r * slow)
        row += r.shape[0]
    np.testing.assert_allclose(merged.memory_token_gmean[0], np.nanmean(gm, 0), rtol=1e-5)
    assert merged.memory_token_gmean.shape == (1, L_max)
    b = merged.heatmap_bin
    assert b == 32  # the longest sequence's bin: 1100 tokens in at most 64 bins of a power of two
    expect = np.stack([np.nanmean(heat[:, i: i + b].reshape(-1, H), 0) for i in range(0, L_max, b)])
    np.testing.assert_allclose(merged.heatmap, expect, rtol=1e-5)


def test_grouping_and_order_do_not_change_a_bit(parts, merged):
    p = parts
    other = (p[4].merge(p[1])).merge(p[3].merge(p[0].merge(p[2])))
    for name in ("rate_hist", "abs_hist", "lag_pairs", "decay_channel", "frozen_mean", "heatmap",
                 "memory_token_gmean", "memory_token_max"):
        np.testing.assert_array_equal(getattr(other, name), getattr(merged, name), err_msg=name)
    for name in ("rate_quantiles", "abs_quantiles", "memory_horizon_quantiles", "abs_min", "abs_max",
                 "memory_horizon_inf_count"):
        assert getattr(other, name) == getattr(merged, name), name


def test_merging_unlike_statistics_is_an_error(data, parts):
    a, rates = data
    other = _stats(a[:, :2], rates[0])
    with pytest.raises(SsmctlError, match="different n_states: 3 vs 2"):
        parts[0].merge(other)
    st = LTVStats(a, 300, lag_samples=4)
    st.update(rates[0])
    with pytest.raises(SsmctlError, match="different strides"):
        parts[0].merge(st.result())


def test_hist_quantile_is_still_exported_from_stats():
    from ssmctl.engine import stats

    assert stats.hist_quantile is hist_quantile
