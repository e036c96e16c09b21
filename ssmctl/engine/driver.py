"""The LTV simulation engine: run a model's input-dependent layers over a long input, chunk by chunk.

    result = simulate(model, token_ids)          # or embeddings (batch, L, d_model) for models without one
    result.summary()                             # strict-JSON-ready per-layer statistics
    result.stats[i]                              # LayerStats: histograms, quantiles, traces, lag decay
    result.windows[i]                            # full per-token traces for a requested token window

For every chunk of tokens the engine runs layer 0, 1, … in turn (each layer carries its convolution and SSM
states to the next chunk), feeds the per-token rates Δ_t to that layer's streaming statistics and drops the
chunk. Memory is independent of the sequence length except for per-token scalar traces (two numbers per
token and layer) and whatever the caller asks to keep (a window, the final output).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .stats import LayerStats, LTVStats
from ..analysis.spectrum import marginal_note
from ..errors import NonFiniteError, ShapeError, SsmctlError, UnsupportedSystemError, option
from ..models.base import Model
from ..analysis.progress import Progress
from ..report import SCHEMA_VERSION, format_modulus
from ..systems import _display
from .blocks import RUNNERS, runner_for
from .native import native_available, native_status
from .scan import SCAN_BACKENDS
from . import distributed
from .corpus import Corpus
from .triton_scan import triton_available, triton_status
from .ssd import ssd_default_chunk, ssd_elements_per_token, ssd_preferred

__all__ = [
    "simulate", "SimulationResult", "resolve_device", "default_threads", "STATES_PER_THREAD", "default_chunk",
    "default_slab", "partial_note", "RATE_MEANING",
]

RATE_MEANING = {
    "mamba": "Delta_t = softplus(dt_proj(x_proj(x_t)) + bias) per inner channel; |A_bar| = exp(-Delta_t*exp(A_log))",
    "mamba2": "Delta_t = softplus(dt_t + dt_bias) per head; |A_bar| = exp(-Delta_t*exp(A_log_h))",
    "rglru": "c*r_t (c = 8, r_t the recurrence gate) per channel; |A_bar| = a^(c*r_t) = exp(-c*r_t*softplus(Lambda))",
}


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` → CUDA when torch sees a GPU, else CPU; ``"cuda"`` without a GPU is an error.

    Parameters
    ----------
    device : str or torch.device, default "auto"
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … (anything ``torch.device`` accepts).

    Returns
    -------
    torch.device

    Raises
    ------
    SsmctlError
        A CUDA device asked for when torch sees none, or a name torch does not know.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SsmctlError(
            f"device {name!r} was asked for but torch sees no CUDA device (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}); use {option('device', 'cpu')} or {option('device', 'auto')}"
        )
    try:
        return torch.device(name)
    except (RuntimeError, TypeError):
        raise SsmctlError(f"unknown {option('device')} {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def partial_note(model: Model) -> str | None:
    """What of ``model`` the engine does not run (hybrids' attention / MLP / MoE sub-layers), or None.

    The engine runs the model's SSM layers back to back; ``ssmctl.load`` lists the other sub-layers of a hybrid
    in ``model.extras['other_layers']``. With any present, layer inputs after the first differ from the model's.

    Parameters
    ----------
    model : Model
        A loaded or initialized model (only ``model.extras["other_layers"]`` is read).

    Returns
    -------
    str or None
        A sentence counting the other sub-layers by kind; None when there are none.
    """
    others = model.extras.get("other_layers") or []
    if not others:
        return None
    kinds: dict[str, int] = {}
    for o in others:
        kinds[o.get("kind", "other")] = kinds.get(o.get("kind", "other"), 0) + 1
    listing = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (f"the model also has {listing} sub-layer(s) that ssmctl does not simulate: its SSM layers run back to "
            "back, so every layer after the first sees a different input than in the full model")


def _pow2(x: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, 2 ** round(math.log2(max(1.0, x))))))


def default_chunk(device: torch.device, states_per_token: int) -> int:
    """Tokens per chunk (projections, statistics): 512 on CPU; ~64M scan elements per chunk on a GPU.

    The tensor scan materializes every state of a chunk (channels × N per token); the fused Triton scan keeps
    them in registers, so :func:`simulate` passes it the channels alone (per-token activations and statistics'
    work tensors then bound the chunk, a few times 2^26 numbers at most).

    Parameters
    ----------
    device : torch.device
        Where the simulation runs.
    states_per_token : int
        State elements of one token: channels × N × batch (:func:`simulate` passes its largest layer's).

    Returns
    -------
    int
        512 on CPU; on CUDA 2^26 / states_per_token rounded to a power of two in [256, 65536].
    """
    if device.type == "cuda":
        return _pow2(64 * 2**20 / max(1, states_per_token), 256, 65536)
    return 512


def default_slab(device: torch.device, states_per_token: int) -> int | None:
    """Tokens the scan takes at once: ~512k state elements (2 MB temporaries, cache-sized) on CPU; all on GPU.

    Parameters
    ----------
    device : torch.device
        Where the simulation runs.
    states_per_token : int
        State elements of one token, as for :func:`default_chunk`.

    Returns
    -------
    int or None
        On CPU 2^19 / states_per_token rounded to a power of two in [16, 256]; None (the whole chunk) on CUDA.
    """
    if device.type == "cuda":
        return None
    return _pow2(2**19 / max(1, states_per_token), 16, 256)


# Scan state elements per token (channels × N × batch) per CPU thread. Below it an operation on a chunk is a few
# microseconds of work, less than waking a second thread costs. Above it every thread helps, a busy core
# included: with passive OpenMP waiting (set in ssmctl/__init__.py) a woken thread preempts a spinning neighbour
# instead of spinning itself (benchmarks/simulate_threads.py).
STATES_PER_THREAD = 2**4


def default_threads(device: torch.device, states_per_token: int, available: int | None = None) -> int:
    """CPU threads for a simulation whose tokens carry ``states_per_token`` scan states.

    Parameters
    ----------
    device : torch.device
        Only the CPU is decided here (other devices: ``available``).
    states_per_token : int
        Channels × N × batch of the largest simulated layer.
    available : int, optional
        The most threads to use (default ``torch.get_num_threads()``).

    Returns
    -------
    int
        ``states_per_token // STATES_PER_THREAD`` clipped to [1, available].
    """
    available = torch.get_num_threads() if available is None else int(available)
    if device.type != "cpu":
        return available
    return max(1, min(available, states_per_token // STATES_PER_THREAD))


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate`.

    Attributes
    ----------
    family : str
    n_tokens, batch : int
        Tokens of the (longest) sequence and rows: sequences × their batch over the whole input.
    total_tokens : int
        Tokens over all rows.
    threads : int or None
        torch CPU threads the (first) sequence ran with; None on a GPU.
    layers : list[int]
        Layers with statistics.
    stats : dict[int, LayerStats]
    windows : dict[int, dict]
        Per layer, for the requested token window [start, stop): ``system`` (LTVSystem with Ā_t, B̄_t, C_t, D,
        Δ_t and the SSM inputs, in the family's layout), ``states`` h_t, ``ssm_output``, ``layer_output``,
        ``h_before`` (state before ``start``), ``start``, ``stop``.
    output : Tensor or None
        Last simulated layer's output (batch, L, d_model), when asked for with ``keep_output=True``.
    device : str
    chunk : int
    seconds : float
        Wall time of the simulation; for a corpus (or under torch.distributed) of the whole call, statistics and
        merges included. A merge adds them.
    scan_fallback : dict[int, int]
        Per layer, (block, channel) scan columns that decayed too fast for the cumulative-sum form and were
        computed by the exact log-depth path.
    scan_backend : str
        The scan that ran: "native" (compiled CPU kernel), "triton" (fused GPU kernel), "tensor" (chunked
        cumulative-sum form) or "ssd" (Mamba-2's matrix form).
    """

    family: str
    source: str
    n_tokens: int
    batch: int
    layers: list[int]
    stats: dict[int, LayerStats]
    windows: dict[int, dict[str, Any]] = field(default_factory=dict)
    output: torch.Tensor | None = None
    device: str = "cpu"
    chunk: int = 0
    slab: int | None = None
    seconds: float = 0.0
    scan_fallback: dict[int, int] = field(default_factory=dict)
    scan_backend: str = ""
    partial: str | None = None
    total_tokens: int = 0
    threads: int | None = None

    def merge(self, other: "SimulationResult") -> "SimulationResult":
        """The result of one run over both inputs: each layer's statistics merged (:meth:`LayerStats.merge`).

        ``summary()["layers"]`` of the merge equals that of one run over both corpora. Per-token traces and the
        heatmap become by position; windows and kept outputs, defined for one array only, are dropped.

        Parameters
        ----------
        other : SimulationResult
            A run of the same model (family, source, layers) with the same settings.

        Returns
        -------
        SimulationResult
            ``n_tokens`` the longer sequence, ``batch`` the rows of both, ``total_tokens`` and ``seconds``
            added; chunk, slab, device and scan from ``self``.

        Raises
        ------
        SsmctlError
            When the runs are of different models or layers, or their statistics were not measured alike.
        """
        for name in ("family", "source", "layers"):
            if getattr(self, name) != getattr(other, name):
                raise SsmctlError(f"cannot merge simulations with different {name}: "
                                  f"{getattr(self, name)!r} vs {getattr(other, name)!r}")
        return SimulationResult(
            family=self.family, source=self.source, n_tokens=max(self.n_tokens, other.n_tokens),
            batch=self.batch + other.batch, layers=list(self.layers),
            stats={i: self.stats[i].merge(other.stats[i]) for i in self.layers},
            device=self.device, chunk=self.chunk, slab=self.slab, seconds=self.seconds + other.seconds,
            scan_fallback={i: self.scan_fallback.get(i, 0) + other.scan_fallback.get(i, 0) for i in self.layers},
            scan_backend=self.scan_backend, partial=self.partial, total_tokens=self.total_tokens + other.total_tokens,
            threads=self.threads,
        )

    def frozen(self, layer: int, t: int) -> Any:
        """The frozen-time LTI system (DiagonalLTI) of ``layer`` at absolute token ``t`` of the input.

        Needs ``t`` inside the window the simulation kept (``simulate(..., window=(start, stop))``).

        Parameters
        ----------
        layer : int
            Layer index with a kept window.
        t : int
            Absolute token index, start ≤ t < stop.

        Returns
        -------
        DiagonalLTI
            Batch dims (batch, *channels), as :meth:`LTVSystem.frozen`.

        Raises
        ------
        SsmctlError
            When no window was kept for ``layer``, or ``t`` is outside it.
        """
        if layer not in self.windows:
            kept = sorted(self.windows) or "none: pass window=(start, stop) to simulate"
            raise SsmctlError(f"no window of traces for layer {layer} (layers with windows: {kept})")
        w = self.windows[layer]
        if not w["start"] <= t < w["stop"]:
            raise SsmctlError(f"token {t} is outside the kept window [{w['start']}, {w['stop']})")
        return w["system"].frozen(t - w["start"])

    @property
    def tokens_per_second(self) -> float:
        """Simulated tokens (over all rows and sequences) per second of wall time; inf when none was measured."""
        return self.total_tokens / self.seconds if self.seconds > 0 else math.inf

    def summary(self) -> dict[str, Any]:
        """Per-layer statistics as a JSON-ready dict (pass it to ``ssmctl.report.dumps``)."""
        rows = []
        for i in self.layers:
            s = self.stats[i]
            rows.append(
                {
                    "index": i,
                    "channels": s.n_channels,
                    "channel_kind": s.extra.get("channel_kind", "channel"),
                    "states_per_channel": s.n_states,
                    "abs_min": s.abs_min,
                    "abs_median": s.abs_quantiles[0.5],
                    "abs_max": s.abs_max,
                    "abs_quantiles": {str(q): v for q, v in s.abs_quantiles.items()},
                    "dt_min": s.rate_min,
                    "dt_median": s.rate_quantiles[0.5],
                    "dt_max": s.rate_max,
                    "dt_quantiles": {str(q): v for q, v in s.rate_quantiles.items()},
                    "memory_horizon_median": s.memory_horizon_quantiles[0.5],
                    "memory_horizon_quantiles": {str(q): v for q, v in s.memory_horizon_quantiles.items()},
                    "memory_horizon_inf_count": s.memory_horizon_inf_count,
                    "memory_horizon_per_token": {
                        "channel_gmean_median_over_tokens": s.parts.memory_gmean.quantile(0.5),
                        "longest_median_over_tokens": s.parts.memory_max.quantile(0.5),
                        "longest_max_over_tokens": s.parts.memory_max.max_finite,
                    },
                    "transition_decay": {
                        "lags": s.lags.tolist(),
                        "sample_stride": s.lag_stride.tolist(),
                        "pairs": s.lag_pairs.tolist(),
                        "norm_mean": s.decay_mean.tolist(),
                        "norm_max_channel": s.decay_max_channel.tolist(),
                        "frozen_norm_mean": s.frozen_mean.tolist(),
                    },
                    "dt_out_of_histogram_range": s.rate_out_of_range,
                    "scan_fallback_columns": self.scan_fallback.get(i, 0),
                    "warnings": [n for n in [marginal_note(s.abs_max, "|Ā_t| max")] if n is not None],
                }
            )
        return {
            "schema": SCHEMA_VERSION,
            "kind": "ltv_simulation",
            "family": self.family,
            "source": self.source,
            "n_tokens": self.n_tokens,
            "batch": self.batch,
            "total_tokens": self.total_tokens,
            "device": self.device,
            "chunk": self.chunk,
            "slab": self.slab,
            "scan_backend": self.scan_backend,
            "threads": self.threads,
            "seconds": self.seconds,
            "tokens_per_s": self.tokens_per_second,
            "eps": self.stats[self.layers[0]].eps if self.layers else None,
            "bin_width_ln": self.stats[self.layers[0]].bin_width if self.layers else None,
            "dt_meaning": RATE_MEANING.get(self.family, ""),
            "units": {
                "memory_horizon": "tokens until |A_bar|^k = eps (frozen time)",
                "transition_decay": "mean over t (and channels) of ||A_bar_t ... A_bar_{t-lag+1}|| (largest entry, "
                "the slowest mode); frozen_norm_mean uses ||A_bar_t||^lag",
                "quantiles": "from histograms with bins of bin_width_ln in ln(dt), ln(-ln|A_bar|) and ln(memory "
                "horizon per token); min/max exact",
                "n_tokens": "tokens of the longest sequence; batch: sequences (rows) over the whole input",
            },
            "partial": self.partial,
            "layers": rows,
        }


    def _plain_repr(self) -> str:
        return (f"SimulationResult({self.family!r}, tokens={self.n_tokens}, batch={self.batch}, "
                f"layers={self.layers})")

    def __repr__(self) -> str:
        return _display.text(self, "simulation", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "simulation", self._plain_repr())

    def to_frame(self) -> Any:
        """One row per simulated layer: the scalar fields of :meth:`summary`'s layer rows.

        Returns
        -------
        pandas.DataFrame
            Index ``layer``; columns ``channels``, ``states_per_channel``, ``abs_min``, ``abs_median``,
            ``abs_max``, ``dt_min``, ``dt_median``, ``dt_max``, ``memory_horizon_median``,
            ``memory_horizon_inf_count``, ``scan_fallback_columns``.

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "simulation")


_SIM_ROWS = [("index", "layer"), ("channels", "channels"), ("states_per_channel", "states"),
             ("abs_min", "min|Ā_t|"), ("abs_median", "median|Ā_t|"), ("abs_max", "max|Ā_t|"),
             ("dt_median", "median Δ_t"), ("memory_horizon_median", "memory median (tokens)")]


def _describe_simulation(res: SimulationResult, full: bool) -> _display.Summary:
    rows = res.summary()["layers"]
    facts = [("run", f"{res.family} from {res.source}: {res.n_tokens} tokens × batch {res.batch} on {res.device}, "
                     f"{res.seconds:.3g} s ({res.tokens_per_second:,.0f} tok/s, scan {res.scan_backend})"),
             ("layers", f"{res.layers}" + (f" (windows kept: {sorted(res.windows)})" if res.windows else ""))]
    if rows:
        worst = max(rows, key=lambda r: r["abs_max"])
        facts.append(("max|Ā_t|", f"{format_modulus(worst['abs_max'], 6)}, margin 1 − |Ā_t| "
                                  f"{_display.fmt_margin(1.0 - worst['abs_max'])} (layer {worst['index']})"))
    if res.partial:
        facts.append(("partial", res.partial))
    facts.append(("details", "res.stats[i] (LayerStats), res.summary(), res.to_frame()"))
    scalar = [k for k, _ in _SIM_ROWS if k != "index"] + ["dt_min", "dt_max", "memory_horizon_inf_count",
                                                          "scan_fallback_columns"]
    columns = {k: np.asarray([r[k] for r in rows]) for k in scalar}
    return _display.Summary("SimulationResult", facts, rows=rows if full else None, row_columns=_SIM_ROWS,
                            columns=columns, index=(["layer"], [np.asarray([r["index"] for r in rows])]))


_display.register("simulation", _describe_simulation)


def _nanmedian(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(np.median(x)) if x.size else math.nan


def _finite_max(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(x.max()) if x.size else math.nan


# --- inputs ------------------------------------------------------------------------------------------------
def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except ValueError:  # ragged nested lists
        arr = np.asarray(None)
    if arr.dtype.kind not in "biufc":
        raise SsmctlError(
            f"inputs must be a numeric array: token ids (integers) or embeddings (floats), got {arr.dtype}"
        )
    if arr.dtype.kind in "iu" and arr.dtype not in (np.int32, np.int64):
        arr = arr.astype(np.int64)  # torch has no tensors of every numpy integer type
    return torch.from_numpy(np.ascontiguousarray(arr))


def _embedding_scale(model: Model) -> float:
    """``model.extras['embedding_scale']`` (ssmctl.load records RecurrentGemma's √d_model there), else 1."""
    return float(model.extras.get("embedding_scale", 1.0))


class _Inputs:
    """Token ids looked up chunk by chunk, or embeddings / signals sliced chunk by chunk."""

    def __init__(self, model: Model, inputs: Any, d_model: int) -> None:
        x = _as_tensor(inputs)
        if x.dtype == torch.bool or x.is_complex():
            raise SsmctlError(f"inputs must be integer token ids or real embeddings, got dtype {x.dtype}")
        if x.numel() == 0:
            raise ShapeError(f"empty input (shape {tuple(x.shape)}): need at least one token")
        self.embedding = None
        self.scale = 1.0
        if not x.is_floating_point():
            if x.ndim == 1:
                x = x[None]
            if x.ndim != 2:
                raise ShapeError(f"token ids must have shape (L,) or (batch, L), got {tuple(x.shape)}")
            emb = model.extras.get("embedding")
            if emb is None:
                raise SsmctlError(
                    f"this {model.family} model (source {model.source!r}) has no embedding matrix, so token ids "
                    f"cannot be used: pass embeddings / a signal of shape (batch, L, d_model={d_model}) instead"
                )
            emb = _as_tensor(emb).float()
            if emb.ndim != 2 or emb.shape[1] != d_model:
                raise ShapeError(f"model.extras['embedding'] must be (vocab, d_model={d_model}), got {tuple(emb.shape)}")
            vocab = emb.shape[0]
            bad = (x < 0) | (x >= vocab)
            if bool(bad.any()):
                pos = bad.nonzero()[0].tolist()
                raise SsmctlError(
                    f"token id {int(x[tuple(pos)])} at (batch {pos[0]}, position {pos[1]}) is outside the vocabulary "
                    f"[0, {vocab}); {int(bad.sum())} id(s) out of range"
                )
            self.ids = x.long()
            self.embedding = emb
            self.scale = _embedding_scale(model)
            self.batch, self.length = x.shape
        else:
            if x.ndim == 2:
                x = x[None]
            if x.ndim != 3 or x.shape[-1] != d_model:
                raise ShapeError(
                    f"embeddings / signals must have shape (batch, L, d_model={d_model}) or (L, d_model), "
                    f"got {tuple(x.shape)}"
                )
            if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
                raise SsmctlError(f"unsupported float dtype {x.dtype}")
            self.values = x
            self.batch, self.length = x.shape[:2]

    def nonfinite(self, b: int, t: int) -> str:
        """Why the layer input at token ``t`` of batch ``b`` is not finite: an embedding row, or the input itself."""
        if self.embedding is None:
            return f"the input has NaN/Inf at token {t} (batch {b})"
        row = int(self.ids[b, t])
        if bool(torch.isfinite(self.embedding[row]).all()):  # a finite row times the scale overflowed
            return f"embedding row {row} (token {t}, batch {b}) times the embedding scale {self.scale:g} overflows"
        bad = int((~torch.isfinite(self.embedding[row])).sum())
        return (f"embedding row {row} (the id of token {t}, batch {b}) has {bad} NaN/Inf entries: the model's "
                f"embedding matrix is not finite there; the token ids are valid")

    def to(self, device: torch.device) -> "_Inputs":
        if self.embedding is not None:
            # the ids too (8 bytes a token): a copy from the host per chunk would wait for the device each time
            self.embedding, self.ids = self.embedding.to(device), self.ids.to(device)
        return self

    def chunk(self, t0: int, t1: int, device: torch.device) -> torch.Tensor:
        if self.embedding is not None:
            u = self.embedding[self.ids[:, t0:t1]]
            return u * self.scale if self.scale != 1.0 else u
        return self.values[:, t0:t1].to(device, torch.float32)


def _first_bad_token(x: torch.Tensor) -> tuple[int, int]:
    bad = ~torch.isfinite(x).reshape(x.shape[0], x.shape[1], -1).all(-1)  # (batch, T)
    b, t = bad.nonzero()[0].tolist()
    return b, t


# --- driver ------------------------------------------------------------------------------------------------
def simulate(
    model: Model,
    inputs: Any,
    *,
    layers: Sequence[int] | None = None,
    chunk: int | str = "auto",
    block: int = 8,
    slab: int | str | None = "auto",
    device: Any = "auto",
    scan: str = "auto",
    lags: Sequence[int] | None = None,
    lag_samples: int = 16,
    window: tuple[int, int] | None = None,
    eps: float = 1e-2,
    keep_output: bool = False,
    progress: bool | None = None,
    heatmap_bins: int = 512,
    parallel: bool | None = None,
    threads: int | str | None = "auto",
) -> SimulationResult:
    """Simulate an input-dependent model over ``inputs`` and collect per-layer eigenvalue statistics.

    Parameters
    ----------
    model : Model
        Mamba, Mamba-2 or RG-LRU layers (``ssmctl.init`` or a loaded checkpoint). Each layer is the family's
        residual block; layers run back to back.
    inputs : array, list of arrays, or iterable of arrays
        One array: int token ids (L,) or (batch, L), or float embeddings / signals (L, d_model) or
        (batch, L, d_model) at the first layer's input; token ids need ``model.extras['embedding']``, (vocab,
        d_model), which ``model.extras['embedding_scale']`` multiplies (√d_model for RecurrentGemma). A corpus:
        a list or any iterable of such arrays, of any lengths; each starts from a zero state and the statistics
        cover all of them (:mod:`ssmctl.engine.corpus`). Text: tokenize it first (``ssmctl.tokenize``).
    layers : sequence of int, optional
        Layers to collect statistics for (default all); layers after the last one asked for are not run.
    chunk : int or "auto"
        Tokens per chunk (results do not depend on it). "auto": 512 on CPU, ~64M scan elements on a GPU.
    block : int
        Tokens per block of the cumulative-sum scan.
    slab : int, None or "auto"
        Tokens the scan processes at once inside a chunk (CPU: cache-sized slabs; None: the whole chunk).
    device : "auto", "cpu" or "cuda"
    scan : "auto", "native", "triton", "tensor" or "ssd"
        Which selective scan runs: "native" is the compiled sequential CPU kernel (:mod:`ssmctl.engine.native`),
        "triton" the fused GPU kernel (:mod:`ssmctl.engine.triton_scan`), "tensor" the chunked cumulative-sum
        form (any device), "ssd" Mamba-2's matrix form (:mod:`ssmctl.engine.ssd`, any device, Mamba-2 models
        only); "auto" takes SSD for Mamba-2 on a GPU, triton for the others on a GPU, native on the CPU, when
        they are available. All compute the same recurrence.
    lags : sequence of int, optional
        Lags of the transition-product decay (default: powers of two below L).
    lag_samples : int
        Lags up to this average over every token; longer lags sample input positions every lag // lag_samples.
    window : (start, stop), optional
        Keep full per-token traces (Ā_t, B̄_t, C_t, Δ_t, h_t, outputs) of these tokens for every simulated layer.
    eps : float
        Memory-horizon threshold.
    keep_output : bool
        Keep the last simulated layer's whole output sequence (memory L·d_model).
    progress : bool, optional
        Progress bar over the whole input's tokens (:mod:`ssmctl.analysis.progress`; default: in terminals and
        Jupyter, once the run takes more than a second); none on ranks > 0, nor for an iterable of unknown size.
    heatmap_bins : int
        Token bins of the |Ā_t| heatmap, at most (bins are a power of two of tokens wide).
    parallel : bool, optional
        Data-parallel over the corpus with torch.distributed (default: when torchrun launched this process,
        ``WORLD_SIZE`` > 1): each rank runs its share (:meth:`Corpus.shard`), and every rank returns the merged
        result; CUDA runs on ``cuda:LOCAL_RANK`` with NCCL, the CPU with gloo.
    threads : int, "auto" or None
        torch CPU threads during the call (restored afterwards). "auto": :func:`default_threads` of each
        sequence's work, never more than torch's current setting; None: torch's current setting.

    Returns
    -------
    SimulationResult
        For a corpus, the merge of its sequences' results (:meth:`SimulationResult.merge`): per-token traces
        and the heatmap by position.

    Raises
    ------
    SsmctlError
        Bad inputs (token ids outside the vocabulary, empty input, wrong dtype or shape, token ids for a model
        without embedding), CUDA asked for but absent, unsupported layers.
    NonFiniteError
        NaN/Inf in the input or appearing in a layer's output: the message names the layer and the token.
    """
    if not isinstance(model, Model) or not model.layers:
        raise SsmctlError("simulate needs a Model with at least one layer (ssmctl.init(...) or a loaded checkpoint)")
    dev = resolve_device(device)
    if scan not in SCAN_BACKENDS:  # before any work, not at the first chunk's scan
        raise SsmctlError(f"unknown scan {scan!r}; known: {', '.join(map(repr, SCAN_BACKENDS))}")
    if scan == "native" and (dev.type != "cpu" or not native_available()):
        raise SsmctlError(f"{option('scan', 'native')} runs on the CPU only and needs the compiled kernel (device "
                          f"{dev}; {native_status()}); use {option('scan', 'auto')} or {option('scan', 'tensor')}")
    if scan == "triton" and not triton_available(dev):
        raise SsmctlError(f"{option('scan', 'triton')} runs on a CUDA device with triton installed (device {dev}; "
                          f"{triton_status()}); use {option('scan', 'auto')} or {option('scan', 'tensor')}")
    n_layers = len(model.layers)
    if layers is None:
        chosen = list(range(n_layers))
    else:
        chosen = sorted({int(i) + (n_layers if int(i) < 0 else 0) for i in layers})
        if not chosen or chosen[0] < 0 or chosen[-1] >= n_layers:
            raise SsmctlError(f"{option('layers')} {list(layers)} outside the model's {n_layers} layers (0..{n_layers - 1})")
    for layer in model.layers[: chosen[-1] + 1]:
        if layer.family not in RUNNERS:
            raise UnsupportedSystemError(
                f"layer {layer.index} is {layer.family!r}; simulation supports the input-dependent families "
                f"{', '.join(RUNNERS)}"
            )
        if scan == "ssd" and layer.family != "mamba2":
            raise SsmctlError(f"{option('scan', 'ssd')} is Mamba-2's matrix form (one decay per head); layer "
                              f"{layer.index} is {layer.family!r}: use {option('scan', 'auto')}, "
                              f"{option('scan', 'native')} or {option('scan', 'tensor')}")
    d_model = int(model.layers[0].config["d_model"])
    corpus = Corpus.of(inputs)
    if (window is not None or keep_output) and not corpus.single:
        raise SsmctlError("window= and keep_output= need one input array (a sequence or a batch), not a corpus "
                          "of sequences")
    if window is not None:
        w0, w1 = (int(v) for v in window)
        window = (w0, w1)
    if chunk != "auto" and int(chunk) < 1:
        raise SsmctlError(f"{option('chunk')} must be a positive integer, got {chunk}")
    if block < 1:
        raise SsmctlError(f"block must be a positive integer, got {block}")
    if threads not in ("auto", None) and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise SsmctlError(f"threads must be a positive integer, 'auto' or None, got {threads!r}")
    ctx = distributed.context(dev) if (distributed.launched() if parallel is None else parallel) else None
    if ctx is not None:
        dev = ctx.device
        if window is not None or keep_output:
            raise SsmctlError("window= and keep_output= are not gathered across torch.distributed ranks: run them "
                              "in one process (parallel=False)")
    mine = corpus.shard(ctx.rank, ctx.world) if ctx else iter(corpus.units)
    quiet = ctx is not None and ctx.rank != 0
    bar = Progress(corpus.total_tokens or 0, "simulate", unit="tok",
                   enabled=False if quiet or not corpus.total_tokens else progress)
    unit = _Unit(model, chosen, dev, scan, chunk, block, slab, lags, lag_samples, eps, heatmap_bins, window,
                 keep_output, bar)
    result = None
    start = time.perf_counter()
    torch_threads = torch.get_num_threads()
    try:
        for k, item in enumerate(mine):
            try:
                src = _Inputs(model, item, d_model).to(dev)
            except SsmctlError as exc:
                if corpus.single:
                    raise
                which = f"sequence {k}" if ctx is None else f"sequence {k} of rank {ctx.rank}'s share"
                raise type(exc)(f"{which} of the corpus: {exc}") from None
            if threads is not None and dev.type == "cpu":
                per_token = max(_states_per_token(layer, dev, scan) for layer in model.layers[: chosen[-1] + 1]) \
                    * src.batch
                n = default_threads(dev, per_token, torch_threads) if threads == "auto" else threads
                if n != torch.get_num_threads():
                    torch.set_num_threads(n)
            part = unit.run(src)
            result = part if result is None else result.merge(part)
    finally:
        bar.close()
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
    if ctx is not None:  # every rank merges the ranks' results in rank order: the same answer everywhere
        parts = [r for r in distributed.gather(result) if r is not None]
        result = parts[0] if parts else None
        for r in parts[1:]:
            result = result.merge(r)
    if result is None:
        raise SsmctlError("empty corpus: the iterable of sequences yielded nothing")
    if not corpus.single or ctx is not None:  # the whole call: statistics and merges of every sequence, all ranks
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        result.seconds = time.perf_counter() - start
    return result


class _Unit:
    """Runs one unit (one array: its rows from a zero state) with the settings of one :func:`simulate` call."""

    def __init__(self, model: Model, chosen: list[int], dev: torch.device, scan: str, chunk: int | str, block: int,
                 slab: Any, lags: Sequence[int] | None, lag_samples: int, eps: float, heatmap_bins: int,
                 window: tuple[int, int] | None, keep_output: bool, bar: Progress) -> None:
        self.model, self.chosen, self.dev, self.scan = model, chosen, dev, scan
        self.chunk, self.block, self.slab, self.lags, self.lag_samples = chunk, block, slab, lags, lag_samples
        self.eps, self.heatmap_bins, self.window, self.keep_output, self.bar = eps, heatmap_bins, window, \
            keep_output, bar
        self._runners: dict[Any, list] = {}

    def _stats(self, runners: list, L: int, batch: int) -> dict[int, LTVStats]:
        return {i: LTVStats(runners[i].a, L, batch=batch, lags=self.lags, lag_samples=self.lag_samples, eps=self.eps,
                            heatmap_bins=self.heatmap_bins, device=self.dev) for i in self.chosen}

    def run(self, src: "_Inputs") -> SimulationResult:
        model, chosen, dev, window = self.model, self.chosen, self.dev, self.window
        L, batch = src.length, src.batch
        if window is not None and not 0 <= window[0] < window[1] <= L:
            raise ShapeError(f"window {tuple(window)} must satisfy 0 <= start < stop <= L = {L}")
        per_token = max(_states_per_token(layer, dev, self.scan) for layer in model.layers[: chosen[-1] + 1]) * batch
        slab = default_slab(dev, per_token) if self.slab == "auto" else self.slab
        if slab not in self._runners:  # runners depend on the slab only: reused by units of one size
            self._runners[slab] = [runner_for(layer, dev, slab, self.scan) for layer in model.layers[: chosen[-1] + 1]]
        runners = self._runners[slab]
        chunk = default_chunk(dev, per_token) if self.chunk == "auto" else int(self.chunk)
        stats = self._stats(runners, L, batch)
        start = time.perf_counter()
        # On the CPU every chunk is checked as it comes (checks are free there). On a GPU a check waits for the
        # device, so the checks accumulate on it and are read once at the end; only when one failed does the run
        # repeat with the checks made chunk by chunk, which raise the precise error.
        run = _Run(src, runners, stats, window, chunk, self.block, self.keep_output, eager=_checks_each_chunk(dev))
        run.go(self.bar)
        if not run.eager and run.failed():
            _Run(src, runners, self._stats(runners, L, batch), window, chunk, self.block, self.keep_output,
                 eager=True).go(None)
            raise NonFiniteError("NaN/Inf appeared on the device, but a run with checks after every chunk did not "
                                 "find it again")
        outputs, windows, fallback = run.outputs, run.windows, run.fallback
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - start
        return SimulationResult(
            family=model.family,
            source=str(model.source),
            n_tokens=L,
            batch=batch,
            layers=chosen,
            stats={i: _finished(s, runners[i].family) for i, s in stats.items()},
            windows={i: _finish(w, window) for i, w in windows.items()} if window else {},
            output=torch.cat(outputs, dim=1) if self.keep_output else None,
            device=str(dev),
            chunk=chunk,
            slab=slab,
            seconds=seconds,
            scan_fallback=fallback,
            scan_backend=runners[0].used_backend,
            partial=partial_note(model),
            total_tokens=L * batch,
            threads=torch.get_num_threads() if dev.type == "cpu" else None,
        )


def _checks_each_chunk(dev: torch.device) -> bool:
    """Check every chunk as it comes (the CPU), or defer the checks to the end of the loop (a GPU)."""
    return dev.type == "cpu"


class _Run:
    """One pass of the chunk loop: every chunk through every layer, the rates into the statistics.

    ``eager``: check each chunk's input and each layer's output for NaN/Inf as they come (and the statistics
    their rates), raising the precise error at once. Otherwise the checks stay on the device (no host round trip
    inside the loop, beyond the copies a kept window or ``keep_output`` ask for): :meth:`failed`, called once
    after the loop, says whether any failed.
    """

    def __init__(self, src: _Inputs, runners: list, stats: dict[int, LTVStats], window, chunk: int, block: int,
                 keep_output: bool, eager: bool) -> None:
        self.src, self.runners, self.stats, self.window = src, runners, stats, window
        self.chunk, self.block, self.keep_output, self.eager = chunk, block, keep_output, eager
        for st in stats.values():
            st.defer_checks = not eager
        self.windows: dict[int, dict[str, list]] = {i: {} for i in range(len(runners))} if window else {}
        self.fallback = {i: 0 for i in stats}
        self.outputs: list[torch.Tensor] = []
        # on the device: some chunk's input or some layer's output was not finite (deferred checks only)
        self.bad = torch.zeros((), dtype=torch.bool, device=runners[0].device)

    def go(self, bar: Progress | None) -> None:
        src, runners, stats, window = self.src, self.runners, self.stats, self.window
        L = src.length
        dev = runners[0].device
        states = [r.init_state(src.batch) for r in runners]
        with torch.no_grad():
            for t0 in range(0, L, self.chunk):
                t1 = min(L, t0 + self.chunk)
                u = src.chunk(t0, t1, dev)
                if self.eager and not bool(torch.isfinite(u).all()):
                    b, t = _first_bad_token(u)
                    raise NonFiniteError(src.nonfinite(b, t0 + t))
                finite = [torch.isfinite(u).all()] if not self.eager else []
                for i, runner in enumerate(runners):
                    before = {k: v.clone() for k, v in states[i].items()} if self.eager else None
                    res = runner.forward(u, states[i], t0, block=self.block, window=window)
                    if not self.eager:
                        finite.append(torch.isfinite(res.out).all())
                    elif not bool(torch.isfinite(res.out).all()):
                        # Inside a block the triangular product spreads a NaN to earlier tokens (0·NaN); one-token
                        # blocks only carry it forward, so rerun the chunk that way to find where it starts.
                        exact = runner.forward(u, before, t0, block=1)
                        b, t = _first_bad_token(exact.out)
                        raise NonFiniteError(
                            f"NaN/Inf first appears in layer {i} ({runner.family}) at token {t0 + t} (batch {b}); "
                            f"the layer input was finite there"
                        )
                    if i in stats:
                        stats[i].update(res.rate)
                        self.fallback[i] += res.n_fallback
                    if res.window is not None:
                        _collect(self.windows[i], res.window)
                    u = res.out
                if finite:
                    self.bad |= ~torch.stack(finite).all()
                if self.keep_output:
                    self.outputs.append(u.cpu())
                if bar is not None:
                    bar.update((t1 - t0) * src.batch)

    def failed(self) -> bool:
        """Whether a deferred check failed (one host round trip for all of them)."""
        flags = [self.bad] + [st.deferred_failure() for st in self.stats.values()]
        return bool(torch.stack(flags).any())


def _finished(acc: LTVStats, family: str) -> LayerStats:
    """The layer's statistics, saying what its channels are: Mamba-2 keeps one per head (its heads' P channels
    share one decay, so per-channel numbers would repeat each head's P times)."""
    res = acc.result()
    res.extra["channel_kind"] = "head" if family == "mamba2" else "channel"
    return res


def _states_per_token(layer, device: torch.device, scan: str) -> int:
    """Scan elements per token of one sequence, which size the chunks (the SSD form holds far fewer; the fused
    Triton kernel none but its inputs and outputs: twice the channels, for the activations around it)."""
    c = layer.config
    if layer.family == "mamba2":
        H, P = int(c["nheads"]), int(c["headdim"])
        if scan == "ssd" or scan == "auto" and ssd_preferred(device, 1, P):
            return ssd_elements_per_token(H, P, int(c["d_state"]), int(c["ngroups"]), ssd_default_chunk(device))
    channels = int(c["d_inner"]) if layer.family in ("mamba", "mamba2") else int(c.get("lru_width", c.get("d_model", 1)))
    if device.type == "cuda" and scan in ("auto", "triton") and triton_available(device):
        return 2 * channels
    return channels * (int(c["d_state"]) if layer.family in ("mamba", "mamba2") else 1)


def _collect(acc: dict[str, list], piece: dict[str, Any]) -> None:
    if "h_before" not in acc:
        acc["h_before"] = piece["h_before"].cpu()
    for key in ("states", "ssm_output", "layer_output"):
        acc.setdefault(key, []).append(piece[key].cpu())
    acc.setdefault("systems", []).append(piece["system"])


def _finish(acc: dict[str, list], window: tuple[int, int]) -> dict[str, Any]:
    from ..systems.ltv import LTVSystem

    systems = acc.pop("systems")
    first = systems[0]

    def cat(name: str) -> torch.Tensor:
        # Materialize expanded views before concatenating along tokens.
        return torch.cat([getattr(s, name).cpu().contiguous() for s in systems], dim=1)

    system = LTVSystem(
        lam=cat("lam"), B=cat("B"), C=cat("C"), D=first.D.cpu(), dt=cat("dt"), output=first.output,
        inputs=cat("inputs"), meta={**first.meta, "window": window},
    )
    out = {key: torch.cat(val, dim=1) for key, val in acc.items() if key != "h_before"}
    out.update(system=system, h_before=acc["h_before"], start=window[0], stop=window[1])
    return out
