"""Reports on checkpoints: per-layer eigenvalue tables (``ssmctl inspect``) and before/after comparisons
(``ssmctl compare``). Pure functions returning dicts; text and strict JSON via :mod:`ssmctl.report`.

LTI layers report the discrete eigenvalues of their equivalent real system. LTV layers report input-free
values: Ā at the step sizes the checkpoint's Δ bias alone gives (Mamba: softplus(dt_proj.bias); Mamba-2:
softplus(dt_bias); RG-LRU: the recurrence gate at its bias, r = σ(recurrent_gate_bias)), stated as ``"at"``,
with the continuous-time A (Ā = exp(Δ·A)) beside them. Attention layers of hybrids are listed with their
sizes: their Λ depends on the input.

The comparison histograms use the bins of Task-Level-Insights-from-Eigenvalues (analysis/eval_eig.py):
radius edges 0.1, 0.5, 0.9, 1, 10, 100 and phase edges 1°, 10°, 45°, 90°, 180°. Here the bins are
right-closed — [0, 0.1], (0.1, 0.5], …, (100, ∞) — so a value on an edge counts once (the reference code's
closed bins count it twice), and the phase is |arg λ| (conjugate pairs fold onto one bin).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from ..analysis.spectrum import format_modulus, marginal_note, memory_horizon
from ..errors import NonFiniteError, SsmctlError, UnsupportedSystemError
from ..report import SCHEMA_VERSION, format_table

__all__ = [
    "RADIUS_EDGES",
    "PHASE_EDGES_DEG",
    "EPS",
    "layer_spectrum",
    "layer_row",
    "inspect_report",
    "inspect_text",
    "compare_report",
    "compare_text",
    "radius_histogram",
    "phase_histogram",
]

#: Radius bin edges of Task-Level-Insights (eval_eig.py); bins [0, .1], (.1, .5], (.5, .9], (.9, 1], (1, 10], (10, 100], (100, ∞).
RADIUS_EDGES: tuple[float, ...] = (0.1, 0.5, 0.9, 1.0, 10.0, 100.0)
#: Phase bin edges in degrees; bins [0, 1], (1, 10], (10, 45], (45, 90], (90, 180] of |arg λ|.
PHASE_EDGES_DEG: tuple[float, ...] = (1.0, 10.0, 45.0, 90.0, 180.0)
#: Memory-horizon threshold: steps until |λ|^k = EPS.
EPS = 1e-2
#: Where the input-free eigenvalues of each LTV family are taken.
_AT = {
    "mamba": ("dt_bias", "Δ = softplus(dt_proj.bias) (input-dependent part of Δ set to 0)"),
    "mamba2": ("dt_bias", "Δ = softplus(dt_bias) per head (input-dependent part of Δ set to 0)"),
    "rglru": ("gate_bias", "Δ = c·σ(recurrent_gate_bias): the recurrence gate at zero input"),
    "s6": ("dt_bias", "Δ = softplus(dt_proj.bias) (input-dependent part of Δ set to 0)"),
}
# Channels whose eigenvalues all lie below this modulus keep no memory beyond one token.
_DEAD_RADIUS = 1e-6
# LTI channels whose |C|·|B| is below this fraction of the layer's largest never pass a signal.
_DEAD_GAIN = 1e-8


def _bin_labels(edges: Sequence[float], unit: str = "") -> list[str]:
    lo = [0.0, *edges]
    hi = [*edges, float("inf")]
    labels = []
    for i, (a, b) in enumerate(zip(lo, hi)):
        left = "[" if i == 0 else "("
        labels.append(f"{left}{a:g}, {'inf' if b == float('inf') else f'{b:g}'}{unit}]")
    return labels


def _histogram(values: np.ndarray, edges: Sequence[float], last_open: bool = True) -> dict[str, Any]:
    """Counts in right-closed bins [0, e0], (e0, e1], …, (e_last, ∞)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="left")
    n_bins = len(edges) + 1 if last_open else len(edges)
    counts = np.bincount(np.minimum(idx, n_bins - 1), minlength=n_bins)
    total = int(v.size)
    labels = _bin_labels(edges)[:n_bins]
    return {
        "edges": list(edges),
        "labels": labels,
        "counts": counts.astype(int).tolist(),
        "percent": (100.0 * counts / total).tolist() if total else [0.0] * n_bins,
        "total": total,
    }


