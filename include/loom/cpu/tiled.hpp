// loom/cpu/tiled.hpp: evaluating expressions that hold reductions - one pass over row tiles.
//
// The compile-time plan (plan/reduce_plan.hpp) classifies every reduction occurrence. This file
// carries it out:
//
//   1. A walk over the expression (with the same bindings the evaluators will get) finds each
//      occurrence's node, materialises the `materialised` ones into tensors of their own size
//      (equal ones once), and turns the `tiled` ones into *slots* in post-order - equal
//      occurrences (same type, same operands, same binding of the rows) share one slot.
//   2. The destination's space is cut into tiles of rows. Per tile, each slot's reduction runs over
//      the tile's rows (cpu/reduce.hpp) into a per-thread buffer of one value per row, then the
//      consumer runs over the tile, its reduction nodes reading those buffers.
//   3. A reduction written to a destination of its own shape (the root) is a slot whose buffer is
//      the destination. With few outputs and much to reduce, the reduced range is cut into fixed
//      chunks instead, whose partial results are combined in order.
//
// A reduction node's evaluator finds what to read in a thread-local context: a slot (through an
// index cursor that the tile loop points at the thread's buffer, one row per tile row), or a
// materialised tensor (an ordinary strided reader). Built outside any context, it materialises
// itself.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/assign.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/index_eval.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/reduce.hpp"
#include "loom/cpu/thread_pool.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/cpu/tuning.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/plan/reduce_plan.hpp"
#include "loom/tensor/tensor.hpp"

namespace loom {
namespace cpu {

template <class Dst, class N>
void execute(Dst& dst, const N& n);

// ---------------------------------------------------------------------------------------------
// The context reduction evaluators are built in
// ---------------------------------------------------------------------------------------------

namespace detail {
/// One address per type: with a node's address, it names the node (a node's first operand may
/// share its address).
template <class N>
struct type_tag {
  static constexpr char id = 0;
};
}  // namespace detail

/// What one reduction occurrence reads.
struct reduce_entry {
  const void* node = nullptr;  // a node and its type (a node can share its address with its operand)
  const void* tag = nullptr;
  occurrence_class cls = occurrence_class::materialised;
  int slot = -1;                  // tiled: the slot whose buffer it reads
  const void* data = nullptr;     // materialised: the tensor's elements
  std::array<index_t, max_rank> strides{};  // materialised: its strides; cached: per axis of the space
  bool per_axis = false;          // cached: read with `strides` per axis of the space
  bool inline_value = false;      // a row value its reader computes as each row starts (no runner)
};

struct reduce_context {
  std::vector<reduce_entry> entries;
  const unsigned char* tags = nullptr;  // slot s is read through an index cursor based at tags + s
  std::size_t nslots = 0;
  // The space evaluators are being built over: row_of[k] is the row number of axis k, or -1, and
  // row_stride[j] the step of row number j in the flattened rows.
  std::array<int, max_rank> row_of{};
  std::array<index_t, max_rank> row_stride{};
  // Whether the consumer runs along columns (its tiles' rows have more than one element): its row
  // values are then computed by the consumer as each row starts, not by a pass of their own.
  bool row_values_inline = false;

  const reduce_entry* find(const void* n, const void* tag) const {
    for (auto& e : entries)
      if (e.node == n && e.tag == tag) return &e;
    return nullptr;
  }
  static reduce_context*& current() {
    static thread_local reduce_context* c = nullptr;
    return c;
  }
};

/// Makes ctx the current context of this thread while alive.
struct context_scope {
  reduce_context* saved;
  explicit context_scope(reduce_context* c) : saved(reduce_context::current()) { reduce_context::current() = c; }
  ~context_scope() { reduce_context::current() = saved; }
  context_scope(const context_scope&) = delete;
  context_scope& operator=(const context_scope&) = delete;
};

// ---------------------------------------------------------------------------------------------
// Reading a slot's per-tile buffer
// ---------------------------------------------------------------------------------------------

/// The layout class of a loop whose inner axis is a column of the tile (the consumer's columns,
/// or a reduction's reduced axes): per-row values are constant along it and caches contiguous,
/// which their readers then know at compile time.
template <class Base>
struct along_columns : Base {
  static constexpr bool columns = true;
};
template <class M>
inline constexpr bool along_columns_v = requires { M::columns; };

/// Reads a slot's buffer through an index cursor (the tile loop points it at the thread's buffer
/// for each tile): one value per row of the tile (reductions, row values; stride 0 along the
/// columns), or a row of values per row (caches). Any inner stride, whatever the layout class.
///
/// A per-row value (stride 0 along the run) is read once, by set_row, into `value`: the loops run
/// on copies of their evaluators, so it then stays in a register, where reading it at each packet
/// reloaded it after every packet store (which may alias anything) - a broadcast from memory a
/// packet in softmax's exp pass and in its division.
template <class T, bool PerRow = true>
struct slot_reader {
  cursor c;
  const T* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;
  T value{};

