#!/usr/bin/env bash
# The long fuzz run: generates, builds and runs random loom expressions against the reference.
#
#   tools/fuzz/run.sh --count 10000            # 10,000 expressions, seed 1000, 25 per program
#   tools/fuzz/run.sh --count 200 --seed 7 -j 2 --per-tu 20 --opt -O3 --cuda --keep
#
# Each batch of --per-tu cases becomes one program (tools/fuzz/gen.py --seed S --first F ...),
# built with g++ (-std=c++20 -march=native and --opt, default -O2) in --jobs parallel builds and
# run as soon as it is built. A program prints its statistics; a failing case prints the seeds,
# the expression, loom::explain and the mismatches, and leaves a one-file reproducer in
# <work>/repro/. The run ends with the totals; the exit status is 1 if any case failed.
#
# Options: --count N (cases), --seed S (corpus seed), --per-tu K, -j/--jobs J (default 2),
# --opt FLAGS, --cuda (also compile every kernel with NVRTC), --modes M (output modes per case
# besides eval, default 2), --big-every B (every B-th case is large: threads, streaming; default
# 25), --work DIR (default build-fuzz/long-<seed>), --keep (keep sources and binaries), --resume
# (a run stopped part way, same options and --work: batches that already passed are not redone).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
count=10000 seed=1000 per_tu=25 jobs=2 opt="-O2" cuda="" modes=2 big_every=25 work="" keep=0 data_seed=1 resume=0
while (($#)); do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --per-tu) per_tu=$2; shift 2 ;;
    -j|--jobs) jobs=$2; shift 2 ;;
    --opt) opt=$2; shift 2 ;;
    --cuda) cuda="--cuda"; shift ;;
    --modes) modes=$2; shift 2 ;;
    --big-every) big_every=$2; shift 2 ;;
    --data-seed) data_seed=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --resume) resume=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
work=${work:-$here/build-fuzz/long-$seed}
mkdir -p "$work/repro" "$work/log"
xsimd_inc=$(dirname "$(dirname "$(find /usr/include /usr/local/include -name xsimd.hpp -path '*xsimd/xsimd.hpp' 2>/dev/null | head -1)")")
cxx=${CXX:-g++}
flags=(-std=c++20 $opt -march=native -I"$here/include" -I"$here/tests" -I"$xsimd_inc" -pthread)
batches=$(( (count + per_tu - 1) / per_tu ))
echo "fuzz: $count cases of seed $seed in $batches programs of $per_tu, $jobs jobs, $cxx ${opt}${cuda:+, NVRTC}; work in $work"
start=$(date +%s)

# One batch: generate, build, run; its summary line goes to log/<b>.summary.
one_batch() {
  local b=$1 first=$(( $1 * per_tu )) n=$per_tu
  (( first + n > count )) && n=$(( count - first ))
  local src="$work/fuzz_$b.cpp" bin="$work/fuzz_$b" log="$work/log/$b"
  if ((resume)) && grep -q "^batch $b rc 0: .* 0 failures" "$log.summary" 2>/dev/null; then return 0; fi
  python3 "$here/tools/fuzz/gen.py" --seed "$seed" --first "$first" --count "$n" --modes "$modes" \
    --big-every "$big_every" $cuda > "$src"
  if ! $cxx "${flags[@]}" "$src" -o "$bin" -ldl > "$log.build" 2>&1; then
    echo "BUILD FAILED batch $b (cases $first..$((first + n - 1))): see $log.build" > "$log.summary"
    return 0
  fi
  local rc=0
  (cd "$work/repro" && LOOM_FUZZ_REPRO_DIR="$work/repro" "$bin" "$data_seed" > "$log.out" 2>&1) || rc=$?
  echo "batch $b rc $rc: $(tail -1 "$log.out")" > "$log.summary"
  ((keep)) || rm -f "$bin"
  ((keep)) || ((rc)) || rm -f "$src"
}
export -f one_batch
export work seed per_tu count modes big_every cuda here cxx data_seed keep resume
export flags_str="${flags[*]}"

seq 0 $((batches - 1)) | xargs -P "$jobs" -I{} bash -c 'flags=($flags_str); one_batch {}; cat "$work/log/{}.summary"'

# Totals
python3 - "$work/log" "$count" "$(( $(date +%s) - start ))" <<'EOF'
import re, sys, glob, os
logdir, count, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tot = {"cases": 0, "checks": 0, "elements": 0, "ambiguous": 0, "failures": 0, "kernels": 0, "nogen": 0}
bad_builds, bad_runs = [], []
for f in sorted(glob.glob(os.path.join(logdir, "*.summary")), key=lambda p: int(os.path.basename(p).split(".")[0])):
    line = open(f).read()
    if "BUILD FAILED" in line:
        bad_builds.append(line.strip()); continue
    m = re.search(r"rc (\d+): (\d+) cases, \d+ rounds, (\d+) checks, (\d+) elements compared, (\d+) ambiguous.*?, (\d+) failures", line)
    if not m:
        bad_runs.append(line.strip()); continue
    rc, c, ch, el, am, fa = map(int, m.groups())
    tot["cases"] += c; tot["checks"] += ch; tot["elements"] += el; tot["ambiguous"] += am; tot["failures"] += fa
    k = re.search(r"cuda: (\d+) kernels compiled with NVRTC, (\d+) cases", line)
    if k:
        tot["kernels"] += int(k.group(1)); tot["nogen"] += int(k.group(2))
    if rc and not fa:
        bad_runs.append(line.strip())
print("fuzz: %d of %d cases ran, %d checks, %d elements compared, %d ambiguous, %d failures, %d NVRTC kernels, "
      "%d cases without a CUDA generator; %d build failures, %d crashed runs; %d s"
      % (tot["cases"], count, tot["checks"], tot["elements"], tot["ambiguous"], tot["failures"], tot["kernels"],
         tot["nogen"], len(bad_builds), len(bad_runs), secs))
for l in bad_builds + bad_runs:
    print("  " + l)
sys.exit(1 if tot["failures"] or bad_builds or bad_runs or tot["cases"] != count else 0)
EOF
