"""Report formatting shared by the CLI: strict JSON and plain-text tables.

JSON is strict (docs/design.md): no NaN/Infinity literals. Non-finite floats become ``null``; callers state how many
with explicit count fields (e.g. ``memory_horizon_inf_count``).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

__all__ = ["SCHEMA_VERSION", "to_jsonable", "dumps", "format_table", "fmt", "format_modulus"]

SCHEMA_VERSION = 1


def to_jsonable(obj: Any) -> Any:
    """numpy scalars/arrays → Python; NaN/±Inf → None; complex → {"re", "im"}.

    Parameters
    ----------
    obj : object
        Nested dicts, lists, tuples, numpy arrays and scalars, Python numbers; other objects pass unchanged.

    Returns
    -------
    object
        The same structure with dict keys as str, tuples and arrays as lists, numpy scalars as Python
        scalars, non-finite floats as None and complex numbers as ``{"re": float, "im": float}``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (complex, np.complexfloating)):
        return {"re": to_jsonable(float(obj.real)), "im": to_jsonable(float(obj.imag))}
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text (raises if a non-finite number slipped through).

    Parameters
    ----------
    obj : object
        A report; converted with :func:`to_jsonable` first.

    Returns
    -------
    str
        JSON indented by 2 spaces, without NaN or Infinity literals.

    Raises
    ------
    TypeError
        An object JSON cannot encode (e.g. an arbitrary class instance).
    """
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def fmt(value: Any, digits: int = 4) -> str:
    """Compact human formatting: 4 significant digits, 'inf', '-' for missing.

    Parameters
    ----------
    value : object
        None → "-", bools → "yes"/"no", integers as they are, floats with ``digits`` significant digits
        ("nan", "inf", "-inf" for non-finite ones), anything else through ``str``.
    digits : int, default 4
        Significant digits of floats.

    Returns
    -------
    str
    """
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A fixed-width text table of ``rows`` (dicts) over ``columns``.

    Parameters
    ----------
    rows : sequence of dict
        One dict per row; a missing column shows as "-".
    columns : sequence of str
        The keys to show, in order.
    headers : sequence of str, optional
        Column titles (default the keys).

    Returns
    -------
    str
        A header line, a dashed rule and one line per row, every cell formatted with :func:`fmt` and
        right-aligned, columns separated by two spaces; no trailing newline.
    """
    headers = list(headers or columns)
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def format_modulus(r: float, digits: int = 4) -> str:
    """|λ| as text that never rounds a near-marginal modulus into 1: ``"1 − 7e-09"`` for 0.999999993.

    Parameters
    ----------
    r : float
        A modulus (or spectral radius).
    digits : int, default 4
        Significant digits (of r, or of 1 − r when r rounds to 1 at that precision).

    Returns
    -------
    str
        ``f"{r:.{digits}g}"`` when that text differs from "1" or r is exactly 1; else ``"1 − d"`` (r < 1)
        or ``"1 + d"`` (r > 1) with d = |1 − r|.
    """
    r = float(r)
    text = f"{r:.{digits}g}"
    if text != "1" or r == 1.0:
        return text
    d = abs(1.0 - r)
    return f"1 {'−' if r < 1.0 else '+'} {d:.{min(digits, 2)}g}"
