// W3 (softmax), W4 (layer norm) and W6 (a full sum; column sums) of WORKLOADS.md, and a 4096 x 4096
// transpose, each beside its baselines in this one binary:
//   loom         the expression as users write it (DESIGN.md's spellings)
//   handwritten  one pass per row with xsimd, rows in L1, threads over rows (OpenMP)
//   unfused      one loom operation per assignment, each result a new array (an eager framework)
//   unfused_prealloc  the same, into temporaries allocated once beforehand (its best case)
//   eigen        Eigen's Array rowwise/colwise expressions (1 thread) and Tensor module reductions
//                on a ThreadPoolDevice (2 threads)
//   stream_read  a streaming read of the same bytes (the limit of a full sum)
//   copy         a copy of the same bytes with glibc's memcpy (the limit of W3, W4 and a transpose:
//                each reads its input once and writes its output once)
//   copy_nt      the same copy with non-temporal stores (no read-for-ownership of the output)
// Every output is checked against a float64 reference before it is timed. GB/s counts the bytes
// each workload must read and write once (the same count for every variant).
#include "common.hpp"

#include <xsimd/xsimd.hpp>

using namespace loom;

namespace {

using batch = xsimd::batch<float>;
constexpr std::size_t lanes = batch::size;

float hmax(batch b) {
  alignas(64) float t[lanes];
  b.store_aligned(t);
  float m = t[0];
  for (std::size_t l = 1; l < lanes; ++l) m = std::max(m, t[l]);
  return m;
}

template <class Run>
void timed(benchmark::State& st, std::int64_t bytes, Run run) {
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * bytes);
}

// ---------------------------------------------------------------------------------------------
// W3: softmax over rows, 4096 x 1024
// ---------------------------------------------------------------------------------------------
constexpr std::size_t R = 4096, C = 1024;
using S = shape<R, C>;
const std::int64_t rc_bytes = 2 * 4 * std::int64_t(R * C);  // read x, write o

struct w3_data {
  tensor<float, S> x, o;
  std::vector<double> want;
  w3_data() {
    bench::fill(x.data(), R * C, 31);
    want.resize(R * C);
    for (std::size_t i = 0; i < R; ++i) {
      double m = -INFINITY, s = 0;
      for (std::size_t j = 0; j < C; ++j) m = std::max(m, double(x(i, j)));
      for (std::size_t j = 0; j < C; ++j) s += std::exp(double(x(i, j)) - m);
      for (std::size_t j = 0; j < C; ++j) want[i * C + j] = std::exp(double(x(i, j)) - m) / s;
    }
  }
};
w3_data& w3() {
  static w3_data d;
  return d;
}

template <class Run>
void w3_measure(benchmark::State& st, Run run) {
  auto& d = w3();
  bench::set_threads(int(st.range(0)));
  d.o = 0.f;
  run(d, int(st.range(0)));
  if (!bench::check(st, d.o.data(), d.want, 1e-5, 1e-9)) return;
  timed(st, rc_bytes, [&] { run(d, int(st.range(0))); });
}

void w3_loom(benchmark::State& st) {
  w3_measure(st, [](w3_data& d, int) {
    auto e = exp(d.x - max(d.x, axis<1>, keepdims));
    d.o = e / sum(e, axis<1>, keepdims);
  });
}

/// A copy baseline: `bytes` of src into dst by `copy` (bench::stream_copy: memcpy, cached stores;
/// bench::nt_copy: non-temporal stores), counted as `counted` bytes and checked after timing.
template <class Copy>
void copy_measure(benchmark::State& st, float* dst, const float* src, std::size_t bytes, std::int64_t counted,
                  Copy copy) {
  const int t = int(st.range(0));
  bench::set_threads(t);
  timed(st, counted, [&] { copy(dst, src, bytes, t); });
  if (std::memcmp(dst, src, bytes) != 0) st.SkipWithError("copy differs");
}

/// W3's bytes (read x, write o) copied.
void w3_copy(benchmark::State& st) {
  copy_measure(st, w3().o.data(), w3().x.data(), 4 * R * C, rc_bytes, bench::stream_copy);
}
void w3_copy_nt(benchmark::State& st) {
  copy_measure(st, w3().o.data(), w3().x.data(), 4 * R * C, rc_bytes, bench::nt_copy);
}

