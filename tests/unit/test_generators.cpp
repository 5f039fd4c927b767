// Generators: iota, zeros, ones, full - every dtype, static and dynamic shapes, composed with
// elementwise ops, index maps and reductions, never materialised.
#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;

TEST_CASE("iota is the row-major index", "[generator][iota]") {
  auto io = eval(iota<float>(shape<64, 32>{}));
  static_assert(std::is_same_v<decltype(io), tensor<float, shape<64, 32>>>);
  CHECK(io(0, 1) == 1.f);
  CHECK(io(63, 31) == 2047.f);
  for (std::size_t n : {0, 1, 7, 17, 1023, 1025}) {
    auto i32 = eval(iota<int32_t>(shape<dyn>{n}));
    auto i64 = eval(iota<int64_t>(shape<dyn, 3>{n}));
    auto f64 = eval(iota<double>(shape<3, dyn>{n}));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad += i32(i) != int32_t(i);
    for (std::size_t i = 0; i < 3 * n; ++i) bad += i64.data()[i] != int64_t(i) || f64.data()[i] != double(i);
    CHECK(bad == 0);
  }
  // A strided read of a generator is its index, not memory.
  auto t = eval(transpose(iota<float>(shape<3, 5>{})));
  CHECK(t(4, 2) == 14.f);
  auto r = eval(reshape<shape<5, 3>>(iota<int32_t>(shape<3, 5>{})));
  CHECK(r(4, 2) == 14);
  auto s = eval(slice<1>(iota<int32_t>(shape<4, 10>{}), 1, 10, 3));
  CHECK(s(3, 2) == 37);
  auto b = eval(iota<bool>(shape<3>{}));
  CHECK((!b(0) && b(1) && b(2)));
}

TEST_CASE("zeros, ones and full", "[generator][full]") {
  auto z = eval(zeros<float>(shape<64, 32>{}));
  auto o = eval(ones<int64_t>(shape<dyn>{5}));
  auto f = eval(full<double>(shape<2, dyn>{3}, 3.5f));
  CHECK(z(10, 10) == 0.f);
  CHECK(o(4) == 1);
  CHECK(f(1, 2) == 3.5);
  static_assert(std::is_same_v<decltype(f), tensor<double, shape<2, dyn>>>);
  static_assert(plan_of<decltype(full<float>(shape<8>{}, 1.f))>::temp_bytes == 0);
}

TEST_CASE("generators in expressions and reductions", "[generator][compose]") {
  tensor<float, shape<dyn, dyn>> x(9, 1025);
  loom_test::randomize(x, 1);
  tensor<float, shape<dyn, dyn>> y = x * ones<float>(shape<dyn, dyn>{9, 1025}) + zeros<float>(shape<dyn>{1025});
  CHECK(std::memcmp(x.data(), y.data(), x.size() * 4) == 0);
  const std::size_t n = 100000;
  CHECK(eval(sum(iota<int64_t>(shape<dyn>{n})))() == std::int64_t(n) * (n - 1) / 2);
  CHECK(eval(argmax(iota<float>(shape<dyn>{n})))() == std::int64_t(n - 1));
  CHECK(eval(sum(full<int32_t>(shape<dyn, dyn>{300, 7}, 2), axis<0>))(6) == 600);
  auto rows = eval(max(iota<double>(shape<dyn, dyn>{7, 11}), axis<1>));
  CHECK(rows(6) == 76.0);
  // Masks from indices: the strictly lower triangle of a 5 x 5.
  tensor<int32_t, shape<5, 5>> tri = where(transpose(iota<int32_t>(shape<5, 5>{})) > iota<int32_t>(shape<5, 5>{}), 1, 0);
  CHECK(eval(sum(tri))() == 10);
  CHECK(concat<0>(iota<float>(shape<2>{}), full<float>(shape<1>{}, 7.f)).shape().extent(0) == 3);
  auto c = eval(concat<0>(iota<float>(shape<2>{}), full<float>(shape<1>{}, 7.f)));
  CHECK((c(0) == 0.f && c(1) == 1.f && c(2) == 7.f));
}
