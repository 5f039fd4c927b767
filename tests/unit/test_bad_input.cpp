// Bad input: each gets a clear loom::error of the right type and loses nothing (the destination,
// the user's memory, the cache on disk are as they were). This file fills the gaps beside the
// existing bad-input tests, which it does not repeat:
//
//   mismatched run-time shapes into a tensor      test_tensor.cpp   "assignment never resizes"
//   run-time broadcast errors at build time        test_broadcast.cpp
//   null / misaligned host views                   test_tensor.cpp   "views of null or misaligned..."
//   tensor extents overflowing 64 bits             test_shape.cpp    "element counts that overflow"
//   device tensors without a GPU                   test_cuda_codegen.cpp "without a device, tensors..."
//   NVRTC failing (a compile error: jit_error)     test_cuda_runtime.cpp "a compile error throws jit_error"
//   corrupt / truncated disk-cache entries          test_cuda_runtime.cpp "disk cache detects corrupt
//                                                  entries", "a corrupt disk entry is recompiled"
//   two processes writing one cache directory      test_cuda_runtime.cpp "disk cache writes are atomic
//                                                  across threads and processes"
//   every shape mismatch of random expressions     test_fuzz_*.cpp (mode "mismatch")
//
// Here: mismatches into views, compound assignments, reductions and index maps; strided and
// device views of null or misaligned pointers; source views overlapping the destination
// (computed through a temporary) and destinations overlapping themselves (refused); view,
// broadcast and reduction extents overflowing 64 bits; device tensors without a GPU leaving
// host data untouched; NVRTC missing (cuda_error, simulated in a child process); two processes
// compiling the same kernels through NVRTC into one cache directory; and, tagged [.long] (run by
// hand: test_bad_input "[.long]"), a tensor of more than 2^31 elements.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "support.hpp"

using namespace loom;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// A test-only dlopen: with LOOM_TEST_HIDE_NVRTC set, NVRTC cannot be found (as on a machine
// without the CUDA Toolkit). Defined in the executable, it comes before the C library's in
// symbol lookup; everything else goes to the real dlopen.
// ---------------------------------------------------------------------------------------------
extern "C" void* dlopen(const char* file, int mode) {
  using fn = void* (*)(const char*, int);
  static const fn real = reinterpret_cast<fn>(::dlsym(RTLD_NEXT, "dlopen"));
  if (file != nullptr && std::getenv("LOOM_TEST_HIDE_NVRTC") != nullptr && std::strstr(file, "nvrtc") != nullptr)
    return nullptr;
  return real(file, mode);
}

namespace {

template <class T>
std::vector<unsigned char> bytes_of(const T* p, std::size_t n) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return {b, b + n * sizeof(T)};
}

