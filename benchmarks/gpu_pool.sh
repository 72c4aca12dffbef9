#!/usr/bin/env bash
# The GPU-pool benchmark in one call on the GPU machine (docs/gpu-pool.md). Run from the
# repository root with .gpu carried (fill it first with benchmarks/gpu_pool_prepare.sh):
#   bash .gpu/pool/repo/benchmarks/gpu_pool.sh
# It installs the carried wheels into /tmp/site, unpacks the carried redis-server into
# /tmp/redis (never /), then runs benchmarks/gpu_pool.py with results in $OUT.
# Settings: GPUS (default: every GPU nvidia-smi lists), JOBS (2 x GPUS), LIMIT (seconds, 540),
# POOL_ARGS (more gpu_pool.py options, e.g. "--baseline first --prompts 8"), PYTHON (python3:
# the image's, which has torch).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pool=${POOL_DIR:-.gpu/pool}
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
# NVLink multicast stays off on shared multi-GPU hosts (the device README), in every child too.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python=${PYTHON:-python3}

if [ ! -f /tmp/site/.complete ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$pool"/whl/*.whl || exit 1
  touch /tmp/site/.complete
fi
export PYTHONPATH=/tmp/site:$root/src:$root

mkdir -p /tmp/redis
for deb in "$pool"/deb/*.deb; do dpkg -x "$deb" /tmp/redis; done
libs=/tmp/redis/usr/lib/x86_64-linux-gnu:/tmp/redis/lib/x86_64-linux-gnu
cat >/tmp/redis/redis-server <<LAUNCH
#!/bin/sh
# redis picks its mode from argv[0], so exec the redis-server link, not redis-check-rdb
LD_LIBRARY_PATH=$libs exec /tmp/redis/usr/bin/redis-server "\$@"
LAUNCH
chmod +x /tmp/redis/redis-server
LD_LIBRARY_PATH=$libs ldd /tmp/redis/usr/bin/redis-check-rdb | grep "not found" && exit 1

gpus=${GPUS:-$(nvidia-smi -L | wc -l)}
{
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm --format=csv
  "$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda devices', torch.cuda.device_count())"
  /tmp/redis/redis-server --version
  "$python" -c "import celery, fastapi, sqlalchemy, swarmlab.api.app; print('celery', celery.__version__, 'fastapi', fastapi.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

limit=${LIMIT:-540}
# shellcheck disable=SC2086  # POOL_ARGS is a list of options
timeout "$limit" "$python" "$root/benchmarks/gpu_pool.py" --gpus "$gpus" --jobs "${JOBS:-$((2 * gpus))}" \
  --redis-server /tmp/redis/redis-server --deadline-s $((limit - 30)) --out "$OUT" \
  --workdir /tmp/gpu-pool \
  ${POOL_ARGS:-} 2>&1 | tee "$OUT/log.txt"
