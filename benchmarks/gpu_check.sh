#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool's `run`, from the repo root): the engine's tests with CUDA
# visible (the CUDA-only test included), then the LTV benchmark on CUDA with the scan's bandwidth.
# Everything it writes lands in $OUT (device tool) or ./gpu_out; the GPU image has torch, transformers, scipy,
# matplotlib and safetensors, and ssmctl needs python-control only for its export (imported lazily).
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=600)
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest -q -x tests/systems/test_engine.py tests/systems/test_scan.py \
    tests/analysis/test_ltv_stats.py 2>&1 | tee "$OUT/tests.log"
timeout 300 python3 benchmarks/ltv_simulate.py --device cuda --repeats 3 --memory inline \
    --out "$OUT/ltv_simulate_cuda.json" 2>&1 | tee "$OUT/bench.log"
# Mamba-2 130m size: SSD form vs transformers' own forward (target ≥ 3× its tokens/s at ≤ 1/10 of its memory)
timeout 200 python3 -m pytest -q tests/engine/test_ssd.py 2>&1 | tail -3 | tee "$OUT/ssd_tests.log"
timeout 240 python3 benchmarks/ssd.py --device cuda --layers 24 --lengths 4096,16384,65536 --repeats 2 \
    --tensor-max-tokens 16384 --out "$OUT/ssd_cuda.json" 2>&1 | grep -v "falling back" | tee "$OUT/ssd.log"
