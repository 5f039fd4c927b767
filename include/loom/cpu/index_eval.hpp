// loom/cpu/index_eval.hpp: the CPU evaluators of index maps and generators.
//
// Affine index maps (permute, slice, flip, broadcast_to) build their operand's evaluator with a
// rewritten binding and then only forward calls: a leaf under them gets other strides and costs
// nothing per element. Everything these evaluators derive from a binding lives in cursors that
// for_each_cursor exposes; positions that are not memory (iota's index, the position along a
// concat axis) are *index cursors* (elem_size 0): they collapse like memory cursors but never
// alias and never decide the inner-loop layout class, and their evaluators handle any inner
// stride themselves. That is what lets reshape rewrite a whole subtree after it is built.
//
//   reshape      the operand is built over its own index space, then every cursor is moved to the
//                reshaped space (a row-major regrouping is linear where strides merge); where one
//                cannot be, the operand is materialised once (row-major) and read from there
//   concat, pad  one operand per SIMD packet (the position of the packet's first and last lane);
//                a packet straddling a boundary is assembled lane by lane
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "loom/cpu/binding.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/simd.hpp"
#include "loom/expr/generator.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/tensor/tensor.hpp"

namespace loom {
namespace cpu {

template <class Dst, class N>
void execute(Dst& dst, const N& n);

namespace detail {

// ---------------------------------------------------------------------------------------------
// Bindings of an index map's operand
// ---------------------------------------------------------------------------------------------

/// An index cursor: a position that moves with the iteration like an address, but is not memory.
inline cursor index_cursor(const binding& b, const index_t* node_strides, std::size_t node_rank) {
  cursor c;
  c.base = nullptr;
  c.elem_size = 0;
  std::array<index_t, max_rank> s{};
  for (std::size_t d = 0; d < node_rank; ++d) s[d] = node_strides[d];
  binding nb = b;
  nb.node_rank = node_rank;
  nb.strides_of(s, c.stride, c.offset);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Reshape: moving strides from one row-major grouping of the elements to another
// ---------------------------------------------------------------------------------------------

/// Moves a cursor built over `from` (iteration = from's index) to the iteration space of b, where
/// b binds the iteration space to `to`. False where regroup_strides is.
inline bool move_cursor(cursor& c, const dims& from, const dims& to, const binding& b) {
  return regroup_into(c.stride, c.offset, from, to, b);
}

/// An evaluator that only forwards to its operand's (affine index maps).
template <class Arg>
struct forwarding_evaluator {
  using value_type = typename Arg::value_type;
  evaluator<Arg> arg;
  forwarding_evaluator(const Arg& a, const binding& b) : arg(a, b) {}
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    arg.for_each_cursor(f);
  }
  void prepare(const loop_space& s) { arg.prepare(s); }
  LOOM_INLINE void set_row(const index_t* idx) { arg.set_row(idx); }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    return arg.template scalar<M>(i);
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    return arg.template packet<M, F>(i);
  }
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Affine index maps
// ---------------------------------------------------------------------------------------------

template <class Arg, std::size_t... P>
struct evaluator<permute_node<Arg, P...>> : detail::forwarding_evaluator<Arg> {
  evaluator(const permute_node<Arg, P...>& n, const binding& b)
      : detail::forwarding_evaluator<Arg>(n.arg, detail::permuted_binding(b, permute_node<Arg, P...>::perm.data(),
                                                                          sizeof...(P))) {}
};

template <class Arg, std::size_t A>
struct evaluator<slice_node<Arg, A>> : detail::forwarding_evaluator<Arg> {
  evaluator(const slice_node<Arg, A>& n, const binding& b)
      : detail::forwarding_evaluator<Arg>(n.arg, detail::affine_axis_binding(b, A, n.begin, n.step)) {}
};

template <class Arg, std::size_t A>
struct evaluator<flip_node<Arg, A>> : detail::forwarding_evaluator<Arg> {
  evaluator(const flip_node<Arg, A>& n, const binding& b)
      : detail::forwarding_evaluator<Arg>(
            n.arg, detail::affine_axis_binding(b, A, static_cast<index_t>(n.shape().extent(A)) - 1, -1)) {}
};

template <class Arg, class S>
struct evaluator<broadcast_node<Arg, S>> : detail::forwarding_evaluator<Arg> {
  evaluator(const broadcast_node<Arg, S>& n, const binding& b)
      : detail::forwarding_evaluator<Arg>(n.arg,
                                          b.broadcast_operand(n.shape().to_dims(), n.arg.shape().to_dims())) {}
};

// ---------------------------------------------------------------------------------------------
// Reshape
// ---------------------------------------------------------------------------------------------

template <class Arg, class S>
struct evaluator<reshape_node<Arg, S>> {
  using node_type = reshape_node<Arg, S>;
  using value_type = typename Arg::value_type;
  using held = tensor<value_type, typename Arg::shape_type>;

