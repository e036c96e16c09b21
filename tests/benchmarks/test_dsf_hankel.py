"""The Hankel benchmark's measurement: the factored path and the SVD of the materialized Φ agree."""

from __future__ import annotations

from benchmarks.dsf_hankel import measure


def test_measure_compares_both_paths_and_they_agree(one_torch_thread):
    rows = measure([24, 40], repeats=1)
    assert [r["L"] for r in rows] == [24, 40]
    for r in rows:
        assert r["ssmctl_s"] > 0 and r["svd_of_phi_s"] > 0 and r["ratio"] == r["svd_of_phi_s"] / r["ssmctl_s"]
        assert r["ranks_agree"] and r["max_rel_diff"] < 1e-12 and 0 < r["max_rank"] <= r["states"]
