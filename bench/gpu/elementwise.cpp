// GPU benchmark of loom's generated elementwise kernels: W1, W2 and W5 of WORKLOADS.md at their
// GPU sizes, each beside the device-to-device copy of the same bytes (the physical limit) and a
// hand-written CUDA kernel (compiled by NVRTC, like loom's, so the comparison is of the code),
// with loom's default kernels (extents passed at run time) and with extents baked in (the
// policy to be chosen from these numbers). Then the JIT's costs: the first call of a new
// expression type (NVRTC + load), a disk-cache hit (a fresh module cache over the same
// directory), and the dispatch overhead of a cached assignment against a raw cuLaunchKernel.
//
// Built and run by bench/gpu/run.sh (stage "elementwise"). Prints a table; writes JSON to argv[1] if
// given, with the JIT's costs under "jit".
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace loom;
namespace rt = loom::cuda::runtime;

namespace {

struct row {
  std::string workload, variant;
  double ms = 0, gbps = 0, ratio_copy = 0;
};
std::vector<row> rows;
double jit_first_ms = -1, jit_disk_ms = -1, raw_launch_us = -1, loom_launch_us = -1;  // for the JSON

/// Median milliseconds of `reps` runs of f on loom's default stream (after 3 warm-up runs).
template <class F>
double time_ms(F&& f, int reps = 20) {
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

void report(const std::string& w, const std::string& v, double ms, double bytes, double copy_ms) {
  row r{w, v, ms, bytes / ms / 1e6, copy_ms / ms};
  std::printf("%-4s %-26s %9.3f ms %8.1f GB/s %6.2fx copy\n", w.c_str(), v.c_str(), r.ms, r.gbps, r.ratio_copy);
  rows.push_back(r);
}

/// A device tensor of n values drawn uniformly from [-1, 1] without zeros (a fast LCG on the host).
template <class S>
cuda::tensor<float, S> random_tensor(const S& shape, std::uint64_t seed) {
  tensor<float, S> h(shape);
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < h.size(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float v = static_cast<float>(static_cast<double>(state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    h.data()[i] = v == 0.f ? 0.5f : v;
  }
  cuda::tensor<float, S> d(shape);
  cuda::copy(d, h);
  return d;
}

/// Checks a result against a host formula on its first 4096 elements (before any timing).
template <class S, class F>
void spot_check(const char* what, const cuda::tensor<float, S>& out, F&& want) {
  const std::size_t n = std::min<std::size_t>(4096, out.size());
  tensor<float, shape<dyn>> h(n);
  cuda::copy(h, cuda::view(out.data(), shape<dyn>{n}));
  for (std::size_t i = 0; i < n; ++i) {
    const double w = want(i);
    if (std::abs(h(i) - w) > 1e-5 * std::abs(w) + 1e-6) {
      std::printf("%s: element %zu is %g, want %g\n", what, i, double(h(i)), w);
      std::exit(1);
    }
  }
}

/// A device-to-device copy of `bytes` (read + write = 2 * bytes moved).
double copy_ms(std::size_t bytes) {
  cuda::detail::device_buffer a(bytes), b(bytes);
  return time_ms([&] { rt::copy_on_device_async(b.address(), a.address(), bytes, cuda::default_stream()); });
}

const char* const hand_written = R"(
extern "C" __global__ void __launch_bounds__(256) w1(const float4* x, const float4* y, const float4* z, float4* o, long long n4) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
    const float4 a = x[i], b = y[i], c = z[i];
    o[i] = make_float4(2.f * a.x + 3.f * b.x + 4.f * c.x, 2.f * a.y + 3.f * b.y + 4.f * c.y,
                       2.f * a.z + 3.f * b.z + 4.f * c.z, 2.f * a.w + 3.f * b.w + 4.f * c.w);
  }
}
__device__ __forceinline__ float gelu1(float x) { return 0.5f * x * (1.f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))); }
extern "C" __global__ void __launch_bounds__(256) w2(const float4* x, float4* o, long long n4) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
    const float4 a = x[i];
    o[i] = make_float4(gelu1(a.x), gelu1(a.y), gelu1(a.z), gelu1(a.w));
  }
}
extern "C" __global__ void __launch_bounds__(256) w5(const float4* x, const float4* bias, float4* o, long long rows, long long cols4) {
  const long long n4 = rows * cols4;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
    const float4 a = x[i], b = bias[i % cols4];
    o[i] = make_float4(fmaxf(a.x + b.x, 0.f), fmaxf(a.y + b.y, 0.f), fmaxf(a.z + b.z, 0.f), fmaxf(a.w + b.w, 0.f));
  }
}
extern "C" __global__ void __launch_bounds__(256) trig(const float4* x, const float4* y, float4* o, long long n4) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
    const float4 a = x[i], b = y[i];
    o[i] = make_float4(sinf(a.x) * 1.25f + cosf(b.x) - 0.5f, sinf(a.y) * 1.25f + cosf(b.y) - 0.5f,
                       sinf(a.z) * 1.25f + cosf(b.z) - 0.5f, sinf(a.w) * 1.25f + cosf(b.w) - 0.5f);
  }
}
extern "C" __global__ void tiny(float* o) { o[0] = 1.f; }
)";

