#!/usr/bin/env bash
# Consumes loom the three ways users do and runs the result each time:
# find_package after cmake --install, add_subdirectory, and the single header with a bare g++.
# The three are independent builds of one small program and run side by side.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

via_package() {
  cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
  cmake -S "$here/tests/packaging" -B "$tmp/pkg" -DCMAKE_BUILD_TYPE=Release -DLOOM_VIA=package \
        -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
  cmake --build "$tmp/pkg" >/dev/null
  "$tmp/pkg/consumer"
}
via_subdirectory() {
  cmake -S "$here/tests/packaging" -B "$tmp/sub" -DCMAKE_BUILD_TYPE=Release -DLOOM_VIA=subdirectory \
        -DLOOM_SOURCE_DIR="$here" >/dev/null
  cmake --build "$tmp/sub" >/dev/null
  "$tmp/sub/consumer"
}
via_single_header() {
  g++ -std=c++20 -O2 -march=native -I"$here/single_include" "$here/tests/packaging/main.cpp" -o "$tmp/single" \
      -pthread -ldl
  "$tmp/single"
}

ways=(package subdirectory single_header)
pids=()
for way in "${ways[@]}"; do
  ("via_$way") >"$tmp/$way.log" 2>&1 &  # a subshell: set -e stops the way at its first failure
  pids+=($!)
done
failed=()
for i in "${!ways[@]}"; do
  wait "${pids[$i]}" || failed+=("${ways[$i]}")
  cat "$tmp/${ways[$i]}.log"
done
if ((${#failed[@]})); then
  echo "packaging: failed: ${failed[*]}" >&2
  exit 1
fi
echo "packaging: find_package, add_subdirectory and the single header all work"
