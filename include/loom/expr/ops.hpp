// loom/expr/ops.hpp: the one table of elementwise operators.
//
// Each operator is a tag with its name (explain, codegen), infix symbol if any, arity, type rule,
// relative cost (the thread threshold), and its scalar definition, which is the reference
// semantics every backend follows (the CPU SIMD versions live in cpu/packet_ops.hpp, the CUDA
// ones in the generated preamble). Integer arithmetic wraps as in NumPy; integer division by
// zero gives 0 and INT_MIN / -1 gives INT_MIN, never undefined behaviour; maximum, minimum,
// clamp and relu propagate NaN as NumPy does.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

#include "loom/core/dtype.hpp"

namespace loom {

/// How an operator's computation type and result type follow from its operands' types.
enum class type_rule {
  arithmetic,  // compute = promoted operands (not all bool); result = compute
  comparison,  // compute = promoted operands; result = bool
  logical,     // compute = bool; result = bool
  floating,    // compute = float_of_t<operand>; result = compute
  same,        // compute = result = the operand's type (not bool)
  select,      // operand 0 is a condition (bool); compute = promoted operands 1..n; result = compute
  convert,     // compute = result = the target type of cast<T>
};

namespace detail {

template <class T>
constexpr T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) + static_cast<std::make_unsigned_t<T>>(b));
  else
    return a + b;
}
template <class T>
constexpr T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) - static_cast<std::make_unsigned_t<T>>(b));
  else
    return a - b;
}
template <class T>
constexpr T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) * static_cast<std::make_unsigned_t<T>>(b));
  else
    return a * b;
}
template <class T>
constexpr T safe_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if (b == -1) return wrap_sub(T(0), a);  // also INT_MIN / -1 == INT_MIN
    return a / b;
  } else {
    return a / b;
  }
}
template <class T>
constexpr T int_pow(T base, T e) {
  if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
  T r = 1;
  while (e) {
    if (e & 1) r = wrap_mul(r, base);
    base = wrap_mul(base, base);
    e >>= 1;
  }
  return r;
}

/// Converts a value to another element type the way every backend does: to bool is != 0;
/// floating to integer truncates, saturates out of range, and gives 0 for NaN.
template <class To, class From>
constexpr To convert(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<To, bool>) {
    return x != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (x != x) return 0;
    constexpr From lo = static_cast<From>(std::numeric_limits<To>::min());
    constexpr From hi = static_cast<From>(std::numeric_limits<To>::max());  // rounds up to 2^31 or 2^63
    if (x <= lo) return std::numeric_limits<To>::min();
    if (x >= hi) return std::numeric_limits<To>::max();
    return static_cast<To>(x);
  } else {
    return static_cast<To>(x);  // integer narrowing wraps (two's complement, C++20)
  }
}

}  // namespace detail

namespace ops {

#define LOOM_OP_HEADER(op_name, op_symbol, op_arity, op_rule, op_cost) \
  static constexpr std::string_view name = op_name;                    \
  static constexpr std::string_view symbol = op_symbol;                \
  static constexpr int arity = op_arity;                               \
  static constexpr type_rule rule = op_rule;                           \
  static constexpr int cost = op_cost;

// ------------------------------------------------------------------ arithmetic
struct add {
  LOOM_OP_HEADER("add", "+", 2, type_rule::arithmetic, 1)
  template <class T>
  static constexpr T apply(T a, T b) { return detail::wrap_add(a, b); }
};
struct sub {
  LOOM_OP_HEADER("sub", "-", 2, type_rule::arithmetic, 1)
  template <class T>
  static constexpr T apply(T a, T b) { return detail::wrap_sub(a, b); }
};
struct mul {
  LOOM_OP_HEADER("mul", "*", 2, type_rule::arithmetic, 1)
  template <class T>
  static constexpr T apply(T a, T b) { return detail::wrap_mul(a, b); }
};
struct div {
  LOOM_OP_HEADER("div", "/", 2, type_rule::arithmetic, 4)
  template <class T>
  static constexpr T apply(T a, T b) { return detail::safe_div(a, b); }
};
struct maximum {
  LOOM_OP_HEADER("maximum", "", 2, type_rule::arithmetic, 1)
  template <class T>
  static constexpr T apply(T a, T b) {
    if constexpr (std::is_floating_point_v<T>)
      if (a != a || b != b) return a + b;
    return a < b ? b : a;
  }
};
struct minimum {
  LOOM_OP_HEADER("minimum", "", 2, type_rule::arithmetic, 1)
  template <class T>
  static constexpr T apply(T a, T b) {
    if constexpr (std::is_floating_point_v<T>)
      if (a != a || b != b) return a + b;
    return b < a ? b : a;
  }
};
struct pow {
  LOOM_OP_HEADER("pow", "", 2, type_rule::arithmetic, 20)
  template <class T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>)
      return detail::int_pow(a, b);
    else
      return std::pow(a, b);
  }
};