  // Exactly one of the two is in use: the operand itself with moved cursors, or a reader of the
  // operand materialised in row-major order (where some cursor cannot be moved).
  std::optional<evaluator<Arg>> direct;
  std::shared_ptr<held> copy;
  strided_reader<value_type> r;
  bool is_direct = true;

  evaluator(const node_type& n, const binding& b) {
    const dims from = n.arg.shape().to_dims(), to = n.shape().to_dims();
    direct.emplace(n.arg, binding::identity(from.rank));
    bool ok = true;
    direct->for_each_cursor([&](cursor& c) { ok = ok && detail::move_cursor(c, from, to, b); });
    if (ok) return;
    direct.reset();
    is_direct = false;
    copy = std::make_shared<held>(n.arg.shape());
    execute(*copy, n.arg);
    std::array<index_t, max_rank> rm{}, rs{};
    auto st = copy->strides();
    for (std::size_t k = 0; k < from.rank; ++k) rm[k] = st[k];
    detail::regroup_strides(from, rm.data(), to, rs.data());  // row-major always regroups
    r.bind(copy->data(), rs, b);
  }
  /// True where the operand is read in place (false: it was materialised).
  bool in_place() const { return is_direct; }

  template <class Fn>
  void for_each_cursor(Fn&& f) {
    if (is_direct)
      direct->for_each_cursor(f);
    else
      f(r.c);
  }
  void prepare(const loop_space& s) {
    if (is_direct)
      direct->prepare(s);
    else
      r.prepare(s);
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    if (LOOM_LIKELY(is_direct))
      direct->set_row(idx);
    else
      r.set_row(idx);
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    if (LOOM_LIKELY(is_direct)) return direct->template scalar<M>(i);
    return r.template scalar<M>(i);
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    if (LOOM_LIKELY(is_direct)) return direct->template packet<M, F>(i);
    return r.template packet<M, F>(i);
  }
};

// ---------------------------------------------------------------------------------------------
// Concat and pad
// ---------------------------------------------------------------------------------------------

template <std::size_t A, class... Args>
struct evaluator<concat_node<A, Args...>> {
  using node_type = concat_node<A, Args...>;
  using value_type = typename node_type::value_type;
  using seq = std::index_sequence_for<Args...>;
  static constexpr std::size_t count = sizeof...(Args);

  std::tuple<evaluator<Args>...> args;
  std::array<index_t, count + 1> start{};
  cursor pos;  // the position along axis A (an index cursor)
  index_t step = 0;
  std::size_t outer = 0;
  index_t row_pos = 0;

  evaluator(const node_type& n, const binding& b) : args(make_args(n, b, seq{})), start(n.start) {
    std::array<index_t, max_rank> unit{};
    unit[A] = 1;
    pos = detail::index_cursor(b, unit.data(), node_type::rank);
    for_each_cursor([](cursor& c) { c.dense = false; });  // each operand covers its range only
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    f(pos);
    std::apply([&](auto&... a) { (a.for_each_cursor(f), ...); }, args);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    step = pos.stride[outer];
    std::apply([&](auto&... a) { (a.prepare(s), ...); }, args);
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    row_pos = cursor_row(pos, outer, idx);
    set_rows(idx, seq{});
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    return scalar_of<M>(branch(row_pos + step * i), i, seq{});
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    constexpr index_t w = static_cast<index_t>(lanes<F>);
    const index_t p0 = row_pos + step * i, p1 = p0 + step * (w - 1);
    const std::size_t b0 = branch(p0);
    if (LOOM_LIKELY(b0 == branch(p1))) return packet_of<M, F>(b0, i, seq{});
    alignas(64) value_type tmp[lanes<F>];
    for (index_t l = 0; l < w; ++l) tmp[l] = scalar<M>(i + l);
    return load_packet<F>(static_cast<const value_type*>(tmp));
  }