/// Runs this test program again as a child, with `env` added, running only `test`; returns its
/// exit status (0: the child's checks passed) and its output in *out.
int run_child(const std::string& test, const std::vector<std::string>& env, std::string* out) {
  const fs::path log = fs::temp_directory_path() / ("loom_bad_input_child_" + std::to_string(::getpid()) + ".log");
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
    const std::string redirect = log.string();
    if (std::freopen(redirect.c_str(), "w", stdout) == nullptr) ::_exit(97);
    ::dup2(::fileno(stdout), 2);
    const char* argv[] = {"test_bad_input", test.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    ::_exit(98);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (out) {
    std::FILE* f = std::fopen(log.c_str(), "r");
    if (f) {
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out->append(buf, n);
      std::fclose(f);
    }
  }
  std::error_code ec;
  fs::remove(log, ec);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

// =============================================================================================
// Mismatched run-time shapes
// =============================================================================================

TEST_CASE("bad input: a mismatched expression writes nothing through a view", "[bad-input][shape]") {
  std::vector<float> buf(64);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  const auto before = buf;
  tensor<float, shape<dyn, dyn>> x(3, 5);
  auto v = view(buf.data() + 1, shape<dyn, dyn>{3, 4});                      // row-major
  auto s = view(buf.data() + 2, shape<dyn, dyn>{3, 4}, {-1, 12});             // strided, negative
  CHECK_THROWS_AS(v = x * 2.f, shape_error);
  CHECK_THROWS_AS(v += x, shape_error);
  CHECK_THROWS_AS(s = exp(x), shape_error);
  CHECK_THROWS_AS(s -= x, shape_error);
  CHECK_THROWS_WITH(v = x * 2.f, Catch::Contains("[3, 5]") && Catch::Contains("[3, 4]"));
  CHECK(buf == before);
}

TEST_CASE("bad input: compound assignment of a mismatched shape writes nothing", "[bad-input][shape]") {
  tensor<double, shape<dyn, dyn>> o(4, 6), x(4, 7);
  loom_test::randomize(o, 1);
  const auto before = bytes_of(o.data(), o.size());
  CHECK_THROWS_AS(o += x, shape_error);
  CHECK_THROWS_AS(o *= x * 2.0, shape_error);
  CHECK_THROWS_AS(o /= sum(x, axis<0>), shape_error);  // [7] does not broadcast into [4, 6]
  CHECK(bytes_of(o.data(), o.size()) == before);
}

TEST_CASE("bad input: reductions and index maps of mismatched run-time shapes", "[bad-input][shape]") {
  tensor<float, shape<dyn, dyn>> x(4, 6), y(5, 7);
  tensor<float, shape<dyn>> rows(5);
  loom_test::randomize(rows, 2);
  const auto before = bytes_of(rows.data(), rows.size());
  CHECK_THROWS_AS(rows = sum(x, axis<1>), shape_error);  // [4] into [5]
  CHECK_THROWS_AS(rows = max(x, axis<0>) + 1.f, shape_error);  // [6] into [5]
  CHECK(bytes_of(rows.data(), rows.size()) == before);
  // index maps check their run-time operands when built
  CHECK_THROWS_AS(concat<0>(x, y), shape_error);          // axis 1: 6 vs 7
  CHECK_THROWS_WITH(concat<0>(x, y), Catch::Contains("[4, 6]") && Catch::Contains("[5, 7]"));
  CHECK_THROWS_AS(reshape(x, shape<dyn, dyn>{5, 5}), shape_error);
  CHECK_THROWS_AS(slice<0>(x, 0, 4, 0), shape_error);     // step 0
  CHECK_THROWS_AS(slice<1>(x, 0, 4, -1), shape_error);    // negative step: flip<1> is the way
  CHECK_THROWS_AS(pad<0>(x, -1, 2), shape_error);
  CHECK_THROWS_AS(broadcast_to(x, shape<dyn, dyn>{4, 7}), shape_error);
  CHECK_THROWS_AS(x + y, shape_error);
  // reducing an empty axis with max/min/argmax/argmin
  tensor<float, shape<dyn, dyn>> e(3, 0);
  CHECK_THROWS_AS(argmax(e, axis<1>), shape_error);
  CHECK_THROWS_AS(min(e), shape_error);
}

// =============================================================================================
// Null and misaligned pointers
// =============================================================================================

TEST_CASE("bad input: strided, const and device views of null or misaligned pointers", "[bad-input][view]") {
  float* null = nullptr;
  const double* cnull = nullptr;
  CHECK_THROWS_AS(view(null, shape<dyn>{3}, {2}), error);
  CHECK_THROWS_AS(view(cnull, shape<2, 2>{}, {1, 2}), error);
  CHECK_THROWS_WITH(view(null, shape<dyn>{3}, {2}), Catch::Contains("null") && Catch::Contains("[3]"));
  CHECK_NOTHROW(view(null, shape<dyn, 4>{0}, {4, 1}));  // an empty view needs no memory
  alignas(8) unsigned char bytes[64] = {};
  auto* mis = reinterpret_cast<double*>(bytes + 4);
  CHECK_THROWS_AS(view(mis, shape<2>{}, {1}), error);
  CHECK_THROWS_WITH(view(mis, shape<2>{}, {1}), Catch::Contains("aligned"));
  auto* mis32 = reinterpret_cast<std::int32_t*>(bytes + 2);
  CHECK_THROWS_AS(view(static_cast<const std::int32_t*>(mis32), shape<dyn>{1}), error);
  // device views check the same (no device needed: nothing is dereferenced)
  CHECK_THROWS_AS(cuda::view(static_cast<float*>(nullptr), shape<dyn>{8}), error);
  CHECK_THROWS_AS(cuda::view(reinterpret_cast<float*>(std::uintptr_t(1) << 20 | 2), shape<dyn>{8}), error);
  CHECK_NOTHROW(cuda::view(reinterpret_cast<float*>(std::uintptr_t(1) << 20), shape<dyn>{8}));
}

// =============================================================================================
// Views whose strides overlap the destination
// =============================================================================================

TEST_CASE("bad input: a source view overlapping the destination is read through a temporary",
          "[bad-input][view][alias]") {
  // Decision: any overlap between what an assignment reads and what it writes, other than
  // reading each destination element at its own index, is computed as if the source were read
  // first (loom goes through a temporary); the result is what NumPy's out-of-place form gives.
  std::vector<float> b(64);
  auto reset = [&] {
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(i);
  };
  const std::size_t n = 40;
  SECTION("shifted left by one") {
    reset();
    view(b.data(), shape<dyn>{n}) = view(static_cast<const float*>(b.data() + 1), shape<dyn>{n}) * 1.f;
    for (std::size_t i = 0; i < n; ++i) CHECK(b[i] == float(i + 1));
  }
  SECTION("shifted right by one") {
    reset();
    view(b.data() + 1, shape<dyn>{n}) = view(static_cast<const float*>(b.data()), shape<dyn>{n}) + 0.f;
    for (std::size_t i = 0; i < n; ++i) CHECK(b[i + 1] == float(i));
    CHECK(b[0] == 0.f);
  }
  SECTION("reversed onto itself") {
    reset();
    view(b.data(), shape<dyn>{n}) = view(static_cast<const float*>(b.data() + n - 1), shape<dyn>{n}, {-1}) * 2.f;
    for (std::size_t i = 0; i < n; ++i) CHECK(b[i] == 2.f * float(n - 1 - i));
  }
  SECTION("transposed onto itself, compound") {
    reset();
    auto m = view(b.data(), shape<8, 8>{});
    auto t = view(static_cast<const float*>(b.data()), shape<8, 8>{}, {1, 8});
    m += t;
    for (std::size_t i = 0; i < 8; ++i)
      for (std::size_t j = 0; j < 8; ++j) CHECK(b[i * 8 + j] == float(i * 8 + j) + float(j * 8 + i));
  }
  SECTION("a stride-0 source of the destination's first element") {
    reset();
    view(b.data(), shape<dyn>{n}) = view(static_cast<const float*>(b.data()), shape<dyn>{n}, {0}) + 1.f;
    for (std::size_t i = 0; i < n; ++i) CHECK(b[i] == 1.f);  // every element reads the old b[0]
  }
  SECTION("a reduction of the destination broadcast back") {
    reset();
    auto m = view(b.data(), shape<4, 16>{});
    m = m - max(m, axis<1>, keepdims);
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t j = 0; j < 16; ++j) CHECK(b[i * 16 + j] == float(j) - 15.f);
  }
}

TEST_CASE("bad input: a destination whose strides reach an element twice is refused, nothing written",
          "[bad-input][view][alias]") {
  // Decision: such a view would receive several values per element, in an order that depends on
  // threads and SIMD (and += would add to partial results): loom::error before any write.
  std::vector<float> b(64, 7.f);
  const auto before = b;
  tensor<float, shape<dyn>> x(16);
  loom_test::randomize(x, 3);
  auto rep = view(b.data(), shape<dyn>{16}, {0});  // 16 writes into b[0]
  CHECK_THROWS_AS(rep = x * 1.f, error);
  CHECK_THROWS_AS(rep += x, error);
  CHECK_THROWS_AS(rep = 1.f, error);
  CHECK_THROWS_WITH(rep = x * 1.f, Catch::Contains("strides [0]") && Catch::Contains("twice"));
  tensor<float, shape<4, 4>> y;
  auto diag = view(b.data(), shape<4, 4>{}, {1, 1});  // (i, j) and (i + 1, j - 1) coincide
  CHECK_THROWS_AS(diag = y + 1.f, error);
  auto rows0 = view(b.data(), shape<3, 4>{}, {0, 1});  // every row is the same memory
  CHECK_THROWS_AS(rows0 = 2.f, error);
  CHECK_THROWS_AS(rows0 = sum(y, axis<0>) * 1.f, error);
  CHECK(b == before);
  // one-to-one strided destinations are fine: negative, stepped, transposed
  auto ok = view(b.data() + 63, shape<4, 4>{}, {-1, -8});
  CHECK_NOTHROW(ok = y + 1.f);
  auto one = view(b.data(), shape<dyn, 1>{5}, {3, 0});  // stride 0 on an axis of extent 1 is fine
  CHECK_NOTHROW(one = 3.f);
  // the device backend refuses the same, before needing a device
  auto drep = cuda::view(reinterpret_cast<float*>(std::uintptr_t(1) << 20), shape<dyn>{16}, {0});
  cuda::tensor<float, shape<dyn>> dx(16);
  CHECK_THROWS_WITH(drep = dx * 1.f, Catch::Contains("twice"));
}

// =============================================================================================
// Extents whose product overflows 64 bits
// =============================================================================================

TEST_CASE("bad input: extents whose product overflows 64 bits", "[bad-input][shape]") {
  const std::size_t big = std::size_t(1) << 33;
  std::vector<float> b(4, 1.f);
  // a view of 2^66 elements does not pass for a small or empty one
  CHECK_THROWS_AS(view(b.data(), shape<dyn, dyn>{big, big}, {0, 0}), shape_error);
  CHECK_THROWS_WITH(view(b.data(), shape<dyn, dyn>{big, big}, {0, 0}), Catch::Contains("[8589934592, 8589934592]"));
  CHECK_THROWS_AS(view(static_cast<const float*>(b.data()), shape<dyn, dyn>{big, big}), shape_error);
  CHECK_THROWS_AS(cuda::view(reinterpret_cast<float*>(std::uintptr_t(1) << 20), shape<dyn, dyn>{big, big}), shape_error);
  CHECK_NOTHROW(view(b.data(), shape<dyn, dyn, dyn>{big, big, 0}));  // empty: nothing to count
  // device tensors count like host tensors
  CHECK_THROWS_AS((cuda::tensor<float, shape<dyn, dyn>>(big, big)), shape_error);
  // two stride-0 views of 2^33 elements each broadcast to 2^66: building the sum is lazy and
  // harmless, but reducing it (or evaluating it) throws instead of working on a wrapped count
  auto v = view(static_cast<const float*>(b.data()), shape<dyn, 1>{big}, {0, 0});
  auto w = view(static_cast<const float*>(b.data()), shape<1, dyn>{big}, {0, 0});
  CHECK(v.size() == big);
  CHECK_THROWS_AS(sum(v + w), shape_error);
  CHECK_THROWS_AS(max(v * w, axis<1>), shape_error);
  CHECK_THROWS_WITH(sum(v + w), Catch::Contains("[8589934592, 8589934592]"));
  CHECK_THROWS_AS(eval(v + w), shape_error);
}

// =============================================================================================
// More than 2^31 elements (long: run by hand)
// =============================================================================================

TEST_CASE("bad input: a tensor of more than 2^31 elements", "[bad-input][.long]") {
  // 2^31 + 17 bools (2 GiB each for x and y): 64-bit indices in the loop nest, the reductions
  // and the aliasing checks; elements past 2^31 are checked one by one.
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = (std::size_t(1) << 31) + 17;
  tensor<bool, shape<dyn>> x(n);
  for (std::size_t i = 0; i < n; ++i) x.data()[i] = i % 3 == 0;
  tensor<bool, shape<dyn>> y = !x;
  for (std::size_t i : {std::size_t(0), std::size_t(1), (std::size_t(1) << 31) - 1, std::size_t(1) << 31,
                        (std::size_t(1) << 31) + 1, n - 2, n - 1})
    CHECK(y(i) == (i % 3 != 0));
  CHECK(eval(sum(x))() == std::int64_t((n + 2) / 3));
  x(n - 5) = true;
  y(n - 5) = true;
  CHECK(eval(argmax(x && y))() == std::int64_t(n - 5));  // the only element true in both
  // a 2-D view of the same memory, [2^16, 2^15] from element 17: its last row ends at 2^31 + 17
  const std::size_t cols = std::size_t(1) << 15;
  auto m = view(static_cast<const bool*>(y.data() + 17), shape<dyn, dyn>{std::size_t(1) << 16, cols});
  auto rows = eval(sum(m, axis<1>));
  const std::size_t last = rows.size() - 1;
  std::int64_t want = 0;
  for (std::size_t j = 0; j < cols; ++j) want += y.data()[17 + last * cols + j];
  CHECK(rows(last) == want);
  CHECK(eval(sum(rows))() == eval(sum(m))());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("2^31 + 17 elements: " << secs << " s");
}

// =============================================================================================
// CUDA without a GPU, and NVRTC missing
// =============================================================================================

TEST_CASE("bad input: device tensors without a GPU throw cuda_error and leave host data alone", "[bad-input][cuda]") {
  if (cuda::available()) {
    WARN("a CUDA device is present: the no-device checks are skipped");
    return;
  }
  tensor<float, shape<dyn>> h(32);
  loom_test::randomize(h, 4);
  const auto before = bytes_of(h.data(), h.size());
  cuda::tensor<float, shape<dyn>> d(32);
  CHECK_FALSE(d.allocated());
  CHECK_THROWS_AS(cuda::copy(h, d), cuda_error);   // device -> host: the host tensor is untouched
  CHECK_THROWS_AS(cuda::copy(d, h), cuda_error);
  CHECK_THROWS_AS(d = exp(d) + 1.f, cuda_error);
  CHECK_THROWS_AS(cuda::eval(d * 2.f), cuda_error);
  CHECK(bytes_of(h.data(), h.size()) == before);
  // and the message says why
  CHECK_THROWS_WITH(cuda::copy(h, d), Catch::Contains("CUDA is not available"));
}

TEST_CASE("bad input: NVRTC missing (child)", "[.nvrtc-missing-child]") {
  // Runs in a child with LOOM_TEST_HIDE_NVRTC set: NVRTC cannot be loaded.
  REQUIRE(std::getenv("LOOM_TEST_HIDE_NVRTC") != nullptr);
  CHECK_FALSE(cuda::nvrtc_available());
  CHECK_THAT(cuda::nvrtc_unavailable_reason(), Catch::Contains("NVRTC") && Catch::Contains("not found"));
  cuda::tensor<float, shape<dyn>> d(8);
  // generating the source needs no NVRTC; compiling it throws cuda_error naming what is missing
  CHECK_FALSE(cuda::kernel_source(exp(d) * 2.f).empty());
  CHECK_THROWS_AS(cuda::compile(exp(d) * 2.f), cuda_error);
  CHECK_THROWS_WITH(cuda::compile(exp(d) * 2.f), Catch::Contains("NVRTC") && Catch::Contains("libnvrtc"));
  CHECK_THROWS_AS(cuda::nvrtc_version(), cuda_error);
  // and the CPU library does not care
  tensor<float, shape<dyn>> x(100);
  loom_test::randomize(x, 5);
  tensor<float, shape<dyn>> y = exp(x) * 2.f;
  CHECK(y(7) == Approx(std::exp(x(7)) * 2.f));
}

TEST_CASE("bad input: NVRTC missing gives cuda_error; the CPU library works", "[bad-input][cuda][nvrtc]") {
  std::string out;
  const int status = run_child("[.nvrtc-missing-child]", {"LOOM_TEST_HIDE_NVRTC=1"}, &out);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("All tests passed") != std::string::npos);
}

