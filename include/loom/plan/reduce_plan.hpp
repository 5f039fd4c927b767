// loom/plan/reduce_plan.hpp: how an expression holding reductions is evaluated, at compile time.
//
// Every reduction node reached from the root (in pre-order) is an *occurrence*. The plan follows
// which axes of the iteration space (the destination's) each occurrence's result depends on,
// through broadcasting and the affine index maps, and classifies it:
//
//   tiled         its result depends on exactly the leading `p` axes of the space (the rows, axes of
//                 extent 1 aside) and it is reached through elementwise nodes and affine index
//                 maps only. The space is cut into tiles of rows; per tile, the tiled occurrences
//                 are computed in post-order into per-tile buffers of one value per row, and the
//                 consumer then runs over the tile reading them. The rows are read from memory once
//                 and re-read from cache. Softmax, layer norm, RMS norm and log-softmax are this.
//   materialised  anything else (a column reduction broadcast over rows, a full reduction, a
//                 reduction under reshape, concat or pad): computed first, on its own, into a
//                 tensor of its own (small) size, then read like a tensor.
//   root          the root itself, when it is a reduction written to a destination of its shape.
//
// Occurrences nested in a tiled (or root) occurrence's operand are tiled where they depend on the
// same rows and on none of the enclosing reduction's reduced axes; the others are materialised.
// Occurrences inside a materialised one belong to its own plan. The CPU backend follows this
// classification exactly; equal occurrences (same type, same operands, same binding) are found at
// run time and computed once.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>

#include "loom/core/shape.hpp"
#include "loom/expr/generator.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

/// How a reduction occurrence is evaluated (see the file comment).
enum class occurrence_class : unsigned char { ignored, tiled, materialised, root };

/// The most reduction occurrences one expression may hold (each reduction counts once per place
/// it appears, its nested reductions with it: a softmax of a layer norm already holds nine).
inline constexpr std::size_t max_occurrences = 128;

/// The largest number of rows (outputs) in one tile, which bounds every per-tile buffer.
inline constexpr std::size_t max_tile_rows = 1024;

/// How a root reduction of K outputs, each over `red` reduced elements, is split across threads:
/// the length of a chunk of its reduced range (threads over the chunks, a partial result per chunk
/// and output, merged in chunk order), or 0 where threads take blocks of outputs instead. The
/// chunks do not depend on the number of threads, so neither do the bits. `outer`: the reduced
/// axes lie outside the kept ones in memory (column sums of a row-major matrix).
/// * Few outputs (K < 16) over 2^17 elements or more: chunks of 2^15 elements in all.
/// * Column reductions of 16 outputs or more: chunks of rows, at least 32 (a level of the pairwise
///   summation) and about 1 MiB of float where the rows are under 4096 columns, 4 MiB above,
///   from 2^18 (resp. 2^22) elements and two chunks on. Splitting the columns instead gives each
///   thread a part of every row: on the Zen 3 of bench/RESULTS.md (2026-11-28), column sums of
///   2048 x 1024 floats at 2 threads took 0.36 ms that way against 0.10-0.13 for the
///   hand-written loop over rows, 3072 x 1024 1.1 ms against 0.19-0.28.
constexpr std::size_t root_chunk_length(std::size_t K, std::size_t red, bool outer) {
  if (K == 0 || red == 0) return 0;
  if (K < 16) {
    if (K * red < (std::size_t(1) << 17)) return 0;
    return outer ? std::max<std::size_t>(1, (std::size_t(1) << 15) / K) : (std::size_t(1) << 15);
  }
  if (!outer) return 0;
  const bool narrow = K < 4096;
  const std::size_t L = std::max<std::size_t>(32, (std::size_t(1) << (narrow ? 18 : 20)) / K);
  return K * red >= (std::size_t(1) << (narrow ? 18 : 22)) && red >= 2 * L ? L : 0;
}

/// Bytes of the destination one tile covers (its rows are re-read from L1 / L2 by every pass).
/// Two costs pull apart: each tile pays a fixed cost (each pass's call, its evaluator copy and
/// loop set-up, the row values' kernels: about 1100 instructions a tile in W4's layer norm), and a
/// large tile's first pass waits for memory that a small one finds already prefetched. Which
/// wins depends on how fast the arithmetic is, so the size follows the vector width:
/// * AVX-512 (the Zen 4 of bench/RESULTS.md, 2026-11-27): W3 softmax over 4096 x 1024 floats at
///   1 thread took 2.0 ms with 4 KiB tiles, 2.1-2.2 with 8, 2.7 with 24.
/// * Narrower vectors (the Zen 3, AVX2, of 2026-11-27, 23:00 UTC): the arithmetic is slower and
///   the fixed costs weigh more; with 32 KiB tiles W3 at 2 threads went from 0.81-0.93x the
///   hand-written kernel to 0.87-0.98x, W4 from 0.83-1.08x to 1.26-1.46x (16 KiB: between).
#if defined(__AVX512F__)
inline constexpr std::size_t tile_target_bytes = 4 * 1024;
#else
inline constexpr std::size_t tile_target_bytes = 32 * 1024;
#endif