void w3_handwritten(benchmark::State& st) {
  w3_measure(st, [](w3_data& d, int t) {
    const float* x = d.x.data();
    float* o = d.o.data();
#pragma omp parallel for num_threads(t) schedule(static)
    for (std::size_t r = 0; r < R; ++r) {
      const float* xr = x + r * C;
      float* orow = o + r * C;
      batch m0(-INFINITY), m1(-INFINITY);
      for (std::size_t j = 0; j < C; j += 2 * lanes) {
        m0 = xsimd::max(m0, batch::load_aligned(xr + j));
        m1 = xsimd::max(m1, batch::load_aligned(xr + j + lanes));
      }
      const batch m(hmax(xsimd::max(m0, m1)));
      batch s0(0.f), s1(0.f);
      for (std::size_t j = 0; j < C; j += 2 * lanes) {
        const batch e0 = xsimd::exp(batch::load_aligned(xr + j) - m);
        const batch e1 = xsimd::exp(batch::load_aligned(xr + j + lanes) - m);
        e0.store_aligned(orow + j);
        e1.store_aligned(orow + j + lanes);
        s0 += e0;
        s1 += e1;
      }
      const batch inv(1.f / xsimd::hadd(s0 + s1));
      for (std::size_t j = 0; j < C; j += lanes) (batch::load_aligned(orow + j) * inv).store_aligned(orow + j);
    }
  });
}

void w3_unfused(benchmark::State& st) {
  w3_measure(st, [](w3_data& d, int) {
    auto m = eval(max(d.x, axis<1>, keepdims));
    auto c = eval(d.x - m);
    auto e = eval(exp(c));
    auto s = eval(sum(e, axis<1>, keepdims));
    d.o = e / s;
  });
}

// The same operations into temporaries allocated once beforehand (the unfused version's best case:
// its time does not depend on what the allocator does with three fresh 16 MiB arrays per call).
void w3_unfused_prealloc(benchmark::State& st) {
  static tensor<float, shape<R, 1>> m, s;
  static tensor<float, S> c, e;
  w3_measure(st, [](w3_data& d, int) {
    m = max(d.x, axis<1>, keepdims);
    c = d.x - m;
    e = exp(c);
    s = sum(e, axis<1>, keepdims);
    d.o = e / s;
  });
}

#if LOOM_BENCH_HAVE_EIGEN
using RowArray = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using TMap2 = Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor>>;
using CTMap2 = Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor>>;

void w3_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  Eigen::Tensor<float, 1, Eigen::RowMajor> tm(static_cast<Eigen::Index>(R)), ts(static_cast<Eigen::Index>(R));
  Eigen::Tensor<float, 2, Eigen::RowMajor> te(static_cast<Eigen::Index>(R), static_cast<Eigen::Index>(C));
  w3_measure(st, [&](w3_data& d, int) {
    if (t == 1) {
      Eigen::Map<const RowArray> X(d.x.data(), R, C);
      Eigen::Map<RowArray> O(d.o.data(), R, C);
      const Eigen::VectorXf m = X.rowwise().maxCoeff();
      O = (X.colwise() - m.array()).exp();
      const Eigen::VectorXf s = O.rowwise().sum();
      O.colwise() /= s.array();
    } else {
      auto& dev = bench::eigen_device(t);
      CTMap2 X(d.x.data(), Eigen::Index(R), Eigen::Index(C));
      TMap2 O(d.o.data(), Eigen::Index(R), Eigen::Index(C));
      const Eigen::array<Eigen::Index, 1> axis1{1};
      const Eigen::array<Eigen::Index, 2> col{Eigen::Index(R), 1}, bc{1, Eigen::Index(C)};
      tm.device(dev) = X.maximum(axis1);
      te.device(dev) = (X - tm.reshape(col).broadcast(bc)).exp();
      ts.device(dev) = te.sum(axis1);
      O.device(dev) = te / ts.reshape(col).broadcast(bc);
    }
  });
}
#endif

