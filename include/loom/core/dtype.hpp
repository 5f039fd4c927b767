// loom/core/dtype.hpp: element types and their promotion.
//
// loom's element types are bool, int32_t, int64_t, float and double. Two tensors promote as
// NumPy's result_type does (int32 with float gives double). A C++ scalar is "weak", as a Python
// scalar is in NumPy 2: it takes the tensor's type unless it is of a higher kind
// (bool < integer < floating); a floating scalar with an integer tensor gives float.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace loom {

/// The element types loom computes with, as a run-time value (for explain() and codegen).
enum class dtype : unsigned char { bool_, int32, int64, float32, float64 };

template <class T>
inline constexpr bool is_dtype_v = std::is_same_v<T, bool> || std::is_same_v<T, std::int32_t> ||
                                   std::is_same_v<T, std::int64_t> || std::is_same_v<T, float> ||
                                   std::is_same_v<T, double>;

/// An element type loom supports.
template <class T>
concept element_type = is_dtype_v<T>;

/// A C++ arithmetic value that can appear as a scalar operand (`2.f * x`, `x > 0`).
template <class T>
concept scalar_type = std::is_arithmetic_v<std::remove_cvref_t<T>>;

template <element_type T>
inline constexpr dtype dtype_of = std::is_same_v<T, bool>           ? dtype::bool_
                                  : std::is_same_v<T, std::int32_t> ? dtype::int32
                                  : std::is_same_v<T, std::int64_t> ? dtype::int64
                                  : std::is_same_v<T, float>        ? dtype::float32
                                                                    : dtype::float64;

/// NumPy's spelling of a dtype: "bool", "int32", "int64", "float32", "float64".
constexpr std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::bool_: return "bool";
    case dtype::int32: return "int32";
    case dtype::int64: return "int64";
    case dtype::float32: return "float32";
    case dtype::float64: return "float64";
  }
  return "?";
}

/// The C spelling of a dtype, as generated kernels write it.
constexpr std::string_view dtype_c_name(dtype t) {
  switch (t) {
    case dtype::bool_: return "bool";
    case dtype::int32: return "int";
    case dtype::int64: return "long long";
    case dtype::float32: return "float";
    case dtype::float64: return "double";
  }
  return "?";
}

namespace detail {
constexpr int kind_of(dtype t) { return t == dtype::bool_ ? 0 : (t == dtype::int32 || t == dtype::int64) ? 1 : 2; }
}  // namespace detail

/// NumPy's result_type for two tensors: promote(int32, float32) is float64.
constexpr dtype promote(dtype a, dtype b) {
  if (a == b) return a;
  if (a == dtype::bool_) return b;
  if (b == dtype::bool_) return a;
  int ka = detail::kind_of(a), kb = detail::kind_of(b);
  if (ka == 1 && kb == 1) return dtype::int64;
  return dtype::float64;  // float32 with float64, or an integer with a floating type
}

/// A tensor of type t with a (weak) C++ scalar of type s: the tensor's type unless the scalar
/// is of a higher kind; a floating scalar with an integer or bool tensor gives float32.
constexpr dtype promote_scalar(dtype t, dtype s) {
  if (detail::kind_of(s) <= detail::kind_of(t)) return t;
  return detail::kind_of(s) == 2 ? dtype::float32 : s;
}

/// The floating type a math function computes in: float32 and float64 stay, integers give
/// float64 (as NumPy), bool gives float32.
constexpr dtype float_of(dtype t) {
  if (t == dtype::float32 || t == dtype::float64) return t;
  return t == dtype::bool_ ? dtype::float32 : dtype::float64;
}

namespace detail {
template <dtype D>
struct type_of_impl;
template <>
struct type_of_impl<dtype::bool_> {
  using type = bool;
};
template <>
struct type_of_impl<dtype::int32> {
  using type = std::int32_t;
};
template <>
struct type_of_impl<dtype::int64> {
  using type = std::int64_t;
};
template <>
struct type_of_impl<dtype::float32> {
  using type = float;
};
template <>
struct type_of_impl<dtype::float64> {
  using type = double;
};

// Maps any C++ arithmetic type to the loom dtype a scalar of it stands for.
template <class S>
constexpr dtype scalar_dtype() {
  if constexpr (std::is_same_v<S, bool>)
    return dtype::bool_;
  else if constexpr (std::is_floating_point_v<S>)
    return sizeof(S) <= 4 ? dtype::float32 : dtype::float64;
  else
    return sizeof(S) <= 4 ? dtype::int32 : dtype::int64;
}
}  // namespace detail

/// The C++ type of a dtype: type_of<dtype::float32> is float.
template <dtype D>
using type_of = typename detail::type_of_impl<D>::type;

/// The element type of an operation between two tensors of types A and B (NumPy's result_type).
/// promote_t<int32_t, float> is double; promote_t<bool, float> is float.
template <element_type A, element_type B>
using promote_t = type_of<promote(dtype_of<A>, dtype_of<B>)>;

/// The element type of an operation between a tensor of type T and a C++ scalar of type S.
/// promote_scalar_t<float, double> is float; promote_scalar_t<int32_t, float> is float.
template <element_type T, scalar_type S>
using promote_scalar_t = type_of<promote_scalar(dtype_of<T>, detail::scalar_dtype<std::remove_cvref_t<S>>())>;

/// The floating type a math function (exp, sqrt, ...) of T computes in.
template <element_type T>
using float_of_t = type_of<float_of(dtype_of<T>)>;

}  // namespace loom
