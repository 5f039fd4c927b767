// The run-time layer of the CUDA backend without a GPU: loading NVRTC, compiling to cubins, cache
// keys, the disk cache (format, corruption, atomicity), the module cache (one compile per key),
// LOOM_DUMP_DIR, and the errors every device operation gives when there is no device.
//
// NVRTC tests skip with a visible message only where NVRTC cannot be loaded at all. The no-device
// tests skip with a message where a device is present (the GPU tests cover that case).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/cublaslt.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/disk_cache.hpp"
#include "loom/cuda/runtime/driver.hpp"
#include "loom/cuda/runtime/hash.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/library.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"
#include "loom/cuda/runtime/stream.hpp"

namespace fs = std::filesystem;
namespace lc = loom::cuda;
namespace rt = loom::cuda::runtime;

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh directory under the system's temporary folder, removed with everything in it.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("loom-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// Sets (or unsets, with nullopt) an environment variable for a scope.
struct scoped_env {
  std::string name;
  std::optional<std::string> old;
  scoped_env(std::string n, std::optional<std::string> value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~scoped_env() {
    if (old) {
      ::setenv(name.c_str(), old->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

/// A string no earlier run can have compiled, so caches miss.
std::string nonce() {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::to_string(::getpid()) + "_" + std::to_string(now) + "_" + std::to_string(counter.fetch_add(1));
}

std::string saxpy_source(const std::string& tag = "") {
  return "// " + tag +
         "\n"
         "extern \"C\" __global__ void loom_saxpy(float a, const float* __restrict__ x, float* __restrict__ y,\n"
         "                                       long long n) {\n"
         "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
         "  if (i < n) y[i] = a * x[i] + y[i];\n"
         "}\n"
         "template <class T> __global__ void loom_fill(T* p, T v, long long n) {\n"
         "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
         "  if (i < n) p[i] = v;\n"
         "}\n";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool is_elf(const std::vector<char>& image) {
  return image.size() > 4 && image[0] == '\x7f' && image[1] == 'E' && image[2] == 'L' && image[3] == 'F';
}

#define LOOM_REQUIRE_NVRTC()                                                       \
  do {                                                                             \
    if (!lc::nvrtc_available()) {                                                  \
      WARN("NVRTC not found: skipped (" << lc::nvrtc_unavailable_reason() << ")"); \
      return;                                                                      \
    }                                                                              \
  } while (0)

#define LOOM_REQUIRE_NO_DEVICE()                                                              \
  do {                                                                                        \
    if (lc::available()) {                                                                    \
      WARN("a CUDA device is present: the no-device checks are skipped (see the gpu tests)"); \
      return;                                                                                 \
    }                                                                                         \
  } while (0)

/// A synthetic program whose image is `size` bytes following a pattern derived from `seed`, so a
/// reader can tell a complete image from a torn one without trusting the cache's checksum.
lc::compiled_program patterned_program(unsigned seed, std::size_t size) {
  lc::compiled_program p;
  p.arch = "sm_90";
  p.names = {{"loom_kernel<float>", "_Z11loom_kernelIfEvv"}};
  p.image.resize(size);
  p.image[0] = static_cast<char>(seed);
  for (std::size_t i = 1; i < size; ++i) p.image[i] = static_cast<char>((seed * 131u + i * 7u) & 0xffu);
  return p;
}

bool pattern_intact(const lc::compiled_program& p) {
  if (p.image.empty()) return false;
  const unsigned seed = static_cast<unsigned char>(p.image[0]);
  for (std::size_t i = 1; i < p.image.size(); ++i) {
    if (p.image[i] != static_cast<char>((seed * 131u + i * 7u) & 0xffu)) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Without a device
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: available() is false here and says why", "[cuda][runtime]") {
  LOOM_REQUIRE_NO_DEVICE();
  CHECK_FALSE(lc::available());
  const std::string why = lc::unavailable_reason();
  INFO(why);
  CHECK(why.find("CUDA is not available") != std::string::npos);
  // On this machine the driver library itself is absent; elsewhere it may be cuInit or no device.
  if (why.find("libcuda") == std::string::npos) {
    CHECK((why.find("cuInit") != std::string::npos || why.find("no CUDA device") != std::string::npos));
  }
}

TEST_CASE("cuda runtime: every device operation throws cuda_error without a device", "[cuda][runtime]") {
  LOOM_REQUIRE_NO_DEVICE();
  const std::string why = lc::unavailable_reason();
  auto says_why = [&](auto&& op) {
    try {
      op();
      FAIL("no exception");
    } catch (const loom::cuda_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(why) != std::string::npos);
    }
  };
  says_why([] { (void)lc::device_info(); });
  says_why([] { lc::synchronize(); });
  says_why([] { (void)lc::device_memory(); });
  says_why([] { lc::stream s; });
  says_why([] { (void)lc::default_stream(); });
  says_why([] { lc::event e; });
  says_why([] { lc::detail::device_buffer b(1024); });
  says_why([] {
    rt::device_allocator a;
    (void)a.allocate(256, lc::stream_ref{});
  });
  says_why([] { lc::pinned_buffer p(4096); });
  says_why([] {
    std::vector<char> host(64);
    rt::copy_to_device(0, host.data(), host.size());
  });
  says_why([] {
    std::vector<char> host(64);
    rt::copy_to_host(host.data(), 0, host.size());
  });
  says_why([] { rt::launch(nullptr, "loom_saxpy", {1}, {128}, 0, lc::stream_ref{}, nullptr); });
  says_why([] { lc::stream_ref{}.synchronize(); });

  // cuda_error is a loom::error; nothing that needs no device throws.
  CHECK_THROWS_AS(lc::synchronize(), loom::error);
  lc::detail::device_buffer empty(0);
  CHECK(empty.empty());
  CHECK(empty.size() == 0);
  CHECK_NOTHROW(rt::default_allocator());
}

TEST_CASE("cuda runtime: the driver probe names the missing piece", "[cuda][runtime]") {
  // No such library: the message lists what was tried.
  const lc::detail::driver_state none = lc::detail::probe_driver({"libloom-no-such-driver.so.1"});
  CHECK_FALSE(none.usable);
  CHECK(none.problem.find("libloom-no-such-driver.so.1") != std::string::npos);
  CHECK(none.problem.find("not found") != std::string::npos);

  // The toolkit's stub libcuda loads but fails cuInit: the error is named. Probed in a child
  // process, so that the stub (whose soname is libcuda.so.1) never stays loaded in this one.
  const char* stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (!fs::exists(stub)) {
    WARN("no stub libcuda at " << stub << ": the cuInit-failure message is not checked");
    return;
  }
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    const lc::detail::driver_state s = lc::detail::probe_driver({stub});
    const std::string& msg = s.problem;
    const ssize_t written = ::write(fds[1], msg.data(), msg.size());
    ::_exit(written == static_cast<ssize_t>(msg.size()) && !s.usable ? 0 : 1);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  INFO(msg);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(msg.find("cuInit failed") != std::string::npos);
  CHECK(msg.find("CUDA_ERROR_STUB_LIBRARY") != std::string::npos);
}

TEST_CASE("cuda runtime: library search reports every attempt", "[cuda][runtime]") {
  std::string why;
  lc::detail::shared_library lib =
      lc::detail::open_first({"libloom-missing-a.so", "libloom-missing-b.so"}, {"/loom/nowhere"}, &why);
  CHECK_FALSE(static_cast<bool>(lib));
  CHECK(why.find("libloom-missing-a.so") != std::string::npos);
  CHECK(why.find("libloom-missing-b.so") != std::string::npos);
  CHECK(why.find("/loom/nowhere/libloom-missing-a.so") != std::string::npos);
}

TEST_CASE("cuda runtime: driver error names", "[cuda][runtime]") {
  const lc::detail::driver_api none{};
  CHECK(lc::detail::error_text(none, 2) == "CUDA_ERROR_OUT_OF_MEMORY");
  CHECK(lc::detail::error_text(none, 34) == "CUDA_ERROR_STUB_LIBRARY");
  CHECK(lc::detail::error_text(none, 12345) == "CUDA error 12345");
}

// ---------------------------------------------------------------------------------------------
// NVRTC
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: NVRTC loads and reports its version", "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  const int v = lc::nvrtc_version();
  INFO("NVRTC " << v);
  CHECK(v >= 11020);
  const std::vector<int>& archs = lc::nvrtc_supported_archs();
  if (!archs.empty()) {
    CHECK(std::is_sorted(archs.begin(), archs.end()));
    CHECK(std::find(archs.begin(), archs.end(), 80) != archs.end());
    CHECK(std::find(archs.begin(), archs.end(), 90) != archs.end());
  }
  if (!lc::available()) CHECK(lc::default_arch() == "sm_90");
}

TEST_CASE("cuda runtime: a kernel compiles to a cubin for sm_80 and sm_90", "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  const std::string src = saxpy_source(nonce());
  std::vector<char> images[2];
  int which = 0;
  for (const char* arch : {"sm_80", "sm_90"}) {
    lc::compile_options o;
    o.arch = arch;
    const auto before = rt::nvrtc_compile_count();
    const lc::compiled_program p = rt::compile_to_cubin(src, {"loom_saxpy", "loom_fill<float>"}, o);
    CHECK(rt::nvrtc_compile_count() == before + 1);
    CHECK(p.arch == arch);
    CHECK_FALSE(p.is_ptx);
    CHECK(is_elf(p.image));
    CHECK(p.image.size() > 1000);
    REQUIRE(p.names.size() == 2);
    CHECK(p.lowered_name("loom_saxpy") == "loom_saxpy");
    CHECK(p.lowered_name("loom_fill<float>") == "_Z9loom_fillIfEvPT_S0_x");
    images[which++] = p.image;
  }
  CHECK(images[0] != images[1]);
}

TEST_CASE("cuda runtime: compile options reach NVRTC", "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  const std::string src =
      "#ifndef LOOM_TILE\n#error LOOM_TILE is not defined\n#endif\n"
      "extern \"C\" __global__ void k(float* p) { p[threadIdx.x] = __expf(p[threadIdx.x]) * LOOM_TILE; }\n";
  lc::compile_options o;
  o.arch = "sm_90";
  CHECK_THROWS_AS(rt::compile_to_cubin(src, {"k"}, o), loom::jit_error);
  o.extra = {"-DLOOM_TILE=64"};
  o.fast_math = true;
  o.line_info = true;
  CHECK(is_elf(rt::compile_to_cubin(src, {"k"}, o).image));
  const rt::resolved_options r = rt::resolve_options(o);
  const std::vector<std::string> expected = {"--gpu-architecture=sm_90", "-std=c++17", "-default-device",
                                             "--use_fast_math",          "-lineinfo",  "-DLOOM_TILE=64"};
  CHECK(r.flags == expected);
}

TEST_CASE("cuda runtime: a compute_XY architecture gives PTX", "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  lc::compile_options o;
  o.arch = "compute_90";
  const lc::compiled_program p = rt::compile_to_cubin(saxpy_source(nonce()), {"loom_saxpy"}, o);
  CHECK(p.is_ptx);
  const std::string ptx(p.image.begin(), p.image.end());
  CHECK(ptx.find(".version") != std::string::npos);
  CHECK(ptx.find("loom_saxpy") != std::string::npos);
  CHECK(p.image.back() == '\0');  // cuModuleLoadData reads PTX as a C string
}

TEST_CASE("cuda runtime: a compile error throws jit_error with the log and the numbered source",
          "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  const std::string src =
      "extern \"C\" __global__ void broken(float* p) {\n"
      "  float x = p[0]\n"
      "  p[1] = x + undeclared_thing;\n"
      "}\n";
  try {
    (void)rt::compile_to_cubin(src, {"broken"}, {});
    FAIL("no exception");
  } catch (const loom::jit_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("NVRTC could not compile 'loom_kernel.cu' for sm_90") != std::string::npos);
    CHECK(msg.find("NVRTC_ERROR_COMPILATION") != std::string::npos);
    CHECK(msg.find("error") != std::string::npos);
    CHECK(msg.find("undeclared_thing") != std::string::npos);           // NVRTC's own diagnostic
    CHECK(msg.find("loom_kernel.cu(") != std::string::npos);            // the log, with NVRTC's line reference
    CHECK(msg.find("   2 |   float x = p[0]\n") != std::string::npos);  // the numbered source
    CHECK(msg.find("   3 |   p[1] = x + undeclared_thing;\n") != std::string::npos);
    CHECK(msg.find("-std=c++17") != std::string::npos);  // the options
  }
  CHECK_THROWS_AS(rt::compile_to_cubin(src, {"broken"}, {}), loom::error);
}

TEST_CASE("cuda runtime: numbered_source", "[cuda][runtime]") {
  CHECK(lc::numbered_source("a\nb") == "   1 | a\n   2 | b\n");
  CHECK(lc::numbered_source("a\n") == "   1 | a\n");
  CHECK(lc::numbered_source("") == "   1 | \n");
  std::string many;
  for (int i = 0; i < 12345; ++i) many += "x\n";
  const std::string out = lc::numbered_source(many);
  CHECK(out.substr(0, 10) == "    1 | x\n");
  CHECK(out.find("12345 | x\n") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Hash and keys
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: the hash is stable and incremental", "[cuda][runtime][hash]") {
  using lc::detail::hash128_of;
  using lc::detail::hasher;
  // Fixed values: a change here invalidates every disk cache and must come with a format bump.
  CHECK(hash128_of("", 0).hex() == "0f164a72180fc8b30b1adf0e635d35e2");
  CHECK(hash128_of("abc", 3).hex() == "dd4d947fe777c6561cc7336285b14747");
  CHECK(lc::detail::hash64("abc", 3) == UINT64_C(0xe029cba85e18f5c8));

  std::mt19937 rng(7);
  std::string s(1000, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  for (std::size_t step : {1u, 3u, 7u, 16u, 17u, 999u}) {
    hasher h;
    for (std::size_t i = 0; i < s.size(); i += step) h.bytes(s.data() + i, std::min(step, s.size() - i));
    CHECK(h.finish128() == hash128_of(s.data(), s.size()));
  }
  // Trailing zero bytes and field boundaries matter.
  const char zeros[2] = {0, 0};
  CHECK_FALSE(hash128_of(zeros, 1) == hash128_of(zeros, 2));
  CHECK_FALSE(hasher().field("ab").field("c").finish128() == hasher().field("a").field("bc").finish128());
  // Every single-bit change of a short input changes the hash.
  std::set<std::string> seen;
  unsigned char buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  seen.insert(hash128_of(buf, 8).hex());
  for (int bit = 0; bit < 64; ++bit) {
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    seen.insert(hash128_of(buf, 8).hex());
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
  CHECK(seen.size() == 65);
}

TEST_CASE("cuda runtime: cache keys cover source, names, options, architecture and versions", "[cuda][runtime][hash]") {
  lc::compile_options o;
  o.arch = "sm_90";
  const std::string src = "extern \"C\" __global__ void k(float* p) { p[0] = 1.f; }\n";
  const std::vector<std::string> names = {"k"};
  const auto key = [](const std::string& s, const std::vector<std::string>& n, const lc::compile_options& opt,
                      int version, std::string_view loom_version = "0.1.0") {
    return rt::program_key(s, n, rt::resolve_options(opt), version, loom_version);
  };
  const lc::detail::hash128 base = key(src, names, o, 13000);

  // Stable across runs and builds: a fixed input gives a fixed key.
  CHECK(base.hex() == "55dee27bcac51695df189e3f0505a916");
  CHECK(key(src, names, o, 13000) == base);
  CHECK(rt::program_key(src, names, rt::resolve_options(o), 13000) ==
        key(src, names, o, 13000, LOOM_VERSION_STRING));  // the default is this loom's version

  std::vector<lc::detail::hash128> variants;
  variants.push_back(key(src + " ", names, o, 13000));
  variants.push_back(key(src, {"k", "k2"}, o, 13000));
  variants.push_back(key(src, names, o, 12040));
  variants.push_back(key(src, names, o, 13000, "0.2.0"));
  lc::compile_options a = o;
  a.arch = "sm_80";
  variants.push_back(key(src, names, a, 13000));
  lc::compile_options f = o;
  f.fast_math = true;
  variants.push_back(key(src, names, f, 13000));
  lc::compile_options e = o;
  e.extra = {"-DX=1"};
  variants.push_back(key(src, names, e, 13000));
  lc::compile_options l = o;
  l.line_info = true;
  variants.push_back(key(src, names, l, 13000));
  for (const auto& v : variants) CHECK_FALSE(v == base);
  for (std::size_t i = 0; i < variants.size(); ++i) {
    for (std::size_t j = i + 1; j < variants.size(); ++j) CHECK_FALSE(variants[i] == variants[j]);
  }
}

// ---------------------------------------------------------------------------------------------
// Disk cache
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: disk cache stores and reads back the same bytes", "[cuda][runtime][disk]") {
  temp_dir dir;
  rt::disk_cache cache(dir.path / "sub" / "dir");  // created on demand
  const lc::detail::hash128 key = lc::detail::hash128_of("key", 3);
  lc::compiled_program out;
  CHECK(cache.load(key, out) == rt::disk_lookup::missing);

  lc::compiled_program p = patterned_program(3, 10007);
  p.is_ptx = true;
  p.names.push_back({"second", "_Z6secondv"});
  REQUIRE(cache.store(key, p));
  CHECK(fs::exists(dir.path / "sub" / "dir" / (key.hex() + ".loomjit")));
  CHECK(cache.entry_path(key).filename().string() == key.hex() + ".loomjit");
  REQUIRE(cache.load(key, out) == rt::disk_lookup::hit);
  CHECK(out.image == p.image);
  CHECK(out.arch == p.arch);
  CHECK(out.is_ptx);
  CHECK(out.names == p.names);

  // Overwriting replaces; no temporary file is left behind.
  const lc::compiled_program q = patterned_program(9, 77);
  REQUIRE(cache.store(key, q));
  REQUIRE(cache.load(key, out) == rt::disk_lookup::hit);
  CHECK(out.image == q.image);
  CHECK_FALSE(out.is_ptx);
  int files = 0;
  for (const auto& entry : fs::directory_iterator(cache.directory())) {
    ++files;
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  }
  CHECK(files == 1);
}

TEST_CASE("cuda runtime: disk cache detects corrupt entries", "[cuda][runtime][disk]") {
  temp_dir dir;
  rt::disk_cache cache(dir.path);
  const lc::detail::hash128 key = lc::detail::hash128_of("corrupt", 7);
  const lc::compiled_program p = patterned_program(5, 4096);
  REQUIRE(cache.store(key, p));
  const fs::path file = cache.entry_path(key);
  const std::string good = read_file(file);
  REQUIRE(good.size() > 48 + 4096);

  auto corrupted = [&](const std::string& bytes) {
    write_file(file, bytes);
    lc::compiled_program out;
    return cache.load(key, out);
  };
  std::string s;
  SECTION("truncated") { s = good.substr(0, good.size() - 1); }
  SECTION("truncated inside the header") { s = good.substr(0, 20); }
  SECTION("a flipped byte in the payload") {
    s = good;
    s[s.size() / 2] = static_cast<char>(s[s.size() / 2] ^ 0x10);
  }
  SECTION("a flipped byte in the names") {
    s = good;
    s[48 + 12] = static_cast<char>(s[48 + 12] ^ 1);
  }
  SECTION("wrong magic") {
    s = good;
    s[0] = 'X';
  }
  SECTION("wrong format version") {
    s = good;
    s[8] = 2;
  }
  SECTION("zero length") { s.clear(); }
  SECTION("longer than its header says") { s = good + "extra"; }
  SECTION("another key's entry renamed") {
    const lc::detail::hash128 other = lc::detail::hash128_of("other", 5);
    REQUIRE(cache.store(other, p));
    s = read_file(cache.entry_path(other));
  }
  CHECK(corrupted(s) == rt::disk_lookup::corrupt);
  write_file(file, good);
  lc::compiled_program out;
  CHECK(cache.load(key, out) == rt::disk_lookup::hit);
}

TEST_CASE("cuda runtime: a corrupt disk entry is recompiled and overwritten", "[cuda][runtime][disk][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  temp_dir dir;
  rt::disk_cache disk(dir.path);
  const std::string src = saxpy_source(nonce());
  lc::compile_options o;
  o.arch = "sm_80";
  const std::vector<std::string> names = {"loom_saxpy"};

  std::vector<char> image;
  {
    rt::module_cache first(&disk);
    const auto before = rt::nvrtc_compile_count();
    image = first.program(src, names, o)->image;
    CHECK(rt::nvrtc_compile_count() == before + 1);
    CHECK(first.stats().disk_writes == 1);
  }
  const lc::detail::hash128 key = rt::program_key(src, names, rt::resolve_options(o), lc::nvrtc_version());
  const fs::path file = disk.entry_path(key);
  REQUIRE(fs::exists(file));
  {
    rt::module_cache second(&disk);  // a new process, in effect: memory empty, disk warm
    const auto before = rt::nvrtc_compile_count();
    CHECK(second.program(src, names, o)->image == image);
    CHECK(rt::nvrtc_compile_count() == before);
    CHECK(second.stats().disk_hits == 1);
  }
  const std::string good = read_file(file);
  std::string bad;
  SECTION("truncated") { bad = good.substr(0, good.size() / 2); }
  SECTION("flipped payload byte") {
    bad = good;
    bad[good.size() - 100] = static_cast<char>(bad[good.size() - 100] ^ 0x40);
  }
  SECTION("wrong magic") {
    bad = good;
    bad[3] = '?';
  }
  SECTION("zero length") { bad.clear(); }
  write_file(file, bad);
  rt::module_cache third(&disk);
  const auto before = rt::nvrtc_compile_count();
  CHECK(third.program(src, names, o)->image == image);
  CHECK(rt::nvrtc_compile_count() == before + 1);
  CHECK(third.stats().disk_rejected == 1);
  CHECK(third.stats().disk_writes == 1);
  lc::compiled_program reread;
  REQUIRE(disk.load(key, reread) == rt::disk_lookup::hit);  // overwritten with a good entry
  CHECK(reread.image == image);
}

TEST_CASE("cuda runtime: disk cache directory from the environment", "[cuda][runtime][disk]") {
  scoped_env flag("LOOM_DISK_CACHE", std::nullopt);
  scoped_env dir("LOOM_CACHE_DIR", std::nullopt);
  scoped_env xdg("XDG_CACHE_HOME", std::nullopt);
  scoped_env home("HOME", "/home/someone");
  CHECK(rt::disk_cache::directory_from_environment() == fs::path("/home/someone/.cache/loom"));
  {
    scoped_env x("XDG_CACHE_HOME", "/xdg");
    CHECK(rt::disk_cache::directory_from_environment() == fs::path("/xdg/loom"));
    scoped_env d("LOOM_CACHE_DIR", "/elsewhere/cache");
    CHECK(rt::disk_cache::directory_from_environment() == fs::path("/elsewhere/cache"));
    scoped_env off("LOOM_DISK_CACHE", "0");
    CHECK(rt::disk_cache::directory_from_environment().empty());
  }
  {
    scoped_env empty("LOOM_CACHE_DIR", "");
    CHECK(rt::disk_cache::directory_from_environment().empty());
    rt::disk_cache off(rt::disk_cache::directory_from_environment());
    CHECK_FALSE(off.enabled());
    lc::compiled_program out;
    CHECK(off.load(lc::detail::hash128{}, out) == rt::disk_lookup::missing);
    CHECK_FALSE(off.store(lc::detail::hash128{}, patterned_program(1, 10)));
  }
}

TEST_CASE("cuda runtime: an unusable cache directory turns disk caching off, compiling still works",
          "[cuda][runtime][disk]") {
  temp_dir dir;
  write_file(dir.path / "a_file", "not a directory");
  rt::disk_cache disk(dir.path / "a_file" / "cache");
  CHECK(disk.enabled());
  CHECK_FALSE(disk.store(lc::detail::hash128{1, 2}, patterned_program(1, 100)));
  CHECK_FALSE(disk.enabled());
  if (!lc::nvrtc_available()) return;
  rt::module_cache cache(&disk);
  lc::compile_options o;
  o.arch = "sm_90";
  CHECK(is_elf(cache.program(saxpy_source(nonce()), {"loom_saxpy"}, o)->image));
  CHECK(cache.stats().compiles == 1);
  CHECK(cache.stats().disk_writes == 0);
}

TEST_CASE("cuda runtime: disk cache writes are atomic across threads and processes", "[cuda][runtime][disk]") {
  temp_dir dir;
  const lc::detail::hash128 key = lc::detail::hash128_of("shared entry", 12);
  constexpr std::size_t image_bytes = std::size_t{3} << 20;  // large, so that a torn write would be seen
  const auto duration = std::chrono::milliseconds(1500);

  // The child process is forked before this process starts its threads.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    rt::disk_cache cache(dir.path);
    int bad = 0;
    const auto end = std::chrono::steady_clock::now() + duration;
    for (unsigned i = 0; std::chrono::steady_clock::now() < end; ++i) {
      if (i % 2 == 0) {
        cache.store(key, patterned_program(200 + i % 50, image_bytes + i % 4096));
      } else {
        lc::compiled_program out;
        const rt::disk_lookup r = cache.load(key, out);
        if (r == rt::disk_lookup::corrupt || (r == rt::disk_lookup::hit && !pattern_intact(out))) ++bad;
      }
    }
    ::_exit(bad == 0 ? 0 : 1);
  }

  rt::disk_cache cache(dir.path);
  std::atomic<int> corrupt{0}, torn{0}, hits{0}, writes{0};
  std::vector<std::thread> threads;
  const auto end = std::chrono::steady_clock::now() + duration;
  for (unsigned t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (unsigned i = 0; std::chrono::steady_clock::now() < end; ++i) {
        if ((i + t) % 2 == 0) {
          if (cache.store(key, patterned_program(t * 40 + i % 40, image_bytes + (i * 13) % 4096))) ++writes;
        } else {
          lc::compiled_program out;
          const rt::disk_lookup r = cache.load(key, out);
          if (r == rt::disk_lookup::corrupt) ++corrupt;
          if (r == rt::disk_lookup::hit) {
            ++hits;
            if (!pattern_intact(out)) ++torn;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int status = 0;
  ::waitpid(child, &status, 0);
  INFO("writes " << writes << ", hits " << hits);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // the child never read a bad entry either
  CHECK(corrupt == 0);
  CHECK(torn == 0);
  CHECK(writes > 0);
  CHECK(hits > 0);
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Module cache
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: 8 threads asking for one new key compile it once", "[cuda][runtime][cache][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  rt::module_cache cache(nullptr);
  const std::string src = saxpy_source(nonce());
  lc::compile_options o;
  o.arch = "sm_90";
  constexpr int n = 8;
  std::latch start(n);
  std::vector<std::shared_ptr<const lc::compiled_program>> got(n);
  const auto before = rt::nvrtc_compile_count();
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      got[static_cast<std::size_t>(t)] = cache.program(src, {"loom_saxpy"}, o);
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(rt::nvrtc_compile_count() == before + 1);
  CHECK(cache.stats().compiles == 1);
  CHECK(cache.stats().requests == n);
  for (const auto& p : got) CHECK(p == got[0]);  // the very same program object
  REQUIRE(got[0] != nullptr);
  CHECK(is_elf(got[0]->image));

  // A later request is a memory hit; another architecture is another key.
  CHECK(cache.program(src, {"loom_saxpy"}, o) == got[0]);
  CHECK(rt::nvrtc_compile_count() == before + 1);
  o.arch = "sm_80";
  CHECK(cache.program(src, {"loom_saxpy"}, o) != got[0]);
  CHECK(rt::nvrtc_compile_count() == before + 2);
}

TEST_CASE("cuda runtime: a failed compile reaches every waiter and is not cached", "[cuda][runtime][cache][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  rt::module_cache cache(nullptr);
  const std::string src = "// " + nonce() + "\nextern \"C\" __global__ void k(float* p) { p[0] = ; }\n";
  constexpr int n = 8;
  std::latch start(n);
  std::atomic<int> jit_errors{0};
  const auto before = rt::nvrtc_compile_count();
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        (void)cache.program(src, {"k"}, {});
      } catch (const loom::jit_error& e) {
        if (std::string(e.what()).find("   2 | extern") != std::string::npos) ++jit_errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(jit_errors == n);
  const auto after = rt::nvrtc_compile_count();
  // Threads that arrived during the compile shared it; one that came after the failure retried.
  CHECK(after - before >= 1);
  CHECK(after - before <= n);
  CHECK_THROWS_AS(cache.program(src, {"k"}, {}), loom::jit_error);
  CHECK(rt::nvrtc_compile_count() == after + 1);  // failures are not cached
}

TEST_CASE("cuda runtime: cached_kernel compiles, then reports the missing device", "[cuda][runtime][cache][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  LOOM_REQUIRE_NO_DEVICE();
  rt::module_cache cache(nullptr);
  static rt::cached_kernel kernel;  // as generated code keeps it
  int made = 0;
  const std::string src = saxpy_source(nonce());
  auto make = [&] {
    ++made;
    return lc::kernel_request{src, "loom_saxpy", {}, {}};
  };
  for (int attempt = 1; attempt <= 2; ++attempt) {
    try {
      (void)kernel.get(cache, make);
      FAIL("no exception");
    } catch (const loom::cuda_error& e) {
      CHECK(std::string(e.what()).find(lc::unavailable_reason()) != std::string::npos);
    }
    CHECK(kernel.peek() == nullptr);  // a failure is not stored
    CHECK(made == attempt);
  }
  CHECK(cache.stats().compiles == 1);  // the program itself was compiled once and kept
}

TEST_CASE("cuda runtime: LOOM_DUMP_DIR receives source, log and cubin size", "[cuda][runtime][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  temp_dir dir;
  scoped_env dump("LOOM_DUMP_DIR", (dir.path / "dumps").string());
  const std::string src = saxpy_source(nonce());
  lc::compile_options o;
  o.arch = "sm_90";
  const lc::compiled_program p = rt::compile_to_cubin(src, {"loom_saxpy"}, o);
  const std::string hex = rt::program_key(src, {"loom_saxpy"}, rt::resolve_options(o), lc::nvrtc_version()).hex();
  const fs::path base = dir.path / "dumps" / hex;
  REQUIRE(fs::exists(base.string() + ".cu"));
  CHECK(read_file(base.string() + ".cu") == src);
  CHECK(fs::exists(base.string() + ".log"));
  const std::string txt = read_file(base.string() + ".txt");
  INFO(txt);
  CHECK(txt.find("cubin_bytes: " + std::to_string(p.image.size()) + "\n") != std::string::npos);
  CHECK(txt.find("arch: sm_90") != std::string::npos);

  // A failed compile is dumped too, with its log.
  const std::string bad = "// " + nonce() + "\n__global__ void k() { nope; }\n";
  CHECK_THROWS_AS(rt::compile_to_cubin(bad, {}, o), loom::jit_error);
  const fs::path bad_base =
      dir.path / "dumps" / rt::program_key(bad, {}, rt::resolve_options(o), lc::nvrtc_version()).hex();
  CHECK(read_file(bad_base.string() + ".txt").find("failed") != std::string::npos);
  CHECK(read_file(bad_base.string() + ".log").find("nope") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Memory, launch and cuBLASLt pieces that need no device
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda runtime: allocator size classes", "[cuda][runtime][memory]") {
  using A = rt::device_allocator;
  static_assert(A::size_class(1) == 512);
  CHECK(A::size_class(512) == 512);
  CHECK(A::size_class(513) == 1024);
  CHECK(A::size_class(1000) == 1024);
  CHECK(A::size_class(std::size_t{1} << 20) == std::size_t{1} << 20);
  CHECK(A::size_class((std::size_t{1} << 20) + 1) == (std::size_t{5} << 18));  // 1.25 MiB
  CHECK(A::size_class(std::size_t{3} << 20) == std::size_t{3} << 20);
  CHECK(A::size_class((std::size_t{3} << 20) + 1) == std::size_t{7} << 19);  // 3.5 MiB
  CHECK(A::size_class(std::size_t{1} << 30) == std::size_t{1} << 30);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 10000; ++i) {
    const std::size_t bytes = 1 + rng() % (std::size_t{1} << (1 + rng() % 36));
    const std::size_t cls = A::size_class(bytes);
    CHECK(cls >= bytes);
    CHECK(A::size_class(cls) == cls);  // a class is its own class
    if (bytes > (std::size_t{1} << 20)) CHECK(cls - bytes <= bytes / 4);
    if (bytes <= (std::size_t{1} << 20)) CHECK(cls - bytes < 512);
  }
}

TEST_CASE("cuda runtime: launch_dim", "[cuda][runtime]") {
  constexpr lc::launch_dim d(70000, 3, 2);
  static_assert(d.count() == 420000);
  constexpr lc::launch_dim one;
  static_assert(one.x == 1 && one.y == 1 && one.z == 1);
}

TEST_CASE("cuda runtime: cuBLASLt loads", "[cuda][runtime][cublaslt]") {
  if (!rt::cublaslt_available()) {
    WARN("cuBLASLt not found: skipped (" << lc::detail::cublaslt_state_once().problem << ")");
    return;
  }
  INFO("cuBLASLt " << rt::cublaslt_version());
  CHECK(rt::cublaslt_version() >= 110000);
  if (!lc::available()) {
    CHECK_THROWS_AS(rt::cublaslt_handle(), loom::cuda_error);
  }
}