// ---------------------------------------------------------------------------------------------
// W4: layer norm over rows, 4096 x 1024, eps 1e-5, gamma and beta of 1024
// ---------------------------------------------------------------------------------------------
constexpr float eps = 1e-5f;

struct w4_data {
  tensor<float, S> x, o;
  tensor<float, shape<C>> g, b;
  std::vector<double> want;
  w4_data() {
    bench::fill(x.data(), R * C, 41);
    bench::fill(g.data(), C, 42);
    bench::fill(b.data(), C, 43);
    want.resize(R * C);
    for (std::size_t i = 0; i < R; ++i) {
      double mu = 0, var = 0;
      for (std::size_t j = 0; j < C; ++j) mu += x(i, j);
      mu /= double(C);
      for (std::size_t j = 0; j < C; ++j) var += (x(i, j) - mu) * (x(i, j) - mu);
      var /= double(C);
      for (std::size_t j = 0; j < C; ++j) want[i * C + j] = (x(i, j) - mu) / std::sqrt(var + eps) * g(j) + b(j);
    }
  }
};
w4_data& w4() {
  static w4_data d;
  return d;
}
const std::int64_t w4_bytes = rc_bytes + 2 * 4 * std::int64_t(C);

template <class Run>
void w4_measure(benchmark::State& st, Run run) {
  auto& d = w4();
  bench::set_threads(int(st.range(0)));
  d.o = 0.f;
  run(d, int(st.range(0)));
  if (!bench::check(st, d.o.data(), d.want, 1e-4, 1e-4)) return;
  timed(st, w4_bytes, [&] { run(d, int(st.range(0))); });
}

void w4_loom(benchmark::State& st) {
  w4_measure(st, [](w4_data& d, int) {
    auto mu = mean(d.x, axis<1>, keepdims);
    auto var = mean((d.x - mu) * (d.x - mu), axis<1>, keepdims);
    d.o = (d.x - mu) * rsqrt(var + eps) * d.g + d.b;
  });
}

void w4_handwritten(benchmark::State& st) {
  w4_measure(st, [](w4_data& d, int t) {
    const float *x = d.x.data(), *g = d.g.data(), *b = d.b.data();
    float* o = d.o.data();
#pragma omp parallel for num_threads(t) schedule(static)
    for (std::size_t r = 0; r < R; ++r) {
      const float* xr = x + r * C;
      float* orow = o + r * C;
      batch s0(0.f), s1(0.f);
      for (std::size_t j = 0; j < C; j += 2 * lanes) {
        s0 += batch::load_aligned(xr + j);
        s1 += batch::load_aligned(xr + j + lanes);
      }
      const batch mu(xsimd::hadd(s0 + s1) / float(C));
      batch v0(0.f), v1(0.f);
      for (std::size_t j = 0; j < C; j += 2 * lanes) {
        const batch a = batch::load_aligned(xr + j) - mu, c = batch::load_aligned(xr + j + lanes) - mu;
        v0 = xsimd::fma(a, a, v0);
        v1 = xsimd::fma(c, c, v1);
      }
      const batch inv(1.f / std::sqrt(xsimd::hadd(v0 + v1) / float(C) + eps));
      for (std::size_t j = 0; j < C; j += lanes)
        xsimd::fma((batch::load_aligned(xr + j) - mu) * inv, batch::load_aligned(g + j), batch::load_aligned(b + j))
            .store_aligned(orow + j);
    }
  });
}

void w4_unfused(benchmark::State& st) {
  w4_measure(st, [](w4_data& d, int) {
    auto mu = eval(mean(d.x, axis<1>, keepdims));
    auto c = eval(d.x - mu);
    auto c2 = eval(c * c);
    auto var = eval(mean(c2, axis<1>, keepdims));
    auto r = eval(rsqrt(var + eps));
    auto n = eval(c * r);
    auto ng = eval(n * d.g);
    d.o = ng + d.b;
  });
}
void w4_unfused_prealloc(benchmark::State& st) {
  static tensor<float, shape<R, 1>> mu, var, r;
  static tensor<float, S> c, c2, n, ng;
  w4_measure(st, [](w4_data& d, int) {
    mu = mean(d.x, axis<1>, keepdims);
    c = d.x - mu;
    c2 = c * c;
    var = mean(c2, axis<1>, keepdims);
    r = rsqrt(var + eps);
    n = c * r;
    ng = n * d.g;
    d.o = ng + d.b;
  });
}

