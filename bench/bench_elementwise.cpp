// W1, W2 and W5 of WORKLOADS.md, each beside its baselines in this one binary:
//   loom         the fused expression, as users write it
//   handwritten  one pass, xsimd, threads over contiguous pieces (OpenMP)
//   unfused      one operation at a time, each result a new array, as an eager framework runs it
//   unfused_prealloc  the same, into temporaries allocated once beforehand (its best case)
//   eigen        Eigen's Array expression (1 thread) and Tensor expression on a ThreadPoolDevice
//   copy         a streaming copy of the same number of bytes (the physical limit)
// and, for W2, two references that say what limits its 2-thread figure (see w2_plain_store).
// Every output is checked against a float64 reference before it is timed.
#include "common.hpp"

#include <xsimd/xsimd.hpp>

using namespace loom;

namespace {

using batch = xsimd::batch<float>;
constexpr std::size_t lanes = batch::size;

// Splits [0, n) into t pieces aligned to 16 floats and runs f(begin, end) on each, in parallel.
template <class F>
void omp_pieces(std::size_t n, int t, F f) {
#pragma omp parallel num_threads(t)
  {
    const auto [b, e] = bench::thread_piece(n, 16);
    f(b, e);
  }
}

// Runs run(d) once into a zeroed d.o, checks d.o against d.want (rtol, atol), then times it;
// `bytes`: read plus written per run.
template <class D, class Run>
void measure(benchmark::State& st, D& d, Run run, double rtol, double atol, std::int64_t bytes) {
  bench::set_threads(int(st.range(0)));
  d.o = 0.f;
  run(d);
  if (!bench::check(st, d.o.data(), d.want, rtol, atol)) return;
  for (auto _ : st) {
    run(d);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * bytes);
}

// ---------------------------------------------------------------------------------------------
// W1: o = 2x + 3y + 4z, N = 2^24
// ---------------------------------------------------------------------------------------------
constexpr std::size_t N1 = std::size_t(1) << 24;
using S1 = shape<N1>;

struct w1_data {
  tensor<float, S1> x, y, z, o, t1, t2, t3, t4;
  std::vector<double> want;
  bench::aligned_array<float> src{2 * N1}, dst{2 * N1};
  w1_data() {
    bench::fill(x.data(), N1, 1);
    bench::fill(y.data(), N1, 2);
    bench::fill(z.data(), N1, 3);
    want.resize(N1);
    for (std::size_t i = 0; i < N1; ++i) want[i] = 2.0 * x(i) + 3.0 * y(i) + 4.0 * z(i);
    bench::fill(src.data(), 2 * N1, 4);
  }
};
w1_data& w1() {
  static w1_data d;
  return d;
}
const std::int64_t w1_bytes = 16 * std::int64_t(N1);  // 3 arrays read, 1 written

template <class Run>
void w1_measure(benchmark::State& st, Run run) {
  measure(st, w1(), run, 1e-6, 1e-6, w1_bytes);
}

void w1_loom(benchmark::State& st) {
  w1_measure(st, [](w1_data& d) { d.o = 2.f * d.x + 3.f * d.y + 4.f * d.z; });
}

void w1_handwritten_run(w1_data& d, int t) {
  const float *x = d.x.data(), *y = d.y.data(), *z = d.z.data();
  float* o = d.o.data();
  omp_pieces(N1, t, [&](std::size_t b, std::size_t e) {
    const batch c2(2.f), c3(3.f), c4(4.f);
    std::size_t i = b;
    for (; i + lanes <= e; i += lanes) {
      batch r = c2 * batch::load_aligned(x + i) + c3 * batch::load_aligned(y + i) + c4 * batch::load_aligned(z + i);
      r.store_aligned(o + i);
    }
    for (; i < e; ++i) o[i] = 2.f * x[i] + 3.f * y[i] + 4.f * z[i];
  });
}
void w1_handwritten(benchmark::State& st) {
  auto& d = w1();
  const int t = int(st.range(0));
  bench::set_threads(t);
  d.o = 0.f;
  w1_handwritten_run(d, t);
  if (!bench::check(st, d.o.data(), d.want, 1e-6, 1e-6)) return;
  for (auto _ : st) {
    w1_handwritten_run(d, t);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * w1_bytes);
}

void w1_unfused(benchmark::State& st) {
  w1_measure(st, [](w1_data& d) {
    auto t1 = eval(2.f * d.x);
    auto t2 = eval(3.f * d.y);
    auto t3 = eval(t1 + t2);
    auto t4 = eval(4.f * d.z);
    d.o = t3 + t4;
  });
}
void w1_unfused_prealloc(benchmark::State& st) {
  w1_measure(st, [](w1_data& d) {
    d.t1 = 2.f * d.x;
    d.t2 = 3.f * d.y;
    d.t3 = d.t1 + d.t2;
    d.t4 = 4.f * d.z;
    d.o = d.t3 + d.t4;
  });
}

#if LOOM_BENCH_HAVE_EIGEN
void w1_eigen(benchmark::State& st) {
  auto& d = w1();
  const int t = int(st.range(0));
  bench::set_threads(t);
  d.o = 0.f;
  using TM = Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor>>;
  using CTM = Eigen::TensorMap<const Eigen::Tensor<const float, 1, Eigen::RowMajor>>;
  Eigen::Map<const Eigen::ArrayXf> X(d.x.data(), N1), Y(d.y.data(), N1), Z(d.z.data(), N1);
  Eigen::Map<Eigen::ArrayXf> O(d.o.data(), N1);
  CTM tx(d.x.data(), N1), ty(d.y.data(), N1), tz(d.z.data(), N1);
  TM to(d.o.data(), N1);
  auto run = [&] {
    if (t == 1)
      O = 2.f * X + 3.f * Y + 4.f * Z;  // Eigen's Array expressions run on one thread
    else
      to.device(bench::eigen_device(t)) = 2.f * tx + 3.f * ty + 4.f * tz;
  };
  run();
  if (!bench::check(st, d.o.data(), d.want, 1e-6, 1e-6)) return;
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * w1_bytes);
}
#endif

