#!/usr/bin/env bash
# One command for a GPU machine (issue 5, item 7): builds loom's GPU targets, runs the GPU tests,
# times W1-W9 at the GPU sizes of WORKLOADS.md beside hand-written CUDA, cuBLASLt, PyTorch eager,
# torch.compile and jax.jit, and writes a table. Under 8 minutes on an H100 machine of 16 cores.
#
#   bash bench/gpu/run.sh <out-dir>            # on the GPU machine (needs third_party_local/,
#                                              # made here by tools/vendor_local.sh and carried)
#   LOOM_GPU_SMOKE=1 bash bench/gpu/run.sh <out-dir>   # or: run.sh <out-dir> --dry-run
#       no GPU needed: builds the same targets (-j2), runs what runs without a device (the GPU
#       tests skip, the benchmarks say "no CUDA device"), the peers on the CPU at tiny sizes
#
# <out-dir> receives at most four files (the device tool returns at most 8):
#   summary.md     the table: workload, variant, time, GB/s or TFLOP/s, loom's ratio to each
#                  baseline; the JIT's costs; the tests; the stages; the card and the date
#   results.json   every part's JSON in one document
#   parts.tar.gz   the per-part JSON files and every log (build, tests, each benchmark)
#   run.log        this script's own progress
#
# Stages, each under `timeout` and clipped to what is left of the budget; a failed or timed-out
# stage is recorded and the script goes on:
#   build         cmake (Release, third_party_local) + the GPU test targets, test_cuda_runtime,
#                 test_cuda_codegen, example_cuda; g++ builds of bench/gpu/elementwise.cpp and
#                 of bench/gpu/loom_workloads.cpp once per workload (a workload whose program
#                 does not compile is "not generated yet"); nvcc builds of bench/gpu/baselines.cu
#                 (with cuBLASLt; without it if that fails). Runs at nice 19.
#   peers_*       bench/gpu/peers.py: torch eager, jax.jit, torch.compile (one process each).
#                 They run while the build compiles (the build is niced, the GPU is otherwise
#                 idle then); nothing else touches the GPU until they end.
#   unit_tests    test_cuda_runtime, test_cuda_codegen (NVRTC, CPU only): beside the peers, niced
#   elementwise   W1, W2, W5 (loom run-time and baked extents, hand-written, device copy) and
#                 the JIT's first-call, disk-hit and dispatch costs
#   baselines     hand-written W3, W4, W6; cuBLASLt W7, W8, W9
#   loom          loom's W3, W4, W6, W7, W8, W9 where generated
#   tests         example_cuda, then ctest -L gpu (-j 3), with what is left of the budget
#
# Environment: LOOM_GPU_BUDGET_S (whole run, default 470), LOOM_GPU_PEERS_BUDGET_S (the peers
# must end by then, default 250), LOOM_GPU_JOBS (default: the cores), LOOM_GPU_BUILD_DIR
# (default build-gpu), LOOM_THIRD_PARTY (default third_party_local), LOOM_GPU_STAGES (a subset
# of "build peers tests elementwise loom baselines"), LOOM_GPU_TARGETS and LOOM_GPU_PROBES (to
# build fewer test targets or loom workloads), PYTHON (default python3).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
self="$here/bench/gpu/run.sh"

