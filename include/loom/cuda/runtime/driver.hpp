// loom/cuda/runtime/driver.hpp: the CUDA driver API, loaded from libcuda at run time.
//
// Why the driver API and not the runtime (cudart): the driver API is the one stable C ABI that
// every installed driver exports, it loads cubins we compile ourselves, and it needs no library
// from the toolkit. loom declares the handful of handle types and enum values it uses itself
// (as the driver API documents them) instead of including <cuda.h>, so a program that uses loom
// builds on a machine without the toolkit.
//
// The opaque handle types are pointers to the same global struct tags that <cuda.h> uses, so a
// CUstream or cudaStream_t from user code converts to loom's stream handle without a cast.
//
// Where the API has versioned entry points, the current ones are bound by their exported names
// (cuMemAlloc_v2, cuStreamDestroy_v2, ...): <cuda.h> maps the plain names onto exactly these, and
// binding the unversioned symbol would get the legacy 32-bit or pre-CUDA-4 behaviour.
//
// The library is opened, cuInit is called and devices are counted once, on first use, from a
// function-local static (thread-safe, and one instance per process even in a header). The state
// is leaked on purpose: see library.hpp.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/library.hpp"

// The driver's opaque types, under the tags <cuda.h> gives them (declaring a tag twice is fine).
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;
struct CUmemPoolHandle_st;