#if LOOM_BENCH_HAVE_EIGEN
void w4_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  Eigen::Tensor<float, 1, Eigen::RowMajor> tmu(static_cast<Eigen::Index>(R)), tv(static_cast<Eigen::Index>(R));
  Eigen::Tensor<float, 2, Eigen::RowMajor> tc(static_cast<Eigen::Index>(R), static_cast<Eigen::Index>(C));
  w4_measure(st, [&](w4_data& d, int) {
    if (t == 1) {
      Eigen::Map<const RowArray> X(d.x.data(), R, C);
      Eigen::Map<RowArray> O(d.o.data(), R, C);
      Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> G(d.g.data(), C), B(d.b.data(), C);
      const Eigen::ArrayXf mu = X.rowwise().mean();
      O = X.colwise() - mu;
      const Eigen::ArrayXf inv = ((O * O).rowwise().mean() + eps).rsqrt();
      O.colwise() *= inv;
      O.rowwise() *= G;
      O.rowwise() += B;
    } else {
      auto& dev = bench::eigen_device(t);
      CTMap2 X(d.x.data(), Eigen::Index(R), Eigen::Index(C));
      TMap2 O(d.o.data(), Eigen::Index(R), Eigen::Index(C));
      Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor>> G(d.g.data(), 1, Eigen::Index(C)),
          B(d.b.data(), 1, Eigen::Index(C));
      const Eigen::array<Eigen::Index, 1> axis1{1};
      const Eigen::array<Eigen::Index, 2> col{Eigen::Index(R), 1}, bc{1, Eigen::Index(C)}, br{Eigen::Index(R), 1};
      tmu.device(dev) = X.mean(axis1);
      tc.device(dev) = X - tmu.reshape(col).broadcast(bc);
      tv.device(dev) = ((tc * tc).mean(axis1) + eps).rsqrt();
      O.device(dev) = tc * tv.reshape(col).broadcast(bc) * G.broadcast(br) + B.broadcast(br);
    }
  });
}
#endif

// ---------------------------------------------------------------------------------------------
// W6: the sum of 2^24 floats; column sums of 4096 x 1024
// ---------------------------------------------------------------------------------------------
constexpr std::size_t N6 = std::size_t(1) << 24;

struct w6_data {
  tensor<float, shape<N6>> v;
  tensor<float, S> x;
  tensor<float, shape<C>> cols;
  float total = 0;
  double want_total = 0;
  std::vector<double> want_cols;
  w6_data() {
    bench::fill(v.data(), N6, 61);
    bench::fill(x.data(), R * C, 62);
    for (std::size_t i = 0; i < N6; ++i) want_total += v(i);
    want_cols.assign(C, 0.0);
    for (std::size_t i = 0; i < R; ++i)
      for (std::size_t j = 0; j < C; ++j) want_cols[j] += x(i, j);
  }
};
w6_data& w6() {
  static w6_data d;
  return d;
}
const std::int64_t sum_bytes = 4 * std::int64_t(N6);
const std::int64_t cols_bytes = 4 * std::int64_t(R * C + C);

float handwritten_sum(const float* v, std::size_t n, int t) {
  float total = 0;
#pragma omp parallel num_threads(t) reduction(+ : total)
  {
    const auto [b, e] = bench::thread_piece(n, 64);
    batch a0(0.f), a1(0.f), a2(0.f), a3(0.f);
    std::size_t i = b;
    for (; i + 4 * lanes <= e; i += 4 * lanes) {
      a0 += batch::load_aligned(v + i);
      a1 += batch::load_aligned(v + i + lanes);
      a2 += batch::load_aligned(v + i + 2 * lanes);
      a3 += batch::load_aligned(v + i + 3 * lanes);
    }
    float s = xsimd::hadd((a0 + a1) + (a2 + a3));
    for (; i < e; ++i) s += v[i];
    total += s;
  }
  return total;
}

