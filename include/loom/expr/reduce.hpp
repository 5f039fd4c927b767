// loom/expr/reduce.hpp: reductions - sum, mean, max, min, prod, argmax, argmin.
//
//   auto rmax = max(x, axis<1>);             // x: shape<4096, 1024>  ->  shape<4096>
//   auto rsum = sum(x, axis<1>, keepdims);   //                       ->  shape<4096, 1>
//   auto all  = sum(x);                      //                       ->  shape<> (rank 0)
//   auto cols = mean(x, axes<0>);            //                       ->  shape<1024>
//
// Axes are compile-time (negative axes count from the end, as in NumPy); the result shape is
// static wherever the input's extents are. A reduce_node only describes the reduction: how it
// runs (fused into its producer, tiled with a consumer that broadcasts it back, or materialised
// at its own small size) is the backend's plan. Type rules follow NumPy: sum and prod of bool or
// integers give int64, mean of bool or integers gives float64, argmax/argmin give int64.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

// ---------------------------------------------------------------------------------------------
// Axis tags
// ---------------------------------------------------------------------------------------------

/// A compile-time set of axes: axes<0, 2>. Negative axes count from the end: axis<-1> is the last.
template <int... K>
struct axes_t {
  static constexpr std::size_t count = sizeof...(K);
};
/// One axis: sum(x, axis<1>).
template <int K>
inline constexpr axes_t<K> axis{};
/// Several axes: sum(x, axes<0, 2>).
template <int... K>
inline constexpr axes_t<K...> axes{};

/// Keeps reduced axes as extent 1: sum(x, axis<1>, keepdims) of [64, 32] is [64, 1].
struct keepdims_t {};
inline constexpr keepdims_t keepdims{};

/// Raised where a reduction names an axis the operand does not have; the compiler prints the
/// operand's shape and the axis as this template's arguments.
template <class Shape, int Axis>
struct static_axis_out_of_range {
  static_assert(Axis >= -int(Shape::rank) && Axis < int(Shape::rank),
                "loom: axis out of range for the operand's rank: see Shape and Axis in "
                "'static_axis_out_of_range<Shape, Axis>'");
  static constexpr bool value = true;
};
/// Raised where an axis appears twice in axes<...>.
template <class Shape, int Axis>
struct static_axis_repeated {
  static_assert(Axis != Axis,
                "loom: an axis appears twice in axes<...>: see Shape and Axis in 'static_axis_repeated<Shape, Axis>'");
  static constexpr bool value = true;
};

namespace detail {
template <class Shape, int K>
constexpr std::size_t normalise_axis() {
  static_assert(static_axis_out_of_range<Shape, K>::value);
  return K < 0 ? std::size_t(K + int(Shape::rank)) : std::size_t(K);
}
template <class Shape, int K, unsigned Seen>
constexpr unsigned check_repeat() {
  if constexpr (((Seen >> normalise_axis<Shape, K>()) & 1u) != 0u) {
    static_assert(static_axis_repeated<Shape, K>::value);
    return 0u;
  } else {
    return 1u << normalise_axis<Shape, K>();
  }
}
template <class Shape, unsigned Seen, int... K>
struct axis_mask_impl;
template <class Shape, unsigned Seen>
struct axis_mask_impl<Shape, Seen> {
  static constexpr unsigned value = Seen;
};
template <class Shape, unsigned Seen, int K, int... Rest>
struct axis_mask_impl<Shape, Seen, K, Rest...> {
  static constexpr unsigned value = axis_mask_impl<Shape, Seen | check_repeat<Shape, K, Seen>(), Rest...>::value;
};
}  // namespace detail

/// The bit mask of axes<K...> over an operand of shape Shape (checked at compile time).
template <class Shape, int... K>
inline constexpr unsigned axis_mask_v = detail::axis_mask_impl<Shape, 0u, K...>::value;

/// Every axis of a rank: the mask of a reduction over everything.
constexpr unsigned all_axes_mask(std::size_t rank) { return rank >= 32 ? ~0u : (1u << rank) - 1u; }

