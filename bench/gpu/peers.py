#!/usr/bin/env python3
"""The peers on the GPU: W1-W9 of WORKLOADS.md in PyTorch eager, torch.compile and jax.jit, at the
GPU sizes, for bench/gpu/run.sh's table.

    python3 bench/gpu/peers.py --framework torch_eager   --out eager.json
    python3 bench/gpu/peers.py --framework torch_compile --out compile.json
    python3 bench/gpu/peers.py --framework jax           --out jax.json
    python3 bench/gpu/peers.py --framework torch_eager --device cpu --small --out /tmp/p.json  # smoke

One framework per process (run.sh gives each its own time limit, so a hang in one loses nothing
of the others; JAX and PyTorch never share the GPU's memory). A framework that cannot be imported
is written as skipped, exit 0.

Inputs are drawn on the device in [-1, 1) without zeros. Each output is checked against a float64
NumPy reference on a sample (rows, or elements; all of it for the reductions) by
||out - ref|| / ||ref|| (for sums: |out - ref| over the sum of magnitudes) before it is timed; a
wrong result is written as such and not timed. Times: the median of timed calls after warm-up
(compilation excluded, as loom's JIT is excluded from its times), by CUDA events for PyTorch and by
block_until_ready around a batch of calls for JAX (async dispatch amortised). The JSON is
rewritten after every workload, so a time limit keeps what was done.

Matrix products are run twice: float32 (PyTorch's default, set_float32_matmul_precision("highest");
JAX with precision "float32") and TF32 ("high"; JAX's default on this GPU), labelled as such.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback

try:
    import numpy as np
except ImportError:  # written as skipped below
    np = None

GELU_C = 0.7978845608


def sizes(small):
    if small:
        return dict(N=1 << 16, R=128, C=1024, G=256, T=64, D=256)
    return dict(N=1 << 28, R=16384, C=4096, G=8192, T=8192, D=4096)


# --------------------------------------------------------------------------------------------
# Framework adapters: the same workload code runs on torch and jax.numpy
# --------------------------------------------------------------------------------------------
class TorchOps:
    name = "torch"

    def __init__(self, device):
        import torch
        self.t = torch
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(0)

    def uniform(self, shape, scale=1.0):
        x = torch_rand(self.t, shape, self.gen, self.device) * 2 - 1
        x = self.t.where(x == 0, self.t.full_like(x, 0.5), x)
        return x * scale if scale != 1.0 else x

    def host(self, x, idx=None):
        if idx is not None:
            x = x[self.t.as_tensor(idx, device=x.device)]
        return x.detach().to("cpu").numpy().astype(np.float64)

    def sync(self):
        if self.device.type == "cuda":
            self.t.cuda.synchronize()

    # math
    def tanh(self, x): return self.t.tanh(x)
    def exp(self, x): return self.t.exp(x)
    def rsqrt(self, x): return self.t.rsqrt(x)
    def relu(self, x): return self.t.relu(x)
    def rmax(self, x): return self.t.amax(x, dim=1, keepdim=True)
    def rsum(self, x): return self.t.sum(x, dim=1, keepdim=True)
    def rmean(self, x): return self.t.mean(x, dim=1, keepdim=True)
    def total(self, x): return self.t.sum(x)
    def colsum(self, x): return self.t.sum(x, dim=0)


def torch_rand(torch, shape, gen, device):
    return torch.rand(shape, generator=gen, device=device, dtype=torch.float32)


class JaxOps:
    name = "jax"

    def __init__(self, device):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.key = jax.random.PRNGKey(0)

    def uniform(self, shape, scale=1.0):
        self.key, k = self.jax.random.split(self.key)
        x = self.jax.random.uniform(k, shape, dtype=self.jnp.float32, minval=-1.0, maxval=1.0)
        x = self.jnp.where(x == 0, 0.5, x)
        return x * scale if scale != 1.0 else x

    def host(self, x, idx=None):
        if idx is not None:
            x = x[self.jnp.asarray(idx)]
        return np.asarray(x).astype(np.float64)

    def sync(self):
        pass

    def tanh(self, x): return self.jnp.tanh(x)
    def exp(self, x): return self.jnp.exp(x)
    def rsqrt(self, x): return self.jax.lax.rsqrt(x)
    def relu(self, x): return self.jnp.maximum(x, 0)
    def rmax(self, x): return self.jnp.max(x, axis=1, keepdims=True)
    def rsum(self, x): return self.jnp.sum(x, axis=1, keepdims=True)
    def rmean(self, x): return self.jnp.mean(x, axis=1, keepdims=True)
    def total(self, x): return self.jnp.sum(x)
    def colsum(self, x): return self.jnp.sum(x, axis=0)


# --------------------------------------------------------------------------------------------
# The workloads, written out as loom writes them
# --------------------------------------------------------------------------------------------
def gelu(m, h):
    return 0.5 * h * (1 + m.tanh(GELU_C * (h + 0.044715 * h * h * h)))


def layernorm(m, x, g, b):
    xc = x - m.rmean(x)
    return xc * m.rsqrt(m.rmean(xc * xc) + 1e-5) * g + b


def gelu_np(h):
    return 0.5 * h * (1 + np.tanh(GELU_C * (h + 0.044715 * h ** 3)))


def layernorm_np(x, g, b):
    mu = x.mean(1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * g + b


def softmax_np(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def sample_idx(n, k=4096):
    rng = np.random.default_rng(7)
    return np.unique(np.concatenate([np.arange(min(k, n)), rng.integers(0, n, k), np.arange(max(0, n - k), n)]))


def sample_rows(n, k=16):
    return np.unique(np.linspace(0, n - 1, k).astype(np.int64))


def workloads(s):
    """Each: make(ops) -> args; f(ops, *args) -> out; check(ops, out, args) -> err; tol; bytes or flops."""
    N, R, C, G, T, D = s["N"], s["R"], s["C"], s["G"], s["T"], s["D"]
    H = 4 * D
    w = {}

    def elementwise_check(ref):
        def check(m, out, args):
            idx = sample_idx(N)
            return rel_err(m.host(out, idx), ref(*[m.host(a, idx) for a in args]))
        return check

    w["W1"] = dict(make=lambda m: [m.uniform((N,)) for _ in range(3)], f=lambda m, x, y, z: 2 * x + 3 * y + 4 * z,
                   check=elementwise_check(lambda x, y, z: 2 * x + 3 * y + 4 * z), tol=1e-5, bytes=16 * N)
    w["W2"] = dict(make=lambda m: [m.uniform((N,))], f=lambda m, x: gelu(m, x), check=elementwise_check(gelu_np),
                   tol=1e-5, bytes=8 * N)

    def rows_check(ref, nvec=0):
        def check(m, out, args):
            r = sample_rows(R)
            vecs = [m.host(a) for a in args[1:1 + nvec]] if nvec else []
            return rel_err(m.host(out, r), ref(m.host(args[0], r), *vecs))
        return check

    w["W3"] = dict(make=lambda m: [m.uniform((R, C))],
                   f=lambda m, x: (lambda e: e / m.rsum(e))(m.exp(x - m.rmax(x))),
                   check=rows_check(softmax_np), tol=1e-5, bytes=8 * R * C)
    w["W4"] = dict(make=lambda m: [m.uniform((R, C)), m.uniform((C,)), m.uniform((C,))], f=layernorm,
                   check=rows_check(layernorm_np, 2), tol=1e-5, bytes=8 * R * C + 8 * C)
    w["W5"] = dict(make=lambda m: [m.uniform((R, C)), m.uniform((C,))], f=lambda m, x, b: m.relu(x + b),
                   check=rows_check(lambda x, b: np.maximum(x + b, 0), 1), tol=1e-6, bytes=8 * R * C + 4 * C)

    def sum_check(m, out, args):
        x = m.host(args[0])
        got = float(m.host(out))
        return abs(got - x.sum()) / np.abs(x).sum() if math.isfinite(got) else math.inf

    def colsum_check(m, out, args):
        x = m.host(args[0])
        got = m.host(out)
        if not np.all(np.isfinite(got)):
            return math.inf
        return float(np.max(np.abs(got - x.sum(0)) / np.abs(x).sum(0)))

    w["W6/sum"] = dict(make=lambda m: [m.uniform((N,))], f=lambda m, x: m.total(x), check=sum_check, tol=1e-6,
                       bytes=4 * N)
    w["W6/colsum"] = dict(make=lambda m: [m.uniform((R, C))], f=lambda m, x: m.colsum(x), check=colsum_check,
                          tol=1e-6, bytes=4 * R * C + 4 * C)

    def mm_check(epi):
        def check(m, out, args):
            r = sample_rows(G, 4)
            ref = m.host(args[0], r) @ m.host(args[1])
            if epi:
                ref = gelu_np(ref + m.host(args[2]))
            return rel_err(m.host(out, r), ref)
        return check

    w["W7"] = dict(make=lambda m: [m.uniform((G, G)), m.uniform((G, G))], f=lambda m, a, b: a @ b,
                   check=mm_check(False), tol=5e-3, flops=2 * G ** 3, matmul=True)
    w["W8"] = dict(make=lambda m: [m.uniform((G, G)), m.uniform((G, G)), m.uniform((G,))],
                   f=lambda m, a, b, c: gelu(m, a @ b + c), check=mm_check(True), tol=5e-3, flops=2 * G ** 3,
                   matmul=True)

    def mlp(m, x, g, b, w1, b1, w2, b2):
        return x + (gelu(m, layernorm(m, x, g, b) @ w1 + b1) @ w2 + b2)

    def mlp_check(m, out, args):
        r = sample_rows(T, 4)
        x = m.host(args[0], r)
        g, b, w1, b1, w2, b2 = [m.host(a) for a in args[1:]]
        ref = x + (gelu_np(layernorm_np(x, g, b) @ w1 + b1) @ w2 + b2)
        return rel_err(m.host(out, r), ref)

    w["W9"] = dict(make=lambda m: [m.uniform((T, D)), m.uniform((D,)), m.uniform((D,)),
                                   m.uniform((D, H), 1 / math.sqrt(D)), m.uniform((H,)),
                                   m.uniform((H, D), 1 / math.sqrt(H)), m.uniform((D,))],
                   f=mlp, check=mlp_check, tol=5e-3, flops=4 * T * D * H, matmul=True)
    return w


# Built-in spellings for eager PyTorch (its fused library kernels), beside the written-out ones.
def torch_builtins():
    import torch
    import torch.nn.functional as F
    return {
        "W2": lambda m, x: F.gelu(x, approximate="tanh"),
        "W3": lambda m, x: torch.softmax(x, dim=1),
        "W4": lambda m, x, g, b: F.layer_norm(x, (x.shape[1],), g, b, 1e-5),
    }


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def time_torch(torch, fn, reps, cuda):
    for _ in range(3):
        fn()
    if not cuda:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(ts))
    torch.cuda.synchronize()
    ts = []
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(reps):
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return float(np.median(ts))


def time_jax(fn, reps):
    fn().block_until_ready()
    fn().block_until_ready()
    t0 = time.perf_counter()
    fn().block_until_ready()
    one = time.perf_counter() - t0
    batch = max(1, min(20, int(2e-3 / max(one, 1e-6))))  # about 2 ms per sample: dispatch amortised
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(batch - 1):
            fn()
        fn().block_until_ready()
        ts.append((time.perf_counter() - t0) * 1e3 / batch)
    return float(np.median(ts))


# --------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--framework", required=True, choices=["torch_eager", "torch_compile", "jax"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--small", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--only", nargs="*", help="workloads to run (default: all)")
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()

    doc = {"framework": a.framework, "device": a.device, "small": a.small, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "rows": [], "status": "ok"}

    def write():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, a.out)

    def log(msg):
        print(msg, flush=True)

    try:
        if np is None:
            raise ImportError("numpy is not installed")
        if a.framework == "jax":
            if a.device == "cpu":
                os.environ.setdefault("JAX_PLATFORMS", "cpu")
            os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
            import jax
            m = JaxOps(a.device)
            dev = jax.devices()[0]
            doc["versions"] = {"jax": jax.__version__}
            doc["device_name"] = getattr(dev, "device_kind", str(dev))
            if a.device == "cuda" and dev.platform != "gpu":
                raise RuntimeError(f"jax sees no GPU (its first device is {dev.platform})")
        else:
            import torch
            if a.device == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("torch sees no GPU")
            m = TorchOps(a.device)
            doc["versions"] = {"torch": torch.__version__}
            doc["device_name"] = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    except Exception as e:  # the framework is optional
        doc["status"] = f"skipped: {type(e).__name__}: {e}"
        log(f"{a.framework}: {doc['status']}")
        write()
        return 0
    write()

    ws = workloads(sizes(a.small))
    names = a.only or list(ws)
    for name in names:
        spec = ws[name]
        try:
            run_workload(a, m, name, spec, doc, log)
        except Exception as e:
            doc["rows"].append(dict(workload=name, variant=a.framework, status=f"error: {type(e).__name__}: {e}"[:300]))
            log(f"{name}: error: {type(e).__name__}: {e}")
            traceback.print_exc()
        write()
        free(m)
    return 0


def free(m):
    import gc
    gc.collect()
    if m.name == "torch" and m.device.type == "cuda":
        m.t.cuda.empty_cache()


def record(doc, log, name, variant, spec, err, ms=None, status="ok"):
    r = dict(workload=name, variant=variant, status=status, err=err)
    if ms is not None:
        r["ms"] = ms
        if "bytes" in spec:
            r["gbps"] = spec["bytes"] / ms / 1e6
        if "flops" in spec:
            r["tflops"] = spec["flops"] / ms / 1e9
    doc["rows"].append(r)
    rate = f"{r.get('gbps', 0):8.1f} GB/s {r.get('tflops', 0):7.2f} TFLOP/s" if ms is not None else ""
    log(f"{name:10s} {variant:34s} {status:14s} " + (f"{ms:9.3f} ms {rate}" if ms is not None else "") + f" err {err:.2e}")


def jax_precision(jax, p):
    """jax.default_matmul_precision(p), or the same through jax.config where that is missing."""
    if hasattr(jax, "default_matmul_precision"):
        return jax.default_matmul_precision(p)

    @contextlib.contextmanager
    def ctx():
        old = jax.config.jax_default_matmul_precision
        jax.config.update("jax_default_matmul_precision", p)
        try:
            yield
        finally:
            jax.config.update("jax_default_matmul_precision", old)
    return ctx()


def run_workload(a, m, name, spec, doc, log):
    args = spec["make"](m)
    m.sync()
    reps = max(5, a.reps // 2) if spec.get("matmul") else a.reps
    precisions = ["float32", "tf32"] if spec.get("matmul") else [None]
    for prec in precisions:
        suffix = f" ({'TF32' if prec == 'tf32' else 'float32'})" if prec else ""
        if m.name == "jax":
            import jax
            ctx = jax_precision(jax, "tensorfloat32" if prec == "tf32" else "float32") if prec else None
            variants = [("jax.jit" + suffix, None)]
            for variant, _ in variants:
                def run():
                    f = jax.jit(lambda *xs: spec["f"](m, *xs))
                    out = f(*args)
                    out.block_until_ready()
                    err = spec["check"](m, out, args)
                    del out
                    if not err <= spec["tol"]:
                        record(doc, log, name, variant, spec, err, status="wrong result")
                        return
                    record(doc, log, name, variant, spec, err, time_jax(lambda: f(*args), a.reps if not prec else reps))
                if ctx is None:
                    run()
                else:
                    with ctx:
                        run()
        else:
            torch = m.t
            cuda = m.device.type == "cuda"
            if prec:  # the one switch every recent PyTorch honours, eager and inductor alike
                torch.set_float32_matmul_precision("high" if prec == "tf32" else "highest")
            fns = []
            if a.framework == "torch_eager":
                fns.append(("torch eager" + suffix, lambda *xs: spec["f"](m, *xs)))
                b = torch_builtins().get(name)
                if b is not None:
                    fns.append(("torch eager, built-in" + suffix, lambda *xs, _b=b: _b(m, *xs)))
            else:
                import torch._dynamo
                torch._dynamo.reset()
                fns.append(("torch.compile" + suffix, torch.compile(lambda *xs: spec["f"](m, *xs))))
            for variant, f in fns:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    out = f(*args)
                    m.sync()
                    first = time.perf_counter() - t0
                    err = spec["check"](m, out, args)
                    del out
                    if not err <= spec["tol"]:
                        record(doc, log, name, variant, spec, err, status="wrong result")
                        continue
                    ms = time_torch(torch, lambda: f(*args), reps, cuda)
                record(doc, log, name, variant, spec, err, ms)
                doc["rows"][-1]["first_call_s"] = first
            if prec:
                torch.set_float32_matmul_precision("highest")
    del args


if __name__ == "__main__":
    sys.exit(main())
