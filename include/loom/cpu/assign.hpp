// loom/cpu/assign.hpp: the assignment kernel - from `dst = expr` to a running loop nest.
//
// Order of work: check shapes (nothing is written on a mismatch), bind the expression to the
// destination's iteration space, check aliasing, collapse, choose the inner-loop layout class,
// run. Elementwise self-assignment needs no copy (a leaf that reads the destination at the same
// index it writes is safe); any other overlap with the destination goes through a temporary.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cpu/blocked.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/expr/elementwise.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/matmul.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/tensor/tensor.hpp"
#include "loom/tensor/view.hpp"

namespace loom {
namespace cpu {

namespace detail {
template <class N>
struct is_reduction_node {
  static constexpr unsigned value = is_reduce_node<N>::value ? 1u : 0u;
};
}  // namespace detail

/// True where the tree of N holds a reduction (it then runs through cpu/tiled.hpp).
template <class N>
inline constexpr bool has_reduction_v = fold_nodes_or<detail::is_reduction_node, N>::value != 0;

namespace detail {

/// The byte range [lo, hi) a cursor touches over an iteration space.
inline void touched_range(const cursor& c, const dims& d, std::uintptr_t& lo, std::uintptr_t& hi) {
  index_t mn = c.offset, mx = c.offset;
  for (std::size_t k = 0; k < d.rank; ++k) {
    const index_t span = c.stride[k] * (static_cast<index_t>(d.e[k]) - 1);
    (span < 0 ? mn : mx) += span;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(c.base);
  lo = base + static_cast<std::uintptr_t>(mn * static_cast<index_t>(c.elem_size));
  hi = base + static_cast<std::uintptr_t>((mx + 1) * static_cast<index_t>(c.elem_size));
}

/// The data of the temporary this thread is evaluating into because the real destination
/// overlapped an operand. Nothing the expression reads can overlap it (every operand existed
/// before it was allocated), so its alias checks pass: the over-approximated spans of concat and
/// pad cursors (which reach past their arrays) could otherwise hold the new block too and send
/// the evaluation through one temporary after another.
inline thread_local const void* fresh_destination = nullptr;

/// Marks `data` (a temporary just allocated) as the fresh destination for a scope.
class fresh_scope {
 public:
  explicit fresh_scope(const void* data) : saved_(fresh_destination) { fresh_destination = data; }
  ~fresh_scope() { fresh_destination = saved_; }
  fresh_scope(const fresh_scope&) = delete;
  fresh_scope& operator=(const fresh_scope&) = delete;

 private:
  const void* saved_;
};

/// True where dst writes the fresh temporary of the evaluation running on this thread.
inline bool is_fresh(const cursor& dst) { return dst.base != nullptr && dst.base == fresh_destination; }

/// Evaluates into a new temporary of dst's shape (eval(tmp), with the temporary marked fresh),
/// then hands it to copy(tmp) to be copied into dst.
template <class Dst, class Eval, class Copy>
void via_temporary(const Dst& dst, Eval&& eval, Copy&& copy) {
  using D = std::remove_cvref_t<Dst>;
  tensor<typename D::value_type, typename D::shape_type> tmp(dst.shape());
  {
    fresh_scope fresh(tmp.data());
    eval(tmp);
  }
  copy(std::as_const(tmp));
}

/// True where reading `c` while writing `dst` (both over space d) is safe without a temporary:
/// no overlap, or the very same elements at the very same iteration index. Index cursors
/// (elem_size 0: positions, not memory) never alias.
inline bool alias_safe(const cursor& c, const cursor& dst, const dims& d) {
  if (c.elem_size == 0 || is_fresh(dst)) return true;
  std::uintptr_t a0, a1, b0, b1;
  touched_range(c, d, a0, a1);
  touched_range(dst, d, b0, b1);
  if (a1 <= b0 || b1 <= a0) return true;
  if (c.base != dst.base || c.offset != dst.offset || c.elem_size != dst.elem_size) return false;
  for (std::size_t k = 0; k < d.rank; ++k)
    if (d.e[k] != 1 && c.stride[k] != dst.stride[k]) return false;
  return true;
}

/// True where every memory cursor steps by one element along the inner axis (index cursors,
/// elem_size 0, handle any stride themselves and do not count).
inline bool inner_contiguous(cursor* const* cs, std::size_t n, std::size_t inner) {
  for (std::size_t c = 0; c < n; ++c)
    if (cs[c]->elem_size != 0 && cs[c]->stride[inner] != 1) return false;
  return true;
}

}  // namespace detail

/// Evaluates an expression holding reduction nodes into dst (cpu/tiled.hpp).
template <class Dst, class N>
void execute_reducing(Dst& dst, const N& n);

template <class Dst, class N>
void execute(Dst& dst, const N& n);

/// Evaluates an expression holding matmuls into dst (cpu/matmul.hpp).
template <class Dst, class N>
void execute_matmul(Dst& dst, const N& n);

/// Evaluates an elementwise node n (index maps and generators included) into dst as one loop nest.
template <class Dst, class N>
void execute_elementwise(Dst& dst, const N& n) {
  using T = typename std::remove_cvref_t<Dst>::value_type;
  const dims dd = dst.shape().to_dims();
  const dims ed = n.shape().to_dims();
  check_assignable(ed, dd);
  if (dd.size() == 0) return;

  evaluator<N> ev(n, binding::identity(dd.rank).broadcast_operand(dd, ed));
  strided_writer<T> w;
  w.bind(dst.data(), dst.strides(), dd.rank);

  bool safe = true;
  ev.for_each_cursor([&](cursor& c) { safe = safe && detail::alias_safe(c, w.c, dd); });
  if (!safe) {
    detail::via_temporary(dst, [&](auto& tmp) { execute(tmp, n); },
                          [&](const auto& tmp) { execute(dst, as_node(tmp)); });
    return;
  }

  std::array<cursor*, 64> small;
  std::vector<cursor*> big;
  std::size_t count = 0;
  ev.for_each_cursor([&](cursor&) { ++count; });
  cursor** cs = count + 1 <= small.size() ? small.data() : (big.resize(count + 1), big.data());
  std::size_t i = 0;
  cs[i++] = &w.c;
  ev.for_each_cursor([&](cursor& c) { cs[i++] = &c; });
  const loop_space s = collapse(dd, cs, count + 1);
  const bool contiguous = detail::inner_contiguous(cs, count + 1, s.rank - 1);
  const std::size_t a = blocked_axis(s, cs, count + 1);

  ev.prepare(s);
  w.prepare(s);
  using trav = traversal<N, T>;
  if constexpr (std::remove_cvref_t<Dst>::shape_type::rank >= 2) {  // a space of rank 1 never blocks
    if (a < s.rank) {
      run_blocked<typename trav::lane_class>(w, ev, s, a, block_side<T>(), trav::cost);
      return;
    }
  }
  run_loop_nest<typename trav::lane_class>(
      w, ev, s, choose_layout(contiguous, (count + 1) * dd.size() * sizeof(T), trav::cost), trav::cost);
}

/// Evaluates node n into the array dst (a tensor or a writable view): one loop nest, or the
/// tiled evaluation of cpu/tiled.hpp where the expression holds reductions.
template <class Dst, class N>
void execute(Dst& dst, const N& n) {
  if constexpr (has_matmul_v<N>)
    execute_matmul(dst, n);
  else if constexpr (has_reduction_v<N>)
    execute_reducing(dst, n);
  else
    execute_elementwise(dst, n);
}

}  // namespace cpu

namespace detail {

template <assign_op Op, class Dst, class Src>
void assign(Dst& dst, const Src& src) {
  using D = std::remove_cvref_t<Dst>;
  using T = typename D::value_type;
  static_assert(writable_check<D, D::read_only>::value);
  if constexpr (D::read_only) {
    return;  // reported above
  } else if constexpr (scalar_type<Src>) {
    assign<Op>(dst, scalar_node<T>{static_cast<T>(src)});
  } else {
    static_assert(D::space == memory_space::host, "loom: this destination is not a host array");
    static_assert(std::remove_cvref_t<Src>::space != memory_space::device,
                  "loom: a host destination cannot take an expression of device tensors; use cuda::copy");
    static_assert(assignment_shape_check<shape_type_of<Src>, typename D::shape_type>::value);
    check_destination(dst);  // a view that would receive two values in one element is refused
    if constexpr (Op == assign_op::set) {
      cpu::execute(dst, as_node(src));
    } else {
      using op = std::conditional_t<Op == assign_op::add, ops::add,
                                    std::conditional_t<Op == assign_op::sub, ops::sub,
                                                       std::conditional_t<Op == assign_op::mul, ops::mul, ops::div>>>;
      cpu::execute(dst, make_map<op>(dst, src));
    }
  }
}

}  // namespace detail

/// Evaluates an expression into a new tensor of its own type and shape: eval(exp(x) + 1.f).
template <class E>
  requires expression<E>
auto eval(const E& e) {
  return tensor<value_type_of<E>, shape_type_of<E>>(e);
}

}  // namespace loom

// The evaluators of index maps and generators, and the executor of reductions (tiled.hpp, which
// brings the contraction's, matmul.hpp, at its end: after everything of its own that matmul uses,
// whichever of the three a translation unit includes first).
#include "loom/cpu/index_eval.hpp"
#include "loom/cpu/tiled.hpp"
