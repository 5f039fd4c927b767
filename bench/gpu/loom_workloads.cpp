// loom's own W3, W4, W6, W7, W8 and W9 on the GPU, at the GPU sizes of WORKLOADS.md: one workload
// per build (-DLOOM_W=3, 4, 61 = W6 sum, 62 = W6 column sums, 7, 8 or 9), so that
// bench/gpu/run.sh can tell, workload by workload, whether loom generates it yet:
//
//   * the program does not compile: not generated;
//   * it compiles but the assignment throws loom::cuda_error "no kernel generator yet" (reductions
//     today): not generated; it prints "status: not generated yet" and exits 0;
//   * otherwise the result is checked on a sample of rows against a float64 host reference
//     (||out - ref|| / ||ref||) and, if right, timed (median of CUDA-event-timed runs).
//
// Only the public spellings of DESIGN.md are used, so the day the CUDA backend generates these
// kernels the script picks them up with no change here. Writes JSON to argv[1]; --small runs tiny
// sizes (a quick check of the program itself).
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#ifndef LOOM_W
#error "build with -DLOOM_W=3, 4, 61 (W6 sum), 62 (W6 column sums), 7, 8 or 9"
#endif

using namespace loom;

namespace {

struct result {
  std::string workload, status = "ok", variant = "loom";
  double ms = 0, gbps = 0, tflops = 0, err = 0;
};
std::vector<result> results;

template <class F>
double time_ms(F&& f, int reps) {
  for (int i = 0; i < 3; ++i) f();
  cuda::synchronize();
  std::vector<double> t;
  cuda::event a(true), b(true);
  for (int i = 0; i < reps; ++i) {
    a.record(cuda::default_stream());
    f();
    b.record(cuda::default_stream());
    b.synchronize();
    t.push_back(elapsed_ms(a, b));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Host values uniform in [-1, 1) times scale, never zero.
std::vector<float> uniform(std::size_t n, std::uint64_t seed, float scale = 1.f) {
  std::vector<float> h(n);
  std::uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& v : h) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(static_cast<double>(s >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    v = (u == 0.f ? 0.5f : u) * scale;
  }
  return h;
}

template <class S>
cuda::tensor<float, S> upload(const std::vector<float>& h, const S& s) {
  cuda::tensor<float, S> d(s);
  cuda::copy(d, view(h.data(), s));
  return d;
}

/// The device tensor's values, on the host.
template <class D>
std::vector<float> download(const D& d) {
  const std::size_t n = static_cast<std::size_t>(d.size());
  std::vector<float> h(n);
  auto dst = view(h.data(), shape<dyn>{n});
  cuda::copy(dst, cuda::view(d.data(), shape<dyn>{n}));
  cuda::synchronize();
  return h;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

/// Runs the first assignment; false (and "not generated yet") where loom has no kernel for it.
template <class F>
bool first_run(result& r, F&& f) {
  try {
    f();
    cuda::synchronize();
    return true;
  } catch (const cuda_error& e) {
    const std::string what = e.what();
    if (what.find("no kernel generator") == std::string::npos) throw;
    r.status = "not generated yet";
    std::printf("%s: not generated yet (%.160s)\n", r.workload.c_str(), what.c_str());
    return false;
  }
}

void finish(result& r, double tol, double ms_or_neg, double bytes, double flops) {
  if (r.status == "ok" && !(r.err <= tol)) r.status = "wrong result";
  if (r.status == "ok") {
    r.ms = ms_or_neg;
    r.gbps = bytes > 0 ? bytes / r.ms / 1e6 : 0;
    r.tflops = flops > 0 ? flops / r.ms / 1e9 : 0;
    std::printf("%-9s loom %9.3f ms %8.1f GB/s %7.1f TFLOP/s err %.2e\n", r.workload.c_str(), r.ms, r.gbps, r.tflops,
                r.err);
  } else {
    std::printf("%-9s loom: %s (err %.2e)\n", r.workload.c_str(), r.status.c_str(), r.err);
  }
  results.push_back(r);
}

std::vector<std::size_t> sample_rows(std::size_t n, std::size_t k) {
  std::vector<std::size_t> v;
  for (std::size_t i = 0; i < k; ++i) v.push_back(i * (n - 1) / (k - 1));
  return v;
}

double gelu_ref(double h) { return 0.5 * h * (1 + std::tanh(0.7978845608028654 * (h + 0.044715 * h * h * h))); }

void layernorm_ref(const float* x, const std::vector<float>& g, const std::vector<float>& b, std::size_t c, double* o) {
  double m = 0, v = 0;
  for (std::size_t j = 0; j < c; ++j) m += x[j];
  m /= c;
  for (std::size_t j = 0; j < c; ++j) v += (x[j] - m) * (x[j] - m);
  const double rs = 1 / std::sqrt(v / c + 1e-5);
  for (std::size_t j = 0; j < c; ++j) o[j] = (x[j] - m) * rs * g[j] + b[j];
}

using M = shape<dyn, dyn>;
using V = shape<dyn>;

}  // namespace

int main(int argc, char** argv) {
  const char* json = nullptr;
  bool small = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--small") == 0)
      small = true;
    else
      json = argv[i];
  }
  if (!cuda::available()) {
    std::printf("no CUDA device: %s\n", cuda::unavailable_reason().c_str());
    return 3;
  }
  const std::size_t R = small ? 256 : 16384, C = small ? 1024 : 4096, N = small ? (1u << 20) : (std::size_t(1) << 28);
  const std::size_t G = small ? 256 : 8192;
  const auto rows = sample_rows(R, 16);
  (void)rows;
  (void)N;
  (void)G;

#if LOOM_W == 3 || LOOM_W == 4
  {
    const auto xh = uniform(R * C, 31), gh = uniform(C, 32), bh = uniform(C, 33);
    auto x = upload(xh, M{R, C});
    auto g = upload(gh, V{C});
    auto b = upload(bh, V{C});
    cuda::tensor<float, M> o(R, C);
    o = x * std::numeric_limits<float>::quiet_NaN();  // poisoned: every element must be written
#if LOOM_W == 3
    result r{"W3"};
    auto e = exp(x - max(x, axis<1>, keepdims));
    auto run = [&] { o = e / sum(e, axis<1>, keepdims); };
#else
    result r{"W4"};
    auto xc = x - mean(x, axis<1>, keepdims);
    auto run = [&] { o = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + 1e-5f) * g + b; };
#endif
    if (first_run(r, run)) {
      const auto oh = download(o);
      std::vector<float> got;
      std::vector<double> want, w(C);
      for (std::size_t i : rows) {
        const float* xr = xh.data() + i * C;
#if LOOM_W == 3
        double m = -INFINITY, s = 0;
        for (std::size_t j = 0; j < C; ++j) m = std::max(m, double(xr[j]));
        for (std::size_t j = 0; j < C; ++j) s += (w[j] = std::exp(xr[j] - m));
        for (std::size_t j = 0; j < C; ++j) w[j] /= s;
#else
        layernorm_ref(xr, gh, bh, C, w.data());
#endif
        got.insert(got.end(), oh.begin() + i * C, oh.begin() + (i + 1) * C);
        want.insert(want.end(), w.begin(), w.end());
      }
      r.err = rel_err(got, want);
      finish(r, 1e-5, r.err <= 1e-5 ? time_ms(run, 20) : 0, 2.0 * R * C * 4, 0);
    } else {
      finish(r, 0, 0, 0, 0);
    }
  }
#elif LOOM_W == 61
  {
    result r{"W6/sum"};
    const auto xh = uniform(N, 41);
    auto x = upload(xh, V{N});
    cuda::tensor<float, shape<>> s;
    auto run = [&] { s = sum(x); };
    if (first_run(r, run)) {
      double want = 0, mag = 0;
      for (float v : xh) want += v, mag += std::fabs(v);
      const float got = download(s)[0];
      r.err = std::isfinite(got) ? std::fabs(got - want) / mag : INFINITY;
      finish(r, 1e-6, r.err <= 1e-6 ? time_ms(run, 20) : 0, N * 4.0, 0);
    } else {
      finish(r, 0, 0, 0, 0);
    }
  }
#elif LOOM_W == 62
  {
    result r{"W6/colsum"};
    const auto xh = uniform(R * C, 42);
    auto x = upload(xh, M{R, C});
    cuda::tensor<float, V> o(C);
    auto run = [&] { o = sum(x, axis<0>); };
    if (first_run(r, run)) {
      std::vector<double> want(C, 0.0), mag(C, 0.0);
      for (std::size_t i = 0; i < R; ++i)
        for (std::size_t j = 0; j < C; ++j) want[j] += xh[i * C + j], mag[j] += std::fabs(xh[i * C + j]);
      const auto oh = download(o);
      for (std::size_t j = 0; j < C; ++j)
        r.err = std::max(r.err, std::isfinite(oh[j]) ? std::fabs(oh[j] - want[j]) / mag[j] : INFINITY);
      finish(r, 1e-6, r.err <= 1e-6 ? time_ms(run, 20) : 0, (R * C + C) * 4.0, 0);
    } else {
      finish(r, 0, 0, 0, 0);
    }
  }
#elif LOOM_W == 7 || LOOM_W == 8
  for (bool tf32 : {false, true}) {
    result r{LOOM_W == 7 ? "W7" : "W8"};
    r.variant = tf32 ? "loom (TF32)" : "loom (float32)";
    const auto ah = uniform(G * G, 51), wh = uniform(G * G, 52), bh = uniform(G, 53);
    auto a = upload(ah, M{G, G});
    auto w = upload(wh, M{G, G});
    auto bias = upload(bh, V{G});
    cuda::tensor<float, M> o(G, G);
    cuda::options opt;
    opt.tf32 = tf32;
#if LOOM_W == 7
    auto run = [&] { o.assign(matmul(a, w), cuda::default_stream(), opt); };
#else
    auto run = [&] { o.assign(gelu(matmul(a, w) + bias), cuda::default_stream(), opt); };
#endif
    if (first_run(r, run)) {
      const auto oh = download(o);
      std::vector<float> got;
      std::vector<double> want;
      for (std::size_t i : sample_rows(G, 4)) {
        std::vector<double> acc(G, 0.0);
        for (std::size_t k = 0; k < G; ++k)
          for (std::size_t j = 0; j < G; ++j) acc[j] += double(ah[i * G + k]) * wh[k * G + j];
        for (std::size_t j = 0; j < G; ++j) want.push_back(LOOM_W == 7 ? acc[j] : gelu_ref(acc[j] + bh[j]));
        got.insert(got.end(), oh.begin() + i * G, oh.begin() + (i + 1) * G);
      }
      r.err = rel_err(got, want);
      // float32 products land far under 1e-4; TF32 near 3e-4 (reported, not failed, below 5e-3).
      finish(r, 5e-3, r.err <= 5e-3 ? time_ms(run, 10) : 0, 0, 2.0 * G * G * G);
    } else {
      finish(r, 0, 0, 0, 0);
    }
  }
#elif LOOM_W == 9
  {
    result r{"W9"};
    const std::size_t T = small ? 256 : 8192, D = small ? 256 : 4096, H = 4 * D;
    const auto xh = uniform(T * D, 61), gh = uniform(D, 62), bh = uniform(D, 63);
    const auto w1h = uniform(D * H, 64, 1.f / std::sqrt(float(D))), b1h = uniform(H, 65);
    const auto w2h = uniform(H * D, 66, 1.f / std::sqrt(float(H))), b2h = uniform(D, 67);
    auto x = upload(xh, M{T, D});
    auto gamma = upload(gh, V{D});
    auto beta = upload(bh, V{D});
    auto w1 = upload(w1h, M{D, H});
    auto b1 = upload(b1h, V{H});
    auto w2 = upload(w2h, M{H, D});
    auto b2 = upload(b2h, V{D});
    cuda::tensor<float, M> o(T, D);
    auto xc = x - mean(x, axis<1>, keepdims);
    auto ln = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + 1e-5f) * gamma + beta;
    auto run = [&] { o = x + (matmul(gelu(matmul(ln, w1) + b1), w2) + b2); };
    if (first_run(r, run)) {
      const auto oh = download(o);
      std::vector<float> got;
      std::vector<double> want;
      for (std::size_t t : sample_rows(T, 4)) {
        std::vector<double> l(D), a(H, 0.0), y(D, 0.0);
        layernorm_ref(xh.data() + t * D, gh, bh, D, l.data());
        for (std::size_t k = 0; k < D; ++k)
          for (std::size_t j = 0; j < H; ++j) a[j] += l[k] * w1h[k * H + j];
        for (std::size_t j = 0; j < H; ++j) a[j] = gelu_ref(a[j] + b1h[j]);
        for (std::size_t k = 0; k < H; ++k)
          for (std::size_t j = 0; j < D; ++j) y[j] += a[k] * w2h[k * D + j];
        for (std::size_t j = 0; j < D; ++j) want.push_back(xh[t * D + j] + y[j] + b2h[j]);
        got.insert(got.end(), oh.begin() + t * D, oh.begin() + (t + 1) * D);
      }
      r.err = rel_err(got, want);
      finish(r, 5e-3, r.err <= 5e-3 ? time_ms(run, 10) : 0, 0, 4.0 * T * D * H);
    } else {
      finish(r, 0, 0, 0, 0);
    }
  }
#else
#error "LOOM_W must be 3, 4, 61, 62, 7, 8 or 9"
#endif

  if (json != nullptr) {
    FILE* f = std::fopen(json, "w");
    if (f == nullptr) return 2;
    std::fprintf(f, "{\"device\": \"%s\", \"small\": %s, \"rows\": [\n", cuda::device_info().name.c_str(),
                 small ? "true" : "false");
    for (std::size_t i = 0; i < results.size(); ++i) {
      const result& r = results[i];
      std::fprintf(f,
                   "  {\"workload\": \"%s\", \"variant\": \"%s\", \"status\": \"%s\", \"ms\": %.5f, \"gbps\": %.2f, "
                   "\"tflops\": %.3f, \"err\": %.3e}%s\n",
                   r.workload.c_str(), r.variant.c_str(), r.status.c_str(), r.ms, r.gbps, r.tflops, std::isfinite(r.err) ? r.err : 1e300,
                   i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return 0;
}
