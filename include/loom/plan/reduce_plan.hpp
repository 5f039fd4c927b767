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

/// The most reduction occurrences one expression may hold.
inline constexpr std::size_t max_occurrences = 48;

/// The largest number of rows (outputs) in one tile, which bounds every per-tile buffer.
inline constexpr std::size_t max_tile_rows = 1024;

namespace detail {

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
  static constexpr void walk(reduce_plan_info& st, const dep_array& dep, std::size_t rank, int parent) {
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

}  // namespace detail
}  // namespace loom
