"""Benchmark: the Hankel profile of an S6 layer — ssmctl's factored path against the SVD of the materialized Φ.

What a user would otherwise run: build Φ (the "hidden attention", here with ``ssmctl.materialize``, the fastest
way there is to get it) and take numpy's SVD of every block Φ[t:, :t]. ssmctl's factored path,
``hankel_profile(ssmctl.dsf(layer, u))``, writes Φ[t:, :t] = O_t R_tᵀ through the state and decomposes only
N × N matrices, never building Φ. Both run in float64 on the same core, at the same cuts; the table reports
seconds, the ratio, whether the ranks agree and the largest difference of the singular values (relative to the
largest one). Writes benchmarks/results/dsf_hankel.json.

    python benchmarks/dsf_hankel.py            # L = 128 … 1024, 8 cuts; about a minute
    python benchmarks/dsf_hankel.py --quick    # L = 32, 64
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import fmt_ratio, limit_to_one_core, machine_info, text_table, write_json  # noqa: E402

# Both sides on one core (BLAS included), so the ratio is the algorithm's: set before numpy loads.
_ONE_CORE = limit_to_one_core() if __name__ == "__main__" else None

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ssmctl  # noqa: E402

D_MODEL, D_STATE, BATCH, N_CUTS, RTOL = 16, 16, 1, 8, 1e-8


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def svd_of_phi(layer: ssmctl.Layer, u: torch.Tensor, cuts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The alternative: materialize Φ, then numpy's SVD of each block. Singular values (b, ch, cut, k), ranks."""
    P = np.asarray(ssmctl.materialize(layer, u))
    svals = [np.linalg.svd(P[:, :, t:, :t], compute_uv=False) for t in cuts]
    ranks = np.stack([(s > RTOL * s[..., :1]).sum(-1) for s in svals], axis=-1)
    k = min(s.shape[-1] for s in svals)
    return np.stack([s[..., :k] for s in svals], axis=-2), ranks


def measure(lengths: list[int], repeats: int) -> list[dict[str, Any]]:
    layer = ssmctl.init("s6", d_model=D_MODEL, d_state=D_STATE, n_layers=1)[0]
    rows = []
    for L in lengths:
        u = torch.randn(BATCH, L, D_MODEL, generator=torch.Generator().manual_seed(L))
        cuts = np.linspace(1, L - 1, N_CUTS).round().astype(int).tolist()
        t_ours, prof = _best(lambda: ssmctl.hankel_profile(ssmctl.dsf(layer, u), cuts, rtol=RTOL), repeats)
        t_svd, (svals, ranks) = _best(lambda: svd_of_phi(layer, u, cuts), repeats if L <= 256 else 1)
        k = min(prof.singular_values.shape[-1], svals.shape[-1])
        diff = np.abs(prof.singular_values[..., :k] - svals[..., :k]).max() / svals.max()
        rows.append({"L": L, "channels": D_MODEL, "states": D_STATE, "cuts": len(cuts), "ssmctl_s": t_ours,
                     "svd_of_phi_s": t_svd, "ratio": t_svd / t_ours,
                     "ranks_agree": bool(np.array_equal(prof.rank, ranks)), "max_rel_diff": float(diff),
                     "max_rank": int(prof.rank.max())})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "dsf_hankel.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lengths, repeats = ([32, 64], 1) if args.quick else ([128, 256, 512, 1024], 2)
    print(f"S6 layer, {D_MODEL} channels, N = {D_STATE}, {N_CUTS} cuts, rtol {RTOL:g}; {_ONE_CORE}; "
          f"best of {repeats}", flush=True)
    rows = measure(lengths, repeats)
    shown = [{"L": r["L"], "ours": f"{r['ssmctl_s']:.3g}", "svd": f"{r['svd_of_phi_s']:.3g}",
              "ratio": fmt_ratio(r["ratio"]), "rank": r["max_rank"], "agree": "yes" if r["ranks_agree"] else "NO",
              "diff": f"{r['max_rel_diff']:.1e}"} for r in rows]
    cols = [("L", "L"), ("ours", "factored s"), ("svd", "Φ + SVD s"), ("ratio", "Φ+SVD / factored"),
            ("rank", "max rank"), ("agree", "ranks agree"), ("diff", "max rel diff σ")]
    print(text_table(shown, cols))
    payload = {"benchmark": "dsf_hankel", "quick": args.quick, "one_core": _ONE_CORE,
               "machine": machine_info(("numpy", "torch")), "rows": rows}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
