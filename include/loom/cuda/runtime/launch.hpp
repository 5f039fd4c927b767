// loom/cuda/runtime/launch.hpp: launching a loaded kernel, and choosing a block size.
//
// launch() is on the hot path of every device assignment, so it does the minimum: make the
// context current (one cuCtxGetCurrent when it is), opt the kernel in to more than 48 KiB of
// dynamic shared memory the first time it asks for that much, and call cuLaunchKernel. Only a
// failure builds a message -- with the driver's error name and string, the kernel's name and the
// launch configuration, since "invalid argument" alone says nothing about which launch or why.
//
// Errors of the kernel itself (an illegal address) are asynchronous: they surface at the next
// synchronising call (stream_ref::synchronize, cuda::synchronize) as loom::cuda_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/driver.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/stream.hpp"

namespace loom::cuda {

/// Grid or block extents of a launch.
struct launch_dim {
  unsigned x = 1;
  unsigned y = 1;
  unsigned z = 1;

  constexpr launch_dim() noexcept = default;
  constexpr launch_dim(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) noexcept : x(x_), y(y_), z(z_) {}  // NOLINT
  /// x * y * z.
  [[nodiscard]] constexpr std::uint64_t count() const noexcept {
    return std::uint64_t{x} * std::uint64_t{y} * std::uint64_t{z};
  }
};

}  // namespace loom::cuda

namespace loom::cuda::runtime {

namespace detail_launch {

inline std::string dims(launch_dim d) {
  return std::to_string(d.x) + "x" + std::to_string(d.y) + "x" + std::to_string(d.z);
}

[[noreturn]] LOOM_NOINLINE inline void launch_failed(detail::cu_result r, std::string_view name, launch_dim grid,
                                                     launch_dim block, unsigned shared_bytes, int max_threads) {
  std::string msg = "loom: launching kernel '" + std::string(name) + "' (grid " + dims(grid) + ", block " +
                    dims(block) + ", " + std::to_string(shared_bytes) +
                    " B dynamic shared memory) failed: " + detail::error_text(r);
  if (max_threads > 0 && block.count() > static_cast<std::uint64_t>(max_threads)) {
    msg += "; the kernel allows at most " + std::to_string(max_threads) + " threads per block";
  }
  throw cuda_error(msg);
}

}  // namespace detail_launch

/// Launches a raw CUfunction; `name` is only used in the error message. `args` points to one
/// pointer per kernel parameter, each to the parameter's value. Throws loom::cuda_error (with the
/// driver's error name, the kernel name and the configuration) when the launch is refused.
inline void launch(detail::function_handle function, std::string_view name, launch_dim grid, launch_dim block,
                   unsigned shared_bytes, stream_ref s, void** args) {
  detail::make_current();
  const detail::cu_result r = detail::driver().cuLaunchKernel(function, grid.x, grid.y, grid.z, block.x, block.y,
                                                              block.z, shared_bytes, s.handle(), args, nullptr);
  if (r != detail::cu::success) [[unlikely]] {
    detail_launch::launch_failed(r, name, grid, block, shared_bytes, 0);
  }
}

/// Launches a kernel from the module cache; see the raw overload. Dynamic shared memory above
/// 48 KiB is opted in to (cuFuncSetAttribute) the first time the kernel asks for it.
inline void launch(const kernel_handle& k, launch_dim grid, launch_dim block, unsigned shared_bytes, stream_ref s,
                   void** args) {
  detail::make_current();
  const detail::driver_api& d = detail::driver();
  constexpr unsigned default_dynamic_limit = 48u * 1024u;
  if (shared_bytes > default_dynamic_limit &&
      static_cast<int>(shared_bytes) > k.dynamic_shared_opt_in.load(std::memory_order_relaxed)) {
    if (const detail::cu_result r = d.cuFuncSetAttribute(k.function, detail::cu::func_max_dynamic_shared_size_bytes,
                                                         static_cast<int>(shared_bytes));
        r != detail::cu::success) {
      detail_launch::launch_failed(r, k.name + " (opting in to dynamic shared memory)", grid, block, shared_bytes,
                                   k.max_threads_per_block);
    }
    int seen = k.dynamic_shared_opt_in.load(std::memory_order_relaxed);
    while (seen < static_cast<int>(shared_bytes) &&
           !k.dynamic_shared_opt_in.compare_exchange_weak(seen, static_cast<int>(shared_bytes))) {
    }
  }
  const detail::cu_result r = d.cuLaunchKernel(k.function, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                                               shared_bytes, s.handle(), args, nullptr);
  if (r != detail::cu::success) [[unlikely]] {
    detail_launch::launch_failed(r, k.name, grid, block, shared_bytes, k.max_threads_per_block);
  }
}

/// launch() with the kernel's parameters given as values: launch_with(k, grid, block, 0, s, a, x, y, n).
/// Each value is passed as its own type: give exactly the kernel's parameter types.
template <class... Args>
void launch_with(const kernel_handle& k, launch_dim grid, launch_dim block, unsigned shared_bytes, stream_ref s,
                 const Args&... args) {
  if constexpr (sizeof...(Args) == 0) {
    launch(k, grid, block, shared_bytes, s, nullptr);
  } else {
    void* pointers[] = {const_cast<void*>(static_cast<const void*>(&args))...};
    launch(k, grid, block, shared_bytes, s, pointers);
  }
}

/// How many blocks of `block_threads` threads (and `dynamic_shared` bytes) of kernel `k` fit on
/// one SM at once (cuOccupancyMaxActiveBlocksPerMultiprocessor).
inline int max_active_blocks_per_sm(const kernel_handle& k, int block_threads, std::size_t dynamic_shared = 0) {
  detail::make_current();
  int blocks = 0;
  detail::check(
      detail::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k.function, block_threads, dynamic_shared),
      "cuOccupancyMaxActiveBlocksPerMultiprocessor for kernel '" + k.name + "'");
  return blocks;
}

/// The block size (a multiple of the warp size, at most the kernel's limit) that keeps the most
/// threads resident per SM; ties go to the smaller block (more blocks to balance the tail).
inline int occupancy_block_size(const kernel_handle& k, std::size_t dynamic_shared = 0) {
  const device_properties& p = device_info();
  const int warp = p.warp_size > 0 ? p.warp_size : 32;
  const int limit = k.max_threads_per_block > 0 ? k.max_threads_per_block : p.max_threads_per_block;
  int best = warp;
  int best_threads = -1;
  for (int threads = warp; threads <= limit; threads += warp) {
    const int resident = max_active_blocks_per_sm(k, threads, dynamic_shared) * threads;
    if (resident > best_threads) {
      best_threads = resident;
      best = threads;
    }
  }
  return best;
}

}  // namespace loom::cuda::runtime
