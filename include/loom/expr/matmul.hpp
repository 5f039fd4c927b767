// loom/expr/matmul.hpp: the contraction node, matmul(a, b).
//
//   matmul(a, w)      [64, 48] x [48, 32]         -> [64, 32]
//   matmul(q, k)      [8, 1, 64, 16] x [4, 16, 64] -> [8, 4, 64, 64]  (batch axes broadcast)
//
// Operands of rank >= 2 multiply as NumPy's matmul: the last two axes are the matrices, the
// leading ones are batch axes broadcast together. The value type is the promotion of both
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
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

/// Raised where matmul is given an operand of rank below 2.
template <class ShapeA, class ShapeB>
struct static_matmul_needs_rank_2 {
  static_assert(ShapeA::rank >= 2 && ShapeB::rank >= 2,
                "loom: matmul(a, b) needs operands of rank 2 or more: see ShapeA and ShapeB in "
                "'static_matmul_needs_rank_2<ShapeA, ShapeB>'");
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
  static_assert(static_matmul_needs_rank_2<A, B>::value);
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

/// The matrix product of a and b over their last two axes, batch axes broadcast (NumPy's matmul):
/// matmul(a, w) of [64, 48] and [48, 32] is [64, 32]. Operands may be any expression:
/// matmul(a * 2.f, transpose(w)).
template <class A, class B>
  requires expression<A> && expression<B>
auto matmul(A&& a, B&& b) {
  using NA = node_t<A>;
  using NB = node_t<B>;
  static_assert(detail::spaces_agree_all<NA, NB>(), "loom: an expression cannot mix host tensors and device tensors");
  return matmul_node<NA, NB>(as_node(std::forward<A>(a)), as_node(std::forward<B>(b)));
}

}  // namespace loom
