// loom/expr/index_map.hpp: index maps - nodes that move elements without computing them.
//
//   auto t = transpose(x);                       // [64, 32] -> [32, 64]; permute<1, 0>(x)
//   auto r = reshape<shape<8, 8, 32>>(x);        // [64, 32] -> [8, 8, 32]
//   auto s = slice<0>(x, 16, 32);                // rows [16, 32): [16, 32] (the axis becomes dyn)
//   auto b = broadcast_to<shape<4, 64, 32>>(x);  // [4, 64, 32]
//   auto c = concat<1>(x, x);                    // [64, 64]
//   auto p = pad<0>(x, 1, 2, 0.f);               // [67, 32]: one row of 0 before, two after
//   auto f = flip<0>(x);                         // rows in reverse order
//
// Nothing is copied when an index map is built or evaluated: transpose, permute, slice, flip,
// broadcast_to and (where the strides allow) reshape only change how the operand's elements are
// addressed; concat and pad pick one operand per SIMD packet. Axes are compile-time, positions
// and extents run-time.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

// ---------------------------------------------------------------------------------------------
// Static checks, each naming the user's shapes and axes in its template arguments
// ---------------------------------------------------------------------------------------------

/// Raised where permute<P...> is not a permutation of the operand's axes.
template <class Shape, std::size_t... P>
struct static_permutation_invalid {
  static constexpr bool ok = [] {
    if (sizeof...(P) != Shape::rank) return false;
    std::array<std::size_t, sizeof...(P)> p{P...};
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i] >= p.size()) return false;
      for (std::size_t j = 0; j < i; ++j)
        if (p[j] == p[i]) return false;
    }
    return true;
  }();
  static_assert(ok, "loom: permute<P...> needs each axis of the operand exactly once: see Shape and P in "
                    "'static_permutation_invalid<Shape, P...>'");
  static constexpr bool value = true;
};

/// Raised where a static reshape changes the number of elements.
template <class From, class To, std::size_t FromSize, std::size_t ToSize>
struct static_reshape_changes_size {
  static_assert(FromSize == ToSize,
                "loom: reshape cannot change the number of elements: see From, To, FromSize and ToSize in "
                "'static_reshape_changes_size<From, To, FromSize, ToSize>'");
  static constexpr bool value = true;
};

/// Raised where transpose is given an operand that is not 2-D.
template <class Shape>
struct static_transpose_needs_rank_2 {
  static_assert(Shape::rank == 2, "loom: transpose(x) needs a 2-D operand; use permute<...>(x): see Shape in "
                                  "'static_transpose_needs_rank_2<Shape>'");
  static constexpr bool value = true;
};

/// Raised where broadcast_to<To> cannot stretch From (NumPy rules) into exactly To.
template <class From, class To>
struct static_cannot_broadcast_to {
  static_assert(static_assignable<From, To>::value,
                "loom: broadcast_to cannot stretch the operand to the target shape: see From and To in "
                "'static_cannot_broadcast_to<From, To>'");
  static constexpr bool value = true;
};

/// Raised where concat's operands differ in rank or in a static extent off the concat axis.
template <class ShapeA, class ShapeB, std::size_t ConcatAxis, std::size_t BadAxis>
struct static_concat_mismatch {
  static_assert(ConcatAxis == BadAxis,
                "loom: concat needs operands of one rank and equal extents off the concat axis: see ShapeA, ShapeB, "
                "ConcatAxis and BadAxis in 'static_concat_mismatch<ShapeA, ShapeB, ConcatAxis, BadAxis>'");
  static constexpr bool value = true;
};

