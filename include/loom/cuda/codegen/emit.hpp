// loom/cuda/codegen/emit.hpp: what each node kind contributes to a generated kernel.
//
// Two halves per node kind, walked in the same order (depth first, operands left to right):
//
// * emitter<N>::emit(emit_state&) prints the node's device expression, from its type alone. A leaf
//   becomes a parameter of the element function (x0, x1, ...: the value the kernel loaded for it
//   at the current index), a scalar a field of the argument block (p.s0, ...), a map node the call
//   of its op's device helper on its operands converted to the op's computation type. This runs
//   once per expression type (the source is a function-local static), so it may allocate freely.
// * binder<N>::bind(node, operand_sink&, binding) collects, at every launch, the run-time values
//   those parameters stand for: each leaf's device address and its strides over the iteration
//   space (a cpu::binding, the same backend-neutral description of "which element of this node
//   does iteration index i reach" that the CPU evaluators use: 0 on broadcast axes), and each
//   scalar's bytes. It runs on the hot path: no allocation, no strings.
//
// A new node kind adds one specialisation of each (and of param_count if it adds parameters):
//   - an affine index map (transpose, permute, slice, broadcast_to, flip, reshape of a contiguous
//     operand) prints nothing of its own: its emitter returns its operand's expression, its binder
//     rewrites the binding before binding its operand. The leaves underneath just get other strides.
//   - a generator prints a value of its own: full a scalar parameter, iota a *position* (a leaf
//     that is not memory: the kernel hands element() start + offset instead of a load, the same
//     linear function of the iteration index an address is, so it collapses and strides like one).
//   - a non-affine map (concat, pad) prints a selection on a position along its axis; the leaves
//     under it are *lazy*: element() gets their offsets and loads only in the branch taken (their
//     cursors point past their arrays outside it). Kernels with positions or lazy leaves take the
//     scalar path (kernel_desc::scalar_only).
//   - a node with no emitter makes the expression "not emittable" (emittable<N> is false), and the
//     CUDA entry points throw cuda_error naming it instead of failing to compile, so generic code
//     that only runs on a GPU where the backend supports it still builds everywhere.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/core/error.hpp"
#include "loom/expr/generator.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/expr/traits.hpp"

namespace loom::cuda::codegen {

// ---------------------------------------------------------------------------------------------
// Emission: the run-time core (no templates, so the tests can drive it in loops)
// ---------------------------------------------------------------------------------------------

/// A printed device expression and the dtype of its value.
struct emitted {
  std::string text;
  dtype type = dtype::float32;
};

/// The size in bytes of a dtype's element.
constexpr std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::bool_: return 1;
    case dtype::int32: return 4;
    case dtype::int64: return 8;
    case dtype::float32: return 4;
    case dtype::float64: return 8;
  }
  return 0;
}

/// What a leaf parameter of element() holds.
///   value     the leaf's element at the current index, loaded by the kernel (x<k>)
///   lazy      the offset of that element (x<k>), loaded in element() as p.a<k>[x<k>] only where
///             the branch of a concat or pad that reads it is taken
///   position  a position, not memory: the argument block's start plus the offset (long long)
enum class leaf_kind : std::uint8_t { value, lazy, position };

