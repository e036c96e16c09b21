"""Benchmark: ssmctl's LTV engine versus transformers' forward with hooks, side by side in one process.

Both run the same random-init transformers Mamba model on the same random tokens:

* baseline — what a user would otherwise write: ``MambaModel`` forward (its CPU path loops over tokens and
  materializes (batch, d_inner, L, N) tensors) with a forward hook on every mixer's ``x_proj`` that keeps the
  layer's Δ_t = softplus(dt_proj(δ_t)) and computes Ā_t = exp(Δ_t A) (reduced to min / mean / max on the spot,
  so the hook does not keep L·d_inner·N numbers per layer);
* ssmctl — ``simulate(model, tokens)`` with its default chunking: per-layer histograms and quantiles of |Ā_t|
  and Δ_t, memory horizons per token, transition-product decay at power-of-two lags. On the CPU its scan is the
  compiled kernel (``scan_backend`` "native"); the same run with the tensor scan (the GPU's path) is timed
  next to it up to ``--tensor-max-tokens``.

Sizes: (a) small: d_model 256, 2 layers, d_state 16, L ∈ {1k, 4k, 16k, 64k}; (b) mamba-130m size: d_model 768,
24 layers, d_state 16, L ∈ {1k, 4k}; (c) Mamba-2 130m size: d_model 768, 24 layers, d_state 128, head dim 64,
one group, against transformers' own ``Mamba2Model`` forward without hooks (its torch path: chunked SSD), the
same weights and tokens (on a GPU only by default). On a GPU the lengths are (a) {4k, 16k, 64k}, (b) {4k, 16k},
(c) {4k, 16k, 64k}. Reports tokens/s and peak memory (extra resident memory over the run, the resident-set
high-water mark of a fresh process per run on CPU — in one long process the C allocator's heap history shows
through —; ``torch.cuda.max_memory_allocated`` on a GPU) and the fraction of the projection-GEMM roof (the
projections' FLOPs at the sgemm rate measured in the same run). The scan's own bandwidth on a GPU is
``benchmarks/scan_backends.py --device cuda``. Writes benchmarks/results/ltv_simulate.json (strict JSON).

    python benchmarks/ltv_simulate.py                  # full run (minutes on a 2-core CPU)
    python benchmarks/ltv_simulate.py --quick          # a few-second smoke run
    python benchmarks/ltv_simulate.py --device cuda    # sizes a, b, c at the GPU's lengths
"""

from __future__ import annotations

import os

# GNU OpenMP threads spin while waiting; on a shared, oversubscribed CPU that stalls every small op. Passive
# waiting is set before torch loads (both contenders run under it); an explicit setting is respected.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssmctl.checkpoints.load import load  # noqa: E402
from ssmctl.report import dumps  # noqa: E402
from ssmctl.engine.driver import resolve_device, simulate  # noqa: E402

SIZES = {
    "a": {"label": "small", "d_model": 256, "n_layers": 2, "d_state": 16, "lengths": [1024, 4096, 16384, 65536]},
    "b": {"label": "mamba-130m size", "d_model": 768, "n_layers": 24, "d_state": 16, "lengths": [1024, 4096]},
    "c": {"label": "mamba2-130m size", "family": "mamba2", "d_model": 768, "n_layers": 24, "d_state": 128,
          "headdim": 64, "lengths": [1024, 4096]},
}
CUDA_LENGTHS = {"a": [4096, 16384, 65536], "b": [4096, 16384], "c": [4096, 16384, 65536]}
QUICK = {
    "a": {"label": "small (quick)", "d_model": 256, "n_layers": 2, "d_state": 16, "lengths": [512, 2048]},
    "c": {"label": "mamba2 small (quick)", "family": "mamba2", "d_model": 128, "n_layers": 2, "d_state": 32,
          "headdim": 32, "lengths": [512]},
}
VOCAB = 1000


