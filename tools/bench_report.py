#!/usr/bin/env python3
"""Turns Google Benchmark JSON into bench/RESULTS.md tables and a PNG plot of loom's ratios.

    tools/bench_report.py run [--build build] [--filter REGEX]   run every bench_* binary (medians of 5)
                                                                 into bench/results/*.json, then report
                                                                 (--filter: re-run those, keep the rest)
    tools/bench_report.py report [json ...]                      report from existing JSON files

Benchmark names are WORKLOAD/VARIANT/threads:T (real time). Variants whose name starts with
"loom" are loom's; every other variant is a baseline (handwritten, unfused, eigen, copy, peak,
openblas, xla, torch ...). For each workload and thread count the table gives the median time,
the throughput counter (GB/s from bytes_per_second, or GFLOP/s from a "GFLOPs" counter), and
loom's speed relative to each baseline (baseline time / loom time: above 1 means loom is faster).
The generated part of bench/RESULTS.md sits between BEGIN/END GENERATED markers; the notes
around it (predictions, results, machines) are kept.
"""
import argparse
import collections
import glob
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import datetime

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
JSON_DIR = ROOT / "bench" / "results"
BEGIN, END = "<!-- BEGIN GENERATED: tools/bench_report.py -->", "<!-- END GENERATED -->"
NAME = re.compile(r"^(?P<w>[^/]+)/(?P<v>[^/]+)/threads:(?P<t>\d+)(?:/.*)?$")