template <class Run>
void w6_sum_measure(benchmark::State& st, Run run, double rtol = 1e-5) {
  auto& d = w6();
  bench::set_threads(int(st.range(0)));
  d.total = run(d, int(st.range(0)));
  if (!(std::fabs(d.total - d.want_total) <= rtol * std::fabs(d.want_total) + 1e-2)) {
    st.SkipWithError(("wrong sum: " + std::to_string(d.total) + " vs " + std::to_string(d.want_total)).c_str());
    return;
  }
  timed(st, sum_bytes, [&] { benchmark::DoNotOptimize(d.total = run(d, int(st.range(0)))); });
}

void w6_sum_loom(benchmark::State& st) {
  w6_sum_measure(st, [](w6_data& d, int) { return eval(sum(d.v))(); });
}
void w6_sum_handwritten(benchmark::State& st) {
  w6_sum_measure(st, [](w6_data& d, int t) { return handwritten_sum(d.v.data(), N6, t); }, 1e-3);
}
// The physical limit: every byte read once, eight independent accumulators so that nothing but
// the memory waits.
float stream_read(const float* v, std::size_t n, int t) {
  float total = 0;
#pragma omp parallel num_threads(t) reduction(+ : total)
  {
    const auto [b, e] = bench::thread_piece(n, 128);
    batch a[8] = {batch(0.f), batch(0.f), batch(0.f), batch(0.f), batch(0.f), batch(0.f), batch(0.f), batch(0.f)};
    std::size_t i = b;
    for (; i + 8 * lanes <= e; i += 8 * lanes)
      for (std::size_t k = 0; k < 8; ++k) a[k] += batch::load_aligned(v + i + k * lanes);
    float s = xsimd::hadd(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
    for (; i < e; ++i) s += v[i];
    total += s;
  }
  return total;
}
void w6_sum_stream_read(benchmark::State& st) {
  w6_sum_measure(st, [](w6_data& d, int t) { return stream_read(d.v.data(), N6, t); }, 1e-3);
}
#if LOOM_BENCH_HAVE_EIGEN
void w6_sum_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  Eigen::Tensor<float, 0, Eigen::RowMajor> r;
  w6_sum_measure(st, [&](w6_data& d, int) {
    if (t == 1) return Eigen::Map<const Eigen::ArrayXf>(d.v.data(), Eigen::Index(N6)).sum();
    Eigen::TensorMap<Eigen::Tensor<const float, 1, Eigen::RowMajor>> V(d.v.data(), Eigen::Index(N6));
    r.device(bench::eigen_device(t)) = V.sum();
    return r();
  }, 1e-3);
}
#endif

template <class Run>
void w6_cols_measure(benchmark::State& st, Run run) {
  auto& d = w6();
  bench::set_threads(int(st.range(0)));
  d.cols = 0.f;
  run(d, int(st.range(0)));
  if (!bench::check(st, d.cols.data(), d.want_cols, 1e-4, 1e-3)) return;
  timed(st, cols_bytes, [&] { run(d, int(st.range(0))); });
}

void w6_cols_loom(benchmark::State& st) {
  w6_cols_measure(st, [](w6_data& d, int) { d.cols = sum(d.x, axis<0>); });
}
void w6_cols_handwritten(benchmark::State& st) {
  std::vector<float> part(2 * C);
  w6_cols_measure(st, [&](w6_data& d, int t) {
    const float* x = d.x.data();
#pragma omp parallel num_threads(t)
    {
      const std::size_t id = std::size_t(omp_get_thread_num()), nt = std::size_t(omp_get_num_threads());
      const std::size_t r0 = R * id / nt, r1 = R * (id + 1) / nt;
      alignas(64) float acc[C];
      for (std::size_t j = 0; j < C; j += lanes) batch(0.f).store_aligned(acc + j);
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t j = 0; j < C; j += lanes)
          (batch::load_aligned(acc + j) + batch::load_aligned(x + r * C + j)).store_aligned(acc + j);
      std::memcpy(part.data() + id * C, acc, sizeof acc);
    }
    for (std::size_t j = 0; j < C; ++j) d.cols(j) = t == 1 ? part[j] : part[j] + part[C + j];
  });
}
#if LOOM_BENCH_HAVE_EIGEN
void w6_cols_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  w6_cols_measure(st, [&](w6_data& d, int) {
    if (t == 1) {
      Eigen::Map<const RowArray> X(d.x.data(), R, C);
      Eigen::Map<Eigen::Array<float, 1, Eigen::Dynamic>>(d.cols.data(), C) = X.colwise().sum();
    } else {
      CTMap2 X(d.x.data(), Eigen::Index(R), Eigen::Index(C));
      Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor>> O(d.cols.data(), Eigen::Index(C));
      O.device(bench::eigen_device(t)) = X.sum(Eigen::array<Eigen::Index, 1>{0});
    }
  });
}
#endif