/// The leaves and scalars an expression's kernel takes, in the order the emitters met them.
class emit_state {
 public:
  /// A leaf of element type t: its value at the current index is parameter x<k> of element()
  /// (inside a concat or pad: loaded from its offset x<k>).
  /// `rank`: the array's (row kernels cache a row only across leaves of one rank).
  LOOM_NOINLINE emitted leaf(dtype t, std::size_t rank = 0) {
    leaves_.push_back(t);
    ranks_.push_back(rank);
    owners_.push_back(open_.empty() ? -1 : open_.back());
    kinds_.push_back(lazy_ > 0 ? leaf_kind::lazy : leaf_kind::value);
    const std::string k = std::to_string(leaves_.size() - 1);
    if (lazy_ > 0) return {"p.a" + k + "[x" + k + "]", t};
    return {"x" + k, t};
  }
  /// A position (int64): start + the offset at the current index, parameter x<k> of element().
  LOOM_NOINLINE emitted position() {
    leaves_.push_back(dtype::int64);
    ranks_.push_back(0);
    owners_.push_back(open_.empty() ? -1 : open_.back());
    kinds_.push_back(leaf_kind::position);
    return {"x" + std::to_string(leaves_.size() - 1), dtype::int64};
  }
  /// Leaves emitted between enter_lazy() and leave_lazy() are lazy (concat and pad operands).
  void enter_lazy() noexcept { ++lazy_; }
  void leave_lazy() noexcept { --lazy_; }
  /// A scalar of type t, passed in the argument block as s<k>.
  LOOM_NOINLINE emitted scalar(dtype t) {
    scalars_.push_back(t);
    std::string name = "p.s";
    name += std::to_string(scalars_.size() - 1);
    return {std::move(name), t};
  }
  [[nodiscard]] const std::vector<dtype>& leaves() const noexcept { return leaves_; }
  [[nodiscard]] const std::vector<leaf_kind>& kinds() const noexcept { return kinds_; }
  [[nodiscard]] const std::vector<std::size_t>& ranks() const noexcept { return ranks_; }
  [[nodiscard]] const std::vector<dtype>& scalars() const noexcept { return scalars_; }

  // Row kernels (codegen/row_kernel.hpp): reductions over the trailing axes whose results are
  // broadcast back along them print as row values r<j>, computed by the kernel before the row
  // is written. Reductions print only in that mode.

  /// A reduction printed into a row kernel: its operand over x<k> (its own leaves), p.s<k> and
  /// the row values of the reductions nested in it.
  struct row_reduction {
    std::string reducer;
    emitted operand;
    dtype out = dtype::float32;
    std::size_t leaf_begin = 0, leaf_end = 0, scalar_begin = 0, scalar_end = 0;  ///< emitted inside
    bool nested = false;  ///< it holds other reductions
  };
  void enable_rows() noexcept { rows_ = true; }
  [[nodiscard]] bool rows() const noexcept { return rows_; }
  /// Opens a reduction's operand: the leaves emitted until close_reduction() are its own.
  void open_reduction() {
    open_.push_back(static_cast<int>(pending_++));
    starts_.push_back({leaves_.size(), scalars_.size(), reductions_.size()});
  }
  /// Closes the innermost open reduction: row value r<j>, j its index in reductions() (nested
  /// ones come first, in the order they must be computed).
  LOOM_NOINLINE emitted close_reduction(std::string reducer, emitted operand, dtype out) {
    const int provisional = open_.back();
    open_.pop_back();
    const auto [l0, s0, r0] = starts_.back();
    starts_.pop_back();
    row_reduction r{std::move(reducer), std::move(operand), out, l0, leaves_.size(), s0, scalars_.size(),
                    reductions_.size() != r0};
    reductions_.push_back(std::move(r));
    final_.resize(pending_, -1);
    final_[static_cast<std::size_t>(provisional)] = static_cast<int>(reductions_.size() - 1);
    return {"r" + std::to_string(reductions_.size() - 1), out};
  }
  [[nodiscard]] const std::vector<row_reduction>& reductions() const noexcept { return reductions_; }
  /// The reduction whose operand reads leaf k directly (-1: the expression written).
  [[nodiscard]] int owner(std::size_t k) const {
    const int o = owners_.at(k);
    return o < 0 ? -1 : final_.at(static_cast<std::size_t>(o));
  }

 private:
  struct open_start {
    std::size_t leaves, scalars, reductions;
  };
  std::vector<dtype> leaves_;
  std::vector<int> owners_;  ///< provisional reduction ids (-1: none)
  std::vector<leaf_kind> kinds_;
  std::vector<std::size_t> ranks_;
  std::vector<dtype> scalars_;
  std::vector<row_reduction> reductions_;
  std::vector<int> open_, final_;
  std::vector<open_start> starts_;
  std::size_t pending_ = 0;
  int lazy_ = 0;
  bool rows_ = false;
};

