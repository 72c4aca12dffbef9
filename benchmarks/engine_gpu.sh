#!/usr/bin/env bash
# One GPU-machine call: the engine tests (CPU ones against this machine's transformers, and
# the CUDA ones), a kernel-time profile of one decode step, per-shape mat-vec bandwidth, then
# the engine benchmark with the bf16 check against transformers, then the fused step's time
# breakdown. Results land in $OUT. Knobs (environment): TESTS, PROFILE, KERNELS, BENCH, FUSED
# (0/1 each), MODES (space-separated bench modes), CHECK_PROMPTS, HF_TOKENS, BENCH_ARGS,
# TEST_K (a pytest -k expression selecting the tests), TEST_FILES (instead of every engine
# test file), VARIANTS (';'-separated names of
# benchmarks/engine_fused.py's ATTENTION_VARIANTS: each timed as the whole step), TUNE (1: on a
# GPU with no tiles shipped for it, choose the fused step's tiles in the step first, into
# $OUT/tiles.json, and use them for everything after; 0: the untuned defaults there).
# Run from a checkout: OUT=/tmp/out bash benchmarks/engine_gpu.sh
set -uo pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-src}:.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)" | tee -a "$OUT/gpu.txt"
# The hub's fixtures need packages this machine lacks: load only the engine's.
[ "${TESTS:-1}" = 1 ] && timeout 300 python3 -m pytest ${TEST_FILES:-tests/engine/fast tests/engine/test_speculative.py} -q -m "not slow" -p no:cacheprovider \
  --noconftest -p tests.fixtures.services -p tests.fixtures.models -p tests.fixtures.fast_engine ${TEST_K:+-k "$TEST_K"} 2>&1 | tail -15 | tee "$OUT/tests.txt"
# Tiles for this GPU: the shipped ones, else (TUNE=1) tuned in the step now.
TILES_ARGS=""
if [ "${TUNE:-1}" = 1 ] && ! python3 -c "import sys, torch; from swarmlab.engine.fast.fused import shipped_configs; sys.exit(0 if shipped_configs(torch.device('cuda')) else 1)"; then
  echo "no tiles shipped for this GPU: tuning the fused step's tiles in the step"
  timeout 420 python3 benchmarks/engine_fused.py --tune-in-step "$OUT/tiles.json" 2>&1 | tail -12 | tee "$OUT/tune.txt"
  [ -s "$OUT/tiles.json" ] && TILES_ARGS="--configs $OUT/tiles.json"
fi
if [ -n "${VARIANTS:-}" ]; then
  VARIANT_ARGS=()
  IFS=';' read -ra NAMES <<<"$VARIANTS"
  for name in "${NAMES[@]}"; do VARIANT_ARGS+=(--variant "$name"); done
  timeout 300 python3 benchmarks/engine_fused.py --only-attention $TILES_ARGS "${VARIANT_ARGS[@]}" \
    --out "$OUT/variants.json" 2>&1 | tee "$OUT/variants.txt"
fi
[ "${PROFILE:-0}" = 1 ] && timeout 200 python3 benchmarks/engine_profile.py --out "$OUT/profile.txt" 2>&1 | tail -32
[ "${KERNELS:-0}" = 1 ] && timeout 90 python3 benchmarks/engine_kernels.py --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.txt"
[ "${ASSISTANT:-0}" = 1 ] && timeout 300 python3 benchmarks/engine_assistant.py 2>&1 | tee "$OUT/assistant.txt"
MODES=${MODES:-eager graph compile+graph triton+compile+graph fused+graph fused+pdl+graph}
MODE_ARGS=""
for m in $MODES; do MODE_ARGS="$MODE_ARGS --mode $m"; done
[ "${BENCH:-1}" = 1 ] && timeout 480 python3 -c "from swarmlab.cli import main; main()" engine bench --random-weights \
  --check-prompts "${CHECK_PROMPTS:-16}" --hf-new-tokens "${HF_TOKENS:-32}" --prefill-chunk 1024 $MODE_ARGS \
  ${TILES_ARGS:+--fused-configs $OUT/tiles.json} ${BENCH_ARGS:-} --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
[ "${FUSED:-1}" = 1 ] && timeout 240 python3 benchmarks/engine_fused.py --configs "$OUT/bench.json" \
  --out "$OUT/fused.json" 2>&1 | tee "$OUT/fused.txt"
exit 0