  /// Binds to entry e's slot in the space of b (the context's current space).
  void bind(const reduce_context& ctx, const reduce_entry& e, const binding& b) {
    c.base = ctx.tags + e.slot;
    c.elem_size = 0;
    c.offset = 0;
    c.stride.fill(0);
    for (std::size_t k = 0; k < b.it_rank; ++k) {
      if (e.per_axis)
        c.stride[k] = e.strides[k];
      else if (ctx.row_of[k] >= 0)
        c.stride[k] = ctx.row_stride[std::size_t(ctx.row_of[k])];
    }
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    inner = c.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    row = static_cast<const T*>(c.base) + cursor_row(c, outer, idx);
    if constexpr (PerRow)
      if (inner == 0) value = *row;  // (the slot's runner has written the row's value)
  }
  template <class M>
  LOOM_INLINE T scalar(index_t i) const {
    if constexpr (along_columns_v<M>)
      return PerRow ? value : row[i];
    else
      return row[i * inner];
  }
  template <class M, class F>
  LOOM_INLINE packet_t<T, F> packet(index_t i) const {
    if constexpr (along_columns_v<M>) {
      if constexpr (PerRow)
        return broadcast_packet<F>(value);
      else
        return load_packet<F>(row + i);
    } else {
      if (inner == 0) return broadcast_packet<F>(PerRow ? value : row[0]);
      if (inner == 1) return load_packet<F>(row + i);
      return gather_packet<F>(row + i * inner, inner);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// The evaluator of a reduction node, read by its consumer
// ---------------------------------------------------------------------------------------------

template <class Red, class Arg, unsigned Mask, bool Keep>
struct evaluator<reduce_node<Red, Arg, Mask, Keep>> {
  using node_type = reduce_node<Red, Arg, Mask, Keep>;
  using value_type = typename node_type::value_type;
  using held = tensor<value_type, typename node_type::shape_type>;

  // A tiled reduction reads its slot's buffer through the slot reader (index_read); any other
  // reads its values (the plan's or its own materialised result) through c.
  slot_reader<value_type> slot;
  cursor c;
  const value_type* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;
  bool index_read = false;
  std::shared_ptr<held> own;

  evaluator(const node_type& n, const binding& b) {
    reduce_context* ctx = reduce_context::current();
    const reduce_entry* e = ctx ? ctx->find(&n, &detail::type_tag<node_type>::id) : nullptr;
    if (e && e->cls == occurrence_class::tiled) {
      index_read = true;
      slot.bind(*ctx, *e, b);
      return;
    }
    const void* data;
    std::array<index_t, max_rank> st{};
    if (e && e->data) {
      data = e->data;
      st = e->strides;
    } else {
      context_scope none(nullptr);
      own = std::make_shared<held>(n.shape());
      execute(*own, n);
      data = own->data();
      auto rs = own->strides();
      for (std::size_t k = 0; k < node_type::rank; ++k) st[k] = rs[k];
    }
    c.base = data;
    c.elem_size = sizeof(value_type);
    binding nb = b;
    nb.node_rank = node_type::rank;
    nb.strides_of(st, c.stride, c.offset);
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    f(index_read ? slot.c : c);
  }
  void prepare(const loop_space& s) {
    if (index_read) return slot.prepare(s);
    outer = s.outer_rank();
    inner = c.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    if (index_read) return slot.set_row(idx);
    row = static_cast<const value_type*>(c.base) + cursor_row(c, outer, idx);
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    if (index_read) return slot.template scalar<M>(i);
    if (M::contiguous) return row[i];
    return row[i * inner];
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    if (index_read) return slot.template packet<M, F>(i);
    if (M::contiguous) return load_packet<F>(row + i);
    if (inner == 0) return broadcast_packet<F>(row[0]);
    if (inner == 1) return load_packet<F>(row + i);
    return gather_packet<F>(row + i * inner, inner);
  }
};

/// A row value (the rewrite makes one only where the plan tiles). Where the consumer runs along
/// columns it is computed here, once as each row starts (set_row), from the reductions' slots:
/// a pass of its own a tile (a loop nest over the tile's rows, a virtual call, its buffer and
/// reader) cost more than the value where a tile is a row or a few (layer norm on AVX-512: a
/// tile is one row of 1024 floats). Otherwise (the consumer's run crosses rows) it is read from
/// its slot, which a tile pass fills.
template <class S>
struct evaluator<loom::detail::row_value_node<S>> {
  using node_type = loom::detail::row_value_node<S>;
  using value_type = typename S::value_type;
  slot_reader<value_type> r;
  std::optional<evaluator<S>> in;  // the value's own evaluator where it is computed here
  value_type value{};

  evaluator(const node_type& n, const binding& b) {
    reduce_context* ctx = reduce_context::current();
    const reduce_entry* e = ctx ? ctx->find(&n, &detail::type_tag<node_type>::id) : nullptr;
    if (!e) throw error("loom: internal: a row value outside its tiled plan");
    if (e->inline_value)
      in.emplace(n.arg, b);
    else
      r.bind(*ctx, *e, b);
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    if (in)
      in->for_each_cursor(f);
    else
      f(r.c);
  }
  void prepare(const loop_space& s) {
    if (in)
      in->prepare(s);
    else
      r.prepare(s);
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    if (in) {
      in->set_row(idx);
      value = in->template scalar<along_columns<general_mode>>(0);
    } else {
      r.set_row(idx);
    }
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    if constexpr (along_columns_v<M>)
      if (in) return value;
    return r.template scalar<M>(i);
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    if constexpr (along_columns_v<M>)
      if (in) return broadcast_packet<F>(value);
    return r.template packet<M, F>(i);
  }
};

/// A tiled reduction read from its slot (plan/reduce_plan.hpp slot_read_node): a slot reader,
/// with nothing decided per element.
template <class R>
struct evaluator<loom::detail::slot_read_node<R>> : reading_evaluator<slot_reader<typename R::value_type>, typename R::value_type> {
  using node_type = loom::detail::slot_read_node<R>;
  evaluator(const node_type& n, const binding& b) {
    reduce_context* ctx = reduce_context::current();
    const reduce_entry* e = ctx ? ctx->find(n.ref, &detail::type_tag<R>::id) : nullptr;
    if (!e || e->cls != occurrence_class::tiled) throw error("loom: internal: a slot read outside its tiled plan");
    this->r.bind(*ctx, *e, b);
  }
};

/// A cached subexpression: read from its cache, which the reduction computing the same values
/// fills, or (where none can: other positions, other operands) a tile_kernel per tile.
template <class S>
struct evaluator<loom::detail::cached_node<S>>
    : reading_evaluator<slot_reader<typename S::value_type, false>, typename S::value_type> {
  using node_type = loom::detail::cached_node<S>;
  evaluator(const node_type& n, const binding& b) {
    reduce_context* ctx = reduce_context::current();
    const reduce_entry* e = ctx ? ctx->find(&n, &detail::type_tag<node_type>::id) : nullptr;
    if (!e) throw error("loom: internal: a cached subexpression outside its tiled plan");
    this->r.bind(*ctx, *e, b);
  }
};

// ---------------------------------------------------------------------------------------------
// Equality of subexpressions (common subexpressions are found by type and operand identity)
// ---------------------------------------------------------------------------------------------

template <class N>
struct same_node {
  static bool eq(const N&, const N&) { return false; }
};
template <class N>
bool node_equal(const N& a, const N& b) {
  return &a == &b || same_node<N>::eq(a, b);
}
template <class A, bool V>
struct same_node<leaf_node<A, V>> {
  static bool eq(const leaf_node<A, V>& a, const leaf_node<A, V>& b) {
    return static_cast<const void*>(a.data()) == static_cast<const void*>(b.data()) && a.shape() == b.shape() &&
           a.strides() == b.strides();
  }
};
template <class T>
struct same_node<scalar_node<T>> {
  static bool eq(const scalar_node<T>& a, const scalar_node<T>& b) {
    return std::memcmp(&a.value, &b.value, sizeof(T)) == 0;
  }
};
template <class Op, class C, class... Args>
struct same_node<map_node<Op, C, Args...>> {
  static bool eq(const map_node<Op, C, Args...>& a, const map_node<Op, C, Args...>& b) {
    return a.shape() == b.shape() && eq_args(a, b, std::index_sequence_for<Args...>{});
  }
  template <std::size_t... I>
  static bool eq_args(const map_node<Op, C, Args...>& a, const map_node<Op, C, Args...>& b, std::index_sequence<I...>) {
    return (node_equal(std::get<I>(a.args), std::get<I>(b.args)) && ...);
  }
};
template <class Red, class Arg, unsigned M, bool K>
struct same_node<reduce_node<Red, Arg, M, K>> {
  static bool eq(const reduce_node<Red, Arg, M, K>& a, const reduce_node<Red, Arg, M, K>& b) {
    return node_equal(a.arg, b.arg);
  }
};
template <class Arg, std::size_t... P>
struct same_node<permute_node<Arg, P...>> {
  static bool eq(const permute_node<Arg, P...>& a, const permute_node<Arg, P...>& b) { return node_equal(a.arg, b.arg); }
};
template <class Arg, std::size_t A>
struct same_node<slice_node<Arg, A>> {
  static bool eq(const slice_node<Arg, A>& a, const slice_node<Arg, A>& b) {
    return a.begin == b.begin && a.step == b.step && a.shape() == b.shape() && node_equal(a.arg, b.arg);
  }
};
template <class Arg, std::size_t A>
struct same_node<flip_node<Arg, A>> {
  static bool eq(const flip_node<Arg, A>& a, const flip_node<Arg, A>& b) { return node_equal(a.arg, b.arg); }
};
template <class Arg, class S>
struct same_node<broadcast_node<Arg, S>> {
  static bool eq(const broadcast_node<Arg, S>& a, const broadcast_node<Arg, S>& b) {
    return a.shape() == b.shape() && node_equal(a.arg, b.arg);
  }
};
template <class Arg, class S>
struct same_node<reshape_node<Arg, S>> {
  static bool eq(const reshape_node<Arg, S>& a, const reshape_node<Arg, S>& b) {
    return a.shape() == b.shape() && node_equal(a.arg, b.arg);
  }
};
template <class Arg, std::size_t A>
struct same_node<pad_node<Arg, A>> {
  static bool eq(const pad_node<Arg, A>& a, const pad_node<Arg, A>& b) {
    return a.before == b.before && a.after == b.after &&
           std::memcmp(&a.value, &b.value, sizeof(a.value)) == 0 && node_equal(a.arg, b.arg);
  }
};
template <std::size_t A, class... Args>
struct same_node<concat_node<A, Args...>> {
  static bool eq(const concat_node<A, Args...>& a, const concat_node<A, Args...>& b) {
    return a.start == b.start && eq_args(a, b, std::index_sequence_for<Args...>{});
  }
  template <std::size_t... I>
  static bool eq_args(const concat_node<A, Args...>& a, const concat_node<A, Args...>& b, std::index_sequence<I...>) {
    return (node_equal(std::get<I>(a.args), std::get<I>(b.args)) && ...);
  }
};
template <class S>
struct same_node<loom::detail::row_value_node<S>> {
  static bool eq(const loom::detail::row_value_node<S>& a, const loom::detail::row_value_node<S>& b) {
    return node_equal(a.arg, b.arg);
  }
};
template <class R>
struct same_node<loom::detail::slot_read_node<R>> {
  static bool eq(const loom::detail::slot_read_node<R>& a, const loom::detail::slot_read_node<R>& b) {
    return node_equal(*a.ref, *b.ref);
  }
};
template <class S>
struct same_node<loom::detail::cached_node<S>> {
  static bool eq(const loom::detail::cached_node<S>& a, const loom::detail::cached_node<S>& b) {
    return node_equal(a.arg, b.arg);
  }
};
template <class T, class S>
struct same_node<iota_node<T, S>> {
  static bool eq(const iota_node<T, S>& a, const iota_node<T, S>& b) { return a.shape() == b.shape(); }
};
template <class T, class S>
struct same_node<full_node<T, S>> {
  static bool eq(const full_node<T, S>& a, const full_node<T, S>& b) {
    return a.shape() == b.shape() && std::memcmp(&a.value, &b.value, sizeof(T)) == 0;
  }
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// What the CPU backend decides at compile time about the parts of a reducing expression
// ---------------------------------------------------------------------------------------------

// Lane bits and cost of a tree, stopping at reduction nodes (their operands run elsewhere).
template <class N>
struct stop_bits;
template <class List>
struct stop_bits_list;
template <class... Ns>
struct stop_bits_list<type_list<Ns...>> {
  static constexpr unsigned value = (0u | ... | stop_bits<Ns>::value);
  static constexpr int cost = (0 + ... + stop_bits<Ns>::cost);
};
template <class S>
struct stop_bits<loom::detail::row_value_node<S>> {
  static constexpr unsigned value = lane_bits<typename S::value_type>();
  static constexpr int cost = 1;
};
template <class R>
struct stop_bits<loom::detail::slot_read_node<R>> {
  static constexpr unsigned value = lane_bits<typename R::value_type>();
  static constexpr int cost = 1;
};
template <class S>
struct stop_bits<loom::detail::cached_node<S>> {
  static constexpr unsigned value = stop_bits<S>::value;
  static constexpr int cost = 1;
};
template <class N>
struct stop_bits {
  static constexpr unsigned value = is_reduce_node<N>::value
                                        ? lane_bits<typename N::value_type>()
                                        : node_lane_bits<N>::value | stop_bits_list<node_children_t<N>>::value;
  static constexpr int cost = is_reduce_node<N>::value ? 1 : op_cost_of<N>::value + stop_bits_list<node_children_t<N>>::cost;
};
template <unsigned Bits>
using lane_class_of_bits = std::conditional_t<Bits == 3u, void, std::conditional_t<Bits == 2u, double, float>>;
}  // namespace detail

/// The lane class and cost of evaluating N into elements of T, reduction operands excluded.
template <class N, class T>
struct stop_traversal {
  static constexpr unsigned bits = detail::stop_bits<N>::value | detail::lane_bits<T>();
  using lane_class = detail::lane_class_of_bits<bits>;
  static constexpr index_t cost = 1 + detail::stop_bits<N>::cost;
};

// ---------------------------------------------------------------------------------------------
// Slots: one reduction computed per tile (type-erased so that the tile loop is written once)
// ---------------------------------------------------------------------------------------------

/// A reduction's space and operand, ready to reduce ranges of its kept outputs.
struct slot_runner {
  reduce_space rs;
  bool alias_ok = true;
  virtual ~slot_runner() = default;
  virtual std::unique_ptr<slot_runner> clone() const = 0;
  /// Appends the operand evaluator's cursors.
  virtual void cursors(std::vector<cursor*>& out) = 0;
  /// Finished outputs of the kept flat range [k0, k1) into out[0, k1 - k0) (the node's value type),
  /// prefetching `pf`'s lines (cpu/prefetch.hpp) as the work goes.
  virtual void run(index_t k0, index_t k1, void* out, const prefetch_stream& pf) = 0;
  /// Adds to `plan` the bytes its operand reads from memory for the kept rows [k0, k1), where they
  /// lie densely (rows of an array, not a gather); nothing where the layout is not one run a row.
  virtual void prefetch_ranges(index_t, index_t, prefetch_plan&) {}
  /// Elements of work a kept row, where run() prefetches through its stream (0: it does not).
  virtual index_t ticked_per_row() const { return 0; }
  /// All outputs, the reduced range cut into fixed chunks (threads over chunks).
  virtual void run_chunked(void* out, index_t chunk) = 0;
  virtual std::size_t value_size() const = 0;
};

/// What the walk knows about a slot.
struct slot_def {
  const void* node = nullptr;
  const void* tag = nullptr;
  binding rows;                           // the occurrence's binding: output axis <- row numbers
  std::unique_ptr<slot_runner> runner;    // built on the calling thread, cloned per thread; none
                                          // for a cache (another slot fills it)
  std::string name;                       // for explain
  int hits = 0;                           // other occurrences sharing it
  bool root = false;
  std::size_t value_size = 0;             // bytes of one value
  const void* value_tag = nullptr;        // a cache: its value type's tag
  index_t per_row = 1;                    // values per row of the tile (a cache: the columns)
  // A reduction: its operand (for caches), the operand's binding to the reduction's space, and
  // the cache slot it keeps its operand's values in (-1: none) with that cache's strides.
  const void* arg = nullptr;
  const void* arg_tag = nullptr;
  binding ebind;
  std::array<index_t, max_rank> eext{};
  int tee = -1;
  std::array<index_t, max_rank> tee_strides{};
};

namespace detail {
/// The reduction's own space: [rows (r)..., reduced axes (m)...] and its operand's binding.
template <class N>
binding reduction_binding(const binding& rows, std::size_t r, const dims& in, std::array<index_t, max_rank>& ext,
                          const std::array<index_t, max_rank>& row_ext) {
  binding c;
  c.node_rank = in.rank;
  std::size_t m = 0;
  for (std::size_t d = 0; d < in.rank; ++d)
    if ((N::mask >> d) & 1u) ++m;
  c.it_rank = r + m;
  for (std::size_t j = 0; j < r; ++j) ext[j] = row_ext[j];
  std::size_t o = 0, red = 0;
  for (std::size_t d = 0; d < in.rank; ++d) {
    if ((N::mask >> d) & 1u) {
      c.coef[d][r + red] = 1;
      ext[r + red] = static_cast<index_t>(in.e[d]);
      ++red;
      if (N::keep) ++o;
    } else {
      for (std::size_t j = 0; j < r; ++j) c.coef[d][j] = rows.coef[o][j];
      c.offset[d] = rows.offset[o];
      ++o;
    }
  }
  return c;
}
}  // namespace detail

/// A leaf read through a strided_reader, whatever the array type: the reduction kernels over a
/// plain tensor or view are then one instantiation per element type (they are the big ones).
template <class V>
struct leaf_reader : reading_evaluator<strided_reader<V>, V> {
  template <class A, bool B>
  leaf_reader(const leaf_node<A, B>& n, const binding& b) {
    this->r.bind(n.data(), n.strides(), b);
  }
};
template <class Arg>
struct operand_evaluator {
  using type = evaluator<Arg>;
};
template <class A, bool B>
struct operand_evaluator<leaf_node<A, B>> {
  using type = leaf_reader<typename A::value_type>;
};

/// The kernels of one reduction: its reducer Red, operand evaluator Ev, accumulator A, lane class
/// F and result R. Shared by every reduction of the same operand type whatever its axes.
template <class Red, class Ev, class A, class F, class R>
struct slot_kernel final : slot_runner {
  using V = typename Ev::value_type;
  std::array<index_t, max_rank> eext{};
  Ev ev;
  std::unique_ptr<A[]> scratch;  // not a vector: A may be bool
  index_t scratch_n = 0;

  /// ev is bound to the reduction's space of extents ext: r kept axes (rows), m reduced ones.
  slot_kernel(Ev e, std::size_t r, std::size_t m, const std::array<index_t, max_rank>& ext, const cursor* dst,
              const dims* dd, const std::array<int, max_rank>* row_axis)
      : eext(ext), ev(std::move(e)) {
    if (dst) check_alias(*dst, *dd, *row_axis, r, m);
    std::vector<cursor*> cs;
    ev.for_each_cursor([&](cursor& c) { cs.push_back(&c); });
    rs = make_reduce_space(eext.data(), r, m, cs.data(), cs.size());
    ev.prepare(rs.ls);
    // A cache written with a stride (not by unit steps along the run) takes the general loop.
    if constexpr (requires { ev.unit_inner(); })
      if (!ev.unit_inner()) rs.contiguous = false;
  }
  slot_kernel(const slot_kernel& o) : slot_runner(o), eext(o.eext), ev(o.ev) {}

  std::unique_ptr<slot_runner> clone() const override { return std::make_unique<slot_kernel>(*this); }
  void cursors(std::vector<cursor*>& out) override {
    ev.for_each_cursor([&](cursor& c) { out.push_back(&c); });
  }
  std::size_t value_size() const override { return sizeof(R); }
  index_t ticked_per_row() const override { return Red::is_arg || rs.outer ? 0 : rs.reduced_count; }

  void prefetch_ranges(index_t k0, index_t k1, prefetch_plan& plan) override {
    if (rs.outer || rs.kr != 1 || k1 <= k0) return;
    const index_t red = rs.reduced_count;
    ev.for_each_cursor([&](const cursor& c) {
      if (!c.dense || c.elem_size == 0 || c.base == nullptr || c.stride[0] <= 0) return;
      index_t lo = 0, hi = 0;  // the row's first and last element, from the row's start
      for (std::size_t k = 1; k < rs.ls.rank; ++k) {
        const index_t d = (rs.ls.extent[k] - 1) * c.stride[k];
        (d < 0 ? lo : hi) += d;
      }
      // Rows of an array read whole (a softmax's, a layer norm's), not a strided sample of one.
      if (c.stride[0] > 2 * red || hi - lo + 1 > 2 * red) return;
      const char* b = static_cast<const char*>(c.base);
      const auto es = static_cast<index_t>(c.elem_size);
      prefetch_range r{b + (c.offset + k0 * c.stride[0] + lo) * es, b + (c.offset + (k1 - 1) * c.stride[0] + hi + 1) * es};
      for (std::size_t i = 0; i < plan.n; ++i) {  // the same array read twice (x * x): once
        if (r.from < plan.r[i].to && plan.r[i].from < r.to) {
          plan.r[i].from = std::min(plan.r[i].from, r.from);
          plan.r[i].to = std::max(plan.r[i].to, r.to);
          return;
        }
      }
      if (plan.n < prefetch_plan::max_ranges) plan.r[plan.n++] = r;
    });
  }

  void run(index_t k0, index_t k1, void* out, const prefetch_stream& pf) override {
    if (scratch_n < k1 - k0) {
      scratch.reset(new A[std::size_t(k1 - k0)]);
      scratch_n = k1 - k0;
    }
    accumulate(ev, k0, k1, 0, rs.reduced_count, scratch.get(), pf);
    R* o = static_cast<R*>(out);
    const index_t count = rs.reduced_count;
    for (index_t k = 0; k < k1 - k0; ++k) o[k] = finalize<Red, R>(scratch[std::size_t(k)], count);
  }

  void run_chunked(void* out, index_t L) override {
    const index_t K = rs.kept_count, total = rs.reduced_count;
    const index_t chunks = (total + L - 1) / L;
    std::unique_ptr<A[]> part(new A[std::size_t(chunks * K)]);
    const index_t threads = static_cast<index_t>(default_pool().size());
    const index_t tasks = std::max<index_t>(1, std::min(threads, chunks));
    const index_t per = (chunks + tasks - 1) / tasks;
    default_pool().run(tasks, [&](index_t t) {
      Ev v = ev;
      for (index_t ch = t * per; ch < std::min(chunks, (t + 1) * per); ++ch)
        accumulate(v, 0, K, ch * L, std::min(total, ch * L + L), part.get() + ch * K);
    });
    R* o = static_cast<R*>(out);
    A* p = part.get();
    if constexpr (Red::is_arg) {
      for (index_t k = 0; k < K; ++k) {
        A best = p[k];
        for (index_t ch = 1; ch < chunks; ++ch) merge_partial<Red>(best, p[ch * K + k]);
        o[k] = finalize<Red, R>(best, total);
      }
    } else {
      // The partial rows merged into the first, whole rows at a time (by packets): each output
      // gets the additions detail::cascade would make of its chunks' values, in its grouping -
      // pairs of whole blocks of chunks, then the blocks that `chunks` leaves, earliest first -
      // so the same bits. (Output by output, through a cascade each, it took 2-3 ns an output and
      // chunk on the Zen 3, serial: 48 us for 1024 columns in 16 chunks.)
      const auto merge = [K](A* to, const A* from) { detail::combine_into<Red, A, F>(to, from, K); };
      if constexpr (detail::is_sum_like<Red>) {
        for (index_t size = 1; 2 * size <= chunks; size *= 2)
          for (index_t s = 0; s + 2 * size <= chunks; s += 2 * size) merge(p + s * K, p + (s + size) * K);
        index_t at = std::bit_floor(std::uint64_t(chunks));
        for (index_t rest = chunks - at; rest > 0;) {
          const index_t size = index_t(std::bit_floor(std::uint64_t(rest)));
          merge(p, p + at * K);
          at += size;
          rest -= size;
        }
      } else {
        for (index_t ch = 1; ch < chunks; ++ch) merge(p, p + ch * K);
      }
      for (index_t k = 0; k < K; ++k) o[k] = finalize<Red, R>(p[k], total);
    }
  }

 private:
  void accumulate(Ev& e, index_t k0, index_t k1, index_t a, index_t b, A* out, const prefetch_stream& pf = {}) {
    if (k1 <= k0) return;
    if (b <= a) {  // nothing to reduce: the identity (an empty axis)
      for (index_t k = 0; k < k1 - k0; ++k) {
        if constexpr (Red::is_arg)
          out[k] = A{};
        else
          out[k] = Red::template identity<A>();
      }
      return;
    }
    if constexpr (Red::is_arg) {
      if (rs.outer) {
        if (rs.contiguous)
          reduce_outer_arg<Red, V, contiguous_mode>(e, rs, k0, k1, a, b, out);
        else
          reduce_outer_arg<Red, V, general_mode>(e, rs, k0, k1, a, b, out);
      } else {
        if (rs.contiguous)
          reduce_inner_arg<Red, V, along_columns<contiguous_mode>>(e, rs, k0, k1, a, b, out);
        else
          reduce_inner_arg<Red, V, along_columns<general_mode>>(e, rs, k0, k1, a, b, out);
      }
    } else {
      if (rs.outer) {
        if (rs.contiguous)
          reduce_outer<Red, A, F, contiguous_mode>(e, rs, k0, k1, a, b, out);
        else
          reduce_outer<Red, A, F, general_mode>(e, rs, k0, k1, a, b, out);
      } else {
        if (rs.contiguous)
          reduce_inner<Red, A, F, along_columns<contiguous_mode>>(e, rs, k0, k1, a, b, out, pf);
        else
          reduce_inner<Red, A, F, along_columns<general_mode>>(e, rs, k0, k1, a, b, out, pf);
      }
    }
  }

  // Reading the destination inside a tile is safe when, for every row, the operand reads exactly
  // that row's elements of the destination (which the tile writes only after its reductions).
  void check_alias(const cursor& dst, const dims& dd, const std::array<int, max_rank>& row_axis, std::size_t r,
                   std::size_t m) {
    dims ed;
    ed.rank = r + m;
    for (std::size_t k = 0; k < r + m; ++k) ed.e[k] = static_cast<std::size_t>(eext[k]);
    ev.for_each_cursor([&](cursor& c) {
      if (c.elem_size == 0 || !alias_ok) return;
      std::uintptr_t a0, a1, b0, b1;
      detail::touched_range(c, ed, a0, a1);
      detail::touched_range(dst, dd, b0, b1);
      if (a1 <= b0 || b1 <= a0) return;
      if (c.base != dst.base || c.offset != dst.offset || c.elem_size != dst.elem_size || r == 0) {
        alias_ok = false;
        return;
      }
      for (std::size_t j = 0; j < r; ++j)
        if (c.stride[j] != dst.stride[std::size_t(row_axis[j])]) alias_ok = false;
      // The reduced axes must cover the destination's columns (the axes that are not rows).
      std::vector<std::pair<index_t, index_t>> red, cols;
      for (std::size_t k = 0; k < m; ++k)
        if (ed.e[r + k] != 1) red.emplace_back(c.stride[r + k], index_t(ed.e[r + k]));
      for (std::size_t k = 0; k < dd.rank; ++k) {
        bool is_row = false;
        for (std::size_t j = 0; j < r; ++j) is_row = is_row || std::size_t(row_axis[j]) == k;
        if (!is_row && dd.e[k] != 1) cols.emplace_back(dst.stride[k], index_t(dd.e[k]));
      }
      std::sort(red.begin(), red.end());
      std::sort(cols.begin(), cols.end());
      if (red != cols) alias_ok = false;
    });
  }
};

/// An operand evaluator that also keeps every value it gives in a cache (through an index
/// cursor the tile loop points at the cache of the thread): the reduction's operand, computed
/// once, read again by the consumer.
template <class Ev>
struct tee_evaluator {
  using value_type = typename Ev::value_type;
  Ev ev;
  cursor tc;
  value_type* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    ev.for_each_cursor(f);
    f(tc);
  }
  void prepare(const loop_space& s) {
    ev.prepare(s);
    outer = s.outer_rank();
    inner = tc.stride[outer];
  }
  /// Whether the cache is written by unit steps along the run (the contiguous loops assume it).
  bool unit_inner() const { return inner == 1; }
  LOOM_INLINE void set_row(const index_t* idx) {
    ev.set_row(idx);
    row = static_cast<value_type*>(const_cast<void*>(tc.base)) + cursor_row(tc, outer, idx);
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    const value_type v = ev.template scalar<M>(i);
    if constexpr (M::contiguous)
      row[i] = v;
    else
      row[i * inner] = v;
    return v;
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    const auto p = ev.template packet<M, F>(i);
    if (M::contiguous || inner == 1)
      cpu::store_packet<F>(row + i, p);
    else
      scatter_packet<F>(row + i * inner, inner, p);
    return p;
  }
};

/// The runner of reduction n (occurrence I of plan P), whose outputs are bound to the r rows of
/// the space by `rows`; with tee >= 0, it also keeps its operand's values in that cache slot (tc:
/// its cursor). The tiled reductions its operand reads are read through their slots.
template <const loom::detail::reduce_plan_info& P, std::size_t I, class N>
std::unique_ptr<slot_runner> make_slot_runner(const N& n, const binding& rows, std::size_t r,
                                              const std::array<index_t, max_rank>& row_ext, const cursor* dst,
                                              const dims* dd, const std::array<int, max_rank>* row_axis,
                                              const cursor* tc = nullptr) {
  using Arg = typename N::arg_type;
  using Red = typename N::reducer;
  using V = typename Arg::value_type;
  using A = std::conditional_t<Red::is_arg, arg_acc<V>, typename N::acc_type>;
  using F = std::conditional_t<Red::is_arg || std::is_same_v<A, bool>, void,
                               detail::lane_class_of_bits<detail::stop_bits<Arg>::value | detail::lane_bits<A>()>>;
  using RA = loom::detail::operand_rewrite<P, I + 1, Arg>;
  using Ev = typename operand_evaluator<typename RA::type>::type;
  using R = typename N::value_type;
  std::array<index_t, max_rank> ext{};
  const binding eb = detail::reduction_binding<N>(rows, r, n.arg.shape().to_dims(), ext, row_ext);
  decltype(auto) arg = RA::make(n.arg);  // n.arg itself where it is not rewritten
  if constexpr (loom::detail::is_map_node<Arg>::value &&
                loom::detail::consumer_cost<Arg>::value >= loom::detail::cache_min_cost) {
    if (tc) {
      tee_evaluator<Ev> t{Ev(arg, eb), *tc};
      return std::make_unique<slot_kernel<Red, tee_evaluator<Ev>, A, F, R>>(std::move(t), r, eb.it_rank - r, ext, dst,
                                                                          dd, row_axis);
    }
  }
  return std::make_unique<slot_kernel<Red, Ev, A, F, R>>(Ev(arg, eb), r, eb.it_rank - r, ext, dst, dd, row_axis);
}
/// The runner of a slot that an elementwise subexpression S fills: S evaluated over the tile's rows
/// of space d (flattened rows first, `cols` elements a row) into the slot's buffer, at `strides`
/// per axis of d. Two uses: a row value (d: the rows, one value a row, vectorised across rows), and
/// the cache of a cached subexpression that no reduction computes at the same positions (d: the
/// consumer's space, a row of the tile's columns per row).
template <class S>
struct tile_kernel final : slot_runner {
  using V = typename S::value_type;
  using F = detail::lane_class_of_bits<detail::stop_bits<S>::value | detail::lane_bits<V>()>;
  evaluator<S> ev;
  strided_writer<V> w;
  bool contiguous = true;
  index_t cols = 1;

  /// dst, dd: the consumer's destination, where S's operands are read before it writes the tile.
  tile_kernel(const S& s, const binding& b, const dims& d, const std::array<index_t, max_rank>& strides, index_t c,
              const cursor* dst = nullptr, const dims* dd = nullptr)
      : ev(s, b), cols(c) {
    w.c.base = nullptr;
    w.c.elem_size = sizeof(V);
    w.c.offset = 0;
    for (std::size_t k = 0; k < d.rank; ++k) w.c.stride[k] = strides[k];
    if (dst) ev.for_each_cursor([&](cursor& cc) { alias_ok = alias_ok && detail::alias_safe(cc, *dst, *dd); });
    std::vector<cursor*> cs{&w.c};
    ev.for_each_cursor([&](cursor& cc) { cs.push_back(&cc); });
    rs.ls = collapse(d, cs.data(), cs.size());
    contiguous = detail::inner_contiguous(cs.data(), cs.size(), rs.ls.rank - 1);
    ev.prepare(rs.ls);
    w.prepare(rs.ls);
  }
  tile_kernel(const tile_kernel&) = default;
  std::unique_ptr<slot_runner> clone() const override { return std::make_unique<tile_kernel>(*this); }
  void cursors(std::vector<cursor*>& out) override {
    ev.for_each_cursor([&](cursor& c) { out.push_back(&c); });
  }
  std::size_t value_size() const override { return sizeof(V); }
  void run(index_t k0, index_t k1, void* out, const prefetch_stream&) override {
    w.c.base = out;
    w.c.offset = -k0 * cols;
    if (contiguous)
      run_range<contiguous_mode, F>(w, ev, rs.ls, k0 * cols, k1 * cols);
    else
      run_range<general_mode, F>(w, ev, rs.ls, k0 * cols, k1 * cols);
  }
  void run_chunked(void*, index_t) override {}
};

namespace detail {

/// Rows of the destination's space: its axes of extent > 1 before the plan's prefix p.
struct tile_rows {
  std::size_t r = 0;
  std::array<int, max_rank> row_of{};    // per axis: row number, or -1
  std::array<int, max_rank> row_axis{};  // per row number: axis
  std::array<index_t, max_rank> ext{}, stride{};
  std::array<index_t, max_rank> col_stride{};  // per axis: its step in a row of the columns
  index_t count = 1, cols = 1;

  tile_rows(const dims& dd, std::size_t p) {
    row_of.fill(-1);
    for (std::size_t k = 0; k < dd.rank; ++k) {
      if (k < p && dd.e[k] != 1) {
        row_of[k] = int(r);
        row_axis[r] = int(k);
        ext[r++] = static_cast<index_t>(dd.e[k]);
      }
    }
    for (std::size_t k = dd.rank; k-- > p;) {
      col_stride[k] = cols;
      cols *= static_cast<index_t>(dd.e[k]);
    }
    for (std::size_t j = r; j-- > 0;) {
      stride[j] = count;
      count *= ext[j];
    }
  }
  /// Rows per tile of a consumer writing elements of `elem` bytes.
  index_t tile(std::size_t elem) const;
  /// A cache's strides per axis of the consumer's space (rank axes): a row of `cols` values per
  /// flattened row of the tile.
  std::array<index_t, max_rank> cache_strides(std::size_t rank) const {
    std::array<index_t, max_rank> st{};
    for (std::size_t k = 0; k < rank; ++k) st[k] = row_of[k] >= 0 ? stride[std::size_t(row_of[k])] * cols : col_stride[k];
    return st;
  }
};

/// Bytes of the destination one tile should cover (the tile's rows are re-read from L1/L2).
inline constexpr index_t tile_bytes = index_t(loom::tile_target_bytes);

inline index_t tile_rows::tile(std::size_t elem) const {
  const index_t per_row_bytes = std::max<index_t>(1, cols * index_t(elem));
  return std::clamp<index_t>(tile_bytes / per_row_bytes, 1, index_t(max_tile_rows));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The walk: occurrences, materialisation, slots
// ---------------------------------------------------------------------------------------------

struct reduce_walk {
  reduce_context ctx;
  std::vector<slot_def> slots;  // post-order
  std::vector<std::shared_ptr<void>> held;  // materialised tensors
  struct materialised_info {
    const void* node;
    const void* tag;
    std::size_t bytes;
    std::string name;
    int hits;
  };
  std::vector<materialised_info> mats;
  bool execute_materialised = true;
  // The space the walk is in: row numbers of its axes, and the rows' extents.
  std::array<int, max_rank> row_of{};
  std::size_t r = 0;
  std::array<index_t, max_rank> row_ext{};
  // For the aliasing check of slots: the destination's cursor, shape and row axes.
  const cursor* dst = nullptr;
  const dims* dd = nullptr;
  std::array<int, max_rank> row_axis{};
  // Slot runners are built after the walk, when the context knows every slot.
  struct builder {
    void (*build)(reduce_walk&, const builder&);
    const void* node;
    binding rows;
    int slot;
  };
  std::vector<builder> builders;
  // Cached subexpressions of the consumer, matched with the reductions that can fill them once the
  // walk is done.
  struct cache_request {
    const void* wrapper;
    const void* wrapper_tag;
    const void* arg;
    const void* arg_tag;
    bool (*equal)(const void*, const void*);
    binding b;  // the subexpression's binding to the consumer's space
    std::size_t value_size;
    const void* value_tag;
    std::string name;
    // Builds the runner that fills the cache per tile where no reduction keeps these values.
    std::unique_ptr<slot_runner> (*fill)(const void* arg, const binding& b, const dims& dd, const cursor* dst,
                                         index_t cols, const std::array<index_t, max_rank>& strides);
  };
  std::vector<cache_request> caches;
  std::vector<std::pair<std::size_t, int>> fills;  // (cache request, slot) filled by a tile_kernel
};

// The walk is indexed at compile time: rt_node<P, I, N> walks node N whose first occurrence (in
// pre-order) is number I of plan P, so each occurrence's class is a constant and only its own
// path is compiled. Occurrences inside a materialised one are never visited (they are part of
// its own plan).
template <const loom::detail::reduce_plan_info& P, std::size_t I, class N>
struct rt_node;
namespace detail {
/// Whether the tree of N holds a cached subexpression (the walk records each, reductions or not).
template <class N>
struct holds_cached;
template <class List>
struct holds_cached_list;
template <class... Ns>
struct holds_cached_list<type_list<Ns...>> {
  static constexpr bool value = (false || ... || holds_cached<Ns>::value);
};
template <class N>
struct holds_cached {
  static constexpr bool value = holds_cached_list<node_children_t<N>>::value;
};
template <class S>
struct holds_cached<loom::detail::cached_node<S>> {
  static constexpr bool value = true;
};
}  // namespace detail

template <const loom::detail::reduce_plan_info& P, std::size_t I, class N>
void rt_walk(const N& n, const binding& b, reduce_walk& w) {
  if constexpr (loom::detail::occurrence_count_v<N> > 0 || detail::holds_cached<N>::value) rt_node<P, I, N>::walk(n, b, w);
}

namespace detail {
/// Occurrence numbers of the operands of a node whose first occurrence is I.
template <std::size_t I, class... Args>
constexpr std::array<std::size_t, sizeof...(Args) + 1> operand_firsts() {
  std::array<std::size_t, sizeof...(Args) + 1> f{};
  f[0] = I;
  std::size_t j = 0;
  ((f[j + 1] = f[j] + loom::detail::occurrence_count_v<Args>, ++j), ...);
  return f;
}
template <const loom::detail::reduce_plan_info& P, std::size_t I, class... Args, class Bind, std::size_t... J>
void walk_operands(const std::tuple<Args...>& args, const Bind& bind, reduce_walk& w, std::index_sequence<J...>) {
  constexpr auto f = operand_firsts<I, Args...>();
  (rt_walk<P, f[J]>(std::get<J>(args), bind(std::get<J>(args)), w), ...);
}
}  // namespace detail

template <const loom::detail::reduce_plan_info& P, std::size_t I, class N>
struct rt_node {  // nodes whose operands are only reached by materialised occurrences
  static void walk(const N& n, const binding& b, reduce_walk& w) {
    if constexpr (requires { n.args; }) {
      detail::walk_operands<P, I>(
          n.args, [&](const auto&) -> const binding& { return b; }, w, std::make_index_sequence<std::tuple_size_v<std::remove_cvref_t<decltype(n.args)>>>{});
    } else if constexpr (requires { n.arg; }) {
      rt_walk<P, I>(n.arg, b, w);
    }
  }
};
template <const loom::detail::reduce_plan_info& P, std::size_t I, class Op, class C, class... Args>
struct rt_node<P, I, map_node<Op, C, Args...>> {
  static void walk(const map_node<Op, C, Args...>& n, const binding& b, reduce_walk& w) {
    const dims nd = n.shape().to_dims();
    detail::walk_operands<P, I>(
        n.args, [&](const auto& a) { return b.broadcast_operand(nd, a.shape().to_dims()); }, w,
        std::index_sequence_for<Args...>{});
  }
};
template <const loom::detail::reduce_plan_info& P, std::size_t I, class Arg, std::size_t... Q>
struct rt_node<P, I, permute_node<Arg, Q...>> {
  static void walk(const permute_node<Arg, Q...>& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, detail::permuted_binding(b, permute_node<Arg, Q...>::perm.data(), sizeof...(Q)), w);
  }
};
template <const loom::detail::reduce_plan_info& P, std::size_t I, class Arg, std::size_t A>
struct rt_node<P, I, slice_node<Arg, A>> {
  static void walk(const slice_node<Arg, A>& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, detail::affine_axis_binding(b, A, n.begin, n.step), w);
  }
};
template <const loom::detail::reduce_plan_info& P, std::size_t I, class Arg, std::size_t A>
struct rt_node<P, I, flip_node<Arg, A>> {
  static void walk(const flip_node<Arg, A>& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, detail::affine_axis_binding(b, A, static_cast<index_t>(n.shape().extent(A)) - 1, -1), w);
  }
};
template <const loom::detail::reduce_plan_info& P, std::size_t I, class Arg, class S>
struct rt_node<P, I, broadcast_node<Arg, S>> {
  static void walk(const broadcast_node<Arg, S>& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, b.broadcast_operand(n.shape().to_dims(), n.arg.shape().to_dims()), w);
  }
};

namespace detail {
inline std::string occurrence_name(std::string_view red, unsigned mask, std::size_t rank, bool keep) {
  return std::string(red) + " over axes " + loom::detail::axes_text(mask, rank) + (keep ? " (keepdims)" : "");
}

/// Materialises occurrence n (or finds an equal one already materialised) and records its entry.
template <class N>
void materialise_occurrence(const N& n, reduce_walk& w) {
  const void* tag = &type_tag<N>::id;
  reduce_entry e;
  e.node = &n;
  e.tag = tag;
  e.cls = occurrence_class::materialised;
  for (auto& m : w.mats) {
    if (m.tag != tag || !node_equal(*static_cast<const N*>(m.node), n)) continue;
    ++m.hits;
    for (auto& f : w.ctx.entries)
      if (f.node == m.node && f.tag == tag) {
        e.data = f.data;
        e.strides = f.strides;
      }
    w.ctx.entries.push_back(e);
    return;
  }
  using held = tensor<typename N::value_type, typename N::shape_type>;
  if (w.execute_materialised) {
    auto t = std::make_shared<held>(n.shape());
    {
      context_scope none(nullptr);
      execute(*t, n);
    }
    e.data = t->data();
    auto st = t->strides();
    for (std::size_t k = 0; k < N::rank; ++k) e.strides[k] = st[k];
    w.held.push_back(t);
  }
  w.ctx.entries.push_back(e);
  w.mats.push_back({&n, tag, n.shape().size() * sizeof(typename N::value_type),
                    occurrence_name(N::reducer::name, N::mask, N::in_rank, N::keep), 0});
}
}  // namespace detail

namespace detail {
/// The binding of a node's outputs to the rows of the walk's space (its other coefficients are 0).
inline binding rows_binding(const binding& b, std::size_t rank, const reduce_walk& w) {
  binding rows;
  rows.node_rank = rank;
  rows.it_rank = w.r;
  for (std::size_t d = 0; d < rank; ++d) {
    rows.offset[d] = b.offset[d];
    for (std::size_t k = 0; k < b.it_rank; ++k)
      if (w.row_of[k] >= 0) rows.coef[d][std::size_t(w.row_of[k])] = b.coef[d][k];
  }
  return rows;
}
/// An earlier slot computing the same node (type and operands) for the same rows, or -1.
template <class N>
int equal_slot(const N& n, const binding& rows, std::size_t r, const reduce_walk& w) {
  const void* tag = &type_tag<N>::id;
  for (std::size_t s = 0; s < w.slots.size(); ++s) {
    const slot_def& sd = w.slots[s];
    if (sd.tag != tag || sd.root || !node_equal(*static_cast<const N*>(sd.node), n)) continue;
    bool same = true;
    for (std::size_t d = 0; d < N::rank && same; ++d) {
      same = sd.rows.offset[d] == rows.offset[d];
      for (std::size_t j = 0; j < r && same; ++j) same = sd.rows.coef[d][j] == rows.coef[d][j];
    }
    if (same) return int(s);
  }
  return -1;
}
/// Sets the context to the rows-first space of a slot (rows are axes 0 .. r-1).
inline void rows_first(reduce_walk& w) {
  w.ctx.row_of.fill(-1);
  for (std::size_t j = 0; j < w.r; ++j) w.ctx.row_of[j] = int(j);
}
}  // namespace detail

template <const loom::detail::reduce_plan_info& P, std::size_t I, class Red, class Arg, unsigned Mask, bool Keep>
struct rt_node<P, I, reduce_node<Red, Arg, Mask, Keep>> {
  using N = reduce_node<Red, Arg, Mask, Keep>;
  static constexpr occurrence_class cls = P.cls[I];
  static void walk(const N& n, const binding& b, reduce_walk& w) {
    if constexpr (cls == occurrence_class::materialised) {
      detail::materialise_occurrence(n, w);
    } else if constexpr (cls == occurrence_class::tiled || cls == occurrence_class::root) {
      walk_tiled(n, b, w);
    }
  }
  static void walk_tiled(const N& n, const binding& b, reduce_walk& w) {
    const void* tag = &detail::type_tag<N>::id;
    const binding rows = detail::rows_binding(b, N::rank, w);
    reduce_entry e;
    e.node = &n;
    e.tag = tag;
    e.cls = occurrence_class::tiled;
    // Equal to an earlier slot: share it (its operand is never evaluated twice).
    if (cls != occurrence_class::root) {
      const int s = detail::equal_slot(n, rows, w.r, w);
      if (s >= 0) {
        ++w.slots[std::size_t(s)].hits;
        e.slot = s;
        w.ctx.entries.push_back(e);
        return;
      }
    }
    // Its operand runs in the reduction's space: rows first, then the reduced axes.
    slot_def sd;
    {
      std::array<int, max_rank> saved = w.row_of;
      sd.ebind = detail::reduction_binding<N>(rows, w.r, n.arg.shape().to_dims(), sd.eext, w.row_ext);
      w.row_of.fill(-1);
      for (std::size_t j = 0; j < w.r; ++j) w.row_of[j] = int(j);
      rt_walk<P, I + 1>(n.arg, sd.ebind, w);
      w.row_of = saved;
    }
    sd.node = &n;
    sd.tag = tag;
    sd.rows = rows;
    sd.root = cls == occurrence_class::root;
    sd.name = detail::occurrence_name(Red::name, Mask, N::in_rank, Keep);
    sd.value_size = sizeof(typename N::value_type);
    sd.arg = &n.arg;
    sd.arg_tag = &detail::type_tag<Arg>::id;
    const int s = int(w.slots.size());
    e.slot = s;
    w.ctx.entries.push_back(e);
    w.slots.push_back(std::move(sd));
    // The runner is built once the context knows every slot (nested ones are already in it).
    w.builders.push_back({&build, &n, rows, s});
  }
  static void build(reduce_walk& ww, const reduce_walk::builder& b) {
    detail::rows_first(ww);
    context_scope in(&ww.ctx);
    slot_def& sd = ww.slots[std::size_t(b.slot)];
    cursor tc;
    if (sd.tee >= 0) {
      tc.base = ww.ctx.tags + sd.tee;
      tc.elem_size = 0;
      tc.offset = 0;
      tc.stride = sd.tee_strides;
    }
    sd.runner = make_slot_runner<P, I>(*static_cast<const N*>(b.node), b.rows, ww.r, ww.row_ext,
                                       sd.root ? nullptr : ww.dst, ww.dd, &ww.row_axis, sd.tee >= 0 ? &tc : nullptr);
  }
};

/// A tiled reduction read through its slot: walked as the reduction itself.
template <const loom::detail::reduce_plan_info& P, std::size_t I, class R>
struct rt_node<P, I, loom::detail::slot_read_node<R>> {
  static void walk(const loom::detail::slot_read_node<R>& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(*n.ref, b, w);
  }
};

/// A row value: its reductions first, then a slot that computes it per row.
template <const loom::detail::reduce_plan_info& P, std::size_t I, class S>
struct rt_node<P, I, loom::detail::row_value_node<S>> {
  using N = loom::detail::row_value_node<S>;
  static void walk(const N& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, b, w);
    const binding rows = detail::rows_binding(b, N::rank, w);
    reduce_entry e;
    e.node = &n;
    e.tag = &detail::type_tag<N>::id;
    e.cls = occurrence_class::tiled;
    e.inline_value = w.ctx.row_values_inline;
    e.slot = detail::equal_slot(n, rows, w.r, w);
    if (e.slot >= 0) {
      if (!e.inline_value) ++w.slots[std::size_t(e.slot)].hits;  // (computed by each reader)
    } else {
      slot_def sd;
      sd.node = &n;
      sd.tag = e.tag;
      sd.rows = rows;
      sd.name = e.inline_value ? "a value per row (computed by the consumer as each row starts)" : "a value per row";
      sd.value_size = sizeof(typename N::value_type);
      sd.per_row = e.inline_value ? 0 : 1;
      e.slot = int(w.slots.size());
      w.slots.push_back(std::move(sd));
      if (!e.inline_value) w.builders.push_back({&build, &n, rows, e.slot});
    }
    w.ctx.entries.push_back(e);
  }
  static void build(reduce_walk& ww, const reduce_walk::builder& b) {
    detail::rows_first(ww);
    context_scope in(&ww.ctx);
    using RS = loom::detail::operand_rewrite<P, I, S>;  // its tiled reductions read through their slots
    dims d;
    d.rank = ww.r;
    for (std::size_t j = 0; j < ww.r; ++j) d.e[j] = static_cast<std::size_t>(ww.row_ext[j]);
    ww.slots[std::size_t(b.slot)].runner = std::make_unique<tile_kernel<typename RS::type>>(
        RS::make(static_cast<const N*>(b.node)->arg), b.rows, d, ww.ctx.row_stride, 1);
  }
};

/// A cached subexpression: walked like any other, matched with its reduction after the walk.
template <const loom::detail::reduce_plan_info& P, std::size_t I, class S>
struct rt_node<P, I, loom::detail::cached_node<S>> {
  using N = loom::detail::cached_node<S>;
  static void walk(const N& n, const binding& b, reduce_walk& w) {
    rt_walk<P, I>(n.arg, b, w);
    w.caches.push_back({&n, &detail::type_tag<N>::id, &n.arg, &detail::type_tag<S>::id,
                        [](const void* a, const void* c) {
                          return node_equal(*static_cast<const S*>(a), *static_cast<const S*>(c));
                        },
                        b, sizeof(typename S::value_type), &detail::type_tag<typename S::value_type>::id,
                        std::string(), &fill});
  }
  static std::unique_ptr<slot_runner> fill(const void* arg, const binding& b, const dims& dd, const cursor* dst,
                                           index_t cols, const std::array<index_t, max_rank>& strides) {
    using RS = loom::detail::operand_rewrite<P, I, S>;  // its tiled reductions read through their slots
    return std::make_unique<tile_kernel<typename RS::type>>(RS::make(*static_cast<const S*>(arg)), b, dd, strides, cols,
                                                            dst, &dd);
  }
};

namespace detail {
/// Matches each cached subexpression with a tiled reduction whose operand is the same node read at
/// the same positions (the reduction's reduced axes are the consumer's columns), and gives both a
/// cache slot: the reduction keeps its operand's values there, the consumer reads them.
inline void resolve_caches(reduce_walk& w, const dims& dd, const tile_rows& g) {
  const auto cs = g.cache_strides(dd.rank);
  auto new_cache = [&](const reduce_walk::cache_request& q, std::string name) {
    slot_def cache;
    cache.name = std::move(name);
    cache.value_size = q.value_size;
    cache.value_tag = q.value_tag;
    cache.per_row = g.cols;
    w.slots.push_back(std::move(cache));
    return int(w.slots.size()) - 1;
  };
  for (std::size_t qi = 0; qi < w.caches.size(); ++qi) {
    auto& q = w.caches[qi];
    int slot = -1;
    // The consumer reads it at the identity of the space (no broadcasting).
    const binding& b = q.b;
    bool identity = b.node_rank == dd.rank;
    for (std::size_t d = 0; identity && d < b.node_rank; ++d) {
      if (b.offset[d] != 0) identity = false;
      for (std::size_t k = 0; k < b.it_rank; ++k)
        if (dd.e[k] != 1 && b.coef[d][k] != (d == k ? 1 : 0)) identity = false;
    }
    for (std::size_t s = 0; identity && s < w.slots.size(); ++s) {
      slot_def& sd = w.slots[s];
      if (sd.root || sd.arg_tag != q.arg_tag || !q.equal(sd.arg, q.arg)) continue;
      // Each axis of the operand must map to one axis of the reduction's space, with coefficient 1
      // and offset 0: rows to their rows, columns to distinct reduced axes.
      const std::size_t er = sd.ebind.it_rank;
      std::array<index_t, max_rank> tee{};
      std::array<int, max_rank> hit{};
      bool ok = sd.ebind.node_rank == dd.rank;
      for (std::size_t d = 0; ok && d < dd.rank; ++d) {
        if (dd.e[d] == 1) continue;
        if (sd.ebind.offset[d] != 0) ok = false;
        int to = -1;
        for (std::size_t k = 0; k < er; ++k) {
          if (sd.ebind.coef[d][k] == 0) continue;
          if (sd.ebind.coef[d][k] != 1 || to >= 0) ok = false;
          to = int(k);
        }
        if (to < 0) {
          ok = false;
          break;
        }
        if (g.row_of[d] >= 0 ? to != g.row_of[d] : std::size_t(to) < w.r) ok = false;
        tee[std::size_t(to)] = cs[d];
        ++hit[std::size_t(to)];
      }
      for (std::size_t k = w.r; ok && k < er; ++k)
        if (sd.eext[k] != 1 && hit[k] != 1) ok = false;
      if (!ok) continue;
      if (sd.tee < 0) {
        sd.tee_strides = tee;
        const int c = new_cache(q, "the values of " + sd.name + "'s operand");  // sd dangles from here on
        w.slots[s].tee = c;
        slot = c;
      } else {
        slot = sd.tee;
        ++w.slots[std::size_t(slot)].hits;
      }
      break;
    }
    if (slot < 0) {  // no reduction computes these values here: a cache filled per tile (walk_and_build)
      slot = new_cache(q, "a subexpression's values (computed per tile)");
      w.fills.emplace_back(qi, slot);
    }
    reduce_entry e;
    e.node = q.wrapper;
    e.tag = q.wrapper_tag;
    e.cls = occurrence_class::tiled;
    e.slot = slot;
    e.per_axis = true;
    e.strides = cs;
    w.ctx.entries.push_back(e);
  }
}
}  // namespace detail
// ---------------------------------------------------------------------------------------------
// The executor
// ---------------------------------------------------------------------------------------------

namespace detail {

/// Whether cursor c, bound to loop space ls, reads any byte of [b0, b1) (slot readers never do).
inline bool reads_range(const cursor& c, const loop_space& ls, std::uintptr_t b0, std::uintptr_t b1) {
  if (c.elem_size == 0) return false;
  std::uintptr_t a0, a1;
  touched_range(c, ls.to_dims(), a0, a1);
  return !(a1 <= b0 || b1 <= a0);
}

/// Whether the operand of any slot's runner reads a byte of [b0, b1).
inline bool slots_read(reduce_walk& w, std::uintptr_t b0, std::uintptr_t b1) {
  for (auto& sd : w.slots) {
    if (!sd.runner) continue;
    std::vector<cursor*> rc;
    sd.runner->cursors(rc);
    for (cursor* c : rc)
      if (reads_range(*c, sd.runner->rs.ls, b0, b1)) return true;
  }
  return false;
}

/// The cache slot that lives in the destination itself, or -1. A row-major destination that no
/// operand reads holds the values of the first cached subexpression of its own type: the
/// reduction computing them writes them into the destination's rows of the tile (the
/// read-for-ownership of those lines overlapped with its arithmetic, as a hand-written softmax
/// stores exp(x - m) into its output), and the consumer rewrites each value in place while the
/// rows are in L1 - one stream of memory traffic and one tile buffer fewer. The consumer reads a
/// cached value only at the position it writes (resolve_caches binds caches at the identity).
/// `consumer`: the consumer's cursors in loop space s, the destination's first.
inline int in_destination(reduce_walk& w, const void* dst_value_tag, bool row_major,
                          const std::vector<cursor*>& consumer, const loop_space& s) {
  if (!row_major) return -1;
  int slot = -1;
  for (std::size_t i = 0; i < w.slots.size() && slot < 0; ++i)
    if (!w.slots[i].runner && w.slots[i].value_tag == dst_value_tag) slot = int(i);
  if (slot < 0) return -1;
  std::uintptr_t b0, b1;
  touched_range(*consumer[0], s.to_dims(), b0, b1);
  for (std::size_t i = 1; i < consumer.size(); ++i)
    if (reads_range(*consumer[i], s, b0, b1)) return -1;
  return slots_read(w, b0, b1) ? -1 : slot;
}

/// Per-thread state of the tile loop: buffers and the cursors that read them.
///
/// A slot of one value a row (a reduction, a row value) holds a segment of rows - up to
/// max_tile_rows, many tiles - so that the consumer's readers stay pointed at it for the whole
/// segment and the consumer runs the segment as one loop nest on one copy of its evaluator (see
/// run_pieces); a cache (a row of values a row) holds a tile.
struct tile_buffers {
  std::unique_ptr<double[]> store;  // 8-byte aligned, which every value type needs; not zeroed (every
                                    // slot's runner writes a tile's values before they are read)
  std::vector<void*> buf;
  std::vector<std::pair<cursor*, int>> readers;         // the consumer's
  std::vector<std::pair<cursor*, int>> runner_readers;  // the slot runners'

