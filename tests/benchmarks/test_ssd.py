"""The SSD benchmark's run at its smallest: the same numbers as transformers, every scan timed, strict JSON."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from benchmarks.ssd import main  # noqa: E402


def test_one_layer_run_checks_and_times_every_contender(tmp_path, one_torch_thread, capsys):
    out = tmp_path / "ssd.json"
    assert main(["--layers", "1", "--lengths", "64", "--scan-tokens", "64", "--check-tokens", "40",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    scans = [r["backend"] for r in report["scan_alone"]]
    assert scans[0] == "ssd" and "tensor" in scans
    assert all(err < 1e-4 for err in report["check_last_layer_rel_err"].values())
    assert set(report["check_last_layer_rel_err"]) == set(scans)
    ref, *ours = report["rows"]
    assert ref["contender"] == "transformers forward" and [r["scan"] for r in ours] == scans
    for r in ours:
        assert r["tokens_per_s"] == pytest.approx(64 / r["seconds"])
        assert r["speed_vs_transformers"] == pytest.approx(ref["seconds"] / r["seconds"])
    assert report["size"] == {"d_model": 768, "heads": 24, "head_dim": 64, "d_state": 128, "groups": 1, "layers": 1}
