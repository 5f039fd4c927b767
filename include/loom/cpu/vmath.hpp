// loom/cpu/vmath.hpp: vectorised math where loom needs more than xsimd gives.
//
// Each function takes and returns an xsimd batch of float or double and is tested against a
// float64 reference in tests/unit/test_vmath.cpp.
#pragma once

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"

namespace loom {
namespace cpu {
namespace vmath {

template <class B>
LOOM_INLINE B exp(const B& x) {
  return xsimd::exp(x);
}

template <class B>
LOOM_INLINE B tanh(const B& x) {
  return xsimd::tanh(x);
}

/// GELU, tanh form, as x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3).
template <class B>
LOOM_INLINE B gelu_tanh(const B& x) {
  using T = typename B::value_type;
  const B k0(T(-2 * 0.7978845608028654)), k1(T(-2 * 0.7978845608028654 * 0.044715));
  B x2 = x * x;
  B v = x * xsimd::fma(k1, x2, k0);  // -2u
  return x / (B(T(1)) + exp(v));
}

}  // namespace vmath
}  // namespace cpu
}  // namespace loom
