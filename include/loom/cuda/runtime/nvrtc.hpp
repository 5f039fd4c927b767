// loom/cuda/runtime/nvrtc.hpp: compile CUDA C++ to a cubin at run time with NVRTC.
//
// NVRTC is loaded with dlopen like the driver, and needs no GPU: kernels can be generated and
// compiled (and their cubins cached) on a machine without one, which is what the tests do.
//
// Compilation goes straight to a cubin (SASS) for one architecture: no PTX, so the driver never
// JIT-compiles at load time and the first launch costs only the NVRTC compile. The one exception
// is a device newer than the NVRTC in use knows: then loom asks for PTX of the newest
// architecture NVRTC supports, and the driver finishes the job for the device.
//
// Everything that changes the produced code (source, every option, the architecture, the NVRTC
// version, loom's version) goes into program_key(): the key of both the in-memory and the disk
// cache, and the name of LOOM_DUMP_DIR's files.
//
// A failed compile throws loom::jit_error holding NVRTC's log and the source with line numbers,
// since a generated kernel has no file a user could open.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/error.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/hash.hpp"
#include "loom/cuda/runtime/library.hpp"

namespace loom::cuda {

/// How to compile a program.
struct compile_options {
  /// "sm_90", "sm_80", ... (a cubin) or "compute_90" (PTX). Empty: the device's architecture,
  /// or sm_90 when there is no device.
  std::string arch;
  bool fast_math = false;                       ///< --use_fast_math
  bool line_info = false;                       ///< -lineinfo, for profilers
  std::vector<std::string> extra;               ///< further NVRTC options, verbatim, e.g. "-DTILE=64"
  std::string program_name = "loom_kernel.cu";  ///< the file name NVRTC's messages use
};

/// A compiled program: the image to load and the mangled names of its kernels.
struct compiled_program {
  std::string arch;         ///< what it was compiled for: "sm_90" (or "compute_90" for PTX)
  bool is_ptx = false;      ///< image is NUL-terminated PTX rather than a cubin
  std::vector<char> image;  ///< the cubin (or PTX)
  /// (name expression, lowered name) for every name expression compiled with the program.
  std::vector<std::pair<std::string, std::string>> names;
  std::string log;  ///< NVRTC's log (warnings); empty when read from the disk cache

  /// The lowered (mangled) name of `name_expression`; a name that was not registered is taken
  /// to be an extern "C" kernel and returned as is.
  [[nodiscard]] std::string lowered_name(const std::string& name_expression) const {
    for (const auto& [expr, lowered] : names) {
      if (expr == name_expression) return lowered;
    }
    return name_expression;
  }
};

}  // namespace loom::cuda