/// The type operand i of an op with rule `rule` is converted to before the op applies
/// (cpu/evaluator.hpp follows the same rule): bool for logic and for where's condition, else the
/// computation type.
constexpr dtype operand_dtype(type_rule rule, dtype compute, std::size_t i) {
  if (rule == type_rule::logical || (rule == type_rule::select && i == 0)) return dtype::bool_;
  return compute;
}

/// The value type of an op: bool for comparisons and logic, else the computation type.
constexpr dtype result_dtype(type_rule rule, dtype compute) {
  return rule == type_rule::comparison || rule == type_rule::logical ? dtype::bool_ : compute;
}

/// `e` converted to t (the text unchanged where it already is a t).
inline emitted convert_to(emitted e, dtype t) {
  if (e.type == t) return e;
  return {"loom::dev::cvt<" + std::string(dtype_c_name(t)) + ">(" + e.text + ")", t};
}

/// The device expression of op `name` (its rule and computation type) over its operands:
///   emit_map("add", arithmetic, float32, {x0: float32, p.s0: float32}) is loom::dev::add(x0, p.s0)
///   emit_map("exp", floating, float64, {x0: int32})        is loom::dev::exp(loom::dev::cvt<double>(x0))
///   emit_map("cast", convert, int32, {x0: float32})        is loom::dev::cvt<int>(x0)
LOOM_NOINLINE inline emitted emit_map(std::string_view name, type_rule rule, dtype compute, std::vector<emitted> operands) {
  for (std::size_t i = 0; i < operands.size(); ++i)
    operands[i] = convert_to(std::move(operands[i]), operand_dtype(rule, compute, i));
  if (rule == type_rule::convert) return {operands.at(0).text, compute};
  std::string s = "loom::dev::";
  s += name;
  s += '(';
  for (std::size_t i = 0; i < operands.size(); ++i) {
    if (i) s += ", ";
    s += operands[i].text;
  }
  s += ')';
  return {std::move(s), result_dtype(rule, compute)};
}

// ---------------------------------------------------------------------------------------------
// Emission: one specialisation per node kind
// ---------------------------------------------------------------------------------------------

/// emitter<N>::emit(emit_state&) -> emitted. The primary template has none: N is not emittable.
template <class N, class Enable = void>
struct emitter {};

/// True where the CUDA backend can print node N (and everything under it).
template <class N>
concept emittable = requires(emit_state& s) {
  { emitter<N>::emit(s) } -> std::same_as<emitted>;
};

template <class A, bool ByValue>
struct emitter<leaf_node<A, ByValue>> {
  static emitted emit(emit_state& s) { return s.leaf(dtype_of<typename A::value_type>, A::shape_type::rank); }
};

template <class T>
struct emitter<scalar_node<T>> {
  static emitted emit(emit_state& s) { return s.scalar(dtype_of<T>); }
};

template <class Op, class C, class... Args>
  requires(emittable<Args> && ...)
struct emitter<map_node<Op, C, Args...>> {
  static emitted emit(emit_state& s) {
    std::vector<emitted> operands;
    operands.reserve(sizeof...(Args));
    (operands.push_back(emitter<Args>::emit(s)), ...);  // left to right, as the binder goes
    return emit_map(Op::name, Op::rule, dtype_of<C>, std::move(operands));
  }
};

/// Affine index maps print their operand: only the binding (the strides underneath) changes.
template <class Arg, std::size_t... P>
  requires emittable<Arg>
struct emitter<permute_node<Arg, P...>> {
  static emitted emit(emit_state& s) { return emitter<Arg>::emit(s); }
};
template <class Arg, std::size_t A>
  requires emittable<Arg>
struct emitter<slice_node<Arg, A>> {
  static emitted emit(emit_state& s) { return emitter<Arg>::emit(s); }
};
template <class Arg, std::size_t A>
  requires emittable<Arg>
