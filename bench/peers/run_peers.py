#!/usr/bin/env python3
"""XLA (jax.jit on the CPU) and PyTorch (eager and torch.compile) on W1-W9 of WORKLOADS.md, at the
CPU sizes, on this machine, at a given thread count: the peers in loom's benchmark report.

    bench/peers/setup.sh                       # once: a virtual environment with jax and torch
    .venv-peers/bin/python bench/peers/run_peers.py --threads 1 2

Each workload is checked against a float64 NumPy reference before it is timed; the result is the
median of repeated timed calls after warm-up (compilation excluded, as loom's compile time is
excluded too). Writes bench/results/peers_cpu.json in Google Benchmark's JSON format, so that
tools/bench_report.py puts XLA and PyTorch in the same tables as loom and its other baselines.
One process per thread count: XLA fixes its thread pool when it starts.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def workloads(np):
    rng = np.random.default_rng(0)

    def u(*shape):
        a = rng.uniform(-1, 1, size=shape).astype(np.float32)
        a[a == 0] = 0.5
        return a

    n = 1 << 24
    r, c = 4096, 1024
    w = {}
    x, y, z = u(n), u(n), u(n)
    w["W1"] = dict(args=(x, y, z), ref=lambda x, y, z: 2.0 * x + 3.0 * y + 4.0 * z, bytes=16 * n,
                   f=lambda m, x, y, z: 2 * x + 3 * y + 4 * z)
    w["W2"] = dict(args=(u(n),), ref=lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3))),
                   bytes=8 * n, f=lambda m, x: 0.5 * x * (1 + m.tanh(0.7978845608 * (x + 0.044715 * x * x * x))))

    w["W3_softmax"] = dict(args=(u(r, c),), bytes=8 * r * c,
                   ref=lambda x: np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True),
                   f=lambda m, x: (lambda e: e / _sum(m, e))(m.exp(x - _max(m, x))))
    g, b = u(c), u(c)

    def ln(m, x, g, b):
        mu = _mean(m, x)
        d = x - mu
        var = _mean(m, d * d)
        return d * _rsqrt(m, var + 1e-5) * g + b

    w["W4_layernorm"] = dict(args=(u(r, c), g, b), bytes=8 * r * c + 8 * c,
                   ref=lambda x, g, b: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * g + b,
                   f=ln)
    w["W5"] = dict(args=(u(r, c), u(c)), bytes=8 * r * c + 4 * c, ref=lambda x, b: np.maximum(x + b, 0),
                   f=lambda m, x, b: _relu(m, x + b))
    w["W6_sum"] = dict(args=(u(n),), bytes=4 * n, ref=lambda x: x.sum(), f=lambda m, x: _sum_all(m, x))
    w["W6_colsum"] = dict(args=(u(r, c),), bytes=4 * r * c + 4 * c, ref=lambda x: x.sum(0), f=lambda m, x: _sum0(m, x))
    k = 1024
    w["W7"] = dict(args=(u(k, k), u(k, k)), flops=2 * k ** 3, ref=lambda a, b: a @ b, f=lambda m, a, b: a @ b)
    bias = u(k)
    w["W8"] = dict(args=(u(k, k), u(k, k), bias), flops=2 * k ** 3,
                   ref=lambda a, b, c: (lambda h: 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3))))(a @ b + c),
                   f=lambda m, a, b, c: _gelu(m, a @ b + c))
    t, d = 512, 1024
    w1, b1, w2, b2 = u(d, 4 * d) * 0.05, u(4 * d), u(4 * d, d) * 0.05, u(d)

    def mlp(m, x, g, b, w1, b1, w2, b2):
        return x + (_gelu(m, ln(m, x, g, b) @ w1 + b1) @ w2 + b2)

    def mlp_ref(x, g, b, w1, b1, w2, b2):
        h = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * g + b
        a = h @ w1 + b1
        a = 0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a ** 3)))
        return x + (a @ w2 + b2)

    w["W9"] = dict(args=(u(t, d), u(d), u(d), w1, b1, w2, b2), flops=2 * 2 * t * d * 4 * d, ref=mlp_ref, f=mlp)
    return w


# Small wrappers so one function body serves jax.numpy and torch.
def _is_torch(m):
    return m.__name__ == "torch"


def _max(m, x):
    return m.amax(x, dim=1, keepdim=True) if _is_torch(m) else m.max(x, axis=1, keepdims=True)


def _sum(m, x):
    return m.sum(x, dim=1, keepdim=True) if _is_torch(m) else m.sum(x, axis=1, keepdims=True)


def _mean(m, x):
    return m.mean(x, dim=1, keepdim=True) if _is_torch(m) else m.mean(x, axis=1, keepdims=True)


def _rsqrt(m, x):
    return m.rsqrt(x) if _is_torch(m) else 1 / m.sqrt(x)


def _relu(m, x):
    return m.relu(x) if _is_torch(m) else m.maximum(x, 0)


def _sum_all(m, x):
    return m.sum(x)


def _sum0(m, x):
    return m.sum(x, dim=0) if _is_torch(m) else m.sum(x, axis=0)


def _gelu(m, h):
    return 0.5 * h * (1 + m.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))


def median_ms(fn, reps, min_time=0.3):
    fn()  # warm-up (compilation)
    fn()
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) > 200:
            break
    times.sort()
    return times[len(times) // 2]


def entry(name, ms, spec):
    e = {"name": name + "/real_time_median", "run_name": name, "run_type": "aggregate", "aggregate_name": "median",
         "real_time": ms, "cpu_time": ms, "time_unit": "ms", "iterations": 1}
    if "bytes" in spec:
        e["bytes_per_second"] = spec["bytes"] / (ms * 1e-3)
    if "flops" in spec:
        e["GFLOPs"] = spec["flops"] / (ms * 1e-3) / 1e9
    return e


def check(name, got, want, rtol):
    import numpy as np
    got = np.asarray(got, dtype=np.float64)
    # Normalised by the largest magnitude of the result: float rounding of terms of that size.
    err = np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want))))
    if not err <= rtol:
        print(f"{name}: wrong result (max error {err:.3g} of the largest magnitude): not timed", file=sys.stderr)
        return False
    return True


def child(threads, which):
    import numpy as np
    out = []
    ws = workloads(np)
    refs = {k: v["ref"](*[a.astype(np.float64) for a in v["args"]]) for k, v in ws.items()}
    tol = {"W6_sum": 1e-5, "W6_colsum": 1e-5, "W7": 1e-5, "W8": 1e-5, "W9": 1e-4}
    if "xla" in which:
        import jax
        import jax.numpy as jnp
        for k, v in ws.items():
            f = jax.jit(lambda *a, _f=v["f"]: _f(jnp, *a))
            args = [jax.device_put(a) for a in v["args"]]
            if not check(f"{k}/xla", f(*args), refs[k], tol.get(k, 1e-6)):
                continue
            ms = median_ms(lambda: f(*args).block_until_ready(), 20)
            out.append(entry(f"{k}/xla/threads:{threads}", ms, v))
            print(f"{k}/xla/threads:{threads}: {ms:.3f} ms", file=sys.stderr, flush=True)
    if "torch" in which:
        import torch
        torch.set_num_threads(threads)
        for k, v in ws.items():
            args = [torch.from_numpy(a) for a in v["args"]]
            eager = lambda *a, _f=v["f"]: _f(torch, *a)
            with torch.no_grad():
                if check(f"{k}/torch", eager(*args), refs[k], tol.get(k, 1e-6)):
                    ms = median_ms(lambda: eager(*args), 20)
                    out.append(entry(f"{k}/torch_eager/threads:{threads}", ms, v))
                    print(f"{k}/torch_eager/threads:{threads}: {ms:.3f} ms", file=sys.stderr, flush=True)
                try:
                    comp = torch.compile(eager)
                    if not check(f"{k}/torch_compile", comp(*args), refs[k], tol.get(k, 1e-6)):
                        continue
                    ms = median_ms(lambda: comp(*args), 20)
                    out.append(entry(f"{k}/torch_compile/threads:{threads}", ms, v))
                    print(f"{k}/torch_compile/threads:{threads}: {ms:.3f} ms", file=sys.stderr, flush=True)
                except Exception as e:  # torch.compile needs a working C++ toolchain
                    print(f"{k}/torch_compile: skipped ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--peers", nargs="+", default=["xla", "torch"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "peers_cpu.json"))
    ap.add_argument("--child", type=int, default=0)
    a = ap.parse_args()
    if a.child:
        json.dump(child(a.child, a.peers), sys.stdout)
        return
    benchmarks = []
    for t in a.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t),
                   XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if t > 1 else 'false'} "
                             f"intra_op_parallelism_threads={t}",
                   JAX_PLATFORMS="cpu")
        cmd = [sys.executable, __file__, "--child", str(t), "--peers", *a.peers]
        # Pin the child to t cores so the peers cannot use more threads than loom does.
        cmd = ["taskset", "-c", ",".join(str(i) for i in range(t))] + cmd
        res = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
        benchmarks += json.loads(res.stdout.strip().splitlines()[-1])
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    ctx = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "num_cpus": os.cpu_count(),
           "load_avg": list(os.getloadavg()), "peers": a.peers}
    json.dump({"context": ctx, "benchmarks": benchmarks}, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
