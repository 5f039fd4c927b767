// Layer normalisation and RMS normalisation of a batch of token vectors:
//
//   layernorm: (x - mean) * rsqrt(var + eps) * gamma + beta
//   rmsnorm:   x * rsqrt(mean(x * x) + eps) * gamma
//
// Both are one fused pass over rows: the row statistics are computed while the row is in
// cache and consumed at once; rsqrt(var + eps) is computed once per row, not per element.
// explain() shows the plan; the result is checked against float64.
//
// Usage: layernorm [--check]   (--check: a small size, a correctness run for the test suite)
#include <loom/loom.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace loom;

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const index_t tokens = check_only ? 29 : 8192, d = check_only ? 257 : 1024;
  const float eps = 1e-5f;
  tensor<float, shape<dyn, dyn>> x(tokens, d), ln(tokens, d), rms(tokens, d);
  tensor<float, shape<dyn>> gamma(d), beta(d);
  std::mt19937 g(2);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 3.f + u(g);  // an offset mean, as in real activations
  for (index_t j = 0; j < d; ++j) gamma(j) = 1.f + 0.1f * u(g), beta(j) = 0.1f * u(g);

  auto xc = x - mean(x, axis<1>, keepdims);
  auto layernorm = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + eps) * gamma + beta;
  auto rmsnorm = x * rsqrt(mean(x * x, axis<1>, keepdims) + eps) * gamma;

  const auto t0 = std::chrono::steady_clock::now();
  ln = layernorm;
  const auto t1 = std::chrono::steady_clock::now();
  rms = rmsnorm;
  const auto t2 = std::chrono::steady_clock::now();
  std::printf("%s\n%s\n", explain(layernorm).c_str(), explain(rmsnorm).c_str());

  double worst = 0;
  for (index_t t = 0; t < tokens; ++t) {
    double m = 0, var = 0, sq = 0;
    for (index_t j = 0; j < d; ++j) m += x(t, j), sq += double(x(t, j)) * x(t, j);
    m /= double(d);
    for (index_t j = 0; j < d; ++j) var += (x(t, j) - m) * (x(t, j) - m);
    var /= double(d);
    const double inv = 1.0 / std::sqrt(var + eps), rinv = 1.0 / std::sqrt(sq / double(d) + eps);
    for (index_t j = 0; j < d; ++j) {
      worst = std::max(worst, std::fabs(ln(t, j) - ((x(t, j) - m) * inv * gamma(j) + beta(j))));
      worst = std::max(worst, std::fabs(rms(t, j) - x(t, j) * rinv * gamma(j)));
    }
  }
  using ms = std::chrono::duration<double, std::milli>;
  const bool ok = worst < 2e-5;
  std::printf("layer norm %.3f ms, RMS norm %.3f ms over %lld x %lld; largest error %.3g: %s\n",
              ms(t1 - t0).count(), ms(t2 - t1).count(), static_cast<long long>(tokens), static_cast<long long>(d),
              worst, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
