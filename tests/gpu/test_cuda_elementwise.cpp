// Generated elementwise kernels on a real device, against the CPU library's result for the same
// expression: every elementwise expression of the CPU tests (ops, dtypes, odd sizes 0, 1, 7, 17,
// 1023, 1025, static shapes), broadcasting, strided views as operands and destinations, vector
// and scalar paths (aligned and misaligned views), aliasing, compound assignment, streams, baked
// extents, 64-bit indices, copies, and the kernel cache (one compile per type and layout).
//
// Every test skips with a visible message where no CUDA device is available.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_support.hpp"
#include "support.hpp"

using namespace loom;
using loom_gpu_test::to_device;
using loom_gpu_test::to_host;
using loom_test::odd_sizes;

namespace {

/// Compares device results with CPU results: exact for integers and bools, within rtol/atol
/// (NaN equal to NaN) for floating types.
template <class T>
void check_against(const T* got, const T* want, std::size_t n, double rtol, double atol, const std::string& what) {
  if constexpr (std::is_floating_point_v<T>) {
    std::vector<double> w(want, want + n);
    loom_test::check_close(got, w, rtol, atol, what);
  } else {
    std::vector<T> w(want, want + n);
    loom_test::check_equal(got, w, what);
  }
}

/// Evaluates build(x, y) on host tensors (the CPU library) and on device copies of them, for
/// every odd size (1-D, dynamic) and a static 2-D shape, and compares.
template <class T, class Build>
void check_binary(const char* name, Build build, double lo, double hi, double rtol, double atol, double lo2 = 0,
                  double hi2 = 0) {
  INFO(name);
  if (lo2 == 0 && hi2 == 0) lo2 = lo, hi2 = hi;
  for (std::size_t n : odd_sizes) {
    INFO("n = " << n);
    tensor<T, shape<dyn>> x(n), y(n);
    loom_test::randomize(x, 2000 + n, lo, hi);
    loom_test::randomize(y, 3000 + n, lo2, hi2);
    auto want = eval(build(x, y));
    auto dx = to_device(x), dy = to_device(y);
    using R = value_type_of<decltype(build(dx, dy))>;
    static_assert(std::is_same_v<R, typename decltype(want)::value_type>);
    cuda::tensor<R, shape<dyn>> dout(n);
    dout = build(dx, dy);
    check_against(to_host(dout).data(), want.data(), n, rtol, atol, name);
    check_against(to_host(cuda::eval(build(dx, dy))).data(), want.data(), n, rtol, atol, name);
  }
  tensor<T, shape<9, 130>> xs, ys;
  loom_test::randomize(xs, 11, lo, hi);
  loom_test::randomize(ys, 12, lo2, hi2);
  auto want = eval(build(xs, ys));
  auto dxs = to_device(xs), dys = to_device(ys);
  auto got = to_host(cuda::eval(build(dxs, dys)));
  check_against(got.data(), want.data(), want.size(), rtol, atol, std::string(name) + " [9, 130]");
}

template <class T, class Build>
void check_unary(const char* name, Build build, double lo, double hi, double rtol, double atol) {
  check_binary<T>(
      name, [&](auto& x, auto&) { return build(x); }, lo, hi, rtol, atol);
}

/// Tolerances between the GPU's and the CPU's transcendental functions (each a few ulp).
template <class T>
constexpr double math_rtol() {
  return std::is_same_v<T, float> ? 8e-6 : 1e-13;
}
template <class T>
constexpr double math_atol() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-14;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The ops, as the CPU tests run them
// ---------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda elementwise: floating functions match the CPU", "[cuda][gpu][ops]", float, double) {
  LOOM_REQUIRE_GPU();
  using T = TestType;
  const double r = math_rtol<T>(), a = math_atol<T>();
  check_unary<T>("exp", [](auto& x) { return exp(x); }, -30, 30, r, a);
  check_unary<T>("log", [](auto& x) { return log(x); }, 1e-3, 1e3, r, a);
  check_unary<T>("log1p", [](auto& x) { return log1p(x); }, -0.9, 10, r, a);
  check_unary<T>("expm1", [](auto& x) { return expm1(x); }, -5, 5, r, a);
  check_unary<T>("sqrt", [](auto& x) { return sqrt(x); }, 0, 100, r, a);
  check_unary<T>("rsqrt", [](auto& x) { return rsqrt(x); }, 1e-3, 100, r, a);
  check_unary<T>("sin", [](auto& x) { return sin(x); }, -10, 10, r, a);
  check_unary<T>("cos", [](auto& x) { return cos(x); }, -10, 10, r, a);
  check_unary<T>("tanh", [](auto& x) { return tanh(x); }, -8, 8, r, a);
  check_unary<T>("sigmoid", [](auto& x) { return sigmoid(x); }, -20, 20, r, a);
  check_unary<T>("erf", [](auto& x) { return erf(x); }, -4, 4, r, a);
  check_unary<T>("gelu", [](auto& x) { return gelu(x); }, -8, 8, r, a);
  check_unary<T>("gelu_exact", [](auto& x) { return gelu_exact(x); }, -8, 8, std::is_same_v<T, float> ? r : 1e-11, a);
  // Integer and bool operands compute in float64 / float32.
  check_unary<T>("exp of int32", [](auto& x) { return exp(cast<std::int32_t>(x * 10)); }, -3, 3, r, a);
}