namespace detail {
template <class S>
constexpr std::size_t static_size_or_dyn() {
  if constexpr (!S::is_static) {
    return dyn;
  } else {
    std::size_t n = 1;
    for (std::size_t k = 0; k < S::rank; ++k) n *= S::static_extents[k];
    return n;
  }
}

/// A shape with axis A replaced by a dyn extent.
template <class S, std::size_t A>
struct with_dyn_axis {
  static constexpr std::array<std::size_t, S::rank> extents = [] {
    auto e = S::static_extents;
    e[A] = dyn;
    return e;
  }();
  using type = shape_from_array_t<extents>;
};

template <class S, std::size_t... P>
struct permuted_shape {
  static constexpr std::array<std::size_t, sizeof...(P)> extents{S::static_extents[P]...};
  using type = shape_from_array_t<extents>;
};

template <class S>
S shape_of_dims(const dims& d) {
  if constexpr (S::is_static)
    return S{};
  else
    return S::from_dims(d);
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Affine index maps: permute, slice, flip, broadcast_to
// ---------------------------------------------------------------------------------------------

/// Axes in a new order: axis j of the result is axis P[j] of the operand (NumPy's transpose(x, P)).
template <class Arg, std::size_t... P>
struct permute_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = typename detail::permuted_shape<typename Arg::shape_type, P...>::type;
  static constexpr std::size_t rank = sizeof...(P);
  static constexpr std::array<std::size_t, rank> perm{P...};
  static constexpr memory_space space = Arg::space;
  Arg arg;
  shape_type shape_;
  explicit permute_node(Arg a) : arg(std::move(a)) {
    const dims in = arg.shape().to_dims();
    dims out;
    out.rank = rank;
    for (std::size_t j = 0; j < rank; ++j) out.e[j] = in.e[perm[j]];
    shape_ = detail::shape_of_dims<shape_type>(out);
  }
  shape_type shape() const { return shape_; }
};

/// Every step-th element of [begin, end) along axis A (the axis becomes dyn).
template <class Arg, std::size_t A>
struct slice_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = typename detail::with_dyn_axis<typename Arg::shape_type, A>::type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr std::size_t axis = A;
  static constexpr memory_space space = Arg::space;
  Arg arg;
  index_t begin = 0, step = 1;
  shape_type shape_;
  slice_node(Arg a, index_t b, index_t e, index_t s) : arg(std::move(a)), step(s) {
    dims d = arg.shape().to_dims();
    const index_t n = static_cast<index_t>(d.e[A]);
    if (s <= 0)
      throw shape_error("loom: slice<" + std::to_string(A) + "> of shape " + to_string(d) + " needs a step > 0, not " +
                        std::to_string(s) + " (flip<" + std::to_string(A) + ">(x) reverses an axis)");
    // NumPy: negative positions count from the end, and positions are clamped to [0, n].
    auto clampi = [n](index_t v) {
      if (v < 0) v += n;
      return v < 0 ? index_t(0) : (v > n ? n : v);
    };
    begin = clampi(b);
    const index_t end = clampi(e);
    const index_t count = end > begin ? (end - begin + s - 1) / s : 0;
    d.e[A] = static_cast<std::size_t>(count);
    shape_ = shape_type::from_dims(d);
  }
  shape_type shape() const { return shape_; }
};

/// Axis A in reverse order.
template <class Arg, std::size_t A>
struct flip_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = typename Arg::shape_type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr std::size_t axis = A;
  static constexpr memory_space space = Arg::space;
  Arg arg;
  explicit flip_node(Arg a) : arg(std::move(a)) {}
  shape_type shape() const { return arg.shape(); }
};

/// The operand stretched (NumPy rules) to exactly Shape.
template <class Arg, class Shape>
struct broadcast_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr memory_space space = Arg::space;
  Arg arg;
  Shape shape_;
  broadcast_node(Arg a, Shape s) : arg(std::move(a)), shape_(s) {
    const dims from = arg.shape().to_dims(), to = s.to_dims();
    if (!broadcasts_to(from, to))
      throw shape_error("loom: broadcast_to cannot stretch shape " + to_string(from) + " to shape " + to_string(to));
  }
  Shape shape() const { return shape_; }
};

// ---------------------------------------------------------------------------------------------
// Reshape
// ---------------------------------------------------------------------------------------------

