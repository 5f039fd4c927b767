// W7, W8 and W9 of WORKLOADS.md through loom's expression API (loom::matmul), beside Eigen
// (noalias products, its own threads), OpenBLAS (where found), the unfused versions (each result
// materialised, then a separate pass) and the machine's measured single-core FMA peak, at 1 and
// 2 threads, square and thin (M = 1, M = 16) shapes. Every result is checked against a float64
// reference on sampled elements before it is timed.
//
//   bench_matmul --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "common.hpp"

#if defined(LOOM_BENCH_HAVE_BLAS)
#include <cblas.h>
#endif

using namespace loom;

namespace {

using mat = tensor<float, shape<dyn, dyn>>;
using vec = tensor<float, shape<dyn>>;

void threads(int t) {
  bench::set_threads(t);
#if defined(LOOM_BENCH_HAVE_BLAS)
  openblas_set_num_threads(t);
#endif
}

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

void flops(benchmark::State& s, double M, double N, double K) {
  s.counters["GFLOPs"] = benchmark::Counter(2.0 * M * N * K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Checks 64 sampled elements of c (row-major, ld N) against want(i, j) with a K-aware tolerance.
template <class Want>
bool check_sampled(benchmark::State& s, const float* c, index_t M, index_t N, index_t K, Want&& want) {
  std::mt19937_64 g(7);
  for (int n = 0; n < 64; ++n) {
    const index_t i = index_t(g() % std::uint64_t(M)), j = index_t(g() % std::uint64_t(N));
    const double w = want(i, j);
    if (!(std::fabs(double(c[i * N + j]) - w) <= 2e-6 * double(K) + 1e-4 * std::fabs(w))) {
      s.SkipWithError(("wrong result at (" + std::to_string(i) + ", " + std::to_string(j) + "): " +
                       std::to_string(c[i * N + j]) + " vs " + std::to_string(w))
                          .c_str());
      return false;
    }
  }
  return true;
}

struct problem {
  index_t M, N, K;
  mat a, w, c;
  vec bias;
  problem(index_t m, index_t n, index_t k) : M(m), N(n), K(k), a(m, k), w(k, n), c(m, n), bias(n) {
    bench::fill(a.data(), a.size(), 1);
    bench::fill(w.data(), w.size(), 2);
    bench::fill(bias.data(), bias.size(), 3);
  }
  double dot(index_t i, index_t j) const {
    double s = 0;
    for (index_t k = 0; k < K; ++k) s += double(a.data()[i * K + k]) * double(w.data()[k * N + j]);
    return s;
  }
};

// -------------------------------------------------------------------------------------------------
// The single-core FMA peak: 10 independent vector chains, registers only
// -------------------------------------------------------------------------------------------------

void BM_fma_peak(benchmark::State& s) {
  threads(1);
  using b = xsimd::batch<float>;
  constexpr long n = 1 << 21;
  for (auto _ : s) {
    b r0(1.f), r1(2.f), r2(3.f), r3(4.f), r4(5.f), r5(6.f), r6(7.f), r7(8.f), r8(9.f), r9(10.f);
    const b m(0.9999999f), a(1e-8f);
    for (long t = 0; t < n; ++t) {
      r0 = xsimd::fma(r0, m, a), r1 = xsimd::fma(r1, m, a), r2 = xsimd::fma(r2, m, a), r3 = xsimd::fma(r3, m, a);
      r4 = xsimd::fma(r4, m, a), r5 = xsimd::fma(r5, m, a), r6 = xsimd::fma(r6, m, a), r7 = xsimd::fma(r7, m, a);
      r8 = xsimd::fma(r8, m, a), r9 = xsimd::fma(r9, m, a);
    }
    benchmark::DoNotOptimize((r0 + r1 + r2 + r3 + r4) + (r5 + r6 + r7 + r8 + r9));
  }
  s.counters["GFLOPs"] =
      benchmark::Counter(double(n) * 10 * b::size * 2 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// -------------------------------------------------------------------------------------------------
// W7: c = a . w
// -------------------------------------------------------------------------------------------------

void BM_W7_loom(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  p.c = matmul(p.a, p.w);
  if (!check_sampled(s, p.c.data(), p.M, p.N, p.K, [&](index_t i, index_t j) { return p.dot(i, j); })) return;
  for (auto _ : s) {
    p.c = matmul(p.a, p.w);
    benchmark::DoNotOptimize(p.c.data());
  }
  flops(s, double(M), 1024, 1024);
}

#if LOOM_BENCH_HAVE_EIGEN
using emat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using evec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
Eigen::Map<const emat> emap(const mat& m) { return {m.data(), index_t(m.extent(0)), index_t(m.extent(1))}; }

void BM_W7_eigen(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  emat c(M, 1024);
  c.noalias() = emap(p.a) * emap(p.w);
  if (!check_sampled(s, c.data(), p.M, p.N, p.K, [&](index_t i, index_t j) { return p.dot(i, j); })) return;
  for (auto _ : s) {
    c.noalias() = emap(p.a) * emap(p.w);
    benchmark::DoNotOptimize(c.data());
  }
  flops(s, double(M), 1024, 1024);
}
#endif

#if defined(LOOM_BENCH_HAVE_BLAS)
void BM_W7_openblas(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), 1024, 1024, 1.f, p.a.data(), 1024, p.w.data(),
                1024, 0.f, p.c.data(), 1024);
  };
  run();
  if (!check_sampled(s, p.c.data(), p.M, p.N, p.K, [&](index_t i, index_t j) { return p.dot(i, j); })) return;
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(p.c.data());
  }
  flops(s, double(M), 1024, 1024);
}
#endif

// -------------------------------------------------------------------------------------------------
// W8: gelu(a . w + bias)
// -------------------------------------------------------------------------------------------------

void BM_W8_loom_fused(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  p.c = gelu(matmul(p.a, p.w) + p.bias);
  static_assert(plan_of<decltype(gelu(matmul(p.a, p.w) + p.bias))>::kernels == 1);
  if (!check_sampled(s, p.c.data(), p.M, p.N, p.K,
                     [&](index_t i, index_t j) { return gelu_ref(p.dot(i, j) + p.bias(j)); }))
    return;
  for (auto _ : s) {
    p.c = gelu(matmul(p.a, p.w) + p.bias);
    benchmark::DoNotOptimize(p.c.data());
  }
  flops(s, double(M), 1024, 1024);
}

void BM_W8_loom_unfused(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  auto run = [&] {
    p.c = matmul(p.a, p.w);
    p.c = gelu(p.c + p.bias);
  };
  run();
  if (!check_sampled(s, p.c.data(), p.M, p.N, p.K,
                     [&](index_t i, index_t j) { return gelu_ref(p.dot(i, j) + p.bias(j)); }))
    return;
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(p.c.data());
  }
  flops(s, double(M), 1024, 1024);
}

