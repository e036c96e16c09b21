"""analysis/progress.py: when bars show, what they print, and that they never change the work."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import ssmctl
from ssmctl.analysis import progress
from ssmctl.analysis.progress import Progress, interactive, set_enabled, track


@pytest.fixture(autouse=True)
def _automatic():
    set_enabled(None)
    yield
    set_enabled(None)


def test_off_outside_terminals_and_notebooks(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not interactive()  # pytest captures stderr: not a terminal
    with Progress(10, "work", delay=0.0) as bar:
        for _ in range(10):
            bar.update()
    assert bar.done == 10 and capsys.readouterr().err == ""


def test_a_jupyter_kernel_turns_it_on(monkeypatch):
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert interactive()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not interactive()  # IPython imported, but no kernel (a plain script)


def test_set_enabled_forces_either_way(monkeypatch):
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    set_enabled(False)  # what the CLI does for --json
    assert not interactive()
    set_enabled(True)
    assert interactive()


def test_stderr_fallback_without_tqdm(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    with Progress(4, "pseudospectrum", unit="pt", enabled=True, delay=0.0) as bar:
        for _ in range(4):
            bar.update()
    err = capsys.readouterr().err
    assert err.startswith("\rpseudospectrum [") and "4/4 pt" in err and err.endswith("\n")


def test_the_delay_keeps_quick_work_silent(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    with Progress(3, "quick", enabled=True, delay=60.0) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_tqdm_draws_it_when_installed(capsys):
    pytest.importorskip("tqdm")
    assert list(track(range(5), "layers", enabled=True)) == [0, 1, 2, 3, 4]
    with Progress(2, "tqdm bar", enabled=True, delay=0.0) as bar:
        bar.update(2)
    assert "tqdm bar" in capsys.readouterr().err


def test_pseudospectrum_reports_progress_and_keeps_its_numbers(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    sys_ = ssmctl.init("s4", d_model=1, d_state=8, n_layers=1).layers[0].system()
    re = np.linspace(-1.2, 1.2, 12)
    set_enabled(False)
    quiet = ssmctl.pseudospectrum(sys_, re, re)
    assert capsys.readouterr().err == ""
    set_enabled(True)
    loud = ssmctl.pseudospectrum(sys_, re, re)
    assert "sigma_min(zI - A) [" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet, loud)
