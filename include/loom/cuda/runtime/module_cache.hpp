// loom/cuda/runtime/module_cache.hpp: compile once per key, load once, find kernels without a lock.
//
// Three levels, from cold to hot:
//
// 1. module_cache::program(): key -> compiled program. The first thread to ask for a key becomes
//    its builder: it reads the disk cache or runs NVRTC, outside the cache's lock, while every
//    other thread asking for that key waits on the same shared_future. So one compile per key,
//    however many threads ask, and threads asking for *other* keys are not held up. A failed
//    build reaches every waiter as the same exception and its slot is removed, so a failure is
//    never cached as a success (the next request tries again). Works without a GPU.
// 2. module_cache::kernel(): the program's module loaded into device 0's context (once per key)
//    and the kernel's CUfunction with its attributes, as a kernel_handle that lives as long as the
//    process. Costs a hash of the source and a lock: fine once per kernel, too much per launch.
// 3. cached_kernel: what generated code keeps per expression type and layout class, as a
//    function-local static. Its get() is one acquire load of an atomic pointer once filled; only
//    the first call (or calls racing it) takes its mutex, builds the request and asks level 2.
//
// Nothing is ever unloaded: modules stay for the process (kernel_handle pointers in cached_kernel
// statics must stay valid, and unloading at exit would race the driver's teardown).
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/error.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/disk_cache.hpp"
#include "loom/cuda/runtime/driver.hpp"
#include "loom/cuda/runtime/hash.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"

namespace loom::cuda {

/// A kernel loaded on the device: everything launch() needs. Lives until the process ends.
struct kernel_handle {
  detail::function_handle function = nullptr;
  std::string name;               ///< the name expression it was asked by, e.g. "loom_saxpy"
  std::string lowered_name;       ///< the symbol in the module
  std::string arch;               ///< what the module was compiled for
  int max_threads_per_block = 0;  ///< the most threads per block this kernel can launch with
  int num_registers = 0;
  int static_shared_bytes = 0;
  int local_bytes = 0;  ///< per thread (spills)
  /// The dynamic shared memory this kernel was opted in to beyond 48 KiB (see launch()).
  mutable std::atomic<int> dynamic_shared_opt_in{0};
};

/// What to compile for one kernel: the source, the kernel's name expression, every name
/// expression the program registers (empty: just `name`), and the options.
struct kernel_request {
  std::string source;
  std::string name;
  std::vector<std::string> name_expressions;
  compile_options options;
};

}  // namespace loom::cuda

namespace loom::cuda::runtime {

/// Process-wide, thread-safe cache of compiled programs and loaded kernels.
class module_cache {
 public:
  /// Counters since construction.
  struct statistics {
    std::uint64_t requests = 0;  ///< program lookups
    std::uint64_t compiles = 0;  ///< NVRTC runs started by this cache
    std::uint64_t disk_hits = 0;
    std::uint64_t disk_rejected = 0;  ///< corrupt entries found (recompiled and overwritten)
    std::uint64_t disk_writes = 0;
    std::uint64_t modules_loaded = 0;
  };

  /// A cache backed by `disk` (nullptr: memory only). `disk` must outlive the cache.
  explicit module_cache(disk_cache* disk) noexcept : disk_(disk) {}
  module_cache(const module_cache&) = delete;
  module_cache& operator=(const module_cache&) = delete;

  /// The process-wide cache, backed by process_disk_cache().
  static module_cache& process() {
    static module_cache* const cache = new module_cache(&process_disk_cache());
    return *cache;
  }

  /// The compiled program for (source, name expressions, options): from memory, else from the
  /// disk cache, else compiled by NVRTC -- once per key however many threads ask. Needs NVRTC,
  /// not a GPU. Throws loom::jit_error on a compile error, loom::cuda_error without NVRTC.
  std::shared_ptr<const compiled_program> program(std::string_view source,
                                                  const std::vector<std::string>& name_expressions,
                                                  const compile_options& options) {
    return slot_for(source, name_expressions, options)->program.get();
  }

  /// The kernel `name` of the program, loaded on device 0 (the module once per key). Throws
  /// loom::jit_error on a compile error, loom::cuda_error without a device or when loading fails.
  const kernel_handle& kernel(std::string_view source, const std::string& name,
                              const std::vector<std::string>& name_expressions, const compile_options& options) {
    const std::vector<std::string> names = name_expressions.empty() ? std::vector<std::string>{name} : name_expressions;
    const std::shared_ptr<slot> s = slot_for(source, names, options);
    const std::shared_ptr<const compiled_program> prog = s->program.get();

    std::lock_guard<std::mutex> lock(s->load_mutex);
    for (const std::unique_ptr<kernel_handle>& k : s->kernels) {
      if (k->name == name) return *k;
    }
    const detail::driver_api& d = detail::driver();
    detail::make_current();
    if (s->module == nullptr) {
      detail::module_handle m = nullptr;
      if (const detail::cu_result r = d.cuModuleLoadData(&m, prog->image.data()); r != detail::cu::success) {
        throw cuda_error("loom: loading the module of kernel '" + name + "' (compiled for " + prog->arch +
                         ") on device " + device_info().name + " (" + device_info().arch +
                         ") failed: " + detail::error_text(r));
      }
      s->module = m;
      ++stats_.modules_loaded;
    }
    auto k = std::make_unique<kernel_handle>();
    k->name = name;
    k->lowered_name = prog->lowered_name(name);
    k->arch = prog->arch;
    if (const detail::cu_result r = d.cuModuleGetFunction(&k->function, s->module, k->lowered_name.c_str());
        r != detail::cu::success) {
      throw cuda_error("loom: kernel '" + name + "' (symbol '" + k->lowered_name +
                       "') is not in its module: " + detail::error_text(r));
    }
    auto attribute = [&](int which) {
      int v = 0;
      detail::check(d.cuFuncGetAttribute(&v, which, k->function), "cuFuncGetAttribute");
      return v;
    };
    k->max_threads_per_block = attribute(detail::cu::func_max_threads_per_block);
    k->num_registers = attribute(detail::cu::func_num_regs);
    k->static_shared_bytes = attribute(detail::cu::func_shared_size_bytes);
    k->local_bytes = attribute(detail::cu::func_local_size_bytes);
    s->kernels.push_back(std::move(k));
    return *s->kernels.back();
  }

