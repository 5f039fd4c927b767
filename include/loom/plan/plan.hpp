// loom/plan/plan.hpp: the fusion plan of an expression type, computed at compile time.
//
// plan_of<E> says how many kernels (loop nests) evaluating E takes and how many bytes of
// temporaries they need, so "this is one kernel" is a static_assert:
//   static_assert(plan_of<decltype(2.f * x + exp(-x))>::kernels == 1);
// The plan is backend-neutral: the CPU and CUDA backends both follow it. Expressions holding
// reductions are planned in plan/reduce_plan.hpp:
//   auto e = exp(x - max(x, axis<1>, keepdims));
//   static_assert(plan_of<decltype(e / sum(e, axis<1>, keepdims))>::kernels == 1);   // tiled
//   static_assert(plan_of<decltype(x / sum(x))>::kernels == 2);   // the full sum first, then x / it
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <type_traits>

#include "loom/expr/node.hpp"
#include "loom/expr/traits.hpp"
#include "loom/plan/reduce_plan.hpp"
#include "loom/tensor/view.hpp"

namespace loom {

/// What kind of loop nest evaluates a node at the root of an assignment.
enum class plan_kind {
  elementwise,  // one loop nest over the destination; every node fused
  reduction,    // the root is a reduction at its own shape: one pass over its fused operand
  tiled,        // reductions broadcast back: one pass over row tiles, reductions computed per tile
  staged,       // reductions computed first at their own (small) size, then one elementwise loop nest
};

/// The name of a plan kind, as explain() prints it.
constexpr const char* plan_kind_name(plan_kind k) {
  switch (k) {
    case plan_kind::elementwise: return "elementwise loop nest";
    case plan_kind::reduction: return "reduction, operand fused";
    case plan_kind::tiled: return "row tiles: reductions per tile, then the consumer";
    case plan_kind::staged: return "reductions first at their own size, then elementwise";
  }
  return "?";
}

namespace detail {
template <class E>
struct plan_node {
  using type = std::remove_cvref_t<decltype(as_node(std::declval<const E&>()))>;
};

template <class S>
constexpr std::size_t static_elements() {
  if constexpr (!S::is_static) {
    return 0;
  } else {
    std::size_t n = 1;
    for (std::size_t k = 0; k < S::rank; ++k) n *= S::static_extents[k];
    return n;
  }
}

/// True where reshaping N never needs a copy: contiguous arrays, generators, scalars, and
/// elementwise nodes of those without broadcasting.
template <class N>
struct reshape_free : std::false_type {};
template <class A>
struct reshape_free<leaf_node<A, false>> : std::true_type {};  // a named tensor
template <class T, class S>
struct reshape_free<leaf_node<tensor<T, S>, true>> : std::true_type {};
template <class T, class S>
struct reshape_free<leaf_node<tensor_view<T, S, contiguous_layout>, true>> : std::true_type {};
template <class T>
struct reshape_free<scalar_node<T>> : std::true_type {};
template <class T, class S>
struct reshape_free<iota_node<T, S>> : std::true_type {};
template <class T, class S>
struct reshape_free<full_node<T, S>> : std::true_type {};
template <class Arg, class S>
struct reshape_free<reshape_node<Arg, S>> : reshape_free<Arg> {};
template <class Op, class C, class... Args>
struct reshape_free<map_node<Op, C, Args...>>
    : std::bool_constant<((reshape_free<Args>::value &&
                           (Args::rank == 0 || (std::is_same_v<typename Args::shape_type,
                                                               typename map_node<Op, C, Args...>::shape_type> &&
                                                Args::shape_type::is_static))) &&
                          ...)> {};

/// Reshapes that may copy their operand: count, static bytes, and whether the bytes are bounded.
template <class N>
struct reshape_copies;
template <class List>
struct reshape_copies_list;
template <class... Ns>
struct reshape_copies_list<type_list<Ns...>> {
  static constexpr std::size_t count = (std::size_t(0) + ... + reshape_copies<Ns>::count);
  static constexpr std::size_t bytes = (std::size_t(0) + ... + reshape_copies<Ns>::bytes);
  static constexpr bool bounded = (true && ... && reshape_copies<Ns>::bounded);
};
template <class N>
struct reshape_copies {
  using below = reshape_copies_list<node_children_t<N>>;
  static constexpr bool copies = [] {
    if constexpr (requires { typename N::arg_type; }) {
      return std::is_same_v<N, reshape_node<typename N::arg_type, typename N::shape_type>> &&
             !reshape_free<typename N::arg_type>::value;
    } else {
      return false;
    }
  }();
  static constexpr std::size_t my_bytes = [] {
    if constexpr (copies)
      return static_elements<typename N::arg_type::shape_type>() * sizeof(typename N::value_type);
    else
      return std::size_t(0);
  }();
  static constexpr std::size_t count = below::count + (copies ? 1 : 0);
  static constexpr std::size_t bytes = below::bytes + my_bytes;
  static constexpr bool bounded = below::bounded && (!copies || N::shape_type::is_static);
};

template <class E>
struct plan_summary;
}  // namespace detail

/// The compile-time fusion plan of evaluating E (eval(E), or assigning E to a tensor of its shape).
///   kind         how it runs (plan_kind)
///   kernels      loop nests one evaluation runs (an upper bound: equal reductions found at run
///                time are computed once)
///   temp_bytes   bytes of temporaries: per-tile buffers (per thread, bounded by max_tile_rows
///                values per reduction) and reductions materialised at their own size
///   temp_bytes_bounded  false where a materialised size depends on run-time extents (temp_bytes
///                then counts its static part only)
///   fused_nodes  nodes fused into the kernels
template <class E>
struct plan_of {
  using node = typename detail::plan_node<E>::type;
  using summary = detail::plan_summary<node>;
  static constexpr plan_kind kind = summary::kind;
  /// Loop nests (kernels) one evaluation runs.
  static constexpr std::size_t kernels = summary::kernels;
  /// Bytes of temporaries those kernels need (per thread where they are per-thread buffers).
  static constexpr std::size_t temp_bytes = summary::temp_bytes;
  /// False where temp_bytes leaves out sizes known only at run time.
  static constexpr bool temp_bytes_bounded = summary::bounded;
  /// Reductions computed per tile (tiled plans), materialised first, and in all.
  static constexpr std::size_t tiled_reductions = summary::tiled, materialised_reductions = summary::materialised;
  /// Nodes fused into the kernels.
  static constexpr std::size_t fused_nodes = node_count_v<node>;
};

namespace detail {
template <class N>
struct plan_summary {
  using S = typename N::shape_type;
  static constexpr const reduce_plan_info& p = reduce_plan_v<N, S>;
  using occ = typename occurrences<N>::type;
  using reshapes = reshape_copies<N>;