def _trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the resident set tracks what is in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak extra memory of a block: the kernel's resident-set high-water mark (VmHWM, reset through
    /proc/self/clear_refs) over the resident set at the start (CPU), or the CUDA allocator's peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        _trim()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _status_kib("VmRSS")
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current resident set
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self.bytes = (_status_kib("VmHWM") - self.base) * 1024


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def build_models(size: dict[str, Any], device: torch.device, seed: int = 0):
    import transformers

    torch.manual_seed(seed)
    if size.get("family") == "mamba2":
        d_inner = 2 * size["d_model"]
        cfg = transformers.Mamba2Config(
            vocab_size=VOCAB, hidden_size=size["d_model"], state_size=size["d_state"],
            num_hidden_layers=size["n_layers"], expand=2, head_dim=size["headdim"],
            num_heads=d_inner // size["headdim"], n_groups=1, chunk_size=256,
        )
        full = transformers.Mamba2ForCausalLM(cfg).eval()
    else:
        cfg = transformers.MambaConfig(
            vocab_size=VOCAB, hidden_size=size["d_model"], state_size=size["d_state"],
            num_hidden_layers=size["n_layers"], use_mambapy=False, use_associative_scan=False,
        )
        full = transformers.MambaForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:  # the same weights, written and read back by ssmctl.load
        full.save_pretrained(tmp)
        ours = load(tmp)
    return full.backbone.to(device), ours


def run_baseline(hf, ids: torch.Tensor) -> dict[str, Any]:
    """transformers forward; hooks keep each layer's Δ_t and reduce Ā_t = exp(Δ_t A) to min / mean / max.

    Mamba-2: the forward alone, no hooks (what the issue measures against: transformers' own forward).
    """
    if type(hf).__name__ == "Mamba2Model":
        with torch.no_grad():
            hf(ids)
        return {"layers": len(hf.layers)}
    kept: list[dict[str, Any]] = []

    def hook(module, inputs, output, mixer):
        r, N = mixer.time_step_rank, mixer.ssm_state_size
        ts, _, _ = torch.split(output, [r, N, N], dim=-1)
        dt = F.softplus(ts @ mixer.dt_proj.weight.T + mixer.dt_proj.bias)  # (b, L, d_inner)
        abar = torch.exp(dt[..., None] * -torch.exp(mixer.A_log.float()))  # (b, L, d_inner, N)
        kept.append({"dt": dt, "abs_min": abar.min(), "abs_mean": abar.mean(), "abs_max": abar.max()})

    handles = [layer.mixer.x_proj.register_forward_hook(lambda m, i, o, mixer=layer.mixer: hook(m, i, o, mixer))
               for layer in hf.layers]
    try:
        with torch.no_grad():
            hf(ids)
    finally:
        for h in handles:
            h.remove()
    return {"layers": len(kept)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, int, Any]:
    with PeakMemory(device) as mem:
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        seconds = time.perf_counter() - t
    return seconds, mem.bytes, out


def sgemm_roof(device: torch.device) -> float:
    """GFLOP/s of a large float32 matrix product on this device (the projections' ceiling)."""
    a = torch.randn(2048, 768, device=device)
    b = torch.randn(768, 3072, device=device)
    reps = 3 if device.type == "cpu" else 50
    a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * 2048 * 768 * 3072 * reps / (time.perf_counter() - t) / 1e9


