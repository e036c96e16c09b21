"""Streaming statistics of input-dependent eigenvalues, accumulated chunk by chunk in memory flat in L.

The three input-dependent families share a separable decay: for token t, channel h and state n,

    log |Ā_t[h, n]| = −rate_t[h] · a[h, n],     rate_t ≥ 0, a ≥ 0,

Mamba: rate = Δ_t, a = exp(A_log) (N states); Mamba-2: rate = Δ_t, a = exp(A_log) per head (one eigenvalue per
head); RG-LRU: rate = c·r_t, a = softplus(Λ) (one per channel). :class:`LTVStats` consumes the rates chunk by chunk
and keeps, per layer:

* a histogram of ln rate per channel (bins of ``bin_width`` in ln units), from which come the step-size
  quantiles and the |Ā_t| quantiles over tokens, channels and states: ln(−ln|Ā|) = ln rate + ln a, so the |Ā|
  histogram is the channels' rate histograms shifted by ln a[h, n] rounded to the bin grid (error ≤ half a
  bin: ``bin_width``/2 relative in −ln|Ā|, i.e. in the memory horizon); exact minima and maxima on the side;
* per token, the frozen-time memory horizon k_ε = ln(1/ε) / (rate_t[h]·a[h, n]) of the slowest mode of each
  channel: its geometric mean over channels and its maximum (the layer's longest memory at that token);
* the transition-product decay: ‖Ā_t ⋯ Ā_{s+1}‖ (the largest of the diagonal's entries: the slowest mode)
  at lags ℓ = t − s, averaged over t and over the batch, next to the frozen-time prediction ‖Ā_t‖^ℓ at the
  same t. Lags up to ``lag_samples`` use every t; a larger lag ℓ uses every s that is a multiple of
  stride = ℓ // lag_samples (at least ``lag_samples`` pairs per ℓ tokens), so the history kept is
  O(lags · lag_samples · channels) numbers, independent of L;
* a |Ā| heatmap over token bins × channels (the slowest mode, averaged over the tokens of each bin).

The sums over tokens are float64 (int32 / int64 for counts, float32 per heatmap bin), formed from float32
per-chunk partial sums, and independent of how the sequence was cut into chunks. Elementwise work is float32
wherever no cancellation can occur: products of factors in (0, 1], and window sums of rates, all of one sign,
for the strided lags. Work tensors are reused from chunk to chunk (:mod:`ssmctl.engine._stats_work`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import NonFiniteError, ShapeError, SsmctlError, option
from ..report import fmt, format_modulus
from ..systems import _display
from ._tensor_cache import lru_get
from ._stats_work import _CACHE, _Plan, _Scratch
from .mergeable import HeatBins, LogHistogram, Parts, Positional, dd, decay_fields, hist_quantile, hist_summaries, \
    merge_layer_stats

__all__ = ["LTVStats", "LayerStats", "default_lags", "hist_quantile"]

_LOG2E = 1.0 / math.log(2.0)
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def default_lags(length: int) -> list[int]:
    """Powers of two 1, 2, 4, … below ``length`` (the lags a sequence of that length can show).

    Parameters
    ----------
    length : int
        Tokens of the sequence; the largest possible lag is ``length - 1``.

    Returns
    -------
    list of int
        ``[1, 2, 4, …, 2^k]`` with 2^k ≤ length − 1; ``[1]`` when ``length < 2``.
    """
    if length < 2:
        return [1]
    return [1 << k for k in range(int(math.floor(math.log2(length - 1))) + 1)]


@dataclass
class LayerStats:
    """Finished statistics of one layer (see :class:`LTVStats` for the meaning of each field).

    Arrays are numpy; ``*_hist`` come with their bin ``*_edges`` (ln rate and ln(−ln|Ā|) grids).
    """

    n_tokens: int
    n_channels: int
    n_states: int
    eps: float
    rate_min: float
    rate_max: float
    rate_quantiles: dict[float, float]
    abs_min: float
    abs_max: float
    abs_quantiles: dict[float, float]
    memory_horizon_quantiles: dict[float, float]
    memory_horizon_inf_count: int
    rate_hist: np.ndarray
    rate_edges: np.ndarray
    abs_hist: np.ndarray
    abs_edges: np.ndarray
    memory_token_gmean: np.ndarray
    memory_token_max: np.ndarray
    lags: np.ndarray
    lag_stride: np.ndarray
    lag_pairs: np.ndarray
    decay_mean: np.ndarray
    decay_max_channel: np.ndarray
    decay_channel: np.ndarray
    frozen_mean: np.ndarray
    heatmap: np.ndarray
    heatmap_bin: int
    rate_out_of_range: int
    bin_width: float
    extra: dict[str, Any] = field(default_factory=dict)
    parts: Parts | None = None

    def merge(self, other: "LayerStats") -> "LayerStats":
        """The statistics of this layer over both inputs, equal to one run over them (see :mod:`.mergeable`).

        Counts and histograms add, quantiles come from the merged histograms, extrema combine, sums (decays,
        heatmap) add exactly; per-token traces and the heatmap become by position (token t of every sequence).

        Parameters
        ----------
        other : LayerStats
            The same layer's statistics over other sequences.

        Returns
        -------
        LayerStats
        """
        return merge_layer_stats(self, other)

    def decay_at(self, lag: int) -> tuple[float, float]:
        """(mean ‖Ā_t ⋯ Ā_{t−lag+1}‖, mean frozen-time guess ‖Ā_t‖^lag) at one of the measured ``lags``.

        Parameters
        ----------
        lag : int
            One of ``self.lags``.

        Returns
        -------
        (float, float)
            ``decay_mean`` and ``frozen_mean`` at that lag (means over t and channels).

        Raises
        ------
        SsmctlError
            When ``lag`` was not measured (the message lists the measured lags).
        """
        hits = np.flatnonzero(self.lags == int(lag))
        if not hits.size:
            raise SsmctlError(f"lag {lag} was not measured; measured lags: {self.lags.tolist()}")
        k = int(hits[0])
        return float(self.decay_mean[k]), float(self.frozen_mean[k])


    def __repr__(self) -> str:
        return _display.text(self, "layer_stats", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "layer_stats", self._plain_repr())

    def _plain_repr(self) -> str:
        return f"LayerStats(tokens={self.n_tokens}, channels={self.n_channels}, states={self.n_states})"

    def to_frame(self) -> Any:
        """The transition-product decay against the lag, one row per measured lag.

        Returns
        -------
        pandas.DataFrame
            Index ``lag``; columns ``stride``, ``pairs``, ``norm_mean`` (mean ‖Ā_t ⋯ Ā_{t−lag+1}‖),
            ``norm_max_channel``, ``frozen_norm_mean`` (the frozen-time guess ‖Ā_t‖^lag).

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "layer_stats")


