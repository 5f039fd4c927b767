// loom/plan/plan.hpp: the fusion plan of an expression type, computed at compile time.
//
// plan_of<E> says how many kernels (loop nests) evaluating E takes and how many bytes of
// temporaries they need, so "this is one kernel" is a static_assert:
//   static_assert(plan_of<decltype(2.f * x + exp(-x))>::kernels == 1);
// The plan is backend-neutral: the CPU and CUDA backends both follow it.
#pragma once

#include <cstddef>
#include <type_traits>

#include "loom/expr/node.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

/// What kind of loop nest evaluates a node at the root of an assignment.
enum class plan_kind {
  elementwise,  // one loop nest over the destination; every node fused
};

namespace detail {
template <class E>
struct plan_node {
  using type = std::remove_cvref_t<decltype(as_node(std::declval<const E&>()))>;
};
}  // namespace detail

/// The compile-time fusion plan of evaluating E.
template <class E>
struct plan_of {
  using node = typename detail::plan_node<E>::type;
  static constexpr plan_kind kind = plan_kind::elementwise;
  /// Loop nests (kernels) one evaluation runs.
  static constexpr std::size_t kernels = 1;
  /// Bytes of temporaries those kernels need (per thread where they are per-thread buffers).
  static constexpr std::size_t temp_bytes = 0;
  /// Nodes fused into the kernels.
  static constexpr std::size_t fused_nodes = node_count_v<node>;
};

}  // namespace loom
