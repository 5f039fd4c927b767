// loom/cpu/vmath.hpp: vectorised math where loom needs more than xsimd gives.
//
// Each function takes and returns an xsimd batch of float or double and is tested against a
// float64 reference in tests/unit/test_vmath.cpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"
#include "loom/cpu/simd.hpp"

namespace loom {
namespace cpu {
namespace vmath {

/// exp. xsimd's saturates early: inf above log(2^127.5) = 88.38 (double: 709.44) although e^x is
/// finite up to 88.72 (709.78), and 0 below -87.3 (-708.4), where e^x is a denormal down to
/// -103.97 (-745.13). Lanes near those ends take exp(x / 2)^2 instead: a few ulp, denormals kept.
template <class B>
LOOM_INLINE B exp(const B& x) {
  using T = typename B::value_type;
  constexpr T hi = std::is_same_v<T, float> ? T(88.f) : T(709.0);
  constexpr T lo = std::is_same_v<T, float> ? T(-87.f) : T(-708.0);
  B r = xsimd::exp(x);
  const auto edge = (x > B(hi)) | (x < B(lo));
  if (LOOM_UNLIKELY(xsimd::any(edge))) {
    const B h = xsimd::exp(x * B(T(0.5)));
    r = cpu::blend(edge, h * h, r);
  }
  return r;
}

/// expm1. xsimd's overflows where its exp does; above 88 (709), e^x - 1 is e^x in T.
template <class B>
LOOM_INLINE B expm1(const B& x) {
  using T = typename B::value_type;
  constexpr T hi = std::is_same_v<T, float> ? T(88.f) : T(709.0);
  B r = xsimd::expm1(x);
  const auto edge = x > B(hi);
  if (LOOM_UNLIKELY(xsimd::any(edge))) r = cpu::blend(edge, vmath::exp(x), r);
  return r;
}

/// pow for floating types: xsimd's exp(b log|a|), except in the lanes it gets wrong - a zero,
/// infinite or NaN operand, b == 0, and results that overflow or vanish (its exp saturates early)
/// - which take std::pow, the scalar definition in expr/ops.hpp (pow(0, 0) == 1, pow(0, -1) ==
/// inf, pow(NaN, 0) == 1, pow(1, NaN) == 1, denormal results kept, ...).
template <class B>
LOOM_INLINE B pow(const B& a, const B& b) {
  using T = typename B::value_type;
  B r = xsimd::pow(a, b);
  const auto special = (a == B(T(0))) | (b == B(T(0))) | ~xsimd::isfinite(a) | ~xsimd::isfinite(b) |
                       ~xsimd::isfinite(r) | (r == B(T(0)));
  if (LOOM_UNLIKELY(xsimd::any(special))) {
    alignas(64) T av[B::size], bv[B::size], rv[B::size];
    alignas(64) bool sv[B::size];
    a.store_aligned(av);
    b.store_aligned(bv);
    r.store_aligned(rv);
    special.store_aligned(sv);
    for (std::size_t i = 0; i < B::size; ++i)
      if (sv[i]) rv[i] = std::pow(av[i], bv[i]);
    r = B::load_aligned(rv);
  }
  return r;
}

/// tanh. Float: a rational approximation x P(x^2) / Q(x^2) on [-9, 9] (tanh rounds to +-1 in
/// float beyond), fitted by tools/fit_tanh.py: at most 6 ulp from the float64 value, one division,
/// no exp. Q has positive coefficients, so no pole. Double: xsimd's.
template <class B>
LOOM_INLINE B tanh(const B& x) {
  using T = typename B::value_type;
  if constexpr (std::is_same_v<T, float>) {
    const B c = xsimd::min(xsimd::max(x, B(-9.f)), B(9.f));
    const B t = c * c;
    B p = B(-8.561754989e-14f);
    p = xsimd::fma(p, t, B(5.309336441e-11f));
    p = xsimd::fma(p, t, B(-2.029686881e-08f));
    p = xsimd::fma(p, t, B(1.117342450e-05f));
    p = xsimd::fma(p, t, B(3.105879518e-03f));
    p = xsimd::fma(p, t, B(1.308576487e-01f));
    p = xsimd::fma(p, t, B(1.f));
    B q = B(2.548886770e-04f);
    q = xsimd::fma(q, t, B(2.450293802e-02f));
    q = xsimd::fma(q, t, B(4.641909404e-01f));
    q = xsimd::fma(q, t, B(1.f));
    return cpu::blend(xsimd::isnan(x), x, c * p / q);
  } else {
    return xsimd::tanh(x);
  }
}

/// GELU, tanh form, as x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3).
template <class B>
LOOM_INLINE B gelu_tanh(const B& x) {
  using T = typename B::value_type;
  const B k0(T(-2 * 0.7978845608028654)), k1(T(-2 * 0.7978845608028654 * 0.044715));
  B x2 = x * x;
  B v = x * xsimd::fma(k1, x2, k0);  // -2u
  // x / (1 + e^v) for v <= 0, x e^-v / (1 + e^-v) above: e^v would overflow where the result
  // (about x e^-v) is still a small normal or a denormal (x near -10 in float)
  B e = vmath::exp(-xsimd::abs(v));  // (qualified: ADL would pick xsimd::exp)
  B d = B(T(1)) + e;
  B r = cpu::blend(v <= B(T(0)), x / d, x * e / d);
  return cpu::blend(x == B(-std::numeric_limits<T>::infinity()), B(T(-0.0)), r);
}

}  // namespace vmath
}  // namespace cpu
}  // namespace loom