struct emitter<flip_node<Arg, A>> {
  static emitted emit(emit_state& s) { return emitter<Arg>::emit(s); }
};
template <class Arg, class S>
  requires emittable<Arg>
struct emitter<broadcast_node<Arg, S>> {
  static emitted emit(emit_state& s) { return emitter<Arg>::emit(s); }
};
/// A reshape prints its operand too: its binder regroups the strides underneath.
template <class Arg, class S>
  requires emittable<Arg>
struct emitter<reshape_node<Arg, S>> {
  static emitted emit(emit_state& s) { return emitter<Arg>::emit(s); }
};

/// full (zeros, ones): a scalar parameter.
template <class T, class S>
struct emitter<full_node<T, S>> {
  static emitted emit(emit_state& s) { return s.scalar(dtype_of<T>); }
};
/// iota: the row-major position, converted to T.
template <class T, class S>
struct emitter<iota_node<T, S>> {
  static emitted emit(emit_state& s) { return convert_to(s.position(), dtype_of<T>); }
};

/// concat along A: the position q along A picks operand i where start[i] <= q < start[i + 1]:
///   (x0 < p.s0 ? cvt<T>(<operand 0>) : (x0 < p.s1 ? cvt<T>(<operand 1>) : cvt<T>(<operand 2>)))
/// with p.s<k> the starts of operands 1.., and only the taken operand's leaves loaded.
template <std::size_t A, class... Args>
  requires(emittable<Args> && ...)
struct emitter<concat_node<A, Args...>> {
  static emitted emit(emit_state& s) {
    using N = concat_node<A, Args...>;
    const dtype t = dtype_of<typename N::value_type>;
    const emitted q = s.position();
    std::vector<emitted> starts;
    for (std::size_t i = 1; i < sizeof...(Args); ++i) starts.push_back(s.scalar(dtype::int64));
    std::vector<emitted> ops;
    s.enter_lazy();
    (ops.push_back(convert_to(emitter<Args>::emit(s), t)), ...);
    s.leave_lazy();
    std::string text = ops.back().text;
    for (std::size_t i = ops.size() - 1; i-- > 0;)
      text = "(" + q.text + " < " + starts[i].text + " ? " + ops[i].text + " : " + text + ")";
    return {std::move(text), t};
  }
};

/// pad along A: (lo <= q && q < hi ? <operand> : value), the operand's leaves loaded only inside.
template <class Arg, std::size_t A>
  requires emittable<Arg>
struct emitter<pad_node<Arg, A>> {
  static emitted emit(emit_state& s) {
    const dtype t = dtype_of<typename pad_node<Arg, A>::value_type>;
    const emitted q = s.position();
    const emitted lo = s.scalar(dtype::int64), hi = s.scalar(dtype::int64), v = s.scalar(t);
    s.enter_lazy();
    const emitted e = convert_to(emitter<Arg>::emit(s), t);
    s.leave_lazy();
    return {"(" + lo.text + " <= " + q.text + " && " + q.text + " < " + hi.text + " ? " + e.text + " : " + v.text + ")",
            t};
  }
};

/// A reduction prints as a row value, inside a row kernel only (cuda/rows.hpp decides where one
/// applies; elsewhere reductions run as kernels of their own, cuda/reduce.hpp).
template <class Red, class Arg, unsigned Mask, bool Keep>
  requires emittable<Arg>
struct emitter<reduce_node<Red, Arg, Mask, Keep>> {
  static emitted emit(emit_state& s) {
    if (!s.rows()) throw cuda_error("loom: internal: a reduction was printed outside a row kernel");
    s.open_reduction();
    emitted e = emitter<Arg>::emit(s);
    return s.close_reduction(std::string(Red::name), std::move(e),
                             dtype_of<typename reduce_node<Red, Arg, Mask, Keep>::value_type>);
  }
};

// ---------------------------------------------------------------------------------------------
// Run-time values: what a launch passes for the parameters the emitters printed
// ---------------------------------------------------------------------------------------------

