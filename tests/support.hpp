// Shared helpers for loom's tests: random inputs, float64 references, tolerant comparison.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace loom_test {

/// The sizes every elementwise test runs (0, 1, odd, around SIMD widths and 1024).
inline const std::vector<std::size_t> odd_sizes = {0, 1, 7, 17, 1023, 1025};

/// Fills n elements with uniform values in [lo, hi] (integers: inclusive range), deterministic per seed.
template <class T>
void fill_random(T* p, std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 g(seed);
  if constexpr (std::is_same_v<T, bool>) {
    std::bernoulli_distribution d(0.5);
    for (std::size_t i = 0; i < n; ++i) p[i] = d(g);
  } else if constexpr (std::is_integral_v<T>) {
    std::uniform_int_distribution<long long> d(static_cast<long long>(lo), static_cast<long long>(hi));
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(d(g));
  } else {
    std::uniform_real_distribution<double> d(lo, hi);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(d(g));
  }
}

/// Fills an array (tensor or view with data() and size()) with random values.
template <class A>
void randomize(A& a, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  fill_random(a.data(), a.size(), seed, lo, hi);
}

/// The default relative tolerance of a computation in T (a few ulp of float, tighter for double).
template <class T>
constexpr double default_rtol() {
  return std::is_same_v<T, float> ? 2e-6 : std::is_same_v<T, double> ? 1e-14 : 0.0;
}

/// |got - want| <= atol + rtol * |want|, with NaN equal to NaN and equal infinities equal.
inline bool close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  if (std::isnan(got) || std::isinf(got)) return false;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

/// Compares n results with float64 references; on failure reports the first bad index and the count.
template <class T>
void check_close(const T* got, const std::vector<double>& want, double rtol, double atol, const std::string& what = "") {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!close(static_cast<double>(got[i]), want[i], rtol, atol)) {
      if (bad++ == 0) first = i;
    }
  }
  if (bad) {
    std::ostringstream os;
    os.precision(17);
    os << what << ": " << bad << " of " << want.size() << " elements differ; first at " << first << ": got "
       << static_cast<double>(got[first]) << ", want " << want[first] << " (rtol " << rtol << ", atol " << atol << ")";
    FAIL_CHECK(os.str());
  } else {
    SUCCEED();
  }
}

/// Exact comparison for integers and bools.
template <class T, class U>
void check_equal(const T* got, const std::vector<U>& want, const std::string& what = "") {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!(got[i] == static_cast<T>(want[i]))) {
      if (bad++ == 0) first = i;
    }
  if (bad) {
    std::ostringstream os;
    os << what << ": " << bad << " of " << want.size() << " elements differ; first at " << first << ": got "
       << +got[first] << ", want " << +static_cast<T>(want[first]);
    FAIL_CHECK(os.str());
  } else {
    SUCCEED();
  }
}

}  // namespace loom_test
