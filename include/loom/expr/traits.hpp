// loom/expr/traits.hpp: walking expression types at compile time.
//
// node_children<N>::type lists a node's operand node types; every compile-time analysis
// (the fusion plan, lane classes, codegen) walks the tree through it. Node kinds added later
// specialise node_children next to their definition.
#pragma once

#include <cstddef>
#include <type_traits>

#include "loom/core/dtype.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"

namespace loom {

template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
};

/// The operand node types of a node (none for leaves and scalars).
template <class N>
struct node_children {
  using type = type_list<>;
};
template <class Op, class C, class... Args>
struct node_children<map_node<Op, C, Args...>> {
  using type = type_list<Args...>;
};

template <class N>
using node_children_t = typename node_children<N>::type;

namespace detail {
template <class List>
struct count_nodes_list;
template <class... Ns>
struct count_nodes_list<type_list<Ns...>> {
  static constexpr std::size_t value = (std::size_t(0) + ... + count_nodes_list<node_children_t<Ns>>::value) + sizeof...(Ns);
};
}  // namespace detail

/// The number of nodes in the tree of N (N included).
template <class N>
inline constexpr std::size_t node_count_v = detail::count_nodes_list<type_list<N>>::value;

/// Applies F<N>::value (a bitmask) to every node type and ORs the results.
template <template <class> class F, class N>
struct fold_nodes_or;
namespace detail {
template <template <class> class F, class List>
struct fold_nodes_or_list;
template <template <class> class F, class... Ns>
struct fold_nodes_or_list<F, type_list<Ns...>> {
  static constexpr unsigned value = (0u | ... | fold_nodes_or<F, Ns>::value);
};
}  // namespace detail
template <template <class> class F, class N>
struct fold_nodes_or {
  static constexpr unsigned value = F<N>::value | detail::fold_nodes_or_list<F, node_children_t<N>>::value;
};

}  // namespace loom