  // What occurrence I (of type R) adds: {kernels, bytes, bounded, tiled}.
  template <class R, std::size_t I>
  static constexpr std::array<std::size_t, 4> part() {
    if constexpr (p.cls[I] == occurrence_class::materialised) {
      return {plan_of<R>::kernels,
              static_elements<typename R::shape_type>() * sizeof(typename R::value_type) + plan_of<R>::temp_bytes,
              (R::shape_type::is_static && plan_of<R>::temp_bytes_bounded) ? 1u : 0u, 0};
    } else if constexpr (p.cls[I] == occurrence_class::tiled) {
      return {0, max_tile_rows * sizeof(typename R::value_type), 1, 1};
    } else {
      return {0, 0, 1, 0};
    }
  }
  template <class... Rs, std::size_t... I>
  static constexpr std::array<std::size_t, 4> sum_up(type_list<Rs...>, std::index_sequence<I...>) {
    std::array<std::size_t, 4> r{0, 0, 1, 0};
    for (const auto& q : {part<Rs, I>()...}) {
      r[0] += q[0];
      r[1] += q[1];
      r[2] = r[2] && q[2];
      r[3] += q[3];
    }
    return r;
  }
  static constexpr std::array<std::size_t, 4> totals = [] {
    if constexpr (occ::size == 0)
      return std::array<std::size_t, 4>{0, 0, 1, 0};
    else
      return sum_up(occ{}, std::make_index_sequence<occ::size>{});
  }();
  // The root split over its reduced range (few outputs): a partial result per chunk and output.
  static constexpr std::size_t chunk_bytes = [] {
    if constexpr (is_reduce_node<N>::value) {
      using In = typename N::arg_type::shape_type;
      if constexpr (In::is_static) {
        const std::size_t K = static_elements<S>();
        const std::size_t red = K ? static_elements<In>() / K : 0;
        if (K < 16 && K * red >= (std::size_t(1) << 17) && totals[3] == 0) {
          const std::size_t L = (std::size_t(1) << 15);
          return (red + L - 1) / L * K * sizeof(typename N::acc_type) * (N::reducer::is_arg ? 2 : 1);
        }
      }
    }
    return std::size_t(0);
  }();
  static constexpr plan_kind kind = occ::size == 0 ? plan_kind::elementwise
                                    : p.root       ? plan_kind::reduction
                                    : p.tiled > 0  ? plan_kind::tiled
                                                   : plan_kind::staged;
  // A tiled consumer's row values (one value per row) and caches (a tile of values).
  using rewritten = std::conditional_t<kind == plan_kind::tiled, typename consumer_rewrite<N, reduce_plan_v<N, S>, 0, N>::type, N>;
  using counts = rewrite_counts<rewritten>;
  static constexpr std::size_t cols = [] {  // static extent of a row of the tile; 0 if dynamic
    std::size_t c = 1;
    for (std::size_t k = p.p; k < S::rank; ++k) {
      if (S::static_extents[k] == dyn) return std::size_t(0);
      c *= S::static_extents[k];
    }
    return c;
  }();
  static constexpr std::size_t cache_bytes = [] {
    if (counts::cached == 0 || cols == 0) return std::size_t(0);
    const std::size_t row = cols * sizeof(typename N::value_type);
    std::size_t rows = std::min(max_tile_rows, std::max<std::size_t>(1, tile_target_bytes / row));
    std::size_t all_rows = 1;  // a tile has no more rows than the space
    for (std::size_t k = 0; k < p.p; ++k) all_rows *= S::static_extents[k] == dyn ? max_tile_rows : S::static_extents[k];
    rows = std::min(rows, all_rows);
    return rows * cols * counts::row_bytes;  // row_bytes: the caches' value sizes, summed
  }();
  static constexpr std::size_t kernels = 1 + totals[0] + reshapes::count;
  static constexpr std::size_t temp_bytes =
      totals[1] + chunk_bytes + reshapes::bytes + counts::rows * max_tile_rows * counts::row_bytes + cache_bytes;
  static constexpr bool bounded = totals[2] != 0 && reshapes::bounded && (counts::cached == 0 || cols != 0);
  static constexpr std::size_t tiled = p.tiled, materialised = p.materialised;
};
}  // namespace detail

}  // namespace loom
