// loom/expr/matmul.hpp: the contraction node, matmul(a, b).
//
//   matmul(a, w)      [64, 48] x [48, 32]         -> [64, 32]
//   matmul(q, k)      [8, 1, 64, 16] x [4, 16, 64] -> [8, 4, 64, 64]  (batch axes broadcast)
//
// Operands of rank >= 2 multiply as NumPy's matmul: the last two axes are the matrices, the
// leading ones are batch axes broadcast together. A rank-1 operand is a row (a) or a column (b)
// whose axis is dropped from the result, as NumPy: matmul(v, w) of [48] and [48, 32] is [32]
// (the product is then read through a reshape, so its consumers are not fused into the GEMM). The value type is the promotion of both
// operands' types (int32 with float gives double, as NumPy). Inner extents that differ stop
// compilation where both are static, and throw loom::shape_error naming both shapes otherwise,
// when the node is built (before anything is evaluated or written).
//
// The node is opaque to the elementwise and reduction planners (node_children is empty): it is
// the one node that needs its own kernel, a GEMM. A backend evaluates it with elementwise
// consumers fused into the GEMM's tile stores (plan/plan.hpp says when), and materialises it
// anywhere else.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

/// Raised where matmul is given a rank-0 operand (NumPy refuses scalars too).
template <class ShapeA, class ShapeB>
struct static_matmul_needs_rank_1 {
  static_assert(ShapeA::rank >= 1 && ShapeB::rank >= 1,
                "loom: matmul(a, b) needs operands of rank 1 or more: see ShapeA and ShapeB in "
                "'static_matmul_needs_rank_1<ShapeA, ShapeB>'");
  static constexpr bool value = true;
};

/// Raised where the inner extents of a matmul differ: a is [..., M, InnerA], b is [..., InnerB, N].
template <class ShapeA, class ShapeB, std::size_t InnerA, std::size_t InnerB>
struct static_matmul_inner_extents_differ {
  static_assert(InnerA == InnerB || InnerA == dyn || InnerB == dyn,
                "loom: matmul(a, b) needs a's last extent equal to b's second-to-last: see ShapeA, ShapeB, InnerA "
                "and InnerB in 'static_matmul_inner_extents_differ<ShapeA, ShapeB, InnerA, InnerB>'");
  static constexpr bool value = true;
};

namespace detail {

template <class S>
constexpr std::size_t static_extent_from_end(std::size_t k) {  // k = 1: the last axis
  return S::rank >= k ? S::static_extents[S::rank - k] : 1;
}

/// The leading (batch) axes of S: all but the last two.
template <class S, class Seq = std::make_index_sequence<(S::rank >= 2 ? S::rank - 2 : 0)>>
struct batch_shape;
template <class S, std::size_t... I>
struct batch_shape<S, std::index_sequence<I...>> {
  using type = shape<S::static_extents[I]...>;
};

/// The static shape of matmul(a, b): the batch axes broadcast, then [M, N].
template <class A, class B>
struct matmul_shape {
  static constexpr bool ranks_ok = A::rank >= 2 && B::rank >= 2;
  static_assert(!ranks_ok || static_matmul_inner_extents_differ<A, B, static_extent_from_end<A>(1),
                                                                static_extent_from_end<B>(2)>::value);
  using batch = std::conditional_t<ranks_ok,
                                   broadcast_shape_t<typename batch_shape<A>::type, typename batch_shape<B>::type>,
                                   shape<>>;
  static_assert(!ranks_ok || check_broadcast_v<typename batch_shape<A>::type, typename batch_shape<B>::type>);
  static constexpr std::array<std::size_t, batch::rank + 2> extents = [] {
    std::array<std::size_t, batch::rank + 2> e{};
    for (std::size_t k = 0; k < batch::rank; ++k) e[k] = batch::static_extents[k];
    e[batch::rank] = static_extent_from_end<A>(2);
    e[batch::rank + 1] = static_extent_from_end<B>(1);
    return e;
  }();
  using type = shape_from_array_t<extents>;
};

}  // namespace detail

/// The product of two expressions over their last two axes, batch axes broadcast (NumPy matmul).
template <class A, class B>
struct matmul_node {
  static constexpr bool is_loom_node = true;
  using a_type = A;
  using b_type = B;
  using value_type = promote_t<typename A::value_type, typename B::value_type>;
  using shape_type = typename detail::matmul_shape<typename A::shape_type, typename B::shape_type>::type;
  static constexpr std::size_t rank = shape_type::rank;
  static constexpr memory_space space = detail::join_spaces<A, B>();
  static_assert(!std::is_same_v<value_type, bool>, "loom: matmul of bool operands is not defined; cast them first");

  A a;
  B b;
  shape_type shape_;

  matmul_node(A x, B y) : a(std::move(x)), b(std::move(y)), shape_(compute_shape(a, b)) {}

