#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool's `run`, from the repo root), under 7 minutes in all:
#   1. versions (torch, CUDA, triton, transformers, GPU) and which of ssmctl's dependencies are importable;
#   2. the GPU-facing tests (engine with the Triton scan on CUDA, the CLI's simulate, Mamba-2 vs transformers);
#   3. the rest of the suite with CUDA visible (pytest-xdist when installed);
#   4. benchmarks/scan_backends.py --device cuda: triton vs tensor, and the scan's bandwidth on its unavoidable
#      I/O (batch 8, 1536 channels x N 16, L 16k) over a sweep of tile sizes;
#   5. benchmarks/ltv_simulate.py --device cuda --sizes b,a: Mamba (130m size, small) vs transformers + hooks,
#      with the fraction of the projection-GEMM roof (its size c, Mamba-2 vs transformers' forward, is also
#      what step 6 measures, in more detail);
#   6. benchmarks/ssd.py --device cuda: Mamba-2 130m size, the SSD form vs the other scans vs transformers.
# Each step has its own time limit and the script goes on after a failed step. Without CUDA it runs the same
# steps on the CPU (the Triton kernel in its interpreter, the benchmarks' quick CPU modes), to check the script.
# Needs no install: ssmctl runs from the checkout (PYTHONPATH); the GPU image has torch, triton, transformers,
# numpy, scipy, matplotlib, safetensors and pytest (python-control, slycot and hypothesis are only needed by
# tests of other parts; step 1 lists what is missing). Writes 8 files to $OUT (or ./gpu_out):
#   summary.txt  tests.log  scan.log  scan_cuda.json  ltv.log  ltv_cuda.json  ssd.log  ssd_cuda.json
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=Agg OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-python3}
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
T0=$(date +%s)

# step NAME LIMIT LOG CMD...: run CMD under its own time limit, its output to LOG and to the console; never fails
step() {
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    start=$(date +%s)
    echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$log"
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    local line="=== $name: exit $rc after $(( $(date +%s) - start ))s$([ "$rc" = 124 ] && echo ' (time limit)')"
    echo "$line" | tee -a "$log"
    [ "$log" = "$SUMMARY" ] || echo "$line" >> "$SUMMARY"
    return 0
}

versions() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.machine())
import torch
print("torch", torch.__version__, "| cuda available", torch.cuda.is_available(), "| cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0))
for name in ("triton", "transformers", "numpy", "scipy", "matplotlib", "safetensors", "pytest", "control",
             "slycot", "hypothesis", "xdist", "packaging"):
    try:
        mod = importlib.import_module(name)
        print(f"{name:13s}", getattr(mod, "__version__", "(no version)"))
    except Exception as exc:
        print(f"{name:13s} MISSING ({type(exc).__name__}: {exc})")
from ssmctl.engine.native import native_status
from ssmctl.engine.triton_scan import triton_status
print("native scan:", native_status())
print("triton scan:", triton_status())
EOF
}

if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    DEVICE=cuda
else
    DEVICE=cpu
fi
echo "device: $DEVICE" | tee -a "$SUMMARY"
export -f versions
export PY
# Test-only packages the GPU image lacks travel as wheels in .whl/ (carry it: run(..., carry=[".whl"])).
if [ -d .whl ]; then
    PIP_BREAK_SYSTEM_PACKAGES=1 step wheels 60 "$SUMMARY" "$PY" -m pip install -q --no-index --find-links .whl pytest-xdist hypothesis control
fi
step versions 15 "$SUMMARY" bash -c versions

GPU_TESTS=(tests/engine tests/cli/test_simulate.py tests/models/test_mamba2.py tests/benchmarks/test_scan_backends.py)
step tests_gpu 110 "$OUT/tests.log" "$PY" -m pytest -q -ra -p no:cacheprovider "${GPU_TESTS[@]}"

XDIST=()
if "$PY" -c "import xdist" 2>/dev/null; then XDIST=(-n 8); fi
IGNORE=()
for t in "${GPU_TESTS[@]}"; do IGNORE+=(--ignore="$t"); done
step suite 120 "$OUT/tests.log" "$PY" -m pytest -q -ra -p no:cacheprovider ${XDIST[@]+"${XDIST[@]}"} "${IGNORE[@]}" \
    --continue-on-collection-errors tests

if [ "$DEVICE" = cuda ]; then
    step scan 60 "$OUT/scan.log" "$PY" benchmarks/scan_backends.py --device cuda --hbm-gbps 4800 \
        --out "$OUT/scan_cuda.json"
    # the LTV run uses the sweep's fastest tile sizes for Mamba-1's scan (SSMCTL_TRITON_TILES; default if none)
    TILES=$("$PY" -c "import json,sys; b=json.load(open(sys.argv[1]))['bandwidth']['best']; t=b and b['tiles']
print(','.join(map(str, t)) if isinstance(t, list) else '')" "$OUT/scan_cuda.json" 2>/dev/null || true)
    echo "ltv: SSMCTL_TRITON_TILES=${TILES:-(default)}" | tee -a "$SUMMARY"
    export SSMCTL_TRITON_TILES="$TILES"
    # Mamba-1 (the Triton scan); Mamba-2 (the SSD form) is benchmarks/ssd.py's, next
    step ltv 70 "$OUT/ltv.log" "$PY" benchmarks/ltv_simulate.py --device cuda --sizes b,a --repeats 1 \
        --memory inline --tensor-max-tokens 4096 --baseline-max-tokens 16384 --out "$OUT/ltv_cuda.json"
    unset SSMCTL_TRITON_TILES
    # Mamba-2 130m size: SSD form vs transformers' own forward (target ≥ 3× its tokens/s at ≤ 1/10 of its memory)
    step ssd 105 "$OUT/ssd.log" "$PY" benchmarks/ssd.py --device cuda --layers 24 --lengths 4096,16384,65536 \
        --repeats 1 --tensor-max-tokens 16384 --out "$OUT/ssd_cuda.json"
else
    step scan 80 "$OUT/scan.log" "$PY" benchmarks/scan_backends.py --quick --out "$OUT/scan_cuda.json"
    step ltv 70 "$OUT/ltv.log" "$PY" benchmarks/ltv_simulate.py --quick --sizes a,c --memory inline \
        --out "$OUT/ltv_cuda.json"
fi
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$SUMMARY"
