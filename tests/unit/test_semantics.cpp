// docs/semantics.md, line by line: every statement of the page is a check here, through the CPU
// library, on packets and scalar tails alike (each value is evaluated in tensors of 1, 7, 16,
// 17, 33 and 67 elements, float and double, so that it goes through SIMD lanes, tails and
// both lane widths). Promotion is checked at compile time against a table written out here.
// Sections follow the document's.
#include <loom/loom.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "support.hpp"

using namespace loom;

namespace {

using i32 = std::int32_t;
using i64 = std::int64_t;
template <class T>
using lim = std::numeric_limits<T>;
template <class E>
using vt = value_type_of<E>;

/// Sizes that put an element in a SIMD packet and in a scalar tail, for 8- and 16-lane types.
const std::size_t lane_sizes[] = {1, 7, 16, 17, 33, 67};

/// f applied to tensors of every lane size filled with v; returns every element of every result.
template <class T, class F>
auto all_results(F f, T v) {
  using R = vt<decltype(f(std::declval<tensor<T, shape<dyn>>&>()))>;
  std::vector<R> out;
  for (std::size_t n : lane_sizes) {
    tensor<T, shape<dyn>> x(n);
    for (std::size_t i = 0; i < n; ++i) x.data()[i] = v;
    tensor<R, shape<dyn>> y = f(x);
    out.insert(out.end(), y.data(), y.data() + n);
  }
  return out;
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

/// Every result of f(x filled with v) is `want`, bit for bit (NaN: any NaN); one check per call,
/// naming the first element that differs.
template <class T, class F, class R>
void check_exact(const char* what, F f, T v, R want) {
  std::size_t bad = 0, count = 0;
  R first{};
  for (R got : all_results<T>(f, v)) {
    ++count;
    bool ok;
    if constexpr (std::is_floating_point_v<R>)
      ok = std::isnan(want) ? std::isnan(got) : same_bits(got, want);
    else
      ok = got == want;
    if (!ok && bad++ == 0) first = got;
  }
  INFO(what << "(" << +v << "): want " << +want << (std::signbit(double(want)) ? " (negative)" : "") << "; " << bad
            << " of " << count << " elements differ, e.g. " << +first << (std::signbit(double(first)) ? " (negative)" : ""));
  CHECK(bad == 0);
}

/// Every result of f(x filled with v) is within `ulps` units in the last place of `want` (the
/// float64 value rounded to T), denormals counted in their own ulps.
template <class T, class F>
void check_ulps(const char* what, F f, T v, double want, double ulps) {
  const T w = static_cast<T>(want);
  const double ulp = std::max(double(std::nextafter(std::fabs(w), lim<T>::infinity())) - double(std::fabs(w)),
                              double(lim<T>::denorm_min()));
  std::size_t bad = 0, count = 0;
  T first{};
  for (T got : all_results<T>(f, v)) {
    ++count;
    const bool ok = std::isinf(want) || std::isnan(want)
                        ? same_bits(got, T(want))
                        : std::isfinite(got) && std::fabs(double(got) - want) <= ulps * ulp;
    if (!ok && bad++ == 0) first = got;
  }
  INFO(what << "(" << v << "): want " << want << " within " << ulps << " ulp; " << bad << " of " << count
            << " elements differ, e.g. " << first);
  CHECK(bad == 0);
}

template <class T>
tensor<T, shape<dyn>> vec(std::initializer_list<T> v) {
  tensor<T, shape<dyn>> t(v.size());
  std::size_t i = 0;
  for (T x : v) t.data()[i++] = x;
  return t;
}

}  // namespace

// =============================================================================================
// Types and promotion
// =============================================================================================

TEST_CASE("semantics: two tensors promote as NumPy's result_type", "[semantics][types]") {
  // bool < int32 < int64, float32 < float64; an integer with a floating type gives float64
  tensor<bool, shape<2>> b;
  tensor<i32, shape<2>> i;
  tensor<i64, shape<2>> l;
  tensor<float, shape<2>> f;
  tensor<double, shape<2>> d;
  static_assert(std::is_same_v<vt<decltype(b || b)>, bool>);
  static_assert(std::is_same_v<vt<decltype(b + i)>, i32>);
  static_assert(std::is_same_v<vt<decltype(b + l)>, i64>);
  static_assert(std::is_same_v<vt<decltype(b + f)>, float>);
  static_assert(std::is_same_v<vt<decltype(b + d)>, double>);
  static_assert(std::is_same_v<vt<decltype(i + i)>, i32>);
  static_assert(std::is_same_v<vt<decltype(i + l)>, i64>);
  static_assert(std::is_same_v<vt<decltype(i + f)>, double>);  // int32 + float32 is float64
  static_assert(std::is_same_v<vt<decltype(i + d)>, double>);
  static_assert(std::is_same_v<vt<decltype(l + f)>, double>);
  static_assert(std::is_same_v<vt<decltype(l + d)>, double>);
  static_assert(std::is_same_v<vt<decltype(f + f)>, float>);
  static_assert(std::is_same_v<vt<decltype(f + d)>, double>);
  static_assert(std::is_same_v<vt<decltype(d + d)>, double>);
  // the order of operands does not matter
  static_assert(std::is_same_v<vt<decltype(f + i)>, double>);
  static_assert(std::is_same_v<vt<decltype(d - b)>, double>);
  // and the computation happens in the promoted type: 16777217 (int32) + 0.f is exact in float64
  tensor<i32, shape<1>> big;
  big(0) = 16777217;
  tensor<float, shape<1>> zero;
  CHECK(eval(big + zero)(0) == 16777217.0);
}

TEST_CASE("semantics: a C++ scalar is weak; float32 for a floating scalar with integers", "[semantics][types]") {
  tensor<bool, shape<2>> b;
  tensor<i32, shape<2>> i;
  tensor<i64, shape<2>> l;
  tensor<float, shape<2>> f;
  tensor<double, shape<2>> d;
  // the tensor's type, unless the scalar is of a higher kind (bool < integer < floating)
  static_assert(std::is_same_v<vt<decltype(f * 2.0)>, float>);  // x * 2.0 stays float32
  static_assert(std::is_same_v<vt<decltype(i * 0.5)>, float>);  // i * 0.5 is float32 (NumPy: float64)
  static_assert(std::is_same_v<vt<decltype(i * 0.5f)>, float>);
  static_assert(std::is_same_v<vt<decltype(l * 0.5)>, float>);
  static_assert(std::is_same_v<vt<decltype(d * 0.5f)>, double>);
  static_assert(std::is_same_v<vt<decltype(i + i64(1))>, i32>);  // same kind: the tensor's type
  static_assert(std::is_same_v<vt<decltype(l + 1)>, i64>);
  static_assert(std::is_same_v<vt<decltype(b + 1)>, i32>);       // the scalar's integer type with bool
  static_assert(std::is_same_v<vt<decltype(b + i64(1))>, i64>);
  static_assert(std::is_same_v<vt<decltype(b * 0.5)>, float>);
  static_assert(std::is_same_v<vt<decltype(f + true)>, float>);
  static_assert(std::is_same_v<vt<decltype(i + true)>, i32>);
  // the scalar is converted to the computation type: 0.1 (double) becomes 0.1f with a float tensor
  tensor<float, shape<1>> one;
  one(0) = 1.f;
  CHECK(eval(one * 0.1)(0) == 0.1f);
}

TEST_CASE("semantics: comparisons and logic give bool; math gives the floating type", "[semantics][types]") {
  tensor<bool, shape<2>> b;
  tensor<i32, shape<2>> i;
  tensor<i64, shape<2>> l;
  tensor<float, shape<2>> f;
  tensor<double, shape<2>> d;
  static_assert(std::is_same_v<vt<decltype(i < f)>, bool>);
  static_assert(std::is_same_v<vt<decltype(d == 1)>, bool>);
  static_assert(std::is_same_v<vt<decltype(i && f)>, bool>);
  static_assert(std::is_same_v<vt<decltype(!d)>, bool>);
  // exp log log1p expm1 sqrt rsqrt sin cos tanh sigmoid erf gelu gelu_exact
  static_assert(std::is_same_v<vt<decltype(exp(f))>, float>);
  static_assert(std::is_same_v<vt<decltype(log(d))>, double>);
  static_assert(std::is_same_v<vt<decltype(log1p(i))>, double>);  // integers give float64
  static_assert(std::is_same_v<vt<decltype(expm1(l))>, double>);
  static_assert(std::is_same_v<vt<decltype(sqrt(b))>, float>);    // bool gives float32
  static_assert(std::is_same_v<vt<decltype(rsqrt(i))>, double>);
  static_assert(std::is_same_v<vt<decltype(sin(b))>, float>);
  static_assert(std::is_same_v<vt<decltype(cos(l))>, double>);
  static_assert(std::is_same_v<vt<decltype(tanh(f))>, float>);
  static_assert(std::is_same_v<vt<decltype(sigmoid(i))>, double>);
  static_assert(std::is_same_v<vt<decltype(erf(d))>, double>);
  static_assert(std::is_same_v<vt<decltype(gelu(b))>, float>);
  static_assert(std::is_same_v<vt<decltype(gelu_exact(i))>, double>);
  // abs neg floor ceil round relu keep the operand's type
  static_assert(std::is_same_v<vt<decltype(abs(i))>, i32>);
  static_assert(std::is_same_v<vt<decltype(-l)>, i64>);
  static_assert(std::is_same_v<vt<decltype(floor(i))>, i32>);
  static_assert(std::is_same_v<vt<decltype(ceil(f))>, float>);
  static_assert(std::is_same_v<vt<decltype(round(d))>, double>);
  static_assert(std::is_same_v<vt<decltype(relu(l))>, i64>);
  // where(c, a, b): c converts to bool, a and b promote together; cast<T> gives T
  static_assert(std::is_same_v<vt<decltype(where(f, i, l))>, i64>);
  static_assert(std::is_same_v<vt<decltype(where(i, f, 1))>, float>);
  static_assert(std::is_same_v<vt<decltype(cast<i32>(d))>, i32>);
  static_assert(std::is_same_v<vt<decltype(cast<bool>(f))>, bool>);
  // (arithmetic on bool operands alone does not compile: tests/compile_fail/bool_arithmetic.cpp)

  // floor/ceil/round of an integer is the integer itself, even beyond float precision
  check_exact<i64>("floor", [](auto& x) { return floor(x); }, i64(9007199254740993), i64(9007199254740993));
  check_exact<i32>("round", [](auto& x) { return round(x); }, i32(-2147483647), i32(-2147483647));
  check_exact<i32>("ceil", [](auto& x) { return ceil(x); }, i32(16777217), i32(16777217));
  // where's condition is x != 0 (NaN is true)
  check_exact<float>("where(NaN)", [](auto& x) { return where(x, 1, 2); }, lim<float>::quiet_NaN(), 1.f);
  check_exact<float>("where(-0)", [](auto& x) { return where(x, 1, 2); }, -0.f, 2.f);
  check_exact<i32>("where(int)", [](auto& x) { return where(x, 1, 2); }, i32(-5), i32(1));
}

TEST_CASE("semantics: assignment converts to the destination's type", "[semantics][types]") {
  auto x = vec<double>({2.9, -2.9, 1e20, -1e20, lim<double>::quiet_NaN(), 0.5});
  tensor<i32, shape<dyn>> i(6);
  i = x * 1.0;
  CHECK(i(0) == 2);
  CHECK(i(1) == -2);
  CHECK(i(2) == lim<i32>::max());
  CHECK(i(3) == lim<i32>::min());
  CHECK(i(4) == 0);
  CHECK(i(5) == 0);
  tensor<bool, shape<dyn>> b(6);
  b = x - 0.5;
  CHECK(b(0));
  CHECK(b(4));        // NaN is true
  CHECK_FALSE(b(5));  // 0.5 - 0.5 == 0
}

// =============================================================================================
// Floating point
// =============================================================================================

TEST_CASE("semantics: denormals are kept (no flush to zero)", "[semantics][float]") {
  const float dn = lim<float>::denorm_min();
  check_exact<float>("x * 1", [](auto& x) { return x * 1.f; }, dn, dn);
  check_exact<float>("x + x", [](auto& x) { return x + x; }, dn, 2 * dn);
  check_exact<float>("x / 2", [](auto& x) { return x / 2.f; }, lim<float>::min(), lim<float>::min() / 2);
  check_exact<double>("x * 0.5", [](auto& x) { return x * 0.5; }, lim<double>::min(), lim<double>::min() / 2);
  check_exact<float>("x - y", [](auto& x) { return x - lim<float>::min(); }, 1.5f * lim<float>::min(),
                     0.5f * lim<float>::min());
  // a denormal operand is not read as zero
  check_exact<float>("x > 0", [](auto& x) { return x > 0.f; }, dn, true);
  check_exact<double>("x != 0", [](auto& x) { return x != 0.0; }, lim<double>::denorm_min(), true);
  check_ulps<float>("sqrt", [](auto& x) { return sqrt(x); }, dn, std::sqrt(double(dn)), 1);
  check_ulps<float>("log", [](auto& x) { return log(x); }, dn, std::log(double(dn)), 4);
}

TEST_CASE("semantics: vectorised exp is within a few ulp up to the ends of its range", "[semantics][float]") {
  // e^x is finite up to log(FLT_MAX) = 88.72 and a denormal down to -103.97 (float); up to
  // 709.78 and down to -745.13 (double). Denormal results count in denormal ulps.
  for (float x : {88.f, 88.3f, 88.5f, 88.7f, 88.72f, -87.f, -87.5f, -88.5f, -95.f, -100.f, -103.f, -103.9f})
    check_ulps<float>("exp", [](auto& v) { return exp(v); }, x, std::exp(double(x)), 4);
  for (double x : {709.0, 709.5, 709.78, -708.0, -708.5, -720.0, -740.0, -745.0})
    check_ulps<double>("exp", [](auto& v) { return exp(v); }, x, std::exp(x), 4);
  check_exact<float>("exp", [](auto& v) { return exp(v); }, 88.8f, lim<float>::infinity());
  check_exact<float>("exp", [](auto& v) { return exp(v); }, -104.f, 0.f);
  check_exact<float>("exp", [](auto& v) { return exp(v); }, -lim<float>::infinity(), 0.f);
  check_exact<double>("exp", [](auto& v) { return exp(v); }, 710.0, lim<double>::infinity());
  // expm1 and sigmoid inherit the range: e^x - 1 near the top, 1 / (1 + e^-x) near the bottom
  for (float x : {88.5f, 88.7f})
    check_ulps<float>("expm1", [](auto& v) { return expm1(v); }, x, std::expm1(double(x)), 4);
  check_ulps<double>("expm1", [](auto& v) { return expm1(v); }, 709.5, std::expm1(709.5), 4);
  for (float x : {-88.f, -88.5f, -88.7f})
    check_ulps<float>("sigmoid", [](auto& v) { return sigmoid(v); }, x, 1 / (1 + std::exp(-double(x))), 4);
}

TEST_CASE("semantics: NaN propagates through maximum, minimum, clamp and relu", "[semantics][float][nan]") {
  const float nan = lim<float>::quiet_NaN();
  // NaN on either side, in packets and tails, float and double
  check_exact<float>("maximum(NaN, 1)", [](auto& x) { return maximum(x, 1.f); }, nan, nan);
  check_exact<float>("maximum(1, NaN)", [](auto& x) { return maximum(1.f, x); }, nan, nan);
  check_exact<float>("minimum(NaN, 1)", [](auto& x) { return minimum(x, 1.f); }, nan, nan);
  check_exact<float>("minimum(-1, NaN)", [](auto& x) { return minimum(-1.f, x); }, nan, nan);
  check_exact<double>("maximum(NaN, -inf)", [](auto& x) { return maximum(x, -HUGE_VAL); }, double(nan), double(nan));
  check_exact<double>("minimum(+inf, NaN)", [](auto& x) { return minimum(HUGE_VAL, x); }, double(nan), double(nan));
  check_exact<float>("relu(NaN)", [](auto& x) { return relu(x); }, nan, nan);
  check_exact<double>("relu(-NaN)", [](auto& x) { return relu(x); }, -double(nan), double(nan));
  // clamp is NumPy's clip, minimum(maximum(x, lo), hi): NaN in x or a bound propagates
  check_exact<float>("clamp(NaN, -1, 1)", [](auto& x) { return clamp(x, -1.f, 1.f); }, nan, nan);
  check_exact<float>("clamp(0.5, NaN, 1)", [](auto& x) { return clamp(0.5f, x, 1.f); }, nan, nan);
  check_exact<float>("clamp(0.5, -1, NaN)", [](auto& x) { return clamp(0.5f, -1.f, x); }, nan, nan);
  check_exact<double>("clamp(NaN, -1, 1)", [](auto& x) { return clamp(x, -1.0, 1.0); }, double(nan), double(nan));
  // and NaN propagates whichever lane it is in, with ordinary values around it
  for (std::size_t n : lane_sizes)
    for (std::size_t at : {std::size_t(0), n / 2, n - 1}) {
      tensor<float, shape<dyn>> x(n), y(n);
      for (std::size_t i = 0; i < n; ++i) x.data()[i] = float(i), y.data()[i] = -float(i);
      x.data()[at] = nan;
      auto mx = eval(maximum(x, y)), mn = eval(minimum(y, x)), cl = eval(clamp(y, x, 1e9f)), rl = eval(relu(x));
      for (std::size_t i = 0; i < n; ++i) {
        INFO("n " << n << ", NaN at " << at << ", element " << i);
        CHECK(std::isnan(mx(i)) == (i == at));
        CHECK(std::isnan(mn(i)) == (i == at));
        CHECK(std::isnan(cl(i)) == (i == at));
        CHECK(std::isnan(rl(i)) == (i == at));
      }
    }
}

TEST_CASE("semantics: NaN propagates through the max and min reductions", "[semantics][float][nan][reduce]") {
  for (std::size_t n : {1, 7, 16, 17, 33, 67, 4097})
    for (std::size_t at : {std::size_t(0), n / 2, n - 1}) {
      INFO("n " << n << ", NaN at " << at);
      tensor<float, shape<dyn>> x(n);
      loom_test::randomize(x, n + at, -1, 1);
      x.data()[at] = lim<float>::quiet_NaN();
      CHECK(std::isnan(eval(max(x))()));
      CHECK(std::isnan(eval(min(x))()));
      tensor<double, shape<3, dyn>> y(n);
      loom_test::randomize(y, n, -1, 1);
      y(1, at) = lim<double>::quiet_NaN();
      auto rmax = eval(max(y, axis<1>));
      auto cmin = eval(min(y, axis<0>));
      CHECK_FALSE(std::isnan(rmax(0)));
      CHECK(std::isnan(rmax(1)));
      CHECK_FALSE(std::isnan(rmax(2)));
      for (std::size_t j = 0; j < n; ++j) CHECK(std::isnan(cmin(j)) == (j == at));
    }
}

TEST_CASE("semantics: argmax and argmin return the first NaN's index", "[semantics][float][nan][reduce]") {
  const float nan = lim<float>::quiet_NaN();
  auto x = vec<float>({1.f, nan, 5.f, nan, -3.f});
  CHECK(eval(argmax(x))() == 1);
  CHECK(eval(argmin(x))() == 1);
  for (std::size_t n : {17, 33, 67, 4097}) {
    tensor<double, shape<2, dyn>> y(n);
    loom_test::randomize(y, n, -1, 1);
    y(0, n - 1) = lim<double>::quiet_NaN();
    y(0, n / 2) = lim<double>::quiet_NaN();
    y(1, n - 2) = 100.0;  // no NaN in row 1
    auto am = eval(argmax(y, axis<1>)), an = eval(argmin(y, axis<1>));
    CHECK(am(0) == i64(n / 2));
    CHECK(an(0) == i64(n / 2));
    CHECK(am(1) == i64(n - 2));
  }
}

TEST_CASE("semantics: x != x is true for NaN; cast<bool>(NaN) is true", "[semantics][float][nan]") {
  check_exact<float>("x != x", [](auto& x) { return x != x; }, lim<float>::quiet_NaN(), true);
  check_exact<float>("x == x", [](auto& x) { return x == x; }, lim<float>::quiet_NaN(), false);
  check_exact<double>("x < x", [](auto& x) { return x < x + 1; }, lim<double>::quiet_NaN(), false);
  check_exact<float>("cast<bool>", [](auto& x) { return cast<bool>(x); }, lim<float>::quiet_NaN(), true);
  check_exact<double>("cast<bool>", [](auto& x) { return cast<bool>(x); }, -lim<double>::quiet_NaN(), true);
}

TEST_CASE("semantics: round is half to even", "[semantics][float]") {
  const std::pair<double, double> cases[] = {{0.5, 0.0},   {1.5, 2.0},   {2.5, 2.0},   {3.5, 4.0},    {-0.5, -0.0},
                                             {-1.5, -2.0}, {-2.5, -2.0}, {0.49999997, 0.0}, {1e15 + 0.5, 1e15}, {4503599627370497.0, 4503599627370497.0}};
  for (auto [x, want] : cases) {
    check_exact<double>("round", [](auto& v) { return round(v); }, x, want);
    if (std::fabs(x) < 1e7) check_exact<float>("round", [](auto& v) { return round(v); }, float(x), float(want));
  }
  check_exact<float>("round", [](auto& v) { return round(v); }, 8388609.f, 8388609.f);  // integral: unchanged
  check_exact<float>("round", [](auto& v) { return round(v); }, lim<float>::infinity(), lim<float>::infinity());
  check_exact<float>("round", [](auto& v) { return round(v); }, lim<float>::quiet_NaN(), lim<float>::quiet_NaN());
}

TEST_CASE("semantics: -0.0", "[semantics][float][zero]") {
  check_exact<float>("abs(-0)", [](auto& x) { return abs(x); }, -0.f, 0.f);
  check_exact<double>("abs(-0)", [](auto& x) { return abs(x); }, -0.0, 0.0);
  check_exact<float>("neg(0)", [](auto& x) { return -x; }, 0.f, -0.f);
  check_exact<double>("neg(0)", [](auto& x) { return -x; }, 0.0, -0.0);
  check_exact<float>("neg(-0)", [](auto& x) { return -x; }, -0.f, 0.f);
  check_exact<float>("relu(-0)", [](auto& x) { return relu(x); }, -0.f, 0.f);
  check_exact<double>("relu(-0)", [](auto& x) { return relu(x); }, -0.0, 0.0);
  check_exact<float>("-0 == 0", [](auto& x) { return x == 0.f; }, -0.f, true);
  check_exact<float>("-0 < 0", [](auto& x) { return x < 0.f; }, -0.f, false);
  check_exact<double>("-0 >= 0", [](auto& x) { return x >= 0.0; }, -0.0, true);
  // maximum(-0.0, 0.0) may return either zero
  for (float got : all_results<float>([](auto& x) { return maximum(x, 0.f); }, -0.f)) CHECK(got == 0.f);
  for (float got : all_results<float>([](auto& x) { return minimum(x, -0.f); }, 0.f)) CHECK(got == 0.f);
}

TEST_CASE("semantics: gelu(-inf) and gelu_exact(-inf) are -0, without cancellation below", "[semantics][float]") {
  check_exact<float>("gelu", [](auto& x) { return gelu(x); }, -lim<float>::infinity(), -0.f);
  check_exact<double>("gelu", [](auto& x) { return gelu(x); }, -HUGE_VAL, -0.0);
  check_exact<float>("gelu_exact", [](auto& x) { return gelu_exact(x); }, -lim<float>::infinity(), -0.f);
  check_exact<double>("gelu_exact", [](auto& x) { return gelu_exact(x); }, -HUGE_VAL, -0.0);
  check_exact<float>("gelu", [](auto& x) { return gelu(x); }, lim<float>::infinity(), lim<float>::infinity());
  check_exact<float>("gelu_exact", [](auto& x) { return gelu_exact(x); }, lim<float>::infinity(), lim<float>::infinity());
  // x / (1 + exp(-2u)) and 0.5 x erfc(-x / sqrt 2): relative accuracy for negative x, where
  // 1 + tanh(u) and 1 + erf(z) would cancel to nothing
  for (double x : {-3.0, -5.0, -8.0, -10.0}) {
    const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    const double g = x / (1 + std::exp(-2 * u)), ge = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    // float: u carries a few roundings, which exp amplifies by |2u|
    check_ulps<float>("gelu", [](auto& v) { return gelu(v); }, float(x), g, 8 + 12 * std::fabs(u));
    check_ulps<float>("gelu_exact", [](auto& v) { return gelu_exact(v); }, float(x), ge, 8 + 2 * x * x);
    check_ulps<double>("gelu", [](auto& v) { return gelu(v); }, x, g, 8 + 12 * std::fabs(u));
  }
}

// Known deviation, reported: xsimd 8.1's double erfc is off by up to about 6e-9 relative (3e7 ulp)
// for large arguments (1e-12 at 3), so double gelu_exact is not within a few ulp for x < -4. The
// check stays here as the document states it, tagged mayfail until the lead decides.
TEST_CASE("semantics: double gelu_exact is within a few ulp for negative x", "[semantics][float][!mayfail]") {
  for (double x : {-3.0, -5.0, -8.0, -10.0, -20.0}) {
    const double ge = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    check_ulps<double>("gelu_exact", [](auto& v) { return gelu_exact(v); }, x, ge, 8 + 2 * x * x);
  }
}

TEST_CASE("semantics: sigmoid is 0 at -inf and 1 at +inf", "[semantics][float]") {
  check_exact<float>("sigmoid", [](auto& x) { return sigmoid(x); }, -lim<float>::infinity(), 0.f);
  check_exact<float>("sigmoid", [](auto& x) { return sigmoid(x); }, lim<float>::infinity(), 1.f);
  check_exact<double>("sigmoid", [](auto& x) { return sigmoid(x); }, -HUGE_VAL, 0.0);
  check_exact<double>("sigmoid", [](auto& x) { return sigmoid(x); }, HUGE_VAL, 1.0);
  check_exact<float>("sigmoid", [](auto& x) { return sigmoid(x); }, 0.f, 0.5f);
}

TEST_CASE("semantics: rsqrt is 1 / sqrt(x) rounded as that expression", "[semantics][float]") {
  check_exact<float>("rsqrt", [](auto& x) { return rsqrt(x); }, 0.f, lim<float>::infinity());
  check_exact<float>("rsqrt", [](auto& x) { return rsqrt(x); }, -0.f, -lim<float>::infinity());  // 1 / sqrt(-0) = 1 / -0
  check_exact<double>("rsqrt", [](auto& x) { return rsqrt(x); }, 0.0, HUGE_VAL);
  check_exact<float>("rsqrt", [](auto& x) { return rsqrt(x); }, -1.f, lim<float>::quiet_NaN());
  check_exact<double>("rsqrt", [](auto& x) { return rsqrt(x); }, -1.0, lim<double>::quiet_NaN());
  check_exact<float>("rsqrt", [](auto& x) { return rsqrt(x); }, lim<float>::infinity(), 0.f);
  check_exact<float>("rsqrt", [](auto& x) { return rsqrt(x); }, 4.f, 0.5f);
  // not the hardware estimate: bit for bit 1 / sqrt(x), on random values of every magnitude
  for (std::size_t n : {7, 17, 1025}) {
    tensor<float, shape<dyn>> x(n);
    tensor<double, shape<dyn>> y(n);
    loom_test::fill_random(x.data(), n, n, 0, 1);
    loom_test::fill_random(y.data(), n, n, 0, 1);
    for (std::size_t i = 0; i < n; ++i) x.data()[i] = std::ldexp(x.data()[i], int(i % 200) - 100);
    for (std::size_t i = 0; i < n; ++i) y.data()[i] = std::ldexp(y.data()[i], int(i % 1500) - 750);
    auto rx = eval(rsqrt(x));
    auto ry = eval(rsqrt(y));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      bad += !same_bits(rx(i), 1.f / std::sqrt(x(i)));
      bad += !same_bits(ry(i), 1.0 / std::sqrt(y(i)));
    }
    CHECK(bad == 0);
  }
}

