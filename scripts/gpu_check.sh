#!/usr/bin/env bash
# One-go GPU check (issue 17 + the GPU fast path), for a borrowed CUDA machine: finishes within
# 8 minutes and writes every figure to ONE file (default gpu_check_results.txt; $1 overrides).
# Runs: the GPU tests (tests/test_gpu_path_*.py, the TensorRT export test), bench_gpu.py --device
# cuda, HRNet-w32 crops/s torch fp16 vs TensorRT fp16 and 2-replica scaling over two GPUs
# (bench_speed.py --parts g; replicas only where there are two GPUs).
#   bash scripts/gpu_check.sh [OUT_FILE]        # from the repository root; PYTHON=... picks the interpreter
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check_results.txt}"
PY="${PYTHON:-python}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/streampose-numba}"
start=$(date +%s)
section() { echo; echo "=== $1 ($(( $(date +%s) - start )) s elapsed)"; }
{
  section "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
  "$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -1
  section "GPU tests (limit 150 s)"
  timeout 120 "$PY" -m pytest -q tests/test_gpu_path_*.py 2>&1 | tail -20
  timeout 60 "$PY" -m pytest -q tests/test_export.py -k tensorrt 2>&1 | tail -8
  section "bench_gpu.py --device cuda (limit 150 s)"
  timeout 150 "$PY" scripts/bench_gpu.py --device cuda --max-frames 120 --sequential-frames 20 2>&1 | tail -30
  section "fp16 vs TensorRT crops/s, 2-replica scaling (limit 150 s)"
  timeout 150 "$PY" scripts/bench_speed.py --parts g --frames 60 --reps 5 2>&1 | grep -v Warning | tail -20
  section "done"
} > "$OUT" 2>&1
echo "wrote $OUT"