// ---------------------------------------------------------------------------------------------
// The reduction table: names, type rules and scalar reference semantics
// ---------------------------------------------------------------------------------------------

namespace detail {
template <class T>
using widened_t = std::conditional_t<std::is_floating_point_v<T>, T, std::int64_t>;
template <class T>
using mean_t = std::conditional_t<std::is_floating_point_v<T>, T, double>;
}  // namespace detail

namespace reduce_ops {

/// Sum; bool and integers accumulate and return int64 (NumPy). Empty: 0.
struct sum {
  static constexpr std::string_view name = "sum";
  static constexpr bool is_arg = false, needs_identity = false;
  template <class T>
  using acc_type = detail::widened_t<T>;
  template <class T>
  using result_type = detail::widened_t<T>;
  template <class A>
  static constexpr A identity() { return A(0); }
  template <class A>
  static constexpr A combine(A a, A x) { return detail::wrap_add(a, x); }
};
/// Product; bool and integers accumulate and return int64. Empty: 1.
struct prod {
  static constexpr std::string_view name = "prod";
  static constexpr bool is_arg = false, needs_identity = false;
  template <class T>
  using acc_type = detail::widened_t<T>;
  template <class T>
  using result_type = detail::widened_t<T>;
  template <class A>
  static constexpr A identity() { return A(1); }
  template <class A>
  static constexpr A combine(A a, A x) { return detail::wrap_mul(a, x); }
};
/// Arithmetic mean: a sum divided by the number of reduced elements. Integers give float64.
/// Empty: NaN (0 / 0, as NumPy, which also warns).
struct mean {
  static constexpr std::string_view name = "mean";
  static constexpr bool is_arg = false, needs_identity = false;
  template <class T>
  using acc_type = std::conditional_t<std::is_floating_point_v<T>, T, std::int64_t>;
  template <class T>
  using result_type = detail::mean_t<T>;
  template <class A>
  static constexpr A identity() { return A(0); }
  template <class A>
  static constexpr A combine(A a, A x) { return detail::wrap_add(a, x); }
};
/// Maximum; NaN anywhere gives NaN (NumPy). An empty axis throws shape_error.
struct max {
  static constexpr std::string_view name = "max";
  static constexpr bool is_arg = false, needs_identity = true;
  template <class T>
  using acc_type = T;
  template <class T>
  using result_type = T;
  template <class A>
  static constexpr A identity() {
    if constexpr (std::is_floating_point_v<A>)
      return -std::numeric_limits<A>::infinity();
    else
      return std::numeric_limits<A>::lowest();
  }
  template <class A>
  static constexpr A combine(A a, A x) { return ops::maximum::apply(a, x); }
};
/// Minimum; NaN anywhere gives NaN. An empty axis throws shape_error.
struct min {
  static constexpr std::string_view name = "min";
  static constexpr bool is_arg = false, needs_identity = true;
  template <class T>
  using acc_type = T;
  template <class T>
  using result_type = T;
  template <class A>
  static constexpr A identity() {
    if constexpr (std::is_floating_point_v<A>)
      return std::numeric_limits<A>::infinity();
    else
      return std::numeric_limits<A>::max();
  }
  template <class A>
  static constexpr A combine(A a, A x) { return ops::minimum::apply(a, x); }
};
/// Index (int64, row-major over the reduced axes) of the first maximum; the first NaN wins.
struct argmax {
  static constexpr std::string_view name = "argmax";
  static constexpr bool is_arg = true, needs_identity = true;
  static constexpr bool greater = true;
  template <class T>
  using acc_type = T;
  template <class T>
  using result_type = std::int64_t;
};
/// Index (int64) of the first minimum; the first NaN wins.
struct argmin {
  static constexpr std::string_view name = "argmin";
  static constexpr bool is_arg = true, needs_identity = true;
  static constexpr bool greater = false;
  template <class T>
  using acc_type = T;
  template <class T>
  using result_type = std::int64_t;
};

/// True where value x replaces the running best b of an arg reduction (strictly better, or the
/// first NaN); equal values keep the earlier index.
template <class Red, class T>
constexpr bool arg_better(T x, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (b != b) return false;
    if (x != x) return true;
  }
  if constexpr (Red::greater)
    return b < x;
  else
    return x < b;
}

}  // namespace reduce_ops

