"""Benchmark: Mamba's materialized Φ ("hidden attention") — ssmctl.materialize against what users run today.

The interpretability code that materializes Mamba's implicit attention (AmeenAli/HiddenMambaAttn's
``compute_attn_matrix_fn``, copied into several follow-ups) loops over output token r, input token c and the
transition products between them in Python; a vectorized variant (a masked cumulative product over an
(L, L) grid per channel and state, memory channels·N·L²) is the other common form. Both are restated below
from reading that code (benchmark-only, for comparison; not package code) and run in float32 on the same
Ā_t, B̄_t, C_t that ``layer.ltv(u)`` gives. ssmctl's time includes building that system; ssmctl computes in
float64.

Three parts, one process:

1. the comparison at 64 channels (Mamba d_model 32, N = 16), L = 128 … 1024: a baseline is measured unless
   the skip rule of ``lti_vs_control.py`` expects it to take over ``--baseline-timeout`` seconds
   (extrapolated from its two largest smaller measured L with the fitted exponent, clipped to [1, 3.5]; the
   algorithm's exponent — 3 for the loop, 2 for the cumulative product — with one), or the cumulative
   product's five (channels, N, L, L) float32 tensors would exceed ``--cumprod-max-bytes``; skipped rows
   carry the estimate, marked extrapolated;
2. Φ of one channel at L = 4096 (target < 0.5 s), spot-checked against direct products;
3. a whole mamba-130m-size layer (1536 channels, N = 16) at L = 1024 streamed as a lazy Φ under
   ``--max-bytes`` (row blocks, y = Φ·x accumulated per block), with the peak memory numpy allocated
   (tracemalloc, the core's float64 copies included), and y checked against a float64 recurrence.

Reports seconds per call and ratios, and the max relative difference of each to ssmctl's Φ (the two restated
forms include no D skip, so the diagonal is compared without it). Writes benchmarks/results/dsf_materialize.json.
BLAS and torch run on one thread (the machine is shared; timings are best-of).

    python benchmarks/dsf_materialize.py            # the three parts; a few minutes
    python benchmarks/dsf_materialize.py --quick    # L = 16, 32, one channel at L = 1024, 64-channel layer
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads its BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ssmctl  # noqa: E402
from benchmarks._common import extrapolate_seconds, fmt_ratio, machine_info, text_table, write_json  # noqa: E402
from ssmctl.systems.ltv import LTVSystem  # noqa: E402

D_MODEL, D_STATE, BATCH = 32, 16, 1


def loop_form(dA: torch.Tensor, dB: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """HiddenMambaAttn's triple loop: Φ[b, d, r, c] = Σ_n C_r (Π_{i=c+1}^{r} Ā_i) B̄_c, one pair at a time.

    dA, dB: (b, L, d, N); C: (b, L, N). Returns (b, d, L, L).
    """
    b, L, d, N = dA.shape
    out = torch.zeros(b, d, L, L, dtype=dA.dtype)
    for r in range(L):
        for c in range(r + 1):
            cur = torch.ones(b, d, N, dtype=dA.dtype)
            for i in range(r - c):
                cur = cur * dA[:, r - i]
            out[:, :, r, c] = torch.sum(C[:, r, None, :] * cur * dB[:, c], dim=-1)
    return out


def cumprod_form(dA: torch.Tensor, dB: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The vectorized form: Ā repeated over an (L, L) grid, upper part set to 1, cumulative product down the
    rows; memory b·d·N·L²."""
    b, L, d, N = dA.shape
    A = dA.permute(0, 2, 3, 1)  # (b, d, N, L)
    grid = A[..., :, None].expand(b, d, N, L, L)  # grid[..., t, s] = Ā_t
    grid = torch.tril(grid, -1) + torch.triu(torch.ones_like(grid))  # Ā_t below the diagonal (t > s), else 1
    prods = torch.cumprod(grid, dim=-2)  # prods[..., r, c] = Π_{t=c+1}^{r} Ā_t for r ≥ c
    weights = prods * dB.permute(0, 2, 3, 1)[..., None, :]  # × B̄_c
    out = torch.einsum("brn,bdnrc->bdrc", C, weights)
    return torch.tril(out)


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


