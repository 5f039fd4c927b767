// loom/cpu/vmath.hpp: vectorised math where loom needs more than xsimd gives.
//
// Each function takes and returns an xsimd batch of float or double and is tested against a
// float64 reference in tests/unit/test_vmath.cpp.
#pragma once

#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"

namespace loom {
namespace cpu {
namespace vmath {

template <class B>
LOOM_INLINE B exp(const B& x) {
  return xsimd::exp(x);
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
    return xsimd::select(xsimd::isnan(x), x, c * p / q);
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
  B r = x / (B(T(1)) + exp(v));
  return xsimd::select(x == B(-std::numeric_limits<T>::infinity()), B(T(-0.0)), r);
}

}  // namespace vmath
}  // namespace cpu
}  // namespace loom
