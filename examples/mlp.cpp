// A transformer's MLP block as one assignment:
//
//   y = x + (gelu(layernorm(x) @ w1 + b1) @ w2 + b2)      x: [tokens, d], w1: [d, 4d], w2: [4d, d]
//
// Each GEMM carries its bias, activation and residual in its tile store (no pass over the
// hidden activations of its own); the layer norm is one fused pass over rows. explain() prints
// the plan: three kernels and the temporaries they need. The result is checked against a
// float64 reference.
//
// Usage: mlp [--check]   (--check: a small size, a correctness run for the test suite)
#include <loom/loom.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace loom;

namespace {
double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
}  // namespace

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const index_t tokens = check_only ? 45 : 512, d = check_only ? 96 : 1024, hidden = 4 * d;
  using mat = tensor<float, shape<dyn, dyn>>;
  using vec = tensor<float, shape<dyn>>;
  mat x(tokens, d), w1(d, hidden), w2(hidden, d), y(tokens, d);
  vec b1(hidden), b2(d), gamma(d), beta(d);
  std::mt19937 g(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = u(g);
  for (std::size_t i = 0; i < w1.size(); ++i) w1.data()[i] = 0.05f * u(g);
  for (std::size_t i = 0; i < w2.size(); ++i) w2.data()[i] = 0.05f * u(g);
  for (index_t j = 0; j < hidden; ++j) b1(j) = 0.1f * u(g);
  for (index_t j = 0; j < d; ++j) {
    b2(j) = 0.1f * u(g);
    gamma(j) = 1.f + 0.1f * u(g);
    beta(j) = 0.1f * u(g);
  }

  auto xc = x - mean(x, axis<1>, keepdims);
  auto layernorm = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + 1e-5f) * gamma + beta;
  auto block = x + (matmul(gelu(matmul(layernorm, w1) + b1), w2) + b2);

  const auto t0 = std::chrono::steady_clock::now();
  y = block;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s", explain(block).c_str());

  // float64 reference: every row in --check mode, every 16th otherwise.
  double worst = 0;
  std::vector<double> ln(static_cast<std::size_t>(d)), hid(static_cast<std::size_t>(hidden));
  for (index_t t = 0; t < tokens; t += check_only ? 1 : 16) {
    double m = 0, var = 0;
    for (index_t j = 0; j < d; ++j) m += x(t, j);
    m /= double(d);
    for (index_t j = 0; j < d; ++j) var += (x(t, j) - m) * (x(t, j) - m);
    var /= double(d);
    for (index_t j = 0; j < d; ++j) ln[std::size_t(j)] = (x(t, j) - m) / std::sqrt(var + 1e-5) * gamma(j) + beta(j);
    for (index_t j = 0; j < hidden; ++j) {
      double s = b1(j);
      for (index_t c = 0; c < d; ++c) s += ln[std::size_t(c)] * w1(c, j);
      hid[std::size_t(j)] = gelu_ref(s);
    }
    for (index_t j = 0; j < d; ++j) {
      double s = b2(j);
      for (index_t c = 0; c < hidden; ++c) s += hid[std::size_t(c)] * w2(c, j);
      worst = std::max(worst, std::fabs(x(t, j) + s - double(y(t, j))));
    }
  }
  const bool ok = worst < 1e-4;
  std::printf("MLP block of %lld tokens, d = %lld, hidden %lld: %.3f ms, largest error %.3g: %s\n",
              static_cast<long long>(tokens), static_cast<long long>(d), static_cast<long long>(hidden), ms, worst,
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
