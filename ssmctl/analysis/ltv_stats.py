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

All accumulators are float64 / int64 and independent of how the sequence was cut into chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import NonFiniteError, ShapeError, SsmctlError

__all__ = ["LTVStats", "LayerStats", "default_lags", "hist_quantile"]

_LOG2E = 1.0 / math.log(2.0)
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def default_lags(length: int) -> list[int]:
    """Powers of two 1, 2, 4, … below ``length`` (the lags a sequence of that length can show)."""
    if length < 2:
        return [1]
    return [1 << k for k in range(int(math.floor(math.log2(length - 1))) + 1)]


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


def _running_sum(r: torch.Tensor, start: torch.Tensor, block: int = 16) -> torch.Tensor:
    """start + Σ_{τ≤t} r_τ in float64, returned channel-major (batch, H, T).

    Sums within blocks of ``block`` tokens in float32 (a small triangular matrix product: few terms, so no
    precision is lost), block offsets in float64. A plain cumulative sum along the token axis of (batch, T, H)
    is several times slower on CPU.
    """
    b, T, H = r.shape
    nb = -(-T // block)
    rp = torch.nn.functional.pad(r, (0, 0, 0, nb * block - T)) if nb * block != T else r
    rb = rp.reshape(b, nb, block, H)
    tril = torch.ones(block, block, dtype=r.dtype, device=r.device).tril_()
    local = torch.matmul(tril, rb)  # (b, nb, block, H)
    offsets = torch.cumsum(local[:, :, -1].to(torch.float64), dim=1) - local[:, :, -1].to(torch.float64)
    offsets += start[:, None]
    G = local.to(torch.float64).add_(offsets[:, :, None]).reshape(b, nb * block, H)[:, :T]
    return G.transpose(1, 2)


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
        Token bins of the |Ā| heatmap.
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
            raise SsmctlError(f"eps must lie in (0, 1), got {eps}")
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
        self._ones = torch.ones(0, dtype=torch.int32, device=self.device)
        self.lo, self.hi = float(lo), float(hi)
        if self.H * self.K >= 2**24:
            raise SsmctlError(f"histogram too large ({self.H} channels × {self.K} bins); use a wider bin_width")
        self.out_of_range = 0

        lags = default_lags(self.length) if lags is None else sorted({int(x) for x in lags})
        if not lags or lags[0] < 1:
            raise SsmctlError(f"lags must be positive integers, got {lags}")
        self.lags = lags
        self.strides = [max(1, lag // lag_samples) for lag in lags]
        self.decay_sum = torch.zeros(len(lags), self.H, dtype=torch.float64, device=self.device)
        self.frozen_sum = torch.zeros(len(lags), self.H, dtype=torch.float64, device=self.device)
        self.pairs = [0] * len(lags)
        # Per lag: cumulative rates G_s (batch, n, H) at the sampled input positions s still waiting for t = s + lag.
        self.hist_G = [torch.zeros(self.batch, self.H, 0, dtype=torch.float64, device=self.device) for _ in lags]
        self.hist_start = [0 for _ in lags]
        # Power-of-two lags sampled at every token come from products doubled level by level,
        # P_2k(t) = P_k(t)·P_k(t − k), with the last k values of P_k kept across chunks.
        self.doubling = {lag: j for j, (lag, st) in enumerate(zip(lags, self.strides))
                         if st == 1 and lag & (lag - 1) == 0}
        self.strided = [j for j, lag in enumerate(lags) if lag not in self.doubling]
        top = max(self.doubling, default=0)
        self.tails = {k: torch.ones(self.batch, k, self.H, device=self.device)
                      for k in (1 << i for i in range(max(0, top.bit_length() - 1)))}
        self.G_prev = torch.zeros(self.batch, self.H, dtype=torch.float64, device=self.device)

        self.heatmap_bin = max(1, -(-self.length // heatmap_bins))
        n_hb = -(-self.length // self.heatmap_bin)
        self.heat_sum = torch.zeros(n_hb, self.H, dtype=torch.float32, device=self.device)
        self.heat_cnt = torch.zeros(n_hb, dtype=torch.float64, device=self.device)

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
        with torch.no_grad():
            r = rate.detach().to(self.device, torch.float32)
            t0 = self.t
            log_r = torch.log(r)  # −inf at rate 0
            slow = r * self.a_min32  # −ln of each channel's largest |Ā_t|, (batch, T, H)
            e1 = torch.exp2(slow * -_LOG2E)  # each channel's largest |Ā_t| (exp2: twice as fast as exp)
            self._update_hist(r, log_r)
            self._update_memory(log_r, slow)
            self._update_heatmap(e1, t0)
            self._update_doubling(e1, t0)
            if self.strided:
                G = _running_sum(r, self.G_prev)  # (batch, H, T) float64
                self._update_lags(slow, G, t0)
                self.G_prev = G[:, :, -1].clone()
        self.t += T

    def _update_hist(self, r: torch.Tensor, log_r: torch.Tensor) -> None:
        flat = r.reshape(-1, self.H)
        lo, hi = flat.amin(0), flat.amax(0)
        lo_min = float(lo.min())
        if not lo_min >= 0.0:  # NaN fails this too
            where = f"tokens {self.t}..{self.t + r.shape[1] - 1}"
            if math.isnan(lo_min):
                raise NonFiniteError(f"LTVStats: NaN rate among {where}")
            raise SsmctlError(f"LTVStats: rates must be non-negative; {where} hold {lo_min}")
        self.rate_min = torch.minimum(self.rate_min, lo.double())
        self.rate_max = torch.maximum(self.rate_max, hi.double())
        pos = torch.mul(log_r.reshape(-1, self.H), 1.0 / self.w).sub_(self.ln_lo / self.w)
        if float(lo.min()) <= 0.0:
            self.rate_zero += (flat <= 0).sum(0)
        if float(lo.min()) < self.lo or float(hi.max()) >= self.hi:  # rare: count what falls outside
            self.out_of_range += int(((pos < 0) | (pos >= self.K)).sum())
        # bin index + channel offset, formed in float32 (exact below 2^24) before one integer conversion
        idx = pos.floor_().clamp_(0, self.K - 1).add_(self.hist_offsets_f).long()
        if self._ones.numel() < idx.numel():
            self._ones = torch.ones(idx.numel(), dtype=torch.int32, device=self.device)
        # straight into the accumulator: bincount would allocate and zero H·K counters per chunk
        self.rate_hist.view(-1).scatter_add_(0, idx.view(-1), self._ones[: idx.numel()])

    def _update_memory(self, log_r: torch.Tensor, slow: torch.Tensor) -> None:
        # Geometric mean over channels of each channel's horizon ln(1/ε)/(rate·a_min), and the longest one.
        self.mem_gmean.append((self.log_inv_eps * torch.exp(-(log_r + self.log_a_min32).mean(-1))))
        self.mem_max.append(self.log_inv_eps / slow.amin(dim=-1))

    def _update_heatmap(self, e1: torch.Tensor, t0: int) -> None:
        T = e1.shape[1]
        bins = torch.arange(t0, t0 + T, device=self.device) // self.heatmap_bin
        self.heat_sum.index_add_(0, bins, e1[0] if self.batch == 1 else e1.sum(0))
        self.heat_cnt.index_add_(0, bins, torch.full((T,), float(self.batch), dtype=torch.float64, device=self.device))

    def _update_doubling(self, e1: torch.Tensor, t0: int) -> None:
        if not self.doubling:
            return
        T = e1.shape[1]
        P = F = e1  # P_k(t): product of the last k factors e1; F_k(t) = e1(t)^k, the frozen-time prediction
        k = 1
        while True:
            j = self.doubling.get(k)
            if j is not None:
                start = max(0, k - t0)  # t ≥ k: the input position s = t − k exists
                if start < T:
                    self.decay_sum[j] += P[:, start:].sum((0, 1)).double()
                    self.frozen_sum[j] += F[:, start:].sum((0, 1)).double()
                    self.pairs[j] += (T - start) * self.batch
            tail = self.tails.get(k)
            if tail is None:
                break
            P2 = torch.empty_like(P)
            m = min(k, T)
            torch.mul(P[:, :m], tail[:, :m], out=P2[:, :m])  # P_k(t − k) for the first k tokens
            if T > k:
                torch.mul(P[:, k:], P[:, :-k], out=P2[:, k:])
            self.tails[k] = torch.cat([tail, P], dim=1)[:, -k:] if T < k else P[:, -k:].clone()
            P, F, k = P2, F * F, 2 * k

    def _update_lags(self, slow: torch.Tensor, G: torch.Tensor, t0: int) -> None:
        """Pairs (s, t = s + lag) with t in this chunk; pending input positions s form one arithmetic progression.

        ``G`` is (batch, H, T) channel-major; ``slow`` (batch, T, H).
        """
        T = G.shape[2]
        t1 = t0 + T
        a_min = self.a_min32[:, None]
        for j in self.strided:
            lag, stride = self.lags[j], self.strides[j]
            hG, hs = self.hist_G[j], self.hist_start[j]  # pending s = hs + k·stride, k < hG.shape[2]
            first = -(-t0 // stride) * stride  # first sample position in this chunk
            Gnew = G[:, :, first - t0::stride] if first < t1 else G[:, :, :0]
            n_h, n_new = hG.shape[2], Gnew.shape[2]
            nd_h = min(n_h, max(0, -(-(t1 - lag - hs) // stride))) if n_h else 0
            nd_n = min(n_new, max(0, -(-(t1 - lag - first) // stride))) if n_new else 0
            for n_done, G_s, s0 in ((nd_h, hG, hs), (nd_n, Gnew, first)):
                if n_done == 0:
                    continue
                a = s0 + lag - t0  # chunk index of the first t
                sl = slice(a, a + (n_done - 1) * stride + 1, stride)
                dG = (G[:, :, sl] - G_s[:, :, :n_done]).float()  # (batch, H, n)
                self.decay_sum[j] += torch.exp2(dG.mul_(a_min * -_LOG2E)).sum((0, 2)).double()
                self.frozen_sum[j] += torch.exp2(slow[:, sl] * (-_LOG2E * lag)).sum((0, 1)).double()
                self.pairs[j] += n_done * self.batch
            self.hist_G[j] = torch.cat([hG[:, :, nd_h:], Gnew[:, :, nd_n:]], dim=2)
            self.hist_start[j] = hs + nd_h * stride if n_h > nd_h else first + nd_n * stride

    def state_numel(self) -> int:
        """Numbers held by the accumulators, excluding the per-token traces (independent of L for a fixed setup)."""
        tensors = [self.rate_hist, self.rate_min, self.rate_max, self.rate_zero, self.decay_sum, self.frozen_sum,
                   self.G_prev, self.heat_sum, self.heat_cnt, *self.hist_G, *self.tails.values()]
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
        P = self.rate_hist.to(torch.float64).T @ M  # (K, n_off)
        n_bins = self.K + n_off - 1
        idx = torch.arange(self.K, device=self.device)[:, None] + torch.arange(n_off, device=self.device)
        out = torch.zeros(n_bins, dtype=torch.float64, device=self.device).index_add_(0, idx.reshape(-1), P.reshape(-1))
        edges = self.ln_lo + (np.arange(n_bins + 1) + o_min) * self.w
        return out.cpu().numpy(), edges

    def result(self) -> LayerStats:
        """The finished statistics (the accumulator can keep going afterwards)."""
        rate_hist = self.rate_hist.sum(0).to(torch.float64).cpu().numpy()
        rate_edges = self.ln_lo + np.arange(self.K + 1) * self.w
        q = np.asarray(_QUANTILES)
        rate_q = np.exp(hist_quantile(rate_hist, rate_edges, q))
        abs_hist, abs_edges = self.abs_histogram()
        y_q = hist_quantile(abs_hist, abs_edges, q)  # quantiles of ln(−ln|Ā|)
        abs_q = np.exp(-np.exp(y_q[::-1]))  # |Ā| decreases in y: the q-quantile uses y's (1−q)-quantile
        mem_q = self.log_inv_eps * np.exp(-y_q[::-1])
        a_np = self.a.cpu().numpy()
        rmin, rmax = self.rate_min.cpu().numpy(), self.rate_max.cpu().numpy()
        # Exact extremes: |Ā| is smallest at the largest rate × largest a, largest at the smallest of both.
        abs_min = float(np.exp(-np.max(rmax * a_np.max(1)))) if self.t else math.nan
        abs_max = float(np.exp(-np.min(rmin * a_np.min(1)))) if self.t else math.nan
        zero_a = (a_np <= 0).sum(1)  # states that never decay, per channel
        inf_count = int((self.rate_zero.cpu().numpy() * (self.Na - zero_a)).sum() + self.t * self.batch * zero_a.sum())
        pairs = np.asarray(self.pairs, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            decay_channel = self.decay_sum.cpu().numpy() / pairs[:, None]
            frozen_channel = self.frozen_sum.cpu().numpy() / pairs[:, None]
            heat = (self.heat_sum.double() / self.heat_cnt[:, None]).cpu().numpy()
        mem_gmean = torch.cat(self.mem_gmean, dim=1).cpu().numpy() if self.mem_gmean else np.zeros((self.batch, 0))
        mem_max = torch.cat(self.mem_max, dim=1).cpu().numpy() if self.mem_max else np.zeros((self.batch, 0))
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
            lag_pairs=pairs.astype(np.int64),
            decay_mean=decay_channel.mean(1),
            decay_max_channel=decay_channel.max(1) if self.H else decay_channel.sum(1),
            decay_channel=decay_channel,
            frozen_mean=frozen_channel.mean(1),
            heatmap=heat,
            heatmap_bin=self.heatmap_bin,
            rate_out_of_range=int(self.out_of_range),
            bin_width=self.w,
        )
