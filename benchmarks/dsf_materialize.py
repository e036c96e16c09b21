"""Benchmark: Mamba's materialized Φ ("hidden attention") — ssmctl.materialize against what users run today.

The interpretability code that materializes Mamba's implicit attention (AmeenAli/HiddenMambaAttn's
``compute_attn_matrix_fn``, copied into several follow-ups) loops over output token r, input token c and the
transition products between them in Python; a vectorized variant (a masked cumulative product over an
(L, L) grid per channel and state) is the other common form. Both are restated below from reading that code
(benchmark-only, for comparison; not package code) and run in float32 on the same Ā_t, B̄_t, C_t that
``layer.ltv(u)`` gives. ssmctl's time includes building that system; ssmctl computes in float64.

Reports seconds per call and ratios, and the max relative difference of each to ssmctl's Φ (the two restated
forms include no D skip, so the diagonal is compared without it). Writes benchmarks/results/dsf_materialize.json.

    python benchmarks/dsf_materialize.py            # L = 32 … 512 (the others up to 128); ~1 minute
    python benchmarks/dsf_materialize.py --quick    # L = 16, 32
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ssmctl  # noqa: E402
from benchmarks._common import fmt_ratio, machine_info, text_table, write_json  # noqa: E402

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


def measure(lengths: list[int], repeats: int, loop_max: int = 128, cumprod_max: int = 128) -> list[dict[str, Any]]:
    layer = ssmctl.init("mamba", d_model=D_MODEL, d_state=D_STATE, n_layers=1)[0]
    rows = []
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
            if L > (loop_max if name == "loop" else cumprod_max):  # O(L³) Python loop / O(L²·d·N) memory
                row[f"{name}_s"] = None
                continue
            t, out = _best(lambda: form(dA, dB, C), 1 if name == "loop" else repeats)
            row[f"{name}_s"] = t
            row[f"{name}_ratio"] = t / t_ours
            row[f"{name}_max_rel_diff"] = float(np.abs(out.double().numpy() - no_skip).max() / scale)
        rows.append(row)
    return rows


def _diff(row: dict[str, Any]) -> str:
    diffs = [row[k] for k in ("cumprod_max_rel_diff", "loop_max_rel_diff") if k in row]
    return f"{max(diffs):.1e}" if diffs else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "dsf_materialize.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lengths, repeats = ([16, 32], 1) if args.quick else ([32, 64, 128, 512], 3)
    print(f"Mamba layer d_model {D_MODEL} (d_inner {2 * D_MODEL}), N = {D_STATE}; threads {args.threads}; "
          f"best of {repeats}", flush=True)
    rows = measure(lengths, repeats)

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3g}"

    shown = [{"L": r["L"], "ssmctl": f(r["ssmctl_s"]), "cumprod": f(r["cumprod_s"]),
              "cumprod_ratio": fmt_ratio(r.get("cumprod_ratio")), "loop": f(r["loop_s"]),
              "loop_ratio": fmt_ratio(r.get("loop_ratio")),
              "diff": _diff(r)} for r in rows]
    cols = [("L", "L"), ("ssmctl", "ssmctl s"), ("cumprod", "cumprod s"), ("cumprod_ratio", "cumprod / ssmctl"),
            ("loop", "loop s"), ("loop_ratio", "loop / ssmctl"), ("diff", "max rel diff")]
    print(text_table(shown, cols))
    payload = {"benchmark": "dsf_materialize", "quick": args.quick, "threads": args.threads,
               "machine": machine_info(("numpy", "torch")), "rows": rows}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
