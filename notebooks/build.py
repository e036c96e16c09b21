"""Build and execute the notebooks so that what they show is real output.

    python notebooks/build.py          # writes notebooks/*.ipynb with fresh outputs

Each notebook is a list of cells below; tests/test_notebooks.py executes the same cells.
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))

QUICKSTART = [
    ("md", "# ssmctl quickstart\n\nEvery layer of a deep SSM becomes a linear system; every analysis is a function of systems."),
    ("code", "import numpy as np\nimport matplotlib.pyplot as plt\nimport ssmctl, ssmctl.plot\n%matplotlib inline"),
    ("md", "## An S4D layer, freshly initialized\n`layer.system()` is a `DiagonalLTI` with one SISO system per channel (batch dim H)."),
    ("code", "model = ssmctl.init('s4d', d_model=64, d_state=32, n_layers=2, seed=0)\nlayer = model.layers[0]\nsys = layer.system()\nsys"),
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(10, 4))\nssmctl.plot.eigenvalues(layer, ax=axes[0])\nssmctl.plot.impulse(sys[:4], L=400, ax=axes[1]);"),
    ("md", "Norms and how many states each channel really uses (Hankel singular values above 1e-3·σ₁):"),
    ("code", "h2 = ssmctl.h2_norm(sys)\nhinf = ssmctl.hinf_norm(sys)\nhsv = ssmctl.hankel_singular_values(sys)\nused = (hsv > 1e-3 * hsv[:, :1]).sum(axis=1)\nprint('H2   ', np.round(h2[:6], 4))\nprint('Hinf ', np.round(hinf[:6], 4))\nprint('states used', used[:6], 'of', sys.n_states)"),
    ("code", "ssmctl.plot.bode(sys[:3]);"),
    ("md", "## The same channel in python-control\n`to_control` builds the real realization and translates the time convention."),
    ("code", "import control\ncs = ssmctl.to_control(sys[0])\nprint(cs.nstates, 'states; python-control H2 =', round(control.norm(cs, 2), 6), ' ssmctl H2 =', round(float(h2[0]), 6))"),
    ("md", "## Input-dependent layers: Mamba\n`layer.ltv(u)` gives Ā_t, B̄_t, C_t, Δ_t for an input; `layer.frozen(u, t)` the frozen-time LTI system."),
    ("code", "mamba = ssmctl.init('mamba', d_model=64, n_layers=1, seed=0)\nu = np.random.default_rng(0).standard_normal((1, 128, 64)).astype(np.float32)\nltv = mamba.layers[0].ltv(u)\nabs_lam = np.abs(np.asarray(ltv.lam))\nprint('|Ā_t| min/median/max:', abs_lam.min().round(4), np.median(abs_lam).round(4), abs_lam.max().round(4))\nfrozen = mamba.layers[0].frozen(u, 64)\nprint(frozen)\nprint('median memory horizon at t=64:', np.median(ssmctl.memory_horizon(frozen)).round(1), 'tokens')"),
    ("code", "ssmctl.plot.eigenvalues(mamba.layers[0], title='mamba: Ā_t over a random input');"),
]


def _cells(spec):
    cells = []
    for kind, src in spec:
        cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return cells


NOTEBOOKS = {"quickstart.ipynb": QUICKSTART}


def build(name: str, spec, out_dir: str = HERE, timeout: int = 300) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = _cells(spec)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": out_dir}}).execute()
    path = os.path.join(out_dir, name)
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for name, spec in NOTEBOOKS.items():
        print("wrote", build(name, spec, *sys.argv[1:2]))