  /// kernel() for a request.
  const kernel_handle& kernel(const kernel_request& r) {
    return kernel(r.source, r.name, r.name_expressions, r.options);
  }

  [[nodiscard]] statistics stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  [[nodiscard]] disk_cache* disk() const noexcept { return disk_; }

 private:
  struct slot {
    std::shared_future<std::shared_ptr<const compiled_program>> program;
    std::mutex load_mutex;  // guards module and kernels
    detail::module_handle module = nullptr;
    std::vector<std::unique_ptr<kernel_handle>> kernels;  // stable addresses
  };

  std::shared_ptr<slot> slot_for(std::string_view source, const std::vector<std::string>& names,
                                 const compile_options& options) {
    const int version = nvrtc_version();  // throws cuda_error without NVRTC: the key needs it
    const resolved_options resolved = resolve_options(options);
    const detail::hash128 key = program_key(source, names, resolved, version);

    std::shared_ptr<slot> s;
    std::promise<std::shared_ptr<const compiled_program>> promise;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.requests;
      auto it = slots_.find(key);
      if (it != slots_.end()) return it->second;
      s = std::make_shared<slot>();
      s->program = promise.get_future().share();
      slots_.emplace(key, s);
    }
    // This thread is the builder of `key`; waiters block on s->program, not on mutex_.
    try {
      promise.set_value(build(key, source, names, resolved));
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = slots_.find(key);
        if (it != slots_.end() && it->second == s) slots_.erase(it);
      }
      promise.set_exception(std::current_exception());
    }
    return s;
  }

  std::shared_ptr<const compiled_program> build(const detail::hash128& key, std::string_view source,
                                                const std::vector<std::string>& names,
                                                const resolved_options& resolved) {
    if (disk_ != nullptr && disk_->enabled()) {
      auto cached = std::make_shared<compiled_program>();
      const disk_lookup found = disk_->load(key, *cached);
      if (found == disk_lookup::hit) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.disk_hits;
        return cached;
      }
      if (found == disk_lookup::corrupt) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.disk_rejected;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.compiles;
    }
    auto compiled = std::make_shared<compiled_program>(compile_resolved(source, names, resolved, key));
    if (disk_ != nullptr && disk_->store(key, *compiled)) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.disk_writes;
    }
    return compiled;
  }

  disk_cache* disk_;
  mutable std::mutex mutex_;  // guards slots_ and stats_; never held while compiling or loading
  std::unordered_map<detail::hash128, std::shared_ptr<slot>, detail::hash128_hasher> slots_;
  statistics stats_;
};

/// The lock-free front of the module cache for one generated kernel. Keep one as a function-local
/// static per expression type and layout class:
///
///     static loom::cuda::runtime::cached_kernel k;
///     const kernel_handle& h = k.get([] { return kernel_request{source_for<Expr>(), "loom_kernel", {}, {}}; });
///
/// The first call builds the request, compiles or fetches it, loads it and stores the handle;
/// every later call, from any thread, is one atomic load. A failure is not stored: the next call
/// tries again. Everything that selects a different kernel must select a different cached_kernel
/// (the request is built once).
class cached_kernel {
 public:
  constexpr cached_kernel() noexcept = default;
  cached_kernel(const cached_kernel&) = delete;
  cached_kernel& operator=(const cached_kernel&) = delete;

  /// The kernel; `make_request()` returns a kernel_request and is called only on the first call.
  template <class MakeRequest>
  LOOM_INLINE const kernel_handle& get(MakeRequest&& make_request) {
    if (const kernel_handle* k = handle_.load(std::memory_order_acquire); LOOM_LIKELY(k != nullptr)) return *k;
    return fill(module_cache::process(), make_request);
  }

  /// get() through a given cache instead of the process-wide one (tests).
  template <class MakeRequest>
  const kernel_handle& get(module_cache& cache, MakeRequest&& make_request) {
    if (const kernel_handle* k = handle_.load(std::memory_order_acquire); LOOM_LIKELY(k != nullptr)) return *k;
    return fill(cache, make_request);
  }

  /// The handle if a get() has succeeded, else nullptr.
  [[nodiscard]] const kernel_handle* peek() const noexcept { return handle_.load(std::memory_order_acquire); }

 private:
  template <class MakeRequest>
  LOOM_NOINLINE const kernel_handle& fill(module_cache& cache, MakeRequest& make_request) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (const kernel_handle* k = handle_.load(std::memory_order_relaxed)) return *k;
    const kernel_request request = make_request();
    const kernel_handle& k = cache.kernel(request);
    handle_.store(&k, std::memory_order_release);
    return k;
  }

  std::atomic<const kernel_handle*> handle_{nullptr};
  std::mutex mutex_;
};

}  // namespace loom::cuda::runtime