// =============================================================================================
// Integers
// =============================================================================================

TEMPLATE_TEST_CASE("semantics: integer + - * neg abs wrap; abs(INT_MIN) == INT_MIN", "[semantics][int]", i32, i64) {
  using T = TestType;
  const T mn = lim<T>::min(), mx = lim<T>::max();
  check_exact<T>("max + 1", [](auto& x) { return x + 1; }, mx, mn);
  check_exact<T>("min - 1", [](auto& x) { return x - 1; }, mn, mx);
  check_exact<T>("max * 2", [](auto& x) { return x * 2; }, mx, T(-2));
  check_exact<T>("min * -1", [](auto& x) { return x * T(-1); }, mn, mn);
  check_exact<T>("-min", [](auto& x) { return -x; }, mn, mn);
  check_exact<T>("abs(min)", [](auto& x) { return abs(x); }, mn, mn);
  check_exact<T>("abs(min + 1)", [](auto& x) { return abs(x); }, T(mn + 1), mx);
  // between tensors too
  auto a = vec<T>({mx, mn, mx, T(3)}), b = vec<T>({T(1), T(-1), mx, T(-4)});
  auto s = eval(a + b), d = eval(a - b), p = eval(a * b);
  CHECK(s(0) == mn);
  CHECK(d(1) == T(mn + 1));
  CHECK(p(2) == T(1));
  CHECK(p(3) == T(-12));
}