void w1_copy(benchmark::State& st) {
  auto& d = w1();
  const int t = int(st.range(0));
  bench::set_threads(t);
  for (auto _ : st) {
    bench::stream_copy(d.dst.data(), d.src.data(), 8 * N1, t);  // reads 8N and writes 8N bytes: 16N
    benchmark::ClobberMemory();
  }
  if (std::memcmp(d.dst.data(), d.src.data(), 8 * N1) != 0) st.SkipWithError("copy differs");
  st.SetBytesProcessed(st.iterations() * w1_bytes);
}

// ---------------------------------------------------------------------------------------------
// W2: GELU, tanh form: 0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3))), N = 2^24
// ---------------------------------------------------------------------------------------------
constexpr std::size_t N2 = std::size_t(1) << 24;
using S2 = shape<N2>;
constexpr float k0 = 0.7978845608f, k1 = 0.044715f;
double gelu_tanh_ref(double v) { return 0.5 * v * (1 + std::tanh(0.7978845608 * (v + 0.044715 * v * v * v))); }

// The hand-written W2: one pass, xsimd, threads over contiguous pieces.
void w2_hand(const float* x, float* o, std::size_t n, int t) {
  omp_pieces(n, t, [&](std::size_t b, std::size_t e) {
    const batch half(0.5f), one(1.f), c0(k0), c1(k1);
    std::size_t i = b;
    for (; i + lanes <= e; i += lanes) {
      batch v = batch::load_aligned(x + i);
      (half * v * (one + xsimd::tanh(c0 * (v + c1 * v * v * v)))).store_aligned(o + i);
    }
    for (; i < e; ++i) o[i] = 0.5f * x[i] * (1.f + std::tanh(k0 * (x[i] + k1 * x[i] * x[i] * x[i])));
  });
}

struct w2_data {
  tensor<float, S2> x, o, a, b, c, e, f, g, h;
  std::vector<double> want;
  bench::aligned_array<float> src{N2}, dst{N2};
  w2_data() {
    bench::fill(x.data(), N2, 5);
    want.resize(N2);
    for (std::size_t i = 0; i < N2; ++i) want[i] = gelu_tanh_ref(x(i));
    bench::fill(src.data(), N2, 6);
  }
};
w2_data& w2() {
  static w2_data d;
  return d;
}
const std::int64_t w2_bytes = 8 * std::int64_t(N2);

template <class Run>
void w2_measure(benchmark::State& st, Run run) {
  measure(st, w2(), run, 2e-6, 1e-6, w2_bytes);
}

