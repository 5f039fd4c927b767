// Reductions on a real device, against the CPU library's result for the same expression: every
// reducer over inner, outer and all axes (keepdims or not) for odd sizes, fused producers, full
// reductions split into chunks (two stages, deterministic: the same bits on every run), NaN and
// ties, empty axes, and expressions holding reductions (softmax, layer norm, RMS norm, nested).
//
// Every test skips with a visible message where no CUDA device is available.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_support.hpp"
#include "support.hpp"

using namespace loom;
using loom_gpu_test::to_device;
using loom_gpu_test::to_host;

namespace {

/// The device result against the CPU library's. Floating results agree within rtol of the
/// result's scale: the same computation on |inputs| (for a sum, the sum of magnitudes), so that a
/// sum that cancels to near zero is judged by the size of what it added. The CPU accumulates
/// float sums and products in float and the device in double, so the difference is mostly the
/// CPU's rounding (seen on an H200: 1025 values of magnitude 1 summing to -0.0293 differed by 2e-6).
template <class Build, class... Hs>
void check_same(const std::string& what, double rtol, Build build, const Hs&... hs) {
  INFO(what);
  auto want = eval(build(hs...));
  auto got = to_host(cuda::eval(build(to_device(hs)...)));
  REQUIRE(got.shape().to_dims() == want.shape().to_dims());
  using T = typename decltype(want)::value_type;
  if constexpr (std::is_floating_point_v<T>) {
    auto scale = eval(build(abs(hs)...));
    std::size_t bad = 0, first = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double g = got.data()[i], w = want.data()[i];
      const double tol = 1e-6 + rtol * (std::abs(w) + std::abs(double(scale.data()[i])));
      const bool ok = std::isnan(w) ? std::isnan(g) : std::isinf(w) ? g == w : std::abs(g - w) <= tol;
      if (!ok && bad++ == 0) first = i;
    }
    INFO("first at " << first << ": got " << double(got.data()[first]) << ", want " << double(want.data()[first]));
    CHECK(bad == 0);
  } else {
    loom_test::check_equal(got.data(), std::vector<T>(want.data(), want.data() + want.size()), what);
  }
}

}  // namespace

TEST_CASE("cuda reductions: every reducer over every axis set matches the CPU", "[cuda][gpu][reduce]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t r : {1u, 7u, 17u, 1023u, 1025u}) {
    for (std::size_t c : {1u, 17u, 1025u, 70000u}) {
      if (r * c > (std::size_t(1) << 22)) continue;
      INFO(r << " x " << c);
      tensor<float, shape<dyn, dyn>> x(r, c);
      tensor<std::int32_t, shape<dyn, dyn>> k(r, c);
      loom_test::randomize(x, r * 7 + c);
      loom_test::randomize(k, r * 11 + c, -9, 9);
      check_same("sum rows", 1e-5, [](const auto& a) { return sum(a, axis<1>); }, x);
      check_same("sum columns keepdims", 1e-5, [](const auto& a) { return sum(a, axis<0>, keepdims); }, x);
      check_same("sum all", 1e-5, [](const auto& a) { return sum(a); }, x);
      check_same("fused mean", 1e-5, [](const auto& a) { return mean(exp(a) * 2.f - 1.f, axis<1>); }, x);
      check_same("max", 0, [](const auto& a) { return max(a, axis<1>); }, x);
      check_same("min columns", 0, [](const auto& a) { return min(a, axis<0>); }, x);
      check_same("argmax ties", 0, [](const auto& i) { return argmax(i, axis<1>); }, k);
      check_same("argmin all ties", 0, [](const auto& i) { return argmin(i); }, k);
      check_same("int sum", 0, [](const auto& i) { return sum(i * i, axis<0>); }, k);
      check_same("bool sum", 0, [](const auto& i) { return sum(i > 2); }, k);
      check_same("int mean", 1e-12, [](const auto& i) { return mean(i, axis<1>); }, k);
      // 70000 factors: the CPU rounds its float product 70000 times (about 1e-5, 3 sigma 3e-5).
      check_same("prod", 3e-5, [](const auto& a) { return prod(1.f + a * 1e-3f, axis<1>); }, x);
      check_same("sum of a transpose", 1e-5, [](const auto& a) { return sum(transpose(a), axis<0>); }, x);
    }
  }
  tensor<double, shape<4, 5, 6>> t;
  loom_test::randomize(t, 5);
  check_same("rank 3, axes 0 and 2", 1e-12, [](const auto& a) { return sum(a * a, axes<0, 2>); }, t);
  check_same("rank 3, axes 0 and 2, keepdims", 0, [](const auto& a) { return max(a, axes<0, 2>, keepdims); }, t);
}