// ---------------------------------------------------------------------------------------------
// Transpose of 4096 x 4096 beside a streaming copy of the same bytes
// ---------------------------------------------------------------------------------------------
constexpr std::size_t T = 4096;
const std::int64_t t_bytes = 2 * 4 * std::int64_t(T * T);

struct tr_data {
  tensor<float, shape<T, T>> x, o;
  tr_data() { bench::fill(x.data(), T * T, 71); }
};
tr_data& tr() {
  static tr_data d;
  return d;
}

void transpose_loom(benchmark::State& st) {
  auto& d = tr();
  bench::set_threads(int(st.range(0)));
  d.o = transpose(d.x);
  for (std::size_t i = 0; i < T; i += 97)
    for (std::size_t j = 0; j < T; j += 89)
      if (d.o(j, i) != d.x(i, j)) {
        st.SkipWithError("transpose differs");
        return;
      }
  timed(st, t_bytes, [&] { d.o = transpose(d.x); });
}
void transpose_copy(benchmark::State& st) {
  copy_measure(st, tr().o.data(), tr().x.data(), 4 * T * T, t_bytes, bench::stream_copy);
}
void transpose_copy_nt(benchmark::State& st) {
  copy_measure(st, tr().o.data(), tr().x.data(), 4 * T * T, t_bytes, bench::nt_copy);
}

void with_stats(benchmark::internal::Benchmark* b) {
  b->Repetitions(5)->ReportAggregatesOnly(true)->DisplayAggregatesOnly(true);
}

const int registered = [] {
  with_stats(bench::add("W3_softmax/loom", w3_loom));
  with_stats(bench::add("W3_softmax/handwritten", w3_handwritten));
  with_stats(bench::add("W3_softmax/unfused", w3_unfused));
  with_stats(bench::add("W3_softmax/copy", w3_copy));
  with_stats(bench::add("W3_softmax/copy_nt", w3_copy_nt));
  with_stats(bench::add("W3_softmax/unfused_prealloc", w3_unfused_prealloc));
#if LOOM_BENCH_HAVE_EIGEN
  with_stats(bench::add("W3_softmax/eigen", w3_eigen));
#endif
  with_stats(bench::add("W4_layernorm/loom", w4_loom));
  with_stats(bench::add("W4_layernorm/handwritten", w4_handwritten));
  with_stats(bench::add("W4_layernorm/unfused", w4_unfused));
  with_stats(bench::add("W4_layernorm/unfused_prealloc", w4_unfused_prealloc));
#if LOOM_BENCH_HAVE_EIGEN
  with_stats(bench::add("W4_layernorm/eigen", w4_eigen));
#endif
  with_stats(bench::add("W6_sum/loom", w6_sum_loom));
  with_stats(bench::add("W6_sum/handwritten", w6_sum_handwritten));
  with_stats(bench::add("W6_sum/stream_read", w6_sum_stream_read));
#if LOOM_BENCH_HAVE_EIGEN
  with_stats(bench::add("W6_sum/eigen", w6_sum_eigen));
#endif
  with_stats(bench::add("W6_colsum/loom", w6_cols_loom));
  with_stats(bench::add("W6_colsum/handwritten", w6_cols_handwritten));
#if LOOM_BENCH_HAVE_EIGEN
  with_stats(bench::add("W6_colsum/eigen", w6_cols_eigen));
#endif
  with_stats(bench::add("transpose_4096/loom", transpose_loom));
  with_stats(bench::add("transpose_4096/copy", transpose_copy));
  with_stats(bench::add("transpose_4096/copy_nt", transpose_copy_nt));
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