/// The operand's elements, in row-major order, seen with another shape of the same size.
template <class Arg, class Shape>
struct reshape_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr memory_space space = Arg::space;
  Arg arg;
  Shape shape_;
  reshape_node(Arg a, Shape s) : arg(std::move(a)), shape_(s) {
    const dims from = arg.shape().to_dims(), to = s.to_dims();
    if (from.size() != to.size())
      throw shape_error("loom: reshape cannot change the number of elements: shape " + to_string(from) + " (" +
                        std::to_string(from.size()) + " elements) to shape " + to_string(to) + " (" +
                        std::to_string(to.size()) + " elements)");
  }
  Shape shape() const { return shape_; }
};

// ---------------------------------------------------------------------------------------------
// Piecewise maps: concat and pad
// ---------------------------------------------------------------------------------------------

namespace detail {
template <std::size_t A, class... Ss>
struct concat_shape;
template <std::size_t A, class S0, class... Ss>
struct concat_shape<A, S0, Ss...> {
  static constexpr std::size_t rank = S0::rank;
  static constexpr bool same_rank = ((Ss::rank == rank) && ...);
  // The first axis (other than A) whose static extents disagree, pairing S0 with each S.
  template <class S>
  static constexpr std::size_t bad_axis() {
    if constexpr (S::rank != rank) {
      return A + 1 + rank;  // rank mismatch: never equal to A
    } else {
      for (std::size_t k = 0; k < rank; ++k)
        if (k != A && S0::static_extents[k] != dyn && S::static_extents[k] != dyn &&
            S0::static_extents[k] != S::static_extents[k])
          return k;
      return A;
    }
  }
  static constexpr bool check = (static_concat_mismatch<S0, Ss, A, bad_axis<Ss>()>::value && ... && true);
  static constexpr std::array<std::size_t, rank> extents = [] {
    std::array<std::size_t, rank> e = S0::static_extents;
    if constexpr (same_rank) {
      std::size_t total = S0::static_extents[A];
      ((total = (total == dyn || Ss::static_extents[A] == dyn) ? dyn : total + Ss::static_extents[A]), ...);
      e[A] = total;
      for (std::size_t k = 0; k < rank; ++k)
        if (k != A && e[k] == dyn) ((e[k] = e[k] == dyn ? Ss::static_extents[k] : e[k]), ...);
    }
    return e;
  }();
  using type = shape_from_array_t<extents>;
};
}  // namespace detail

/// The operands one after the other along axis A; the value type is their promoted type.
template <std::size_t A, class... Args>
struct concat_node {
  static_assert(sizeof...(Args) >= 1);
  static constexpr bool is_loom_node = true;
  using value_type = type_of<[] {
    dtype d = dtype_of<typename std::tuple_element_t<0, std::tuple<Args...>>::value_type>;
    ((d = promote(d, dtype_of<typename Args::value_type>)), ...);
    return d;
  }()>;
  using shape_type = typename detail::concat_shape<A, typename Args::shape_type...>::type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr std::size_t axis = A;
  static constexpr std::size_t count = sizeof...(Args);
  static constexpr memory_space space = detail::join_spaces<Args...>();
  static_assert(detail::concat_shape<A, typename Args::shape_type...>::check);
  std::tuple<Args...> args;
  /// start[i]: the position along A where operand i begins; start[count] is the extent.
  std::array<index_t, sizeof...(Args) + 1> start{};
  shape_type shape_;

  explicit concat_node(Args... a) : args(std::move(a)...) {
    dims d0;
    std::size_t i = 0;
    bool first = true;
    std::apply(
        [&](const auto&... x) {
          (([&] {
             const dims d = x.shape().to_dims();
             if (first) {
               d0 = d;
               first = false;
               start[0] = 0;
               start[1] = static_cast<index_t>(d.e[A]);
             } else {
               for (std::size_t k = 0; k < d.rank; ++k)
                 if (k != A && d.e[k] != d0.e[k])
                   throw shape_error("loom: concat<" + std::to_string(A) + "> cannot join shape " + to_string(d0) +
                                     " with shape " + to_string(d) + " (axis " + std::to_string(k) + ": " +
                                     std::to_string(d0.e[k]) + " vs " + std::to_string(d.e[k]) + ")");
               start[i + 1] = start[i] + static_cast<index_t>(d.e[A]);
             }
             ++i;
           }()),
           ...);
        },
        args);
    d0.e[A] = static_cast<std::size_t>(start[count]);
    shape_ = detail::shape_of_dims<shape_type>(d0);
  }
  shape_type shape() const { return shape_; }
};

