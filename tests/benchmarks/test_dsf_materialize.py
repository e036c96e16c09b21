"""The Φ benchmark's measurement: the restated loop and cumulative-product forms agree with ssmctl's Φ."""

from __future__ import annotations

from benchmarks.dsf_materialize import measure


def test_measure_runs_all_three_forms_and_they_agree(one_torch_thread):
    rows = measure([12, 20], repeats=1, loop_max=12)
    assert [r["L"] for r in rows] == [12, 20]
    assert rows[0]["loop_s"] > 0 and rows[1]["loop_s"] is None
    for r in rows:
        assert r["ssmctl_s"] > 0 and r["cumprod_s"] > 0
        assert r["cumprod_ratio"] == r["cumprod_s"] / r["ssmctl_s"]
        assert r["cumprod_max_rel_diff"] < 1e-5  # float32 forms against ssmctl's float64
    assert rows[0]["loop_max_rel_diff"] < 1e-5
