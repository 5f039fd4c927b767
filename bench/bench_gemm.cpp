// W7 (matmul, 1024 x 1024 x 1024 float) and the epilogue half of W8 (gelu(A @ W + bias)) for
// loom's packed GEMM engine, beside Eigen (noalias product, OpenMP threads), OpenBLAS
// (cblas_sgemm) and the measured single-core FMA peak, at 1 and 2 threads, square and thin shapes.
// Every output is checked against a float64 reference before it is timed.
//
//   bench_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   LOOM_GEMM_SWEEP=1 bench_gemm --benchmark_filter=sweep    (cache-block sweep used for tuning)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "loom/cpu/gemm/driver.hpp"
#include "loom/cpu/thread_pool.hpp"

#if defined(LOOM_BENCH_HAVE_EIGEN)
#include <Eigen/Core>
#endif
#if defined(LOOM_BENCH_HAVE_BLAS)
#include <cblas.h>
#endif

using loom::index_t;
namespace lg = loom::cpu::gemm;

namespace {

// -------------------------------------------------------------------------------------------------
// Data, reference check, threads
// -------------------------------------------------------------------------------------------------

struct problem {
  index_t M, N, K;
  std::vector<float> a, b, bias, c;  // row-major, dense

  problem(index_t m, index_t n, index_t k) : M(m), N(n), K(k), a(m * k), b(k * n), bias(n), c(m * n) {
    std::mt19937 g(unsigned(m * 131 + n * 7 + k));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& x : a) x = u(g);
    for (auto& x : b) x = u(g);
    for (auto& x : bias) x = u(g);
  }
};

problem& get_problem(index_t M, index_t N, index_t K) {
  static std::map<std::tuple<index_t, index_t, index_t>, std::unique_ptr<problem>> cache;
  auto& p = cache[{M, N, K}];
  if (!p) p = std::make_unique<problem>(M, N, K);
  return *p;
}

float gelu_scalar(float x) { return 0.5f * x * (1.f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x))); }

/// Checks c (row-major, ld N) against a float64 reference on up to 64 rows spread over M, with
/// the K-aware bound; `post` maps the exact product (plus bias) to the expected value.
template <class Post>
void check(const problem& p, const std::vector<float>& c, const char* who, Post post) {
  index_t step = std::max<index_t>(1, p.M / 64);
  std::vector<double> row(p.N), mag(p.N);
  for (index_t i = 0; i < p.M; i += step) {
    std::fill(row.begin(), row.end(), 0.0);
    std::fill(mag.begin(), mag.end(), 0.0);
    for (index_t k = 0; k < p.K; ++k) {
      double x = p.a[i * p.K + k];
      for (index_t j = 0; j < p.N; ++j) {
        row[j] += x * p.b[k * p.N + j];
        mag[j] += std::abs(x * p.b[k * p.N + j]);
      }
    }
    for (index_t j = 0; j < p.N; ++j) {
      double want = post(row[j], j), got = c[i * p.N + j];
      double tol = 2.0 * double(p.K + 1) * 1.2e-7 * (mag[j] + 1.0) + 1e-5;
      if (!(std::abs(got - want) <= tol)) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "%s: C(%ld, %ld) = %g, reference %g (%ldx%ldx%ld)", who, long(i), long(j), got,
                      want, long(p.M), long(p.N), long(p.K));
        throw std::runtime_error(msg);
      }
    }
  }
}

void check_plain(const problem& p, const std::vector<float>& c, const char* who) {
  check(p, c, who, [](double v, index_t) { return v; });
}
void check_gelu(const problem& p, const std::vector<float>& c, const char* who) {
  check(p, c, who, [&](double v, index_t j) { return double(gelu_scalar(float(v + p.bias[j]))); });
}