namespace detail {

template <class T>
struct is_leaf_node : std::false_type {};
template <class A, bool V>
struct is_leaf_node<leaf_node<A, V>> : std::true_type {};
template <class T>
struct is_map_node : std::false_type {};
template <class Op, class C, class... A>
struct is_map_node<map_node<Op, C, A...>> : std::true_type {};

/// Bit 31 of a dependency mask: "some reduced axis of an enclosing reduction".
inline constexpr unsigned reduced_axis_bit = 1u << 31;

struct reduce_plan_info {
  std::size_t count = 0;
  std::array<unsigned, max_occurrences> mask{};  // iteration axes (and reduced_axis_bit) it depends on
  std::array<bool, max_occurrences> path_ok{};   // reached through elementwise and affine maps only
  std::array<int, max_occurrences> parent{};     // the enclosing occurrence, or -1
  std::array<occurrence_class, max_occurrences> cls{};
  std::size_t p = 0;        // tiles are blocks of the flattened axes [0, p)
  std::size_t it_rank = 0;  // the destination's rank
  unsigned nonone = 0;      // iteration axes whose extent may differ from 1
  bool root = false;        // the root is a reduction written to a destination of its own shape
  std::size_t tiled = 0, materialised = 0;
};

using dep_array = std::array<unsigned, max_rank>;

/// The dependencies of an operand of shape OS broadcast into a node of shape NS with `dep`.
template <class NS, class OS>
constexpr dep_array broadcast_dep(const dep_array& dep) {
  dep_array c{};
  constexpr std::size_t lead = NS::rank - OS::rank;
  for (std::size_t d = 0; d < OS::rank; ++d) {
    if (OS::static_extents[d] == 1 && NS::static_extents[d + lead] != 1) continue;
    c[d] = dep[d + lead];
  }
  return c;
}

// One walker per node kind: sym_node<N>::walk(st, dep, parent, path_ok). dep[d] is the mask of
// iteration axes node axis d moves with. Unknown node kinds are opaque: whatever is below them is
// materialised.
template <class N>
struct sym_node;

template <class N>
constexpr void sym_walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
  sym_node<N>::walk(st, dep, parent, path_ok);
}

template <class List>
struct sym_opaque;
template <class... Args>
struct sym_opaque<type_list<Args...>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, std::size_t rank,
                             [[maybe_unused]] int parent) {
    unsigned all = 0;
    for (std::size_t d = 0; d < rank; ++d) all |= dep[d];
    dep_array c{};
    c.fill(all);
    (sym_walk<Args>(st, c, parent, false), ...);
  }
};

template <class N>
struct sym_node {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool) {
    if constexpr (!(is_leaf<N>::value || is_scalar_node<N>::value || is_generator<N>::value))
      sym_opaque<node_children_t<N>>::walk(st, dep, N::rank, parent);
  }
};

template <class Op, class C, class... Args>
struct sym_node<map_node<Op, C, Args...>> {
  using S = typename map_node<Op, C, Args...>::shape_type;
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    (sym_walk<Args>(st, broadcast_dep<S, typename Args::shape_type>(dep), parent, path_ok), ...);
  }
};

template <class Red, class Arg, unsigned Mask, bool Keep>
struct sym_node<reduce_node<Red, Arg, Mask, Keep>> {
  using N = reduce_node<Red, Arg, Mask, Keep>;
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    if (st.count >= max_occurrences) return;  // reported by the plan's static_assert
    const std::size_t me = st.count++;
    unsigned m = 0;
    for (std::size_t d = 0; d < N::rank; ++d) m |= dep[d];
    st.mask[me] = m;
    st.path_ok[me] = path_ok;
    st.parent[me] = parent;
    using In = typename Arg::shape_type;
    dep_array c{};
    std::size_t o = 0;
    for (std::size_t d = 0; d < In::rank; ++d) {
      if ((Mask >> d) & 1u) {
        c[d] = reduced_axis_bit;
        if (Keep) ++o;
      } else {
        c[d] = dep[o++];
      }
    }
    sym_walk<Arg>(st, c, int(me), true);
  }
};

