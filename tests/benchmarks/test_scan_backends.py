"""The scan benchmark's measurement runs on the three family shapes and both backends agree there."""

from __future__ import annotations

import pytest

from benchmarks.scan_backends import SHAPES, measure
from ssmctl.engine.native import native_available, native_status


@pytest.mark.skipif(not native_available(), reason=native_status())
def test_measure_times_both_backends_and_they_agree(one_torch_thread):
    rows = measure(L=40, repeats=1, chunk=16)
    assert [r["shape"] for r in rows] == [s[0] for s in SHAPES]
    for r in rows:
        assert r["states"] == 40 * r["H"] * r["P"] * r["N"]
        assert r["native_ns_per_state"] > 0 and r["tensor_ns_per_state"] > 0
        assert r["speedup"] == pytest.approx(r["tensor_ns_per_state"] / r["native_ns_per_state"])
        assert r["max_rel_diff"] < 1e-5