TEST_CASE("cuda reductions: NaN, empty axes, 2^24 elements, determinism", "[cuda][gpu][reduce]") {
  LOOM_REQUIRE_GPU();
  tensor<float, shape<dyn, dyn>> x(9, 130);
  loom_test::randomize(x, 3);
  x(4, 7) = std::numeric_limits<float>::quiet_NaN();
  check_same("max with NaN", 0, [](const auto& a) { return max(a, axis<1>); }, x);
  check_same("argmax with NaN", 0, [](const auto& a) { return argmax(a, axis<1>); }, x);
  cuda::tensor<float, shape<dyn, dyn>> e(3, 0);
  CHECK(to_host(cuda::eval(sum(e, axis<1>)))(1) == 0.f);
  CHECK(to_host(cuda::eval(prod(e, axis<1>)))(2) == 1.f);
  CHECK_THROWS_AS(cuda::eval(max(e, axis<1>)), shape_error);
  // 2^24 floats: the double accumulator keeps the float64 reference's value to float rounding;
  // the same bits every run (fixed chunks and trees, no atomics).
  const std::size_t n = std::size_t(1) << 24;
  tensor<float, shape<dyn>> big(n);
  loom_test::randomize(big, 17, 0.0, 1.0);
  double ref = 0;
  for (std::size_t i = 0; i < n; ++i) ref += big(i);
  auto db = to_device(big);
  const float s1 = to_host(cuda::eval(sum(db)))();
  const float s2 = to_host(cuda::eval(sum(db)))();
  CHECK(std::abs(double(s1) - ref) <= 1e-6 * ref);
  CHECK(std::memcmp(&s1, &s2, sizeof s1) == 0);
}

TEST_CASE("cuda reductions: softmax, layer norm, RMS norm and nested reductions match the CPU", "[cuda][gpu][reduce]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t c : {1u, 17u, 1024u, 4097u}) {
    tensor<float, shape<dyn, dyn>> x(33, c);
    tensor<float, shape<dyn>> g(c), b(c);
    loom_test::randomize(x, c, -4, 4);
    loom_test::randomize(g, c + 1);
    loom_test::randomize(b, c + 2);
    check_same("softmax", 1e-5,
               [](const auto& a) {
                 auto e = exp(a - max(a, axis<1>, keepdims));
                 return e / sum(e, axis<1>, keepdims);
               },
               x);
    check_same("layer norm", 1e-4,
               [](const auto& a, const auto& gamma, const auto& beta) {
                 auto d = a - mean(a, axis<1>, keepdims);
                 return d * rsqrt(mean(d * d, axis<1>, keepdims) + 1e-5f) * gamma + beta;
               },
               x, g, b);
    check_same("rms norm", 1e-5, [](const auto& a) { return a * rsqrt(mean(a * a, axis<1>, keepdims) + 1e-6f); }, x);
    check_same("nested", 1e-4, [](const auto& a) { return sum(a - max(a, axis<1>, keepdims), axis<0>); }, x);
    // into an existing tensor and a strided view
    auto dx = to_device(x);
    cuda::tensor<float, shape<dyn>> rows(33);
    rows = sum(dx * dx, axis<1>);
    const auto want = eval(sum(x * x, axis<1>));
    loom_test::check_close(to_host(rows).data(), std::vector<double>(want.data(), want.data() + 33), 1e-5, 1e-6, "into a tensor");
  }
}

