// Element types and promotion: NumPy's result_type between tensors, weak C++ scalars.
#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;

namespace {
template <class E>
using vt = value_type_of<E>;
}

TEST_CASE("tensor-tensor promotion is NumPy's result_type", "[dtype]") {
  static_assert(std::is_same_v<promote_t<float, float>, float>);
  static_assert(std::is_same_v<promote_t<float, double>, double>);
  static_assert(std::is_same_v<promote_t<std::int32_t, std::int64_t>, std::int64_t>);
  static_assert(std::is_same_v<promote_t<std::int32_t, float>, double>);
  static_assert(std::is_same_v<promote_t<std::int64_t, float>, double>);
  static_assert(std::is_same_v<promote_t<bool, float>, float>);
  static_assert(std::is_same_v<promote_t<bool, std::int32_t>, std::int32_t>);
  static_assert(std::is_same_v<promote_t<bool, bool>, bool>);
  CHECK(dtype_name(dtype_of<float>) == "float32");
  CHECK(dtype_name(dtype_of<std::int64_t>) == "int64");
}

TEST_CASE("a C++ scalar is weak: it takes the tensor's type unless of a higher kind", "[dtype]") {
  tensor<float, shape<4>> f;
  tensor<double, shape<4>> d;
  tensor<std::int32_t, shape<4>> i;
  tensor<std::int64_t, shape<4>> l;
  tensor<bool, shape<4>> b;
  static_assert(std::is_same_v<vt<decltype(f * 2.0)>, float>);  // a double literal keeps float
  static_assert(std::is_same_v<vt<decltype(2.f * f)>, float>);
  static_assert(std::is_same_v<vt<decltype(f + 1)>, float>);
  static_assert(std::is_same_v<vt<decltype(d * 2.f)>, double>);
  static_assert(std::is_same_v<vt<decltype(i * 0.5f)>, float>);  // the one difference from NumPy
  static_assert(std::is_same_v<vt<decltype(i * 0.5)>, float>);
  static_assert(std::is_same_v<vt<decltype(l + 1)>, std::int64_t>);
  static_assert(std::is_same_v<vt<decltype(i + 1LL)>, std::int32_t>);
  static_assert(std::is_same_v<vt<decltype(b + 1)>, std::int32_t>);
  static_assert(std::is_same_v<vt<decltype(b * 1.5)>, float>);
  static_assert(std::is_same_v<vt<decltype(i + f)>, double>);
  static_assert(std::is_same_v<vt<decltype(i + l)>, std::int64_t>);
  static_assert(std::is_same_v<vt<decltype(f + d)>, double>);
  static_assert(std::is_same_v<vt<decltype(b && b)>, bool>);
  static_assert(std::is_same_v<vt<decltype(f > 0)>, bool>);
  static_assert(std::is_same_v<vt<decltype(where(f > 0, i, 2.5f))>, float>);
  static_assert(std::is_same_v<vt<decltype(where(b, i, l))>, std::int64_t>);
  static_assert(std::is_same_v<vt<decltype(exp(i))>, double>);  // math of an integer is float64
  static_assert(std::is_same_v<vt<decltype(exp(f))>, float>);
  static_assert(std::is_same_v<vt<decltype(sqrt(b))>, float>);
  static_assert(std::is_same_v<vt<decltype(abs(i))>, std::int32_t>);
  static_assert(std::is_same_v<vt<decltype(cast<double>(f))>, double>);
  static_assert(std::is_same_v<vt<decltype(eval(i * 0.5f))>, float>);
  SUCCEED();
}

TEST_CASE("mixed-type expressions compute in the promoted type", "[dtype]") {
  tensor<std::int32_t, shape<dyn>> i(37);
  tensor<float, shape<dyn>> f(37);
  tensor<double, shape<dyn>> d(37);
  loom_test::randomize(i, 1, -1000, 1000);
  loom_test::randomize(f, 2);
  loom_test::randomize(d, 3);
  auto a = eval(i + f);      // double
  auto b = eval(f * d + 1);  // double
  auto c = eval(i * 0.5f);   // float
  auto e = eval(where(f > 0.f, i, 7));
  for (std::size_t k = 0; k < 37; ++k) {
    CHECK(a(k) == double(i(k)) + double(f(k)));
    CHECK(b(k) == double(f(k)) * d(k) + 1.0);
    CHECK(c(k) == float(i(k)) * 0.5f);
    CHECK(e(k) == (f(k) > 0.f ? i(k) : 7));
  }
  tensor<std::int32_t, shape<dyn>> o(37);
  o = f * 10.f;  // converts on store: truncation
  for (std::size_t k = 0; k < 37; ++k) CHECK(o(k) == std::int32_t(f(k) * 10.f));
}