/// Where one array is and how it moves with each axis of the iteration space. A position
/// (elem_size 0) is not memory: base is 0 and offset the position at iteration index 0, until
/// plan_layout moves it into base (the start the kernel adds its offset to).
struct array_cursor {
  std::uintptr_t base = 0;  ///< device address of the array's element 0 (a position's start)
  std::size_t elem_size = 0;
  index_t offset = 0;  ///< elements from base at iteration index 0
  std::array<index_t, max_rank> stride{};
};

/// True where cursor c's element 0 of every kept index (its first kr strides) lies on a boundary
/// of w elements: the base aligned to w elements and every kept stride a multiple of w, so that
/// groups of w elements from there load and store whole (row kernels' rows, reduction chunks).
inline bool kept_starts_aligned(const array_cursor& c, std::size_t kr, index_t w) {
  if (c.base % (c.elem_size * static_cast<std::size_t>(w)) != 0) return false;
  for (std::size_t j = 0; j < kr; ++j)
    if (c.stride[j] % w != 0) return false;
  return true;
}

/// A scalar's bytes (little-endian, as the host stores it) and its dtype.
struct scalar_value {
  alignas(8) unsigned char bytes[8] = {};
  dtype type = dtype::float32;
};

/// Receives the leaves and scalars of an expression, in emission order, into caller storage.
struct operand_sink {
  array_cursor* leaves = nullptr;
  scalar_value* scalars = nullptr;
  std::size_t leaf_count = 0;
  std::size_t scalar_count = 0;
  /// Row kernels: the trailing axes of the iteration space a row spans (0: not a row kernel;
  /// a reduction's binder throws) and their extents, which every reduction's must equal.
  std::size_t row_rank = 0;
  const index_t* row_extents = nullptr;

  template <class Strides>
  void add_leaf(const void* device_address, std::size_t elem_size, const Strides& array_strides,
                const cpu::binding& b) {
    array_cursor& c = leaves[leaf_count++];
    c.base = reinterpret_cast<std::uintptr_t>(device_address);
    c.elem_size = elem_size;
    b.strides_of(array_strides, c.stride, c.offset);
  }
  /// A position moving with the node's index by `node_strides` (row-major strides for iota, a
  /// unit along one axis for concat and pad), read through binding b.
  template <class Strides>
  void add_position(const Strides& node_strides, const cpu::binding& b) {
    array_cursor& c = leaves[leaf_count++];
    c.base = 0;
    c.elem_size = 0;
    b.strides_of(node_strides, c.stride, c.offset);
  }
  template <class T>
  void add_scalar(T v) {
    scalar_value& s = scalars[scalar_count++];
    static_assert(sizeof(T) <= sizeof(s.bytes));
    std::memcpy(s.bytes, &v, sizeof(T));
    s.type = dtype_of<T>;
  }
};

/// How many leaves and scalars node N passes (the sum over its operands; leaves and scalars
/// count themselves). A node kind with parameters of its own specialises this.
template <class N>
struct param_count;
namespace detail {
template <class List>
struct param_count_list;
template <class... Ns>
struct param_count_list<type_list<Ns...>> {
  static constexpr std::size_t leaves = (std::size_t(0) + ... + param_count<Ns>::leaves);
  static constexpr std::size_t scalars = (std::size_t(0) + ... + param_count<Ns>::scalars);
};
}  // namespace detail
template <class N>
struct param_count {
  static constexpr std::size_t leaves = detail::param_count_list<node_children_t<N>>::leaves;
  static constexpr std::size_t scalars = detail::param_count_list<node_children_t<N>>::scalars;
};
template <class A, bool ByValue>
struct param_count<leaf_node<A, ByValue>> {
  static constexpr std::size_t leaves = 1;
  static constexpr std::size_t scalars = 0;
};
template <class T>
struct param_count<scalar_node<T>> {
  static constexpr std::size_t leaves = 0;
  static constexpr std::size_t scalars = 1;
};
template <class T, class S>
struct param_count<full_node<T, S>> {
  static constexpr std::size_t leaves = 0;
  static constexpr std::size_t scalars = 1;
};
template <class T, class S>
struct param_count<iota_node<T, S>> {
  static constexpr std::size_t leaves = 1;
  static constexpr std::size_t scalars = 0;
};
template <std::size_t A, class... Args>
struct param_count<concat_node<A, Args...>> {
  static constexpr std::size_t leaves = 1 + (std::size_t(0) + ... + param_count<Args>::leaves);
  static constexpr std::size_t scalars = (sizeof...(Args) - 1) + (std::size_t(0) + ... + param_count<Args>::scalars);
};
template <class Arg, std::size_t A>
struct param_count<pad_node<Arg, A>> {
  static constexpr std::size_t leaves = 1 + param_count<Arg>::leaves;
  static constexpr std::size_t scalars = 3 + param_count<Arg>::scalars;
};

