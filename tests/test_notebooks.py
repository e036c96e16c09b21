"""The notebooks run from top to bottom (their committed outputs come from notebooks/build.py)."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["quickstart.ipynb", "eigenvalue_initializations.ipynb", "lti_analysis.ipynb", "inspect_a_checkpoint.ipynb",
         "trained_vs_init.ipynb", "ltv_simulation.ipynb", "dynamical_systems_framework.ipynb"]


def _build_module():
    spec = importlib.util.spec_from_file_location("nb_build", os.path.join(ROOT, "notebooks", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_tested():
    pytest.importorskip("nbclient")
    assert sorted(_build_module().NOTEBOOKS) == sorted(NAMES)


def test_readme_links_every_notebook_once_in_its_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        rows = [line for line in fh if line.startswith("| [`")]
    linked = [row.split("](notebooks/")[1].split(")")[0] for row in rows if "](notebooks/" in row]
    assert sorted(linked) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_build_cells(name):
    """A cell edited in build.py without rerunning it leaves the committed notebook stale."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    path = os.path.join(ROOT, "notebooks", name)
    assert os.path.exists(path), "committed notebook missing: run notebooks/build.py"
    nb = nbformat.read(path, as_version=4)
    spec = _build_module().NOTEBOOKS[name]
    committed = [("md" if c.cell_type == "markdown" else "code", c.source) for c in nb.cells]
    assert committed == [(kind, src) for kind, src in spec], f"notebooks/{name} is stale: run notebooks/build.py {name}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"notebooks/{name} was written without executing every cell"
    assert not [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(tmp_path, name, monkeypatch):
    pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    build = _build_module()
    path = build.build(name, build.NOTEBOOKS[name], out_dir=str(tmp_path))
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    assert all(c.execution_count for c in code)
    # Checkpoints go to temporary folders the notebooks delete: nothing is left beside the notebook.
    assert sorted(os.listdir(tmp_path)) == [name]
    # Plots are the point: every notebook shows figures.
    assert any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