void w2_loom(benchmark::State& st) {
  w2_measure(st, [](w2_data& d) { d.o = 0.5f * d.x * (1.f + tanh(k0 * (d.x + k1 * d.x * d.x * d.x))); });
}
void w2_loom_gelu(benchmark::State& st) {
  w2_measure(st, [](w2_data& d) { d.o = gelu(d.x); });
}
void w2_handwritten(benchmark::State& st) {
  const int t = int(st.range(0));
  w2_measure(st, [t](w2_data& d) { w2_hand(d.x.data(), d.o.data(), N2, t); });
}
void w2_unfused(benchmark::State& st) {
  w2_measure(st, [](w2_data& d) {
    auto a = eval(d.x * d.x);
    auto b = eval(a * d.x);
    auto c = eval(k1 * b);
    auto e = eval(d.x + c);
    auto f = eval(k0 * e);
    auto g = eval(tanh(f));
    auto h = eval(1.f + g);
    auto q = eval(0.5f * d.x);
    d.o = q * h;
  });
}
void w2_unfused_prealloc(benchmark::State& st) {
  w2_measure(st, [](w2_data& d) {
    d.a = d.x * d.x;      // x^2
    d.b = d.a * d.x;      // x^3
    d.c = k1 * d.b;       // 0.044715 x^3
    d.e = d.x + d.c;      // x + ...
    d.f = k0 * d.e;       // u
    d.g = tanh(d.f);      // tanh(u)
    d.h = 1.f + d.g;      // 1 + tanh(u)
    d.a = 0.5f * d.x;     // 0.5 x
    d.o = d.a * d.h;
  });
}
#if LOOM_BENCH_HAVE_EIGEN
void w2_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  w2_measure(st, [t](w2_data& d) {
    if (t == 1) {
      Eigen::Map<const Eigen::ArrayXf> X(d.x.data(), N2);
      Eigen::Map<Eigen::ArrayXf> O(d.o.data(), N2);
      O = 0.5f * X * (1.f + (k0 * (X + k1 * X.cube())).tanh());
    } else {
      Eigen::TensorMap<const Eigen::Tensor<const float, 1, Eigen::RowMajor>> X(d.x.data(), N2);
      Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor>> O(d.o.data(), N2);
      O.device(bench::eigen_device(t)) = 0.5f * X * (1.f + (k0 * (X + k1 * X * X * X)).tanh());
    }
  });
}
#endif
void w2_copy(benchmark::State& st) {
  auto& d = w2();
  const int t = int(st.range(0));
  bench::set_threads(t);
  for (auto _ : st) {
    bench::stream_copy(d.dst.data(), d.src.data(), 4 * N2, t);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * w2_bytes);
}

// What limits W2's 2-thread figure on a given machine, in the same binary:
//   plain_store  a hand-written pass that only halves x, with ordinary stores as loom's W2 has
//                (x read, o's lines read for ownership and written back): the memory traffic of
//                W2 with no arithmetic, so its 2-thread scaling is what memory allows W2
//   W2_l2/*      W2 over 2^18 floats (1 MiB in and out, each thread's half in its own L2),
//                repeated: the arithmetic with memory out of the way, so its 2-thread scaling is
//                that of the thread pool and the cores
void w2_plain_store(benchmark::State& st) {
  auto& d = w2();
  const int t = int(st.range(0));
  bench::set_threads(t);
  auto run = [&] {
    const float* x = d.x.data();
    float* o = d.o.data();
    omp_pieces(N2, t, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; i += lanes) (batch::load_aligned(x + i) * batch(0.5f)).store_aligned(o + i);
    });
  };
  run();
  for (std::size_t i = 0; i < N2; i += 4099)
    if (d.o(i) != 0.5f * d.x(i)) {
      st.SkipWithError("plain_store differs");
      return;
    }
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * w2_bytes);
}

constexpr std::size_t N2s = std::size_t(1) << 18;
struct w2s_data {
  tensor<float, shape<N2s>> x, o;
  std::vector<double> want;
  w2s_data() {
    bench::fill(x.data(), N2s, 7);
    want.resize(N2s);
    for (std::size_t i = 0; i < N2s; ++i) want[i] = gelu_tanh_ref(x(i));
  }
};
template <class Run>
void w2s_measure(benchmark::State& st, Run run) {
  static w2s_data d;
  measure(st, d, run, 2e-6, 1e-6, 8 * std::int64_t(N2s));
}
void w2s_loom(benchmark::State& st) {
  w2s_measure(st, [](w2s_data& d) { d.o = 0.5f * d.x * (1.f + tanh(k0 * (d.x + k1 * d.x * d.x * d.x))); });
}
void w2s_handwritten(benchmark::State& st) {
  const int t = int(st.range(0));
  w2s_measure(st, [t](w2s_data& d) { w2_hand(d.x.data(), d.o.data(), N2s, t); });
}

// ---------------------------------------------------------------------------------------------
// W5: relu(X + bias), X 4096 x 1024, bias of 1024 broadcast over rows
// ---------------------------------------------------------------------------------------------
constexpr std::size_t R5 = 4096, C5 = 1024;
using S5 = shape<R5, C5>;

