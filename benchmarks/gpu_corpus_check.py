"""GPU check of corpora (for a lent GPU machine; the lead runs it): a corpus on CUDA equals the merge of its parts
bit for bit, agrees with the CPU run to float32 rounding, and the NCCL path (a one-rank process group on
cuda:LOCAL_RANK) returns the one-process statistics. Writes JSON to $OUT/gpu_corpus_check.json.

    torchrun --standalone --nproc_per_node 1 benchmarks/gpu_corpus_check.py
    (run(command="torchrun --standalone --nproc_per_node 1 benchmarks/gpu_corpus_check.py", timeout_s=300))
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ssmctl  # noqa: E402
from ssmctl.report import dumps  # noqa: E402


def main() -> int:
    model = ssmctl.init("mamba", d_model=64, n_layers=2, d_state=16, seed=0)
    rng = np.random.default_rng(0)
    corpus = [rng.standard_normal(s).astype(np.float32) for s in [(3000, 64), (2, 700, 64), (5000, 64), (40, 64)]]
    out: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    layers = lambda r: dumps(r.summary()["layers"])  # noqa: E731
    one = ssmctl.simulate(model, corpus, device="cuda", parallel=False)
    parts = ssmctl.simulate(model, corpus[:2], device="cuda", parallel=False).merge(
        ssmctl.simulate(model, corpus[2:], device="cuda", parallel=False))
    out["cuda_merge_equals_corpus_run"] = layers(one) == layers(parts)
    cpu = ssmctl.simulate(model, corpus, device="cpu", parallel=False)
    a, b = one.stats[1], cpu.stats[1]
    out["cuda_vs_cpu_max_rel_decay"] = float(np.nanmax(np.abs(a.decay_mean / b.decay_mean - 1)))
    out["cuda_vs_cpu_median_abs"] = [a.abs_quantiles[0.5], b.abs_quantiles[0.5]]
    nccl = ssmctl.simulate(model, corpus, device="cuda", parallel=True)  # process group from torchrun: NCCL
    out["nccl_backend"] = torch.distributed.get_backend()
    out["nccl_equals_one_process"] = layers(nccl) == layers(one)
    out["tokens_per_s_cuda"] = one.tokens_per_second
    path = Path(os.environ.get("OUT", "gpu_out")) / "gpu_corpus_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    torch.distributed.destroy_process_group()
    return 0 if out["cuda_merge_equals_corpus_run"] and out["nccl_equals_one_process"] else 1


if __name__ == "__main__":
    sys.exit(main())