CUMPROD_TENSORS = 5  # the grid's tril, the ones, their sum, the cumulative product and the weights
EXPONENTS = {"loop": 3.0, "cumprod": 2.0}  # cost ~ L^exponent at fixed channels (loop: L² pairs × L/3 steps)


def cumprod_bytes(channels: int, states: int, L: int, batch: int = BATCH) -> int:
    """Peak bytes of :func:`cumprod_form`: its (batch, channels, N, L, L) float32 tensors."""
    return CUMPROD_TENSORS * 4 * batch * channels * states * L * L


def measure(lengths: list[int], repeats: int, baseline_timeout: float = 60.0,
            cumprod_max_bytes: int = 6 * 2**30) -> list[dict[str, Any]]:
    """The 64-channel comparison: one row per L, baselines measured or skipped by the skip rule."""
    layer = ssmctl.init("mamba", d_model=D_MODEL, d_state=D_STATE, n_layers=1)[0]
    rows = []
    times: dict[str, dict[int, float]] = {"loop": {}, "cumprod": {}}
    for L in lengths:
        u = torch.randn(BATCH, L, D_MODEL, generator=torch.Generator().manual_seed(L))
        t_ours, phi = _best(lambda: np.asarray(ssmctl.materialize(layer, u)), repeats)
        system = layer.ltv(u)
        dA, dB = system.lam, system.B[..., 0]  # (b, L, d, N)
        C = system.C[:, :, 0, 0, :]  # shared by the channels: (b, L, N)
        skip = np.asarray(system.D[:, 0, 0].double())
        no_skip = phi.copy()
        no_skip[:, :, np.arange(L), np.arange(L)] -= skip[None, :, None]
        scale = np.abs(no_skip).max()
        row: dict[str, Any] = {"L": L, "channels": int(dA.shape[2]), "states": D_STATE, "ssmctl_s": t_ours}
        for name, form in (("cumprod", cumprod_form), ("loop", loop_form)):
            est = extrapolate_seconds(times[name], L, EXPONENTS[name], size="L")
            too_big = name == "cumprod" and cumprod_bytes(int(dA.shape[2]), D_STATE, L) > cumprod_max_bytes
            if too_big or (est is not None and est[0] > baseline_timeout):
                why = (f"{cumprod_bytes(int(dA.shape[2]), D_STATE, L) / 2**30:.1f} GiB > "
                       f"{cumprod_max_bytes / 2**30:.1f} GiB" if too_big else f"> {baseline_timeout:g} s expected")
                row[f"{name}_s"] = None
                row[f"{name}_measured"] = False
                row[f"{name}_skipped"] = why
                if est is not None:
                    row[f"{name}_estimate_s"], row[f"{name}_estimate_source"] = est
                    row[f"{name}_ratio_estimate"] = est[0] / t_ours
                continue
            t, out = _best(lambda: form(dA, dB, C), 1 if name == "loop" else repeats)
            times[name][L] = t
            row[f"{name}_s"] = t
            row[f"{name}_measured"] = True
            row[f"{name}_ratio"] = t / t_ours
            row[f"{name}_max_rel_diff"] = float(np.abs(out.double().numpy() - no_skip).max() / scale)
        rows.append(row)
    return rows


def _one_channel_system(L: int, seed: int = 0) -> LTVSystem:
    """Channel 0 of a Mamba layer's core at a random input of length L, as float64 numpy arrays."""
    layer = ssmctl.init("mamba", d_model=D_MODEL, d_state=D_STATE, n_layers=1)[0]
    u = torch.randn(BATCH, L, D_MODEL, generator=torch.Generator().manual_seed(seed))
    s = layer.ltv(u)
    f64 = lambda x: np.ascontiguousarray(x.detach().double().numpy())  # noqa: E731
    return LTVSystem(f64(s.lam[:, :, :1]), f64(s.B[:, :, :1]), f64(s.C[:, :, :1]), f64(s.D[:1]))


