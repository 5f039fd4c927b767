// loom/expr/generator.hpp: generators - nodes whose elements come from their index alone.
//
//   auto io = iota<float>(shape<64, 32>{});     // io(i, j) == 32 * i + j (the row-major index)
//   auto z  = zeros<float>(shape<dyn, 32>{n});
//   auto o  = ones<int32_t>(shape<8>{});
//   auto f  = full<float>(shape<64, 32>{}, 3.f);
//
// They read no memory, compose with everything, and are never materialised.
#pragma once

#include <utility>

#include "loom/core/dtype.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/expr/traits.hpp"

namespace loom {

/// The row-major flat index of each element, as T.
template <element_type T, shape_type Shape>
struct iota_node {
  static constexpr bool is_loom_node = true;
  using value_type = T;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr memory_space space = memory_space::any;
  Shape shape_;
  Shape shape() const { return shape_; }
};

/// One value in every element.
template <element_type T, shape_type Shape>
struct full_node {
  static constexpr bool is_loom_node = true;
  using value_type = T;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr memory_space space = memory_space::any;
  Shape shape_;
  T value{};
  Shape shape() const { return shape_; }
};

template <class T>
struct is_generator : std::false_type {};
template <class T, class S>
struct is_generator<iota_node<T, S>> : std::true_type {};
template <class T, class S>
struct is_generator<full_node<T, S>> : std::true_type {};

/// The row-major index of every element as T: iota<float>(shape<2, 3>{}) is [[0, 1, 2], [3, 4, 5]].
template <element_type T, std::size_t... Es>
iota_node<T, shape<Es...>> iota(const shape<Es...>& s) {
  return {s};
}
/// v (converted to T) in every element: full<float>(shape<64, 32>{}, 3.f).
template <element_type T, std::size_t... Es, class V>
  requires scalar_type<V>
full_node<T, shape<Es...>> full(const shape<Es...>& s, V v) {
  return {s, static_cast<T>(v)};
}
/// 0 in every element: zeros<float>(shape<dyn>{n}).
template <element_type T, std::size_t... Es>
full_node<T, shape<Es...>> zeros(const shape<Es...>& s) {
  return {s, T(0)};
}
/// 1 in every element: ones<float>(shape<4, 4>{}).
template <element_type T, std::size_t... Es>
full_node<T, shape<Es...>> ones(const shape<Es...>& s) {
  return {s, T(1)};
}

}  // namespace loom