// ---------------------------------------------------------------------------------------------
// The node
// ---------------------------------------------------------------------------------------------

namespace detail {
template <class In, unsigned Mask, bool Keep>
struct reduce_shape {
  static constexpr std::size_t out_rank = [] {
    std::size_t r = 0;
    for (std::size_t k = 0; k < In::rank; ++k)
      if (Keep || !((Mask >> k) & 1u)) ++r;
    return r;
  }();
  static constexpr std::array<std::size_t, out_rank> extents = [] {
    std::array<std::size_t, out_rank> e{};
    std::size_t r = 0;
    for (std::size_t k = 0; k < In::rank; ++k) {
      if ((Mask >> k) & 1u) {
        if (Keep) e[r++] = 1;
      } else {
        e[r++] = In::static_extents[k];
      }
    }
    return e;
  }();
  using type = shape_from_array_t<extents>;
};

/// "axes={1}", "axes={0, 2}" (the normalised axes of a mask).
inline std::string axes_text(unsigned mask, std::size_t rank) {
  std::string s = "{";
  bool first = true;
  for (std::size_t k = 0; k < rank; ++k)
    if ((mask >> k) & 1u) {
      s += (first ? "" : ", ") + std::to_string(k);
      first = false;
    }
  return s + "}";
}
}  // namespace detail

/// A reduction of Arg over the axes in Mask (bit k: axis k of Arg), keeping them as extent 1
/// where Keep. value_type follows Red's type rule.
template <class Red, class Arg, unsigned Mask, bool Keep>
struct reduce_node {
  static constexpr bool is_loom_node = true;
  using reducer = Red;
  using arg_type = Arg;
  static constexpr unsigned mask = Mask;
  static constexpr bool keep = Keep;
  using input_type = typename Arg::value_type;
  using acc_type = typename Red::template acc_type<input_type>;
  using value_type = typename Red::template result_type<input_type>;
  using shape_type = typename detail::reduce_shape<typename Arg::shape_type, Mask, Keep>::type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr std::size_t in_rank = Arg::shape_type::rank;
  static constexpr memory_space space = Arg::space;

  Arg arg;
  shape_type shape_;

  explicit reduce_node(Arg a) : arg(std::move(a)), shape_(compute_shape(arg.shape().to_dims())) {}

  shape_type shape() const { return shape_; }
  /// The operand's shape.
  dims in_dims() const { return arg.shape().to_dims(); }
  /// The number of elements each output reduces.
  std::size_t reduced_count() const {
    const dims d = in_dims();
    std::size_t n = 1;
    for (std::size_t k = 0; k < d.rank; ++k)
      if ((Mask >> k) & 1u) n *= d.e[k];
    return n;
  }

 private:
  static shape_type compute_shape(const dims& in) {
    // An operand whose extents multiply past a 64-bit count (a broadcast of stride-0 views can
    // be that large) would be reduced over a wrapped count: refuse it.
    std::size_t count = 1;
    bool empty = false, over = false;
    for (std::size_t k = 0; k < in.rank; ++k) {
      empty = empty || in.e[k] == 0;
      if (in.e[k] != 0 && count > std::size_t(std::numeric_limits<std::int64_t>::max()) / in.e[k]) over = true;
      else count *= in.e[k];
    }
    if (over && !empty)
      throw shape_error("loom: " + std::string(Red::name) + " of shape " + to_string(in) +
                        ": more elements than a 64-bit index counts");
    dims out;
    out.rank = rank;
    std::size_t r = 0;
    bool empty_axis = false;
    std::size_t bad = 0;
    for (std::size_t k = 0; k < in.rank; ++k) {
      if ((Mask >> k) & 1u) {
        if (in.e[k] == 0 && !empty_axis) {
          empty_axis = true;
          bad = k;
        }
        if (Keep) out.e[r++] = 1;
      } else {
        out.e[r++] = in.e[k];
      }
    }
    if constexpr (Red::needs_identity) {
      if (empty_axis && out.size() != 0)
        throw shape_error("loom: " + std::string(Red::name) + " over an empty axis: axis " + std::to_string(bad) +
                          " of shape " + to_string(in) + " has no elements (" + std::string(Red::name) +
                          " has no identity; sum gives 0 and prod 1)");
    }
    if constexpr (shape_type::is_static)
      return shape_type{};
    else
      return shape_type::from_dims(out);
  }
};

