// Aliasing: self-assignment is in place, any other overlap with the destination is made safe.
#include <loom/loom.hpp>

#include <vector>

#include "support.hpp"

using namespace loom;

TEST_CASE("elementwise self-assignment is correct in place", "[aliasing]") {
  for (std::size_t n : loom_test::odd_sizes) {
    tensor<float, shape<dyn>> x(n);
    loom_test::randomize(x, n);
    std::vector<float> x0(x.data(), x.data() + n);
    x = x * x + x;
    for (std::size_t i = 0; i < n; ++i) CHECK(x(i) == x0[i] * x0[i] + x0[i]);
    x += x;
    for (std::size_t i = 0; i < n; ++i) CHECK(x(i) == 2 * (x0[i] * x0[i] + x0[i]));
  }
}

TEST_CASE("a view overlapping the destination at an offset goes through a temporary", "[aliasing]") {
  std::vector<float> buf(1100);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  auto dst = view(buf.data() + 1, shape<1024>{});
  auto src = view(buf.data(), shape<1024>{});  // shifted by one element
  dst = src * 2.f;
  for (std::size_t i = 0; i < 1024; ++i) CHECK(buf[i + 1] == 2.f * float(i));
  CHECK(buf[0] == 0.f);
}

TEST_CASE("a transposed or broadcast read of the destination is safe", "[aliasing]") {
  tensor<float, shape<dyn, dyn>> x(33, 33);
  loom_test::randomize(x, 9);
  tensor<float, shape<dyn, dyn>> x0 = x;
  auto t = view(x.data(), shape<dyn, dyn>{33, 33}, {1, 33});  // x transposed
  x = t + 0.f;
  for (int i = 0; i < 33; ++i)
    for (int j = 0; j < 33; ++j) CHECK(x(i, j) == x0(j, i));
  auto row0 = view(x.data(), shape<1, 33>{});  // the first row, broadcast over all rows
  tensor<float, shape<dyn, dyn>> x1 = x;
  x = x - row0;
  for (int i = 0; i < 33; ++i)
    for (int j = 0; j < 33; ++j) CHECK(x(i, j) == x1(i, j) - x1(0, j));
}

TEST_CASE("reading a disjoint part of the same buffer needs no temporary", "[aliasing]") {
  std::vector<double> buf(200);
  for (std::size_t i = 0; i < 200; ++i) buf[i] = double(i);
  auto lo = view(buf.data(), shape<100>{});
  auto hi = view(buf.data() + 100, shape<100>{});
  hi = lo + 1.0;
  for (std::size_t i = 0; i < 100; ++i) CHECK(buf[100 + i] == double(i) + 1);
}

TEST_CASE("a concat whose cursors span the temporary of an overlap goes through one temporary", "[aliasing]") {
  // Fuzz seed 4001, case 874: concat and pad cursors reach past their arrays, so their spans are
  // over-approximated; a temporary allocated because of an overlap could fall inside the span
  // again, and the evaluation went through one temporary after another until memory ran out.
  // The temporary of an overlap is now marked fresh (nothing read can overlap it).
  const std::size_t rows = 576269, head = 862601, tail = 658304;
  tensor<double, shape<dyn, 3>> a(rows);
  loom_test::randomize(a, 874);
  tensor<bool, shape<dyn>> b(tail);
  for (std::size_t i = 0; i < tail; ++i) b(i) = i % 3 == 0;
  auto e = concat<0>(-(minimum(std::int64_t(5), iota<float>(shape<dyn>{head}))),
                     slice<0>(argmax(permute<0, 1>(a), axis<1>), -576264, 576269), gelu_exact(log1p(b)));
  static_assert(std::is_same_v<value_type_of<decltype(e)>, double>);
  auto check = [&](auto&& r) {
    const std::size_t mid = rows - 5;  // slice [-576264, 576269) of 576269 rows: [5, 576269)
    REQUIRE(r.extent(0) == head + mid + tail);
    for (std::size_t i : {std::size_t(0), std::size_t(4), std::size_t(5), head - 1}) CHECK(r(i) == -std::min(5.0, double(i)));
    for (std::size_t k : {std::size_t(0), std::size_t(1), std::size_t(7), mid - 1}) {
      const std::size_t row = 5 + k;
      std::size_t best = 0;
      for (std::size_t j = 1; j < 3; ++j)
        if (a(row, j) > a(row, best)) best = j;
      CHECK(r(head + k) == double(best));
    }
    for (std::size_t i : {std::size_t(0), std::size_t(1), tail - 1}) {
      const double x = std::log1p(b(i) ? 1.0 : 0.0);
      const double want = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
      CHECK(std::abs(r(head + mid + i) - want) <= 1e-6 * std::abs(want));
    }
  };
  check(eval(e));
  std::vector<float> buf(2 * (head + rows - 5 + tail));
  auto strided = view(buf.data(), shape<dyn>{head + rows - 5 + tail}, {2});
  strided = e;
  check(strided);
}