template <class Arg, std::size_t... P>
struct sym_node<permute_node<Arg, P...>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    constexpr std::size_t perm[] = {P...};
    dep_array c{};
    for (std::size_t j = 0; j < sizeof...(P); ++j) c[perm[j]] = dep[j];
    sym_walk<Arg>(st, c, parent, path_ok);
  }
};
template <class Arg, std::size_t A>
struct sym_node<slice_node<Arg, A>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    sym_walk<Arg>(st, dep, parent, path_ok);
  }
};
template <class Arg, std::size_t A>
struct sym_node<flip_node<Arg, A>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    sym_walk<Arg>(st, dep, parent, path_ok);
  }
};
template <class Arg, class S>
struct sym_node<broadcast_node<Arg, S>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool path_ok) {
    sym_walk<Arg>(st, broadcast_dep<S, typename Arg::shape_type>(dep), parent, path_ok);
  }
};
template <class Arg, std::size_t A>
struct sym_node<pad_node<Arg, A>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool) {
    sym_walk<Arg>(st, dep, parent, false);
  }
};
template <std::size_t A, class... Args>
struct sym_node<concat_node<A, Args...>> {
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, int parent, bool) {
    (sym_walk<Args>(st, dep, parent, false), ...);
  }
};

template <class... Ls>
struct concat_lists;
template <>
struct concat_lists<> {
  using type = type_list<>;
};
template <class... A>
struct concat_lists<type_list<A...>> {
  using type = type_list<A...>;
};
template <class... A, class... B, class... Rest>
struct concat_lists<type_list<A...>, type_list<B...>, Rest...> {
  using type = typename concat_lists<type_list<A..., B...>, Rest...>::type;
};

/// The reduction nodes of a tree in pre-order (the plan's occurrence order).
template <class N>
struct occurrences;
template <class List>
struct occurrences_of_list;
template <class... Ns>
struct occurrences_of_list<type_list<Ns...>> {
  using type = typename concat_lists<typename occurrences<Ns>::type...>::type;
};
template <class N>
struct occurrences {
  using type = typename concat_lists<std::conditional_t<is_reduce_node<N>::value, type_list<N>, type_list<>>,
                                     typename occurrences_of_list<node_children_t<N>>::type>::type;
};

/// The number of reduction occurrences in the tree of N.
template <class N>
inline constexpr std::size_t occurrence_count_v = occurrences<N>::type::size;

constexpr unsigned prefix_mask(std::size_t p) { return p >= 32 ? ~0u : (1u << p) - 1u; }
constexpr std::size_t high_bit_plus_one(unsigned m) {
  std::size_t p = 0;
  while (m) {
    ++p;
    m >>= 1;
  }
  return p;
}

/// The plan of assigning N into a destination of static shape DstShape.
template <class N, class DstShape>
constexpr reduce_plan_info make_reduce_plan() {
  static_assert(occurrence_count_v<N> <= max_occurrences,
                "loom: this expression holds more reduction occurrences than a plan tracks (max_occurrences, "
                "128); evaluate a part of it with eval() first");
  reduce_plan_info st;
  using ES = typename N::shape_type;
  st.it_rank = DstShape::rank;
  for (std::size_t k = 0; k < DstShape::rank; ++k)
    if (DstShape::static_extents[k] != 1) st.nonone |= 1u << k;
  dep_array root{};
  for (std::size_t k = 0; k < DstShape::rank; ++k) root[k] = 1u << k;
  sym_walk<N>(st, broadcast_dep<DstShape, ES>(root), -1, true);

  st.root = is_reduce_node<N>::value && ES::rank == DstShape::rank && [] {
    for (std::size_t k = 0; k < ES::rank; ++k)
      if (ES::static_extents[k] != DstShape::static_extents[k] && ES::static_extents[k] != dyn &&
          DstShape::static_extents[k] != dyn)
        return false;
    return true;
  }();
  for (std::size_t i = 0; i < st.count; ++i) st.mask[i] &= (st.nonone | reduced_axis_bit);

  // The tile prefix: the one most top-level occurrences depend on exactly.
  if (st.root) {
    st.p = st.it_rank;
  } else {
    std::array<std::size_t, max_rank + 1> votes{};
    for (std::size_t i = 0; i < st.count; ++i) {
      if (st.parent[i] != -1 || !st.path_ok[i]) continue;
      const unsigned m = st.mask[i];
      const std::size_t p = high_bit_plus_one(m);
      if (m != 0 && m == (prefix_mask(p) & st.nonone)) ++votes[p];
    }
    std::size_t best = 0;
    for (std::size_t p = 1; p <= max_rank; ++p)
      if (votes[p] > 0 && votes[p] >= votes[best]) best = p;
    st.p = votes[best] > 0 ? best : 0;
  }
  const unsigned rows = prefix_mask(st.p) & st.nonone;
  for (std::size_t i = 0; i < st.count; ++i) {
    const int par = st.parent[i];
    if (par == -1) {
      if (st.root)
        st.cls[i] = occurrence_class::root;
      else
        st.cls[i] = (st.p > 0 && st.path_ok[i] && st.mask[i] == rows) ? occurrence_class::tiled
                                                                        : occurrence_class::materialised;
    } else if (st.cls[par] == occurrence_class::tiled || st.cls[par] == occurrence_class::root) {
      st.cls[i] = (st.path_ok[i] && st.mask[i] == rows && rows != 0) ? occurrence_class::tiled
                                                                                 : occurrence_class::materialised;
    } else {
      st.cls[i] = occurrence_class::ignored;
    }
    if (st.cls[i] == occurrence_class::tiled) ++st.tiled;
    if (st.cls[i] == occurrence_class::materialised) ++st.materialised;
  }
  return st;
}

