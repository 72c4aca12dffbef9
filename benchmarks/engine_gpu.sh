#!/usr/bin/env bash
# One GPU-machine call: the engine tests (CPU ones against this machine's transformers, and
# the CUDA ones), a kernel-time profile of one decode step, per-shape mat-vec bandwidth, then
# the engine benchmark with the bf16 check against transformers, then the fused step's time
# breakdown. Results land in $OUT. Knobs (environment): TESTS, PROFILE, KERNELS, BENCH, FUSED
# (0/1 each), MODES (space-separated bench modes), CHECK_PROMPTS, HF_TOKENS, BENCH_ARGS.
# Run from a checkout: OUT=/tmp/out bash benchmarks/engine_gpu.sh
set -uo pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-src}:.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)" | tee -a "$OUT/gpu.txt"
# The hub's fixtures need packages this machine lacks: load only the engine's.
[ "${TESTS:-1}" = 1 ] && timeout 300 python3 -m pytest tests/engine/fast tests/engine/test_speculative.py -q -m "not slow" -p no:cacheprovider \
  --noconftest -p tests.fixtures.services -p tests.fixtures.models -p tests.fixtures.fast_engine 2>&1 | tail -15 | tee "$OUT/tests.txt"
[ "${PROFILE:-0}" = 1 ] && timeout 200 python3 benchmarks/engine_profile.py --out "$OUT/profile.txt" 2>&1 | tail -32
[ "${KERNELS:-0}" = 1 ] && timeout 90 python3 benchmarks/engine_kernels.py --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.txt"
[ "${ASSISTANT:-0}" = 1 ] && timeout 300 python3 benchmarks/engine_assistant.py 2>&1 | tee "$OUT/assistant.txt"
MODES=${MODES:-eager graph compile+graph triton+compile+graph fused+graph fused+pdl+graph}
MODE_ARGS=""
for m in $MODES; do MODE_ARGS="$MODE_ARGS --mode $m"; done
[ "${BENCH:-1}" = 1 ] && timeout 480 python3 -c "from swarmlab.cli import main; main()" engine bench --random-weights \
  --check-prompts "${CHECK_PROMPTS:-16}" --hf-new-tokens "${HF_TOKENS:-32}" --prefill-chunk 1024 $MODE_ARGS \
  ${BENCH_ARGS:-} --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
[ "${FUSED:-1}" = 1 ] && timeout 240 python3 benchmarks/engine_fused.py --configs "$OUT/bench.json" \
  --out "$OUT/fused.json" 2>&1 | tee "$OUT/fused.txt"
exit 0