def radius_histogram(eigs: Any) -> dict[str, Any]:
    """Counts of |λ| in the radius bins of :data:`RADIUS_EDGES` (7 bins, the last (100, ∞)).

    Parameters
    ----------
    eigs : array_like, complex, any shape
        Eigenvalues; flattened, non-finite moduli are left out.

    Returns
    -------
    dict
        ``edges`` (list of float), ``labels`` (7 str, e.g. ``"(0.9, 1]"``), ``counts`` (7 int), ``percent``
        (7 float, of ``total``; zeros when empty) and ``total`` (int, the finite values counted).
    """
    return _histogram(np.abs(np.asarray(eigs)), RADIUS_EDGES)


def phase_histogram(eigs: Any) -> dict[str, Any]:
    """Counts of |arg λ| in degrees in the bins of :data:`PHASE_EDGES_DEG` (5 bins up to 180°).

    Parameters
    ----------
    eigs : array_like, complex, any shape
        Eigenvalues; flattened, non-finite phases are left out.

    Returns
    -------
    dict
        ``edges``, ``labels`` (5 str), ``counts`` (5 int), ``percent`` (5 float) and ``total``, as in
        :func:`radius_histogram`.
    """
    phase = np.degrees(np.abs(np.angle(np.asarray(eigs, dtype=np.complex128))))
    return _histogram(phase, PHASE_EDGES_DEG, last_open=False)