TEMPLATE_TEST_CASE("semantics: integer division truncates; x / 0 == 0; INT_MIN / -1 == INT_MIN", "[semantics][int]",
                   i32, i64) {
  using T = TestType;
  const T mn = lim<T>::min();
  check_exact<T>("-7 / 2", [](auto& x) { return x / 2; }, T(-7), T(-3));
  check_exact<T>("7 / -2", [](auto& x) { return x / T(-2); }, T(7), T(-3));
  check_exact<T>("5 / 0", [](auto& x) { return x / 0; }, T(5), T(0));
  check_exact<T>("-5 / 0", [](auto& x) { return x / 0; }, T(-5), T(0));
  check_exact<T>("0 / 0", [](auto& x) { return x / 0; }, T(0), T(0));
  check_exact<T>("min / -1", [](auto& x) { return x / T(-1); }, mn, mn);
  check_exact<T>("1 / x", [](auto& x) { return T(1) / x; }, T(0), T(0));
  // divisors from a tensor, zero and -1 among others, every lane; and /= into a tensor
  for (std::size_t n : lane_sizes) {
    tensor<T, shape<dyn>> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
      a.data()[i] = i % 3 == 0 ? mn : T(100 - T(i));
      b.data()[i] = i % 4 == 0 ? T(0) : i % 4 == 1 ? T(-1) : T(i);
    }
    auto q = eval(a / b);
    tensor<T, shape<dyn>> c = a;
    c /= b;
    for (std::size_t i = 0; i < n; ++i) {
      const T x = a(i), y = b(i);
      const T want = y == 0 ? T(0) : y == -1 ? (x == mn ? mn : T(-x)) : T(x / y);
      CHECK(q(i) == want);
      CHECK(c(i) == want);
    }
  }
}

