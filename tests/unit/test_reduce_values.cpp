// What reductions compute: float sums near float64 accuracy, NaN and first-occurrence rules, the
// type rules for integers and bool, empty axes, fused producers, strided operands, and results
// that do not depend on the number of threads.
#include "reduce_support.hpp"

#include <cstring>

using namespace loom;
using loom_test::red;

TEST_CASE("float sums of 2^24 elements stay within 1e-5 of float64", "[reduce][accuracy]") {
  const std::size_t n = std::size_t(1) << 24;
  tensor<float, shape<dyn>> x(n);
  loom_test::randomize(x, 11, 0.0, 1.0);  // no cancellation: the relative error is the honest one
  double want = 0;
  for (std::size_t i = 0; i < n; ++i) want += x(i);
  const float got = eval(sum(x))();
  CHECK(std::fabs(got - want) / want < 1e-5);
  const double m = eval(mean(x))();
  CHECK(std::fabs(m - want / double(n)) / (want / double(n)) < 1e-5);
  // The same data as rows and as columns.
  auto rows = eval(sum(reshape(x, shape<dyn, dyn>{16, n / 16}), axis<1>));
  auto cols = eval(sum(reshape(x, shape<dyn, dyn>{n / 16, 16}), axis<0>));
  for (std::size_t r = 0; r < 16; ++r) {
    double w = 0, c = 0;
    for (std::size_t j = 0; j < n / 16; ++j) w += x(r * (n / 16) + j);
    for (std::size_t i = 0; i < n / 16; ++i) c += x(i * 16 + r);
    CHECK(std::fabs(rows(r) - w) / w < 1e-5);
    CHECK(std::fabs(cols(r) - c) / c < 1e-5);
  }
}

TEST_CASE("reductions give the same bits whatever the number of threads", "[reduce][threads]") {
  tensor<float, shape<dyn, dyn>> x(2049, 1031);
  loom_test::randomize(x, 12);
  set_num_threads(1);
  const float all1 = eval(sum(x))();
  auto rows1 = eval(sum(x * x, axis<1>));
  auto cols1 = eval(mean(x, axis<0>));
  tensor<float, shape<dyn, dyn>> soft1 = exp(x - max(x, axis<1>, keepdims)) / sum(exp(x - max(x, axis<1>, keepdims)), axis<1>, keepdims);
  for (unsigned t : {2u, 3u}) {
    set_num_threads(t);
    CHECK(eval(sum(x))() == all1);
    auto rows = eval(sum(x * x, axis<1>));
    auto cols = eval(mean(x, axis<0>));
    tensor<float, shape<dyn, dyn>> soft = exp(x - max(x, axis<1>, keepdims)) / sum(exp(x - max(x, axis<1>, keepdims)), axis<1>, keepdims);
    CHECK(std::memcmp(rows.data(), rows1.data(), rows.size() * 4) == 0);
    CHECK(std::memcmp(cols.data(), cols1.data(), cols.size() * 4) == 0);
    CHECK(std::memcmp(soft.data(), soft1.data(), soft.size() * 4) == 0);
  }
  set_num_threads(0);
}

