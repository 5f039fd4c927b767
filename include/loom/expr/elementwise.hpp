// loom/expr/elementwise.hpp: the elementwise operators and functions users write.
//
//   tensor<float, S> o = 2.f * x + exp(-x) / (1.f + abs(x));
//   o = where(x > 0.f, x, 0.01f * x);
//
// Each builds a map_node; nothing is computed until the expression is assigned or eval()'d.
#pragma once

#include <utility>

#include "loom/expr/map.hpp"
#include "loom/expr/ops.hpp"

namespace loom {

/// An operand list with at least one expression (so that 2.f * 3.f stays plain C++).
template <class... X>
concept elementwise_operands = (operand<X> && ...) && (expression<X> || ...);

#define LOOM_BINARY_OPERATOR(sym, op)                  \
  template <class A, class B>                          \
    requires elementwise_operands<A, B>                \
  auto operator sym(A&& a, B&& b) {                    \
    return detail::make_map<ops::op>(std::forward<A>(a), std::forward<B>(b)); \
  }
LOOM_BINARY_OPERATOR(+, add)
LOOM_BINARY_OPERATOR(-, sub)
LOOM_BINARY_OPERATOR(*, mul)
LOOM_BINARY_OPERATOR(/, div)
LOOM_BINARY_OPERATOR(==, eq)
LOOM_BINARY_OPERATOR(!=, ne)
LOOM_BINARY_OPERATOR(<, lt)
LOOM_BINARY_OPERATOR(<=, le)
LOOM_BINARY_OPERATOR(>, gt)
LOOM_BINARY_OPERATOR(>=, ge)
LOOM_BINARY_OPERATOR(&&, logical_and)
LOOM_BINARY_OPERATOR(||, logical_or)
#undef LOOM_BINARY_OPERATOR

/// -x
template <class A>
  requires expression<A>
auto operator-(A&& a) {
  return detail::make_map<ops::neg>(std::forward<A>(a));
}
/// !x (logical not; any type converts to bool as != 0)
template <class A>
  requires expression<A>
auto operator!(A&& a) {
  return detail::make_map<ops::logical_not>(std::forward<A>(a));
}

#define LOOM_UNARY_FUNCTION(fn)                           \
  template <class A>                                      \
    requires expression<A>                                \
  auto fn(A&& a) {                                        \
    return detail::make_map<ops::fn>(std::forward<A>(a)); \
  }
/// Elementwise math: exp(x), log(x), ..., as NumPy's functions of the same names.
LOOM_UNARY_FUNCTION(exp)
LOOM_UNARY_FUNCTION(log)
LOOM_UNARY_FUNCTION(log1p)
LOOM_UNARY_FUNCTION(expm1)
LOOM_UNARY_FUNCTION(sqrt)
LOOM_UNARY_FUNCTION(rsqrt)
LOOM_UNARY_FUNCTION(abs)
LOOM_UNARY_FUNCTION(sin)
LOOM_UNARY_FUNCTION(cos)
LOOM_UNARY_FUNCTION(tanh)
LOOM_UNARY_FUNCTION(sigmoid)
LOOM_UNARY_FUNCTION(erf)
LOOM_UNARY_FUNCTION(floor)
LOOM_UNARY_FUNCTION(ceil)
LOOM_UNARY_FUNCTION(round)
LOOM_UNARY_FUNCTION(relu)
LOOM_UNARY_FUNCTION(gelu)
LOOM_UNARY_FUNCTION(gelu_exact)
#undef LOOM_UNARY_FUNCTION

/// Elementwise maximum with NaN propagation (max is the reduction): maximum(x, 0.f).
template <class A, class B>
  requires elementwise_operands<A, B>
auto maximum(A&& a, B&& b) {
  return detail::make_map<ops::maximum>(std::forward<A>(a), std::forward<B>(b));
}
/// Elementwise minimum with NaN propagation (min is the reduction).
template <class A, class B>
  requires elementwise_operands<A, B>
auto minimum(A&& a, B&& b) {
  return detail::make_map<ops::minimum>(std::forward<A>(a), std::forward<B>(b));
}
/// a raised to b, elementwise.
template <class A, class B>
  requires elementwise_operands<A, B>
auto pow(A&& a, B&& b) {
  return detail::make_map<ops::pow>(std::forward<A>(a), std::forward<B>(b));
}
/// NumPy's clip: clamp(x, -1.f, 1.f).
template <class X, class L, class H>
  requires elementwise_operands<X, L, H>
auto clamp(X&& x, L&& lo, H&& hi) {
  return detail::make_map<ops::clamp>(std::forward<X>(x), std::forward<L>(lo), std::forward<H>(hi));
}
/// c ? a : b elementwise; c converts to bool, a and b promote together: where(x > 0.f, x, 0.01f * x).
template <class C, class A, class B>
  requires elementwise_operands<C, A, B>
auto where(C&& c, A&& a, B&& b) {
  return detail::make_map<ops::where>(std::forward<C>(c), std::forward<A>(a), std::forward<B>(b));
}
/// The expression converted to T: cast<float>(x). Floating to integer truncates and saturates
/// (NaN gives 0); anything to bool is != 0.
template <element_type T, class A>
  requires expression<A>
auto cast(A&& a) {
  return detail::make_map<ops::cast<T>>(std::forward<A>(a));
}

}  // namespace loom
