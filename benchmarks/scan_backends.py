"""Benchmark: the selective scan alone — compiled CPU kernel ("native") against the tensor form, side by side.

The tensor form is what ssmctl runs on a GPU and what a torch user would write without a kernel; the native
kernel is what ``simulate`` uses on a CPU. Shapes of the three input-dependent families at their published
small sizes (the scan's part of one layer, 512-token chunks carried one into the next, float32):

* Mamba-130m: d_inner 1536 channels, N = 16 states each, one decay per state;
* Mamba-2-130m: 24 heads × head dim 64, N = 128 states, one decay per head, one group;
* RG-LRU (RecurrentGemma-2B width): 2560 channels, one state each.

Reports ns per state update (tokens × channels × inputs × states) for each backend and their ratio, and checks
that the two agree (max relative difference of the outputs). Writes benchmarks/results/scan_backends.json.

    python benchmarks/scan_backends.py            # one thread, ~1 minute on a 2-core CPU
    python benchmarks/scan_backends.py --quick    # a few seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import fmt_ratio, machine_info, text_table, write_json  # noqa: E402
from ssmctl.engine.driver import default_slab  # noqa: E402
from ssmctl.engine.native import native_available, native_status  # noqa: E402
from ssmctl.engine.scan import selective_scan  # noqa: E402

# (label, H, P, G, N, Na)
SHAPES = [
    ("mamba-130m", 1536, 1, 1, 16, 16),
    ("mamba2-130m", 24, 64, 1, 128, 1),
    ("rglru-2b", 2560, 1, 1, 1, 1),
]


def _inputs(H: int, P: int, G: int, N: int, Na: int, L: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    dt = torch.rand(1, L, H, generator=g) * 0.1  # step sizes of trained models' typical range
    A = -(torch.rand(H, Na, generator=g) * 8 + 0.05)
    v = torch.randn(1, L, H, P, generator=g)
    B, C = torch.randn(1, L, G, N, generator=g), torch.randn(1, L, G, N, generator=g)
    return dt, A, v, B, C


def _run(backend: str, args: tuple[torch.Tensor, ...], chunk: int, slab: int | None) -> torch.Tensor:
    dt, A, v, B, C = args
    h, ys = None, []
    for t0 in range(0, dt.shape[1], chunk):
        part = slice(t0, t0 + chunk)
        res = selective_scan(dt[:, part], A, v[:, part], B[:, part], C[:, part], h, slab=slab, backend=backend)
        h = res.h_last
        ys.append(res.y)
    return torch.cat(ys, 1)


def measure(L: int, repeats: int, chunk: int = 512) -> list[dict[str, Any]]:
    rows = []
    for label, H, P, G, N, Na in SHAPES:
        args = _inputs(H, P, G, N, Na, L)
        states = L * H * P * N
        slab = default_slab(torch.device("cpu"), H * P * N)
        row: dict[str, Any] = {"shape": label, "H": H, "P": P, "G": G, "N": N, "L": L, "states": states}
        outputs = {}
        for backend in ("native", "tensor"):
            if backend == "native" and not native_available():
                row["native_ns_per_state"] = None
                continue
            _run(backend, args, chunk, slab)  # warm-up: compilation, workspaces
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                outputs[backend] = _run(backend, args, chunk, slab)
                best = min(best, time.perf_counter() - t)
            row[f"{backend}_ns_per_state"] = best / states * 1e9
            row[f"{backend}_tokens_per_s"] = L / best
        if "native" in outputs:
            a, b = outputs["native"].double(), outputs["tensor"].double()
            row["max_rel_diff"] = float((a - b).abs().max() / b.abs().max())
            row["speedup"] = row["tensor_ns_per_state"] / row["native_ns_per_state"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (and the native kernel's)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scan_backends.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    L, repeats = (512, 1) if args.quick else (2048, 3)
    print(f"native: {native_status()}; threads {args.threads}; L = {L}, best of {repeats}", flush=True)
    rows = measure(L, repeats)
    cols = [("shape", "shape"), ("states", "states"), ("native_ns_per_state", "native ns/state"),
            ("tensor_ns_per_state", "tensor ns/state"), ("speedup", "speedup"), ("max_rel_diff", "max rel diff")]
    shown = [{**r, **{k: (f"{r[k]:.2f}" if isinstance(r.get(k), float) else "-")
                      for k in ("native_ns_per_state", "tensor_ns_per_state")},
              "speedup": fmt_ratio(r.get("speedup")), "max_rel_diff": f"{r.get('max_rel_diff', float('nan')):.1e}",
              "states": f"{r['states']:,}"} for r in rows]
    print(text_table(shown, cols))
    payload = {"benchmark": "scan_backends", "quick": args.quick, "threads": args.threads,
               "native_status": native_status(), "machine": machine_info(("numpy", "torch")), "rows": rows}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
