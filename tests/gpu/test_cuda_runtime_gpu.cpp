// The run-time layer of the CUDA backend on a real device: the caching allocator, copies of odd
// sizes (direct, staged and pinned), streams and events, compiling and launching a kernel through
// the module cache, launch errors, occupancy, and cuBLASLt with a bias+ReLU epilogue.
//
// Every test skips with a visible message where no CUDA device is available.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/cublaslt.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"
#include "loom/cuda/runtime/stream.hpp"

namespace lc = loom::cuda;
namespace rt = loom::cuda::runtime;

#define LOOM_REQUIRE_GPU()                                                  \
  do {                                                                      \
    if (!lc::available()) {                                                 \
      WARN("no CUDA device: skipped (" << lc::unavailable_reason() << ")"); \
      return;                                                               \
    }                                                                       \
  } while (0)

namespace {

const char* const saxpy_source =
    "extern \"C\" __global__ void loom_saxpy(float a, const float* __restrict__ x, float* __restrict__ y,\n"
    "                                       long long n) {\n"
    "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
    "  if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n"
    "template <class T> __global__ void loom_fill(T* p, T v, long long n) {\n"
    "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
    "  if (i < n) p[i] = v;\n"
    "}\n";

lc::kernel_request saxpy_request() {
  return lc::kernel_request{saxpy_source, "loom_saxpy", {"loom_saxpy", "loom_fill<float>"}, {}};
}

lc::kernel_request fill_request() {
  return lc::kernel_request{saxpy_source, "loom_fill<float>", {"loom_saxpy", "loom_fill<float>"}, {}};
}

std::vector<unsigned char> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

}  // namespace

TEST_CASE("cuda gpu: device properties", "[cuda][gpu]") {
  LOOM_REQUIRE_GPU();
  const lc::device_properties& p = lc::device_info();
  INFO(p.name << " " << p.arch << ", " << p.sm_count << " SMs, driver " << p.driver_version);
  CHECK(p.arch == "sm_" + std::to_string(p.major) + std::to_string(p.minor));
  CHECK(p.sm_count > 0);
  CHECK(p.max_threads_per_block >= 1024);
  CHECK(p.shared_per_block >= 48 * 1024);
  CHECK(p.total_memory > 0);
  CHECK(lc::device_memory().total == p.total_memory);
  CHECK(&lc::device_info() == &lc::device_info());  // read once
  CHECK_FALSE(lc::default_arch().empty());
}

TEST_CASE("cuda gpu: the caching allocator reuses freed blocks", "[cuda][gpu][memory]") {
  LOOM_REQUIRE_GPU();
  for (const rt::allocator_backend backend : {rt::allocator_backend::synchronous, rt::allocator_backend::memory_pool}) {
    if (backend == rt::allocator_backend::memory_pool && !lc::device_info().memory_pools) continue;
    INFO("backend " << static_cast<int>(backend));
    rt::device_allocator a(backend);
    const lc::stream_ref s = lc::default_stream();

    const auto p1 = a.allocate(1000, s);
    CHECK(p1 != 0);
    CHECK(a.stats().bytes_in_use == 1024);
    a.deallocate(p1, 1000, s);
    CHECK(a.stats().bytes_cached == 1024);
    const auto p2 = a.allocate(900, s);  // same class, same stream: the same block
    CHECK(p2 == p1);
    CHECK(a.stats().driver_allocations == 1);
    CHECK(a.stats().reused == 1);
    CHECK(a.stats().stream_ordered_pool == (backend == rt::allocator_backend::memory_pool));

    // Another stream reuses the block after an event wait (on the device).
    lc::stream other;
    a.deallocate(p2, 900, s);
    const auto p3 = a.allocate(1024, other);
    CHECK(p3 == p1);
    CHECK(a.stats().driver_allocations == 1);

    // Another class is another block; many rounds cost no further driver calls.
    const auto big = a.allocate((std::size_t{1} << 20) + 5, s);
    CHECK(big != p3);
    a.deallocate(big, (std::size_t{1} << 20) + 5, s);
    for (int i = 0; i < 1000; ++i)
      a.deallocate(a.allocate((std::size_t{1} << 20) + 100, s), (std::size_t{1} << 20) + 100, s);
    CHECK(a.stats().driver_allocations == 2);

    // Destroying a stream untags its cached blocks; they stay usable.
    a.deallocate(p3, 1024, other);
    other = lc::stream();
    const auto p4 = a.allocate(1024, s);
    CHECK(p4 == p1);
    a.deallocate(p4, 1024, s);

    a.release_cached();
    CHECK(a.stats().bytes_cached == 0);
    CHECK(a.stats().bytes_in_use == 0);
    CHECK(a.stats().driver_frees == 2);
  }
}

