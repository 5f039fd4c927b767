// loom/core/config.hpp: the one header of qualifiers and version macros.
//
// The same helpers compile under g++/clang++ (host), nvcc (host and device) and NVRTC (device,
// where no standard headers exist). Everything that must differ between those compilers is
// decided here and nowhere else.
#pragma once

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0
#define LOOM_VERSION_STRING "0.1.0"

#if defined(__CUDACC_RTC__)
#define LOOM_NVRTC 1
#else
#define LOOM_NVRTC 0
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LOOM_HD __host__ __device__
#define LOOM_DEVICE __device__
#else
#define LOOM_HD
#define LOOM_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LOOM_INLINE inline __attribute__((always_inline))
#define LOOM_NOINLINE __attribute__((noinline))
// After a lambda's parameter list: a hot loop's body, exp's polynomial. Builds that do not time
// anything (the tests at -O1, tests/CMakeLists.txt) define LOOM_LEAN_INLINE: forcing these into
// every instance made the test build 20% slower (test_reduce_fusion at -O1: 73 -> 96 s).
#if defined(LOOM_LEAN_INLINE)
#define LOOM_INLINE_LAMBDA
#else
#define LOOM_INLINE_LAMBDA __attribute__((always_inline))
#endif
#define LOOM_RESTRICT __restrict__
#define LOOM_LIKELY(x) __builtin_expect(!!(x), 1)
#define LOOM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LOOM_INLINE inline
#define LOOM_NOINLINE
#define LOOM_INLINE_LAMBDA
#define LOOM_RESTRICT
#define LOOM_LIKELY(x) (x)
#define LOOM_UNLIKELY(x) (x)
#endif

#if !LOOM_NVRTC
#include <cstddef>
#include <cstdint>

namespace loom {
/// Signed 64-bit index and stride type used by every loop nest (tensors over 2^31 elements work).
using index_t = std::int64_t;
}  // namespace loom
#endif