namespace loom::cuda::detail {

// ---------------------------------------------------------------------------------------------
// The NVRTC C API, declared as NVRTC documents it
// ---------------------------------------------------------------------------------------------

struct nvrtc_program_st;  // opaque
using nvrtc_program = nvrtc_program_st*;
using nvrtc_result = int;

namespace nvrtc_code {
inline constexpr nvrtc_result success = 0;
inline constexpr nvrtc_result error_compilation = 6;
}  // namespace nvrtc_code

struct nvrtc_api {
  nvrtc_result (*nvrtcVersion)(int*, int*) = nullptr;
  const char* (*nvrtcGetErrorString)(nvrtc_result) = nullptr;
  nvrtc_result (*nvrtcCreateProgram)(nvrtc_program*, const char*, const char*, int, const char* const*,
                                     const char* const*) = nullptr;
  nvrtc_result (*nvrtcDestroyProgram)(nvrtc_program*) = nullptr;
  nvrtc_result (*nvrtcAddNameExpression)(nvrtc_program, const char*) = nullptr;
  nvrtc_result (*nvrtcCompileProgram)(nvrtc_program, int, const char* const*) = nullptr;
  nvrtc_result (*nvrtcGetProgramLogSize)(nvrtc_program, std::size_t*) = nullptr;
  nvrtc_result (*nvrtcGetProgramLog)(nvrtc_program, char*) = nullptr;
  nvrtc_result (*nvrtcGetCUBINSize)(nvrtc_program, std::size_t*) = nullptr;
  nvrtc_result (*nvrtcGetCUBIN)(nvrtc_program, char*) = nullptr;
  nvrtc_result (*nvrtcGetPTXSize)(nvrtc_program, std::size_t*) = nullptr;
  nvrtc_result (*nvrtcGetPTX)(nvrtc_program, char*) = nullptr;
  nvrtc_result (*nvrtcGetLoweredName)(nvrtc_program, const char*, const char**) = nullptr;
  // optional (NVRTC 11.2 and later)
  nvrtc_result (*nvrtcGetNumSupportedArchs)(int*) = nullptr;
  nvrtc_result (*nvrtcGetSupportedArchs)(int*) = nullptr;
};

struct nvrtc_state {
  shared_library library;
  nvrtc_api api;
  int major = 0;
  int minor = 0;
  std::vector<int> supported_archs;  // e.g. {75, 80, 86, ..., 90, 100, 120}; empty if unknown
  bool usable = false;
  std::string problem;
};

/// Opens NVRTC from `names` (then the toolkit folders) and binds it. Never throws.
inline nvrtc_state probe_nvrtc(const std::vector<std::string>& names) noexcept {
  nvrtc_state s;
  try {
    std::string tried;
    s.library = open_first(names, toolkit_library_dirs(), &tried);
    if (!s.library) {
      s.problem = "loom: NVRTC (the CUDA run-time compiler) was not found; tried:" + tried;
      return s;
    }
    nvrtc_api& a = s.api;
    std::string missing;
    auto need = [&](auto& fn, const char* symbol) {
      if (!s.library.bind(fn, symbol)) missing += std::string(missing.empty() ? "" : ", ") + symbol;
    };
    need(a.nvrtcVersion, "nvrtcVersion");
    need(a.nvrtcGetErrorString, "nvrtcGetErrorString");
    need(a.nvrtcCreateProgram, "nvrtcCreateProgram");
    need(a.nvrtcDestroyProgram, "nvrtcDestroyProgram");
    need(a.nvrtcAddNameExpression, "nvrtcAddNameExpression");
    need(a.nvrtcCompileProgram, "nvrtcCompileProgram");
    need(a.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
    need(a.nvrtcGetProgramLog, "nvrtcGetProgramLog");
    need(a.nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
    need(a.nvrtcGetCUBIN, "nvrtcGetCUBIN");
    need(a.nvrtcGetPTXSize, "nvrtcGetPTXSize");
    need(a.nvrtcGetPTX, "nvrtcGetPTX");
    need(a.nvrtcGetLoweredName, "nvrtcGetLoweredName");
    s.library.bind(a.nvrtcGetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
    s.library.bind(a.nvrtcGetSupportedArchs, "nvrtcGetSupportedArchs");
    if (!missing.empty()) {
      s.problem = "loom: NVRTC at " + s.library.file() + " lacks " + missing + " (NVRTC 11.2 or newer is needed)";
      return s;
    }
    if (a.nvrtcVersion(&s.major, &s.minor) != nvrtc_code::success) {
      s.problem = "loom: nvrtcVersion failed for " + s.library.file();
      return s;
    }
    int count = 0;
    if (a.nvrtcGetNumSupportedArchs != nullptr && a.nvrtcGetSupportedArchs != nullptr &&
        a.nvrtcGetNumSupportedArchs(&count) == nvrtc_code::success && count > 0) {
      s.supported_archs.resize(static_cast<std::size_t>(count));
      if (a.nvrtcGetSupportedArchs(s.supported_archs.data()) != nvrtc_code::success) s.supported_archs.clear();
      std::sort(s.supported_archs.begin(), s.supported_archs.end());
    }
    s.usable = true;
  } catch (...) {
    s.usable = false;
    if (s.problem.empty()) s.problem = "loom: out of host memory while loading NVRTC";
  }
  return s;
}

/// The sonames tried for NVRTC, newest first.
inline std::vector<std::string> nvrtc_library_names() {
  return {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11", "libnvrtc.so"};
}

/// The process-wide NVRTC, loaded once on first use.
inline const nvrtc_state& nvrtc_state_once() noexcept {
  static const nvrtc_state* const state = [] {
    auto* s = new nvrtc_state(probe_nvrtc(nvrtc_library_names()));
    s->library.release();
    return s;
  }();
  return *state;
}

/// NVRTC's functions; throws loom::cuda_error saying what is missing when it cannot be loaded.
inline const nvrtc_api& nvrtc() {
  const nvrtc_state& s = nvrtc_state_once();
  if (!s.usable) throw cuda_error(s.problem);
  return s.api;
}

inline std::string nvrtc_error_text(nvrtc_result r) {
  const nvrtc_state& s = nvrtc_state_once();
  const char* text = s.api.nvrtcGetErrorString != nullptr ? s.api.nvrtcGetErrorString(r) : nullptr;
  return text != nullptr ? std::string(text) : "NVRTC error " + std::to_string(r);
}

/// Counts nvrtcCompileProgram calls in this process (for tests and statistics).
inline std::atomic<std::uint64_t>& nvrtc_compile_counter() noexcept {
  static std::atomic<std::uint64_t> count{0};
  return count;
}

}  // namespace loom::cuda::detail

namespace loom::cuda {

/// True when NVRTC loads. Never throws.
inline bool nvrtc_available() noexcept { return detail::nvrtc_state_once().usable; }

/// Why nvrtc_available() is false; empty when it is true.
inline const std::string& nvrtc_unavailable_reason() noexcept { return detail::nvrtc_state_once().problem; }

/// NVRTC's version as major * 1000 + minor * 10, like CUDA_VERSION: 13000 for NVRTC 13.0.
/// Throws loom::cuda_error when NVRTC cannot be loaded.
inline int nvrtc_version() {
  detail::nvrtc();
  const detail::nvrtc_state& s = detail::nvrtc_state_once();
  return s.major * 1000 + s.minor * 10;
}

/// The compute capabilities NVRTC can produce cubins for, ascending: {75, 80, ..., 90, ...}.
inline const std::vector<int>& nvrtc_supported_archs() {
  detail::nvrtc();
  return detail::nvrtc_state_once().supported_archs;
}

/// The architecture loom compiles for by default: the device's ("sm_90" on an H100); "sm_90"
/// without a device; "compute_XY" (PTX for the driver to finish) for a device newer than NVRTC.
inline std::string default_arch() {
  if (!available()) return "sm_90";
  try {
    const device_properties& p = device_info();
    if (nvrtc_available()) {
      const std::vector<int>& archs = nvrtc_supported_archs();
      if (!archs.empty() && p.major * 10 + p.minor > archs.back()) return "compute_" + std::to_string(archs.back());
    }
    return p.arch;
  } catch (const error&) {
    return "sm_90";  // the device failed: a launch will report it
  }
}

/// `source` with right-aligned line numbers, as jit_error messages show it:
///      1 | extern "C" __global__ void k(float* p) {
///      2 |   p[0] = 1
inline std::string numbered_source(std::string_view source) {
  std::size_t lines = 1;
  for (char c : source) lines += c == '\n' ? 1 : 0;
  const std::size_t width = std::max<std::size_t>(4, std::to_string(lines).size());
  std::string out;
  out.reserve(source.size() + lines * (width + 4));
  std::size_t number = 1;
  std::size_t begin = 0;
  do {
    std::size_t end = source.find('\n', begin);
    if (end == std::string_view::npos) end = source.size();
    const std::string n = std::to_string(number++);
    out.append(width - n.size(), ' ').append(n).append(" | ").append(source.substr(begin, end - begin)).append("\n");
    begin = end + 1;
  } while (begin < source.size());
  return out;
}

}  // namespace loom::cuda

namespace loom::cuda::runtime {

/// The options of a compile with everything defaulted made explicit: what NVRTC is given and
/// what the cache key covers.
struct resolved_options {
  std::string arch;                ///< "sm_90" or "compute_90"
  std::vector<std::string> flags;  ///< the NVRTC command line
  std::string program_name;
};

/// Resolves `o` against the device (or sm_90) into NVRTC's command line.
inline resolved_options resolve_options(const compile_options& o) {
  resolved_options r;
  r.arch = o.arch.empty() ? default_arch() : o.arch;
  r.program_name = o.program_name.empty() ? std::string("loom_kernel.cu") : o.program_name;
  r.flags.push_back("--gpu-architecture=" + r.arch);
  r.flags.emplace_back("-std=c++17");
  r.flags.emplace_back("-default-device");
  if (o.fast_math) r.flags.emplace_back("--use_fast_math");
  if (o.line_info) r.flags.emplace_back("-lineinfo");
  for (const std::string& e : o.extra) r.flags.push_back(e);
  return r;
}

/// The cache key of a program: a stable hash of the source, the name expressions, the resolved
/// options (architecture included), the NVRTC version and loom's version.
inline detail::hash128 program_key(std::string_view source, const std::vector<std::string>& name_expressions,
                                   const resolved_options& options, int nvrtc_version_number,
                                   std::string_view loom_version = LOOM_VERSION_STRING) {
  detail::hasher h(0x6c6f6f6d2d6a6974ull);  // "loom-jit"
  h.field("loom.program.v1").field(loom_version).u64(static_cast<std::uint64_t>(nvrtc_version_number));
  h.field(options.arch).field(options.program_name).u64(options.flags.size());
  for (const std::string& f : options.flags) h.field(f);
  h.u64(name_expressions.size());
  for (const std::string& n : name_expressions) h.field(n);
  h.field(source);
  return h.finish128();
}

/// How many times this process has run nvrtcCompileProgram.
inline std::uint64_t nvrtc_compile_count() noexcept { return detail::nvrtc_compile_counter().load(); }

namespace detail_dump {

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

/// LOOM_DUMP_DIR: writes <key>.cu, <key>.log and <key>.txt (what was compiled, the image size).
/// Best effort: a dump that cannot be written never fails the compile.
inline void dump_compile(const detail::hash128& key, std::string_view source, const resolved_options& options,
                         const std::string& log, const std::string& outcome) noexcept {
  try {
    const char* dir = std::getenv("LOOM_DUMP_DIR");
    if (dir == nullptr || dir[0] == '\0') return;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const std::filesystem::path base = std::filesystem::path(dir) / key.hex();
    std::ofstream(base.string() + ".cu", std::ios::binary)
        .write(source.data(), static_cast<std::streamsize>(source.size()));
    std::ofstream(base.string() + ".log", std::ios::binary).write(log.data(), static_cast<std::streamsize>(log.size()));
    std::ofstream txt(base.string() + ".txt", std::ios::binary);
    txt << outcome << "\narch: " << options.arch << "\noptions: " << join(options.flags)
        << "\nprogram: " << options.program_name << "\nloom: " << LOOM_VERSION_STRING << "\n";
  } catch (...) {
  }
}

}  // namespace detail_dump

/// Compiles with options already resolved; `key` names the dump files. See compile_to_cubin.
inline compiled_program compile_resolved(std::string_view source, const std::vector<std::string>& name_expressions,
                                         const resolved_options& options, const detail::hash128& key) {
  const detail::nvrtc_api& n = detail::nvrtc();
  const std::string text(source);  // NVRTC wants a NUL-terminated string
  detail::nvrtc_program prog = nullptr;
  if (const detail::nvrtc_result r =
          n.nvrtcCreateProgram(&prog, text.c_str(), options.program_name.c_str(), 0, nullptr, nullptr);
      r != detail::nvrtc_code::success) {
    throw jit_error("loom: nvrtcCreateProgram failed: " + detail::nvrtc_error_text(r));
  }
  struct program_guard {
    const detail::nvrtc_api& n;
    detail::nvrtc_program& p;
    ~program_guard() { n.nvrtcDestroyProgram(&p); }
  } guard{n, prog};

  for (const std::string& name : name_expressions) {
    if (const detail::nvrtc_result r = n.nvrtcAddNameExpression(prog, name.c_str()); r != detail::nvrtc_code::success) {
      throw jit_error("loom: nvrtcAddNameExpression(\"" + name + "\") failed: " + detail::nvrtc_error_text(r));
    }
  }
  std::vector<const char*> argv;
  argv.reserve(options.flags.size());
  for (const std::string& f : options.flags) argv.push_back(f.c_str());
  const detail::nvrtc_result status = n.nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
  detail::nvrtc_compile_counter().fetch_add(1);

  std::string log;
  std::size_t log_size = 0;
  if (n.nvrtcGetProgramLogSize(prog, &log_size) == detail::nvrtc_code::success && log_size > 1) {
    log.resize(log_size);
    if (n.nvrtcGetProgramLog(prog, log.data()) != detail::nvrtc_code::success) log.clear();
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }

  if (status != detail::nvrtc_code::success) {
    detail_dump::dump_compile(key, source, options, log, "failed: " + detail::nvrtc_error_text(status));
    std::string msg = "loom: NVRTC could not compile '" + options.program_name + "' for " + options.arch + ": " +
                      detail::nvrtc_error_text(status) + "\noptions: " + detail_dump::join(options.flags) +
                      "\n--- NVRTC log ---\n" + (log.empty() ? std::string("(empty)") : log) + "\n--- source ---\n" +
                      numbered_source(source);
    throw jit_error(msg);
  }

  compiled_program out;
  out.arch = options.arch;
  out.is_ptx = options.arch.rfind("compute_", 0) == 0;
  std::size_t size = 0;
  detail::nvrtc_result r = out.is_ptx ? n.nvrtcGetPTXSize(prog, &size) : n.nvrtcGetCUBINSize(prog, &size);
  if (r == detail::nvrtc_code::success) {
    out.image.resize(size);
    r = out.is_ptx ? n.nvrtcGetPTX(prog, out.image.data()) : n.nvrtcGetCUBIN(prog, out.image.data());
  }
  if (r != detail::nvrtc_code::success || out.image.empty()) {
    throw jit_error("loom: NVRTC compiled '" + options.program_name + "' for " + options.arch + " but gave no " +
                    (out.is_ptx ? "PTX" : "cubin") + " (" + detail::nvrtc_error_text(r) +
                    "); is the architecture a real one (sm_XY)?");
  }
  for (const std::string& name : name_expressions) {
    const char* lowered = nullptr;
    if (n.nvrtcGetLoweredName(prog, name.c_str(), &lowered) != detail::nvrtc_code::success || lowered == nullptr) {
      throw jit_error("loom: NVRTC has no lowered name for '" + name + "' in '" + options.program_name + "'");
    }
    out.names.emplace_back(name, lowered);
  }
  out.log = std::move(log);
  detail_dump::dump_compile(
      key, source, options, out.log,
      std::string(out.is_ptx ? "ptx_bytes: " : "cubin_bytes: ") + std::to_string(out.image.size()));
  return out;
}

/// Compiles `source` with NVRTC (no GPU needed) to a cubin for `options.arch` (default: the
/// device's, or sm_90), registering `name_expressions` (kernel names, or template instances such
/// as "loom_kernel<float, 4>") so their lowered names can be looked up. Always uncached: see
/// module_cache for the cached path. Throws loom::jit_error with the log and the numbered source
/// on a compile error, loom::cuda_error when NVRTC is missing.
inline compiled_program compile_to_cubin(std::string_view source, const std::vector<std::string>& name_expressions,
                                         const compile_options& options = {}) {
  detail::nvrtc();
  const resolved_options resolved = resolve_options(options);
  return compile_resolved(source, name_expressions, resolved,
                          program_key(source, name_expressions, resolved, nvrtc_version()));
}

}  // namespace loom::cuda::runtime
