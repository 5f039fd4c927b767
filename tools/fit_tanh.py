#!/usr/bin/env python3
"""Fits the rational approximation loom's vectorised float tanh uses:

    tanh(x) ~= x * P(x^2) / Q(x^2)  for |x| <= xmax (clamped beyond), P(0) = Q(0) = 1,

so that r(x) = x (1 + O(x^2)) keeps full relative accuracy near 0. The coefficients of Q are
kept positive, so Q has no root on x^2 >= 0 and the approximation has no pole. The relative error
is minimised first in least squares, then towards minimax by Lawson reweighting. Prints the
coefficients as C++ and the error of evaluating them in float32 (Horner) against float64 tanh.
Needs numpy and scipy. Reproduces the constants in include/loom/cpu/vmath.hpp.
"""
import numpy as np
from scipy.optimize import least_squares

NP, NQ, XMAX = 6, 3, 9.0

x = np.unique(np.concatenate([np.geomspace(1e-4, 1.0, 4000), np.linspace(1.0, XMAX, 8000)]))
t = x * x
y = np.tanh(x)

def model(c):
    p = np.concatenate([[1.0], c[:NP]])
    q = np.concatenate([[1.0], c[NP:]])
    return x * np.polyval(p[::-1], t) / np.polyval(q[::-1], t), p, q

def residual(c, w):
    r, _, _ = model(c)
    return np.sqrt(w) * (r / y - 1)

c = np.zeros(NP + NQ)
c[NP] = 0.4
c[0] = c[NP] - 1.0 / 3.0
lo = np.concatenate([np.full(NP, -np.inf), np.zeros(NQ)])
hi = np.full(NP + NQ, np.inf)
w = np.ones_like(x)
best = None
for it in range(120):  # about 10 minutes
    sol = least_squares(residual, c, args=(w,), bounds=(lo, hi), x_scale='jac', xtol=1e-15, ftol=1e-15, gtol=1e-15,
                        max_nfev=2000)
    c = sol.x
    r, p, q = model(c)
    err = np.abs(r / y - 1)
    if best is None or err.max() < best[0]:
        best = (err.max(), p.copy(), q.copy())
    w = w * (err / err.max()) ** 0.7 + 1e-12
    w /= w.mean()

e, p, q = best
print("// max relative error in float64: %.3g (xmax %g)" % (e, XMAX))
print("p:", ", ".join("%.9e" % v for v in p))
print("q:", ", ".join("%.9e" % v for v in q))

f = np.float32
xs = np.linspace(0, XMAX, 4_000_001).astype(f)
xs = xs[xs > 0]
xs = np.concatenate([xs, np.geomspace(1e-30, 1e-2, 100000).astype(f)])
ts = (xs * xs).astype(f)
P = np.full_like(xs, f(p[-1]))
for cc in p[-2::-1]:
    P = (P * ts + f(cc)).astype(f)
Q = np.full_like(xs, f(q[-1]))
for cc in q[-2::-1]:
    Q = (Q * ts + f(cc)).astype(f)
got = (xs * P / Q).astype(f).astype(np.float64)
ref = np.tanh(xs.astype(np.float64))
ulp = np.spacing(np.abs(ref).astype(f)).astype(np.float64)
print("// float32 evaluation: max error %.2f ulp, max relative %.3g" % ((np.abs(got - ref) / ulp).max(), np.abs(got / ref - 1).max()))