namespace loom::cuda::detail {

using cu_result = int;
using cu_device = int;
using deviceptr = unsigned long long;  // CUdeviceptr on every 64-bit platform
using context_handle = ::CUctx_st*;
using module_handle = ::CUmod_st*;
using function_handle = ::CUfunc_st*;
using stream_handle = ::CUstream_st*;
using event_handle = ::CUevent_st*;
using mempool_handle = ::CUmemPoolHandle_st*;

/// The values of the driver API's enums that loom uses, as the driver API documents them.
namespace cu {
inline constexpr cu_result success = 0;
inline constexpr cu_result error_invalid_value = 1;
inline constexpr cu_result error_out_of_memory = 2;
inline constexpr cu_result error_not_initialized = 3;
inline constexpr cu_result error_deinitialized = 4;
inline constexpr cu_result error_stub_library = 34;
inline constexpr cu_result error_no_device = 100;
inline constexpr cu_result error_not_ready = 600;

// CUdevice_attribute
inline constexpr int attr_max_threads_per_block = 1;
inline constexpr int attr_max_grid_dim_x = 5;
inline constexpr int attr_max_shared_per_block = 8;
inline constexpr int attr_warp_size = 10;
inline constexpr int attr_multiprocessor_count = 16;
inline constexpr int attr_l2_cache_size = 38;
inline constexpr int attr_max_threads_per_multiprocessor = 39;
inline constexpr int attr_compute_capability_major = 75;
inline constexpr int attr_compute_capability_minor = 76;
inline constexpr int attr_max_shared_per_multiprocessor = 81;
inline constexpr int attr_max_shared_per_block_optin = 97;
inline constexpr int attr_memory_pools_supported = 115;

// CUfunction_attribute
inline constexpr int func_max_threads_per_block = 0;
inline constexpr int func_shared_size_bytes = 1;
inline constexpr int func_local_size_bytes = 3;
inline constexpr int func_num_regs = 4;
inline constexpr int func_max_dynamic_shared_size_bytes = 8;

// CUpointer_attribute and CUmemorytype
inline constexpr int pointer_memory_type = 2;
inline constexpr unsigned memorytype_host = 1;

// stream, event and host allocation flags
inline constexpr unsigned stream_default = 0;
inline constexpr unsigned stream_non_blocking = 1;
inline constexpr unsigned event_default = 0;
inline constexpr unsigned event_disable_timing = 2;
inline constexpr unsigned memhostalloc_portable = 1;
}  // namespace cu

/// Function pointers into libcuda, named as the driver API names them (unversioned: the member
/// cuMemAlloc holds the symbol cuMemAlloc_v2). Optional entry points are nullptr when the
/// installed driver lacks them.
struct driver_api {
  cu_result (*cuInit)(unsigned) = nullptr;
  cu_result (*cuDriverGetVersion)(int*) = nullptr;
  cu_result (*cuGetErrorName)(cu_result, const char**) = nullptr;
  cu_result (*cuGetErrorString)(cu_result, const char**) = nullptr;
  cu_result (*cuDeviceGetCount)(int*) = nullptr;
  cu_result (*cuDeviceGet)(cu_device*, int) = nullptr;
  cu_result (*cuDeviceGetAttribute)(int*, int, cu_device) = nullptr;
  cu_result (*cuDeviceGetName)(char*, int, cu_device) = nullptr;
  cu_result (*cuDeviceTotalMem)(std::size_t*, cu_device) = nullptr;
  cu_result (*cuDevicePrimaryCtxRetain)(context_handle*, cu_device) = nullptr;
  cu_result (*cuDevicePrimaryCtxRelease)(cu_device) = nullptr;
  cu_result (*cuCtxGetCurrent)(context_handle*) = nullptr;
  cu_result (*cuCtxSetCurrent)(context_handle) = nullptr;
  cu_result (*cuCtxSynchronize)() = nullptr;
  cu_result (*cuStreamCreate)(stream_handle*, unsigned) = nullptr;
  cu_result (*cuStreamDestroy)(stream_handle) = nullptr;
  cu_result (*cuStreamSynchronize)(stream_handle) = nullptr;
  cu_result (*cuStreamQuery)(stream_handle) = nullptr;
  cu_result (*cuStreamWaitEvent)(stream_handle, event_handle, unsigned) = nullptr;
  cu_result (*cuEventCreate)(event_handle*, unsigned) = nullptr;
  cu_result (*cuEventDestroy)(event_handle) = nullptr;
  cu_result (*cuEventRecord)(event_handle, stream_handle) = nullptr;
  cu_result (*cuEventSynchronize)(event_handle) = nullptr;
  cu_result (*cuEventQuery)(event_handle) = nullptr;
  cu_result (*cuEventElapsedTime)(float*, event_handle, event_handle) = nullptr;
  cu_result (*cuMemAlloc)(deviceptr*, std::size_t) = nullptr;
  cu_result (*cuMemFree)(deviceptr) = nullptr;
  cu_result (*cuMemGetInfo)(std::size_t*, std::size_t*) = nullptr;
  cu_result (*cuMemHostAlloc)(void**, std::size_t, unsigned) = nullptr;
  cu_result (*cuMemFreeHost)(void*) = nullptr;
  cu_result (*cuMemcpyHtoDAsync)(deviceptr, const void*, std::size_t, stream_handle) = nullptr;
  cu_result (*cuMemcpyDtoHAsync)(void*, deviceptr, std::size_t, stream_handle) = nullptr;
  cu_result (*cuMemcpyDtoDAsync)(deviceptr, deviceptr, std::size_t, stream_handle) = nullptr;
  cu_result (*cuMemsetD8Async)(deviceptr, unsigned char, std::size_t, stream_handle) = nullptr;
  cu_result (*cuPointerGetAttribute)(void*, int, deviceptr) = nullptr;
  cu_result (*cuModuleLoadData)(module_handle*, const void*) = nullptr;
  cu_result (*cuModuleUnload)(module_handle) = nullptr;
  cu_result (*cuModuleGetFunction)(function_handle*, module_handle, const char*) = nullptr;
  cu_result (*cuFuncGetAttribute)(int*, int, function_handle) = nullptr;
  cu_result (*cuFuncSetAttribute)(function_handle, int, int) = nullptr;
  cu_result (*cuLaunchKernel)(function_handle, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              stream_handle, void**, void**) = nullptr;
  cu_result (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int*, function_handle, int, std::size_t) = nullptr;
  // optional: stream-ordered allocation (driver 11.2 and later)
  cu_result (*cuMemAllocAsync)(deviceptr*, std::size_t, stream_handle) = nullptr;
  cu_result (*cuMemFreeAsync)(deviceptr, stream_handle) = nullptr;
  cu_result (*cuDeviceGetDefaultMemPool)(mempool_handle*, cu_device) = nullptr;
  cu_result (*cuMemPoolTrimTo)(mempool_handle, std::size_t) = nullptr;
};

/// What loading the driver found: the library, its functions, and whether a device is usable.
struct driver_state {
  shared_library library;
  driver_api api;
  int driver_version = 0;  // e.g. 12040 for CUDA 12.4
  int device_count = 0;
  bool usable = false;  // loaded, every required function found, cuInit succeeded, a device exists
  std::string problem;  // why it is not usable: the message of the cuda_error users get
};

// ---------------------------------------------------------------------------------------------
// Error names
// ---------------------------------------------------------------------------------------------

/// The enum name of a driver error without asking the driver (a stub or broken driver cannot
/// name its own errors), for the codes loom is likely to meet.
inline const char* known_error_name(cu_result r) noexcept {
  switch (r) {
    case 0:
      return "CUDA_SUCCESS";
    case 1:
      return "CUDA_ERROR_INVALID_VALUE";
    case 2:
      return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3:
      return "CUDA_ERROR_NOT_INITIALIZED";
    case 4:
      return "CUDA_ERROR_DEINITIALIZED";
    case 34:
      return "CUDA_ERROR_STUB_LIBRARY";
    case 36:
      return "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER";
    case 46:
      return "CUDA_ERROR_DEVICE_UNAVAILABLE";
    case 100:
      return "CUDA_ERROR_NO_DEVICE";
    case 101:
      return "CUDA_ERROR_INVALID_DEVICE";
    case 200:
      return "CUDA_ERROR_INVALID_IMAGE";
    case 201:
      return "CUDA_ERROR_INVALID_CONTEXT";
    case 209:
      return "CUDA_ERROR_NO_BINARY_FOR_GPU";
    case 218:
      return "CUDA_ERROR_INVALID_PTX";
    case 222:
      return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
    case 400:
      return "CUDA_ERROR_INVALID_HANDLE";
    case 500:
      return "CUDA_ERROR_NOT_FOUND";
    case 600:
      return "CUDA_ERROR_NOT_READY";
    case 700:
      return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case 701:
      return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case 702:
      return "CUDA_ERROR_LAUNCH_TIMEOUT";
    case 709:
      return "CUDA_ERROR_CONTEXT_IS_DESTROYED";
    case 710:
      return "CUDA_ERROR_ASSERT";
    case 715:
      return "CUDA_ERROR_ILLEGAL_INSTRUCTION";
    case 716:
      return "CUDA_ERROR_MISALIGNED_ADDRESS";
    case 719:
      return "CUDA_ERROR_LAUNCH_FAILED";
    case 801:
      return "CUDA_ERROR_NOT_SUPPORTED";
    case 803:
      return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    case 804:
      return "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE";
    case 999:
      return "CUDA_ERROR_UNKNOWN";
    default:
      return nullptr;
  }
}

/// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)", asking `api` first and falling back to loom's table.
inline std::string error_text(const driver_api& api, cu_result r) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName != nullptr && api.cuGetErrorName(r, &name) != cu::success) name = nullptr;
  if (api.cuGetErrorString != nullptr && api.cuGetErrorString(r, &text) != cu::success) text = nullptr;
  if (name == nullptr) name = known_error_name(r);
  std::string out;
  if (name != nullptr) {
    out = name;
  } else {
    out = "CUDA error " + std::to_string(r);
  }
  if (text != nullptr && text[0] != '\0') out += std::string(" (") + text + ")";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Opens the first loadable of `names`, binds the driver API, calls cuInit and counts devices.
