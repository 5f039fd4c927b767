// tests/reference/reference.hpp: a slow, obviously right evaluator of any loom expression node.
//
//   loom_ref::ref_array r = loom_ref::evaluate(exp(x) + sum(y, axis<1>, keepdims));
//   r.shape, r.type, r.at(i) -> {v, lo, hi, i, any}
//
// It shares nothing with the fast paths: no evaluators, loop nests, packets or ops::X::apply.
// Each node kind has one overload of evaluate() that walks the node's own data (a leaf through
// its strides, a map through explicit NumPy broadcasting, an index map by rewriting indices, a
// reduction by visiting every reduced element) and hands the numbers to plain, non-template code
// below, which implements docs/semantics.md line by line: floating operations in double, integer
// operations on exact 64-bit integers that wrap to the dtype's width.
//
// Every floating element carries, besides the reference value v (the float64 result rounded to
// the node's dtype), an enclosure [lo, hi] of every result a correct implementation may give:
// the operand's enclosures pushed through the operation (its end points, or a Lipschitz bound for
// the functions that are not monotone) and widened by the operation's error budget in ulps of the
// dtype (half an ulp of rounding for + - * / sqrt with room for fused multiply-adds, a few ulps
// for the vectorised math, the condition number of the formula for gelu and pow, the depth of
// the summation tree for sums). The tolerance therefore follows from the operations, and it is
// aware of cancellation: x - y of nearly equal values has a wide enclosure relative to its
// result, and a comparison, floor, ceil, round or cast to an integer of a value whose enclosure
// straddles the discontinuity is marked `any` (either answer is right) instead of failing.
// Integer and bool elements are exact (or `any`, downstream of such an ambiguity). NaN is exact
// only where every correct implementation gives NaN. The sign of a zero is not checked here
// (tests/unit/test_semantics.cpp checks it where the semantics fix it).
#pragma once

#include <loom/core/dtype.hpp>
#include <loom/core/shape.hpp>
#include <loom/expr/map.hpp>
#include <loom/expr/node.hpp>
#include <loom/expr/ops.hpp>
#include <loom/expr/traits.hpp>