TEST_CASE("cuda reductions: a row kernel's division by the row's value is the correctly rounded quotient", "[cuda][gpu][reduce][rows]") {
  LOOM_REQUIRE_GPU();
  // x / max(|x|) over rows of 1024 and 4096 (16-byte groups: one reciprocal a row and div_row,
  // preamble.hpp) and 1025 (one element at a time: div). The max is exact in any order, so the
  // quotients must be the CPU's to the bit. The rows mix every binade, subnormals, signed zeros
  // and infinities; their largest magnitudes put the divisor inside div_row's range (2^-20 ..
  // 2^21) for some rows and outside it for others, and the dividends on both sides of theirs.
  std::mt19937_64 g(1128);
  for (std::size_t c : {1024u, 4096u, 1025u}) {
    INFO(c << " columns");
    const std::size_t r = 24;
    tensor<float, shape<dyn, dyn>> x(r, c);
    for (std::size_t i = 0; i < r; ++i) {
      const int top = i % 3 == 0 ? 100 : i % 3 == 1 ? 5 : -30;  // the row's largest binade
      for (std::size_t j = 0; j < c; ++j) {
        std::uint32_t e = static_cast<std::uint32_t>(127 + top - static_cast<int>(g() % 200));
        if (e > 254u) e = 0;  // below the normal range: a subnormal (or zero)
        std::uint32_t bits = e << 23 | (static_cast<std::uint32_t>(g()) & 0x7fffffu) | std::uint32_t(g() % 2) << 31;
        if (g() % 97 == 0) bits = std::uint32_t(g() % 2) << 31;  // signed zeros
        x(i, j) = std::bit_cast<float>(bits);
      }
      x(i, g() % c) = std::ldexp(1.5f, top);
      if (i == 5) x(i, c / 2) = -std::numeric_limits<float>::infinity();  // divisor inf: every quotient 0 or NaN
    }
    const auto build = [](const auto& a) { return a / max(abs(a), axis<1>, keepdims); };
    const auto want = eval(build(x));
    const auto got = to_host(cuda::eval(build(to_device(x))));
    std::size_t bad = 0, first = 0;
    for (std::size_t k = 0; k < want.size(); ++k) {
      const float w = want.data()[k], v = got.data()[k];
      const bool same = std::isnan(w) ? std::isnan(v) : std::bit_cast<std::uint32_t>(w) == std::bit_cast<std::uint32_t>(v);
      if (!same && bad++ == 0) first = k;
    }
    INFO("first at " << first << ": " << double(x.data()[first]) << " gives " << double(got.data()[first]) << ", the CPU "
                     << double(want.data()[first]));
    CHECK(bad == 0);
  }
}

TEST_CASE("cuda reductions: row kernels (softmax, log-softmax, norms) over many rows, in place, strided", "[cuda][gpu][reduce][rows]") {
  LOOM_REQUIRE_GPU();
  // Rows of up to 1024 take a warp each, longer ones a block; few long rows go the split way.
  // The row cache: 1024 and 4096 (16-byte groups), 1025 and 4097 (one element at a time),
  // 8192 (32 per thread), 8196 (none: beyond 32 per thread). Softmax over one array takes the
  // kernel bound to it, which keeps exp(x - max) for the quotient at up to 16 a thread (7, 100,
  // 2048, 4096); over two arrays the general kernel.
  for (auto [r, c] : {std::pair<std::size_t, std::size_t>{1, 1}, {1000, 7}, {700, 100}, {517, 1024}, {300, 1025}, {200, 2048},
                      {257, 4097}, {140, 4096}, {133, 8192}, {133, 8196}, {3, 70000}}) {
    INFO(r << " x " << c);
    tensor<float, shape<dyn, dyn>> x(r, c);
    tensor<float, shape<dyn>> g(c);
    loom_test::randomize(x, r + c, -6, 6);
    loom_test::randomize(g, c);
    auto softmax = [](const auto& a) {
      auto e = exp(a - max(a, axis<1>, keepdims));
      return e / sum(e, axis<1>, keepdims);
    };
    check_same("softmax", 1e-5, softmax, x);
    const tensor<float, shape<dyn, dyn>> copy = x;
    check_same("softmax of x with the max of a copy of x (the general row kernel)", 1e-5,
               [](const auto& a, const auto& b) {
                 auto e = exp(a - max(b, axis<1>, keepdims));
                 return e / sum(e, axis<1>, keepdims);
               },
               x, copy);
    check_same("log-softmax", 1e-5,
               [](const auto& a) {
                 auto d = a - max(a, axis<1>, keepdims);
                 return d - log(sum(exp(d), axis<1>, keepdims));
               },
               x);
    check_same("layer norm", 1e-4,
               [](const auto& a, const auto& gamma) {
                 auto d = a - mean(a, axis<1>, keepdims);
                 return d * rsqrt(mean(d * d, axis<1>, keepdims) + 1e-5f) * gamma - gamma;
               },
               x, g);
    check_same("argmax along the row", 0,
               [](const auto& a) { return argmax(a, axis<1>, keepdims) * 2 - argmin(a, axis<1>, keepdims); }, x);
    // in place: x = softmax(x), and the same bits as into a new tensor, on every run
    auto dx = to_device(x);
    const auto first = to_host(cuda::eval(softmax(dx)));
    const auto again = to_host(cuda::eval(softmax(dx)));
    CHECK(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)) == 0);
    dx = softmax(dx);
    const auto in_place = to_host(dx);
    CHECK(std::memcmp(first.data(), in_place.data(), first.size() * sizeof(float)) == 0);
  }
  // two trailing axes; a strided destination (every other row)
  tensor<double, shape<dyn, dyn, dyn>> t(6, 5, 7);
  loom_test::randomize(t, 9);
  check_same("two trailing axes", 1e-12, [](const auto& a) { return a - mean(a, axes<1, 2>, keepdims); }, t);
  tensor<float, shape<dyn, dyn>> x(40, 33);
  loom_test::randomize(x, 10);
  auto dx = to_device(x);
  cuda::tensor<float, shape<dyn, dyn>> wide(80, 33);
  auto every_other = cuda::view(wide.data(), shape<dyn, dyn>{40, 33}, {66, 1});
  every_other = dx * rsqrt(mean(dx * dx, axis<1>, keepdims) + 1e-6f);
  const auto want = eval(x * rsqrt(mean(x * x, axis<1>, keepdims) + 1e-6f));
  const auto got = to_host(wide);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 80; ++i)
    for (std::size_t j = 0; j < 33; ++j) {
      const double w = i % 2 == 0 ? double(want(i / 2, j)) : 0.0;
      if (!loom_test::close(got(i, j), w, 1e-5, 1e-6)) ++bad;
    }
  CHECK(bad == 0);
}

