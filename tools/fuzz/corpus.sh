#!/usr/bin/env bash
# Regenerates the CI fuzz corpus: tests/unit/test_fuzz_0.cpp .. test_fuzz_<parts-1>.cpp (random
# cases of seed 1 plus a case for every node kind they miss; built and run by ctest like any
# unit test) and tests/gpu/test_fuzz_gpu.cpp (elementwise cases run on a device where there is
# one). tools/checks/fuzz_corpus.sh fails when the files differ from what this writes.
#
#   tools/fuzz/corpus.sh [--out DIR --gpu-out DIR]
#
# The knobs are here: more parts build in parallel; each part is one translation unit of about
# `count` cases (about 60 s to build on one core of this machine, 1.3 GB of memory).
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
exec python3 "$here/tools/fuzz/gen.py" --corpus --seed 1 --parts 8 --count 16 --modes 1 --big-every 14 \
  --gpu-count 24 --out "$out" --gpu-out "$gpu_out"