template <class N, class DstShape>
inline constexpr reduce_plan_info reduce_plan_v = make_reduce_plan<N, DstShape>();


// ---------------------------------------------------------------------------------------------
// The consumer of a tiled plan, rewritten
// ---------------------------------------------------------------------------------------------
//
// Two kinds of subexpressions of the consumer are worth computing differently:
//   row values   an elementwise subexpression of scalars and tiled reductions only (layer norm's
//                rsqrt(var + eps)): it is the same along a row, so it is computed once per row of
//                the tile (a slot without a reduction) and read like a reduction.
//   cached       the operand of a tiled reduction that the consumer computes again at the same
//                positions (softmax's e = exp(x - max)): the reduction keeps the values it computes
//                in a tile-sized cache, and the consumer reads them instead of computing them twice.
// The rewrite wraps them in row_value_node / cached_node; only elementwise nodes are descended.

/// A subexpression computed once per row of a tile.
template <class S>
struct row_value_node {
  static constexpr bool is_loom_node = true;
  using arg_type = S;
  using value_type = typename S::value_type;
  using shape_type = typename S::shape_type;
  static constexpr std::size_t rank = S::rank;
  static constexpr memory_space space = S::space;
  S arg;
  shape_type shape() const { return arg.shape(); }
};
/// A subexpression read from the cache its tiled reduction filled (computed in place otherwise).
template <class S>
struct cached_node {
  static constexpr bool is_loom_node = true;
  using arg_type = S;
  using value_type = typename S::value_type;
  using shape_type = typename S::shape_type;
  static constexpr std::size_t rank = S::rank;
  static constexpr memory_space space = S::space;
  S arg;
  shape_type shape() const { return arg.shape(); }
};

/// A tiled reduction's value read from its slot: the reduction itself is the one at `*ref` (the
/// walk finds its slot by that address), and the reader has no run-time choice to make between a
/// slot and a materialised tensor in its inner loop.
template <class R>
struct slot_read_node {
  static constexpr bool is_loom_node = true;
  using arg_type = R;
  using value_type = typename R::value_type;
  using shape_type = typename R::shape_type;
  static constexpr std::size_t rank = R::rank;
  static constexpr memory_space space = R::space;
  const R* ref;
  shape_type shape() const { return ref->shape(); }
};

/// The relative cost of a tree's elementwise operators, reductions' operands left out.
template <class N>
struct consumer_cost;
template <class List>
struct consumer_cost_list;
template <class... Ns>
struct consumer_cost_list<type_list<Ns...>> {
  static constexpr int value = (0 + ... + consumer_cost<Ns>::value);
};
template <class N>
struct consumer_cost {
  static constexpr int value = [] {
    if constexpr (is_reduce_node<N>::value) {
      return 0;
    } else if constexpr (is_map_node<N>::value) {
      return N::op::cost + consumer_cost_list<node_children_t<N>>::value;
    } else {
      return consumer_cost_list<node_children_t<N>>::value;
    }
  }();
};

/// Subexpressions cheaper than this are recomputed rather than cached.
inline constexpr int cache_min_cost = 8;

