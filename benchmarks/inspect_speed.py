"""Speed and memory of ``ssmctl inspect`` on a 24-layer, ~130M-parameter Mamba checkpoint (CPU).

Targets (issue "Checkpoints"): wall time under 5 s, peak memory under 2x the checkpoint size.

The checkpoint is built once from a transformers config (hidden 768, 24 layers, state 16, vocab 50280: the
sizes of state-spaces/mamba-130m) with random init and ``save_pretrained``. Each measurement runs the real
command line, ``python -m ssmctl.cli inspect PATH --json``, in a fresh subprocess; wall time is
measured around it and its peak resident memory comes from ``os.wait4`` (``ru_maxrss``), which counts
everything the process touched: the interpreter, torch, and any checkpoint pages read. A baseline process
that only imports what the command imports shows the fixed part of that.

    python benchmarks/inspect_speed.py [--keep DIR] [--repeats 3]

Prints a table and writes strict JSON to benchmarks/results/inspect_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssmctl.report import dumps, format_table  # noqa: E402

CONFIG = dict(hidden_size=768, num_hidden_layers=24, state_size=16, vocab_size=50280)
TARGET_SECONDS = 5.0
TARGET_RSS_RATIO = 2.0


_BUILD = """
import sys, torch, transformers
torch.manual_seed(0)
model = transformers.MambaForCausalLM(transformers.MambaConfig(**{config}))
model.save_pretrained(sys.argv[1])
"""


def build_checkpoint(folder: Path) -> Path:
    """Random-init MambaForCausalLM of CONFIG written with save_pretrained (skipped if already there).

    Built in a subprocess: a child forked from a large parent starts with the parent's resident pages in
    its peak-RSS count, so this process stays small (numpy only) while it measures.
    """
    if not (folder / "model.safetensors").exists():
        subprocess.run([sys.executable, "-c", _BUILD.format(config=CONFIG), str(folder)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


def safetensors_parameters(path: Path) -> int:
    """Number of parameters from the safetensors header (8-byte length + JSON), without reading data."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    total = 0
    for key, info in header.items():
        if key != "__metadata__":
            count = 1
            for s in info["shape"]:
                count *= int(s)
            total += count
    return total


def run_with_rusage(cmd: list[str]) -> tuple[float, int, int, str]:
    """Run ``cmd``, reap it with os.wait4 to get its own peak RSS (Linux ru_maxrss is in KiB)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=str(ROOT))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    return wall, int(usage.ru_maxrss) * 1024, proc.returncode, text


def stage_timings(path: Path) -> dict[str, float]:
    """In-process split of one inspect: header scan, NaN scan of every tensor, eigenvalues of every layer."""
    from ssmctl.checkpoints.inspect import layer_row
    from ssmctl.checkpoints.load import nonfinite_tensors, scan

    t0 = time.perf_counter()
    plan = scan(path)
    t1 = time.perf_counter()
    nonfinite_tensors(plan)
    t2 = time.perf_counter()
    for block in plan.blocks:
        layer_row(plan.spectral_layer(block))
    t3 = time.perf_counter()
    return {"scan_s": t1 - t0, "nonfinite_scan_s": t2 - t1, "eigenvalues_s": t3 - t2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="build/reuse the checkpoint in DIR instead of a temp dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inspect_speed.json"))
    args = parser.parse_args(argv)

    tmp = None
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ssmctl_bench_")
        folder = Path(tmp.name)
    reused = (folder / "model.safetensors").exists()
    t_build = time.perf_counter()
    build_checkpoint(folder)
    build_s = None if reused else time.perf_counter() - t_build
    size = (folder / "model.safetensors").stat().st_size
    n_params = safetensors_parameters(folder / "model.safetensors")

    cmd = [sys.executable, "-m", "ssmctl.cli", "inspect", str(folder), "--json"]
    baseline_cmd = [sys.executable, "-c", "import torch, safetensors, ssmctl.cli, ssmctl.checkpoints.inspect, ssmctl.checkpoints.load"]
    runs = []
    for _ in range(args.repeats):
        wall, rss, code, out = run_with_rusage(cmd)
        if code != 0:
            print(out, file=sys.stderr)
            raise SystemExit(f"inspect failed with exit code {code}")
        report = json.loads(out)
        runs.append({"wall_s": wall, "peak_rss_bytes": rss})
    base_wall, base_rss, _, _ = run_with_rusage(baseline_cmd)
    stages = stage_timings(folder)  # imports torch here, after the subprocess measurements

    best = min(runs, key=lambda r: r["wall_s"])
    worst_rss = max(r["peak_rss_bytes"] for r in runs)
    result: dict[str, Any] = {
        "schema": 1,
        "benchmark": "ssmctl inspect on a transformers Mamba checkpoint (random init, save_pretrained)",
        "config": CONFIG,
        "parameters": n_params,
        "layers_reported": len(report["layers"]),
        "checkpoint_bytes": size,
        "checkpoint_build_s": build_s,
        "checkpoint_reused": reused,
        "command": "python -m ssmctl.cli inspect PATH --json",
        "runs": runs,
        "wall_s_best": best["wall_s"],
        "wall_s_median": sorted(r["wall_s"] for r in runs)[len(runs) // 2],
        "peak_rss_bytes_max": worst_rss,
        "peak_rss_over_checkpoint": worst_rss / size,
        "baseline_import_wall_s": base_wall,
        "baseline_import_rss_bytes": base_rss,
        "in_process_stages": stages,
        "targets": {"wall_s": TARGET_SECONDS, "peak_rss_over_checkpoint": TARGET_RSS_RATIO},
        "meets_targets": best["wall_s"] < TARGET_SECONDS and worst_rss / size < TARGET_RSS_RATIO,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "units": {"wall": "seconds, whole subprocess incl. interpreter start and imports", "rss": "bytes (ru_maxrss)"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(result) + "\n")

    mib = 1024 * 1024
    rows = [
        {"what": "checkpoint (model.safetensors)", "value": f"{size / mib:.0f} MiB, {n_params / 1e6:.1f}M params"},
        {"what": "inspect wall time (best / median)", "value": f"{result['wall_s_best']:.2f} s / {result['wall_s_median']:.2f} s  (target < {TARGET_SECONDS:g} s)"},
        {"what": "inspect peak RSS", "value": f"{worst_rss / mib:.0f} MiB = {worst_rss / size:.2f} x checkpoint  (target < {TARGET_RSS_RATIO:g} x)"},
        {"what": "baseline: imports only", "value": f"{base_wall:.2f} s, {base_rss / mib:.0f} MiB"},
        {"what": "in-process: scan / NaN scan / eigenvalues", "value": " / ".join(f"{v:.3f} s" for v in stages.values())},
        {"what": "meets targets", "value": "yes" if result["meets_targets"] else "NO"},
    ]
    print(format_table(rows, ["what", "value"], ["measure", "value"]))
    print(f"\nwrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
