// loom's main demo: one fused expression, checked against a float64 reference, timed beside the
// same math hand-written (one xsimd pass, threads over rows) and run one operation at a time.
//
//   y = x + gelu(h + bias) * scale        x, h: 4096 x 1024, bias: 1024, scale: a scalar
//
// This is a transformer block's residual update: a broadcast, a transcendental and two
// arithmetic ops, all in one pass over memory.
//
// Usage: demo [--check]   (--check: a small size, a correctness run for the test suite)
#include <loom/loom.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <xsimd/xsimd.hpp>

using namespace loom;
using clk = std::chrono::steady_clock;

template <class F>
double best_ms(F&& f, int reps) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    auto t0 = clk::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(clk::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const std::size_t rows = check_only ? 67 : 4096, cols = 1024;
  const float scale = 0.7f;

  tensor<float, shape<dyn, 1024>> x(rows), h(rows), y(rows);
  tensor<float, shape<1024>> bias;
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto* t : {&x, &h})
    for (std::size_t i = 0; i < t->size(); ++i) t->data()[i] = u(g);
  for (std::size_t j = 0; j < cols; ++j) bias(j) = u(g);

  // The whole computation, as one expression: one kernel, no temporaries.
  auto expr = x + gelu(h + bias) * scale;
  y = expr;

  // Check every element against float64.
  double worst = 0;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const double a = double(h(i, j)) + double(bias(j));
      const double ref = double(x(i, j)) + 0.5 * a * (1 + std::tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))) * scale;
      // The terms are of order 1, so float rounding gives an absolute error of a few 1e-7.
      worst = std::max(worst, std::fabs(double(y(i, j)) - ref) / (1.0 + std::fabs(ref)));
    }
  const bool ok = worst < 2e-6;
  std::printf("%s", explain(expr).c_str());
  std::printf("max error against float64, relative to 1 + |y|: %.2e  %s\n", worst, ok ? "ok" : "WRONG");
  if (check_only || !ok) return ok ? 0 : 1;

  // Hand-written: one xsimd pass, threads over rows.
  auto handwritten = [&](unsigned threads) {
    using B = xsimd::batch<float>;
    auto rows_of = [&](std::size_t r0, std::size_t r1) {
      const B half(0.5f), one(1.f), k0(0.7978845608f), k1(0.044715f), s(scale);
      for (std::size_t i = r0; i < r1; ++i) {
        const float *xr = x.data() + i * cols, *hr = h.data() + i * cols;
        float* yr = y.data() + i * cols;
        for (std::size_t j = 0; j < cols; j += B::size) {
          B a = B::load_aligned(hr + j) + B::load_aligned(bias.data() + j);
          B gl = half * a * (one + xsimd::tanh(k0 * (a + k1 * a * a * a)));
          (B::load_aligned(xr + j) + gl * s).store_aligned(yr + j);
        }
      }
    };
    std::vector<std::thread> ts;
    for (unsigned t = 1; t < threads; ++t) ts.emplace_back(rows_of, rows * t / threads, rows * (t + 1) / threads);
    rows_of(0, rows / threads);
    for (auto& t : ts) t.join();
  };
  // Unfused: one operation at a time, each result materialised (as a framework without a compiler).
  tensor<float, shape<dyn, 1024>> t1(rows), t2(rows);
  auto unfused = [&] {
    t1 = h + bias;
    t2 = gelu(t1);
    t1 = t2 * scale;
    y = x + t1;
  };

  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  std::printf("\n%-8s %12s %14s %12s   (best of 20, ms)\n", "threads", "loom", "hand-written", "unfused");
  for (unsigned t : {1u, hw}) {
    set_num_threads(t);
    double lm = best_ms([&] { y = expr; }, 20);
    double hm = best_ms([&] { handwritten(t); }, 20);
    double um = best_ms(unfused, 20);
    std::printf("%-8u %12.3f %14.3f %12.3f\n", t, lm, hm, um);
    if (t == hw) break;
  }
  return 0;
}