// ------------------------------------------------------------------ comparison and logic
struct eq {
  LOOM_OP_HEADER("eq", "==", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a == b; }
};
struct ne {
  LOOM_OP_HEADER("ne", "!=", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a != b; }
};
struct lt {
  LOOM_OP_HEADER("lt", "<", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a < b; }
};
struct le {
  LOOM_OP_HEADER("le", "<=", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a <= b; }
};
struct gt {
  LOOM_OP_HEADER("gt", ">", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a > b; }
};
struct ge {
  LOOM_OP_HEADER("ge", ">=", 2, type_rule::comparison, 1)
  template <class T>
  static constexpr bool apply(T a, T b) { return a >= b; }
};
struct logical_and {
  LOOM_OP_HEADER("logical_and", "&&", 2, type_rule::logical, 1)
  static constexpr bool apply(bool a, bool b) { return a && b; }
};
struct logical_or {
  LOOM_OP_HEADER("logical_or", "||", 2, type_rule::logical, 1)
  static constexpr bool apply(bool a, bool b) { return a || b; }
};
struct logical_not {
  LOOM_OP_HEADER("logical_not", "!", 1, type_rule::logical, 1)
  static constexpr bool apply(bool a) { return !a; }
};

// ------------------------------------------------------------------ same-type unary
struct neg {
  LOOM_OP_HEADER("neg", "-", 1, type_rule::same, 1)
  template <class T>
  static constexpr T apply(T a) {
    if constexpr (std::is_integral_v<T>)
      return detail::wrap_sub(T(0), a);
    else
      return -a;
  }
};
struct abs {
  LOOM_OP_HEADER("abs", "", 1, type_rule::same, 1)
  template <class T>
  static T apply(T a) {
    if constexpr (std::is_integral_v<T>)
      return a < 0 ? detail::wrap_sub(T(0), a) : a;
    else
      return std::fabs(a);
  }
};
struct floor {
  LOOM_OP_HEADER("floor", "", 1, type_rule::same, 1)
  template <class T>
  static T apply(T a) {
    if constexpr (std::is_integral_v<T>)
      return a;
    else
      return std::floor(a);
  }
};
struct ceil {
  LOOM_OP_HEADER("ceil", "", 1, type_rule::same, 1)
  template <class T>
  static T apply(T a) {
    if constexpr (std::is_integral_v<T>)
      return a;
    else
      return std::ceil(a);
  }
};
/// Rounds half to even, as NumPy's round.
struct round {
  LOOM_OP_HEADER("round", "", 1, type_rule::same, 1)
  template <class T>
  static T apply(T a) {
    if constexpr (std::is_integral_v<T>)
      return a;
    else
      return std::nearbyint(a);
  }
};
struct relu {
  LOOM_OP_HEADER("relu", "", 1, type_rule::same, 1)
  template <class T>
  static constexpr T apply(T a) {
    if constexpr (std::is_floating_point_v<T>)
      if (a != a) return a;
    return a > T(0) ? a : T(0);
  }
};

