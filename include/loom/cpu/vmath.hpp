// loom/cpu/vmath.hpp: vectorised math where loom needs more than xsimd gives.
//
// Each function takes and returns an xsimd batch of float or double and is tested against a
// float64 reference in tests/unit/test_vmath.cpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "loom/core/config.hpp"
#include "loom/cpu/simd.hpp"

namespace loom {
namespace cpu {
namespace vmath {

/// exp. Float packets of AVX-512: Cody-Waite reduction x = k ln2 + r, a degree-7 polynomial for
/// e^r on [-ln2/2, ln2/2] and vscalefps for p * 2^k, which rounds into the denormals and
/// overflows to inf exactly where e^x does - no edge lanes and no branch (at most 1.01 ulp from
/// the float64 value over every float; tools/checks can sweep it again). The input is clamped to
/// [-104, 89] first (e^x is 0 / inf in float beyond), with the operand order that keeps NaN.
///
/// Other float packets (AVX2, SSE, NEON): the same reduction and polynomial, the scaling by 2^k
/// in two exact-then-rounding multiplies (the test sweeps [-104, 89] at most 1.5 ulp; xsimd's exp
/// with its ends patched was 2.57 ulp there).
///
/// Double: xsimd's: it saturates early - inf above log(2^1023.5) = 709.44 although e^x is finite
/// up to 709.78, and 0 below -708.4, where e^x is a denormal down to -745.13 - so lanes near those
/// ends take exp(x / 2)^2 instead: a few ulp, denormals kept.
/// float exp's constants: log2(e), ln 2 in two parts (ln2_hi exact in 9 bits, so that k ln2_hi
/// is exact), and the coefficients c6..c2 of (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2], highest first.
namespace exp_f32 {
inline constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
inline constexpr float c[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_f32

template <class B>
LOOM_INLINE B exp(const B& x) {
  using T = typename B::value_type;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && B::size == 16) {
    const __m512 v = _mm512_min_ps(_mm512_set1_ps(89.f), _mm512_max_ps(_mm512_set1_ps(-104.f), x));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(exp_f32::log2e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(exp_f32::ln2_hi), v);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(exp_f32::ln2_lo), r);
    __m512 p = _mm512_set1_ps(exp_f32::c[0]);  // (e^r - 1 - r) / r^2
    for (int j = 1; j < 6; ++j) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_f32::c[j]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    return B(_mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.f)), k));
  } else
#endif
  if constexpr (std::is_same_v<T, float>) {
    // Other float packets: the same reduction and polynomial. Where every lane has |x| < 86.6
    // (k in [-125, 125], e^x a normal float), p * 2^k is p with k added to its exponent field,
    // which is exact; the test replaces the clamp. Elsewhere (and for NaN, which fails the test)
    // p * 2^k as p * 2^k1 * 2^k2 with k1 = floor(k / 2), k2 = k - k1 (each a normal power of two
    // for k in [-150, 128]), so the first product is exact and the second rounds once, into the
    // denormals or to inf exactly where e^x does. Both ways give the same bits where both apply.
    // NaN passes through: the clamp keeps it (maxps and minps return their second operand, x,
    // where either is NaN), so p is NaN and so is the product, whatever the scales hold. (On
    // AVX2: 19 vector instructions a packet on the first way against 25 with the clamp, the two
    // scales and a NaN select.)
    using I = xsimd::batch<std::int32_t, typename B::arch_type>;
    // Inlined: GCC 12 left it out of line in the exp-and-sum pass of a softmax, a call a packet.
    const auto poly = [](const B& v, B& k) LOOM_INLINE_LAMBDA {
      k = xsimd::nearbyint(v * B(exp_f32::log2e));
      B r = xsimd::fnma(k, B(exp_f32::ln2_hi), v);
      r = xsimd::fnma(k, B(exp_f32::ln2_lo), r);
      B p(exp_f32::c[0]);
      for (int j = 1; j < 6; ++j) p = xsimd::fma(p, r, B(exp_f32::c[j]));
      return xsimd::fma(p, r * r, r) + B(1.f);
    };
    B k;
    if (LOOM_LIKELY(xsimd::all(xsimd::abs(x) < B(86.6f)))) {
      const B p = poly(x, k);
      return xsimd::bitwise_cast<B>(xsimd::bitwise_cast<I>(p) + (xsimd::to_int(k) << 23));
    }
    const B p = poly(xsimd::min(B(89.f), xsimd::max(B(-104.f), x)), k);
    const I ki = xsimd::to_int(k);
    const I k1 = ki >> 1, k2 = ki - k1;
    const B s1 = xsimd::bitwise_cast<B>((k1 + I(127)) << 23), s2 = xsimd::bitwise_cast<B>((k2 + I(127)) << 23);
    return p * s1 * s2;
  } else {
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

/// Arguments of erf and erfc limited to [-64, 64] (double): beyond, erf is +-1 and erfc 0 or 2 in
/// every floating type, but xsimd 8's double versions square the argument and return NaN once
/// that overflows (|x| > 1.3e154). NaN stays NaN (the comparisons are false).
template <class B>
LOOM_INLINE B erf_domain(const B& x) {
  using T = typename B::value_type;
  if constexpr (std::is_same_v<T, double>)
    return cpu::blend(x > B(T(64)), B(T(64)), cpu::blend(x < B(T(-64)), B(T(-64)), x));
  else
    return x;
}
template <class B>
LOOM_INLINE B erf(const B& x) {
  return xsimd::erf(erf_domain(x));
}
template <class B>
LOOM_INLINE B erfc(const B& x) {
  return xsimd::erfc(erf_domain(x));
}

/// log. xsimd 8's double log reads the exponent field as it is, which is wrong for denormals
/// (log(1e-310) would be -746.5, not -713.8): those lanes are scaled by 2^54 first.
template <class B>
LOOM_INLINE B log(const B& x) {
  using T = typename B::value_type;
  if constexpr (std::is_same_v<T, double>) {
    const auto tiny = (x < B(std::numeric_limits<T>::min())) & (x > B(T(0)));
    if (LOOM_UNLIKELY(xsimd::any(tiny))) {
      const B scaled = cpu::blend(tiny, x * B(T(18014398509481984.0)), x);  // 2^54
      return xsimd::log(scaled) - cpu::blend(tiny, B(T(54 * 0.69314718055994530942)), B(T(0)));
    }
  }
  return xsimd::log(x);
}

/// pow for floating types: xsimd's exp(b log|a|), except in the lanes it gets wrong - a zero,
/// infinite or NaN operand, b == 0, results that overflow or vanish (its exp saturates early),
/// denormal bases (its log misreads them) and negative bases with exponents of 2^24 (2^53) or
/// more (all even; it takes some for odd) - which take std::pow, the scalar definition in
/// expr/ops.hpp (pow(0, 0) == 1, pow(0, -1) == inf, pow(NaN, 0) == 1, pow(1, NaN) == 1, denormal
/// results kept, ...).
template <class B>
LOOM_INLINE B pow(const B& a, const B& b) {
  using T = typename B::value_type;
  B r = xsimd::pow(a, b);
  const auto special = (a == B(T(0))) | (b == B(T(0))) | ~xsimd::isfinite(a) | ~xsimd::isfinite(b) |
                       ~xsimd::isfinite(r) | (r == B(T(0))) | (xsimd::abs(a) < B(std::numeric_limits<T>::min())) |
                       ((a < B(T(0))) & (xsimd::abs(b) >= B(T(std::uint64_t(1) << std::numeric_limits<T>::digits))));
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
  B r = cpu::blend(v <= B(T(0)), x, x * e) / d;  // one division for both cases
  return cpu::blend(x == B(-std::numeric_limits<T>::infinity()), B(T(-0.0)), r);
}

}  // namespace vmath
}  // namespace cpu
}  // namespace loom
