#!/usr/bin/env bash
# The checked-in fuzz corpus (tests/unit/test_fuzz_*.cpp, tests/gpu/test_fuzz_gpu.cpp) must be
# what tools/fuzz/corpus.sh generates: an edit of the generator regenerates the corpus with it.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/unit" "$tmp/gpu"
bash "$here/tools/fuzz/corpus.sh" --out "$tmp/unit" --gpu-out "$tmp/gpu" 2>"$tmp/log"
status=0
for f in "$tmp"/unit/test_fuzz_*.cpp "$tmp/gpu/test_fuzz_gpu.cpp"; do
  rel=tests/$(basename "$(dirname "$f")")/$(basename "$f")
  if ! cmp -s "$f" "$here/$rel"; then
    echo "fuzz_corpus: $rel is not what tools/fuzz/corpus.sh generates; run it and commit" >&2
    status=1
  fi
done
for f in "$here"/tests/unit/test_fuzz_*.cpp; do
  [[ -e $tmp/unit/$(basename "$f") ]] || { echo "fuzz_corpus: $f is no longer generated; remove it" >&2; status=1; }
done
((status == 0)) && echo "fuzz_corpus: up to date ($(cat "$tmp/log"))"
exit $status