/// binder<N>::bind(const N&, operand_sink&, const cpu::binding&): the run-time half of emitter<N>.
template <class N, class Enable = void>
struct binder {};

template <class A, bool ByValue>
struct binder<leaf_node<A, ByValue>> {
  static_assert(A::space == memory_space::device, "loom: a CUDA kernel can only read device arrays");
  static void bind(const leaf_node<A, ByValue>& n, operand_sink& s, const cpu::binding& b) {
    s.add_leaf(static_cast<const void*>(n.data().get()), sizeof(typename A::value_type), n.strides(), b);
  }
};

template <class T>
struct binder<scalar_node<T>> {
  static void bind(const scalar_node<T>& n, operand_sink& s, const cpu::binding&) { s.add_scalar(n.value); }
};

template <class Op, class C, class... Args>
struct binder<map_node<Op, C, Args...>> {
  static void bind(const map_node<Op, C, Args...>& n, operand_sink& s, const cpu::binding& b) {
    const dims nd = n.shape().to_dims();
    std::apply([&](const auto&... a) { (binder<Args>::bind(a, s, b.broadcast_operand(nd, a.shape().to_dims())), ...); },
               n.args);
  }
};

template <class Arg, std::size_t... P>
struct binder<permute_node<Arg, P...>> {
  static void bind(const permute_node<Arg, P...>& n, operand_sink& s, const cpu::binding& b) {
    binder<Arg>::bind(n.arg, s, cpu::detail::permuted_binding(b, permute_node<Arg, P...>::perm.data(), sizeof...(P)));
  }
};
template <class Arg, std::size_t A>
struct binder<slice_node<Arg, A>> {
  static void bind(const slice_node<Arg, A>& n, operand_sink& s, const cpu::binding& b) {
    binder<Arg>::bind(n.arg, s, cpu::detail::affine_axis_binding(b, A, n.begin, n.step));
  }
};
template <class Arg, std::size_t A>
struct binder<flip_node<Arg, A>> {
  static void bind(const flip_node<Arg, A>& n, operand_sink& s, const cpu::binding& b) {
    binder<Arg>::bind(n.arg, s, cpu::detail::affine_axis_binding(b, A, static_cast<index_t>(n.shape().extent(A)) - 1, -1));
  }
};
template <class Arg, class S>
struct binder<broadcast_node<Arg, S>> {
  static void bind(const broadcast_node<Arg, S>& n, operand_sink& s, const cpu::binding& b) {
    binder<Arg>::bind(n.arg, s, b.broadcast_operand(n.shape().to_dims(), n.arg.shape().to_dims()));
  }
};

/// Thrown by the binder of a reshape whose operand's strides do not regroup; cuda::detail::execute
/// then evaluates the expression with every reshape's operand materialised first.
struct reshape_needs_copy : cuda_error {
  using cuda_error::cuda_error;
};

