"""`ssmctl simulate` with its default threads vs --threads 1 vs --threads 2, with another process busy on one core.

Each cell runs the real command (`python -m ssmctl.cli simulate PATH --random-tokens L --json`) in a fresh
process, so the OpenMP wait policy that ssmctl sets before torch loads is what a user gets; tokens/s come from
the report (simulation only, not the checkpoint load). A spinning Python process keeps one core busy during
every run. The default's thread count is read from the report ("threads"), so a row also shows the run-to-run
noise: the default and the explicit setting it picked are the same configuration. "before" is the old default: torch's own thread count and libgomp's default (spinning) wait
policy (OMP_WAIT_POLICY set empty, which ssmctl keeps and libgomp ignores).

    python benchmarks/simulate_threads.py            # a few minutes on a 2-core CPU
    python benchmarks/simulate_threads.py --quick    # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks._common import machine_info, text_table, write_json  # noqa: E402

# transformers Mamba checkpoints of growing width: the scan states per token (d_inner × N) set the work per op
SIZES = {"micro": dict(hidden_size=8, state_size=4, num_hidden_layers=2, L=4096),
         "tiny": dict(hidden_size=32, state_size=8, num_hidden_layers=2, L=4096),
         "small": dict(hidden_size=128, state_size=16, num_hidden_layers=2, L=4096),
         "130m-wide": dict(hidden_size=768, state_size=16, num_hidden_layers=2, L=2048)}
QUICK = {"tiny": dict(hidden_size=32, state_size=8, num_hidden_layers=1, L=512)}
SETTINGS = {"default": [], "threads 1": ["--threads", "1"], "threads 2": ["--threads", "2"],
            "before (torch default, spinning)": ["--threads", str(os.cpu_count() or 1)]}


def build(folder: Path, size: dict) -> str:
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=256, **{k: v for k, v in size.items() if k != "L"})
    transformers.MambaForCausalLM(cfg).save_pretrained(folder)
    return str(folder)


def run_once(path: str, L: int, extra: list[str], env: dict[str, str]) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "ssmctl.cli", "simulate", path, "--random-tokens", str(L), "--json",
           "--device", "cpu", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-800:]}")
    report = json.loads(out.stdout)
    return float(report["tokens_per_s"]), int(report["threads"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per cell")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "simulate_threads.json"))
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else SIZES
    repeats = 1 if args.quick else args.repeats
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    base_env["PYTHONPATH"] = str(ROOT) + os.pathsep + base_env.get("PYTHONPATH", "")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key, size in sizes.items():
                path = build(Path(tmp) / key, size)
                d_inner = 2 * size["hidden_size"]
                row = {"model": key, "states_per_token": d_inner * size["state_size"], "L": size["L"]}
                load = []
                # cells interleaved repeat by repeat, so a change in the machine's load hits every setting alike
                best = {name: 0.0 for name in SETTINGS}
                for _ in range(repeats):
                    for name, extra in SETTINGS.items():
                        env = dict(base_env, OMP_WAIT_POLICY="") if name.startswith("before") else base_env
                        load.append(os.getloadavg()[0])
                        tps, threads = run_once(path, size["L"], extra, env)
                        if name == "default":
                            row["default threads"] = threads
                        best[name] = max(best[name], tps)
                row.update({f"{name} tok/s": v for name, v in best.items()})
                top = max(v for name, v in best.items() if not name.startswith("before"))
                row["default / best"] = top / best["default"]
                row["before / best"] = top / best["before (torch default, spinning)"]
                row["load_1min"] = sum(load) / len(load)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        busy.kill()
        busy.wait()
    keys = ["model", "states_per_token", "L", "default threads", *[f"{n} tok/s" for n in SETTINGS], "default / best",
            "before / best"]
    heads = ["model", "states/token", "L", "default picks", *SETTINGS, "best ÷ default", "best ÷ before"]
    cells = [{k: (f"{r[k]:,.0f}" if k.endswith("tok/s") else f"{r[k]:.2f}" if k.endswith("best") else str(r[k]))
              for k in keys} for r in rows]
    print(text_table(cells, list(zip(keys, heads))))
    payload = {"benchmark": "simulate_threads", "quick": args.quick, "repeats": repeats,
               "busy": "one spinning python process during every run", "machine": machine_info(),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
