// loom's own vectorised math (cpu/vmath.hpp): accuracy over the whole float range and special values.
#include <loom/loom.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "support.hpp"

using namespace loom;

TEST_CASE("float tanh is within 8 ulp of float64 over [-12, 12], odd, and saturates", "[vmath]") {
  const std::size_t n = 2400001;
  tensor<float, shape<dyn>> x(n);
  for (std::size_t i = 0; i < n; ++i) x(i) = -12.f + 24.f * float(i) / float(n - 1);
  auto t = eval(tanh(x));
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double ref = std::tanh(double(x(i)));
    const double ulp = std::nextafter(float(std::fabs(ref)), 2.f) - float(std::fabs(ref));
    worst = std::max(worst, std::fabs(double(t(i)) - ref) / ulp);
  }
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 8);
  auto tn = eval(tanh(-x));
  for (std::size_t i = 0; i < n; ++i) REQUIRE(tn(i) == -t(i));  // odd, exactly
}

TEST_CASE("tanh, exp, gelu and sigmoid on special values", "[vmath]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float den = std::numeric_limits<float>::denorm_min();
  std::vector<float> v = {0.f, -0.f, inf, -inf, nan, den, -den, 1e-30f, -1e-30f, 88.f, -104.f, 1e30f, -1e30f};
  while (v.size() < 37) v.push_back(0.5f);  // a SIMD body and a tail
  tensor<float, shape<dyn>> x(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) x(i) = v[i];
  auto th = eval(tanh(x)), ex = eval(exp(x)), ge = eval(gelu(x)), sg = eval(sigmoid(x));
  CHECK(th(0) == 0.f);
  CHECK(std::signbit(th(1)));
  CHECK(th(2) == 1.f);
  CHECK(th(3) == -1.f);
  CHECK(std::isnan(th(4)));
  CHECK(th(7) == 1e-30f);
  CHECK(th(11) == 1.f);
  CHECK(th(12) == -1.f);
  CHECK(ex(2) == inf);
  CHECK(ex(3) == 0.f);
  CHECK(std::isnan(ex(4)));
  CHECK(ex(0) == 1.f);
  CHECK(std::isnan(ge(4)));
  CHECK(ge(2) == inf);
  CHECK(ge(3) == 0.f);  // the limit, -0, not -inf * 0 = NaN
  CHECK(std::signbit(ge(3)));
  CHECK(!std::isnan(ge(12)));
  CHECK(sg(2) == 1.f);
  CHECK(sg(3) == 0.f);
  CHECK(std::isnan(sg(4)));
}

TEST_CASE("float gelu keeps its smallest results: x near -10, where e^(-2u) overflows", "[vmath]") {
  // Found by the long fuzz run (tools/fuzz/run.sh, seed 1000, case 2): gelu(x) = x / (1 + e^(-2u))
  // gave -0 from x = -10.07, where e^(-2u) overflows but the result (about 2.5e-38) is a normal.
  const std::size_t n = 4001;
  tensor<float, shape<dyn>> x(n);
  for (std::size_t i = 0; i < n; ++i) x(i) = -9.f - 2.f * float(i) / float(n - 1);  // [-11, -9]
  auto g = eval(gelu(x));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double xd = x(i), u = 0.7978845608028654 * (xd + 0.044715 * xd * xd * xd);
    const double ref = xd * std::exp(2 * u) / (1 + std::exp(2 * u));
    // the function's condition number here is about 250 (|d ln gelu / d ln x| = |x| * 2u'(x)),
    // so 1e-4 relative (about 840 ulps), or 8 denormals where the result is one
    const double tol = std::max(1e-4 * std::fabs(ref), 8 * 0x1p-149);
    if (!(std::fabs(double(g(i)) - ref) <= tol)) ++bad;
    if (std::fabs(ref) > 0x1p-126) REQUIRE(g(i) != 0.f);
  }
  CHECK(bad == 0);
  CHECK(ops::gelu::apply(-10.07f) != 0.f);  // the scalar spelling (SIMD tails) too
}

TEST_CASE("float exp is within 1.5 ulp of float64 from underflow to overflow, denormals included", "[vmath]") {
  // cpu/vmath.hpp: with AVX-512, a polynomial and vscalefps; elsewhere xsimd's with the ends patched.
  const std::size_t n = 2000003;
  tensor<float, shape<dyn>> x(n);
  for (std::size_t i = 0; i < n; ++i) x(i) = -104.f + 193.f * float(i) / float(n - 1);  // [-104, 89]
  auto e = eval(exp(x));
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double ref = std::exp(double(x(i)));
    if (ref > double(std::numeric_limits<float>::max())) {
      REQUIRE(e(i) == std::numeric_limits<float>::infinity());
      continue;
    }
    const float f = float(ref);  // the float spacing at the reference (denormal spacing at least)
    const double ulp = std::max(double(std::nextafter(f, std::numeric_limits<float>::infinity())) - double(f), 0x1p-149);
    worst = std::max(worst, std::fabs(double(e(i)) - ref) / ulp);
  }
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 1.5);
  // the edges: the largest finite result, the smallest denormal, and beyond
  tensor<float, shape<6>> edge;
  edge(0) = 88.7228f, edge(1) = 88.7229f, edge(2) = -103.27f, edge(3) = -103.98f, edge(4) = -87.3365f;
  edge(5) = std::numeric_limits<float>::quiet_NaN();
  auto ee = eval(exp(edge));
  CHECK(std::isfinite(ee(0)));
  CHECK(ee(1) == std::numeric_limits<float>::infinity());
  CHECK(ee(2) == 0x1p-149f);
  CHECK(ee(3) == 0.f);
  CHECK(ee(4) == std::exp(-87.3365f));
  CHECK(std::isnan(ee(5)));
}

TEST_CASE("double log, erf, erfc (gelu_exact) and pow at the ends of the range", "[vmath]") {
  // Found by the long fuzz run (seed 3000): xsimd 8's double log misread denormals (log(1e-310)
  // was -746.5), and its double erf / erfc gave NaN for |x| > 1.3e154.
  const double dmax = std::numeric_limits<double>::max(), dmin = std::numeric_limits<double>::min();
  std::vector<double> v = {1e-310, 4.9406564584124654e-324, dmin, dmin / 3, 1e-300, dmax, -dmax, 1e200, -1e200};
  while (v.size() < 19) v.push_back(0.75);  // a SIMD body and a tail
  tensor<double, shape<dyn>> x(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) x(i) = v[i];
  auto lg = eval(log(x)), ef = eval(erf(x)), ge = eval(gelu_exact(x)), pw = eval(pow(x, 0.5));
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("x = " << v[i]);
    CHECK(std::fabs(lg(i) - std::log(v[i])) <= 4e-16 * std::fabs(std::log(v[i])));
    // pow is exp(b log a): the rounding of b log a (about -370 here) is amplified by as much
    CHECK(std::fabs(pw(i) - std::pow(v[i], 0.5)) <= 4e-13 * std::pow(v[i], 0.5));
  }
  CHECK(ef(5) == 1.0);
  CHECK(ef(6) == -1.0);
  CHECK(ef(7) == 1.0);
  CHECK(ef(8) == -1.0);
  CHECK(ge(5) == dmax);
  CHECK(ge(6) == 0.0);
  CHECK(ge(7) == 1e200);
  CHECK(ge(8) == 0.0);
  CHECK(std::fabs(lg(9) - std::log(0.75)) <= 4e-16 * std::fabs(std::log(0.75)));
}