TEST_CASE("large column reductions: chunks of rows, the same bits for any thread count", "[reduce][threads]") {
  // cpu/tiled.hpp run_root, plan/reduce_plan.hpp root_chunk_length: a column reduction splits
  // its rows into fixed chunks (threads over chunks), whose partial rows are merged: from 2^18
  // elements under 4096 columns (chunks of max(32, 2^18 / K) rows), from 2^22 at 4096 columns
  // and more (max(32, 2^20 / K) rows), where there are two chunks or more.
  tensor<float, shape<dyn, dyn>> x(4099, 1031);
  loom_test::randomize(x, 13, 0.0, 1.0);
  tensor<double, shape<dyn, dyn>> xd(5000, 900);
  loom_test::randomize(xd, 14);
  std::vector<double> want(1031, 0.0), want_max(900, -1e300);
  for (std::size_t i = 0; i < 4099; ++i)
    for (std::size_t j = 0; j < 1031; ++j) want[j] += x(i, j);
  for (std::size_t i = 0; i < 5000; ++i)
    for (std::size_t j = 0; j < 900; ++j) want_max[j] = std::max(want_max[j], xd(i, j));
  set_num_threads(1);
  auto s1 = eval(sum(x, axis<0>));
  auto m1 = eval(max(xd, axis<0>));
  auto a1 = eval(argmax(xd, axis<0>));
  for (std::size_t j = 0; j < 1031; ++j) REQUIRE(std::fabs(s1(j) - want[j]) <= 1e-5 * want[j]);
  for (std::size_t j = 0; j < 900; ++j) {
    REQUIRE(m1(j) == want_max[j]);
    REQUIRE(xd(std::size_t(a1(j)), j) == want_max[j]);
  }
  for (unsigned t : {2u, 3u}) {
    set_num_threads(t);
    auto s = eval(sum(x, axis<0>));
    auto a = eval(argmax(xd, axis<0>));
    CHECK(std::memcmp(s.data(), s1.data(), s.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(a.data(), a1.data(), a.size() * sizeof(std::int64_t)) == 0);
  }
  set_num_threads(0);
}

TEST_CASE("column reductions on both sides of the row split", "[reduce][threads]") {
  // rows x columns: (300, 1031) splits the columns (fewer rows than two chunks of 254), (520,
  // 1031) the rows (254, 254 and 12), (70, 5000) the columns (under 2^22 elements), (1000, 5000)
  // the rows (209 a chunk); (10000, 15) has few outputs (chunks of 2^15 / 15 = 2184 rows);
  // (4096, 17) is too small to split (under 2^18 elements). Each against float64, and the same
  // bits at 1, 2 and 3 threads.
  const std::pair<std::size_t, std::size_t> sizes[] = {{300, 1031}, {520, 1031}, {70, 5000}, {1000, 5000}, {10000, 15}, {4096, 17}};
  for (auto [r, c] : sizes) {
    CAPTURE(r, c);
    tensor<float, shape<dyn, dyn>> x(r, c);
    loom_test::randomize(x, r + c);
    tensor<double, shape<dyn, dyn>> xd(r, c);
    loom_test::randomize(xd, r * c);
    std::vector<double> want(c, 0.0), want_d(c, 0.0), want_mean(c, 0.0);
    for (std::size_t i = 0; i < r; ++i)
      for (std::size_t j = 0; j < c; ++j) {
        want[j] += x(i, j);
        want_d[j] = i == 0 ? xd(i, j) : std::min(want_d[j], xd(i, j));
        want_mean[j] += double(x(i, j)) * double(x(i, j));
      }
    set_num_threads(1);
    auto s1 = eval(sum(x, axis<0>, keepdims));
    auto q1 = eval(mean(x * x, axis<0>));
    auto m1 = eval(min(xd, axis<0>));
    auto a1 = eval(argmin(xd, axis<0>));
    for (std::size_t j = 0; j < c; ++j) {
      REQUIRE(std::fabs(s1(0, j) - want[j]) <= 1e-5 * std::sqrt(double(r)) + 1e-6);
      REQUIRE(std::fabs(q1(j) - want_mean[j] / double(r)) <= 1e-6 * want_mean[j] / double(r) + 1e-7);
      REQUIRE(m1(j) == want_d[j]);
      REQUIRE(xd(std::size_t(a1(j)), j) == want_d[j]);
    }
    for (unsigned t : {2u, 3u}) {
      set_num_threads(t);
      auto s = eval(sum(x, axis<0>, keepdims));
      auto q = eval(mean(x * x, axis<0>));
      auto a = eval(argmin(xd, axis<0>));
      CHECK(std::memcmp(s.data(), s1.data(), c * sizeof(float)) == 0);
      CHECK(std::memcmp(q.data(), q1.data(), c * sizeof(float)) == 0);
      CHECK(std::memcmp(a.data(), a1.data(), c * sizeof(std::int64_t)) == 0);
    }
  }
  set_num_threads(0);
  // The partial rows are the plan's temporary: 16 chunks of 256 rows for 4096 x 1024 floats,
  // none for the row sums of the same matrix or for a column sum too small to split.
  using big = tensor<float, shape<4096, 1024>>;
  static_assert(plan_of<decltype(sum(std::declval<big&>(), axis<0>))>::temp_bytes == 16 * 1024 * sizeof(float));
  static_assert(plan_of<decltype(sum(std::declval<big&>(), axis<1>))>::temp_bytes == 0);
  static_assert(plan_of<decltype(sum(std::declval<tensor<float, shape<64, 1024>>&>(), axis<0>))>::temp_bytes == 0);
}

TEST_CASE("max, min propagate NaN; argmax, argmin take the first occurrence and the first NaN", "[reduce][nan]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t n : {1, 7, 17, 1023, 1025}) {
    for (std::size_t at : {std::size_t(0), n / 2, n - 1}) {
      tensor<float, shape<3, dyn>> x(n);
      loom_test::randomize(x, n + at);
      x(1, at) = nan;
      if (n > 3) x(1, n - 2) = nan;  // a second NaN: the first wins
      auto mx = eval(max(x, axis<1>));
      auto mn = eval(min(x, axis<1>));
      auto am = eval(argmax(x, axis<1>));
      auto an = eval(argmin(x, axis<1>));
      CHECK(std::isnan(mx(1)));
      CHECK(std::isnan(mn(1)));
      CHECK(!std::isnan(mx(0)));
      CHECK(am(1) == std::int64_t(std::min(at, n > 3 ? n - 2 : at)));
      CHECK(an(1) == am(1));
      CHECK(std::isnan(eval(max(x))()));
      CHECK(eval(argmax(x))() == std::int64_t(n + am(1)));
    }
  }
  // Double rows (eight lanes a packet): a NaN in any lane of any packet, or in the tail.
  for (std::size_t n : {1, 7, 9, 33, 1025}) {
    for (std::size_t at = 0; at < n; at += (n > 40 ? 97 : 1)) {
      tensor<double, shape<2, dyn>> d(n);
      loom_test::randomize(d, 3 * n + at);
      d(1, at) = std::numeric_limits<double>::quiet_NaN();
      auto dx = eval(max(d, axis<1>));
      auto dn = eval(min(d, axis<1>));
      CHECK(std::isnan(dx(1)));
      CHECK(std::isnan(dn(1)));
      CHECK(!std::isnan(dx(0)));
      CHECK(!std::isnan(dn(0)));
    }
  }
  // Ties: the first index.
  tensor<int32_t, shape<2, 9>> t;
  for (int j = 0; j < 9; ++j) t(0, j) = j % 3, t(1, j) = 5;
  auto am = eval(argmax(t, axis<1>));
  auto an = eval(argmin(t, axis<1>));
  CHECK(am(0) == 2);
  CHECK(an(0) == 0);
  CHECK(am(1) == 0);
  CHECK(an(1) == 0);
  // Columns (the outer layout) follow the same rules.
  tensor<double, shape<dyn, 5>> c(300);
  loom_test::randomize(c, 77);
  c(100, 2) = std::numeric_limits<double>::quiet_NaN();
  c(7, 3) = 10.0;
  c(9, 3) = 10.0;
  auto cm = eval(argmax(c, axis<0>));
  auto cx = eval(max(c, axis<0>));
  CHECK(cm(2) == 100);
  CHECK(cm(3) == 7);
  CHECK(std::isnan(cx(2)));
  CHECK(cx(3) == 10.0);
}