TEMPLATE_TEST_CASE("cuda elementwise: same-type functions are exact", "[cuda][gpu][ops]", float, double, std::int32_t,
                   std::int64_t) {
  LOOM_REQUIRE_GPU();
  using T = TestType;
  check_unary<T>("abs", [](auto& x) { return abs(x); }, -50, 50, 0, 0);
  check_unary<T>("neg", [](auto& x) { return -x; }, -50, 50, 0, 0);
  check_unary<T>("floor", [](auto& x) { return floor(x); }, -10, 10, 0, 0);
  check_unary<T>("ceil", [](auto& x) { return ceil(x); }, -10, 10, 0, 0);
  check_unary<T>("round", [](auto& x) { return round(x); }, -10, 10, 0, 0);
  check_unary<T>("relu", [](auto& x) { return relu(x); }, -5, 5, 0, 0);
}

TEMPLATE_TEST_CASE("cuda elementwise: arithmetic, maximum, minimum, pow, clamp and where", "[cuda][gpu][ops]", float,
                   double) {
  LOOM_REQUIRE_GPU();
  using T = TestType;
  // Single operations are correctly rounded on both sides; fused ones may contract into FMAs
  // differently (nvcc and g++ both contract by default).
  const double r = std::is_same_v<T, float> ? 4e-6 : 1e-14;
  check_binary<T>("add", [](auto& x, auto& y) { return x + y; }, -1, 1, 0, 0);
  check_binary<T>("sub", [](auto& x, auto& y) { return x - y; }, -1, 1, 0, 0);
  check_binary<T>("mul", [](auto& x, auto& y) { return x * y; }, -1, 1, 0, 0);
  check_binary<T>("div", [](auto& x, auto& y) { return x / y; }, -1, 1, 0, 0, 0.5, 2);
  check_binary<T>("maximum", [](auto& x, auto& y) { return maximum(x, y); }, -1, 1, 0, 0);
  check_binary<T>("minimum", [](auto& x, auto& y) { return minimum(x, y); }, -1, 1, 0, 0);
  check_binary<T>("pow", [](auto& x, auto& y) { return pow(x, y); }, 0.1, 3, math_rtol<T>(), 0, -2, 2);
  check_binary<T>("clamp", [](auto& x, auto& y) { return clamp(x, -0.5f, y); }, -1, 1, 0, 0, 0, 1);
  check_binary<T>("where", [](auto& x, auto& y) { return where(x > y, x, 0.25f * y); }, -1, 1, 0, 0);
  check_binary<T>("fused", [](auto& x, auto& y) { return 2.f * x + exp(-x) / (1.f + abs(y)); }, -1, 1, math_rtol<T>(),
                  1e-7);
  check_binary<T>("scalars on both sides",
                  [](auto& x, auto& y) { return (1.f - x) * 3 + y / 2.0 - 1.5f / (y + 2.f); }, -1, 1, r, 1e-6);
  check_binary<T>("mixed precision", [](auto& x, auto& y) { return cast<double>(x * y) + cast<float>(y); }, -1, 1, r,
                  1e-7);
  // A destination of another type converts on store, as on the CPU.
  tensor<T, shape<dyn>> x(1025), y(1025);
  loom_test::randomize(x, 5, -100, 100);
  loom_test::randomize(y, 6, -100, 100);
  tensor<std::int32_t, shape<dyn>> want_i(1025);
  want_i = x * y;
  cuda::tensor<std::int32_t, shape<dyn>> got_i(1025);
  got_i = to_device(x) * to_device(y);  // temporaries are moved into the expression
  check_against(to_host(got_i).data(), want_i.data(), 1025, 0, 0, "stored into int32");
  tensor<bool, shape<dyn>> want_b(1025);
  want_b = x - y;
  cuda::tensor<bool, shape<dyn>> got_b(1025);
  got_b = to_device(x) - to_device(y);
  check_against(to_host(got_b).data(), want_b.data(), 1025, 0, 0, "stored into bool");
}

