"""Accumulators that merge exactly: what lets statistics of many sequences, runs or processes be combined.

A corpus run, a merge of two runs (``SimulationResult.merge``) and a torchrun job all combine per-sequence
statistics with the functions here, so the one answer does not depend on how the corpus was split:

* counts (histograms, pair counts, infinite horizons) are integers held in float64 (exact below 2^53) and add;
* extrema combine with min / max;
* sums of floats (the transition-decay sums, heatmap sums, per-position traces) are double-double numbers
  ``(hi, lo)``: each addition is error-free up to ~2^-106 relative, so the rounded sum ``hi`` is the correctly
  rounded exact sum whatever the order (unless an exact sum lies within ~2^-100 of a rounding midpoint);
* quantiles are read from merged histograms, never averaged.

Token positions: per-token traces and the heatmap of a corpus are *by position* (token t of every sequence
that reaches t); heatmap bins are powers of two wide so that two heatmaps coarsen to the wider bin and add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import SsmctlError

__all__ = ["dd", "dd_add", "hist_quantile", "LogHistogram", "Positional", "HeatBins", "hist_summaries",
           "decay_fields", "merge_lags", "Parts", "merge_layer_stats"]


# --- double-double sums -----------------------------------------------------------------------------------
def dd(x: np.ndarray) -> np.ndarray:
    """A float64 array as a double-double ``(2, *x.shape)`` (``lo`` = 0).

    Parameters
    ----------
    x : array_like
        Values of any shape.

    Returns
    -------
    ndarray, shape (2, *x.shape)
        ``[hi, lo]`` with ``hi = x`` in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.stack([x, np.zeros_like(x)])


def dd_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of two double-doubles ``(2, ...)``, normalized so that ``hi`` is the rounded sum.

    Parameters
    ----------
    a, b : ndarray, shape (2, ...)
        Double-doubles of the same shape (from :func:`dd` or this function).

    Returns
    -------
    ndarray, shape (2, ...)
        ``hi + lo`` equals ``a + b`` to ~2^-106 relative; commutative exactly. Infinite sums keep ``lo = 0``.
    """
    (ah, al), (bh, bl) = a, b
    with np.errstate(invalid="ignore"):
        s = ah + bh
        bb = s - ah
        err = (ah - (s - bb)) + (bh - bb)  # exact: ah + bh = s + err (Knuth's two-sum)
        e = err + (al + bl)
        hi = s + e
        lo = e - (hi - s)
    finite = np.isfinite(s)  # an infinite (or NaN) sum is s itself: its error terms are NaN
    return np.stack([np.where(finite, hi, s), np.where(finite, lo, 0.0)])


# --- histograms -------------------------------------------------------------------------------------------
def hist_quantile(counts: np.ndarray, edges: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles of a histogram, interpolating linearly inside the bin where the cumulative count crosses q·n.

    Parameters
    ----------
    counts : ndarray, shape (K,)
    edges : ndarray, shape (K + 1,)
    q : sequence of floats in [0, 1]

    Returns
    -------
    ndarray, shape (len(q),); NaN when the histogram is empty.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.full(len(q), np.nan)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    out = []
    for qq in q:
        target = qq * total
        k = int(np.clip(np.searchsorted(cum, target, side="left") - 1, 0, len(counts) - 1))
        while counts[k] == 0 and k + 1 < len(counts) and cum[k + 1] < target:
            k += 1
        frac = 0.0 if counts[k] == 0 else np.clip((target - cum[k]) / counts[k], 0.0, 1.0)
        out.append(edges[k] + frac * (edges[k + 1] - edges[k]))
    return np.asarray(out)


def hist_summaries(rate_hist: np.ndarray, rate_edges: np.ndarray, abs_hist: np.ndarray, abs_edges: np.ndarray,
                   q: Sequence[float], eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantiles of the rate, of |Ā| and of the memory horizon from the ln-rate and ln(−ln|Ā|) histograms.

    Parameters
    ----------
    rate_hist, rate_edges : ndarray, shapes (K,), (K + 1,)
        Histogram of ln rate.
    abs_hist, abs_edges : ndarray, shapes (M,), (M + 1,)
        Histogram of y = ln(−ln|Ā|).
    q : sequence of float
        Quantile levels.
    eps : float
        Memory-horizon threshold.

    Returns
    -------
    (rate_q, abs_q, memory_q) : three ndarrays of shape (len(q),)
        |Ā| decreases in y, so its q-quantile (and the horizon's) comes from y's (1 − q)-quantile.
    """
    q = np.asarray(q)
    rate_q = np.exp(hist_quantile(rate_hist, rate_edges, q))
    y_q = hist_quantile(abs_hist, abs_edges, q)
    abs_q = np.exp(-np.exp(y_q[::-1]))
    mem_q = math.log(1.0 / eps) * np.exp(-y_q[::-1])
    return rate_q, abs_q, mem_q