TEST_CASE("cuda reductions: into destinations that are strided, overlap the operand or differ in type", "[cuda][gpu][reduce]") {
  LOOM_REQUIRE_GPU();
  // A lone reduction goes straight into a contiguous destination of its type and shape; every
  // other destination through a temporary. Both ways give the CPU's values, and a full sum's two
  // stages (about a thousand partials on a large device) the same bits both ways.
  for (auto [r, c] : {std::pair<std::size_t, std::size_t>{7, 17}, {1025, 33}, {3, 70000}}) {
    INFO(r << " x " << c);
    tensor<float, shape<dyn, dyn>> x(r, c);
    loom_test::randomize(x, r + 3 * c);
    const auto want_cols = eval(sum(x, axis<0>));
    const auto want_rows = eval(max(x, axis<1>));
    const double tol = 1e-5 * double(r);
    auto dx = to_device(x);
    // contiguous, its own array: the direct way
    cuda::tensor<float, shape<dyn>> cols(c);
    cols = sum(dx, axis<0>);
    auto got = to_host(cols);
    for (std::size_t j = 0; j < c; ++j) CHECK(loom_test::close(got(j), want_cols(j), tol, 1e-5));
    // every other element of a wider array: through a temporary
    cuda::tensor<float, shape<dyn>> wide(2 * r);
    auto every_other = cuda::view(wide.data(), shape<dyn>{r}, {2});
    every_other = max(dx, axis<1>);
    const auto w = to_host(wide);
    for (std::size_t i = 0; i < r; ++i) CHECK(w(2 * i) == want_rows(i));
    // double from float: a temporary of float, then the conversion
    cuda::tensor<double, shape<dyn>> as_double(r);
    as_double = max(dx, axis<1>);
    const auto d = to_host(as_double);
    for (std::size_t i = 0; i < r; ++i) CHECK(d(i) == double(want_rows(i)));
    // the destination is the operand's first row: the sums read every row before any is written
    auto row0 = cuda::view(dx.data(), shape<dyn>{c});
    row0 = sum(dx, axis<0>);
    const auto after = to_host(dx);
    for (std::size_t j = 0; j < c; ++j) CHECK(loom_test::close(after(0, j), want_cols(j), tol, 1e-5));
    for (std::size_t i = 1; i < r; ++i)
      for (std::size_t j = 0; j < c; j += 7) CHECK(after(i, j) == x(i, j));
  }
  // a full sum: into a rank-0 tensor (direct), a rank-0 view of a larger array's second element
  // (direct, at an offset) and through cuda::eval: the same bits
  const std::size_t n = (std::size_t(1) << 22) + 5;
  tensor<float, shape<dyn>> big(n);
  loom_test::randomize(big, 23);
  double ref = 0, mag = 0;
  for (std::size_t i = 0; i < n; ++i) ref += big(i), mag += std::abs(double(big(i)));
  auto db = to_device(big);
  cuda::tensor<float, shape<>> s;
  s = sum(db);
  cuda::tensor<float, shape<dyn>> pair(2);
  auto second = cuda::view(pair.data() + 1, shape<>{});
  second = sum(db);
  const float a = to_host(s)(), b = to_host(pair)(1), e = to_host(cuda::eval(sum(db)))();
  CHECK(std::abs(double(a) - ref) <= 1e-6 * mag);
  CHECK(std::memcmp(&a, &b, sizeof a) == 0);
  CHECK(std::memcmp(&a, &e, sizeof a) == 0);
}
