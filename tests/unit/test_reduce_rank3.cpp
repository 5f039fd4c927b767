// Every reduction over every axis set of rank-3 operands, with and without keepdims, dynamic
// shapes at odd sizes (and some static ones), against float64 references.
#include "reduce_support.hpp"

using namespace loom;
using loom_test::red;

namespace {
template <red R, unsigned... Masks, class X>
void all_masks(const X& x) {
  ((loom_test::check_reduction<R, Masks, false>(x), loom_test::check_reduction<R, Masks, true>(x)), ...);
}
}  // namespace

#define LOOM_RANK3_MASKS ~0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u

TEST_CASE("reductions of rank 3, dynamic, odd sizes", "[reduce]") {
  const std::array<std::size_t, 3> sizes[] = {{3, 5, 7}, {1, 17, 1}, {7, 1, 33}, {2, 3, 1025}, {17, 16, 3}, {2, 0, 3}};
  for (auto e : sizes) {
    tensor<float, shape<dyn, dyn, dyn>> x(e[0], e[1], e[2]);
    loom_test::randomize(x, e[0] * 1000 + e[1] * 10 + e[2]);
    all_masks<red::sum, LOOM_RANK3_MASKS>(x);
    all_masks<red::mean, LOOM_RANK3_MASKS>(x);
    all_masks<red::max, LOOM_RANK3_MASKS>(x);
    all_masks<red::min, LOOM_RANK3_MASKS>(x);
    all_masks<red::argmax, LOOM_RANK3_MASKS>(x);
    all_masks<red::argmin, LOOM_RANK3_MASKS>(x);
    loom_test::randomize(x, e[0] + e[1] + e[2], 0.9, 1.1);
    all_masks<red::prod, LOOM_RANK3_MASKS>(x);
  }
}

TEST_CASE("reductions of rank 3, static shapes", "[reduce]") {
  tensor<float, shape<5, 6, 37>> x;
  loom_test::randomize(x, 3);
  all_masks<red::sum, 1u, 2u, 4u, 5u, 7u>(x);
  all_masks<red::max, 2u, 6u>(x);
  all_masks<red::argmin, 1u, 4u>(x);
  static_assert(std::is_same_v<decltype(eval(sum(x, axes<0, 2>))), tensor<float, shape<6>>>);
  static_assert(std::is_same_v<decltype(eval(sum(x, axes<2, 0>, keepdims))), tensor<float, shape<1, 6, 1>>>);
  static_assert(std::is_same_v<decltype(eval(max(x, axis<-2>))), tensor<float, shape<5, 37>>>);
  tensor<float, shape<dyn, 6, 37>> y(5);
  static_assert(std::is_same_v<decltype(eval(mean(y, axis<1>))), tensor<float, shape<dyn, 37>>>);
  static_assert(std::is_same_v<decltype(eval(mean(y, axis<0>))), tensor<float, shape<6, 37>>>);
}