@dataclass
class LogHistogram:
    """Counts of positive values in bins ``[k·w, (k+1)·w)`` of ln value on a grid shared by every run.

    ``k0`` is the first bin's index; infinite values are counted apart, NaN ignored; ``max_finite`` is exact.
    """

    width: float
    k0: int
    counts: np.ndarray
    n_inf: int
    max_finite: float

    @classmethod
    def of(cls, values: np.ndarray, width: float) -> "LogHistogram":
        """Histogram of ``values`` (positive; inf counted apart, NaN dropped).

        Parameters
        ----------
        values : array_like
            Positive values, any shape.
        width : float
            Bin width in ln units.

        Returns
        -------
        LogHistogram
        """
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        finite = v[np.isfinite(v) & (v > 0)]
        n_inf = int(np.count_nonzero(np.isinf(v)))
        if not finite.size:
            return cls(width, 0, np.zeros(0), n_inf, -math.inf)
        k = np.floor(np.log(finite) / width).astype(np.int64)
        k0 = int(k.min())
        return cls(width, k0, np.bincount(k - k0).astype(np.float64), n_inf, float(finite.max()))

    def merge(self, other: "LogHistogram") -> "LogHistogram":
        """Both histograms' counts on the common grid.

        Parameters
        ----------
        other : LogHistogram
            Same ``width``.

        Returns
        -------
        LogHistogram
        """
        if not self.counts.size:
            return LogHistogram(self.width, other.k0, other.counts.copy(), self.n_inf + other.n_inf,
                                max(self.max_finite, other.max_finite))
        if not other.counts.size:
            return other.merge(self)
        k0 = min(self.k0, other.k0)
        n = max(self.k0 + self.counts.size, other.k0 + other.counts.size) - k0
        counts = np.zeros(n)
        for h in (self, other):
            counts[h.k0 - k0: h.k0 - k0 + h.counts.size] += h.counts
        return LogHistogram(self.width, k0, counts, self.n_inf + other.n_inf, max(self.max_finite, other.max_finite))

    def quantile(self, q: float) -> float:
        """The q-quantile of the values (inf when it falls among the infinite ones; NaN when empty).

        Parameters
        ----------
        q : float
            In [0, 1].

        Returns
        -------
        float
        """
        n_finite = float(self.counts.sum())
        total = n_finite + self.n_inf
        if total == 0:
            return math.nan
        if q * total > n_finite:
            return math.inf
        edges = (self.k0 + np.arange(self.counts.size + 1)) * self.width
        return float(np.exp(hist_quantile(self.counts, edges, [q * total / n_finite])[0]))


# --- per-position traces ----------------------------------------------------------------------------------
@dataclass
class Positional:
    """Per-token traces over a corpus, by position: for token t, the rows (sequences) that reach t.

    ``rows[t]`` counts them, ``gmean_sum`` (double-double, (2, L)) sums their channel-geometric-mean horizons,
    ``max`` is the longest horizon any of them has at t.
    """

    rows: np.ndarray
    gmean_sum: np.ndarray
    max: np.ndarray

    @classmethod
    def of(cls, gmean: np.ndarray, longest: np.ndarray) -> "Positional":
        """From one run's per-row traces.

        Parameters
        ----------
        gmean, longest : ndarray, shape (rows, L)
            Per-token geometric-mean and longest horizons of each row.

        Returns
        -------
        Positional
        """
        rows = np.full(gmean.shape[1], gmean.shape[0], dtype=np.float64)
        return cls(rows, dd(np.asarray(gmean, dtype=np.float64).sum(0)),
                   np.asarray(longest, dtype=np.float64).max(0, initial=-math.inf))

    def merge(self, other: "Positional") -> "Positional":
        """Both corpora's positions (the shorter one padded with zero rows).

        Parameters
        ----------
        other : Positional

        Returns
        -------
        Positional
        """
        n = max(self.rows.size, other.rows.size)
        a, b = self._padded(n), other._padded(n)
        return Positional(a.rows + b.rows, dd_add(a.gmean_sum, b.gmean_sum), np.maximum(a.max, b.max))

    def _padded(self, n: int) -> "Positional":
        k = n - self.rows.size
        return Positional(np.pad(self.rows, (0, k)), np.pad(self.gmean_sum, ((0, 0), (0, k))),
                          np.pad(self.max, (0, k), constant_values=-math.inf))

    def traces(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean over rows of the geometric-mean horizon, longest horizon), each of shape (1, L).

        Returns
        -------
        (ndarray, ndarray)
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.gmean_sum[0] / self.rows)[None], self.max[None].copy()