TEMPLATE_TEST_CASE("cuda elementwise: comparisons and logic give bool", "[cuda][gpu][ops]", float, double, std::int32_t,
                   std::int64_t) {
  LOOM_REQUIRE_GPU();
  using T = TestType;
  check_binary<T>("<", [](auto& x, auto& y) { return x < y; }, -3, 3, 0, 0);
  check_binary<T>("<=", [](auto& x, auto& y) { return x <= y; }, -3, 3, 0, 0);
  check_binary<T>(">", [](auto& x, auto& y) { return x > y; }, -3, 3, 0, 0);
  check_binary<T>(">=", [](auto& x, auto& y) { return x >= y; }, -3, 3, 0, 0);
  check_binary<T>("==", [](auto& x, auto& y) { return x == y; }, -3, 3, 0, 0);
  check_binary<T>("!=", [](auto& x, auto& y) { return x != y; }, -3, 3, 0, 0);
  check_binary<T>("&&", [](auto& x, auto& y) { return (x > 0) && (y < 1); }, -3, 3, 0, 0);
  check_binary<T>("||", [](auto& x, auto& y) { return (x > 0) || !(y < 1); }, -3, 3, 0, 0);
  check_binary<T>("where on bool", [](auto& x, auto& y) { return where(x > y, x > 0, y > 0); }, -3, 3, 0, 0);
}

TEMPLATE_TEST_CASE("cuda elementwise: integer arithmetic wraps and divides safely", "[cuda][gpu][ops][int]",
                   std::int32_t, std::int64_t) {
  LOOM_REQUIRE_GPU();
  using T = TestType;
  constexpr T mn = std::numeric_limits<T>::min(), mx = std::numeric_limits<T>::max();
  for (std::size_t n : odd_sizes) {
    tensor<T, shape<dyn>> x(n), y(n);
    loom_test::randomize(x, 60 + n, -100, 100);
    loom_test::randomize(y, 70 + n, -5, 5);  // includes 0 divisors
    if (n >= 4) {
      x(0) = mx, y(0) = 1;   // overflow on +
      x(1) = mn, y(1) = -1;  // INT_MIN / -1
      x(2) = mn, y(2) = 0;   // division by zero
      x(3) = mn;             // abs and neg of INT_MIN
    }
    auto dx = to_device(x), dy = to_device(y);
    auto check = [&](const char* what, const auto& host, const auto& device) {
      check_against(to_host(cuda::eval(device)).data(), eval(host).data(), n, 0, 0, what);
    };
    check("+", x + y, dx + dy);
    check("-", x - y, dx - dy);
    check("*", x * y, dx * dy);
    check("/", x / y, dx / dy);
    check("abs", abs(x), abs(dx));
    check("neg", -x, -dx);
    check("maximum", maximum(x, y), maximum(dx, dy));
    check("minimum", minimum(x, y), minimum(dx, dy));
    check("pow", pow(y, cast<T>(abs(y))), pow(dy, cast<T>(abs(dy))));
    check("pow, negative exponents", pow(y, x), pow(dy, dx));
    check("clamp", clamp(x, T(-7), y), clamp(dx, T(-7), dy));
    check("mixed with a float scalar", x * 0.5f, dx * 0.5f);
  }
}

