// loom/expr/node.hpp: leaves and scalars, and turning operands into nodes.
//
// Nodes carry type and shape only; how a node is evaluated is each backend's business (cpu/,
// cuda/). A named tensor is held by reference, so an expression kept in `auto` sees the tensor's
// current data; a temporary tensor is moved into the node; views and subexpressions are held by
// value.
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"

namespace loom {

namespace detail {
constexpr memory_space join_space(memory_space a, memory_space b) {
  if (a == memory_space::any) return b;
  if (b == memory_space::any) return a;
  return a == b ? a : memory_space::any;  // mixed: caught by spaces_agree
}
constexpr bool spaces_agree(memory_space a, memory_space b) {
  return a == memory_space::any || b == memory_space::any || a == b;
}
template <class... Ns>
constexpr bool spaces_agree_all() {
  memory_space s = memory_space::any;
  bool ok = true;
  ((ok = ok && spaces_agree(s, Ns::space), s = join_space(s, Ns::space)), ...);
  return ok;
}
template <class... Ns>
constexpr memory_space join_spaces() {
  memory_space s = memory_space::any;
  ((s = join_space(s, Ns::space)), ...);
  return s;
}
}  // namespace detail

/// A leaf: an array (tensor or view) read by an expression. ByValue holds a copy (views, and
/// temporary tensors moved in); otherwise a pointer to the named array.
template <class A, bool ByValue>
struct leaf_node {
  static constexpr bool is_loom_node = true;
  using array_type = A;
  using value_type = typename A::value_type;
  using shape_type = typename A::shape_type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr memory_space space = A::space;

  std::conditional_t<ByValue, A, const A*> held;

  const A& array() const noexcept {
    if constexpr (ByValue)
      return held;
    else
      return *held;
  }
  decltype(auto) data() const noexcept { return array().data(); }
  shape_type shape() const { return array().shape(); }
  auto strides() const { return array().strides(); }
};

/// A constant, broadcast to any shape (rank 0).
template <element_type T>
struct scalar_node {
  static constexpr bool is_loom_node = true;
  using value_type = T;
  using shape_type = loom::shape<>;
  static constexpr std::size_t rank = 0;
  static constexpr memory_space space = memory_space::any;
  T value;
  shape_type shape() const { return {}; }
};

template <class T>
struct is_leaf : std::false_type {};
template <class A, bool B>
struct is_leaf<leaf_node<A, B>> : std::true_type {};
template <class T>
struct is_scalar_node : std::false_type {};
template <class T>
struct is_scalar_node<scalar_node<T>> : std::true_type {};

/// Turns an expression operand into a node: a node is copied or moved, a named tensor is
/// referenced, a temporary tensor is moved in, a view is copied.
template <class E>
  requires expression<E>
auto as_node(E&& e) {
  using D = std::remove_cvref_t<E>;
  if constexpr (node_like<D>) {
    return D(std::forward<E>(e));
  } else if constexpr (requires { typename D::layout_type; }) {  // a view: cheap to copy
    return leaf_node<D, true>{D(e)};
  } else if constexpr (std::is_lvalue_reference_v<E>) {  // a named tensor
    return leaf_node<D, false>{&e};
  } else {  // a temporary tensor: the node owns it
    return leaf_node<D, true>{D(std::move(e))};
  }
}

/// A scalar operand as a node of type T.
template <element_type T, class S>
  requires scalar_type<S>
scalar_node<T> as_scalar_node(S s) {
  return scalar_node<T>{static_cast<T>(s)};
}

template <class E>
using node_t = decltype(as_node(std::declval<E>()));

}  // namespace loom