def _describe_stats(s: LayerStats, full: bool) -> _display.Summary:
    q = s.abs_quantiles
    facts = [
        ("size", f"{s.n_tokens} tokens, {s.n_channels} channels, {s.n_states} states each"),
        ("|Ā_t|", f"min {fmt(s.abs_min)}, median {fmt(q[0.5])}, max {format_modulus(s.abs_max, 6)}"),
        ("margin 1 − |Ā_t|", f"min {_display.fmt_margin(1.0 - s.abs_max)} over tokens, channels and states"),
        ("Δ_t", f"min {fmt(s.rate_min)}, median {fmt(s.rate_quantiles[0.5])}, max {fmt(s.rate_max)}"),
        (f"memory (eps {fmt(s.eps)})", f"median {fmt(s.memory_horizon_quantiles[0.5])}, "
                                      f"{max(s.memory_horizon_quantiles)} quantile "
                                      f"{fmt(s.memory_horizon_quantiles[max(s.memory_horizon_quantiles)])} tokens"
                                      + (f", {s.memory_horizon_inf_count} infinite" if s.memory_horizon_inf_count
                                         else "")),
    ]
    if s.lags.size:
        k = int(np.nanargmax(np.where(s.lag_pairs > 0, s.lags, -1)))
        facts.append((f"transition product at lag {int(s.lags[k])}",
                      f"mean ‖Ā_t⋯Ā_(t−lag+1)‖ {fmt(s.decay_mean[k])} (frozen-time guess {fmt(s.frozen_mean[k])})"))
    picture = None
    if full and s.abs_hist.size:
        picture = _display.histogram_svg(s.abs_hist, s.abs_edges / math.log(10), "log10(−ln|Ā_t|)  (≈ log10(1 − |Ā_t|))")
    columns = {"stride": s.lag_stride, "pairs": s.lag_pairs, "norm_mean": s.decay_mean,
               "norm_max_channel": s.decay_max_channel, "frozen_norm_mean": s.frozen_mean}
    return _display.Summary("LayerStats", facts, picture=picture, columns=columns,
                            index=(["lag"], [np.asarray(s.lags)]))


_display.register("layer_stats", _describe_stats)