  std::vector<index_t> per_row;
  std::vector<std::size_t> value_size;
  std::vector<char> by_segment;  // per slot: its buffer holds a segment (else a tile)
  int in_dst = -1;  // the slot that lives in the destination (see in_destination), or -1
  void* dst = nullptr;

  /// Buffers for tiles of `rows` rows and segments of `segment_rows` (a multiple of rows).
  tile_buffers(const std::vector<slot_def>& slots, index_t rows, index_t segment_rows) {
    std::size_t words = 0;
    std::vector<std::size_t> at;
    for (auto& s : slots) {
      at.push_back(words);
      const bool seg = s.per_row <= 1;
      words += (std::size_t((seg ? segment_rows : rows) * s.per_row) * s.value_size + 63) / 8 + 8;
      per_row.push_back(s.per_row);
      value_size.push_back(s.value_size);
      by_segment.push_back(seg);
    }
    store.reset(new double[std::max<std::size_t>(words, 1)]);
    for (std::size_t i = 0; i < slots.size(); ++i) buf.push_back(store.get() + at[i]);
  }
  void collect(cursor& c, const reduce_context& ctx, bool runner = false) {
    const auto* b = static_cast<const unsigned char*>(c.base);
    if (c.elem_size == 0 && b >= ctx.tags && b < ctx.tags + ctx.nslots)
      (runner ? runner_readers : readers).emplace_back(&c, int(b - ctx.tags));
  }
  /// Points the consumer's readers (runners: the runners') at the buffers of the tile from row r0,
  /// in the segment from row seg0.
  void point(index_t r0, index_t seg0, bool runners = false) {
    for (auto& [c, s] : runners ? runner_readers : readers) {
      const auto i = std::size_t(s);
      if (s == in_dst) {  // the destination's own rows: flat row r at r * cols
        c->base = dst;
        c->offset = 0;
      } else {
        c->base = buf[i];
        c->offset = -(by_segment[i] ? seg0 : r0) * per_row[i];
      }
    }
  }
  /// Where slot i's runner writes the tile from row r0 (in the segment from row seg0).
  void* out(std::size_t i, index_t r0, index_t seg0) const {
    if (!by_segment[i]) return buf[i];
    return static_cast<char*>(buf[i]) + std::size_t((r0 - seg0) * per_row[i]) * value_size[i];
  }
  /// Whether the consumer reads a buffer that holds a tile (its readers move every tile).
  bool consumer_reads_tiles() const {
    for (auto& [c, s] : readers)
      if (s != in_dst && !by_segment[std::size_t(s)]) return true;
    return false;
  }
};

/// The consumer's writer in a tile: a strided writer with the consumer's prefetch stream (its
/// packets then run in groups of four, cpu/loop_nest.hpp run_inner).
template <class T>
struct prefetching_writer : strided_writer<T> {
  mutable prefetch_stream pf;
};

/// Which pass of a tile fetches which of the next tile's lines. The first pass that reads memory
/// (the first reduction) reads the tile; the passes after it - later reductions and the consumer -
/// share the next tile's lines in proportion to their elements, one prefetch every so many
/// elements, so that the fetches spread over the tile's time. (W3 on the Zen 3 of bench/RESULTS.md,
/// 2026-11-28: as fast as all in the first later pass, 9-12% faster than all in the consumer,
/// whose fetches come just before the next tile wants them.)
struct tile_prefetch {
  /// Below this many bytes (the first pass's reads and the destination) a kernel's data is mostly
  /// cached and the prefetches cost more than they hide: on the Zen 3, softmax, layer norm and RMS
  /// norm over 1024-3072 x 1024 floats were mixed (-15% to +10%), over 4096 x 1024 all faster.
  static constexpr std::size_t min_bytes = streaming_store_bytes;
  /// Tiles larger than this (one long row) are not fetched ahead: they would not stay in L2.
  static constexpr index_t max_tile_bytes = index_t(256) << 10;