TEST_CASE("cuda elementwise: NaN propagates through maximum, minimum, clamp and relu", "[cuda][gpu][ops][nan]") {
  LOOM_REQUIRE_GPU();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  tensor<float, shape<dyn>> x(40), y(40);
  for (std::size_t i = 0; i < 40; ++i) {
    x(i) = float(i % 5) - 2.f;
    y(i) = float(i % 3) - 1.f;
  }
  for (std::size_t i : {0u, 5u, 17u, 33u, 39u}) x(i) = nan;
  for (std::size_t i : {3u, 17u, 20u}) y(i) = nan;
  x(7) = inf, x(8) = -inf;
  auto dx = to_device(x), dy = to_device(y);
  auto same = [&](const char* what, const auto& host, const auto& device) {
    auto want = eval(host);
    check_against(to_host(cuda::eval(device)).data(), want.data(), want.size(), 0, 0, what);
  };
  same("maximum", maximum(x, y), maximum(dx, dy));
  same("minimum", minimum(x, y), minimum(dx, dy));
  same("clamp", clamp(x, -1.f, 1.f), clamp(dx, -1.f, 1.f));
  same("relu", relu(x), relu(dx));
  same("x != x", x != x, dx != dx);
  same("x == x", x == x, dx == dx);
  same("cast<bool>", cast<bool>(x), cast<bool>(dx));
}

TEST_CASE("cuda elementwise: round is half to even; casts truncate, saturate and map NaN to 0", "[cuda][gpu][ops]") {
  LOOM_REQUIRE_GPU();
  tensor<double, shape<dyn>> x(20);
  const double v[] = {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 4.5, 0.49999999999999994, 1e16 + 1, -0.0};
  for (std::size_t i = 0; i < 20; ++i) x(i) = v[i % 11];
  auto dx = to_device(x);
  check_against(to_host(cuda::eval(round(dx))).data(), eval(round(x)).data(), 20, 0, 0, "round double");
  check_against(to_host(cuda::eval(round(cast<float>(dx)))).data(), eval(round(cast<float>(x))).data(), 20, 0, 0,
                "round float");

  const float nan = std::numeric_limits<float>::quiet_NaN();
  tensor<float, shape<dyn>> f(35);
  loom_test::randomize(f, 5, -100, 100);
  f(0) = nan, f(1) = 3e9f, f(2) = -3e9f, f(3) = 2.9f, f(4) = -2.9f, f(5) = 0.f, f(6) = -0.f, f(7) = 2147483520.f;
  auto df = to_device(f);
  check_against(to_host(cuda::eval(cast<std::int32_t>(df))).data(), eval(cast<std::int32_t>(f)).data(), 35, 0, 0,
                "to int32");
  check_against(to_host(cuda::eval(cast<std::int64_t>(cast<double>(df)))).data(),
                eval(cast<std::int64_t>(cast<double>(f))).data(), 35, 0, 0, "to int64");
  check_against(to_host(cuda::eval(cast<bool>(df))).data(), eval(cast<bool>(f)).data(), 35, 0, 0, "to bool");
  check_against(to_host(cuda::eval(cast<float>(cast<bool>(df)))).data(), eval(cast<float>(cast<bool>(f))).data(), 35,
                0, 0, "bool to float");
  check_against(to_host(cuda::eval(cast<float>(cast<double>(df)))).data(), f.data(), 35, 0, 0, "round trip");
}

// ---------------------------------------------------------------------------------------------
// Layouts
/// NVRTC contracts a * b + c into one fused multiply-add (--fmad=true, nvcc's default, kept for
/// speed) where the CPU rounds the product first: for operands of magnitude up to 1 that is half
/// an ulp of the product, about 6e-8 (seen on an H200: x * row - col differed by one ulp).
constexpr double contract_rtol = 2.4e-7, contract_atol = 1.2e-7;

// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda elementwise: broadcasting of rows, columns, rank 3 and rank 0", "[cuda][gpu][broadcast]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t inner : {1u, 3u, 8u, 1023u, 1024u}) {
    INFO("inner " << inner);
    tensor<float, shape<dyn, dyn>> x(7, inner);
    tensor<float, shape<dyn>> row(inner);
    tensor<float, shape<dyn, 1>> col(7);
    loom_test::randomize(x, 1);
    loom_test::randomize(row, 2);
    loom_test::randomize(col, 3);
    auto dx = to_device(x);
    auto drow = to_device(row);
    auto dcol = to_device(col);
    auto want = eval(x * row - col);
    cuda::tensor<float, shape<dyn, dyn>> dout(7, inner);
    dout = dx * drow - dcol;
    check_against(to_host(dout).data(), want.data(), want.size(), contract_rtol, contract_atol, "x * row - col");
    // A destination larger than the expression: the expression broadcasts into it.
    auto want_rows = eval(row + 0.f * x);
    dout = drow * 1.f;
    check_against(to_host(dout).data(), want_rows.data(), want_rows.size(), 0, 0, "row broadcast into [7, inner]");
  }
  tensor<double, shape<4, 1, 3>> a;
  tensor<double, shape<5, 1>> b;
  tensor<double, shape<>> s;
  loom_test::randomize(a, 4);
  loom_test::randomize(b, 5);
  s() = 0.5;
  auto want = eval(a + b * s);
  auto got = to_host(cuda::eval(to_device(a) + to_device(b) * to_device(s)));
  static_assert(std::is_same_v<decltype(got)::shape_type, shape<4, 5, 3>>);
  check_against(got.data(), want.data(), want.size(), 0, 0, "[4, 1, 3] + [5, 1] * []");
  auto z = to_host(cuda::eval(to_device(s) * 3.0));
  CHECK(z() == 1.5);
}

