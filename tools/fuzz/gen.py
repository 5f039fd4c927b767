#!/usr/bin/env python3
"""Random loom expressions as C++ test cases, checked against tests/reference/reference.hpp.

    tools/fuzz/gen.py --seed 1 --count 40 --part 0 --parts 6 --catch > tests/unit/test_fuzz_0.cpp
    tools/fuzz/gen.py --seed 7 --count 50 --main > /tmp/fuzz_7.cpp      (a standalone program)

From a seed, every case builds one expression top-down from the shape it must have: elementwise
operators of every kind in include/loom/expr/ops.hpp (dtypes bool, int32, int64, float32, float64,
C++ scalars of every kind, promotion, NumPy broadcasting), reductions over axis sets with and
without keepdims, index maps (permute, transpose, slice with steps and negative positions, flip,
broadcast_to, reshape, concat, pad), generators (iota, full, zeros, ones), materialised
subexpressions (eval), loom::matmul (batched with broadcast batch axes, rank-1 rows and columns,
[K] x [K] dots; any expression as an operand; checked with a K-aware tolerance) and the tiled
reduce-broadcast fusion (softmax and layer norm over one axis). Leaves are tensors, contiguous views at misaligned addresses, and strided
views (negative strides, stride 0, transposed, stepped), with static and dyn extents drawn around
SIMD widths and the thread thresholds (0, 1, 15, 16, 17, 4095, 4097, and sizes past
cpu::parallel_threshold and the streaming-store size). The dtype the generator expects, from its
own copy of docs/semantics.md's promotion table, is checked with a static_assert.

Each case names the output modes it runs (eval, assignment into another dtype or a broadcast
destination, compound assignment, a strided destination view with guards, aliasing with an
input, an overlapping destination, threads, a mismatched destination): see fuzz_harness.hpp.

Discontinuous operations (comparisons, floor/ceil/round, casts to integer or bool) applied to
computed floating values can flip between float and double rounding; the generator does not
avoid them, the reference marks such elements as ambiguous (see reference.hpp) and the harness
counts them. The generator only keeps them mostly on leaves, where they are exact.
"""
import argparse
import math
import random
import sys

DTYPES = ["bool", "int32", "int64", "float32", "float64"]
CTYPE = {"bool": "bool", "int32": "std::int32_t", "int64": "std::int64_t", "float32": "float", "float64": "double"}
KIND = {"bool": 0, "int32": 1, "int64": 1, "float32": 2, "float64": 2}

# ------------------------------------------------------------------------------------------------
# Types: an independent copy of docs/semantics.md's table
# ------------------------------------------------------------------------------------------------


def promote(a, b):
    if a == b:
        return a
    if a == "bool":
        return b
    if b == "bool":
        return a
    if KIND[a] == 1 and KIND[b] == 1:
        return "int64"
    return "float64"


def promote_scalar(t, s):
    if KIND[s] <= KIND[t]:
        return t
    return "float32" if KIND[s] == 2 else s


def float_of(t):
    if KIND[t] == 2:
        return t
    return "float32" if t == "bool" else "float64"


ARITH = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]
LOGIC = ["logical_and", "logical_or"]
FLOAT_UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "gelu",
               "gelu_exact"]
SAME_UNARY = ["neg", "abs", "floor", "ceil", "round", "relu"]
INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">",
         "ge": ">=", "logical_and": "&&", "logical_or": "||"}
REDUCTIONS = ["sum", "mean", "max", "min", "prod", "argmax", "argmin"]
INDEX_MAPS = ["permute", "transpose", "slice", "flip", "broadcast_to", "reshape", "concat", "pad"]
GENERATORS = ["iota", "full", "zeros", "ones"]

# Every node kind the corpus must cover (reported by --coverage and checked for the CI corpus).
ALL_KINDS = (["leaf:tensor", "leaf:view", "leaf:strided", "scalar", "eval"] + ["op:" + o for o in ARITH + COMPARE + LOGIC]
             + ["op:logical_not"] + ["op:" + o for o in FLOAT_UNARY + SAME_UNARY] + ["op:where", "op:clamp", "op:cast"]
             + ["reduce:" + r for r in REDUCTIONS] + ["map:" + m for m in INDEX_MAPS] + ["gen:" + g for g in GENERATORS]
             + ["matmul", "fusion:softmax", "fusion:layernorm"])
MATMUL_K = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 64, 65, 129, 257]

SIZES = [0, 1, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 255, 257, 1023, 1025, 4095, 4097]


def prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def shape_text(shape, static):
    ext = ", ".join(str(e) if s else "loom::dyn" for e, s in zip(shape, static))
    dyn = ", ".join(str(e) for e, s in zip(shape, static) if not s)
    return "loom::shape<%s>" % ext, "loom::shape<%s>{%s}" % (ext, dyn)


class Node:
    def __init__(self, text, dtype, shape, exact=False):
        self.text = text
        self.dtype = dtype
        self.shape = list(shape)
        self.exact = exact  # no rounding happened: safe under discontinuous operations


class Input:
    def __init__(self, name, dtype, shape, static, kind, strides=None, misalign=0):
        self.name, self.dtype, self.shape, self.static = name, dtype, list(shape), list(static)
        self.kind, self.strides, self.misalign = kind, strides, misalign

    def decl(self):
        st, init = shape_text(self.shape, self.static)
        t = CTYPE[self.dtype]
        if self.kind == "tensor":
            return "loom_fuzz::tensor_input<%s, %s> %s(%s);" % (t, st, self.name, init)
        strides = ", ".join(str(s) for s in self.strides)
        cls = "strided_input" if self.kind == "strided" else "contiguous_input"
        return "loom_fuzz::%s<%s, %s> %s(%s, {%s}, %d);" % (cls, t, st, self.name, init, strides, self.misalign)


