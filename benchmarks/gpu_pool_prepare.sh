#!/usr/bin/env bash
# Run HERE (a machine with PyPI and Debian access) before the GPU-pool run: fills
# <main checkout>/.gpu/pool/ (ignored; the GPU tool carries it with carry: [".gpu"]) with
#   repo/  this checkout's src, benchmarks and challenges (so an unlanded branch runs as is)
#   whl/   CPython 3.12 manylinux wheels of what the GPU image lacks for the hub and Celery,
#          at the versions installed here (benchmarks/gpu_wheels.py), checked for completeness
#   deb/   redis-server, redis-tools and the libraries they link that a CUDA image may lack
# Usage: bash benchmarks/gpu_pool_prepare.sh [DEST]      (DEST default: <main>/.gpu/pool)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
main=$(cd "$(git -C "$here" rev-parse --path-format=absolute --git-common-dir)/.." && pwd)
dest=${1:-$main/.gpu/pool}
limit_mib=60   # the tool carries 64 MiB of working tree in all; leave room for the checkout
export PYTHONPATH="$here/src:$here"

rm -rf "$dest" && mkdir -p "$dest/repo" "$dest/whl" "$dest/deb"
for part in src benchmarks challenges; do
  cp -r "$here/$part" "$dest/repo/"
done
find "$dest/repo" -name __pycache__ -prune -exec rm -rf {} +
dirty=$(git -C "$here" status --porcelain --untracked-files=no | grep -q . && echo "+dirty" || true)
echo "$(git -C "$here" rev-parse --short HEAD)$dirty" >"$dest/repo/COMMIT"

python3 benchmarks/gpu_wheels.py needed >"$dest/whl/requirements.txt"
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$dest/whl" -r "$dest/whl/requirements.txt"
python3 benchmarks/gpu_wheels.py check "$dest/whl"

debs=(redis-server redis-tools libjemalloc2 liblzf1 libatomic1 libsystemd0)
(cd "$dest/deb" && apt-get download "${debs[@]}" 2>/dev/null) || {
  apt-get update -qq && (cd "$dest/deb" && apt-get download "${debs[@]}")
}
size=$(du -sm "$dest" | cut -f1)
echo "prepared $dest: ${size} MiB ($(ls "$dest/whl" | grep -c whl) wheels, $(ls "$dest/deb" | wc -l) debs)"
if [ "$size" -gt "$limit_mib" ]; then
  echo "too large for the GPU tool's 64 MiB: drop something" >&2
  exit 1
fi
