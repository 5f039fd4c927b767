// Strided views as operands and destinations: gathers, scatters, stride 0 and negative strides
// through the SIMD body and the scalar tail (sizes around the packet width).
#include <loom/loom.hpp>

#include <vector>

#include "support.hpp"

using namespace loom;

namespace {
const std::size_t sizes[] = {1, 7, 17, 33, 1025};
}

TEMPLATE_TEST_CASE("a transposed view is read by gathers", "[view][strided]", float, double) {
  using T = TestType;
  for (std::size_t r : sizes)
    for (std::size_t c : {std::size_t(3), std::size_t(17)}) {
      std::vector<T> buf(r * c);
      loom_test::fill_random(buf.data(), buf.size(), r * 31 + c);
      auto t = view(buf.data(), shape<dyn, dyn>{c, r}, {1, index_t(c)});  // c x r, column-major
      tensor<T, shape<dyn, dyn>> y(c, r);
      loom_test::randomize(y, 5);
      auto o = eval(t * T(2) + y);
      std::vector<double> want(c * r);
      for (std::size_t i = 0; i < c; ++i)
        for (std::size_t j = 0; j < r; ++j) want[i * r + j] = double(T(2) * buf[j * c + i] + y(i, j));
      loom_test::check_close(o.data(), want, 0, 0, "transposed");
    }
}

TEMPLATE_TEST_CASE("a strided destination is written by scatters", "[view][strided]", float, double) {
  using T = TestType;
  for (std::size_t n : sizes) {
    std::vector<T> buf(3 * n, T(-7));
    auto every_third = view(buf.data() + 1, shape<dyn>{n}, {3});
    tensor<T, shape<dyn>> x(n);
    loom_test::randomize(x, n);
    every_third = exp(x);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(buf[3 * i] == T(-7));
      CHECK(buf[3 * i + 2] == T(-7));
      CHECK(loom_test::close(buf[3 * i + 1], std::exp(double(x(i))), 4e-6, 0));
    }
  }
}

TEST_CASE("a column of shape [n, 1] broadcasts along rows through stride 0", "[view][broadcast]") {
  for (std::size_t r : sizes)
    for (std::size_t c : {std::size_t(1), std::size_t(16), std::size_t(17), std::size_t(1025)}) {
      tensor<float, shape<dyn, dyn>> x(r, c);
      tensor<float, shape<dyn, 1>> col(r);
      loom_test::randomize(x, r + c);
      loom_test::randomize(col, r);
      auto o = eval(x - col);
      std::vector<double> want(r * c);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) want[i * c + j] = double(x(i, j) - col(i, 0));
      INFO(r << " x " << c);
      loom_test::check_close(o.data(), want, 0, 0, "column broadcast");
    }
}

TEST_CASE("negative strides and views of views", "[view][strided]") {
  std::vector<int> buf(1025);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = int(i);
  auto rev = view(buf.data() + 1024, shape<1025>{}, {-1});
  tensor<int, shape<1025>> o = rev * 2 + 1;
  for (int i = 0; i < 1025; ++i) CHECK(o(i) == (1024 - i) * 2 + 1);
  tensor_view<const int, shape<1025>, strided_layout> crev = rev;  // const and strided from mutable
  tensor<int, shape<1025>> p = crev - rev;
  for (int i = 0; i < 1025; ++i) CHECK(p(i) == 0);
  auto mat = view(buf.data(), shape<25, 41>{});
  auto rows_reversed = view(buf.data() + 24 * 41, shape<25, 41>{}, {-41, 1});
  tensor<int, shape<25, 41>> q = rows_reversed + mat;
  for (int i = 0; i < 25; ++i)
    for (int j = 0; j < 41; ++j) CHECK(q(i, j) == (24 - i) * 41 + j + i * 41 + j);
}

TEST_CASE("a view over a tensor's memory with 2-D strides picks a sub-block", "[view][strided]") {
  tensor<double, shape<40, 50>> big;
  for (std::size_t i = 0; i < big.size(); ++i) big.data()[i] = double(i);
  auto block = view(big.data() + 5 * 50 + 3, shape<17, 19>{}, {50, 1});  // rows 5..21, cols 3..21
  auto o = eval(block * 1.0);
  for (int i = 0; i < 17; ++i)
    for (int j = 0; j < 19; ++j) CHECK(o(i, j) == big(5 + i, 3 + j));
  block = 0.0;
  CHECK(big(5, 3) == 0.0);
  CHECK(big(21, 21) == 0.0);
  CHECK(big(5, 2) == double(5 * 50 + 2));
  CHECK(big(22, 3) == double(22 * 50 + 3));
}