// =============================================================================================
// Two processes, one cache directory, real NVRTC
// =============================================================================================

TEST_CASE("bad input: compile into a shared cache directory (child)", "[.shared-cache-child]") {
  // Compiles a fixed set of kernels through the process-wide cache (LOOM_CACHE_DIR set by the
  // parent) and prints how many NVRTC compiles it ran.
  REQUIRE(std::getenv("LOOM_CACHE_DIR") != nullptr);
  cuda::tensor<float, shape<dyn, 64>> a(2), b(2);
  cuda::tensor<std::int32_t, shape<dyn, 64>> k(2);
  const auto before = cuda::runtime::nvrtc_compile_count();
  std::size_t bytes = 0;
  bytes += cuda::compile(exp(a) - b * 3.f, cuda::options{.arch = "sm_80"}).cubin_bytes;
  bytes += cuda::compile(where(a > b, k, 7), cuda::options{.arch = "sm_80"}).cubin_bytes;
  bytes += cuda::compile(sqrt(abs(a)) + cast<float>(k), cuda::options{.arch = "sm_80"}).cubin_bytes;
  CHECK(bytes > 0);
  WARN("nvrtc compiles: " << cuda::runtime::nvrtc_compile_count() - before);
}

TEST_CASE("bad input: two processes compiling into one cache directory", "[bad-input][cuda][nvrtc][disk]") {
  if (!cuda::nvrtc_available()) {
    WARN("NVRTC not found: skipped (" << cuda::nvrtc_unavailable_reason() << ")");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("loom_shared_cache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string env = "LOOM_CACHE_DIR=" + dir.string();
  // two processes at once, on an empty directory
  std::string out1, out2;
  int s1 = -1, s2 = -1;
  {
    const pid_t p = ::fork();
    REQUIRE(p >= 0);
    if (p == 0) ::_exit(run_child("[.shared-cache-child]", {env}, nullptr));
    s2 = run_child("[.shared-cache-child]", {env}, &out2);
    int st = 0;
    ::waitpid(p, &st, 0);
    s1 = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  }
  INFO(out2);
  CHECK(s1 == 0);
  CHECK(s2 == 0);
  // every entry in the directory is complete: a third process reads all three from disk
  std::size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) entries += e.is_regular_file();
  CHECK(entries >= 3);
  std::string out3;
  CHECK(run_child("[.shared-cache-child]", {env}, &out3) == 0);
  INFO(out3);
  CHECK(out3.find("nvrtc compiles: 0") != std::string::npos);
  fs::remove_all(dir);
}
