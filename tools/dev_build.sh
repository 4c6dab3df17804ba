#!/usr/bin/env bash
# Developer build: compiles the extension modules into build/dev and copies them into
# python/matkern/, so that `PYTHONPATH=python pytest` tests the working tree without pip.
# MATKERN_CUDA=OFF|ON|AUTO (default OFF here, for speed), MATKERN_CUDA_ARCHS (default 80;90).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v "$py")" \
  -DMATKERN_CUDA="${MATKERN_CUDA:-OFF}" -DCMAKE_CUDA_ARCHITECTURES="${MATKERN_CUDA_ARCHS:-80;90}" >/dev/null
cmake --build build/dev -j "${JOBS:-2}"
cp build/dev/_cpu*.so python/matkern/
if ls build/dev/_cuda*.so >/dev/null 2>&1; then cp build/dev/_cuda*.so python/matkern/; fi
echo "built: $(ls python/matkern/*.so | xargs -n1 basename | tr '\n' ' ')"
