"""Benchmark: the selective scan alone — its kernel (CPU: "native", GPU: "triton") against the tensor form.

The tensor form is what a torch user would write without a kernel (and ssmctl's reference twin on any device);
the native kernel is what ``simulate`` uses on a CPU, the Triton kernel what it uses on a GPU. Shapes of the three input-dependent families at their published
small sizes (the scan's part of one layer, 512-token chunks carried one into the next, float32):

* Mamba-130m: d_inner 1536 channels, N = 16 states each, one decay per state;
* Mamba-2-130m: 24 heads × head dim 64, N = 128 states, one decay per head, one group;
* RG-LRU (RecurrentGemma-2B width): 2560 channels, one state each.

Reports ns per state update (tokens × channels × inputs × states) for each backend and their ratio, and checks
that the two agree (max relative difference of the outputs). Writes benchmarks/results/scan_backends.json.

With ``--device cuda`` it also measures the Triton scan's bandwidth on its unavoidable I/O — Δ, v, B, C read
once, y written once (4 bytes each; not the passes it makes) — at batch 8, 1536 channels × N 16, L = 16k in one
call, for a sweep of tile sizes, against the HBM bandwidth (``--hbm-gbps``, 4800 for an H200).

    python benchmarks/scan_backends.py                  # one thread, ~1 minute on a 2-core CPU
    python benchmarks/scan_backends.py --quick          # a few seconds
    python benchmarks/scan_backends.py --device cuda    # the GPU: triton vs tensor, and the bandwidth sweep
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
from ssmctl.engine.triton_scan import triton_available, triton_scan, triton_status  # noqa: E402

# (label, H, P, G, N, Na)
SHAPES = [
    ("mamba-130m", 1536, 1, 1, 16, 16),
    ("mamba2-130m", 24, 64, 1, 128, 1),
    ("rglru-2b", 2560, 1, 1, 1, 1),
]


# the bandwidth case: batch 8, Mamba-130m's 1536 channels × N 16, 16k tokens
BANDWIDTH = {"batch": 8, "H": 1536, "N": 16, "L": 16384}
# (BLOCK_D, BLOCK_N, T, num_warps[, layout]) tried by the bandwidth sweep; None: the kernel's default choice
TILES = [None, (16, 16, 16, 4), (32, 16, 8, 4), (16, 16, 8, 4), (16, 16, 8, 2), (32, 16, 16, 8), (64, 16, 8, 8),
         (32, 16, 8, 4, "tnd"), (64, 16, 4, 4, "tnd"), (16, 16, 16, 4, "tnd"), (32, 16, 16, 8, "tnd"),
         (64, 16, 8, 8, "tnd"), (128, 16, 4, 8, "tnd")]


def _inputs(H: int, P: int, G: int, N: int, Na: int, L: int, seed: int = 0, batch: int = 1,
            device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    dt = torch.rand(batch, L, H, generator=g) * 0.1  # step sizes of trained models' typical range
    A = -(torch.rand(H, Na, generator=g) * 8 + 0.05)
    v = torch.randn(batch, L, H, P, generator=g)
    B, C = torch.randn(batch, L, G, N, generator=g), torch.randn(batch, L, G, N, generator=g)
    return tuple(t.to(device) for t in (dt, A, v, B, C))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(backend: str, args: tuple[torch.Tensor, ...], chunk: int, slab: int | None) -> torch.Tensor:
    dt, A, v, B, C = args
    h, ys = None, []
    for t0 in range(0, dt.shape[1], chunk):
        part = slice(t0, t0 + chunk)
        res = selective_scan(dt[:, part], A, v[:, part], B[:, part], C[:, part], h, slab=slab, backend=backend)
        h = res.h_last
        ys.append(res.y)
    return torch.cat(ys, 1)


def measure(L: int, repeats: int, chunk: int = 512, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """ns per state update of the device's kernel ("native" on the CPU, "triton" on CUDA) and of the tensor form.

    Parameters
    ----------
    L : int
        Tokens, in chunks of ``chunk`` carried one into the next.
    repeats : int
        Best of this many runs.
    chunk : int
        Tokens per call.
    device : str or torch.device
        "cpu" or a CUDA device.

    Returns
    -------
    list of dict
        One row per family shape: ``<backend>_ns_per_state``, ``<backend>_tokens_per_s``, ``speedup`` (tensor
        over kernel), ``max_rel_diff`` between the two, ``kernel`` (which kernel ran).
    """
    device = torch.device(device)
    kernel = "native" if device.type == "cpu" else "triton"
    available = native_available() if kernel == "native" else triton_available(device)
    rows = []
    for label, H, P, G, N, Na in SHAPES:
        args = _inputs(H, P, G, N, Na, L, device=device)
        states = L * H * P * N
        slab = default_slab(device, H * P * N)
        row: dict[str, Any] = {"shape": label, "H": H, "P": P, "G": G, "N": N, "L": L, "states": states,
                               "kernel": kernel}
        outputs = {}
        for backend in (kernel, "tensor"):
            if backend == kernel and not available:
                row[f"{kernel}_ns_per_state"] = None
                continue
            _run(backend, args, chunk, slab)  # warm-up: compilation, workspaces
            best = float("inf")
            for _ in range(repeats):
                _sync(device)
                t = time.perf_counter()
                outputs[backend] = _run(backend, args, chunk, slab)
                _sync(device)
                best = min(best, time.perf_counter() - t)
            row[f"{backend}_ns_per_state"] = best / states * 1e9
            row[f"{backend}_tokens_per_s"] = L / best
        if kernel in outputs:
            a, b = outputs[kernel].double(), outputs["tensor"].double()
            row["max_rel_diff"] = float((a - b).abs().max() / b.abs().max())
            row["speedup"] = row["tensor_ns_per_state"] / row[f"{kernel}_ns_per_state"]
        rows.append(row)
    return rows


def bandwidth(device: str | torch.device, repeats: int = 5, sizes: dict[str, int] | None = None,
              tiles: list | None = None, hbm_gbps: float = 4800.0) -> dict[str, Any]:
    """The Triton scan's GB/s on its unavoidable I/O, per tile size, and the tensor form's on the same call.

    Parameters
    ----------
    device : str or torch.device
        A CUDA device (or "cpu" under ``TRITON_INTERPRET=1``, for tests at tiny sizes).
    repeats : int
        Best of this many timed calls per tile size.
    sizes : dict, optional
        ``batch``, ``H``, ``N``, ``L`` (default :data:`BANDWIDTH`).
    tiles : list, optional
        (BLOCK_D, BLOCK_N, T, num_warps[, layout]) tuples, None for the default choice (default :data:`TILES`).
    hbm_gbps : float
        The device's memory bandwidth, for the fraction.

    Returns
    -------
    dict
        ``io_bytes``, ``tensor`` (the tensor form, chunked as the engine runs it: seconds, io_GBps), ``rows``
        (per tile: seconds, io_GBps, fraction of HBM, max_rel_diff to the tensor form's output, or the error),
        ``best`` (the fastest row that agrees with the tensor form to 1e-4), ``speedup_over_tensor``.
    """
    device = torch.device(device)
    z = {**BANDWIDTH, **(sizes or {})}
    batch, H, N, L = z["batch"], z["H"], z["N"], z["L"]
    dt, A, v, B, C = _inputs(H, 1, 1, N, N, L, batch=batch, device=device)
    io_bytes = 4 * batch * L * (3 * H + 2 * N)  # read dt, v (H each), B, C (N each); write y (H)
    out: dict[str, Any] = {"sizes": z, "io_bytes": io_bytes, "hbm_gbps": hbm_gbps}
    # the tensor form as the engine runs it on this device (chunks of 2048 tokens, one slab each): the
    # reference every tile size's output is compared with, and the time a torch user would otherwise spend
    chunk = min(L, 2048)
    ref = None
    try:
        _run("tensor", (dt, A, v, B, C), chunk, None)
        _sync(device)
        t = time.perf_counter()
        ref = _run("tensor", (dt, A, v, B, C), chunk, None)
        _sync(device)
        sec = time.perf_counter() - t
        out["tensor"] = {"seconds": sec, "io_GBps": io_bytes / sec / 1e9, "chunk": chunk}
    except Exception as exc:  # e.g. out of memory: the kernel's numbers stand on their own
        out["tensor"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    rows = []
    for tile in (TILES if tiles is None else tiles):
        row: dict[str, Any] = {"tiles": list(tile) if tile else "default"}
        try:
            y, _, _ = triton_scan(dt, A, v, B, C, None, False, tiles=tile)  # compile, warm up
            best = float("inf")
            for _ in range(repeats):
                _sync(device)
                t = time.perf_counter()
                y, _, _ = triton_scan(dt, A, v, B, C, None, False, tiles=tile)
                _sync(device)
                best = min(best, time.perf_counter() - t)
            ref = y if ref is None else ref
            row.update(seconds=best, io_GBps=io_bytes / best / 1e9, hbm_fraction=io_bytes / best / 1e9 / hbm_gbps,
                       max_rel_diff=float((y - ref).abs().max() / ref.abs().max()))
        except Exception as exc:  # a tile size this triton / GPU refuses: record it, try the next
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
        print(f"  tiles {row['tiles']}: " + (f"{row['seconds'] * 1e3:.2f} ms, {row['io_GBps']:,.0f} GB/s "
              f"({100 * row['hbm_fraction']:.0f}% of HBM), max rel diff {row['max_rel_diff']:.1e}"
              if "seconds" in row else row["error"]), flush=True)
    # the fastest tile size among those whose output agrees with the reference
    good = [r for r in rows if "seconds" in r and r["max_rel_diff"] < 1e-4]
    out["rows"] = rows
    out["best"] = min(good, key=lambda r: r["seconds"]) if good else None
    if out["best"] is not None and "seconds" in out["tensor"]:
        out["speedup_over_tensor"] = out["tensor"]["seconds"] / out["best"]["seconds"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu (native vs tensor) or cuda (triton vs tensor, bandwidth)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (and the native kernel's)")
    p.add_argument("--hbm-gbps", type=float, default=4800.0, help="the GPU's memory bandwidth (H200: 4800)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scan_backends.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    L, repeats = (512, 1) if args.quick else (2048, 3)
    chunk = 512
    if device.type == "cuda":
        L, chunk = (4096, 4096) if args.quick else (16384, 8192)
        print(f"GPU {torch.cuda.get_device_name(device)}; {triton_status()}; L = {L}, best of {repeats}", flush=True)
    else:
        print(f"native: {native_status()}; threads {args.threads}; L = {L}, best of {repeats}", flush=True)
    rows = measure(L, repeats, chunk=chunk, device=device)
    k = rows[0]["kernel"]
    cols = [("shape", "shape"), ("states", "states"), (f"{k}_ns_per_state", f"{k} ns/state"),
            ("tensor_ns_per_state", "tensor ns/state"), ("speedup", "speedup"), ("max_rel_diff", "max rel diff")]
    shown = [{**r, **{c: (f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-")
                      for c in (f"{k}_ns_per_state", "tensor_ns_per_state")},
              "speedup": fmt_ratio(r.get("speedup")), "max_rel_diff": f"{r.get('max_rel_diff', float('nan')):.1e}",
              "states": f"{r['states']:,}"} for r in rows]
    print(text_table(shown, cols))
    payload: dict[str, Any] = {"benchmark": "scan_backends", "quick": args.quick, "threads": args.threads,
                               "device": str(device), "native_status": native_status(),
                               "triton_status": triton_status(), "machine": machine_info(("numpy", "torch")),
                               "rows": rows}
    if device.type == "cuda":
        sizes = {"L": 4096} if args.quick else None
        print(f"bandwidth on the unavoidable I/O, {BANDWIDTH if sizes is None else {**BANDWIDTH, **sizes}}:",
              flush=True)
        bw = bandwidth(device, repeats=3 if args.quick else 5, sizes=sizes, hbm_gbps=args.hbm_gbps)
        payload["bandwidth"] = bw
        if bw["best"] is not None:
            b = bw["best"]
            print(f"best tiles {b['tiles']}: {b['io_GBps']:,.0f} GB/s = {100 * b['hbm_fraction']:.0f}% of "
                  f"{args.hbm_gbps:,.0f} GB/s; tensor form {bw['tensor'].get('io_GBps', float('nan')):,.1f} GB/s "
                  f"(speedup {fmt_ratio(bw.get('speedup_over_tensor'))})")
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
