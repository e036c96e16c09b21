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


def test_bandwidth_sweep_runs_the_kernel_and_counts_its_unavoidable_io():
    # the GPU mode's code path, in a fresh process with Triton's interpreter on CPU tensors at tiny sizes
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("triton")
    code = (
        "import json; from benchmarks.scan_backends import bandwidth\n"
        "out = bandwidth('cpu', repeats=1, sizes={'batch': 2, 'H': 12, 'N': 3, 'L': 20},"
        " tiles=[None, (8, 2, 4, 1)], hbm_gbps=100.0)\n"
        "print('JSON', json.dumps(out))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("JSON "))[5:])
    assert out["io_bytes"] == 4 * 2 * 20 * (3 * 12 + 2 * 3)
    assert [r["tiles"] for r in out["rows"]] == ["default", [8, 2, 4, 1]]
    for r in out["rows"]:
        assert r["io_GBps"] == pytest.approx(out["io_bytes"] / r["seconds"] / 1e9)
        assert r["hbm_fraction"] == pytest.approx(r["io_GBps"] / 100.0)
        assert r["max_rel_diff"] < 1e-5  # against the tensor form
    assert out["best"]["seconds"] == min(r["seconds"] for r in out["rows"])
    assert out["speedup_over_tensor"] == pytest.approx(out["tensor"]["seconds"] / out["best"]["seconds"])
