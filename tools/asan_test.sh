#!/usr/bin/env bash
# Run the test suite (or the pytest arguments given) against a CPU module built with
# AddressSanitizer. The instrumented module goes into a scratch copy of the package, so the
# working tree's own build is left alone. Python itself is not instrumented: libasan is
# preloaded, and leak checking is off (CPython keeps its allocations at exit by design).
#   bash tools/asan_test.sh                      # whole suite
#   bash tools/asan_test.sh tests/test_spmm.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPython_EXECUTABLE="$(command -v "$py")" -DMATKERN_CUDA=OFF -DMATKERN_SANITIZE=address >/dev/null
cmake --build build/asan -j "${JOBS:-2}"
pkg=build/asan/pkg
rm -rf "$pkg" && mkdir -p "$pkg"
cp -r python/matkern "$pkg/"
rm -f "$pkg"/matkern/*.so
cp build/asan/_cpu*.so "$pkg/matkern/"
# libstdc++ is preloaded too: ASan's __cxa_throw interceptor must find the real one at start,
# or the first C++ exception (a binding's ValueError) aborts the process.
libasan=$("${CXX:-c++}" -print-file-name=libasan.so)
libstdcxx=$("${CXX:-c++}" -print-file-name=libstdc++.so)
export LD_PRELOAD="$libasan $libstdcxx"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:${ASAN_OPTIONS:-}"
export PYTHONPATH="$PWD/$pkg"
"$py" -c "import matkern, os; assert matkern.__file__.startswith(os.environ['PYTHONPATH']), matkern.__file__; print('asan module:', matkern.__file__)"
if [ $# -eq 0 ]; then set -- tests -q -p no:cacheprovider; fi
"$py" -m pytest "$@"