// Whether N (whose first occurrence is number I of plan P) holds only scalars and tiled
// reductions, through elementwise nodes.
template <const reduce_plan_info& P, std::size_t I, class N>
struct row_constant {
  static constexpr bool ok = is_scalar_node<N>::value;
  static constexpr bool has_reduction = false;
};
template <const reduce_plan_info& P, std::size_t I, class Red, class Arg, unsigned M, bool K>
struct row_constant<P, I, reduce_node<Red, Arg, M, K>> {
  static constexpr bool ok = P.cls[I] == occurrence_class::tiled;
  static constexpr bool has_reduction = true;
};
template <std::size_t I, class... Args>
constexpr std::array<std::size_t, sizeof...(Args) + 1> first_occurrences() {
  std::array<std::size_t, sizeof...(Args) + 1> f{};
  f[0] = I;
  std::size_t j = 0;
  ((f[j + 1] = f[j] + occurrence_count_v<Args>, ++j), ...);
  return f;
}
template <const reduce_plan_info& P, std::size_t I, class Op, class C, class... Args>
struct row_constant<P, I, map_node<Op, C, Args...>> {
  static constexpr auto f = first_occurrences<I, Args...>();
  template <std::size_t... J>
  static constexpr bool all_ok(std::index_sequence<J...>) {
    return (row_constant<P, f[J], Args>::ok && ...);
  }
  template <std::size_t... J>
  static constexpr bool any_reduction(std::index_sequence<J...>) {
    return (row_constant<P, f[J], Args>::has_reduction || ...);
  }
  static constexpr bool ok = all_ok(std::index_sequence_for<Args...>{});
  static constexpr bool has_reduction = any_reduction(std::index_sequence_for<Args...>{});
};

/// True where S is the operand of a top-level tiled reduction of Root (plan P) and costly enough
/// to keep rather than compute twice.
template <class Root, const reduce_plan_info& P, class S>
struct cacheable {
  template <class... Rs, std::size_t... J>
  static constexpr bool any(type_list<Rs...>, std::index_sequence<J...>) {
    return ((P.parent[J] == -1 && P.cls[J] == occurrence_class::tiled && std::is_same_v<typename Rs::arg_type, S>) ||
            ...);
  }
  static constexpr bool value = [] {
    if constexpr (!is_map_node<S>::value || consumer_cost<S>::value < cache_min_cost) {
      return false;
    } else {
      using occ = typename occurrences<Root>::type;
      return any(occ{}, std::make_index_sequence<occ::size>{});
    }
  }();
};