const cuda::kernel_handle& hand(const char* name) {
  return rt::module_cache::process().kernel(hand_written, name, {"w1", "w2", "w5", "trig", "tiny"}, {});
}

unsigned blocks_for(long long items) {
  const auto& p = cuda::device_info();
  return static_cast<unsigned>(std::clamp<long long>((items + 255) / 256, 1, p.sm_count * (p.max_threads_per_sm / 256)));
}

template <class Dst, class E>
void both_policies(const char* w, Dst& dst, const E& e, double bytes, double copy) {
  report(w, "loom (extents at run time)", time_ms([&] { dst = e; }), bytes, copy);
  const cuda::options baked{.arch = {}, .bake_extents = true};
  report(w, "loom (extents baked in)", time_ms([&] { dst.assign(e, cuda::default_stream(), baked); }), bytes, copy);
}

}  // namespace

int main(int argc, char** argv) {
  if (!cuda::available()) {
    std::printf("no CUDA device: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  const auto& p = cuda::device_info();
  std::printf("%s (%s), %d SMs\n", p.name.c_str(), p.arch.c_str(), p.sm_count);

  {  // W1: o = 2x + 3y + 4z, N = 2^28
    const std::size_t n = std::size_t(1) << 28;
    const shape<dyn> s{n};
    auto x = random_tensor(s, 1), y = random_tensor(s, 2), z = random_tensor(s, 3);
    cuda::tensor<float, shape<dyn>> o(n);
    const double bytes = 4.0 * n * sizeof(float);
    const double copy = copy_ms(2 * n * sizeof(float));  // moves 4n floats, as W1 does
    tensor<float, shape<dyn>> hx(4096), hy(4096), hz(4096);
    cuda::copy(hx, cuda::view(x.data(), shape<dyn>{4096}));
    cuda::copy(hy, cuda::view(y.data(), shape<dyn>{4096}));
    cuda::copy(hz, cuda::view(z.data(), shape<dyn>{4096}));
    o = 2.f * x + 3.f * y + 4.f * z;
    spot_check("W1", o, [&](std::size_t i) { return 2.0 * hx(i) + 3.0 * hy(i) + 4.0 * hz(i); });
    report("W1", "device copy, same bytes", copy, bytes, copy);
    const auto& k = hand("w1");
    const long long n4 = static_cast<long long>(n / 4);
    report("W1", "hand-written (float4)", time_ms([&] {
             rt::launch_with(k, blocks_for(n4), 256, 0, cuda::default_stream(), x.data().get(), y.data().get(),
                             z.data().get(), o.data().get(), n4);
           }),
           bytes, copy);
    both_policies("W1", o, 2.f * x + 3.f * y + 4.f * z, bytes, copy);
  }
  {  // W2: GELU, tanh form, written out, N = 2^28
    const std::size_t n = std::size_t(1) << 28;
    auto x = random_tensor(shape<dyn>{n}, 4);
    cuda::tensor<float, shape<dyn>> o(n);
    tensor<float, shape<dyn>> hx(4096);
    cuda::copy(hx, cuda::view(x.data(), shape<dyn>{4096}));
    o = gelu(x);
    spot_check("W2", o, [&](std::size_t i) {
      const double v = hx(i);
      return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    });
    const double bytes = 2.0 * n * sizeof(float);
    const double copy = copy_ms(n * sizeof(float));
    report("W2", "device copy, same bytes", copy, bytes, copy);
    const auto& k = hand("w2");
    const long long n4 = static_cast<long long>(n / 4);
    report("W2", "hand-written (float4)", time_ms([&] {
             rt::launch_with(k, blocks_for(n4), 256, 0, cuda::default_stream(), x.data().get(), o.data().get(), n4);
           }),
           bytes, copy);
    both_policies("W2", o, 0.5f * x * (1.f + tanh(0.7978845608f * (x + 0.044715f * x * x * x))), bytes, copy);
    report("W2", "loom gelu()", time_ms([&] { o = gelu(x); }), bytes, copy);
  }
  {  // W5: relu(X + bias), 16384 x 4096
    const std::size_t r = 16384, c = 4096;
    auto x = random_tensor(shape<dyn, dyn>{r, c}, 5);
    auto bias = random_tensor(shape<dyn>{c}, 6);
    cuda::tensor<float, shape<dyn, dyn>> o(r, c);
    tensor<float, shape<dyn>> hx(4096), hb(c);
    cuda::copy(hx, cuda::view(x.data(), shape<dyn>{4096}));
    cuda::copy(hb, bias);
    o = relu(x + bias);
    spot_check("W5", o, [&](std::size_t i) { return std::max(0.0, double(hx(i)) + double(hb(i % c))); });
    const double bytes = 2.0 * r * c * sizeof(float);
    const double copy = copy_ms(r * c * sizeof(float));
    report("W5", "device copy, same bytes", copy, bytes, copy);
    const auto& k = hand("w5");
    report("W5", "hand-written (float4)", time_ms([&] {
             rt::launch_with(k, blocks_for(static_cast<long long>(r * c / 4)), 256, 0, cuda::default_stream(),
                             x.data().get(), bias.data().get(), o.data().get(), static_cast<long long>(r),
                             static_cast<long long>(c / 4));
           }),
           bytes, copy);
    both_policies("W5", o, relu(x + bias), bytes, copy);
  }

  {  // Not a workload: the JIT's first-call expression (sin and cos: its element printed once, in
     // scalar accesses, for NVRTC's sake), N = 2^28, against float4 accesses by hand
    const std::size_t n = std::size_t(1) << 28;
    auto x = random_tensor(shape<dyn>{n}, 7), y = random_tensor(shape<dyn>{n}, 8);
    cuda::tensor<float, shape<dyn>> o(n);
    tensor<float, shape<dyn>> hx(4096), hy(4096);
    cuda::copy(hx, cuda::view(x.data(), shape<dyn>{4096}));
    cuda::copy(hy, cuda::view(y.data(), shape<dyn>{4096}));
    o = sin(x) * 1.25f + cos(y) - 0.5f;
    spot_check("trig", o, [&](std::size_t i) { return std::sin(double(hx(i))) * 1.25 + std::cos(double(hy(i))) - 0.5; });
    const double bytes = 3.0 * n * sizeof(float);
    const double copy = copy_ms(std::size_t(1.5 * double(n) * sizeof(float)));
    report("trig", "device copy, same bytes", copy, bytes, copy);
    const auto& k = hand("trig");
    const long long n4 = static_cast<long long>(n / 4);
    report("trig", "hand-written (float4)", time_ms([&] {
             rt::launch_with(k, blocks_for(n4), 256, 0, cuda::default_stream(), x.data().get(), y.data().get(),
                             o.data().get(), n4);
           }),
           bytes, copy);
    report("trig", "loom sin(x) * 1.25f + cos(y) - 0.5f", time_ms([&] { o = sin(x) * 1.25f + cos(y) - 0.5f; }), bytes,
           copy);
  }

  // The JIT: first call of a new type, a disk-cache hit, and the dispatch overhead.
  {
    const auto dir = std::filesystem::temp_directory_path() / ("loom-bench-cache-" + std::to_string(::getpid()));
    rt::disk_cache disk(dir);
    rt::module_cache fresh(&disk);
    cuda::tensor<float, shape<dyn>> a(1000), b(1000);
    const auto e = sin(a) * 1.25f + cos(b) - 0.5f;
    const std::string src = cuda::kernel_source(e);
    const std::string name = src.substr(src.find("loom_ew_"), src.find('(', src.find("loom_ew_")) - src.find("loom_ew_"));
    const auto t0 = std::chrono::steady_clock::now();
    fresh.kernel(src, name, {}, {});
    const auto t1 = std::chrono::steady_clock::now();
    rt::module_cache again(&disk);  // new in-memory cache, same directory: a disk hit and a module load
    again.kernel(src, name, {}, {});
    const auto t2 = std::chrono::steady_clock::now();
    jit_first_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    jit_disk_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    std::printf("JIT  first call (NVRTC + load) %8.2f ms\n", jit_first_ms);
    std::printf("JIT  disk-cache hit (+ load)   %8.2f ms\n", jit_disk_ms);
    std::filesystem::remove_all(dir);

    cuda::tensor<float, shape<dyn>> t(1), u(1);
    u = t + 1.f;  // compile once
    cuda::synchronize();
    const int reps = 20000;
    auto wall = [&](auto&& f) {
      const auto s = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) f();
      cuda::synchronize();
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count() / reps;
    };
    const auto& tk = hand("tiny");
    float* tp = u.data().get();
    const double raw = wall([&] { rt::launch_with(tk, 1, 1, 0, cuda::default_stream(), tp); });
    const double loom_us = wall([&] { u = t + 1.f; });
    raw_launch_us = raw;
    loom_launch_us = loom_us;
    std::printf("JIT  dispatch: raw cuLaunchKernel %.2f us, loom assignment %.2f us, overhead %.2f us\n", raw, loom_us,
                loom_us - raw);
  }

  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (f) {
      std::fprintf(f, "{\"device\": \"%s\", \"rows\": [\n", p.name.c_str());
      for (std::size_t i = 0; i < rows.size(); ++i)
        std::fprintf(f, "  {\"workload\": \"%s\", \"variant\": \"%s\", \"ms\": %.4f, \"gbps\": %.2f, \"vs_copy\": %.3f}%s\n",
                     rows[i].workload.c_str(), rows[i].variant.c_str(), rows[i].ms, rows[i].gbps, rows[i].ratio_copy,
                     i + 1 < rows.size() ? "," : "");
      std::fprintf(f, "], \"jit\": {\"first_call_ms\": %.3f, \"disk_hit_ms\": %.3f, \"raw_launch_us\": %.3f, "
                      "\"loom_launch_us\": %.3f}}\n",
                   jit_first_ms, jit_disk_ms, raw_launch_us, loom_launch_us);
      std::fclose(f);
    }
  }
  return 0;
}