// ------------------------------------------------------------------ floating unary
struct exp {
  LOOM_OP_HEADER("exp", "", 1, type_rule::floating, 8)
  template <class T>
  static T apply(T a) { return std::exp(a); }
};
struct log {
  LOOM_OP_HEADER("log", "", 1, type_rule::floating, 8)
  template <class T>
  static T apply(T a) { return std::log(a); }
};
struct log1p {
  LOOM_OP_HEADER("log1p", "", 1, type_rule::floating, 10)
  template <class T>
  static T apply(T a) { return std::log1p(a); }
};
struct expm1 {
  LOOM_OP_HEADER("expm1", "", 1, type_rule::floating, 10)
  template <class T>
  static T apply(T a) { return std::expm1(a); }
};
struct sqrt {
  LOOM_OP_HEADER("sqrt", "", 1, type_rule::floating, 4)
  template <class T>
  static T apply(T a) { return std::sqrt(a); }
};
struct rsqrt {
  LOOM_OP_HEADER("rsqrt", "", 1, type_rule::floating, 4)
  template <class T>
  static T apply(T a) { return T(1) / std::sqrt(a); }
};
struct sin {
  LOOM_OP_HEADER("sin", "", 1, type_rule::floating, 10)
  template <class T>
  static T apply(T a) { return std::sin(a); }
};
struct cos {
  LOOM_OP_HEADER("cos", "", 1, type_rule::floating, 10)
  template <class T>
  static T apply(T a) { return std::cos(a); }
};
struct tanh {
  LOOM_OP_HEADER("tanh", "", 1, type_rule::floating, 8)
  template <class T>
  static T apply(T a) { return std::tanh(a); }
};
struct sigmoid {
  LOOM_OP_HEADER("sigmoid", "", 1, type_rule::floating, 8)
  template <class T>
  static T apply(T a) { return T(1) / (T(1) + std::exp(-a)); }
};
struct erf {
  LOOM_OP_HEADER("erf", "", 1, type_rule::floating, 10)
  template <class T>
  static T apply(T a) { return std::erf(a); }
};
/// GELU, tanh form (jax.nn.gelu's default): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
/// computed as x * sigmoid(2u), which is the same function without the cancellation of 1 + tanh.
/// gelu(-inf) is -0, the limit (the formula itself would give NaN).
struct gelu {
  LOOM_OP_HEADER("gelu", "", 1, type_rule::floating, 10)
  static constexpr double k0 = 0.7978845608028654;  // sqrt(2 / pi)
  static constexpr double k1 = 0.044715;
  template <class T>
  static T apply(T x) {
    if (x == -std::numeric_limits<T>::infinity()) return -T(0);  // the limit, not -inf * 0
    T u = T(k0) * (x + T(k1) * x * x * x);
    // e^(-2u) overflows for u below about -44 (float) where x e^(2u) is still representable
    const T e = std::exp(T(-2) * std::fabs(u));
    return u >= T(0) ? x / (T(1) + e) : x * e / (T(1) + e);
  }
};
/// GELU, erf form: 0.5 x (1 + erf(x / sqrt(2))), computed as 0.5 x erfc(-x / sqrt(2)), which has
/// no cancellation for negative x.
struct gelu_exact {
  LOOM_OP_HEADER("gelu_exact", "", 1, type_rule::floating, 12)
  static constexpr double inv_sqrt2 = 0.7071067811865476;
  template <class T>
  static T apply(T x) {
    if (x == -std::numeric_limits<T>::infinity()) return -T(0);  // the limit, not -inf * 0
    return T(0.5) * x * std::erfc(x * T(-inv_sqrt2));
  }
};

// ------------------------------------------------------------------ ternary
struct where {
  LOOM_OP_HEADER("where", "", 3, type_rule::select, 1)
  template <class T>
  static constexpr T apply(bool c, T a, T b) { return c ? a : b; }
};
/// NumPy's clip: minimum(maximum(x, lo), hi), NaN in x propagates.
struct clamp {
  LOOM_OP_HEADER("clamp", "", 3, type_rule::arithmetic, 2)
  template <class T>
  static constexpr T apply(T x, T lo, T hi) { return minimum::apply(maximum::apply(x, lo), hi); }
};

// ------------------------------------------------------------------ conversion
/// cast<T>: the operand is converted to T (see detail::convert) and passed through.
template <element_type To>
struct cast {
  LOOM_OP_HEADER("cast", "", 1, type_rule::convert, 1)
  using target = To;
  static constexpr To apply(To a) { return a; }
};

#undef LOOM_OP_HEADER

}  // namespace ops

template <class Op>
concept op_tag = requires {
  Op::name;
  Op::arity;
  Op::rule;
};

}  // namespace loom
