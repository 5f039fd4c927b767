#!/usr/bin/env bash
# Regenerates the CI fuzz corpus: tests/unit/test_fuzz_0.cpp .. test_fuzz_<parts-1>.cpp (random
# cases of seed 1 plus a case for every node kind they miss; built and run by ctest like any
# unit test) and tests/gpu/test_fuzz_gpu.cpp (elementwise cases run on a device where there is
# one; without one they run on the CPU and their kernels are compiled with NVRTC, as every unit
# part's are). tools/checks/fuzz_corpus.sh fails when the files differ from what this writes.
#
#   tools/fuzz/corpus.sh [--out DIR --gpu-out DIR]
#
# The knobs are here, sized for CI's budget (about 3 minutes of the 30 on two cores for the whole
# corpus): 5 parts of 16 cases (80, every 14th large), plus a case for each node kind they miss,
# plus 24 GPU cases. Each part is one translation unit built at -O1 (tests/CMakeLists.txt):
# about 55 s of one core and 1.3 GB of memory; the GPU part about as much; the runs take seconds.
# More parts build in parallel; the long run (tools/fuzz/run.sh) is where the count grows.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=$here/tests/unit
gpu_out=$here/tests/gpu
while (($#)); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --gpu-out) gpu_out=$2; shift 2 ;;
    *) echo "corpus.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
exec python3 "$here/tools/fuzz/gen.py" --corpus --seed 1 --parts 5 --count 16 --modes 1 --big-every 14 \
  --gpu-count 24 --out "$out" --gpu-out "$gpu_out"