def run(build, pattern):
    JSON_DIR.mkdir(parents=True, exist_ok=True)
    outs = []
    for exe in sorted(glob.glob(str(pathlib.Path(build) / "bench" / "bench_*"))):
        if not os.access(exe, os.X_OK) or os.path.isdir(exe):
            continue
        out = JSON_DIR / (pathlib.Path(exe).name + ".json")
        # With a filter, the binary writes the re-run benchmarks aside and they replace their
        # earlier entries in the kept file (the others stay as they were measured).
        dest = out.with_suffix(".part.json") if pattern else out
        cmd = [exe, "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
               f"--benchmark_out={dest}", "--benchmark_out_format=json"]
        if pattern:
            cmd.append(f"--benchmark_filter={pattern}")
        print("running", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
        if pattern:
            # (a binary none of whose benchmarks match writes an empty file, or none)
            new = json.load(open(dest)) if dest.exists() and dest.stat().st_size else {"benchmarks": []}
            dest.unlink(missing_ok=True)
            if out.exists() and not new.get("benchmarks"):
                outs.append(str(out))
                continue
            if out.exists():
                old = json.load(open(out))
                names = {b.get("run_name", b["name"]) for b in new["benchmarks"]}
                kept = [b for b in old.get("benchmarks", []) if b.get("run_name", b["name"]) not in names]
                new["benchmarks"] = kept + new["benchmarks"]
            json.dump(new, open(out, "w"), indent=2)
        outs.append(str(out))
    return outs


def load(files):
    rows = collections.OrderedDict()  # (workload, threads) -> variant -> dict
    context = None
    for f in files:
        data = json.load(open(f))
        context = context or data.get("context", {})
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            if b.get("error_occurred"):
                continue
            m = NAME.match(b.get("run_name", b["name"]))
            if not m:
                continue
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
            entry = {"ms": b["real_time"] * scale}
            if "bytes_per_second" in b:
                entry["GB/s"] = b["bytes_per_second"] / 1e9
            for k in ("GFLOPs", "GFLOP/s", "gflops"):
                if k in b:
                    entry["GFLOP/s"] = b[k] / 1e9 if b[k] > 1e6 else b[k]
            key = (m["w"], int(m["t"]))
            rows.setdefault(key, collections.OrderedDict())[m["v"]] = entry
    return rows, context or {}


def tables(rows):
    out = []
    by_workload = collections.OrderedDict()
    for (w, t), variants in rows.items():
        by_workload.setdefault(w, []).append((t, variants))
    ratios = []  # (workload, threads, loom variant, baseline, ratio)
    for w, per_t in by_workload.items():
        out.append(f"### {w}\n")
        out.append("| threads | variant | median ms | throughput | " + "loom vs this |")
        out.append("|---:|---|---:|---:|---|")
        for t, variants in sorted(per_t):
            looms = [v for v in variants if v.startswith("loom")]
            for v, e in variants.items():
                thr = (f"{e['GB/s']:.2f} GB/s" if "GB/s" in e else f"{e['GFLOP/s']:.1f} GFLOP/s" if "GFLOP/s" in e else "")
                rel = ""
                if not v.startswith("loom") and looms:
                    parts = []
                    for lv in looms:
                        r = e["ms"] / variants[lv]["ms"]
                        ratios.append((w, t, lv, v, r))
                        parts.append(f"{lv} {r:.2f}x")
                    rel = ", ".join(parts)
                out.append(f"| {t} | {v} | {e['ms']:.3f} | {thr} | {rel} |")
        # each variant's speed-up from 1 to 2 threads (the thread pool's scaling beside the baselines')
        by_t = dict(per_t)
        if 1 in by_t and 2 in by_t:
            sc = [f"{v} {by_t[1][v]['ms'] / by_t[2][v]['ms']:.2f}x" for v in by_t[1] if v in by_t[2]]
            out.append("")
            out.append("2 threads against 1: " + ", ".join(sc))
        out.append("")
    return "\n".join(out), ratios


def plot(ratios, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    groups = collections.OrderedDict()
    for w, t, lv, b, r in ratios:
        if lv != "loom":
            continue
        groups.setdefault(f"{w}\n{t} thr", {})[b] = r
    if not groups:
        return False
    baselines = sorted({b for g in groups.values() for b in g})
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(groups)), 4.5))
    width = 0.8 / len(baselines)
    for i, b in enumerate(baselines):
        xs = [k + i * width for k in range(len(groups))]
        ys = [g.get(b, float("nan")) for g in groups.values()]
        ax.bar(xs, ys, width, label=b)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(groups))])
    ax.set_xticklabels(list(groups.keys()), fontsize=8)
    ax.set_ylabel("loom speed / baseline speed (log)")
    ax.set_title("loom against each baseline (above 1: loom is faster)")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def report(files):
    rows, ctx = load(files)
    text, ratios = tables(rows)
    png = ROOT / "bench" / "ratios.png"
    have_plot = plot(ratios, png)
    when = ctx.get("date", datetime.datetime.now().isoformat())
    cpu = f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz"
    gen = [BEGIN, "", f"Generated from {', '.join(os.path.relpath(f, ROOT) for f in files)} ({when}; {cpu}; "
           f"{platform.machine()}; load average {ctx.get('load_avg', '?')}).", "",
           "Throughput counts bytes read plus bytes written (GB/s) or floating-point operations (GFLOP/s). "
           "The last column is loom's speed relative to that row (its time divided by loom's).", ""]
    if have_plot:
        gen += ["![loom's ratio to each baseline](ratios.png)", ""]
    gen += [text, END]
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + "\n".join(gen) + old[old.index(END) + len(END):]
    else:
        new = old.rstrip() + "\n\n## Generated tables\n\n" + "\n".join(gen) + "\n"
    RESULTS.write_text(new)
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}" + (" and bench/ratios.png" if have_plot else ""))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--build", default=str(ROOT / "build"))
    r.add_argument("--filter", default="")
    p = sub.add_parser("report")
    p.add_argument("json", nargs="*")
    a = ap.parse_args()
    if a.cmd == "run":
        files = run(a.build, a.filter)
        files += sorted(str(f) for f in JSON_DIR.glob("peers_*.json"))
    else:
        files = a.json or sorted(str(f) for f in JSON_DIR.glob("*.json"))
    report(files)


if __name__ == "__main__":
    main()