TEST_CASE("integer and bool reductions follow NumPy's types", "[reduce][dtype]") {
  tensor<int32_t, shape<dyn, dyn>> a(37, 1029);
  loom_test::randomize(a, 21, -1000, 1000);
  for (std::size_t i = 0; i < 50; ++i) a.data()[i * 97] = std::numeric_limits<int32_t>::max();  // int64 sums
  static_assert(std::is_same_v<decltype(eval(sum(a)))::value_type, std::int64_t>);
  static_assert(std::is_same_v<decltype(eval(prod(a)))::value_type, std::int64_t>);
  static_assert(std::is_same_v<decltype(eval(mean(a)))::value_type, double>);
  static_assert(std::is_same_v<decltype(eval(max(a)))::value_type, std::int32_t>);
  loom_test::check_reduction<red::sum, ~0u, false>(a);
  loom_test::check_reduction<red::sum, 1u, false>(a);
  loom_test::check_reduction<red::sum, 2u, true>(a);
  loom_test::check_reduction<red::mean, 2u, false>(a);
  loom_test::check_reduction<red::max, 1u, false>(a);
  loom_test::check_reduction<red::min, 2u, false>(a);
  loom_test::check_reduction<red::argmax, 2u, false>(a);
  tensor<int32_t, shape<dyn, dyn>> small(9, 17);
  loom_test::randomize(small, 22, -3, 3);
  loom_test::check_reduction<red::prod, 2u, false>(small);  // wraps as int64, like NumPy
  loom_test::check_reduction<red::prod, 1u, false>(small);

  tensor<std::int64_t, shape<dyn>> l(1000);
  loom_test::randomize(l, 23, -1e15, 1e15);
  loom_test::check_reduction<red::sum, ~0u, false>(l);
  loom_test::check_reduction<red::max, ~0u, false>(l);

  tensor<bool, shape<dyn, dyn>> b(13, 70);
  loom_test::randomize(b, 24);
  static_assert(std::is_same_v<decltype(eval(sum(b)))::value_type, std::int64_t>);
  static_assert(std::is_same_v<decltype(eval(max(b)))::value_type, bool>);
  static_assert(std::is_same_v<decltype(eval(mean(b, axis<0>)))::value_type, double>);
  loom_test::check_reduction<red::sum, 2u, false>(b);
  loom_test::check_reduction<red::mean, 1u, false>(b);
  loom_test::check_reduction<red::max, 2u, false>(b);
  loom_test::check_reduction<red::min, 1u, false>(b);
  loom_test::check_reduction<red::argmax, 2u, false>(b);
  // A comparison reduced: how many are positive.
  tensor<float, shape<dyn>> f(1000);
  loom_test::randomize(f, 25);
  std::int64_t pos = 0;
  for (std::size_t i = 0; i < 1000; ++i) pos += f(i) > 0.f;
  CHECK(eval(sum(f > 0.f))() == pos);
}