  std::size_t first = 0;              // the reading pass
  std::vector<index_t> per_row;       // elements a row of each pass that prefetches (others: 0)
  prefetch_plan plan;
  std::vector<prefetch_stream> streams;

  /// `runners`: the thread's; `rows` of `cols` destination elements of T in all; nothing is
  /// fetched unless `enabled` (cpu/tuning.hpp).
  template <class T>
  tile_prefetch(const std::vector<std::unique_ptr<slot_runner>>& runners, index_t rows, index_t cols,
                std::type_identity<T>, bool enabled)
      : per_row(runners.size() + 1, 0), streams(runners.size() + 1) {
    first = runners.size();
    if (!enabled) return;
    for (std::size_t i = 0; i < runners.size(); ++i)
      if (runners[i] && runners[i]->ticked_per_row() > 0) {
        first = i;
        break;
      }
    if (first == runners.size() || rows < 2) return;  // no reduction reads memory, or one row in all
    plan.n = 0;
    runners[first]->prefetch_ranges(0, rows, plan);
    std::size_t bytes = std::size_t(rows * cols) * sizeof(T);
    for (std::size_t i = 0; i < plan.n; ++i) bytes += std::size_t(plan.r[i].to - plan.r[i].from);
    if (bytes <= min_bytes) {
      first = runners.size();
      return;
    }
    for (std::size_t i = first + 1; i < runners.size(); ++i)
      if (runners[i]) per_row[i] = runners[i]->ticked_per_row();
    per_row[runners.size()] = cols;
  }
  /// Arms the streams for rows [n0, n1) of the next tile (none where n1 <= n0), this tile `rows` rows.
  void plan_next(const std::vector<std::unique_ptr<slot_runner>>& runners, index_t n0, index_t n1, index_t rows) {
    if (first == runners.size()) return;
    for (auto& st : streams) st = prefetch_stream{};
    if (n1 <= n0) return;
    plan.n = 0;
    runners[first]->prefetch_ranges(n0, n1, plan);
    const index_t lines = plan.lines();
    index_t total = 0;
    for (index_t w : per_row) total += w;
    if (lines == 0 || total == 0 || lines * prefetch_stream::line > max_tile_bytes) return;
    index_t at = 0, seen = 0;
    for (std::size_t i = 0; i < per_row.size(); ++i) {  // the runners, then the consumer
      if (per_row[i] == 0) continue;
      seen += per_row[i];
      const index_t upto = lines * seen / total;  // lines [at, upto) to this pass
      if (upto > at) streams[i] = prefetch_stream::slice(plan, at, upto - at, per_row[i] * rows / (upto - at));
      at = upto;
    }
  }
  const prefetch_stream& stream(std::size_t i) const { return streams[i]; }
};

template <class T, class R>
void copy_outputs(const R* src, index_t k0, index_t k1, T* dst, const std::array<index_t, max_rank>& dst_stride,
                  const tile_rows& g) {
  std::array<index_t, max_rank> idx{};
  index_t k = k0;
  for (std::size_t j = g.r; j-- > 0;) {
    idx[j] = k % g.ext[j];
    k /= g.ext[j];
  }
  for (index_t i = 0; i < k1 - k0; ++i) {
    index_t off = 0;
    for (std::size_t j = 0; j < g.r; ++j) off += idx[j] * dst_stride[std::size_t(g.row_axis[j])];
    dst[off] = loom::detail::convert<T>(src[i]);
    for (std::size_t j = g.r; j-- > 0;) {
      if (++idx[j] < g.ext[j]) break;
      idx[j] = 0;
    }
  }
}

}  // namespace detail

/// Runs the root reduction (the last slot) into dst (elements at data with strides ds), with its
/// nested tiled slots per block of outputs. `row_major`: dst's strides are its row-major ones.
template <class R, class T>
void run_root(T* data, const std::array<index_t, max_rank>& ds, bool row_major, const detail::tile_rows& g,
              reduce_walk& walk) {
  slot_runner& top = *walk.slots.back().runner;
  const index_t K = g.count, red = top.rs.reduced_count;
  const bool nested = walk.slots.size() > 1;
  const bool direct = std::is_same_v<T, R> && row_major;

  // Few outputs, or a column reduction: split the reduced range into fixed chunks (threads over
  // chunks; the same chunks for any thread count). root_chunk_length says when, and why.
  const index_t L = index_t(root_chunk_length(std::size_t(K), std::size_t(red), top.rs.outer));
  if (!nested && L > 0) {
    std::unique_ptr<R[]> buf(direct ? nullptr : new R[std::size_t(K)]);
    R* out = direct ? reinterpret_cast<R*>(data) : buf.get();
    top.run_chunked(out, L);
    if (!direct) detail::copy_outputs(out, 0, K, data, ds, g);
    return;
  }
  const index_t work = K * std::max<index_t>(red, 1) * 2;
  const index_t threads = static_cast<index_t>(default_pool().size());
  const index_t tasks = (threads == 1 || work < parallel_threshold) ? 1 : std::min(threads, K);
  const index_t per = (K + tasks - 1) / tasks;
  const index_t tile = std::min<index_t>(index_t(max_tile_rows), per);
  auto task = [&](index_t t) {
    std::vector<std::unique_ptr<slot_runner>> runners;
    for (auto& sd : walk.slots) runners.push_back(sd.runner->clone());
    detail::tile_buffers tb(walk.slots, tile, tile);
    std::vector<cursor*> rc;
    for (auto& r : runners) r->cursors(rc);
    for (cursor* c : rc) tb.collect(*c, walk.ctx);
    const index_t k_begin = t * per, k_end = std::min(K, (t + 1) * per);
    for (index_t r0 = k_begin; r0 < k_end; r0 += tile) {
      const index_t r1 = std::min(k_end, r0 + tile);
      tb.point(r0, r0);
      for (std::size_t i = 0; i + 1 < runners.size(); ++i) runners[i]->run(r0, r1, tb.buf[i], {});
      if (direct) {
        runners.back()->run(r0, r1, reinterpret_cast<R*>(data) + r0, {});
      } else {
        runners.back()->run(r0, r1, tb.buf.back(), {});
        detail::copy_outputs(static_cast<const R*>(tb.buf.back()), r0, r1, data, ds, g);
      }
    }
  };
  if (tasks == 1)
    task(0);
  else
    default_pool().run(tasks, task);
}

namespace detail {
/// dst = src broadcast into dst's shape, element by element (the rare paths that go through a
/// temporary use this rather than a whole loop nest per temporary type).
template <class T, class U>
void broadcast_copy(T* dst, const index_t* ds, const dims& dd, const U* src, const dims& sd, const index_t* ss) {
  std::array<index_t, max_rank> st{};  // src strides per dst axis (0 where broadcast)
  const std::size_t lead = dd.rank - sd.rank;
  for (std::size_t k = 0; k < sd.rank; ++k) st[k + lead] = sd.e[k] == 1 ? 0 : ss[k];
  const std::size_t n = dd.size();
  std::array<index_t, max_rank> idx{};
  for (std::size_t i = 0; i < n; ++i) {
    index_t a = 0, b = 0;
    for (std::size_t k = 0; k < dd.rank; ++k) {
      a += idx[k] * ds[k];
      b += idx[k] * st[k];
    }
    dst[a] = loom::detail::convert<T>(src[b]);
    for (std::size_t k = dd.rank; k-- > 0;) {
      if (++idx[k] < index_t(dd.e[k])) break;
      idx[k] = 0;
    }
  }
}
template <class Dst, class Tensor>
void copy_into(Dst& dst, const Tensor& t) {
  const auto ds = dst.strides();
  const auto ss = t.strides();
  broadcast_copy(dst.data(), ds.data(), dst.shape().to_dims(), t.data(), t.shape().to_dims(), ss.data());
}

/// Walks the expression (plan P) into `walk`, gives cached subexpressions their caches, and
/// builds the slot runners.
template <const loom::detail::reduce_plan_info& P, class N>
void walk_and_build(const N& n, const binding& rootb, reduce_walk& walk, const tile_rows& g, const dims& dd,
                    std::vector<unsigned char>& tags) {
  rt_walk<P, 0>(n, rootb, walk);
  resolve_caches(walk, dd, g);
  tags.assign(std::max<std::size_t>(walk.slots.size(), 1), 0);
  walk.ctx.tags = tags.data();
  walk.ctx.nslots = walk.slots.size();
  walk.ctx.row_stride = g.stride;
  for (auto& b : walk.builders) b.build(walk, b);
  if (!walk.fills.empty()) {  // in the consumer's space
    const auto strides = g.cache_strides(dd.rank);
    walk.ctx.row_of = g.row_of;
    context_scope in(&walk.ctx);
    for (auto& [qi, slot] : walk.fills) {
      const auto& q = walk.caches[qi];
      walk.slots[std::size_t(slot)].runner = q.fill(q.arg, q.b, dd, walk.dst, g.cols, strides);
    }
  }
}
}  // namespace detail

/// Evaluates an expression holding reductions into dst, following its compile-time plan.
template <class Dst, class N>
void execute_reducing(Dst& dst, const N& n) {
  using D = std::remove_cvref_t<Dst>;
  using T = typename D::value_type;
  using DS = typename D::shape_type;
  const dims dd = dst.shape().to_dims();
  const dims ed = n.shape().to_dims();
  check_assignable(ed, dd);
  if (dd.size() == 0) return;
  constexpr const loom::detail::reduce_plan_info& plan = loom::detail::reduce_plan_v<N, DS>;
  static_assert(loom::detail::occurrence_count_v<N> <= max_occurrences,
                "loom: an expression holds more reductions than the plan tracks (max_occurrences)");

  strided_writer<T> w;
  w.bind(dst.data(), dst.strides(), dd.rank);
  auto through_temporary = [&] {
    detail::via_temporary(dst, [&](auto& tmp) { execute_reducing(tmp, n); },
                          [&](const auto& tmp) { detail::copy_into(dst, tmp); });
  };

  if constexpr (plan.root) {
    if (!(dd == ed)) {  // the root's result is broadcast into dst: compute it first
      tensor<typename N::value_type, typename N::shape_type> t(n.shape());
      execute_reducing(t, n);
      detail::copy_into(dst, t);
      return;
    }
    const detail::tile_rows g(dd, dd.rank);
    reduce_walk walk;
    walk.row_of = g.row_of;
    walk.r = g.r;
    walk.row_ext = g.ext;
    walk.dd = &dd;
    walk.row_axis = g.row_axis;
    std::vector<unsigned char> tags;
    detail::walk_and_build<loom::detail::reduce_plan_v<N, DS>>(n, binding::identity(dd.rank), walk, g, dd, tags);
    // A reduction cannot write what it still reads: any overlap of an operand with dst goes
    // through a temporary.
    std::uintptr_t b0, b1;
    detail::touched_range(w.c, dd, b0, b1);
    // (never for the fresh temporary of an earlier overlap)
    if (detail::slots_read(walk, b0, b1) && !detail::is_fresh(w.c)) {
      through_temporary();
      return;
    }
    const auto dst_strides = dst.strides();
    std::array<index_t, max_rank> ds{};
    for (std::size_t k = 0; k < dst_strides.size(); ++k) ds[k] = dst_strides[k];
    run_root<typename N::value_type>(dst.data(), ds, dst_strides == loom::detail::row_major_strides(dst.shape()), g,
                                     walk);
  } else if constexpr (plan.tiled == 0) {  // only materialised reductions, then a plain loop nest
    const detail::tile_rows g(dd, plan.p);
    reduce_walk walk;
    walk.row_of = g.row_of;
    const binding rootb = binding::identity(dd.rank).broadcast_operand(dd, ed);
    std::vector<unsigned char> tags;
    detail::walk_and_build<loom::detail::reduce_plan_v<N, DS>>(n, rootb, walk, g, dd, tags);
    using trav = stop_traversal<N, T>;
    std::optional<evaluator<N>> evo;
    {
      context_scope in(&walk.ctx);
      evo.emplace(n, rootb);
    }
    evaluator<N>& ev = *evo;
    bool safe = true;
    ev.for_each_cursor([&](cursor& c) { safe = safe && detail::alias_safe(c, w.c, dd); });
    if (!safe) {
      through_temporary();
      return;
    }
    std::vector<cursor*> cs;
    cs.push_back(&w.c);
    ev.for_each_cursor([&](cursor& c) { cs.push_back(&c); });
    const loop_space s = collapse(dd, cs.data(), cs.size());
    const bool contiguous = detail::inner_contiguous(cs.data(), cs.size(), s.rank - 1);
    ev.prepare(s);
    w.prepare(s);
    run_loop_nest<typename trav::lane_class>(w, ev, s, choose_layout(contiguous, cs.size() * dd.size() * sizeof(T)),
                                             trav::cost);
  } else {
    // The consumer, its row values and cached subexpressions wrapped (plan/reduce_plan.hpp).
    using rewrite = loom::detail::consumer_rewrite<N, loom::detail::reduce_plan_v<N, DS>, 0, N>;
    using NR = typename rewrite::type;
    const NR nr = rewrite::make(n);
    const detail::tile_rows g(dd, plan.p);
    reduce_walk walk;
    walk.row_of = g.row_of;
    walk.r = g.r;
    walk.row_ext = g.ext;
    walk.dst = &w.c;
    walk.dd = &dd;
    walk.row_axis = g.row_axis;
    walk.ctx.row_values_inline = g.cols > 1;  // the consumer then runs along columns (below)
    const binding rootb = binding::identity(dd.rank).broadcast_operand(dd, ed);
    std::vector<unsigned char> tags;
    detail::walk_and_build<loom::detail::reduce_plan_v<N, DS>>(nr, rootb, walk, g, dd, tags);
    bool safe = true;
    for (auto& sd : walk.slots)
      if (sd.runner && !sd.runner->alias_ok) safe = false;

    using trav = stop_traversal<NR, T>;
    using F = typename trav::lane_class;
    walk.ctx.row_of = g.row_of;
    std::optional<evaluator<NR>> evo;
    {
      context_scope in(&walk.ctx);
      evo.emplace(nr, rootb);
    }
    evaluator<NR>& ev = *evo;
    ev.for_each_cursor([&](cursor& c) { safe = safe && detail::alias_safe(c, w.c, dd); });
    if (!safe) {
      through_temporary();
      return;
    }
    std::vector<cursor*> cs;
    cs.push_back(&w.c);
    ev.for_each_cursor([&](cursor& c) { cs.push_back(&c); });
    const loop_space s = collapse(dd, cs.data(), cs.size());
    const bool contiguous = detail::inner_contiguous(cs.data(), cs.size(), s.rank - 1);
    const int in_dst = g.cols > 1 ? detail::in_destination(walk, &detail::type_tag<T>::id,
                                                           dst.strides() == loom::detail::row_major_strides(dst.shape()),
                                                           cs, s)
                                  : -1;
    // Plain stores where the consumer rewrites lines a reduction has just written (in_dst), or
    // where this machine's tiled kernels do not stream (cpu/tuning.hpp).
    const tiled_tuning tuning = get_tiled_tuning();
    layout_class layout = choose_layout(contiguous, cs.size() * dd.size() * sizeof(T));
    if (layout == layout_class::streaming && (in_dst >= 0 || !tuning.streaming_stores))
      layout = layout_class::contiguous;
    ev.prepare(s);
    w.prepare(s);

    const index_t tile = g.tile(sizeof(T));
    index_t work = index_t(dd.size()) * trav::cost;
    for (auto& sd : walk.slots)
      if (sd.runner) work += g.count * sd.runner->rs.reduced_count * 2;
    const index_t segment = std::max<index_t>(1, index_t(max_tile_rows) / tile) * tile;  // rows, whole tiles
    const index_t ntiles = (g.count + tile - 1) / tile;
    const index_t threads = static_cast<index_t>(default_pool().size());
    const index_t tasks = (threads == 1 || work < parallel_threshold) ? 1 : std::min(threads, ntiles);
    // Each thread sets its state up once, then takes chunks of tiles in order from a shared
    // counter (about eight per thread), so a thread that starts late - a worker woken from sleep,
    // a virtual CPU the host has lent elsewhere - takes fewer instead of holding everyone up.
    // Which thread runs a tile does not change its values.
    const index_t chunks = tasks == 1 ? 1 : std::min(ntiles, tasks * 8);
    const index_t per = (ntiles + chunks - 1) / chunks;
    std::atomic<index_t> next_chunk{0};
    constexpr bool can_stream =
        !std::is_void_v<F> && stream_alignment<std::conditional_t<std::is_void_v<F>, float, F>, T> != 0;
    using stream_m = std::conditional_t<can_stream, streaming_mode, contiguous_mode>;
    auto task = [&](index_t) {
      evaluator<NR> v = ev;
      detail::prefetching_writer<T> wt{w, {}};
      std::vector<std::unique_ptr<slot_runner>> runners;
      for (auto& sd : walk.slots) runners.push_back(sd.runner ? sd.runner->clone() : nullptr);
      detail::tile_prefetch pf(runners, g.count, g.cols, std::type_identity<T>{}, tuning.prefetch_next_tile);
      detail::tile_buffers tb(walk.slots, tile, segment);
      tb.in_dst = in_dst;
      tb.dst = dst.data();
      v.for_each_cursor([&](cursor& c) { tb.collect(c, walk.ctx); });
      std::vector<cursor*> rc;
      for (auto& r : runners)
        if (r) r->cursors(rc);
      for (cursor* c : rc) tb.collect(*c, walk.ctx, true);
      const bool tile_by_tile = tb.consumer_reads_tiles();
      const prefetch_stream* consumer_stream = pf.first == runners.size() ? nullptr : &pf.stream(runners.size());
      index_t seg0 = 0, r_end = 0;
      // A tile's passes before the consumer: the reductions (each fills its slot for the tile's
      // rows), then the runners' readers pointed at the next tile - before the consumer's stores:
      // pointed after them, their stores wait behind the consumer's (which miss), and a runner's
      // copy of its evaluator (wide loads of those narrow stores, which cannot be forwarded)
      // waits until all of them have reached the cache (bench/RESULTS.md, 2026-11-28 20:08).
      const auto passes = [&](index_t r0, index_t r1) {
        // The next tile's rows, fetched while this one's later passes work (if it is this
        // thread's: the chunk's own). Planned after the pass that reads this tile from memory,
        // not before it: that pass only loads, so the planning's stores find the store buffer
        // empty. Just after the previous tile's consumer it is full of that pass's stores
        // (lines that miss), and every store waits for an entry. Without a reading pass
        // (pf.first == runners.size()) nothing is planned.
        for (std::size_t i = 0; i < runners.size(); ++i) {
          if (runners[i]) runners[i]->run(r0, r1, tb.out(i, r0, seg0), pf.stream(i));
          if (i == pf.first) pf.plan_next(runners, r1, std::min(r_end, r1 + tile), r1 - r0);
        }
        if (r1 < r_end) tb.point(r1, r1 - seg0 < segment ? seg0 : r1, true);
      };
      bool outside = false;  // the passes are run by the tile loop (tile_by_tile), not the consumer's
      const auto before = [&](index_t b, index_t e) -> const prefetch_stream* {
        if (outside) return nullptr;
        passes(b / g.cols, e / g.cols);
        return consumer_stream;
      };
      const auto consume = [&](index_t b, index_t e, index_t step) {
        if (g.cols > 1) {  // the inner axis is a column: per-row values broadcast, caches contiguous
          if (layout == layout_class::general)
            run_pieces<along_columns<general_mode>, F>(wt, v, s, b, e, step, before);
          else if (layout == layout_class::streaming)
            run_pieces<along_columns<stream_m>, F>(wt, v, s, b, e, step, before);  // fenced below
          else
            run_pieces<along_columns<contiguous_mode>, F>(wt, v, s, b, e, step, before);
        } else {
          if (layout == layout_class::general)
            run_pieces<general_mode, F>(wt, v, s, b, e, step, before);
          else
            run_pieces<contiguous_mode, F>(wt, v, s, b, e, step, before);
        }
      };
      for (index_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1)) {
        const index_t r_begin = c * per * tile;
        r_end = std::min(g.count, (c + 1) * per * tile);
        tb.point(r_begin, r_begin, true);
        for (seg0 = r_begin; seg0 < r_end; seg0 += segment) {
          const index_t seg1 = std::min(r_end, seg0 + segment);
          tb.point(seg0, seg0);
          if (!tile_by_tile) {  // the segment as one loop nest, the passes run as each tile starts
            outside = false;
            consume(seg0 * g.cols, seg1 * g.cols, tile * g.cols);
            continue;
          }
          outside = true;
          for (index_t r0 = seg0; r0 < seg1; r0 += tile) {
            const index_t r1 = std::min(seg1, r0 + tile);
            passes(r0, r1);
            if (consumer_stream) wt.pf = *consumer_stream;
            tb.point(r0, seg0);
            consume(r0 * g.cols, r1 * g.cols, (r1 - r0) * g.cols);
          }
        }
      }
      if (layout == layout_class::streaming) stream_fence();  // once, after this thread's last tile
    };
    if (tasks == 1)
      task(0);
    else
      default_pool().run(tasks, task);
  }
}

