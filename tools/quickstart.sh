#!/usr/bin/env bash
# loom's quick start: installs what is missing (Debian/Ubuntu), builds, and runs.
#
#   tools/quickstart.sh demo    build and run the main demo
#   tools/quickstart.sh test    build everything (library tests, examples, benchmarks, the API
#                               contract programs, compile-fail tests) and run the test suite
#
# Environment: LOOM_BUILD_DIR (default build), LOOM_JOBS (default: the number of cores).
set -euo pipefail
# When this run started (tools/checks/sanitizers.sh cuts its set on a slow machine).
export LOOM_QUICKSTART_START=${LOOM_QUICKSTART_START:-$(date +%s)}

mode=${1:-demo}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_BUILD_DIR:-$here/build}
jobs=${LOOM_JOBS:-$(nproc)}

packages=(cmake g++ make libxsimd-dev catch2 libbenchmark-dev libeigen3-dev libopenblas-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "quickstart: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null

case "$mode" in
  demo)
    cmake --build "$build" -j "$jobs" --target example_demo
    "$build/examples/example_demo"
    ;;
  test)
    # Each stage's end is printed with the seconds since the start (CI's budget is 30 minutes).
    elapsed() { echo "$(($(date +%s) - LOOM_QUICKSTART_START)) s"; }
    cmake --build "$build" -j "$jobs"
    echo "quickstart: built ($(elapsed))"
    (cd "$build" && ctest -j "$jobs" --output-on-failure)
    echo "quickstart: tests passed ($(elapsed))"
    for extra in "$here"/tools/checks/*.sh; do
      [[ -e $extra ]] || continue
      echo "quickstart: $(basename "$extra")"
      bash "$extra" "$build"
      echo "quickstart: $(basename "$extra") done ($(elapsed))"
    done
    echo "quickstart: all tests passed ($(elapsed))"
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