def _direct_entry(system: LTVSystem, i: int, j: int) -> float:
    """Φ_ij = C_i (Λ_i⋯Λ_{j+1}) B_j (+ D for i = j) of channel 0, by an explicit product."""
    lam, B, C = system.lam[0, :, 0], system.B[0, :, 0, :, 0], system.C[0, :, 0, 0, :]
    prod = np.prod(lam[j + 1 : i + 1], axis=0)
    return float(C[i] @ (prod * B[j]) + (np.asarray(system.D).reshape(-1)[0] if i == j else 0.0))


def one_channel(L: int, repeats: int, n_checks: int = 64, seed: int = 0) -> dict[str, Any]:
    """Seconds to materialize Φ of one channel at length L (best of ``repeats``), and its max relative
    difference to direct products at ``n_checks`` random entries on or below the diagonal."""
    system = _one_channel_system(L, seed)
    t, phi = _best(lambda: np.asarray(ssmctl.materialize(system)), repeats)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, L, n_checks)
    j = (rng.random(n_checks) * (i + 1)).astype(int)
    i, j = np.r_[i, L - 1, L - 1], np.r_[j, 0, L - 1]  # the far corner and the last diagonal entry included
    direct = np.array([_direct_entry(system, a, b) for a, b in zip(i, j)])
    diff = float(np.abs(phi[0, 0, i, j] - direct).max() / np.abs(phi).max())
    return {"L": L, "channels": 1, "states": D_STATE, "seconds": t, "target_s": 0.5, "meets_target": t < 0.5,
            "max_rel_diff_direct": diff, "checked_entries": int(i.size), "repeats": repeats}


def _recurrence(system: LTVSystem) -> np.ndarray:
    """y (b, L, channels) of a SISO-per-channel core by its float64 recurrence, vectorized over channels."""
    lam, B, C = np.asarray(system.lam), np.asarray(system.B)[..., 0], np.asarray(system.C)[..., 0, :]
    b, L, ch, N = lam.shape
    x = np.asarray(system.inputs).reshape(b, L, ch)
    D = np.asarray(system.D).reshape(ch)
    h = np.zeros((b, ch, N))
    y = np.empty((b, L, ch))
    for t in range(L):  # the reference: token by token, nothing shared with materialize
        h = lam[:, t] * h + B[:, t] * x[:, t, :, None]
        y[:, t] = np.einsum("bcn,bcn->bc", C[:, t], h) + D * x[:, t]
    return y


def whole_layer(d_model: int, L: int, max_bytes: int, seed: int = 0) -> dict[str, Any]:
    """A Mamba layer (d_inner = 2·d_model channels, N = 16) at length L: its lazy Φ streamed row block by row
    block under ``max_bytes``, y = Φ·x accumulated per block; seconds, numpy's traced peak memory, and y
    against the float64 recurrence."""
    layer = ssmctl.init("mamba", d_model=d_model, d_state=D_STATE, n_layers=1)[0]
    u = torch.randn(BATCH, L, d_model, generator=torch.Generator().manual_seed(seed))
    s = layer.ltv(u)
    f64 = lambda x: np.ascontiguousarray(x.detach().double().numpy())  # noqa: E731
    system = LTVSystem(f64(s.lam), f64(s.B), f64(s.C), f64(s.D), inputs=f64(s.inputs))
    ch = int(np.prod(system.channel_shape))
    system_bytes = sum(np.asarray(a).nbytes for a in (system.lam, system.B, system.C, system.inputs))
    tracemalloc.start()
    t0 = time.perf_counter()
    phi = ssmctl.materialize(system, max_bytes=max_bytes)
    x = phi.inputs
    y = np.zeros((BATCH, L, ch))
    blocks = 0
    for r0, r1, blk in phi.row_blocks():
        y[:, r0:r1] = np.einsum("bcij,bjc->bic", blk, x)
        blocks += 1
        del blk
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ref = _recurrence(system)
    return {"L": L, "channels": ch, "states": D_STATE, "phi_bytes": phi.nbytes, "lazy": phi.lazy,
            "max_bytes": max_bytes, "row_blocks": blocks, "seconds": seconds, "peak_bytes": peak,
            "under_1GiB": peak < 2**30, "system_bytes_outside_peak": system_bytes,
            "max_rel_diff_recurrence": float(np.abs(y - ref).max() / np.abs(ref).max())}


