// Sums, means, maxima and minima over every axis set of rank-4 operands, with and without
// keepdims, against float64 references.
#include "reduce_support.hpp"

using namespace loom;
using loom_test::red;

namespace {
template <red R, unsigned... Masks, class X>
void all_masks(const X& x) {
  ((loom_test::check_reduction<R, Masks, false>(x), loom_test::check_reduction<R, Masks, true>(x)), ...);
}
}  // namespace

#define LOOM_RANK4_MASKS ~0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u

TEST_CASE("sum, mean, max, min of rank 4, every axis set", "[reduce]") {
  const std::array<std::size_t, 4> sizes[] = {{2, 3, 5, 7}, {3, 1, 17, 4}, {1, 2, 1, 1025}, {4, 4, 1, 1}, {2, 2, 0, 3}};
  for (auto e : sizes) {
    tensor<float, shape<dyn, dyn, dyn, dyn>> x(e[0], e[1], e[2], e[3]);
    loom_test::randomize(x, e[0] * 1000 + e[1] * 100 + e[2] * 10 + e[3]);
    all_masks<red::sum, LOOM_RANK4_MASKS>(x);
    all_masks<red::mean, LOOM_RANK4_MASKS>(x);
    all_masks<red::max, LOOM_RANK4_MASKS>(x);
    all_masks<red::min, LOOM_RANK4_MASKS>(x);
  }
}

TEST_CASE("rank-4 static shapes", "[reduce]") {
  tensor<double, shape<2, 3, 4, 5>> x;
  loom_test::randomize(x, 4);
  all_masks<red::sum, 1u, 5u, 10u, 15u>(x);
  all_masks<red::max, 6u, 9u>(x);
  static_assert(std::is_same_v<decltype(eval(sum(x, axes<1, 3>))), tensor<double, shape<2, 4>>>);
}