TEST_CASE("cuda gpu: device_buffer owns and moves", "[cuda][gpu][memory]") {
  LOOM_REQUIRE_GPU();
  lc::detail::device_buffer a(4096);
  CHECK_FALSE(a.empty());
  CHECK(a.size() == 4096);
  CHECK(a.stream() == lc::default_stream());
  const auto addr = a.address();
  lc::detail::device_buffer b(std::move(a));
  CHECK(a.empty());  // NOLINT: testing the moved-from state
  CHECK(b.address() == addr);
  lc::detail::device_buffer c;
  c = std::move(b);
  CHECK(c.address() == addr);
  c.reset();
  CHECK(c.empty());
  lc::detail::device_buffer d(4000);  // the freed block comes back
  CHECK(d.address() == addr);
}

TEST_CASE("cuda gpu: host <-> device round trips of odd sizes", "[cuda][gpu][memory]") {
  LOOM_REQUIRE_GPU();
  const std::size_t sizes[] = {
      1, 3, 511, 4097, (std::size_t{1} << 20) - 1, (std::size_t{1} << 20) + 7, (std::size_t{9} << 20) + 13};
  for (const std::size_t n : sizes) {
    INFO(n << " bytes");
    const std::vector<unsigned char> src = random_bytes(n, static_cast<unsigned>(n));
    lc::detail::device_buffer d(n);
    lc::detail::device_buffer e(n);
    rt::copy_to_device(d.address(), src.data(), n);
    rt::copy_on_device_async(e.address(), d.address(), n, lc::default_stream());
    std::vector<unsigned char> back(n, 0);
    rt::copy_to_host(back.data(), e.address(), n);
    CHECK(back == src);

    // Through pinned memory, queued on a stream of its own.
    lc::stream s;
    lc::pinned_buffer pin(n);
    std::memcpy(pin.data(), src.data(), n);
    rt::fill_bytes_async(d.address(), 0, n, s);
    rt::copy_to_device_async(d.address(), pin.data(), n, s);
    std::memset(back.data(), 0, n);
    rt::copy_to_host_async(back.data(), d.address(), n, s);  // pageable: complete on return
    CHECK(back == src);
    lc::pinned_buffer out(n);
    rt::copy_to_host_async(out.data(), d.address(), n, s);
    s.synchronize();
    CHECK(std::memcmp(out.data(), src.data(), n) == 0);
  }
}

TEST_CASE("cuda gpu: streams and events", "[cuda][gpu]") {
  LOOM_REQUIRE_GPU();
  lc::stream a;
  lc::stream b(lc::stream::non_blocking);
  CHECK(a.handle() != nullptr);
  CHECK(a.handle() != b.handle());
  lc::stream c(std::move(a));
  CHECK(a.handle() == nullptr);  // NOLINT
  lc::event start(true), stop(true);
  start.record(c);
  lc::detail::device_buffer buf(std::size_t{64} << 20, c);
  rt::fill_bytes_async(buf.address(), 7, buf.size(), c);
  stop.record(c);
  stop.make_wait(b);
  b.synchronize();
  CHECK(stop.ready());
  CHECK(elapsed_ms(start, stop) >= 0.f);
  CHECK(c.ready());
  lc::synchronize();
}

TEST_CASE("cuda gpu: compile and launch a saxpy kernel", "[cuda][gpu][launch]") {
  LOOM_REQUIRE_GPU();
  static rt::cached_kernel saxpy;
  static rt::cached_kernel fill;
  const lc::kernel_handle& k = saxpy.get(saxpy_request);
  CHECK(&saxpy.get(saxpy_request) == &k);  // the hot path returns the same handle
  CHECK(k.max_threads_per_block > 0);
  CHECK(k.arch == lc::default_arch());
  const lc::kernel_handle& f = fill.get(fill_request);  // same program: one module, another function
  CHECK(f.function != k.function);

  const long long n = 1'000'003;
  std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
  for (long long i = 0; i < n; ++i) {
    x[static_cast<std::size_t>(i)] = static_cast<float>(i % 1000) * 0.5f;
    y[static_cast<std::size_t>(i)] = static_cast<float>(i % 7);
  }
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  lc::detail::device_buffer dx(bytes), dy(bytes);
  rt::copy_to_device(dx.address(), x.data(), bytes);
  rt::copy_to_device(dy.address(), y.data(), bytes);

  const int block = rt::occupancy_block_size(k);
  CHECK(block % 32 == 0);
  CHECK(rt::max_active_blocks_per_sm(k, block) > 0);
  const lc::launch_dim grid(static_cast<unsigned>((n + block - 1) / block));
  const float a = 3.f;
  const void* px = dx.data();
  void* py = dy.data();
  rt::launch_with(k, grid, lc::launch_dim(static_cast<unsigned>(block)), 0, lc::default_stream(), a, px, py, n);
  std::vector<float> out(static_cast<std::size_t>(n));
  rt::copy_to_host(out.data(), dy.address(), bytes);
  std::size_t wrong = 0;
  for (long long i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    if (out[u] != a * x[u] + y[u]) ++wrong;
  }
  CHECK(wrong == 0);

  // The same kernel from several threads, each on its own stream.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      try {
        lc::stream s;
        const lc::kernel_handle& fk = fill.get(fill_request);
        lc::detail::device_buffer buf(1000 * sizeof(float), s);
        float* p = static_cast<float*>(buf.data());
        const float v = static_cast<float>(t + 1);
        rt::launch_with(fk, lc::launch_dim(8), lc::launch_dim(128), 0, s, p, v, 1000LL);
        std::vector<float> h(1000);
        rt::copy_to_host_async(h.data(), buf.address(), 1000 * sizeof(float), s);
        s.synchronize();
        if (std::any_of(h.begin(), h.end(), [&](float e) { return e != v; })) ++failures;
      } catch (...) {
        ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
}