def layer_spectrum(layer: Any) -> dict[str, Any]:
    """The eigenvalues ``ssmctl inspect`` reports for one layer, with their shapes explained.

    Parameters
    ----------
    layer : Layer
        A layer of a registered family (LTV layers need only the parameters of :data:`ssmctl.checkpoints.load.SPECTRAL_KEYS`).

    Returns
    -------
    dict
        ``eigenvalues`` (complex128, shape (channels, d_state) for LTI and Mamba, (channels,) for Mamba-2
        heads and RG-LRU channels), ``kind``, ``at`` (None for LTI), ``A`` (continuous-time A of LTV
        layers, float64, same shape as the eigenvalues), ``dt`` (step sizes of LTV layers), ``channels``,
        ``d_state``, ``gain`` (per-channel |C|·|B| of diagonal LTI layers, for the dead-channel check; else
        None) and ``warnings`` (list of str: the family's warnings about its eigenvalues).

    Raises
    ------
    UnknownNameError
        When the layer's family is not registered.
    UnsupportedSystemError
        When an LTV family defines no input-free eigenvalues.
    """
    from ..models.base import get_family

    record = get_family(layer.family)
    notes: list[str] = []
    if record.kind == "LTI":
        # A system warns where its eigenvalues are unreliable (an ill-conditioned eigenproblem without an
        # exact spectrum, e.g. S4's DPLR matrix off its HiPPO init); those warnings belong in the report.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lam = np.asarray(layer.eigenvalues(), dtype=np.complex128)
        notes.extend(dict.fromkeys(str(w.message) for w in caught))
        lam2 = lam.reshape(-1, lam.shape[-1]) if lam.ndim else lam.reshape(1, 1)
        gain = None
        try:
            from ..systems.lti import DiagonalLTI

            sys_ = layer.system()
            if isinstance(sys_, DiagonalLTI):
                lam_aug, B, C, _ = sys_.augmented()
                g = np.abs(C).sum(axis=-2) * np.abs(B).sum(axis=-1)  # (..., n)
                gain = np.broadcast_to(g, np.broadcast_shapes(g.shape, lam_aug.shape)).reshape(-1, g.shape[-1]).sum(-1)
        except (SsmctlError, ValueError):  # a gain is only a diagnostic; eigenvalues stand on their own
            gain = None
        return {"kind": "LTI", "eigenvalues": lam2, "at": None, "A": None, "dt": None,
                "channels": int(lam2.shape[0]), "d_state": int(lam2.shape[-1]), "gain": gain, "warnings": notes}
    if record.bias_eigenvalues is None or record.continuous_A is None:
        raise UnsupportedSystemError(
            f"{record.name}: no input-free eigenvalues (its transitions depend on the input; "
            "ssmctl.dsf_eigenvalues(layer, u) gives them for an input)"
        )
    if layer.family == "rglru":
        lam = record.bias_eigenvalues(layer, r="bias")  # the gate at zero input, Mamba's bias-only Δ
    else:
        lam = record.bias_eigenvalues(layer)
    A = np.asarray(record.continuous_A(layer), dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(lam) / A  # Δ with Ā = exp(Δ·A)
    dt = ratio if ratio.ndim <= 1 else ratio[..., 0]
    if lam.ndim == 2:  # Mamba: (d_inner, N)
        d_state = int(lam.shape[-1])
    else:  # one value per Mamba-2 head (shared by its headdim·N states) or RG-LRU channel (N = 1)
        d_state = int(layer.config.get("d_state", 1))
    return {"kind": "LTV", "eigenvalues": lam.astype(np.complex128), "at": _AT[layer.family][0], "A": A, "dt": dt,
            "channels": int(lam.shape[0]), "d_state": d_state, "gain": None, "warnings": notes}


def _stats(values: np.ndarray, prefix: str) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return {f"{prefix}_min": float(v.min()), f"{prefix}_median": float(np.median(v)), f"{prefix}_max": float(v.max())}


def layer_row(layer: Any, *, eps: float = EPS, spectrum: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the inspect table (strict-JSON-ready apart from non-finite floats, which dumps nulls).

    Parameters
    ----------
    layer : Layer
        The layer to describe (its ``index`` and ``family`` are copied into the row).
    eps : float, default 1e-2
        Memory-horizon threshold (steps until |λ|^k = eps).
    spectrum : dict or None, default None
        :func:`layer_spectrum`'s result when the caller already has it; None computes it.

    Returns
    -------
    dict
        ``index``, ``family``, ``kind``, ``at``, ``d_state``, ``channels``, ``n_eigenvalues``,
        ``abs_min/median/max``, ``spectral_radius``, ``spectral_margin``, ``memory_horizon_median/max``,
        ``memory_horizon_inf_count``, ``memory_horizon_finite_max`` (None when none is finite),
        ``dead_channels``, ``warnings`` (eigenvalues outside the unit disk, dead channels, the family's
        warnings), and for LTV layers ``A_min/median/max`` and ``dt_min/median/max``.

    Raises
    ------
    UnknownNameError, UnsupportedSystemError
        As :func:`layer_spectrum`, when ``spectrum`` is not given.
    """
    spec = spectrum if spectrum is not None else layer_spectrum(layer)
    lam = spec["eigenvalues"]
    r = np.abs(lam)
    k = memory_horizon(lam, eps=eps)
    finite_k = k[np.isfinite(k)]
    row: dict[str, Any] = {
        "index": int(layer.index),
        "family": layer.family,
        "kind": spec["kind"],
        "at": spec["at"],
        "d_state": spec["d_state"],
        "channels": spec["channels"],
        "n_eigenvalues": int(lam.size),
        "abs_min": float(r.min()),
        "abs_median": float(np.median(r)),
        "abs_max": float(r.max()),
        "spectral_radius": float(r.max()),
        "spectral_margin": float(1.0 - r.max()),
        "memory_horizon_median": float(np.median(k)),
        "memory_horizon_max": float(k.max()),
        "memory_horizon_inf_count": int(np.isinf(k).sum()),
        "memory_horizon_finite_max": float(finite_k.max()) if finite_k.size else None,
        "warnings": list(spec["warnings"]),
    }
    if spec["A"] is not None:
        row.update(_stats(spec["A"], "A"))
        row.update(_stats(spec["dt"], "dt"))
    outside = int((r > 1.0).sum())
    if outside:
        row["warnings"].append(f"{outside} eigenvalue(s) outside the unit disk (max |λ| = {format_modulus(r.max(), 6)})")
    else:
        note = marginal_note(r.max())  # also for 1 − 1e-15: a memory of 4.6e15 tokens is no statement of fact
        if note is not None:
            row["warnings"].append(note)
    per_channel = r.reshape(spec["channels"], -1)
    dead = int((per_channel.max(axis=-1) < _DEAD_RADIUS).sum())
    if spec["gain"] is not None:
        gain = np.asarray(spec["gain"], dtype=np.float64)
        dead_gain = gain <= _DEAD_GAIN * max(float(gain.max()), 1e-300)
        dead = max(dead, int(dead_gain.sum()))
    row["dead_channels"] = dead
    if dead:
        row["warnings"].append(f"{dead} dead channel(s) (no memory beyond one token, or C·B ≈ 0)")
    return row


def _unavailable_row(index: int, family: str, kind: str, reason: str) -> dict[str, Any]:
    return {"index": index, "family": family, "kind": kind, "at": None, "d_state": None, "channels": None,
            "abs_min": None, "abs_median": None, "abs_max": None, "spectral_radius": None,
            "spectral_margin": None, "memory_horizon_median": None, "memory_horizon_max": None,
            "warnings": [reason]}


def _other_row(other: dict[str, Any]) -> dict[str, Any]:
    row = _unavailable_row(
        other["index"], other["kind"], other["kind"],
        "input-dependent Λ: no input-free eigenvalues (see ssmctl.analysis for input-driven views)",
    )
    row["warnings"] = []
    row["name"] = other["name"]
    row["sizes"] = {k: v for k, v in other.items() if k not in ("index", "name", "kind")}
    row["note"] = "input-dependent Λ: eigenvalues need an input"
    return row


class _Source:
    """A model or a checkpoint plan behind one interface: layers (lazily), other layers, metadata."""

    def __init__(self, obj: Any, hints: dict[str, Any] | None = None) -> None:
        from .load import Plan, nonfinite_tensors, scan
        from ..models.base import Model

        self.plan = None
        if isinstance(obj, Model):
            self.model = obj
            self.family = obj.family
            self.path = obj.source
            self.others = list(obj.extras.get("other_layers", []))
            self.layouts = list(obj.extras.get("layouts", []))
            self.notes = list(obj.extras.get("notes", []))
            self.nonfinite = _model_nonfinite(obj)
            self.config = dict(obj.config)
            return
        plan = obj if isinstance(obj, Plan) else scan(os.fspath(obj), **(hints or {}))
        self.plan = plan
        self.model = None
        self.family = plan.family
        self.path = plan.source
        self.others = [o.as_dict() for o in plan.detection.other_layers]
        self.layouts = list(plan.detection.layouts)
        self.notes = list(plan.notes)
        self.nonfinite = nonfinite_tensors(plan)
        self.config = dict(plan.config)

    def layers(self) -> Iterable[tuple[int, Any]]:
        """(index, layer or the error that prevented building it)."""
        if self.model is not None:
            for layer in self.model.layers:
                yield layer.index, layer
            return
        for block in self.plan.blocks:
            try:
                yield block.index, self.plan.spectral_layer(block)
            except SsmctlError as exc:
                yield block.index, exc

    def init_hyper(self) -> dict[str, Any]:
        if self.plan is not None:
            return self.plan.init_hyper()
        hyper = self.model.extras.get("init")
        if hyper is None:
            from ..models.base import get_family

            defaults = get_family(self.family).defaults
            hyper = {k: v for k, v in self.model.config.items() if k in defaults}
            hyper["n_layers"] = len(self.model.layers)
        return dict(hyper)


def _model_nonfinite(model: Any) -> list[dict[str, Any]]:
    import torch

    out = []
    for layer in model.layers:
        for name, t in layer.params.items():
            tt = torch.as_tensor(t)
            if tt.is_floating_point() or tt.is_complex():
                bad = int(tt.numel() - torch.isfinite(tt).sum())
                if bad:
                    out.append({"tensor": name, "count": bad, "layer": layer.index})
    return out


def _rows(src: _Source, eps: float) -> tuple[list[dict[str, Any]], dict[int, np.ndarray]]:
    rows: list[dict[str, Any]] = []
    eigs: dict[int, np.ndarray] = {}
    bad_by_layer: dict[Any, list[dict[str, Any]]] = {}
    for item in src.nonfinite:
        bad_by_layer.setdefault(item["layer"], []).append(item)
    for index, layer in src.layers():
        bad = bad_by_layer.get(index, [])
        family = getattr(layer, "family", src.family or "?")
        kind = getattr(layer, "kind", "?") if not isinstance(layer, Exception) else "?"
        row = None
        if isinstance(layer, Exception):
            reason = f"not analysed: {layer}"
        else:
            try:
                spec = layer_spectrum(layer)
                lam = spec["eigenvalues"]
                if np.isfinite(lam).all():
                    row = layer_row(layer, eps=eps, spectrum=spec)
                    eigs[index] = lam
                else:
                    reason = "not analysed: NaN/Inf eigenvalues"
            except (SsmctlError, FloatingPointError) as exc:
                reason = f"not analysed: {exc}"
        if row is None:
            row = _unavailable_row(index, family, kind, reason)
        row["warnings"] = [f"tensor {b['tensor']} has {b['count']} NaN/Inf value(s)" for b in bad] + row["warnings"]
        rows.append(row)
    for other in src.others:
        if other["kind"] == "attention":
            rows.append(_other_row(other))
    rows.sort(key=lambda r: (r["index"], 0 if r["kind"] in ("LTI", "LTV") else 1))
    return rows, eigs


def inspect_report(source: Any, *, eps: float = EPS, eigenvalues: bool = False,
                   hints: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-layer eigenvalue report of a checkpoint path, a :class:`~ssmctl.checkpoints.load.Plan` or a Model.

    Parameters
    ----------
    source : path, Plan or Model
        A path is scanned lazily: LTV layers read only the tensors their input-free eigenvalues need.
    eps : float, default 1e-2
        Memory-horizon threshold (steps until |λ|^k = eps).
    eigenvalues : bool, default False
        Also return the eigenvalue arrays (key ``"eigenvalues"``: layer index → complex array; not JSON,
        remove before :func:`ssmctl.report.dumps`).
    hints : dict or None, default None
        Settings the checkpoint does not record, as for :func:`ssmctl.load` (used for a path).

    Returns
    -------
    dict
        Strict-JSON-ready report: ``schema``, ``path``, ``family``, ``layouts``, ``eps``, ``units``, ``at``
        (what the LTV "at" values mean), ``layers`` (one row per SSM layer and per attention layer: index,
        family, kind, at, d_state, channels, abs_min/median/max, spectral_radius, spectral_margin,
        memory_horizon_median/max, warnings, ...), ``other_layers`` (every non-SSM sub-layer), ``warnings``
        (NaN/Inf tensors) and ``notes``.

    Raises
    ------
    NonFiniteError
        When no layer can be analysed because of NaN/Inf weights (the tensors are named).
    CheckpointError, ShapeError
        As :func:`ssmctl.checkpoints.load.scan`, for a path it cannot read.
    """
    src = _Source(source, hints)
    rows, eigs = _rows(src, eps)
    analysed = [r for r in rows if r["kind"] in ("LTI", "LTV") and r.get("abs_max") is not None]
    ssm_rows = [r for r in rows if r["kind"] not in ("attention",)]
    if ssm_rows and not analysed and src.nonfinite:
        names = ", ".join(b["tensor"] for b in src.nonfinite[:8])
        raise NonFiniteError(f"{src.path}: no layer can be analysed; NaN/Inf in {names}")
    ltv = sorted({r["family"] for r in rows if r["kind"] == "LTV"})
    report = {
        "schema": SCHEMA_VERSION,
        "path": src.path,
        "family": src.family,
        "layouts": src.layouts,
        "config": src.config,
        "eps": eps,
        "units": {"memory_horizon": "tokens (steps until |λ|^k = eps)", "A": "continuous time, per unit Δ",
                  "dt": "continuous time per token"},
        "at": {fam: _AT[fam][1] for fam in ltv if fam in _AT},
        "layers": rows,
        "other_layers": src.others,
        "warnings": [f"tensor {b['tensor']} has {b['count']} NaN/Inf value(s)" for b in src.nonfinite],
        "nonfinite_tensors": src.nonfinite,
        "notes": src.notes,
    }
    if eigenvalues:
        report["eigenvalues"] = eigs
    return report


_INSPECT_COLUMNS = (
    ("index", "layer"), ("family", "family"), ("kind", "kind"), ("at", "at"), ("d_state", "N"),
    ("channels", "channels"), ("abs_min", "|λ| min"), ("abs_median", "|λ| med"), ("abs_max", "|λ| max"),
    ("spectral_radius", "radius"), ("spectral_margin", "margin"), ("memory_horizon_median", "mem med"),
    ("memory_horizon_max", "mem max"), ("A_min", "A min"), ("A_max", "A max"), ("warn", "warnings"),
)


def inspect_text(report: dict[str, Any]) -> str:
    """The inspect report as a plain-text table with its notes.

    Parameters
    ----------
    report : dict
        What :func:`inspect_report` returns (without the ``eigenvalues`` key or with it; it is not read).

    Returns
    -------
    str
        A heading line, the per-layer table, and lines for the horizon definition, the LTV ``at`` meanings,
        other sub-layers, warnings and notes.
    """
    rows = []
    for r in report["layers"]:
        row = dict(r)
        row["warn"] = "; ".join(r.get("warnings", [])) or (r.get("note") or "")
        for key in ("abs_min", "abs_median", "abs_max", "spectral_radius"):
            if isinstance(r.get(key), float):  # never rounded into 1 (margin = 1 − radius keeps its digits too)
                row[key] = format_modulus(r[key])
        if r["kind"] not in ("LTI", "LTV"):
            row["family"] = r.get("name", r["family"])
        rows.append(row)
    cols = [c for c, _ in _INSPECT_COLUMNS]
    heads = [h for _, h in _INSPECT_COLUMNS]
    lines = [f"{report['path']}: {report['family'] or 'no SSM layers'} ({', '.join(report['layouts']) or 'attention only'})", ""]
    lines.append(format_table(rows, cols, heads))
    lines.append("")
    lines.append(f"memory horizon: tokens until |λ|^k = {report['eps']:g}; margin = 1 − radius")
    for fam, meaning in report["at"].items():
        lines.append(f"{fam}: LTV, eigenvalues input-free at {meaning}; A is the continuous-time A (Ā = exp(Δ·A))")
    n_other = len(report["other_layers"])
    if n_other:
        kinds: dict[str, int] = {}
        for o in report["other_layers"]:
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
        lines.append("other sub-layers: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    for n in report["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


# --- compare ---------------------------------------------------------------------------------------------
def _init_source(a: _Source, seed: int) -> _Source:
    from ..models.base import init

    hyper = a.init_hyper()
    hyper.setdefault("seed", seed)
    model = init(a.family, **hyper)
    model.source = "init"
    return _Source(model)


def compare_report(a: Any, b: Any = "init", *, eps: float = EPS, seed: int = 0, eigenvalues: bool = False,
                   hints: dict[str, Any] | None = None) -> dict[str, Any]:
    """How the eigenvalues moved between two checkpoints (or a checkpoint and a fresh init).

    Parameters
    ----------
    a : path, Plan or Model
        The reference (e.g. the trained checkpoint).
    b : path, Plan, Model or "init"
        The other; ``"init"`` is a fresh ``ssmctl.init`` of A's family and sizes with the initialization of
        A's producer (layout), seeded with ``seed``.
    eps : float, default 1e-2
        Memory-horizon threshold (steps until |λ|^k = eps).
    seed : int, default 0
        Seed of the fresh init when ``b`` is ``"init"`` (unless A's init keywords carry their own).
    eigenvalues : bool, default False
        Also return the eigenvalues (key ``"eigenvalues"``: {"a": {index: array}, "b": ..., "pairs": [...]};
        not JSON, remove before dumping).
    hints : dict or None, default None
        Settings the checkpoints do not record, as for :func:`ssmctl.load` (used for both paths).

    Returns
    -------
    dict
        ``layers``: one entry per SSM layer pair with the radius and phase histograms of both sides
        (:data:`RADIUS_EDGES`, :data:`PHASE_EDGES_DEG`), memory horizons (median, max) of both and their
        change, and — when both layers have the same eigenvalue shape and B is a checkpoint, not ``"init"`` —
        the elementwise movement.
        Layers are paired by index when both sides have the same indices, else by position. Also ``schema``,
        ``a``, ``b`` (paths, ``"init"``), ``family``, ``eps``, ``paired_by``, ``init`` (the init keywords or
        None), the bin edges, ``units`` and ``warnings`` (NaN/Inf tensors of either side).

    Raises
    ------
    UnsupportedSystemError
        When A and B are of different families, or have different numbers of SSM layers and other indices.
    CheckpointError, ShapeError
        As :func:`ssmctl.checkpoints.load.scan`, for a path it cannot read.
    """
    sa = _Source(a, hints)
    sb = _init_source(sa, seed) if isinstance(b, str) and b == "init" else _Source(b, hints)
    if sa.family != sb.family:
        raise UnsupportedSystemError(f"cannot compare a {sa.family} model with a {sb.family} model")
    rows_a, eig_a = _rows(sa, eps)
    rows_b, eig_b = _rows(sb, eps)
    ra = {r["index"]: r for r in rows_a if r["kind"] in ("LTI", "LTV")}
    rb = {r["index"]: r for r in rows_b if r["kind"] in ("LTI", "LTV")}
    if sorted(ra) == sorted(rb):
        pairs = [(i, i) for i in sorted(ra)]
        paired_by = "index"
    else:
        if len(ra) != len(rb):
            raise UnsupportedSystemError(
                f"cannot pair layers: A has {len(ra)} SSM layers ({sorted(ra)}), B has {len(rb)} ({sorted(rb)})"
            )
        pairs = list(zip(sorted(ra), sorted(rb)))
        paired_by = "position"
    layers = []
    for ia, ib in pairs:
        entry: dict[str, Any] = {"index": ia, "index_b": ib, "family": ra[ia]["family"], "kind": ra[ia]["kind"],
                                 "at": ra[ia]["at"]}
        la, lb = eig_a.get(ia), eig_b.get(ib)
        if la is None or lb is None:
            entry["warnings"] = ["not analysed on one side: " + "; ".join(ra[ia]["warnings"] + rb[ib]["warnings"])]
            layers.append(entry)
            continue
        ka, kb = memory_horizon(la, eps=eps), memory_horizon(lb, eps=eps)
        entry.update({
            "radius_histogram": {"a": radius_histogram(la), "b": radius_histogram(lb)},
            "phase_histogram": {"a": phase_histogram(la), "b": phase_histogram(lb)},
            "abs_median_a": float(np.median(np.abs(la))), "abs_median_b": float(np.median(np.abs(lb))),
            "spectral_radius_a": float(np.abs(la).max()), "spectral_radius_b": float(np.abs(lb).max()),
            "memory_horizon_median_a": float(np.median(ka)), "memory_horizon_median_b": float(np.median(kb)),
            "memory_horizon_max_a": float(ka.max()), "memory_horizon_max_b": float(kb.max()),
            "memory_horizon_median_change": float(np.median(ka) - np.median(kb)),
            "memory_horizon_inf_count_a": int(np.isinf(ka).sum()),
            "memory_horizon_inf_count_b": int(np.isinf(kb).sum()),
            "warnings": ra[ia]["warnings"] + [f"B: {w}" for w in rb[ib]["warnings"]],
        })
        if sb.path == "init":
            # a fresh init is an independent random draw (Δ, and for most families the states): its
            # eigenvalues do not correspond one to one with A's, so only distributions are compared
            entry["elementwise"] = False
            entry["elementwise_note"] = "B is a fresh random initialization: eigenvalues are not paired one to one"
        elif la.shape == lb.shape:
            move = np.abs(la - lb)
            entry.update({
                "elementwise": True,
                "move_abs_median": float(np.median(move)),
                "move_abs_max": float(move.max()),
                "radius_change_median": float(np.median(np.abs(la) - np.abs(lb))),
            })
        else:
            entry["elementwise"] = False
        layers.append(entry)
    report = {
        "schema": SCHEMA_VERSION,
        "a": sa.path,
        "b": sb.path,
        "family": sa.family,
        "eps": eps,
        "paired_by": paired_by,
        "init": sb.init_hyper() if sb.path == "init" else None,
        "radius_edges": list(RADIUS_EDGES),
        "phase_edges_deg": list(PHASE_EDGES_DEG),
        "bins": "right-closed: [0, e0], (e0, e1], ..., last (100, inf) for radius; phase = |arg λ| in degrees",
        "units": {"memory_horizon": "tokens (steps until |λ|^k = eps)"},
        "layers": layers,
        "warnings": [f"A: tensor {b['tensor']} has NaN/Inf" for b in sa.nonfinite]
        + [f"B: tensor {b['tensor']} has NaN/Inf" for b in sb.nonfinite],
    }
    if eigenvalues:
        report["eigenvalues"] = {"a": eig_a, "b": eig_b, "pairs": pairs}
    return report


def compare_text(report: dict[str, Any]) -> str:
    """Plain-text summary of a comparison: memory horizons and radius-bin percentages, A vs B.

    Parameters
    ----------
    report : dict
        What :func:`compare_report` returns.

    Returns
    -------
    str
        Header lines naming A and B, one table row per layer pair, the definitions and the warnings.
    """
    rad_labels = _bin_labels(RADIUS_EDGES)
    lines = [f"A = {report['a']}", f"B = {report['b']}", f"family {report['family']}, layers paired by {report['paired_by']}", ""]
    rows = []
    for e in report["layers"]:
        if "radius_histogram" not in e:
            rows.append({"layer": e["index"], "note": "; ".join(e.get("warnings", []))})
            continue
        pa = e["radius_histogram"]["a"]["percent"]
        pb = e["radius_histogram"]["b"]["percent"]
        row = {
            "layer": e["index"], "kind": e["kind"],
            "mem_a": e["memory_horizon_median_a"], "mem_b": e["memory_horizon_median_b"],
            "dmem": e["memory_horizon_median_change"],
            "rad_a": e["spectral_radius_a"], "rad_b": e["spectral_radius_b"],
            "move": e.get("move_abs_median"),
        }
        for j, lab in enumerate(rad_labels):
            row[f"bin{j}"] = f"{pa[j]:.0f}/{pb[j]:.0f}"
        rows.append(row)
    cols = ["layer", "kind", "mem_a", "mem_b", "dmem", "rad_a", "rad_b", "move"] + [f"bin{j}" for j in range(len(rad_labels))]
    heads = ["layer", "kind", "mem med A", "mem med B", "Δ mem", "radius A", "radius B", "|Δλ| med"] + [f"% {l} A/B" for l in rad_labels]
    lines.append(format_table(rows, cols, heads))
    lines.append("")
    lines.append(f"memory horizon: tokens until |λ|^k = {report['eps']:g}; radius bins of Task-Level-Insights, "
                 "percent of eigenvalues in A / B; |Δλ| only where both sides have the same shape and B is not a fresh init")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
