#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (the device tool's H100): builds matkern with this
# machine's python3 for its GPU's architecture only, runs the GPU tests and the GPU benchmarks,
# and writes its logs to $OUT (or the folder given as $1). Meant to finish in under 8 minutes.
#   OUT=/tmp/gpu bash tools/gpu_check.sh
# If pytest/hypothesis/scipy or dask/distributed are missing there and tools/wheels/ holds
# wheels for them (an ignored folder, filled beforehand by tools/gpu_wheels.sh and carried to
# the device run), they are installed from it without network: dask for the GPU tests of
# matkern.dask with CuPy chunks (tests/test_dask_cupy.py). TEST_TIMEOUT and BENCH_TIMEOUT
# (seconds) cap the two phases.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${1:-gpu_out}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
t0=$(date +%s)

if ! $PY -c "import pytest, hypothesis, scipy" 2>/dev/null && [ -d tools/wheels ]; then
  $PY -m pip install --no-index --find-links tools/wheels pytest hypothesis tqdm \
    >"$OUT/pip.log" 2>&1
fi
if ! $PY -c "import dask.array, distributed" 2>/dev/null && ls tools/wheels/dask-*.whl >/dev/null 2>&1; then
  $PY -m pip install --no-index --find-links tools/wheels "dask[array]" distributed \
    >>"$OUT/pip.log" 2>&1
fi
arch=$($PY -c "import cupy; print(cupy.cuda.Device(0).compute_capability)" 2>/dev/null || echo 90)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/summary.txt" 2>&1
log "building for sm_$arch"
MATKERN_CUDA=ON MATKERN_CUDA_ARCHS="$arch" JOBS=$(nproc) PYTHON=$PY bash tools/dev_build.sh \
  >"$OUT/build.log" 2>&1 || { log "BUILD FAILED"; tail -30 "$OUT/build.log"; exit 1; }
log "build done in $(( $(date +%s) - t0 )) s"
PYTHONPATH=python $PY -c "import matkern; matkern.show_config()" 2>&1 | tee -a "$OUT/summary.txt"

export PYTHONPATH=python PYTHONUNBUFFERED=1
timeout ${TEST_TIMEOUT:-240} $PY -m pytest tests -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -25
log "tests rc=${PIPESTATUS[0]} after $(( $(date +%s) - t0 )) s"
# One family at a time, each with its own time limit, so that one slow family cannot eat the rest.
# The families without GPU figures yet first ($FAMILIES overrides the order or the set).
for fam in ${FAMILIES:-int8 randproj svd gram lut hadamard spmm}; do
  timeout ${BENCH_TIMEOUT:-40} $PY -m bench --device cuda --quick --only "$fam" \
    --out "$OUT/bench" 2>&1 | grep -v '^bench:' | tee -a "$OUT/bench.log"
  echo "-- bench $fam rc=${PIPESTATUS[0]}" | tee -a "$OUT/bench.log"
done
log "bench done after $(( $(date +%s) - t0 )) s"
# To commit the figures: copy $OUT/bench/results/*_cuda.json into bench/results/.
tar czf "$OUT/results.tgz" -C "$OUT/bench" results BENCHMARKS.md plots 2>/dev/null
rm -rf "$OUT/bench/plots"
