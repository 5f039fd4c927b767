// Products, argmax and argmin over every axis set of rank-4 operands, with and without keepdims,
// against references (argmax/argmin report row-major positions over the reduced axes).
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

TEST_CASE("prod, argmax, argmin of rank 4, every axis set", "[reduce]") {
  const std::array<std::size_t, 4> sizes[] = {{2, 3, 5, 7}, {3, 1, 17, 4}, {1, 2, 1, 1025}, {2, 2, 0, 3}};
  for (auto e : sizes) {
    tensor<float, shape<dyn, dyn, dyn, dyn>> x(e[0], e[1], e[2], e[3]);
    loom_test::randomize(x, e[0] * 1000 + e[1] * 100 + e[2] * 10 + e[3]);
    all_masks<red::argmax, LOOM_RANK4_MASKS>(x);
    all_masks<red::argmin, LOOM_RANK4_MASKS>(x);
    loom_test::randomize(x, e[3], 0.9, 1.1);
    all_masks<red::prod, LOOM_RANK4_MASKS>(x);
  }
}

TEST_CASE("rank-4 static shapes, arg reductions", "[reduce]") {
  tensor<float, shape<3, 2, 4, 5>> x;
  loom_test::randomize(x, 44);
  all_masks<red::argmax, 3u, 12u, 15u>(x);
  all_masks<red::prod, 9u>(x);
}
