// loom/cpu/gemm/partial.hpp: copies of fewer elements than a vector holds, for the edges of tiles.
//
// The edges of small products are most of their work: a row of 8 floats in a 16-lane world. A
// scalar loop there becomes a call to memmove or a `rep stos` (tens of cycles to start). With
// AVX-512 a masked load or store moves such a run in one instruction (masked-off lanes are never
// touched, so nothing is read or written outside the run); elsewhere whole vectors of zeros and a
// short scalar loop do it.
#pragma once

#include <cstdint>
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

/// Stores lanes [0, n) of v to dst (0 <= n <= lanes).
template <class T>
LOOM_INLINE void store_first(T* dst, __m512i v, index_t n) {
  if constexpr (sizeof(T) == 4) {
    _mm512_mask_storeu_epi32(dst, __mmask16((1u << n) - 1u), v);
  } else {
    _mm512_mask_storeu_epi64(dst, __mmask8((1u << n) - 1u), v);
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

/// dst[0, n) = src[0, n) for n < lanes of T.
template <class T>
LOOM_INLINE void copy_short(const T* LOOM_RESTRICT src, index_t n, T* LOOM_RESTRICT dst) {
#if defined(__AVX512F__)
  if constexpr (has_masked_moves<T>) {
    store_first(dst, load_first(src, n), n);
    return;
  }
#endif
  for (index_t l = 0; l < n; ++l) dst[l] = src[l];
}

}  // namespace loom::cpu::gemm::detail
