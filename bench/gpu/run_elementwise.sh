#!/usr/bin/env bash
# Builds and runs bench/gpu/elementwise.cpp on a GPU machine: W1, W2, W5 (loom with extents at
# run time and baked in, a hand-written kernel, the device copy of the same bytes) and the JIT's
# first-call, disk-hit and dispatch costs. Usage: bench/gpu/run_elementwise.sh [output folder]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-"$here/build-bench-gpu"}
mkdir -p "$out"
xsimd=$(dirname "$(find /usr/include /usr/local/include -name xsimd.hpp -path '*xsimd/xsimd.hpp' 2>/dev/null | head -1)")/..
g++ -std=c++20 -O2 -march=native -I"$here/include" -I"$xsimd" "$here/bench/gpu/elementwise.cpp" -o "$out/elementwise_gpu" -ldl -lpthread
"$out/elementwise_gpu" "$out/elementwise_gpu.json" | tee "$out/elementwise_gpu.txt"
