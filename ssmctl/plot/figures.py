"""``ssmctl figures``: Figure 2 of the overview paper (eigenvalues at initialization), extended, and its tables.

Writes ``eigenvalues_init.png``/``.svg`` (one unit-disk panel per family), ``table1_features.md`` (the paper's
Table I from the registry, plus notes where the reference code differs) and ``memory_horizons_init.md``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..analysis.cloud import CLOUD_INPUT, eigenvalue_cloud
from ..analysis.spectrum import memory_horizon
from ..errors import SsmctlError
from ..models import families, init
from .io import ensure_folder, save_figure

__all__ = ["family_clouds", "memory_horizon_rows", "table1_markdown", "memory_horizons_markdown", "plot_clouds",
           "write_all"]

EPS = 1e-2


def family_clouds() -> dict[str, tuple[Any, np.ndarray]]:
    """Family name → (first layer of a default initialization, its discrete eigenvalue cloud).

    Returns
    -------
    dict of str to (Layer, ndarray)
        Every registered family; the cloud is complex, shape (n,), from :func:`eigenvalue_cloud`.
    """
    out = {}
    for name in families():
        layer = init(name, n_layers=1).layers[0]
        out[name] = (layer, eigenvalue_cloud(layer))
    return out


def memory_horizon_rows(clouds: dict[str, tuple[Any, np.ndarray]]) -> list[dict[str, Any]]:
    """One row of |λ| and memory-horizon statistics (ε = 1e-2) per family.

    Parameters
    ----------
    clouds : dict of str to (Layer, ndarray)
        Family name → (layer, its eigenvalues, complex, shape (n,)), as :func:`family_clouds` returns.

    Returns
    -------
    list of dict
        In the order of ``clouds``; keys ``family``, ``kind``, ``n_eigenvalues``, ``abs_min``, ``abs_max``,
        ``memory_min``, ``memory_median``, ``memory_max`` (tokens; ``inf`` for |λ| ≥ 1).
    """
    rows = []
    for name, (layer, lam) in clouds.items():
        k = memory_horizon(lam, eps=EPS)
        rows.append(
            {
                "family": name,
                "kind": layer.kind,
                "n_eigenvalues": int(lam.size),
                "abs_min": float(np.abs(lam).min()),
                "abs_max": float(np.abs(lam).max()),
                "memory_min": float(k.min()),
                "memory_median": float(np.median(k)),
                "memory_max": float(k.max()),
            }
        )
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    # a bare "|" inside a cell (|λ|, notes) would end the cell: GitHub then renders no table at all
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [row(r) for r in rows]
    return "\n".join(lines) + "\n"


def table1_markdown() -> str:
    """Table I of the overview paper, generated from the family registry, plus Mamba-2 and notes."""
    header = ["model", "paper", "parametrization", "discretization", "structure", "implementation", "scaffolding", "notes (reference code)"]
    rows = [
        [f.name, f.paper, f.parametrization, f.discretization, f.structure, f.implementation, f.scaffolding, f.notes or ""]
        for f in families().values()
    ]
    return "# Table I: features of the models (from `ssmctl.families()`)\n\n" + _md_table(header, rows)


def memory_horizons_markdown(rows: list[dict[str, Any]]) -> str:
    """The memory-horizon table as Markdown, with a heading and a note on ε and the LTV input.

    Parameters
    ----------
    rows : list of dict
        As :func:`memory_horizon_rows` returns.

    Returns
    -------
    str
        A Markdown document ending in a newline; infinite horizons are written ``inf``.
    """
    def f(x: float) -> str:
        return "inf" if not np.isfinite(x) else f"{x:.3g}"

    body = [
        [r["family"], r["kind"], str(r["n_eigenvalues"]), f"{r['abs_min']:.4f}", f"{r['abs_max']:.4f}", f(r["memory_min"]), f(r["memory_median"]), f(r["memory_max"])]
        for r in rows
    ]
    note = (
        f"Memory horizon k = ln ε / ln|λ| in tokens, ε = {EPS:g}, over the discrete eigenvalues of layer 0 of each "
        "family's default initialization. LTV families (mamba, mamba2, rglru): eigenvalues of Ā_t over a "
        f"unit-RMS Gaussian input at the layer input ({CLOUD_INPUT['batch']} sequences × {CLOUD_INPUT['length']} tokens, seed 0).\n\n"
    )
    header = ["family", "kind", "eigenvalues", "|λ| min", "|λ| max", "memory min", "memory median", "memory max"]
    return "# Memory horizons at initialization\n\n" + note + _md_table(header, body)


def plot_clouds(clouds: dict[str, tuple[Any, np.ndarray]]) -> Any:
    """One unit-disk panel of eigenvalues per family (at most 4 columns), coloured by memory horizon.

    Parameters
    ----------
    clouds : dict of str to (Layer, ndarray)
        Family name → (layer, its eigenvalues, complex, shape (n,)), as :func:`family_clouds` returns.

    Returns
    -------
    matplotlib.figure.Figure
        Unused panels of the last row are switched off.
    """
    import matplotlib.pyplot as plt

    from . import lti as plot

    n = len(clouds)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False, layout="constrained")
    for ax, (name, (layer, lam)) in zip(axes.flat, clouds.items()):
        kind = "LTV: Ā_t" if layer.kind == "LTV" else "LTI"
        # Figure 2 of the paper is drawn on the unit disk (its zoom inset resolves the crowd near z = 1).
        plot.eigenvalues(lam, ax=ax, title=f"{name} ({kind})", eps=EPS, view="disk")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(
        "Discrete eigenvalues at initialization (default hyperparameters, layer 0); colour: memory horizon in tokens "
        f"(ε = {EPS:g}).\nLTV families: unit-RMS Gaussian input at the layer input, "
        f"{CLOUD_INPUT['batch']}×{CLOUD_INPUT['length']} tokens.",
        fontsize=10,
    )
    return fig


def write_all(outdir: str = "figures") -> list[str]:
    """Regenerate the figure and both tables under ``outdir`` (created when missing); returns the paths written.

    Parameters
    ----------
    outdir : str, default "figures"
        Folder to write into.

    Returns
    -------
    list of str
        ``eigenvalues_init.png``, ``eigenvalues_init.svg``, ``table1_features.md``, ``memory_horizons_init.md``
        under ``outdir``, in that order.

    Raises
    ------
    SsmctlError
        ``outdir`` cannot be created or written (checked before the figure is computed).
    """
    import matplotlib.pyplot as plt

    ensure_folder(outdir)
    clouds = family_clouds()
    fig = plot_clouds(clouds)
    try:
        paths = [save_figure(fig, os.path.join(outdir, f"eigenvalues_init.{ext}"), close=False) for ext in ("png", "svg")]
    finally:
        plt.close(fig)
    for name, text in (
        ("table1_features.md", table1_markdown()),
        ("memory_horizons_init.md", memory_horizons_markdown(memory_horizon_rows(clouds))),
    ):
        path = os.path.join(outdir, name)
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise SsmctlError(f"cannot write {path}: {exc.strerror or exc}") from None
        paths.append(path)
    return paths
