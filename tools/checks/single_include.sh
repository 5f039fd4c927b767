#!/usr/bin/env bash
# single_include/ must be what tools/amalgamate.py generates from include/, and must compile alone.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 "$here/tools/amalgamate.py" --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for prog in "$here"/../shared/contract/elementwise.cpp; do
  [[ -e $prog ]] || continue
  sed 's|#include <loom/loom.hpp>|#include "loom.hpp"|' "$prog" > "$tmp/main.cpp"
  g++ -std=c++20 -O1 -march=native -I"$here/single_include/loom" "$tmp/main.cpp" -o "$tmp/main" -pthread -ldl
  "$tmp/main"
done
echo "single_include: ok"
