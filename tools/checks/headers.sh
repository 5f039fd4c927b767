#!/usr/bin/env bash
# Every public header compiles on its own (self-contained), with plain g++ and nothing CUDA.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here/include"
find loom -name '*.hpp' | sort > "$tmp/list"
# Late in a CI run (past LOOM_HEADERS_LATE_S, default 1600 s, of CI's 30 minutes; see
# tools/checks/sanitizers.sh) only the public entry points are checked.
source "$here/tools/ci_clock.sh"
if t=$(ci_elapsed) && ((t > ${LOOM_HEADERS_LATE_S:-1600})); then
  echo "headers: LATE: $t s into the run; checking loom/loom.hpp and loom/cuda.hpp only"
  printf 'loom/loom.hpp\nloom/cuda.hpp\n' > "$tmp/list"
fi
check() {
  local h=$1 tu
  tu="$2/$(echo "$h" | tr '/.' '__').cpp"
  printf '#include <%s>\n#include <%s>\n' "$h" "$h" > "$tu"  # twice: include guards work too
  g++ -std=c++20 -fsyntax-only -Wall -Wextra -I"$3/include" "$tu" || { echo "not self-contained: $h"; return 1; }
}
export -f check
xargs -P "$(nproc)" -I{} bash -c 'check "$@"' _ {} "$tmp" "$here" < "$tmp/list"
echo "headers: $(wc -l < "$tmp/list") headers are self-contained"
