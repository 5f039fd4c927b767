// Shared pieces of loom's benchmarks: random inputs, float64 references checked before timing,
// thread control for every framework in the binary, and the baselines' building blocks.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <loom/loom.hpp>

#if LOOM_BENCH_HAVE_EIGEN
#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>
#endif

namespace bench {

/// Uniform in [-1, 1], never exactly zero (WORKLOADS.md).
template <class T>
void fill(T* p, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    double v = 0;
    while (v == 0) v = d(g);
    p[i] = static_cast<T>(v);
  }
}

/// 64-byte aligned array for the baselines (loom's own inputs are loom tensors).
template <class T>
struct aligned_array {
  std::unique_ptr<T, decltype(&std::free)> p{nullptr, &std::free};
  std::size_t n = 0;
  explicit aligned_array(std::size_t count) : p(static_cast<T*>(std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64)), &std::free), n(count) {
    std::memset(static_cast<void*>(p.get()), 0, count * sizeof(T));
  }
  T* data() { return p.get(); }
  const T* data() const { return p.get(); }
};

/// Checks a result against its float64 reference; marks the benchmark failed on a mismatch.
template <class T>
bool check(benchmark::State& st, const T* got, const std::vector<double>& want, double rtol, double atol) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    double g = static_cast<double>(got[i]);
    if (!(std::fabs(g - want[i]) <= atol + rtol * std::fabs(want[i]))) {
      st.SkipWithError(("wrong result at " + std::to_string(i) + ": " + std::to_string(g) + " vs " +
                        std::to_string(want[i]))
                           .c_str());
      return false;
    }
  }
  return true;
}

/// Sets the thread count of every framework in the binary.
inline void set_threads(int t) {
  loom::set_num_threads(static_cast<unsigned>(t));
  omp_set_num_threads(t);
#if LOOM_BENCH_HAVE_EIGEN
  Eigen::setNbThreads(t);
#endif
}

#if LOOM_BENCH_HAVE_EIGEN
/// Eigen's Tensor thread pool of t threads (one per thread count, kept for the whole run).
inline Eigen::ThreadPoolDevice& eigen_device(int t) {
  static std::unique_ptr<Eigen::ThreadPool> pools[9];
  static std::unique_ptr<Eigen::ThreadPoolDevice> devs[9];
  if (!devs[t]) {
    pools[t] = std::make_unique<Eigen::ThreadPool>(t);
    devs[t] = std::make_unique<Eigen::ThreadPoolDevice>(pools[t].get(), t);
  }
  return *devs[t];
}
#endif

/// The calling OpenMP thread's piece [first, second) of n units split among the team in whole
/// granules of `granule` units, the last thread taking the rest.
inline std::pair<std::size_t, std::size_t> thread_piece(std::size_t n, std::size_t granule) {
  const std::size_t id = std::size_t(omp_get_thread_num()), nt = std::size_t(omp_get_num_threads());
  const std::size_t chunk = (n / nt + granule - 1) / granule * granule;
  const std::size_t b = std::min(n, chunk * id);
  return {b, id + 1 == nt ? n : std::min(n, b + chunk)};
}

/// The copy of `bytes` bytes with t threads by glibc's memcpy per contiguous piece, counted as
/// bytes read + bytes written (cached stores below glibc's non-temporal threshold: nt_copy is
/// the physical limit of memory-bound rows).
inline void stream_copy(void* dst, const void* src, std::size_t bytes, int t) {
#pragma omp parallel num_threads(t)
  {
    const auto [b, e] = thread_piece(bytes, 64);
    std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, e - b);
  }
}

/// A copy of `bytes` bytes with t threads whose stores bypass the caches (non-temporal stores,
/// no read-for-ownership of the destination: reads + writes and nothing more cross the memory
/// bus). glibc's memcpy turns to such stores only above its threshold (192 MiB on the Zen 3 VM of
/// bench/RESULTS.md), so below it stream_copy's destination lines are read before they are written.
inline void nt_copy(void* dst, const void* src, std::size_t bytes, int t) {
#if !(defined(__x86_64__) || defined(__i386__))
  stream_copy(dst, src, bytes, t);  // no non-temporal stores written for other machines
#else
#if defined(__AVX512F__)
  constexpr std::size_t w = 64;
  const auto put = [](char* d, const char* s) {
    _mm512_stream_ps(reinterpret_cast<float*>(d), _mm512_loadu_ps(reinterpret_cast<const float*>(s)));
  };
#elif defined(__AVX__)
  constexpr std::size_t w = 32;
  const auto put = [](char* d, const char* s) {
    _mm256_stream_ps(reinterpret_cast<float*>(d), _mm256_loadu_ps(reinterpret_cast<const float*>(s)));
  };
#else
  constexpr std::size_t w = 16;
  const auto put = [](char* d, const char* s) {
    _mm_stream_ps(reinterpret_cast<float*>(d), _mm_loadu_ps(reinterpret_cast<const float*>(s)));
  };
#endif
#pragma omp parallel num_threads(t)
  {
    auto [b, e] = thread_piece(bytes, 64);
    char* d = static_cast<char*>(dst);
    const char* s = static_cast<const char*>(src);
    const std::size_t head = std::min(e - b, (w - reinterpret_cast<std::uintptr_t>(d + b) % w) % w);
    std::memcpy(d + b, s + b, head);
    for (b += head; b + w <= e; b += w) put(d + b, s + b);
    std::memcpy(d + b, s + b, e - b);
    _mm_sfence();
  }
#endif
}

/// Registers a benchmark at 1 and 2 threads, timed in real time, in milliseconds.
template <class F>
benchmark::internal::Benchmark* add(const std::string& name, F f) {
  return benchmark::RegisterBenchmark(name.c_str(), f)
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace bench