TEMPLATE_TEST_CASE("semantics: integer pow is exact repeated multiplication", "[semantics][int]", i32, i64) {
  using T = TestType;
  // 3^40 wraps modulo 2^32 / 2^64
  using U = std::make_unsigned_t<T>;
  U p = 1;
  for (int k = 0; k < 40; ++k) p = U(p * 3u);
  check_exact<T>("pow(3, 40)", [](auto& x) { return pow(x, T(40)); }, T(3), T(p));
  check_exact<T>("pow(-2, 3)", [](auto& x) { return pow(x, T(3)); }, T(-2), T(-8));
  check_exact<T>("pow(0, 0)", [](auto& x) { return pow(x, T(0)); }, T(0), T(1));
  // a negative exponent: 1 for a == 1, +-1 for a == -1, 0 otherwise
  check_exact<T>("pow(1, -5)", [](auto& x) { return pow(x, T(-5)); }, T(1), T(1));
  check_exact<T>("pow(-1, -3)", [](auto& x) { return pow(x, T(-3)); }, T(-1), T(-1));
  check_exact<T>("pow(-1, -4)", [](auto& x) { return pow(x, T(-4)); }, T(-1), T(1));
  check_exact<T>("pow(2, -1)", [](auto& x) { return pow(x, T(-1)); }, T(2), T(0));
  check_exact<T>("pow(0, -1)", [](auto& x) { return pow(x, T(-1)); }, T(0), T(0));
  check_exact<T>("pow(-5, min)", [](auto& x) { return pow(x, lim<T>::min()); }, T(-5), T(0));
}