TEST_CASE("empty axes: sum 0, prod 1, mean NaN, max/min/argmax/argmin throw", "[reduce][empty]") {
  tensor<float, shape<dyn, dyn>> x(4, 0);
  auto s = eval(sum(x, axis<1>));
  auto p = eval(prod(x, axis<1>));
  auto m = eval(mean(x, axis<1>));
  REQUIRE(s.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(s(i) == 0.f);
    CHECK(p(i) == 1.f);
    CHECK(std::isnan(m(i)));
  }
  CHECK(eval(sum(x))() == 0.f);
  CHECK_THROWS_AS(max(x, axis<1>), shape_error);
  CHECK_THROWS_AS(min(x), shape_error);
  CHECK_THROWS_AS(argmax(x, axis<1>), shape_error);
  CHECK_THROWS_AS(argmin(x, axes<0, 1>), shape_error);
  try {
    (void)max(x, axis<1>);
  } catch (const shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("max") != std::string::npos);
    CHECK(msg.find("axis 1") != std::string::npos);
    CHECK(msg.find("[4, 0]") != std::string::npos);
  }
  // Reducing the non-empty axis of an empty array: an empty result, no error.
  auto cols = eval(max(x, axis<0>));
  CHECK(cols.size() == 0);
  tensor<int32_t, shape<0>> e;
  CHECK(eval(sum(e))() == 0);
  CHECK(eval(prod(e))() == 1);
}