TEST_CASE("cuda elementwise: strided views as operands and as destinations", "[cuda][gpu][strided]") {
  LOOM_REQUIRE_GPU();
  tensor<float, shape<dyn, dyn>> x(33, 65);
  loom_test::randomize(x, 21);
  auto dx = to_device(x);
  // The transpose of x, as a strided view of its memory.
  auto t = cuda::view(dx.data(), shape<dyn, dyn>{65, 33}, {1, 65});
  auto ht = view(x.data(), shape<dyn, dyn>{65, 33}, {1, 65});
  auto want = eval(ht * 2.f + 1.f);
  check_against(to_host(cuda::eval(t * 2.f + 1.f)).data(), want.data(), want.size(), 0, 0, "transposed operand");
  // Every other column of x, written through a stepped destination view.
  cuda::tensor<float, shape<dyn, dyn>> dy(33, 65);
  auto every_other = cuda::view(dy.data(), shape<dyn, dyn>{33, 33}, {65, 2});
  auto src = cuda::view(dx.data(), shape<dyn, dyn>{33, 33}, {65, 2});
  every_other = exp(src);
  auto y = to_host(dy);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 33; ++i)
    for (std::size_t j = 0; j < 65; ++j) {
      const float w = j % 2 == 0 ? std::exp(x(i, j)) : 0.f;
      if (!loom_test::close(y(i, j), w, 8e-6, 1e-6)) ++bad;
    }
  CHECK(bad == 0);
  // Negative strides: x flipped along both axes.
  auto flipped = cuda::view(dx.data() + (33 * 65 - 1), shape<dyn, dyn>{33, 65}, {-65, -1});
  auto hflipped = view(x.data() + (33 * 65 - 1), shape<dyn, dyn>{33, 65}, {-65, -1});
  auto wf = eval(hflipped - 1.f);
  check_against(to_host(cuda::eval(flipped - 1.f)).data(), wf.data(), wf.size(), 0, 0, "flipped");
}

TEST_CASE("cuda elementwise: misaligned views take the scalar path with the same results", "[cuda][gpu][vector]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t n : odd_sizes) {
    INFO("n = " << n);
    tensor<float, shape<dyn>> x(n + 3);
    loom_test::randomize(x, 40 + n);
    auto dx = to_device(x);
    for (std::size_t off : {0u, 1u, 2u, 3u}) {
      INFO("offset " << off);
      auto v = cuda::view(dx.data() + static_cast<index_t>(off), shape<dyn>{n});
      auto hv = view(x.data() + off, shape<dyn>{n});
      auto want = eval(sigmoid(hv) * 3.f);
      check_against(to_host(cuda::eval(sigmoid(v) * 3.f)).data(), want.data(), n, math_rtol<float>(),
                    math_atol<float>(), "sigmoid of a view");
    }
  }
}