// =============================================================================================
// Conversions
// =============================================================================================

TEST_CASE("semantics: to bool is x != 0", "[semantics][convert]") {
  check_exact<float>("bool(-0)", [](auto& x) { return cast<bool>(x); }, -0.f, false);
  check_exact<float>("bool(denormal)", [](auto& x) { return cast<bool>(x); }, lim<float>::denorm_min(), true);
  check_exact<double>("bool(-inf)", [](auto& x) { return cast<bool>(x); }, -HUGE_VAL, true);
  check_exact<i64>("bool(2^40)", [](auto& x) { return cast<bool>(x); }, i64(1) << 40, true);
  check_exact<i32>("bool(0)", [](auto& x) { return cast<bool>(x); }, i32(0), false);
}

TEMPLATE_TEST_CASE("semantics: floating to integer truncates, saturates, and gives 0 for NaN", "[semantics][convert]",
                   float, double) {
  using F = TestType;
  check_exact<F>("i32(2.9)", [](auto& x) { return cast<i32>(x); }, F(2.9), i32(2));
  check_exact<F>("i32(-2.9)", [](auto& x) { return cast<i32>(x); }, F(-2.9), i32(-2));
  check_exact<F>("i32(-0.5)", [](auto& x) { return cast<i32>(x); }, F(-0.5), i32(0));
  check_exact<F>("i32(3e9)", [](auto& x) { return cast<i32>(x); }, F(3e9), lim<i32>::max());
  check_exact<F>("i32(-3e9)", [](auto& x) { return cast<i32>(x); }, F(-3e9), lim<i32>::min());
  check_exact<F>("i32(2^31)", [](auto& x) { return cast<i32>(x); }, F(2147483648.0), lim<i32>::max());
  check_exact<F>("i32(-2^31)", [](auto& x) { return cast<i32>(x); }, F(-2147483648.0), lim<i32>::min());
  check_exact<F>("i32(inf)", [](auto& x) { return cast<i32>(x); }, lim<F>::infinity(), lim<i32>::max());
  check_exact<F>("i32(-inf)", [](auto& x) { return cast<i32>(x); }, -lim<F>::infinity(), lim<i32>::min());
  check_exact<F>("i32(NaN)", [](auto& x) { return cast<i32>(x); }, lim<F>::quiet_NaN(), i32(0));
  check_exact<F>("i64(1e19)", [](auto& x) { return cast<i64>(x); }, F(1e19), lim<i64>::max());
  check_exact<F>("i64(-1e19)", [](auto& x) { return cast<i64>(x); }, F(-1e19), lim<i64>::min());
  check_exact<F>("i64(2^63)", [](auto& x) { return cast<i64>(x); }, F(9223372036854775808.0), lim<i64>::max());
  check_exact<F>("i64(-2^63)", [](auto& x) { return cast<i64>(x); }, F(-9223372036854775808.0), lim<i64>::min());
  check_exact<F>("i64(NaN)", [](auto& x) { return cast<i64>(x); }, -lim<F>::quiet_NaN(), i64(0));
  check_exact<F>("i64(-inf)", [](auto& x) { return cast<i64>(x); }, -lim<F>::infinity(), lim<i64>::min());
  // the largest values below the limits convert exactly
  check_exact<F>("i32(max below 2^31)", [](auto& x) { return cast<i32>(x); },
                 std::is_same_v<F, float> ? F(2147483520.0) : F(2147483647.0),
                 std::is_same_v<F, float> ? i32(2147483520) : i32(2147483647));
  check_exact<F>("i64(max below 2^63)", [](auto& x) { return cast<i64>(x); },
                 std::nextafter(F(9223372036854775808.0), F(0)), i64(std::nextafter(F(9223372036854775808.0), F(0))));
}

