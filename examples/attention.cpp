// Scaled dot-product attention over heads, written as the formula:
//
//   o = softmax(q kᵀ / √d) v          q, k, v: [heads, tokens, d]
//
// The scores q kᵀ are one batched GEMM (kᵀ read in place through its strides), the softmax one
// fused pass over rows of the scores, and the product with v a second GEMM; explain() prints
// the plan. The result is checked against a float64 reference.
//
// Usage: attention [--check]   (--check: a small size, a correctness run for the test suite)
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
  const index_t heads = 4, tokens = check_only ? 37 : 512, d = 64;
  using t3 = tensor<float, shape<dyn, dyn, dyn>>;
  t3 q(heads, tokens, d), k(heads, tokens, d), v(heads, tokens, d), o(heads, tokens, d);
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (t3* t : {&q, &k, &v})
    for (std::size_t i = 0; i < t->size(); ++i) t->data()[i] = u(g);

  const float scale = 1.f / std::sqrt(float(d));
  auto scores = matmul(q, permute<0, 2, 1>(k)) * scale;  // [heads, tokens, tokens]
  auto e = exp(scores - max(scores, axis<2>, keepdims));
  auto attention = matmul(e / sum(e, axis<2>, keepdims), v);

  const auto t0 = std::chrono::steady_clock::now();
  o = attention;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s", explain(attention).c_str());

  // float64 reference, every element.
  double worst = 0;
  std::vector<double> p(static_cast<std::size_t>(tokens));
  for (index_t h = 0; h < heads; ++h)
    for (index_t i = 0; i < tokens; ++i) {
      double mx = -1e300, tot = 0;
      for (index_t j = 0; j < tokens; ++j) {
        double s = 0;
        for (index_t c = 0; c < d; ++c) s += double(q(h, i, c)) * double(k(h, j, c));
        p[std::size_t(j)] = s / std::sqrt(double(d));
        mx = std::max(mx, p[std::size_t(j)]);
      }
      for (auto& x : p) tot += (x = std::exp(x - mx));
      for (index_t c = 0; c < d; ++c) {
        double s = 0;
        for (index_t j = 0; j < tokens; ++j) s += p[std::size_t(j)] / tot * double(v(h, j, c));
        worst = std::max(worst, std::fabs(s - double(o(h, i, c))));
      }
    }
  const bool ok = worst < 1e-5;
  std::printf("attention over %lld heads of %lld tokens, d = %lld: %.3f ms, largest error %.3g: %s\n",
              static_cast<long long>(heads), static_cast<long long>(tokens), static_cast<long long>(d), ms, worst,
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
