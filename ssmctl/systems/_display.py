"""Rich display shared by systems, layers, models and simulation results: text repr, HTML, SVG, DataFrames.

This module only renders. The numbers come from the analysis layer (:mod:`ssmctl.analysis.summary`), which
registers one *describer* per kind of object here on import; the systems and models layers, below analysis,
call :func:`text` / :func:`html` / :func:`frame` with their kind and never compute a number themselves. Without
a registered describer (the analysis layer not imported) an object shows its plain one-line repr.
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SsmctlError
from ..report import fmt

__all__ = ["Summary", "register", "text", "html", "frame", "to_frame", "eigenvalue_svg", "histogram_svg",
           "fmt_margin"]


@dataclass
class Summary:
    """What the display of one object shows.

    Attributes
    ----------
    title : str
        One line naming the object.
    facts : list of (str, str)
        Label → formatted value, in display order.
    eigenvalues : ndarray, complex, optional
        Points of the eigenvalue picture.
    picture : str, optional
        Another inline SVG instead (e.g. a histogram of |Ā_t|).
    rows : list of dict, optional
        A second table (one row per layer of a model or simulation), with ``row_columns`` (key, header).
    columns : dict of str → ndarray, optional
        Per-channel (or per-layer) columns of ``to_frame()``, all of one length.
    index : (list of str, list of ndarray), optional
        Index level names and values of ``to_frame()``'s rows.
    """

    title: str
    facts: list[tuple[str, str]]
    eigenvalues: np.ndarray | None = None
    picture: str | None = None
    rows: list[dict[str, Any]] | None = None
    row_columns: list[tuple[str, str]] = field(default_factory=list)
    columns: dict[str, np.ndarray] | None = None
    index: tuple[list[str], list[np.ndarray]] | None = None


_DESCRIBERS: dict[str, Callable[[Any, bool], Summary]] = {}


def register(kind: str, describe: Callable[[Any, bool], Summary]) -> None:
    """Install the describer of one kind of object (``"lti"``, ``"ltv"``, ``"layer"``, ``"model"``, ...).

    Parameters
    ----------
    kind : str
    describe : callable (obj, full) → Summary
        ``full=False`` for the text repr (cheap numbers only), ``True`` for HTML and ``to_frame()``.
    """
    _DESCRIBERS[kind] = describe


def _describe(obj: Any, kind: str, full: bool) -> Summary | None:
    describe = _DESCRIBERS.get(kind)
    return None if describe is None else describe(obj, full)


def text(obj: Any, kind: str, first_line: str) -> str:
    """A few lines: ``first_line`` (the object's plain repr) and the facts of its summary, indented.

    Parameters
    ----------
    obj : object
    kind : str
        Its describer's kind.
    first_line : str

    Returns
    -------
    str
        Never an array dump; ``first_line`` alone when no describer is registered or it fails.
    """
    try:
        s = _describe(obj, kind, False)
    except Exception as exc:  # a repr must never raise: say why the numbers are missing
        return f"{first_line}\n  (no summary: {type(exc).__name__}: {exc})"
    if s is None:
        return first_line
    width = max((len(k) for k, _ in s.facts), default=0)
    return "\n".join([first_line] + [f"  {k.ljust(width)}  {v}" for k, v in s.facts])


_CSS_TABLE = "border-collapse:collapse;font-size:12px"
_CSS_CELL = "padding:1px 8px;text-align:left;border-bottom:1px solid #ddd"


def _table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    e = _html.escape
    out = [f'<table style="{_CSS_TABLE}">']
    if headers:
        out.append("<tr>" + "".join(f'<th style="{_CSS_CELL}">{e(h)}</th>' for h in headers) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{_CSS_CELL}">{e(str(c))}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def html(obj: Any, kind: str, first_line: str) -> str:
    """The ``_repr_html_`` of an object: title, facts table, eigenvalue picture, per-layer table.

    Parameters
    ----------
    obj : object
    kind : str
    first_line : str
        Shown (escaped) when no describer is registered.

    Returns
    -------
    str
        An HTML fragment (inline styles and SVG only: no script, no external resource).
    """
    try:
        s = _describe(obj, kind, True)
    except Exception as exc:
        return f"<pre>{_html.escape(first_line)}\n(no summary: {_html.escape(type(exc).__name__)}: " \
               f"{_html.escape(str(exc))})</pre>"
    if s is None:
        return f"<pre>{_html.escape(first_line)}</pre>"
    parts = [f"<div><b>{_html.escape(s.title)}</b>", '<div style="display:flex;gap:16px;align-items:flex-start">',
             _table(None, s.facts)]
    if s.eigenvalues is not None and np.size(s.eigenvalues):
        parts.append(eigenvalue_svg(s.eigenvalues))
    elif s.picture:
        parts.append(s.picture)
    parts.append("</div>")
    if s.rows:
        parts.append(_table([h for _, h in s.row_columns], [[fmt(r.get(k)) for k, _ in s.row_columns]
                                                              for r in s.rows]))
    parts.append("</div>")
    return "".join(parts)


def to_frame(columns: dict[str, Any], index: tuple[list[str], list[np.ndarray]] | None = None) -> Any:
    """A pandas DataFrame of equal-length columns.

    Parameters
    ----------
    columns : dict of str → array_like, shape (R,)
    index : (names, values), optional
        One array of length R per index level.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SsmctlError
        When pandas is not installed.
    """
    try:
        import pandas as pd
    except ImportError:
        raise SsmctlError("to_frame() needs pandas, which is not installed: pip install pandas") from None
    idx = None
    if index is not None:
        names, values = index
        idx = (pd.MultiIndex.from_arrays(values, names=names) if len(names) > 1
               else pd.Index(values[0], name=names[0]))
    return pd.DataFrame({k: np.asarray(v) for k, v in columns.items()}, index=idx)


def frame(obj: Any, kind: str) -> Any:
    """``to_frame()`` of an object: its summary's per-channel (or per-layer) columns.

    Parameters
    ----------
    obj : object
    kind : str

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SsmctlError
        When pandas is missing or the object has no table.
    """
    s = _describe(obj, kind, True)
    if s is None or s.columns is None:
        raise SsmctlError(f"{type(obj).__name__} has no table to convert (import ssmctl first)")
    return to_frame(s.columns, s.index)


def fmt_margin(m: float) -> str:
    """1 − |λ| in scientific notation with four significant digits (``nan``/``inf`` as such).

    Parameters
    ----------
    m : float

    Returns
    -------
    str
    """
    m = float(m)
    return f"{m:.4g}" if not math.isfinite(m) or m == 0 or 1e-3 <= abs(m) < 1e3 else f"{m:.3e}"


# --- SVG eigenvalue picture ---------------------------------------------------------------------------------
_MAX_POINTS = 800
_SIZE = 150


def _subsample(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.complex128).reshape(-1)
    z = z[np.isfinite(z)]
    if z.size > _MAX_POINTS:  # keep the extremes (slowest modes) and an even stride of the rest
        order = np.argsort(-np.abs(z))
        stride = -(-(z.size - 50) // (_MAX_POINTS - 50))  # ceil: at most _MAX_POINTS in all
        z = np.concatenate([z[order[:50]], z[order[50::stride]]])
    return np.unique(z)


def _dots(x: np.ndarray, y: np.ndarray, colour: str) -> str:
    """Points as one path of zero-length round-capped segments: ~14 bytes a point instead of ~70 for circles."""
    if not np.size(x):
        return ""
    d = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(x, y))
    return (f'<path d="{d}" stroke="{colour}" stroke-width="3.2" stroke-linecap="round" '
            f'stroke-opacity="0.6" fill="none"/>')


def eigenvalue_svg(eigs: Any) -> str:
    """Inline SVG: the eigenvalues in the unit disk and, beside it, the near-1 view log10(1 − |λ|) vs arg λ.

    Parameters
    ----------
    eigs : array_like, complex, any shape
        At most 800 distinct points are drawn (the 50 slowest and an even stride of the rest).

    Returns
    -------
    str
        An ``<svg>`` element about 320 × 170 px; points outside the disk (|λ| ≥ 1) drawn red.
    """
    z = _subsample(eigs)
    S, pad = _SIZE, 12
    c, R = S / 2, S / 2 - pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * S + 20}" height="{S + 22}" '
           f'font-family="sans-serif" font-size="9">',
           f'<circle cx="{c}" cy="{c}" r="{R}" fill="none" stroke="#888"/>',
           f'<line x1="{pad / 2}" y1="{c}" x2="{S - pad / 2}" y2="{c}" stroke="#ccc"/>',
           f'<line x1="{c}" y1="{pad / 2}" x2="{c}" y2="{S - pad / 2}" stroke="#ccc"/>',
           f'<text x="{c}" y="{S + 8}" text-anchor="middle">eigenvalues λ (unit circle)</text>']
    scale = R / max(1.0, float(np.abs(z).max()) if z.size else 1.0)
    inside = np.abs(z) < 1
    out.append(_dots(c + scale * z.real[inside], c - scale * z.imag[inside], "#1f77b4"))
    out.append(_dots(c + scale * z.real[~inside], c - scale * z.imag[~inside], "#d62728"))
    # Near-1 view: where trained models crowd, the disk shows a line; the margin on a log axis separates them.
    x0, x1, y0, y1 = S + 40, 2 * S + 14, pad, S - pad
    gap = 1.0 - np.abs(z)
    pos = gap > 0
    out.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="#888"/>')
    if pos.any():
        lg = np.log10(gap[pos])
        lo, hi = math.floor(lg.min()), math.ceil(lg.max())
        hi = max(hi, lo + 1)
        out.append(_dots(x0 + (lg - lo) / (hi - lo) * (x1 - x0),
                         y0 + (np.pi - np.angle(z[pos])) / (2 * np.pi) * (y1 - y0), "#1f77b4"))
        out.append(f'<text x="{x0}" y="{y1 + 10}">1e{lo}</text>'
                   f'<text x="{x1}" y="{y1 + 10}" text-anchor="end">1e{hi}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{S + 8}" text-anchor="middle">1 − |λ| (log) vs arg λ</text>'
               f'<text x="{x0 - 3}" y="{y0 + 6}" text-anchor="end">π</text>'
               f'<text x="{x0 - 3}" y="{y1}" text-anchor="end">−π</text>')
    if (gap <= 0).any():
        out.append(f'<text x="{x1}" y="{y0 - 2}" text-anchor="end" fill="#d62728">'
                   f'{int((gap <= 0).sum())} with |λ| ≥ 1 not shown</text>')
    out.append("</svg>")
    return "".join(out)


def histogram_svg(counts: Any, edges: Any, xlabel: str) -> str:
    """Inline SVG bar chart of a histogram (for LTV statistics, whose eigenvalues are a distribution).

    Parameters
    ----------
    counts : array_like, shape (K,)
    edges : array_like, shape (K + 1,)
        Bin edges, drawn linearly; the first and last edge label the axis.
    xlabel : str

    Returns
    -------
    str
        An ``<svg>`` element about 260 × 110 px (empty bins at both ends trimmed).
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    edges = np.asarray(edges, dtype=np.float64).reshape(-1)
    nz = np.flatnonzero(counts > 0)
    W, H, pad = 260, 110, 14
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 14}" font-family="sans-serif" '
           f'font-size="9">', f'<line x1="{pad}" y1="{H - pad}" x2="{W - pad}" y2="{H - pad}" stroke="#888"/>']
    if nz.size:
        counts, edges = counts[nz[0]:nz[-1] + 1], edges[nz[0]:nz[-1] + 2]
        x = pad + (edges - edges[0]) / max(edges[-1] - edges[0], 1e-300) * (W - 2 * pad)
        top = counts.max()
        for k, n in enumerate(counts):
            h = (H - 2 * pad) * n / top
            out.append(f'<rect x="{x[k]:.1f}" y="{H - pad - h:.1f}" width="{max(x[k + 1] - x[k], 0.5):.1f}" '
                       f'height="{h:.1f}" fill="#1f77b4"/>')
        out.append(f'<text x="{pad}" y="{H - 3}">{edges[0]:.3g}</text>'
                   f'<text x="{W - pad}" y="{H - 3}" text-anchor="end">{edges[-1]:.3g}</text>')
    out.append(f'<text x="{W / 2}" y="{H + 10}" text-anchor="middle">{_html.escape(xlabel)}</text></svg>')
    return "".join(out)