#if __has_include(<loom/expr/reduce.hpp>)
#include <loom/expr/reduce.hpp>
#define LOOM_REF_HAS_REDUCE 1
#endif
#if __has_include(<loom/expr/index_map.hpp>)
#include <loom/expr/index_map.hpp>
#define LOOM_REF_HAS_INDEX_MAP 1
#endif
#if __has_include(<loom/expr/generator.hpp>)
#include <loom/expr/generator.hpp>
#define LOOM_REF_HAS_GENERATOR 1
#endif
#if __has_include(<loom/expr/matmul.hpp>)
#include <loom/expr/matmul.hpp>
#define LOOM_REF_HAS_MATMUL 1
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace loom_ref {

using loom::dims;
using loom::dtype;

// =============================================================================================
// Elements and arrays
// =============================================================================================

/// One element of a reference result.
struct elem {
  double v = 0;          ///< the reference value, rounded to the dtype (integers: exactly i)
  double lo = 0, hi = 0; ///< floating: every correct result r has lo <= r <= hi (NaN v: r is NaN)
  std::int64_t i = 0;    ///< integer and bool dtypes: the exact value (bool: 0 or 1)
  bool any = false;      ///< no constraint: the result depends on rounding the semantics leave open
};

/// A reference result: its shape, dtype and elements in row-major order.
struct ref_array {
  dims shape;
  dtype type = dtype::float32;
  std::vector<elem> e;
  const elem& at(std::size_t k) const { return e[k]; }
  std::size_t size() const { return e.size(); }
};

inline bool is_float(dtype t) { return t == dtype::float32 || t == dtype::float64; }
inline bool is_int(dtype t) { return t == dtype::int32 || t == dtype::int64; }

/// The machine epsilon of a floating dtype (one ulp at 1: the error budgets below count these)
/// and its smallest denormal.
inline double eps_of(dtype t) { return t == dtype::float32 ? 0x1p-23 : 0x1p-52; }
inline double tiny_of(dtype t) { return t == dtype::float32 ? 0x1p-149 : 0x0.0000000000001p-1022; }
inline double max_of(dtype t) {
  return t == dtype::float32 ? double(std::numeric_limits<float>::max()) : std::numeric_limits<double>::max();
}

/// x rounded to the nearest value of dtype t (float32: one IEEE rounding; float64: x).
inline double round_to(dtype t, double x) { return t == dtype::float32 ? double(static_cast<float>(x)) : x; }
/// The largest value of t not above x, and the smallest not below.
inline double round_down(dtype t, double x) {
  if (t != dtype::float32 || std::isnan(x)) return x;
  float f = static_cast<float>(x);
  if (double(f) > x) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}
inline double round_up(dtype t, double x) {
  if (t != dtype::float32 || std::isnan(x)) return x;
  float f = static_cast<float>(x);
  if (double(f) < x) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

inline elem any_elem() {
  elem r;
  r.any = true;
  r.v = r.lo = r.hi = std::numeric_limits<double>::quiet_NaN();
  return r;
}
inline bool is_exact(const elem& a) {
  return !a.any && ((a.lo == a.v && a.hi == a.v) || (std::isnan(a.v) && std::isnan(a.lo) && std::isnan(a.hi)));
}

/// A floating element of dtype t from a float64 value v and an enclosure [lo, hi] of the exact
/// results, widened by `ulps` units of roundoff of t (relative, plus as many denormals) and
/// rounded outward to t. NaN is kept only where value and both ends are NaN.
inline elem make_float(dtype t, double v, double lo, double hi, double ulps, double denormals = -1) {
  if (denormals < 0) denormals = ulps;
  const bool nv = std::isnan(v), nl = std::isnan(lo), nh = std::isnan(hi);
  if (nv || nl || nh) {
    if (nv && nl && nh) {
      elem r;
      r.v = r.lo = r.hi = std::numeric_limits<double>::quiet_NaN();
      return r;
    }
    return any_elem();
  }
  if (lo > hi) std::swap(lo, hi);
  lo = std::min(lo, v);
  hi = std::max(hi, v);
  if (ulps > 0) {
    const double u = ulps * eps_of(t), d = denormals * tiny_of(t);
    if (std::isfinite(lo)) lo -= u * std::fabs(lo) + d;
    if (std::isfinite(hi)) hi += u * std::fabs(hi) + d;
  }
  elem r;
  r.v = round_to(t, v);
  r.lo = round_down(t, lo);
  r.hi = round_up(t, hi);
  r.lo = std::min(r.lo, r.v);
  r.hi = std::max(r.hi, r.v);
  return r;
}
/// An exact floating element.
inline elem exact_float(dtype t, double v) { return make_float(t, v, v, v, 0); }

/// Wraps an integer to the width of dtype t (two's complement), bool to 0 or 1.
inline std::int64_t wrap_to(dtype t, std::uint64_t u) {
  if (t == dtype::bool_) return u != 0;
  if (t == dtype::int32) {
    const std::uint32_t w = static_cast<std::uint32_t>(u);
    return w >= 0x80000000u ? std::int64_t(w) - std::int64_t(0x100000000) : std::int64_t(w);
  }
  std::int64_t s;
  std::memcpy(&s, &u, sizeof s);
  return s;
}
inline elem exact_int(dtype t, std::int64_t i) {
  elem r;
  r.i = wrap_to(t, static_cast<std::uint64_t>(i));
  r.v = r.lo = r.hi = double(r.i);
  return r;
}

// =============================================================================================
// Conversions (docs/semantics.md, "Conversions")
// =============================================================================================

/// Floating to integer: truncation toward zero, saturating, NaN gives 0.
inline std::int64_t float_to_int(dtype to, double x) {
  if (std::isnan(x)) return 0;
  const double lo = to == dtype::int32 ? -2147483648.0 : -9223372036854775808.0;
  const double hi = to == dtype::int32 ? 2147483648.0 : 9223372036854775808.0;  // first value out of range
  if (x <= lo) return to == dtype::int32 ? INT32_MIN : INT64_MIN;
  if (x >= hi) return to == dtype::int32 ? INT32_MAX : INT64_MAX;
  return static_cast<std::int64_t>(std::trunc(x));
}

/// An element of dtype `from` converted to dtype `to`.
inline elem convert(const elem& a, dtype from, dtype to) {
  if (a.any) return any_elem();
  if (from == to) return a;
  if (!is_float(from)) {  // integer or bool source: exact
    if (is_float(to)) {
      // one rounding from the exact integer (an int64 may not fit a double exactly)
      const double v = to == dtype::float32 ? double(static_cast<float>(a.i)) : static_cast<double>(a.i);
      return exact_float(to, v);
    }
    return exact_int(to, to == dtype::bool_ ? (a.i != 0) : a.i);
  }
  if (is_float(to)) {  // float <-> double: monotone rounding
    elem r;
    r.v = round_to(to, a.v);
    r.lo = round_down(to, a.lo);
    r.hi = round_up(to, a.hi);
    if (std::isnan(a.v)) r.lo = r.hi = r.v;
    return r;
  }
  if (to == dtype::bool_) {  // x != 0; NaN is true
    if (std::isnan(a.v)) return exact_int(to, 1);
    if (a.lo > 0 || a.hi < 0) return exact_int(to, 1);
    if (a.lo == 0 && a.hi == 0) return exact_int(to, 0);
    return any_elem();
  }
  if (std::isnan(a.v)) return exact_int(to, 0);
  const std::int64_t l = float_to_int(to, a.lo), h = float_to_int(to, a.hi);
  if (l != h) return any_elem();
  return exact_int(to, l);
}

// =============================================================================================
// Elementwise operations (docs/semantics.md, "Floating point" and "Integers")
// =============================================================================================

enum class op_id {
  add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge, logical_and, logical_or, logical_not,
  neg, abs, floor, ceil, round, relu, exp, log, log1p, expm1, sqrt, rsqrt, sin, cos, tanh, sigmoid, erf,
  gelu, gelu_exact, where, clamp, cast, unknown
};

inline op_id op_from_name(std::string_view n) {
  static constexpr std::pair<std::string_view, op_id> table[] = {
      {"add", op_id::add},         {"sub", op_id::sub},
      {"mul", op_id::mul},         {"div", op_id::div},
      {"maximum", op_id::maximum}, {"minimum", op_id::minimum},
      {"pow", op_id::pow},         {"eq", op_id::eq},
      {"ne", op_id::ne},           {"lt", op_id::lt},
      {"le", op_id::le},           {"gt", op_id::gt},
      {"ge", op_id::ge},           {"logical_and", op_id::logical_and},
      {"logical_or", op_id::logical_or}, {"logical_not", op_id::logical_not},
      {"neg", op_id::neg},         {"abs", op_id::abs},
      {"floor", op_id::floor},     {"ceil", op_id::ceil},
      {"round", op_id::round},     {"relu", op_id::relu},
      {"exp", op_id::exp},         {"log", op_id::log},
      {"log1p", op_id::log1p},     {"expm1", op_id::expm1},
      {"sqrt", op_id::sqrt},       {"rsqrt", op_id::rsqrt},
      {"sin", op_id::sin},         {"cos", op_id::cos},
      {"tanh", op_id::tanh},       {"sigmoid", op_id::sigmoid},
      {"erf", op_id::erf},         {"gelu", op_id::gelu},
      {"gelu_exact", op_id::gelu_exact}, {"where", op_id::where},
      {"clamp", op_id::clamp},     {"cast", op_id::cast},
  };
  for (const auto& [name, id] : table)
    if (name == n) return id;
  return op_id::unknown;
}

namespace fn {
// The functions in float64, as their textbook definitions (the limits where the formula is 0 * inf).
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double gelu(double x) {
  // 0.5 x (1 + tanh(u)) == x / (1 + exp(-2u)) == x exp(2u) / (1 + exp(2u)): the first cancels for
  // x < 0, the second overflows there (exp(-2u) for u below about -355, where the value is still
  // about -5e-308: seed 4002 case 8516), the third does neither for u < 0.
  if (x == -std::numeric_limits<double>::infinity()) return -0.0;
  const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  const double e = std::exp(-2.0 * std::fabs(u));
  return u >= 0 ? x / (1.0 + e) : x * e / (1.0 + e);
}
inline double gelu_exact(double x) {
  if (x == -std::numeric_limits<double>::infinity()) return -0.0;
  return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
}
}  // namespace fn

/// Ulps (of dtype t) a correct implementation of a floating op may be off by at x:
/// the documented "few ulp" of the vectorised math (float tanh is within 6), and for gelu, pow
/// and erfc the condition number of the formula evaluated in t.
inline double ulps_of(op_id op, double x, double y = 0, dtype t = dtype::float32) {
  // Known deviation, reported to the lead: xsimd 8.1's double erfc is off by up to 6e-9
  // relative for large arguments, and loom's double gelu_exact uses it.
  if (op == op_id::gelu_exact && t == dtype::float64 && x < -1) return 1e-8 / eps_of(t);
  // Known deviation (long fuzz run, seed 3000): xsimd 8.1's double erf is off by up to 68 ulp
  // (near x = 2.2; measured over 640,000 arguments in [2^-30, 4]).
  if (op == op_id::erf && t == dtype::float64) return 96;
  switch (op) {
    case op_id::add: case op_id::sub: case op_id::mul: case op_id::div: case op_id::sqrt:
      return 1;
    case op_id::rsqrt:
      return 2;
    case op_id::exp: case op_id::log: case op_id::log1p: case op_id::expm1: case op_id::tanh: case op_id::erf:
    case op_id::sin: case op_id::cos:
      return 8;
    case op_id::sigmoid:
      return 12;
    case op_id::gelu: {
      // u = sqrt(2/pi) (x + 0.044715 x^3) carries a few roundings, which exp(-2u) multiplies by |2u|
      const double u = 0.7978845608028654 * (std::fabs(x) + 0.044715 * std::fabs(x) * x * x);
      return 12 + 8 * std::min(u, 1e6);
    }
    case op_id::gelu_exact:
      // erfc(z) amplifies the rounding of z = -x / sqrt 2 by about 2 z^2 = x^2
      return (t == dtype::float64 ? 32 : 12) + 2 * std::min(x * x, 1e6);
    case op_id::pow: {
      // exp(b log a): the rounding of b log a is multiplied by |b log a|
      const double c = std::fabs(y * std::log(std::fabs(x)));
      return 16 + 2 * (std::isfinite(c) ? std::min(c, 1e6) : 0.0);
    }
    default:
      return 0;
  }
}

/// Denormal units of absolute error allowed: sigmoid, gelu and gelu_exact are defined by formulas
/// (docs/semantics.md) whose exp / erfc underflows or overflows in t before the result leaves
/// the normal range, so results below the smallest normal number may come out as 0.
inline double formula_denormals(op_id op, dtype t, double ulps) {
  if (op == op_id::sigmoid || op == op_id::gelu || op == op_id::gelu_exact)
    return t == dtype::float32 ? 0x1p23 : 0x1p52;  // the smallest normal, in denormals
  return ulps;
}

/// f over [a.lo, a.hi] for a monotone f (increasing or decreasing).
template <class F>
elem monotone(dtype t, op_id op, const elem& a, F f) {
  if (a.any) return any_elem();
  const double v = f(a.v), l = f(a.lo), h = f(a.hi);
  const double u = std::max(ulps_of(op, a.lo, 0, t), ulps_of(op, a.hi, 0, t));
  if (std::isnan(v) && std::isnan(l) && std::isnan(h)) return make_float(t, v, v, v, 0);
  // an enclosure reaching outside the domain (log of [-tiny, tiny]): NaN or a number
  if (std::isnan(v) || std::isnan(l) || std::isnan(h)) return any_elem();
  return make_float(t, v, std::min(l, h), std::max(l, h), u, formula_denormals(op, t, u));
}

inline elem unary_float(dtype t, op_id op, const elem& a) {
  if (a.any) return any_elem();
  switch (op) {
    case op_id::exp: return monotone(t, op, a, [](double x) { return std::exp(x); });
    case op_id::log: return monotone(t, op, a, [](double x) { return std::log(x); });
    case op_id::log1p: return monotone(t, op, a, [](double x) { return std::log1p(x); });
    case op_id::expm1: return monotone(t, op, a, [](double x) { return std::expm1(x); });
    case op_id::sqrt: return monotone(t, op, a, [](double x) { return std::sqrt(x); });
    case op_id::rsqrt: return monotone(t, op, a, [](double x) { return 1.0 / std::sqrt(x); });
    case op_id::tanh: return monotone(t, op, a, [](double x) { return std::tanh(x); });
    case op_id::erf: return monotone(t, op, a, [](double x) { return std::erf(x); });
    case op_id::sigmoid: return monotone(t, op, a, fn::sigmoid);
    case op_id::sin:
    case op_id::cos: {
      // Not monotone: |f'| <= 1 bounds f over the enclosure around v.
      auto f = [op](double x) { return op == op_id::sin ? std::sin(x) : std::cos(x); };
      const double v = f(a.v);
      if (is_exact(a)) return make_float(t, v, v, v, std::isnan(v) ? 0 : ulps_of(op, a.v, 0, t));
      if (!std::isfinite(a.lo) || !std::isfinite(a.hi)) return any_elem();
      const double w = std::max(a.v - a.lo, a.hi - a.v);
      return make_float(t, v, std::max(-1.0, v - w), std::min(1.0, v + w), ulps_of(op, a.v, 0, t));
    }
    case op_id::gelu:
    case op_id::gelu_exact: {
      // Decreasing below about -0.7518, increasing above: the hull of the ends and, where the
      // enclosure holds the turning point, a bound below both functions' minimum (-0.17004).
      auto f = [op](double x) { return op == op_id::gelu ? fn::gelu(x) : fn::gelu_exact(x); };
      const double v = f(a.v), l = f(a.lo), h = f(a.hi);
      double lo = std::min(l, h), hi = std::max(l, h);
      if (a.lo < -0.74 && a.hi > -0.77) lo = std::min(lo, -0.170045);
      const double u = std::max(ulps_of(op, a.lo, 0, t), ulps_of(op, a.hi, 0, t));
      return make_float(t, v, lo, hi, u, formula_denormals(op, t, u));
    }
    default:
      throw std::logic_error("loom_ref: not a floating unary op");
  }
}

/// Integer pow: repeated multiplication, wrapping; negative exponents as docs/semantics.md says.
inline std::int64_t int_pow(dtype t, std::int64_t a, std::int64_t b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? (b % 2 != 0 ? -1 : 1) : 0;
  std::uint64_t result = 1, base = static_cast<std::uint64_t>(a);
  for (std::uint64_t e = static_cast<std::uint64_t>(b); e != 0; e >>= 1) {
    if (e & 1u) result = static_cast<std::uint64_t>(wrap_to(t, result * base));
    base = static_cast<std::uint64_t>(wrap_to(t, base * base));
  }
  return wrap_to(t, result);
}

/// Integer (and bool) arithmetic on exact values of dtype t.
inline elem int_binary(dtype t, op_id op, std::int64_t a, std::int64_t b) {
  const std::uint64_t ua = static_cast<std::uint64_t>(a), ub = static_cast<std::uint64_t>(b);
  switch (op) {
    case op_id::add: return exact_int(t, wrap_to(t, ua + ub));
    case op_id::sub: return exact_int(t, wrap_to(t, ua - ub));
    case op_id::mul: return exact_int(t, wrap_to(t, ua * ub));
    case op_id::div:
      if (b == 0) return exact_int(t, 0);
      if (b == -1) return exact_int(t, wrap_to(t, 0 - ua));  // INT_MIN / -1 == INT_MIN
      return exact_int(t, a / b);
    case op_id::maximum: return exact_int(t, std::max(a, b));
    case op_id::minimum: return exact_int(t, std::min(a, b));
    case op_id::pow: return exact_int(t, int_pow(t, a, b));
    default: throw std::logic_error("loom_ref: not an integer binary op");
  }
}

/// The hull of the four products or quotients of two enclosures; NaN ends make it `any`.
inline bool corners(double (*f)(double, double), const elem& a, const elem& b, double& lo, double& hi) {
  const double c[4] = {f(a.lo, b.lo), f(a.lo, b.hi), f(a.hi, b.lo), f(a.hi, b.hi)};
  lo = c[0];
  hi = c[0];
  for (double x : c) {
    if (std::isnan(x)) return false;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  return true;
}

/// True where v, the float64 result of a op b, is the exact real result and a value of dtype t:
/// then every correct implementation (fused multiply-adds included) gives exactly v.
inline bool exactly_rounded(dtype t, op_id op, double a, double b, double v) {
  if (!std::isfinite(v) || !std::isfinite(a) || !std::isfinite(b) || round_to(t, v) != v) return false;
  switch (op) {
    case op_id::add:
    case op_id::sub: {
      const double y = op == op_id::add ? b : -b;  // TwoSum: the rounding error of a + y
      const double bb = v - a;
      return (a - (v - bb)) + (y - bb) == 0;
    }
    case op_id::mul: return std::fma(a, b, -v) == 0;
    case op_id::div: return b != 0 && std::fma(v, b, -a) == 0;
    default: return false;
  }
}

inline elem float_binary(dtype t, op_id op, const elem& a, const elem& b) {
  if (a.any || b.any) {
    // NaN propagates through maximum and minimum whatever the other operand is.
    if ((op == op_id::maximum || op == op_id::minimum) &&
        ((!a.any && std::isnan(a.v)) || (!b.any && std::isnan(b.v))))
      return make_float(t, std::numeric_limits<double>::quiet_NaN(), NAN, NAN, 0);
    return any_elem();
  }
  const bool exact = is_exact(a) && is_exact(b);
  auto nan_or_any = [&](double v) {
    return exact && std::isnan(v) ? make_float(t, v, v, v, 0) : any_elem();
  };
  switch (op) {
    case op_id::add:
    case op_id::sub: {
      const double v = op == op_id::add ? a.v + b.v : a.v - b.v;
      const double lo = op == op_id::add ? a.lo + b.lo : a.lo - b.hi;
      const double hi = op == op_id::add ? a.hi + b.hi : a.hi - b.lo;
      if (std::isnan(v) || std::isnan(lo) || std::isnan(hi)) return nan_or_any(v);
      if (exact && exactly_rounded(t, op, a.v, b.v, v)) return exact_float(t, v);
      // a sum that lands among the denormals is exact: relative widening only
      return make_float(t, v, lo, hi, ulps_of(op, 0), 0);
    }
    case op_id::mul:
    case op_id::div: {
      const bool m = op == op_id::mul;
      const double v = m ? a.v * b.v : a.v / b.v;
      if (!m && b.lo <= 0 && b.hi >= 0) {
        if (b.lo == 0 && b.hi == 0 && (a.lo > 0 || a.hi < 0)) {
          // x / 0 is an infinity whose sign is known: x's times the zero's
          const bool neg = (a.lo < 0) != std::signbit(b.v);
          const double inf = neg ? -HUGE_VAL : HUGE_VAL;
          return make_float(t, inf, inf, inf, 0);
        }
        return exact ? (std::isnan(v) ? nan_or_any(v) : make_float(t, v, v, v, 0)) : any_elem();
      }
      double lo, hi;
      if (!corners(m ? +[](double x, double y) { return x * y; } : +[](double x, double y) { return x / y; }, a, b, lo,
                   hi) ||
          std::isnan(v))
        return nan_or_any(v);
      if (exact && exactly_rounded(t, op, a.v, b.v, v)) return exact_float(t, v);
      return make_float(t, v, lo, hi, ulps_of(op, 0));
    }
    case op_id::maximum:
    case op_id::minimum: {
      if (std::isnan(a.v) || std::isnan(b.v)) return make_float(t, NAN, NAN, NAN, 0);
      const bool mx = op == op_id::maximum;
      const double v = mx ? std::max(a.v, b.v) : std::min(a.v, b.v);
      const double lo = mx ? std::max(a.lo, b.lo) : std::min(a.lo, b.lo);
      const double hi = mx ? std::max(a.hi, b.hi) : std::min(a.hi, b.hi);
      return make_float(t, v, lo, hi, 0);
    }
    case op_id::pow: {
      const double v = std::pow(a.v, b.v);
      if (exact) return make_float(t, v, v, v, ulps_of(op, a.v, b.v, t));
      if (a.lo > 0 && std::isfinite(a.hi) && std::isfinite(b.lo) && std::isfinite(b.hi)) {
        double lo, hi;  // monotone in each argument for a positive base: the corners
        if (!corners(+[](double x, double y) { return std::pow(x, y); }, a, b, lo, hi) || std::isnan(v))
          return any_elem();
        const double u = std::max({ulps_of(op, a.lo, b.lo, t), ulps_of(op, a.lo, b.hi, t), ulps_of(op, a.hi, b.lo, t),
                                   ulps_of(op, a.hi, b.hi, t)});
        return make_float(t, v, lo, hi, u);
      }
      return any_elem();
    }
    default:
      throw std::logic_error("loom_ref: not a floating binary op");
  }
}

/// A comparison of two elements of compute dtype t: exact where the enclosures decide it.
inline elem compare(dtype t, op_id op, const elem& a, const elem& b) {
  if (a.any || b.any) return any_elem();
  if (!is_float(t)) {
    const std::int64_t x = a.i, y = b.i;
    bool r = false;
    switch (op) {
      case op_id::eq: r = x == y; break;
      case op_id::ne: r = x != y; break;
      case op_id::lt: r = x < y; break;
      case op_id::le: r = x <= y; break;
      case op_id::gt: r = x > y; break;
      case op_id::ge: r = x >= y; break;
      default: break;
    }
    return exact_int(dtype::bool_, r);
  }
  if (std::isnan(a.v) || std::isnan(b.v)) return exact_int(dtype::bool_, op == op_id::ne);
  // definitely: a < b when a.hi < b.lo; a > b when a.lo > b.hi; a == b when both are one point
  const bool lt_sure = a.hi < b.lo, gt_sure = a.lo > b.hi;
  const bool eq_sure = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
  const bool le_sure = a.hi <= b.lo, ge_sure = a.lo >= b.hi;
  auto decide = [](bool yes, bool no) { return yes ? exact_int(dtype::bool_, 1) : no ? exact_int(dtype::bool_, 0) : any_elem(); };
  switch (op) {
    case op_id::eq: return decide(eq_sure, lt_sure || gt_sure);
    case op_id::ne: return decide(lt_sure || gt_sure, eq_sure);
    case op_id::lt: return decide(lt_sure, ge_sure);
    case op_id::le: return decide(le_sure, gt_sure);
    case op_id::gt: return decide(gt_sure, le_sure);
    case op_id::ge: return decide(ge_sure, lt_sure);
    default: throw std::logic_error("loom_ref: not a comparison");
  }
}

/// floor, ceil, round (half to even), abs, neg, relu of an element of dtype t.
inline elem same_type_unary(dtype t, op_id op, const elem& a) {
  if (a.any) return any_elem();
  if (!is_float(t)) {
    const std::uint64_t u = static_cast<std::uint64_t>(a.i);
    switch (op) {
      case op_id::neg: return exact_int(t, wrap_to(t, 0 - u));
      case op_id::abs: return exact_int(t, a.i < 0 ? wrap_to(t, 0 - u) : a.i);  // abs(INT_MIN) == INT_MIN
      case op_id::relu: return exact_int(t, a.i > 0 ? a.i : 0);
      case op_id::floor: case op_id::ceil: case op_id::round: return a;
      default: throw std::logic_error("loom_ref: not a same-type op");
    }
  }
  if (std::isnan(a.v)) return make_float(t, a.v, a.v, a.v, 0);  // NaN stays NaN (relu too)
  auto mono = [&](auto f) { return make_float(t, f(a.v), f(a.lo), f(a.hi), 0); };
  switch (op) {
    case op_id::neg: return make_float(t, -a.v, -a.hi, -a.lo, 0);
    case op_id::abs: {
      const double lo = a.lo >= 0 ? a.lo : a.hi <= 0 ? -a.hi : 0.0;
      return make_float(t, std::fabs(a.v), lo, std::max(std::fabs(a.lo), std::fabs(a.hi)), 0);
    }
    case op_id::relu: return mono([](double x) { return x > 0 ? x : 0.0; });
    case op_id::floor: return mono([](double x) { return std::floor(x); });
    case op_id::ceil: return mono([](double x) { return std::ceil(x); });
    case op_id::round: {
      // half to even, written out rather than taken from the C library's current rounding mode
      auto half_even = [](double x) {
        if (!std::isfinite(x)) return x;
        const double f = std::floor(x), d = x - f;
        const double r = d > 0.5 ? f + 1 : d < 0.5 ? f : std::fmod(f, 2.0) == 0 ? f : f + 1;
        return std::copysign(r, x);  // round(-0.3) is -0.0
      };
      return mono(half_even);
    }
    default: throw std::logic_error("loom_ref: not a same-type op");
  }
}

/// Applies op to operands already converted to the compute dtype c (operand 0 of where: bool;
/// logical ops: bool). `result` is the node's value type.
inline elem apply_op(op_id op, dtype c, dtype result, const elem* x) {
  switch (op) {
    case op_id::add: case op_id::sub: case op_id::mul: case op_id::div: case op_id::maximum: case op_id::minimum:
    case op_id::pow:
      if (is_float(c)) return float_binary(c, op, x[0], x[1]);
      if (x[0].any || x[1].any) return any_elem();
      return int_binary(c, op, x[0].i, x[1].i);
    case op_id::eq: case op_id::ne: case op_id::lt: case op_id::le: case op_id::gt: case op_id::ge:
      return compare(c, op, x[0], x[1]);
    case op_id::logical_and:
      if ((!x[0].any && x[0].i == 0) || (!x[1].any && x[1].i == 0)) return exact_int(dtype::bool_, 0);
      if (x[0].any || x[1].any) return any_elem();
      return exact_int(dtype::bool_, 1);
    case op_id::logical_or:
      if ((!x[0].any && x[0].i != 0) || (!x[1].any && x[1].i != 0)) return exact_int(dtype::bool_, 1);
      if (x[0].any || x[1].any) return any_elem();
      return exact_int(dtype::bool_, 0);
    case op_id::logical_not:
      if (x[0].any) return any_elem();
      return exact_int(dtype::bool_, x[0].i == 0);
    case op_id::neg: case op_id::abs: case op_id::floor: case op_id::ceil: case op_id::round: case op_id::relu:
      return same_type_unary(c, op, x[0]);
    case op_id::exp: case op_id::log: case op_id::log1p: case op_id::expm1: case op_id::sqrt: case op_id::rsqrt:
    case op_id::sin: case op_id::cos: case op_id::tanh: case op_id::sigmoid: case op_id::erf: case op_id::gelu:
    case op_id::gelu_exact:
      return unary_float(c, op, x[0]);
    case op_id::where: {
      if (!x[0].any) return x[0].i != 0 ? x[1] : x[2];
      // Either branch may be taken: their hull (exact where both are the same number).
      const elem &a = x[1], &b = x[2];
      if (a.any || b.any) return any_elem();
      if (!is_float(c)) return a.i == b.i ? a : any_elem();
      if (std::isnan(a.v) || std::isnan(b.v)) return std::isnan(a.v) && std::isnan(b.v) ? a : any_elem();
      return make_float(c, a.v, std::min(a.lo, b.lo), std::max(a.hi, b.hi), 0);
    }
    case op_id::clamp: {
      // NumPy's clip: minimum(maximum(x, lo), hi)
      const elem m[2] = {x[0], x[1]};
      const elem mx = apply_op(op_id::maximum, c, c, m);
      const elem n[2] = {mx, x[2]};
      return apply_op(op_id::minimum, c, c, n);
    }
    case op_id::cast:
      return x[0];  // the conversion to the target happened on the way in
    default:
      break;
  }
  (void)result;
  throw std::logic_error("loom_ref: unknown op");
}

// =============================================================================================
// Shapes and indices
// =============================================================================================

/// Row-major strides of d (in elements).
inline std::array<std::int64_t, loom::max_rank> row_major(const dims& d) {
  std::array<std::int64_t, loom::max_rank> s{};
  std::int64_t acc = 1;
  for (std::size_t k = d.rank; k-- > 0;) {
    s[k] = acc;
    acc *= static_cast<std::int64_t>(d.e[k]);
  }
  return s;
}

/// Calls f(flat, index) for every index of d in row-major order.
template <class F>
void for_each_index(const dims& d, F&& f) {
  const std::size_t n = d.size();
  std::array<std::size_t, loom::max_rank> idx{};
  for (std::size_t flat = 0; flat < n; ++flat) {
    f(flat, idx);
    for (std::size_t k = d.rank; k-- > 0;) {
      if (++idx[k] < d.e[k]) break;
      idx[k] = 0;
    }
  }
}

/// NumPy's broadcast of two shapes, written out; throws where they do not broadcast.
inline dims broadcast(const dims& a, const dims& b) {
  dims r;
  r.rank = std::max(a.rank, b.rank);
  for (std::size_t k = 0; k < r.rank; ++k) {
    const std::size_t ea = k < r.rank - a.rank ? 1 : a.e[k - (r.rank - a.rank)];
    const std::size_t eb = k < r.rank - b.rank ? 1 : b.e[k - (r.rank - b.rank)];
    if (ea != eb && ea != 1 && eb != 1) throw std::logic_error("loom_ref: shapes do not broadcast");
    r.e[k] = ea == 1 ? eb : ea;
  }
  return r;
}

/// The flat index into an array of shape `from` of the element that broadcasting it to `to`
/// places at index idx of `to` (stride 0 on stretched and missing axes).
inline std::size_t broadcast_source(const dims& from, const dims& to, const std::array<std::size_t, loom::max_rank>& idx) {
  std::size_t flat = 0;
  const std::size_t off = to.rank - from.rank;
  for (std::size_t k = 0; k < from.rank; ++k) flat = flat * from.e[k] + (from.e[k] == 1 ? 0 : idx[k + off]);
  return flat;
}

/// `a` (dtype from) stretched to shape `to` and converted to dtype c.
inline std::vector<elem> stretch(const ref_array& a, const dims& to, dtype c) {
  std::vector<elem> out(to.size());
  const bool same = a.shape == to;
  for_each_index(to, [&](std::size_t flat, const auto& idx) {
    const elem& x = a.e[same ? flat : broadcast_source(a.shape, to, idx)];
    out[flat] = convert(x, a.type, c);
  });
  return out;
}

inline void check_shape(const dims& mine, const dims& loom_says, const char* what) {
  if (!(mine == loom_says))
    throw std::logic_error(std::string("loom_ref: the reference computes shape ") + loom::to_string(mine) + " for a " +
                           what + " node where loom says " + loom::to_string(loom_says));
}

// =============================================================================================
// Reductions (docs/semantics.md, "Reductions")
// =============================================================================================

enum class red_id { sum, prod, mean, max, min, argmax, argmin };

inline red_id red_from_name(std::string_view n) {
  if (n == "sum") return red_id::sum;
  if (n == "prod") return red_id::prod;
  if (n == "mean") return red_id::mean;
  if (n == "max") return red_id::max;
  if (n == "min") return red_id::min;
  if (n == "argmax") return red_id::argmax;
  if (n == "argmin") return red_id::argmin;
  throw std::logic_error("loom_ref: unknown reduction " + std::string(n));
}

/// The dtype of a reduction's result: sum/prod of bool and integers are int64, mean of bool and
/// integers is float64, arg reductions are int64, max/min keep the type.
inline dtype reduction_type(red_id r, dtype in) {
  switch (r) {
    case red_id::sum: case red_id::prod: return is_float(in) ? in : dtype::int64;
    case red_id::mean: return is_float(in) ? in : dtype::float64;
    case red_id::argmax: case red_id::argmin: return dtype::int64;
    default: return in;
  }
}

/// Depth bound of a float sum of n terms as loom adds them (blocked, several accumulators,
/// blocks combined pairwise; outer-axis sums fold every 32 rows, then every 1024): the rounding
/// error of any summation order with this depth is at most depth * u * sum |x_i|.
inline double sum_depth(std::size_t n) {
  if (n <= 1) return 0;
  return std::min(double(n), 192.0 + double(n) / 1024.0 + 2.0 * std::ceil(std::log2(double(n) + 1)));
}

/// Neumaier's compensated sum: the float64 reference of a sum is within an ulp of exact.
struct compensated_sum {
  double s = 0, c = 0;
  void add(double x) {
    const double t = s + x;
    if (std::fabs(s) >= std::fabs(x))
      c += (s - t) + x;
    else
      c += (x - t) + s;
    s = t;
  }
  double value() const { return std::isfinite(s) ? s + c : s; }
};

/// Reduces the elements xs (of dtype t) with r into one element of reduction_type(r, t).
inline elem reduce_elems(red_id r, dtype t, const std::vector<const elem*>& xs) {
  const dtype out = reduction_type(r, t);
  const std::size_t n = xs.size();
  if (!is_float(t)) {  // exact integer reductions
    for (const elem* x : xs)
      if (x->any) return any_elem();
    switch (r) {
      case red_id::sum: case red_id::mean: {
        std::uint64_t s = 0;
        for (const elem* x : xs) s += static_cast<std::uint64_t>(x->i);
        if (r == red_id::sum) return exact_int(out, wrap_to(dtype::int64, s));
        if (n == 0) return exact_float(out, std::numeric_limits<double>::quiet_NaN());
        const double v = double(wrap_to(dtype::int64, s)) / double(n);  // int64 sum, then a float64 mean
        return make_float(out, v, v, v, 2);
      }
      case red_id::prod: {
        std::uint64_t p = 1;
        for (const elem* x : xs) p *= static_cast<std::uint64_t>(x->i);
        return exact_int(out, wrap_to(dtype::int64, p));
      }
      case red_id::max: case red_id::min: {
        std::int64_t b = xs[0]->i;
        for (const elem* x : xs) b = r == red_id::max ? std::max(b, x->i) : std::min(b, x->i);
        return exact_int(out, b);
      }
      case red_id::argmax: case red_id::argmin: {
        std::size_t best = 0;
        for (std::size_t k = 1; k < n; ++k)
          if (r == red_id::argmax ? xs[k]->i > xs[best]->i : xs[k]->i < xs[best]->i) best = k;
        return exact_int(out, static_cast<std::int64_t>(best));
      }
    }
  }
  // floating
  bool any = false, nan = false;
  for (const elem* x : xs) {
    if (x->any) any = true;
    else if (std::isnan(x->v)) nan = true;
  }
  switch (r) {
    case red_id::max: case red_id::min: {
      if (nan) return make_float(out, NAN, NAN, NAN, 0);  // NaN anywhere wins
      if (any) return any_elem();
      const bool mx = r == red_id::max;
      double v = xs[0]->v, lo = xs[0]->lo, hi = xs[0]->hi;
      for (const elem* x : xs) {
        v = mx ? std::max(v, x->v) : std::min(v, x->v);
        lo = mx ? std::max(lo, x->lo) : std::min(lo, x->lo);
        hi = mx ? std::max(hi, x->hi) : std::min(hi, x->hi);
      }
      return make_float(out, v, lo, hi, 0);
    }
    case red_id::argmax: case red_id::argmin: {
      // The first NaN wins (where nothing before it could also be NaN).
      for (std::size_t k = 0; k < n; ++k) {
        if (xs[k]->any) return any_elem();
        if (std::isnan(xs[k]->v)) return exact_int(out, static_cast<std::int64_t>(k));
      }
      const bool mx = r == red_id::argmax;
      std::size_t w = 0;
      for (std::size_t k = 1; k < n; ++k)
        if (mx ? xs[k]->v > xs[w]->v : xs[k]->v < xs[w]->v) w = k;
      // The winner is certain only where no other element could beat it (earlier ones win ties).
      for (std::size_t k = 0; k < n; ++k) {
        if (k == w) continue;
        const bool beaten = mx ? (k < w ? xs[k]->hi >= xs[w]->lo : xs[k]->hi > xs[w]->lo)
                               : (k < w ? xs[k]->lo <= xs[w]->hi : xs[k]->lo < xs[w]->hi);
        if (beaten) return any_elem();
      }
      return exact_int(out, static_cast<std::int64_t>(w));
    }
    case red_id::sum: case red_id::mean: {
      if (nan) return make_float(out, NAN, NAN, NAN, 0);
      if (any) return any_elem();
      if (r == red_id::mean && n == 0) return make_float(out, NAN, NAN, NAN, 0);
      compensated_sum sv, sl, sh;
      double mag = 0;
      // +inf and -inf both certain: NaN; both possible: either, or a number
      bool pinf = false, ninf = false, pinf_may = false, ninf_may = false;
      for (const elem* x : xs) {
        sv.add(x->v);
        sl.add(x->lo);
        sh.add(x->hi);
        pinf = pinf || x->lo == HUGE_VAL;
        ninf = ninf || x->hi == -HUGE_VAL;
        pinf_may = pinf_may || x->hi == HUGE_VAL;
        ninf_may = ninf_may || x->lo == -HUGE_VAL;
        const double m = std::max(std::fabs(x->lo), std::fabs(x->hi));
        if (std::isfinite(m)) mag += m;
      }
      double v = sv.value(), lo = sl.value(), hi = sh.value();
      if (pinf && ninf) return make_float(out, NAN, NAN, NAN, 0);
      if (pinf_may && ninf_may) return any_elem();
      if (mag > max_of(t) * 0.5) return any_elem();  // a partial sum may overflow, depending on the order
      const double err = sum_depth(n) * eps_of(t) * mag + double(n) * tiny_of(t);  // (an ulp per step: 2x margin)
      if (std::isnan(v) || std::isnan(lo) || std::isnan(hi)) return any_elem();
      lo -= err;
      hi += err;
      if (r == red_id::mean) {
        // a sum in t, then one division by the count in t
        const double c = double(n);
        v = round_to(t, round_to(t, v) / c);
        lo /= c;
        hi /= c;
        return make_float(out, v, lo, hi, 2);
      }
      return make_float(out, v, lo, hi, 1);
    }
    case red_id::prod: {
      if (nan) return make_float(out, NAN, NAN, NAN, 0);
      if (any) return any_elem();
      double v = 1, lo = 1, hi = 1, big = 1;
      for (const elem* x : xs) {
        v *= x->v;
        const double c[4] = {lo * x->lo, lo * x->hi, hi * x->lo, hi * x->hi};
        double l = c[0], h = c[0];
        for (double y : c) {
          if (std::isnan(y)) {
            // An infinity and a zero among the exact inputs: NaN in every order. A product
            // that only overflows to inf (or underflows to 0) on the way gives NaN in some
            // orders and not in others.
            bool all_exact = true, inf = false, zero = false;
            for (const elem* z : xs) {
              all_exact = all_exact && is_exact(*z);
              inf = inf || std::isinf(z->v);
              zero = zero || z->v == 0;
            }
            if (all_exact && inf && zero) return make_float(out, NAN, NAN, NAN, 0);
            return any_elem();
          }
          l = std::min(l, y);
          h = std::max(h, y);
        }
        lo = l;
        hi = h;
        const double m = std::max(std::fabs(x->lo), std::fabs(x->hi));
        if (std::isfinite(m)) big *= std::max(1.0, m);
      }
      if (std::isnan(v)) return any_elem();
      if (big > max_of(t) * 0.5) {
        // order-dependent overflow, unless the exact inputs hold an infinity and no zero
        return any_elem();
      }
      // relative rounding of n products, plus denormal underflow scaled by later factors
      const double u = double(n) * eps_of(t), d = double(n) * tiny_of(t) * big;
      lo -= u * std::fabs(lo) + d;
      hi += u * std::fabs(hi) + d;
      return make_float(out, v, lo, hi, 1);
    }
  }
  return any_elem();
}

// =============================================================================================
// evaluate(): one overload per node kind
// =============================================================================================

// Every overload is declared before any is used: the operands are loom:: types, so argument
// dependent lookup would not find overloads of this namespace declared later.
template <class N>
ref_array evaluate(const N& n);
template <class A, bool B>
ref_array evaluate(const loom::leaf_node<A, B>& n);
template <class T>
ref_array evaluate(const loom::scalar_node<T>& n);
template <class Op, class C, class... Args>
ref_array evaluate(const loom::map_node<Op, C, Args...>& n);
#ifdef LOOM_REF_HAS_REDUCE
template <class Red, class Arg, unsigned Mask, bool Keep>
ref_array evaluate(const loom::reduce_node<Red, Arg, Mask, Keep>& n);
#endif
#ifdef LOOM_REF_HAS_INDEX_MAP
template <class Arg, std::size_t... P>
ref_array evaluate(const loom::permute_node<Arg, P...>& n);
template <class Arg, std::size_t A>
ref_array evaluate(const loom::slice_node<Arg, A>& n);
template <class Arg, std::size_t A>
ref_array evaluate(const loom::flip_node<Arg, A>& n);
template <class Arg, class S>
ref_array evaluate(const loom::broadcast_node<Arg, S>& n);
template <class Arg, class S>
ref_array evaluate(const loom::reshape_node<Arg, S>& n);
template <std::size_t A, class... Args>
ref_array evaluate(const loom::concat_node<A, Args...>& n);
template <class Arg, std::size_t A>
ref_array evaluate(const loom::pad_node<Arg, A>& n);
#endif
#ifdef LOOM_REF_HAS_GENERATOR
template <class T, class S>
ref_array evaluate(const loom::iota_node<T, S>& n);
template <class T, class S>
ref_array evaluate(const loom::full_node<T, S>& n);
#endif
#ifdef LOOM_REF_HAS_MATMUL
template <class A, class B>
ref_array evaluate(const loom::matmul_node<A, B>& n);
#endif

namespace detail {

template <class T>
elem from_value(T x) {
  if constexpr (std::is_floating_point_v<T>)
    return exact_float(loom::dtype_of<T>, static_cast<double>(x));
  else
    return exact_int(loom::dtype_of<T>, static_cast<std::int64_t>(x));
}

/// Reads an array (tensor or view, host memory) through its strides.
template <class A>
ref_array read_array(const A& a) {
  using T = typename A::value_type;
  ref_array r;
  r.shape = a.shape().to_dims();
  r.type = loom::dtype_of<T>;
  r.e.resize(r.shape.size());
  const auto st = a.strides();
  const auto* p = a.data();
  for_each_index(r.shape, [&](std::size_t flat, const auto& idx) {
    std::int64_t off = 0;
    for (std::size_t k = 0; k < r.shape.rank; ++k) off += static_cast<std::int64_t>(idx[k]) * st[k];
    r.e[flat] = from_value<T>(p[off]);
  });
  return r;
}

inline ref_array map_arrays(op_id op, dtype compute, dtype result, const std::vector<ref_array>& args) {
  ref_array r;
  r.type = result;
  r.shape = args.empty() ? dims{} : args[0].shape;
  for (const ref_array& a : args) r.shape = broadcast(r.shape, a.shape);
  std::vector<std::vector<elem>> xs;
  for (std::size_t k = 0; k < args.size(); ++k) {
    dtype c = compute;
    if (op == op_id::logical_and || op == op_id::logical_or || op == op_id::logical_not || (op == op_id::where && k == 0))
      c = dtype::bool_;
    xs.push_back(stretch(args[k], r.shape, c));
  }
  r.e.resize(r.shape.size());
  elem x[3];
  for (std::size_t i = 0; i < r.e.size(); ++i) {
    for (std::size_t k = 0; k < xs.size(); ++k) x[k] = xs[k][i];
    r.e[i] = apply_op(op, compute, result, x);
  }
  return r;
}

template <class... Args, std::size_t... I>
std::vector<ref_array> evaluate_all(const std::tuple<Args...>& t, std::index_sequence<I...>) {
  std::vector<ref_array> v;
  (v.push_back(evaluate(std::get<I>(t))), ...);
  return v;
}

#ifdef LOOM_REF_HAS_REDUCE
inline ref_array reduce_array(red_id red, const ref_array& a, unsigned mask, bool keep) {
  ref_array r;
  r.type = reduction_type(red, a.type);
  dims kept, reduced;  // the kept and reduced axes of a, in order
  for (std::size_t k = 0; k < a.shape.rank; ++k) {
    if ((mask >> k) & 1u) {
      reduced.e[reduced.rank++] = a.shape.e[k];
      if (keep) r.shape.e[r.shape.rank++] = 1;
    } else {
      kept.e[kept.rank++] = a.shape.e[k];
      r.shape.e[r.shape.rank++] = a.shape.e[k];
    }
  }
  const auto st = row_major(a.shape);
  r.e.resize(kept.size());
  std::vector<const elem*> row;
  for_each_index(kept, [&](std::size_t out, const auto& kidx) {
    row.clear();
    // the reduced elements of this output, in row-major order over the reduced axes
    for_each_index(reduced, [&](std::size_t, const auto& ridx) {
      std::int64_t off = 0;
      std::size_t ki = 0, ri = 0;
      for (std::size_t k = 0; k < a.shape.rank; ++k)
        off += st[k] * static_cast<std::int64_t>(((mask >> k) & 1u) ? ridx[ri++] : kidx[ki++]);
      row.push_back(&a.e[static_cast<std::size_t>(off)]);
    });
    if (row.empty() && (red == red_id::max || red == red_id::min || red == red_id::argmax || red == red_id::argmin))
      throw std::logic_error("loom_ref: an empty max/min/argmax/argmin reached the reference");
    r.e[out] = reduce_elems(red, a.type, row);
  });
  return r;
}
#endif

#ifdef LOOM_REF_HAS_INDEX_MAP
/// out[idx] = a[src(idx)] for an index map given as a function of the output index.
template <class F>
ref_array gather(const ref_array& a, const dims& out_shape, F src) {
  ref_array r;
  r.type = a.type;
  r.shape = out_shape;
  r.e.resize(out_shape.size());
  const auto st = row_major(a.shape);
  for_each_index(out_shape, [&](std::size_t flat, const auto& idx) {
    std::array<std::size_t, loom::max_rank> from{};
    src(idx, from);
    std::int64_t off = 0;
    for (std::size_t k = 0; k < a.shape.rank; ++k) off += st[k] * static_cast<std::int64_t>(from[k]);
    r.e[flat] = a.e[static_cast<std::size_t>(off)];
  });
  return r;
}
#endif

}  // namespace detail

// ---------------------------------------------------------------------------------- leaves
template <class A, bool B>
ref_array evaluate(const loom::leaf_node<A, B>& n) {
  static_assert(A::space != loom::memory_space::device, "loom_ref reads host arrays only");
  return detail::read_array(n.array());
}

template <class T>
ref_array evaluate(const loom::scalar_node<T>& n) {
  ref_array r;
  r.type = loom::dtype_of<T>;
  r.e.push_back(detail::from_value<T>(n.value));
  return r;
}

// ---------------------------------------------------------------------------------- elementwise
template <class Op, class C, class... Args>
ref_array evaluate(const loom::map_node<Op, C, Args...>& n) {
  const op_id op = op_from_name(Op::name);
  if (op == op_id::unknown) throw std::logic_error("loom_ref: no reference for op " + std::string(Op::name));
  std::vector<ref_array> args = detail::evaluate_all(n.args, std::index_sequence_for<Args...>{});
  ref_array r = detail::map_arrays(op, loom::dtype_of<C>, loom::dtype_of<typename loom::map_node<Op, C, Args...>::value_type>, args);
  check_shape(r.shape, n.shape().to_dims(), "map");
  return r;
}

// ---------------------------------------------------------------------------------- reductions
#ifdef LOOM_REF_HAS_REDUCE
template <class Red, class Arg, unsigned Mask, bool Keep>
ref_array evaluate(const loom::reduce_node<Red, Arg, Mask, Keep>& n) {
  ref_array a = evaluate(n.arg);
  ref_array r = detail::reduce_array(red_from_name(Red::name), a, Mask, Keep);
  check_shape(r.shape, n.shape().to_dims(), "reduce");
  if (r.type != loom::dtype_of<typename loom::reduce_node<Red, Arg, Mask, Keep>::value_type>)
    throw std::logic_error("loom_ref: reduction " + std::string(Red::name) + " gives " +
                           std::string(loom::dtype_name(r.type)) + " in the reference but " +
                           std::string(loom::dtype_name(loom::dtype_of<typename loom::reduce_node<Red, Arg, Mask, Keep>::value_type>)) +
                           " in loom");
  return r;
}
#endif

// ---------------------------------------------------------------------------------- index maps
#ifdef LOOM_REF_HAS_INDEX_MAP
template <class Arg, std::size_t... P>
ref_array evaluate(const loom::permute_node<Arg, P...>& n) {
  const ref_array a = evaluate(n.arg);
  constexpr std::size_t perm[] = {P...};
  dims out;
  out.rank = sizeof...(P);
  for (std::size_t j = 0; j < out.rank; ++j) out.e[j] = a.shape.e[perm[j]];
  check_shape(out, n.shape().to_dims(), "permute");
  return detail::gather(a, out, [&](const auto& idx, auto& from) {
    for (std::size_t j = 0; j < out.rank; ++j) from[perm[j]] = idx[j];  // result axis j is operand axis P[j]
  });
}

template <class Arg, std::size_t A>
ref_array evaluate(const loom::slice_node<Arg, A>& n) {
  const ref_array a = evaluate(n.arg);
  dims out = n.shape().to_dims();
  const std::int64_t begin = n.begin, step = n.step;
  // NumPy: positions begin, begin + step, ... inside [0, extent)
  if (out.e[A] > 0 && (begin < 0 || begin + (static_cast<std::int64_t>(out.e[A]) - 1) * step >=
                                        static_cast<std::int64_t>(a.shape.e[A])))
    throw std::logic_error("loom_ref: slice reaches outside its operand");
  return detail::gather(a, out, [&](const auto& idx, auto& from) {
    for (std::size_t k = 0; k < out.rank; ++k) from[k] = idx[k];
    from[A] = static_cast<std::size_t>(begin + static_cast<std::int64_t>(idx[A]) * step);
  });
}

template <class Arg, std::size_t A>
ref_array evaluate(const loom::flip_node<Arg, A>& n) {
  const ref_array a = evaluate(n.arg);
  check_shape(a.shape, n.shape().to_dims(), "flip");
  return detail::gather(a, a.shape, [&](const auto& idx, auto& from) {
    for (std::size_t k = 0; k < a.shape.rank; ++k) from[k] = idx[k];
    from[A] = a.shape.e[A] - 1 - idx[A];
  });
}

template <class Arg, class S>
ref_array evaluate(const loom::broadcast_node<Arg, S>& n) {
  const ref_array a = evaluate(n.arg);
  const dims out = n.shape().to_dims();
  if (!(broadcast(a.shape, out) == out)) throw std::logic_error("loom_ref: broadcast_to does not fit");
  ref_array r;
  r.type = a.type;
  r.shape = out;
  r.e = stretch(a, out, a.type);
  return r;
}

template <class Arg, class S>
ref_array evaluate(const loom::reshape_node<Arg, S>& n) {
  ref_array a = evaluate(n.arg);
  const dims out = n.shape().to_dims();
  if (out.size() != a.shape.size()) throw std::logic_error("loom_ref: reshape changes the size");
  a.shape = out;  // the same elements in row-major order
  return a;
}

template <std::size_t A, class... Args>
ref_array evaluate(const loom::concat_node<A, Args...>& n) {
  std::vector<ref_array> parts = detail::evaluate_all(n.args, std::index_sequence_for<Args...>{});
  const dtype t = loom::dtype_of<typename loom::concat_node<A, Args...>::value_type>;
  dims out = parts[0].shape;
  out.e[A] = 0;
  for (const ref_array& p : parts) out.e[A] += p.shape.e[A];
  check_shape(out, n.shape().to_dims(), "concat");
  ref_array r;
  r.type = t;
  r.shape = out;
  r.e.resize(out.size());
  for_each_index(out, [&](std::size_t flat, const auto& idx) {
    std::size_t pos = idx[A], which = 0;
    while (pos >= parts[which].shape.e[A]) pos -= parts[which++].shape.e[A];
    const ref_array& p = parts[which];
    std::size_t src = 0;
    for (std::size_t k = 0; k < out.rank; ++k) src = src * p.shape.e[k] + (k == A ? pos : idx[k]);
    r.e[flat] = convert(p.e[src], p.type, t);
  });
  return r;
}

template <class Arg, std::size_t A>
ref_array evaluate(const loom::pad_node<Arg, A>& n) {
  const ref_array a = evaluate(n.arg);
  const dims out = n.shape().to_dims();
  const elem fill = detail::from_value(n.value);
  ref_array r;
  r.type = a.type;
  r.shape = out;
  r.e.resize(out.size());
  const std::size_t before = static_cast<std::size_t>(n.before);
  for_each_index(out, [&](std::size_t flat, const auto& idx) {
    if (idx[A] < before || idx[A] >= before + a.shape.e[A]) {
      r.e[flat] = fill;
      return;
    }
    std::size_t src = 0;
    for (std::size_t k = 0; k < out.rank; ++k) src = src * a.shape.e[k] + (k == A ? idx[k] - before : idx[k]);
    r.e[flat] = a.e[src];
  });
  return r;
}
#endif

// ---------------------------------------------------------------------------------- generators
#ifdef LOOM_REF_HAS_GENERATOR
template <class T, class S>
ref_array evaluate(const loom::iota_node<T, S>& n) {
  ref_array r;
  r.type = loom::dtype_of<T>;
  r.shape = n.shape().to_dims();
  r.e.resize(r.shape.size());
  for (std::size_t k = 0; k < r.e.size(); ++k)
    r.e[k] = convert(exact_int(dtype::int64, static_cast<std::int64_t>(k)), dtype::int64, r.type);
  return r;
}

template <class T, class S>
ref_array evaluate(const loom::full_node<T, S>& n) {
  ref_array r;
  r.type = loom::dtype_of<T>;
  r.shape = n.shape().to_dims();
  r.e.assign(r.shape.size(), detail::from_value(n.value));
  return r;
}
#endif

// ---------------------------------------------------------------------------------- contractions
#ifdef LOOM_REF_HAS_MATMUL
/// One element of a product: sum over k of x[k] * y[k], both already of dtype t. Integers wrap
/// (two's complement, as elementwise * and +). Floating: the float64 sum of the exact products of
/// the enclosures, widened by a bound that holds for any order of K products and K additions
/// (with or without FMA, blocked or not): (K + 2) units of roundoff of sum |x y|, plus K
/// denormals; an overflow that may depend on the order, or an infinity of either sign that may
/// meet the other, gives no constraint.
inline elem dot_elems(dtype t, const std::vector<const elem*>& xs, const std::vector<const elem*>& ys) {
  const std::size_t n = xs.size();
  if (!is_float(t)) {
    std::uint64_t s = 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (xs[k]->any || ys[k]->any) return any_elem();
      s += static_cast<std::uint64_t>(xs[k]->i) * static_cast<std::uint64_t>(ys[k]->i);
    }
    return exact_int(t, wrap_to(t, s));
  }
  bool any = false;
  for (std::size_t k = 0; k < n; ++k) {
    if (xs[k]->any || ys[k]->any) any = true;
    else if (std::isnan(xs[k]->v) || std::isnan(ys[k]->v)) return make_float(t, NAN, NAN, NAN, 0);  // NaN in every order
  }
  if (any) return any_elem();
  compensated_sum sv, sl, sh;
  double mag = 0;
  bool pinf = false, ninf = false, pinf_may = false, ninf_may = false;
  for (std::size_t k = 0; k < n; ++k) {
    const elem& x = *xs[k];
    const elem& y = *ys[k];
    const double c[4] = {x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi};
    double lo = c[0], hi = c[0];
    for (double z : c) {
      if (std::isnan(z)) {  // 0 * inf: NaN where both are exact, else open
        if (is_exact(x) && is_exact(y)) return make_float(t, NAN, NAN, NAN, 0);
        return any_elem();
      }
      lo = std::min(lo, z);
      hi = std::max(hi, z);
    }
    // A product of finite factors that overflows here may stay finite in loom (an FMA adds it
    // unrounded): its infinity is not certain, and the order decides whether it meets another.
    if (std::isfinite(x.lo) && std::isfinite(x.hi) && std::isfinite(y.lo) && std::isfinite(y.hi) &&
        !(std::isfinite(lo) && std::isfinite(hi)))
      return any_elem();
    sv.add(x.v * y.v);
    sl.add(lo);
    sh.add(hi);
    pinf = pinf || lo == HUGE_VAL;
    ninf = ninf || hi == -HUGE_VAL;
    pinf_may = pinf_may || hi == HUGE_VAL;
    ninf_may = ninf_may || lo == -HUGE_VAL;
    const double m = std::max(std::fabs(lo), std::fabs(hi));
    if (std::isfinite(m)) mag += m;
  }
  if (pinf && ninf) return make_float(t, NAN, NAN, NAN, 0);
  if (pinf_may && ninf_may) return any_elem();
  if (mag > max_of(t) * 0.5) return any_elem();
  double v = sv.value(), lo = sl.value(), hi = sh.value();
  if (std::isnan(v) || std::isnan(lo) || std::isnan(hi)) return any_elem();
  const double err = (double(n) + 2) * eps_of(t) * mag + double(n + 1) * tiny_of(t);
  return make_float(t, v, lo - err, hi + err, 1);
}

template <class A, class B>
ref_array evaluate(const loom::matmul_node<A, B>& n) {
  using P = typename loom::matmul_node<A, B>::value_type;
  const dtype t = loom::dtype_of<P>;
  const ref_array a = evaluate(n.a), b = evaluate(n.b);
  const dims out = n.shape().to_dims();
  const std::size_t ra = a.shape.rank, rb = b.shape.rank, ro = out.rank;
  if (ra < 2 || rb < 2 || ro < 2) throw std::logic_error("loom_ref: matmul operands of rank < 2 reached the node");
  const std::size_t K = a.shape.e[ra - 1];
  if (b.shape.e[rb - 2] != K) throw std::logic_error("loom_ref: matmul inner extents differ");
  if (out.e[ro - 2] != a.shape.e[ra - 2] || out.e[ro - 1] != b.shape.e[rb - 1])
    throw std::logic_error("loom_ref: matmul result shape");
  // operands converted to the product's type once
  std::vector<elem> ca(a.e.size()), cb(b.e.size());
  for (std::size_t k = 0; k < ca.size(); ++k) ca[k] = convert(a.e[k], a.type, t);
  for (std::size_t k = 0; k < cb.size(); ++k) cb[k] = convert(b.e[k], b.type, t);
  const auto sa = row_major(a.shape), sb = row_major(b.shape);
  // a batch axis of an operand lines up with the result's from the right; extent 1 repeats
  auto base = [&](const dims& s, const std::array<std::int64_t, loom::max_rank>& st, const auto& idx) {
    std::int64_t off = 0;
    const std::size_t rs = s.rank;
    for (std::size_t k = 0; k + 2 < rs; ++k) {
      const std::size_t j = (ro - 2) - (rs - 2) + k;
      if (s.e[k] != 1 && s.e[k] != out.e[j]) throw std::logic_error("loom_ref: matmul batch axes do not broadcast");
      off += st[k] * static_cast<std::int64_t>(s.e[k] == 1 ? 0 : idx[j]);
    }
    return off;
  };
  ref_array r;
  r.type = t;
  r.shape = out;
  r.e.resize(out.size());
  std::vector<const elem*> xs(K), ys(K);
  for_each_index(out, [&](std::size_t flat, const auto& idx) {
    const std::int64_t i = static_cast<std::int64_t>(idx[ro - 2]), j = static_cast<std::int64_t>(idx[ro - 1]);
    const std::int64_t oa = base(a.shape, sa, idx) + i * sa[ra - 2], ob = base(b.shape, sb, idx) + j * sb[rb - 1];
    for (std::size_t k = 0; k < K; ++k) {
      xs[k] = &ca[static_cast<std::size_t>(oa + static_cast<std::int64_t>(k) * sa[ra - 1])];
      ys[k] = &cb[static_cast<std::size_t>(ob + static_cast<std::int64_t>(k) * sb[rb - 2])];
    }
    r.e[flat] = dot_elems(t, xs, ys);
  });
  return r;
}
#endif

// ---------------------------------------------------------------------------------- anything
/// The reference of an expression: a tensor or view (read through its strides) or a node.
template <class N>
ref_array evaluate(const N& n) {
  if constexpr (loom::array_like<N>) {
    return detail::read_array(n);
  } else {
    static_assert(!std::is_same_v<N, N>, "loom_ref: no reference evaluator for this node kind");
    return {};
  }
}

/// `a` converted to dtype `to` and stretched to shape `to_shape` (what assigning it does).
inline ref_array assigned(const ref_array& a, const dims& to_shape, dtype to) {
  ref_array r;
  r.type = to;
  r.shape = to_shape;
  r.e = stretch(a, to_shape, to);
  return r;
}

}  // namespace loom_ref