class Gen:
    def __init__(self, rng, cap, depth, big=False, elementwise=False):
        self.r = rng
        self.cap = cap
        self.depth = depth
        self.inputs = []
        self.kinds = set()
        self.big = big
        self.elementwise = elementwise  # only what the CUDA backend generates: maps, leaves, scalars
        self.leaf_uses = 0

    # -------------------------------------------------------------------------------- helpers
    def pick_dtype(self):
        return self.r.choices(DTYPES, weights=[12, 15, 10, 40, 23])[0]

    def scalar(self, want_kind=None, into=None):
        """A C++ scalar literal and its dtype. `into`: the dtype it will be static_cast to (pad and
        full convert with static_cast, where a float out of an integer's range is undefined)."""
        k = want_kind if want_kind is not None else self.r.choices([0, 1, 2, 3, 4], weights=[1, 4, 2, 6, 3])[0]
        r = self.r
        if k == 0:
            return ("true" if r.random() < 0.5 else "false"), "bool"
        if k == 1:
            return str(r.choice([0, 1, -1, 2, 3, -3, 7, 100, -65536])), "int32"
        if k == 2:
            return "std::int64_t(%d)" % r.choice([0, 1, -2, 5, 1 << 40, -(1 << 33)]), "int64"
        if k == 3:
            big = [] if into is not None and KIND[into] < 2 else ["1e20f"]
            return r.choice(["0.5f", "-1.5f", "2.f", "0.f", "-0.f", "1e-3f", "3.25f", "-7.f"] + big), "float32"
        return r.choice(["0.25", "-2.0", "1.0", "1e-8", "3.0", "-0.5"]), "float64"

    def sub_shape(self, shape):
        """A shape that broadcasts to `shape`: leading axes dropped, some extents 1."""
        s = list(shape)
        drop = self.r.randint(0, len(s)) if self.r.random() < 0.3 else 0
        s = s[drop:]
        for k in range(len(s)):
            if self.r.random() < 0.25:
                s[k] = 1
        return s

    def new_input(self, shape, dtype=None):
        self.leaf_uses += 1
        # reuse an input of the same shape now and then (x - max(x), a * a, ...)
        if self.r.random() < 0.2:
            same = [i for i in self.inputs if i.shape == shape and (dtype is None or i.dtype == dtype)]
            if same:
                i = self.r.choice(same)
                return Node(i.name, i.dtype, shape, exact=True)
        dtype = dtype or self.pick_dtype()
        name = "abcdefghijklmnopqrstuvwxyz"[len(self.inputs)] if len(self.inputs) < 26 else "x%d" % len(self.inputs)
        static = [self.r.random() < 0.5 for _ in shape]
        kind = self.r.choices(["tensor", "view", "strided"], weights=[55, 15, 30])[0]
        strides, misalign = None, 0
        if kind == "view":
            misalign = self.r.choice([0, 1, 3])
            strides = [1] * len(shape)  # ignored for contiguous views
            if not shape:
                strides = []
        elif kind == "strided":
            strides = self.strides(shape)
            misalign = self.r.choice([0, 1])
        inp = Input(name, dtype, shape, static, kind, strides, misalign)
        self.inputs.append(inp)
        self.kinds.add({"tensor": "leaf:tensor", "view": "leaf:view", "strided": "leaf:strided"}[kind])
        return Node(name, dtype, shape, exact=True)

    def strides(self, shape):
        n = len(shape)
        order = list(range(n))
        self.r.shuffle(order)  # order[0] is the innermost axis in memory
        step = self.r.choice([1, 1, 2, 3])
        st = [0] * n
        acc = step
        for j, k in enumerate(order):
            st[k] = acc
            acc *= max(shape[k], 1) + self.r.choice([0, 0, 1])
        for k in range(n):
            if self.r.random() < 0.3:
                st[k] = -st[k]
            if self.r.random() < 0.12:
                st[k] = 0  # a repeating (broadcast) view
        return st

    # -------------------------------------------------------------------------------- nodes
    def gen(self, shape, depth):
        size = prod(shape)
        r = self.r
        if depth <= 0 or r.random() < 0.12:
            if r.random() < 0.1 and not self.elementwise:
                return self.generator(shape)
            return self.new_input(shape)
        choices = {"unary": 14, "binary": 22, "ternary": 6, "cast": 4, "reduce": 14, "index": 18, "eval": 2,
                   "matmul": 4, "fused": 3}
        if self.elementwise:
            choices.update(reduce=0, index=0, eval=0, matmul=0, fused=0)
        kind = r.choices(list(choices), weights=list(choices.values()))[0]
        if kind == "unary":
            return self.unary(shape, depth)
        if kind == "binary":
            return self.binary(shape, depth)
        if kind == "ternary":
            return self.ternary(shape, depth)
        if kind == "cast":
            c = self.gen(shape, depth - 1)
            t = self.pick_dtype()
            self.kinds.add("op:cast")
            return Node("loom::cast<%s>(%s)" % (CTYPE[t], c.text), t, shape, exact=c.exact or KIND[t] < 2)
        if kind == "reduce":
            n = self.reduce(shape, depth)
            if n:
                return n
            return self.binary(shape, depth)
        if kind == "index":
            n = self.index_map(shape, depth)
            if n:
                return n
            return self.unary(shape, depth)
        if kind == "matmul":
            n = self.matmul(shape, depth)
            if n:
                return n
            return self.binary(shape, depth)
        if kind == "fused":
            n = self.fused(shape, depth)
            if n:
                return n
            return self.unary(shape, depth)
        before = self.leaf_uses
        c = self.gen(shape, depth - 1)
        if self.leaf_uses == before:
            # generators alone: materialised on the host, they could not meet the device leaves
            # of the same case's CUDA kernel
            return c
        self.kinds.add("eval")
        return Node("loom_fuzz::materialize(%s)" % c.text, c.dtype, shape, exact=c.exact)

    def generator(self, shape):
        g = self.r.choice(GENERATORS)
        t = self.pick_dtype()
        self.kinds.add("gen:" + g)
        static = [self.r.random() < 0.5 for _ in shape]
        _, init = shape_text(shape, static)
        if g == "iota":
            return Node("loom::iota<%s>(%s)" % (CTYPE[t], init), t, shape, exact=True)
        if g == "full":
            v, _ = self.scalar(into=t)
            return Node("loom::full<%s>(%s, %s)" % (CTYPE[t], init, v), t, shape, exact=True)
        return Node("loom::%s<%s>(%s)" % (g, CTYPE[t], init), t, shape, exact=True)

    def operand(self, shape, depth, allow_scalar=True):
        """An operand of an elementwise op whose result has `shape`: full shape, a broadcastable
        sub-shape, or a C++ scalar (text, dtype, is_expression)."""
        if allow_scalar and self.r.random() < 0.25:
            t, d = self.scalar()
            self.kinds.add("scalar")
            return Node(t, d, [], exact=True), False
        return self.gen(self.sub_shape(shape), depth - 1), True

    def full_operand(self, shape, depth):
        return self.gen(shape, depth - 1)

    def unary(self, shape, depth):
        r = self.r
        group = r.choices(["float", "same", "not"], weights=[10, 6, 1])[0]
        prefer_exact = r.random() < 0.7
        c = self.full_operand(shape, depth) if not prefer_exact else self.gen(shape, max(depth - 2, 0))
        if group == "float":
            op = r.choice(FLOAT_UNARY)
            self.kinds.add("op:" + op)
            return Node("loom::%s(%s)" % (op, c.text), float_of(c.dtype), shape)
        if group == "not":
            self.kinds.add("op:logical_not")
            return Node("!(%s)" % c.text, "bool", shape, exact=True)
        op = r.choice(SAME_UNARY)
        if c.dtype == "bool" and op in ("neg", "abs", "relu"):
            # -b does not compile by design; abs(b) and relu(b) pass the type rules but do not
            # compile on the CPU (reported): keep to the ones that do
            op = r.choice(["floor", "ceil", "round"])
        if op in ("floor", "ceil", "round") and KIND[c.dtype] == 2 and not c.exact and r.random() < 0.7:
            c = self.new_input(shape)  # keep discontinuous ops mostly on exact operands
        self.kinds.add("op:" + op)
        if op == "neg":
            return Node("-(%s)" % c.text, c.dtype, shape, exact=c.exact)
        return Node("loom::%s(%s)" % (op, c.text), c.dtype, shape, exact=c.exact)

    def binary(self, shape, depth):
        r = self.r
        group = r.choices(["arith", "compare", "logic"], weights=[12, 4, 2])[0]
        op = r.choice(ARITH if group == "arith" else COMPARE if group == "compare" else LOGIC)
        # one operand has the full shape; the other broadcasts (or is a scalar)
        a = self.full_operand(shape, depth)
        b, b_expr = self.operand(shape, depth)
        if group == "compare" and r.random() < 0.6:
            if KIND[a.dtype] == 2 and not a.exact:
                a = self.new_input(shape)
        if r.random() < 0.5:
            a, b = b, a
            a_expr, b_expr = b_expr, True
        else:
            a_expr = True
        x, y = (a, a_expr), (b, b_expr)
        if group == "arith":
            t = self.compute([x, y])
            if t == "bool":  # arithmetic on bools alone does not compile: cast one operand
                if x[1]:
                    a = Node("loom::cast<std::int32_t>(%s)" % a.text, "int32", a.shape, exact=True)
                    x = (a, True)
                    self.kinds.add("op:cast")
                else:
                    b = Node("loom::cast<std::int32_t>(%s)" % b.text, "int32", b.shape, exact=True)
                    y = (b, True)
                    self.kinds.add("op:cast")
                t = self.compute([x, y])
            self.kinds.add("op:" + op)
            if op in INFIX:
                text = "(%s %s %s)" % (a.text, INFIX[op], b.text)
            else:
                text = "loom::%s(%s, %s)" % (op, a.text, b.text)
            return Node(text, t, shape)
        self.kinds.add("op:" + op)
        return Node("(%s %s %s)" % (a.text, INFIX[op], b.text), "bool", shape, exact=True)

    def compute(self, operands):
        """The compute dtype of promoted operands [(node, is_expression)]: strong first, then weak."""
        t = None
        for n, e in operands:
            if e:
                t = n.dtype if t is None else promote(t, n.dtype)
        for n, e in operands:
            if not e:
                t = n.dtype if t is None else promote_scalar(t, n.dtype)
        return t

    def ternary(self, shape, depth):
        r = self.r
        if r.random() < 0.6:
            c, _ = self.operand(shape, depth, allow_scalar=False)
            a = self.full_operand(shape, depth)
            b, b_expr = self.operand(shape, depth)
            if r.random() < 0.5:
                a, b = b, a
                ops = [(a, b_expr), (b, True)]
            else:
                ops = [(a, True), (b, b_expr)]
            t = self.compute(ops)
            self.kinds.add("op:where")
            return Node("loom::where(%s, %s, %s)" % (c.text, ops[0][0].text, ops[1][0].text), t, shape)
        x = self.full_operand(shape, depth)
        lo, lo_e = self.operand(shape, depth)
        hi, hi_e = self.operand(shape, depth)
        ops = [(x, True), (lo, lo_e), (hi, hi_e)]
        t = self.compute(ops)
        if t == "bool":
            x = Node("loom::cast<std::int32_t>(%s)" % x.text, "int32", x.shape, exact=True)
            ops[0] = (x, True)
            t = self.compute(ops)
        self.kinds.add("op:clamp")
        return Node("loom::clamp(%s, %s, %s)" % (x.text, lo.text, hi.text), t, shape)

    def reduce(self, shape, depth):
        r = self.r
        red = r.choice(REDUCTIONS)
        keep = r.random() < 0.4
        size = prod(shape)
        if keep:
            # reduced axes are the axes of extent 1 in the result
            ones = [k for k, e in enumerate(shape) if e == 1]
            if not ones:
                return None
            axes = sorted(r.sample(ones, r.randint(1, len(ones))))
            child = list(shape)
            room = max(1, self.cap // max(size, 1))
            for k in axes:
                child[k] = self.reduced_extent(red, room)
                room = max(1, room // max(child[k], 1))
            rank = len(child)
        else:
            rank = len(shape) + r.randint(1, 2)
            if rank > 6:
                return None
            axes = sorted(r.sample(range(rank), rank - len(shape)))
            child, it = [], iter(shape)
            room = max(1, self.cap // max(size, 1))
            for k in range(rank):
                if k in axes:
                    e = self.reduced_extent(red, room)
                    room = max(1, room // max(e, 1))
                    child.append(e)
                else:
                    child.append(next(it))
        if red in ("max", "min", "argmax", "argmin") and any(child[k] == 0 for k in axes) and size > 0:
            return None
        c = self.gen(child, depth - 1)
        t = c.dtype
        out = {"sum": "int64" if KIND[t] < 2 else t, "prod": "int64" if KIND[t] < 2 else t,
               "mean": "float64" if KIND[t] < 2 else t, "max": t, "min": t, "argmax": "int64", "argmin": "int64"}[red]
        if red in ("max", "min") and t == "bool" and r.random() < 0.5:
            pass
        self.kinds.add("reduce:" + red)
        every = len(axes) == rank
        if every and r.random() < 0.5:
            text = "loom::%s(%s%s)" % (red, c.text, ", loom::keepdims" if keep else "")
        else:
            names = [str(k - rank) if r.random() < 0.2 else str(k) for k in axes]
            if len(axes) == 1 and r.random() < 0.6:
                ax = "loom::axis<%s>" % names[0]
            else:
                ax = "loom::axes<%s>" % ", ".join(names)
            text = "loom::%s(%s, %s%s)" % (red, c.text, ax, ", loom::keepdims" if keep else "")
        return Node(text, out, shape, exact=red in ("max", "min", "argmax", "argmin") or KIND[t] < 2)

    def matmul(self, shape, depth):
        """loom::matmul with NumPy's rules: [batch.., M, K] x [batch.., K, N] (batch axes broadcast),
        a rank-1 a (a row, its axis dropped), a rank-1 b (a column), or [K] x [K] (rank 0)."""
        r = self.r
        n = len(shape)
        size = max(prod(shape), 1)
        ks = [k for k in MATMUL_K if size * max(k, 1) <= 150000]
        if not ks:
            return None
        K = r.choice(ks)
        form = "both" if n >= 2 and r.random() < 0.7 else r.choice(["row", "col"]) if n >= 1 else "dot"
        if form == "dot":
            sa, sb = [K], [K]
        elif form == "row":  # [K] x [batch.., K, N] -> [batch.., N]
            sa, sb = [K], shape[:-1] + [K, shape[-1]]
        elif form == "col":  # [batch.., M, K] x [K] -> [batch.., M]
            sa, sb = shape[:-1] + [shape[-1], K], [K]
        else:
            batch = shape[:-2]
            ba, bb = batch, self.sub_shape(batch) if batch else []
            if r.random() < 0.5:
                ba, bb = bb, ba
            sa, sb = ba + [shape[-2], K], bb + [K, shape[-1]]
        if prod(sa) > self.cap or prod(sb) > self.cap:
            return None
        kids = []
        for s in (sa, sb):
            c = self.gen(s, depth - 1)
            if c.dtype == "bool":  # matmul of bools does not compile by design
                t = r.choice(["int32", "float32"])
                c = Node("loom::cast<%s>(%s)" % (CTYPE[t], c.text), t, s, exact=c.exact)
                self.kinds.add("op:cast")
            kids.append(c)
        a, b = kids
        self.kinds.add("matmul")
        t = promote(a.dtype, b.dtype)
        return Node("loom::matmul(%s, %s)" % (a.text, b.text), t, shape, exact=KIND[t] < 2)

    def fused(self, shape, depth):
        """A reduction broadcast back over the axis it reduces, the tiled plan's case: softmax
        (max and sum of exp over the same rows, exp's operand used three times) or layer norm (mean,
        then the mean of squares of the centred rows)."""
        r = self.r
        n = len(shape)
        axes = [k for k in range(n) if shape[k] > 0]
        if not axes:
            return None
        a = r.choice(axes) if r.random() < 0.5 else axes[-1]
        ax = "loom::axis<%d>" % (a if r.random() < 0.8 else a - n)
        x = self.new_input(shape) if r.random() < 0.6 else self.gen(shape, depth - 1)
        if x.dtype == "bool":
            x = Node("loom::cast<float>(%s)" % x.text, "float32", shape, exact=True)
            self.kinds.add("op:cast")
        t = float_of(x.dtype) if KIND[x.dtype] < 2 else x.dtype
        if r.random() < 0.5:
            self.kinds |= {"fusion:softmax", "reduce:max", "reduce:sum", "op:exp", "op:sub", "op:div"}
            text = ("[](const auto& e) { return e / loom::sum(e, %s, loom::keepdims); }"
                    "(loom::exp(%s - loom::max(%s, %s, loom::keepdims)))" % (ax, x.text, x.text, ax))
            return Node(text, t if KIND[x.dtype] == 2 else "float64", shape)
        self.kinds |= {"fusion:layernorm", "reduce:mean", "op:rsqrt", "op:sub", "op:mul", "op:add"}
        eps = r.choice(["1e-5f", "1e-3f", "0.5f"])
        text = ("[](const auto& d) { return d * loom::rsqrt(loom::mean(d * d, %s, loom::keepdims) + %s); }"
                "(%s - loom::mean(%s, %s, loom::keepdims))" % (ax, eps, x.text, x.text, ax))
        return Node(text, t if KIND[x.dtype] == 2 else "float64", shape)

    def reduced_extent(self, red, room):
        r = self.r
        limit = 64 if red == "prod" else room
        pool = [e for e in SIZES if e <= limit and (e > 0 or red in ("sum", "prod", "mean"))]
        if not pool:
            return 1
        return r.choice(pool)

    def index_map(self, shape, depth):
        r = self.r
        n = len(shape)
        m = r.choice(INDEX_MAPS)
        size = prod(shape)
        if m == "transpose":
            if n != 2:
                m = "permute"
            else:
                c = self.gen([shape[1], shape[0]], depth - 1)
                self.kinds.add("map:transpose")
                return Node("loom::transpose(%s)" % c.text, c.dtype, shape, exact=c.exact)
        if m == "permute":
            if n < 2:
                return None
            perm = list(range(n))
            r.shuffle(perm)
            child = [0] * n
            for j in range(n):
                child[perm[j]] = shape[j]
            c = self.gen(child, depth - 1)
            self.kinds.add("map:permute")
            return Node("loom::permute<%s>(%s)" % (", ".join(map(str, perm)), c.text), c.dtype, shape, exact=c.exact)
        if n == 0:
            if m == "broadcast_to" or m == "reshape":
                pass
            else:
                return None
        if m == "slice":
            a = r.randrange(n)
            step = r.choice([1, 1, 2, 3])
            begin = r.choice([0, 1, 2, 5])
            child = list(shape)
            child[a] = begin + max(shape[a] - 1, 0) * step + 1 + r.choice([0, 0, 1, 3]) if shape[a] > 0 else begin + r.choice([0, 2])
            if prod(child) > self.cap * 2:
                return None
            end = begin + shape[a] * step if shape[a] > 0 else begin
            end = min(end, child[a]) if shape[a] > 0 else begin
            # NumPy positions: negative ones count from the end
            b_txt, e_txt = str(begin), str(end)
            if r.random() < 0.3 and shape[a] > 0:
                b_txt = str(begin - child[a])
            if r.random() < 0.2 and end < child[a]:
                e_txt = str(end - child[a])
            elif r.random() < 0.1 and end == child[a]:
                e_txt = str(end + 100)  # clamped
            c = self.gen(child, depth - 1)
            self.kinds.add("map:slice")
            stxt = ", %d" % step if step != 1 or r.random() < 0.2 else ""
            return Node("loom::slice<%d>(%s, %s, %s%s)" % (a if r.random() < 0.7 else a - n, c.text, b_txt, e_txt, stxt),
                        c.dtype, shape, exact=c.exact)
        if m == "flip":
            a = r.randrange(n)
            c = self.gen(shape, depth - 1)
            self.kinds.add("map:flip")
            return Node("loom::flip<%d>(%s)" % (a, c.text), c.dtype, shape, exact=c.exact)
        if m == "broadcast_to":
            child = self.sub_shape(shape)
            c = self.gen(child, depth - 1)
            self.kinds.add("map:broadcast_to")
            if r.random() < 0.5:
                st, _ = shape_text(shape, [True] * n)
                return Node("loom::broadcast_to<%s>(%s)" % (st, c.text), c.dtype, shape, exact=c.exact)
            _, init = shape_text(shape, [r.random() < 0.5 for _ in shape])
            return Node("loom::broadcast_to(%s, %s)" % (c.text, init), c.dtype, shape, exact=c.exact)
        if m == "reshape":
            child = self.reshape_source(shape)
            if child is None:
                return None
            c = self.gen(child, depth - 1)
            self.kinds.add("map:reshape")
            if r.random() < 0.5:
                st, _ = shape_text(shape, [True] * n)
                return Node("loom::reshape<%s>(%s)" % (st, c.text), c.dtype, shape, exact=c.exact)
            _, init = shape_text(shape, [r.random() < 0.5 for _ in shape])
            return Node("loom::reshape(%s, %s)" % (c.text, init), c.dtype, shape, exact=c.exact)
        if m == "concat":
            a = r.randrange(n)
            parts = r.choice([2, 2, 3])
            cuts = sorted(r.randint(0, shape[a]) for _ in range(parts - 1))
            ext = [b - c for b, c in zip(cuts + [shape[a]], [0] + cuts)]
            kids = []
            for e in ext:
                child = list(shape)
                child[a] = e
                kids.append(self.gen(child, depth - 1))
            t = kids[0].dtype
            for k in kids[1:]:
                t = promote(t, k.dtype)
            self.kinds.add("map:concat")
            return Node("loom::concat<%d>(%s)" % (a, ", ".join(k.text for k in kids)), t, shape,
                        exact=all(k.exact for k in kids))
        if m == "pad":
            a = r.randrange(n)
            if shape[a] == 0:
                return None
            before = r.randint(0, min(3, shape[a]))
            after = r.randint(0, min(3, shape[a] - before))
            child = list(shape)
            child[a] = shape[a] - before - after
            c = self.gen(child, depth - 1)
            v, _ = self.scalar(into=c.dtype)
            self.kinds.add("map:pad")
            if r.random() < 0.2:
                return Node("loom::pad<%d>(%s, %d, %d)" % (a, c.text, before, after), c.dtype, shape, exact=c.exact)
            return Node("loom::pad<%d>(%s, %d, %d, %s)" % (a, c.text, before, after, v), c.dtype, shape, exact=c.exact)
        return None

    def reshape_source(self, shape):
        """A different shape of the same size."""
        r = self.r
        size = prod(shape)
        n = len(shape)
        opts = []
        if n >= 2:
            k = r.randrange(n - 1)
            opts.append(shape[:k] + [shape[k] * shape[k + 1]] + shape[k + 2:])  # merged
        opts.append([size])
        for k, e in enumerate(shape):
            for f in (2, 3, 4, 5, 7, 8, 16, 17):
                if e % f == 0 and e > f:
                    opts.append(shape[:k] + [f, e // f] + shape[k + 1:])
                    break
        if size <= 1:
            opts.append([1, 1] if size == 1 else [0, 3])
        opts = [o for o in opts if o != shape and len(o) <= 6]
        return r.choice(opts) if opts else None


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------


def root_shape(r, big):
    if big:
        kind = r.choice(["parallel", "parallel", "streaming"])
        if kind == "parallel":
            return r.choice([[65536 + 17], [257, 257], [17, 4097], [4097, 33], [3, 129, 257]])
        return r.choice([[(1 << 21) + 17], [1025, 2049]])
    rank = r.choices([0, 1, 2, 3, 4, 5], weights=[5, 25, 35, 20, 10, 3])[0]
    cap = 40000
    while True:
        shape = [r.choice(SIZES) for _ in range(rank)]
        if prod(shape) <= cap:
            return shape


DST_TYPES = ["bool", "int32", "int64", "float32", "float64"]


def modes_for(r, g, root, mode_count):
    modes = ["loom_fuzz::to_eval{}"]
    tried = 0
    want = mode_count
    while len(modes) < want + 1 and tried < 20:
        tried += 1
        m = r.choices(["assign", "compound", "view", "alias", "overlap", "threads", "mismatch"],
                      weights=[5, 5, 5, 4, 3, 2, 2])[0]
        if m == "assign":
            u = r.choice(DST_TYPES)
            extra = r.choice([0, 0, 2])
            dyn = r.random() < 0.3
            modes.append("loom_fuzz::to_assign<%s, %d, %s>{}" % (CTYPE[u], extra, "true" if dyn else "false"))
        elif m == "compound":
            u = r.choice(DST_TYPES[1:])
            op = r.choice("+-*/")
            modes.append("loom_fuzz::to_compound<%s, '%s'>{}" % (CTYPE[u], op))
        elif m == "view":
            u = r.choice(DST_TYPES)
            add = u != "bool" and r.random() < 0.3
            modes.append("loom_fuzz::to_view<%s, %d, %s, %s, %s>{}" % (
                CTYPE[u], r.choice([1, 2, 3]), "true" if r.random() < 0.5 else "false",
                "true" if r.random() < 0.5 else "false", "true" if add else "false"))
        elif m == "alias":
            cands = [k for k, i in enumerate(g.inputs) if i.kind == "tensor" and i.shape == root.shape]
            if not cands:
                continue
            k = r.choice(cands)
            op = "'+'" if g.inputs[k].dtype != "bool" and root.dtype != "bool" and r.random() < 0.3 else "'='"
            modes.append("loom_fuzz::to_alias<%d, %s>{}" % (k, op))
        elif m == "overlap":
            cands = [k for k, i in enumerate(g.inputs) if i.kind in ("view", "strided") and i.shape == root.shape
                     and len(i.shape) > 0 and i.shape[0] > 1]
            if not cands:
                continue
            modes.append("loom_fuzz::to_overlap<%d>{}" % r.choice(cands))
        elif m == "threads":
            modes.append("loom_fuzz::to_threads{}")
        else:
            modes.append("loom_fuzz::to_mismatch<%s>{}" % CTYPE[r.choice(DST_TYPES)])
    return modes


REDUCTION_CALLS = ("loom::sum(", "loom::mean(", "loom::max(", "loom::min(", "loom::prod(", "loom::argmax(",
                   "loom::argmin(")


def reduction_bound(text):
    """An upper bound of the reduction occurrences of an expression's text: the reductions
    written, and each lambda application multiplying what it wraps by at most 3."""
    written = sum(text.count(c) for c in REDUCTION_CALLS)
    lambdas = text.count("[](const auto&")
    return (written + lambdas) * 3 ** lambdas


def make_case(seed, case_id, depth_max=4, mode_count=1, big=False, forced=None, elementwise=False):
    """One case: (function source, expression node, generator, modes)."""
    r = random.Random(seed * 1000003 + case_id)
    while True:
        shape = root_shape(r, big)
        cap = 2200000 if big else 60000
        g = Gen(r, cap, r.randint(1, depth_max), big, elementwise)
        if forced:
            root = forced(g, shape)
            if root is None:
                continue
        else:
            root = g.gen(shape, g.depth)
        if not g.inputs:
            # a case needs at least one input (generators alone): add a float one
            b = g.new_input(shape, "float32")
            root = Node("(%s + %s)" % (root.text, b.text), g.compute([(root, True), (b, True)]), shape)
        if len(root.text) > 1500 or len(g.inputs) > 10:
            continue
        # A plan tracks at most 128 reduction occurrences (plan/reduce_plan.hpp; more is a clear
        # compile error, tests/compile_fail/static_too_many_reductions.cpp). Each normalisation
        # lambda uses its operand up to three times: bound the count from above and draw again
        # past it (seed 4002, case 2540 held more).
        if reduction_bound(root.text) > 128:
            continue
        # An input may be larger than the result (a reduction's operand), and a result with an
        # empty axis has no size at all: bound every input too (seed 3001, case 270 drew one of
        # 17 G elements under an empty result).
        if any(math.prod(i.shape) > 16 * cap for i in g.inputs):
            continue
        break
    names = [i.name for i in g.inputs]
    modes = modes_for(r, g, root, mode_count)
    lines = []
    lines.append("static void case_%d(loom_fuzz::context& ctx) {" % case_id)
    for i in g.inputs:
        lines.append("  " + i.decl())
    params = ", ".join("const auto& %s" % n for n in names)
    lines.append("  auto make = [](%s) { return %s; };" % (params, root.text))
    lines.append("  static_assert(std::is_same_v<loom::value_type_of<decltype(make(%s))>, %s>);" % (
        ", ".join("%s.leaf()" % n for n in names), CTYPE[root.dtype]))
    lines.append("  static const loom_fuzz::case_info info{%d, %dull, %s, case_%d_source, __FILE__};" % (
        case_id, seed, cxx_string(root.text), case_id))
    lines.append("  loom_fuzz::run_case(ctx, info, make, std::tie(%s),\n                      %s);" % (
        ", ".join(names), ",\n                      ".join(modes)))
    lines.append("}")
    return "\n".join(lines), root, g, modes


def cxx_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header(note, pragma):
    out = "// Generated by tools/fuzz/gen.py -- do not edit; regenerate with tools/fuzz/corpus.sh.\n// %s\n" % note
    if pragma:
        # --pragma: an optimisation level for this file alone (the CI corpus does not use it: its
        # level, -O1, is set in tests/CMakeLists.txt).
        out += '#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC optimize("%s")\n#endif\n' % pragma
    out += "#include <cstdint>\n#include <cstdlib>\n#include <string>\n#include <type_traits>\n"
    return out


def render(cases, seed, note, catch_name=None, cuda=False, gpu=False, pragma=None):
    """The C++ text of a test translation unit (catch_name: a Catch2 test; else a main())."""
    out = [header(note, pragma)]
    if cuda:
        out.append("#define LOOM_FUZZ_CUDA 1")
    if gpu:
        out.append("#define LOOM_FUZZ_GPU 1")
    out.append('#include "reference/fuzz_harness.hpp"\n')
    if catch_name is not None:
        out.append("#include <catch2/catch.hpp>\n")
    out.append("using namespace loom;\n\nnamespace {\n")
    for cid, src, root, g, modes in cases:
        out.append("const char* const case_%d_source = R\"loomfuzz(%s)loomfuzz\";" % (cid, src.replace(
            "case_%d_source" % cid, "\"case %d\"" % cid)))
        out.append(src + "\n")
    out.append("}  // namespace\n")
    calls = "\n".join("  case_%d(ctx);" % c[0] for c in cases)
    if catch_name is not None:
        if gpu:
            out.append("""TEST_CASE("fuzz corpus %s: %d generated expressions on the device against the reference", "[fuzz][gpu]") {
  loom_fuzz::context ctx;
  ctx.gpu = loom::cuda::available();
  if (!ctx.gpu)  // the cases still run on the CPU, and their kernels are compiled with NVRTC
    WARN("no CUDA device: CPU and NVRTC only (" << loom::cuda::unavailable_reason() << ")");
  if (const char* s = std::getenv("LOOM_FUZZ_DATA_SEED")) ctx.data_seed = std::strtoull(s, nullptr, 10);
  ctx.on_failure = [](const std::string& m) { FAIL_CHECK(m); };
%s
  WARN(loom_fuzz::global_stats().summary());
  CHECK(loom_fuzz::global_stats().failures == 0);
  if (ctx.gpu) CHECK(loom_fuzz::global_stats().gpu_runs > 0);
}
""" % (catch_name, len(cases), calls))
        else:
            out.append("""TEST_CASE("fuzz corpus %s: %d generated expressions against the reference", "[fuzz]") {
  loom_fuzz::context ctx;
  if (const char* s = std::getenv("LOOM_FUZZ_DATA_SEED")) ctx.data_seed = std::strtoull(s, nullptr, 10);
  ctx.on_failure = [](const std::string& m) { FAIL_CHECK(m); };
%s
  WARN(loom_fuzz::global_stats().summary());
  CHECK(loom_fuzz::global_stats().failures == 0);
}
""" % (catch_name, len(cases), calls))
    else:
        out.append("""int main(int argc, char** argv) {
  loom_fuzz::context ctx;
  if (argc > 1) ctx.data_seed = std::strtoull(argv[1], nullptr, 10);
  if (const char* s = std::getenv("LOOM_FUZZ_REPRO_DIR")) ctx.repro_dir = s;
%s
  std::printf("%%s\\n", loom_fuzz::global_stats().summary().c_str());
  return loom_fuzz::global_stats().failures ? 1 : 0;
}
""" % calls)
    return "\n".join(out)


def coverage_line(kinds):
    missing = [k for k in ALL_KINDS if k not in kinds]
    return "node kinds covered: %d of %d; missing: %s" % (len(ALL_KINDS) - len(missing), len(ALL_KINDS),
                                                          ", ".join(missing) or "none")


def emit(args):
    """One program or test (to stdout), for tools/fuzz/run.sh and by hand."""
    cases = []
    kinds = set()
    for k in range(args.count):
        cid = args.first + k
        big = args.big_every > 0 and cid % args.big_every == args.big_every - 1
        src, root, g, modes = make_case(args.seed, cid, args.depth, args.modes, big, elementwise=args.elementwise)
        cases.append((cid, src, root, g, modes))
        kinds |= g.kinds
    note = "%d random expressions (cases %d..%d of seed %d) against tests/reference/reference.hpp." % (
        args.count, args.first, args.first + args.count - 1, args.seed)
    sys.stdout.write(render(cases, args.seed, note, args.name if args.catch else None, args.cuda, args.gpu, args.pragma))
    if args.coverage:
        sys.stderr.write(coverage_line(kinds) + "\n")


def corpus(args):
    """The CI corpus: --parts Catch2 test files of --count cases each in --out (tests/unit), plus
    cases found for every node kind the random ones missed, plus the GPU part (elementwise cases,
    run on a device where there is one) in --gpu-out."""
    import os
    parts = [[] for _ in range(args.parts)]
    kinds = set()
    cid = 0
    for p in range(args.parts):
        for k in range(args.count):
            big = args.big_every > 0 and cid % args.big_every == args.big_every - 1
            case = (cid,) + make_case(args.seed, cid, args.depth, args.modes, big)
            parts[p].append(case)
            kinds |= case[3].kinds
            cid += 1
    # every node kind at least once: search further case ids for each one still missing
    extra = 0
    for want in ALL_KINDS:
        if want in kinds:
            continue
        for probe in range(100000, 100000 + 5000):
            case = (probe,) + make_case(args.seed, probe, args.depth, args.modes)
            if want in case[3].kinds:
                parts[extra % args.parts].append(case)
                kinds |= case[3].kinds
                extra += 1
                break
        else:
            sys.exit("gen.py: no case with %s found" % want)
    total = sum(len(p) for p in parts)
    for p, cases in enumerate(parts):
        note = "CI corpus part %d of %d: %d cases of seed %d (all parts: %d cases; %s)." % (
            p, args.parts, len(cases), args.seed, total, coverage_line(kinds))
        text = render(cases, args.seed, note, "part %d" % p, cuda=True)  # -O1: tests/CMakeLists.txt
        with open(os.path.join(args.out, "test_fuzz_%d.cpp" % p), "w") as f:
            f.write(text)
    gpu_cases = []
    for k in range(args.gpu_count):
        gpu_cases.append((200000 + k,) + make_case(args.seed, 200000 + k, args.depth, 0, elementwise=True))
    note = "GPU corpus: %d elementwise cases of seed %d, evaluated on the device and compared with the reference." % (
        len(gpu_cases), args.seed)
    with open(os.path.join(args.gpu_out, "test_fuzz_gpu.cpp"), "w") as f:
        f.write(render(gpu_cases, args.seed, note, "gpu", cuda=True, gpu=True))
    sys.stderr.write("corpus: %d parts, %d cases (%d added for coverage) + %d GPU cases; %s\n" % (
        args.parts, total, extra, len(gpu_cases), coverage_line(kinds)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--first", type=int, default=0, help="id of the first case")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--modes", type=int, default=1, help="output modes per case besides eval")
    p.add_argument("--big-every", type=int, default=0, help="every n-th case is large (threads, streaming)")
    p.add_argument("--catch", action="store_true", help="a Catch2 test (else a program with main)")
    p.add_argument("--cuda", action="store_true", help="also compile each case's CUDA kernel with NVRTC")
    p.add_argument("--name", default="", help="the name in the test case title")
    p.add_argument("--coverage", action="store_true", help="print the node kinds covered to stderr")
    p.add_argument("--elementwise", action="store_true", help="elementwise operations only")
    p.add_argument("--gpu", action="store_true", help="also evaluate on the device (LOOM_FUZZ_GPU)")
    p.add_argument("--pragma", default=None, help="GCC optimize pragma for the file, e.g. O2")
    p.add_argument("--corpus", action="store_true", help="write the CI corpus (see corpus())")
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--gpu-count", type=int, default=24)
    p.add_argument("--out", default="tests/unit")
    p.add_argument("--gpu-out", default="tests/gpu")
    args = p.parse_args()
    if args.corpus:
        corpus(args)
    else:
        emit(args)


if __name__ == "__main__":
    main()