/// Reshape: the operand is bound over its own index space, then every cursor it added is moved
/// to the reshaped space (a row-major regrouping is linear where strides merge).
template <class Arg, class S>
struct binder<reshape_node<Arg, S>> {
  static void bind(const reshape_node<Arg, S>& n, operand_sink& s, const cpu::binding& b) {
    const dims from = n.arg.shape().to_dims(), to = n.shape().to_dims();
    const std::size_t first = s.leaf_count;
    binder<Arg>::bind(n.arg, s, cpu::binding::identity(from.rank));
    for (std::size_t i = first; i < s.leaf_count; ++i) {
      array_cursor& c = s.leaves[i];
      if (!cpu::detail::regroup_into(c.stride, c.offset, from, to, b))
        throw reshape_needs_copy("loom: cuda: reshape of shape " + to_string(from) + " to " + to_string(to) +
                                 " reads an operand whose strides do not regroup (a transposed or stepped view); "
                                 "it is evaluated into a temporary first");
    }
  }
};

template <class T, class S>
struct binder<full_node<T, S>> {
  static void bind(const full_node<T, S>& n, operand_sink& s, const cpu::binding&) { s.add_scalar(n.value); }
};
template <class T, class S>
struct binder<iota_node<T, S>> {
  static void bind(const iota_node<T, S>& n, operand_sink& s, const cpu::binding& b) {
    const dims d = n.shape().to_dims();
    std::array<index_t, max_rank> st{};
    index_t m = 1;
    for (std::size_t k = d.rank; k-- > 0;) {
      st[k] = m;
      m *= static_cast<index_t>(d.e[k]);
    }
    s.add_position(st, b);
  }
};

/// Thrown by a reduction's binder in a row kernel whose run-time extents do not fit the row
/// (the operand's trailing extents are not the row's): the expression runs as separate kernels.
struct not_a_row : cuda_error {
  using cuda_error::cuda_error;
};

/// A reduction in a row kernel: its operand moves along the row with the iteration space's
/// trailing axes (where the reduction's result, extent 1 there, stood still).
template <class Red, class Arg, unsigned Mask, bool Keep>
struct binder<reduce_node<Red, Arg, Mask, Keep>> {
  static void bind(const reduce_node<Red, Arg, Mask, Keep>& n, operand_sink& s, const cpu::binding& b) {
    const std::size_t m = s.row_rank;
    const dims ad = n.in_dims();
    if (m == 0 || !Keep || ad.rank < m || b.it_rank < m) throw not_a_row("loom: internal: a reduction bound outside a row kernel");
    cpu::binding c = b;
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t a = ad.rank - m + j, t = b.it_rank - m + j;
      if (static_cast<index_t>(ad.e[a]) != s.row_extents[j]) throw not_a_row("loom: the reduction does not span the row");
      c.coef[a].fill(0);
      c.coef[a][t] = 1;
      c.offset[a] = 0;
    }
    binder<Arg>::bind(n.arg, s, c);
  }
};

template <std::size_t A, class... Args>
struct binder<concat_node<A, Args...>> {
  static void bind(const concat_node<A, Args...>& n, operand_sink& s, const cpu::binding& b) {
    std::array<index_t, max_rank> unit{};
    unit[A] = 1;
    s.add_position(unit, b);
    for (std::size_t i = 1; i < sizeof...(Args); ++i) s.add_scalar(static_cast<std::int64_t>(n.start[i]));
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (binder<Args>::bind(std::get<I>(n.args), s, cpu::detail::affine_axis_binding(b, A, -n.start[I], 1)), ...);
    }(std::index_sequence_for<Args...>{});
  }
};

template <class Arg, std::size_t A>
struct binder<pad_node<Arg, A>> {
  static void bind(const pad_node<Arg, A>& n, operand_sink& s, const cpu::binding& b) {
    std::array<index_t, max_rank> unit{};
    unit[A] = 1;
    s.add_position(unit, b);
    s.add_scalar(static_cast<std::int64_t>(n.before));
    s.add_scalar(static_cast<std::int64_t>(n.before + static_cast<index_t>(n.arg.shape().extent(A))));
    s.add_scalar(n.value);
    binder<Arg>::bind(n.arg, s, cpu::detail::affine_axis_binding(b, A, -n.before, 1));
  }
};

}  // namespace loom::cuda::codegen
