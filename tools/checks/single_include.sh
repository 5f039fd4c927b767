#!/usr/bin/env bash
# single_include/ must be what tools/amalgamate.py generates from include/, and must be enough on
# its own: every example (and the elementwise contract program) is built against the single
# headers alone, with a bare g++ command and no include/ on the path, and run with --check.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 "$here/tools/amalgamate.py" --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
srcs=("$here"/examples/*.cpp)
[[ -e $here/../shared/contract/elementwise.cpp ]] && srcs+=("$here/../shared/contract/elementwise.cpp")
for src in "${srcs[@]}"; do
  # <loom/cuda.hpp> is single_include/loom/loom_cuda.hpp in the single-header form
  sed 's|#include <loom/cuda.hpp>|#include <loom/loom_cuda.hpp>|' "$src" > "$tmp/$(basename "$src")"
done
build_and_run() {  # source file, tmp dir, repository
  local src=$1 bin=${1%.cpp}
  # -DLOOM_LEAN_INLINE as in the tests: nothing here is timed (core/config.hpp)
  g++ -std=c++20 -O1 -march=native -DLOOM_LEAN_INLINE -I"$3/single_include" "$src" -o "$bin" -pthread -ldl ||
    { echo "single_include: $(basename "$src") does not build against the single headers"; return 1; }
  "$bin" --check > "$bin.out" 2>&1 || { cat "$bin.out"; echo "single_include: $(basename "$src") failed"; return 1; }
}
export -f build_and_run
# Late in a CI run (LOOM_QUICKSTART_START, as tools/checks/sanitizers.sh reads it: past
# LOOM_SINGLE_INCLUDE_LATE_S, default 1600 s, of CI's 30 minutes) only the demo and the contract
# program are built; the up-to-date check above is whole either way.
source "$here/tools/ci_clock.sh"
if t=$(ci_elapsed) && ((t > ${LOOM_SINGLE_INCLUDE_LATE_S:-1600})); then
  echo "single_include: LATE: $t s into the run; building the demo and the contract program only"
  find "$tmp" -name '*.cpp' ! -name demo.cpp ! -name elementwise.cpp -delete
fi
printf '%s\n' "$tmp"/*.cpp | xargs -P "$(nproc)" -I{} bash -c 'build_and_run "$@"' _ {} "$tmp" "$here"
echo "single_include: up to date; $(ls "$tmp"/*.cpp | wc -l) programs built against it alone and run"
