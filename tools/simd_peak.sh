#!/usr/bin/env bash
# Builds tools/simd_peak.cpp and runs it at 1 thread and at matkern's thread count; with
# --commit-results writes the output, with the CPU's model and flags, to
# bench/results/simd_peak_cpu.txt (the ceiling issue #25's figures are read against).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/simd_peak
g++ -O2 -mavx512f -mavx512vnni -mavx512vl -fopenmp tools/simd_peak.cpp -o "$bin"
threads=${MATKERN_NUM_THREADS:-$(nproc)}
{
  echo "# tools/simd_peak.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) logical cores"
  echo "# AVX-512 flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^avx512|^amx' | tr '\n' ' ')"
  OMP_NUM_THREADS=1 "$bin"
  if [ "$threads" -gt 1 ]; then OMP_NUM_THREADS=$threads "$bin"; fi
} | if [ "${1:-}" = "--commit-results" ]; then tee bench/results/simd_peak_cpu.txt; else cat; fi