template <class Red, class Arg, unsigned Mask, bool Keep>
struct node_children<reduce_node<Red, Arg, Mask, Keep>> {
  using type = type_list<Arg>;
};

template <class T>
struct is_reduce_node : std::false_type {};
template <class Red, class Arg, unsigned Mask, bool Keep>
struct is_reduce_node<reduce_node<Red, Arg, Mask, Keep>> : std::true_type {};

namespace detail {
template <class Red, unsigned Mask, bool Keep, class E>
auto make_reduce(E&& e) {
  using N = node_t<E>;
  return reduce_node<Red, N, Mask, Keep>(as_node(std::forward<E>(e)));
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The functions users call
// ---------------------------------------------------------------------------------------------

#define LOOM_REDUCTION(fn)                                                                              \
  template <class E>                                                                                    \
    requires expression<E>                                                                              \
  auto fn(E&& e) {                                                                                      \
    using S = shape_type_of<E>;                                                                         \
    return detail::make_reduce<reduce_ops::fn, all_axes_mask(S::rank), false>(std::forward<E>(e));      \
  }                                                                                                     \
  template <class E>                                                                                    \
    requires expression<E>                                                                              \
  auto fn(E&& e, keepdims_t) {                                                                          \
    using S = shape_type_of<E>;                                                                         \
    return detail::make_reduce<reduce_ops::fn, all_axes_mask(S::rank), true>(std::forward<E>(e));       \
  }                                                                                                     \
  template <class E, int... K>                                                                          \
    requires expression<E>                                                                              \
  auto fn(E&& e, axes_t<K...>) {                                                                        \
    using S = shape_type_of<E>;                                                                         \
    return detail::make_reduce<reduce_ops::fn, axis_mask_v<S, K...>, false>(std::forward<E>(e));        \
  }                                                                                                     \
  template <class E, int... K>                                                                          \
    requires expression<E>                                                                              \
  auto fn(E&& e, axes_t<K...>, keepdims_t) {                                                            \
    using S = shape_type_of<E>;                                                                         \
    return detail::make_reduce<reduce_ops::fn, axis_mask_v<S, K...>, true>(std::forward<E>(e));         \
  }

/// Sum over axes: sum(x, axis<1>) of [64, 32] is [64]; sum(x) is rank 0; sum(x, axis<1>, keepdims)
/// is [64, 1]. bool and integer operands give int64. An empty axis sums to 0.
LOOM_REDUCTION(sum)
/// Arithmetic mean over axes: mean(x, axes<0>) of [64, 32] is [32]. Integers give float64; an
/// empty axis gives NaN.
LOOM_REDUCTION(mean)
/// Maximum over axes (NaN propagates): max(x, axis<1>) of [64, 32] is [64]; max(x) is rank 0.
/// Reducing an empty axis throws shape_error.
LOOM_REDUCTION(max)
/// Minimum over axes (NaN propagates): min(x, axis<0>) of [64, 32] is [32].
LOOM_REDUCTION(min)
/// Product over axes: prod(x, axis<0>) of [64, 32] is [32]; integers give int64; empty gives 1.
LOOM_REDUCTION(prod)
/// Index of the first maximum over axes (int64; row-major over several axes; the first NaN wins):
/// argmax(x, axis<1>) of [64, 32] is [64] of values in [0, 32).
LOOM_REDUCTION(argmax)
/// Index of the first minimum over axes (int64): argmin(x, axis<1>) of [64, 32] is [64].
LOOM_REDUCTION(argmin)
#undef LOOM_REDUCTION

}  // namespace loom