class LTVStats:
    """Streaming accumulator for one layer.

    Parameters
    ----------
    a : array or Tensor, shape (H, Na)
        Non-negative decay constants: log|Ā_t[h, n]| = −rate_t[h]·a[h, n].
    length : int
        Tokens the sequence will have (fixes the default lags and the heatmap's token bins).
    batch : int
    lags : sequence of int, optional
        Default: powers of two below ``length``.
    lag_samples : int
        Lags up to this use every token; longer lags sample every (lag // lag_samples)-th input position.
    eps : float
        Memory-horizon threshold.
    bin_width : float
        Histogram bin width in ln units (0.025: 2.5 % in Δ and in −ln|Ā|).
    rate_range : (float, float)
        Range of the rate histogram; rates outside land in the edge bins and are counted.
    heatmap_bins : int
        Token bins of the |Ā| heatmap, at most (a bin is the power of two of tokens that fits).
    device : torch.device or str
    """

    def __init__(
        self,
        a: Any,
        length: int,
        *,
        batch: int = 1,
        lags: Sequence[int] | None = None,
        lag_samples: int = 16,
        eps: float = 1e-2,
        bin_width: float = 0.025,
        rate_range: tuple[float, float] = (1e-7, 1e3),
        heatmap_bins: int = 512,
        device: Any = "cpu",
    ) -> None:
        a = torch.as_tensor(a, dtype=torch.float64, device=device)
        if a.ndim != 2:
            raise ShapeError(f"LTVStats needs a of shape (channels, states), got {tuple(a.shape)}")
        if not torch.isfinite(a).all() or bool((a < 0).any()):
            raise SsmctlError("LTVStats: decay constants a must be finite and non-negative")
        if not 0.0 < eps < 1.0:
            raise SsmctlError(f"{option('eps')} must lie in (0, 1), got {eps}")
        if length < 1:
            raise ShapeError(f"length must be positive, got {length}")
        if lag_samples < 1:
            raise SsmctlError(f"lag_samples must be a positive integer, got {lag_samples}")
        lo, hi = rate_range
        if not 0.0 < lo < hi:
            raise SsmctlError(f"rate_range must satisfy 0 < low < high, got {rate_range}")
        self.device = a.device
        self.a = a
        self.H, self.Na = a.shape
        self.length, self.batch, self.eps = int(length), int(batch), float(eps)
        self.log_inv_eps = math.log(1.0 / eps)
        self.a_min = a.amin(dim=1)  # slowest mode per channel
        self.a_min32 = self.a_min.float()
        self.log_a_min32 = torch.log(self.a_min32)  # −inf for a channel that never decays
        # log of the horizons' geometric mean, before subtracting the mean over channels of ln rate
        self._log_gmean0 = math.log(self.log_inv_eps) - (float(self.log_a_min32.mean()) if self.H else 0.0)
        # each channel's largest |Ā_t| is 2^(rate·c) (exp2: twice as fast as exp)
        self.c32 = self.a_min32 * -_LOG2E

        self.w = float(bin_width)
        self.ln_lo = math.log(lo)
        self.K = int(math.ceil((math.log(hi) - self.ln_lo) / self.w))
        # int32 counters (a bin overflows only beyond 2^31 tokens × batch): 24 layers × 1536 channels × ~900
        # bins stay at ~130 MB instead of ~270 MB
        self.rate_hist = torch.zeros(self.H, self.K, dtype=torch.int32, device=self.device)
        self.rate_min = torch.full((self.H,), math.inf, dtype=torch.float64, device=self.device)
        self.rate_max = torch.full((self.H,), -math.inf, dtype=torch.float64, device=self.device)
        self.rate_zero = torch.zeros(self.H, dtype=torch.int64, device=self.device)
        self.hist_offsets_f = (torch.arange(self.H, device=self.device) * self.K).float()
        self.lo, self.hi = float(lo), float(hi)
        # rates this far inside the range have float32 bin positions inside it too (rounding is ~1e-6 of the
        # log): no clamping needed
        margin = 1e-4 * (1.0 + abs(self.ln_lo) + abs(math.log(hi)))
        self._inside = (lo * math.exp(margin), hi * math.exp(-margin))
        if self.H * self.K >= 2**24:
            raise SsmctlError(f"histogram too large ({self.H} channels × {self.K} bins); use a wider bin_width")
        self.out_of_range = 0
        # With defer_checks (set by the simulation driver on a GPU) an update never waits for the device: rates
        # that are NaN or negative are only flagged (on the device; see deferred_failure), the rare counts and
        # clamps that would need the chunk's extremes on the host are done unconditionally.
        self.defer_checks = False
        self._failed = torch.zeros((), dtype=torch.bool, device=self.device)
        self._out_of_range = torch.zeros((), dtype=torch.int64, device=self.device)

        lags = default_lags(self.length) if lags is None else sorted({int(x) for x in lags})
        if not lags or lags[0] < 1:
            raise SsmctlError(f"lags must be positive integers, got {lags}")
        self.lags = lags
        self.strides = [max(1, lag // lag_samples) for lag in lags]
        # per lag: Σ‖Ā_t ⋯ Ā_{s+1}‖ and Σ‖Ā_t‖^lag over the pairs, one float64 accumulator for both
        self.lag_sums = torch.zeros(len(lags), 2, self.H, dtype=torch.float64, device=self.device)
        self.decay_sum, self.frozen_sum = self.lag_sums[:, 0], self.lag_sums[:, 1]
        self.pairs = [0] * len(lags)
        # Power-of-two lags sampled at every token come from products doubled level by level,
        # P_2k(t) = P_k(t)·P_k(t − k); tails (batch, 1 + 2 + … + top/2, H) holds the last k values of each P_k.
        self.doubling = {lag: j for j, (lag, st) in enumerate(zip(lags, self.strides))
                         if st == 1 and lag & (lag - 1) == 0}
        top = max(self.doubling, default=0)
        self.levels = [1 << i for i in range(top.bit_length())]  # 1, 2, 4, …, top
        self.tails = torch.zeros(self.batch, max(0, top - 1), self.H, device=self.device)
        # The other lags pair t with s = t − lag, s ≡ 0 (mod stride), through the running sum G of the rates:
        # ‖Ā_t ⋯ Ā_{s+1}‖ = 2^(c·(G_t − G_s)), G in float64 (no cancellation on long sequences). All those
        # positions are multiples of grid, the only positions where G is formed; hist_G (batch, n, H) holds G at
        # the positions _pending(t) that later pairs still need.
        self.strided = [j for j, lag in enumerate(lags) if lag not in self.doubling]
        self.grid = math.gcd(*(self.strides[j] for j in self.strided), *(lags[j] for j in self.strided)) \
            if self.strided else 1
        self.hist_G = torch.zeros(self.batch, 0, self.H, dtype=torch.float64, device=self.device)
        self.G_prev = torch.zeros(self.batch, self.H, dtype=torch.float64, device=self.device)  # G at t − 1
        # Strided lags forming a doubling chain (lag_{i+1} = 2·lag_i, stride_{i+1} = 2·stride_i, lag = D·stride,
        # D a power of two: the default lags) need no running sum. The window sums W_i(t) of c·rate over
        # (t − lag_i, t] come from block sums of stride_1 tokens, summed D at a time by doubling, then
        # W_{i+1}(t) = W_i(t) + W_i(t − lag_i): every term has the sign of c, so float32 loses nothing to
        # cancellation however long the sequence. chain_hist keeps the last k rows of each doubling stage and
        # the last D rows of each W_i but the last; chain_carry the rates since the last block edge.
        ls, ss = [lags[j] for j in self.strided], [self.strides[j] for j in self.strided]
        D = ls[0] // ss[0] if ls else 0
        chain = bool(ls) and D & (D - 1) == 0 and all(x == D * s for x, s in zip(ls, ss)) \
            and all(s2 == 2 * s1 for s1, s2 in zip(ss, ss[1:]))
        self.chain_D = D if chain else 0
        n_hist = (D - 1 + D * (len(ls) - 1)) if chain else 0
        self.chain_hist = torch.zeros(self.batch, n_hist, self.H, device=self.device)
        self.chain_carry = torch.zeros(self.batch, self.H, device=self.device)
        # chunks whose t0 agree mod period, and on min(t0, warm) share one plan (see _plan)
        self._top = top
        self._warm = max([top] + [lags[j] for j in self.strided])
        self._period = math.lcm(*(self.strides[j] for j in self.strided)) if self.strided else 1
        self._setup = (self.batch, self.H, str(self.device), tuple(lags), tuple(self.strides))

        # a power of two, so that heatmaps of sequences of different lengths coarsen to a common bin and merge
        self.heatmap_bin = 1 << max(0, math.ceil(math.log2(max(1, -(-self.length // heatmap_bins)))))
        n_hb = -(-self.length // self.heatmap_bin)
        self.heat_sum = torch.zeros(n_hb, self.H, dtype=torch.float32, device=self.device)

        self.mem_gmean: list[torch.Tensor] = []
        self.mem_max: list[torch.Tensor] = []
        self.t = 0

    # -- accumulation -------------------------------------------------------------------------------------
    def update(self, rate: torch.Tensor) -> None:
        """Add the next chunk of rates.

        Parameters
        ----------
        rate : Tensor, shape (batch, T, H), non-negative
        """
        if rate.ndim != 3 or rate.shape[0] != self.batch or rate.shape[2] != self.H:
            raise ShapeError(f"rate must have shape (batch={self.batch}, T, H={self.H}), got {tuple(rate.shape)}")
        T = rate.shape[1]
        if self.t + T > self.length:
            raise ShapeError(f"more tokens than the announced length {self.length}")
        if T == 0:
            return
        t0 = self.t
        with torch.inference_mode():  # lighter than no_grad: ~90 small tensor operations per chunk
            r = rate.detach().to(self.device, torch.float32).contiguous()
            plan = self._plan(T, t0)
            log_r = torch.log(r, out=plan.sc.log)  # −inf at rate 0
            # geometric mean over channels of each channel's horizon ln(1/ε)/(rate·a_min)
            self.mem_gmean.append(torch.exp(self._log_gmean0 - log_r.mean(-1)))
            self._update_hist(r, log_r, plan.sc)  # overwrites log_r
            x = torch.mul(r, self.c32, out=plan.x)  # log2 of each channel's largest |Ā_t|, (batch, T, H)
            # the longest horizon, at the smallest rate·a_min = −x·ln 2
            self.mem_max.append((-self.log_inv_eps * _LOG2E) / x.amax(dim=-1))
            # the strided lags' frozen predictions, exponents lag·x_t, before exp2 overwrites x
            if self.chain_D:
                for src, factor, out in plan.chain.frozen:
                    torch.mul(src, factor, out=out)
            elif self.strided:
                torch.index_select(x, 1, plan.f_idx, out=plan.Xf)
                plan.Xf.mul_(plan.lag_col)
            e1 = torch.exp2(x, out=x)  # each channel's largest |Ā_t|
            self._update_heatmap(e1, t0)
            if self.doubling:
                self._update_doubling(plan)
            if self.chain_D:
                self._update_chain(r, plan)
            elif self.strided:
                self._update_lags(r, plan)
            self.lag_sums += plan.sc.sums[: len(self.lags)]  # this chunk's float32 sums, every lag written
            for j, n in plan.pairs:
                self.pairs[j] += n
        self.t += T

    def _plan(self, T: int, t0: int) -> _Plan:
        sc = lru_get(_CACHE.scratch, (self._setup, T), lambda: _Scratch(self, T), 4)
        if self.strided and not self.chain_D:  # held running sums depend on t0 until every lag is reached
            key = (self._setup, T, min(t0, self._warm), t0 % self._period)
        else:  # otherwise only where each lag's first pair falls, so a long warm-up reuses few plans
            reach = tuple(min(max(self.lags[j] - t0, 0), T) for j in self.strided)
            key = (self._setup, T, min(t0, self._top), t0 % self._period, reach)
        plan = lru_get(_CACHE.plans, key, lambda: _Plan(self, sc, T, t0), 64)
        if plan.sc is not sc:  # the scratch was rebuilt since: rebuild the plan on it
            plan = _CACHE.plans[key] = _Plan(self, sc, T, t0)
        return plan

    def _pending(self, t: int) -> np.ndarray:
        """Input positions s < t (sorted) on some strided lag's grid whose pair t' = s + lag is at or after t."""
        parts = [np.arange(-(-max(0, t - self.lags[j]) // self.strides[j]) * self.strides[j], t, self.strides[j])
                 for j in self.strided]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _lag_pairs(self, j: int, t0: int, t1: int) -> tuple[int, int]:
        """Lag j's pairs (s, t = s + lag) with t in [t0, t1): the first t and their count."""
        lag, st = self.lags[j], self.strides[j]
        s_first = -(-(max(t0, lag) - lag) // st) * st
        return s_first + lag, max(0, -(-(t1 - lag - s_first) // st))

    def _update_hist(self, r: torch.Tensor, log_r: torch.Tensor, sc: _Scratch) -> None:
        flat = r.view(-1, self.H)
        lo, hi = flat.amin(0), flat.amax(0)
        if self.defer_checks:
            lo_min, hi_max = math.nan, math.nan  # unknown on the host: count and clamp below anyway
            self._failed |= ~(lo.min() >= 0.0)  # NaN fails this too
        else:
            lo_min, hi_max = torch.stack((lo.min(), hi.max())).tolist()
            if not lo_min >= 0.0:  # NaN fails this too
                where = f"tokens {self.t}..{self.t + r.shape[1] - 1}"
                if math.isnan(lo_min):
                    raise NonFiniteError(f"LTVStats: NaN rate among {where}")
                raise SsmctlError(f"LTVStats: rates must be non-negative; {where} hold {lo_min}")
        torch.minimum(self.rate_min, lo, out=self.rate_min)
        torch.maximum(self.rate_max, hi, out=self.rate_max)
        pos = log_r.view(-1, self.H).mul_(1.0 / self.w).sub_(self.ln_lo / self.w)
        if self.defer_checks:
            self.rate_zero += (flat <= 0).sum(0)
            self._out_of_range += ((pos < 0) | (pos >= self.K)).sum()
            pos.nan_to_num_(0.0)  # a NaN rate (flagged above) must not become an index outside the histogram
        else:
            if lo_min <= 0.0:
                self.rate_zero += (flat <= 0).sum(0)
            if lo_min < self.lo or hi_max >= self.hi:  # rare: count what falls outside
                self.out_of_range += int(((pos < 0) | (pos >= self.K)).sum())
        # bin index + channel offset, formed in float32 (exact below 2^24) before one integer conversion
        pos.floor_()
        if not (self._inside[0] <= lo_min and hi_max <= self._inside[1]):  # NaN (deferred): clamp
            pos.clamp_(0, self.K - 1)
        pos.add_(self.hist_offsets_f)
        sc.idx_blocks.copy_(pos.view(sc.idx_blocks.shape))
        # straight into the accumulator: bincount would allocate and zero H·K counters per chunk
        self.rate_hist.view(-1).scatter_add_(0, sc.idx, sc.ones)

    def _update_heatmap(self, e1: torch.Tensor, t0: int) -> None:
        # the chunk's partial first bin, its whole bins (one reshaped sum) and its partial last bin
        b, T, H = e1.shape
        hb, t1 = self.heatmap_bin, t0 + T
        a = min(t1, -(-t0 // hb) * hb)  # first bin edge at or after t0
        z = max(a, t1 // hb * hb)  # last bin edge at or before t1
        if a > t0:
            self.heat_sum[t0 // hb] += e1[:, : a - t0].sum((0, 1))
        if z > a:
            self.heat_sum[a // hb: z // hb] += e1[:, a - t0: z - t0].reshape(b, (z - a) // hb, hb, H).sum((0, 2))
        if t1 > z:
            self.heat_sum[z // hb] += e1[:, z - t0:].sum((0, 1))

    def _update_doubling(self, plan: _Plan) -> None:
        """Doubling level i holds P_k(t0 − k), …, P_k(t1 − 1) and F_k(t0), …, F_k(t1 − 1), k = 2^i.

        P_1 = F_1 = e1; F_k = e1^k is the frozen-time prediction at lag k. tails rows k − 1 … 2k − 2 hold the
        last k values of P_k.
        """
        zero = plan.zero
        if 0 in zero:
            zero[0].zero_()
        torch.sum(plan.x, (0, 1), out=plan.level_sums[0][0])
        plan.level_sums[0][1] = plan.level_sums[0][0]
        for i, (tail, PF, PF_shift, out, last, k) in enumerate(plan.dbl):
            kept = self.tails[:, k - 1: 2 * k - 1]
            tail.copy_(kept)
            torch.mul(PF, PF_shift, out=out)
            kept.copy_(last)
            if i + 1 in zero:
                zero[i + 1].zero_()
            torch.sum(out, (0, 2), out=plan.level_sums[i + 1])

    def _update_lags(self, r: torch.Tensor, plan: _Plan) -> None:
        """Pairs (s, t = s + lag) with t in this chunk, all lags at once: gathered rows of G, one subtraction."""
        b, T, H = r.shape
        n = plan.n_grid
        if n:
            # grid sums S_i: rates in (p_{i−1}, p_i]; the first group runs t0..p0, the others are g tokens
            torch.sum(r[:, : plan.first], 1, out=plan.S0)
            if n > 1:
                torch.sum(r[:, plan.first: plan.tail].view(b, n - 1, plan.g, H), 2, out=plan.S_rest)
            # G = G_prev + running sum: float32 inside blocks of 16 (few terms), float64 block offsets
            torch.matmul(plan.tril, plan.S_blocks, out=plan.local)
            offsets = torch.matmul(plan.excl, plan.local_last.to(torch.float64)).add_(self.G_prev[:, None])
            plan.G_blocks.copy_(plan.local).add_(offsets[:, :, None])
            last = plan.G_grid[:, n - 1]
            self.G_prev = last + r[:, plan.tail:].sum(1, dtype=torch.float64) if plan.tail < T else last.clone()
        else:
            self.G_prev = self.G_prev + r.sum(1, dtype=torch.float64)
        if plan.n_hist:
            plan.G_hist.copy_(self.hist_G)
        torch.index_select(plan.G, 1, plan.t_idx, out=plan.Gt)
        torch.index_select(plan.G, 1, plan.s_idx, out=plan.Gs)
        plan.Xd.copy_(plan.Gt.sub_(plan.Gs))  # differences in float64, stored as float32
        plan.Xd.mul_(self.c32)
        torch.exp2(plan.X, out=plan.X)
        for view, out in plan.lsum_views:
            torch.sum(view, (1, 2), out=out)
        self.hist_G = plan.G.index_select(1, plan.keep_idx)

    def _update_chain(self, r: torch.Tensor, plan: _Plan) -> None:
        """Strided lags of a doubling chain (see __init__): window sums into the plan's A, then exp2 and sums."""
        b, T, H = r.shape
        ch = plan.chain
        A0 = ch.A0
        if ch.tail_in.numel():
            A0.index_copy_(1, ch.tail_in, self.chain_hist)
        if ch.nB:
            # block sums over (p − stride_1, p] at the grid points p of the chunk, the first one with the carry
            first = r[:, 0] if ch.first == 1 else r[:, : ch.first].sum(1)
            torch.add(self.chain_carry, first, out=ch.B_first)
            if ch.nB > 1:
                if ch.s1 == 2:
                    torch.add(r[:, ch.first: ch.rest_end: 2], r[:, ch.first + 1: ch.rest_end: 2], out=ch.B_rest)
                else:
                    torch.sum(r[:, ch.first: ch.rest_end].view(b, ch.nB - 1, ch.s1, H), 2, out=ch.B_rest)
            self.chain_carry = r[:, ch.rest_end:].sum(1)
            ch.B.mul_(self.c32)
        else:
            self.chain_carry = self.chain_carry + r.sum(1)
        for x, y, out in ch.adds:  # the D-block windows by doubling, then the longer lags
            torch.add(x, y, out=out)
        if ch.tail_out.numel():
            self.chain_hist = A0.index_select(1, ch.tail_out)
        for view, out in ch.sum_views:  # exp2 and sum at the rows of the pairs only
            torch.exp2(view, out=view)
            torch.sum(view, (1, 2), out=out)

    def deferred_failure(self) -> torch.Tensor:
        """A boolean tensor on the accumulator's device: whether a deferred check failed (a NaN or negative rate).

        Returns
        -------
        Tensor, shape ()
            True when an update with ``defer_checks`` saw a rate that the checking path would have refused.
        """
        return self._failed

    def state_numel(self) -> int:
        """Numbers held by the accumulators, excluding the per-token traces (independent of L for a fixed setup)."""
        tensors = [self.rate_hist, self.rate_min, self.rate_max, self.rate_zero, self.decay_sum, self.frozen_sum,
                   self.G_prev, self.heat_sum, self.hist_G, self.tails, self.chain_hist, self.chain_carry]
        return int(sum(t.numel() for t in tensors))

    # -- results ------------------------------------------------------------------------------------------
    def abs_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of ln(−ln|Ā_t|) over tokens, channels and states, and its bin edges.

        The channels' ln-rate histograms shifted by ln a[h, n] rounded to the bin grid: with M[h, j] the number
        of states of channel h whose shift is j bins, P = histᵀ M gives P[k, j] (rate bin k, shift j), and the
        result sums P along k + j.
        """
        a = self.a
        positive = a > 0
        if not bool(positive.any()):
            return np.zeros(self.K), self.ln_lo + np.arange(self.K + 1) * self.w
        off = torch.round(torch.log(a.clamp_min(1e-300)) / self.w).long()
        o_min, o_max = int(off[positive].min()), int(off[positive].max())
        n_off = o_max - o_min + 1
        M = torch.zeros(self.H, n_off, dtype=torch.float64, device=self.device)
        M.scatter_add_(1, (off - o_min).clamp_(0, n_off - 1), positive.to(torch.float64))
        # only the rate bins some token reached (few for a short sequence of a corpus); integer counts in float64
        # sum exactly, so the slice changes no bit
        used = torch.nonzero(self.rate_hist.sum(0)).ravel()
        k0, k1 = (int(used[0]), int(used[-1]) + 1) if used.numel() else (0, 0)
        P = self.rate_hist[:, k0:k1].to(torch.float64).T @ M  # (k1 − k0, n_off)
        n_bins = self.K + n_off - 1
        idx = torch.arange(k0, k1, device=self.device)[:, None] + torch.arange(n_off, device=self.device)
        out = torch.zeros(n_bins, dtype=torch.float64, device=self.device).index_add_(0, idx.reshape(-1), P.reshape(-1))
        edges = self.ln_lo + (np.arange(n_bins + 1) + o_min) * self.w
        return out.cpu().numpy(), edges

    def result(self) -> LayerStats:
        """The finished statistics (the accumulator can keep going afterwards)."""
        if bool(self._failed):
            raise NonFiniteError("LTVStats: some rate was NaN or negative (seen by an update with defer_checks)")
        rate_hist = self.rate_hist.sum(0).to(torch.float64).cpu().numpy()
        rate_edges = self.ln_lo + np.arange(self.K + 1) * self.w
        abs_hist, abs_edges = self.abs_histogram()
        rate_q, abs_q, mem_q = hist_summaries(rate_hist, rate_edges, abs_hist, abs_edges, _QUANTILES, self.eps)
        a_np = self.a.cpu().numpy()
        rmin, rmax = self.rate_min.cpu().numpy(), self.rate_max.cpu().numpy()
        # Exact extremes: |Ā| is smallest at the largest rate × largest a, largest at the smallest of both.
        abs_min = float(np.exp(-np.max(rmax * a_np.max(1)))) if self.t else math.nan
        abs_max = float(np.exp(-np.min(rmin * a_np.min(1)))) if self.t else math.nan
        zero_a = (a_np <= 0).sum(1)  # states that never decay, per channel
        inf_count = int((self.rate_zero.cpu().numpy() * (self.Na - zero_a)).sum() + self.t * self.batch * zero_a.sum())
        pairs = np.asarray(self.pairs, dtype=np.int64)
        decay_sum, frozen_sum = self.decay_sum.cpu().numpy(), self.frozen_sum.cpu().numpy()
        edges = np.arange(self.heat_sum.shape[0] + 1) * self.heatmap_bin
        heat_cnt = (np.clip(edges[1:], 0, self.t) - np.clip(edges[:-1], 0, self.t)) * float(self.batch)
        heat = HeatBins(self.heatmap_bin, self.heat_sum.cpu().numpy(), heat_cnt)
        mem_gmean = torch.cat(self.mem_gmean, dim=1).cpu().numpy() if self.mem_gmean else np.zeros((self.batch, 0))
        mem_max = torch.cat(self.mem_max, dim=1).cpu().numpy() if self.mem_max else np.zeros((self.batch, 0))
        parts = Parts(dd(decay_sum), dd(frozen_sum), heat, Positional.of(mem_gmean, mem_max),
                      LogHistogram.of(mem_gmean, self.w), LogHistogram.of(mem_max, self.w), self.batch)
        return LayerStats(
            n_tokens=self.t,
            n_channels=self.H,
            n_states=self.Na,
            eps=self.eps,
            rate_min=float(rmin.min()) if self.t else math.nan,
            rate_max=float(rmax.max()) if self.t else math.nan,
            rate_quantiles=dict(zip(_QUANTILES, rate_q.tolist())),
            abs_min=abs_min,
            abs_max=abs_max,
            abs_quantiles=dict(zip(_QUANTILES, abs_q.tolist())),
            memory_horizon_quantiles=dict(zip(_QUANTILES, mem_q.tolist())),
            memory_horizon_inf_count=inf_count,
            rate_hist=rate_hist,
            rate_edges=rate_edges,
            abs_hist=abs_hist,
            abs_edges=abs_edges,
            memory_token_gmean=mem_gmean,
            memory_token_max=mem_max,
            lags=np.asarray(self.lags),
            lag_stride=np.asarray(self.strides),
            lag_pairs=pairs,
            **decay_fields(decay_sum, frozen_sum, pairs),
            heatmap=heat.mean(),
            heatmap_bin=self.heatmap_bin,
            rate_out_of_range=int(self.out_of_range) + int(self._out_of_range),
            bin_width=self.w,
            parts=parts,
        )
