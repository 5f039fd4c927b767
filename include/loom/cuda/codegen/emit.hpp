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
//   - a generator (iota, full) or a non-affine map (pad, concat) prints an expression of the index;
//     that needs the coordinates in the kernel skeleton, which the strided class already keeps
//     (see kernel.hpp): the hook is emit_state, which a later phase extends with coordinate names.
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
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"
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

/// The leaves and scalars an expression's kernel takes, in the order the emitters met them.
class emit_state {
 public:
  /// A leaf of element type t: its value at the current index is parameter x<k> of element().
  LOOM_NOINLINE emitted leaf(dtype t) {
    leaves_.push_back(t);
    std::string name = "x";
    name += std::to_string(leaves_.size() - 1);
    return {std::move(name), t};
  }
  /// A scalar of type t, passed in the argument block as s<k>.
  LOOM_NOINLINE emitted scalar(dtype t) {
    scalars_.push_back(t);
    std::string name = "p.s";
    name += std::to_string(scalars_.size() - 1);
    return {std::move(name), t};
  }
  [[nodiscard]] const std::vector<dtype>& leaves() const noexcept { return leaves_; }
  [[nodiscard]] const std::vector<dtype>& scalars() const noexcept { return scalars_; }

 private:
  std::vector<dtype> leaves_;
  std::vector<dtype> scalars_;
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
  static emitted emit(emit_state& s) { return s.leaf(dtype_of<typename A::value_type>); }
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

// ---------------------------------------------------------------------------------------------
// Run-time values: what a launch passes for the parameters the emitters printed
// ---------------------------------------------------------------------------------------------

/// Where one array is and how it moves with each axis of the iteration space.
struct array_cursor {
  std::uintptr_t base = 0;  ///< device address of the array's element 0
  std::size_t elem_size = 0;
  index_t offset = 0;  ///< elements from base at iteration index 0
  std::array<index_t, max_rank> stride{};
};

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

  template <class Strides>
  void add_leaf(const void* device_address, std::size_t elem_size, const Strides& array_strides,
                const cpu::binding& b) {
    array_cursor& c = leaves[leaf_count++];
    c.base = reinterpret_cast<std::uintptr_t>(device_address);
    c.elem_size = elem_size;
    b.strides_of(array_strides, c.stride, c.offset);
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

}  // namespace loom::cuda::codegen
