// loom/cuda/runtime/device.hpp: is there a GPU, which one, and its context.
//
// loom uses device 0 through its *primary* context: the same context the CUDA runtime (cudart),
// cuBLASLt, PyTorch and most libraries use, so device pointers and streams pass freely between
// loom and them. The context is retained once and never released (releasing it at exit races the
// driver's own teardown). The driver binds a context to a *thread*, so every entry point that
// talks to the device first makes the primary context current on the calling thread
// (make_current(): one cuCtxGetCurrent when it already is); any user thread may call loom.
//
// Device properties are read once, with the context, and kept: code generation and launch
// configuration read them on every kernel, and a driver call each time would cost microseconds.
#pragma once

#include <cstddef>
#include <string>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/driver.hpp"

namespace loom::cuda {

/// What loom knows about the device it uses (device 0).
struct device_properties {
  int ordinal = 0;
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  int major = 0;     ///< compute capability 9.0 gives major 9, minor 0
  int minor = 0;
  std::string arch;  ///< "sm_90": the architecture NVRTC compiles for
  int sm_count = 0;  ///< streaming multiprocessors
  int max_threads_per_block = 0;
  int max_threads_per_sm = 0;
  int warp_size = 32;
  int max_grid_x = 0;
  std::size_t shared_per_block = 0;        ///< static limit, bytes (48 KiB)
  std::size_t shared_per_block_optin = 0;  ///< with cuFuncSetAttribute opt-in, bytes
  std::size_t shared_per_sm = 0;
  std::size_t l2_bytes = 0;
  std::size_t total_memory = 0;
  bool memory_pools = false;  ///< cuMemAllocAsync is supported
  int driver_version = 0;     ///< e.g. 12040
};

/// True when the CUDA driver loads, cuInit succeeds and a device exists. Never throws.
inline bool available() noexcept { return detail::driver_state_once().usable; }

/// Why available() is false, e.g. "loom: CUDA is not available: the CUDA driver library
/// (libcuda) was not found; tried: ..."; empty when it is true.
inline const std::string& unavailable_reason() noexcept { return detail::driver_state_once().problem; }

namespace detail {

/// Device 0, its retained primary context and its properties.
struct device_context {
  cu_device device = 0;
  context_handle context = nullptr;
  device_properties properties;
};

inline device_context make_device_context() {
  const driver_api& d = driver();
  device_context dc;
  check(d.cuDeviceGet(&dc.device, 0), "cuDeviceGet(0)");
  check(d.cuDevicePrimaryCtxRetain(&dc.context, dc.device), "retaining the primary context of device 0");
  device_properties& p = dc.properties;
  auto attribute = [&](int which) {
    int value = 0;
    check(d.cuDeviceGetAttribute(&value, which, dc.device), "cuDeviceGetAttribute");
    return value;
  };
  char name[256] = {};
  check(d.cuDeviceGetName(name, static_cast<int>(sizeof(name) - 1), dc.device), "cuDeviceGetName");
  p.name = name;
  p.major = attribute(cu::attr_compute_capability_major);
  p.minor = attribute(cu::attr_compute_capability_minor);
  p.arch = "sm_" + std::to_string(p.major) + std::to_string(p.minor);
  p.sm_count = attribute(cu::attr_multiprocessor_count);
  p.max_threads_per_block = attribute(cu::attr_max_threads_per_block);
  p.max_threads_per_sm = attribute(cu::attr_max_threads_per_multiprocessor);
  p.warp_size = attribute(cu::attr_warp_size);
  p.max_grid_x = attribute(cu::attr_max_grid_dim_x);
  p.shared_per_block = static_cast<std::size_t>(attribute(cu::attr_max_shared_per_block));
  p.shared_per_block_optin = static_cast<std::size_t>(attribute(cu::attr_max_shared_per_block_optin));
  p.shared_per_sm = static_cast<std::size_t>(attribute(cu::attr_max_shared_per_multiprocessor));
  p.l2_bytes = static_cast<std::size_t>(attribute(cu::attr_l2_cache_size));
  p.memory_pools = attribute(cu::attr_memory_pools_supported) != 0;
  check(d.cuDeviceTotalMem(&p.total_memory, dc.device), "cuDeviceTotalMem");
  p.driver_version = driver_state_once().driver_version;
  return dc;
}

/// Device 0 with its primary context retained; set up once (a failure is retried next call).
inline const device_context& device_context_once() {
  static const device_context* const dc = new device_context(make_device_context());
  return *dc;
}

/// Makes device 0's primary context current on the calling thread. Throws loom::cuda_error when
/// CUDA is unusable.
inline void make_current() {
  const driver_api& d = driver();
  const context_handle wanted = device_context_once().context;
  context_handle current = nullptr;
  if (d.cuCtxGetCurrent(&current) != cu::success || current != wanted) {
    check(d.cuCtxSetCurrent(wanted), "making the primary context of device 0 current");
  }
}

}  // namespace detail

/// Properties of the device loom uses, read once. Throws loom::cuda_error without a device.
inline const device_properties& device_info() { return detail::device_context_once().properties; }

/// Waits until all work loom (or anyone) queued on the device has finished; reports an error of
/// an earlier asynchronous launch as loom::cuda_error.
inline void synchronize() {
  detail::make_current();
  detail::check(detail::driver().cuCtxSynchronize(), "cuda::synchronize (cuCtxSynchronize)");
}

/// Free and total device memory in bytes, as the driver reports them now.
struct memory_info {
  std::size_t free = 0;
  std::size_t total = 0;
};

/// The device's free and total memory. Throws loom::cuda_error without a device.
inline memory_info device_memory() {
  detail::make_current();
  memory_info m;
  detail::check(detail::driver().cuMemGetInfo(&m.free, &m.total), "cuMemGetInfo");
  return m;
}

}  // namespace loom::cuda
