#!/usr/bin/env bash
# One GPU-machine call: the engine tests (CPU ones against this machine's transformers, and
# the CUDA ones), a kernel-time profile of one decode step, per-shape mat-vec bandwidth, then
# the engine benchmark with the bf16 check against transformers. Results land in $OUT.
# Run from a checkout: OUT=/tmp/out bash benchmarks/engine_gpu.sh
set -uo pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-src}:.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)" | tee -a "$OUT/gpu.txt"
# The hub's fixtures need packages this machine lacks: load only the engine's.
timeout 200 python3 -m pytest tests/engine/fast tests/engine/test_speculative.py -q -m "not slow" -p no:cacheprovider \
  --noconftest -p tests.fixtures.services -p tests.fixtures.models -p tests.fixtures.fast_engine 2>&1 | tail -15 | tee "$OUT/tests.txt"
[ "${PROFILE:-1}" = 1 ] && timeout 200 python3 benchmarks/engine_profile.py --out "$OUT/profile.txt" 2>&1 | tail -32
[ "${KERNELS:-0}" = 1 ] && timeout 90 python3 benchmarks/engine_kernels.py --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.txt"
[ "${ASSISTANT:-0}" = 1 ] && timeout 300 python3 benchmarks/engine_assistant.py 2>&1 | tee "$OUT/assistant.txt"
[ "${BENCH:-1}" = 1 ] && timeout 420 python3 -c "from swarmlab.cli import main; main()" engine bench --random-weights \
  --check-prompts "${CHECK_PROMPTS:-16}" --prefill-chunk 1024 \
  --mode eager --mode graph --mode compile+graph --mode triton+compile+graph --mode int8+triton+compile+graph \
  --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