TEST_CASE("cuda elementwise: aliasing", "[cuda][gpu][aliasing]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t n : odd_sizes) {
    tensor<float, shape<dyn>> x(n);
    loom_test::randomize(x, n);
    auto dx = to_device(x);
    dx = dx * dx + dx;
    x = x * x + x;
    check_against(to_host(dx).data(), x.data(), n, contract_rtol, contract_atol, "dx = dx * dx + dx");
    dx += dx;
    x += x;
    check_against(to_host(dx).data(), x.data(), n, contract_rtol, 2 * contract_atol, "dx += dx");
    dx -= 1.f;
    dx *= 3.f;
    dx /= 2.f;
    x -= 1.f;
    x *= 3.f;
    x /= 2.f;
    check_against(to_host(dx).data(), x.data(), n, contract_rtol, 3 * contract_atol, "compound with scalars");
  }
  // A view overlapping the destination at an offset goes through a temporary.
  tensor<float, shape<1100>> buf;
  for (std::size_t i = 0; i < 1100; ++i) buf(i) = float(i);
  auto dbuf = to_device(buf);
  auto dst = cuda::view(dbuf.data() + 1, shape<1024>{});
  auto src = cuda::view(dbuf.data(), shape<1024>{});
  dst = src * 2.f;
  auto b = to_host(dbuf);
  CHECK(b(0) == 0.f);
  for (std::size_t i = 0; i < 1024; ++i) CHECK(b(i + 1) == 2.f * float(i));
  // Overlaps whose launches into the temporary collapse (rank 2 -> 1) or widen (vector steps
  // of a broadcast) the cursors: the copy back reads the temporary as it was laid out.
  {
    tensor<float, shape<dyn>> big(8 * 64 + 8);
    for (std::size_t i = 0; i < big.size(); ++i) big(i) = float(i % 97);
    tensor<float, shape<dyn>> row(64);
    for (std::size_t i = 0; i < 64; ++i) row(i) = float(i) * 0.5f;
    for (std::size_t shift : {1u, 4u}) {
      auto dbig = to_device(big);
      auto drow = to_device(row);
      auto to = cuda::view(dbig.data() + shift, shape<dyn, dyn>{8, 64});
      auto from = cuda::view(dbig.data(), shape<dyn, dyn>{8, 64});
      to = from * 2.f;  // contiguous, collapsed to rank 1
      auto h = to_host(dbig);
      std::size_t bad = 0;
      for (std::size_t i = 0; i < 8 * 64; ++i) bad += h(i + shift) != 2.f * big(i);
      for (std::size_t i = 0; i < shift; ++i) bad += h(i) != big(i);
      CHECK(bad == 0);
      auto dbig2 = to_device(big);
      auto to2 = cuda::view(dbig2.data() + shift, shape<dyn, dyn>{8, 64});
      to2 = cuda::view(dbig2.data(), shape<dyn, dyn>{8, 64}) + drow;  // broadcast, vector steps
      auto h2 = to_host(dbig2);
      bad = 0;
      for (std::size_t i = 0; i < 8 * 64; ++i) bad += h2(i + shift) != big(i) + row(i % 64);
      CHECK(bad == 0);
    }
  }
  // A transposed read of the destination.
  tensor<float, shape<dyn, dyn>> m(33, 33);
  loom_test::randomize(m, 9);
  auto dm = to_device(m);
  dm = cuda::view(dm.data(), shape<dyn, dyn>{33, 33}, {1, 33}) + 0.f;
  auto mt = to_host(dm);
  for (int i = 0; i < 33; ++i)
    for (int j = 0; j < 33; ++j) CHECK(mt(i, j) == m(j, i));
}

// ---------------------------------------------------------------------------------------------
// Streams, options, copies, caches, big tensors
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda elementwise: assignment on a stream, eval on a stream, baked extents", "[cuda][gpu][stream]") {
  LOOM_REQUIRE_GPU();
  tensor<float, shape<dyn, 1024>> x(37);
  loom_test::randomize(x, 77);
  auto want = eval(tanh(x) * 0.5f + 1.f);
  cuda::stream s;
  cuda::tensor<float, shape<dyn, 1024>> dx(x.shape(), s), dy(x.shape(), s);
  cuda::copy(dx, x, s);
  dy.assign(tanh(dx) * 0.5f + 1.f, s);
  s.synchronize();
  check_against(to_host(dy).data(), want.data(), want.size(), math_rtol<float>(), math_atol<float>(), "on a stream");
  auto e = cuda::eval(tanh(dx) * 0.5f + 1.f, s);
  s.synchronize();
  check_against(to_host(e).data(), want.data(), want.size(), math_rtol<float>(), math_atol<float>(), "eval on a stream");
  cuda::synchronize();

  cuda::tensor<float, shape<dyn, 1024>> db(x.shape());
  db.assign(tanh(dx) * 0.5f + 1.f, cuda::default_stream(), cuda::options{.arch = {}, .bake_extents = true});
  check_against(to_host(db).data(), want.data(), want.size(), math_rtol<float>(), math_atol<float>(), "baked");
  tensor<float, shape<dyn>> row(1024);
  loom_test::randomize(row, 78);
  auto drow = to_device(row);
  auto wb = eval(x - row);
  db.assign(dx - drow, cuda::default_stream(), cuda::options{.arch = {}, .bake_extents = true});
  check_against(to_host(db).data(), wb.data(), wb.size(), 0, 0, "baked broadcast");
}