TEST_CASE("semantics: integer to floating rounds to nearest; to a narrower integer wraps", "[semantics][convert]") {
  check_exact<i64>("f64(2^53 + 1)", [](auto& x) { return cast<double>(x); }, (i64(1) << 53) + 1, 9007199254740992.0);
  check_exact<i64>("f64(2^53 + 3)", [](auto& x) { return cast<double>(x); }, (i64(1) << 53) + 3, 9007199254740996.0);
  check_exact<i32>("f32(2^24 + 1)", [](auto& x) { return cast<float>(x); }, i32(16777217), 16777216.f);
  check_exact<i32>("f32(2^24 + 3)", [](auto& x) { return cast<float>(x); }, i32(16777219), 16777220.f);
  check_exact<i64>("f32(2^60 + 2^36 + 1)", [](auto& x) { return cast<float>(x); }, (i64(1) << 60) + (i64(1) << 36) + 1,
                   float((i64(1) << 60) + (i64(1) << 37)));  // above the half: up (one rounding, not two)
  check_exact<i64>("f32(max)", [](auto& x) { return cast<float>(x); }, lim<i64>::max(), 9223372036854775808.f);
  check_exact<i64>("i32(2^32 + 5)", [](auto& x) { return cast<i32>(x); }, (i64(1) << 32) + 5, i32(5));
  check_exact<i64>("i32(2^31)", [](auto& x) { return cast<i32>(x); }, i64(1) << 31, lim<i32>::min());
  check_exact<i64>("i32(-1)", [](auto& x) { return cast<i32>(x); }, i64(-1), i32(-1));
  // and by assignment
  auto big = vec<i64>({(i64(1) << 32) + 7, -(i64(1) << 33) - 1});
  tensor<i32, shape<dyn>> n(2);
  n = big + 0;
  CHECK(n(0) == 7);
  CHECK(n(1) == -1);
}