  shape_type shape() const { return shape_; }
  /// M, N and K of each product.
  index_t rows() const { return static_cast<index_t>(a.shape().extent(A::rank - 2)); }
  index_t cols() const { return static_cast<index_t>(b.shape().extent(B::rank - 1)); }
  index_t inner() const { return static_cast<index_t>(a.shape().extent(A::rank - 1)); }

 private:
  static shape_type compute_shape(const A& x, const B& y) {
    const dims da = x.shape().to_dims(), db = y.shape().to_dims();
    if (da.e[da.rank - 1] != db.e[db.rank - 2])
      throw shape_error("loom: matmul of shapes " + to_string(da) + " and " + to_string(db) +
                        ": the inner extents differ (" + std::to_string(da.e[da.rank - 1]) + " vs " +
                        std::to_string(db.e[db.rank - 2]) + ")");
    dims ba = da, bb = db;
    ba.rank -= 2;
    bb.rank -= 2;
    dims r;
    try {
      r = broadcast_dims(ba, bb);
    } catch (const shape_error&) {
      throw shape_error("loom: matmul of shapes " + to_string(da) + " and " + to_string(db) +
                        ": the batch axes cannot be broadcast together");
    }
    r.e[r.rank++] = da.e[da.rank - 2];
    r.e[r.rank++] = db.e[db.rank - 1];
    if constexpr (shape_type::is_static)
      return shape_type{};
    else
      return shape_type::from_dims(r);
  }
};

template <class T>
struct is_matmul_node : std::false_type {};
template <class A, class B>
struct is_matmul_node<matmul_node<A, B>> : std::true_type {};

namespace detail {
template <class N>
struct matmul_bit {
  static constexpr unsigned value = is_matmul_node<N>::value ? 1u : 0u;
};
}  // namespace detail

/// True where the tree of N holds a matmul outside any other matmul's operands.
template <class N>
inline constexpr bool has_matmul_v = fold_nodes_or<detail::matmul_bit, N>::value != 0;

namespace detail {
/// A rank-1 operand seen as a row [1, K] (Row) or a column [K, 1]; others as they are.
template <bool Row, class N>
auto as_matrix(N n) {
  if constexpr (N::rank != 1) {
    return n;
  } else {
    constexpr std::size_t k = N::shape_type::static_extents[0];
    using S = std::conditional_t<Row, shape<1, k>, shape<k, 1>>;
    if constexpr (S::is_static)
      return reshape(std::move(n), S{});
    else
      return reshape(std::move(n), S{n.shape().extent(0)});
  }
}
/// The static extents of S without axis Drop.
template <class S, std::size_t Drop>
struct drop_axis {
  static constexpr std::array<std::size_t, S::rank - 1> extents = [] {
    std::array<std::size_t, S::rank - 1> e{};
    for (std::size_t k = 0, j = 0; k < S::rank; ++k)
      if (k != Drop) e[j++] = S::static_extents[k];
    return e;
  }();
  using type = shape_from_array_t<extents>;
  static type of(const S& s) {
    if constexpr (type::is_static) {
      return type{};
    } else {
      dims d = s.to_dims(), r;
      for (std::size_t k = 0; k < S::rank; ++k)
        if (k != Drop) r.e[r.rank++] = d.e[k];
      return type::from_dims(r);
    }
  }
};
}  // namespace detail

/// The matrix product of a and b over their last two axes, batch axes broadcast (NumPy's matmul):
/// matmul(a, w) of [64, 48] and [48, 32] is [64, 32]. Operands may be any expression:
/// matmul(a * 2.f, transpose(w)). A rank-1 a is a row, a rank-1 b a column, their axis dropped
/// from the result: matmul(v, w) of [48] and [48, 32] is [32].
template <class A, class B>
  requires expression<A> && expression<B>
auto matmul(A&& a, B&& b) {
  using NA = node_t<A>;
  using NB = node_t<B>;
  static_assert(detail::spaces_agree_all<NA, NB>(), "loom: an expression cannot mix host tensors and device tensors");
  if constexpr (NA::rank >= 2 && NB::rank >= 2) {
    return matmul_node<NA, NB>(as_node(std::forward<A>(a)), as_node(std::forward<B>(b)));
  } else {
    static_assert(static_matmul_needs_rank_1<typename NA::shape_type, typename NB::shape_type>::value);
    auto ma = detail::as_matrix<true>(as_node(std::forward<A>(a)));
    auto mb = detail::as_matrix<false>(as_node(std::forward<B>(b)));
    auto p = matmul_node<decltype(ma), decltype(mb)>(std::move(ma), std::move(mb));
    using P = decltype(p);
    if constexpr (NA::rank == 1 && NB::rank == 1) {
      return reshape(std::move(p), shape<>{});
    } else if constexpr (NA::rank == 1) {
      using D = detail::drop_axis<typename P::shape_type, P::rank - 2>;
      const auto s = D::of(p.shape());
      return reshape(std::move(p), s);
    } else {
      using D = detail::drop_axis<typename P::shape_type, P::rank - 1>;
      const auto s = D::of(p.shape());
      return reshape(std::move(p), s);
    }
  }
}

}  // namespace loom