TEST_CASE("cuda elementwise: copies check shapes and handle strided device views", "[cuda][gpu][copy]") {
  LOOM_REQUIRE_GPU();
  tensor<double, shape<dyn, dyn>> x(12, 20);
  loom_test::randomize(x, 3);
  cuda::tensor<double, shape<dyn, dyn>> dx(12, 20);
  cuda::copy(dx, x);
  tensor<double, shape<dyn, dyn>> back(12, 20);
  cuda::copy(back, dx);
  check_against(back.data(), x.data(), x.size(), 0, 0, "round trip");
  // Into and out of a transposed device view.
  cuda::tensor<double, shape<dyn, dyn>> dt(20, 12);
  auto tview = cuda::view(dt.data(), shape<dyn, dyn>{12, 20}, {1, 12});
  cuda::copy(tview, x);
  tensor<double, shape<dyn, dyn>> t(20, 12);
  cuda::copy(t, dt);
  for (std::size_t i = 0; i < 12; ++i)
    for (std::size_t j = 0; j < 20; ++j) CHECK(t(j, i) == x(i, j));
  tensor<double, shape<dyn, dyn>> again(12, 20);
  cuda::copy(again, tview);
  check_against(again.data(), x.data(), x.size(), 0, 0, "out of a strided view");
  // Device to device, and a device tensor copy.
  cuda::tensor<double, shape<dyn, dyn>> dz(12, 20);
  cuda::copy(dz, dx);
  cuda::tensor<double, shape<dyn, dyn>> dc(dz);
  check_against(to_host(dc).data(), x.data(), x.size(), 0, 0, "device copies");
  tensor<double, shape<dyn, dyn>> wrong(20, 12);
  CHECK_THROWS_AS(cuda::copy(dx, wrong), shape_error);
  cuda::tensor<double, shape<dyn, dyn>> dwrong(3, 3);
  CHECK_THROWS_AS(dwrong = dx + 1.0, shape_error);
  // Tensors start as zeros.
  auto zeros = to_host(cuda::tensor<float, shape<5, 7>>());
  for (std::size_t i = 0; i < zeros.size(); ++i) CHECK(zeros.data()[i] == 0.f);
}

TEST_CASE("cuda elementwise: one compile per expression type and layout", "[cuda][gpu][cache]") {
  LOOM_REQUIRE_GPU();
  cuda::tensor<float, shape<dyn>> a(1000), b(1000);
  a = 1.5f;
  b = exp(a) * 0.75f - a;  // first launch of this type: compiled (or read from disk)
  const auto before = cuda::runtime::module_cache::process().stats();
  for (std::size_t n : {1u, 7u, 1000u}) {
    cuda::tensor<float, shape<dyn>> c(n), d(n);
    d = exp(c) * 0.25f - c;  // the same type and layout: no new program
  }
  const auto after = cuda::runtime::module_cache::process().stats();
  CHECK(after.requests == before.requests);
  CHECK(after.compiles == before.compiles);
  cuda::synchronize();
}

TEST_CASE("cuda elementwise: more than 2^31 elements use 64-bit indices", "[cuda][gpu][big]") {
  LOOM_REQUIRE_GPU();
  const std::size_t n = (std::size_t(1) << 31) + 21;
  if (cuda::device_memory().free < 3 * n) {
    WARN("not enough device memory for a 2^31-element test: skipped");
    return;
  }
  cuda::tensor<bool, shape<dyn>> a(n), b(n);  // zeros
  b = !a;
  const char* what = "the last elements of 2^31 + 21";
  tensor<bool, shape<dyn>> tail(40);
  cuda::copy(tail, cuda::view(b.data() + static_cast<index_t>(n - 40), shape<dyn>{40}));
  for (std::size_t i = 0; i < 40; ++i) CHECK(tail(i));
  (void)what;
  CHECK(cuda::kernel_source(!a).find("64-bit indices") != std::string::npos);
}
