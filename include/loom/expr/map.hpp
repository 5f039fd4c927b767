// loom/expr/map.hpp: the elementwise node, and the type rules that build it.
//
// map_node<Op, Compute, Args...> applies Op to its operands broadcast together (NumPy rules).
// Every operand is converted to Compute before Op is applied; the node's value_type is Compute,
// or bool for comparisons and logic. Building a map_node checks the shapes: static extents that
// cannot broadcast stop compilation, run-time ones throw shape_error naming both shapes.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>

#include "loom/core/dtype.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"

namespace loom {

namespace detail {
template <class... Ss>
struct broadcast_all;
template <>
struct broadcast_all<> {
  using type = shape<>;
};
template <class S>
struct broadcast_all<S> {
  using type = S;
};
template <class A, class B, class... Rest>
struct broadcast_all<A, B, Rest...> {
  static_assert(check_broadcast_v<A, B>);
  using type = typename broadcast_all<broadcast_shape_t<A, B>, Rest...>::type;
};
}  // namespace detail

/// The static shape of broadcasting all of Ss together.
template <class... Ss>
using broadcast_all_t = typename detail::broadcast_all<Ss...>::type;

/// An elementwise operation over broadcast operands.
template <class Op, element_type Compute, class... Args>
struct map_node {
  static_assert(sizeof...(Args) == Op::arity);
  static constexpr bool is_loom_node = true;
  using op = Op;
  using compute_type = Compute;
  using value_type =
      std::conditional_t<Op::rule == type_rule::comparison || Op::rule == type_rule::logical, bool, Compute>;
  using shape_type = broadcast_all_t<typename Args::shape_type...>;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr memory_space space = detail::join_spaces<Args...>();

  std::tuple<Args...> args;
  shape_type shape_;

  explicit map_node(Args... a)
      : args(std::move(a)...), shape_(std::apply([](const auto&... x) { return compute_shape(x...); }, args)) {}
  map_node(std::tuple<Args...> a, shape_type s) : args(std::move(a)), shape_(s) {}

  shape_type shape() const { return shape_; }

 private:
  template <class... Ns>
  static shape_type compute_shape(const Ns&... ns) {
    if constexpr (shape_type::is_static) {
      return shape_type{};
    } else {
      dims d;
      ((d = broadcast_dims(d, ns.shape().to_dims())), ...);
      return shape_type::from_dims(d);
    }
  }
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// Type rules: which operands take part in promotion, and what the operation computes in
// ---------------------------------------------------------------------------------------------

template <class Op>
constexpr bool promoted_position(std::size_t i) {
  if constexpr (Op::rule == type_rule::logical || Op::rule == type_rule::convert)
    return false;
  else if constexpr (Op::rule == type_rule::select)
    return i > 0;
  else
    return true;
}

template <class X>
constexpr dtype operand_dtype() {
  using D = std::remove_cvref_t<X>;
  if constexpr (expression<D>)
    return dtype_of<typename D::value_type>;
  else
    return scalar_dtype<D>();
}

/// The type Op computes in for these operands (expressions are strong, C++ scalars weak).
template <class Op, class... X>
constexpr dtype compute_dtype() {
  constexpr std::size_t n = sizeof...(X);
  constexpr bool is_expr[] = {expression<X>...};
  constexpr dtype dt[] = {operand_dtype<X>()...};
  if constexpr (Op::rule == type_rule::logical) {
    return dtype::bool_;
  } else if constexpr (Op::rule == type_rule::convert) {
    return dtype_of<typename Op::target>;
  } else {
    bool have = false;
    dtype strong = dtype::bool_;
    for (std::size_t i = 0; i < n; ++i)
      if (promoted_position<Op>(i) && is_expr[i]) {
        strong = have ? promote(strong, dt[i]) : dt[i];
        have = true;
      }
    for (std::size_t i = 0; i < n; ++i)
      if (promoted_position<Op>(i) && !is_expr[i]) {
        strong = have ? promote_scalar(strong, dt[i]) : dt[i];
        have = true;
      }
    if (Op::rule == type_rule::floating) return float_of(strong);
    return strong;
  }
}

/// True where every promoted operand of an arithmetic operation is bool (NumPy rejects - and
/// unary - of bools; loom rejects all arithmetic on bools alone).
template <class Op, class... X>
constexpr bool bool_arithmetic() {
  if constexpr (Op::rule == type_rule::arithmetic || Op::name == std::string_view("neg"))
    return compute_dtype<Op, X...>() == dtype::bool_;
  else
    return false;
}

template <class Op, dtype Compute, std::size_t I, class X>
auto operand_node(X&& x) {
  if constexpr (expression<X>) {
    return as_node(std::forward<X>(x));
  } else if constexpr (promoted_position<Op>(I)) {
    return as_scalar_node<type_of<Compute>>(x);
  } else if constexpr (Op::rule == type_rule::convert) {
    return as_scalar_node<type_of<Compute>>(x);
  } else {
    return as_scalar_node<bool>(x);
  }
}

template <class Op, class... X, std::size_t... I>
auto make_map_impl(std::index_sequence<I...>, X&&... x) {
  constexpr dtype c = compute_dtype<Op, X...>();
  static_assert(!bool_arithmetic<Op, X...>(),
                "loom: arithmetic on bool operands alone is not defined; cast<int32_t>(...) them first");
  using node = map_node<Op, type_of<c>, decltype(operand_node<Op, c, I>(std::forward<X>(x)))...>;
  static_assert(spaces_agree_all<decltype(operand_node<Op, c, I>(std::forward<X>(x)))...>(),
                "loom: an expression cannot mix host tensors and device tensors");
  return node(operand_node<Op, c, I>(std::forward<X>(x))...);
}

/// Builds the map node of Op over operands (expressions or C++ scalars).
template <class Op, class... X>
auto make_map(X&&... x) {
  return make_map_impl<Op>(std::index_sequence_for<X...>{}, std::forward<X>(x)...);
}

}  // namespace detail
}  // namespace loom