 private:
  template <std::size_t... I>
  LOOM_INLINE void set_rows(const index_t* idx, std::index_sequence<I...>) {
    (std::get<I>(args).set_row(idx), ...);
  }
  LOOM_INLINE std::size_t branch(index_t p) const {
    std::size_t b = 0;
    while (b + 1 < count && p >= start[b + 1]) ++b;
    return b;
  }
  template <std::size_t... I>
  static std::tuple<evaluator<Args>...> make_args(const node_type& n, const binding& b, std::index_sequence<I...>) {
    return std::tuple<evaluator<Args>...>(
        evaluator<Args>(std::get<I>(n.args), detail::affine_axis_binding(b, A, -n.start[I], 1))...);
  }
  template <class M, std::size_t... I>
  LOOM_INLINE value_type scalar_of(std::size_t b, index_t i, std::index_sequence<I...>) const {
    value_type v{};
    ((b == I ? (void)(v = loom::detail::convert<value_type>(std::get<I>(args).template scalar<M>(i))) : (void)0), ...);
    return v;
  }
  template <class M, class F, std::size_t... I>
  LOOM_INLINE packet_t<value_type, F> packet_of(std::size_t b, index_t i, std::index_sequence<I...>) const {
    packet_t<value_type, F> v{};
    ((b == I ? (void)(v = convert_packet<value_type, typename Args::value_type, F>(
                          std::get<I>(args).template packet<M, F>(i)))
             : (void)0),
     ...);
    return v;
  }
};

template <class Arg, std::size_t A>
struct evaluator<pad_node<Arg, A>> {
  using node_type = pad_node<Arg, A>;
  using value_type = typename node_type::value_type;

  evaluator<Arg> arg;
  value_type value;
  index_t lo = 0, hi = 0;  // the operand occupies [lo, hi) along A
  cursor pos;
  index_t step = 0;
  std::size_t outer = 0;
  index_t row_pos = 0;

  evaluator(const node_type& n, const binding& b)
      : arg(n.arg, detail::affine_axis_binding(b, A, -n.before, 1)),
        value(n.value),
        lo(n.before),
        hi(n.before + static_cast<index_t>(n.arg.shape().extent(A))) {
    std::array<index_t, max_rank> unit{};
    unit[A] = 1;
    pos = detail::index_cursor(b, unit.data(), node_type::rank);
    for_each_cursor([](cursor& c) { c.dense = false; });  // the operand covers [lo, hi) only
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    f(pos);
    arg.for_each_cursor(f);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    step = pos.stride[outer];
    arg.prepare(s);
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    row_pos = cursor_row(pos, outer, idx);
    arg.set_row(idx);
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    const index_t p = row_pos + step * i;
    return (p >= lo && p < hi) ? arg.template scalar<M>(i) : value;
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    constexpr index_t w = static_cast<index_t>(lanes<F>);
    const index_t p0 = row_pos + step * i, p1 = p0 + step * (w - 1);
    const index_t mn = p0 < p1 ? p0 : p1, mx = p0 < p1 ? p1 : p0;
    if (mn >= lo && mx < hi) return arg.template packet<M, F>(i);
    if (mx < lo || mn >= hi) return broadcast_packet<F>(value);
    alignas(64) value_type tmp[lanes<F>];
    for (index_t l = 0; l < w; ++l) tmp[l] = scalar<M>(i + l);
    return load_packet<F>(static_cast<const value_type*>(tmp));
  }
};

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

template <class T, class S>
struct evaluator<iota_node<T, S>> {
  using value_type = T;
  cursor pos;  // the row-major index (an index cursor)
  index_t step = 0;
  std::size_t outer = 0;
  index_t row_pos = 0;

  evaluator(const iota_node<T, S>& n, const binding& b) {
    auto st = loom::detail::row_major_strides(n.shape());
    pos = detail::index_cursor(b, st.data(), S::rank);
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    f(pos);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    step = pos.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) { row_pos = cursor_row(pos, outer, idx); }
  template <class M>
  LOOM_INLINE T scalar(index_t i) const {
    return loom::detail::convert<T>(row_pos + step * i);
  }
  template <class M, class F>
  LOOM_INLINE packet_t<T, F> packet(index_t i) const {
    alignas(64) T tmp[lanes<F>];
    const index_t p = row_pos + step * i;
    for (std::size_t l = 0; l < lanes<F>; ++l) tmp[l] = loom::detail::convert<T>(p + step * index_t(l));
    return load_packet<F>(static_cast<const T*>(tmp));
  }
};

template <class T, class S>
struct evaluator<full_node<T, S>> {
  using value_type = T;
  T value;
  evaluator(const full_node<T, S>& n, const binding&) : value(n.value) {}
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

}  // namespace cpu
}  // namespace loom