/// How the CPU evaluates an expression holding reductions (for explain): tiles, the reductions
/// per tile in order, common subexpressions, and what is materialised first.
template <class DS, class N>
std::string describe_reducing(const N& n) {
  const dims dd = n.shape().to_dims();
  if (dd.size() == 0) return "  cpu: (empty)\n";
  constexpr const loom::detail::reduce_plan_info& plan = loom::detail::reduce_plan_v<N, DS>;
  const detail::tile_rows g(dd, plan.root ? dd.rank : plan.p);
  reduce_walk walk;
  walk.row_of = g.row_of;
  walk.r = g.r;
  walk.row_ext = g.ext;
  walk.execute_materialised = false;
  walk.ctx.row_values_inline = g.cols > 1;
  using rewrite = loom::detail::consumer_rewrite<N, loom::detail::reduce_plan_v<N, DS>, 0, N>;
  using NR = std::conditional_t<plan.root || plan.tiled == 0, N, typename rewrite::type>;
  const NR nr = [&]() -> NR {
    if constexpr (plan.root || plan.tiled == 0)
      return n;
    else
      return rewrite::make(n);
  }();
  rt_walk<loom::detail::reduce_plan_v<N, DS>, 0>(nr, binding::identity(dd.rank), walk);
  detail::resolve_caches(walk, dd, g);
  std::string s;
  auto list = [&](std::size_t from, std::size_t to) {
    std::string l;
    for (std::size_t i = from; i < to; ++i) {
      const slot_def& sd = walk.slots[i];
      l += i > from ? "; r" : "r";  // appended piece by piece: GCC 12 warns (-Wrestrict) on "r" + string
      l += std::to_string(i);
      l += " = ";
      l += sd.name;
      if (sd.tee >= 0) l += " (keeping its operand in r" + std::to_string(sd.tee) + ")";
    }
    return l;
  };
  const std::string th = std::to_string(num_threads());
  if (plan.root) {
    index_t red = 1;
    if constexpr (is_reduce_node<N>::value) red = static_cast<index_t>(n.reduced_count());
    const std::size_t nested = walk.slots.size() - 1;
    s += "  cpu: " + std::to_string(g.count) + " outputs, each reducing " + std::to_string(red) + " elements";
    if (nested == 0 && g.count < 16 && g.count * red >= (index_t(1) << 17))
      s += "; the reduced range in fixed chunks of 32768 (threads " + th +
           "), partial results combined in order";
    else
      s += "; blocks of up to " + std::to_string(max_tile_rows) + " outputs (threads " + th + ")";
    s += "\n";
    if (nested)
      s += "  cpu: per block, first: " + list(0, nested) + "\n";
  } else if (!walk.slots.empty()) {
    const index_t t = g.tile(sizeof(typename N::value_type));
    s += "  cpu: tiles of " + std::to_string(t) + " rows x " + std::to_string(g.cols) + " elements (" +
         std::to_string((g.count + t - 1) / t) + " tiles, threads " + th + "); per tile, in order: " +
         list(0, walk.slots.size()) + "; then the consumer over the tile\n";
    const tiled_tuning tn = get_tiled_tuning();
    const std::string mib = std::to_string(detail::tile_prefetch::min_bytes >> 20);
    if ((g.count + t - 1) / t > 1) {
      if (tn.prefetch_next_tile)
        s += "  cpu: the passes after the first prefetch the next tile's rows where the first pass's reads and the "
             "destination pass " + mib + " MiB\n";
      else
        s += "  cpu: the next tile's rows are left to the hardware prefetcher (software prefetch off: "
             "cpu/tuning.hpp)\n";
    }
    if (tn.streaming_stores)
      s += "  cpu: the consumer writes with streaming stores where its traffic passes " + mib +
           " MiB and its arithmetic is light, unless it rewrites values a reduction kept in the destination\n";
    else
      s += "  cpu: the consumer writes with cached stores (streaming stores off: cpu/tuning.hpp)\n";
  }
  int hits = 0;
  std::string cse;
  for (auto& sd : walk.slots)
    if (sd.hits) {
      hits += sd.hits;
      cse += (cse.empty() ? "" : "; ") + sd.name + " computed once for " + std::to_string(sd.hits + 1) + " uses";
    }
  for (auto& m : walk.mats)
    if (m.hits) {
      hits += m.hits;
      cse += (cse.empty() ? "" : "; ") + m.name + " computed once for " + std::to_string(m.hits + 1) + " uses";
    }
  s += "  cpu: common subexpressions: " + std::to_string(hits) + (hits ? " (" + cse + ")" : std::string()) + "\n";
  if (!walk.mats.empty()) {
    s += "  cpu: materialised first, each at its own size:";
    for (auto& m : walk.mats) s += " " + m.name + " (" + std::to_string(m.bytes) + " bytes);";
    s.back() = '\n';
  }
  return s;
}

}  // namespace cpu
}  // namespace loom

// The contraction evaluator builds on this file (see the end of assign.hpp).
#include "loom/cpu/matmul.hpp"