def _diff(row: dict[str, Any]) -> str:
    diffs = [row[k] for k in ("cumprod_max_rel_diff", "loop_max_rel_diff") if k in row]
    return f"{max(diffs):.1e}" if diffs else "-"


def _shown(r: dict[str, Any], name: str) -> tuple[str, str]:
    """(seconds, ratio) cells of a baseline: measured, or the estimate in parentheses."""
    if r.get(f"{name}_measured"):
        return f"{r[f'{name}_s']:.3g}", fmt_ratio(r[f"{name}_ratio"])
    if r.get(f"{name}_estimate_s") is not None:
        return f"({r[f'{name}_estimate_s']:.3g})", f"({fmt_ratio(r[f'{name}_ratio_estimate'])})"
    return "-", "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (BLAS: OMP_NUM_THREADS, default 1)")
    p.add_argument("--baseline-timeout", type=float, default=60.0,
                   help="skip a baseline expected to take over S seconds (extrapolated; default 60)")
    p.add_argument("--cumprod-max-bytes", type=float, default=6 * 2**30,
                   help="skip the cumulative product where its tensors exceed this (default 6 GiB)")
    p.add_argument("--max-bytes", type=int, default=2**28, help="the whole layer's Φ budget (default 256 MiB)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "dsf_materialize.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        lengths, repeats, one_L, layer_d, layer_L = [16, 32], 1, 1024, 32, 256
    else:
        lengths, repeats, one_L, layer_d, layer_L = [128, 256, 512, 1024, 2048], 3, 4096, 768, 1024
    print(f"Mamba layer d_model {D_MODEL} (d_inner {2 * D_MODEL}), N = {D_STATE}; threads {args.threads}; "
          f"best of {repeats}", flush=True)
    rows = measure(lengths, repeats, args.baseline_timeout, int(args.cumprod_max_bytes))
    shown = []
    for r in rows:
        (cs, cr), (ls, lr) = _shown(r, "cumprod"), _shown(r, "loop")
        shown.append({"L": r["L"], "ssmctl": f"{r['ssmctl_s']:.3g}", "cumprod": cs, "cumprod_ratio": cr,
                      "loop": ls, "loop_ratio": lr, "diff": _diff(r)})
    cols = [("L", "L"), ("ssmctl", "ssmctl s"), ("cumprod", "cumprod s"), ("cumprod_ratio", "cumprod / ssmctl"),
            ("loop", "loop s"), ("loop_ratio", "loop / ssmctl"), ("diff", "max rel diff")]
    print(text_table(shown, cols))
    print("(parentheses: not run, extrapolated by the skip rule; see the JSON rows' *_estimate_source)", flush=True)
    one = one_channel(one_L, repeats)
    print(f"one channel, L = {one['L']}: {one['seconds']:.3f} s (target < {one['target_s']} s); max rel diff to "
          f"direct products at {one['checked_entries']} entries {one['max_rel_diff_direct']:.1e}", flush=True)
    layer = whole_layer(layer_d, layer_L, args.max_bytes)
    print(f"whole layer, {layer['channels']} channels, N = {layer['states']}, L = {layer['L']}: Φ would take "
          f"{layer['phi_bytes'] / 2**30:.1f} GiB; streamed in {layer['row_blocks']} row blocks under max_bytes = "
          f"{layer['max_bytes'] / 2**20:.0f} MiB in {layer['seconds']:.1f} s, peak numpy memory "
          f"{layer['peak_bytes'] / 2**20:.0f} MiB (core's float64 copies included; the system's own arrays, "
          f"{layer['system_bytes_outside_peak'] / 2**20:.0f} MiB, not); Φ·x vs the recurrence "
          f"{layer['max_rel_diff_recurrence']:.1e}")
    payload = {"benchmark": "dsf_materialize", "quick": args.quick, "threads": args.threads,
               "baseline_timeout_s": args.baseline_timeout, "cumprod_max_bytes": int(args.cumprod_max_bytes),
               "machine": machine_info(("numpy", "torch")), "rows": rows, "one_channel": one,
               "whole_layer": layer}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