TEST_CASE("cuda gpu: a refused launch throws cuda_error naming the kernel and the error", "[cuda][gpu][launch]") {
  LOOM_REQUIRE_GPU();
  static rt::cached_kernel saxpy;
  const lc::kernel_handle& k = saxpy.get(saxpy_request);
  float a = 1.f;
  const void* px = nullptr;
  void* py = nullptr;
  long long n = 0;
  try {
    rt::launch_with(k, lc::launch_dim(1), lc::launch_dim(4096), 0, lc::default_stream(), a, px, py, n);
    FAIL("no exception");
  } catch (const loom::cuda_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("loom_saxpy") != std::string::npos);
    CHECK(msg.find("CUDA_ERROR_") != std::string::npos);
    CHECK(msg.find("block 4096x1x1") != std::string::npos);
    CHECK(msg.find("at most") != std::string::npos);
  }
  CHECK_THROWS_AS(
      rt::launch_with(k, lc::launch_dim(1, 1u << 20), lc::launch_dim(32), 0, lc::default_stream(), a, px, py, n),
      loom::cuda_error);
  lc::synchronize();  // the context is still healthy
}

TEST_CASE("cuda gpu: a module for the wrong architecture fails to load with a clear error", "[cuda][gpu][launch]") {
  LOOM_REQUIRE_GPU();
  const lc::device_properties& p = lc::device_info();
  lc::compile_options o;
  o.arch = p.major >= 9 ? "sm_80" : "sm_90";  // a cubin of another major version cannot load
  rt::module_cache cache(nullptr);
  try {
    (void)cache.kernel(saxpy_source, "loom_saxpy", {}, o);
    WARN("the " << o.arch << " cubin loaded on " << p.arch);
  } catch (const loom::cuda_error& e) {
    CHECK(std::string(e.what()).find(o.arch) != std::string::npos);
  }
}

TEST_CASE("cuda gpu: cuBLASLt matmul with a bias+ReLU epilogue", "[cuda][gpu][cublaslt]") {
  LOOM_REQUIRE_GPU();
  if (!rt::cublaslt_available()) {
    WARN("cuBLASLt not found: skipped");
    return;
  }
  // Row-major h = relu(a (m x k) * w (k x n) + bias (n)), computed as the column-major problem
  // h^T (n x m) = w^T (n x k) * a^T (k x m), whose bias runs along the rows of h^T.
  const int m = 64, k = 48, n = 40;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(k * n)),
      bias(static_cast<std::size_t>(n)), h(static_cast<std::size_t>(m * n));
  for (float& v : a) v = dist(rng);
  for (float& v : w) v = dist(rng);
  for (float& v : bias) v = dist(rng);
  lc::detail::device_buffer da(a.size() * 4), dw(w.size() * 4), db(bias.size() * 4), dh(h.size() * 4);
  rt::copy_to_device(da.address(), a.data(), a.size() * 4);
  rt::copy_to_device(dw.address(), w.data(), w.size() * 4);
  rt::copy_to_device(db.address(), bias.data(), bias.size() * 4);

  namespace L = lc::detail::lt;
  const rt::cublaslt_handle& handle = rt::shared_cublaslt_handle();
  rt::lt_matmul_desc op(L::compute_32f, L::r_32f);
  op.epilogue(rt::lt_epilogue::relu_bias).bias(db.data(), L::r_32f);
  const rt::lt_matrix_layout lw(L::r_32f, n, k, n), la(L::r_32f, k, m, k), lh(L::r_32f, n, m, n);
  const rt::lt_preference pref(std::size_t{4} << 20);
  lc::detail::device_buffer workspace(std::size_t{4} << 20);
  const auto algos = rt::lt_heuristics(handle, op, lw, la, lh, lh, pref, 4);
  REQUIRE_FALSE(algos.empty());
  const float alpha = 1.f, beta = 0.f;
  rt::lt_matmul(handle, op, &alpha, dw.data(), lw, da.data(), la, &beta, dh.data(), lh, dh.data(), lh, &algos[0].algo,
                workspace.data(), workspace.size(), lc::default_stream());
  rt::copy_to_host(h.data(), dh.address(), h.size() * 4);
  double worst = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double ref = bias[static_cast<std::size_t>(j)];
      for (int p = 0; p < k; ++p) {
        ref += static_cast<double>(a[static_cast<std::size_t>(i * k + p)]) * w[static_cast<std::size_t>(p * n + j)];
      }
      ref = std::max(ref, 0.0);
      worst = std::max(worst, std::abs(ref - h[static_cast<std::size_t>(i * n + j)]));
    }
  }
  CHECK(worst < 1e-3);  // TF32 is not enabled: compute_32f is full precision
}
