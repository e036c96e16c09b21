"""The Φ benchmark's measurement: the restated loop and cumulative-product forms agree with ssmctl's Φ, the skip
rule extrapolates instead of running, and the one-channel and streamed whole-layer parts check their Φ."""

from __future__ import annotations

import pytest

from benchmarks.dsf_materialize import cumprod_bytes, measure, one_channel, whole_layer


def test_measure_runs_all_three_forms_and_they_agree(one_torch_thread):
    rows = measure([12, 20], repeats=1, baseline_timeout=1e9)
    assert [r["L"] for r in rows] == [12, 20]
    for r in rows:
        assert r["ssmctl_s"] > 0 and r["cumprod_s"] > 0 and r["loop_s"] > 0
        assert r["cumprod_measured"] and r["loop_measured"]
        assert r["cumprod_ratio"] == r["cumprod_s"] / r["ssmctl_s"]
        assert r["cumprod_max_rel_diff"] < 1e-5  # float32 forms against ssmctl's float64
        assert r["loop_max_rel_diff"] < 1e-5


def test_skip_rule_extrapolates_the_loop_and_the_memory_cap_skips_cumprod(one_torch_thread):
    cap = cumprod_bytes(64, 16, 12)  # fits L = 12, not L = 20
    rows = measure([12, 20], repeats=1, baseline_timeout=0.0, cumprod_max_bytes=cap)
    first, second = rows
    assert first["loop_measured"] and first["cumprod_measured"]  # nothing smaller to extrapolate from
    assert second["loop_s"] is None and not second["loop_measured"]
    # One measured size: the loop's cubic exponent.
    assert second["loop_estimate_s"] == pytest.approx(first["loop_s"] * (20 / 12) ** 3)
    assert "extrapolated from L=12" in second["loop_estimate_source"]
    assert second["cumprod_s"] is None and "GiB" in second["cumprod_skipped"]
    assert second["cumprod_estimate_s"] == pytest.approx(first["cumprod_s"] * (20 / 12) ** 2)


def test_one_channel_matches_direct_products(one_torch_thread):
    row = one_channel(64, repeats=1, n_checks=16)
    assert row["seconds"] > 0 and row["checked_entries"] == 18
    assert row["max_rel_diff_direct"] < 1e-12


def test_streamed_layer_matches_the_recurrence_within_its_budget(one_torch_thread):
    row = whole_layer(8, 48, max_bytes=2**16)
    assert row["lazy"] and row["row_blocks"] > 1 and row["channels"] == 16
    assert row["max_rel_diff_recurrence"] < 1e-12
    assert 0 < row["peak_bytes"] < 2**21  # the core's float64 copies (≈ 3 × 98 KiB) and one budget's work