struct w5_data {
  tensor<float, S5> x, o, t;
  tensor<float, shape<C5>> bias;
  std::vector<double> want;
  bench::aligned_array<float> src{R5 * C5}, dst{R5 * C5};
  w5_data() {
    bench::fill(x.data(), R5 * C5, 7);
    bench::fill(bias.data(), C5, 8);
    want.resize(R5 * C5);
    for (std::size_t i = 0; i < R5; ++i)
      for (std::size_t j = 0; j < C5; ++j) want[i * C5 + j] = std::max(0.0, double(x(i, j)) + double(bias(j)));
    bench::fill(src.data(), R5 * C5, 9);
  }
};
w5_data& w5() {
  static w5_data d;
  return d;
}
const std::int64_t w5_bytes = 8 * std::int64_t(R5 * C5) + 4 * std::int64_t(C5);

template <class Run>
void w5_measure(benchmark::State& st, Run run) {
  measure(st, w5(), run, 1e-6, 0, w5_bytes);
}
void w5_loom(benchmark::State& st) {
  w5_measure(st, [](w5_data& d) { d.o = relu(d.x + d.bias); });
}
void w5_handwritten(benchmark::State& st) {
  const int t = int(st.range(0));
  w5_measure(st, [t](w5_data& d) {
    const float *x = d.x.data(), *b = d.bias.data();
    float* o = d.o.data();
#pragma omp parallel for num_threads(t) schedule(static)
    for (std::size_t i = 0; i < R5; ++i) {
      const float* xr = x + i * C5;
      float* orow = o + i * C5;
      const batch zero(0.f);
      for (std::size_t j = 0; j < C5; j += lanes)
        xsimd::max(batch::load_aligned(xr + j) + batch::load_aligned(b + j), zero).store_aligned(orow + j);
    }
  });
}
void w5_unfused(benchmark::State& st) {
  w5_measure(st, [](w5_data& d) {
    auto t = eval(d.x + d.bias);
    d.o = relu(t);
  });
}
void w5_unfused_prealloc(benchmark::State& st) {
  w5_measure(st, [](w5_data& d) {
    d.t = d.x + d.bias;
    d.o = relu(d.t);
  });
}
#if LOOM_BENCH_HAVE_EIGEN
void w5_eigen(benchmark::State& st) {
  const int t = int(st.range(0));
  w5_measure(st, [t](w5_data& d) {
    if (t == 1) {
      using A = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<const A> X(d.x.data(), R5, C5);
      Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> B(d.bias.data(), C5);
      Eigen::Map<A> O(d.o.data(), R5, C5);
      O = (X.rowwise() + B).max(0.f);
    } else {
      Eigen::TensorMap<const Eigen::Tensor<const float, 2, Eigen::RowMajor>> X(d.x.data(), R5, C5);
      Eigen::TensorMap<const Eigen::Tensor<const float, 2, Eigen::RowMajor>> B(d.bias.data(), 1, C5);
      Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor>> O(d.o.data(), R5, C5);
      Eigen::array<Eigen::Index, 2> rep{Eigen::Index(R5), 1};
      O.device(bench::eigen_device(t)) = (X + B.broadcast(rep)).cwiseMax(0.f);
    }
  });
}
#endif
void w5_copy(benchmark::State& st) {
  auto& d = w5();
  const int t = int(st.range(0));
  bench::set_threads(t);
  for (auto _ : st) {
    bench::stream_copy(d.dst.data(), d.src.data(), 4 * R5 * C5, t);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * w5_bytes);
}

const bool registered = [] {
  bench::add("W1/loom", w1_loom);
  bench::add("W1/handwritten", w1_handwritten);
  bench::add("W1/unfused", w1_unfused);
  bench::add("W1/unfused_prealloc", w1_unfused_prealloc);
#if LOOM_BENCH_HAVE_EIGEN
  bench::add("W1/eigen", w1_eigen);
#endif
  bench::add("W1/copy", w1_copy);
  bench::add("W2/loom", w2_loom);
  bench::add("W2/loom_gelu", w2_loom_gelu);
  bench::add("W2/handwritten", w2_handwritten);
  bench::add("W2/unfused", w2_unfused);
  bench::add("W2/unfused_prealloc", w2_unfused_prealloc);
#if LOOM_BENCH_HAVE_EIGEN
  bench::add("W2/eigen", w2_eigen);
#endif
  bench::add("W2/copy", w2_copy);
  bench::add("W2/plain_store", w2_plain_store);
  bench::add("W2_l2/loom", w2s_loom);
  bench::add("W2_l2/handwritten", w2s_handwritten);
  bench::add("W5/loom", w5_loom);
  bench::add("W5/handwritten", w5_handwritten);
  bench::add("W5/unfused", w5_unfused);
  bench::add("W5/unfused_prealloc", w5_unfused_prealloc);
#if LOOM_BENCH_HAVE_EIGEN
  bench::add("W5/eigen", w5_eigen);
#endif
  bench::add("W5/copy", w5_copy);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
