// Every reduction over every axis set, with and without keepdims, of rank-1 and rank-2 operands:
// dynamic shapes at odd sizes and static shapes, against float64 references.
#include "reduce_support.hpp"

using namespace loom;
using loom_test::red;

namespace {

template <red R, unsigned... Masks, class X>
void all_masks(const X& x) {
  ((loom_test::check_reduction<R, Masks, false>(x), loom_test::check_reduction<R, Masks, true>(x)), ...);
}
template <unsigned... Masks, class X>
void all_reductions(const X& x) {
  all_masks<red::sum, ~0u, Masks...>(x);
  all_masks<red::mean, ~0u, Masks...>(x);
  all_masks<red::max, ~0u, Masks...>(x);
  all_masks<red::min, ~0u, Masks...>(x);
  all_masks<red::argmax, ~0u, Masks...>(x);
  all_masks<red::argmin, ~0u, Masks...>(x);
}
template <unsigned... Masks, class X>
void products(X& x, std::uint64_t seed) {
  loom_test::randomize(x, seed, 0.9, 1.1);  // products of many values stay in range
  all_masks<red::prod, ~0u, Masks...>(x);
}

}  // namespace

TEST_CASE("reductions of rank 1, dynamic, every size", "[reduce]") {
  for (std::size_t n : {0, 1, 7, 17, 1023, 1025, 4099}) {
    tensor<float, shape<dyn>> x(n);
    loom_test::randomize(x, n);
    all_reductions<1u>(x);
    products<1u>(x, n + 1);
  }
}

TEST_CASE("reductions of rank 2, dynamic, odd sizes", "[reduce]") {
  const std::pair<std::size_t, std::size_t> sizes[] = {{1, 1}, {7, 17}, {17, 7}, {1, 1023}, {1025, 1},
                                                       {33, 1025}, {3, 0}, {0, 5}, {130, 67}};
  for (auto [a, b] : sizes) {
    tensor<float, shape<dyn, dyn>> x(a, b);
    loom_test::randomize(x, a * 131 + b);
    all_reductions<1u, 2u, 3u>(x);
    products<1u, 2u, 3u>(x, a + b);
  }
}

TEST_CASE("reductions of rank 2, static shapes", "[reduce]") {
  tensor<float, shape<64, 33>> x;
  loom_test::randomize(x, 5);
  all_reductions<1u, 2u, 3u>(x);
  static_assert(std::is_same_v<decltype(eval(max(x, axis<1>))), tensor<float, shape<64>>>);
  static_assert(std::is_same_v<decltype(eval(sum(x, axis<0>, keepdims))), tensor<float, shape<1, 33>>>);
  static_assert(std::is_same_v<decltype(eval(sum(x))), tensor<float, shape<>>>);
  static_assert(std::is_same_v<decltype(eval(mean(x, keepdims))), tensor<float, shape<1, 1>>>);
  static_assert(std::is_same_v<decltype(eval(argmin(x, axis<-1>))), tensor<std::int64_t, shape<64>>>);
  tensor<double, shape<5, 1025>> y;
  loom_test::randomize(y, 6);
  all_reductions<1u, 2u, 3u>(y);
}
