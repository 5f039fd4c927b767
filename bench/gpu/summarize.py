#!/usr/bin/env python3
"""Gathers the parts of a bench/gpu/run.sh run into <out>/results.json and <out>/summary.md.

    python3 bench/gpu/summarize.py <work-dir> <out-dir>

The work dir holds card.txt, stages.tsv, the parts' JSON (elementwise.json, baselines.json,
loom_w*.json, loom_w*.nocompile.json, peers_*.json) and the logs. Standard library only. For each
workload the table gives every variant's time, bandwidth or rate, error against float64, status,
and "loom speed-up": the variant's time over loom's (above 1: loom is faster), where loom ran.
"""
import glob
import json
import os
import re
import sys

ORDER = ["W1", "W2", "W3", "W4", "W5", "W6/sum", "W6/colsum", "W7", "W8", "W9", "trig"]
PROBES = {"3": "W3", "4": "W4", "61": "W6/sum", "62": "W6/colsum", "7": "W7", "8": "W8", "9": "W9"}
LOOM_DEFAULT = {"loom (extents at run time)", "loom", "loom (float32)"}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # a part cut off by its time limit
        return {"error": f"{type(e).__name__}: {e}"}


def main(work, out):
    parts = {}
    for p in sorted(glob.glob(os.path.join(work, "*.json"))):
        parts[os.path.basename(p)] = load(p)
    card = open(os.path.join(work, "card.txt")).read() if os.path.exists(os.path.join(work, "card.txt")) else ""
    stages = []
    if os.path.exists(os.path.join(work, "stages.tsv")):
        for line in open(os.path.join(work, "stages.tsv")):
            f = line.rstrip("\n").split("\t")
            if len(f) >= 4:
                stages.append(dict(stage=f[0], status=f[1], rc=f[2], seconds=f[3], last_line=f[4] if len(f) > 4 else ""))

    rows = []  # workload, variant, source, ms, gbps, tflops, err, status

    def add(source, r, default_status="ok"):
        rows.append(dict(workload=r.get("workload"), variant=r.get("variant"), source=source, ms=r.get("ms"),
                         gbps=r.get("gbps"), tflops=r.get("tflops"), err=r.get("err"),
                         status=r.get("status", default_status)))

    ew = parts.get("elementwise.json", {})
    for r in ew.get("rows", []):
        add("loom" if r.get("variant", "").startswith("loom") else "elementwise.cpp", r)
    for r in parts.get("baselines.json", {}).get("rows", []):
        add("baselines.cu", r)
    for key, w in PROBES.items():
        p = parts.get(f"loom_w{key}.json")
        if p and p.get("rows"):
            for r in p["rows"]:
                add("loom", r)
        elif f"loom_w{key}.nocompile.json" in parts:
            err = parts[f"loom_w{key}.nocompile.json"].get("compile_error", "")
            rows.append(dict(workload=w, variant="loom", source="loom", status="not generated yet (does not compile)",
                             note=err))
        else:
            rows.append(dict(workload=w, variant="loom", source="loom", status="not measured"))
    peer_status = {}
    for name in ["peers_torch_eager.json", "peers_jax.json", "peers_torch_compile.json"]:
        p = parts.get(name)
        if p is None:
            peer_status[name] = "not run"
            continue
        peer_status[name] = p.get("status", p.get("error", "?"))
        for r in p.get("rows", []):
            add(name[:-5].replace("peers_", ""), r)

    # loom's time per workload, and the speed-up over every other variant
    loom_ms = {}
    for r in rows:
        if r["source"] == "loom" and r.get("variant") in LOOM_DEFAULT and r.get("status") == "ok" and r.get("ms"):
            loom_ms.setdefault(r["workload"], r["ms"])
    for r in rows:
        lm = loom_ms.get(r["workload"])
        r["loom_speedup"] = (r["ms"] / lm) if (lm and r.get("ms") and r.get("status") == "ok") else None

    jit = ew.get("jit", {})
    tests = summarize_tests(work)
    targets = check_targets(rows, loom_ms, jit)

    with open(os.path.join(out, "results.json.tmp"), "w") as f:
        json.dump(dict(card=card, stages=stages, rows=rows, jit=jit, tests=tests, targets=targets, parts=parts,
                       peers=peer_status), f, indent=1)
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))

    md = ["# loom on the GPU: bench/gpu/run.sh", "", "```", card.strip(), "```", ""]
    md += ["## Workloads (GPU sizes of WORKLOADS.md)", "",
           "loom speed-up = the variant's time / loom's time (above 1: loom is faster). err = "
           "||out - ref|| / ||ref|| against float64 on a sample (sums: |out - ref| / sum |x|).", "",
           "| workload | variant | source | time (ms) | GB/s | TFLOP/s | err | status | loom speed-up |",
           "|---|---|---|---:|---:|---:|---:|---|---:|"]

    def fmt(v, spec):
        return "" if v is None or v == 0 else format(v, spec)

    for w in ORDER:
        for r in [r for r in rows if r["workload"] == w]:
            md.append(f"| {w} | {r.get('variant') or ''} | {r['source']} | {fmt(r.get('ms'), '.3f')} | "
                      f"{fmt(r.get('gbps'), '.0f')} | {fmt(r.get('tflops'), '.1f')} | {fmt(r.get('err'), '.1e')} | "
                      f"{r.get('status')} | {fmt(r.get('loom_speedup'), '.2f')} |")
    notes = [f"* {r['workload']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        md += ["", "loom programs that do not compile (the first error):", ""] + notes
    md += ["", "## The JIT (bench/gpu/elementwise.cpp)", ""]
    if jit:
        md += [f"* first call of a new expression (NVRTC + load): {jit.get('first_call_ms', -1):.2f} ms (target <= 150)",
               f"* disk-cache hit (+ load): {jit.get('disk_hit_ms', -1):.2f} ms (target <= 5)",
               f"* dispatch: raw cuLaunchKernel {jit.get('raw_launch_us', -1):.2f} us, loom assignment "
               f"{jit.get('loom_launch_us', -1):.2f} us, overhead "
               f"{jit.get('loom_launch_us', 0) - jit.get('raw_launch_us', 0):.2f} us (target <= 5)"]
    else:
        md.append("not measured")
    md += ["", "## Targets of issue 5", "", "| target | measured | verdict |", "|---|---|---|"]
    md += [f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in targets]
    md += ["", "## Tests", ""] + [f"* {t}" for t in tests] + [""]
    md += ["## Peers", ""] + [f"* {k[:-5]}: {v}" for k, v in peer_status.items()] + [""]
    md += ["## Stages", "", "| stage | status | rc | seconds | last line |", "|---|---|---|---:|---|"]
    md += [f"| {s['stage']} | {s['status']} | {s['rc']} | {s['seconds']} | {s['last_line'].replace('|', '/')} |"
           for s in stages]
    md.append("")
    with open(os.path.join(out, "summary.md.tmp"), "w") as f:
        f.write("\n".join(md))
    os.replace(os.path.join(out, "summary.md.tmp"), os.path.join(out, "summary.md"))


def summarize_tests(work):
    logs = [os.path.join(work, n) for n in ("unit_tests.log", "tests.log") if os.path.exists(os.path.join(work, n))]
    if not logs:
        return ["not run"]
    text = "\n".join(open(log, errors="replace").read() for log in logs)
    lines = re.findall(r"^.*tests passed.*$", text, re.M)
    failed = re.findall(r"^\s*\d+ - .*\((?:Failed|Not Run|Timeout|SEGFAULT|Subprocess aborted|Exception).*\)$", text, re.M)
    skipped = len(re.findall(r"no CUDA device: skipped", text))
    out = lines + [f"failed: {f.strip()}" for f in failed]
    if skipped:
        out.append(f"{skipped} 'no CUDA device: skipped' messages (no GPU seen)")
    return out or ["no ctest summary in unit_tests.log / tests.log"]


def check_targets(rows, loom_ms, jit):
    def best(w, pred):
        ms = [r["ms"] for r in rows if r["workload"] == w and r.get("status") == "ok" and r.get("ms") and pred(r)]
        return min(ms) if ms else None

    t = []

    def ratio_target(name, w, pred, need):
        lm, other = loom_ms.get(w), best(w, pred)
        if lm is None or other is None:
            t.append(dict(target=name, measured="loom not measured" if lm is None else "baseline not measured",
                          verdict="open"))
        else:
            ratio = other / lm
            t.append(dict(target=name, measured=f"{ratio:.2f}x", verdict="met" if ratio >= need else "missed"))

    for w in ["W1", "W2", "W5"]:
        ratio_target(f"{w} >= 0.9x device copy bandwidth", w, lambda r: r.get("variant", "").startswith("device copy"), 0.9)
    for w in ["W3", "W4"]:
        ratio_target(f"{w} >= 1.0x torch.compile", w, lambda r: r["source"] == "torch_compile", 1.0)
        ratio_target(f"{w} >= 1.0x jax.jit", w, lambda r: r["source"] == "jax", 1.0)
        ratio_target(f"{w} >= 0.9x hand-written", w, lambda r: r["source"] == "baselines.cu" and "hand" in r.get("variant", ""), 0.9)
    for w in ["W7", "W8"]:
        ratio_target(f"{w} >= 0.95x cuBLASLt (float32)", w,
                     lambda r: r["source"] == "baselines.cu" and "float32" in r.get("variant", ""), 0.95)
    if jit:
        over = jit.get("loom_launch_us", 0) - jit.get("raw_launch_us", 0)
        t.append(dict(target="first call <= 150 ms", measured=f"{jit.get('first_call_ms', -1):.1f} ms",
                      verdict="met" if 0 <= jit.get("first_call_ms", -1) <= 150 else "missed"))
        t.append(dict(target="disk-cache hit <= 5 ms", measured=f"{jit.get('disk_hit_ms', -1):.2f} ms",
                      verdict="met" if 0 <= jit.get("disk_hit_ms", -1) <= 5 else "missed"))
        t.append(dict(target="dispatch <= 5 us over a raw launch", measured=f"{over:.2f} us",
                      verdict="met" if over <= 5 else "missed"))
    return t


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
