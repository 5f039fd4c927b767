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