# ---------------------------------------------------------------------------------------------
# Stage bodies, run as `run.sh --stage NAME` under timeout by the driver below
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "--stage" ]; then
  name=$2
  cd "$here" || exit 2
  case "$name" in
    configure)
      gen=()
      if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
      cmake -S "$here" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLOOM_THIRD_PARTY="$TP" \
        -DLOOM_BUILD_TESTS=ON -DLOOM_BUILD_EXAMPLES=ON -DLOOM_BUILD_BENCH=OFF ;;
    build)
      # cmake's targets, and beside them the benchmark programs (g++, nvcc), all at nice 19.
      keep=(-k)
      if [ -f "$BUILD/build.ninja" ]; then keep=(-k 0); fi
      # shellcheck disable=SC2086
      nice -n 19 cmake --build "$BUILD" -j "$JOBS" --target $TARGETS -- "${keep[@]}" >"$WORK/build_cmake.log" 2>&1 &
      pids=($!)
      xsimd="$TP/include"
      common=(-std=c++20 -O2 -march=native -I"$here/include" -I"$xsimd")
      mkdir -p "$WORK/bin"
      # At most JOBS of these compiles at a time, beside cmake's own JOBS.
      throttle() { while [ "$(jobs -rp | wc -l)" -gt "$JOBS" ]; do sleep 1; done; }
      nice -n 19 g++ "${common[@]}" bench/gpu/elementwise.cpp -o "$WORK/bin/elementwise_gpu" -ldl -lpthread \
        >"$WORK/build_elementwise.log" 2>&1 &
      pids+=($!)
      probe_pids=()  # a loom program that does not compile is a finding, not a failed build
      for w in $PROBES; do
        throttle
        nice -n 19 g++ "${common[@]}" -DLOOM_W="$w" bench/gpu/loom_workloads.cpp -o "$WORK/bin/loom_w$w" -ldl -lpthread \
          >"$WORK/build_loom_w$w.log" 2>&1 &
        probe_pids+=($!)
      done
      throttle
      (
        [ -n "$CUBLAS_L" ] || CUBLAS_L=-lcublasLt
        nv=(nvcc -arch=sm_90 -O3 -std=c++17 -lineinfo bench/gpu/baselines.cu)
        # shellcheck disable=SC2086  # CUBLAS_L is a list of flags
        if nice -n 19 "${nv[@]}" -DLOOM_WITH_CUBLASLT -o "$WORK/bin/baselines" $CUBLAS_L; then
          echo "baselines: built with cuBLASLt"
        else
          echo "baselines: cuBLASLt build failed; building without it (W7-W9 not measured)"
          nice -n 19 "${nv[@]}" -o "$WORK/bin/baselines"
        fi
      ) >"$WORK/build_baselines.log" 2>&1 &
      pids+=($!)
      rc=0
      for p in "${pids[@]}"; do wait "$p" || rc=1; done
      for p in "${probe_pids[@]}"; do wait "$p"; done
      grep -E "error|FAILED" "$WORK/build_cmake.log" | head -20
      for w in $PROBES; do
        if [ -x "$WORK/bin/loom_w$w" ]; then echo "loom W$w: built"; else echo "loom W$w: does not compile (not generated yet?)"; fi
      done
      tail -1 "$WORK/build_baselines.log"
      exit $rc ;;
    unit_tests)
      # NVRTC and the runtime's no-device paths: CPU only, so they run beside the peers, niced.
      nice -n 19 ctest --test-dir "$BUILD" -R '^(test_cuda_runtime|test_cuda_codegen)$' -j 2 --timeout 150 \
        --output-on-failure --output-junit "$WORK/ctest_cuda_unit.xml" ;;
    tests)
      rc=0
      ctest --test-dir "$BUILD" -R '^example_cuda$' --timeout 60 --output-on-failure \
        --output-junit "$WORK/ctest_example.xml" || rc=1
      ctest --test-dir "$BUILD" -L gpu -j 3 --timeout 140 --output-on-failure --output-junit "$WORK/ctest_gpu.xml" || rc=1
      exit $rc ;;
    elementwise)
      [ -x "$WORK/bin/elementwise_gpu" ] || { echo "elementwise_gpu was not built"; exit 1; }
      "$WORK/bin/elementwise_gpu" "$WORK/elementwise.json" ;;
    loom)
      rc=0
      for w in $PROBES; do
        if [ -x "$WORK/bin/loom_w$w" ]; then
          "$WORK/bin/loom_w$w" "$WORK/loom_w$w.json" ${SMALL:+"$SMALL"} || { echo "loom W$w: exit $?"; rc=1; }
        else
          # The compile error names why: matmul on device is a static_assert today.
          why=$(grep -m1 -E "error:" "$WORK/build_loom_w$w.log" | cut -c1-300)
          echo "loom W$w: not generated yet (does not compile: $why)"
          printf '{"workload": "W%s", "compile_error": %s}\n' "$w" \
            "$("$PYTHON" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$why")" >"$WORK/loom_w$w.nocompile.json"
        fi
      done
      exit $rc ;;
    baselines)
      [ -x "$WORK/bin/baselines" ] || { echo "baselines were not built"; exit 1; }
      "$WORK/bin/baselines" "$WORK/baselines.json" ${SMALL:+"$SMALL"} ;;
    peers_torch_eager | peers_torch_compile | peers_jax)
      fw=${name#peers_}
      extra=()
      if [ "$SMOKE" = 1 ]; then
        extra=(--device cpu --small --reps 3 --only W1 W3 W6/sum W7)
        [ "$fw" = torch_compile ] && extra=(--device cpu --small --reps 3 --only W1)
      fi
      if [ -n "$PEERS_LD_LIBRARY_PATH" ]; then export LD_LIBRARY_PATH=$PEERS_LD_LIBRARY_PATH; else unset LD_LIBRARY_PATH; fi
      PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" bench/gpu/peers.py --framework "$fw" \
        --out "$WORK/$name.json" "${extra[@]}" ;;
    *) echo "unknown stage $name"; exit 2 ;;
  esac
  exit $?