// =============================================================================================
// Reductions
// =============================================================================================

TEST_CASE("semantics: reducing an empty axis", "[semantics][reduce]") {
  tensor<float, shape<3, dyn>> x(0);
  auto s = eval(sum(x, axis<1>));
  auto p = eval(prod(x, axis<1>));
  auto m = eval(mean(x, axis<1>));
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(s(i) == 0.f);
    CHECK(p(i) == 1.f);
    CHECK(std::isnan(m(i)));
  }
  tensor<i32, shape<dyn>> e(0);
  CHECK(eval(sum(e))() == 0);
  CHECK(eval(prod(e))() == 1);
  CHECK(std::isnan(eval(mean(e))()));
  // max, min, argmax, argmin throw shape_error (NumPy raises ValueError), naming the axis and shape
  CHECK_THROWS_AS(max(x, axis<1>), shape_error);
  CHECK_THROWS_AS(min(x, axis<1>), shape_error);
  CHECK_THROWS_AS(argmax(x, axis<1>), shape_error);
  CHECK_THROWS_AS(argmin(x), shape_error);
  CHECK_THROWS_WITH(max(x, axis<1>), Catch::Contains("[3, 0]") && Catch::Contains("axis 1"));
  // an empty result is no error: nothing is reduced
  tensor<float, shape<dyn, 4>> none(0);
  CHECK(eval(max(none, axis<1>)).size() == 0);
}

