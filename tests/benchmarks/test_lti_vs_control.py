"""Keeps benchmarks/lti_vs_control.py from rotting: one tiny case through the real code paths.

Not a timing test: it checks that the rows run, that ssmctl and python-control agree on the rows ssmctl has,
that failures of either side are recorded instead of raised, and that the JSON is strict.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import ssmctl
from benchmarks import lti_vs_control as bench
from benchmarks._common import strict_json, write_json

control = pytest.importorskip("control")

CASE = bench.Case(N=8, io="SISO", seed=3)


@pytest.fixture(scope="module")
def tiny():
    sys_ = bench.make_system(CASE.N, CASE.m, CASE.m, CASE.seed)
    return sys_, ssmctl.to_control(sys_)


def _row(tiny, analysis, **kw):
    sys_, cs = tiny
    return bench.run_row(CASE, analysis, system=sys_, control_system=cs, repeat_target=0.0, **kw)


@pytest.mark.parametrize("analysis", ["impulse", "frequency_response", "dc_gain"])
def test_existing_rows_agree_with_python_control(tiny, analysis):
    row = _row(tiny, analysis)
    assert row["status"] == "ok", row
    assert row["max_rel_diff"] < 1e-10
    assert row["t_control"] > 0 and row["t_ssmctl"] > 0
    assert row["ratio"] == pytest.approx(row["t_control"] / row["t_ssmctl"])


def test_system_is_stable_s4d_shaped(tiny):
    sys_, cs = tiny
    r = np.abs(sys_.lam)
    assert sys_.output == "conj_pair" and cs.nstates == 2 * CASE.N
    assert 0.9 < r.min() and r.max() < 1.0


@pytest.mark.parametrize("analysis", ["h2", "hinf", "hsv", "stability_margins"])
def test_norm_rows_agree_or_report_missing(tiny, analysis):
    row = _row(tiny, analysis)
    spec = bench.ANALYSES[analysis]
    if hasattr(ssmctl, spec.ssmctl_name):
        assert row["status"] == "ok", row
        if analysis == "stability_margins":
            # python-control's margins can be wrong; judge both against G(e^{iω}) and compare only if it passes.
            assert row["margin_check_ssmctl"] == []
            if row["margin_check_control"]:
                return
        assert row["max_rel_diff"] < 1e-6
    else:
        assert row["status"] == "missing"
        assert f"missing function ssmctl.{spec.ssmctl_name}" in row["error_ssmctl"]
    assert row["error_control"] is None and row["t_control"] > 0


def test_missing_or_raising_function_is_recorded(tiny, monkeypatch):
    monkeypatch.delattr(ssmctl, "dc_gain")
    row = _row(tiny, "dc_gain")
    assert row["status"] == "missing" and "missing function ssmctl.dc_gain" in row["error_ssmctl"]

    def broken(sys, L):
        raise ssmctl.errors.ShapeError("boom: bad shape")

    monkeypatch.setattr(ssmctl, "impulse_response", broken)
    row = _row(tiny, "impulse")
    assert row["status"] == "error" and row["error_ssmctl"] == "ShapeError: boom: bad shape"
    assert row["t_control"] > 0 and row["ratio"] is None


def test_raising_baseline_is_recorded_with_its_time(tiny, monkeypatch):
    def broken(cs):
        raise IndexError("index 0 is out of bounds")

    monkeypatch.setitem(bench.ANALYSES, "dc_gain", dataclasses.replace(bench.ANALYSES["dc_gain"], call_control=broken))
    row = _row(tiny, "dc_gain")
    assert row["status"] == "error" and row["error_control"] == "IndexError: index 0 is out of bounds"
    assert row["t_control"] is not None and "t_control is the time until the error" in row["notes"]
    assert row["error_ssmctl"] is None and row["ratio"] is None


def test_h2_closed_form_matches_slycot(tiny):
    sys_, cs = tiny
    assert bench._h2_closed_form(sys_) == pytest.approx(control.norm(cs, 2, method="slycot"), rel=1e-9)


def test_slow_baseline_is_skipped_with_an_extrapolated_estimate(tiny):
    measured = {("hinf", "SISO"): {4: 1.0}}
    row = _row(tiny, "hinf", measured=measured, baseline_timeout=5.0)
    assert row["status"] == "skipped" and row["extrapolated"] and row["t_control"] is None
    assert row["t_control_estimate"] == pytest.approx(8.0)  # 1 s · (8/4)^3, H∞'s cubic cost
    assert "extrapolated from N=4" in row["estimate_source"]
    t, how = bench.estimate_control_seconds("hinf", "SISO", 16, {("hinf", "SISO"): {2: 0.1, 4: 0.4}})
    assert t == pytest.approx(0.4 * 4**2) and "fitted on N=2,4" in how


def test_margin_check_on_a_pure_gain():
    # G ≡ k = 0.5: no crossovers, so gm = pm = inf, and |1 + G| = 1.5 everywhere.
    sys_ = ssmctl.DiagonalLTI(np.array([0.5]), np.zeros((1, 1)), np.zeros((1, 1)), [[0.5]], output="real")
    nan, inf = float("nan"), float("inf")
    assert bench.check_margins(sys_, (inf, inf, 1.5, nan, nan, 0.3)) == []
    problems = bench.check_margins(sys_, (inf, inf, inf, nan, nan, nan))
    assert len(problems) == 1 and "sm = inf" in problems[0]


def test_strict_json(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": float("inf"), "b": [np.nan, np.float64(2.0)], "c": (1, -math.inf)})

    def refuse(token):
        raise AssertionError(f"non-strict JSON literal {token}")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["a"] is None and data["b"] == [None, 2.0] and data["c"] == [1, None]
    assert {d["path"]: d["value"] for d in data["nonfinite_values"]} == {"$.a": "inf", "$.b[0]": "nan", "$.c[1]": "-inf"}
    assert strict_json({"z": 1 + 2j}) == {"z": {"re": 1.0, "im": 2.0}}


def test_cli_writes_schema_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--sizes", "8", "--io", "siso", "--analyses", "impulse,dc_gain", "--no-layer",
                     "--no-findings", "--repeat-target", "0", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["schema"] == bench.SCHEMA
    assert [r["analysis"] for r in data["rows"]] == ["impulse", "dc_gain"]
    assert all(r["max_rel_diff"] < 1e-10 for r in data["rows"])
    assert data["machine"]["versions"]["control"] == control.__version__
    assert "impulse" in capsys.readouterr().out
