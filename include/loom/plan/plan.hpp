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

#include "loom/expr/matmul.hpp"
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
  contraction,  // a GEMM: operands evaluated while packed, elementwise consumers applied to its tiles
};

/// The name of a plan kind, as explain() prints it.
constexpr const char* plan_kind_name(plan_kind k) {
  switch (k) {
    case plan_kind::elementwise: return "elementwise loop nest";
    case plan_kind::reduction: return "reduction, operand fused";
    case plan_kind::tiled: return "row tiles: reductions per tile, then the consumer";
    case plan_kind::staged: return "reductions first at their own size, then elementwise";
    case plan_kind::contraction: return "GEMM, operands evaluated while packed, consumers fused into the tile store";
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
template <class A, class B>  // a product is materialised row-major
struct reshape_free<matmul_node<A, B>> : std::true_type {};
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
template <class E>
struct matmul_summary;
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
  using summary = std::conditional_t<has_matmul_v<node>, detail::matmul_summary<node>, detail::plan_summary<node>>;
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
  static constexpr std::size_t fused_nodes = [] {
    if constexpr (requires { summary::fused; })
      return summary::fused;
    else
      return node_count_v<node>;
  }();
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
  // The root split over its reduced range (few outputs, or a column reduction): a partial result
  // per chunk and output (root_chunk_length). The layout is the operand's row-major one: the
  // reduction is a column reduction (outer) where the input's last axis of extent > 1 is kept.
  static constexpr std::size_t chunk_bytes = [] {
    if constexpr (is_reduce_node<N>::value) {
      using In = typename N::arg_type::shape_type;
      if constexpr (In::is_static) {
        const std::size_t K = static_elements<S>();
        const std::size_t red = K ? static_elements<In>() / K : 0;
        bool outer = false;
        for (std::size_t k = In::rank; k-- > 0;) {
          if (In::static_extents[k] == 1) continue;
          outer = ((N::mask >> k) & 1u) == 0;
          break;
        }
        const std::size_t L = root_chunk_length(K, red, outer);
        if (L > 0 && totals[3] == 0)
          return (red + L - 1) / L * K * sizeof(typename N::acc_type) * (N::reducer::is_arg ? 2 : 1);
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
    std::size_t rows = std::min(max_tile_rows, std::max<std::size_t>(1, tile_target_bytes / std::max<std::size_t>(row, 1)));
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

// ---------------------------------------------------------------------------------------------
// Contractions: a GEMM with its consumers fused into the tile store, or materialised
// ---------------------------------------------------------------------------------------------
//
// f(matmul(a, b), rest...) with f elementwise over the product's shape (rest free of matmuls
// and reductions) is one GEMM whose tile store applies f: one kernel. An operand free of
// matmuls and reductions is evaluated while it is packed (no temporary); any other operand is
// materialised first at its own size (its own plan). A matmul anywhere else (under a reduction,
// an index map, a broadcast, beside another matmul) is materialised at its own size first, and
// the rest of the expression reads it like a tensor.
namespace detail {

template <class N>
struct reduce_bit {
  static constexpr unsigned value = is_reduce_node<N>::value ? 1u : 0u;
};
/// True where an operand can be evaluated while the GEMM packs it.
template <class X>
inline constexpr bool packable_operand_v = !has_matmul_v<X> && fold_nodes_or<reduce_bit, X>::value == 0;

/// The kernels, temporary bytes and fused nodes of computing one product M (operands included).
template <class M>
struct product_plan {
  template <class X>
  static constexpr std::array<std::size_t, 4> operand() {  // kernels, bytes, bounded, fused nodes
    if constexpr (packable_operand_v<X>) {
      return {0, 0, 1, node_count_v<X>};
    } else {
      using P = plan_of<X>;
      return {P::kernels, static_elements<typename X::shape_type>() * sizeof(typename X::value_type) + P::temp_bytes,
              (X::shape_type::is_static && P::temp_bytes_bounded) ? 1u : 0u, 0};
    }
  }
  static constexpr auto a = operand<typename M::a_type>();
  static constexpr auto b = operand<typename M::b_type>();
  static constexpr std::size_t kernels = 1 + a[0] + b[0];
  static constexpr std::size_t temp_bytes = a[1] + b[1];
  static constexpr bool bounded = a[2] && b[2];
  static constexpr std::size_t fused = a[3] + b[3];
};

/// The matmul reached from N through elementwise nodes only, where N is a fusable epilogue of it:
/// ok, and the product type.
template <class N>
struct epilogue_of {
  static constexpr bool ok = false;
  using product = void;
};
template <class A, class B>
struct epilogue_of<matmul_node<A, B>> {
  static constexpr bool ok = true;
  using product = matmul_node<A, B>;
};
template <class Op, class C, class... Args>
struct epilogue_of<map_node<Op, C, Args...>> {
  using N = map_node<Op, C, Args...>;
  static constexpr std::size_t with = (std::size_t(0) + ... + (has_matmul_v<Args> ? 1u : 0u));
  static constexpr bool rest_ok = ((has_matmul_v<Args> || packable_operand_v<Args>) && ...);
  template <class X>
  using pick = std::conditional_t<has_matmul_v<X>, typename epilogue_of<X>::product, void>;
  template <class X, class Acc>
  using pick_one = std::conditional_t<std::is_void_v<Acc>, pick<X>, Acc>;
  template <class Acc, class... Xs>
  struct first;
  template <class Acc>
  struct first<Acc> {
    using type = Acc;
  };
  template <class Acc, class X, class... Xs>
  struct first<Acc, X, Xs...> {
    using type = typename first<pick_one<X, Acc>, Xs...>::type;
  };
  using product = typename first<void, Args...>::type;
  static constexpr bool path_ok = ((!has_matmul_v<Args> || epilogue_of<Args>::ok) && ...);
  static constexpr bool shape_ok = [] {
    if constexpr (std::is_void_v<product>) {
      return false;
    } else {
      using PS = typename product::shape_type;
      using S = typename N::shape_type;
      if (PS::rank != S::rank) return false;
      for (std::size_t k = 0; k < S::rank; ++k)
        if (!(PS::static_extents[k] == S::static_extents[k] || PS::static_extents[k] == dyn ||
              S::static_extents[k] == dyn))
          return false;
      return true;
    }
  }();
  static constexpr bool ok = with == 1 && rest_ok && path_ok && shape_ok;
};

/// True where N runs as one GEMM with N applied to its tiles.
template <class N>
inline constexpr bool fused_epilogue_v = epilogue_of<N>::ok;

/// The matmul nodes of N's tree (outside other matmuls' operands), in pre-order.
template <class N>
struct matmul_occurrences;
template <class List>
struct matmul_occurrences_list;
template <class... Ns>
struct matmul_occurrences_list<type_list<Ns...>> {
  using type = typename concat_lists<typename matmul_occurrences<Ns>::type...>::type;
};
template <class N>
struct matmul_occurrences {
  using type = std::conditional_t<is_matmul_node<N>::value, type_list<N>,
                                  typename matmul_occurrences_list<node_children_t<N>>::type>;
};

template <class N>
struct matmul_summary {
  template <class... Ms>
  static constexpr std::array<std::size_t, 4> sum(type_list<Ms...>) {  // kernels, bytes, bounded, fused
    std::array<std::size_t, 4> r{0, 0, 1, 0};
    ((r[0] += product_plan<Ms>::kernels,
      r[1] += product_plan<Ms>::temp_bytes +
              static_elements<typename Ms::shape_type>() * sizeof(typename Ms::value_type),
      r[2] = r[2] && product_plan<Ms>::bounded && Ms::shape_type::is_static, r[3] += product_plan<Ms>::fused),
     ...);
    return r;
  }
  static constexpr bool fused_root = fused_epilogue_v<N>;
  using rest = plan_summary<N>;  // the expression with its products read like tensors
  static constexpr std::array<std::size_t, 4> products = [] {
    if constexpr (fused_root) {
      using P = product_plan<typename epilogue_of<N>::product>;
      return std::array<std::size_t, 4>{P::kernels, P::temp_bytes, P::bounded ? 1u : 0u, P::fused};
    } else {
      return sum(typename matmul_occurrences<N>::type{});
    }
  }();
  static constexpr plan_kind kind = fused_root ? plan_kind::contraction : rest::kind;
  static constexpr std::size_t kernels = products[0] + (fused_root ? 0 : rest::kernels);
  static constexpr std::size_t temp_bytes = products[1] + (fused_root ? 0 : rest::temp_bytes);
  static constexpr bool bounded = products[2] != 0 && (fused_root || rest::bounded);
  static constexpr std::size_t tiled = fused_root ? 0 : rest::tiled;
  static constexpr std::size_t materialised = fused_root ? 0 : rest::materialised;
  static constexpr std::size_t fused = node_count_v<N> + products[3];
};

}  // namespace detail

}  // namespace loom