#if LOOM_BENCH_HAVE_EIGEN
template <class X>
void eigen_gelu(X&& x) {
  auto a = x.array();
  a = 0.5f * a * (1.f + (0.7978845608f * (a + 0.044715f * a.cube())).tanh());
}

void BM_W8_eigen_unfused(benchmark::State& s, index_t M) {
  threads(int(s.range(0)));
  problem p(M, 1024, 1024);
  emat c(M, 1024);
  Eigen::Map<const evec> b(p.bias.data(), 1024);
  auto run = [&] {
    c.noalias() = emap(p.a) * emap(p.w);
    c.rowwise() += b;
    eigen_gelu(c);
  };
  run();
  if (!check_sampled(s, c.data(), p.M, p.N, p.K, [&](index_t i, index_t j) { return gelu_ref(p.dot(i, j) + p.bias(j)); }))
    return;
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(c.data());
  }
  flops(s, double(M), 1024, 1024);
}
#endif

// -------------------------------------------------------------------------------------------------
// W9: x + (gelu(layernorm(x) . w1 + b1) . w2 + b2), 512 tokens, d = 1024, hidden 4096
// -------------------------------------------------------------------------------------------------

struct mlp {
  static constexpr index_t T = 512, d = 1024, h = 4096;
  mat x{T, d}, w1{d, h}, w2{h, d}, y{T, d};
  vec b1{h}, b2{d}, gamma{d}, beta{d};
  std::vector<double> ref;  // y at the sampled rows (the first 4 rows are enough to catch a wrong block)
  mlp() {
    bench::fill(x.data(), x.size(), 11);
    bench::fill(w1.data(), w1.size(), 12);
    bench::fill(w2.data(), w2.size(), 13);
    bench::fill(b1.data(), b1.size(), 14);
    bench::fill(b2.data(), b2.size(), 15);
    bench::fill(gamma.data(), gamma.size(), 16);
    bench::fill(beta.data(), beta.size(), 17);
    for (std::size_t i = 0; i < w1.size(); ++i) w1.data()[i] *= 0.05f;
    for (std::size_t i = 0; i < w2.size(); ++i) w2.data()[i] *= 0.05f;
    for (index_t t = 0; t < 4; ++t) {
      double m = 0, v = 0;
      for (index_t j = 0; j < d; ++j) m += x(t, j);
      m /= double(d);
      for (index_t j = 0; j < d; ++j) v += (x(t, j) - m) * (x(t, j) - m);
      v /= double(d);
      std::vector<double> ln(d), hid(h);
      for (index_t j = 0; j < d; ++j) ln[j] = (x(t, j) - m) / std::sqrt(v + 1e-5) * gamma(j) + beta(j);
      for (index_t j = 0; j < h; ++j) {
        double s = b1(j);
        for (index_t k = 0; k < d; ++k) s += ln[k] * w1(k, j);
        hid[j] = gelu_ref(s);
      }
      for (index_t j = 0; j < d; ++j) {
        double s = b2(j);
        for (index_t k = 0; k < h; ++k) s += hid[k] * w2(k, j);
        ref.push_back(x(t, j) + s);
      }
    }
  }
  bool check(benchmark::State& s, const float* out) const {
    for (index_t e = 0; e < 4 * d; ++e)
      if (!(std::fabs(double(out[e]) - ref[std::size_t(e)]) <= 2e-3 + 1e-3 * std::fabs(ref[std::size_t(e)]))) {
        s.SkipWithError(("wrong W9 result at " + std::to_string(e) + ": " + std::to_string(out[e]) + " vs " +
                         std::to_string(ref[std::size_t(e)]))
                            .c_str());
        return false;
      }
    return true;
  }
  static double gflop() { return 2.0 * 2.0 * double(T) * double(d) * double(h); }
};

