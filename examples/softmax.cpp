// Softmax over the rows of a matrix, written as the formula:
//
//   e = exp(x - max(x, axis<1>, keepdims));   y = e / sum(e, axis<1>, keepdims)
//
// loom runs it as one pass over row blocks: each row's maximum, the exponentials (kept in a
// row-sized cache, computed once though `e` appears twice) and their sum are formed while the
// row is in L1, and the row is written once. plan_of<...>::temp_bytes is the row-sized state,
// never a full-size temporary; explain() prints the structure. Checked against float64.
//
// Usage: softmax [--check]   (--check: a small size, a correctness run for the test suite)
#include <loom/loom.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

using namespace loom;

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const index_t rows = check_only ? 37 : 4096;
  constexpr index_t cols = 1000;  // not a multiple of the SIMD width: a tail on every row
  tensor<float, shape<dyn, cols>> x(rows), y(rows);
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = u(g);

  auto e = exp(x - max(x, axis<1>, keepdims));
  auto softmax = e / sum(e, axis<1>, keepdims);
  using plan = plan_of<decltype(softmax)>;
  static_assert(plan::kernels == 1, "softmax is one kernel");

  const auto t0 = std::chrono::steady_clock::now();
  y = softmax;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s\n", explain(softmax).c_str());

  double worst = 0;
  for (index_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (index_t c = 0; c < cols; ++c) m = std::max(m, double(x(r, c)));
    for (index_t c = 0; c < cols; ++c) s += std::exp(double(x(r, c)) - m);
    for (index_t c = 0; c < cols; ++c) {
      const double want = std::exp(double(x(r, c)) - m) / s;
      worst = std::max(worst, std::fabs(double(y(r, c)) - want) / want);
    }
  }
  const bool ok = worst < 1e-5;
  std::printf("softmax of %lld x %lld: %.3f ms, %zu bytes of row state, largest relative error %.3g: %s\n",
              static_cast<long long>(rows), static_cast<long long>(cols), ms, std::size_t(plan::temp_bytes), worst,
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
