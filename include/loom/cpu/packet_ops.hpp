// loom/cpu/packet_ops.hpp: the SIMD spelling of every operator of expr/ops.hpp.
//
// packet_op<Op>::apply<C, F>(p...) computes Op over packets of the computation type C in lane
// class F. The results match the scalar definitions in expr/ops.hpp: NaN propagation in
// maximum/minimum/clamp/relu, round half to even, integer division by zero gives 0.
#pragma once

#include <cstddef>
#include <limits>
#include <type_traits>

#include "loom/cpu/simd.hpp"
#include "loom/cpu/vmath.hpp"
#include "loom/expr/ops.hpp"

namespace loom {
namespace cpu {

namespace detail {
/// Applies a scalar operation lane by lane (integer division and power have no SIMD instruction).
template <class F, class R, class T, class Fn>
LOOM_INLINE packet_t<R, F> per_lane(const packet_t<T, F>& a, const packet_t<T, F>& b, Fn fn) {
  constexpr std::size_t w = lanes<F>;
  alignas(64) T x[w], y[w];
  alignas(64) R r[w];
  a.store_unaligned(x);
  b.store_unaligned(y);
  for (std::size_t l = 0; l < w; ++l) r[l] = fn(x[l], y[l]);
  return load_packet<F>(static_cast<const R*>(r));
}
template <class T, class P>
LOOM_INLINE auto any_nan(const P& a, const P& b) {
  return xsimd::isnan(a) | xsimd::isnan(b);
}
}  // namespace detail

template <class Op>
struct packet_op;

// ------------------------------------------------------------------ arithmetic
template <>
struct packet_op<ops::add> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) { return a + b; }
};
template <>
struct packet_op<ops::sub> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) { return a - b; }
};
template <>
struct packet_op<ops::mul> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) { return a * b; }
};
template <>
struct packet_op<ops::div> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) {
    if constexpr (std::is_floating_point_v<C>)
      return a / b;
    else
      return detail::per_lane<F, C, C>(a, b, [](C x, C y) { return loom::detail::safe_div(x, y); });
  }
};
template <>
struct packet_op<ops::maximum> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) {
    if constexpr (std::is_floating_point_v<C>)
      return cpu::blend(detail::any_nan<C>(a, b), a + b, cpu::blend(a < b, b, a));  // ties give a (+0 vs -0)
    else
      return xsimd::max(a, b);
  }
};
template <>
struct packet_op<ops::minimum> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) {
    if constexpr (std::is_floating_point_v<C>)
      return cpu::blend(detail::any_nan<C>(a, b), a + b, cpu::blend(b < a, b, a));  // ties give a (+0 vs -0)
    else
      return xsimd::min(a, b);
  }
};
template <>
struct packet_op<ops::pow> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) {
    if constexpr (std::is_floating_point_v<C>)
      return vmath::pow(a, b);
    else
      return detail::per_lane<F, C, C>(a, b, [](C x, C y) { return loom::detail::int_pow(x, y); });
  }
};

// ------------------------------------------------------------------ comparison and logic
// Comparing two masks (C = bool) is logic: masks have no ordering operators (xsimd's AVX-512
// masks would silently compare as integers), and false < true. (Not ^: xsimd 8's AVX-512 mask
// xor is an or.)
#define LOOM_PACKET_COMPARISON(op, expr, mask_expr)                         \
  template <>                                                               \
  struct packet_op<ops::op> {                                               \
    template <class C, class F, class P>                                    \
    static LOOM_INLINE batch_bool<F> apply(const P& a, const P& b) {        \
      if constexpr (std::is_same_v<C, bool>)                                \
        return as_class_mask<F>(mask_expr);                                 \
      else                                                                  \
        return as_class_mask<F>(expr);                                      \
    }                                                                       \
  };
LOOM_PACKET_COMPARISON(eq, a == b, a == b)
LOOM_PACKET_COMPARISON(ne, ~(a == b), ~(a == b))  // NaN != x is true (xsimd's != is the ordered compare)
LOOM_PACKET_COMPARISON(lt, a < b, ~a & b)
LOOM_PACKET_COMPARISON(le, a <= b, ~a | b)
LOOM_PACKET_COMPARISON(gt, a > b, a & ~b)
LOOM_PACKET_COMPARISON(ge, a >= b, a | ~b)
#undef LOOM_PACKET_COMPARISON