def projection_flops_per_token(d_model: int, n_layers: int, d_state: int, expand: int = 2,
                               family: str = "mamba", headdim: int = 64, ngroups: int = 1) -> float:
    """FLOPs of one token's projections (2 per multiply-add): the GEMMs any implementation must run."""
    d_inner = expand * d_model
    if family == "mamba2":  # in_proj to (z, x, B, C, dt), out_proj
        per_layer = 2 * (d_model * (2 * d_inner + 2 * ngroups * d_state + d_inner // headdim) + d_inner * d_model)
        return float(per_layer * n_layers)
    r = math.ceil(d_model / 16)
    per_layer = 2 * (d_model * 2 * d_inner + d_inner * (r + 2 * d_state) + r * d_inner + d_inner * d_model)
    return float(per_layer * n_layers)


def memory_probe(contender: str, key: str, L: int, device: torch.device, quick: bool) -> int:
    """Peak extra memory of one run in this (fresh) process: no earlier run has shaped the heap."""
    size = (QUICK if quick else SIZES)[key]
    hf, ours = build_models(size, device)
    warm = torch.randint(0, VOCAB, (1, 256))
    ids = torch.randint(0, VOCAB, (1, L), generator=torch.Generator().manual_seed(L))
    if contender == "ssmctl":
        simulate(ours, warm, device=device)
        _, mem, _ = timed(lambda: simulate(ours, ids, device=device), device)
    else:
        run_baseline(hf, warm.to(device))
        _, mem, _ = timed(lambda: run_baseline(hf, ids.to(device)), device)
    return mem


def probe_in_subprocess(contender: str, key: str, L: int, args: argparse.Namespace) -> int | None:
    import subprocess

    cmd = [sys.executable, __file__, "--_probe", f"{contender}:{key}:{L}", "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.quick:
        cmd.append("--quick")
    # A fixed mmap threshold turns off glibc's adaptive one, under which the resident set of a process keeps
    # freed blocks depending on its allocation history (4k vs 64k tokens then differ by warm-up, not by need).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("PEAK_BYTES "):
            return int(line.split()[1])
    print(f"memory probe {contender} {key} L={L} failed: {out.stderr[-500:]}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few-second smoke run")
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", help="comma-separated: a (small), b (mamba-130m size), c (Mamba-2 130m size); "
                   "default a,b on a CPU, a,b,c on a GPU")
    p.add_argument("--lengths", help="override the sequence lengths, comma-separated")
    p.add_argument("--baseline-max-tokens", type=int, default=16384,
                   help="skip the baseline above this L (it materializes (d_inner, L, N) tensors: ~8 GB at 64k)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tensor-max-tokens", type=int, default=16384,
                   help="also time the tensor scan (when the native kernel runs) up to this length")
    p.add_argument("--repeats", type=int, default=1, help="take the best of this many runs per cell")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ltv_simulate.json"))
    p.add_argument("--memory", choices=("subprocess", "inline"),
                   help="peak memory from a fresh process per run (default; --quick: inline) or from the timing runs")
    p.add_argument("--_probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory is None:
        args.memory = "inline" if args.quick else "subprocess"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args._probe:
        contender, key, L = args._probe.split(":")
        print(f"PEAK_BYTES {memory_probe(contender, key, int(L), device, args.quick)}")
        return 0
    table = QUICK if args.quick else SIZES
    chosen = args.sizes or ("a,b,c" if device.type == "cuda" else "a,b")
    sizes = {k: dict(table[k]) for k in chosen.split(",") if k in table}  # in the order asked for
    if device.type == "cuda" and not args.quick:
        for k, s in sizes.items():
            s["lengths"] = CUDA_LENGTHS[k]
    if args.lengths:
        for s in sizes.values():
            s["lengths"] = [int(x) for x in args.lengths.split(",")]
    env = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "ssmctl_triton_tiles": os.environ.get("SSMCTL_TRITON_TILES") or None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "memory_method": "peak resident set (VmHWM) over the start of the run, in a fresh process per run "
        "(MALLOC_MMAP_THRESHOLD_=131072)"
        if args.memory == "subprocess" else "peak resident set over the start of the run, in the timing process",
    }
    env["sgemm_gflops"] = sgemm_roof(device)
    print(f"device {device}, torch {torch.__version__}, threads {env['threads']}, OMP_WAIT_POLICY "
          f"{env['omp_wait_policy']}, sgemm {env['sgemm_gflops']:.0f} GFLOP/s, load {os.getloadavg()[0]:.2f}")
    rows = []
    for key, size in sizes.items():
        hf, ours = build_models(size, device)
        warm = torch.randint(0, VOCAB, (1, 256))
        simulate(ours, warm, device=device)
        run_baseline(hf, warm.to(device))
        flops = projection_flops_per_token(size["d_model"], size["n_layers"], size["d_state"],
                                           family=size.get("family", "mamba"), headdim=size.get("headdim", 64))
        # every ssmctl run first, then the baselines: the baseline's multi-GB allocations would otherwise
        # leave the heap fragmented under the ssmctl runs that follow
        size_rows = []
        for L in size["lengths"]:
            ids = torch.randint(0, VOCAB, (1, L), generator=torch.Generator().manual_seed(L))
            load0 = os.getloadavg()[0]
            best = None
            for _ in range(args.repeats):
                sec, mem, res = timed(lambda: simulate(ours, ids, device=device), device)
                if best is None or sec < best[0]:
                    best = (sec, mem, res)
            sec, mem, res = best
            row = {
                "size": key, "label": size["label"], "family": size.get("family", "mamba"),
                "baseline": "transformers forward" if size.get("family") == "mamba2" else "transformers + hooks",
                "d_model": size["d_model"], "n_layers": size["n_layers"],
                "d_state": size["d_state"], "L": L, "ssmctl_tokens_per_s": L / sec, "ssmctl_seconds": sec,
                "ssmctl_peak_bytes": mem, "chunk": res.chunk, "slab": res.slab, "scan_backend": res.scan_backend,
                "scan_fallback_columns": int(sum(res.scan_fallback.values())),
                "projection_roof_tokens_per_s": env["sgemm_gflops"] * 1e9 / flops,
                "load_average": [load0],
            }
            row["ssmctl_fraction_of_roof"] = row["ssmctl_tokens_per_s"] / row["projection_roof_tokens_per_s"]
            if res.scan_backend in ("native", "triton") and L <= args.tensor_max_tokens:
                # the same engine with the tensor scan, for the record of what the kernel buys
                tsec = min(timed(lambda: simulate(ours, ids, device=device, scan="tensor"), device)[0]
                           for _ in range(args.repeats))
                row.update(tensor_scan_tokens_per_s=L / tsec, tensor_scan_seconds=tsec)
            del res
            size_rows.append(row)
        for row in size_rows:
            L = row["L"]
            ids = torch.randint(0, VOCAB, (1, L), generator=torch.Generator().manual_seed(L))
            if L <= args.baseline_max_tokens:
                bsec, bmem = math.inf, 0
                for _ in range(args.repeats):
                    s_, m_, _ = timed(lambda: run_baseline(hf, ids.to(device)), device)
                    if s_ < bsec:
                        bsec, bmem = s_, m_
                row.update(baseline_tokens_per_s=L / bsec, baseline_seconds=bsec, baseline_peak_bytes=bmem,
                           speedup=bsec / row["ssmctl_seconds"], memory_ratio=bmem / max(row["ssmctl_peak_bytes"], 1))
            else:
                row.update(baseline_tokens_per_s=None, baseline_seconds=None, baseline_peak_bytes=None,
                           speedup=None, memory_ratio=None,
                           baseline_note=f"skipped above {args.baseline_max_tokens} tokens")
            if args.memory == "subprocess":
                row["ssmctl_peak_bytes"] = probe_in_subprocess("ssmctl", key, L, args)
                if row["baseline_peak_bytes"] is not None:
                    row["baseline_peak_bytes"] = probe_in_subprocess("baseline", key, L, args)
                if row["ssmctl_peak_bytes"] and row["baseline_peak_bytes"]:
                    row["memory_ratio"] = row["baseline_peak_bytes"] / row["ssmctl_peak_bytes"]
            row["memory_method"] = args.memory
            row["load_average"].append(os.getloadavg()[0])
            rows.append(row)
            _print_row(row)
            _write(args, env, rows, complete=False)  # a run cut short by a time limit keeps what it measured
        del hf, ours
        gc.collect()
    _write(args, env, rows, complete=True)
    print(f"wrote {args.out}")
    return 0


def _write(args: argparse.Namespace, env: dict[str, Any], rows: list[dict[str, Any]], complete: bool) -> None:
    out = {"schema": 1, "benchmark": "ltv_simulate", "quick": args.quick, "complete": complete, "environment": env,
           "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(out) + "\n")
    json.loads(Path(args.out).read_text())  # strict JSON round trip


def _fmt_bytes(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def _print_row(r: dict[str, Any]) -> None:
    base = "-" if r["baseline_tokens_per_s"] is None else f"{r['baseline_tokens_per_s']:,.0f}"
    speed = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
    tensor = r.get("tensor_scan_tokens_per_s")
    tensor = "" if tensor is None else f" (tensor scan {tensor:,.0f})"
    print(f"({r['size']}) {r['label']:<16} L={r['L']:>6}  ssmctl [{r['scan_backend']}] "
          f"{r['ssmctl_tokens_per_s']:>8,.0f} tok/s{tensor} "
          f"{_fmt_bytes(r['ssmctl_peak_bytes']):>10}   baseline {base:>8} tok/s {_fmt_bytes(r['baseline_peak_bytes']):>10}"
          f"   speedup {speed:>6}   roof {100 * r['ssmctl_fraction_of_roof']:.0f}%   load {r['load_average'][0]:.1f}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