fi

# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------
out=${1:?usage: bench/gpu/run.sh <out-dir> [--dry-run]}
SMOKE=${LOOM_GPU_SMOKE:-0}
[ "${2:-}" = "--dry-run" ] && SMOKE=1
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
start=$(date +%s)
if [ "$SMOKE" = 1 ]; then
  budget=${LOOM_GPU_BUDGET_S:-1800}
  peers_budget=${LOOM_GPU_PEERS_BUDGET_S:-1200}
  JOBS=${LOOM_GPU_JOBS:-2}
  SMALL=--small
  scale=4  # stage limits on a small machine
  PROBES=${LOOM_GPU_PROBES:-"3 61 7"}
else
  budget=${LOOM_GPU_BUDGET_S:-470}
  peers_budget=${LOOM_GPU_PEERS_BUDGET_S:-250}
  JOBS=${LOOM_GPU_JOBS:-$(nproc)}
  SMALL=
  scale=1
  PROBES=${LOOM_GPU_PROBES:-"3 4 61 62 7 8 9"}
fi
deadline=$((start + budget))
peers_deadline=$((start + peers_budget))
BUILD=${LOOM_GPU_BUILD_DIR:-"$here/build-gpu"}
TP=${LOOM_THIRD_PARTY:-"$here/third_party_local"}
PYTHON=${PYTHON:-python3}
STAGES=${LOOM_GPU_STAGES:-"build peers tests elementwise loom baselines"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-gpu-run.XXXXXX")
if [ -z "${LOOM_GPU_TARGETS:-}" ]; then
  TARGETS=""
  for f in "$here"/tests/gpu/test_*.cpp; do TARGETS="$TARGETS $(basename "$f" .cpp)"; done
  TARGETS="$TARGETS test_cuda_runtime test_cuda_codegen example_cuda"
else
  TARGETS=$LOOM_GPU_TARGETS
fi

# Where the toolkit keeps NVRTC and cuBLASLt: loom dlopens them by name, nvcc links cuBLASLt.
# The toolkit's own folders first, then the pip wheels' (nvidia/*/lib) as a fallback.
CUBLAS_L=""
libdirs=""
nvcc_bin=$(command -v nvcc 2>/dev/null || true)
wheel_dirs=$("$PYTHON" -c 'import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(" ".join(sorted({os.path.dirname(p) for r in roots for p in glob.glob(r + "/nvidia/**/lib*/lib*.so*", recursive=True)
                       if "nvrtc" in p or "cublasLt" in p})))' 2>/dev/null || true)
# shellcheck disable=SC2086  # wheel_dirs is a list of folders without spaces
for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} ${nvcc_bin:+"$(dirname "$nvcc_bin")/../lib64"} \
  ${nvcc_bin:+"$(dirname "$nvcc_bin")/../lib"} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $wheel_dirs; do
  [ -d "$d" ] || continue
  d=$(cd "$d" && pwd)
  case ":$libdirs:" in *":$d:"*) continue ;; esac
  libdirs="$libdirs:$d"
  if [ -z "$CUBLAS_L" ]; then
    if [ -e "$d/libcublasLt.so" ]; then
      CUBLAS_L="-L$d -Xlinker -rpath=$d -lcublasLt"
    else
      lt=$(find "$d" -maxdepth 1 -name 'libcublasLt.so.*' 2>/dev/null | sort | head -1)
      [ -n "$lt" ] && CUBLAS_L="$lt -Xlinker -rpath=$d"
    fi
  fi
done
# For loom's programs only: the peers keep the loader path they came with (their wheels bring
# their own CUDA libraries, which a toolkit folder first on the path could displace).
export PEERS_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH="$TP/lib${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export BUILD TP PYTHON PROBES WORK TARGETS JOBS SMOKE SMALL CUBLAS_L
export LOOM_CACHE_DIR="$WORK/loom-cache"

