#!/usr/bin/env bash
# Fills tools/wheels/ (ignored by git) with the wheels tools/gpu_check.sh installs on the GPU
# machine, which cannot reach a package index: pytest, hypothesis, tqdm, and dask[array] +
# distributed with their dependencies (for the CuPy-chunk tests of matkern.dask), for that
# machine's Python (3.12, x86-64 Linux; PY_VERSION overrides). NumPy is left out: the GPU
# machine has its own, which CuPy is built against. About 7 MB: pass it to the device run
# with carry=["tools/wheels"].
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dest=tools/wheels
mkdir -p "$dest"
$PY -m pip download -q -d "$dest" --python-version "${PY_VERSION:-3.12}" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --only-binary=:all: \
  pytest hypothesis tqdm "dask[array]==2026.8.0" "distributed==2026.8.0"
rm -f "$dest"/numpy-*.whl
du -sh "$dest"