/// The operand with `before` elements of `value` before it and `after` after it along axis A.
template <class Arg, std::size_t A>
struct pad_node {
  static constexpr bool is_loom_node = true;
  using arg_type = Arg;
  using value_type = typename Arg::value_type;
  using shape_type = typename detail::with_dyn_axis<typename Arg::shape_type, A>::type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr std::size_t axis = A;
  static constexpr memory_space space = Arg::space;
  Arg arg;
  index_t before = 0, after = 0;
  value_type value{};
  shape_type shape_;
  pad_node(Arg a, index_t b, index_t e, value_type v) : arg(std::move(a)), before(b), after(e), value(v) {
    dims d = arg.shape().to_dims();
    if (b < 0 || e < 0)
      throw shape_error("loom: pad<" + std::to_string(A) + "> of shape " + to_string(d) +
                        " needs widths >= 0, not before " + std::to_string(b) + " and after " + std::to_string(e));
    d.e[A] += static_cast<std::size_t>(b + e);
    shape_ = shape_type::from_dims(d);
  }
  shape_type shape() const { return shape_; }
};

template <class Arg, std::size_t... P>
struct node_children<permute_node<Arg, P...>> {
  using type = type_list<Arg>;
};
template <class Arg, std::size_t A>
struct node_children<slice_node<Arg, A>> {
  using type = type_list<Arg>;
};
template <class Arg, std::size_t A>
struct node_children<flip_node<Arg, A>> {
  using type = type_list<Arg>;
};
template <class Arg, class S>
struct node_children<broadcast_node<Arg, S>> {
  using type = type_list<Arg>;
};
template <class Arg, class S>
struct node_children<reshape_node<Arg, S>> {
  using type = type_list<Arg>;
};
template <std::size_t A, class... Args>
struct node_children<concat_node<A, Args...>> {
  using type = type_list<Args...>;
};
template <class Arg, std::size_t A>
struct node_children<pad_node<Arg, A>> {
  using type = type_list<Arg>;
};

// ---------------------------------------------------------------------------------------------
// The functions users call
// ---------------------------------------------------------------------------------------------

namespace detail {
template <class S, int K>
constexpr std::size_t map_axis() {
  return normalise_axis<S, K>();
}
}  // namespace detail

/// Axes in a new order: permute<2, 0, 1>(x) of [4, 5, 6] is [6, 4, 5]; result axis j is operand
/// axis P[j]. Free: only the addressing changes.
template <std::size_t... P, class E>
  requires expression<E>
auto permute(E&& e) {
  using S = shape_type_of<E>;
  static_assert(static_permutation_invalid<S, P...>::value);
  return permute_node<node_t<E>, P...>(as_node(std::forward<E>(e)));
}

/// The transpose of a 2-D operand: transpose(x) of [64, 32] is [32, 64] (permute<1, 0>(x)).
template <class E>
  requires expression<E>
auto transpose(E&& e) {
  static_assert(static_transpose_needs_rank_2<shape_type_of<E>>::value);
  if constexpr (shape_type_of<E>::rank == 2)
    return permute<1, 0>(std::forward<E>(e));
}

/// The operand seen with static shape S, same elements in row-major order:
/// reshape<shape<8, 8, 32>>(x) of [64, 32] is [8, 8, 32]. A different number of elements does not
/// compile (where both are static) or throws shape_error. Free wherever the operand's layout allows.
template <class S, class E>
  requires(expression<E> && shape_type<S>)
auto reshape(E&& e) {
  static_assert(S::is_static, "loom: reshape<S>(x) takes a fully static shape; use reshape(x, S{extents...})");
  using From = shape_type_of<E>;
  if constexpr (From::is_static)
    static_assert(static_reshape_changes_size<From, S, detail::static_size_or_dyn<From>(),
                                              detail::static_size_or_dyn<S>()>::value);
  return reshape_node<node_t<E>, S>(as_node(std::forward<E>(e)), S{});
}