# --- heatmap ----------------------------------------------------------------------------------------------
@dataclass
class HeatBins:
    """|Ā| heatmap sums over token-position bins of ``bin`` tokens (a power of two) × channels.

    ``sums`` is a double-double (2, bins, H), or — for one run, whose float32 sums are exact in any float
    dtype — the plain (bins, H) array, kept as it is: a double-double of a 24-layer model's heatmaps would hold
    ~300 MB of zeros until a merge needs them. ``counts`` (bins,) are the (row, token) pairs in each bin.
    """

    bin: int
    sums: np.ndarray
    counts: np.ndarray

    def _dd(self) -> np.ndarray:
        """``sums`` as a double-double (2, bins, H)."""
        return self.sums if self.sums.ndim == 3 else dd(self.sums)

    def coarsen(self, bin: int) -> "HeatBins":
        """The same sums in bins of ``bin`` tokens (a power-of-two multiple of ``self.bin``), pairwise.

        Parameters
        ----------
        bin : int

        Returns
        -------
        HeatBins
        """
        h = self
        while h.bin < bin:
            n = h.counts.size + h.counts.size % 2
            s = np.pad(h._dd(), ((0, 0), (0, n - h.counts.size), (0, 0)))
            c = np.pad(h.counts, (0, n - h.counts.size))
            h = HeatBins(2 * h.bin, dd_add(s[:, 0::2], s[:, 1::2]), c[0::2] + c[1::2])
        if h.bin != bin:
            raise SsmctlError(f"heatmap bins of {self.bin} and {bin} tokens do not nest (powers of two expected)")
        return h

    def merge(self, other: "HeatBins") -> "HeatBins":
        """Both heatmaps on the wider bin.

        Parameters
        ----------
        other : HeatBins

        Returns
        -------
        HeatBins
        """
        b = max(self.bin, other.bin)
        x, y = self.coarsen(b), other.coarsen(b)
        n = max(x.counts.size, y.counts.size)
        pad = lambda h: (np.pad(h._dd(), ((0, 0), (0, n - h.counts.size), (0, 0))),  # noqa: E731
                         np.pad(h.counts, (0, n - h.counts.size)))
        (sx, cx), (sy, cy) = pad(x), pad(y)
        return HeatBins(b, dd_add(sx, sy), cx + cy)

    def mean(self) -> np.ndarray:
        """Mean |Ā| per bin and channel, (bins, H); NaN for an empty bin.

        Returns
        -------
        ndarray
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            hi = self.sums[0] if self.sums.ndim == 3 else self.sums.astype(np.float64)
            return hi / self.counts[:, None]


# --- transition decay -------------------------------------------------------------------------------------
def decay_fields(decay_sum: np.ndarray, frozen_sum: np.ndarray, pairs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel and channel-averaged means of the decay sums.

    Parameters
    ----------
    decay_sum, frozen_sum : ndarray, shape (lags, H)
        Σ‖Ā_t ⋯ Ā_{s+1}‖ and Σ‖Ā_t‖^lag over each lag's pairs, per channel.
    pairs : ndarray, shape (lags,)

    Returns
    -------
    dict
        ``decay_channel`` (lags, H), ``decay_mean``, ``decay_max_channel``, ``frozen_mean`` (lags,); NaN at a
        lag without pairs.
    """
    p = np.asarray(pairs, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        decay_channel = decay_sum / p
        frozen_channel = frozen_sum / p
    H = decay_channel.shape[1]
    return {
        "decay_channel": decay_channel,
        "decay_mean": decay_channel.mean(1),
        "decay_max_channel": decay_channel.max(1) if H else decay_channel.sum(1),
        "frozen_mean": frozen_channel.mean(1),
    }


def merge_lags(lags_a: np.ndarray, stride_a: np.ndarray, lags_b: np.ndarray,
               stride_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The union of two lag sets and where each set's lags sit in it.

    Parameters
    ----------
    lags_a, stride_a, lags_b, stride_b : ndarray of int
        Lags and their sampling strides.

    Returns
    -------
    (lags, strides, index_a, index_b)

    Raises
    ------
    SsmctlError
        When a lag common to both was sampled with different strides (different ``lag_samples``).
    """
    lags = np.union1d(lags_a, lags_b).astype(np.int64)
    ia, ib = np.searchsorted(lags, lags_a), np.searchsorted(lags, lags_b)
    strides = np.zeros(lags.size, dtype=np.int64)
    strides[ib] = stride_b
    if np.any(strides[ia][np.isin(lags_a, lags_b)] != np.asarray(stride_a)[np.isin(lags_a, lags_b)]):
        raise SsmctlError("cannot merge transition decays sampled with different strides (lag_samples differ)")
    strides[ia] = stride_a
    return lags, strides, ia, ib


# --- one layer's statistics -------------------------------------------------------------------------------
@dataclass
class Parts:
    """The mergeable state behind a :class:`~ssmctl.engine.stats.LayerStats` (its other fields derive from it).

    ``decay_sum`` / ``frozen_sum``: double-doubles (2, lags, H); ``heat``: the heatmap's bins; ``positions``:
    per-position traces; ``memory_gmean`` / ``memory_max``: histograms over every token of the per-token
    horizons (geometric mean over channels, longest channel); ``rows``: sequences × batch rows seen.
    """

    decay_sum: np.ndarray
    frozen_sum: np.ndarray
    heat: HeatBins
    positions: Positional
    memory_gmean: LogHistogram
    memory_max: LogHistogram
    rows: int


def merge_layer_stats(a, b):
    """One layer's statistics over both runs' inputs (see the module docstring for how each field combines).

    Parameters
    ----------
    a, b : LayerStats
        Statistics of the same layer (same channels, states, eps, histogram grids).

    Returns
    -------
    LayerStats
        Per-token traces by position, shape (1, longest L); ``extra`` keeps the entries both sides agree on.

    Raises
    ------
    SsmctlError
        When the two were not measured alike (channels, states, eps, bin width, lag sampling) or lack the
        mergeable state (``parts``).
    """
    import dataclasses

    if a.parts is None or b.parts is None:
        raise SsmctlError("these statistics carry no mergeable state (made by hand, not by LTVStats.result())")
    for name in ("n_channels", "n_states", "eps", "bin_width"):
        if getattr(a, name) != getattr(b, name):
            raise SsmctlError(f"cannot merge statistics with different {name}: {getattr(a, name)} vs {getattr(b, name)}")
    if a.abs_edges.shape != b.abs_edges.shape or not np.array_equal(a.abs_edges, b.abs_edges) \
            or not np.array_equal(a.rate_edges, b.rate_edges):
        raise SsmctlError("cannot merge statistics of different layers (their |Ā| histogram grids differ)")
    pa, pb = a.parts, b.parts
    lags, strides, ia, ib = merge_lags(a.lags, a.lag_stride, b.lags, b.lag_stride)
    pairs = np.zeros(lags.size, dtype=np.int64)
    pairs[ia] += a.lag_pairs
    pairs[ib] += b.lag_pairs
    sums = []
    for x, y in ((pa.decay_sum, pb.decay_sum), (pa.frozen_sum, pb.frozen_sum)):
        xs, ys = np.zeros((2, lags.size, a.n_channels)), np.zeros((2, lags.size, a.n_channels))
        xs[:, ia], ys[:, ib] = x, y
        sums.append(dd_add(xs, ys))
    rate_hist, abs_hist = a.rate_hist + b.rate_hist, a.abs_hist + b.abs_hist
    qs = list(a.rate_quantiles)
    rate_q, abs_q, mem_q = hist_summaries(rate_hist, a.rate_edges, abs_hist, a.abs_edges, qs, a.eps)
    heat = pa.heat.merge(pb.heat)
    positions = pa.positions.merge(pb.positions)
    gmean, longest = positions.traces()
    parts = Parts(sums[0], sums[1], heat, positions, pa.memory_gmean.merge(pb.memory_gmean),
                  pa.memory_max.merge(pb.memory_max), pa.rows + pb.rows)
    return dataclasses.replace(
        a,
        n_tokens=max(a.n_tokens, b.n_tokens),
        rate_min=float(np.fmin(a.rate_min, b.rate_min)),
        rate_max=float(np.fmax(a.rate_max, b.rate_max)),
        rate_quantiles=dict(zip(qs, rate_q.tolist())),
        abs_min=float(np.fmin(a.abs_min, b.abs_min)),
        abs_max=float(np.fmax(a.abs_max, b.abs_max)),
        abs_quantiles=dict(zip(qs, abs_q.tolist())),
        memory_horizon_quantiles=dict(zip(qs, mem_q.tolist())),
        memory_horizon_inf_count=a.memory_horizon_inf_count + b.memory_horizon_inf_count,
        rate_hist=rate_hist,
        abs_hist=abs_hist,
        memory_token_gmean=gmean,
        memory_token_max=longest,
        lags=lags,
        lag_stride=strides,
        lag_pairs=pairs,
        **decay_fields(sums[0][0], sums[1][0], pairs),
        heatmap=heat.mean(),
        heatmap_bin=heat.bin,
        rate_out_of_range=a.rate_out_of_range + b.rate_out_of_range,
        extra=_common_extra(a.extra, b.extra),
        parts=parts,
    )


def _common_extra(a: dict, b: dict) -> dict:
    """The entries of two ``extra`` dicts that are plain values equal on both sides (e.g. ``channel_kind``)."""
    return {k: v for k, v in a.items() if isinstance(v, (str, int, float, bool)) and b.get(k) == v}
