// loom/cpu/evaluator.hpp: the CPU evaluators of leaves, scalars and elementwise nodes.
//
// An evaluator is built from a node and its binding, and is then driven by a loop nest:
//   for_each_cursor(f)   every leaf's cursor, for collapsing axes and the aliasing check
//   prepare(space)       the collapsed space is final: cache inner strides
//   set_row(idx)         move to the row at outer index idx (all axes but the last)
//   scalar<M>(i)         the element at inner offset i of the current row
//   packet<M, F>(i)      lanes<F> elements from inner offset i (lane class F, mode M)
// Other node kinds (index maps, reductions, contractions) add their own evaluators in their own
// headers by specialising `evaluator`.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "loom/cpu/binding.hpp"
#include "loom/cpu/packet_ops.hpp"
#include "loom/cpu/simd.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"

namespace loom {
namespace cpu {

template <class Node, class Enable = void>
struct evaluator;

/// Reads a strided array through a cursor: the building block of every leaf-like evaluator
/// (tensors and views; reduction and GEMM tile buffers reuse it).
template <class T>
struct strided_reader {
  cursor c;
  const T* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;

  template <class Strides>
  void bind(const T* data, const Strides& array_strides, const binding& b) {
    c.base = data;
    c.elem_size = sizeof(T);
    c.dense = true;
    b.strides_of(array_strides, c.stride, c.offset);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    inner = c.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) { row = static_cast<const T*>(c.base) + cursor_row(c, outer, idx); }
  template <class M>
  LOOM_INLINE T scalar(index_t i) const {
    if constexpr (M::contiguous)
      return row[i];
    else
      return row[i * inner];
  }
  template <class M, class F>
  LOOM_INLINE packet_t<T, F> packet(index_t i) const {
    if constexpr (M::contiguous) {
      return load_packet<F>(row + i);
    } else {
      if (inner == 1) return load_packet<F>(row + i);
      if (inner == 0) return broadcast_packet<F>(row[0]);
      return gather_packet<F>(row + i * inner, inner);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Leaves
// ---------------------------------------------------------------------------------------------

/// The evaluator of a node read through a reader (a strided_reader, or a tile's slot reader):
/// the loop nest's calls forwarded to it. Leaf-like evaluators derive from it and bind `r`.
template <class Reader, class V>
struct reading_evaluator {
  using value_type = V;
  Reader r;

  template <class Fn>
  void for_each_cursor(Fn&& f) {
    f(r.c);
  }
  void prepare(const loop_space& s) { r.prepare(s); }
  LOOM_INLINE void set_row(const index_t* idx) { r.set_row(idx); }
  template <class M>
  LOOM_INLINE V scalar(index_t i) const {
    return r.template scalar<M>(i);
  }
  template <class M, class F>
  LOOM_INLINE packet_t<V, F> packet(index_t i) const {
    return r.template packet<M, F>(i);
  }
};

template <class A, bool ByValue>
struct evaluator<leaf_node<A, ByValue>>
    : reading_evaluator<strided_reader<typename leaf_node<A, ByValue>::value_type>,
                        typename leaf_node<A, ByValue>::value_type> {
  using node_type = leaf_node<A, ByValue>;

  evaluator(const node_type& n, const binding& b) { this->r.bind(n.data(), n.strides(), b); }
};

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

template <class T>
struct evaluator<scalar_node<T>> {
  using value_type = T;
  T value;

  evaluator(const scalar_node<T>& n, const binding&) : value(n.value) {}
  template <class Fn>
  void for_each_cursor(Fn&&) {}
  void prepare(const loop_space&) {}
  LOOM_INLINE void set_row(const index_t*) {}
  template <class M>
  LOOM_INLINE T scalar(index_t) const {
    return value;
  }
  template <class M, class F>
  LOOM_INLINE packet_t<T, F> packet(index_t) const {
    return broadcast_packet<F>(value);
  }
};

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

namespace detail {
/// The type operand I of Op is converted to before Op applies (C is the computation type).
template <class Op, class C, std::size_t I>
using operand_compute_t =
    std::conditional_t<Op::rule == type_rule::logical || (Op::rule == type_rule::select && I == 0), bool, C>;
}  // namespace detail

template <class Op, class C, class... Args>
struct evaluator<map_node<Op, C, Args...>> {
  using node_type = map_node<Op, C, Args...>;
  using value_type = typename node_type::value_type;
  using index_seq = std::index_sequence_for<Args...>;
  std::tuple<evaluator<Args>...> args;

  evaluator(const node_type& n, const binding& b) : args(make_args(n, b, index_seq{})) {}

  template <class Fn>
  void for_each_cursor(Fn&& f) {
    std::apply([&](auto&... a) { (a.for_each_cursor(f), ...); }, args);
  }
  void prepare(const loop_space& s) {
    std::apply([&](auto&... a) { (a.prepare(s), ...); }, args);
  }
  LOOM_INLINE void set_row(const index_t* idx) { set_rows(idx, index_seq{}); }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    return scalar_impl<M>(i, index_seq{});
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    return packet_impl<M, F>(i, index_seq{});
  }

 private:
  // (Not std::apply with a lambda: GCC left that call out of line in the reductions' row loops.)
  template <std::size_t... I>
  LOOM_INLINE void set_rows(const index_t* idx, std::index_sequence<I...>) {
    (std::get<I>(args).set_row(idx), ...);
  }
  template <std::size_t... I>
  static std::tuple<evaluator<Args>...> make_args(const node_type& n, const binding& b, std::index_sequence<I...>) {
    const dims nd = n.shape().to_dims();
    return std::tuple<evaluator<Args>...>(
        evaluator<Args>(std::get<I>(n.args), b.broadcast_operand(nd, std::get<I>(n.args).shape().to_dims()))...);
  }
  template <class M, std::size_t... I>
  LOOM_INLINE value_type scalar_impl(index_t i, std::index_sequence<I...>) const {
    return Op::apply(loom::detail::convert<detail::operand_compute_t<Op, C, I>>(std::get<I>(args).template scalar<M>(i))...);
  }
  template <class M, class F, std::size_t... I>
  LOOM_INLINE packet_t<value_type, F> packet_impl(index_t i, std::index_sequence<I...>) const {
    return packet_op<Op>::template apply<C, F>(
        convert_packet<detail::operand_compute_t<Op, C, I>, typename Args::value_type, F>(
            std::get<I>(args).template packet<M, F>(i))...);
  }
};

}  // namespace cpu
}  // namespace loom