/// Never throws; the result says what went wrong. Not cached: driver_state_once() is.
inline driver_state probe_driver(const std::vector<std::string>& names) noexcept {
  driver_state s;
  try {
    std::string tried;
    // The driver is installed with the system's libraries, never in a toolkit folder (whose
    // stubs/libcuda.so would load and then fail cuInit), so only the loader's search is used.
    s.library = open_first(names, {}, &tried);
    if (!s.library) {
      s.problem = "loom: CUDA is not available: the CUDA driver library (libcuda) was not found; tried:" + tried;
      return s;
    }
    driver_api& a = s.api;
    const shared_library& lib = s.library;
    std::string missing;
    auto need = [&](auto& fn, const char* symbol) {
      if (!lib.bind(fn, symbol)) missing += std::string(missing.empty() ? "" : ", ") + symbol;
    };
    // The error functions first: they name the errors of everything after.
    need(a.cuGetErrorName, "cuGetErrorName");
    need(a.cuGetErrorString, "cuGetErrorString");
    need(a.cuInit, "cuInit");
    need(a.cuDriverGetVersion, "cuDriverGetVersion");
    need(a.cuDeviceGetCount, "cuDeviceGetCount");
    need(a.cuDeviceGet, "cuDeviceGet");
    need(a.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    need(a.cuDeviceGetName, "cuDeviceGetName");
    need(a.cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    need(a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    need(a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    need(a.cuCtxGetCurrent, "cuCtxGetCurrent");
    need(a.cuCtxSetCurrent, "cuCtxSetCurrent");
    need(a.cuCtxSynchronize, "cuCtxSynchronize");
    need(a.cuStreamCreate, "cuStreamCreate");
    need(a.cuStreamDestroy, "cuStreamDestroy_v2");
    need(a.cuStreamSynchronize, "cuStreamSynchronize");
    need(a.cuStreamQuery, "cuStreamQuery");
    need(a.cuStreamWaitEvent, "cuStreamWaitEvent");
    need(a.cuEventCreate, "cuEventCreate");
    need(a.cuEventDestroy, "cuEventDestroy_v2");
    need(a.cuEventRecord, "cuEventRecord");
    need(a.cuEventSynchronize, "cuEventSynchronize");
    need(a.cuEventQuery, "cuEventQuery");
    need(a.cuMemAlloc, "cuMemAlloc_v2");
    need(a.cuMemFree, "cuMemFree_v2");
    need(a.cuMemGetInfo, "cuMemGetInfo_v2");
    need(a.cuMemHostAlloc, "cuMemHostAlloc");
    need(a.cuMemFreeHost, "cuMemFreeHost");
    need(a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    need(a.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    need(a.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    need(a.cuMemsetD8Async, "cuMemsetD8Async");
    need(a.cuPointerGetAttribute, "cuPointerGetAttribute");
    need(a.cuModuleLoadData, "cuModuleLoadData");
    need(a.cuModuleUnload, "cuModuleUnload");
    need(a.cuModuleGetFunction, "cuModuleGetFunction");
    need(a.cuFuncGetAttribute, "cuFuncGetAttribute");
    need(a.cuFuncSetAttribute, "cuFuncSetAttribute");
    need(a.cuLaunchKernel, "cuLaunchKernel");
    need(a.cuOccupancyMaxActiveBlocksPerMultiprocessor, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    // Optional. The timing function was versioned in CUDA 12.8; older drivers only have the first.
    if (!lib.bind(a.cuEventElapsedTime, "cuEventElapsedTime_v2")) lib.bind(a.cuEventElapsedTime, "cuEventElapsedTime");
    lib.bind(a.cuMemAllocAsync, "cuMemAllocAsync");
    lib.bind(a.cuMemFreeAsync, "cuMemFreeAsync");
    lib.bind(a.cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool");
    lib.bind(a.cuMemPoolTrimTo, "cuMemPoolTrimTo");
    if (!missing.empty()) {
      s.problem = "loom: CUDA is not available: the driver " + lib.file() + " lacks " + missing +
                  " (the driver is too old for loom)";
      return s;
    }
    if (const cu_result r = a.cuInit(0); r != cu::success) {
      if (r == cu::error_no_device) {
        s.problem = "loom: CUDA is not available: no CUDA device (cuInit: " + error_text(a, r) + ")";
      } else {
        s.problem =
            "loom: CUDA is not available: cuInit failed with " + error_text(a, r) + " (driver " + lib.file() + ")";
      }
      return s;
    }
    a.cuDriverGetVersion(&s.driver_version);
    if (const cu_result r = a.cuDeviceGetCount(&s.device_count); r != cu::success) {
      s.problem = "loom: CUDA is not available: cuDeviceGetCount failed with " + error_text(a, r);
      return s;
    }
    if (s.device_count <= 0) {
      s.problem = "loom: CUDA is not available: the driver found no CUDA device";
      return s;
    }
    s.usable = true;
  } catch (...) {  // only std::bad_alloc can get here; available() must still answer
    s.usable = false;
    if (s.problem.empty()) s.problem = "loom: CUDA is not available: out of host memory while loading the driver";
  }
  return s;
}

/// The process-wide driver state, probed once on first use.
inline const driver_state& driver_state_once() noexcept {
  static const driver_state* const state = [] {
    auto* s = new driver_state(probe_driver({"libcuda.so.1", "libcuda.so"}));
    s->library.release();  // see the note on lifetime at the top of library.hpp
    return s;
  }();
  return *state;
}

/// The driver API; throws loom::cuda_error saying which piece is missing when CUDA is unusable.
inline const driver_api& driver() {
  const driver_state& s = driver_state_once();
  if (!s.usable) throw cuda_error(s.problem);
  return s.api;
}

/// error_text() with the process-wide driver, usable when the driver could not be initialised.
inline std::string error_text(cu_result r) { return error_text(driver_state_once().api, r); }

/// Throws loom::cuda_error "loom: <what> failed: <error name> (<error string>)" when r is an error.
inline void check(cu_result r, std::string_view what) {
  if (r != cu::success) [[unlikely]] {
    throw cuda_error("loom: " + std::string(what) + " failed: " + error_text(r));
  }
}

}  // namespace loom::cuda::detail