/// The consumer of Root (plan P) with row values and cached subexpressions wrapped, and its tiled
/// reductions read through slot_read_node; I is the first occurrence of N. rewrite::make(n) builds
/// the rewritten node (whose slot reads refer to the reductions of n).
template <class Root, const reduce_plan_info& P, std::size_t I, class N>
struct consumer_rewrite {
  using type = N;
  static const N& make(const N& n) { return n; }
};
/// A tiled reduction's operand (its first occurrence is I, plan P) with the tiled reductions it
/// reads read through slot_read_node (referring to those of n). Only trees of leaves, scalars,
/// elementwise nodes and tiled reductions are rebuilt (`ok`): a copy of any other node would not be
/// the node the walk saw (evaluators find materialised reductions and fused products by address),
/// so such an operand is left as it is (make returns n itself).
template <const reduce_plan_info& P, std::size_t I, class N>
struct operand_rewrite {
  static constexpr bool ok = is_scalar_node<N>::value || is_leaf_node<N>::value;
  using type = N;
  static const N& make(const N& n) { return n; }
};
template <const reduce_plan_info& P, std::size_t I, class Red, class Arg, unsigned M, bool K>
struct operand_rewrite<P, I, reduce_node<Red, Arg, M, K>> {
  using N = reduce_node<Red, Arg, M, K>;
  static constexpr bool ok = P.cls[I] == occurrence_class::tiled;
  using type = std::conditional_t<ok, slot_read_node<N>, N>;
  static decltype(auto) make(const N& n) {
    if constexpr (ok)
      return slot_read_node<N>{&n};
    else
      return (n);
  }
};
template <const reduce_plan_info& P, std::size_t I, class Op, class C, class... Args>
struct operand_rewrite<P, I, map_node<Op, C, Args...>> {
  using N = map_node<Op, C, Args...>;
  static constexpr auto f = first_occurrences<I, Args...>();
  template <std::size_t... J>
  static constexpr bool all_ok(std::index_sequence<J...>) {
    return (operand_rewrite<P, f[J], Args>::ok && ...);
  }
  static constexpr bool ok = all_ok(std::index_sequence_for<Args...>{});
  template <std::size_t... J>
  static auto rebuilt_type(std::index_sequence<J...>) -> map_node<Op, C, typename operand_rewrite<P, f[J], Args>::type...>;
  using type = std::conditional_t<ok, decltype(rebuilt_type(std::index_sequence_for<Args...>{})), N>;
  template <std::size_t... J>
  static type rebuild(const N& n, std::index_sequence<J...>) {
    return type(std::tuple<typename operand_rewrite<P, f[J], Args>::type...>(
                    operand_rewrite<P, f[J], Args>::make(std::get<J>(n.args))...),
                n.shape());
  }
  static decltype(auto) make(const N& n) {
    if constexpr (ok)
      return rebuild(n, std::index_sequence_for<Args...>{});
    else
      return (n);
  }
};
/// A reduction read by the consumer: as by an operand (through its slot where it is tiled).
template <class Root, const reduce_plan_info& P, std::size_t I, class Red, class Arg, unsigned M, bool K>
struct consumer_rewrite<Root, P, I, reduce_node<Red, Arg, M, K>> : operand_rewrite<P, I, reduce_node<Red, Arg, M, K>> {};
template <class Root, const reduce_plan_info& P, std::size_t I, class Op, class C, class... Args>
struct consumer_rewrite<Root, P, I, map_node<Op, C, Args...>> {
  using N = map_node<Op, C, Args...>;
  static constexpr auto f = first_occurrences<I, Args...>();
  static constexpr int kind = row_constant<P, I, N>::ok && row_constant<P, I, N>::has_reduction ? 1
                              : cacheable<Root, P, N>::value                                      ? 2
                                                                                                  : 0;
  template <std::size_t... J>
  static auto rebuilt_type(std::index_sequence<J...>)
      -> map_node<Op, C, typename consumer_rewrite<Root, P, f[J], Args>::type...>;
  using type = std::conditional_t<kind == 1, row_value_node<N>,
                                  std::conditional_t<kind == 2, cached_node<N>,
                                                     decltype(rebuilt_type(std::index_sequence_for<Args...>{}))>>;
  template <std::size_t... J>
  static type rebuild(const N& n, std::index_sequence<J...>) {
    return type(std::tuple<typename consumer_rewrite<Root, P, f[J], Args>::type...>(
                    consumer_rewrite<Root, P, f[J], Args>::make(std::get<J>(n.args))...),
                n.shape());
  }
  static type make(const N& n) {
    if constexpr (kind == 1)
      return row_value_node<N>{n};
    else if constexpr (kind == 2)
      return cached_node<N>{n};
    else
      return rebuild(n, std::index_sequence_for<Args...>{});
  }
};

/// How many row values and cached subexpressions the rewritten consumer of Root holds.
template <class N>
struct rewrite_counts {
  static constexpr std::size_t rows = 0, cached = 0;
  static constexpr std::size_t row_bytes = 0;
};
template <class List>
struct rewrite_counts_list;
template <class... Ns>
struct rewrite_counts_list<type_list<Ns...>> {
  static constexpr std::size_t rows = (std::size_t(0) + ... + rewrite_counts<Ns>::rows);
  static constexpr std::size_t cached = (std::size_t(0) + ... + rewrite_counts<Ns>::cached);
  static constexpr std::size_t row_bytes = (std::size_t(0) + ... + rewrite_counts<Ns>::row_bytes);
};
template <class S>
struct rewrite_counts<row_value_node<S>> {
  static constexpr std::size_t rows = 1, cached = 0;
  static constexpr std::size_t row_bytes = sizeof(typename S::value_type);
};
template <class S>
struct rewrite_counts<cached_node<S>> {
  static constexpr std::size_t rows = 0, cached = 1;
  static constexpr std::size_t row_bytes = sizeof(typename S::value_type);
};
template <class Op, class C, class... Args>
struct rewrite_counts<map_node<Op, C, Args...>> : rewrite_counts_list<type_list<Args...>> {};

}  // namespace detail

template <class S>
struct node_children<detail::row_value_node<S>> {
  using type = type_list<S>;
};
template <class S>
struct node_children<detail::cached_node<S>> {
  using type = type_list<S>;
};
template <class R>
struct node_children<detail::slot_read_node<R>> {
  using type = type_list<R>;
};

}  // namespace loom