template <>
struct packet_op<ops::logical_and> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) { return a & b; }
};
template <>
struct packet_op<ops::logical_or> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a, const P& b) { return a | b; }
};
template <>
struct packet_op<ops::logical_not> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) { return ~a; }
};

// ------------------------------------------------------------------ same-type unary
template <>
struct packet_op<ops::neg> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) {
    // xsimd 8's AVX-512 -a is 0 - a, which gives +0.0 for 0.0: flip the sign bit instead
    if constexpr (std::is_floating_point_v<C>)
      return xsimd::bitwise_xor(a, P(C(-0.0)));
    else
      return -a;
  }
};
template <>
struct packet_op<ops::abs> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) { return xsimd::abs(a); }
};
template <>
struct packet_op<ops::floor> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) {
    if constexpr (std::is_floating_point_v<C>)
      return xsimd::floor(a);
    else
      return a;
  }
};
template <>
struct packet_op<ops::ceil> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) {
    if constexpr (std::is_floating_point_v<C>)
      return xsimd::ceil(a);
    else
      return a;
  }
};
template <>
struct packet_op<ops::round> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) {
    if constexpr (std::is_floating_point_v<C>)
      return xsimd::nearbyint(a);
    else
      return a;
  }
};
template <>
struct packet_op<ops::relu> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) {
    if constexpr (std::is_floating_point_v<C>)
      return cpu::blend((a > P(C(0))) | xsimd::isnan(a), a, P(C(0)));
    else
      return xsimd::max(a, P(C(0)));
  }
};

// ------------------------------------------------------------------ floating unary
#define LOOM_PACKET_MATH(op, expr)                          \
  template <>                                               \
  struct packet_op<ops::op> {                               \
    template <class C, class F, class P>                    \
    static LOOM_INLINE P apply(const P& x) { return expr; } \
  };
LOOM_PACKET_MATH(exp, vmath::exp(x))
LOOM_PACKET_MATH(log, vmath::log(x))
LOOM_PACKET_MATH(log1p, xsimd::log1p(x))
LOOM_PACKET_MATH(expm1, vmath::expm1(x))
LOOM_PACKET_MATH(sqrt, xsimd::sqrt(x))
LOOM_PACKET_MATH(rsqrt, P(C(1)) / xsimd::sqrt(x))
LOOM_PACKET_MATH(sin, xsimd::sin(x))
LOOM_PACKET_MATH(cos, xsimd::cos(x))
LOOM_PACKET_MATH(tanh, vmath::tanh(x))
LOOM_PACKET_MATH(sigmoid, P(C(1)) / (P(C(1)) + vmath::exp(-x)))
LOOM_PACKET_MATH(erf, vmath::erf(x))
LOOM_PACKET_MATH(gelu, vmath::gelu_tanh(x))
LOOM_PACKET_MATH(gelu_exact, cpu::blend(x == P(-std::numeric_limits<C>::infinity()), P(C(-0.0)),
                                           P(C(0.5)) * x * vmath::erfc(x * P(C(-ops::gelu_exact::inv_sqrt2)))))
#undef LOOM_PACKET_MATH

// ------------------------------------------------------------------ ternary and conversion
template <>
struct packet_op<ops::where> {
  template <class C, class F, class M, class P>
  static LOOM_INLINE P apply(const M& c, const P& a, const P& b) {
    if constexpr (std::is_same_v<C, bool>)
      return (c & a) | (~c & b);
    else if constexpr (std::is_same_v<C, F>)
      return cpu::blend(c, a, b);
    else
      return cpu::blend(xsimd::bool_cast(c), a, b);
  }
};
template <>
struct packet_op<ops::clamp> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& x, const P& lo, const P& hi) {
    return packet_op<ops::minimum>::apply<C, F>(packet_op<ops::maximum>::apply<C, F>(x, lo), hi);
  }
};
template <class To>
struct packet_op<ops::cast<To>> {
  template <class C, class F, class P>
  static LOOM_INLINE P apply(const P& a) { return a; }
};

}  // namespace cpu
}  // namespace loom