log() { echo "[$(($(date +%s) - start))s] $*" | tee -a "$out/run.log"; }
: >"$out/run.log"
log "loom GPU run: out=$out work=$WORK smoke=$SMOKE budget=${budget}s jobs=$JOBS"
log "targets:$TARGETS; loom probes: $PROBES"

# The card, the tools and the date (first, so that every later failure still has them).
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # The device's copy of the tree may carry an older .git than its files: the headers' own hash
  # names the code that ran (compare with the same line run on the checkout).
  echo "git: $(git -C "$here" rev-parse --short HEAD 2>/dev/null) (may be stale on a copied tree)"
  echo "include_sha256: $(cd "$here" && find include -type f -name '*.hpp' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)"
  echo "host: $(uname -srm), $(nproc) cores"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv,noheader 2>&1 | head -1)"
  else
    echo "nvidia-smi: not found"
  fi
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "g++: $(g++ --version 2>/dev/null | head -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1)"
  echo "python: $("$PYTHON" --version 2>&1)"
  echo "cublasLt: ${CUBLAS_L:-not found}"
} >"$WORK/card.txt" 2>&1
tee -a "$out/run.log" <"$WORK/card.txt"

: >"$WORK/stages.tsv"
# stage NAME MAX_SECONDS [DEADLINE]: runs `run.sh --stage NAME` under timeout, clipped to the deadline.
stage() {
  local name=$1 max=$2 dl=${3:-$deadline} now left t0 rc status
  now=$(date +%s)
  left=$((dl - now - 10))
  if [ "$left" -lt 15 ]; then
    printf '%s\tskipped\t-\t0\tno time left\n' "$name" >>"$WORK/stages.tsv"
    log "$name: skipped (no time left)"
    return 0
  fi
  max=$((max * scale))
  [ "$max" -gt "$left" ] && max=$left
  log "$name: start (limit ${max}s)"
  t0=$(date +%s)
  timeout -k 10 "$max" bash "$self" --stage "$name" >"$WORK/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - t0))" "$(tail -1 "$WORK/$name.log" | tr '\t' ' ' | cut -c1-200)" \
    >>"$WORK/stages.tsv"
  log "$name: $status (rc $rc, $(($(date +%s) - t0))s): $(tail -1 "$WORK/$name.log" | cut -c1-160)"
  return 0
}

# Packs what there is into <out-dir> (after every stage, so a kill keeps what was done).
pack() {
  "$PYTHON" "$here/bench/gpu/summarize.py" "$WORK" "$out" >>"$WORK/summarize.log" 2>&1 ||
    log "summarize failed (see summarize.log in parts.tar.gz)"
  tar czf "$out/parts.tar.gz.tmp" -C "$WORK" --exclude=bin --exclude=loom-cache . 2>/dev/null &&
    mv "$out/parts.tar.gz.tmp" "$out/parts.tar.gz"
}

want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

peers_pid=""
if want peers; then
  (
    stage peers_torch_eager 100 "$peers_deadline"
    stage peers_jax 120 "$peers_deadline"
    stage peers_torch_compile 240 "$peers_deadline"
  ) &
  peers_pid=$!
fi
if want build; then
  stage configure 90
  stage build 250  # ends with the peers window: the GPU stages wait for both
fi
# CPU only and niced: beside the peers and, if need be, the timings (2 of the 16 cores).
unit_pid=""
if want tests; then
  stage unit_tests 150 &
  unit_pid=$!
fi
if [ -n "$peers_pid" ]; then
  log "waiting for the peers (they hold the GPU)"
  wait "$peers_pid"
fi
pack
# The timings first, the GPU tests last with what is left (at least about two minutes).
for s in elementwise baselines loom tests; do
  if want "$s"; then
    case $s in
      elementwise) stage elementwise 100 ;;
      baselines) stage baselines 120 ;;
      loom) stage loom 120 ;;
      tests)
        [ -n "$unit_pid" ] && wait "$unit_pid"
        stage tests 180 ;;
    esac
    pack
  fi
done
log "done in $(($(date +%s) - start))s"
pack
[ -f "$out/summary.md" ] && tail -n 60 "$out/summary.md"
rm -rf "$WORK"
exit 0