/// Every library is set to the thread count of the case it runs and to one thread otherwise,
/// so no idle spinner of another library competes for the two cores.
void use_threads(int loom_threads, int eigen_threads, int blas_threads) {
  static const bool pool_started = [] {
    loom::num_threads();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return true;
  }();
  (void)pool_started;
  bool changed = loom::num_threads() != unsigned(loom_threads);
  loom::set_num_threads(unsigned(loom_threads));
#if defined(LOOM_BENCH_HAVE_EIGEN)
  Eigen::setNbThreads(eigen_threads);
#endif
#if defined(LOOM_BENCH_HAVE_BLAS)
  openblas_set_num_threads(blas_threads);
#endif
  // New pool workers need a moment before their first job (thread_pool start-up race), and
  // other libraries' spinning workers need a moment to go to sleep.
  if (changed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void set_counters(benchmark::State& s, index_t M, index_t N, index_t K) {
  s.counters["GFLOPs"] = benchmark::Counter(2.0 * double(M) * double(N) * double(K) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// -------------------------------------------------------------------------------------------------
// The bias + GELU epilogue (tanh form), vectorised with xsimd
// -------------------------------------------------------------------------------------------------

using fbatch = xsimd::batch<float>;

LOOM_INLINE fbatch gelu(fbatch x) {
  // 0.5 x (1 + tanh(z)) = x / (1 + exp(-2 z)), z = 0.7978845608 (x + 0.044715 x^3)
  fbatch z = fbatch(0.7978845608f) * xsimd::fma(fbatch(0.044715f) * x, x * x, x);
  return x / (fbatch(1.f) + xsimd::exp(fbatch(-2.f) * z));
}
LOOM_INLINE float gelu1(float x) {
  float z = 0.7978845608f * (x + 0.044715f * x * x * x);
  return x / (1.f + std::exp(-2.f * z));
}

/// out[0:n] = gelu(in[0:n] + bias[0:n])
LOOM_INLINE void bias_gelu_run(const float* in, const float* bias, float* out, index_t n) {
  constexpr index_t W = index_t(fbatch::size);
  index_t j = 0;
  for (; j + W <= n; j += W) {
    (gelu(fbatch::load_unaligned(in + j) + fbatch::load_unaligned(bias + j))).store_unaligned(out + j);
  }
  for (; j < n; ++j) out[j] = gelu1(in[j] + bias[j]);
}

/// The fused epilogue: C tile = gelu(tile + bias), written to a row-major C.
struct bias_gelu_epilogue {
  const float* bias;
  float* c;
  index_t ldc;
  void operator()(index_t i0, index_t j0, index_t mr, index_t nr, const float* tile, index_t ld) const {
    for (index_t i = 0; i < mr; ++i) bias_gelu_run(tile + i * ld, bias + j0, c + (i0 + i) * ldc + j0, nr);
  }
};

/// The unfused second pass: C = gelu(C + bias) over rows, on loom's pool.
void bias_gelu_pass(float* c, const float* bias, index_t M, index_t N) {
  loom::cpu::parallel_chunks(M, loom::num_threads(), 16, 1, [&](index_t r0, index_t r1) {
    for (index_t i = r0; i < r1; ++i) bias_gelu_run(c + i * N, bias, c + i * N, N);
  });
}

// -------------------------------------------------------------------------------------------------
// Peak: a register-only FMA loop, 12 independent vector chains (latency 4 x throughput 1-2)
// -------------------------------------------------------------------------------------------------

void BM_fma_peak(benchmark::State& s) {
  use_threads(1, 1, 1);
  const long iters = 1 << 22;
  for (auto _ : s) {
    fbatch a0(0.1f), a1(0.2f), a2(0.3f), a3(0.4f), a4(0.5f), a5(0.6f), a6(0.7f), a7(0.8f), a8(0.9f), a9(1.0f),
        a10(1.1f), a11(1.2f);
    const fbatch x(0.999999f), y(1e-7f);
    for (long n = 0; n < iters; ++n) {
      a0 = xsimd::fma(a0, x, y), a1 = xsimd::fma(a1, x, y), a2 = xsimd::fma(a2, x, y), a3 = xsimd::fma(a3, x, y);
      a4 = xsimd::fma(a4, x, y), a5 = xsimd::fma(a5, x, y), a6 = xsimd::fma(a6, x, y), a7 = xsimd::fma(a7, x, y);
      a8 = xsimd::fma(a8, x, y), a9 = xsimd::fma(a9, x, y), a10 = xsimd::fma(a10, x, y), a11 = xsimd::fma(a11, x, y);
    }
    fbatch sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    benchmark::DoNotOptimize(sum);
  }
  s.counters["GFLOPs"] = benchmark::Counter(double(iters) * 12 * fbatch::size * 2 * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_fma_peak)->UseRealTime()->Unit(benchmark::kMillisecond);

// -------------------------------------------------------------------------------------------------
// W7: C = A . B
// -------------------------------------------------------------------------------------------------

void loom_product(problem& p, const lg::options& opt = {}) {
  lg::gemm<float>(p.M, p.N, p.K, lg::row_major(p.a.data(), p.K), lg::row_major(p.b.data(), p.N),
                  lg::store_to(p.c.data(), p.N), opt);
}

void BM_W7_loom(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(int(s.range(3)), 1, 1);
  problem& p = get_problem(M, N, K);
  std::fill(p.c.begin(), p.c.end(), 0.f);
  loom_product(p);
  check_plain(p, p.c, "loom");
  for (auto _ : s) {
    loom_product(p);
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}

#if defined(LOOM_BENCH_HAVE_EIGEN)
using emat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void eigen_product(problem& p) {
  Eigen::Map<const emat> A(p.a.data(), p.M, p.K), B(p.b.data(), p.K, p.N);
  Eigen::Map<emat> C(p.c.data(), p.M, p.N);
  C.noalias() = A * B;
}

void BM_W7_eigen(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(1, int(s.range(3)), 1);
  problem& p = get_problem(M, N, K);
  std::fill(p.c.begin(), p.c.end(), 0.f);
  eigen_product(p);
  check_plain(p, p.c, "eigen");
  for (auto _ : s) {
    eigen_product(p);
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}
#endif

#if defined(LOOM_BENCH_HAVE_BLAS)
void blas_product(problem& p) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(p.M), int(p.N), int(p.K), 1.f, p.a.data(), int(p.K),
              p.b.data(), int(p.N), 0.f, p.c.data(), int(p.N));
}

void BM_W7_openblas(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(1, 1, int(s.range(3)));
  problem& p = get_problem(M, N, K);
  std::fill(p.c.begin(), p.c.end(), 0.f);
  blas_product(p);
  check_plain(p, p.c, "openblas");
  for (auto _ : s) {
    blas_product(p);
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}
#endif

// Square W7, the thin shapes of issue 4, and small sizes where per-call overhead shows.
void w7_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (int t : {1, 2}) {
    for (auto [m, n, k] : {std::tuple{1024, 1024, 1024}, {1024, 1024, 64}, {64, 1024, 1024}, {1, 1024, 1024},
                           {1024, 1, 1024}, {256, 256, 256}}) {
      b->Args({m, n, k, t});
    }
  }
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {8, 8, 8}, {32, 32, 32}, {64, 64, 64}}) b->Args({m, n, k, 1});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_W7_loom)->Apply(w7_shapes);
#if defined(LOOM_BENCH_HAVE_EIGEN)
BENCHMARK(BM_W7_eigen)->Apply(w7_shapes);
#endif
#if defined(LOOM_BENCH_HAVE_BLAS)
BENCHMARK(BM_W7_openblas)->Apply(w7_shapes);
#endif

// -------------------------------------------------------------------------------------------------
// W8's epilogue: gelu(A . W + bias), fused into the GEMM or as a second pass
// -------------------------------------------------------------------------------------------------

void BM_W8_loom_fused(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(int(s.range(3)), 1, 1);
  problem& p = get_problem(M, N, K);
  auto run = [&] {
    lg::gemm<float>(M, N, K, lg::row_major(p.a.data(), K), lg::row_major(p.b.data(), N),
                    bias_gelu_epilogue{p.bias.data(), p.c.data(), N});
  };
  run();
  check_gelu(p, p.c, "loom fused");
  for (auto _ : s) {
    run();
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}

void BM_W8_loom_unfused(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(int(s.range(3)), 1, 1);
  problem& p = get_problem(M, N, K);
  auto run = [&] {
    loom_product(p);
    bias_gelu_pass(p.c.data(), p.bias.data(), M, N);
  };
  run();
  check_gelu(p, p.c, "loom unfused");
  for (auto _ : s) {
    run();
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}

#if defined(LOOM_BENCH_HAVE_EIGEN)
void BM_W8_eigen_unfused(benchmark::State& s) {
  index_t M = s.range(0), N = s.range(1), K = s.range(2);
  use_threads(int(s.range(3)), int(s.range(3)), 1);  // the second pass runs on loom's pool
  problem& p = get_problem(M, N, K);
  auto run = [&] {
    eigen_product(p);
    bias_gelu_pass(p.c.data(), p.bias.data(), M, N);
  };
  run();
  check_gelu(p, p.c, "eigen unfused");
  for (auto _ : s) {
    run();
    benchmark::ClobberMemory();
  }
  set_counters(s, M, N, K);
}
#endif

void w8_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (int t : {1, 2}) b->Args({1024, 1024, 1024, t});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_W8_loom_fused)->Apply(w8_shapes);
BENCHMARK(BM_W8_loom_unfused)->Apply(w8_shapes);
#if defined(LOOM_BENCH_HAVE_EIGEN)
BENCHMARK(BM_W8_eigen_unfused)->Apply(w8_shapes);
#endif

// -------------------------------------------------------------------------------------------------
// Cache-block sweep (tuning only; registered when LOOM_GEMM_SWEEP is set)
// -------------------------------------------------------------------------------------------------

void BM_W7_loom_sweep(benchmark::State& s) {
  index_t n = s.range(0);
  use_threads(int(s.range(4)), 1, 1);
  problem& p = get_problem(n, n, n);
  lg::options opt;
  opt.block.kc = s.range(1);
  opt.block.nc = s.range(2);
  opt.block.mo = s.range(3);
  loom_product(p, opt);
  check_plain(p, p.c, "loom sweep");
  for (auto _ : s) {
    loom_product(p, opt);
    benchmark::ClobberMemory();
  }
  set_counters(s, n, n, n);
}

[[maybe_unused]] const bool sweep_registered = [] {
  if (!std::getenv("LOOM_GEMM_SWEEP")) return false;
  auto* b = benchmark::RegisterBenchmark("BM_W7_loom_sweep", BM_W7_loom_sweep);
  b->ArgNames({"n", "kc", "nc", "mo", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int t : {1, 2})
    for (int kc : {128, 192, 256, 320, 384, 512, 1024})
      for (int nc : {128, 256, 384, 512, 768, 1024})
        for (int mo : {0, 240}) b->Args({1024, kc, nc, mo, t});
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
