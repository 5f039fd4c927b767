// loom/cpu/gemm/partial.hpp: copies of fewer elements than a vector holds, for the edges of tiles.
//
// The edges of small products are most of their work: a row of 8 floats in a 16-lane world. A
// scalar loop there becomes a call to memmove or a `rep stos` (tens of cycles to start). With
// AVX-512 a masked load reads such a run, zero-padded, in one instruction (masked-off lanes are
// never touched, so nothing is read outside the run); elsewhere whole vectors of zeros and a short
// scalar loop do it. Short stores go by power-of-two moves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "loom/core/config.hpp"

namespace loom::cpu::gemm::detail {

#if defined(__AVX512F__)
template <class T>
inline constexpr bool has_masked_moves = std::is_arithmetic_v<T> && (sizeof(T) == 4 || sizeof(T) == 8) &&
                                         xsimd::batch<T>::size * sizeof(T) == 64;

/// Lanes [0, n) of a 512-bit vector loaded from src, the others zero (0 <= n <= lanes).
template <class T>
LOOM_INLINE __m512i load_first(const T* src, index_t n) {
  if constexpr (sizeof(T) == 4) {
    return _mm512_maskz_loadu_epi32(__mmask16((1u << n) - 1u), src);
  } else {
    return _mm512_maskz_loadu_epi64(__mmask8((1u << n) - 1u), src);
  }
}

#else
template <class T>
inline constexpr bool has_masked_moves = false;
#endif

/// out[0, n) = src[0, n) converted, out[n, W) = 0, for 0 <= n <= W; out is 64-byte aligned when
/// W * sizeof(T) is a multiple of 64.
template <int W, class T, class U>
LOOM_INLINE void copy_and_pad(const U* LOOM_RESTRICT src, index_t n, T* LOOM_RESTRICT out) {
  using batch = xsimd::batch<T>;
  constexpr int L = int(batch::size);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, U> && has_masked_moves<T> && W % L == 0) {
#pragma GCC unroll 8
    for (int l = 0; l < W; l += L) {
      index_t c = n - l < 0 ? 0 : (n - l > L ? L : n - l);
      _mm512_storeu_si512(out + l, load_first(src + l, c));
    }
    return;
  }
#endif
  if constexpr (W % L == 0) {
#pragma GCC unroll 8
    for (int l = 0; l < W; l += L) batch(T(0)).store_unaligned(out + l);
  } else {
#pragma GCC unroll 64
    for (int l = 0; l < W; ++l) out[l] = T(0);
  }
  for (index_t l = 0; l < n; ++l) out[l] = static_cast<T>(src[l]);
}

/// dst[0, n) = src[0, n) for n < lanes of T: moves of 32, 16, 8 and 4 bytes by the bits of the
/// length (a masked store is slow on AMD Zen 4, and a scalar loop becomes a call to memmove).
template <class T>
LOOM_INLINE void copy_short(const T* LOOM_RESTRICT src, index_t n, T* LOOM_RESTRICT dst) {
  if constexpr (std::is_trivially_copyable_v<T> && (sizeof(T) == 4 || sizeof(T) == 8)) {
    const std::size_t bytes = std::size_t(n) * sizeof(T);
    const char* s = reinterpret_cast<const char*>(src);
    char* d = reinterpret_cast<char*>(dst);
    if (bytes & 32) std::memcpy(d, s, 32), s += 32, d += 32;
    if (bytes & 16) std::memcpy(d, s, 16), s += 16, d += 16;
    if (bytes & 8) std::memcpy(d, s, 8), s += 8, d += 8;
    if (bytes & 4) std::memcpy(d, s, 4);
  } else {
    for (index_t l = 0; l < n; ++l) dst[l] = src[l];
  }
}

}  // namespace loom::cpu::gemm::detail
