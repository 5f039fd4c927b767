// loom/cpu/traversal.hpp: what the CPU backend decides about an expression type at compile time.
//
// One traits struct per (expression, destination type): the lane class its packets use (or the
// scalar path), the relative cost of one element (which sets the threading threshold), and a
// description for explain().
#pragma once

#include <string>
#include <type_traits>

#include "loom/cpu/simd.hpp"
#include "loom/expr/traits.hpp"

namespace loom {
namespace cpu {

namespace detail {
template <class T>
constexpr unsigned lane_bits() {
  if constexpr (std::is_void_v<T> || std::is_same_v<T, bool>)
    return 0;
  else
    return sizeof(T) == 4 ? 1u : 2u;
}
template <class N, class = void>
struct compute_of {
  using type = void;
};
template <class N>
struct compute_of<N, std::void_t<typename N::compute_type>> {
  using type = typename N::compute_type;
};
template <class N>
struct node_lane_bits {
  static constexpr unsigned value =
      lane_bits<typename N::value_type>() | lane_bits<typename compute_of<N>::type>();
};
template <class N, class = void>
struct op_cost_of {
  static constexpr int value = 0;
};
template <class N>
struct op_cost_of<N, std::void_t<typename N::op>> {
  static constexpr int value = N::op::cost;
};
template <class List>
struct cost_list;
template <class... Ns>
struct cost_list<type_list<Ns...>> {
  static constexpr int value = (0 + ... + (op_cost_of<Ns>::value + cost_list<node_children_t<Ns>>::value));
};
}  // namespace detail

/// The CPU's compile-time view of assigning expression N into elements of type T.
template <class N, class T>
struct traversal {
  static constexpr unsigned bits = fold_nodes_or<detail::node_lane_bits, N>::value | detail::lane_bits<T>();
  /// The lane class: float (32-bit lanes), double (64-bit lanes), or void (scalar path).
  using lane_class = std::conditional_t<bits == 3u, void, std::conditional_t<bits == 2u, double, float>>;
  static constexpr bool vectorised = !std::is_void_v<lane_class>;
  static constexpr std::size_t width = vectorised ? lanes<std::conditional_t<vectorised, lane_class, float>> : 1;
  /// Relative cost of one element (1 per load/add, more for transcendental functions).
  static constexpr index_t cost = 1 + detail::cost_list<type_list<N>>::value;

  static std::string describe() {
    std::string s = vectorised ? std::to_string(width) + " lanes (" + simd_name() + ", " +
                                     (std::is_same_v<lane_class, float> ? "32" : "64") + "-bit lane class)"
                               : std::string("scalar (the expression mixes 32- and 64-bit types)");
    return s;
  }
};

}  // namespace cpu
}  // namespace loom