TEST_CASE("producers are fused into the reduction", "[reduce][fusion]") {
  tensor<float, shape<dyn, dyn>> x(129, 1031), y(129, 1031);
  loom_test::randomize(x, 31);
  loom_test::randomize(y, 32);
  auto dot = sum(x * y, axis<1>);
  static_assert(plan_of<decltype(dot)>::kernels == 1);
  static_assert(plan_of<decltype(dot)>::temp_bytes == 0);
  auto got = eval(dot);
  for (std::size_t i = 0; i < 129; ++i) {
    double w = 0, a = 0;
    for (std::size_t j = 0; j < 1031; ++j) {
      w += double(x(i, j)) * y(i, j);
      a += std::fabs(double(x(i, j)) * y(i, j));
    }
    CHECK(std::fabs(got(i) - w) <= 1e-5 * a);
  }
  // Columns of a broadcast product with a transcendental.
  tensor<float, shape<1031>> b;
  loom_test::randomize(b, 33);
  auto c = eval(sum(exp(x) * b, axis<0>));
  for (std::size_t j = 0; j < 1031; j += 97) {
    double w = 0;
    for (std::size_t i = 0; i < 129; ++i) w += std::exp(double(x(i, j))) * b(j);
    CHECK(c(j) == Approx(w).epsilon(1e-5));
  }
  // The result is itself an operand: one kernel for the reduction, then the elementwise use.
  tensor<float, shape<dyn>> o(129);
  o = 2.f * sum(x * y, axis<1>) + 1.f;
  CHECK(o(5) == Approx(2.f * got(5) + 1.f));
  o += max(x, axis<1>);
  CHECK(o(7) == Approx(2.f * got(7) + 1.f + eval(max(x, axis<1>))(7)));
}

TEST_CASE("reductions of strided and broadcast operands", "[reduce][strided]") {
  tensor<float, shape<dyn, dyn>> x(67, 45);
  loom_test::randomize(x, 41);
  auto t = view(x.data(), shape<dyn, dyn>{45, 67}, {1, 45});  // x transposed, as a strided view
  auto rs = eval(sum(t, axis<1>));  // = column sums of x
  auto cs = eval(sum(x, axis<0>));
  for (std::size_t j = 0; j < 45; ++j) CHECK(rs(j) == Approx(cs(j)).epsilon(1e-5));
  auto mt = eval(max(t, axis<0>));
  auto mx = eval(max(x, axis<1>));
  for (std::size_t i = 0; i < 67; ++i) CHECK(mt(i) == mx(i));
  // Every other row, reversed.
  auto sv = view(x.data() + 66 * 45, shape<dyn, dyn>{34, 45}, {-90, 1});
  auto ss = eval(argmax(sv, axis<1>));
  for (std::size_t i = 0; i < 34; ++i) {
    std::size_t best = 0;
    for (std::size_t j = 1; j < 45; ++j)
      if (x(66 - 2 * i, j) > x(66 - 2 * i, best)) best = j;
    CHECK(ss(i) == std::int64_t(best));
  }
  // A broadcast operand: every row the same.
  tensor<float, shape<45>> r;
  loom_test::randomize(r, 42);
  auto br = eval(sum(x * 0.f + r, axis<0>));
  for (std::size_t j = 0; j < 45; ++j) CHECK(br(j) == Approx(67.f * r(j)).epsilon(1e-5));
}

TEST_CASE("a reduction into a view, and into a destination it reads", "[reduce][aliasing]") {
  tensor<float, shape<dyn, dyn>> x(40, 40);
  loom_test::randomize(x, 51);
  tensor<float, shape<dyn, dyn>> x0 = x;
  // The first row of x takes the column sums of x: it is read while written.
  auto row0 = view(x.data(), shape<dyn>{40});
  row0 = sum(x, axis<0>);
  for (std::size_t j = 0; j < 40; ++j) {
    double w = 0;
    for (std::size_t i = 0; i < 40; ++i) w += x0(i, j);
    CHECK(x(0, j) == Approx(w).epsilon(1e-5));
  }
  // A strided view as the destination.
  tensor<float, shape<dyn, dyn>> o(40, 2);
  auto col = view(o.data() + 1, shape<dyn>{40}, {2});
  col = max(x0, axis<1>);
  auto m = eval(max(x0, axis<1>));
  for (std::size_t i = 0; i < 40; ++i) CHECK(o(i, 1) == m(i));
  // Broadcast into a larger destination.
  tensor<float, shape<dyn, dyn>> big(40, 40);
  big = sum(x0, axis<1>, keepdims);
  auto s = eval(sum(x0, axis<1>));
  for (std::size_t i = 0; i < 40; ++i) CHECK(big(i, 17) == s(i));
}
