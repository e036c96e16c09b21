"""Benchmark: Mamba-2 at 130m size — ssmctl's SSD form vs its other scans vs transformers' own forward, one process.

The same random-init transformers Mamba-2 (d_model 768, 24 heads × head dim 64, N 128, one group, as
``transformers.Mamba2Config``'s defaults; ``--layers`` of them, 24 at full size) runs on the same random tokens,
batch 1:

* transformers — ``Mamba2Model`` forward, no hooks (its torch path is itself a chunked SSD: the reference a
  user would otherwise run);
* ssmctl — ``simulate(model, tokens, scan=...)``: the whole per-layer statistics on top of the forward, with
  the scan "ssd" (matrix form), "native" (compiled CPU kernel, CPU only) and "tensor" (cumulative-sum form, up
  to ``--tensor-max-tokens``);
* the scan alone on one layer's shapes (one chunk of tokens, the driver's size on this device), which is what
  ``ssd_preferred``'s per-device rule rests on.

Before timing, every layer's output of a short ssmctl run is checked against transformers' (the numbers are
the same computation). Reports tokens/s and peak extra memory (CPU: resident-set high-water mark over the
run's start, in this process; CUDA: the allocator's peak) and their ratios to transformers; writes strict JSON.

    python benchmarks/ssd.py                                   # CPU: 4 layers, L = 1k, 4k (minutes, 2 cores)
    python benchmarks/ssd.py --device cuda --layers 24 --lengths 4096,16384,65536 --out $OUT/ssd_cuda.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as ltv_simulate.py: no spinning OpenMP threads

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_info, text_table, write_json  # noqa: E402
from benchmarks.ltv_simulate import _sync, timed  # noqa: E402
from ssmctl.checkpoints.load import load  # noqa: E402
from ssmctl.engine.driver import default_chunk, resolve_device, simulate  # noqa: E402
from ssmctl.engine.native import native_available  # noqa: E402
from ssmctl.engine.scan import selective_scan  # noqa: E402

VOCAB = 1000
SIZE = {"d_model": 768, "heads": 24, "head_dim": 64, "d_state": 128, "groups": 1}


def build(n_layers: int, device: torch.device, seed: int = 0):
    """transformers' Mamba2Model on ``device`` and the same weights read back by ssmctl.load."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.Mamba2Config(
        vocab_size=VOCAB, hidden_size=SIZE["d_model"], num_hidden_layers=n_layers, num_heads=SIZE["heads"],
        head_dim=SIZE["head_dim"], state_size=SIZE["d_state"], n_groups=SIZE["groups"], expand=2, chunk_size=256,
    )
    full = transformers.Mamba2ForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        full.save_pretrained(tmp)
        ours = load(tmp)
    return full.backbone.to(device), ours


def check_outputs(hf, ours, device: torch.device, scans: list[str], L: int = 300) -> dict[str, float]:
    """max |ours − transformers| / max |transformers| of the last layer's output, per scan (a short run)."""
    ids = torch.randint(0, VOCAB, (1, L), generator=torch.Generator().manual_seed(1))
    seen = {}
    hook = hf.layers[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("out", o[0] if isinstance(o, tuple)
                                                                                  else o))
    with torch.no_grad():
        hf(ids.to(device))
    hook.remove()
    ref = seen["out"].double().cpu()
    errs = {}
    for scan in scans:
        out = simulate(ours, ids, device=device, scan=scan, keep_output=True).output.double()
        errs[scan] = float((out - ref).abs().max() / ref.abs().max())
    return errs


def scan_alone(device: torch.device, T: int, repeats: int) -> list[dict[str, Any]]:
    """One layer's scan on T tokens (the driver's chunk): tokens/s per backend."""
    H, P, N, G = SIZE["heads"], SIZE["head_dim"], SIZE["d_state"], SIZE["groups"]
    g = torch.Generator().manual_seed(0)
    dt = (torch.rand(1, T, H, generator=g) * 0.1).to(device)
    A = (-torch.rand(H, 1, generator=g) * 15 - 1).to(device)
    v, B, C = (torch.randn(*s, generator=g).to(device) for s in ((1, T, H, P), (1, T, G, N), (1, T, G, N)))
    h0 = torch.zeros(1, H, P, N, device=device)
    rows = []
    for backend in _scans(device):
        kw = {"slab": 16} if backend == "tensor" and device.type == "cpu" else {}
        selective_scan(dt, A, v, B, C, h0, backend=backend, **kw)
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            selective_scan(dt, A, v, B, C, h0, backend=backend, **kw)
            _sync(device)
            best = min(best, time.perf_counter() - t)
        rows.append({"backend": backend, "tokens": T, "seconds": best, "tokens_per_s": T / best})
    return rows


