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
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/expr/elementwise.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/node.hpp"
#include "loom/tensor/tensor.hpp"
#include "loom/tensor/view.hpp"

namespace loom {
namespace cpu {

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

/// True where reading `c` while writing `dst` (both over space d) is safe without a temporary:
/// no overlap, or the very same elements at the very same iteration index.
inline bool alias_safe(const cursor& c, const cursor& dst, const dims& d) {
  std::uintptr_t a0, a1, b0, b1;
  touched_range(c, d, a0, a1);
  touched_range(dst, d, b0, b1);
  if (a1 <= b0 || b1 <= a0) return true;
  if (c.base != dst.base || c.offset != dst.offset || c.elem_size != dst.elem_size) return false;
  for (std::size_t k = 0; k < d.rank; ++k)
    if (d.e[k] != 1 && c.stride[k] != dst.stride[k]) return false;
  return true;
}

}  // namespace detail

/// Evaluates node n into the array dst (a tensor or a writable view) as one loop nest.
template <class Dst, class N>
void execute(Dst& dst, const N& n) {
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
    tensor<T, typename std::remove_cvref_t<Dst>::shape_type> tmp(dst.shape());
    execute(tmp, n);
    execute(dst, as_node(std::as_const(tmp)));
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
  bool contiguous = true;
  for (std::size_t c = 0; c < count + 1; ++c) contiguous = contiguous && cs[c]->stride[s.rank - 1] == 1;

  ev.prepare(s);
  w.prepare(s);
  using trav = traversal<N, T>;
  run_loop_nest<typename trav::lane_class>(w, ev, s, choose_layout(contiguous, (count + 1) * dd.size() * sizeof(T)),
                                           trav::cost);
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