TEST_CASE("semantics: integer sums and products accumulate in 64 bits and give int64", "[semantics][reduce]") {
  tensor<i32, shape<dyn>> x(4097);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = lim<i32>::max();
  static_assert(std::is_same_v<vt<decltype(sum(x))>, i64>);
  static_assert(std::is_same_v<vt<decltype(prod(x))>, i64>);
  static_assert(std::is_same_v<vt<decltype(mean(x))>, double>);
  static_assert(std::is_same_v<vt<decltype(sum(x > 0))>, i64>);
  CHECK(eval(sum(x))() == i64(lim<i32>::max()) * 4097);
  CHECK(eval(mean(x))() == double(lim<i32>::max()));
  tensor<i32, shape<3>> f;
  f(0) = 65536, f(1) = 65536, f(2) = 3;
  CHECK(eval(prod(f))() == (i64(1) << 32) * 3);
  tensor<bool, shape<dyn>> b(1000);
  for (std::size_t i = 0; i < 1000; ++i) b.data()[i] = i % 3 == 0;
  CHECK(eval(sum(b))() == 334);
  // beyond 64 bits, int64 wraps like every integer operation
  tensor<i64, shape<2>> w;
  w(0) = lim<i64>::max(), w(1) = 1;
  CHECK(eval(sum(w))() == lim<i64>::min());
}

TEST_CASE("semantics: float sums do not depend on the number of threads and stay near float64", "[semantics][reduce]") {
  const std::size_t n = std::size_t(1) << 24;
  tensor<float, shape<dyn>> x(n);
  loom_test::randomize(x, 24, 0, 1);
  double ref = 0;
  for (std::size_t i = 0; i < n; ++i) ref += x.data()[i];
  const unsigned before = num_threads();
  float r[3];
  unsigned k = 0;
  for (unsigned t : {1u, 2u, 3u}) {
    set_num_threads(t);
    r[k++] = eval(sum(x))();
  }
  tensor<float, shape<dyn, 1031>> m(257);
  loom_test::randomize(m, 5, -1, 1);
  set_num_threads(1);
  auto rows1 = eval(sum(m, axis<1>));
  auto cols1 = eval(mean(m, axis<0>));
  set_num_threads(3);
  auto rows3 = eval(sum(m, axis<1>));
  auto cols3 = eval(mean(m, axis<0>));
  set_num_threads(before);
  CHECK(same_bits(r[0], r[1]));
  CHECK(same_bits(r[0], r[2]));
  CHECK(std::memcmp(rows1.data(), rows3.data(), rows1.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(cols1.data(), cols3.data(), cols1.size() * sizeof(float)) == 0);
  INFO("sum " << r[0] << ", float64 " << ref);
  CHECK(std::fabs(double(r[0]) - ref) / ref < 1e-5);
}

TEST_CASE("semantics: argmax and argmin give int64 indices along the axis, first on ties", "[semantics][reduce]") {
  tensor<float, shape<2, 40>> x;
  for (std::size_t j = 0; j < 40; ++j) x(0, j) = float(j % 7), x(1, j) = -float(j % 5);
  static_assert(std::is_same_v<vt<decltype(argmax(x, axis<1>))>, i64>);
  auto am = eval(argmax(x, axis<1>)), an = eval(argmin(x, axis<1>));
  CHECK(am(0) == 6);   // 6 first appears at 6 (again at 13, 20, ...)
  CHECK(an(0) == 0);   // 0 at 0, 7, 14, ...
  CHECK(am(1) == 0);   // 0 at 0, 5, 10, ...
  CHECK(an(1) == 4);   // -4 at 4, 9, ...
  auto col = eval(argmax(x, axis<0>));
  CHECK(col(0) == 0);  // 0 vs 0: the first
  CHECK(col(1) == 0);
  // -0.0 and 0.0 are equal: the first wins
  auto z = vec<float>({-0.f, 0.f, -0.f});
  CHECK(eval(argmax(z))() == 0);
  CHECK(eval(argmin(z))() == 0);
}

// =============================================================================================
// Shapes and errors
// =============================================================================================

TEST_CASE("semantics: run-time broadcast errors name both shapes and the axis when built", "[semantics][shape]") {
  tensor<float, shape<dyn, dyn>> a(3, 4), b(3, 5);
  CHECK_THROWS_AS(a + b, shape_error);
  CHECK_THROWS_WITH(a + b, Catch::Contains("[3, 4]") && Catch::Contains("[3, 5]") && Catch::Contains("axis 1"));
  // a tensor never changes shape: a mismatch throws and writes nothing
  tensor<float, shape<dyn, dyn>> o(3, 5);
  for (std::size_t i = 0; i < o.size(); ++i) o.data()[i] = float(i);
  const tensor<float, shape<dyn, dyn>> before = o;
  CHECK_THROWS_AS(o = a * 2.f, shape_error);
  CHECK(std::memcmp(o.data(), before.data(), o.size() * sizeof(float)) == 0);
  // every user error is a loom::error
  CHECK_THROWS_AS(o = a * 2.f, loom::error);
}