void BM_W9_loom(benchmark::State& s) {
  threads(int(s.range(0)));
  static mlp m;
  auto xc = m.x - mean(m.x, axis<1>, keepdims);
  auto ln = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + 1e-5f) * m.gamma + m.beta;
  auto block = m.x + (matmul(gelu(matmul(ln, m.w1) + m.b1), m.w2) + m.b2);
  m.y = block;
  if (!m.check(s, m.y.data())) return;
  for (auto _ : s) {
    m.y = block;
    benchmark::DoNotOptimize(m.y.data());
  }
  s.counters["GFLOPs"] = benchmark::Counter(mlp::gflop() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_W9_loom_unfused(benchmark::State& s) {
  threads(int(s.range(0)));
  static mlp m;
  mat ln(mlp::T, mlp::d), hid(mlp::T, mlp::h), o(mlp::T, mlp::d);
  vec mu(mlp::T), rs(mlp::T);
  auto run = [&] {
    mu = mean(m.x, axis<1>);
    ln = m.x - reshape(mu, shape<dyn, 1>{mlp::T});
    rs = rsqrt(mean(ln * ln, axis<1>) + 1e-5f);
    ln = ln * reshape(rs, shape<dyn, 1>{mlp::T});
    ln = ln * m.gamma + m.beta;
    hid = matmul(ln, m.w1);
    hid = hid + m.b1;
    hid = gelu(hid);
    o = matmul(hid, m.w2);
    o = o + m.b2;
    m.y = m.x + o;
  };
  run();
  if (!m.check(s, m.y.data())) return;
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(m.y.data());
  }
  s.counters["GFLOPs"] = benchmark::Counter(mlp::gflop() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

#if LOOM_BENCH_HAVE_EIGEN
void BM_W9_eigen(benchmark::State& s) {
  threads(int(s.range(0)));
  static mlp m;
  emat ln(mlp::T, mlp::d), hid(mlp::T, mlp::h), y(mlp::T, mlp::d);
  Eigen::Map<const evec> b1(m.b1.data(), mlp::h), b2(m.b2.data(), mlp::d), g(m.gamma.data(), mlp::d),
      be(m.beta.data(), mlp::d);
  auto x = emap(m.x);
  auto run = [&] {
    Eigen::VectorXf mu = x.rowwise().mean();
    ln = x.colwise() - mu;
    Eigen::ArrayXf var = ln.array().square().rowwise().mean();
    Eigen::ArrayXf r = (var + 1e-5f).rsqrt();
    ln.array().colwise() *= r;
    ln.array().rowwise() *= g.array();
    ln.rowwise() += be;
    hid.noalias() = ln * emap(m.w1);
    hid.rowwise() += b1;
    eigen_gelu(hid);
    y = x;
    y.noalias() += hid * emap(m.w2);
    y.rowwise() += b2;
  };
  run();
  if (!m.check(s, y.data())) return;
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(y.data());
  }
  s.counters["GFLOPs"] = benchmark::Counter(mlp::gflop() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
#endif

// Names are WORKLOAD/VARIANT (bench::add appends /threads:T), as tools/bench_report.py groups
// them: W7 and W8 are the square 1024^3 products, W7_M16 / W7_M1 (W8_M16 / W8_M1) the thin ones.
template <class F>
void shapes(const std::string& workload, const std::string& variant, F f) {
  for (index_t M : {index_t(1024), index_t(16), index_t(1)}) {
    const std::string w = M == 1024 ? workload : workload + "_M" + std::to_string(M);
    bench::add(w + "/" + variant, [f, M](benchmark::State& s) { f(s, M); });
  }
}

const bool registered = [] {
  // the single-core FMA peak: a separate row (GFLOPs counter), not a ratio column
  benchmark::RegisterBenchmark("fma_peak", BM_fma_peak)->UseRealTime()->Unit(benchmark::kMillisecond);
  shapes("W7", "loom", BM_W7_loom);
#if LOOM_BENCH_HAVE_EIGEN
  shapes("W7", "eigen", BM_W7_eigen);
#endif
#if defined(LOOM_BENCH_HAVE_BLAS)
  shapes("W7", "openblas", BM_W7_openblas);
#endif
  shapes("W8", "loom", BM_W8_loom_fused);
  shapes("W8", "unfused", BM_W8_loom_unfused);  // loom's GEMM, then a separate epilogue pass
#if LOOM_BENCH_HAVE_EIGEN
  shapes("W8", "eigen", BM_W8_eigen_unfused);  // Eigen's GEMM, then a separate epilogue pass
#endif
  bench::add("W9/loom", BM_W9_loom);
  bench::add("W9/unfused", BM_W9_loom_unfused);
#if LOOM_BENCH_HAVE_EIGEN
  bench::add("W9/eigen", BM_W9_eigen);
#endif
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
