"""Shared helpers for ssmctl's benchmarks: timing, guarded calls, strict JSON, text and markdown tables.

Nothing here imports numpy at module level, so a benchmark can set thread limits (:func:`limit_to_one_core`)
before numpy loads its BLAS.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "THREAD_ENV_VARS",
    "CallResult",
    "limit_to_one_core",
    "timed_call",
    "fmt_seconds",
    "fmt_ratio",
    "fmt_number",
    "strict_json",
    "write_json",
    "machine_info",
    "text_table",
    "markdown_table",
    "extrapolate_seconds",
]

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS")


def limit_to_one_core() -> str:
    """Restrict this process to one thread on one core; returns a description of what took effect.

    The BLAS thread variables only act if set before numpy is first imported, so call this first thing.
    Pinning the process to one CPU (``sched_setaffinity``) acts even after numpy has loaded, so the
    measurement stays single-core either way.
    """
    numpy_loaded = "numpy" in sys.modules
    for var in THREAD_ENV_VARS:
        os.environ[var] = "1"
    parts = [f"{'/'.join(THREAD_ENV_VARS[:3])}=1" + (" (numpy already loaded: BLAS threads not limited)"
                                                      if numpy_loaded else "")]
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        parts.append(f"pinned to CPU {cpu}")
    try:  # threadpoolctl, where installed, limits an already-loaded BLAS too
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
        parts.append("threadpoolctl limit 1")
    except ImportError:
        pass
    return "; ".join(parts)


@dataclass
class CallResult:
    """Outcome of one guarded, timed call.

    ``seconds`` is the best of ``repeats`` calls; ``error`` holds ``"Type: message"`` when the call raised
    (then ``value`` is None and ``seconds`` the time until the exception); ``warnings`` the distinct warning
    messages the call emitted.
    """

    value: Any = None
    seconds: float | None = None
    repeats: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_text(exc: BaseException, limit: int = 300) -> str:
    msg = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def timed_call(fn: Callable[[], Any], *, target: float = 0.2, max_repeats: int = 200) -> CallResult:
    """Call ``fn`` and time it without letting an exception escape.

    A call that takes at least ``target`` seconds is timed once. Faster calls are repeated until the
    repeats add up to about ``target`` seconds (at most ``max_repeats``) and the best time is kept: the
    minimum is the least noisy estimate on a shared machine.
    """
    result = CallResult()
    seen: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            result.value = fn()
            best = time.perf_counter() - t0
            repeats = 1
            if 0 < best < target:
                extra = min(max_repeats - 1, math.ceil(target / best) - 1)
                for _ in range(extra):
                    t0 = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - t0)
                    repeats += 1
            result.seconds, result.repeats = best, repeats
        except Exception as exc:  # a benchmark row records the failure instead of crashing the run
            result.value, result.error = None, _error_text(exc)
            # Time until the failure: a baseline that fails after minutes is worth knowing about.
            result.seconds, result.repeats = time.perf_counter() - t0, 1
        for w in caught:
            text = f"{w.category.__name__}: {' '.join(str(w.message).split())}"
            if text not in seen:
                seen.append(text)
    result.warnings = seen[:5]
    return result


def fmt_seconds(t: float | None) -> str:
    """Human-readable duration: 12.3 µs, 4.56 ms, 7.89 s, or '—'."""
    if t is None:
        return "—"
    # Thresholds sit where 3 significant digits would round up into the next unit (999.96 ms -> 1 s).
    if t < 0.9995e-3:
        return f"{t * 1e6:.3g} µs"
    if t < 0.9995:
        return f"{t * 1e3:.3g} ms"
    return f"{t:.3g} s" if t < 999.5 else f"{t:,.0f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:,.0f}×" if r >= 99.95 else f"{r:.3g}×"


def fmt_number(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def strict_json(obj: Any, path: str = "$", nonfinite: list[dict[str, str]] | None = None) -> Any:
    """Convert to plain JSON types; NaN/±Infinity become null and are listed in ``nonfinite``.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, dataclasses dicts.
    Each replaced value is recorded as ``{"path": ..., "value": "inf" | "-inf" | "nan"}`` so the reader
    knows what the null stood for (JSON has no literal for them).
    """
    if nonfinite is None:
        nonfinite = []
    if hasattr(obj, "__dataclass_fields__"):
        obj = {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    if hasattr(obj, "_asdict"):
        obj = obj._asdict()
    if isinstance(obj, dict):
        return {str(k): strict_json(v, f"{path}.{k}", nonfinite) for k, v in obj.items()}
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [strict_json(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(obj)]
    if isinstance(obj, complex):
        return {"re": strict_json(obj.real, f"{path}.re", nonfinite),
                "im": strict_json(obj.imag, f"{path}.im", nonfinite)}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        nonfinite.append({"path": path, "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")})
        return None
    return str(obj)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as strict JSON (no NaN/Infinity literals); non-finite values are listed under
    ``nonfinite_values``."""
    nonfinite: list[dict[str, str]] = []
    clean = strict_json(payload, "$", nonfinite)
    clean["nonfinite_values"] = nonfinite
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean, indent=1, allow_nan=False) + "\n")
    return path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Iterable[str] = ("numpy", "scipy", "control", "slycot")) -> dict[str, Any]:
    """CPU count and affinity, platform, Python and package versions, thread variables, UTC date."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in packages},
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV_VARS[:3]},
    }


def _cells(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[list[str]]:
    return [[str(r.get(key, "")) for key, _ in columns] for r in rows]


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Fixed-width table; ``columns`` are (key, header) pairs and rows hold preformatted strings."""
    cells = _cells(rows, columns)
    heads = [h for _, h in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(c) for c in cells])


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """GitHub markdown table of the same cells (pipes in cells escaped)."""
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    heads = [h for _, h in columns]
    out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    out += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in _cells(rows, columns)]
    return "\n".join(out)


def extrapolate_seconds(measured: dict[int, float], n: int, exponent: float, *, size: str = "N",
                        clip: tuple[float, float] = (1.0, 3.5)) -> tuple[float, str] | None:
    """Expected time of a baseline at size ``n`` from its times at smaller sizes (the benchmarks' skip rule).

    With two measured smaller sizes the cost exponent is fitted on the two largest (clipped to ``clip``);
    with one, ``exponent`` (the algorithm's) is used. Returns (seconds, how it was obtained), or None when no
    smaller size was measured.
    """
    pts = sorted((k, t) for k, t in measured.items() if k < n and t and t > 0)
    if not pts:
        return None
    n0, t0 = pts[-1]
    how, alpha = "algorithm's exponent", exponent
    if len(pts) >= 2:
        n1, t1 = pts[-2]
        alpha = min(max(math.log(t0 / t1) / math.log(n0 / n1), clip[0]), clip[1])
        how = f"exponent fitted on {size}={n1},{n0}"
    return t0 * (n / n0) ** alpha, f"extrapolated from {size}={n0} ({fmt_seconds(t0)}) as {size}^{alpha:.2f} ({how})"
