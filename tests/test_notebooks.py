"""The notebooks run from top to bottom (their committed outputs come from notebooks/build.py)."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_module():
    spec = importlib.util.spec_from_file_location("nb_build", os.path.join(ROOT, "notebooks", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_executes(tmp_path, name, monkeypatch):
    pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    build = _build_module()
    path = build.build(name, build.NOTEBOOKS[name], out_dir=str(tmp_path))
    import nbformat

    nb = nbformat.read(path, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert os.path.exists(os.path.join(ROOT, "notebooks", name)), "committed notebook missing: run notebooks/build.py"