/// The operand seen with a run-time shape: reshape(x, shape<dyn, 32>{n}); the number of elements
/// is checked (statically where both shapes are static).
template <class E, std::size_t... Es>
  requires expression<E>
auto reshape(E&& e, const shape<Es...>& s) {
  using From = shape_type_of<E>;
  using S = shape<Es...>;
  if constexpr (From::is_static && S::is_static)
    static_assert(static_reshape_changes_size<From, S, detail::static_size_or_dyn<From>(),
                                              detail::static_size_or_dyn<S>()>::value);
  return reshape_node<node_t<E>, S>(as_node(std::forward<E>(e)), s);
}

/// Positions begin, begin + step, ... before end along axis A (NumPy's x[begin:end:step]; negative
/// positions count from the end, positions are clamped, step > 0): slice<0>(x, 16, 32) of [64, 32]
/// is [16, 32] and slice<1>(x, 0, 32, 2) is [64, 16]. The sliced axis is dyn in the result type.
template <int A, class E>
  requires expression<E>
auto slice(E&& e, index_t begin, index_t end, index_t step = 1) {
  constexpr std::size_t a = detail::map_axis<shape_type_of<E>, A>();
  return slice_node<node_t<E>, a>(as_node(std::forward<E>(e)), begin, end, step);
}

/// Axis A reversed: flip<0>(x)(i, j) == x(n - 1 - i, j).
template <int A, class E>
  requires expression<E>
auto flip(E&& e) {
  constexpr std::size_t a = detail::map_axis<shape_type_of<E>, A>();
  return flip_node<node_t<E>, a>(as_node(std::forward<E>(e)));
}

/// The operand stretched to static shape S (NumPy rules): broadcast_to<shape<4, 64, 32>>(x) of
/// [64, 32] is [4, 64, 32], reading x four times.
template <class S, class E>
  requires(expression<E> && shape_type<S>)
auto broadcast_to(E&& e) {
  static_assert(S::is_static, "loom: broadcast_to<S>(x) takes a fully static shape; use broadcast_to(x, S{...})");
  static_assert(static_cannot_broadcast_to<shape_type_of<E>, S>::value);
  return broadcast_node<node_t<E>, S>(as_node(std::forward<E>(e)), S{});
}

/// The operand stretched to a run-time shape: broadcast_to(x, shape<dyn, 64, 32>{4}).
template <class E, std::size_t... Es>
  requires expression<E>
auto broadcast_to(E&& e, const shape<Es...>& s) {
  static_assert(static_cannot_broadcast_to<shape_type_of<E>, shape<Es...>>::value);
  return broadcast_node<node_t<E>, shape<Es...>>(as_node(std::forward<E>(e)), s);
}

/// The operands joined along axis A: concat<1>(x, y) of [64, 32] and [64, 8] is [64, 40]. Other
/// extents must agree (a static mismatch does not compile); the value type is the promoted one.
template <int A, class... E>
  requires(sizeof...(E) >= 1 && (expression<E> && ...))
auto concat(E&&... e) {
  using S0 = shape_type_of<std::tuple_element_t<0, std::tuple<E...>>>;
  constexpr std::size_t a = detail::map_axis<S0, A>();
  return concat_node<a, node_t<E>...>(as_node(std::forward<E>(e))...);
}

/// Constant padding along axis A: pad<1>(x, 2, 3, 0.f) of [64, 32] is [64, 37], with two columns
/// of 0 before x's and three after. The value is converted to x's type.
template <int A, class E, class V = int>
  requires(expression<E> && scalar_type<V>)
auto pad(E&& e, index_t before, index_t after, V value = 0) {
  constexpr std::size_t a = detail::map_axis<shape_type_of<E>, A>();
  using T = value_type_of<E>;
  return pad_node<node_t<E>, a>(as_node(std::forward<E>(e)), before, after, static_cast<T>(value));
}

}  // namespace loom
