#!/usr/bin/env bash
# Consumes loom the three ways users do and runs the result each time:
# find_package after cmake --install, add_subdirectory, and the single header with a bare g++.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$here/tests/packaging" -B "$tmp/pkg" -DCMAKE_BUILD_TYPE=Release -DLOOM_VIA=package \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/pkg" >/dev/null
"$tmp/pkg/consumer"

cmake -S "$here/tests/packaging" -B "$tmp/sub" -DCMAKE_BUILD_TYPE=Release -DLOOM_VIA=subdirectory \
      -DLOOM_SOURCE_DIR="$here" >/dev/null
cmake --build "$tmp/sub" >/dev/null
"$tmp/sub/consumer"

g++ -std=c++20 -O2 -march=native -I"$here/single_include" "$here/tests/packaging/main.cpp" -o "$tmp/single" -pthread -ldl
"$tmp/single"
echo "packaging: find_package, add_subdirectory and the single header all work"