def _scans(device: torch.device) -> list[str]:
    return ["ssd"] + (["native"] if device.type == "cpu" and native_available() else []) + ["tensor"]


def _best(fn, device: torch.device, repeats: int) -> tuple[float, int]:
    runs = [timed(fn, device)[:2] for _ in range(repeats)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int, default=4, help="Mamba-2 layers (24 at 130m size)")
    p.add_argument("--lengths", default="1024,4096", help="comma-separated sequence lengths")
    p.add_argument("--tensor-max-tokens", type=int, default=None,
                   help="longest L the tensor scan runs (default: 1024 on CPU, where it is slow; all on a GPU)")
    p.add_argument("--repeats", type=int, default=1, help="best of this many runs per cell")
    p.add_argument("--scan-tokens", type=int, default=None,
                   help="tokens of the scan-alone timing (default: the driver's chunk, 512 on CPU; 4096 on a GPU)")
    p.add_argument("--check-tokens", type=int, default=300, help="tokens of the check against transformers")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ssd.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    lengths = [int(x) for x in args.lengths.split(",")]
    tensor_max = args.tensor_max_tokens if args.tensor_max_tokens is not None else (
        1024 if device.type == "cpu" else max(lengths))
    hf, ours = build(args.layers, device)
    scans = _scans(device)
    check = check_outputs(hf, ours, device, scans, args.check_tokens)
    print(f"Mamba-2 130m size, {args.layers} layers, on {device}: last layer's output vs transformers, max rel err "
          + ", ".join(f"{k} {v:.1e}" for k, v in check.items()))
    T = default_chunk(device, SIZE["heads"] * SIZE["head_dim"] * SIZE["d_state"])
    alone = scan_alone(device, args.scan_tokens or (512 if device.type == "cpu" else 4096), max(3, args.repeats))
    print(f"\nscan alone, one layer (H {SIZE['heads']}, P {SIZE['head_dim']}, N {SIZE['d_state']}), "
          f"{alone[0]['tokens']} tokens:")
    print(text_table([{"b": r["backend"], "t": f"{r['tokens_per_s']:,.0f}"} for r in alone],
                     [("b", "scan"), ("t", "tokens/s")]))

    rows = []
    warm = torch.randint(0, VOCAB, (1, min(256, *lengths)))
    with torch.no_grad():
        hf(warm.to(device))
    for scan in scans:
        simulate(ours, warm, device=device, scan=scan)
    for L in lengths:
        ids = torch.randint(0, VOCAB, (1, L), generator=torch.Generator().manual_seed(L))
        ids_dev = ids.to(device)
        first = len(rows)

        def forward():
            with torch.no_grad():
                return hf(ids_dev).last_hidden_state.shape

        try:
            sec, mem = _best(forward, device, args.repeats)
            ref = {"contender": "transformers forward", "L": L, "seconds": sec, "tokens_per_s": L / sec,
                   "peak_bytes": mem}
        except torch.cuda.OutOfMemoryError as exc:  # a result too: the reference does not fit
            ref = {"contender": "transformers forward", "L": L, "error": f"OutOfMemoryError: {exc}"[:200]}
            torch.cuda.empty_cache()
        rows.append(ref)
        for scan in scans:
            if scan == "tensor" and L > tensor_max:
                continue
            sec, mem = _best(lambda: simulate(ours, ids, device=device, scan=scan), device, args.repeats)
            row = {"contender": f"ssmctl simulate, {scan} scan", "scan": scan, "L": L, "seconds": sec,
                   "tokens_per_s": L / sec, "peak_bytes": mem}
            if "seconds" in ref:
                row["speed_vs_transformers"] = ref["seconds"] / sec
                row["memory_vs_transformers"] = mem / ref["peak_bytes"] if ref["peak_bytes"] > 0 else None
            rows.append(row)
        for r in rows[first:]:
            print(f"L={r['L']:>6}  {r['contender']:<32} "
                  + (f"{r['tokens_per_s']:>10,.0f} tok/s  {r['peak_bytes'] / 2**20:>9,.0f} MiB"
                     if "seconds" in r else r["error"])
                  + (f"  {r['speed_vs_transformers']:.2f}× speed, {r['memory_vs_transformers']:.3f}× memory"
                     if r.get("memory_vs_transformers") is not None else ""))
    import transformers

    payload = {
        "benchmark": "ssd", "device": str(device), "size": {**SIZE, "layers": args.layers}, "batch": 1,
        "torch_threads": torch.get_num_threads(), "driver_chunk_elementwise": T,
        "check_last_layer_rel_err": check, "scan_alone": alone, "rows": rows,
        "machine": machine_info(("numpy", "torch", "transformers")),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "transformers": transformers.__version__,
    }
    print(f"\nwrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
